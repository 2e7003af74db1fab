"""One observation out of a dataset, as `worldpolicy predict` takes it: each camera's image (and a clip of the frames up
to it), the state vector and the task, with the predict command line that runs a checkpoint on them; and, to check a
world model against the recording, the actions recorded from that frame on and the frames they led to.

    from worldpolicy.data import extract_frame
    obs = extract_frame("data/pick_place", "obs", episode=2, frame=10, checkpoint="runs/x/final", clip=8)
    obs.images, obs.clips, obs.state, obs.prompt   # files written under "obs", the values they hold
    obs.commands["policy"]                         # ["worldpolicy", "predict", "--checkpoint", ...]
    fd = extract_frame("data/pick_place", "fd", episode=2, frame=10, checkpoint="runs/x/final", actions=True)
    fd.actions, fd.futures                         # recorded_actions.json; per camera, the real frames 10..10+chunk
    fd.commands["forward_dynamics"]                # predict --mode forward_dynamics --actions .../recorded_actions.json
    ep = extract_frame("data/pick_place", "ep", episode=2, frame=10, checkpoint="runs/x/final", actions=True,
                       to_end=True)                # every action to the episode's end: predict ... --whole-trajectory

The command is built for the checkpoint's embodiment (read from its embodiment.json, without loading weights): its
cameras as `--camera KEY=FILE` (dataset key `observation.image.wrist_image_left` is camera
`observation/wrist_image_left`, as in training), one camera as `--image`, and `--state` only for an embodiment that
conditions on the robot state.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..embodiments import Embodiment, check_chunk_size, get_embodiment
from ..errors import is_integer
from ..fileio import atomic_path, output_folder, staged_folder, write_json_atomic
from ..processing.observations import wire_key
from .actions import recorded_actions, run_keys
from .lerobot import LeRobotDataset
from .observations import CameraMismatch, camera_sources, check_state_width, named_state_keys
from .sampling import caption_variants

__all__ = ["FRAME_FILE", "RECORDED_ACTIONS_FILE", "DatasetFrame", "extract_frame"]

FRAME_FILE = "dataset_frame.json"  # what the folder holds, for a person and for `fileio.FOLDER_KINDS`
# not `actions.json`: that name marks a predict run's folder (`fileio.FOLDER_KINDS`), which this command refuses to
# write into, and so would refuse its own folder on a second run
RECORDED_ACTIONS_FILE = "recorded_actions.json"


@dataclass
class DatasetFrame:
    """What `extract_frame` wrote. `images[key]` is camera `key`'s PNG at the frame, `clips[key]` a folder of the
    frames `frame - clip + 1 .. frame` (empty without `clip`); `state` is the state vector (the `state_keys` side by
    side), `state_names` its columns (the dataset's names, so which value is which joint can be read); `prompt` is
    the first phrasing of the frame's `task` (a Cosmos3-DROID task holds several, split by " | ").
    `actions` is the recorded actions file (None unless asked for): the `chunk_size` actions recorded from the frame on
    (or every one to the episode's end), in the embodiment's columns and physical units, which `futures[key]` (a
    folder per camera of the real frames from `frame` to the last they led to) show the outcome of, as forward
    dynamics' rollout does from the same frame.
    `commands` maps a predict mode to its argument list (empty without a checkpoint); `command_lines` are them as a
    shell takes them."""

    root: Path
    episode: int
    frame: int
    out: Path
    task: str
    prompt: str
    images: dict[str, Path]
    clips: dict[str, Path] = field(default_factory=dict)
    state_keys: tuple[str, ...] = ()
    state: np.ndarray | None = None
    state_names: tuple[str, ...] = ()
    commands: dict[str, list[str]] = field(default_factory=dict)
    actions: Path | None = None
    futures: dict[str, Path] = field(default_factory=dict)

    @property
    def command_lines(self) -> dict[str, str]:
        return {mode: shlex.join(argv) for mode, argv in self.commands.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": str(self.root),
            "episode": self.episode,
            "frame": self.frame,
            "task": self.task,
            "prompt": self.prompt,
            "images": {k: p.name for k, p in self.images.items()},
            "clips": {k: p.name for k, p in self.clips.items()},
            "state_keys": list(self.state_keys),
            "state": None if self.state is None else self.state.tolist(),
            "state_names": list(self.state_names),
            "commands": self.command_lines,
            "actions": None if self.actions is None else self.actions.name,
            "futures": {k: p.name for k, p in self.futures.items()},
        }


def extract_frame(
    dataset: str | Path | LeRobotDataset,
    out: str | Path,
    episode: int = 0,
    frame: int = 0,
    *,
    checkpoint: str | Path | None = None,
    embodiment: str | Embodiment | None = None,
    cameras: Sequence[str] | None = None,
    clip: int | None = None,
    state_keys: Sequence[str] | None = None,
    actions: bool = False,
    chunk_size: int | None = None,
    action_keys: Sequence[str] | None = None,
    overwrite: bool = False,
    to_end: bool = False,
) -> DatasetFrame:
    """Write frame `frame` of episode `episode` (negative: from the end) under `out` as predict's inputs: a PNG per
    camera (`cameras`, default all), a folder of the last `clip` frames per camera when given (what
    `predict --mode inverse_dynamics` reads), and `dataset_frame.json` (task, state, files, commands).

    With `checkpoint` (as `predict --checkpoint` takes it; `embodiment` as `--embodiment`), `commands` holds the
    predict command for it (policy, and inverse dynamics on the clips), writing its run to `out/predict` (and
    `out/predict_inverse_dynamics`). `state_keys` default to those the checkpoint's run read where the dataset has
    them all (an embodiment that conditions on the state), else `observation.state`, else the `observation.state.*`
    features in the dataset's order. Every argument, the episode and frame, and whether the embodiment's cameras and
    state width fit the dataset, are checked before anything is decoded or written; existing files are replaced only
    with `overwrite`.

    With `actions` (needs `checkpoint`: the actions are written for its embodiment), `recorded_actions.json` holds the
    `chunk_size` (default: the embodiment's) actions recorded at frames `frame .. frame + chunk_size - 1`, and a
    folder per camera the real frames `frame .. frame + chunk_size` they led to; `commands["forward_dynamics"]` rolls
    the model out from the frame on those actions, to be compared with them. The dataset's action features
    (`action_keys`, default those the checkpoint's run read where the dataset has them, else training's
    `data.action_keys`) reach the embodiment's columns as training maps them
    (`data.actions`: by column names, or joint targets converted to end-effector deltas).

    With `to_end` too, the actions are every one recorded from `frame` to the episode's end (frames `frame ..
    length - 2`), with the real frames `frame .. length - 1`, and `commands["forward_dynamics"]` rolls the model out
    over all of them (`predict --whole-trajectory`: chunks of `chunk_size` rows, each from the last frame the one
    before imagined), so a whole recorded episode can be compared with the world model's rollout of it; an
    embodiment whose state cannot be carried from one chunk to the next is refused
    (`processing.trajectory.check_trajectory_embodiment`).
    """
    ds = dataset if isinstance(dataset, LeRobotDataset) else LeRobotDataset.open(dataset)
    episode, frame = _check_position(ds, episode, frame)
    chosen = _check_cameras(ds, cameras)
    if clip is not None and (not is_integer(clip) or clip < 2):
        raise ValueError(f"clip={clip!r}: give the number of frames to write per camera, at least 2 (inverse dynamics "
                         "reads the motion between frames)")
    if clip is not None and frame + 1 < clip:
        raise ValueError(f"clip={clip} needs {clip} frames ending at frame {frame}, and episode {episode} has "
                         f"{frame + 1} up to it: choose frame >= {clip - 1} or clip <= {frame + 1}")
    keys = named_state_keys(ds, state_keys, KeyError)
    if not isinstance(to_end, bool):
        raise ValueError(f"to_end={to_end!r}; accepted: True or False")
    for name, value in (("chunk_size", chunk_size), ("action_keys", action_keys), ("to_end", to_end or None)):
        if value is not None and not actions:  # a setting that would change nothing: the user meant the actions
            raise ValueError(f"{name}={value!r} sets the recorded actions, which are written only when asked for: "
                             "pass actions=True")
    if actions and checkpoint is None:
        raise ValueError("actions: the recorded actions are written in the columns of the embodiment that reads "
                         "them, the checkpoint's: name the checkpoint to run forward dynamics with (checkpoint=...)")
    emb = _embodiment(checkpoint, embodiment) if checkpoint is not None else None
    if emb is not None:  # the keys the checkpoint's own run read, where this dataset has them, as `dataset eval`
        from ..policy import trained_data_keys

        trained = trained_data_keys(checkpoint)
        if state_keys is None and emb.state_history and (run := run_keys(ds, trained, "state_keys")):
            keys = named_state_keys(ds, run, KeyError)
        if actions and action_keys is None:
            action_keys = run_keys(ds, trained, "action_keys")
    if emb is not None and emb.state_history:
        check_state_width(ds, keys, emb)
    chunk = _check_chunk(ds, episode, frame, emb, chunk_size, to_end) if actions else None
    out = Path(out)
    output_folder(out, "out", create=False, writer="dataset frame")
    names = _file_names(chosen)
    images = {key: out / f"{names[key]}.png" for key in chosen}
    clips = {key: out / f"{names[key]}_clip" for key in chosen} if clip else {}
    futures = {key: out / f"{names[key]}_future" for key in chosen} if actions else {}
    recorded = out / RECORDED_ACTIONS_FILE if actions else None
    written = [*images.values(), *clips.values(), *futures.values(), *filter(None, [recorded]), out / FRAME_FILE]
    existing = [p.name for p in written if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"out: {str(out)!r} already holds {', '.join(existing)}; choose another folder or pass "
                              "overwrite=True to replace them")
    rows = ds.episode(episode, videos=False)  # the data file's rows: no video is decoded yet
    task = rows.frame_tasks[frame]
    result = DatasetFrame(
        root=ds.root, episode=episode, frame=frame, out=out, task=task, prompt=caption_variants(task)[0],
        images=images, clips=clips, state_keys=tuple(keys),
        state=np.concatenate([rows.frames[k][frame].reshape(-1) for k in keys]) if keys else None,
        state_names=tuple(ds.feature_names(keys)) if keys else (), actions=recorded, futures=futures,
    )
    if emb is not None and emb.state_history and not np.isfinite(result.state.astype(np.float64)).all():
        raise ValueError(f"state_keys={keys}: frame {frame} of episode {episode} holds NaN or inf in its state "
                         f"({result.state.tolist()}), which no policy can take; `worldpolicy dataset check` lists such "
                         "frames")
    if emb is not None:
        result.commands = _predict_commands(result, emb, checkpoint, embodiment, chunk_size, to_end)
    recording = (_recorded_actions(ds, rows, episode, frame, chunk, emb, action_keys, keys,
                                   emb.chunk_size if chunk_size is None else chunk_size) if actions else None)
    output_folder(out, "out")
    from PIL import Image

    first, last = frame - (clip or 1) + 1, frame + (chunk or 0)
    for key in chosen:
        frames = ds.camera_frames(episode, key, first, last + 1)
        with atomic_path(images[key], suffix=".png") as tmp:
            Image.fromarray(frames[frame - first]).save(tmp, format="PNG")
        for folder_path, start, stop in ((clips.get(key), first, frame), (futures.get(key), frame, last)):
            if folder_path is not None:
                with staged_folder(folder_path) as folder:
                    for t in range(start, stop + 1):
                        Image.fromarray(frames[t - first]).save(folder / f"frame_{t:06d}.png")
    if recording is not None:
        write_json_atomic(recorded, recording, indent=2, ensure_ascii=False)
    write_json_atomic(out / FRAME_FILE, result.to_json(), indent=2, ensure_ascii=False)
    return result


def _check_position(ds: LeRobotDataset, episode: Any, frame: Any) -> tuple[int, int]:
    """(episode, frame) as non-negative indices; negative ones count from the end, as Python's do."""
    n = ds.num_episodes
    if not is_integer(episode) or not -n <= episode < n:
        raise ValueError(f"episode={episode!r} is out of range: the dataset has {n} episodes (0..{n - 1})")
    episode = int(episode) % n
    length = int(ds.episode_lengths[episode])
    if not is_integer(frame) or not -length <= frame < length:
        raise ValueError(f"frame={frame!r} is out of range: episode {episode} has {length} frames (0..{length - 1})")
    return episode, int(frame) % length


def _check_cameras(ds: LeRobotDataset, cameras: Sequence[str] | None) -> list[str]:
    if not ds.video_keys:
        raise ValueError(f"dataset {str(ds.root)!r} has no camera (video or image) features; predict needs an image")
    if cameras is None:
        return list(ds.video_keys)
    chosen = [cameras] if isinstance(cameras, str) else list(cameras)
    unknown = [k for k in chosen if k not in ds.video_keys]
    if not chosen or unknown:
        raise KeyError(f"cameras={chosen!r}: " + (f"{', '.join(unknown)} not among" if unknown else "none of")
                       + f" the dataset's cameras: {', '.join(ds.video_keys)}{ds.unknown_note(unknown, ds.video_keys)}")
    return list(dict.fromkeys(chosen))


def _file_names(keys: list[str]) -> dict[str, str]:
    """A file name per camera: its key, with any '/' (not a LeRobot key's, but a folder separator) as '_'."""
    return {key: key.replace("/", "_") for key in keys}


def _embodiment(checkpoint: str | Path, embodiment: str | Embodiment | None) -> Embodiment:
    """The embodiment `predict --checkpoint C [--embodiment E]` runs with (its embodiment.json read, no weights)."""
    from ..models import resolve_checkpoint
    from ..policy import checkpoint_embodiment

    return get_embodiment(checkpoint_embodiment(resolve_checkpoint(checkpoint), embodiment))


def _camera_flags(emb: Embodiment, files: dict[str, Path], single: str) -> list[str]:
    """How predict takes these per-camera files (dataset video key -> file) for `emb`: `--camera KEY=FILE` for each
    camera a video feeds as training reads them (`observations.camera_sources`); `single` (--image / --video) for a
    lone file no camera is named as, which predict reads as the one camera or a pre-composed view. Anything else is
    refused, naming which cameras the embodiment has and which were written."""
    try:
        sources = camera_sources(list(files), None, emb)
    except CameraMismatch as exc:
        if len(files) == 1:
            return [single, str(next(iter(files.values())))]
        wired = ", ".join(dict.fromkeys(wire_key(k) for k in files))
        if exc.twins:
            raise ValueError(f"cameras: {exc.twins} feed the same camera of embodiment {emb.key!r} as predict names "
                             "them: choose one of each") from None
        need = "each of" if emb.composite is not None else "one of"
        raise ValueError(
            f"cameras: embodiment {emb.key!r} takes {need} the cameras {', '.join(emb.camera_keys)}, and the dataset "
            f"cameras chosen are {wired} as predict names them: choose one camera (passed as {single}) or an "
            "embodiment with these cameras"
        ) from None
    if len(files) == 1 and wire_key(next(iter(files))) not in emb.camera_keys:
        return [single, str(next(iter(files.values())))]
    return [arg for camera, key in sources.items() for arg in ("--camera", f"{camera}={files[key]}")]


def _shortest(value: np.floating) -> str:
    """`value` as its shortest exact text (the fewest digits that read back as the same value of its dtype): plain
    (`-0.5`) or scientific (`1.4277586e-13`), whichever is shorter, so a tiny or huge joint value keeps the suggested
    command readable instead of running to twenty digits (`0.00000000000014277586`)."""
    plain = np.format_float_positional(value, unique=True, trim="-")
    scientific = np.format_float_scientific(value, unique=True, trim="-")
    return plain if len(plain) <= len(scientific) else scientific


def _predict_commands(obs: DatasetFrame, emb: Embodiment, checkpoint: str | Path,
                      embodiment: str | Embodiment | None, chunk_size: int | None,
                      to_end: bool = False) -> dict[str, list[str]]:
    """The predict argument lists for `obs` on `emb`: policy on the images, inverse dynamics on the clips, forward
    dynamics on the images and the recorded actions (at their chunk size, when it is not the embodiment's; every row,
    chunk after chunk, with `to_end`)."""
    base = ["worldpolicy", "predict", "--checkpoint", str(checkpoint)]
    if embodiment is not None:
        base += ["--embodiment", embodiment.key if isinstance(embodiment, Embodiment) else str(embodiment)]
    commands = {"policy": base + _camera_flags(emb, obs.images, "--image")}
    if obs.clips:
        commands["inverse_dynamics"] = base + ["--mode", "inverse_dynamics"] + _camera_flags(emb, obs.clips, "--video")
    if obs.actions is not None:
        commands["forward_dynamics"] = (base + ["--mode", "forward_dynamics", "--actions", str(obs.actions)]
                                        + (["--whole-trajectory"] if to_end else [])
                                        + (["--chunk-size", str(chunk_size)] if chunk_size is not None else [])
                                        + _camera_flags(emb, obs.images, "--image"))
    for mode, argv in commands.items():
        argv += ["--prompt", obs.prompt]
        if emb.state_history and obs.state is not None:  # `check_state_width` saw that it is
            # `--state=V,...`: after a space, a first value of -0.5 would read as an option
            values = obs.state if obs.state.dtype.kind == "f" else obs.state.astype(np.float64)
            argv.append("--state=" + ",".join(_shortest(v) for v in values))
        argv += ["--out", str(obs.out / ("predict" if mode == "policy" else f"predict_{mode}"))]
    return commands


def _check_chunk(ds: LeRobotDataset, episode: int, frame: int, emb: Embodiment, chunk_size: Any,
                 to_end: bool = False) -> int:
    """How many actions to record: the chunk's length (`chunk_size`, else the embodiment's, as predict's default),
    checked as predict checks it, and that the episode holds it after `frame`: actions `frame .. frame + chunk - 1`
    and the frames `frame + 1 .. frame + chunk` they led to (what forward dynamics imagines, to compare with). With
    `to_end`, every action after `frame` (at least one), rolled out in chunks of that length by an embodiment whose
    state can be carried from one chunk to the next."""
    chunk = emb.chunk_size if chunk_size is None else chunk_size
    check_chunk_size(chunk)
    length = int(ds.episode_lengths[episode])
    left = length - 1 - frame
    if to_end:
        from ..processing.trajectory import check_trajectory_embodiment

        check_trajectory_embodiment(emb, "to_end=True (predict --whole-trajectory)")  # the printed command's option
        if left < 1:
            raise ValueError(f"to_end=True: frame {frame} is the last of episode {episode} (it has {length} frames): "
                             f"no action was recorded after it; choose frame <= {length - 2}")
        return left
    if left < chunk:
        fixes = ([f"frame <= {length - 1 - chunk}"] if length - 1 >= chunk else []) + (
            [f"chunk_size <= {left // 4 * 4} (a multiple of 4)"] if left >= 4 else [])
        default = "" if chunk_size is not None else f" (the default: embodiment {emb.key!r}'s)"
        raise ValueError(
            f"chunk_size={chunk}{default} needs {chunk} frames after frame {frame} (the actions recorded from it and "
            f"the frames they led to), and episode {episode} has {left} (it has {length} frames): "
            + (f"choose {' or '.join(fixes)}" if fixes else "choose a longer episode")
        )
    return chunk


def _recorded_actions(ds: LeRobotDataset, rows: Any, episode: int, frame: int, chunk: int, emb: Embodiment,
                      action_keys: Sequence[str] | None, state_keys: list[str], chunk_size: int) -> dict[str, Any]:
    """The actions recorded at frames `frame .. frame + chunk - 1` (`chunk` rows: one chunk of `chunk_size`, or every
    action to the episode's end, rolled out in chunks of it) as an actions object forward dynamics reads
    (`processing.actions.load_actions`): in `emb`'s columns and physical units, reached from the dataset's action
    features as training reaches them (`data.actions.recorded_actions`, which refuses what training would, naming its
    `[data]` settings). A conversion from joint targets starts from the state at `frame`, read from the frame's
    `state_keys` (training's default where there are none)."""
    reader = recorded_actions(ds, emb, action_keys, state_keys)
    values = reader.chunk(rows.frames, frame, frame + chunk)
    if not np.isfinite(values).all():
        row, column = np.argwhere(~np.isfinite(values))[0]
        raise ValueError(f"action_keys={reader.action_keys}: episode {episode} holds NaN or inf in the actions "
                         f"recorded from frame {frame} (frame {frame + row}, column {emb.columns[column]!r}), which "
                         "forward dynamics refuses; `worldpolicy dataset check` lists such frames")
    return {
        "actions": values.tolist(),
        "columns": list(emb.columns),
        "units": list(emb.units),
        "embodiment": emb.key,
        "chunk_size": chunk_size,
        "fps": ds.fps,  # the recording's rate; forward dynamics imagines at the embodiment's
        "recorded": {"dataset": str(ds.root), "episode": episode, "frames": [frame, frame + chunk - 1],
                     **reader.settings()},
    }
