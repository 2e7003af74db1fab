"""Datasets: LeRobotDataset v3.0 read/write, statistics, and Cosmos3 training examples.

    from worldpolicy.data import LeRobotDataset, extract_frame, sample_training_examples
    ds = LeRobotDataset.open("my_dataset")
    for ex in sample_training_examples(ds, "bridge", mode="policy"):
        ex.frames, ex.actions, ex.task          # uint8 [chunk+1, H, W, 3], float32 [chunk, dim], str
    extract_frame(ds, "obs", episode=0, frame=10, checkpoint="shipped").command_lines   # predict's inputs
    label_dataset(ds, "labelled", "runs/x/final")   # a new dataset with every frame transition labelled
    select_episodes(ds, "solved", success="only")    # a new dataset of some episodes; merge_datasets: several in one
    split_dataset(ds, "splits", {"train": 0.9, "val": 0.1})   # disjoint new datasets splits/train, splits/val
    import_hdf5("libero_demo.hdf5", "data/libero")   # robomimic-format HDF5 demos (robomimic, LIBERO) as a dataset
    videos_to_dataset(["clips/"], "data/raw", task="wave", fps=15)   # raw video clips as a dataset to label
    convert_dataset("old_v21", "data/v30")            # a LeRobot v2.1 / v2.0 dataset as v3.0, videos copied as they are
    evaluate_open_loop(ds, "runs/x/final", "runs/x/openloop").mae   # predicted vs recorded actions, per column

Reading and writing need pyarrow, import_hdf5 also h5py (both: `pip install 'worldpolicy[train]'`); each is imported on
first use.
"""

from __future__ import annotations

from typing import Any

from .layout import DatasetFormatError
from .stats import QUANTILES, NonFinite, aggregate_stats, compute_stats, first_non_finite

__all__ = [
    "QUANTILES",
    "DatasetFormatError",
    "DatasetFrame",
    "EditResult",
    "Episode",
    "FromVideosResult",
    "ImportResult",
    "LeRobotDataset",
    "LeRobotDatasetWriter",
    "NonFinite",
    "OpenLoopResult",
    "TrainingExample",
    "aggregate_stats",
    "compute_stats",
    "convert_dataset",
    "evaluate_open_loop",
    "extract_frame",
    "first_non_finite",
    "import_hdf5",
    "label_dataset",
    "merge_datasets",
    "sample_training_examples",
    "select_episodes",
    "split_dataset",
    "videos_to_dataset",
    "window_starts",
    "write_episodes",
]

_LAZY = {
    "DatasetFrame": "frame",
    "extract_frame": "frame",
    "label_dataset": "label",
    "EditResult": "edit",
    "merge_datasets": "edit",
    "select_episodes": "edit",
    "split_dataset": "edit",
    "convert_dataset": "convert",
    "ImportResult": "from_hdf5",
    "import_hdf5": "from_hdf5",
    "FromVideosResult": "from_videos",
    "videos_to_dataset": "from_videos",
    "evaluate_open_loop": "openloop",
    "OpenLoopResult": "openloop",
    "Episode": "lerobot",
    "LeRobotDataset": "lerobot",
    "LeRobotDatasetWriter": "lerobot",
    "write_episodes": "lerobot",
    "TrainingExample": "sampling",
    "sample_training_examples": "sampling",
    "window_starts": "sampling",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'worldpolicy.data' has no attribute {name!r}")
