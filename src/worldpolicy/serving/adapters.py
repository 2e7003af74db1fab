"""Wire request dict → the inputs of `Policy.act / imagine / infer_actions` (validated before any heavy work).

Camera and state keys pass through under their openpi/RoboLab names (e.g. the three DROID cameras plus
`observation/joint_position` and `observation/gripper_position`): composing the cameras and flipping the gripper is
the engine's processing, not the transport's. A pre-composed `observation/image` is used alone when present.
A `key_map` says where to find a canonical key in a client's message, so clients with other names need no change.

Optional request keys (absent ⇒ plain openpi policy request): `mode` (policy | forward_dynamics | inverse_dynamics),
`actions` [chunk, action_dim] (forward dynamics; physical unless `actions_space` = normalized), `video` uint8
[T, H, W, 3] (inverse dynamics; its state row is `state`, else the state keys' first row), `state` [action_dim]
physical, `action_prefix` [d, action_dim] physical (policy mode: real-time chunking), and the sampling knobs `seed`,
`steps`, `guidance`,
`negative_prompt`, `decode_video`: the local `Policy` options, by the same names. See docs/serving.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..embodiments import Embodiment
from ..errors import is_integer, is_real
from ..policy import observation_state
from ..processing.actions import (
    ACTION_SPACES,
    FLOAT32_ACCEPTED,
    FLOAT32_MAX,
    PHYSICAL_FLOAT32_ACCEPTED,
    action_prefix_rows,
    beyond_float32,
)
from ..processing.observations import composite_places
from ..processing.prompts import check_length
from ..results import MODES

__all__ = [
    "IMAGE_KEY", "OPTION_KEYS", "ObservationAdapter", "RequestError", "WireRequest", "all_float32", "check_key_map",
    "warmup_camera_sizes", "warmup_message",
]

IMAGE_KEY = "observation/image"
PROMPT_KEY = "prompt"
STATE_KEY = "state"
MAX_IMAGE_SIDE = 4096
MAX_STEPS = 1000
# the request keys besides the embodiment's observation keys (the module's docstring), read whatever the embodiment
OPTION_KEYS = frozenset({"mode", "actions", "actions_space", "video", STATE_KEY, "action_prefix", "seed", "steps",
                         "guidance", "negative_prompt", "decode_video"})
# keys of the wire itself that need nothing from a policy: RoboLab's client sends `session_id` with every request (the
# Cosmos3 RoboLab server's wire has it); named in no warning of keys nothing reads, nor offered as an option
WIRE_KEYS = frozenset({"session_id"})
_NAMED_AT_MOST = 16  # unread keys a warning names (a request may carry many)


class RequestError(ValueError):
    """A request the server understood as msgpack but cannot serve (missing key, wrong shape/dtype, NaN...)."""


@dataclass
class WireRequest:
    """One validated request: what the policy method receives, plus the sampling knobs the client set."""

    mode: str
    prompt: str
    observation: Any = None
    actions: np.ndarray | None = None
    video: np.ndarray | None = None
    options: dict[str, Any] = field(default_factory=dict)


_FEW = 32  # values; up to this many, `all_float32` reads Python floats
_NORMALIZES_SAFELY = 1e30  # physical values up to this size are normalized to be judged only where stats need it


def all_float32(array: np.ndarray, embodiment: Embodiment | None = None) -> bool:
    """No NaN, inf or value beyond float32's range (`FLOAT32_ACCEPTED`: the model computes in float32, where 1e308 is
    inf and its actions NaN) in a numeric array. With `embodiment`, `array` holds physical rows [..., action_dim] (a
    state row, forward-dynamics actions), judged once normalized too, as the policy reads them (`beyond_float32`: a
    1e38 in a column of tiny spread is inf to the model): refused here, one robot's request, rather than inside a
    batch it would have failed. A few values (joint state) are read as Python floats, cheaper than
    numpy's ufunc set-up: NaN and inf survive a sum, and only huge finite values could overflow it, which numpy then
    checks; min and max bound the rest. More (an action chunk) go to numpy's C reductions straight, not through
    `ndarray.all()`'s Python wrapper: a 32 x 8 chunk as 256 Python floats cost ~40 k more instructions per reply
    (docs/serving.md, "Measured"; a sum or dot product in numpy instead warns on overflow, and a dot product wakes
    OpenBLAS's threads)."""
    if embodiment is not None:
        return not beyond_float32(array, embodiment).any()
    return _within(array, FLOAT32_MAX)


def _within(array: np.ndarray, limit: float) -> bool:
    """No NaN, inf or value beyond +-`limit` in a numeric array, read as `all_float32` says (`FLOAT32_MAX`; or
    `_NORMALIZES_SAFELY`, `ObservationAdapter._normalized_by`)."""
    if array.size <= _FEW:
        values = array.ravel().tolist()
        if math.isfinite(sum(values)):
            return not values or (-limit <= min(values) and max(values) <= limit)
    if limit >= FLOAT32_MAX and array.dtype.kind == "f" and array.dtype.itemsize <= 4:  # finite is within float32
        return bool(np.logical_and.reduce(np.isfinite(array), axis=None))
    return bool(np.logical_and.reduce(np.abs(array) <= limit, axis=None))


def _check_image(key: str, value: Any) -> np.ndarray:
    """Cheap checks before queueing; channel layout and value range are the engine's processing to judge."""
    if not isinstance(value, np.ndarray) or (kind := value.dtype.kind) not in "buif":
        got = f"{value.dtype} array" if isinstance(value, np.ndarray) else type(value).__name__
        raise RequestError(f"{key} must be a numeric image array [H, W, 3] (uint8 or float), got {got}")
    shape = value.shape
    if len(shape) not in (2, 3, 4) or 0 in shape:
        raise RequestError(f"{key} has shape {shape}; accepted: [H, W, 3], [3, H, W] or frames [T, H, W, 3]")
    if max(shape) > MAX_IMAGE_SIDE:
        raise RequestError(f"{key} has shape {shape}; each side must be at most {MAX_IMAGE_SIDE}")
    if kind == "f" and not all_float32(value):
        raise RequestError(f"{key} contains NaN, inf or values beyond float32's range")
    return value


def _shapes(ndim: tuple[int, ...], width: int | None) -> str:
    return (f"last axis {width}, " if width is not None else "") + f"ndim in {ndim}"


def _check_numeric(key: str, value: Any, *, ndim: tuple[int, ...], width: int | None = None,
                   normalized_by: Callable[[np.ndarray], Embodiment | None] | None = None) -> np.ndarray:
    """`value` as a float64 array of an accepted shape, within float32 (`all_float32`), and once normalized by the
    embodiment `normalized_by(array)` names, if any (`ObservationAdapter._normalized_by`: `value` being its physical
    rows)."""
    if isinstance(value, np.ndarray):
        array = value
    elif isinstance(value, (int, float, list, np.generic)):
        try:
            array = np.asarray(value)
        except (ValueError, TypeError, OverflowError):  # ragged nested lists, ints beyond int64
            array = None
    else:
        array = None
    if array is None or array.dtype.kind not in "biuf":
        if value is None:  # absent (forward dynamics without `actions`) or nil
            raise RequestError(f"missing key {key!r}: a numeric array is required; accepted: {_shapes(ndim, width)}")
        got = "a ragged list" if isinstance(value, list) and array is None else type(value).__name__
        raise RequestError(f"{key} must be a numeric array, got {got}")
    shape = array.shape
    if len(shape) not in ndim or (width is not None and shape and shape[-1] != width):
        raise RequestError(f"{key} has shape {shape}; accepted: {_shapes(ndim, width)}")
    array = array.astype(np.float64)  # a writable copy, whatever the wire dtype
    if not all_float32(array):
        raise _beyond(key, array, None)
    if normalized_by is not None and (embodiment := normalized_by(array)) is not None and \
            not all_float32(array, embodiment):
        raise _beyond(key, array, embodiment)
    return array


def _beyond(key: str, array: np.ndarray, embodiment: Embodiment | None) -> RequestError:
    """The refusal of `array` (read from `key`) that `all_float32` judged out of float32; with `embodiment`, naming
    the first column out (as given or once normalized) and what a physical row accepts."""
    if embodiment is None:
        return RequestError(f"{key} contains NaN, inf or values beyond float32's range; accepted: {FLOAT32_ACCEPTED}")
    column = embodiment.columns[np.argwhere(beyond_float32(array, embodiment))[0][-1]]
    return RequestError(f"{key} contains NaN, inf or values beyond float32's range in column {column!r}, as given or "
                        f"once normalized by embodiment {embodiment.key!r}'s stats; accepted: "
                        f"{PHYSICAL_FLOAT32_ACCEPTED}")


def check_key_map(embodiment: Embodiment, key_map: Mapping[str, str], what: str = "key_map") -> None:
    """Startup check: every canonical key a `key_map` renames is one the adapter reads for this embodiment. A typo
    (`observation/exterior_image_1=...`) would otherwise be ignored, and the robot's requests refused one by one."""
    readable = _readable_keys(embodiment)
    for canonical, wire in key_map.items():
        if not isinstance(canonical, str) or not isinstance(wire, str):
            raise ValueError(f"key_map must map str → str, got {canonical!r}: {wire!r}")
        if canonical not in readable:
            raise ValueError(f"{what} {canonical}={wire}: {canonical!r} is not a key embodiment {embodiment.key!r} "
                             f"reads; accepted: {', '.join(readable)}")


def _readable_keys(embodiment: Embodiment) -> list[str]:
    """The canonical keys an adapter for this embodiment reads (and a `key_map` may rename): `state` among them for an
    embodiment that conditions on it (a robot may send its whole state row under a name of its own)."""
    readable = [PROMPT_KEY, IMAGE_KEY, *embodiment.camera_keys, *embodiment.state_keys.values()]
    if embodiment.state_history:
        readable.append(STATE_KEY)
    if embodiment.composite is None:
        readable.append("image")
    return readable


class ObservationAdapter:
    """Validates wire requests for one embodiment; `key_map` maps canonical key → the client's key. `chunk_size`, the
    served policy's (None: not known here, left to the policy), bounds an `action_prefix`'s rows at parse time, so a
    too-long one fails its own request, not the batch it would have joined (which then reruns one at a time)."""

    def __init__(self, embodiment: Embodiment, key_map: Mapping[str, str] | None = None, *,
                 chunk_size: int | None = None) -> None:
        self.embodiment = embodiment
        self.chunk_size = chunk_size
        self.key_map = dict(key_map or {})
        check_key_map(embodiment, self.key_map)
        # the client's name of every key read (what its errors name), worked out once: a server parses every request
        # with them, and a method call per key lookup was ~30 Python calls per DROID request
        self._names = {k: self.key_map.get(k, k) for k in _readable_keys(embodiment)}
        self._cameras = tuple((k, self._names[k]) for k in embodiment.camera_keys)
        self._state_keys = tuple((role, k, self._names[k]) for role, k in embodiment.state_keys.items())
        self._state_name = self.key_map.get(STATE_KEY, STATE_KEY)  # the client's name of the whole state row
        self._read = frozenset(self._names.values()) | (OPTION_KEYS - {STATE_KEY}) | {self._state_name} | WIRE_KEYS
        self.shared_cameras_warning = _shared_cameras_warning(embodiment, self._cameras)
        # whether physical values within +-_NORMALIZES_SAFELY stay within float32 once normalized by these stats,
        # asked once of the one judge (`beyond_float32`; normalizing is affine per column): then a request's state and
        # actions are normalized to be judged only beyond that, as a 1e38 gripper is, and a robot's usual request pays
        # a max() and not a normalization (~25 us per request, on the event loop)
        probe = np.array([[_NORMALIZES_SAFELY] * embodiment.action_dim, [-_NORMALIZES_SAFELY] * embodiment.action_dim])
        self._normalizes_safely = not beyond_float32(probe, embodiment).any()

    @property
    def observation_keys(self) -> list[str]:
        """The keys this adapter reads a request's prompt and observation from, under the client's names (a key
        map's): a server announces them (`observation_keys` in its metadata frame), so a client that has more (the
        sim renders every camera) sends only these; the options (`OPTION_KEYS`) are read besides, `state` among them
        unless the key map renames it (then its client name is announced here)."""
        return list(dict.fromkeys(v for k, v in self._names.items() if k != STATE_KEY or v != STATE_KEY))

    def unread_keys_warning(self, message: Mapping[Any, Any]) -> str | None:
        """The warning for the keys of a request that nothing reads for this embodiment (another robot's cameras and
        state, a misspelt key), naming the keys it does read; None where every key is read. Such keys are ignored, as
        openpi's policies ignore the keys they do not use, but said: a DROID client served a `panda_reach` model gets
        chunks of another width and nothing else would tell it its joint state and third camera went unread. Not
        called per request: a server asks once per connection (`PolicyServer`), a Ray replica once per key set."""
        unread = [key for key in message if key not in self._read]
        if not unread:
            return None
        names = ", ".join(f"{key!r:.80}" for key in unread[:_NAMED_AT_MOST])
        more = f" and {len(unread) - _NAMED_AT_MOST} more" if len(unread) > _NAMED_AT_MOST else ""
        cameras = ", ".join(repr(wire) for _, wire in self._cameras)
        states = ", ".join(repr(wire) for _, _, wire in self._state_keys)
        e = self.embodiment
        reads = (f"{self._names[PROMPT_KEY]!r}, the cameras {cameras} (or a pre-composed {self._names[IMAGE_KEY]!r})"
                 + (f", the state keys {states}" if states else
                    f", and {self._state_name!r}" if e.state_history else
                    ", and no state (its actions come from the cameras and the prompt alone)"))
        return (f"request keys {names}{more} are not read by embodiment {e.key!r} ({e.action_dim} action columns: "
                f"{', '.join(e.columns)}) and were ignored; it reads {reads}, besides the request options "
                f"({', '.join(sorted(OPTION_KEYS & self._read))}). A server key map (--key-map) renames a key; another "
                "robot's client needs a checkpoint trained for that robot")

    def parse(self, message: Any) -> WireRequest:
        """Validate one decoded request and build the policy inputs; raises `RequestError` naming the bad key."""
        if not isinstance(message, dict):
            raise RequestError(f"request must be a msgpack map of observation keys, got {type(message).__name__}")
        mode = message.get("mode", "policy")
        if not isinstance(mode, str) or mode not in MODES:
            raise RequestError(f"mode={mode!r:.60} is not supported; accepted: {', '.join(MODES)}")
        prompt_key = self._names[PROMPT_KEY]
        prompt = message.get(prompt_key)
        if isinstance(prompt, bytes):
            prompt = prompt.decode("utf-8", errors="replace")
        if not isinstance(prompt, str) or not prompt.strip():
            if prompt is None or isinstance(prompt, str):
                raise RequestError(
                    f"missing or empty key {prompt_key!r}: a non-empty task instruction string is required"
                )
            raise RequestError(f"{prompt_key}={prompt!r:.60} ({type(prompt).__name__}) is not a string: a non-empty "
                               "task instruction string is required")
        _check_length(prompt, prompt_key)
        request = WireRequest(mode=mode, prompt=prompt, options=self._options(message))
        if self._state_name in message:
            name = self._state_name
            e = self.embodiment  # judged once normalized where the policy reads it (else it ignores it)
            state = _check_numeric(name, message[name], ndim=(1,), width=e.action_dim,
                                   normalized_by=self._normalized_by if e.state_history else None)
            request.options["state"] = state
        if message.get("action_prefix") is not None:  # read as the local Policy reads it
            try:
                request.options["action_prefix"] = action_prefix_rows(message["action_prefix"], mode,
                                                                      self.embodiment, self.chunk_size)
            except ValueError as exc:
                raise RequestError(str(exc)) from None
        if mode == "inverse_dynamics":
            request.video = self._video(message)
            if "state" not in request.options and (row := self._clip_state(message)) is not None:
                request.options["state"] = row  # an explicit `state` wins, as it does for the local Policy
            return request
        request.observation = self._observation(message, mode, state_given="state" in request.options)
        if mode == "forward_dynamics":
            e = self.embodiment
            space = message.get("actions_space")
            if space is not None:
                if space not in ACTION_SPACES:
                    accepted = ", ".join(ACTION_SPACES)
                    raise RequestError(f"actions_space={space!r:.60} is not supported; accepted: {accepted}")
                request.options["actions_space"] = space
            request.actions = _check_numeric("actions", message.get("actions"), ndim=(2,), width=e.action_dim,
                                             normalized_by=None if space == "normalized" else self._normalized_by)
        return request

    def _observation(self, message: Mapping[str, Any], mode: str, state_given: bool = False) -> Any:
        e, names = self.embodiment, self._names
        if (image_key := names[IMAGE_KEY]) in message:
            images = {IMAGE_KEY: _check_image(image_key, message[image_key])}
        elif e.composite is None and (present := self._single_camera(message)) is not None:
            # one camera: the first present
            images = {present: _check_image(names[present], message[names[present]])}
        else:
            missing = [wire for _, wire in self._cameras if wire not in message]
            if missing:
                wanted = [wire for _, wire in self._cameras]
                read = set(names.values())
                # a typo'd or another robot's camera key is the usual cause: name the images sent that nothing reads
                unread = [key for key, value in message.items()
                          if key not in read and isinstance(value, np.ndarray) and value.ndim >= 2]
                raise RequestError(
                    f"missing camera key(s) {missing} for embodiment {e.key!r}; send all of {wanted} "
                    f"or a pre-composed {image_key!r} (a server key map can rename keys)"
                    + (f"; images sent under keys it does not read: {unread}" if unread else "")
                )
            images = {k: _check_image(wire, message[wire]) for k, wire in self._cameras}
        state = self._state(message, required=e.state_history > 0 and not state_given)
        if e.state_history and not state_given and state:  # read as the state: its shapes and row are checked here
            self._state_row(state, mode, "the latest row: the current state")
        if e.state_history and not e.state_keys and not state_given:
            raise RequestError(f"missing key {self._state_name!r} ({e.action_dim} values: {', '.join(e.columns)}) "
                               f"required by embodiment {e.key!r}, which conditions on the robot state and names no "
                               "state keys")
        if not state and list(images) == [IMAGE_KEY]:
            return images[IMAGE_KEY]
        return {**images, **state}

    def _state(self, message: Mapping[str, Any], required: bool) -> dict[str, np.ndarray]:
        """The embodiment's state keys a message carries, checked as numbers without NaN/inf (joints any rank, the
        gripper scalar, [T] or [T, 1]), under their canonical names; `required` refuses a missing one by its wire
        name."""
        state = {}
        for role, key, wire in self._state_keys:
            if wire not in message:
                if required:
                    raise RequestError(f"missing state key {wire!r} ({role}) required by embodiment "
                                       f"{self.embodiment.key!r} (or send {self._state_name!r})")
                continue
            value = _check_numeric(wire, message[wire], ndim=(0, 1, 2))
            if role == "gripper" and value.ndim == 2 and value.shape[-1] != 1:
                raise RequestError(f"{wire} has shape {value.shape}; accepted: scalar, [T] or [T, 1]")
            state[key] = value
        return state

    def _clip_state(self, message: Mapping[str, Any]) -> np.ndarray | None:
        """The state row an inverse-dynamics request's state keys carry (joints [7] or [T, 7], gripper scalar, [T] or
        [T, 1] for DROID), read as the local `Policy` reads a clip dict's keys (`observation_state`: the first frame's
        row), so a robot script sending them beside `video` is served as `RemotePolicy`, which sends that row as
        `state`, is. None where the embodiment does not condition on the state (the local `Policy` ignores the keys)
        or the message carries none of its keys. The shapes are checked here, naming the client's keys, so that a
        bad one is a bad request and not an error inside inference."""
        e = self.embodiment
        if not e.state_history or not any(wire in message for _, _, wire in self._state_keys):
            return None
        state = self._state(message, required=True)
        row = self._state_row(state, "inverse_dynamics", "the row at the clip's first frame")
        return observation_state(state, e, "inverse_dynamics") if row is None else row

    def _state_row(self, state: Mapping[str, np.ndarray], mode: str, row: str) -> np.ndarray | None:
        """Refuse state keys the policy cannot read as a bad request naming the client's keys, before any inference:
        keys of a shape it cannot read (a 6-axis arm's joints, an empty gripper), or whose row (`observation_state`)
        is out of float32 once normalized (`all_float32`). Inside the policy either failed as a `ValueError` and cost
        the batch the request had joined. `row` says which row is read. The row, where it was worked out to be judged
        (None where its values cannot leave float32, `_normalized_by`)."""
        e = self.embodiment
        for role, key, wire in self._state_keys:
            value, n = state[key], (e.action_dim - 1 if role == "joints" else 1)
            if value.size == 0 or (role == "joints" and (value.ndim == 0 or value.shape[-1] != n)):
                accepted = f"[{n}] or [T, {n}] with T >= 1" if role == "joints" else "scalar, [T] or [T, 1] with T >= 1"
                raise RequestError(f"{wire} has shape {value.shape}; embodiment {e.key!r} reads {role} as "
                                   f"{accepted} ({row})")
        if (judge := self._normalized_by(*state.values())) is None:
            return None
        values = observation_state(state, e, mode)
        if not all_float32(values, judge):
            keys = " and ".join(repr(wire) for _, _, wire in self._state_keys)
            raise _beyond(f"the state row read from {keys} ({row})", values, judge)
        return values

    def _normalized_by(self, *arrays: np.ndarray) -> Embodiment | None:
        """The embodiment physical `arrays` (within float32 as given) are judged by once normalized (`all_float32`),
        or None where they cannot leave float32 once normalized (`_normalizes_safely`): no value beyond the bound,
        read as `all_float32` reads (a forward-dynamics chunk by numpy's reductions: ~19 us less than as Python
        floats)."""
        if self._normalizes_safely and all(_within(a, _NORMALIZES_SAFELY) for a in arrays):
            return None
        return self.embodiment

    def _single_camera(self, message: Mapping[str, Any]) -> str | None:
        """The camera an embodiment without a composite reads: its first camera key present, else `image`."""
        for key in (*self.embodiment.camera_keys, "image"):
            if self._names[key] in message:
                return key
        return None

    def _video(self, message: Mapping[str, Any]) -> np.ndarray:
        video = message.get("video")
        ok = isinstance(video, np.ndarray) and video.dtype.kind in "buif" and video.ndim == 4 and 3 in video.shape[1::2]
        if not ok:
            got = f"{video.dtype} {video.shape}" if isinstance(video, np.ndarray) else type(video).__name__
            raise RequestError(
                f"inverse_dynamics needs key 'video' as frames [T, H, W, 3] or [T, 3, H, W] (uint8, or float in "
                f"[0, 1]), got {got}"
            )
        if max(video.shape[1:]) > MAX_IMAGE_SIDE:
            raise RequestError(f"video frames of {video.shape[1:]} exceed {MAX_IMAGE_SIDE} pixels per side")
        if video.dtype.kind == "f" and not all_float32(video):
            raise RequestError("video contains NaN, inf or values beyond float32's range")
        return video

    @staticmethod
    def _options(message: Mapping[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {}
        seed = message.get("seed")
        if seed is not None:
            if not is_integer(seed) or not 0 <= seed < 2**63:
                raise RequestError(f"seed={seed!r:.60} must be an int in [0, 2**63)")
            options["seed"] = int(seed)
        steps = message.get("steps")
        if steps is not None:
            if not is_integer(steps) or not 1 <= steps <= MAX_STEPS:
                raise RequestError(f"steps={steps!r:.60} must be an int in [1, {MAX_STEPS}]")
            options["steps"] = int(steps)
        guidance = message.get("guidance")
        if guidance is not None:
            if not is_real(guidance, finite=False):  # numpy's complex too: no order to compare with 0
                raise RequestError(f"guidance={guidance!r:.60} must be a finite number")
            if not is_real(guidance) or guidance < 0:
                raise RequestError(f"guidance={guidance!r} must be a finite number >= 0")
            options["guidance"] = float(guidance)
        negative_prompt = message.get("negative_prompt")
        if negative_prompt is not None:
            if isinstance(negative_prompt, bytes):
                negative_prompt = negative_prompt.decode("utf-8", errors="replace")
            if not isinstance(negative_prompt, str):
                raise RequestError(f"negative_prompt must be a string, got {type(negative_prompt).__name__}")
            _check_length(negative_prompt, "negative_prompt")
            options["negative_prompt"] = negative_prompt
        decode_video = message.get("decode_video")
        if decode_video is not None:
            if not isinstance(decode_video, (bool, np.bool_)):
                raise RequestError(f"decode_video={decode_video!r:.60} must be a bool")
            options["decode_video"] = bool(decode_video)
        return options


def _shared_cameras_warning(embodiment: Embodiment, cameras: Sequence[tuple[str, str]]) -> str | None:
    """The warning for camera slots a key map has read from one client key (`cameras`: each canonical camera key and
    the client's key it is read from), or None: openpi's two-camera DROID request, served with the documented
    `--key-map observation/exterior_image_2_left=observation/exterior_image_1_left`, shows the model the one exterior
    view in both exterior places, an input it was never trained on. Said, not refused: it is the documented way to
    serve such a client, whose actions are then of a model shown less than it expects."""
    slots: dict[str, list[str]] = {}
    for canonical, wire in cameras:
        slots.setdefault(wire, []).append(canonical)
    shared = [(wire, names) for wire, names in slots.items() if len(names) > 1]
    if not shared:
        return None
    said = "; ".join(f"{' and '.join(names)} are read from the client's key {wire!r}" for wire, names in shared)
    return (f"camera slots of embodiment {embodiment.key!r} read the same image ({said}, by the server's --key-map), "
            "so the model sees one view twice where it was trained on different cameras: its actions may be worse "
            "than with each camera sent (docs/serving.md, 'Request keys')")


def warmup_message(
    embodiment: Embodiment, prompt: str = "warm up", side: int = 224, key_map: Mapping[str, str] | None = None,
    camera_sizes: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, Any]:
    """A well-formed wire request of black frames and zero state, to warm the server up before it reports ready; under
    the client's key names when a `key_map` renames them, so it takes the same adapter path as real requests.

    Each camera's frames are `camera_sizes[key]` (height, width) where given, else its place in the embodiment's
    composite (`composite_places`: DROID's are 16:9), else `side` square. A server passes the sizes its checkpoint
    was trained on (`warmup_camera_sizes`): a warm-up of another size (or shape, stretched into its place) made the
    policy warn, at startup, about frames no client sent, and spent its once-per-size warning on them, so a robot that
    then sent frames of that size was never told."""
    keys = embodiment.camera_keys
    square = dict.fromkeys(keys, (side, side))
    places = composite_places(square, keys, embodiment.composite) if embodiment.composite and len(keys) > 1 else square
    sizes = {**places, **(camera_sizes or {})}
    message: dict[str, Any] = {k: np.zeros((*sizes[k], 3), np.uint8) for k in keys}
    for role, key in embodiment.state_keys.items():
        width = 1 if role == "gripper" else embodiment.action_dim - (embodiment.gripper_column is not None)
        message[key] = np.zeros(width, np.float32)
    if embodiment.state_history and not embodiment.state_keys:
        message["state"] = np.zeros(embodiment.action_dim, np.float32)
    message[PROMPT_KEY] = prompt
    return {(key_map or {}).get(k, k): v for k, v in message.items()}


def warmup_camera_sizes(policy: Any) -> dict[str, list[int]] | None:
    """The (height, width) of each camera the served checkpoint was trained on, from its run's record
    (`policy.trained_frames` of its `source`: the shipped model's too), or None when it has none (a hub id, a policy
    built in code): what `warmup_message` should send."""
    from ..policy import trained_frames

    source = getattr(policy, "source", "")
    frames = trained_frames(source) if isinstance(source, str) and source else None
    return frames["cameras"] if frames else None


def _check_length(text: str, key: str) -> None:
    try:
        check_length(text, key)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
