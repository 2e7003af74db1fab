"""A world model as a gymnasium env: `reset` sets the start (an observation and a task), `step(action_chunk)` has the
model imagine the world under those actions (forward dynamics, `imagine`), and the observation is its latest
imagined frame, so a policy can be evaluated in imagination: `policy.act(obs)` -> `env.step(actions)`, chunk after
chunk (`dream` runs that loop). No simulator: MuJoCo is neither imported nor needed.

Stepping the env is `imagine(whole_trajectory=True)` one chunk at a time: step j is the whole-trajectory call on its
own rows, conditioned on the previous step's last imagined frame (step 0: the start observation itself), with the
seed the whole trajectory gives chunk j (`processing.trajectory.chunk_seed`) and, for a state-conditioned embodiment,
the state it gives (`state_reached`). Stepping a trajectory's rows chunk by chunk therefore imagines the video
`imagine(observation, rows, prompt, whole_trajectory=True, seed=s)` does, after `reset(seed=s)`.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from worldpolicy.errors import is_integer
from worldpolicy.extras import extra_imports

with extra_imports():
    import gymnasium as gym

from worldpolicy.embodiments import Embodiment
from worldpolicy.fileio import (
    DREAM_CHUNKS_FILE,
    DREAM_FILE,
    DREAM_PARTIAL_DIR,
    DREAM_PARTIAL_SCHEMA,
    DREAM_SCHEMA,
    make_folder,
    write_json_atomic,
)
from worldpolicy.models import portable_checkpoint
from worldpolicy.planning import Scorer, check_prompt, check_scorer, score
from worldpolicy.policy import FRESH_SEEDS, Policy, check_seed, join_windows, observation_state, physical_state_row
from worldpolicy.processing.actions import to_model, to_physical
from worldpolicy.processing.observations import (
    SINGLE_VIEW_KEYS,
    camera_views,
    canvas_comment,
    compose_views,
    load_frames,
    model_uint8,
    prepare_canvas,
    recorded_canvas,
    resolution_bins,
)
from worldpolicy.processing.trajectory import call_seed, check_trajectory_embodiment, chunk_seed, state_reached
from worldpolicy.processing.video import write_video
from worldpolicy.results import Prediction, VideoPlayer, actions_to_json, result_html

logger = logging.getLogger(__name__)

__all__ = ["DREAM_PARTIAL_SCHEMA", "DREAM_SCHEMA", "FRAME_KEY", "Dream", "DreamChunk", "DreamRecorder",
           "WorldModelEnv", "dream", "dream_settings", "dream_steps_refusal", "write_dream"]

# the observation's frame: the key an observation dict gives a pre-composed canvas under, so `act` takes it as is
FRAME_KEY = SINGLE_VIEW_KEYS[0]
# pixels per latent cell of the Wan VAE (the pipeline's `vae_scale_factor`): the model decodes latent_h x latent_w
# cells, the content's size rounded down to it (`prepare_canvas`' `Canvas`)
VAE_PIXELS = 16
RESET_OPTIONS = ("observation", "state", "prompt")


def _world_model_parts(policy: Any, param: str) -> tuple[Embodiment, int, int]:
    """What the env needs of a world model (a local `Policy`, or a `RemotePolicy` of a worldpolicy server): `imagine`,
    its embodiment, chunk size and resolution tier; refused, naming `param`, before any work."""
    parts = [getattr(policy, name, None) for name in ("embodiment", "chunk_size", "resolution_tier")]
    if not callable(getattr(policy, "imagine", None)) or any(part is None for part in parts):
        raise TypeError(f"{param}: expected a world model with imagine() that knows its embodiment, chunk_size and "
                        "resolution_tier (worldpolicy.load_policy(...), or a RemotePolicy of a worldpolicy server), "
                        f"got {type(policy).__name__}")
    return parts[0], int(parts[1]), int(parts[2])


def _said_imagined(model: Any, frame: np.ndarray) -> None:
    """Tell a local `Policy` that `frame` is a world model's own (decoded at its canvas size), so it is not judged as
    a camera's image against the frames its checkpoint was trained on, which would warn of a size no user chose, as
    `imagine(whole_trajectory=True)` tells it of its own chunks (`Policy.imagined_frame_said`; a `RemotePolicy`'s
    is local only: its server judges what it receives)."""
    if isinstance(model, Policy):
        model.imagined_frame_said(frame)


def _canvas_option(model: Any, canvas: tuple[int, int] | None) -> dict[str, Any]:
    """`canvas` as a request option (`PolicyRequest.canvas`) for a local `Policy` whose resolution tier has that bin:
    the model's own frames go back on the canvas they were generated on. None for a `RemotePolicy` (the wire carries no
    canvas) or another tier's model, which put them on the bin their aspect ratio gets."""
    if isinstance(model, Policy) and canvas is not None and canvas in resolution_bins(model.resolution_tier).values():
        return {"canvas": canvas}
    return {}


class WorldModelEnv(gym.Env):
    """A world model rolled forward one action chunk per `step` (module docstring).

    `world_model`: a local `Policy` or a `RemotePolicy`; `observation`: the start, in any form `imagine` takes (an
    openpi-style dict per camera, an image), with `state` for a state-conditioned embodiment (or its state keys in
    the dict); `prompt`: the task. `reset(options={"observation": ..., "state": ..., "prompt": ...})` starts from
    another, so one env runs many starts; the start's frame must keep the model's frame size (the observation space's).

    action: one chunk [k, action_dim] in physical units (the embodiment's columns), 1 <= k <= chunk_size: fewer rows
    are padded by repeating the last, as `imagine` pads, and only their k frames are kept, so a policy that runs part
    of its chunk before asking again (`execute_steps`) steps with that part. observation: a dict `act` takes as it is,
    `{FRAME_KEY: frame}` (uint8 [H, W, 3], the composite canvas as the model decodes it), plus the embodiment's state
    keys for a state-conditioned one: the previous chunk's last joint target, taken as reached. An embodiment whose
    state no action gives (deltas) is refused, as `whole_trajectory` refuses it. reward: `scorer(frames, prompt)` of
    the chunk's imagined frames (0 without one); terminated: never (an imagined world has no success check);
    truncated: after `max_chunks` steps. info: the chunk's `frames` [k, H, W, 3], the world model's `prediction`, its
    `seed`, and `chunk` (its index). `render()` (render_mode "rgb_array") is the latest frame."""

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"]}

    def __init__(self, world_model: Any, observation: Any, prompt: str, *, state: Any = None,
                 scorer: Scorer | None = None, max_chunks: int | None = None,
                 render_mode: str | None = "rgb_array") -> None:
        e, self.chunk_size, self.resolution_tier = _world_model_parts(world_model, "world_model")
        check_trajectory_embodiment(e, "world_model")
        if e.state_history and not (e.state_keys.get("joints") and e.state_keys.get("gripper")):
            raise ValueError(f"world_model: embodiment {e.key!r} conditions on the robot state but names no "
                             "state_keys (joints, gripper) the observation could carry it under; accepted: an "
                             "embodiment with state_keys, or one that takes no state")
        if scorer is not None:
            check_scorer(scorer)
        if max_chunks is not None and (not is_integer(max_chunks) or max_chunks < 1):
            raise ValueError(f"max_chunks={max_chunks!r}; accepted: an int >= 1, or None (no limit)")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r}; accepted: {[None, *self.metadata['render_modes']]}")
        self.world_model, self.embodiment = world_model, e
        self.scorer, self.max_chunks, self.render_mode = scorer, max_chunks, render_mode
        self.metadata = {**self.metadata, "render_fps": e.fps}
        self._canvas_said: set[str] = set()  # a start's recorded canvas left out, said once per file and reason
        self._start = self._checked_start(observation, state, prompt, "observation")
        frame = self._start[3]
        # the canvas the observation's frame sits on: the start's, then the one each chunk was generated on; a policy
        # acting on the observation passes it (`dream`), as every step does (`PolicyRequest.canvas`)
        self.canvas: tuple[int, int] = self._start[5]
        physical = to_physical(e, np.array([[-1.0] * e.action_dim, [1.0] * e.action_dim]))
        # the range the model's data covered (its q01..q99, model space -1..1): larger actions run (far larger ones are
        # warned of, as `imagine` warns of them)
        self.action_space = gym.spaces.Box(np.tile(physical.min(0), (self.chunk_size, 1)),
                                           np.tile(physical.max(0), (self.chunk_size, 1)), dtype=np.float64)
        spaces = {FRAME_KEY: gym.spaces.Box(0, 255, frame.shape, dtype=np.uint8)}
        if e.state_history:
            spaces[e.state_keys["joints"]] = gym.spaces.Box(-np.inf, np.inf, (e.action_dim - 1,), dtype=np.float64)
            spaces[e.state_keys["gripper"]] = gym.spaces.Box(-np.inf, np.inf, (1,), dtype=np.float64)
        self.observation_space = gym.spaces.Dict(spaces)
        self._frame: np.ndarray | None = None  # the latest frame; None before reset
        self._conditioning: Any = None  # what the next chunk is conditioned on: the start, then the latest frame
        self._state: np.ndarray | None = None
        self._given_state: Any = None  # the start's state as given, for chunk 0 (imagine reads and judges it)
        self.prompt = prompt
        self.seed: int | None = None
        self.chunks = 0
        self._ended = False

    def _checked_start(self, observation: Any, state: Any, prompt: Any, param: str) -> tuple:
        """(observation, state as given, physical state or None, the frame as the model decodes it, prompt, the canvas
        it sits on), each checked before any imagining."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"prompt: expected the task as a non-empty string, got {prompt!r}")
        if self.scorer is not None:
            check_prompt(self.scorer, prompt)
        e = self.embodiment
        reached = None
        if e.state_history:
            if state is None and isinstance(observation, Mapping):
                reached = observation_state(observation, e, "forward_dynamics")
            elif state is None:
                raise ValueError(f"state: embodiment {e.key!r} conditions on the robot state ({', '.join(e.columns)});"
                                 f" pass state=[...] or an observation dict with {sorted(e.state_keys.values())}")
            else:
                reached = physical_state_row(state, e, "forward_dynamics")
        frame, canvas = self._model_frame(observation, param)
        return observation, state, reached, frame, prompt, canvas

    def _say_canvas_once(self, message: str) -> None:
        """A start's recorded canvas left out (`recorded_canvas`), warned of once: each reset that passes the same
        file as its `observation` said it again."""
        if message not in self._canvas_said:
            self._canvas_said.add(message)
            logger.warning("%s", message)

    def _model_frame(self, observation: Any, param: str) -> tuple[np.ndarray, tuple[int, int]]:
        """The start as the model sees it, uint8 [H, W, 3]: composed and put on the canvas as `imagine` does (its
        latest frame), cut to the latent grid's pixels, the size every imagined frame has, rounded as imagined frames
        are (`model_uint8`); and that canvas."""
        e = self.embodiment
        try:
            if isinstance(observation, Mapping):
                frames = compose_views(camera_views(observation, e.camera_keys, e.composite, last=1), e.camera_keys,
                                       e.composite)
            else:
                frames = load_frames(observation, param, last=1)
        except (KeyError, TypeError, ValueError) as exc:
            raise type(exc)(f"{param}: {exc}") from None
        canvas, info = prepare_canvas(frames[-1:], self.resolution_tier, 1, e.snap_to_16,
                                      recorded_canvas(observation, frames.shape[1:3], self.resolution_tier,
                                                      self._say_canvas_once))
        h, w = info.latent_h * VAE_PIXELS, info.latent_w * VAE_PIXELS
        pixels = (canvas[0, :, 0, :h, :w].permute(1, 2, 0).numpy() + 1.0) / 2.0
        return model_uint8(pixels), (info.canvas_h, info.canvas_w)

    # --- gymnasium API -------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """A new episode from the start (`options` may give another: `observation`, `state`, `prompt`). `seed` makes
        it repeatable: chunk j samples with seed + j, as `imagine(whole_trajectory=True, seed=seed)` samples its
        chunk j; without one the seed is drawn from the env's generator (gymnasium's `np_random`, seeded by the
        last seeded reset), below `policy.FRESH_SEEDS`."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise ValueError(f"options: unknown {unknown}; accepted: {', '.join(RESET_OPTIONS)}")
        if seed is not None:
            check_seed(seed)
        if options:
            observation, state, _, _, prompt, _ = self._start
            given = "observation" in options
            start = self._checked_start(options.get("observation", observation),
                                        options.get("state", None if given else state),
                                        options.get("prompt", prompt), 'options["observation"]')
            want = self.observation_space[FRAME_KEY].shape
            if start[3].shape != want:
                raise ValueError(f'options["observation"]: its frame as the model decodes it is {start[3].shape[:2]}, '
                                 f"this env's observation space {want[:2]}; accepted: a start of the same size (one "
                                 "env per frame size)")
            self._start = start
        super().reset(seed=seed)
        observation, self._given_state, self._state, self._frame, self.prompt, self.canvas = self._start
        self._conditioning = observation
        # a drawn seed as short as a request's own (`policy.fresh_seed`): the dream's chunks record seed + j, which a
        # person reads back and types again (drawn from all of [0, 2**63), each was a 19-digit number)
        self.seed = int(seed) if seed is not None else int(self.np_random.integers(FRESH_SEEDS))
        self.chunks = 0
        self._ended = False
        return self._observation(), {"seed": self.seed, "prompt": self.prompt}

    def step(self, action: Any):
        """Imagine one chunk of `action` (class docstring) from the latest frame."""
        if self._frame is None:
            raise RuntimeError("step(): call reset() first")
        if self._ended:
            raise RuntimeError(f"step(): the episode was truncated at max_chunks={self.max_chunks}; call reset()")
        rows = self._checked_action(action)
        j = self.chunks
        seed = chunk_seed(self.seed, j)
        first = j == 0
        state = self._given_state if first else self._state if self.embodiment.state_history else None
        if not first:
            _said_imagined(self.world_model, self._conditioning)
        prediction = self.world_model.imagine(self._conditioning, rows, self.prompt, whole_trajectory=True, seed=seed,
                                              state=state, progress=False,
                                              **_canvas_option(self.world_model, self.canvas))
        frames = prediction.video[1:]
        self._frame = self._conditioning = frames[-1]
        self.canvas = tuple(prediction.settings.get("canvas_hw", self.canvas))
        if self.embodiment.state_history:
            # the rows in model space as `imagine` reads them (`load_actions`), so the state is the whole trajectory's
            self._state = state_reached(self.embodiment, to_model(self.embodiment, rows))
        self.chunks += 1
        reward = 0.0
        if self.scorer is not None:
            reward = score(self.scorer, frames, self.prompt, f"chunk {j}")
        truncated = self.max_chunks is not None and self.chunks >= self.max_chunks
        self._ended = truncated
        info = {"frames": frames, "prediction": prediction, "seed": seed, "chunk": j}
        return self._observation(), reward, False, truncated, info

    def render(self) -> np.ndarray | None:
        """The latest frame (render_mode "rgb_array"); None, with gymnasium's warning, for render_mode None."""
        if self.render_mode is None:
            gym.logger.warn("You are calling render method without specifying any render mode: "
                            "WorldModelEnv(..., render_mode='rgb_array')")
            return None
        return None if self._frame is None else self._frame.copy()

    # --- helpers -------------------------------------------------------------------------------------------------
    def _checked_action(self, action: Any) -> np.ndarray:
        e, n = self.embodiment, self.chunk_size
        shape = f"[k, {e.action_dim}] with 1 <= k <= chunk_size ({n}), physical units ({', '.join(e.columns)})"
        try:
            rows = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"action: expected numbers {shape}, got {type(action).__name__}") from None
        if rows.ndim != 2 or rows.shape[1] != e.action_dim or not 1 <= rows.shape[0] <= n:
            raise ValueError(f"action: shape {tuple(rows.shape)}; accepted: {shape}")
        bad = ~np.isfinite(rows).all(axis=0)
        if bad.any():
            raise ValueError(f"action: NaN or inf in {[c for c, b in zip(e.columns, bad) if b]}; accepted: finite "
                             "numbers")
        return rows

    def _observation(self) -> dict[str, np.ndarray]:
        obs = {FRAME_KEY: self._frame.copy()}  # the caller keeps it (gymnasium: fresh data every call)
        if self.embodiment.state_history:
            keys = self.embodiment.state_keys
            obs[keys["joints"]] = self._state[:-1].copy()
            obs[keys["gripper"]] = self._state[-1:].copy()
        return obs


@dataclass
class DreamChunk:
    """One chunk of a dream, as `dream` hands it to `on_chunk` the moment it ends: its `index`, the `observation` frame
    the policy acted on (the start as the model sees it, then the previous chunk's last imagined frame), the
    `actions` [k, action_dim] run (physical), the `frames` [k, H, W, 3] imagined under them, its `reward`, and both
    models' results (`policy_prediction`, `world_prediction`). Its own arrays only: handing it on costs the same at
    chunk 1000 as at chunk 1."""

    index: int
    observation: np.ndarray
    actions: np.ndarray
    frames: np.ndarray
    reward: float
    policy_prediction: Prediction
    world_prediction: Prediction

    def __repr__(self) -> str:
        """Its index, shapes and reward, not its arrays' values (the dataclass printed every pixel)."""
        return (f"DreamChunk(index={self.index}, actions={list(self.actions.shape)}, "
                f"frames={self.frames.dtype} {list(self.frames.shape)}, reward={self.reward:.4g})")


@dataclass
class Dream:
    """A policy run closed loop in a world model's imagination (`dream`): `frames` [1 + rows, H, W, 3] (the start as
    the model sees it, then one imagined frame per action), `actions` [rows, action_dim] physical (what the policy
    chose and the world model rolled out), per chunk the `rewards` (0 without a scorer) and both models' results
    (`policy_predictions`, `world_predictions`), at `fps`."""

    frames: np.ndarray
    actions: np.ndarray
    rewards: list[float]
    fps: float
    policy_predictions: list[Prediction] = field(default_factory=list)
    world_predictions: list[Prediction] = field(default_factory=list)

    def __repr__(self) -> str:
        """What a notebook shows of a dream: its chunks, shapes and rewards, not the dataclass's every array (8,700
        characters of pixels for two chunks of the shipped model) and both models' results."""
        rewards = [f"{r:.4g}" for r in self.rewards]
        if len(rewards) > 8:  # a long dream's first and last
            rewards = [*rewards[:4], "...", *rewards[-3:]]
        return (f"Dream(chunks={len(self.rewards)}, actions={list(self.actions.shape)}, "
                f"frames={self.frames.dtype} {list(self.frames.shape)}, fps={self.fps:g}, "
                f"rewards=[{', '.join(rewards)}])")

    def _repr_html_(self) -> str:
        """What a notebook shows of a dream: its repr, a strip of its frames and a table of its actions, as of a
        `Prediction` (`results.result_html`); `video_player` plays the frames."""
        named = (self.world_predictions or self.policy_predictions)[:1]
        columns = named[0].columns if named else [str(i) for i in range(self.actions.shape[1])]
        units = named[0].units if named else [""] * len(columns)
        return result_html(repr(self), columns, units, self.actions, self.fps, self.frames)

    def video_player(self) -> VideoPlayer:
        """The dreamed video as a notebook plays it (`results.VideoPlayer`), as `Prediction.video_player`."""
        return VideoPlayer.of(self.frames, self.fps)

    @classmethod
    def of_chunks(cls, chunks: Sequence[DreamChunk]) -> Dream:
        """The chunks run so far, in order, as one dream (what `dream` returns; a dream cut short, from those that
        finished)."""
        if not chunks:
            raise ValueError("a dream of no chunks: give the chunks that ran (at least one)")
        return cls(np.concatenate([chunks[0].observation[None], *(c.frames for c in chunks)]),
                   np.concatenate([c.actions for c in chunks]), [c.reward for c in chunks],
                   chunks[0].world_prediction.fps, [c.policy_prediction for c in chunks],
                   [c.world_prediction for c in chunks])

    def save_video(self, path: str | Path) -> Path:
        """The dreamed video as an mp4 (`processing.video.write_video`, atomic), recording the canvas it was generated
        on (`canvas_comment`)."""
        settings = self.world_predictions[0].settings if self.world_predictions else {}
        return write_video(path, self.frames, self.fps, canvas_comment(settings, self.frames.shape[1:3]))

    def prediction(self) -> Prediction:
        """The dream as the world model saw it: one forward-dynamics result over a whole trajectory, the policy's
        actions (`actions`) and the video (`frames`) they were imagined into, `settings["trajectory"]` saying which
        rows and frames each chunk gave, from which frame, with which seed (as `imagine(whole_trajectory=True)`
        records it), so its actions.json, plots (chunk boundaries marked) and page are a whole trajectory's
        (`Prediction.save`, `viz.run.write_run`). Timings: each stage summed over the chunks' imagining."""
        if not self.world_predictions:
            raise ValueError("a dream of no chunks has no prediction: dream(..., chunks >= 1)")
        rows = [len(p.actions) for p in self.world_predictions]
        state_chained = bool(self.world_predictions[0].settings["trajectory"].get("state_chained", False))
        seconds = sum(p.timings.get("total", 0.0) for p in self.world_predictions)
        return join_windows(self.world_predictions, rows, {"trajectory": {
            "rows": sum(rows), "chunks": self.trajectory_chunks(), "state_chained": state_chained}}, seconds, True)

    def trajectory_chunks(self) -> list[dict[str, Any]]:
        """Per chunk, what `prediction` records of it (`settings["trajectory"]["chunks"]`, settings.json), without
        joining the chunks' arrays: its rows [a, b) of `actions`, its frames [a + 1, b + 1) of `frames`, the frame it
        was conditioned on (a) and the world model's seed."""
        chunks, start = [], 0
        for p in self.world_predictions:  # each its own one-chunk trajectory, shifted to its place
            n = len(p.actions)
            own = p.settings["trajectory"]["chunks"][0]
            chunks.append({**own, "actions": [start, start + n], "frames": [start + 1, start + n + 1],
                           "conditioned_on": start})
            start += n
        return chunks


def dream_steps_refusal(sent: int | None, imagined: int, execute_steps: Any) -> tuple[str, str, str] | None:
    """Why a policy sending chunks of `sent` actions (None: unknown) cannot run `execute_steps` of each in a world
    model imagining at most `imagined` per step, as (which: "execute_steps" or "policy", why, accepted), or None.
    `dream`, `worldpolicy dream` and the agents' tool each say it in their own names, before any weights load."""
    most = imagined if sent is None else min(sent, imagined)
    if execute_steps is not None and (not is_integer(execute_steps) or not 1 <= execute_steps <= most):
        return "execute_steps", f"{execute_steps!r} is not in 1..{most}", f"1..{most}, or none (the whole chunk)"
    if execute_steps is None and sent is not None and sent > imagined:
        return ("policy", f"sends chunks of {sent} actions and the world model imagines at most {imagined} per step",
                f"execute_steps 1..{imagined}, or a policy and world model of one chunk size")
    return None


def dream(policy: Any, world_model: Any, observation: Any, prompt: str, chunks: int, *, state: Any = None,
          seed: int | None = None, execute_steps: int | None = None, scorer: Scorer | None = None,
          on_chunk: Callable[[Dream], None] | None = None) -> Dream:
    """Evaluate `policy` in `world_model`'s imagination for `chunks` chunks: the policy acts on the latest imagined
    frame (`WorldModelEnv`'s observation), its first `execute_steps` actions (default: the whole chunk) are imagined,
    and so on. `policy` and `world_model` may be one `Policy`; both must share the embodiment's columns. `seed`: the
    world model's chunk j samples with seed + j (`WorldModelEnv.reset`) and the policy's with `call_seed(seed, j)`, so
    a dream repeats, and goes on from a shorter one of the same seed (its first chunks are the shorter one's); without
    one both draw their own. `on_chunk` is given each chunk as it ends (`DreamChunk`: a progress bar;
    `worldpolicy dream` records it with a `DreamRecorder`, so an interruption keeps the chunks that finished)."""
    embodiment = getattr(policy, "embodiment", None)
    if not callable(getattr(policy, "act", None)) or embodiment is None:
        raise TypeError(f"policy: expected a policy with act() that knows its embodiment, got {type(policy).__name__}")
    world, chunk_size, _ = _world_model_parts(world_model, "world_model")
    if list(embodiment.columns) != list(world.columns):
        raise ValueError(f"policy: its actions ({', '.join(embodiment.columns)}) are not the world model's "
                         f"({', '.join(world.columns)}); accepted: a policy and world model of one embodiment")
    if not is_integer(chunks) or chunks < 1:
        raise ValueError(f"chunks={chunks!r}; accepted: an int >= 1")
    if (refusal := dream_steps_refusal(getattr(policy, "chunk_size", None), chunk_size, execute_steps)) is not None:
        which, why, accepted = refusal
        raise ValueError(f"{which}: {why}; accepted: {accepted}")
    if seed is not None:
        check_seed(seed)
    env = WorldModelEnv(world_model, observation, prompt, state=state, scorer=scorer, max_chunks=chunks)
    obs, _ = env.reset(seed=seed)
    ran: list[DreamChunk] = []
    for j in range(chunks):
        seen = obs[FRAME_KEY]
        _said_imagined(policy, seen)  # the start as the model sees it, then its imagined frames
        pred = policy.act(obs, prompt, seed=None if seed is None else call_seed(seed, j),
                          **_canvas_option(policy, env.canvas))
        rows = pred.actions[:execute_steps]
        obs, reward, _, _, info = env.step(rows)
        ran.append(DreamChunk(j, seen, rows, info["frames"], reward, pred, info["prediction"]))
        if on_chunk is not None:
            on_chunk(ran[-1])
    return Dream.of_chunks(ran)


def dream_settings(policy: str, world_model: str, seed: int | None, chunks: int, execute_steps: int | None,
                   score: str | None, inputs: dict[str, str]) -> dict[str, Any]:
    """What a dream run records beside its prediction's settings (`write_dream`'s `settings`), the one place its shape
    is made: `worldpolicy dream` and the agents' `dream` tool alike. `command` names the run a dream
    (`viz.plots.run_mode`); `dream` holds what was asked (its `score` says whether chunks carry a reward); `inputs`,
    the files given, as each front end names them. The checkpoints as a saved setting names them
    (`models.portable_checkpoint`: `shipped`, not this install's folder), as `label` and `train` record theirs;
    `checkpoint`, the world model's, replaces the one its predictions carry."""
    policy, world_model = str(portable_checkpoint(policy)), str(portable_checkpoint(world_model))
    return {"command": "dream", "checkpoint": world_model,
            "dream": {"policy": policy, "world_model": world_model, "seed": seed, "chunks": chunks,
                      "execute_steps": execute_steps, "score": score},
            "inputs": inputs}


def write_dream(result: Dream, out: Path, settings: dict, requested: int, plots: bool = True,
                video_parts: Sequence[tuple[Path, int]] = (), observation: Any = None) -> list[Path]:
    """A dream run in `out` (`worldpolicy dream` writes it once, at the end or when cut short, `DreamRecorder.finish`;
    the agents' `dream` tool too): dream.json (per chunk: its rows, the policy's seed, its reward where
    `settings["dream"]["score"]` names a scorer, with the scorer and what its reward is, `sim.progress.SCORER_REWARDS`;
    first, so the page shows it) and the dream as one whole
    forward-dynamics trajectory (`Dream.prediction`), written as predict writes its run (`viz.run.write_run`:
    actions.json, settings.json, observation/, rollout.mp4, plots/ and index.html).
    `settings` (`dream_settings`) joins the prediction's; `requested`: the chunks asked for (more than done, in a run
    interrupted); `video_parts`: the chunks' mp4 files (`DreamRecorder`), which rollout.mp4 joins as they are where
    they allow it (`write_run`), rather than encoding their frames a second time; `observation`: the one `dream` was
    given, kept as `write_run` keeps a predict run's (`observation/<camera>.png`, shown on the page)."""
    from worldpolicy.viz.run import write_run

    prediction = result.prediction()
    prediction.settings = {**prediction.settings, **settings}
    spans = [c["actions"] for c in prediction.settings["trajectory"]["chunks"]]
    from worldpolicy.sim.progress import SCORER_REWARDS

    score = settings["dream"]["score"]
    chunks = [{"chunk": j, "actions": span, "policy_seed": p.settings.get("seed"),
               **({"reward": reward} if score is not None else {})}
              for j, (span, p, reward) in enumerate(zip(spans, result.policy_predictions, result.rewards))]
    # what the rewards are, from the scorer's own description, so whoever reads them (the page) need not ask --help
    scored = {} if score is None else {"score": score, "reward_meaning": SCORER_REWARDS[score]}
    doc = {"schema": DREAM_SCHEMA, "chunks_requested": requested, "chunks_done": len(chunks), **scored,
           "chunks": chunks}
    path = write_json_atomic(Path(out) / DREAM_FILE, doc)
    return [path, *write_run(prediction, out, plots=plots, video_parts=video_parts, observation=observation)]


class DreamRecorder:
    """`worldpolicy dream`'s run folder kept as the dream goes, at the same cost for every chunk: `add` (a `dream`
    `on_chunk`) appends the chunk to `out`/dream_partial/ (`fileio.DREAM_PARTIAL_DIR`): its frames as their own small
    mp4 (`chunk-0000.mp4`, ...; chunk 0's begins with the start frame, so the files end to end are rollout.mp4's
    frames) and one line of chunks.jsonl (after a first line, `DREAM_PARTIAL_SCHEMA`, with the run's settings, the
    embodiment's columns, units and fps): its actions (physical and model space), the frames [a, b) it added, the
    world model's seed, the policy's, its reward (with a score) and video file. `finish` writes the whole run once
    (`write_dream`: dream.json, actions.json, settings.json, observation/, rollout.mp4, plots, index.html; its
    `observation`: the one the dream started from, as `dream` was given it, read when the recorder is made) from the
    chunks that ran, rollout.mp4 the chunks' mp4s joined as they are (their packets: each frame encoded once, not
    again from its decoded pixels; `processing.video.join_videos`, else encoded), then removes dream_partial/: called
    at the end, and on Ctrl-C or a failure, so a dream cut short still ends with a complete run. Only a process
    killed outright (SIGKILL, power loss) leaves dream_partial/, readable as it is. Writing the run after every chunk
    instead cost time growing with the dream's length (the video re-encoded whole each time:
    benchmarks/bench_dream_io.py)."""

    def __init__(self, out: Path, settings: dict, requested: int, plots: bool = True,
                 observation: Any = None) -> None:
        from worldpolicy.viz.run import observation_pixels

        self.out, self.settings, self.requested, self.plots = Path(out), settings, requested, plots
        # read now, as the dream starts: its files may change or go while it runs (hours), and `finish` still writes
        self.observation = None if observation is None else observation_pixels(observation)
        self.chunks: list[DreamChunk] = []
        self._videos: list[tuple[Path, int]] = []  # each chunk's mp4 and its frames: rollout.mp4 joins them
        self._rows = 0  # rows recorded so far: chunk j's actions begin there, its frames one after

    @property
    def partial(self) -> Path:
        return self.out / DREAM_PARTIAL_DIR

    def add(self, chunk: DreamChunk) -> None:
        """Record one chunk (the next in order): its video file, then its line, so a line names a whole file."""
        if chunk.index != len(self.chunks):
            raise ValueError(f"chunk {chunk.index}: expected chunk {len(self.chunks)} next (chunks in order)")
        world = chunk.world_prediction
        n = len(chunk.actions)
        if not self.chunks:
            self._begin(world)
        video = f"chunk-{chunk.index:04d}.mp4"
        first = 0 if chunk.index == 0 else 1  # chunk 0's file holds the start frame too (rollout.mp4's frame 0)
        write_video(self.partial / video, world.video[first:n + 1], world.fps,
                    canvas_comment(world.settings, world.video.shape[1:3]))
        self._videos.append((self.partial / video, n + 1 - first))
        scored = self.settings["dream"]["score"] is not None
        line = {"chunk": chunk.index, "actions": actions_to_json(chunk.actions),
                "actions_normalized": actions_to_json(world.actions_normalized[:n]),
                "frames": [self._rows + first, self._rows + n + 1], "seed": world.settings.get("seed"),
                "policy_seed": chunk.policy_prediction.settings.get("seed"),
                **({"reward": chunk.reward} if scored else {}), "video": video}
        self._append(line)
        self.chunks.append(chunk)
        self._rows += n

    def _begin(self, world: Prediction) -> None:
        """The first chunk: an earlier dream's files in `out` go (this one replaces it, as it always did once its first
        chunk ran), and chunks.jsonl starts with what every line shares."""
        from worldpolicy.viz.run import OBSERVATION_FOLDER, PLOT_FILES, RUN_OUTPUTS

        if (self.out / DREAM_FILE).is_file():  # only a dream run's own files: a folder of no known kind keeps its own
            for name in (DREAM_FILE, *RUN_OUTPUTS):
                if (self.out / name).is_file():
                    (self.out / name).unlink()
            # its plots, and its cameras' images (another start's, or cameras this one lacks)
            for folder, patterns in (("plots", PLOT_FILES), (OBSERVATION_FOLDER, ("*.png",))):
                for path in (p for pattern in patterns for p in (self.out / folder).glob(pattern)):
                    path.unlink()
        shutil.rmtree(self.partial, ignore_errors=True)  # a dream killed outright before: replaced too
        make_folder(self.partial)
        self._append({"schema": DREAM_PARTIAL_SCHEMA, "chunks_requested": self.requested, "settings": self.settings,
                      "embodiment": world.embodiment, "columns": list(world.columns), "units": list(world.units),
                      "fps": world.fps})

    def _append(self, doc: dict) -> None:
        with open(self.out / DREAM_CHUNKS_FILE, "a") as f:
            f.write(json.dumps(doc) + "\n")

    def finish(self) -> list[Path]:
        """The run of the chunks recorded (`write_dream`), nothing without a chunk: its files, then dream_partial/
        removed (they hold all it recorded), then its plots and page (which list the folder's files: the run's
        alone)."""
        from worldpolicy.viz.run import write_run_pages

        if not self.chunks:
            return []
        written = write_dream(Dream.of_chunks(self.chunks), self.out, self.settings, self.requested, plots=False,
                              video_parts=self._videos, observation=self.observation)
        shutil.rmtree(self.partial)
        return written + (write_run_pages(self.out) if self.plots else [])
