"""Builders for small synthetic episodes used by the dataset tests."""

from __future__ import annotations

import numpy as np


def frame_ramp(length: int, height: int = 16, width: int = 16, offset: int = 0) -> np.ndarray:
    """Frames whose every pixel encodes the frame index (value 5·(t + offset)), so windows can be checked exactly."""
    values = (5 * (np.arange(length) + offset)) % 256
    return np.broadcast_to(values[:, None, None, None], (length, height, width, 3)).astype(np.uint8).copy()


def make_episode(length: int, seed: int, offset: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    return {
        "frames": {
            # column 0 is the frame index, so windows are easy to check
            "action": np.stack([t + offset, -t, rng.normal(size=length)], axis=1).astype(np.float32),
            "observation.state": rng.normal(size=(length, 3)),
            "next.done": t == length - 1,
            "next.reward": rng.integers(0, 5, size=length).astype(np.int64),
        },
        "videos": {"observation.images.front": frame_ramp(length, offset=offset)},
    }


V2_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V2_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"


def write_v2_dataset(root, episodes: list[dict], fps: int = 10, version: str = "v2.1", chunks_size: int = 1000,
                     codec: str = "libx264", robot_type: str = "testbot") -> None:
    """A LeRobot v2.x dataset at `root`, laid out as LeRobot 0.3 writes one: one parquet and, per camera, one mp4 per
    episode (under chunk-{episode_index // chunks_size}), meta/info.json, episodes.jsonl, tasks.jsonl and the stats
    (v2.1: episodes_stats.jsonl, v2.0: stats.json). Each episode is a dict of "frames" (1-D features [T, d]),
    "videos" (uint8 [T, H, W, 3]), "tasks" (the task of every frame) and perhaps "fields" (more episodes.jsonl keys)."""
    import json
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    from worldpolicy.processing.video import CODECS, VideoFileWriter

    root = Path(root)
    tasks = list(dict.fromkeys(t for ep in episodes for t in ep["tasks"]))
    first = episodes[0]
    features = {key: {"dtype": str(v.dtype), "shape": [v.shape[1]], "names": None}
                for key, v in first["frames"].items()}
    for key, v in first["videos"].items():
        features[key] = {"dtype": "video", "shape": list(v.shape[1:]), "names": ["height", "width", "channels"],
                         "info": {"video.fps": float(fps), "video.height": v.shape[1], "video.width": v.shape[2],
                                  "video.channels": 3, "video.codec": CODECS[codec].name,
                                  "video.pix_fmt": CODECS[codec].pix_fmt, "video.is_depth_map": False,
                                  "has_audio": False}}
    for key, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                       ("index", "int64"), ("task_index", "int64")):
        features[key] = {"dtype": dtype, "shape": [1], "names": None}
    total = sum(len(ep["tasks"]) for ep in episodes)
    info = {"codebase_version": version, "robot_type": robot_type, "total_episodes": len(episodes),
            "total_frames": total, "total_tasks": len(tasks), "total_videos": len(episodes) * len(first["videos"]),
            "total_chunks": (len(episodes) - 1) // chunks_size + 1, "chunks_size": chunks_size, "fps": fps,
            "splits": {"train": f"0:{len(episodes)}"}, "data_path": V2_DATA_PATH,
            "video_path": V2_VIDEO_PATH if first["videos"] else None, "features": features}
    (root / "meta").mkdir(parents=True)
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    (root / "meta/tasks.jsonl").write_text("".join(json.dumps({"task_index": i, "task": t}) + "\n"
                                                   for i, t in enumerate(tasks)))
    lines, stats_lines, start = [], [], 0
    for e, ep in enumerate(episodes):
        n, chunk = len(ep["tasks"]), e // chunks_size
        t = np.arange(n)
        columns = {key: pa.array(list(v), type=pa.list_(pa.from_numpy_dtype(v.dtype)))
                   for key, v in ep["frames"].items()}
        columns |= {"timestamp": pa.array((t / fps).astype(np.float32)), "frame_index": pa.array(t),
                    "episode_index": pa.array(np.full(n, e)), "index": pa.array(start + t),
                    "task_index": pa.array([tasks.index(x) for x in ep["tasks"]], type=pa.int64())}
        path = root / V2_DATA_PATH.format(episode_chunk=chunk, episode_index=e)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(columns), path)
        for key, frames in ep["videos"].items():
            writer = VideoFileWriter(root / V2_VIDEO_PATH.format(episode_chunk=chunk, video_key=key, episode_index=e),
                                     fps, frames.shape[1], frames.shape[2], codec)
            writer.append(frames, keyframe=True)
            writer.close()
        lines.append({"episode_index": e, "tasks": list(dict.fromkeys(ep["tasks"])), "length": n,
                      **ep.get("fields", {})})
        stats_lines.append({"episode_index": e, "stats": {key: {"min": v.min(0).tolist(), "max": v.max(0).tolist(),
                                                               "mean": v.mean(0).tolist(), "std": v.std(0).tolist(),
                                                               "count": [n]} for key, v in ep["frames"].items()}})
        start += n
    (root / "meta/episodes.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    if version == "v2.0":
        (root / "meta/stats.json").write_text(json.dumps(stats_lines[0]["stats"]))  # any stats: not read
    else:
        (root / "meta/episodes_stats.jsonl").write_text("".join(json.dumps(s) + "\n" for s in stats_lines))


def write_sim_joint_recording(root) -> list[str]:
    """A 3-frame recording with `dataset from-sim`'s provenance and its joint layout split over two features (7 joints,
    the gripper) beside a feature of no names; returns the joint names."""
    from worldpolicy.data import LeRobotDatasetWriter
    from worldpolicy.data.from_sim import SOURCE

    joints = [f"joint_{i}" for i in range(7)]
    features = {"action.joint_position": {"dtype": "float32", "shape": [7], "names": joints},
                "action.gripper_position": {"dtype": "float32", "shape": [1], "names": ["gripper"]},
                "next.reward": {"dtype": "float32", "shape": [1], "names": None}}
    with LeRobotDatasetWriter(root, 15, features, "panda", provenance={"source": SOURCE}) as writer:
        writer.add_episode({"action.joint_position": np.zeros((3, 7)), "action.gripper_position": np.zeros(3),
                            "next.reward": np.zeros(3)}, task="reach")
    return joints
