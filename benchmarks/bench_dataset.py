"""How reading a dataset's metadata and parquet data grows with its episodes: DROID-shaped LeRobot v3 datasets (three
cameras, 7+1 joint and gripper columns of actions and state, LeRobot's per-episode stats in meta/episodes) written
with pyarrow directly at each size, their videos left out (a user who has not downloaded them yet; nothing here
decodes). Each size is measured in a fresh process, for its peak RSS: opening the dataset (`LeRobotDataset.open`),
`dataset info`'s summary, every episode read without videos (what `dataset check` does besides decoding, and
training's finiteness check before it encodes: `train.data.check_finite`), `check_files` (`dataset check`'s
search for unlisted files), and `train.data.window_order` (the (episode, start) of every training window, chunk 16:
what a resumed latent-cache build checks its kept windows against; its time and the memory it allocates, traced, after
the peak RSS is taken, as is `worldpolicy.train`'s import). Per-episode costs side by side: a ratio near 1 between
sizes is linear growth; one that grows with the size is work that grows faster than the episodes.

    python benchmarks/bench_dataset.py [--sizes 1000,10000] [--frames 60] [--per-file 1000]
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from _args import at_least, exit_if_failed, parser_for

CAMERAS = ("observation.images.exterior_image_1_left", "observation.images.exterior_image_2_left",
           "observation.images.wrist_image_left")
COLUMNS = {"observation.state.joint_positions": 7, "observation.state.gripper_position": 1,
           "action.joint_position": 7, "action.gripper_position": 1}
AUTO = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64",
        "task_index": "int64"}
STATS = ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99")
FPS = 15
STEPS = ("open", "summary", "every episode", "check_files", "window_order")
CHUNK = 16  # window_order's chunk size


def write_dataset(root: Path, episodes: int, frames: int, per_file: int) -> None:
    """A LeRobot v3 dataset as LeRobot lays one out, `per_file` episodes to a data and a meta/episodes file, one task
    per three episodes; action column 0 of episode e, frame t is e + t / 1000 (what `measure` checks)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = {key: {"dtype": "float32", "shape": [width], "names": None} for key, width in COLUMNS.items()}
    features.update({key: {"dtype": "video", "shape": [180, 320, 3], "names": ["height", "width", "channels"],
                           "info": {"video.fps": FPS, "video.height": 180, "video.width": 320, "video.channels": 3,
                                    "video.codec": "h264", "video.pix_fmt": "yuv420p", "video.is_depth_map": False,
                                    "has_audio": False}} for key in CAMERAS})
    features.update({key: {"dtype": dtype, "shape": [1], "names": None} for key, dtype in AUTO.items()})
    tasks = (episodes + 2) // 3
    info = {"codebase_version": "v3.0", "robot_type": "franka", "total_episodes": episodes,
            "total_frames": episodes * frames, "total_tasks": tasks, "chunks_size": 1000, "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200, "fps": FPS, "splits": {"train": f"0:{episodes}"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4", "features": features}
    (root / "meta").mkdir(parents=True)
    (root / "meta/info.json").write_text(json.dumps(info, indent=1))
    pq.write_table(pa.table({"task_index": np.arange(tasks), "task": [f"task {i}" for i in range(tasks)]}),
                   root / "meta/tasks.parquet")
    rng = np.random.default_rng(0)
    t = np.arange(frames)

    def lists(values: np.ndarray | pa.Array, width: int) -> pa.Array:
        """`values` (flat) as lists of `width`."""
        values = values if isinstance(values, pa.Array) else pa.array(values)
        return pa.ListArray.from_arrays(np.arange(0, len(values) + 1, width), values)

    for first in range(0, episodes, per_file):
        eps = np.arange(first, min(episodes, first + per_file))
        n, at = len(eps), {"chunk_index": first // per_file // 1000, "file_index": first // per_file % 1000}
        rows = np.repeat(eps, frames)
        data = {key: rng.normal(size=(n * frames, width)).astype(np.float32) for key, width in COLUMNS.items()}
        data["action.joint_position"][:, 0] = rows + np.tile(t, n) / 1000
        table = pa.table({**{key: pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1])
                             for key, v in data.items()},
                          "timestamp": pa.array((np.tile(t, n) / FPS).astype(np.float32)),
                          "frame_index": pa.array(np.tile(t, n)), "episode_index": pa.array(rows),
                          "index": pa.array(rows * frames + np.tile(t, n)), "task_index": pa.array(rows // 3)})
        path = root / info["data_path"].format(**at)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        meta = {"episode_index": eps, "tasks": pa.array([[f"task {e // 3}"] for e in eps]),
                "length": np.full(n, frames), **{f"data/{k}": np.full(n, v) for k, v in at.items()},
                "dataset_from_index": eps * frames, "dataset_to_index": (eps + 1) * frames}
        for key in CAMERAS:
            meta.update({f"videos/{key}/{k}": np.full(n, v) for k, v in at.items()})
            meta[f"videos/{key}/from_timestamp"] = (eps - first) * frames / FPS
            meta[f"videos/{key}/to_timestamp"] = (eps - first + 1) * frames / FPS
        meta.update({f"meta/episodes/{k}": np.full(n, v) for k, v in at.items()})
        for key in (*COLUMNS, *AUTO, *CAMERAS):  # LeRobot's per-episode stats: most of these files' bytes
            for name in STATS:
                if name == "count":
                    meta[f"stats/{key}/{name}"] = lists(np.full(n, frames), 1)
                elif key in CAMERAS:  # [3][1][1] per episode
                    meta[f"stats/{key}/{name}"] = lists(lists(lists(rng.random(3 * n), 1), 1), 3)
                else:
                    width = COLUMNS.get(key, 1)
                    meta[f"stats/{key}/{name}"] = lists(rng.normal(size=n * width), width)
        path = root / f"meta/episodes/chunk-{at['chunk_index']:03d}/file-{at['file_index']:03d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(meta), path)


def measure(root: Path) -> dict:
    """Each step's seconds, the peak RSS before `window_order`, the memory it allocates (traced) and whether the frames
    read were the ones written (this process's work)."""
    # imported on first use (by `check_files`; by pyarrow's first parquet read): their import time is no episode's
    import av  # noqa: F401
    import pyarrow.dataset  # noqa: F401

    from worldpolicy.data import LeRobotDataset, first_non_finite

    seconds = {}
    tick = time.perf_counter()
    ds = LeRobotDataset.open(root)
    seconds["open"] = time.perf_counter() - tick
    tick = time.perf_counter()
    ds.summary()
    seconds["summary"] = time.perf_counter() - tick
    tick = time.perf_counter()
    same = True
    for i in range(ds.num_episodes):
        ep = ds.episode(i, videos=False)
        same &= first_non_finite(ep.frames) is None and abs(float(ep.frames["action.joint_position"][-1, 0]) - i -
                                                             (ep.length - 1) / 1000) < 1e-2
    seconds["every episode"] = time.perf_counter() - tick
    tick = time.perf_counter()
    ds.check_files()
    seconds["check_files"] = time.perf_counter() - tick
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    from worldpolicy.train.data import WindowSpec, window_order  # torch's import: after the peak RSS is taken

    spec = WindowSpec(dataset=str(root), chunk_size=CHUNK)
    tick = time.perf_counter()
    windows = len(window_order(spec, ds))
    seconds["window_order"] = time.perf_counter() - tick
    tracemalloc.start()  # a second call, traced: tracing slows the allocations it counts
    window_order(spec, ds)
    window_mb = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    same &= windows == ds.num_frames - ds.num_episodes  # pad: every frame but the last starts a window
    return {"episodes": ds.num_episodes, "seconds": seconds, "peak_mb": peak_mb, "window_mb": window_mb,
            "windows": windows, "same": bool(same)}


def main() -> None:
    if sys.argv[1:2] == ["--measure"]:  # a child: one dataset, its figures as JSON
        print(json.dumps(measure(Path(sys.argv[2]))))
        return
    parser = parser_for(__doc__)
    parser.add_argument("--sizes", default="1000,10000", help="episode counts, comma-separated (default 1000,10000)")
    parser.add_argument("--frames", type=at_least(2), default=60, help="frames per episode (default 60)")
    parser.add_argument("--per-file", type=at_least(1), default=1000,
                        help="episodes per data and meta/episodes file (default 1000)")
    args = parser.parse_args()
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        sizes = []
    if len(sizes) < 2 or min(sizes) < 1:
        parser.error(f"--sizes={args.sizes!r}: expected two or more episode counts >= 1, e.g. 1000,10000")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            root = Path(tmp) / f"d{n}"
            tick = time.perf_counter()
            write_dataset(root, n, args.frames, args.per_file)
            written = time.perf_counter() - tick
            child = subprocess.run([sys.executable, __file__, "--measure", str(root)], capture_output=True, text=True,
                                   check=False)
            if child.returncode:
                sys.exit(f"measuring {n} episodes failed:\n{child.stderr[-3000:]}")
            results.append(json.loads(child.stdout.splitlines()[-1]))
            print(f"{n} episodes of {args.frames} frames, {args.per_file} a file (written in {written:.1f} s), "
                  f"peak RSS {results[-1]['peak_mb']:.0f} MB; window_order: {results[-1]['windows']} windows, "
                  f"{results[-1]['window_mb']:.0f} MB allocated at its peak:")
            for step in STEPS:
                took = results[-1]["seconds"][step]
                print(f"  {step:>13}: {took:8.3f} s  {took / n * 1e6:8.1f} us per episode")
    small, large = results[0], results[-1]
    for step in STEPS:
        ratio = (large["seconds"][step] / large["episodes"]) / (small["seconds"][step] / small["episodes"])
        print(f"{step} per episode, {large['episodes']} / {small['episodes']} episodes: {ratio:.2f}x")
    exit_if_failed({"every episode's actions read as written, every window ordered": all(r["same"] for r in results)})


if __name__ == "__main__":
    main()
