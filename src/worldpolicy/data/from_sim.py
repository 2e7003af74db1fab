"""Simulator rollouts → a LeRobot v3 dataset: the scripted expert's (the training data of the shipped model) or any
policy's `worldpolicy sim` runs (a checkpoint, a ws:// server, random actions), to fine-tune on its successes or look at
its failures.

Keys follow Cosmos3-DROID post-training data (ecosystem.md §3) so the same training config reads real DROID data
and simulated data: `observation.image.<camera>` videos, `observation.state.joint_positions` [7] and
`observation.state.gripper_position` [1] (measured), `action.joint_position` [7] and `action.gripper_position` [1]
(what the env executed), plus LeRobot's `next.reward` (1 once the task is solved) and `next.done`.
Row t pairs the observation before step t with the action of step t. meta/worldpolicy_provenance.json says what
recorded the episodes: the task and expert versions (a policy's recording: the policy, its settings and chunk
strategy), the settings (the `perturb` shifts among them: `sim.perturb`) and each episode's seed; meta/episodes'
`success` column says per episode whether it succeeded (the expert's and a policy's alike, so the two merge). Needs
the `sim` extra (MuJoCo).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from ..errors import brief_list, is_integer, is_real
from ..extras import run_record
from ..fileio import (
    PROVENANCE_FILE,
    ScratchFolder,
    dataset_lock,
    how_stopped,
    provenance_document,
    sigint_deferred,
    sigint_held,
    stop_signal,
    sweep_scratch_folders,
)
from ..sim.scenes import DEFAULT_IMAGE_SIZE, camera_feature_name
from .checks import refuse_changed_settings, warn_software_changed
from .edit import BLOCK_FRAMES
from .layout import (
    ACTION_KEYS,
    CAPTION_SEP,
    FRAMES_KIND,
    INFO_PATH,
    PROMPT_VARIANTS,
    STATE_KEYS,
    VIDEO_NAMES,
)
from .lerobot import KeepSchedule, LeRobotDataset, LeRobotDatasetWriter

if TYPE_CHECKING:
    from worldpolicy.sim.perturb import Perturbation

__all__ = ["ACTION_KEYS", "PROMPT_VARIANTS", "STATE_KEYS", "TELEOP_EXPERT", "EpisodeRows", "ExpertEpisodes",
           "ExpertFailed", "RecordingInterrupted", "SimConversion", "SpooledVideo", "check_recording", "discard_frames",
           "episode_task", "expert_episodes", "recording_command", "sim_features", "sim_to_dataset"]

logger = logging.getLogger(__name__)

IMAGE_PREFIX = "observation.image."
SOURCE = "worldpolicy dataset from-sim"  # a sim recording's `provenance["source"]`
# the provenance's `expert` of a person's episodes (`data.teleop`, `dataset teleop`), which share from-sim's source
TELEOP_EXPERT = "teleop"
# What made a recording's episodes, besides its settings: the task's definition and the scripted expert's
# (`Task.version`, `ScriptedPolicy.version`), by provenance key
VERSION_KEYS = ("task_version", "expert_version")


@dataclass
class ExpertEpisodes:
    """The episodes `expert_episodes` records, one at a time as they are iterated, and their `provenance`: the
    task and expert versions and every setting that shapes an episode, as `sim_to_dataset` stores it
    (meta/worldpolicy_provenance.json, with the kept episodes' `seeds`)."""

    provenance: dict[str, Any]
    _episodes: Generator[dict[str, Any], None, None]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._episodes

    def close(self) -> None:
        """Stop recording (and its worker processes)."""
        self._episodes.close()


@dataclass
class SimConversion:
    """What `sim_to_dataset` wrote: the dataset, the env seed of each episode, and the seeds the expert failed (a
    resumed recording's: those of the whole recording, as one uninterrupted recording reports them)."""

    dataset: LeRobotDataset
    seeds: list[int]
    failed_seeds: list[int] = field(default_factory=list)
    wall_s: float = 0.0
    resumed: int = 0  # the episodes the dataset held when this recording resumed it (`resume=True`)


class RecordingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped `sim_to_dataset`. The episodes finished before it are kept as a complete dataset at `root`
    (`result`), unless none was finished or `root` already held a dataset: a dataset is replaced only by a complete
    recording, so then `result` is None and nothing at `root` changed. A resumed recording (`resume=True`; `resumed`:
    the episodes the dataset held) keeps its new episodes finished so far beside the old ones the same way. With none
    finished since the recording's last keep (`sim_to_dataset`), `result` is that keep. Still a KeyboardInterrupt, so
    callers that do not know this class stop as before."""

    def __init__(self, root: Path, requested: int, recorded: int, result: SimConversion | None,
                 signum: int = signal.SIGINT, resumed: int = 0):
        self.root, self.requested, self.recorded, self.result = root, requested, recorded, result
        # the signal that stopped it (`fileio.stop_signal`: Ctrl-C's, SIGTERM, SIGUSR1; the command exits 128 + it)
        self.signum = signum
        self.resumed = resumed
        super().__init__(self.describe())

    @property
    def kept(self) -> int:
        return self.result.dataset.num_episodes if self.result is not None else 0

    def describe(self, overwrite: str = "overwrite=True", resume: str = "resume=True") -> str:
        """What happened to the recorded episodes; `overwrite` and `resume` name the options as the caller knows
        them."""
        root, n, how = str(self.root), self.requested, how_stopped(self)
        if self.result is not None:
            return (f"{how}: {self.kept} of {n} episodes kept in {root} (a complete dataset); rerun with "
                    f"{resume} to record the other {n - self.kept}")
        if self.resumed:
            return (f"{how} before the first of the {n - self.resumed} episodes left was kept; the dataset in "
                    f"{root} is unchanged ({self.resumed} of {n} episodes): rerun with {resume} to go on")
        if self.recorded == 0:
            return f"{how} before the first of {n} episodes was finished; nothing was written to {root}"
        return (f"{how} after {self.recorded} of {n} episodes; they were discarded and the dataset already in "
                f"{root} is unchanged (a dataset is replaced only by a complete recording); rerun with {overwrite} to "
                f"replace it with all {n}")


class ExpertFailed(RuntimeError):
    """The scripted expert (or the `policy` recorded) solved fewer than the episodes wanted in the tries allowed
    (`max_attempts`): the settings make the task too hard for it (a short `max_steps`, much `action_noise` or
    `start_jitter`, the `perturb` shifts: a distractor can block its path), or the policy is that weak. `describe`
    names the options as the caller knows them (the command line: its flags)."""

    def __init__(self, task: str, solved: int, attempts: int, wanted: int, seed: int, policy: str = "scripted",
                 perturb: str | None = None):
        self.task, self.solved, self.attempts, self.wanted, self.seed = task, solved, attempts, wanted, seed
        self.policy, self.perturb = policy, perturb
        super().__init__(self.describe())

    def describe(self, flags: bool = False) -> str:
        keep, more = ("--keep-failures", "") if flags else ("keep_failures=True", " or a larger max_attempts")
        short, noise, jitter, shifts = (("--max-steps", "--action-noise", "--start-jitter", "--perturb") if flags
                                        else ("max_steps", "action_noise", "start_jitter", "perturb"))
        who = "the scripted expert" if self.policy == "scripted" else f"policy {self.policy!r}"
        if self.perturb is None:
            why = (f"A short {short}, or a large {noise} or {jitter}, makes it fail: change those, or pass"
                   if self.policy == "scripted" else f"A short {short} makes it fail; pass")
        else:
            shifted = f"the {shifts} shifts ({self.perturb!r})"
            why = (f"A short {short}, a large {noise} or {jitter}, or {shifted} make it fail: change those, or pass"
                   if self.policy == "scripted" else f"A short {short} or {shifted} make it fail; pass")
        return (f"{who} solved {self.solved} of {self.attempts} episodes of task {self.task!r} (seeds "
                f"{self.seed}..{self.seed + self.attempts - 1}); wanted {self.wanted}. {why} {keep}{more} to record "
                "the failed episodes too")


def camera_feature(camera_key: str) -> str:
    """DROID wire key (`observation/wrist_image_left`) → dataset video key (`observation.image.wrist_image_left`)."""
    return IMAGE_PREFIX + camera_feature_name(camera_key)


def sim_features(robot: str, image_size: tuple[int, int], cameras: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The dataset features `expert_episodes` produces; names match the `droid` joint_pos columns."""
    from worldpolicy.robot.robots import get_robot

    joints = [f"joint_{i}" for i in range(get_robot(robot).dof)]
    height, width = image_size
    features: dict[str, dict[str, Any]] = {
        STATE_KEYS[0]: {"dtype": "float32", "shape": [len(joints)], "names": joints},
        STATE_KEYS[1]: {"dtype": "float32", "shape": [1], "names": ["gripper"]},
        ACTION_KEYS[0]: {"dtype": "float32", "shape": [len(joints)], "names": joints},
        ACTION_KEYS[1]: {"dtype": "float32", "shape": [1], "names": ["gripper"]},
        "next.reward": {"dtype": "float32", "shape": [1], "names": None},
        "next.done": {"dtype": "bool", "shape": [1], "names": None},
    }
    for camera in cameras:
        features[camera_feature(camera)] = {"dtype": "video", "shape": [height, width, 3], "names": list(VIDEO_NAMES)}
    return features


def expert_episodes(
    task: str = "pick_place",
    num_episodes: int = 10,
    *,
    seed: int = 0,
    task_options: dict[str, Any] | None = None,
    robot: str = "panda",
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    cameras: Sequence[str] | None = None,
    control_hz: float = 15.0,
    chunk_size: int | None = None,
    max_steps: int | None = None,
    settle_steps: int = 4,
    start_jitter: float = 0.0,
    action_noise: float = 0.0,
    keep_failures: bool = False,
    max_attempts: int | None = None,
    workers: int = 1,
    failed_seeds: list[int] | None = None,
    on_attempt: Callable[[int, bool], None] | None = None,
    policy: str | os.PathLike = "scripted",
    embodiment: str | None = None,
    strategy: Any = None,
    latency_ms: float = 0.0,
    rtc: bool = False,
    policy_options: dict[str, Any] | None = None,
    api_key: str | None = None,
    ca_file: str | os.PathLike | None = None,
    timeout_s: float | None = None,
    perturb: str | Sequence[str] | Perturbation | None = None,
    prompt_template: str | None = None,
    prompt_variants: str = "drawn",
    spool: str | os.PathLike | None = None,
    done_seeds: Sequence[int] = (),
) -> ExpertEpisodes:
    """`num_episodes` expert episodes ({"frames", "videos", "task", "seed", "success"}) from seeds seed, seed+1, ….

    Failed episodes are skipped (their seeds appended to `failed_seeds`) unless `keep_failures`; after
    `max_attempts` (default 2·num_episodes + 5) tries `ExpertFailed` (a RuntimeError) says how often the expert failed. After success
    the last action is held for `settle_steps` more steps so the solved scene is on camera. `start_jitter` (rad) moves
    the arm off its home pose before the episode, by a per-joint offset uniform in ±u·start_jitter with u ~ U(0, 1)
    drawn per episode: a learner then sees the target from many gripper positions, not only along the expert's
    path from home. `action_noise` (rad, std) is DART-style noise: each expert chunk is executed with a per-joint
    offset drawn once per chunk while the recorded action stays the expert's clean target, so the data shows how to
    get back from the small mistakes a learned policy makes. `task_options` go to the task's constructor (e.g.
    reach's `upper_share`, which draws more of the hard high balls). `workers` > 1 records
    episodes in that many processes (rendering is CPU-bound and single-threaded); the output does not depend on it.
    `on_attempt(seed, success)` is called after every recorded episode, kept or not (progress display).
    Every setting is checked now (the scene built once, without a renderer, for what only it can refuse: a
    `control_hz` no whole number of physics steps fits); nothing is recorded until the result is iterated; its
    `provenance` says what records them. `control_hz` is the rate the expert plans and is recorded at, the dataset's
    fps. `chunk_size` is the expert's re-plan interval (default 8).

    `policy` records another policy's episodes instead, taken as `worldpolicy sim --policy` takes it (`random`, a ws://
    URL, `shipped` or a checkpoint folder: `sim.policies.make_policy`, with `embodiment` and, for a checkpoint,
    `policy_options` such as steps, device and center_crop): each episode is what `worldpolicy sim --seed SEED` runs for
    that seed (`sim.rollout.Rollout`, its `ChunkController` and the `strategy`, a `robot.control.ChunkStrategy`, default
    execute; sampling seeds `processing.trajectory.call_seed` of the episode seed), with `latency_ms` and `rtc` as
    `worldpolicy sim --latency/--rtc` take them (`evaluate`'s: each reply that many ms of control steps late, checked
    against the step limit and, for `ensemble`, the policy's chunk; real-time chunking, `async` and a model only;
    recorded in the provenance as `latency` {"ms", "ticks"} and `rtc`, as the strategy is), then `settle_steps` more
    holding its last command after a success. Its rows are the commands it ran (joint targets and gripper) and every
    episode carries its `success`. A ws:// server's key is `api_key` (None: none; the command line reads
    `--api-key-env`, `WORLDPOLICY_API_KEY` or `--api-key`, as `worldpolicy sim` does: `cli.policy_api_key`); it is not
    recorded, nor is `ca_file`, a wss:// server's private CA certificate (`RemotePolicy(ca_file=)`, the command line's
    --tls-ca), nor `timeout_s`, the most one request to it may take (`RemotePolicy(timeout_s=)`, --server-timeout-s).
    The expert's own settings (`chunk_size`, `start_jitter`, `action_noise`) are refused with it, and `workers` > 1
    unless it is `random` (a model would load once per process). The policy loads once the result is iterated, after
    every check.

    `perturb` records every episode under the shifts `worldpolicy sim --perturb` applies (`sim.perturb`: "light=0.5",
    "camera=0.03,distractors=2", a list of such, or a `Perturbation`): domain randomisation for training data, drawn
    from each episode's seed after its scene, so the seeds' scenes are the clean recording's. Its canonical spec is
    the provenance's `perturb` (None: none); with `prompt=paraphrase`, the wordings it drew from are its `paraphrases`
    (`Task.paraphrases` as this worldpolicy has them), which a resumed recording compares. `prompt_template` is every
    episode's prompt in these words, as `worldpolicy sim --prompt-template` takes it ("move to the {color} {object}":
    the task's placeholders, filled per episode; checked as it checks it, `sim.perturb.check_rewording`, so not with
    `prompt=paraphrase`). `prompt_variants` is what each episode's task holds (`PROMPT_VARIANTS`): "drawn", the prompt
    it ran with, or "all", every wording of its instruction (`Task.wordings`: that prompt first, then the task's own
    and its paraphrases, filled for its scene) joined by " | ", of which training draws one per example
    (`sampling.caption_variants`): language augmentation without more episodes. Both are recorded in the provenance
    (`prompt_template`, `prompt_variants`; with "all", `paraphrases` too).

    `spool` (a folder, there once the episodes are iterated) takes each episode's frames as the rollout renders them,
    one raw file per camera (`SpooledVideo`), in place of arrays held until the episode ends: `sim_to_dataset` streams
    them from there into the dataset's videos, so neither a recorder nor the writer holds an episode's frames. A
    skipped (failed) episode's files are deleted; a kept one's are the caller's (`discard_frames`), and so is the
    folder, where `workers` > 1 may leave the files of episodes recorded past those asked for.

    `done_seeds` are the seeds of the episodes an interrupted recording of these settings kept (`sim_to_dataset`'s
    `resume`; its provenance's `seeds`): they count among the `num_episodes`, and recording goes on from the seed
    after the last, its tries counted from `seed`, so the episodes (and `ExpertFailed`) are those of one
    uninterrupted recording.
    """
    from worldpolicy.sim.perturb import check_rewording, parse_perturbations
    from worldpolicy.sim.policies import policy_kind
    from worldpolicy.sim.scenes import CAMERAS

    perturbation = parse_perturbations(perturb, "perturb")  # first: a bad spec is refused before anything builds

    policy = os.fspath(policy) if isinstance(policy, os.PathLike) else policy  # a checkpoint folder as a Path
    kind = policy_kind(policy) if isinstance(policy, str) else None
    if kind is None:
        raise ValueError(f"policy={policy!r}: expected 'scripted', 'random', a ws:// URL, 'shipped' or a checkpoint "
                         "folder, as `worldpolicy sim --policy` takes it")
    _check_policy_options(kind, policy, chunk_size=chunk_size, start_jitter=start_jitter, action_noise=action_noise,
                          workers=workers, embodiment=embodiment, strategy=strategy, latency_ms=latency_ms, rtc=rtc,
                          policy_options=policy_options, api_key=api_key, ca_file=ca_file, timeout_s=timeout_s)
    chunk_size = 8 if chunk_size is None else chunk_size  # the expert's default, where a policy's was refused
    for name, value, low in (
        ("num_episodes", num_episodes, 1),
        ("seed", seed, 0),  # gymnasium refuses a negative seed, in the middle of a recording
        ("chunk_size", chunk_size, 1),
        ("settle_steps", settle_steps, 0),
        ("workers", workers, 1),
    ):
        if not is_integer(value) or value < low:
            raise ValueError(f"{name}={value!r} must be an int >= {low}")
    # numpy's counts (as `max_steps` always was) taken as the ints they are: the provenance records them
    num_episodes, seed, chunk_size, settle_steps, workers = (int(v) for v in (num_episodes, seed, chunk_size,
                                                                              settle_steps, workers))
    if not (is_real(start_jitter) and 0.0 <= start_jitter <= 1.0):
        raise ValueError(f"start_jitter={start_jitter!r} must be a number of radians in [0, 1]")
    if not (is_real(action_noise) and 0.0 <= action_noise <= 0.2):
        raise ValueError(f"action_noise={action_noise!r} must be a joint-noise std in radians in [0, 0.2]")
    cameras = list(CAMERAS) if cameras is None else list(cameras)
    unknown = [c for c in cameras if c not in CAMERAS]
    if not cameras or unknown:
        raise ValueError(f"cameras={cameras!r}: {f'unknown {unknown}' if unknown else 'none given'}; known: "
                         f"{list(CAMERAS)}")
    if len(set(cameras)) != len(cameras):  # one video each: a repeat would record its frames twice into one video
        raise ValueError(f"cameras={cameras!r} names {sorted({c for c in cameras if cameras.count(c) > 1})} more than "
                         "once; give each camera once")
    # the env's module imported here, not only where recording starts: a missing sim extra is one error now, not a
    # broken process pool (workers > 1) later
    from worldpolicy.sim.env import check_env_settings
    from worldpolicy.sim.policies import ScriptedPolicy
    from worldpolicy.sim.tasks import get_task

    # the env's numbers (max_steps, image_size, control_hz) now: the env is built where recording starts, after the
    # progress bar is up (or in a worker)
    check_env_settings(control_hz=control_hz, image_size=tuple(image_size), max_steps=max_steps)

    task_options = dict(task_options or {})
    the_task = get_task(task, **task_options)  # a bad option fails here, not in a worker
    prompt_template = check_rewording(perturbation, prompt_template, the_task)
    if prompt_variants not in PROMPT_VARIANTS:
        raise ValueError(f"prompt_variants={prompt_variants!r}; accepted: "
                         + "; ".join(f"{name!r} ({means})" for name, means in PROMPT_VARIANTS.items()))
    if prompt_variants == "all" and not the_task.paraphrases:
        raise ValueError(f"prompt_variants='all': task {task!r} has no paraphrases (`Task.paraphrases`) to add to the "
                         "prompt each episode runs with; leave prompt_variants out")
    attempts_allowed = 2 * num_episodes + 5 if max_attempts is None else max_attempts
    done_seeds = list(done_seeds)
    if (len(done_seeds) > num_episodes or not all(is_integer(s) for s in done_seeds)
            or done_seeds != sorted(set(done_seeds)) or (done_seeds and done_seeds[0] < seed)):
        raise ValueError(f"done_seeds={brief_list(done_seeds)}: expected at most num_episodes={num_episodes} "
                         f"increasing seeds from seed={seed} on, as a recording from seed {seed} keeps them")
    done_seeds = [int(s) for s in done_seeds]
    settings = {
        "task": task,
        "task_options": task_options,
        "robot": robot,
        "image_size": tuple(image_size),
        "cameras": cameras,
        "control_hz": control_hz,
        "chunk_size": chunk_size,
        "max_steps": max_steps,
        "settle_steps": settle_steps,
        "start_jitter": float(start_jitter),
        "action_noise": float(action_noise),
        "perturb": perturbation.spec or None,  # None, as recordings from before it existed say nothing
        "prompt_template": prompt_template,  # None: the task's wording (or its paraphrases)
        # the wordings prompt=paraphrase draws from, or "all" records: a resumed recording told other words is refused
        "paraphrases": (list(the_task.paraphrases) if perturbation.prompt is not None or prompt_variants == "all"
                        else None),
        "prompt_variants": prompt_variants,
    }
    if kind == "scripted":
        # what only the built scene can refuse (a control_hz no whole number of physics steps fits, a robot the expert
        # cannot drive), refused now: once recording started it followed the progress bar, and in a worker process
        # (workers > 1) it broke the pool, unexplained. No renderer opens; a scene builds in well under a second.
        _Recorder(settings).close()
        provenance = {"source": SOURCE, "task": task, "task_version": the_task.version, "expert": "scripted",
                      "expert_version": ScriptedPolicy.version, "seed": seed, "keep_failures": bool(keep_failures),
                      **{k: v for k, v in settings.items() if k != "task"}}
    else:
        for name in ("chunk_size", "start_jitter", "action_noise"):  # the expert's: refused above for a policy
            del settings[name]
        settings["policy"], acts_in = _checked_policy(kind, policy, settings, embodiment, strategy, latency_ms, rtc,
                                                      dict(policy_options or {}), api_key, ca_file, timeout_s)
        # the episodes asked for: a server's training scenes among them are said once it is reached (`_rollout`)
        settings["policy"]["scenes"] = [task, seed, num_episodes]
        # the policy's settings (`sim.policies.policy_settings`: checkpoint files, sampling, device...), the chunk
        # strategy it ran with and a server's embodiment are known once it is loaded: the recording fills them in
        # (`sim_to_dataset`, from `_recorded_by`)
        provenance = {"source": SOURCE, "task": task, "task_version": the_task.version,
                      "policy": settings["policy"]["name"], "embodiment": acts_in, "policy_settings": None,
                      "strategy": settings["policy"]["strategy"], "latency": settings["policy"]["latency"],
                      "rtc": settings["policy"]["rtc"], "seed": seed, "keep_failures": bool(keep_failures),
                      **{k: v for k, v in settings.items() if k not in ("task", "policy")}}
    return ExpertEpisodes(
        json.loads(json.dumps(provenance)),  # as info.json gives it back: image_size a list
        _episodes(settings, workers, num_episodes, seed, attempts_allowed, keep_failures, failed_seeds, on_attempt,
                  None if spool is None else Path(spool), done_seeds),
    )


def _check_policy_options(kind: str, policy: str, *, chunk_size: int | None, start_jitter: float, action_noise: float,
                          workers: int, embodiment: str | None, strategy: Any, latency_ms: float, rtc: bool,
                          policy_options: dict[str, Any] | None, api_key: str | None,
                          ca_file: str | os.PathLike | None, timeout_s: float | None) -> None:
    """Settings of the scripted expert's episodes refused with a policy, and a policy's refused with the expert: either
    would be ignored and the recording look as asked."""
    if kind == "scripted":
        given = [name for name, value in (("embodiment", embodiment), ("strategy", strategy), ("api_key", api_key),
                                          ("ca_file", ca_file), ("timeout_s", timeout_s),
                                          ("latency_ms", latency_ms or None),
                                          ("rtc", rtc or None)) if value is not None]
        given += list(policy_options or {})
        if given:
            # no parameter name followed by ':' or '=' past the first: the command line turns each into its flag
            raise ValueError(f"{given[0]}: sets how a policy's rollouts run (a checkpoint, a ws:// server or random), "
                             "not the scripted expert, which acts in droid/joint_pos on its own plan: leave it out or "
                             "record another policy")
        return
    given = [name for name, value in (("chunk_size", chunk_size), ("start_jitter", start_jitter),
                                      ("action_noise", action_noise)) if value]
    if given:
        raise ValueError(f"{given[0]}: shapes the scripted expert's episodes; policy {policy!r} runs as `worldpolicy "
                         "sim` runs it (its own chunks, from the home pose, without noise): leave it out")
    if kind != "random" and workers != 1:
        raise ValueError(f"workers={workers!r}: policy {policy!r} records in one process (each worker would load the "
                         "model or open a connection of its own); pass 1")
    if policy_options and kind != "checkpoint":
        raise ValueError(f"{next(iter(policy_options))}: loads a local checkpoint; policy {policy!r} takes none")
    if api_key is not None and kind != "server":
        raise ValueError(f"api_key: sent to a ws:// policy server; policy {policy!r} takes none")
    if ca_file is not None and kind != "server":
        raise ValueError(f"ca_file: verifies a wss:// policy server's certificate; policy {policy!r} takes none")
    if timeout_s is not None and kind != "server":
        raise ValueError(f"timeout_s: bounds a ws:// policy server's requests; policy {policy!r} takes none")


def _checked_policy(kind: str, policy: str, settings: dict[str, Any], embodiment: str | None, strategy: Any,
                    latency_ms: float, rtc: bool, options: dict[str, Any], api_key: str | None,
                    ca_file: str | os.PathLike | None, timeout_s: float | None) -> tuple[dict[str, Any], str | None]:
    """What a policy's recorder needs to build it (`_rollout`), every setting checked that can be before its weights
    load or its server is reached: the scene (robot, control rate), a checkpoint's embodiment, sampling and device
    (`Policy.check_pretrained`), whether the robot can run its actions and its chunk the strategy's k, the latency
    (against the step limit and the chunk) and rtc, as `worldpolicy sim` checks them; and the key of the embodiment it
    will act in (None for a server's, known once connected)."""
    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.models import portable_checkpoint, resolve_checkpoint
    from worldpolicy.robot.control import ChunkStrategy, check_rtc
    from worldpolicy.robot.decode import check_executable
    from worldpolicy.sim.policies import check_rtc_policy
    from worldpolicy.sim.rollout import check_chunk_timing, latency_ticks

    strategy = ChunkStrategy() if strategy is None else strategy
    if not isinstance(strategy, ChunkStrategy):
        raise ValueError(f"strategy={strategy!r}: expected a worldpolicy.robot.control.ChunkStrategy "
                         "(or None: execute)")
    check_rtc(rtc, strategy)
    check_rtc_policy(rtc, policy)
    env = _make_env(settings)
    try:
        ticks = latency_ticks(latency_ms, env.control_hz, env.max_steps)  # checks it, before float() takes a string
        latency = {"ms": float(latency_ms), "ticks": ticks}
        if kind == "checkpoint":
            from worldpolicy.policy import Policy

            emb = Policy.check_pretrained(resolve_checkpoint(policy), embodiment, **options)[0]
        else:  # a server's embodiment is known once connected: checked then (`_rollout`)
            emb = get_embodiment(embodiment or "droid/relative_pose") if kind == "random" else None
        if emb is not None:
            check_executable(emb, env.robot)
            chunk = options.get("chunk_size") or emb.chunk_size  # what `Policy.from_pretrained` runs
            check_chunk_timing(strategy, emb, chunk, latency_ms, env.control_hz, rtc=rtc)
    finally:
        env.close()
    return ({"spec": policy, "name": str(portable_checkpoint(policy)) if kind == "checkpoint" else policy,
             "embodiment": embodiment, "strategy": asdict(strategy), "latency": latency, "rtc": bool(rtc),
             "options": options, "api_key": api_key,
             "ca_file": None if ca_file is None else os.fspath(ca_file), "timeout_s": timeout_s},
            None if emb is None else emb.key)


def check_recording(dataset: LeRobotDataset, task: str, *, seed: int = 0, **episode_options: Any) -> None:
    """Refuse to continue or reuse `dataset` as the recording `expert_episodes(task, seed=seed, **episode_options)`
    would make when another task or expert version recorded it (its episodes show another task definition or another
    expert's moves: the two are not one dataset), or other settings did; a dataset that does not say
    (`provenance`: made elsewhere, or by a worldpolicy from before versions were recorded) counts as version 1 and
    unknown settings. Raises ValueError naming each difference. For the scripted expert's recordings only: a
    `policy` other than it is refused, as is a dataset a policy recorded (`dataset from-sim --policy`)."""
    if (policy := episode_options.get("policy", "scripted")) != "scripted":
        # its provenance is filled in by the recording (the loaded policy's settings, the k it ran): not comparable
        raise ValueError(f"policy={policy!r}: check_recording compares recordings of the scripted expert; a policy's "
                         "recording is not checked for reuse")
    recording = expert_episodes(task, 1, seed=seed, **episode_options)  # checked and described; nothing recorded
    recording.close()
    stored = dataset.provenance or {}
    if stored.get("policy") is not None:  # versions and settings alike would be "unrecorded": say what differs
        raise ValueError(f"{dataset.root} was recorded by policy {stored['policy']!r} (dataset from-sim --policy), "
                         "not the scripted expert: record into a new or empty folder")
    _refuse_changes(dataset.root, stored, recording.provenance, task, "Record with the settings it was recorded with, "
                    "or into a new or empty folder")


def _refuse_changes(root: Path, stored: dict[str, Any], wanted: dict[str, Any], task: str, advice: str) -> None:
    """Refuse (ValueError) a recording of provenance `wanted` that would add to `root`, recorded as `stored` says:
    each task or expert version that differs (`VERSION_KEYS`), else each setting of `wanted` that differs. A
    setting that only the recording fills in (a policy's `policy_settings`, a server's `embodiment`, the k a strategy
    runs where none was asked for) is left out; `sim_to_dataset(resume=True)` compares them once the policy loaded,
    `policy_settings` key by key as `worldpolicy sim --resume` does (`fileio.flat_settings`): one the recording
    did not record (`center_crop`, recorded since) is read as None, so an older recording continues unless it
    differs; likewise one from before `prompt_variants` was recorded (read as "drawn") or `paraphrases` (not
    compared)."""
    from worldpolicy.fileio import flat_settings
    from worldpolicy.sim.evaluate import stored_version_change

    wanted, stored = dict(wanted), dict(stored)
    for table in (wanted, stored):
        if isinstance(table.get("policy_settings"), dict):
            table.update(flat_settings(table.pop("policy_settings"), "policy_settings."))
    if "policy" in wanted:
        for key in ("policy_settings", "embodiment"):
            if wanted.get(key) is None:
                wanted.pop(key, None)
        if isinstance(wanted.get("strategy"), dict) and wanted["strategy"].get("execute_steps") is None:
            wanted["strategy"] = {k: v for k, v in wanted["strategy"].items() if k != "execute_steps"}
            if isinstance(stored.get("strategy"), dict):
                stored["strategy"] = {k: v for k, v in stored["strategy"].items() if k != "execute_steps"}
    # another task, or the expert for a policy or a person (`dataset teleop`), is a setting (listed below), not a
    # version
    teleop = wanted.get("expert") == TELEOP_EXPERT
    if not stored or ((stored.get("task"), stored.get("policy")) == (task, wanted.get("policy"))
                      and (stored.get("expert") == TELEOP_EXPERT) == teleop):
        versions = [f"{what}: v{shown} -> v{wanted[key]}"
                    for key, what in zip(VERSION_KEYS, (f"task {task}", "teleop" if teleop else "scripted expert"))
                    if key in wanted
                    if (shown := stored_version_change(stored.get(key), wanted[key])) is not None]
        if versions:
            raise ValueError(f"{root} was recorded by other versions: {'; '.join(versions)}. Its episodes "
                             "and this version's would not make one dataset: record into a new or empty folder")
    # settings recorded since: a recording that does not say recorded each episode's prompt as drawn, and one that
    # drew paraphrases did not record them (it continues, as a `worldpolicy sim --resume` of such a run does)
    stored.setdefault("prompt_variants", "drawn")
    if "paraphrases" not in stored:
        wanted.pop("paraphrases", None)
    refuse_changed_settings(root, stored, wanted, "recorded", advice, ignore=VERSION_KEYS)


def _episodes(
    settings: dict[str, Any],
    workers: int,
    num_episodes: int,
    seed: int,
    attempts_allowed: int,
    keep_failures: bool,
    failed_seeds: list[int] | None,
    on_attempt: Callable[[int, bool], None] | None = None,
    spool: Path | None = None,
    done_seeds: Sequence[int] = (),
) -> Generator[dict[str, Any], None, None]:
    if spool is not None and not spool.is_dir():
        raise ValueError(f"spool={str(spool)!r}: expected an existing folder (each episode's frames are written there)")
    task = settings["task"]
    policy = settings["policy"]["name"] if "policy" in settings else "scripted"
    with _Recorders(settings, workers, spool) as recorders:
        # an interrupted recording's kept episodes (`done_seeds`): it had tried every seed up to its last one
        kept, attempts = len(done_seeds), (done_seeds[-1] - seed + 1 if done_seeds else 0)
        next_seed = seed + attempts
        pending: deque = deque()
        while kept < num_episodes:
            if attempts >= attempts_allowed:
                raise ExpertFailed(task, kept, attempts, num_episodes, seed, policy, settings["perturb"])
            # keep every worker busy, never starting seeds past the attempt budget
            while len(pending) < workers and next_seed < seed + attempts_allowed:
                pending.append(recorders.submit(next_seed))
                next_seed += 1
            episode = pending.popleft().result()
            attempts += 1
            if on_attempt is not None:
                on_attempt(episode["seed"], bool(episode["success"]))
            if episode["success"] or keep_failures:
                kept += 1
                yield episode
            else:
                logger.info("%s failed on seed %d of task %r; skipped", policy, episode["seed"], task)
                discard_frames(episode)
                if failed_seeds is not None:
                    failed_seeds.append(episode["seed"])


class _Recorders:
    """Episode recording in this process (workers=1) or in a pool of spawned processes, each with its own env."""

    def __init__(self, settings: dict[str, Any], workers: int, spool: Path | None):
        self.settings, self.workers, self.spool = settings, workers, spool
        self._pool = None
        self._logs = None  # the workers' log, shown here (`worker_logs`), while the pool runs
        self._local = None

    def __enter__(self) -> Self:
        if self.workers == 1:
            self._local = _Recorder(self.settings, self.spool)
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            from worldpolicy.logcapture import worker_logs

            context = multiprocessing.get_context("spawn")
            self._logs = worker_logs(context).__enter__()  # the workers' warnings, shown as this process's
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=context,
                initializer=_init_worker,
                initargs=(self.settings, self.spool, self._logs.queue, self._logs.levels),
            )
        return self

    def submit(self, seed: int):
        if self._pool is not None:
            return self._pool.submit(_worker_record, seed)
        from concurrent.futures import Future

        future: Future = Future()
        future.set_result(self._local.record(seed))
        return future

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self._pool is not None:
            if exc_type is None:
                self._pool.shutdown(wait=True, cancel_futures=True)
            else:  # Ctrl-C or a failure: do not wait minutes for episodes nobody will keep
                self._pool.shutdown(wait=False, cancel_futures=True)
                for process in list((getattr(self._pool, "_processes", None) or {}).values()):
                    process.terminate()
            self._logs.__exit__(exc_type, *exc)
        if self._local is not None:
            self._local.close()


def _make_env(settings: dict[str, Any], teleop_target: bool = False):
    """The recording's env: its task (with its options), robot, control rate, camera size, step limit and shifts;
    `teleop_target`: with the target a person drags (`data.teleop`)."""
    from worldpolicy.sim.env import TabletopEnv
    from worldpolicy.sim.tasks import get_task

    return TabletopEnv(
        get_task(settings["task"], **settings["task_options"]),
        settings["robot"],
        control_hz=settings["control_hz"],
        image_size=settings["image_size"],
        max_steps=settings["max_steps"],
        perturb=settings["perturb"],
        prompt_template=settings["prompt_template"],
        teleop_target=teleop_target,
    )


class _Recorder:
    """One env and what acts in it, the scripted expert or a policy's rollout (`settings["policy"]`); records one
    seeded episode at a time."""

    def __init__(self, settings: dict[str, Any], spool: Path | None = None):
        from worldpolicy.sim.policies import ScriptedPolicy

        self.cameras, self.settle_steps, self.spool = settings["cameras"], settings["settle_steps"], spool
        self.prompt_variants = settings["prompt_variants"]
        self.env = _make_env(settings)
        self.rollout = None
        try:
            if "policy" in settings:
                self.rollout = _rollout(self.env, settings["policy"])
                self.recorded_by = _recorded_by(self.rollout)  # once: they read a checkpoint's files or ask a
                # server for its metadata, and do not change between episodes
            else:
                self.start_jitter, self.action_noise = settings["start_jitter"], settings["action_noise"]
                self.expert = ScriptedPolicy(self.env, chunk_size=settings["chunk_size"])
        except BaseException:
            self.env.close()
            raise

    def record(self, seed: int) -> dict[str, Any]:
        if self.rollout is not None:
            episode = _record_rollout(self.rollout, seed, _CameraFrames(self.cameras, self.spool, seed),
                                      self.settle_steps)
            # the k the strategy executes is known once a chunk has come
            episode["recorded_by"] = {**self.recorded_by, "strategy": {**asdict(self.rollout.strategy),
                                                                       "execute_steps": self.rollout.execute_steps}}
        else:
            episode = _record(self.env, self.expert, seed, _CameraFrames(self.cameras, self.spool, seed),
                              self.settle_steps, self.start_jitter, self.action_noise)
        episode["task"] = episode_task(self.env, episode["task"], self.prompt_variants)
        return episode

    def close(self) -> None:
        try:
            if self.rollout is not None:  # a model releases its weights, a server its connection
                getattr(self.rollout.policy, "close", lambda: None)()
        finally:
            self.env.close()


def _rollout(env, setup: dict[str, Any]):
    """The policy `setup` names (`_checked_policy`) loaded (`sim.policies.make_policy`, as `worldpolicy sim` loads it)
    and wrapped in the `Rollout` that sim runs, with its chunk strategy; a server's training scenes among the episodes
    asked for (`setup["scenes"]`) warned of once it is reached, as `worldpolicy sim` warns of them."""
    from worldpolicy.models import served_name
    from worldpolicy.robot.control import ChunkStrategy
    from worldpolicy.robot.decode import check_executable
    from worldpolicy.sim.policies import chunk_size, make_policy, policy_fps, served_metadata, warn_rate_mismatch
    from worldpolicy.sim.rollout import Rollout
    from worldpolicy.sim.tasks import warn_training_scenes

    policy = make_policy(setup["spec"], env=env, embodiment=setup["embodiment"], api_key=setup["api_key"],
                         ca_file=setup["ca_file"], timeout_s=setup["timeout_s"], **setup["options"])
    try:
        check_executable(policy.embodiment, env.robot)  # a server's embodiment, known now it is connected
        rollout = Rollout(env, policy, ChunkStrategy(**setup["strategy"]), name=setup["name"],
                          latency_ms=setup["latency"]["ms"], rtc=setup["rtc"])
        rollout.strategy.steps_for(chunk_size(policy))
        warn_rate_mismatch(policy_fps(policy), env.control_hz, setup["name"])
        if announced := served_metadata(policy):  # a server's training scenes, as `worldpolicy sim` says them
            task, seed, episodes = setup["scenes"]
            warn_training_scenes(served_name(setup["name"], announced.get("model")), task, seed, episodes, announced)
    except BaseException:
        getattr(policy, "close", lambda: None)()
        raise
    return rollout


_WORKER: _Recorder | None = None


def _init_worker(settings: dict[str, Any], spool: Path | None, log_queue: Any,
                 log_levels: Sequence[tuple[str | None, int]]) -> None:
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    from worldpolicy.logcapture import log_to_parent

    log_to_parent(log_queue, log_levels)  # its warnings shown by the parent, formatted, each once
    _WORKER = _Recorder(settings, spool)


def _worker_record(seed: int) -> dict[str, Any]:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER.record(seed)


def sim_to_dataset(
    root: str | Path,
    task: str = "pick_place",
    num_episodes: int = 10,
    *,
    seed: int = 0,
    video_codec: str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = False,
    on_checked: Callable[[], None] | None = None,
    command: str | None = None,
    recorder: Callable[..., ExpertEpisodes] | None = None,
    **episode_options: Any,
) -> SimConversion:
    """Record `num_episodes` seeded expert episodes of `task` into a LeRobot v3 dataset at `root`.

    Videos default to lossless (`libx264rgb`; a resumed recording: the dataset's own codec): sim frames are small and
    colour-coded, chroma subsampling would blur exactly what the task is about. `progress` shows a bar over the
    episodes on stderr (a recording takes minutes).
    Ctrl-C raises `RecordingInterrupted`, which keeps the episodes finished so far as a complete dataset at `root`
    when that replaces no existing dataset; an error while recording keeps them the same way (logged) and is raised
    as it came, an error while an episode is added to the dataset keeps none. The finished episodes are also kept
    (published as Ctrl-C publishes them, `LeRobotDatasetWriter.keep`) every 10 minutes of wall time
    (`lerobot.KeepSchedule`), so a kill (SIGKILL) loses only those since the last keep, which `resume` continues;
    Ctrl-C or an error with none finished since keeps that one. `episode_options` go to `expert_episodes`.

    Each camera's frames go to a raw file in a hidden folder beside `root` as the rollout renders them
    (`expert_episodes`' `spool`) and are encoded from there `BLOCK_FRAMES` at a time once the episode is kept: memory
    holds a block of frames, not an episode's, and the files are those the episode's arrays give. The folder is
    deleted when the recording ends, however it ends; one a killed recording left is removed by the next dataset
    writer beside `root` (`fileio.sweep_scratch_folders`).

    `resume` continues the dataset an interrupted (or shorter) recording left at `root` until it holds
    `num_episodes`: with the same settings (each one that differs refused, naming it, before anything records; a
    policy's `policy_settings` once it has loaded, before an episode is added), from the seed after the last one its
    provenance lists, its tries counted from `seed`: the result holds the episodes of one uninterrupted recording.
    Its episodes are copied into a new dataset with the new ones after them (`edit.copy_episodes`, as `dataset
    merge` copies them), published in its place as a whole; until then (an error or a kill) it stays as it was.
    A dataset that already holds `num_episodes` is returned as it is (`SimConversion.resumed`).

    `on_checked()` is called once every setting is checked and the writer is ready, before a policy loads or an
    episode records: the command's warnings about the run (its training scenes) come after every refusal, and never
    for a run that does not happen.

    The provenance records, beside the settings, the software that recorded and `command`, the `dataset from-sim`
    line that did (`extras.run_record`; None from Python; a resumed recording's own, not compared: warned of).

    `recorder` makes the episodes in place of `expert_episodes` (None), called as it is, with `episode_options`:
    `data.teleop.teleop_episodes`, a person's episodes (`dataset teleop`), written, kept and resumed as these are.
    The refusals and the folder lock name the command that records the `expert` the recorder (or the function of a
    `functools.partial` of it, as the command passes its input source bound) says it records in its attribute
    `expert` (`recording_command`): `teleop_episodes.expert` is `TELEOP_EXPERT`.
    """
    root = Path(root).expanduser()
    if resume and overwrite:
        raise ValueError("resume: continues the dataset at root, overwrite=True replaces it: pass one of them")
    sweep_scratch_folders(root, ())  # what root holds, a dataset a killed replacement left aside back first
    held = (root / INFO_PATH).is_file()  # a dataset, and the command its provenance says made it
    stored = (provenance_document(root) or {}) if held else {}
    maker = stored.get("source")
    ours = held and maker == SOURCE
    # a person's episodes (`data.teleop`) share from-sim's source: a recording is named by the command that made it,
    # the messages by the command run
    running = recording_command(getattr(getattr(recorder, "func", recorder), "expert", None))
    if not (overwrite or resume) and ours:  # a rerun of the command as first typed: say how to go on
        raise FileExistsError(f"root={str(root)!r} holds a {recording_command(stored.get('expert'))} recording; pass "
                              f"resume=True to continue it up to num_episodes={num_episodes}, overwrite=True to "
                              "replace it, or choose a new or empty folder")
    if held and not ours:
        # as the other dataset commands' --overwrite: what a user brought (a LeRobot download, an import) is kept;
        # without a flag too, which the writer would answer with "pass overwrite=True", only to refuse that next
        name = "overwrite" if overwrite else "resume" if resume else None
        only = ("overwrite=True replaces" if name != "resume" else "resume=True continues")
        # a from-sim recording of a version before `PROVENANCE_FILE` says nothing either: it cannot be continued
        # (its settings and seeds are not known), and whether it is one cannot be told, so it is not replaced
        what = (f"a dataset `{maker.removeprefix('worldpolicy ')}` made, not a {running} recording"
                if isinstance(maker, str) and maker else f"a dataset that does not say {running} recorded it "
                f"(one from elsewhere, or a recording by an older worldpolicy, which kept no {PROVENANCE_FILE} of "
                "its settings and seeds: delete it first to record into this folder again)")
        raise FileExistsError(f"{name + ': ' if name else ''}root={str(root)!r} holds {what}; choose a new or empty "
                              f"folder ({only} only a {running} recording that says so)")
    with dataset_lock(root, "root", running):  # a second recording into root refused, before it starts
        previous = _resumed(root, video_codec) if resume else None
        spool = ScratchFolder(root, FRAMES_KIND)  # made once the settings are checked; held while it is used
        try:
            return _record_dataset(root, spool, task, num_episodes, seed, video_codec, overwrite, progress,
                                   episode_options, previous, on_checked, command, recorder or expert_episodes)
        finally:
            shutil.rmtree(spool.path, ignore_errors=True)
            spool.release()


def recording_command(expert: str | None) -> str:
    """The command that records the episodes of `expert` (a provenance's `expert`), as messages name it: `dataset
    teleop` a person's (`TELEOP_EXPERT`), `dataset from-sim` the scripted expert's and a policy's (None)."""
    return "`dataset teleop`" if expert == TELEOP_EXPERT else "`dataset from-sim`"


def _resumed(root: Path, video_codec: str | None) -> LeRobotDataset:
    """The dataset `sim_to_dataset(resume=True)` continues at `root`, checked: one `dataset from-sim` recorded
    (checked before), listing one seed per episode, and `video_codec` its own (or None)."""
    from .edit import sources_codec

    if not (root / INFO_PATH).is_file():
        raise FileNotFoundError(f"resume: root={str(root)!r} holds no dataset to continue; leave resume out to "
                                "record one there")
    dataset = LeRobotDataset.open(root)
    seeds = (dataset.provenance or {}).get("seeds")
    if not isinstance(seeds, list) or len(seeds) != dataset.num_episodes:
        raise ValueError(f"resume: root={str(root)!r} does not list the seed of each of its {dataset.num_episodes} "
                         "episodes (meta/worldpolicy_provenance.json's seeds), so where its recording stopped is not "
                         "known; record into a new folder, or replace it with overwrite=True")
    own = sources_codec([dataset], None)
    if video_codec not in (None, own):
        raise ValueError(f"video_codec={video_codec!r}: the dataset at root={str(root)!r} is encoded with {own!r}, "
                         "and a resumed recording continues it so; leave video_codec out")
    return dataset


def _record_dataset(root: Path, spool: ScratchFolder, task: str, num_episodes: int, seed: int,
                    video_codec: str | None, overwrite: bool, progress: bool, episode_options: dict[str, Any],
                    previous: LeRobotDataset | None, on_checked: Callable[[], None] | None,
                    command: str | None, recorder: Callable[..., ExpertEpisodes]) -> SimConversion:
    """`sim_to_dataset`, its frames spooled in `spool`; `previous` the dataset a resumed recording continues."""
    from ..logcapture import progress_bar
    from .edit import copy_episodes, sources_codec

    t0 = time.perf_counter()
    stored = {} if previous is None else dict(previous.provenance or {})
    done: list[int] = list(stored.get("seeds", []))  # the seeds of the episodes a resumed dataset holds
    seeds: list[int] = list(done)
    failed: list[int] = []
    tries = [0, 0]  # episodes recorded, of which the expert solved

    def attempted(_seed: int, success: bool) -> None:
        tries[0] += 1
        tries[1] += success
        if not success:  # a kept one is shown once it is written
            bar.set_postfix_str(f"solved {tries[1]}/{tries[0]}")

    # a complete dataset's seeds past num_episodes, and another first seed (refused below, named), go on from none
    episodes = recorder(task, num_episodes, seed=seed, failed_seeds=failed, on_attempt=attempted, spool=spool.path,
                        done_seeds=done[:num_episodes] if stored.get("seed") == seed else (), **episode_options)
    settings = episodes.provenance  # the settings checked and resolved (the defaults of those not given)
    if previous is not None:
        advice = ("Pass the settings it was recorded with to continue it, or record into a new folder "
                  "(overwrite=True instead of resume=True replaces it)")
        try:
            _refuse_changes(root, stored, settings, task, advice)
        except ValueError as exc:
            episodes.close()
            raise ValueError(f"resume: {exc}") from None
        if previous.num_episodes >= num_episodes:  # said by the caller (`resumed`): `dataset from-sim` prints it
            episodes.close()
            return SimConversion(previous, seeds, _failed_before(stored), time.perf_counter() - t0,
                                 resumed=previous.num_episodes)
        failed.extend(_failed_before(stored))
        warn_software_changed(root, stored, "recorded")
    features = sim_features(settings["robot"], tuple(settings["image_size"]), settings["cameras"])
    # info.json's fps is the control rate asked for (15 by default), not the rate the physics runs it at (15.15: 33
    # steps of 2 ms, `TabletopEnv.actual_control_hz`): a row is one control step, which `worldpolicy sim --control-hz
    # 15` (the same physics) and a real arm at 15 Hz each run one per period, so the actions keep their timing. A
    # trainer refuses a dataset whose fps is not its embodiment's (15 for panda_reach and droid).
    # a resumed dataset is written again whole, its own codec and provenance (a policy's settings filled in) kept
    writer = LeRobotDatasetWriter(root, settings["control_hz"], features, settings["robot"],
                                  video_codec=sources_codec([previous], video_codec) if previous else
                                  video_codec or "libx264rgb", overwrite=overwrite or previous is not None,
                                  provenance={**stored, **settings, **run_record(command), "seeds": done})
    if on_checked is not None:  # before the bar: a warning is not drawn over by it
        try:
            on_checked()
        except BaseException:
            episodes.close()
            writer.abort()
            raise
    bar = progress_bar(total=num_episodes, initial=len(done), desc=f"recording {task}", unit="ep",
                       disable=not progress)
    adding = False  # an episode is being added to the writer (it may hold part of it)
    base = len(done)  # the episodes of the dataset at root (resumed, or kept since: `previous`) the writer holds
    keeps = KeepSchedule()
    try:
        spool.make()  # beside the writer's staging folder: on the dataset's disk
        for episode in episodes:
            if previous is not None and not writer.num_episodes:  # the first new episode: the old ones go first
                if episode.get("recorded_by"):  # a policy's settings, known once it loaded: as the dataset's?
                    try:
                        _refuse_changes(root, stored, json.loads(json.dumps(episode["recorded_by"])), task, advice)
                    except ValueError as exc:
                        raise ValueError(f"resume: {exc}") from None
                adding = True  # a Ctrl-C while they are copied keeps none: the dataset stays as it was
                copy_episodes(writer, [previous], [(0, i) for i in range(previous.num_episodes)],
                              [previous.episode_columns()], previous.episode_success is not None)
                adding = False
            with sigint_deferred():  # an episode half added to the writer could not be published
                adding = True
                recorded_by = episode.get("recorded_by")  # a policy's recording: its settings
                _add_episode(writer, episode)
                adding = False
                discard_frames(episode)
                seeds.append(episode["seed"])
                writer.provenance.update(recorded_by or {})
                writer.provenance["seeds"] = list(seeds)  # the env seed of each kept episode, in order
                bar.set_postfix_str(f"solved {tries[1]}/{tries[0]}", refresh=False)
                bar.update(1)
            if len(seeds) < num_episodes and keeps.due() and _publishable(writer, root, base):
                # a kill (SIGKILL, the OOM killer, a lost node) loses only the episodes since: published as an
                # interruption publishes them, the writer going on from there
                with sigint_deferred():
                    adding = True  # a keep that fails (the disk full) keeps nothing more: raised as it came
                    try:
                        keeps.keep(writer)
                    finally:  # one failing after its publish (as it went on) kept them: said so after the error
                        if writer.published is not None and writer.published.num_episodes > base:
                            previous, adding = writer.published, False
                            base = previous.num_episodes
                    logger.info("kept %d of %d episodes in %s", base, num_episodes, root)
    except KeyboardInterrupt as stop:
        with sigint_held():  # a second Ctrl-C must not leave the staged episodes behind
            episodes.close()  # stops the recorders (and worker processes) before the dataset is written
            bar.close()
            kept = _keep_finished(writer, root, base, adding)
        if kept is None and (last := _last_keep(previous, base, len(done))) is not None:  # the episodes since lost
            kept, seeds = last, seeds[:base]
            failed = [s for s in failed if s < seeds[-1]]  # those after it are tried again by a resume
        result = None if kept is None else SimConversion(kept, seeds, failed, time.perf_counter() - t0, len(done))
        raise RecordingInterrupted(root, num_episodes, len(seeds) - len(done), result,
                                   stop_signal(stop),
                                   len(done)) from None
    except BaseException:
        episodes.close()
        bar.close()
        if adding:  # part of an episode may be in the writer: nothing of it can be published
            writer.abort()
            raise
        # a recording that failed (a worker or the simulator crashed, the disk filled) keeps its finished episodes,
        # as Ctrl-C does: they may be hours of work
        try:
            with sigint_held():
                kept = _keep_finished(writer, root, base)
        except (OSError, ValueError) as exc:  # the disk still full, a dataset appeared at root meanwhile
            writer.abort()
            logger.warning("the %d episodes recorded before the error could not be kept either: %s",
                           len(seeds) - base, exc)  # the dataset's own (resumed, or the last keep) stay as they were
            kept = None
        if kept is None:  # the finished episodes since lost: the last keep's are still at root
            kept = _last_keep(previous, base, len(done))
        if kept is not None:
            logger.warning("%d of %d episodes recorded before the error are kept in %s (a complete dataset); a rerun "
                           "with resume (--resume) records the other %d", kept.num_episodes, num_episodes, root,
                           num_episodes - kept.num_episodes)
        raise
    bar.close()
    with sigint_held():  # every episode is recorded: a late Ctrl-C must not throw them away
        dataset = writer.finalize()
    return SimConversion(dataset=dataset, seeds=seeds, failed_seeds=failed, wall_s=time.perf_counter() - t0,
                         resumed=len(done))


def _add_episode(writer: LeRobotDatasetWriter, episode: dict[str, Any]) -> None:
    """Add a spooled episode (`expert_episodes(spool=...)`) to `writer`, its videos streamed `BLOCK_FRAMES` frames
    at a time."""
    videos: dict[str, SpooledVideo] = episode["videos"]
    stream = writer.stream_videos(next(iter(videos.values())).length)
    blocks = {key: video.blocks(BLOCK_FRAMES) for key, video in videos.items()}
    for parts in zip(*blocks.values()):
        stream.append(dict(zip(blocks, parts)))
    writer.add_episode(episode["frames"], stream, episode["task"], success=episode["success"])


def _publishable(writer: LeRobotDatasetWriter, root: Path, resumed: int, copying: bool = False) -> bool:
    """Whether the finished episodes in `writer` may be published at `root`: not when there are none or `root`
    already holds a dataset (an existing dataset is replaced only by a complete recording). A recording whose writer
    holds the `resumed` episodes of the dataset at root (copied from it by `resume`, or kept there by this recording)
    may once it has a new one and the copy is done (not `copying`)."""
    if resumed:
        return not copying and writer.num_episodes > resumed
    return bool(writer.num_episodes) and not (root.exists() and (not root.is_dir() or any(root.iterdir())))


def _keep_finished(writer: LeRobotDatasetWriter, root: Path, resumed: int,
                   copying: bool = False) -> LeRobotDataset | None:
    """After Ctrl-C or an error: publish the finished episodes as a dataset where `_publishable`; discard them else."""
    if not _publishable(writer, root, resumed, copying):
        writer.abort()
        return None
    return writer.finalize()


def _last_keep(previous: LeRobotDataset | None, base: int, resumed: int) -> LeRobotDataset | None:
    """The dataset this recording last kept (`previous`, of `base` episodes, more than the `resumed` it started
    with), or None where it kept none."""
    return previous if previous is not None and base > resumed else None


def _failed_before(provenance: dict[str, Any]) -> list[int]:
    """The seeds the recording `provenance` describes tried and skipped (failed) before its last kept one: those from
    its first `seed` on that its `seeds` do not list (with `keep_failures`, none)."""
    seeds = provenance.get("seeds") or []
    kept = set(seeds)
    return [s for s in range(provenance.get("seed", 0), seeds[-1]) if s not in kept] if seeds else []


def _recorded_by(rollout) -> dict[str, Any]:
    """What a policy's recording adds to the dataset's provenance once it is loaded (with each episode's chunk
    strategy: `_Recorder.record`): the embodiment it acts in (a server's is known only now; a checkpoint's own where
    none was given) and its settings (`sim.policies.policy_settings`)."""
    from worldpolicy.sim.policies import policy_settings

    return {"embodiment": rollout.policy.embodiment.key,
            "policy_settings": policy_settings(rollout.policy, rollout.env.image_size)}


def episode_task(env, prompt: str, prompt_variants: str) -> str:
    """An episode's task text: the `prompt` it ran with, or (`prompt_variants` "all") every wording of its scene
    (`env.episode`), joined as captions are (`CAPTION_SEP`)."""
    return CAPTION_SEP.join(env.task.wordings(env.episode)) if prompt_variants == "all" else prompt


def _record_rollout(rollout, seed: int, images: _CameraFrames, settle_steps: int) -> dict[str, Any]:
    """One episode of a policy, as `worldpolicy sim` runs it for `seed` (`Rollout.run`), recorded as `_record` records
    the expert's: row t the state and frames before step t and the command of step t; after a success its last command
    held for `settle_steps` more steps."""
    env = rollout.env
    rows = EpisodeRows(images)
    result = rollout.run(seed, on_act=lambda command: rows.add(env, command))
    # the run stops at its first success
    rows.rewards = [0.0] * (len(rows.actions) - 1) + [1.0 if result.success else 0.0]
    while result.success and env.steps < min(rollout.max_steps, result.steps + settle_steps):
        rows.add(env, rows.actions[-1])
        env.act(rows.actions[-1])
        rows.rewards.append(1.0 if env.success() else 0.0)
    return rows.episode(result.prompt, seed, result.success)


def _record(env, expert, seed: int, images: _CameraFrames, settle_steps: int, start_jitter: float = 0.0,
            action_noise: float = 0.0) -> dict[str, Any]:
    from worldpolicy.sim.policies import limit_step

    env.reset(seed=seed)
    if start_jitter > 0:
        rng = np.random.default_rng([seed, 7])  # independent of the scene's draws: same scene with or without jitter
        scale = start_jitter * rng.uniform()
        env.set_arm(env.robot.home + rng.uniform(-scale, scale, size=env.robot.dof))
    noise_rng = np.random.default_rng([seed, 11])
    cap = expert.step_cap()
    sent = env.joint_positions()  # the joint targets last commanded (with noise)
    obs = env.observe(images=False)  # render only the recorded cameras: rendering dominates the cost
    prompt = obs["prompt"]
    rows = EpisodeRows(images)
    pending: list[np.ndarray] = []
    offset = np.zeros(env.robot.dof)
    solved_at = None
    while env.steps < env.max_steps and (solved_at is None or env.steps < solved_at + settle_steps):
        if not pending:
            if solved_at is None:
                pending = list(expert.act(obs, prompt).actions)
                if action_noise > 0:
                    offset = noise_rng.normal(0.0, action_noise, size=env.robot.dof)
            else:
                pending = [rows.actions[-1]]
        action = np.asarray(pending.pop(0), dtype=np.float64)
        rows.add(env, action)
        command = action.copy()
        if action_noise > 0:
            # the noisy command held to the expert's own joint step cap: a chunk's new offset added at once jumped up
            # to 12 % past a joint's speed limit (--action-noise 0.05), a move a real arm faults on
            command[:-1] = sent = limit_step(sent, action[:-1] + offset, cap)
        env.act(command)
        obs = env.observe(images=False)
        solved = env.success()
        rows.rewards.append(1.0 if solved else 0.0)
        if solved and solved_at is None:
            solved_at, pending = env.steps, []
    return rows.episode(prompt, seed, solved_at is not None)


class EpisodeRows:
    """An episode's rows as a recorder records them, for the scripted expert, a policy and a person alike: row t the
    arm's state and the cameras' frames (`images`) before step t and the command of step t (`add`), and the reward
    after it (`rewards`, appended by the recorder)."""

    def __init__(self, images: _CameraFrames):
        self.images = images
        self.states: list[np.ndarray] = []
        self.grips: list[float] = []
        self.actions: list[np.ndarray] = []
        self.rewards: list[float] = []

    def add(self, env, action: np.ndarray) -> None:
        """A row: `env` as it is before `action` (the joint targets and the gripper command) steps it."""
        self.states.append(np.asarray(env.joint_positions(), dtype=np.float64))
        self.grips.append(float(env.gripper_position()))
        self.images.render(env)
        self.actions.append(np.asarray(action, dtype=np.float64))

    def episode(self, prompt: str, seed: int, success: bool) -> dict[str, Any]:
        """The episode's rows, as `LeRobotDatasetWriter.add_episode` takes them, and its task, seed and outcome."""
        length = len(self.actions)
        action_arr = np.stack(self.actions)
        return {
            "frames": {
                STATE_KEYS[0]: np.stack(self.states).astype(np.float32),
                STATE_KEYS[1]: np.asarray(self.grips, dtype=np.float32)[:, None],
                ACTION_KEYS[0]: action_arr[:, :-1].astype(np.float32),
                ACTION_KEYS[1]: action_arr[:, -1:].astype(np.float32),
                "next.reward": np.asarray(self.rewards, dtype=np.float32),
                "next.done": np.arange(length) == length - 1,
            },
            "videos": self.images.videos(),
            "task": prompt,
            "seed": seed,
            "success": success,
        }


@dataclass(frozen=True)
class SpooledVideo:
    """One camera's frames of a recorded episode, raw uint8 [length, H, W, 3] in the file at `path` (`expert_episodes`'
    `spool`), read back `blocks` at a time."""

    path: str
    length: int
    shape: tuple[int, int, int]

    def blocks(self, size: int) -> Iterator[np.ndarray]:
        frame = int(np.prod(self.shape))
        for start in range(0, self.length, size):
            count = min(size, self.length - start)
            yield np.fromfile(self.path, np.uint8, count * frame, offset=start * frame).reshape(count, *self.shape)


class _CameraFrames:
    """The frames an episode's cameras render, step by step: kept as arrays (`spool` None), or appended to a raw file
    per camera in `spool` as they come (`SpooledVideo`), so nothing of them is held."""

    def __init__(self, cameras: list[str], spool: Path | None, seed: int):
        self.cameras, self.spool = cameras, spool
        self._frames: dict[str, list[np.ndarray]] = {c: [] for c in cameras}
        self._shape: tuple[int, int, int] | None = None
        self.length = 0
        if spool is not None:
            self._paths = {c: spool / f"{seed}.{camera_feature(c)}.rgb" for c in cameras}
            for path in self._paths.values():
                path.unlink(missing_ok=True)  # a file of the same seed left by an earlier recording into this spool

    def render(self, env) -> None:
        for c in self.cameras:
            image = env.render_camera(c)
            self._shape = image.shape
            if self.spool is None:
                self._frames[c].append(image)
            else:
                with open(self._paths[c], "ab") as f:
                    f.write(np.ascontiguousarray(image, np.uint8).tobytes())
        self.length += 1

    def videos(self) -> dict[str, np.ndarray | SpooledVideo]:
        """Each camera's frames by video key: arrays, or the spooled files."""
        if self.spool is None:
            return {camera_feature(c): np.stack(frames) for c, frames in self._frames.items()}
        return {camera_feature(c): SpooledVideo(str(self._paths[c]), self.length, self._shape) for c in self.cameras}


def discard_frames(episode: dict[str, Any]) -> None:
    """Delete the spooled frame files of an episode `expert_episodes(spool=...)` recorded (arrays: nothing to do)."""
    for video in episode["videos"].values():
        if isinstance(video, SpooledVideo):
            Path(video.path).unlink(missing_ok=True)
