"""Training step time: one packed pass per batch (`flow.batch_losses`) against one diffusers forward per example.

The shipped recipe's transformer (`reach-from-scratch`: hidden 128, 4 layers) at its batch size, on synthetic cached
examples of the recipe's shapes (2 latent frames of 16x16, 4 action rows, ~40-token captions in 6 colours, the recipe's
objective mix and timesteps). Both arms take the same AdamW steps on copies of one model, interleaved (alternating
which goes first), in one run; prints the median step time of each, the ratio, and the largest loss difference between
them.

    python benchmarks/bench_train_step.py              # 20 interleaved rounds
    python benchmarks/bench_train_step.py --rounds 5
"""

from __future__ import annotations

import copy
import statistics
import time
import tomllib

import torch
from _args import at_least, parser_for


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--rounds", type=at_least(1), default=20, help="timed rounds after one warm-up (default 20)")
    parser.add_argument("--threads", type=at_least(1), default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from worldpolicy.train.config import ObjectiveConfig
    from worldpolicy.train.flow import ModelExample, TimestepSampler, batch_losses, example_loss
    from worldpolicy.train.scratch import ScratchConfig, base_transformer, recipe_path

    raw = tomllib.loads(recipe_path("reach-from-scratch").read_text())
    cfg = ScratchConfig(**raw["scratch"])
    batch, chunk, lr = raw["optim"]["batch_size"], raw["data"]["chunk_size"], raw["optim"]["lr"]
    objective_cfg = ObjectiveConfig(**raw["objectives"])
    weights, action_weight = objective_cfg.weights(), objective_cfg.action_loss_weight
    sampler = TimestepSampler(**raw.get("timesteps", {}))

    g = torch.Generator().manual_seed(0)
    captions = [torch.randint(0, cfg.vocab_size, (40 + i % 2,), generator=g).tolist() for i in range(6)]
    rows = len(raw["embodiment"]["columns"])

    def draw_batch(step: int):
        g = torch.Generator().manual_seed(step)
        examples = [
            ModelExample(torch.randn(cfg.latent_channel, chunk // 4 + 1, 16, 16, generator=g),
                         torch.randn(chunk, rows, generator=g), torch.ones(chunk, dtype=torch.bool),
                         captions[int(torch.randint(6, (1,), generator=g))], 0, 0, 15.0)
            for _ in range(batch)
        ]
        names = list(weights)
        picks = torch.multinomial(torch.tensor([weights[n] for n in names]), batch, replacement=True, generator=g)
        return examples, [names[i] for i in picks.tolist()], sampler.sample(batch, g).tolist()

    def per_example(model, examples, objectives, sigmas, g):
        return [example_loss(model, e, o, s, g) for e, o, s in zip(examples, objectives, sigmas)]

    base = base_transformer(cfg, cfg.vocab_size)
    arms = {}
    for name, fn in (("per-example forward", per_example), ("packed pass", batch_losses)):
        model = copy.deepcopy(base).train()
        arms[name] = (fn, model, torch.optim.AdamW(model.parameters(), lr=lr), [], [])

    for step in range(args.rounds + 1):  # round 0 warms up and is not timed
        examples, objectives, sigmas = draw_batch(step)
        order = list(arms.values())  # alternate which arm goes first, so neither always runs on the other's caches
        for fn, model, optimizer, times, losses in order if step % 2 else order[::-1]:
            tick = time.perf_counter()
            terms = fn(model, examples, objectives, sigmas, torch.Generator().manual_seed(step))
            loss = sum((v if v is not None else 0) + (action_weight * a if a is not None else 0) for v, a in terms)
            (loss / batch).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step:
                times.append(time.perf_counter() - tick)
                losses.append(float(loss.detach()) / batch)

    medians, losses = {}, []
    for name, (_, _, _, times, arm_losses) in arms.items():
        medians[name] = statistics.median(times)
        losses.append(arm_losses)
        print(f"{name:>20}: {medians[name]:.3f} s per step of batch {batch} (median of {len(times)})")
    print(f"packed pass speed-up: {medians['per-example forward'] / medians['packed pass']:.2f}x "
          f"(per-example step time / packed step time; > 1: the packed pass is faster)")
    print(f"largest loss difference over {args.rounds} steps: {max(abs(a - b) for a, b in zip(*losses)):.2e}")


if __name__ == "__main__":
    main()
