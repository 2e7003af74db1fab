"""The operations agents call (MCP server, Strands tool), framework-neutral: plain arguments in, JSON-able dicts out.

Every input is checked before a checkpoint is loaded, and a bad one raises `ToolInputError` naming the parameter,
what was given and what is accepted; `error_payload` turns any exception into the structured error agents receive.
Checkpoints are loaded once and kept in a bounded LRU cache; model calls are serialised (one device).
Files are read only from `input_roots` and written only under `output_dir`, in fresh run directories.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import reprlib
import secrets
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import error_accepted, error_parameter, is_integer, is_real
from ..extras import MissingExtraError, missing_extra
from ..fileio import (
    ACTIONS_FILE,
    COMPARE_FILE,
    DREAM_FILE,
    OPENLOOP_FILE,
    REPORT_FILE,
    SHOW_FILE,
    SIM_EPISODES_CSV,
    is_checkpoint,
)
from ..logcapture import logged_warnings
from ..policy import (
    EMBODIMENT_FILE,
    TRAINER_STATE_FILE,
    input_warnings,
    listed_embodiments,
    trained_embodiment,
    trained_frames,
)
from ..processing import observations
from ..processing.actions import PHYSICAL_FLOAT32_ACCEPTED, beyond_float32
from ..processing.prompts import check_length
from ..results import MODES
from ..sim.tasks import BUILTIN_POLICIES, EVAL_SEED

logger = logging.getLogger(__name__)

__all__ = ["CallTimeout", "Progress", "Range", "ToolInputError", "Toolbox", "ToolboxConfig", "check_call_timeout",
           "error_payload", "plot_images"]

Progress = Callable[[float, "float | None", str], None]
MAX_STEPS = 100
MAX_GUIDANCE = 50
MAX_SIM_EPISODES = 20
SIM_ROBOT = "panda"  # the arm `evaluate_in_sim` runs on (its joint count is checked before anything loads)
MAX_SIM_STEPS = 1000  # per episode; the tasks' own limits are 60-150. A random policy never ends an episode early
MAX_OPEN_LOOP_CHUNKS = 512  # evaluate_open_loop: predictions one call makes (each a chunk's denoising) before refusing
OPEN_LOOP_BATCH_SIZE = 8  # evaluate_open_loop: chunks per batched forward (`dataset eval`'s --batch-size default)
MAX_COMPARED_RUNS = 10  # compare_sim_runs: runs one comparison reads (pairs grow as n(n-1)/2)
# compare_sim_runs: the seeds whose prompts differ that the result lists (all are compare.json's; `reworded_seeds`
# counts them): a sweep of paraphrases over hundreds of seeds would fill an agent's context
MAX_LISTED_PROMPT_SEEDS = 20
MAX_DREAM_CHUNKS = 32  # dream: chunks one call imagines (each a policy call and a world-model call, one after another)
MAX_SHOWN_EPISODES = 20  # show_dataset: episodes one page shows (each camera's clip decoded and re-encoded)
MAX_LISTED_TASKS = 50  # show_dataset: the task texts the result lists (all are on the page; `tasks` counts them)
MAX_INLINE_PLOTS = 3  # show_plots: the first plots, each at most this large, travel in the result
MAX_INLINE_PLOT_BYTES = 2 * 1024 * 1024
CLIP_BATCH_SIZE = 8  # infer_actions(whole_clip=true): windows per batched forward (Policy.infer_actions' batch_size)
# infer_actions(whole_clip=true): frames one call decodes and holds (68 s of DROID's 30 fps, 64 windows of 32), counted
# as they decode: past it the call is refused before the model loads
MAX_CLIP_FRAMES = 2048
MAX_TRAJECTORY_CHUNKS = 32  # imagine(whole_trajectory=true): chunks one call imagines (a world-model call each)
# the files the command line reads (TIFF, 16-bit and float included), as the accepted list an error names
IMAGE_SUFFIXES = tuple(sorted(observations.IMAGE_SUFFIXES))
VIDEO_SUFFIXES = tuple(sorted(observations.VIDEO_SUFFIXES))
# what `infer_actions` reads, as `--video` does: a clip, an animated image (GIF/WebP/TIFF) or a folder of frames
CLIP_SUFFIXES = tuple(sorted(observations.VIDEO_SUFFIXES | observations.IMAGE_SUFFIXES))


@dataclass(frozen=True)
class Range:
    """The bounds of a numeric argument (or, with `items`, of a list's length): the one place the tools' check
    (`check`), the `accepted` its error gives and the MCP input schema's minimum/maximum (`schema`) read them, so an
    agent's client is told the range before it calls."""

    low: int | float
    high: int | float | None = None  # inclusive; None: no upper bound
    integer: bool = True
    text: str | None = None  # `accepted` in words, where the bounds say it badly (a seed's [0, 2**63))
    items: bool = False  # the bounds are a list's length

    @property
    def accepted(self) -> str:
        if self.text is not None:
            return self.text
        kind = "an integer" if self.integer else "a number"
        return f"{kind} >= {self.low}" if self.high is None else f"{kind} in [{self.low}, {self.high}]"

    def holds(self, value: Any) -> bool:
        if self.items:
            value = len(value) if isinstance(value, (list, tuple)) else None
        number = is_integer(value) if self.integer else is_real(value, finite=False)
        return number and self.low <= value and (self.high is None or value <= self.high)

    def check(self, parameter: str, value: Any) -> None:
        """`value` refused, naming `parameter`, unless it is in range (`_must_be`); a list's items are not looked at."""
        if not self.holds(value):
            raise _must_be(parameter, value, self.accepted)

    def schema(self) -> dict[str, int | float]:
        """The JSON schema keywords that say the bounds (minimum/maximum, or minItems/maxItems)."""
        low, high = ("minItems", "maxItems") if self.items else ("minimum", "maximum")
        return {low: self.low, **({} if self.high is None else {high: self.high})}


SEED = Range(0, 2**63 - 1, text="an integer in [0, 2**63)")  # a sampling seed, as the tools accept it
STEPS = Range(1, MAX_STEPS)
GUIDANCE = Range(0, MAX_GUIDANCE, integer=False)
SIM_EPISODES = Range(1, MAX_SIM_EPISODES)
SIM_STEPS = Range(1, MAX_SIM_STEPS)
START_FRAME = Range(0, text="an integer >= 0 (a frame of the clip, from 0)")
DREAM_CHUNKS = Range(1, MAX_DREAM_CHUNKS)
OPEN_LOOP_EVERY = Range(1)  # frames between predictions
OPEN_LOOP_CHUNKS = Range(1, MAX_OPEN_LOOP_CHUNKS)
COMPARED_RUNS = Range(2, MAX_COMPARED_RUNS, items=True, text=f"a list of 2 to {MAX_COMPARED_RUNS} sim run folders")
SHOWN_EPISODES = Range(1, MAX_SHOWN_EPISODES, items=True,
                       text=f"a list of 1 to {MAX_SHOWN_EPISODES} episode indexes (from 0; negative from the end)")


# a tool call's wall-clock limit by default (`worldpolicy mcp --call-timeout`, the Strands tool's `configure`): a full
# checkpoint's first load and a 20-episode sim of it fit; past it the call is a `timeout` error (`CallTimeout`)
DEFAULT_CALL_TIMEOUT_S = 1800.0


def check_call_timeout(limit_s: Any) -> float | None:
    """A call's time limit as the adapters take it: seconds > 0, or None (no limit)."""
    if limit_s is not None and not (is_real(limit_s) and limit_s > 0):
        raise ValueError(f"call_timeout_s={limit_s!r}; accepted: seconds > 0, or None (no limit)")
    return limit_s


class CallTimeout(Exception):
    """A call that ran past its adapter's time limit (`setting`: where that is set), the `timeout` error an agent
    receives: where the call was (`reached`, its last progress message) and what became of its work (`stopped`)."""

    def __init__(self, limit_s: float, setting: str, reached: str,
                 stopped: str = "was stopped, its run folder removed"):
        super().__init__(f"the call ran past its limit of {limit_s:g} s a call ({setting}) and {stopped}; it had "
                         f"reached: {reached}; ask for less work (fewer episodes, chunks, steps or frames) or a "
                         "larger limit")
        self.limit_s = limit_s

    def to_dict(self) -> dict[str, Any]:
        return {"type": "timeout", "limit_s": self.limit_s, "message": str(self)}


class ToolInputError(ValueError):
    """A bad tool argument: which parameter, what was given, what is accepted."""

    def __init__(self, parameter: str, message: str, given: Any = None, accepted: Any = None):
        super().__init__(f"{parameter}: {message}")
        # none given: what the message says is accepted (a library check's "...; accepted: X", "expected X, got"),
        # which an agent reads as a field
        self.parameter, self.given = parameter, given
        self.accepted = error_accepted(message) if accepted is None else accepted

    def to_dict(self) -> dict[str, Any]:
        out = {"type": "invalid_input", "parameter": self.parameter, "message": str(self)}
        if self.given is not None:
            out["given"] = _jsonable(self.given)
        if self.accepted is not None:
            out["accepted"] = _jsonable(self.accepted, shorten=False)  # ours to say whole
        return out


def plot_images(result: Any) -> list[bytes]:
    """The PNG bytes of a result's plots (a prediction's `files.plots`, a visualization's `plots`) that `show_plots`
    returns as image content, so an agent that can see looks at them without reading files (the paths are not
    reachable from another machine over HTTP): the first MAX_INLINE_PLOTS, each up to MAX_INLINE_PLOT_BYTES. One
    selection for the MCP server and the Strands tool, which wrap the bytes as their frameworks want."""
    if not isinstance(result, dict):
        return []
    plots = result.get("plots") or (result.get("files") or {}).get("plots") or []
    images = (Path(path).read_bytes() for path in plots[:MAX_INLINE_PLOTS])
    return [data for data in images if len(data) <= MAX_INLINE_PLOT_BYTES]


MAX_ECHOED_CHARS = 500  # a value an error echoes back (`given`): longer as JSON, it is shortened
_ECHO = reprlib.Repr()  # keyword arguments only from Python 3.12
_ECHO.maxlevel, _ECHO.maxlist, _ECHO.maxtuple, _ECHO.maxdict = 3, 8, 8, 8
_ECHO.maxstring, _ECHO.maxother, _ECHO.maxlong = 200, 200, 40


def _jsonable(x: Any, shorten: bool = True) -> Any:
    """`x` as an error echoes it: itself where it is JSON (of at most MAX_ECHOED_CHARS, with `shorten`), else its
    shortened repr (a `state` of a million values came back whole)."""
    try:
        text = json.dumps(x)
    except (TypeError, ValueError):  # not JSON; nested too deep
        return _ECHO.repr(x)
    return x if not shorten or len(text) <= MAX_ECHOED_CHARS else _ECHO.repr(x)


def error_payload(exc: BaseException) -> dict[str, Any]:
    """Any exception → `{"type", "message", ...}`: input errors name the parameter; a call past its time limit is
    `timeout` (`CallTimeout`); a missing extra is `unavailable` (the pip command to run where the server runs); others
    say what failed."""
    if isinstance(exc, (ToolInputError, CallTimeout)):
        return exc.to_dict()
    if isinstance(exc, MissingExtraError):  # what to install where the server runs; no argument would fix it
        return {"type": "unavailable", "message": str(exc)}
    if isinstance(exc, FileNotFoundError):
        return {"type": "file_not_found", "message": str(exc)}
    if isinstance(exc, (ValueError, KeyError, TypeError)):
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        return {"type": "invalid_input", "message": str(message)}
    return {"type": "internal_error", "message": f"{type(exc).__name__}: {exc}"}


@dataclass
class ToolboxConfig:
    """Where checkpoints are found, where inputs may be read and outputs go, and how models are loaded."""

    output_dir: Path = Path("worldpolicy_runs")
    checkpoint_dirs: Sequence[Path] = ()
    input_roots: Sequence[Path] = ()  # empty: the current directory; output_dir is always one (chained calls)
    max_loaded: int = 2
    device: str | None = None
    dtype: str | None = None
    chunk_size: int | None = None
    resolution_tier: int | None = None
    load_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from ..hub import complete_snapshot
        from ..models import resolve_checkpoint

        self.output_dir = Path(self.output_dir).resolve()
        # `shipped` as a checkpoint argument names it; a folder that is not there would list no checkpoint, silently
        self.checkpoint_dirs = tuple(Path(resolve_checkpoint(str(p))).resolve() for p in self.checkpoint_dirs)
        for folder in self.checkpoint_dirs:  # a hub id's weights too, as the server starts: never in a tool call (a
            complete_snapshot(folder)  # listing's `check_checkpoint_complete` would fetch them, the client waiting)
        missing = [str(p) for p in self.checkpoint_dirs if not p.is_dir()]
        if missing:
            raise ValueError(f"checkpoint_dirs: {missing} are not existing folders; accepted: a checkpoint folder, a "
                             "folder of them, or shipped")
        missing = [str(p) for p in self.input_roots if not Path(p).is_dir()]
        if missing:  # every tool call reading from it would be refused, naming no setting
            raise ValueError(f"input_roots: {missing} are not existing folders")
        roots = (*self.input_roots, self.output_dir) if self.input_roots else (Path.cwd(), self.output_dir)
        self.input_roots = tuple(Path(p).resolve() for p in roots)
        if not is_integer(self.max_loaded) or self.max_loaded < 1:
            raise ValueError(f"max_loaded={self.max_loaded!r} must be an integer >= 1")
        # how every checkpoint loads: a bad value would otherwise fail each tool call once the server is up, as an
        # invalid_input naming none of the agent's arguments
        from ..embodiments import check_chunk_size, check_resolution_tier

        if self.chunk_size is not None:
            check_chunk_size(self.chunk_size)
        if self.resolution_tier is not None:
            check_resolution_tier(self.resolution_tier)
        if self.device is not None or self.dtype is not None:
            from ..engine.loading import resolve_device, resolve_dtype

            resolve_dtype(self.dtype, resolve_device(self.device))


def _unique_names(paths: Sequence[Path]) -> list[str]:
    """Each checkpoint by `models.checkpoint_name`, as its reports and the command line name it (`shipped` for the
    shipped model, not its folder's `panda_reach`, the embodiment's name; a hub snapshot by its hub id and commit,
    `OWNER/NAME@COMMIT`); a folder by
    its name, qualified by as many of its parent folders as it takes to tell it apart from another listed checkpoint
    of the same name (`/models/a/final`, `/models/b/final`: `a/final`, `b/final`): a client names the one it means,
    and the tools resolve that name. `paths` are distinct absolute paths."""
    from ..models import checkpoint_name

    own = [checkpoint_name(str(path)) for path in paths]
    # a name other than the folder's is kept as it is, unless two share it (then by their folders)
    not_folders = [name for name, path in zip(own, paths) if name != path.name]
    kept = [name != path.name and not_folders.count(name) == 1 for name, path in zip(own, paths)]
    depth = [1] * len(paths)
    while True:
        names = [own[i] if kept[i] else Path(*path.parts[-depth[i]:]).as_posix() for i, path in enumerate(paths)]
        clashing = {name for name in names if names.count(name) > 1}
        if not clashing:
            return names
        for i, name in enumerate(names):
            if name in clashing and not kept[i]:
                depth[i] += 1


class Toolbox:
    """All agent operations over one configuration and one bounded policy cache."""

    def __init__(self, config: ToolboxConfig | None = None):
        self.config = config or ToolboxConfig()
        self._policies: OrderedDict[tuple, Any] = OrderedDict()
        self._cache_lock = threading.Lock()  # the cache's contents, held briefly
        self._load_lock = threading.Lock()  # loading a checkpoint
        self._run_lock = threading.Lock()
        if not self._checkpoint_paths():  # said where the server starts, not first in an agent's failed call
            logger.warning("%s; listing, visualize_actions and scripted or random evaluate_in_sim still work",
                           self._no_checkpoint())

    # -- listing ----------------------------------------------------------------------------------------------

    def list_embodiments(self, checkpoint: str | None = None) -> dict[str, Any]:
        """The embodiments a call may name, as `worldpolicy embodiments` lists them (`policy.listed_embodiments`: the
        registry's, then each shipped model's own); or, with `checkpoint`, the one that checkpoint runs with when a
        call leaves `embodiment` out, which may be a robot of its own that no listing names."""
        from ..models import SHIPPED_NAME

        if checkpoint is not None:
            path = self.resolve_checkpoint(checkpoint)
            name = next((c["name"] for c in self.list_checkpoints()["checkpoints"] if Path(c["path"]) == path),
                        checkpoint)  # a path to one inside the checkpoint directories, not listed by name
            own = _own_embodiment(path, checkpoint)
            if (path / EMBODIMENT_FILE).is_file():
                return {"embodiments": [_embodiment_row(own, f"checkpoint {name} ({EMBODIMENT_FILE})", name)]}
            said = (f"was trained for it: its {TRAINER_STATE_FILE}" if trained_embodiment(path) is not None
                    else "names none: the default")
            return {"embodiments": [_embodiment_row(own, f"registry (checkpoint {name} {said})", None)]}
        served = {Path(c["path"]): c["name"] for c in self.list_checkpoints()["checkpoints"]}
        rows = []
        for listed in listed_embodiments():
            if listed.shipped is None:
                rows.append(_embodiment_row(listed.embodiment, "registry", None))
                continue
            name = served.get(listed.checkpoint.resolve())
            source = f"shipped model {listed.shipped}" + (
                "" if name else f" (not served here: start the server with --checkpoint-dir {SHIPPED_NAME} to use it)")
            rows.append(_embodiment_row(listed.embodiment, source, name))
        return {"embodiments": rows}

    def _checkpoint_paths(self) -> list[Path]:
        """The checkpoint folders the checkpoint directories hold: each directory itself, or its subfolders."""
        paths: list[Path] = []
        for root in self.config.checkpoint_dirs:
            candidates = [root] + (sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
            paths.extend(p for p in candidates if is_checkpoint(p) and p not in paths)  # a dir given twice: once
        return paths

    def _checkpoint_names(self) -> dict[Path, str]:
        """Each listed checkpoint folder -> the name `list_checkpoints` gives it (`_unique_names`)."""
        paths = self._checkpoint_paths()
        return dict(zip(paths, _unique_names(paths)))

    def checkpoint_name(self, ckpt: Path, names: dict[Path, str] | None = None) -> str:
        """`ckpt` as `list_checkpoints` names it, what the tools' `checkpoint` takes back (a result named the shipped
        model by its install path, which the listing calls `shipped`); a folder inside a checkpoint directory but
        not listed (deeper) by its path, which they take too. `names`: `_checkpoint_names()` already read (one scan
        of the checkpoint directories for several names)."""
        return (self._checkpoint_names() if names is None else names).get(ckpt, str(ckpt))

    def _no_checkpoint(self) -> str:
        """Why no model call can run here, and the setting that fixes it, as each adapter spells it."""
        dirs = ", ".join(str(p) for p in self.config.checkpoint_dirs) or "none"
        return (f"this server has no checkpoint: its checkpoint directories ({dirs}) hold no checkpoint folder (one "
                "with model_index.json or base_model.json, given itself or one level down); start `worldpolicy mcp` "
                "with --checkpoint-dir DIR (or `shipped`, the model in the package), or give the Strands tool "
                "configure(checkpoint_dirs=[...]) or WORLDPOLICY_CHECKPOINTS")

    def list_checkpoints(self) -> dict[str, Any]:
        names = self._checkpoint_names()
        found = []
        for path, name in names.items():
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            try:
                row = {"embodiment": _own_embodiment(path, name).key, "problem": None}
            except ToolInputError as exc:  # reported on its checkpoint only
                row = {"embodiment": None, "problem": str(exc).removeprefix("checkpoint: ")}
            row = {"name": name, "path": str(path), "size_mb": round(size / 1e6, 2), **row}
            row["problem"] = row["problem"] or _load_problem(path)
            found.append(row)
        with self._cache_lock:
            keys = list(self._policies)
        loaded = [{"checkpoint": self.checkpoint_name(Path(k[0]), names), "embodiment": k[1]} for k in keys]
        return {
            "checkpoints": found,
            "checkpoint_dirs": [str(p) for p in self.config.checkpoint_dirs],
            # where a file argument may be, before one is refused for being elsewhere (`_input_path`)
            "input_roots": [str(p) for p in self.config.input_roots],
            "loaded": loaded,
            "max_loaded": self.config.max_loaded,
        }

    def list_world_models(self) -> dict[str, Any]:
        from .discovery import discover_world_models

        return discover_world_models()

    # -- checks -----------------------------------------------------------------------------------------------

    @staticmethod
    def _embodiment(embodiment: Any, *own: Any):
        """A registry embodiment by name, or one of `own` (a checkpoint's own embodiment, the shipped models' for
        `show_dataset`, which a call may name too: the caller picks it out, and the error lists it). A
        spec file is refused: tools read files only from the input roots, and the checkpoint that runs a robot of
        one's own carries its spec (embodiment.json)."""
        from ..embodiments import SPEC_FILE_SUFFIX, get_embodiment

        accepted = [r.embodiment.key for r in listed_embodiments() if r.shipped is None]
        accepted += [e.key for e in own if e is not None and e.key not in accepted]  # droid's, for one without
        if isinstance(embodiment, str) and embodiment.strip().endswith(SPEC_FILE_SUFFIX):
            raise ToolInputError("embodiment", "the tools take an embodiment name, not a spec file (a robot of one's "
                                 "own comes with its checkpoint, as embodiment.json)", embodiment, accepted)
        try:
            return get_embodiment(embodiment)
        except (KeyError, TypeError, ValueError) as exc:
            message = exc.args[0] if exc.args else str(exc)
            if isinstance(exc, KeyError) and "is not registered" in str(message):  # its hint names spec files
                message = f"unknown embodiment {embodiment!r}"
            raise ToolInputError("embodiment", str(message), embodiment, accepted) from None

    def _model(self, checkpoint: str | None, embodiment: str | None):
        """The checkpoint, and the embodiment asked for or else the checkpoint's own (droid for one without), as
        `Policy.from_pretrained` and the command line choose."""
        ckpt = self.resolve_checkpoint(checkpoint)
        return ckpt, self._checkpoint_embodiment(ckpt, embodiment, "checkpoint", checkpoint)

    def _checkpoint_embodiment(self, ckpt: Path, embodiment: str | None, parameter: str, given: Any):
        """The embodiment `ckpt` runs with for `embodiment` (None: its own); `parameter` names the checkpoint."""
        from ..embodiments import Embodiment
        from ..policy import checkpoint_embodiment

        own = _own_embodiment(ckpt, given, parameter)
        chosen = checkpoint_embodiment(ckpt, embodiment)  # this checkpoint's own embodiment, unless another is asked
        return chosen if isinstance(chosen, Embodiment) else self._embodiment(chosen, own)

    def resolve_checkpoint(self, checkpoint: str | None) -> Path:
        """A checkpoint name from `list_checkpoints`, or a path inside one of the checkpoint directories; a hub id
        without its commit (as `--checkpoint-dir` gave it) names the one listed snapshot of it."""
        from ..hub import split_revision

        paths = self._checkpoint_paths()  # names and paths only: not the listing's sizes and completeness checks
        by_name = dict(zip(_unique_names(paths), paths))
        if checkpoint is not None and not isinstance(checkpoint, str):  # the Strands tool's arguments are not typed
            raise ToolInputError("checkpoint", "expected a checkpoint name", checkpoint, sorted(by_name))
        if not by_name:
            raise ToolInputError("checkpoint", self._no_checkpoint(), checkpoint, [])
        if not checkpoint:
            if len(by_name) != 1:
                raise ToolInputError("checkpoint", "no checkpoint given", checkpoint, sorted(by_name))
            checkpoint = next(iter(by_name))
        pinned = [name for name in by_name if split_revision(name)[0] == checkpoint != name]
        if checkpoint not in by_name and len(pinned) == 1:
            checkpoint = pinned[0]
        if checkpoint in by_name:
            return by_name[checkpoint]
        path = Path(checkpoint).expanduser().resolve()
        if any(path == r or r in path.parents for r in self.config.checkpoint_dirs) and is_checkpoint(path):
            return path
        raise ToolInputError(
            "checkpoint",
            "not a checkpoint folder (with model_index.json or base_model.json) inside the checkpoint directories",
            checkpoint,
            sorted(by_name),
        )

    def _resolve(self, value: Any, parameter: str) -> Path:
        if not isinstance(value, str) or not value:
            raise ToolInputError(parameter, "expected a file path", value)
        path = Path(value).expanduser()
        return (path if path.is_absolute() else self.config.input_roots[0] / path).resolve()

    def _readable(self, path: Path) -> bool:
        """`path` (resolved: links followed) is inside one of the input roots."""
        return any(path == r or r in path.parents for r in self.config.input_roots)

    def _input_file(self, parameter: str, value: Any, suffixes: Sequence[str], folder: bool = False) -> Path:
        """A file inside the readable folders with one of `suffixes`; or, with `folder`, a folder there (of frames:
        what is in it is read by `processing.observations.image_files`)."""
        path = self._resolve(value, parameter)
        if not self._readable(path):
            raise ToolInputError(
                parameter,
                "file is outside the folders this server may read",
                value,
                [str(r) for r in self.config.input_roots],
            )
        if folder and path.is_dir():
            # the frames the reader takes from it, each where it leads: a link in the folder is not a way out
            outside = [p.name for p in path.iterdir() if p.is_symlink() and not self._readable(p.resolve())]
            if outside:
                raise ToolInputError(parameter, f"folder links to files outside the folders this server may read "
                                     f"({', '.join(sorted(outside)[:5])})", value,
                                     [str(r) for r in self.config.input_roots])
            return path
        if not path.is_file():
            raise ToolInputError(parameter, f"{'file or folder' if folder else 'file'} {str(path)!r} does not exist",
                                 value)
        if path.suffix.lower() not in suffixes:
            raise ToolInputError(parameter, f"unsupported file type {path.suffix!r}", value,
                                 [*suffixes, "a folder of frames"] if folder else list(suffixes))
        return path

    @staticmethod
    def _prompt(prompt: Any) -> str:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ToolInputError("prompt", "expected a non-empty task description", prompt)
        try:
            check_length(prompt, "prompt")
        except ValueError as exc:
            raise ToolInputError("prompt", str(exc).removeprefix("prompt "), len(prompt)) from None
        return prompt

    @staticmethod
    def _sampling(seed: Any, steps: Any, guidance: Any) -> None:
        """The sampling arguments, None or in their ranges (`SEED`, `STEPS`, `GUIDANCE`: `Range.check`)."""
        for name, value, bounds in (("seed", seed, SEED), ("steps", steps, STEPS), ("guidance", guidance, GUIDANCE)):
            if value is not None:
                bounds.check(name, value)

    def _observation(self, ckpt, emb, image: str | None, images: dict[str, str] | None, state: Any):
        """(observation, state, warnings, the shape warned about as one camera's view or None, the (height, width) of
        the image or of each camera's), checked for checkpoint `ckpt`."""
        if (image is None) == (images is None):
            raise ToolInputError(
                "image",
                "give exactly one of image (one picture) or images (camera key → picture)",
                {"image": image, "images": images},
                {"images keys": list(emb.camera_keys)},
            )
        warnings: list[str] = []
        said = None
        if image is not None:
            obs: Any = self._input_file("image", image, IMAGE_SUFFIXES)
            height, width = _readable_image(obs, "image", image).shape[:2]  # before any model loads
            warnings += _single_view(ckpt, emb, f"image {image!r}", height, width,
                                     "images={" + ", ".join(f'"{k}": FILE' for k in emb.camera_keys) + "}")
            said = (height, width) if warnings else None
            sizes: Any = (height, width)
        else:
            if not isinstance(images, dict) or not images:
                raise ToolInputError("images", "expected a mapping camera key → image path", images)
            from ..processing.observations import camera_key_problems, frame_keys

            problems = camera_key_problems(emb, list(images))
            if problems:  # as --camera: every camera of a composite, or the one an uncomposed embodiment sees
                raise ToolInputError(
                    "images",
                    f"camera keys do not match embodiment {emb.key!r} ({problems}); give "
                    + ("each camera's image" if emb.composite is not None else "one camera's image (it sees one)"),
                    sorted(images),
                    list(emb.camera_keys),
                )
            obs = {
                k: _readable_image(self._input_file(f"images[{k}]", v, IMAGE_SUFFIXES), f"images[{k}]", v)
                for k, v in images.items()
            }
            sizes = {key: obs[key].shape[:2] for key in frame_keys(obs, emb.camera_keys, emb.composite)}
        return obs, self._state(emb, state), warnings, said, sizes

    @staticmethod
    def _state(emb, state: Any, per_frame: bool = False) -> Any:
        """The robot state a state-conditioned embodiment needs, checked as every other argument is: before a model
        loads, naming what was given and what is accepted. One given to an embodiment that does not condition on it is
        passed on unread: the run ignores it, and the call's warnings say so (`policy.ignored_state_warning`).
        `per_frame` (inverse dynamics) also takes one row per clip frame: a window from a later frame starts from
        that frame's state."""
        accepted = f"{emb.action_dim} {PHYSICAL_FLOAT32_ACCEPTED}: {', '.join(emb.columns)}"
        if per_frame:
            accepted += " (or a row of them per clip frame)"
        if not emb.state_history:
            return state
        if state is None:
            raise ToolInputError("state", f"embodiment {emb.key!r} conditions on the current state", None, accepted)
        try:
            values = np.asarray(state, dtype=np.float64) if _numeric_list(state) else None
        except ValueError:
            values = None
        if values is not None and not (per_frame and values.ndim == 2):
            values = values.reshape(-1)
        if values is None:
            raise ToolInputError("state", "expected a list of numbers", state, accepted)
        if values.shape[-1] != emb.action_dim:
            raise ToolInputError("state", f"has {values.shape[-1]} values{' a row' if values.ndim == 2 else ''}, "
                                 f"embodiment {emb.key!r} takes {emb.action_dim}", state, accepted)
        if beyond_float32(values, emb).any():
            raise ToolInputError("state", "holds NaN, inf or values beyond float32", state, accepted)
        return values

    def _actions(self, emb, actions: Any, actions_file: str | None) -> tuple[np.ndarray, str, list[str]]:
        """The actions to roll forward, their space and what is said of the file: `actions` rows in physical units, or
        an actions file read as every other reader reads it (`processing.actions.load_actions`: any of
        `ACTIONS_SUFFIXES`, a .csv's or .npz's columns by name, its units, `normalized`, the schema version; a bare
        .npy's rows in physical units), into model space, and its rate if it is not the embodiment's
        (`actions_rate_warning`: the rows go on without it)."""
        accepted = f"[T, {emb.action_dim}] with columns {list(emb.columns)}"
        if (actions is None) == (actions_file is None):
            raise ToolInputError(
                "actions", "give exactly one of actions ([[...], ...] physical units) or actions_file", None, accepted
            )
        if actions_file is not None:
            from ..processing.actions import ACTIONS_SUFFIXES, actions_rate_warning, load_actions, read_actions_file

            path = self._input_file("actions_file", actions_file, ACTIONS_SUFFIXES)
            try:  # the run warns of values far outside the training range, once, in the result
                content, where = read_actions_file(path)  # read once: its rows and the rate it names
                rows = load_actions(content, emb, warn=False, where=where)
                rate = actions_rate_warning(content, emb, where)
                return rows, "normalized", [rate] if rate is not None else []
            except ValueError as exc:  # "actions file '…': why": the parameter names the file, and `given` its path
                why = str(exc).removeprefix(f"actions file {str(path)!r}").removeprefix(":").strip()
                raise ToolInputError("actions_file", why, actions_file, accepted) from None
        try:
            a = np.asarray(actions, dtype=np.float64) if _numeric_list(actions) else None
        except ValueError:  # ragged rows
            a = None
        if a is None:
            raise ToolInputError("actions", "expected a list of equal-length rows of numbers", _jsonable(actions))
        if a.ndim != 2 or a.shape[1] != emb.action_dim or a.shape[0] < 1:
            raise ToolInputError("actions", f"wrong action width for embodiment {emb.key!r}", list(a.shape), accepted)
        if beyond_float32(a, emb).any():
            raise ToolInputError("actions", "holds NaN, inf or values beyond float32", None,
                                 PHYSICAL_FLOAT32_ACCEPTED)
        return a, "physical", []

    # -- policies ---------------------------------------------------------------------------------------------

    def policy(self, checkpoint: Path, emb) -> Any:
        """The cached `Policy` for (checkpoint, embodiment), loading it if needed. A full cache first evicts the least
        recent and closes it, so that `max_loaded` models are all the device holds, also while another loads; a call
        that runs the policy holds `_run_lock` from this lookup to its end, so none is closed under it."""
        from .. import load_policy

        key = (str(checkpoint), emb.key)

        def cached() -> Any:
            with self._cache_lock:
                if key in self._policies:
                    self._policies.move_to_end(key)
                    return self._policies[key]
                return None

        if (hit := cached()) is not None:
            return hit
        # one load at a time (one device, and one copy of a checkpoint), outside the cache lock: a load takes minutes
        # at full size, and listing (which every checkpoint argument's check reads) must not wait for it
        with self._load_lock:
            if (hit := cached()) is not None:  # loaded while this call waited
                return hit
            with self._cache_lock:
                evicted = [self._policies.popitem(last=False) for _ in
                           range(len(self._policies) - self.config.max_loaded + 1)]
            for old_key, old_policy in evicted:  # released now, not at some later garbage collection
                old_policy.close()
                logger.info("policy cache full (%d): unloaded %s", self.config.max_loaded, old_key)
            policy = load_policy(str(checkpoint), embodiment=emb.key, **self._load_options())
            with self._cache_lock:
                self._policies[key] = policy
            return policy

    def close(self) -> None:
        """Release every loaded policy (`Policy.close`), after the model call in progress: a toolbox that is replaced
        (the Strands tool's `configure`) gave its models back to the device only at some later garbage collection.
        A later call loads again."""
        with self._run_lock:
            with self._cache_lock:
                loaded, self._policies = list(self._policies.values()), OrderedDict()
            for policy in loaded:
                policy.close()

    def _load_options(self) -> dict[str, Any]:
        """`Policy.from_pretrained` keyword arguments from the configuration."""
        c = self.config
        options = {
            "device": c.device,
            "dtype": c.dtype,
            "chunk_size": c.chunk_size,
            "resolution_tier": c.resolution_tier,
        }
        return {**{k: v for k, v in options.items() if v is not None}, **c.load_kwargs}

    def _chunk_size(self, emb) -> int:
        """The chunk size a model loaded for `emb` runs with: the configuration's (`--chunk-size`), else the
        embodiment's, as `Policy.from_pretrained` chooses."""
        return self._load_options().get("chunk_size") or emb.chunk_size

    def _new_run_dir(self, mode: str) -> Path:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = self.config.output_dir / f"{mode}-{stamp}-{secrets.token_hex(3)}"
        path.mkdir(parents=True, exist_ok=False)
        return path

    def _run(self, mode: str, ckpt: Path, emb, animate: bool, progress: Progress | None, warnings: list[str],
             said_view: tuple[int, int] | None, clip: dict[str, Any] | None = None, chunks: int | None = None,
             center_crop: bool = True, **request: Any) -> dict[str, Any]:
        """Run one request and write its run folder; `warnings` about the inputs (as the CLI logs them) go in the
        result, where an agent reads them. `said_view`: the (height, width) of an image or clip they already warn of
        as one camera's view, which the policy is told so that it does not say it again in its own terms. `clip`:
        inverse dynamics' `Policy.infer_actions` options, and how many `windows` it runs; `chunks`: forward dynamics
        over a whole trajectory (`Policy.imagine(whole_trajectory=True)`) in that many chunks. `center_crop`: the
        call's (`_cropping`)."""
        from ..policy import PolicyRequest
        from ..viz.run import unusable_actions, write_run

        report = progress or (lambda *_: None)
        # what the run starts from, kept for its page as predict keeps it (inverse dynamics is given a clip)
        given = None if mode == "inverse_dynamics" else request["observation"]
        # what the CLI would log about this call (a short clip, units, ...): an agent reads only the result; one model
        # call at a time (one device), and its policy stays loaded (is not evicted) until it ends
        with logged_warnings() as [logged], self._run_lock:
            # a call cancelled while it waited stops here
            report(0, None, f"loading {self.checkpoint_name(ckpt)} for {emb.key}")
            policy = self.policy(ckpt, emb)
            if said_view is not None:
                policy.single_view_said(*said_view)
            report(0, None, "sampling")
            with _cropping(center_crop, policy):
                if chunks is not None:  # one chunk after another: progress runs on over them
                    prediction = policy.imagine(
                        request.pop("observation"), request.pop("actions"), request.pop("prompt"),
                        whole_trajectory=True, **request, progress=_window_progress(report, chunks, 1, "chunk"),
                    )
                elif clip is None:
                    prediction = policy.act_batch(
                        [PolicyRequest(mode=mode, **request)],
                        progress=lambda done, total: report(done, total, f"denoising step {done}/{total}"),
                    )[0]
                else:
                    options = {k: v for k, v in clip.items() if k != "windows"}
                    prediction = policy.infer_actions(
                        request.pop("observation"), request.pop("prompt"), **options, **request,
                        progress=_window_progress(report, clip["windows"], clip["batch_size"]),
                    )
        warnings = [*warnings, *(w for w in logged if w not in warnings)]
        # what the model returned (NaN actions) is unusable: not the caller's input (an internal error), unless it is
        # warned of (actions or a state far outside the training range): the likely cause then. No run is written:
        # its result would not be returned, so no folder would name it
        unusable = unusable_actions(prediction, "no run was written")
        if unusable is not None:
            raise RuntimeError(unusable + (f"; the inputs were warned of: {' | '.join(warnings)}" if warnings else ""))
        run_dir = self._new_run_dir(mode)
        try:
            write_run(prediction, run_dir, observation=given)
            files = self._run_files(run_dir)
            if animate:
                from ..viz.report import write_report
                from ..viz.run import visualize

                files["animation"] = str(visualize(run_dir)[-1])
                write_report(run_dir)
                files = {**self._run_files(run_dir), "animation": files["animation"]}
        except BaseException:  # the result names the run folder: a call that returns none leaves none (as a sim's)
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        report(1, 1, "done")
        # the result's fields as actions.json and `predict --json` give them (`Prediction.to_json`), rounded for an
        # agent's context; its settings (the caption, the sigmas) in settings.json, but for what an agent reads
        doc = prediction.to_json()
        return {
            **{key: doc[key] for key in ("mode", "embodiment", "columns", "units", "fps", "chunk_size",
                                         "video_frames")},
            "checkpoint": self.checkpoint_name(ckpt),
            "run_dir": str(run_dir),
            "files": files,
            "actions": np.round(prediction.actions, 6).tolist(),
            "seed": doc["settings"].get("seed"),
            "center_crop": doc["settings"].get("center_crop"),  # as settings.json records it
            "timings_s": {k: round(v, 4) for k, v in doc["timings_s"].items()},
            "warnings": warnings,
            "clip": doc["settings"].get("clip"),
            "trajectory": doc["settings"].get("trajectory"),
        }

    @staticmethod
    def _run_files(run_dir: Path) -> dict[str, Any]:
        from ..viz.run import OBSERVATION_FOLDER, ROLLOUT_VIDEO, SETTINGS_FILE  # loaded already: the run was written

        def opt(name: str) -> str | None:
            return str(run_dir / name) if (run_dir / name).is_file() else None

        return {
            "actions": opt(ACTIONS_FILE),
            "settings": opt(SETTINGS_FILE),
            "video": opt(ROLLOUT_VIDEO),
            "report": opt(REPORT_FILE),
            "plots": sorted(str(p) for p in (run_dir / "plots").glob("*.png")),
            "observation": sorted(str(p) for p in (run_dir / OBSERVATION_FOLDER).glob("*.png")),
        }

    # -- operations -------------------------------------------------------------------------------------------

    def predict(
        self,
        prompt: str,
        embodiment: str | None = None,
        checkpoint: str | None = None,
        image: str | None = None,
        images: dict[str, str] | None = None,
        state: Sequence[float] | None = None,
        seed: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        decode_video: bool = False,
        animate: bool = False,
        progress: Progress | None = None,
        center_crop: bool = True,
    ) -> dict[str, Any]:
        """Policy: the action chunk for an observation and a task (plus the imagined video if asked). `center_crop`
        (every tool that runs a model takes it): false leaves the frames whole where the checkpoint's training record
        says to crop their centre (`_cropping`), as the command line's `--no-center-crop`."""
        ckpt, emb = self._model(checkpoint, embodiment)
        prompt = self._prompt(prompt)
        self._sampling(seed, steps, guidance)
        _check_center_crop(center_crop)
        obs, state, warnings, said, sizes = self._observation(ckpt, emb, image, images, state)
        # in every call's result (a cached policy says them once, to the first call), in the run's words (`_run` does
        # not add them again)
        warnings += input_warnings(str(ckpt), emb, "policy", sizes, state=state)
        return self._run(
            "policy",
            ckpt,
            emb,
            animate,
            progress,
            warnings,
            said,
            observation=obs,
            prompt=prompt,
            state=state,
            seed=seed,
            steps=steps,
            guidance=guidance,
            decode_video=bool(decode_video),
            center_crop=center_crop,
        )

    def imagine(
        self,
        prompt: str,
        embodiment: str | None = None,
        checkpoint: str | None = None,
        image: str | None = None,
        images: dict[str, str] | None = None,
        actions: Sequence[Sequence[float]] | None = None,
        actions_file: str | None = None,
        state: Sequence[float] | None = None,
        seed: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        animate: bool = False,
        progress: Progress | None = None,
        whole_trajectory: bool = False,
        center_crop: bool = True,
    ) -> dict[str, Any]:
        """Forward dynamics: the video of what happens when the robot executes `actions` from the observation: the
        first chunk_size rows, or with `whole_trajectory` every row, in chunks of chunk_size rows, each from the last
        frame the one before imagined (`Policy.imagine(whole_trajectory=True)`; progress counts the chunks' denoising
        steps). The result's `trajectory` says which rows and frames each chunk made. `center_crop`: as `predict`'s."""
        ckpt, emb = self._model(checkpoint, embodiment)
        prompt = self._prompt(prompt)
        self._sampling(seed, steps, guidance)
        _check_center_crop(center_crop)
        if not isinstance(whole_trajectory, bool):
            raise _must_be("whole_trajectory", whole_trajectory, "true or false")
        a, space, rate = self._actions(emb, actions, actions_file)
        chunks = self._trajectory_chunks(emb, a) if whole_trajectory else None
        obs, state, warnings, said, sizes = self._observation(ckpt, emb, image, images, state)
        warnings += input_warnings(str(ckpt), emb, "forward_dynamics", sizes, state=state, actions=a,
                                   actions_space=space) + rate
        return self._run(
            "forward_dynamics",
            ckpt,
            emb,
            animate,
            progress,
            warnings,
            said,
            chunks=chunks,
            observation=obs,
            prompt=prompt,
            actions=a,
            actions_space=space,
            state=state,
            seed=seed,
            steps=steps,
            guidance=guidance,
            decode_video=True,
            center_crop=center_crop,
        )

    def _trajectory_chunks(self, emb, actions: np.ndarray) -> int:
        """How many chunks a whole trajectory of `actions` rolls out in, after refusing, before the model loads, an
        embodiment whose state cannot be carried from one chunk to the next
        (`processing.trajectory.trajectory_refusal`) and more than MAX_TRAJECTORY_CHUNKS chunks."""
        from ..processing.trajectory import trajectory_refusal

        refusal = trajectory_refusal(emb)
        if refusal is not None:
            why, accepted = refusal
            raise ToolInputError("whole_trajectory", why, True, f"false, or {accepted}")
        chunk_size = self._chunk_size(emb)
        chunks = math.ceil(len(actions) / chunk_size)
        if chunks > MAX_TRAJECTORY_CHUNKS:
            raise ToolInputError(
                "whole_trajectory", f"the {len(actions)} action rows make {chunks} chunks of chunk_size={chunk_size}; "
                f"one call imagines at most {MAX_TRAJECTORY_CHUNKS}", True,
                f"false, or at most {MAX_TRAJECTORY_CHUNKS * chunk_size} rows (imagine a longer one in parts)")
        return chunks

    def infer_actions(
        self,
        prompt: str,
        video: str,
        embodiment: str | None = None,
        checkpoint: str | None = None,
        state: Sequence[float] | Sequence[Sequence[float]] | None = None,
        seed: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        animate: bool = False,
        progress: Progress | None = None,
        start_frame: int = 0,
        whole_clip: bool = False,
        resample: bool = False,
        center_crop: bool = True,
    ) -> dict[str, Any]:
        """Inverse dynamics: the actions that explain a clip: a video file, an animated image (GIF/WebP/TIFF) or a
        folder of frames (name order), as `worldpolicy predict --video` and `Policy.infer_actions` take it, with its
        options: `start_frame`, `whole_clip` (a label for every frame transition, in windows of chunk_size+1 frames;
        progress counts the windows' denoising steps) and `resample` (read at the embodiment's rate). The result's
        `clip` says which frames of the clip the rows explain. `center_crop`: as `predict`'s."""
        from ..processing.observations import check_source

        ckpt, emb = self._model(checkpoint, embodiment)
        prompt = self._prompt(prompt)
        self._sampling(seed, steps, guidance)
        _check_center_crop(center_crop)
        START_FRAME.check("start_frame", start_frame)
        for name, value in (("whole_clip", whole_clip), ("resample", resample)):
            if not isinstance(value, bool):
                raise _must_be(name, value, "true or false")
        path = self._input_file("video", video, CLIP_SUFFIXES, folder=True)
        try:  # read as the command line reads --video; the policy reads the clip itself, only the frames it uses
            height, width = check_source(path, "video", min_frames=2)
        except ValueError as exc:
            raise ToolInputError("video", str(exc).removeprefix("video: "), video) from None
        # the tools take one clip: a multi-camera model's cameras come composed, in the layout the warning names
        warnings = _single_view(ckpt, emb, f"video {video!r}", height, width,
                                "compose their clips into one in that layout (infer_actions takes one clip; the "
                                "command line's --camera KEY=CLIP composes them)")
        said = (height, width) if warnings else None
        state = self._state(emb, state, per_frame=True)
        windows = self._clip_windows(emb, path, video, state, start_frame, whole_clip, resample)
        # a resampled clip is read at the embodiment's rate: only a varying rate is cause for a warning (as the CLI's)
        warnings += input_warnings(str(ckpt), emb, "inverse_dynamics", (height, width), [path], resample=resample,
                                   state=state)
        return self._run(
            "inverse_dynamics",
            ckpt,
            emb,
            animate,
            progress,
            warnings,
            said,
            clip={"start_frame": start_frame, "whole_clip": whole_clip, "resample": resample,
                  "batch_size": CLIP_BATCH_SIZE, "windows": windows},
            observation=path,
            prompt=prompt,
            state=state,
            seed=seed,
            steps=steps,
            guidance=guidance,
            center_crop=center_crop,
        )

    def _clip_windows(self, emb, path: Path, video: str, state: Any, start_frame: int, whole_clip: bool,
                      resample: bool) -> int:
        """How many windows the run labels, the clip read as it reads it (`processing.clip.read_clip`: a start frame
        past the clip's end, a rate to resample from, each window's state) before the model loads, each refusal naming
        the argument. The run reads the clip again: a whole clip is decoded twice, a single window's frames only."""
        from ..processing.clip import read_clip

        chunk_size = self._chunk_size(emb)
        try:
            clip = read_clip(path, emb, chunk_size + 1, start_frame, whole_clip, resample, max_frames=MAX_CLIP_FRAMES)
        except ValueError as exc:
            message = str(exc).removeprefix("video: ")
            if message.startswith("whole_clip"):
                raise ToolInputError("whole_clip", message, True, f"false, or a clip of at most {MAX_CLIP_FRAMES} "
                                     "frames (label a longer one in parts)") from None
            parameter = ("resample" if message.startswith("resample") else
                         "start_frame" if f"start_frame={start_frame}" in message else "video")
            given = {"resample": resample, "start_frame": start_frame, "video": video}[parameter]
            raise ToolInputError(parameter, message, given) from None
        windows = clip.windows if whole_clip else 1
        try:
            for k in range(windows):
                clip.state(state, k)
        except ValueError as exc:
            raise ToolInputError("state", str(exc).removeprefix("state "), _jsonable(np.shape(state)),
                                 f"[T, {emb.action_dim}]: a row per clip frame ({', '.join(emb.columns)})") from None
        return windows

    def visualize(self, path: str, video: str | None = None, animate: bool = True) -> dict[str, Any]:
        """Plots (+ playhead animation) for an actions file or run directory; refreshes the run's report."""
        from ..viz.report import write_report
        from ..viz.run import ROLLOUT_VIDEO, visualize

        target = self._resolve(path, "path")
        if target.is_dir():
            target = target / ACTIONS_FILE
        try:
            actions_path = self._input_file("path", str(target), (".json",))
        except ToolInputError as exc:
            exc.given = path  # what the caller wrote, not the actions.json looked for inside it
            raise
        video_path = self._input_file("video", video, VIDEO_SUFFIXES) if video is not None else None
        default_video = actions_path.parent / ROLLOUT_VIDEO  # what the animation shows when no video is given
        if video_path is None and animate and default_video.exists() and not self._readable(default_video.resolve()):
            # read as a given video is: a link in the run folder is not a way out of the input roots
            raise ToolInputError("video", f"the default video, {str(default_video)!r}, links outside the folders this "
                                 "server may read; give video, or animate=false", path,
                                 [str(r) for r in self.config.input_roots])
        if video_path is not None:
            from ..processing.video import read_video

            try:
                read_video(video_path, max_frames=1)
            except (ValueError, OSError) as exc:
                raise ToolInputError("video", f"cannot read the video: {exc}", video) from None
        run_dir = actions_path.parent
        ours = run_dir == self.config.output_dir or self.config.output_dir in run_dir.parents
        # a run this server made gets its plots beside it; anything else (the user's folders) is only read
        out_dir = run_dir / "plots" if ours else self._new_run_dir("viz")
        try:
            written = visualize(actions_path, out_dir, animate=animate, video=video_path)
        except (ValueError, TypeError) as exc:
            raise ToolInputError("path", str(exc), path) from None
        out: dict[str, Any] = {
            "plots": [str(p) for p in written if p.suffix == ".png"],
            "animation": next((str(p) for p in written if p.suffix == ".mp4"), None),
        }
        out["report"] = str(write_report(run_dir if ours else out_dir))
        return out

    def evaluate_sim(
        self,
        task: str = "reach",
        policy: str = "scripted",
        embodiment: str | None = None,
        episodes: int = 2,
        seed: int = EVAL_SEED,
        max_steps: int | None = None,
        perturb: str | None = None,
        strategy: str = "execute",
        latency: float = 0.0,
        rtc: bool = False,
        progress: Progress | None = None,
        num_envs: int = 1,
        plan: int | None = None,
        plan_scorer: str | None = None,
        center_crop: bool = True,
        prompt_template: str | None = None,
    ) -> dict[str, Any]:
        """A short MuJoCo evaluation: success rate and report files. `policy`: a checkpoint name, scripted or random.
        `seed` defaults to `worldpolicy sim`'s held-out one; the result's `training_scenes` (report.json's) and
        `warnings` say when episodes are scenes the checkpoint was trained on, so an agent does not report the success
        on them as held-out. `perturb`: shifts on top of every scene, as `worldpolicy sim --perturb` takes them
        ("light=0.5", "camera=0.03,distractors=2": `sim.perturb`), for a robustness run compared with a clean one on
        the same seeds (`compare_sim_runs`). `prompt_template`: every episode's prompt in these words, as `worldpolicy
        sim --prompt-template` takes it ("move to the {color} {object}": the task's placeholders; checked as it checks
        it, `sim.perturb.check_rewording`: not with `perturb`'s prompt=paraphrase). `strategy`, `latency` (ms) and
        `rtc`: how the policy's chunks run, as `worldpolicy sim --strategy/--latency/--rtc` take them, checked as it
        checks them (`_timing_error` names the argument) before a model loads; the result has report.json's
        `strategy`, `latency`, `rtc` and hand-over jumps, for a robustness-to-latency study compared by
        `compare_sim_runs`. `num_envs`: episodes stepped together,
        their requests batched, as `worldpolicy sim --num-envs` (`sim.batch.check_num_envs`, checked before a model
        loads). `plan`, `plan_scorer`: best-of-N planning, as `worldpolicy sim --plan/--plan-scorer` (checked as it
        checks them, `sim.progress.check_plan`, and the scorer against the checkpoint's cameras, before a model
        loads); the result's `plan` counts its decisions, those tied and those it changed (report.json's).
        `center_crop`: as `predict`'s, a checkpoint's only (as `worldpolicy sim --no-center-crop`); the result's is
        report.json's `policy_settings.center_crop`. A call that fails or is cancelled removes the run folder it
        began (why: at the `except` below)."""
        try:
            from ..robot.control import STRATEGIES, ChunkStrategy, check_rtc
            from ..robot.decode import check_executable
            from ..robot.robots import get_robot
            from ..sim.batch import check_num_envs
            from ..sim.env import TabletopEnv
            from ..sim.evaluate import evaluate
            from ..sim.evaluate import write_report as write_sim_report
            from ..sim.perturb import PERTURBATIONS, check_rewording, parse_perturbations
            from ..sim.policies import (
                check_rtc_policy,
                chunk_size,
                control_hz_for,
                make_policy,
                planned,
                wrap_policy,
            )
            from ..sim.progress import check_plan, scorer_for
            from ..sim.rollout import check_chunk_timing, check_latency_ms, latency_as_none, latency_ticks
            from ..sim.scenes import DEFAULT_IMAGE_SIZE
            from ..sim.tasks import get_task, list_tasks
        except ImportError as exc:  # the server's install, not the call's arguments: no other policy would run
            raise missing_extra(exc, "evaluate_in_sim needs the simulator") or exc from None
        from ..models import checkpoint_name
        if task not in list_tasks():
            raise ToolInputError("task", "unknown task", task, list_tasks())
        SIM_EPISODES.check("episodes", episodes)
        SEED.check("seed", seed)
        if max_steps is not None:
            SIM_STEPS.check("max_steps", max_steps)
        shifts = {k.name: k.accepted() for k in PERTURBATIONS.values()}  # what a bad `perturb` is told is accepted
        if perturb is not None and not isinstance(perturb, str):  # one text, as the schema says
            raise ToolInputError("perturb", "expected text like 'light=0.5' (several shifts comma-separated)",
                                 perturb, shifts)
        try:
            perturbation = parse_perturbations(perturb, "perturb")
        except ValueError as exc:  # its text names `perturb` first, as ToolInputError does
            raise ToolInputError("perturb", str(exc).removeprefix("perturb: "), perturb, shifts) from None
        try:  # `worldpolicy sim --prompt-template`'s check: the task's placeholders, not beside prompt=paraphrase
            prompt_template = check_rewording(perturbation, prompt_template, task)
        except ValueError as exc:
            raise ToolInputError("prompt_template", str(exc).removeprefix("prompt_template: "), prompt_template,
                                 [f"{{{name}}}" for name in get_task(task).placeholders()]) from None
        _check_center_crop(center_crop)
        if not center_crop and policy in BUILTIN_POLICIES:  # as `worldpolicy sim` refuses --no-center-crop
            raise ToolInputError("center_crop", f"applies to checkpoint policies only (the frames a model sees), not "
                                 f"policy {policy!r}", center_crop, "true, or a checkpoint policy")
        if embodiment is not None and policy == "scripted":  # it would be ignored, and the run look as asked
            raise ToolInputError("embodiment", "does not apply to policy 'scripted': the expert always acts in "
                                 "droid/joint_pos (absolute joints); leave it out", embodiment)
        timing = {"strategy": strategy, "latency": latency, "rtc": rtc}  # as given: what an error names
        if not isinstance(strategy, str) or strategy not in STRATEGIES:
            raise ToolInputError("strategy", "unknown chunk strategy", strategy, list(STRATEGIES))
        chunks = ChunkStrategy(strategy)
        try:  # `worldpolicy sim`'s checks, before anything loads or the run lock is waited for: rtc with async only,
            check_rtc(rtc, chunks)  # a policy with a model, and a latency that is a number >= 0 (the env's step
            check_rtc_policy(rtc, policy)  # limit is checked once the env is built)
            check_latency_ms(latency)
        except ValueError as exc:
            raise _timing_error(exc, timing) from None
        try:  # a policy that is neither scripted nor random is a checkpoint (resolved below)
            check_num_envs(num_envs, policy=policy if policy in BUILTIN_POLICIES else "checkpoint")
        except ValueError as exc:
            raise ToolInputError("num_envs", str(exc).removeprefix("num_envs: "), num_envs) from None
        try:  # what planning needs of the other arguments, before anything loads
            plan_scorer = check_plan(plan, plan_scorer, policy=policy, num_envs=num_envs, rtc=rtc)
        except ValueError as exc:  # each refusal leads with the argument it is about (`_named`)
            raise _named(exc, {"plan": plan, "plan_scorer": plan_scorer, "num_envs": num_envs, "rtc": rtc}) from None
        ckpt = None  # a checkpoint policy's folder: the model runs on camera images
        if policy in BUILTIN_POLICIES:
            spec = policy
            emb = self._embodiment(embodiment) if embodiment is not None else None
        else:
            try:
                ckpt = self.resolve_checkpoint(policy)
            except ToolInputError as exc:  # this tool's argument is `policy`
                accepted = [*BUILTIN_POLICIES, *(exc.accepted or [])]
                raise ToolInputError("policy", str(exc).split(": ", 1)[-1], policy, accepted) from None
            spec = str(ckpt)
            emb = self._checkpoint_embodiment(ckpt, embodiment, "policy", policy)  # its own unless another is named
        if emb is not None:
            try:  # as `worldpolicy sim` checks it (on the arm it runs): before a model loads or a run folder is made
                check_executable(emb, get_robot(SIM_ROBOT))
            except ValueError as exc:
                raise ToolInputError("embodiment" if embodiment is not None else "policy", str(exc),
                                     embodiment or policy) from None
        try:  # the scorer reads the checkpoint's cameras (`progress.scorer_for`): before a model loads
            scorer = None if plan is None else scorer_for(plan_scorer, emb, "plan_scorer")
        except ValueError as exc:
            raise ToolInputError("plan_scorer", str(exc).removeprefix("plan_scorer: "), plan_scorer) from None
        report = progress or (lambda *_: None)
        report(0, episodes, f"simulating {episodes} episodes of {task}")
        out = None
        try:
            with self._run_lock:
                # a checkpoint at its embodiment's rate, as `worldpolicy sim` runs it; a baseline at the default
                # (random actions have no rate, the expert plans at the env's)
                env = TabletopEnv(task, SIM_ROBOT, control_hz=control_hz_for(emb.fps if ckpt is not None else None),
                                  image_size=None if ckpt is None else DEFAULT_IMAGE_SIZE, max_steps=max_steps,
                                  perturb=perturbation, prompt_template=prompt_template)
                sim_policy = model = None
                try:  # the env (its renderer) is closed however the policy's load or the episodes end
                    try:  # the latency against the step limit, and a checkpoint's chunk, before its weights load
                        latency_ticks(latency, env.control_hz, env.max_steps)
                        if ckpt is not None:
                            check_chunk_timing(chunks, emb, self._chunk_size(emb), latency, env.control_hz,
                                               rtc=rtc, setting="strategy")
                    except ValueError as exc:
                        raise _timing_error(exc, timing) from None
                    if ckpt is not None:  # the cached policy predict runs: loaded once, within the max_loaded bound
                        model = self.policy(ckpt, emb)
                        sim_policy = wrap_policy(model, seed=seed)
                        if scorer is not None:  # the cached policy, choosing each chunk best-of-plan
                            sim_policy = planned(sim_policy, scorer, plan)
                    else:
                        sim_policy = make_policy(spec, env=env, embodiment=embodiment, seed=seed)
                        try:  # a baseline's chunk is known once it is made (no weights)
                            check_chunk_timing(chunks, getattr(sim_policy, "embodiment", None),
                                               chunk_size(sim_policy), latency, env.control_hz, rtc=rtc,
                                               setting="strategy")
                        except ValueError as exc:
                            raise _timing_error(exc, timing) from None
                    out = self._new_run_dir("sim")  # once the policy loads: a failure before leaves no empty folder
                    with _cropping(center_crop, *([] if model is None else [model])):
                        result = evaluate(
                            env,
                            sim_policy,
                            # a checkpoint as `worldpolicy sim` labels it (`shipped`, not its folder's `panda_reach`)
                            policy_name=spec if ckpt is None else checkpoint_name(spec),
                            episodes=episodes,
                            seed=seed,
                            strategy=chunks,
                            video_dir=out / "videos",
                            videos=0,
                            progress=False,
                            on_episode=lambda so_far: report(len(so_far.episodes), episodes,
                                                             f"episode {len(so_far.episodes)}/{episodes} done"),
                            latency_ms=latency,
                            rtc=rtc,
                            num_envs=num_envs,
                        )
                finally:
                    if ckpt is None:  # a cached policy stays loaded for the next call
                        getattr(sim_policy, "close", lambda: None)()
                    env.close()
            ran_as = getattr(getattr(sim_policy, "embodiment", None), "key", None)  # the checkpoint's own, if left out
            paths = write_sim_report(result, out)
            from ..viz.report import write_report

            page = write_report(out)
        except BaseException:
            # Removed, not kept as `worldpolicy sim` keeps a partial run: the call's result is what names a run
            # folder, and a failed or cancelled call returns none, so a partial folder would be one nobody was told
            # of (and at most MAX_SIM_EPISODES short episodes are lost).
            if out is not None:
                shutil.rmtree(out, ignore_errors=True)
            raise
        doc = result.to_json()
        report(episodes, episodes, "done")
        named = spec if ckpt is None else self.checkpoint_name(ckpt)  # what `policy` takes back, not its folder
        return {
            "task": task,
            "policy": named,
            "embodiment": ran_as,
            "episodes": episodes,
            "seed": seed,
            "perturb": result.perturb,
            "prompt_template": result.prompt_template,
            "num_envs": result.num_envs,
            "plan": doc.get("plan"),
            # report.json's, as `worldpolicy sim` records it (null: none, or no checkpoint)
            "center_crop": (doc.get("policy_settings") or {}).get("center_crop"),
            **{key: doc[key] for key in SIM_TIMING_FIELDS},
            "successes": result.successes,
            "success_rate": result.success_rate,
            "ci95": doc.get("ci95"),
            "training_scenes": doc["training_scenes"],
            # `Rollout` logs that a latency under half a step runs as none: an agent reads only the result
            "warnings": [*_training_scenes_warning(doc["training_scenes"], episodes, spec),
                         *filter(None, [latency_as_none(latency, result.control_hz)])],
            "run_dir": str(out),
            "files": {"report": str(page), "episodes": str(out / SIM_EPISODES_CSV),
                      "outputs": [str(p) for p in paths]},
        }

    def evaluate_open_loop(
        self,
        dataset: str,
        checkpoint: str | None = None,
        embodiment: str | None = None,
        episodes: Sequence[int] | None = None,
        every: int | None = None,
        chunks: int | None = None,
        seed: int = 0,
        steps: int | None = None,
        action_keys: Sequence[str] | None = None,
        state_keys: Sequence[str] | None = None,
        progress: Progress | None = None,
        center_crop: bool = True,
        mode: str = "policy",
    ) -> dict[str, Any]:
        """`worldpolicy dataset eval`: the checkpoint's chunks predicted from a LeRobot dataset's frames against the
        actions it recorded (`data.openloop.evaluate_open_loop`), per column with names and units, per episode and per
        chunk step, with openloop.json and the plots in a fresh run folder. `mode` (`results.MODES`, as
        `dataset eval --mode`): "inverse_dynamics" scores the actions recovered from the recorded frames alike;
        "forward_dynamics" the frames imagined under the recorded actions, PSNR, SSIM and MSE per camera and per frame
        ahead as openloop.json holds them (null for an infinite PSNR), with a video per episode. The dataset is checked
        once (`data.openloop.check_open_loop`: frame rate, cameras, action and state features, NaN; `run_open_loop`
        runs its plan) and the chunks counted before the model loads; at most MAX_OPEN_LOOP_CHUNKS. Runs the cached
        policy as it is, this call's `steps` on each request, its `center_crop` as `predict`'s (openloop.json's
        `settings` record the crop); progress counts the chunks in the mode's words (`progress_said`: predicted,
        imagined, or their actions recovered; a fraction at each denoising step). A call that fails or is cancelled
        removes the run folder it began, as `evaluate_sim` does."""
        from ..data.layout import INFO_PATH
        from ..data.lerobot import LeRobotDataset
        from ..data.openloop import (
            LEFT_OUT_WHY,
            ForwardDynamicsResult,
            check_eval_mode,
            check_open_loop,
            plan_training_scenes,
            progress_said,
            run_open_loop,
        )
        from ..policy import trained_data_keys

        ckpt, emb = self._model(checkpoint, embodiment)
        SEED.check("seed", seed)  # None too: `dataset eval`'s seed is always one (episode i: seed + i)
        self._sampling(seed, steps, None)
        _check_center_crop(center_crop)
        try:
            check_eval_mode(mode)
        except ValueError:
            raise ToolInputError("mode", "unknown evaluation mode", mode, list(MODES)) from None
        for name, value, bounds in (("every", every, OPEN_LOOP_EVERY), ("chunks", chunks, OPEN_LOOP_CHUNKS)):
            if value is not None:
                bounds.check(name, value)
        if every is not None and chunks is not None:
            raise ToolInputError("chunks", "give one of every (a chunk every N frames) or chunks (N chunks spread "
                                 "evenly over the episodes)", {"every": every, "chunks": chunks})
        for name, value in (("action_keys", action_keys), ("state_keys", state_keys)):
            if value is not None and (not isinstance(value, (list, tuple)) or not value
                                      or not all(isinstance(k, str) and k for k in value)):
                raise ToolInputError(name, "expected a list of the dataset's feature names", value)
        if episodes is not None and (not isinstance(episodes, (list, tuple))
                                     or not all(is_integer(e) for e in episodes)):
            raise ToolInputError("episodes", "expected a list of episode indexes (from 0; negative from the end)",
                                 episodes)
        root = self._readable_folder("dataset", dataset, INFO_PATH)
        given = {"dataset": dataset, "episodes": episodes, "every": every, "chunks": chunks, "seed": seed,
                 "action_keys": action_keys, "state_keys": state_keys, "embodiment": embodiment,
                 "checkpoint": checkpoint}
        try:
            with logged_warnings() as [notes]:  # a feature it cannot read (it opens without it): in the warnings
                ds = LeRobotDataset.open(root)
            # everything the run checks before weights, before loading (and not again: `run_open_loop`)
            plan = check_open_loop(ds, emb, episodes=episodes, every=every, chunks=chunks, seed=seed,
                                   batch_size=OPEN_LOOP_BATCH_SIZE, state_keys=state_keys, action_keys=action_keys,
                                   trained=trained_data_keys(ckpt), mode=mode)
        except (ValueError, KeyError, OSError) as exc:
            raise _named(exc, given, "dataset", dataset) from None
        # how many chunks the run predicts, placed as `run_open_loop` places them, before the model loads
        planned = sum(map(len, plan.starts(self._chunk_size(emb)).values()))
        if planned > MAX_OPEN_LOOP_CHUNKS:
            raise ToolInputError("chunks" if chunks is not None else "every",
                                 f"the {len(plan.episodes)} episodes would take {planned} chunks, more than the "
                                 f"{MAX_OPEN_LOOP_CHUNKS} one call predicts", chunks if chunks is not None else every,
                                 f"chunks <= {MAX_OPEN_LOOP_CHUNKS} (spread over the episodes), a larger every, or "
                                 "fewer episodes")
        scenes = plan_training_scenes(plan, ckpt)  # worked out once, recorded by the run and warned of below
        report = progress or (lambda *_: None)

        def chunks_done(done: float, total: int) -> None:  # a cancelled call stops here: before a batch, or at a step
            report(done, total, progress_said(mode, done, total))

        out = None
        try:
            with logged_warnings() as [logged], self._run_lock:
                # a call cancelled while it waited stops here
                report(0, planned, f"loading {self.checkpoint_name(ckpt)} for {emb.key}")
                policy = self.policy(ckpt, emb)  # used as it is: the call's steps ride on each request
                out = self._new_run_dir("openloop")
                try:
                    with _cropping(center_crop, policy):
                        result = run_open_loop(plan, policy, out, training_scenes=scenes, steps=steps,
                                               progress=chunks_done)  # checked above
                except (ValueError, KeyError) as exc:  # named as the tool's argument it is about, if one
                    raise _named(exc, given) from None
        except BaseException:  # the result names the run folder: a call that returns none leaves none (as a sim's)
            if out is not None:
                shutil.rmtree(out, ignore_errors=True)
            raise
        doc = result.to_json()
        # a mode the checkpoint's training gave no weight: the policy logs it at its first request only, said each call
        # here; episodes that are the checkpoint's training scenes, as `dataset eval` warns (an agent reads the result)
        said = [result.untrained, result.scenes_warning()]
        warnings = list(dict.fromkeys([*notes, *logged, *filter(None, said)]))
        report(planned, planned, "done")
        common = {
            "checkpoint": self.checkpoint_name(ckpt),
            "embodiment": emb.key,
            "dataset": str(root),
            "mode": result.mode,
            "chunk_size": result.chunk_size,
            "every": result.every,
            "chunks": result.chunks,
            "seed": seed,
            "sampling_steps": doc["settings"]["sampling"]["steps"],
            "center_crop": doc["settings"].get("center_crop"),
        }
        if isinstance(result, ForwardDynamicsResult):  # openloop.json's numbers as written (null: an infinite PSNR)
            return {
                **common,
                **{key: doc[key] for key in ("cameras", "frames_compared", "psnr", "ssim", "mse", "horizon")},
                "episodes": [{**row, "video": None if row["video"] is None else str(out / row["video"])}
                             for row in doc["episodes"]],
                "warnings": warnings,
                "run_dir": str(out),
                "files": {"openloop": str(out / OPENLOOP_FILE),
                          "plots": [str(p) for p in result.files if p.suffix == ".png"],
                          "videos": [str(p) for p in result.files if p.suffix == ".mp4"]},
            }
        if doc["mae_normalized"] is None:
            warnings.append("the embodiment's stats hold every action column constant: mae_normalized is undefined, "
                            "judge the MAE by the columns' units")
        normalized = doc["mae_normalized_by_column"]
        left_out = set(result.left_out)
        return {
            **common,
            "steps_compared": result.steps,
            "columns": [{"column": c, "unit": u, "mae": doc["mae"][c], "rmse": doc["rmse"][c],
                         "mae_normalized": normalized[c],
                         "left_out": LEFT_OUT_WHY if c in left_out else None,  # why mae_normalized is null
                         "recorded_std": doc["recorded_std"][c]}
                        for c, u in zip(result.columns, result.units)],
            "mae_normalized": doc["mae_normalized"],
            "normalization": result.normalized_note(),
            "horizon": doc["horizon"],
            "episodes": [{**{k: v for k, v in row.items() if k != "plot"},
                          "plot": None if row["plot"] is None else str(out / row["plot"])} for row in doc["episodes"]],
            "warnings": warnings,
            "run_dir": str(out),
            "files": {"openloop": str(out / OPENLOOP_FILE),
                      "plots": [str(p) for p in result.files if p.suffix == ".png"]},
        }

    def compare_sim_runs(self, runs: Sequence[str]) -> dict[str, Any]:
        """`worldpolicy sim compare`: finished sim runs (evaluate_in_sim's run_dir, or `worldpolicy sim --out`
        folders) side by side (`sim.compare.compare_runs`), written whole (compare.json/.md/.png and index.html) in a
        fresh run folder; the result is its summary: each run's success rate with its Wilson interval, every pair's
        exact McNemar test on the seeds both ran (its Holm-adjusted p and verdict), the settings that differ, the
        seeds whose prompts differ (each run's prompt and outcome there: `sim.compare.Comparison.prompts`, the first
        `MAX_LISTED_PROMPT_SEEDS`) and the warnings (training scenes, a setting that changes what success means, an
        incomplete run)."""
        try:
            from ..sim.compare import compare_runs, write_comparison
        except ImportError as exc:  # the server's install: the sim package reads its reports
            raise missing_extra(exc, "compare_sim_runs needs the simulator") or exc from None
        COMPARED_RUNS.check("runs", runs)
        folders = [self._readable_folder("runs", run) for run in runs]
        try:
            # the folders as resolved: each is named by its folder (or the whole path where two share a name)
            comparison = compare_runs(folders)
        except (ValueError, OSError) as exc:
            raise _named(exc, {"runs": runs}, "runs", runs) from None
        out = self._new_run_dir("compare")
        try:
            written = write_comparison(comparison, out)
        except BaseException:  # as a failed sim's: the result names the folder, and a failed call returns none
            shutil.rmtree(out, ignore_errors=True)
            raise
        doc = comparison.to_json()
        # a summary (the whole comparison, each pair's sentence and the steps to success, is compare.json's and the
        # page's): ten runs' every field, 45 pairs' sentences and the reading guide came to 83 kB of an agent's
        # context (the summary: 11 kB)
        return {
            "task": doc["task"],
            "runs": [{"name": r["name"], "policy": r["policy"], "successes": r["successes"],
                      "episodes": r["n_episodes"], "success_rate": round(r["success_rate"], 4),
                      "ci95": [round(x, 4) for x in r["ci95"]], "held_out": r["held_out"]} for r in doc["runs"]],
            "pairs": [{"a": p.a, "b": p.b, "shared_seeds": len(p.shared), "a_only": p.a_only, "b_only": p.b_only,
                       "p_adjusted": None if p.p_adjusted is None else round(p.p_adjusted, 4),
                       "verdict": p.verdict()} for p in comparison.pairs],
            "differences": [{"setting": d["setting"], "shown": d["shown"]} for d in doc["differences"]],
            # the seeds the runs were told in other words (`--perturb prompt=paraphrase`, `prompt_template`): what
            # each run was told there and whether it succeeded, the first MAX_LISTED_PROMPT_SEEDS of them
            "prompts": doc["prompts"][:MAX_LISTED_PROMPT_SEEDS],
            "reworded_seeds": len(doc["prompts"]),
            # a pair's note (not paired, few shared seeds) too: an agent reads the warnings, not each pair's line
            "warnings": doc["warnings"] + _pair_notes(comparison.pairs),
            "run_dir": str(out),
            "files": {"report": str(out / REPORT_FILE), "comparison": str(out / COMPARE_FILE),
                      "outputs": [str(p) for p in written]},
        }

    def dream(
        self,
        prompt: str,
        chunks: int,
        checkpoint: str | None = None,
        world_model: str | None = None,
        embodiment: str | None = None,
        image: str | None = None,
        images: dict[str, str] | None = None,
        state: Sequence[float] | None = None,
        seed: int = 0,
        execute_steps: int | None = None,
        score: str | None = None,
        progress: Progress | None = None,
        center_crop: bool = True,
    ) -> dict[str, Any]:
        """`worldpolicy dream`: the checkpoint's policy run closed loop in `world_model`'s imagination (default: the
        same checkpoint, one loaded model in both roles) for `chunks` chunks (`sim.world_model.dream`), written as the
        command line writes its run (`sim.world_model.DreamRecorder`: dream.json, actions.json, settings.json,
        rollout.mp4 joined from the chunks' files, plots, index.html) into a fresh `dream-...` run folder. Everything
        is checked before a model loads, as the command line checks it: the observation as `predict_actions` reads
        it, a world model that can roll a trajectory chunk after chunk and shares the policy's columns,
        `execute_steps` against the chunk size, a `score`'s prompt and the world model's cameras it reads. Both models
        come from the cache, `center_crop` (as `predict`'s) applying to both, as `worldpolicy dream --no-center-crop`;
        progress counts the chunks. A call that fails or is cancelled removes the run folder it began."""
        try:
            from ..processing.trajectory import trajectory_refusal
            from ..sim.progress import SCORERS, prompt_color, scorer_for
            from ..sim.world_model import DreamRecorder, dream, dream_settings, dream_steps_refusal
        except ImportError as exc:  # gymnasium: the server's install, not the call's arguments
            raise missing_extra(exc, "dream needs the simulator's gymnasium") or exc from None
        ckpt, emb = self._model(checkpoint, embodiment)
        if world_model is None:
            world, w_emb = ckpt, emb
        else:
            try:
                world = self.resolve_checkpoint(world_model)
            except ToolInputError as exc:  # this argument is `world_model`
                raise ToolInputError("world_model", str(exc).split(": ", 1)[-1], world_model, exc.accepted) from None
            w_emb = self._checkpoint_embodiment(world, embodiment, "world_model", world_model)
        prompt = self._prompt(prompt)
        DREAM_CHUNKS.check("chunks", chunks)
        _check_center_crop(center_crop)
        SEED.check("seed", seed)  # None too: a dream repeats with its seed, as `worldpolicy dream`'s default 0
        refusal = trajectory_refusal(w_emb)  # a dream is a whole trajectory, chunk by chunk
        if refusal is not None:
            raise ToolInputError("world_model", refusal[0], world_model or checkpoint, refusal[1])
        if list(emb.columns) != list(w_emb.columns):
            raise ToolInputError("world_model", f"its actions ({', '.join(w_emb.columns)}) are not the policy's "
                                 f"({', '.join(emb.columns)})", world_model,
                                 "a world model of the policy's embodiment, or none (the policy's checkpoint)")
        one_model = (world, w_emb.key) == (ckpt, emb.key)
        if not one_model and self.config.max_loaded < 2:  # the world model's load would close the policy
            raise ToolInputError("world_model", f"another model than the policy's needs both loaded, and this server "
                                 f"keeps {self.config.max_loaded} (--max-loaded)", world_model,
                                 "the policy's checkpoint (left out), or a server started with --max-loaded 2")
        chunk = self._chunk_size(emb)  # what the policy sends
        imagined = self._chunk_size(w_emb)  # the most the world model imagines
        if (refusal := dream_steps_refusal(chunk, imagined, execute_steps)) is not None:
            which, why, accepted = refusal
            raise ToolInputError(which if which == "execute_steps" else "world_model", why,
                                 execute_steps if which == "execute_steps" else world_model, accepted)
        if score is not None and score not in SCORERS:
            raise ToolInputError("score", "unknown scorer", score, [*SCORERS, None])
        try:  # the world model's frames, read as it composes its cameras (`progress.scorer_for`, as evaluate_in_sim's
            # plan_scorer): before a model loads
            scorer = None if score is None else scorer_for(score, w_emb, "score", without="leave score out")
        except ValueError as exc:
            raise ToolInputError("score", str(exc).removeprefix("score: "), score) from None
        if score == "reach":
            try:
                prompt_color(prompt)
            except ValueError as exc:
                raise ToolInputError("prompt", f"score 'reach' scores the ball it names: {exc}", prompt,
                                     "a prompt naming the ball's colour, or no score") from None
        obs, state, warnings, said, sizes = self._observation(ckpt, emb, image, images, state)
        warnings += input_warnings(str(ckpt), emb, "policy", sizes, state=state)
        if not one_model:  # a world model whose training left out forward dynamics, frames of another size
            warnings += [w for w in input_warnings(str(world), w_emb, "forward_dynamics", sizes)
                         if w not in warnings]
        report = progress or (lambda *_: None)
        inputs = ({"image": str(obs)} if image is not None
                  else {f"images[{k}]": str(self._resolve(v, f"images[{k}]")) for k, v in images.items()})
        settings = dream_settings(str(ckpt), str(world), seed, chunks, execute_steps, score, inputs)
        names = self._checkpoint_names()  # one scan for both models' names
        out = None
        try:
            with logged_warnings() as [logged], self._run_lock:
                # a call cancelled while it waited stops here
                report(0, chunks, f"loading {self.checkpoint_name(ckpt, names)} for {emb.key}")
                policy = self.policy(ckpt, emb)
                if not one_model:
                    report(0, chunks, f"loading {self.checkpoint_name(world, names)} for {w_emb.key}")
                imagining = policy if one_model else self.policy(world, w_emb)  # the policy stays: the most recent
                for model in {id(policy): policy, id(imagining): imagining}.values():
                    if said is not None:
                        model.single_view_said(*said)
                out = self._new_run_dir("dream")
                # as `worldpolicy dream` writes its run, with the observation it started from
                recorder = DreamRecorder(out, settings, chunks, observation=obs)

                def on_chunk(chunk) -> None:
                    recorder.add(chunk)
                    report(chunk.index + 1, chunks, f"chunk {chunk.index + 1} of {chunks} imagined")

                with _cropping(center_crop, policy, imagining):
                    result = dream(policy, imagining, obs, prompt, chunks, state=state, seed=seed,
                                   execute_steps=execute_steps, scorer=scorer, on_chunk=on_chunk)
            recorder.finish()
            report(chunks, chunks, "done")  # a call cancelled by now stops here
        except BaseException:  # the result names the run folder: a call that returns none leaves none
            if out is not None:
                shutil.rmtree(out, ignore_errors=True)
            raise
        prediction = result.world_predictions[0]
        return {
            "policy": self.checkpoint_name(ckpt, names),
            "world_model": self.checkpoint_name(world, names),
            "embodiment": emb.key,
            "run_dir": str(out),
            "files": {**self._run_files(out), "dream": str(out / DREAM_FILE)},
            "columns": list(prediction.columns),
            "units": list(prediction.units),
            "fps": float(result.fps),
            "chunk_size": chunk,
            "execute_steps": execute_steps,
            "seed": seed,
            "score": score,
            # each model's, as its predictions' settings record it (settings.json's, the world model's)
            "center_crop": {"policy": result.policy_predictions[0].settings.get("center_crop"),
                            "world_model": prediction.settings.get("center_crop")},
            # as dream.json and settings.json record them (`write_dream`), from the result in memory
            "chunks": [{"chunk": j, "actions": part["actions"], "frames": part["frames"],
                        "policy_seed": asked.settings.get("seed"), "world_model_seed": part["seed"],
                        "reward": None if score is None else float(reward)}
                       for j, (part, asked, reward) in enumerate(zip(result.trajectory_chunks(),
                                                                     result.policy_predictions, result.rewards))],
            "rewards": None if score is None else [float(r) for r in result.rewards],
            "actions": np.round(result.actions, 6).tolist(),
            "video_frames": int(result.frames.shape[0]),
            "warnings": [*warnings, *(w for w in logged if w not in warnings)],
        }

    def show_dataset(
        self,
        dataset: str,
        episodes: Sequence[int] | None = None,
        embodiment: str | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """`worldpolicy dataset show`: a page of a LeRobot dataset (`data.show.show_dataset`: its summary and, per
        episode, each camera's clip, its features plotted with their named columns, its task and fields) in a fresh
        `show-...` run folder, and what it says: the summary (rate, episodes, features, tasks, provenance) and the
        episodes' files. `embodiment` reads the actions in its columns and units, as training maps them. The episodes
        and the embodiment are checked before anything is decoded (by `show_dataset`); a call that fails, or is
        cancelled (noticed once the page is written: `show_dataset` reports no progress), removes the run folder it
        began."""
        from ..data.layout import INFO_PATH
        from ..data.lerobot import LeRobotDataset
        from ..data.show import DEFAULT_EPISODES, show_dataset

        if episodes is not None:
            SHOWN_EPISODES.check("episodes", episodes)
            if not all(is_integer(e) for e in episodes):
                raise _must_be("episodes", episodes, SHOWN_EPISODES.accepted)
        emb = None
        if embodiment is not None:
            # a shipped model's own embodiment (panda_reach, which `list_embodiments` lists) by its name too: the
            # registry's error for it says to pass its spec file, which a tool refuses. Anything else (a list from the
            # untyped Strands tool too) is `_embodiment`'s to name or refuse as `embodiment`
            shipped = [r.embodiment for r in listed_embodiments() if r.shipped is not None]
            wanted = embodiment.strip().lower() if isinstance(embodiment, str) else None  # in any case, as the registry
            emb = next((e for e in shipped if e.key.lower() == wanted), None) or self._embodiment(embodiment, *shipped)
        root = self._readable_folder("dataset", dataset, INFO_PATH)
        given = {"dataset": dataset, "episodes": episodes, "embodiment": embodiment}
        try:
            with logged_warnings() as [notes]:  # a feature it cannot read (it opens without it): in the warnings
                ds = LeRobotDataset.open(root)
        except (ValueError, KeyError, OSError) as exc:
            raise _named(exc, given, "dataset", dataset) from None
        count = min(DEFAULT_EPISODES, ds.num_episodes) if episodes is None else len(episodes)
        report = progress or (lambda *_: None)
        report(0, count, f"showing {count} episodes")
        out = self._new_run_dir("show")
        try:
            with logged_warnings() as [logged]:
                shown = show_dataset(ds, out, episodes=episodes, embodiment=emb)
            report(count, count, "done")  # a call cancelled meanwhile stops here (show_dataset reports no progress)
        except (ValueError, KeyError) as exc:  # the episodes or the embodiment, named as the tool's argument
            shutil.rmtree(out, ignore_errors=True)
            raise _named(exc, given) from None
        except BaseException:  # as a failed sim's: the result names the folder, and a failed call returns none
            shutil.rmtree(out, ignore_errors=True)
            raise
        # `dataset info`'s summary (`LeRobotDataset.summary`: `tasks` their count) and the embodiment; the stats and the
        # episodes tables, one row per episode, stay in dataset_show.json
        summary = {k: v for k, v in shown.summary.items()
                   if k not in ("schema", "stats", "episode_table", "chosen", "chosen_by_default", "default_episodes")}
        summary["task_texts"] = summary["task_texts"][:MAX_LISTED_TASKS]
        rows = [e.to_json(out) for e in shown.episodes]
        return {
            "dataset": str(root),
            "run_dir": str(out),
            "summary": summary,
            "episodes": [{**row, "videos": {k: str(out / v) for k, v in row["videos"].items()},
                          "plots": [{**plot, "file": str(out / plot["file"])} for plot in row["plots"]]}
                         for row in rows],
            "warnings": list(dict.fromkeys([*notes, *logged])),
            "files": {"report": str(shown.page), "summary": str(out / SHOW_FILE),
                      "plots": [str(p) for e in shown.episodes for p in e.plots.values()],
                      "videos": [str(p) for e in shown.episodes for p in e.videos.values()]},
        }

    def _readable_folder(self, parameter: str, value: Any, marker: str | None = None) -> Path:
        """A folder inside the readable folders, none of whose links leads out of them: a dataset or a sim run is
        read file by file (its parquet and videos, its report), and a link in it would be a way out of the input
        roots, as one in a folder of frames would. A folder lacking `marker` (a dataset's meta/info.json), which its
        reader refuses before reading anything else, is not walked: a home folder given by mistake was walked whole
        before it was called no dataset."""
        path = self._resolve(value, parameter)
        roots = [str(r) for r in self.config.input_roots]
        if not self._readable(path):
            raise ToolInputError(parameter, "folder is outside the folders this server may read", value, roots)
        if not path.is_dir():
            raise ToolInputError(parameter, f"{str(path)!r} " + ("is a file, not a folder" if path.exists()
                                                                  else "does not exist"), value)
        if marker is not None and not (path / marker).exists() and not (path / marker).is_symlink():
            return path
        outside = []
        for folder, dirs, files in os.walk(path):  # links are not followed, but each is checked where it leads
            outside += [str((Path(folder) / name).relative_to(path)) for name in (*dirs, *files)
                        if (Path(folder) / name).is_symlink() and not self._readable((Path(folder) / name).resolve())]
        if outside:
            raise ToolInputError(parameter, f"folder links to files outside the folders this server may read "
                                 f"({', '.join(sorted(outside)[:5])})", value, roots)
        return path


# report.json's fields of how the chunks ran that evaluate_sim returns: the strategy (kind and k), the latency (ms and
# control steps), rtc and the hand-over and in-chunk jumps (`sim.rollout.Jumps`)
SIM_TIMING_FIELDS = ("strategy", "latency", "rtc", "mean_handover_jump_rad", "max_handover_jump_rad",
                     "mean_chunk_jump_rad", "max_chunk_jump_rad")
# The sim library's names of what evaluate_sim takes as `strategy`, `latency` and `rtc` (`worldpolicy sim` names them
# by its flags: `sim.commands.FLAGS`)
TIMING_ARGUMENTS = {"strategy": "strategy", "execute_steps": "strategy", "latency_ms": "latency", "rtc": "rtc"}


def _timing_error(exc: Exception, given: dict[str, Any]) -> ToolInputError:
    """A check of the chunk timing (`robot.control.check_rtc`, `sim.rollout.latency_ticks`...) as the ToolInputError
    of evaluate_sim's argument it is about (`TIMING_ARGUMENTS`), its message as the check words it."""
    name, text = error_parameter(exc)
    argument = TIMING_ARGUMENTS.get(name or "", "strategy")
    return ToolInputError(argument, text.removeprefix(f"{name}: "), _jsonable(given[argument]))


def _training_scenes_warning(scenes: dict[str, Any] | None, episodes: int, checkpoint: str) -> list[str]:
    """`worldpolicy sim`'s warning about episodes that are scenes `checkpoint` (its folder) was trained on
    (report.json's `training_scenes`), naming the tool's `seed`: an agent reads the result, not the log. The
    checkpoint named as `worldpolicy sim`, `dataset eval` and the open-loop tool name it (`TrainingScenes.trained_on`:
    `shipped` for the shipped model, a hub snapshot by its hub id), not by its folder's name."""
    from ..sim.tasks import TrainingScenes

    said = TrainingScenes.from_json(scenes).warning(episodes, checkpoint, "seed=") if scenes else None
    return [said] if said is not None else []


def _pair_notes(pairs: Sequence[Any]) -> list[str]:
    """compare_sim_runs' warnings of its pairs' notes (not paired, few shared seeds: `sim.compare.PairedTest.note`):
    a pair's as `a vs b: note`, a note several pairs share once, with their count (ten runs of three seeds said the
    same note for each of their 45 pairs, 6 kB of the result)."""
    by_note: dict[str, list[Any]] = {}
    for pair in pairs:
        if pair.note:
            by_note.setdefault(pair.note, []).append(pair)
    return [f"{same[0].a} vs {same[0].b}: {note}" if len(same) == 1
            else f"{len(same)} of the {len(pairs)} pairs: {note}" for note, same in by_note.items()]


def _named(exc: Exception, given: dict[str, Any], parameter: str | None = None, value: Any = None) -> Exception:
    """A library error that names its parameter first (`episodes=[9]: ...`, `action_keys: ...`:
    `errors.error_parameter`) as the ToolInputError of the tool's argument of that name (`given`: the arguments as the
    call gave them); else the one of `parameter`, if given; else the error as it is."""
    name, text = error_parameter(exc)
    if name is not None and name in given:
        return ToolInputError(name, text.removeprefix(f"{name}: "), _jsonable(given[name]))
    return exc if parameter is None else ToolInputError(parameter, text, _jsonable(value))


def _own_embodiment(checkpoint: Path, given: Any, parameter: str = "checkpoint"):
    """What a call without `embodiment` runs this checkpoint with (`policy.checkpoint_embodiment`: its
    embodiment.json, else the registered one its trainer_state.json names, else droid), read without registering
    anything (listing must not change what other checkpoints run with); an unusable one is the checkpoint's problem,
    named by `parameter`."""
    from ..embodiments import get_embodiment
    from ..policy import checkpoint_embodiment

    try:
        own = checkpoint_embodiment(checkpoint, None)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        what = EMBODIMENT_FILE if (checkpoint / EMBODIMENT_FILE).is_file() else "trained embodiment"
        raise ToolInputError(parameter, f"its {what} is unusable: {exc}", given) from None
    return get_embodiment(own) if isinstance(own, str) else own


def _embodiment_row(e, source: str, checkpoint: str | None) -> dict[str, Any]:
    """One `list_embodiments` row: what a call's actions, images and state must look like for this embodiment."""
    return {
        "key": e.key,
        "domain": e.domain,
        "layout": e.layout,
        "action_dim": e.action_dim,
        "chunk_size": e.chunk_size,
        "fps": e.fps,
        "columns": list(e.columns),
        "units": list(e.units),
        "gripper_column": e.gripper_column,
        "camera_keys": list(e.camera_keys),
        "state_keys": dict(e.state_keys),
        "needs_state": bool(e.state_history),
        "description": e.description,
        "source": source,
        "checkpoint": checkpoint,
    }


def _load_problem(checkpoint: Path) -> str | None:
    """What keeps a listed checkpoint from loading, said in the listing rather than on first use: an adapter's base
    gone or unreadable, a partial download or copy (a part missing, weights cut short, a Git LFS pointer), a folder
    holding little more than model_index.json, a hub snapshot whose weights cannot be fetched (offline). Files and
    headers only; nothing loads."""
    from ..engine.loading import check_checkpoint_complete
    from ..hub import HubError

    try:
        check_checkpoint_complete(checkpoint)
    except (FileNotFoundError, ValueError, HubError) as exc:
        return str(exc)
    return None


def _single_view(ckpt: Path | str, emb, source: str, height: int, width: int, pass_each: str) -> list[str]:
    """The command line's warning for one `image` or `video` given to an embodiment that composes several cameras and
    looking like one camera's view, worded for the tools (`pass_each`: how they take each camera); none for a
    checkpoint (`ckpt`) trained on one such view, as `predict`'s."""
    from ..processing.observations import single_view_warning

    message = single_view_warning(emb, source, height, width, pass_each, trained_frames(str(ckpt)))
    return [] if message is None else [message]


def _readable_image(path: Path, parameter: str, given: Any) -> np.ndarray:
    """The image as RGB uint8, or a ToolInputError naming the parameter (a corrupt file is the caller's input)."""
    from ..processing.observations import load_frames, model_uint8

    try:
        frames = load_frames(path, parameter)
    except (ValueError, TypeError) as exc:
        raise ToolInputError(parameter, str(exc).removeprefix(f"{parameter}: "), given) from None
    _check_size(frames, parameter, given)
    return model_uint8(frames[0])


def _check_size(frames: np.ndarray, parameter: str, given: Any) -> None:
    """The policy refuses frames too small for the model, but only once it is loaded, naming no argument: checked
    here first, as a corrupt file is."""
    from ..processing.observations import MIN_SIDE, size_problem

    if (problem := size_problem(*frames.shape[1:3])) is not None:
        raise ToolInputError(parameter, problem, given, f"frames of at least {MIN_SIDE}x{MIN_SIDE} pixels")


def _window_progress(report: Progress, windows: int, batch_size: int,
                     unit: str = "window") -> Callable[[int, int], None]:
    """`infer_actions`' progress over all its windows (`imagine`'s over a whole trajectory's chunks, one at a time:
    `unit` "chunk"): the run reports each batch's denoising steps from 1 again, so its step i of n in batch b is
    (b*n + i) of (batches*n), and the message names the windows being denoised (one window: the other modes'
    'denoising step i/n')."""
    batches = math.ceil(windows / batch_size)
    batch = 0

    def step(done: int, total: int) -> None:
        nonlocal batch
        first, last = batch * batch_size + 1, min((batch + 1) * batch_size, windows)
        where = "" if windows == 1 else f"{unit}s {first}-{last} of {windows}: " if last > first else \
            f"{unit} {first} of {windows}: "
        report(batch * total + done, batches * total, f"{where}denoising step {done}/{total}")
        if done == total:
            batch += 1

    return step


CENTER_CROP_ACCEPTED = ("true (crop the frames' centre where the checkpoint's training record says to) or false (leave "
                        "them whole, as the command line's --no-center-crop)")


def _check_center_crop(center_crop: Any) -> None:
    """A tool's `center_crop`, refused unless a boolean (before a model loads)."""
    if not isinstance(center_crop, bool):
        raise _must_be("center_crop", center_crop, CENTER_CROP_ACCEPTED)


@contextmanager
def _cropping(center_crop: bool, *policies: Any) -> Iterator[None]:
    """A call's `center_crop` on the cached `policies` it runs (held by it under `Toolbox._run_lock`, so no other
    call sees them meanwhile): false leaves their frames whole (`Policy.center_crop` None, as `load_policy(...,
    center_crop=False)` and the command line's `--no-center-crop` load one) for the call, which records it so
    (settings.json, report.json's `policy_settings`, openloop.json); true, as each loaded (the crop its training
    record says, `policy.trained_center_crop`). Each policy's own is back after the call, for the next."""
    loaded = [policy.center_crop for policy in policies]
    try:
        if not center_crop:
            for policy in policies:
                policy.center_crop = None
        yield
    finally:
        for policy, area in zip(policies, loaded):
            policy.center_crop = area


def _must_be(parameter: str, given: Any, accepted: str) -> ToolInputError:
    """A bad argument refused as what it must be, said in the message and as `accepted`, which an agent reads."""
    return ToolInputError(parameter, f"must be {accepted}", given, accepted)


def _numeric_list(x: Any) -> bool:
    """A (nested) list/tuple of real numbers, checked without numpy guessing object arrays."""
    if isinstance(x, np.ndarray):
        return x.dtype.kind in "iuf"
    if isinstance(x, (list, tuple)):
        return all(_numeric_list(v) for v in x)
    return is_real(x, finite=False)
