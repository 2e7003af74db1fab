"""Visualise an actions file or a run directory: plots, plus an animation beside the run's video when there is one."""

from __future__ import annotations

import logging
import reprlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..fileio import ACTIONS_FILE, REPORT_FILE
from .plots import (
    FIGURE_FORMATS,
    _check_actions,
    _check_fps,
    check_figure_format,
    clip_rows_of,
    gripper_columns,
    is_dream,
    load_actions_file,
    plot_prediction,
    real_rows_of,
    run_rows_of,
    run_title,
    settings_of,
)

if TYPE_CHECKING:
    import numpy as np

    from ..embodiments import Embodiment
    from ..results import Prediction

logger = logging.getLogger(__name__)

__all__ = ["ACTIONS_FILE", "ANIMATION_FILE", "OBSERVATION_FOLDER", "PLOT_FILES", "PLOT_NAMES", "ROLLOUT_VIDEO",
           "RUN_OUTPUTS", "SETTINGS_FILE", "describe_rollout_video", "observation_file", "observation_pixels",
           "regions_said", "resolve_actions_path", "rollout_regions", "unusable_actions", "visualize", "write_run",
           "write_run_pages", "write_run_whole"]

ROLLOUT_VIDEO = "rollout.mp4"  # the model's clip a predict run writes (`describe_rollout_video` says what it shows)
ANIMATION_FILE = "animation.mp4"
PLOT_NAMES = ("actions", "ee_path*", "joints")  # the figures `visualize` may write in its folder, without the suffix
# everything `visualize` may write there, in any figure format: a new prediction makes all of them stale
PLOT_FILES = (*(f"{n}.{fmt}" for fmt in FIGURE_FORMATS for n in PLOT_NAMES), ANIMATION_FILE)
SETTINGS_FILE = "settings.json"  # what a predict run was given and how it sampled
# a policy or forward-dynamics run's observation, one PNG per camera (`write_run`'s `observation`; the demo's are what
# its printed `predict` lines reuse): the report shows them as the observation, beside the imagined video
OBSERVATION_FOLDER = "observation"
# what write_run may write
RUN_OUTPUTS = (ACTIONS_FILE, SETTINGS_FILE, ROLLOUT_VIDEO, REPORT_FILE, "plots", OBSERVATION_FOLDER)


def write_run(prediction: Prediction, out: Path, plots: bool = True,
              video_parts: Sequence[tuple[Path, int]] = (), observation: Any = None) -> list[Path]:
    """Write a prediction's artifacts: actions.json (schema v1), settings.json, rollout.mp4, plots/, index.html. Here,
    beside the readers of those files, for the three that write a run: `predict`, `Prediction.save` and the agents'
    tools. `video_parts`: mp4 files (each with its number of frames) already holding the prediction's video end to end
    (a dream's chunks, `sim.world_model.DreamRecorder`): rollout.mp4 is their packets joined where they allow it
    (`processing.video.join_videos`: the frames the parts hold, not encoded a second time), else the video encoded.
    `observation`: the policy's observation the run was given (one image, or camera key -> image; a file or pixels,
    as a policy reads them; its last frame), kept as `observation/<key's last part>.png` (one image alone as
    `SINGLE_VIEW_KEYS[0]`'s) for the page to show beside the imagined video: without them a run never showed what the
    model started from."""
    from ..fileio import make_folder, write_json_atomic
    from ..processing.observations import canvas_comment
    from ..processing.video import write_video

    given = {} if observation is None else observation_pixels(observation)  # read before anything is removed
    try:  # before any file is written: the plots and video would refuse it half-way through the run
        _check_fps(prediction.fps)
    except ValueError:
        raise ValueError(f"fps={prediction.fps!r}: this prediction names no action rate, which its actions.json, "
                         "plots and video need (a RemotePolicy result from a server that announces none, such as "
                         "openpi's: pass RemotePolicy(embodiment=...))") from None
    make_folder(out)
    unusable = unusable_actions(prediction, f"{str(out / ACTIONS_FILE)!r} keeps them, no plots were drawn")
    # non-finite actions are kept for inspection, but there is nothing to plot (and an earlier page would show its
    # actions as this run's): cleaned up as a run without plots
    _remove_stale(out, video=prediction.video is not None, plots=plots and unusable is None)
    doc = prediction.to_json()
    written = [out / ACTIONS_FILE, out / SETTINGS_FILE]
    write_json_atomic(written[0], doc)
    write_json_atomic(written[1], prediction.settings)
    written.extend(_write_observation(given, out))
    if prediction.video is not None:
        if not video_parts or not _joined_video(out / ROLLOUT_VIDEO, video_parts, prediction):
            write_video(out / ROLLOUT_VIDEO, prediction.video, prediction.fps,
                        canvas_comment(prediction.settings, prediction.video.shape[1:3]))
        written.append(out / ROLLOUT_VIDEO)
    if unusable is not None:
        raise ValueError(unusable)
    if plots:
        written.extend(write_run_pages(out, doc))
    return written


def unusable_actions(prediction: Prediction, kept: str) -> str | None:
    """What is said of a prediction whose actions hold NaN or inf (None where all are finite): how many, in which
    columns, `kept` (what became of them), and the likely causes. `write_run` says it as it keeps them; the agents'
    tools, which write no run for them, before writing any."""
    import numpy as np

    bad = ~np.isfinite(np.asarray(prediction.actions, dtype=np.float64))
    if not bad.any():
        return None
    columns = [c for c, column_bad in zip(prediction.columns, bad.any(axis=0)) if column_bad]
    return (f"the model returned NaN or inf in {int(bad.sum())} of {bad.size} action values (columns "
            f"{', '.join(columns)}); {kept}. A broken checkpoint, or float16 overflow: try --dtype bfloat16 or float32")


def write_run_whole(prediction: Prediction, out: Path, plots: bool = True, observation: Any = None) -> list[Path]:
    """`write_run` with Ctrl-C (SIGTERM) held until its last file, then stopping: one while the video or plots were
    written (seconds) left the new actions.json beside an earlier run's page, its plots removed, or a run without
    them. `predict` and `Prediction.save`; a dream holds its own (a second Ctrl-C stops its writing)."""
    from ..fileio import sigint_deferred

    with sigint_deferred():
        written = write_run(prediction, out, plots=plots, observation=observation)
    return written


def observation_pixels(observation: Any) -> dict[str, np.ndarray]:
    """`write_run`'s `observation` → uint8 RGB pixels by camera key: the last frame of each, as the policy reads it;
    one image given alone under `SINGLE_VIEW_KEYS[0]`, the key a policy reads it as. Also what a writer that writes
    its run later keeps meanwhile (`sim.world_model.DreamRecorder`), so the run shows the start as it was read."""
    from ..processing.observations import SINGLE_VIEW_KEYS, last_frame_pixels

    cameras = observation if isinstance(observation, Mapping) else {SINGLE_VIEW_KEYS[0]: observation}
    return {key: last_frame_pixels(source, key) for key, source in cameras.items()}


def cameras_read(prediction: Prediction, observation: Any) -> Any:
    """Of `observation` as the policy was given it (`Policy.act`'s: one image, or a dict that may also hold the
    robot's state, the prompt and cameras the embodiment does not read, as a simulator's does), what `write_run` keeps
    for `Prediction.save(observation=)`: a dict's cameras that the prediction's embodiment reads
    (`processing.observations.frame_keys`, as the policy picks them), one image as it is. Of a dict whose embodiment
    is found nowhere here (`_run_embodiment`: a `RemotePolicy`'s result for an embodiment the server registered), its
    images, arrays [H, W, 3] of uint8 or floats in [0, 1], the rest said in an INFO log line; one with none is
    refused naming its keys, before any file."""
    from ..processing.observations import frame_keys

    if not isinstance(observation, Mapping):
        return observation
    embodiment = _run_embodiment({"embodiment": prediction.embodiment, "settings": prediction.settings})
    if embodiment is not None:
        return {key: observation[key] for key in frame_keys(observation.keys(), embodiment.camera_keys,
                                                            embodiment.composite)}
    images = {key: value for key, value in observation.items() if _is_image(value)}
    left = [str(key) for key in observation if key not in images]
    if not images:
        raise ValueError(f"observation: embodiment {prediction.embodiment!r} is not known here, so its cameras are "
                         f"the dict's images, arrays [H, W, 3] of uint8 or floats in [0, 1], and none of "
                         f"{reprlib.repr(left)} is one; pass the camera images alone ({{key: image}}), or "
                         "register the embodiment first (worldpolicy.register_embodiment)")
    if left:
        logger.info("observation: embodiment %r is not known here: keeping its images %s, leaving out %s",
                    prediction.embodiment, sorted(map(str, images)), left)
    return images


def _is_image(value: Any) -> bool:
    """Whether `value` is one camera image as `cameras_read` keeps it: a numpy array [H, W, 3] of uint8 or floats."""
    import numpy as np

    return isinstance(value, np.ndarray) and value.ndim == 3 and value.shape[-1] == 3 and (
        value.dtype == np.uint8 or np.issubdtype(value.dtype, np.floating))


def observation_file(out: Path, key: str) -> Path:
    """Where the run in `out` keeps camera `key`'s observation image (`write_run`), named by `_camera_name`."""
    return Path(out) / OBSERVATION_FOLDER / f"{_camera_name(key)}.png"


def _camera_name(key: str) -> str:
    """A camera's name: its key's last part (`observation/wrist_image_left` -> `wrist_image_left`), as its observation
    image is named and `rollout_regions` labels it."""
    return key.rsplit("/", 1)[-1]


def _write_observation(cameras: Mapping[str, np.ndarray], out: Path) -> list[Path]:
    """Each camera's pixels at its `observation_file` (PNG: lossless, so `predict` can take the same inputs)."""
    from PIL import Image

    from ..fileio import atomic_path

    written = []
    for key, pixels in cameras.items():
        written.append(observation_file(out, key))
        with atomic_path(written[-1], suffix=".png") as tmp:
            Image.fromarray(pixels).save(tmp, format="PNG")
    return written


def _joined_video(path: Path, parts: Sequence[tuple[Path, int]], prediction: Prediction) -> bool:
    """`write_run`'s video as its `video_parts` joined; False (nothing written, the reason logged) where they do not
    allow it."""
    from ..processing.video import join_videos

    held = sum(count for _, count in parts)
    why = (f"they hold {held} frames, the video {len(prediction.video)}" if held != len(prediction.video)
           else join_videos(path, parts, prediction.fps))
    if why is not None:
        logger.info("%s encoded from the frames, not joined from its %d parts: %s", path.name, len(parts), why)
    return why is None


def write_run_pages(out: Path, doc: dict | None = None) -> list[Path]:
    """plots/ and index.html of the run `write_run` wrote in `out`, from its actions.json (`doc`, read when not
    given): `write_run`'s last step, or one taken later (`sim.world_model.DreamRecorder` clears its record out of
    the folder first, so the page lists the run's files alone)."""
    from .report import write_report

    doc = load_actions_file(Path(out) / ACTIONS_FILE) if doc is None else doc
    return [*plot_prediction(doc, Path(out) / "plots"), write_report(Path(out))]


def _remove_stale(out: Path, *, video: bool, plots: bool) -> None:
    """An earlier predict run's outputs that this one does not rewrite would describe the wrong run (an old
    rollout.mp4 next to new actions): remove them, and only them. A folder that holds no earlier predict run
    (`actions.json` of our schema) is left as it is, and so is anything in it we did not write."""
    try:
        load_actions_file(out / ACTIONS_FILE)
    except (OSError, ValueError):
        return
    stale = [] if video else [out / ROLLOUT_VIDEO]
    stale.extend(p for pattern in PLOT_FILES for p in (out / "plots").glob(pattern))  # this run draws its own
    stale.extend((out / OBSERVATION_FOLDER).glob("*.png"))  # and keeps its own observation, or none
    if not plots:
        stale.append(out / REPORT_FILE)
    for path in stale:
        if path.is_file():
            path.unlink()
    for folder, emptied in ((out / "plots", not plots), (out / OBSERVATION_FOLDER, True)):
        if emptied and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def describe_rollout_video(mode: str | None, dream: bool = False) -> tuple[str, str]:
    """(caption, explanation) of a run's rollout.mp4 made in `mode` (`dream`: a dream run's, `worldpolicy dream`):
    the animation shows the caption, the report both, so the two name a clip alike. The model imagines the clip from
    the observation and the prompt (policy) or the actions it was given (forward dynamics; a dream's, chunk after
    chunk, the policy's), except in inverse dynamics, which is given every frame: its clip is those frames
    re-decoded."""
    if dream:
        return "dreamed video", ("imagined by the world model chunk after chunk, each under the actions the policy "
                                 "chose from the frame before it (frame 0: the start as the model sees it), not "
                                 "recorded")
    if mode == "inverse_dynamics":
        explanation = ("the frames the model was given, passed through its video autoencoder (inverse dynamics "
                       "imagines none)")
        return "re-decoded input video", explanation
    # what drives the imagined future
    given = "the actions it was given" if mode == "forward_dynamics" else "the prompt"
    explanation = (f"imagined by the model: the future it predicts from the observation (frame 0) and {given}, "
                   "not recorded")
    return "imagined video", explanation


def rollout_regions(run_dir: Path,
                    prediction: Mapping[str, Any]) -> dict[str, tuple[float, float, float, float]] | None:
    """Where each camera lies in the frames of the run's rollout.mp4, by the camera's name (its key's last part, as its
    observation image is named): the model's frames are its embodiment's cameras composed into one picture
    (`processing.observations.composite_regions`), which the animation labels part by part. The cameras the run was
    given: its observation images (`observation_file`), else its `--camera KEY` inputs (settings' `inputs`, an
    inverse dynamics run's clips). None where neither names any, where one image was given (pre-composed, or an
    embodiment's one camera: nothing to tell apart), and for an embodiment found nowhere here (`_run_embodiment`)."""
    from ..processing.observations import SINGLE_VIEW_KEYS, composite_regions

    folder = run_dir / OBSERVATION_FOLDER
    given = {path.stem for path in folder.glob("*.png")} if folder.is_dir() else set()
    if not given:
        inputs = settings_of(prediction).get("inputs")
        flags = inputs if isinstance(inputs, Mapping) else {}
        given = {_camera_name(flag) for flag in flags if flag.startswith("--camera ")}
    embodiment = _run_embodiment(prediction)
    if embodiment is None:
        return None
    keys = [key for key in (*embodiment.camera_keys, *SINGLE_VIEW_KEYS) if _camera_name(key) in given]
    regions = composite_regions(keys, embodiment.camera_keys, embodiment.composite) if keys else None
    if regions is None or len(regions) < 2:
        return None
    return {_camera_name(key): box for key, box in regions.items()}


def regions_said(regions: Mapping[str, Sequence[float]]) -> str:
    """`rollout_regions`' places in words, for a page that shows rollout.mp4 itself, unlabelled:
    `top: wrist_image_left, bottom left: exterior_image_1_left, bottom right: exterior_image_2_left`."""
    def place(top: float, left: float, bottom: float, right: float) -> str:
        rows = "" if (top, bottom) == (0, 1) else "top" if top == 0 else "bottom" if bottom == 1 else "middle"
        columns = "" if (left, right) == (0, 1) else "left" if left == 0 else "right" if right == 1 else "middle"
        return " ".join(word for word in (rows, columns) if word) or "whole"

    return ", ".join(f"{place(*box)}: {name}" for name, box in regions.items())


def _run_embodiment(prediction: Mapping[str, Any]) -> Embodiment | None:
    """The embodiment a run's actions name, as registered here, else as the run's checkpoint (its settings') ships it:
    the shipped model's `panda_reach` is registered nowhere. Found without fetching anything (a hub id's snapshot
    not yet here is not looked for); None where neither has it."""
    from ..embodiments import get_embodiment
    from ..models import resolve_checkpoint
    from ..policy import checkpoint_embodiment

    key = prediction.get("embodiment")
    try:
        return get_embodiment(key)
    except (KeyError, ValueError, TypeError):
        pass
    checkpoint = settings_of(prediction).get("checkpoint")
    if not isinstance(checkpoint, str):
        return None
    try:
        own = checkpoint_embodiment(resolve_checkpoint(checkpoint, fetch=False), key)
    except (KeyError, ValueError, OSError):
        return None
    return own if not isinstance(own, str) and own.key == key else None


def resolve_actions_path(path: str | Path) -> Path:
    """`ACTIONS.json` or a run directory holding `actions.json` → the actions file path."""
    from ..fileio import folder_kind

    path = Path(path)
    if path.is_dir():
        path = path / ACTIONS_FILE
        if not path.is_file():
            found = folder_kind(path.parent)  # a sim or training run has no chunk to draw, but a page of its own
            other = (f"; it holds {found[0].what} ({found[1]}): `worldpolicy report {path.parent}` writes its page"
                     if found is not None and found[0].writer not in (None, "predict", "viz") else "")
            # a folder of runs (demo's --out) given where one of them was meant
            runs = sorted(sub.name for sub in path.parent.iterdir() if (sub / ACTIONS_FILE).is_file())
            if found is None and runs:
                other = (f"; the predict runs in it are {', '.join(runs)}: draw one of them, e.g. `worldpolicy viz "
                         f"{path.parent / runs[0]}`")
            raise FileNotFoundError(f"run directory {str(path.parent)!r} has no {ACTIONS_FILE} (a predict run's action "
                                    f"chunk, what viz draws){other}")
    elif not path.exists():
        raise FileNotFoundError(f"path: {str(path)!r} does not exist; accepted: an actions file ({ACTIONS_FILE}, what "
                                "predict writes) or a run directory holding one")
    elif not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} is neither an actions file nor a run directory")
    return path


def visualize(
    path: str | Path,
    out_dir: str | Path | None = None,
    animate: bool = True,
    video: str | Path | None = None,
    video_label: str | None = None,
    fmt: str = "png",
) -> list[Path]:
    """Plots for an actions file (into `out_dir`, default `<its folder>/plots`) in `fmt` (png, or pdf / svg for a
    paper), and `animation.mp4`.

    The animation puts a playhead on the time series beside `video` (default: `rollout.mp4` next to the actions
    file, if present); without any video it animates the plot alone. `video_label` captions the video (default: what
    the run's rollout.mp4 shows, `describe_rollout_video`, or "video" for another one: say "real robot" for a
    recording, so it is not taken for the model's imagined clip).
    """
    if video_label is not None and not (isinstance(video_label, str) and video_label.strip()):
        raise ValueError(f"video_label={video_label!r}: expected a caption, e.g. 'real robot', or None for the default")
    fmt = check_figure_format(fmt, "fmt")
    from ..processing.observations import VIDEO_SUFFIXES
    from ..processing.video import iter_video, read_video
    from .video import animate_actions

    actions_path = resolve_actions_path(path)
    prediction = load_actions_file(actions_path)
    try:  # the file's values (a run whose model returned NaN keeps them): say which file, before anything is read
        _check_actions(prediction["actions"], prediction["columns"], prediction["units"])
    except ValueError as exc:
        raise ValueError(f"actions file {str(actions_path)!r}: {exc}") from None
    run_dir = actions_path.parent
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "plots"
    video_path = Path(video) if video is not None else run_dir / ROLLOUT_VIDEO
    if video is not None and not video_path.is_file():  # named as given, before anything is read or written
        what = "is not a file" if video_path.exists() else "does not exist"
        raise FileNotFoundError(f"video: {str(video)!r} {what}; "
                                f"accepted: a video file ({', '.join(sorted(VIDEO_SUFFIXES))}) to animate beside the "
                                "actions")
    _refuse_overwriting_inputs(out_dir, {"path": actions_path, "video": video_path if video is not None else None}, fmt)
    frames, video_fps = None, None
    if animate and (video is not None or video_path.is_file()):  # read before anything is written
        video_fps = read_video(video_path, max_frames=1)[1]
        frames = iter_video(video_path)  # every frame is drawn, decoded as it is: a long clip is never held whole
    written = plot_prediction(prediction, out_dir, fmt)
    clip = clip_rows_of(prediction)  # an inverse dynamics clip's frames: the re-decoded clip's captions
    if animate:
        written.append(
            animate_actions(
                prediction["actions"],
                prediction["columns"],
                prediction["units"],
                prediction["fps"],
                out_dir / ANIMATION_FILE,
                gripper_column=gripper_columns(prediction, prediction["columns"]),
                video=frames,
                video_fps=video_fps,
                title=run_title(prediction),
                video_label=video_label if video_label is not None
                else describe_rollout_video(prediction.get("mode"), is_dream(prediction))[0] if video is None
                else "video",
                real_rows=real_rows_of(prediction),
                clip=run_rows_of(prediction),  # a whole clip's windows, or a whole trajectory's chunks
                # the run's re-decoded clip holds the clip's frames used, one each: captioned by their clip frame
                frame_numbers=clip.frames_used if clip is not None and video is None else None,
                video_regions=rollout_regions(run_dir, prediction) if video is None else None,
            )
        )
    # An earlier run's figure this one does not redraw would sit beside it as if it belonged. PDFs or SVGs for a paper
    # replace only their own kind: the PNGs and animation the run's page shows stay.
    ours = (*(f"{n}.{fmt}" for n in PLOT_NAMES), *([ANIMATION_FILE] if fmt == "png" else []))
    for stale in {p for pattern in ours for p in out_dir.glob(pattern)} - set(written):
        stale.unlink()
    return written


def _refuse_overwriting_inputs(out_dir: Path, inputs: dict[str, Path | None], fmt: str) -> None:
    """The plots and animation go to fixed names in `out_dir`: an input stored under one of them would be lost."""
    for name, given in inputs.items():
        if given is None:
            continue
        target = given.resolve()
        if target.parent == out_dir.resolve() and (target.suffix.lower() == f".{fmt}" or target.name == ANIMATION_FILE):
            raise ValueError(f"{name}={str(given)!r} is in the output folder {str(out_dir)!r}, where this writes "
                             f"{ANIMATION_FILE} and the plots (.{fmt}); choose another out_dir (or move the input)")
