"""Latency per action chunk: worldpolicy's engine vs diffusers' Cosmos3OmniPipeline, side by side in one run.

Same weights, same seed, same settings (4 steps, CFG 3, policy mode; `--steps` and `--guidance` change both sides,
guidance 1 turns CFG off); the engine decodes no video, the pipeline uses output_type="latent" (skips its decode).
Prints the speed ratio, the max action difference, and where the engine's time goes (VAE encode, text tower, denoising
steps). Settings: `tiny` (hidden 64, 2 layers, 64x64 observation) and `wide` (hidden 512, 4 layers, 480x832) load from a
saved checkpoint as users load one; `nano` is Cosmos3-Nano's geometry (36 layers at hidden 4096, the Wan2.2 VAE) with
random weights built in memory on the device, a GPU's job.

    python benchmarks/bench_engine.py                      # CPU, fp32: tiny and wide
    python benchmarks/bench_engine.py --quick              # fewer repeats
    python benchmarks/bench_engine.py --settings tiny --steps 8 --guidance 1   # what a sampling knob costs or saves
    python benchmarks/bench_engine.py --device cuda --dtype bfloat16 --settings nano --chunks 16,32 \\
        --variants eager,cuda_graphs                       # GPU; variants: eager, compile, cuda_graphs

In bf16 the pipeline and the engine round differently (the engine packs CFG's branches, caches the text tower, encodes
one frame), so `--fp32-reference` also runs both in fp32 on the same weights and reports each bf16 result's distance to
the pipeline's fp32 actions: faithful means the engine lands as close to that reference as the pipeline itself does.
`--profile` prints where one engine call spends its time, op by op, most first: CUDA kernels on a GPU, CPU ops on the
CPU (a request's own split by stage is `Prediction.timings`, printed here as the "by stage" line).
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from _args import at_least, parser_for

EMBODIMENT = "droid/relative_pose"
TASK = "Pick up the banana and place it in the bowl."
SETTINGS = {  # name: (observation height x width, resolution tier)
    "tiny": ((64, 64), 256),
    "wide": ((480, 832), 480),
    "nano": ((480, 832), 480),
}


@dataclass(frozen=True)
class Sampling:
    """What both sides run per call: denoising steps (each one generation-tower pass) and CFG guidance (1: no CFG,
    one branch through the tower instead of two)."""

    steps: int = 4
    guidance: float = 3.0


def load_setting(name: str, device: str, dtype: str, chunk: int, tmp: Path):
    """The pipeline and our eager policy on the same weights."""
    from diffusers import Cosmos3OmniPipeline

    import worldpolicy
    from worldpolicy.engine import Engine, SamplingConfig
    from worldpolicy.policy import Policy
    from worldpolicy.testing import NANO, WIDE, TinySizes, build_components, make_tiny_checkpoint

    tier = SETTINGS[name][1]
    if name == "nano":
        transformer, vae, tokenizer, scheduler = build_components(NANO, device=device, dtype=dtype)
        pipe = Cosmos3OmniPipeline(transformer=transformer, text_tokenizer=tokenizer, vae=vae, scheduler=scheduler,
                                   safety_checker=None, enable_safety_checker=False, default_use_system_prompt=False)
        engine = Engine(transformer, vae, tokenizer, scheduler)
        policy = Policy(engine, worldpolicy.get_embodiment(EMBODIMENT), SamplingConfig(), chunk_size=chunk,
                        resolution_tier=tier, source="random weights, Cosmos3-Nano geometry")
    else:
        ckpt = tmp / name
        if not ckpt.exists():
            make_tiny_checkpoint(ckpt, WIDE if name == "wide" else TinySizes())
        pipe = Cosmos3OmniPipeline.from_pretrained(ckpt, enable_safety_checker=False, dtype=getattr(torch, dtype))
        pipe.to(device)
        policy = worldpolicy.load_policy(ckpt, embodiment=EMBODIMENT, chunk_size=chunk, resolution_tier=tier,
                                         device=device, dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe, policy


def variant_of(policy, variant: str):
    """The same weights behind an engine compiled as `variant` (eager, compile, cuda_graphs)."""
    from worldpolicy.engine import Engine
    from worldpolicy.policy import Policy

    if variant == "eager":
        return policy
    e = policy.engine
    engine = Engine(e.transformer, e.vae, e.tokenizer, e.scheduler, use_native_flow_schedule=e.use_native_flow_schedule,
                    default_use_system_prompt=e.default_use_system_prompt, compile=variant == "compile",
                    cuda_graphs=variant == "cuda_graphs")
    return Policy(engine, policy.embodiment, policy.sampling, chunk_size=policy.chunk_size,
                  resolution_tier=policy.resolution_tier, source=policy.source)


def pipeline_actions(pipe, image: np.ndarray, chunk: int, tier: int, sampling: Sampling) -> np.ndarray:
    from diffusers import CosmosActionCondition

    cond = CosmosActionCondition(mode="policy", chunk_size=chunk, domain_name="droid_lerobot", image=image,
                                 resolution_tier=tier, view_point="concat_view")
    out = pipe(prompt=TASK, action=cond, num_inference_steps=sampling.steps,
               guidance_scale=sampling.guidance, fps=15.0,
               generator=torch.Generator().manual_seed(0), output_type="latent")
    return out.action[0].float().cpu().numpy()


def fp32_reference(name: str, device: str, chunk: int, image: np.ndarray, tmp: Path,
                   sampling: Sampling) -> dict[str, np.ndarray]:
    """The pipeline's and the engine's actions in fp32 on the same weights."""
    pipe, policy = load_setting(name, device, "float32", chunk, tmp)
    tier = SETTINGS[name][1]
    reference = {"pipeline": pipeline_actions(pipe, image, chunk, tier, sampling),
                 "engine": engine_call(policy, image, sampling).actions_normalized}
    del pipe, policy
    free_device_memory(device)
    return reference


def engine_call(policy, image: np.ndarray, sampling: Sampling):
    return policy.act(image, TASK, seed=0, steps=sampling.steps, guidance=sampling.guidance)


def free_device_memory(device: str) -> None:
    """Pipelines hold reference cycles: collect them, so the next setting's peak memory is its own."""
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def print_profile(policy, image: np.ndarray, sampling: Sampling, cuda: bool) -> None:
    """The ops of one engine call by time, most first: by CUDA time on a GPU, by self CPU time on the CPU (sorted by
    CUDA time there, every row reads 0 and the order says nothing)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]
    with profile(activities=activities) as prof:
        engine_call(policy, image, sampling)
    sort_by = "cuda_time_total" if cuda else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort_by, row_limit=18, max_name_column_width=60))


def run_setting(name: str, device: str, dtype: str, chunk: int, variants: list[str], repeats: int, tmp: Path,
                sampling: Sampling, reference: bool = False, profile: bool = False) -> dict:
    obs_hw, tier = SETTINGS[name]
    cuda = device.startswith("cuda")
    image = np.random.default_rng(0).random((*obs_hw, 3)).astype(np.float32)
    ref = fp32_reference(name, device, chunk, image, tmp, sampling) if reference else None
    tick = time.perf_counter()
    pipe, policy = load_setting(name, device, dtype, chunk, tmp)
    load_s = time.perf_counter() - tick
    policies = {v: variant_of(policy, v) for v in variants}

    def pipeline_call():
        return pipeline_actions(pipe, image, chunk, tier, sampling)

    first_call = {}
    tick = time.perf_counter()
    pipeline_call()
    first_call["pipeline"] = time.perf_counter() - tick
    for v, p in policies.items():  # the first call compiles (compile, cuda_graphs) and captures graphs
        tick = time.perf_counter()
        engine_call(p, image, sampling)
        first_call[v] = time.perf_counter() - tick
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = {"pipeline": [], **{v: [] for v in variants}}
    stages, outputs = {v: [] for v in variants}, {}
    for _ in range(repeats):  # interleaved so machine noise hits all alike
        tick = time.perf_counter(); a_pipe = pipeline_call(); times["pipeline"].append(time.perf_counter() - tick)
        for v, p in policies.items():
            p.engine._texts.clear()  # a new caption per request: no cross-request text reuse in the comparison
            tick = time.perf_counter(); pred = engine_call(p, image, sampling)
            times[v].append(time.perf_counter() - tick)
            stages[v].append(pred.timings)
            outputs[v] = pred
    scale = float(np.abs(a_pipe).max())
    med = {k: statistics.median(t) for k, t in times.items()}
    settings = outputs[variants[0]].settings
    print(f"\n== {name}: {device} {dtype}, observation {obs_hw[0]}x{obs_hw[1]}, tier {tier}, chunk {chunk}, "
          f"{sampling.steps} steps, guidance {sampling.guidance:g}, canvas {settings['canvas_hw']}, latent "
          f"{settings['latent_hw']}, {repeats} repeats (loaded in {load_s:.1f} s); "
          "one random image, given to both as the composite: the single-view warning above is expected")
    print(f"pipeline (output_type=latent): median {med['pipeline'] * 1000:9.1f} ms   first call "
          f"{first_call['pipeline']:.1f} s")
    result = {"setting": name, "device": device, "dtype": dtype, "chunk": chunk, "steps": sampling.steps,
              "guidance": sampling.guidance, "repeats": repeats,
              "pipeline_ms": med["pipeline"] * 1000, "variants": {}}
    keys = ["preprocess", "vae_encode", "text", "denoise", "postprocess"]
    for v in variants:
        diff = float(np.abs(a_pipe - outputs[v].actions_normalized).max()) / scale
        stage = {k: statistics.median(s.get(k, 0.0) for s in stages[v]) * 1000 for k in keys}
        print(f"engine, {v:<12}          : median {med[v] * 1000:9.1f} ms   first call {first_call[v]:.1f} s   "
              f"speed-up {med['pipeline'] / med[v]:6.2f}x   max relative action difference {diff:.2e}")
        print("    by stage (median): " + ", ".join(f"{k} {ms:.1f} ms" for k, ms in stage.items()))
        result["variants"][v] = {"ms": med[v] * 1000, "speedup": med["pipeline"] / med[v], "max_rel_diff": diff,
                                 "first_call_s": first_call[v], "stages_ms": stage}
    if ref is not None:
        scale = float(np.abs(ref["pipeline"]).max())
        distance = {"engine fp32": ref["engine"], f"pipeline {dtype}": a_pipe,
                    **{f"engine {v} {dtype}": outputs[v].actions_normalized for v in variants}}
        result["vs_fp32_pipeline"] = {k: float(np.abs(a - ref["pipeline"]).max()) / scale for k, a in distance.items()}
        print("max relative action difference to the pipeline in fp32: "
              + ", ".join(f"{k} {d:.2e}" for k, d in result["vs_fp32_pipeline"].items()))
    if cuda:
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        print(f"peak GPU memory while timing: {result['peak_memory_gib']:.1f} GiB")
    if profile:
        print_profile(policies[variants[0]], image, sampling, cuda)
    return result


def main() -> None:
    from worldpolicy.embodiments import check_chunk_size
    from worldpolicy.engine.loading import check_compile_options, resolve_device
    from worldpolicy.fileio import write_json_atomic

    parser = parser_for(__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                        help="both the pipeline's and the engine's (default float32)")
    parser.add_argument("--settings", default="tiny,wide",
                        help=f"comma-separated, from {', '.join(SETTINGS)} (default tiny,wide)")
    parser.add_argument("--chunks", default="16", help="comma-separated action chunk sizes (default 16)")
    parser.add_argument("--steps", type=at_least(1), default=Sampling.steps,
                        help=f"denoising steps, both sides (default {Sampling.steps})")
    parser.add_argument("--guidance", type=at_least(0.0, float), default=Sampling.guidance,
                        help=f"CFG guidance, both sides; 1 turns CFG off (default {Sampling.guidance:g})")
    parser.add_argument("--variants", default="eager",
                        help="comma-separated engine variants, from eager, compile, cuda_graphs (default eager)")
    parser.add_argument("--repeats", type=at_least(1),
                        help="timed repeats per setting (default 7 tiny, 3 otherwise; --quick: 3 tiny, 2 otherwise)")
    parser.add_argument("--fp32-reference", action="store_true", help="also measure each result's distance to fp32")
    parser.add_argument("--profile", action="store_true",
                        help="print the ops of one engine call, most time first (CUDA kernels on a GPU, CPU ops else)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    names = args.settings.split(",")
    variants = args.variants.split(",")
    for flag, values, accepted in (("--settings", names, SETTINGS), ("--variants", variants,
                                                                       ("eager", "compile", "cuda_graphs"))):
        unknown = [v for v in values if v not in accepted]
        if unknown:
            parser.error(f"{flag}: unknown {', '.join(unknown)}; accepted: {', '.join(accepted)}")
    try:
        chunks = [int(c) for c in args.chunks.split(",")]
        for chunk in chunks:
            check_chunk_size(chunk)
    except ValueError as exc:
        parser.error(f"--chunks {args.chunks}: {exc}")
    try:
        check_compile_options(resolve_device(args.device), False, "cuda_graphs" in variants)
    except ValueError as exc:
        parser.error(f"--device {args.device}: {exc}")
    if "nano" in names and not args.device.startswith("cuda"):
        parser.error("--settings nano needs --device cuda (a 15-billion-parameter model)")

    results = []
    sampling = Sampling(args.steps, args.guidance)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            for chunk in chunks:
                default = (3 if args.quick else 7) if name == "tiny" else (2 if args.quick else 3)
                repeats = args.repeats or default
                results.append(run_setting(name, args.device, args.dtype, chunk, variants, repeats, Path(tmp),
                                           sampling, reference=args.fp32_reference, profile=args.profile))
                free_device_memory(args.device)
                if args.json:  # after every setting, so a later setting's failure keeps what was measured
                    write_json_atomic(args.json, results)
    targets = " (targets on CPU: tiny >= 5x, wide >= 1.5x)" if args.device == "cpu" else ""
    print("\nSUMMARY: speed-up = pipeline time / engine time (> 1: the engine is faster); action difference = "
          f"max |engine - pipeline| / max |pipeline action|{targets}")
    for r in results:
        for v, x in r["variants"].items():
            print(f"  {r['setting']:>5} chunk {r['chunk']:>2} {v:<12}: pipeline {r['pipeline_ms']:9.1f} ms, engine "
                  f"{x['ms']:9.1f} ms, {x['speedup']:5.2f}x, max relative action difference {x['max_rel_diff']:.1e}")


if __name__ == "__main__":
    main()
