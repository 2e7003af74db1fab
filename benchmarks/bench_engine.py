"""Latency per action chunk: worldpolicy's engine vs diffusers' Cosmos3OmniPipeline, side by side in one run.

Same checkpoint, same seed, same settings (4 steps, CFG 3, policy mode, chunk 16); the engine decodes no video, the
pipeline uses output_type="latent" (skips its decode). Prints the speed ratio, the max action difference, and where the
engine's time goes (VAE encode, text tower, denoising steps).

    python benchmarks/bench_engine.py            # both settings
    python benchmarks/bench_engine.py --quick    # fewer repeats
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def run_setting(name, ckpt, obs_hw, tier, repeats):
    from diffusers import Cosmos3OmniPipeline, CosmosActionCondition

    import worldpolicy

    pipe = Cosmos3OmniPipeline.from_pretrained(ckpt, enable_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    policy = worldpolicy.load_policy(ckpt, embodiment="droid/relative_pose", chunk_size=16, resolution_tier=tier)
    image = np.random.default_rng(0).random((*obs_hw, 3)).astype(np.float32)
    task = "Pick up the banana and place it in the bowl."

    def pipeline_call():
        cond = CosmosActionCondition(mode="policy", chunk_size=16, domain_name="droid_lerobot", image=image,
                                     resolution_tier=tier, view_point="concat_view")
        out = pipe(prompt=task, action=cond, num_inference_steps=4, guidance_scale=3.0, fps=15.0,
                   generator=torch.Generator().manual_seed(0), output_type="latent")
        return out.action[0].numpy()

    def engine_call():
        return policy.act(image, task, seed=0, steps=4, guidance=3.0)

    pipeline_call(), engine_call()  # warm-up
    t_pipe, t_eng, stages = [], [], []
    for _ in range(repeats):  # interleaved so machine noise hits both alike
        tick = time.perf_counter(); a_pipe = pipeline_call(); t_pipe.append(time.perf_counter() - tick)
        policy.engine._texts.clear()  # a new caption per request: no cross-request text reuse in the comparison
        tick = time.perf_counter(); pred = engine_call(); t_eng.append(time.perf_counter() - tick)
        stages.append(pred.timings)
    diff = float(np.abs(a_pipe - pred.actions_normalized).max() / np.abs(a_pipe).max())
    mp, me = statistics.median(t_pipe), statistics.median(t_eng)
    print(f"\n== {name}: observation {obs_hw[0]}x{obs_hw[1]}, tier {tier}, canvas {pred.settings['canvas_hw']}, "
          f"latent {pred.settings['latent_hw']}, {repeats} repeats")
    print(f"pipeline (output_type=latent): median {mp * 1000:8.1f} ms")
    print(f"worldpolicy engine           : median {me * 1000:8.1f} ms")
    print(f"speed-up                     : {mp / me:6.2f}x   (max relative action difference {diff:.2e})")
    keys = ["preprocess", "vae_encode", "text", "denoise", "postprocess"]
    med = {k: statistics.median(s.get(k, 0.0) for s in stages) for k in keys}
    print("engine time by stage (median): " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in med.items()))
    return mp / me


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    from worldpolicy.testing import WIDE, make_tiny_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        tiny = make_tiny_checkpoint(Path(tmp) / "tiny")
        wide = make_tiny_checkpoint(Path(tmp) / "wide", sizes=WIDE)
        r1 = run_setting("tiny model (hidden 64, 2 layers)", tiny, (64, 64), 256, 3 if args.quick else 7)
        r2 = run_setting("wider tiny model (hidden 512, 4 layers)", wide, (480, 832), 480, 2 if args.quick else 3)
    print(f"\nSUMMARY speed-up: 64x64 tiny {r1:.2f}x (target >= 5x), 480x832 wide {r2:.2f}x (target >= 1.5x)")


if __name__ == "__main__":
    main()
