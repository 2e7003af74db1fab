"""Runs, sim episodes and dataset episodes as Rerun recordings (rerun.io; the `rerun` extra): camera frames,
scalars and text on one scrubbable timeline, as LeRobot's `lerobot-dataset-viz` shows episodes.

    from worldpolicy.viz.rerun import RerunTarget, write_run_recording
    write_run_recording("runs/pick", RerunTarget(file="runs/pick.rrd"))   # then: rerun runs/pick.rrd

A run's entities are logged on two timelines, `step` (a frame or action row, from 0) and `time` (seconds, step / fps at
the recorded rate), as are a live sim episode's (`sim.rerun`); a dataset's on those LeRobot's `lerobot-dataset-viz`
uses, `frame_index` and `timestamp` (the episode's recorded `timestamp` column, seconds), so that the two viewers'
recordings of one dataset share their axes (`at_step`'s `clock`). A predict run: its action chunk (`action/<column>`, a
series each, named `column [unit]` from its actions.json), its imagined video (`rollout`, frame i + 1 following action
i), its observation images at step 0 (`observation/<camera>`), its prompt (`prompt`) and what it is (`about`: its title,
what its video shows). A sim run keeps each recorded episode's video and outcome, not its steps' joints or actions
(`worldpolicy sim --rerun` logs those live, as it runs: `sim.rerun`): `<episode>/video`, `<episode>/prompt`,
`<episode>/outcome`. A dataset's episodes are written by `data.show.rerun_dataset`, with the helpers here. Frames are
stored as JPEG (`JPEG_QUALITY`): a recording of raw frames is 10-20 times larger. rerun is imported inside the
functions, so importing this module stays light and without the extra.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..embodiments import unit_label

if TYPE_CHECKING:
    import rerun as rr

__all__ = ["APPLICATION_ID", "FRAME_INDEX", "JPEG_QUALITY", "RERUN_SUFFIX", "STEP", "TIME", "TIMESTAMP", "Clock",
           "RerunTarget", "at_step", "check_rerun", "entity", "image", "log_columns", "log_frames", "log_sim_run",
           "log_text", "recording", "write_run_recording"]

APPLICATION_ID = "worldpolicy"  # what the viewer groups the recordings under
RERUN_SUFFIX = ".rrd"
JPEG_QUALITY = 95  # each logged frame's (`rr.Image.compress`)
STEP, TIME = "step", "time"  # the two timelines a run's and a live sim episode's entities are logged on
# ... and a dataset episode's, by the names and types LeRobot's `lerobot-dataset-viz` logs them under: a sequence and a
# timestamp (seconds since the epoch, which the viewer shows as seconds from 0 near it)
FRAME_INDEX, TIMESTAMP = "frame_index", "timestamp"

# Where row i of what is logged sits in time: a rate in frames per second (`step` i, `time` i / fps), or a dataset
# episode's recorded `timestamp` column (`frame_index` i, `timestamp` its row i)
Clock = float | np.ndarray


@dataclass(frozen=True)
class RerunTarget:
    """Where a recording goes: exactly one of an .rrd `file` (written whole, then renamed into place), `spawn` (a local
    viewer started, `rr.spawn`) or `connect` (a running viewer's gRPC URL, `rerun+http://127.0.0.1:9876/proxy`).
    `flags` names the three in errors (the parameters, or a command's flags)."""

    file: str | Path | None = None
    spawn: bool = False
    connect: str | None = None
    flags: tuple[str, str, str] = ("file", "spawn", "connect")

    def __post_init__(self) -> None:
        file_flag, spawn_flag, connect_flag = self.flags
        given = [flag for flag, value in zip(self.flags, (self.file, self.spawn, self.connect))
                 if value is not None and value is not False]
        if len(given) != 1:
            raise ValueError(f"{' and '.join(given) if given else 'no recording target'} given; accepted: exactly one "
                             f"of {file_flag} (an {RERUN_SUFFIX} file), {spawn_flag} (a local viewer) or "
                             f"{connect_flag} (a running viewer's URL)")
        if self.connect is not None and not (isinstance(self.connect, str) and self.connect.strip()):
            raise ValueError(f"{connect_flag}={self.connect!r}: expected a viewer's URL, e.g. "
                             "rerun+http://127.0.0.1:9876/proxy")
        if self.file is not None:
            path = Path(self.file)
            if path.is_dir():
                raise ValueError(f"{file_flag}={str(self.file)!r} is a folder; give the {RERUN_SUFFIX} file's path")
            if path.suffix.lower() != RERUN_SUFFIX:
                raise ValueError(f"{file_flag}={str(self.file)!r}: expected a file named *{RERUN_SUFFIX} (what the "
                                 "Rerun viewer opens)")
            blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
            if blocking is not None:
                raise ValueError(f"{file_flag}={str(self.file)!r} is under {str(blocking)!r}, which is a file")


def _rerun() -> Any:
    from ..extras import extra_imports

    with extra_imports("a Rerun recording"):
        import rerun
    return rerun


def check_rerun() -> None:
    """The `rerun` extra's absence refused (`extras.extra_imports`' error) before a command's heavy work: a sim run
    that records live loads its policy after this."""
    _rerun()


@contextmanager
def recording(target: RerunTarget, name: str, *,
              keep_partial: Callable[[], bool] | None = None) -> Iterator[rr.RecordingStream]:
    """A recording stream named `name` into `target`; a file is written under a temporary name and renamed once the
    block has logged everything (an error or Ctrl-C leaves no half file, and an earlier one in place). With
    `keep_partial`, an error or Ctrl-C in the block renames what it logged into place before it goes on up where
    `keep_partial()` says it logged something worth keeping: a live recording (`worldpolicy sim --rerun`) keeps the
    steps it logged before a policy server died, and leaves an earlier file in place when it was refused before its
    first step. A viewer that cannot be started or reached is refused naming its flag (`_viewer_refused`)."""
    from ..fileio import atomic_path

    rr = _rerun()
    rec = rr.RecordingStream(APPLICATION_ID)
    rec.set_log_time_enabled(False)  # the viewer opens on `step` / `time`, not on when this ran
    rec.set_log_tick_enabled(False)
    rec.send_recording_name(name)
    if target.file is not None:
        stopped: BaseException | None = None
        with atomic_path(target.file, suffix=RERUN_SUFFIX) as tmp:
            rec.save(tmp)
            try:
                yield rec
            except BaseException as stop:
                if keep_partial is None or not keep_partial():
                    raise
                stopped = stop  # the block leaves without error: the file renamed, then the exception raised again
            else:
                rec.flush()
            finally:
                rec.disconnect()  # the file closed (its footer written) before it is renamed, or removed
        if stopped is not None:
            raise stopped
        return
    with _viewer_refused(target):
        if target.spawn:
            rec.spawn()
        else:
            rec.connect_grpc(target.connect)
    try:
        yield rec
        with _viewer_refused(target):  # a URL no viewer answers at fails here, once the data is to be sent
            rec.flush()
    finally:
        rec.disconnect()


@contextmanager
def _viewer_refused(target: RerunTarget) -> Iterator[None]:
    """rerun's RuntimeError where no viewer could be started (no `rerun` executable on PATH) or reached (nothing
    answers at the URL) as a ValueError naming the flag, a line for the command to say, not a traceback."""
    try:
        yield
    except RuntimeError as exc:
        said = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if target.spawn:
            raise ValueError(f"{target.flags[1]}: {said} (the rerun extra installs the viewer as `rerun` beside "
                             f"Python: put that folder on PATH, or write a file with {target.flags[0]})") from None
        raise ValueError(f"{target.flags[2]}={target.connect!r}: {said}; is a Rerun viewer running there "
                         "(`rerun`)?") from None


def entity(*parts: str) -> str:
    """An entity path of `parts` as given (a camera key `observation.images.front`, a column `joint/1`), each escaped
    so that none is split or read as rerun's syntax."""
    rr = _rerun()
    return "/" + "/".join(rr.escape_entity_path_part(part) for part in parts)


def at_step(rec: rr.RecordingStream, step: int, clock: Clock) -> None:
    """What `rec` logs next is at row `step` on both timelines of `clock` (`Clock`): at a rate, `step` and `time` =
    step / fps seconds; of a dataset's recorded timestamps, `frame_index` and `timestamp` = clock[step]."""
    if isinstance(clock, np.ndarray):
        rec.set_time(FRAME_INDEX, sequence=step)
        rec.set_time(TIMESTAMP, timestamp=float(clock[step]))
    else:
        rec.set_time(STEP, sequence=step)
        rec.set_time(TIME, duration=step / clock)


def _time_columns(steps: np.ndarray, clock: Clock) -> list[Any]:
    """Rows `steps` on both timelines of `clock`, as `at_step` places one row."""
    rr = _rerun()
    if isinstance(clock, np.ndarray):
        return [rr.TimeColumn(FRAME_INDEX, sequence=steps),
                rr.TimeColumn(TIMESTAMP, timestamp=clock[steps].astype(np.float64))]
    return [rr.TimeColumn(STEP, sequence=steps), rr.TimeColumn(TIME, duration=steps / clock)]


def image(frame: np.ndarray) -> Any:
    """`frame` (uint8 RGB [H, W, 3]) as the image a recording stores: JPEG at `JPEG_QUALITY`."""
    return _rerun().Image(np.ascontiguousarray(frame)).compress(jpeg_quality=JPEG_QUALITY)


def log_frames(rec: rr.RecordingStream, path: str, frames: Iterable[np.ndarray], clock: Clock) -> None:
    """Each of `frames` (uint8 RGB [H, W, 3], read one at a time) as an image at `path`, frame i at row i of `clock`
    (`at_step`)."""
    for step, frame in enumerate(frames):
        at_step(rec, step, clock)
        rec.log(path, image(frame))


def log_columns(rec: rr.RecordingStream, path: str, values: Any, columns: Sequence[str], units: Sequence[str],
                clock: Clock, *, first_step: int = 0) -> None:
    """`values` [steps, columns] as a series per column at `path/<column>`, named `column [unit]` (units as the file
    that holds them names them: `embodiments.unit_label`; none where `units` is empty), row i at row first_step + i
    of `clock` (`at_step`; a chunk that starts later in an episode)."""
    rr = _rerun()
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    if values.shape[1] != len(columns):
        raise ValueError(f"{path}: {values.shape[1]} values a row for {len(columns)} columns")
    times = _time_columns(first_step + np.arange(len(values)), clock)
    for k, column in enumerate(columns):
        series = f"{path}/{rr.escape_entity_path_part(column)}"
        rec.log(series, rr.SeriesLines(names=unit_label(column, units[k] if units else "")), static=True)
        rec.send_columns(series, indexes=times, columns=rr.Scalars.columns(scalars=values[:, k]))


def log_text(rec: rr.RecordingStream, path: str, text: str) -> None:
    """`text` at `path`, for the whole recording (a task, a prompt, an outcome)."""
    rec.log(path, _rerun().TextDocument(text), static=True)


def write_run_recording(path: str | Path, target: RerunTarget) -> None:
    """A predict run (its folder, or its actions.json: `run.resolve_actions_path`) as a recording into `target`: its
    action chunk, imagined video, observation images and prompt (module docstring). The run is read and checked
    before anything is logged."""
    from ..processing.observations import last_frame_pixels
    from ..processing.video import iter_video
    from .plots import _check_fps, is_dream, load_actions_file, run_title, settings_of
    from .run import OBSERVATION_FOLDER, ROLLOUT_VIDEO, describe_rollout_video, resolve_actions_path

    actions_path = resolve_actions_path(path)
    prediction = load_actions_file(actions_path)
    run_dir = actions_path.parent
    try:
        fps = _check_fps(prediction["fps"])
    except ValueError as exc:
        raise ValueError(f"actions file {str(actions_path)!r}: {exc}") from None
    video = run_dir / ROLLOUT_VIDEO
    observed = sorted((run_dir / OBSERVATION_FOLDER).glob("*.png"))
    prompt = settings_of(prediction).get("prompt")
    title = about = run_title(prediction)
    if video.is_file():
        caption, explanation = describe_rollout_video(prediction.get("mode"), is_dream(prediction))
        about += f"\n\n{ROLLOUT_VIDEO} (`rollout`), the {caption}: {explanation}"
    with recording(target, title) as rec:
        log_text(rec, "/about", about)
        log_columns(rec, "/action", prediction["actions"], prediction["columns"], prediction["units"], fps)
        if isinstance(prompt, str) and prompt:
            log_text(rec, "/prompt", prompt)
        for image in observed:  # what the model started from: step 0, as the video's frame 0
            log_frames(rec, entity(OBSERVATION_FOLDER, image.stem), [last_frame_pixels(image, str(image))], fps)
        if video.is_file():
            log_frames(rec, "/" + Path(ROLLOUT_VIDEO).stem, iter_video(video), fps)


def log_sim_run(rec: rr.RecordingStream, run_dir: str | Path, episodes: Sequence[Mapping[str, Any]]) -> int:
    """A sim run's recorded episodes (its `videos/episode_SEED.mp4`), each under its video's name
    (`fileio.sim_episode_name`: `episode_0012`, the entity `worldpolicy sim --rerun` logs it under live): `video` at
    the rate the file carries, `prompt` and `outcome` (as the run's page captions it) from its record in `episodes`
    (report.json's, by seed); how many were logged. A run keeps no per-step joints or actions to log."""
    from ..processing.video import iter_video, read_video
    from .report import SIM_EPISODE_VIDEOS, _episode_seed, episode_outcome

    run_dir = Path(run_dir)
    by_seed = {str(record.get("seed")): record for record in episodes}
    videos = sorted(run_dir.glob(SIM_EPISODE_VIDEOS))
    for video in videos:
        fps = read_video(video, max_frames=1)[1]
        log_frames(rec, entity(video.stem, "video"), iter_video(video), fps)
        record = by_seed.get(_episode_seed(video.relative_to(run_dir).as_posix()))
        if record is not None:
            if record.get("prompt"):
                log_text(rec, entity(video.stem, "prompt"), str(record["prompt"]))
            log_text(rec, entity(video.stem, "outcome"), episode_outcome(record))
    return len(videos)
