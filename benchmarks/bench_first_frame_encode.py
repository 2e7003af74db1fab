"""What a policy or forward dynamics request's VAE encode costs, side by side in one run: the whole canvas (the
observation repeated to chunk_size + 1 frames, what the engine encoded until session 45, as the pipeline does) against
its first frame alone (the only latent frame those modes keep; the VAE is causal in time, so it is the same latent).
The shipped model's VAE on a canvas of its tier (`worldpolicy demo`: 256x256, chunk 4), alternate runs, medians.
Check: the first latent frame is bit for bit the same both ways.

    python benchmarks/bench_first_frame_encode.py [--repeats 5] [--frames 5] [--size 256x256]
"""

from __future__ import annotations

import statistics
import time

import torch
from _args import at_least, exit_if_failed, frame_size, parser_for

from worldpolicy import load_policy
from worldpolicy.models import shipped_model


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--repeats", type=at_least(1), default=5, help="encodes of each way, alternated (default 5)")
    parser.add_argument("--frames", type=at_least(2), default=5, help="canvas frames: chunk_size + 1 (default 5)")
    parser.add_argument("--size", default="256x256", help="canvas HxW, multiples of 16 (default 256x256)")
    args = parser.parse_args()
    height, width = frame_size(parser, args.size, "256x256")
    if height % 16 or width % 16:
        parser.error(f"--size={args.size!r}: each side must be a multiple of 16")

    engine = load_policy(shipped_model(), seed=0).engine
    frame = torch.rand(1, 3, 1, height, width, generator=torch.Generator().manual_seed(0)) * 2 - 1
    canvas = frame.repeat(1, 1, args.frames, 1, 1)
    ways = {"whole canvas": canvas, "first frame": canvas[:, :, :1]}
    engine.encode_video(canvas)  # first-call set-up outside the measurement
    times: dict[str, list[float]] = {name: [] for name in ways}
    latents = {}
    for _ in range(args.repeats):
        for name, video in ways.items():
            tick = time.perf_counter()
            latents[name] = engine.encode_video(video)
            times[name].append(time.perf_counter() - tick)
    whole, first = (statistics.median(times[name]) for name in ways)
    same = torch.equal(latents["whole canvas"][:, :, :1], latents["first frame"])
    print(f"VAE encode of a {args.frames}-frame {height}x{width} canvas, median of {args.repeats}: whole canvas "
          f"{1000 * whole:.1f} ms, first frame {1000 * first:.1f} ms, {whole / first:.2f}x")
    print(f"first latent frame bit-equal: {same}")
    exit_if_failed({"the first latent frame is the same both ways": same})


if __name__ == "__main__":
    main()
