"""How a dataset's videos and state features read as an embodiment's observation: which video feeds each camera it
composes (`camera_sources`) and which features make its state row when none are named (`default_state_keys`, among
the `numeric_features`).

Training's windows (`train.data`, and `data.sampling` for a state left unnamed), `dataset label` (`data.label`) and
`dataset frame`'s predict command (`data.frame`) all read a dataset's observation through these, so a dataset that
trains is labelled and shown to predict with the same cameras and state. The settings a `camera_sources` error
names are training's (`video_keys`, `dataset`) after `prefix` (`data.`: a training config's `[data]`); a caller
without those settings catches `CameraMismatch` and says what fixes it in its own terms.

    from worldpolicy.data.observations import camera_sources, default_state_keys
    camera_sources(ds.video_keys, None, target)  # {"observation/wrist_image_left": "observation.image.wrist_...", ...}
    default_state_keys(ds)                       # ["observation.state"], else its parts ["observation.state.x", ...]
    named_state_keys(ds, ["observation.state.x"])  # checked numeric features; None: default_state_keys(ds)
    check_state_width(ds, keys, target)          # they hold the state row a state-conditioned target takes
"""

from __future__ import annotations

from collections.abc import Sequence

from ..embodiments import Embodiment
from ..errors import typo_note
from ..processing.observations import wire_key

STATE_FEATURE = "observation.state"  # LeRobot's state feature; a `dataset from-sim` recording splits it in parts
IMAGE_PREFIX = "observation.images."  # LeRobot's camera features: IMAGE_PREFIX + the camera's name
PRECOMPOSED = "observation/image"  # the camera a pre-composed view is, by name (`processing.observations.frame_keys`)


class CameraMismatch(ValueError):
    """`candidates` give no one video per camera of `target`: `twins` (camera -> the videos that feed it by name) when
    several feed one camera, else (empty) none fits. The message names training's settings (`camera_sources`)."""

    def __init__(self, message: str, target: Embodiment, candidates: list[str], twins: dict[str, list[str]]):
        super().__init__(message)
        self.target, self.candidates, self.twins = target, candidates, twins

    @property
    def named(self) -> str:
        """Which camera each candidate is by name: what a new embodiment's camera_keys could say."""
        return _named(self.candidates)


def _named(videos: Sequence[str]) -> str:
    return ", ".join(f"{k!r} -> {wire_key(k)!r}" for k in videos)


def camera_sources(videos: Sequence[str], video_keys: Sequence[str] | None, target: Embodiment,
                   prefix: str = "") -> dict[str, str]:
    """Which dataset video feeds each camera `target` composes (its wire key -> the video key): by name
    (`observation.image.wrist_image_left` is `observation/wrist_image_left`), else a pre-composed `observation.image`;
    an embodiment of one camera also takes the only video there is. Among `video_keys` when given (an unknown one is
    refused), else among all `videos`. Several videos feeding one camera, or none fitting, is a `CameraMismatch`
    naming the cameras needed and the videos there are."""
    videos = list(videos)
    given = list(video_keys) if video_keys else None
    if given is not None and (unknown := [k for k in given if k not in videos]):
        raise ValueError(f"{prefix}video_keys={given}: {unknown} are not video features of {prefix}dataset; it has "
                         f"{videos}{typo_note(unknown, videos)}")
    candidates = given or videos
    where = (f"{prefix}video_keys={given} ({prefix}dataset has {videos})" if given
             else f"{prefix}dataset's videos {candidates}")
    by_name: dict[str, list[str]] = {}
    for key in candidates:
        by_name.setdefault(wire_key(key), []).append(key)
    wanted = [c for c in target.camera_keys if c in by_name]
    if target.composite is None:
        wanted = wanted[:1]  # the first camera found, as inference (`frames_from_mapping`) takes it
    else:
        wanted = wanted if len(wanted) == len(target.camera_keys) else []
    if not wanted and PRECOMPOSED in by_name:
        wanted = [PRECOMPOSED]  # one pre-composed view
    twins = {c: by_name[c] for c in wanted if len(by_name[c]) > 1}
    if twins:
        raise CameraMismatch(f"{where}: {twins} feed the same camera of embodiment {target.key!r}; name the ones to "
                             f"train on in {prefix}video_keys", target, candidates, twins)
    if wanted:
        return {c: by_name[c][0] for c in wanted}
    if target.composite is None and len(candidates) == 1:
        return {target.camera_keys[0]: candidates[0]}
    cameras = ", ".join(f"{c} (a video key ending in .{c.rsplit('/', 1)[-1]})" for c in target.camera_keys)
    if target.composite is None:
        need = f"one of its cameras {cameras}, or one video to use as its camera"
    else:
        need = f"its cameras {cameras}, composed {target.composite!r}, or one pre-composed observation.image"
    if not candidates:  # "by name, those videos are the cameras  (...)" said nothing
        raise CameraMismatch(f"{where}: embodiment {target.key!r} needs {need}, and the dataset has no video or "
                             "image features: record its cameras", target, candidates, {})
    raise CameraMismatch(f"{where}: embodiment {target.key!r} needs {need}; by name, those videos are the cameras "
                         f"{_named(candidates)} (a new embodiment's camera_keys may name these)"
                         + ("" if given else f"; name the videos to train on in {prefix}video_keys"),
                         target, candidates, {})


def default_state_keys(dataset) -> list[str]:
    """The state features read when none are named: LeRobot's `observation.state`, else its parts
    (`observation.state.*`, as `dataset from-sim` splits it) in the dataset's order; [] when it has neither. Only
    numeric features count: a string one is no state."""
    numeric = numeric_features(dataset)
    if STATE_FEATURE in numeric:
        return [STATE_FEATURE]
    return [k for k in numeric if k.startswith(STATE_FEATURE + ".")]


def named_state_keys(dataset, state_keys: str | Sequence[str] | None,
                     error: type[Exception] = ValueError) -> list[str]:
    """`state_keys` as given (a name or several, each a numeric feature), else `default_state_keys`. None of them, or
    one that is no numeric feature, is refused as `error` (`dataset frame` says an unknown name as a KeyError, as it
    says an unknown camera), naming them and the features there are; their width is the caller's to judge against
    its embodiment."""
    if state_keys is None:
        return default_state_keys(dataset)
    keys = [state_keys] if isinstance(state_keys, str) else list(state_keys)
    numeric = numeric_features(dataset)
    unknown = [k for k in keys if k not in numeric]
    if not keys or unknown:
        raise error(f"state_keys={keys!r}: " + (f"{', '.join(unknown)} not among" if unknown else "none of")
                    + f" the dataset's numeric features: {', '.join(numeric)}{dataset.unknown_note(unknown, numeric)}")
    return keys


def check_state_width(dataset, keys: Sequence[str], target: Embodiment) -> None:
    """`keys` (from `named_state_keys`) hold the state row `target` conditions on, by their widths in info.json
    (nothing decoded): none of them, or another width, is refused naming the features there are."""
    if not keys:
        raise ValueError(f"state_keys: embodiment {target.key!r} conditions on the robot state ({target.action_dim} "
                         f"values: {', '.join(target.columns)}) and the dataset has no {STATE_FEATURE!r} features; "
                         f"name the ones that hold it (numeric features: {', '.join(numeric_features(dataset))})")
    width = sum(int(dataset.features[k]["shape"][0]) for k in keys)
    if width != target.action_dim:
        raise ValueError(f"state_keys={list(keys)} hold {width} values; embodiment {target.key!r} takes a state of "
                         f"{target.action_dim} ({', '.join(target.columns)}): name the features that hold it")


def numeric_features(dataset) -> list[str]:
    """The dataset's per-frame features a state row can be made of, in its order: all but strings (`feature_keys`
    holds no video or image)."""
    return [k for k in dataset.feature_keys if dataset.features[k]["dtype"] != "string"]
