"""Training memory options side by side: activations kept for the backward pass and step time, fp32 vs bf16 autocast,
with and without gradient checkpointing (`optim.precision`, `optim.gradient_checkpointing`).

Kept activations are counted exactly: every tensor autograd saves for the backward pass, each storage once, the
weights themselves excluded (they are resident anyway; autocast's bf16 copies of them are counted: they are kept
too). `--geometry nano` counts Cosmos3-Nano's (36 layers at hidden 4096, random weights on the CPU): forward passes
with 1 and 2 of its layers, extrapolated per layer to 36, so any machine can size a GPU run (about 4 minutes on 2
cores, ~18 GB of memory at its peak).

    python benchmarks/bench_train_memory.py                    # wide tiny model, 480x832 chunk-16 examples, timed
    python benchmarks/bench_train_memory.py --geometry nano    # bytes only, Nano geometry
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

import torch
from _args import at_least, parser_for


def examples_for(latent_channel: int, batch: int, chunk: int, latent_hw: tuple[int, int]):
    from worldpolicy.train.flow import ModelExample

    g = torch.Generator().manual_seed(0)
    caption = torch.randint(0, 1000, (130,), generator=g).tolist()  # a DROID caption is ~130 tokens
    return [ModelExample(torch.randn(latent_channel, chunk // 4 + 1, *latent_hw, generator=g),
                         torch.randn(chunk, 8, generator=g), torch.ones(chunk, dtype=torch.bool), caption, 0, 0, 15.0)
            for _ in range(batch)]


def step(transformer, examples, precision: str, recompute: bool, count: bool,
         backward: bool = True) -> tuple[int, float]:
    """One forward (+ backward) of the trainer's own loss module: (bytes kept for the backward pass, seconds)."""
    from worldpolicy.train.trainer import FlowMatchingLoss

    params = {p.untyped_storage().data_ptr() for p in transformer.parameters()}
    storages: dict[int, int] = {}

    def keep(tensor):
        storage = tensor.untyped_storage()
        if count and storage.data_ptr() not in params:
            storages[storage.data_ptr()] = max(storages.get(storage.data_ptr(), 0), storage.nbytes())
        return tensor

    objectives = ["policy", "forward_dynamics", "inverse_dynamics"]
    loss_module = FlowMatchingLoss(transformer, 1.0, 1000, precision, recompute)
    tick = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        loss, _ = loss_module(examples, [objectives[i % 3] for i in range(len(examples))],
                              torch.full((len(examples),), 0.5), torch.Generator().manual_seed(0))
    if backward:
        loss.backward()
        transformer.zero_grad(set_to_none=True)
    return sum(storages.values()), time.perf_counter() - tick


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--geometry", choices=["wide", "nano"], default="wide",
                        help="wide: the wide tiny model, kept bytes and step times; nano: Cosmos3-Nano's geometry, "
                             "kept bytes only (default wide)")
    parser.add_argument("--batch", type=at_least(1), default=2, help="examples per step (default 2)")
    parser.add_argument("--repeats", type=at_least(1), default=2,
                        help="wide: timed steps per variant, interleaved across the variants (default 2)")
    args = parser.parse_args()
    from worldpolicy.testing import NANO, WIDE, build_components

    variants = [(precision, recompute) for precision in ("fp32", "bf16") for recompute in (False, True)]
    if args.geometry == "wide":
        transformer = build_components(WIDE)[0].train()
        examples = examples_for(WIDE.latent_channel, args.batch, 16, (30, 52))  # 480x832, chunk 16
        # the counting step is also each variant's warm-up; timed steps are interleaved so drift hits all alike
        kept = {variant: step(transformer, examples, *variant, count=True)[0] for variant in variants}
        times = {variant: [] for variant in variants}
        for _ in range(args.repeats):
            for variant in variants:
                times[variant].append(step(transformer, examples, *variant, count=False)[1])
        seconds = {variant: statistics.median(t) for variant, t in times.items()}
        params = sum(p.numel() for p in transformer.parameters())
    else:  # every layer is alike: measure 1 and 2 of Nano's layers, extrapolate to 36
        examples = examples_for(NANO.latent_channel, args.batch, 16, (30, 52))
        counts = {}
        for layers in (1, 2):
            transformer = build_components(replace(NANO, num_hidden_layers=layers))[0].train()
            counts[layers] = {v: step(transformer, examples, *v, count=True, backward=False)[0] for v in variants}
            del transformer
        n = NANO.num_hidden_layers
        kept = {v: counts[1][v] + (n - 1) * (counts[2][v] - counts[1][v]) for v in variants}
        seconds, params = None, None
    base = variants[0]
    size = (f", {params / 1e6:.1f} M parameters" if params else
            f", {NANO.num_hidden_layers} layers (measured with 1 and 2, per layer x {n})")
    print(f"\n{args.geometry} geometry, batch {args.batch} of 480x832 chunk-16 examples (1950 vision + 16 action "
          f"tokens, 130-token caption){size}")
    print("  (in brackets: this variant / fp32 plain; < 1 keeps less or steps faster)")
    for variant in variants:
        timing = f", step {seconds[variant]:6.2f} s ({seconds[variant] / seconds[base]:4.2f}x)" if seconds else ""
        print(f"  {variant[0]} {'checkpointing' if variant[1] else 'plain        '}: activations kept "
              f"{kept[variant] / 2**30:7.2f} GiB ({kept[variant] / kept[base]:5.3f}x){timing}")


if __name__ == "__main__":
    main()
