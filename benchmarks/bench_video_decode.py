"""What reading a `--video` observation costs, side by side in one run: the whole clip (what policy and forward
dynamics read before they kept only the current frame; `viz` animations now stream instead), its last frame
(`load_frames(clip, last=1)`: policy, forward dynamics, `RemotePolicy.act`) and its first chunk_size + 2 frames
(inverse dynamics). Each read runs in a fresh process; peak RSS is the kernel's high-water mark, reset just before the
read (Linux).

    python benchmarks/bench_video_decode.py [--frames 400] [--size 480x832]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _args import at_least, frame_size, parser_for

READS = {"whole clip": {}, "last frame": {"last": 1}, "first 34 frames": {"max_frames": 34}}


def _status(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024  # MiB
    raise KeyError(key)


def _measure(clip: str, bounds: dict[str, int]) -> None:
    """Child process: one read, its peak RSS above the RSS before it, and its time."""
    from worldpolicy.processing.observations import load_frames

    load_frames(np.zeros((16, 16, 3), np.uint8))  # imports and first-call set-up outside the measurement
    Path("/proc/self/clear_refs").write_text("5")
    before = _status("VmRSS")
    tick = time.perf_counter()
    frames = load_frames(clip, **bounds)
    seconds = time.perf_counter() - tick
    print(json.dumps({"frames": frames.shape[0], "peak_rss_mib": round(_status("VmHWM") - before),
                      "seconds": round(seconds, 2)}))


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--frames", type=at_least(35), default=400,
                        help="clip length (default 400; at least 35: the first-34-frames read needs a longer clip)")
    parser.add_argument("--size", default="480x832", help="HxW, each side >= 16 (default 480x832)")
    parser.add_argument("--child", nargs=2, metavar=("CLIP", "BOUNDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _measure(args.child[0], json.loads(args.child[1]))
        return
    height, width = frame_size(parser, args.size, "480x832")

    from worldpolicy.processing.video import write_video

    yy, xx = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(0)

    def frames():
        for k in range(args.frames):  # a moving gradient plus noise: every frame differs
            f = np.stack([(xx + 3 * k) % 256, (yy + 2 * k) % 256, np.full_like(xx, k % 256)], axis=-1)
            yield np.clip(f + rng.integers(-8, 8, f.shape), 0, 255).astype(np.uint8)

    with tempfile.TemporaryDirectory() as tmp:
        clip = str(Path(tmp) / "clip.mp4")
        write_video(clip, frames(), 15)
        rows = {}
        for name, bounds in READS.items():
            out = subprocess.run([sys.executable, __file__, "--child", clip, json.dumps(bounds)], check=True,
                                 capture_output=True, text=True).stdout
            rows[name] = json.loads(out.strip().splitlines()[-1])
    whole = rows["whole clip"]
    print(f"{args.frames} frames of {height}x{width}")
    for name, row in rows.items():
        ratio = "" if row is whole else f"  (whole clip / this: {whole['peak_rss_mib'] / max(row['peak_rss_mib'], 1):.0f}x)"
        print(f"{name:>16}: {row['frames']:4d} frames, peak RSS +{row['peak_rss_mib']:5d} MiB, {row['seconds']:6.2f} s"
              + ratio)


if __name__ == "__main__":
    main()
