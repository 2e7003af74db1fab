"""Result types shared by the local engine, the remote client and everything downstream (numpy only, no torch)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MODES = ("policy", "forward_dynamics", "inverse_dynamics")
ACTIONS_SCHEMA = "worldpolicy.actions/v1"  # the actions file format (docs/actions-schema.md)
HTML_ROWS = 64  # the rows of actions a notebook's table of a result shows (`Prediction._repr_html_`)
HTML_FRAMES, HTML_FRAME_HEIGHT = 8, 128  # its video's frames shown above the table, and their height in pixels
HTML_JPEG_QUALITY = 85  # those frames' JPEG quality (`frame_strip_html`)


def is_string_list(value: Any) -> bool:
    """What an actions file's `columns` and `units` must be (a bare string would be read as its characters)."""
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def actions_to_json(values: Any) -> list:
    """Rows of an actions file. Strict JSON (jq, browsers, most parsers) has no NaN or Infinity, so a non-finite value
    is written as null; `actions_from_json` reads it back as NaN."""
    a = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(a), a, None).tolist()


def actions_from_json(rows: Any) -> Any:
    """Rows read from an actions file, with null (a non-finite value, `actions_to_json`) as NaN; anything else is
    returned as it is, for the reader's own checks to name."""
    if rows is None:
        return math.nan
    if isinstance(rows, list):
        return [actions_from_json(row) for row in rows]
    return rows


def result_html(summary: str, columns: list[str], units: list[str], actions: np.ndarray, fps: float,
                video: np.ndarray | None) -> str:
    """A result as a notebook shows it (`Prediction`, `sim.Dream`): `summary` (its repr), the video's frames as a
    strip (`frame_strip_html`) and a table of the actions, a column each headed by its name and unit, a row each by
    its time (the first `HTML_ROWS` rows of a long one; `actions` holds them all)."""
    from html import escape

    from .embodiments import unit_label

    heads = "".join(f"<th>{escape(unit_label(c, u))}</th>" for c, u in zip(columns, units, strict=True))
    rows = "".join(f"<tr><th>{i / fps:.3f}</th>" + "".join(f"<td>{v:.4g}</td>" for v in row) + "</tr>"
                   for i, row in enumerate(actions[:HTML_ROWS]))
    more = len(actions) - HTML_ROWS
    tail = f"<p>... {more} more rows (<code>actions</code>)</p>" if more > 0 else ""
    return (f"<p><code>{escape(summary)}</code></p>{frame_strip_html(video, fps)}<table><thead><tr><th>t [s]</th>"
            f"{heads}</tr></thead><tbody>{rows}</tbody></table>{tail}")


def frame_strip_html(video: np.ndarray | None, fps: float) -> str:
    """A video, where there is one, as a row of `HTML_FRAMES` of its frames spread over it (first and last included),
    each `HTML_FRAME_HEIGHT` pixels high, named by index: a look at the imagined future in a notebook. A JPEG (quality
    `HTML_JPEG_QUALITY`): a fifth of the PNG's bytes for camera frames, which a saved notebook keeps."""
    if video is None or not len(video):
        return ""
    import base64
    import io

    from PIL import Image

    picked = np.unique(np.linspace(0, len(video) - 1, min(len(video), HTML_FRAMES)).round().astype(int))
    height, width = video.shape[1:3]
    size = (max(1, round(width * HTML_FRAME_HEIGHT / height)), HTML_FRAME_HEIGHT)
    strip = np.concatenate([np.asarray(Image.fromarray(video[i]).resize(size)) for i in picked], axis=1)
    jpeg = io.BytesIO()
    Image.fromarray(strip).save(jpeg, format="JPEG", quality=HTML_JPEG_QUALITY)
    said = f"video frames {', '.join(map(str, picked))} of {len(video)} at {fps:g} fps"
    return (f'<p>{said}</p><img alt="{said}" src="data:image/jpeg;base64,'
            f'{base64.b64encode(jpeg.getvalue()).decode()}">')


@dataclass(frozen=True)
class VideoPlayer:
    """A clip as a notebook plays it (`Prediction.video_player`, `sim.Dream.video_player`): `mp4`, its frames
    encoded as H.264 (`processing.video.encode_mp4`), shown by `_repr_html_` as an HTML5 player holding them (base64:
    the notebook keeps the video when saved; no file, no IPython needed)."""

    mp4: bytes
    frames: int
    fps: float

    @classmethod
    def of(cls, video: np.ndarray, fps: float) -> VideoPlayer:
        """`video` (uint8 [T, H, W, 3]) at `fps`, encoded."""
        from .processing.video import encode_mp4

        return cls(encode_mp4(video, fps), len(video), fps)

    def __repr__(self) -> str:
        return f"VideoPlayer({self.frames} frames at {self.fps:g} fps, {len(self.mp4) / 1e3:.1f} kB of mp4)"

    def _repr_html_(self) -> str:
        import base64

        return (f'<video controls loop muted playsinline src="data:video/mp4;base64,'
                f'{base64.b64encode(self.mp4).decode()}"></video>')


@dataclass
class Prediction:
    """What a policy call returns.

    `actions` are in physical units (float64, [chunk, action_dim], columns/units named; inverse dynamics over a whole
    clip: [frames-1, action_dim], one row per frame transition); `actions_normalized` are the model-space values. For
    forward dynamics both echo the actions that conditioned the rollout (a whole trajectory's: every row given). `video`
    is the imagined (or re-decoded) clip as uint8 [T, H, W, 3] when decoding was asked for: chunk_size+1 frames at
    `fps` (a whole clip's: its frames used; a whole trajectory's: its rows + 1; frame 0 the observation, frame i+1
    after action i), the rate `save` writes rollout.mp4 at. `timings` are seconds
    per stage; from a batch (`act_batch`, a server's batch) `denoise` is the whole batch's, whose requests share each
    step's pass, and `total` runs from the batch's start, so neither adds up over a batch's predictions.
    """

    mode: str
    embodiment: str
    columns: list[str]
    units: list[str]
    actions: np.ndarray
    actions_normalized: np.ndarray
    fps: float
    video: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    # the embodiment's layout and gripper column, so plots of an unregistered (a checkpoint's own) embodiment draw its
    # gripper and joints; None: unknown (viz infers them from the column names)
    layout: str | None = None
    gripper_column: str | None = None

    @property
    def chunk_size(self) -> int:
        return int(self.actions.shape[0])

    def __repr__(self) -> str:
        """What a notebook or a log shows of a result: its kind and shapes, not the dataclass's every array (thousands
        of lines of actions and video) and settings (the caption, the sigmas)."""
        video = "None" if self.video is None else f"uint8 {list(self.video.shape)}"
        seed = self.settings.get("seed")
        return (f"Prediction(mode={self.mode!r}, embodiment={self.embodiment!r}, actions=[{self.chunk_size}, "
                f"{len(self.columns)}] ({', '.join(self.columns)}), fps={self.fps:g}, video={video}"
                + (f", seed={seed}" if seed is not None else "") + ")")

    def _repr_html_(self) -> str:
        """What a notebook shows of a result: its repr, a strip of its video's frames and a table of its actions
        (`result_html`); `video_player` plays the video."""
        return result_html(repr(self), self.columns, self.units, self.actions, self.fps, self.video)

    def video_player(self) -> VideoPlayer:
        """The video as a notebook plays it (`VideoPlayer`: an HTML5 player holding its mp4): asked for, as encoding
        it takes a moment and its bytes stay in a saved notebook, where the frame strip of `_repr_html_` is cheap."""
        if self.video is None:
            raise ValueError(f"this {self.mode} prediction has no video: ask for one with decode_video=True (forward "
                             "dynamics decodes it unless decode_video=False)")
        return VideoPlayer.of(self.video, self.fps)

    def as_dict(self) -> dict[str, np.ndarray]:
        """Column name → physical values over the chunk."""
        return {name: self.actions[:, i] for i, name in enumerate(self.columns)}

    def to_json(self) -> dict[str, Any]:
        """The documented actions-file schema (docs/actions-schema.md), version 1: strict JSON, a non-finite action
        as null."""
        out = {
            "schema": ACTIONS_SCHEMA,
            "mode": self.mode,
            "embodiment": self.embodiment,
            "fps": self.fps,
            "chunk_size": self.chunk_size,
            "columns": list(self.columns),
            "units": list(self.units),
            "actions": actions_to_json(self.actions),
            "actions_normalized": actions_to_json(self.actions_normalized),
            "video_frames": None if self.video is None else int(self.video.shape[0]),
            "timings_s": {k: float(v) for k, v in self.timings.items()},
            "settings": self.settings,
        }
        if self.layout is not None:
            out.update(layout=self.layout, gripper_column=self.gripper_column)
        return out

    def save(self, out: str | Path, plots: bool = True, *, observation: Any = None) -> list[Path]:
        """Write this result into folder `out` as `worldpolicy predict` writes its run (actions.json, settings.json,
        rollout.mp4 when a video was decoded, plots/ and index.html; `plots=False`: no plots/ or index.html), so a
        Python call's result gets the files, report and readers (`--actions`, `viz`) a command's has. `observation`:
        the one the policy was given (an image, or the dict `act` took: the cameras the embodiment reads are kept, its
        state and prompt are not; of an embodiment not known in this process, a `RemotePolicy`'s server's own, the
        dict's images [H, W, 3]), kept as predict keeps its `--camera` files, `observation/<camera>.png`, which the
        page shows beside the imagined video and `predict --camera` takes again. `out` is checked as predict's --out
        (never a checkpoint, a dataset, another command's run or a folder of runs); a folder that holds an earlier
        predict run loses what this one does not rewrite. Returns the files written. The page and plots need
        matplotlib (a core dependency), imported only here."""
        from .fileio import output_folder, removing_empty_folders_on_failure
        from .viz.run import cameras_read, write_run_whole

        given = None if observation is None else cameras_read(self, observation)  # a missing camera: before any file
        with removing_empty_folders_on_failure():  # a result that cannot be written leaves no empty folder
            return write_run_whole(self, output_folder(out, "out", writer="predict", not_over_runs=True), plots=plots,
                                   observation=given)
