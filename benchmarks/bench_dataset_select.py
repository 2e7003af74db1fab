"""`dataset select` (`select_episodes`) on one recorded dataset, side by side in one run: each kept episode's video
copied as its encoded packets (`edit.copy_episodes` since session 34) against decoded and encoded again a block at a
time (what it did before, and still does where a video cannot be copied: here `LeRobotDataset.encoded_segment` is
made to refuse every one). The source is written with `LeRobotDatasetWriter` (as `dataset from-sim` writes one):
moving coloured frames, every other episode selected. Interleaved repeats, medians; the frames of both results are
compared with the source's decoded ones.

    python benchmarks/bench_dataset_select.py [--episodes 20] [--frames 60] [--size 96x128] [--codec libx264]
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from _args import at_least, frame_size, parser_for

CAMERA = "observation.images.front"


def _source(root: Path, episodes: int, frames: int, height: int, width: int, codec: str):
    from worldpolicy.data import LeRobotDatasetWriter

    features = {"observation.state": {"dtype": "float32", "shape": [2], "names": None},
                CAMERA: {"dtype": "video", "shape": [height, width, 3], "names": None}}
    yy, xx = np.mgrid[0:height, 0:width]
    with LeRobotDatasetWriter(root, 15, features, video_codec=codec) as writer:
        for e in range(episodes):
            t = np.arange(frames)[:, None, None]
            video = np.stack([(xx + 3 * t + 40 * e) % 256, (yy + 2 * t) % 256, (xx + yy + 5 * t) % 256], axis=-1)
            writer.add_episode({"observation.state": np.zeros((frames, 2), np.float32)},
                               {CAMERA: video.astype(np.uint8)}, "move")
        return writer.finalize()


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--episodes", type=at_least(2), default=20, help="episodes recorded (default 20; half kept)")
    parser.add_argument("--frames", type=at_least(1), default=60, help="frames per episode (default 60)")
    parser.add_argument("--size", default="96x128", help="HxW, each side even and >= 16 (default 96x128)")
    parser.add_argument("--codec", choices=("libx264", "libx264rgb", "libsvtav1"), default="libx264",
                        help="the source's codec, which the selection keeps (default libx264)")
    parser.add_argument("--repeats", type=at_least(1), default=3, help="interleaved repeats (default 3)")
    args = parser.parse_args()
    height, width = frame_size(parser, args.size, "96x128", even=True)
    logging.basicConfig(level=logging.ERROR)  # the re-encode run's warning is what it measures, not news

    from worldpolicy.data import LeRobotDataset, select_episodes

    def refused(self, i: int, key: str) -> str:
        return "measured decoded and encoded again"

    with tempfile.TemporaryDirectory() as tmp:
        src = _source(Path(tmp) / "src", args.episodes, args.frames, height, width, args.codec)
        kept = list(range(0, args.episodes, 2))
        seconds: dict[str, list[float]] = {"copied": [], "encoded again": []}
        results = {}
        own = LeRobotDataset.encoded_segment
        for r in range(args.repeats):
            for name, times in seconds.items():
                LeRobotDataset.encoded_segment = refused if name == "encoded again" else own
                try:
                    tick = time.perf_counter()
                    results[name] = select_episodes(src, Path(tmp) / f"{name} {r}", kept)
                    times.append(time.perf_counter() - tick)
                finally:
                    LeRobotDataset.encoded_segment = own
        diffs = {}
        for name, result in results.items():
            worst = 0
            for new, old in enumerate(kept):
                got = result.dataset.episode(new).videos[CAMERA].astype(int)
                worst = max(worst, int(np.abs(got - src.episode(old).videos[CAMERA].astype(int)).max()))
            diffs[name] = worst
    medians = {name: float(np.median(times)) for name, times in seconds.items()}
    print(f"select {len(kept)} of {args.episodes} episodes of {args.frames} frames, {height}x{width} {args.codec}, "
          f"median of {args.repeats}")
    for name, median in medians.items():
        videos = results[name].videos
        print(f"{name:>14}: {median:7.2f} s  ({videos.copied} videos copied, {videos.encoded} encoded again; largest "
              f"pixel difference from the source's decoded frames: {diffs[name]})")
    print(f"encoded again / copied: {medians['encoded again'] / medians['copied']:.2f}x")


if __name__ == "__main__":
    main()
