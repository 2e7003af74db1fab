"""What reading a `--video` observation costs, side by side in one run: the whole clip (what policy and forward
dynamics read before they kept only the current frame; `viz` animations now stream instead), its last frame
(`load_frames(clip, last=1)`: policy, forward dynamics, `RemotePolicy.act`) and its first chunk_size + 2 frames
(inverse dynamics). Each read runs in a fresh process; peak RSS is the kernel's high-water mark, reset just before the
read (Linux).

`--part blocks`: a dataset video read a block of `--block` frames at a time, as `dataset select`/`merge` read
episodes (`data.video`), side by side in one process (interleaved repeats, medians) on a file of `--gop` frames per
GOP (250: x264's default): the whole file in one read, blocks each opened and sought from the keyframe before them
(`read_segment`, how blocks were read before session 32) and blocks that decode on from one another
(`SegmentReader`, inside `LeRobotDataset.reading_in_order`); the three reads' frames are compared.

    python benchmarks/bench_video_decode.py [--frames 400] [--size 480x832]
    python benchmarks/bench_video_decode.py --part blocks [--frames 600] [--size 240x320] [--gop 250] [--block 64]
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
from _args import at_least, exit_if_failed, frame_size, parser_for

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


def _frames(count: int, height: int, width: int):
    """A moving gradient plus noise: every frame differs."""
    yy, xx = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(0)
    for k in range(count):
        f = np.stack([(xx + 3 * k) % 256, (yy + 2 * k) % 256, np.full_like(xx, k % 256)], axis=-1)
        yield np.clip(f + rng.integers(-8, 8, f.shape), 0, 255).astype(np.uint8)


def _blocks(frames: int, height: int, width: int, gop: int, block: int, repeats: int) -> None:
    """`--part blocks`: one file read whole, in sought blocks and in blocks decoding on, timed side by side."""
    from worldpolicy.data.video import SegmentReader, read_segment
    from worldpolicy.processing.video import VideoFileWriter

    fps, key, hw = 15, "cam", (height, width)
    spans = [(s, min(s + block, frames)) for s in range(0, frames, block)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "file.mp4"
        writer = VideoFileWriter(path, fps, height, width, "libx264", gop)
        for frame in _frames(frames, height, width):
            writer.append(frame[None])
        writer.close()

        def whole():
            return read_segment(path, 0, frames / fps, fps, frames, key, hw)

        def sought():
            return np.concatenate([read_segment(path, s / fps, e / fps, fps, e - s, key, hw) for s, e in spans])

        def decoding_on():
            with SegmentReader(path) as reader:
                return np.concatenate([reader.read(s / fps, e / fps, fps, e - s, key, hw) for s, e in spans])

        reads = {"whole file": whole, "blocks, each sought": sought, "blocks, decoding on": decoding_on}
        seconds: dict[str, list[float]] = {name: [] for name in reads}
        got = {}
        for _ in range(repeats):
            for name, read in reads.items():
                tick = time.perf_counter()
                got[name] = read()
                seconds[name].append(time.perf_counter() - tick)
    medians = {name: float(np.median(times)) for name, times in seconds.items()}
    same = all(np.array_equal(frames_read, got["whole file"]) for frames_read in got.values())
    print(f"{frames} frames of {height}x{width}, GOP {gop}, blocks of {block}, median of {repeats}")
    for name, median in medians.items():
        print(f"{name:>20}: {median:7.2f} s  ({median / medians['whole file']:.2f}x the whole read)")
    print(f"sought / decoding on: {medians['blocks, each sought'] / medians['blocks, decoding on']:.2f}x; "
          f"frames identical: {same}")
    exit_if_failed({"the three reads' frames are identical": same})


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--part", choices=("observation", "blocks"), default="observation",
                        help="observation: a --video clip's reads (default); blocks: a dataset video's block reads")
    parser.add_argument("--frames", type=at_least(35), default=None,
                        help="clip length (default 400, blocks 600; at least 35: the first-34-frames read needs a "
                             "longer clip)")
    parser.add_argument("--size", default=None, help="HxW, each side >= 16 (default 480x832, blocks 240x320)")
    parser.add_argument("--gop", type=at_least(1), default=250, help="blocks: frames per GOP (default 250)")
    parser.add_argument("--block", type=at_least(1), default=64, help="blocks: frames per block (default 64, "
                        "data.edit.BLOCK_FRAMES)")
    parser.add_argument("--repeats", type=at_least(1), default=3, help="blocks: interleaved repeats (default 3)")
    parser.add_argument("--child", nargs=2, metavar=("CLIP", "BOUNDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _measure(args.child[0], json.loads(args.child[1]))
        return
    blocks = args.part == "blocks"
    default = "240x320" if blocks else "480x832"
    height, width = frame_size(parser, args.size or default, default, even=blocks)
    frames = args.frames or (600 if blocks else 400)
    if blocks:
        _blocks(frames, height, width, args.gop, args.block, args.repeats)
        return

    from worldpolicy.processing.video import write_video

    with tempfile.TemporaryDirectory() as tmp:
        clip = str(Path(tmp) / "clip.mp4")
        write_video(clip, _frames(frames, height, width), 15)
        rows = {}
        for name, bounds in READS.items():
            out = subprocess.run([sys.executable, __file__, "--child", clip, json.dumps(bounds)], check=True,
                                 capture_output=True, text=True).stdout
            rows[name] = json.loads(out.strip().splitlines()[-1])
    whole = rows["whole clip"]
    print(f"{frames} frames of {height}x{width}")
    for name, row in rows.items():
        times = whole["peak_rss_mib"] / max(row["peak_rss_mib"], 1)
        ratio = "" if row is whole else f"  (whole clip / this: {times:.0f}x)"
        print(f"{name:>16}: {row['frames']:4d} frames, peak RSS +{row['peak_rss_mib']:5d} MiB, {row['seconds']:6.2f} s"
              + ratio)


if __name__ == "__main__":
    main()
