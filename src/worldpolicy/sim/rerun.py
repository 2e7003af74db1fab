"""`worldpolicy sim --rerun OUT.rrd | --rerun-spawn | --rerun-connect URL`: every step of an evaluation's episodes
logged live to a Rerun recording (`viz.rerun`; the `rerun` extra), to see why an episode failed at step 40.

`RerunWatch` is an `EpisodeWatch` (`sim.rollout`): the rollout calls it from its own step, so what it logs is what ran.
Each episode's entities are under `episode_SEED/` (`--num-envs` runs several at once, interleaved: the prefix keeps
them apart), on the `step` and `time` timelines at the env's control rate (`time` = step / `actual_control_hz`). Step
s is the moment s control steps have run: the observation, the joints measured and the target sent at step s are
those of control step s + 1 (from 0, as report.json counts `steps`: an episode of N steps logs them at 0..N-1), the
distance and the outcome at step s are after s steps (1..N; success at report.json's `success_step`).

- `prompt`: the episode's instruction (static).
- `observation/<camera>`: the camera images a request was asked with, at the step it was asked, by the camera's name
  (`wrist_image_left`: `scenes.camera_feature_name`, as a predict run's recording names it) (none for a policy that
  looks at no camera: the scripted expert, random actions; `--videos` records the scene for them).
- `joints/<joint>` and `joints/gripper`: measured as the step began (rad; the gripper g in [0, 1], 0 open).
- `target/<joint>`, `target/gripper`: the joint target sent (`JointTarget`, the decoded and blended actions);
  `held` 1 where no action was planned for the step (a reply not landed yet, a failed request), else 0;
  `policy_error`: the failed request's error, where one was held through.
- `chunk/<column>`: each chunk as it arrived, its rows (the policy's actions, `column [unit]`) at the steps they are
  meant for (a chunk handed over early overlaps the next one's rows); `decision`: a line at its arrival (which chunk,
  the step its observation was taken, a best-of-N planner's scores and choice: `--plan`).
- `imagined`: the policy's imagined future where it returns one (`--imagine`, a planner's chosen one), frame i at
  the step action i - 1 leads into. A `--plan` planner's other candidates' futures are not logged: the chunk the
  rollout runs carries the chosen one alone (`BestOfNPlanner.act`), the others reach only its `on_plan`, at the
  request (`--plan-save-candidates` writes them as videos), so logging them here would need a channel of their own.
- `distance_m`: the task's distance to done (`Task.distance`, report.json's `final_distance_m` at the last step).
- `outcome`: at the success step, else at the step limit, the episode's outcome as the run's page captions its video
  and a finished run's recording words it (`viz.report.episode_outcome`: `seed 3 · success · 21 steps · final
  distance 2.3 cm · “prompt”`), an INFO line for a success, a WARN line for a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from worldpolicy.embodiments import unit_label
from worldpolicy.fileio import sim_episode_name
from worldpolicy.planning import PLANNER
from worldpolicy.sim.scenes import CAMERAS, camera_feature_name
from worldpolicy.viz.rerun import at_step, entity, image, log_columns, log_text

if TYPE_CHECKING:
    import rerun as rr

    from worldpolicy.robot.control import JointTarget
    from worldpolicy.sim.rollout import Episode

__all__ = ["RerunWatch", "episode_entity"]

GRIPPER = "gripper"  # the measured and targeted gripper's series, beside the arm's joints


def episode_entity(seed: int) -> str:
    """The entity every one of the episode seeded `seed`'s is under: `/episode_0012`, as its video is named."""
    return f"/{sim_episode_name(seed)}"


@dataclass
class _Logged:
    """What `RerunWatch` keeps of an episode in flight."""

    path: str  # its entity (`episode_entity`)
    fps: float  # its env's actual control rate
    last: Any = None  # the newest chunk (Prediction) logged
    chunks: int = 0  # chunks logged


class RerunWatch:
    """Logs each step of the episodes it watches into `rec` (module docstring)."""

    def __init__(self, rec: rr.RecordingStream) -> None:
        import rerun as rr  # `viz.rerun.recording` made `rec`: the extra is there

        self.rec, self._rr = rec, rr
        self._episodes: dict[int, _Logged] = {}  # by seed: the episodes in flight
        self.begun = 0  # episodes it has logged anything of

    def _of(self, episode: Episode) -> _Logged:
        """The episode's record, made (its prompt and series names logged) at its first step."""
        logged = self._episodes.get(episode.seed)
        if logged is None:
            env, rr = episode.rollout.env, self._rr
            logged = self._episodes[episode.seed] = _Logged(episode_entity(episode.seed), env.actual_control_hz)
            self.begun += 1
            log_text(self.rec, f"{logged.path}/prompt", episode.prompt)
            names = [*env.robot.arm_joints, GRIPPER]
            for folder in ("joints", "target"):
                for name in names:
                    self.rec.log(f"{logged.path}/{folder}/{rr.escape_entity_path_part(name)}",
                                 rr.SeriesLines(names=unit_label(name, "rad" if name != GRIPPER else "")), static=True)
            self.rec.log(f"{logged.path}/distance_m", rr.SeriesLines(names="distance to goal [m]"), static=True)
        return logged

    def observed(self, episode: Episode, observation: dict) -> None:
        logged = self._of(episode)
        cameras = [key for key in CAMERAS if key in observation]
        if not cameras:
            return
        at_step(self.rec, episode.t, logged.fps)
        for key in cameras:
            self.rec.log(logged.path + entity("observation", camera_feature_name(key)), image(observation[key]))

    def stepped(self, episode: Episode, target: JointTarget, measured: np.ndarray, command: np.ndarray) -> None:
        logged, rec, rr = self._of(episode), self.rec, self._rr
        t, path = episode.t - 1, logged.path  # the control step that ran, from 0
        names = [*episode.rollout.env.robot.arm_joints, GRIPPER]
        at_step(rec, t, logged.fps)
        for folder, values in (("joints", measured), ("target", command)):
            for name, value in zip(names, values):
                rec.log(f"{path}/{folder}/{rr.escape_entity_path_part(name)}", rr.Scalars(float(value)))
        rec.log(f"{path}/held", rr.Scalars(float(target.held)))
        if target.policy_error is not None:
            rec.log(f"{path}/policy_error", rr.TextLog(f"{type(target.policy_error).__name__}: {target.policy_error}",
                                                         level=rr.TextLogLevel.ERROR))
        prediction = target.prediction
        if prediction is not None and prediction is not logged.last:
            self._chunk(logged, prediction, t - target.index, t, target.observed)
        at_step(rec, episode.t, logged.fps)
        rec.log(f"{path}/distance_m", rr.Scalars(episode.distance_m()))
        if episode.ended:
            from worldpolicy.viz.report import episode_outcome

            success = episode.success_step is not None
            said = episode_outcome({"seed": episode.seed, "success": success, "steps": episode.t,
                                    "final_distance_m": episode.distance_m(), "prompt": episode.prompt})
            rec.log(f"{path}/outcome", rr.TextLog(said, level=rr.TextLogLevel.INFO if success else
                                                  rr.TextLogLevel.WARN))
            del self._episodes[episode.seed]

    def _chunk(self, logged: _Logged, prediction, start: int, t: int, observed: int | None) -> None:
        """A chunk that arrived at step `t`, its row 0 meant for step `start`, asked with step `observed`'s
        observation: its rows, its imagined future, and a `decision` line."""
        rec, rr, path = self.rec, self._rr, logged.path
        logged.last, logged.chunks = prediction, logged.chunks + 1
        log_columns(rec, f"{path}/chunk", prediction.actions, prediction.columns, prediction.units, logged.fps,
                    first_step=start)
        said = f"chunk {logged.chunks}: {prediction.chunk_size} actions from step {start}, asked at step {observed}"
        settings = prediction.settings or {}
        if settings.get("planner") == PLANNER:
            scores = ", ".join(f"{score:.3g}" for score in settings["scores"])
            said += f"; best of {len(settings['scores'])}: #{settings['chosen']} of scores [{scores}]"
        at_step(rec, t, logged.fps)
        rec.log(f"{path}/decision", rr.TextLog(said))
        video = prediction.video
        if video is not None and len(video) > 1:  # frame 0 the observation, the last the chunk's end
            for j, frame in enumerate(video):
                at_step(rec, start + -(-j * prediction.chunk_size // (len(video) - 1)), logged.fps)
                rec.log(f"{path}/imagined", image(np.asarray(frame)[..., :3]))
