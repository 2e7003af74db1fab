"""Peak memory of `dataset label` (`label_dataset`) on one long episode, side by side in one run: every video of the
episode decoded and written whole (the labeller before session 31, kept here as `_label_whole`) against a segment
at a time (`label._label`: each segment of `SEGMENT_BATCHES` batches of windows decoded and labelled, then the
labelled episode's videos decoded again and streamed into the writer `edit.BLOCK_FRAMES` frames at a time). The
checkpoint is the tiny random one with `infer_actions` replaced by a stand-in whose rows are each transition's mean
pixels (as the label tests replace it): what is measured is the labeller's reading and writing,
not a model's activations. Each run is a fresh process; peak RSS is the kernel's high-water mark above the RSS
before labelling, reset just before it (Linux). Both runs' datasets are compared file by file, every file: each is
published as `labelled` (in a folder of its run's name), since the dataset card (README.md) is titled by the folder
it is published as.

    python benchmarks/bench_label_memory.py [--frames 600] [--size 240x320] [--cameras 3] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import filecmp
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from _args import at_least, exit_if_failed, frame_size, parser_for

CHUNK = 4  # the tiny checkpoint's chunk as the label tests load it: a segment is 4 * batch_size * 4 transitions


def _status(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024  # MiB
    raise KeyError(key)


def _label_whole(ds, policy, writer, out, previous, chosen, frames_of, cameras, state_keys, action_key, seed,
                 batch_size, columns, progress):
    """`label._label` before session 31 (one camera-only embodiment, no state): each episode's videos decoded whole
    (`ds.episode`), labelled in segments sliced out of them, and added whole (with the episode's own columns, as
    `label._label` adds them, so the two datasets compare file by file)."""
    from worldpolicy.data import label
    from worldpolicy.data.lerobot import episode_row
    from worldpolicy.data.sampling import caption_variants

    try:
        for i in chosen:
            rows, ep = frames_of[i], ds.episode(i)
            every = rows == list(range(ep.length))
            videos = ep.videos if every else {k: v[rows] for k, v in ep.videos.items()}
            frames = ep.frames if every else {k: v[rows] for k, v in ep.frames.items()}
            step = label.SEGMENT_BATCHES * batch_size * policy.chunk_size
            labels = np.concatenate([
                policy.infer_actions({c: videos[k][s:s + step + 1] for c, k in cameras.items()},
                                     caption_variants(ep.task)[0], whole_clip=True, batch_size=batch_size,
                                     seed=label.episode_seed(seed, i)).actions
                for s in range(0, len(rows) - 1, step)])
            frames = {**frames, action_key: np.concatenate([labels, labels[-1:]]).astype(np.float32)}
            writer.add_episode(frames, videos, [ep.frame_tasks[r] for r in rows], success=ep.success,
                               fields=episode_row(columns, i))
    except BaseException:
        writer.abort()
        raise
    return label.publish(writer, out)


def _measure(dataset: str, checkpoint: str, out: str, variant: str, batch_size: int) -> None:
    """Child process: load the stand-in policy, then one label run, its peak RSS above the RSS before it, its time."""
    import worldpolicy
    from worldpolicy.data import LeRobotDataset, label, label_dataset

    policy = worldpolicy.load_policy(checkpoint, embodiment="pusht", chunk_size=CHUNK, resolution_tier=256, steps=1)

    def infer(video, prompt, **kwargs):
        means = next(iter(video.values())).reshape(len(next(iter(video.values()))), -1).mean(axis=1)
        return SimpleNamespace(actions=np.stack([means[:-1], means[1:]], axis=1))

    policy.infer_actions = infer
    if variant == "whole":
        label._label = _label_whole
    ds = LeRobotDataset.open(dataset)
    ds.camera_frames(0, ds.video_keys[0], 0, 1)  # imports and first-call set-up outside the measurement
    Path("/proc/self/clear_refs").write_text("5")
    before = _status("VmRSS")
    tick = time.perf_counter()
    label_dataset(ds, out, policy, batch_size=batch_size)
    seconds = time.perf_counter() - tick
    print(json.dumps({"peak_rss_mib": round(_status("VmHWM") - before), "seconds": round(seconds, 2)}))


def _source(root: Path, frames: int, height: int, width: int, cameras: int) -> None:
    """One episode of moving gradients (every frame differs; cheap to encode), `cameras` videos, streamed in."""
    from worldpolicy.data import LeRobotDatasetWriter

    keys = ["observation.image"] + [f"observation.images.extra_{k}" for k in range(1, cameras)]
    features = {"observation.state": {"dtype": "float32", "shape": [2]},
                **{k: {"dtype": "video", "shape": [height, width, 3]} for k in keys}}
    yy, xx = np.mgrid[0:height, 0:width]
    with LeRobotDatasetWriter(root, 10, features) as writer:
        stream = writer.stream_videos(frames)
        for start in range(0, frames, 50):
            block = np.stack([np.stack([(xx + 3 * t) % 256, (yy + 2 * t) % 256, np.full_like(xx, t % 256)], axis=-1)
                              for t in range(start, min(start + 50, frames))]).astype(np.uint8)
            stream.append({k: (block + 40 * n).astype(np.uint8) for n, k in enumerate(keys)})
        writer.add_episode({"observation.state": np.zeros((frames, 2), np.float32)}, stream, "push the T")


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--frames", type=at_least(2), default=600, help="episode length (default 600)")
    parser.add_argument("--size", default="240x320", help="HxW of each video, each side even and >= 16 "
                                                          "(default 240x320)")
    parser.add_argument("--cameras", type=at_least(1), default=3,
                        help="videos in the episode: one labelled, the rest copied (default 3)")
    parser.add_argument("--batch-size", type=at_least(1), default=8,
                        help=f"windows per infer_actions batch (default 8): a segment is 4 * this * {CHUNK} frames")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _measure(*args.child[:4], int(args.child[4]))
        return
    height, width = frame_size(parser, args.size, "240x320", even=True)

    from worldpolicy.data import label
    from worldpolicy.testing import make_tiny_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        _source(Path(tmp) / "src", args.frames, height, width, args.cameras)
        checkpoint = make_tiny_checkpoint(Path(tmp) / "tiny")
        rows, published = {}, {}
        for variant in ("whole", "segments"):
            # the same name for both: the card is titled by it (`label.publish`), and nothing else may differ
            published[variant] = Path(tmp) / variant / "labelled"
            published[variant].parent.mkdir()
            child = [str(Path(tmp) / "src"), str(checkpoint), str(published[variant]), variant, str(args.batch_size)]
            ran = subprocess.run([sys.executable, __file__, "--child", *child], check=False, capture_output=True,
                                 text=True)
            if ran.returncode:  # the child's traceback, not a bare CalledProcessError
                sys.exit(f"the {variant!r} label run failed:\n{ran.stderr.strip()}")
            rows[variant] = json.loads(ran.stdout.strip().splitlines()[-1])
        compared = filecmp.dircmp(published["whole"], published["segments"])
        same = _same_tree(compared)
    episode_mib = args.frames * height * width * 3 * args.cameras / 2**20
    segment = label.SEGMENT_BATCHES * args.batch_size * CHUNK + 1
    print(f"1 episode of {args.frames} frames, {args.cameras} cameras at {height}x{width} ({episode_mib:.0f} MiB of "
          f"uint8 frames); segments of {min(segment, args.frames)} frames")
    for variant, row in rows.items():
        print(f"{variant:>8}: peak RSS +{row['peak_rss_mib']:5d} MiB, {row['seconds']:6.2f} s")
    whole, segments = rows["whole"]["peak_rss_mib"], rows["segments"]["peak_rss_mib"]
    print(f"peak RSS whole / segments: {whole / max(segments, 1):.2f}x; datasets identical file by file: {same}")
    exit_if_failed({"the whole and segment labellers' datasets are identical file by file": same})


def _same_tree(compared: filecmp.dircmp) -> bool:
    """Whether two folders hold the same files with the same bytes (`dircmp` alone compares sizes and times)."""
    if compared.left_only or compared.right_only or compared.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(compared.left, compared.right, compared.common_files, shallow=False)
    return not mismatch and not errors and all(_same_tree(sub) for sub in compared.subdirs.values())


if __name__ == "__main__":
    main()
