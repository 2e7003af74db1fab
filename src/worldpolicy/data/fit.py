"""Whether a dataset fits an embodiment as training reads it (`embodiment_fit`): its frame rate (`check_training_rate`,
the refusal `train` makes before its weights load), its actions in the embodiment's columns and order
(`actions.training_actions`: keys, widths, order, conversion, and the state row a state-conditioned one reads), their
units where the dataset records them (`card.recorded_units`), and a video for each camera the embodiment composes
(`observations.camera_sources`). `dataset check --embodiment` says every problem at once, each naming the column or
camera and the training config's `[data]` setting (or the embodiment's field) that fixes it; `train` refuses with the
same rules, the first it meets, the units aside (training reads numbers, never their units: only this check says them).

    from worldpolicy.data.fit import embodiment_fit
    fit = embodiment_fit(ds, get_embodiment("droid"))
    fit.problems     # [] when it fits, else one line per problem
    fit.columns      # {"joint_0": "joint_0", ...}: the dataset's action column read as each embodiment column
    fit.cameras      # {"observation/exterior_image_1_left": "observation.images.exterior_1_left", ...}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..embodiments import MODEL_SPACE_UNIT, UNITLESS, Embodiment
from .actions import DEFAULT_ROBOT, RecordedActions, training_actions
from .observations import camera_sources


def check_training_rate(dataset, target: Embodiment, name: str, prefix: str = "data.") -> None:
    """`dataset` (`data.dataset` = `name`; `prefix`: a mixture table's, `data.mixture[i].`) is recorded at `target`'s
    fps: its actions are not resampled, so a chunk trained at another rate is played back at the wrong speed. Refused
    naming both rates and the fix."""
    from .served import served_rate_reason

    if target.runs_at(dataset.fps):
        return
    served = served_rate_reason(dataset, target, "training")
    if served:
        raise ValueError(f"{prefix}dataset {name!r} {served}")
    raise ValueError(f"{prefix}dataset {name!r} is recorded at {dataset.fps:g} fps but embodiment {target.key!r} has "
                     f"fps={target.fps:g}: set the embodiment's fps to {dataset.fps:g} (the rate the robot was "
                     f"controlled at), or train on data recorded at {target.fps:g} fps (sim data: `dataset "
                     f"from-sim --control-hz {target.fps:g}`); recorded actions are not resampled (`dataset label "
                     "--resample` labels a dataset's frames at the embodiment's fps with an inverse-dynamics "
                     "checkpoint's actions in their place)")


@dataclass(frozen=True)
class EmbodimentFit:
    """What `embodiment_fit` found: the `problems` (one line each; none: training reads the dataset as `target`), and
    where each part of the dataset goes: the action features read (`actions`, None where they do not map), each
    embodiment column's dataset column (`columns`, where read as they are), and each camera's video (`cameras`)."""

    embodiment: str
    fps: float
    problems: list[str]
    actions: RecordedActions | None = None
    columns: dict[str, str] = field(default_factory=dict)  # embodiment column -> the dataset column read as it
    units: dict[str, str] = field(default_factory=dict)  # embodiment column -> its unit
    cameras: dict[str, str] = field(default_factory=dict)  # embodiment camera (wire key) -> the dataset video

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """What fits where, for a person: the actions, the state row and the cameras."""
        out = []
        if self.actions is not None:
            read = self.actions
            how = ("as they are" if read.conversion == "none"
                   else f"as {read.source!r}'s, converted ({read.conversion})")
            out.append(f"actions: {read.action_keys} -> {self.embodiment!r}'s columns {how}")
            out += [f"  {source!r} -> {column} ({self.units[column]})" for column, source in self.columns.items()]
            if read.reads_state:
                out.append(f"state: {read.state_keys}")
        out += [f"camera {camera}: {video!r}" for camera, video in self.cameras.items()]
        return out

    def to_json(self) -> dict[str, Any]:
        read = self.actions
        return {"embodiment": self.embodiment, "fps": self.fps, "ok": self.ok, "problems": list(self.problems),
                "actions": None if read is None else {**read.settings(),
                                                      "state_keys": read.state_keys if read.reads_state else None},
                "columns": dict(self.columns), "units": dict(self.units), "cameras": dict(self.cameras)}


def embodiment_fit(dataset, target: Embodiment, action_keys: Sequence[str] | None = None,
                   state_keys: Sequence[str] | None = None, video_keys: Sequence[str] | None = None, *,
                   source: str | None = None, conversion: str | None = None, robot: str = DEFAULT_ROBOT,
                   name: str | None = None, prefix: str = "data.") -> EmbodimentFit:
    """Whether `dataset` (`data.dataset` = `name`, default its folder) trains `target` as a training config with these
    `[data]` settings would read it (None: as one that leaves them unset): every problem its rate, actions and cameras
    have, as `train` would refuse each, naming the settings after `prefix` (a mixture table's: `data.mixture[i].`).
    Reads the metadata only (nothing decoded: `dataset check` reads the files)."""
    problems: list[str] = []
    try:
        check_training_rate(dataset, target, str(dataset.root) if name is None else name, prefix)
    except ValueError as exc:
        problems.append(str(exc))
    actions = None
    columns: dict[str, str] = {}
    try:
        actions = training_actions(dataset, target, action_keys, state_keys, source=source, conversion=conversion,
                                   robot=robot, prefix=prefix)
    except ValueError as exc:
        problems.append(str(exc))
    if actions is not None and actions.conversion == "none":
        names = dataset.feature_names(actions.action_keys)
        columns = dict(zip(target.columns, names))
        problems += _unit_problems(dataset, target, actions.action_keys, names, prefix)
    cameras: dict[str, str] = {}
    try:
        cameras = camera_sources(dataset.video_keys, video_keys, target, prefix)
    except ValueError as exc:
        problems.append(str(exc))
    return EmbodimentFit(target.key, float(dataset.fps), problems, actions, columns, dict(zip(target.columns,
                                                                                            target.units)), cameras)


def _unit_problems(dataset, target: Embodiment, action_keys: Sequence[str], names: Sequence[str],
                   prefix: str) -> list[str]:
    """Where the dataset records its action columns' units (`card.recorded_units`: a labelled dataset's, a known
    embodiment's it names), each one read as a column of another unit: read as they are, the numbers would train
    that column in the wrong unit. A column without a physical unit (`UNITLESS`, model space) is not judged."""
    from .card import recorded_units

    known = recorded_units(dataset)
    if not all(k in known for k in action_keys):
        return []
    recorded = [u for k in action_keys for u in known[k]]
    return [f"{prefix}action_keys: column {name!r} is recorded in {unit!r} but read as embodiment {target.key!r}'s "
            f"{column!r}, in {want!r}: write the dataset's actions in {want!r}, or give the embodiment's column "
            f"the dataset's unit"
            for name, unit, column, want in zip(names, recorded, target.columns, target.units)
            if unit != want and not {unit, want} & {UNITLESS, MODEL_SPACE_UNIT}]
