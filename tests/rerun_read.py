"""A helper the test folders share (tests/ is on `sys.path` through its conftest.py): an .rrd read back with rerun's
own reader (`rerun.chunk.RrdReader`), entity by entity, for the tests of the Rerun recordings."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@dataclass
class Logged:
    """What an entity holds: its timed rows' `steps` and `times` (seconds) and its components' values by name
    (`Scalars:scalars`, `EncodedImage:blob`, ...), timed and static. `timelines`: the names its rows' step and time
    were read from (`step` and `time` of a run or a sim episode, `frame_index` and `timestamp` of a dataset's)."""

    steps: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    timed: dict[str, list[Any]] = field(default_factory=dict)
    static: dict[str, Any] = field(default_factory=dict)
    timelines: set[tuple[str, str]] = field(default_factory=set)


def read_rrd(path: str | Path) -> dict[str, Logged]:
    """Entity path -> `Logged`, from the file's recording (its rows in step order); rerun's own properties
    (`/__properties`) left out."""
    chunk = pytest.importorskip("rerun.chunk", reason="rerun-sdk is not installed (the rerun extra)")
    found: dict[str, Logged] = {}
    for part in chunk.RrdReader(str(path)).stream().to_chunks():
        if part.entity_path.startswith("/__"):
            continue
        logged = found.setdefault(part.entity_path, Logged())
        columns = part.to_record_batch().to_pydict()
        components = {k: v for k, v in columns.items() if ":" in k}
        if part.is_static:
            logged.static.update({k: v[-1] for k, v in components.items()})
            continue
        step, time = ("frame_index", "timestamp") if "frame_index" in columns else ("step", "time")
        logged.timelines.add((step, time))
        logged.steps += columns[step]
        # a duration (`time`) read back as a Timedelta, a timestamp (`timestamp`, seconds since the epoch) a Timestamp
        logged.times += [at.total_seconds() if hasattr(at, "total_seconds") else at.value / 1e9 for at in columns[time]]
        for k, v in components.items():
            logged.timed.setdefault(k, []).extend(v)
    for logged in found.values():  # the rows of every chunk in step order
        order = sorted(range(len(logged.steps)), key=logged.steps.__getitem__)
        logged.steps, logged.times = [logged.steps[r] for r in order], [logged.times[r] for r in order]
        logged.timed = {k: [v[r] for r in order] for k, v in logged.timed.items()}
    return found


def scalars(logged: Logged) -> list[float]:
    return [value[0] for value in logged.timed["Scalars:scalars"]]


def text(logged: Logged) -> str:
    return logged.static["TextDocument:text"][0]


def images(logged: Logged) -> list[np.ndarray]:
    """The entity's logged frames (JPEG, `viz.rerun.JPEG_QUALITY`) decoded, in step order."""
    from PIL import Image

    return [np.asarray(Image.open(io.BytesIO(bytes(blob[0])))) for blob in logged.timed["EncodedImage:blob"]]
