"""Tabletop tasks: which objects exist, how an episode is randomised (seeded), what counts as success, the prompt.

Each task also has a scripted expert (`expert_waypoints`): a closed-loop list of TCP waypoints computed from the true
object state, which `worldpolicy.sim.policies.ScriptedPolicy` turns into joint chunks with IK.
"""

from __future__ import annotations

import inspect
import logging
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worldpolicy.errors import is_real
from worldpolicy.models import served_training_seeds, training_seeds
from worldpolicy.sim.scenes import TABLE_TOP, ObjectSpec

logger = logging.getLogger(__name__)

__all__ = ["BUILTIN_POLICIES", "COLORS", "EVAL_SEED", "LATENCY_ACCEPTED", "PROMPT_CHARACTERS", "PROMPT_MAX_LENGTH",
           "TASKS", "EpisodeState", "SimState", "Task", "TrainingScenes", "Waypoint", "check_prompt_template",
           "get_task", "list_tasks", "seed_span", "training_scenes", "training_seeds", "warn_training_scenes"]

# The first episode's seed an evaluation uses by default (`worldpolicy sim --seed`, `sim.evaluate.evaluate(seed=)`, a
# training run's `[eval] seed`): `dataset from-sim` records seeds 0, 1, ..., so an evaluation from 0 ran the very scenes
# a checkpoint trained on those episodes had learned, and its success said how well it fits its training data, not how
# it does on new scenes. Here, with the scenes a seed draws, so the parsers and the evaluation share it without MuJoCo.
# A checkpoint whose training data says it recorded the seeds asked for is warned about and its report says so
# (`training_scenes`, below, here for the same reason: `dataset eval` checks a recording's episodes by it).
EVAL_SEED = 10_000
# The control rate an episode runs at unless told (TabletopEnv; `worldpolicy sim` for a policy with no rate of its own,
# random actions): DROID's 15 Hz. Here, so the parsers share it without MuJoCo.
DEFAULT_CONTROL_HZ = 15.0
# What a latency (`worldpolicy sim --latency`, `dataset from-sim --latency`, `rollout.latency_ticks`' latency_ms) may
# be: here too, so the parsers refuse a word and a negative number alike, before MuJoCo loads, in the API's words.
LATENCY_ACCEPTED = "milliseconds, a finite number >= 0 (0: none)"
# The policies worldpolicy is itself (`--policy scripted`, `--policy random`: `sim.policies.ScriptedPolicy`, the task's
# expert, and `RandomPolicy`): no model, so no images, planning, batching or RTC, and their behaviour is worldpolicy's
# code, versioned (`EvalReport.versions`, `sim compare`). Here, so the parsers and the checks share it without MuJoCo.
BUILTIN_POLICIES = ("scripted", "random")


@dataclass(frozen=True)
class TrainingScenes:
    """What a checkpoint's training data says of a run's scenes (`training_scenes`): the task and the first and last
    seed of the `dataset from-sim` recording it was trained on (`recorded`), where that is said (`source`), and which
    of the run's episode seeds are among the recorded ones (`seeds`; none when the run is another task). A report keeps
    it, so whoever reads the results later knows whether they measure new scenes or the training data, not only
    whoever saw the run's warning."""

    task: str
    source: str
    recorded: tuple[int, int]
    seeds: tuple[int, ...]

    def to_json(self, ran: Iterable[int]) -> dict[str, Any]:
        """As report.json stores it: `seeds` only those of the episodes that ran (`ran`), as the rest of a report
        counts."""
        ran = set(ran)
        return {"task": self.task, "source": self.source, "recorded_seeds": list(self.recorded),
                "seeds": [s for s in self.seeds if s in ran]}

    @property
    def recording(self) -> tuple[str, str, tuple[int, int]]:
        """What the training data says, whatever the run's seeds: its task, where it is said and the seeds recorded."""
        return self.task, self.source, self.recorded

    def recording_said(self) -> str:
        """`reach seeds 0..99 (its dataset data/reach)`: the recording, as a warning names it."""
        return f"{self.task} seeds {self.recorded[0]}..{self.recorded[1]} ({self.source})"

    @property
    def held_out_from(self) -> int:
        """The first seed past the recording (and at least `EVAL_SEED`): the one to suggest for held-out scenes, the
        same in the run's warning (`warning`) and its report (`EvalReport.markdown`)."""
        return max(EVAL_SEED, self.recorded[1] + 1)

    def trained_on(self, episodes: int, checkpoint: str | Path) -> str:
        """`3 of the 10 episodes (seeds 0..2) are reach scenes <checkpoint> was trained on (...)`: how a warning about
        training scenes among `episodes` begins, `worldpolicy sim`'s (`warning`) and `dataset eval`'s alike. The
        checkpoint (as given, or as a report records it) is named here for all of them, by `models.checkpoint_name`:
        `.` by its folder's name, the shipped model `shipped`, a hub snapshot by its hub id; a server's run by its
        label (`models.served_name`: the model it announced @ its address)."""
        from worldpolicy.models import checkpoint_name

        first, last = self.recorded
        return (f"{len(self.seeds)} of the {episodes} episodes ({seed_span(list(self.seeds))}) are {self.task} scenes "
                f"{checkpoint_name(str(checkpoint))} was trained on ({self.source} recorded seeds {first}..{last})")

    def warning(self, episodes: int, checkpoint: str | Path, seed_option: str) -> str | None:
        """What to tell whoever runs `episodes` episodes of `checkpoint` when some are its training scenes, naming
        the seed to pass as the caller takes it (`seed_option`: `worldpolicy sim`'s "--seed ", the agents' "seed=");
        None when all are held out."""
        if not self.seeds:
            return None
        return (f"{self.trained_on(episodes, checkpoint)}: their success says how well it fits its training data, "
                f"not how it does on new scenes; pass {seed_option}{self.held_out_from} for held-out ones")

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> TrainingScenes:
        first, last = doc["recorded_seeds"]
        return cls(doc["task"], doc["source"], (int(first), int(last)), tuple(int(s) for s in doc["seeds"]))


def training_scenes(checkpoint: str | Path | Mapping[str, Any], task: str,
                    seeds: Iterable[int]) -> TrainingScenes | None:
    """Which of `seeds` (a run's episodes of `task`) are scenes `checkpoint` was trained on (`models.training_seeds`);
    None where its training data does not say. `checkpoint`: a checkpoint, or a server's metadata frame (a mapping),
    which says it for the checkpoint it serves (`models.served_training_seeds`; None where it says nothing)."""
    trained = served_training_seeds(checkpoint) if isinstance(checkpoint, Mapping) else training_seeds(checkpoint,
                                                                                                       task=task)
    if trained is None:
        return None
    recorded = set(trained[1])
    seen = sorted(recorded.intersection(seeds)) if trained[0] == task else []
    return TrainingScenes(trained[0], trained[2], (min(recorded), max(recorded)), tuple(seen))


def warn_training_scenes(checkpoint: str, task: str, seed: int, episodes: int,
                         announced: dict | None = None) -> TrainingScenes | None:
    """Warn when episodes about to run (`seed`, `seed` + 1, ...) are scenes `checkpoint` was trained on
    (`training_scenes`): their success says how well it fits its training data. Said before a local model loads; a
    checkpoint that does not say is not checked. `announced`: a server's metadata frame, which says it for the
    checkpoint it serves (`checkpoint`: the run's label, `models.served_name`), once connected. One warning for
    `worldpolicy sim` and `dataset from-sim` alike. Returns what the rule found (None: not known), for a sim run's
    report to record as it is (`evaluate(training_scenes=)`): the rule applied once per run."""
    found = training_scenes(checkpoint if announced is None else announced, task, range(seed, seed + episodes))
    said = found.warning(episodes, checkpoint, "--seed ") if found is not None else None
    if said is not None:
        logger.warning("--seed %d: %s", seed, said)
    return found


def seed_span(seeds: list[int]) -> str:
    """`seeds 2..9` (`seed 2` for one): the first and last of some sorted seeds, which may skip some (a recording
    skips the seeds its expert failed)."""
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}..{seeds[-1]}"


COLORS = {
    "red": (0.85, 0.15, 0.15, 1.0),
    "green": (0.15, 0.7, 0.2, 1.0),
    "blue": (0.15, 0.3, 0.85, 1.0),
    "yellow": (0.9, 0.8, 0.1, 1.0),
    "orange": (0.95, 0.5, 0.1, 1.0),
    "purple": (0.55, 0.2, 0.7, 1.0),
}
CUBE_HALF = 0.025
HOVER_Z = TABLE_TOP + 0.15
# At rest, as ManiSkill's `is_static` judges an object (<= 1 cm/s and <= 0.1 rad/s): push and pick_place count a cube
# that stays where it was put, not one passing over the goal.
REST_SPEED = 0.01  # m/s
REST_SPIN = 0.1  # rad/s
# Picked: the cube's bottom was this far clear of the table while the gripper held it (`SimState.held_heights`).
# robosuite's Lift wants its ~4 cm cube's centre 4 cm above the table (~2 cm clear); 3 cm here, as a push can tip the
# 5 cm cube onto a corner, raising it 1.8 cm.
LIFT_CLEARANCE = 0.03  # m
# What a prompt may hold: the env's observation space says it (`TabletopEnv`: gymnasium's Text), and a prompt template
# (`worldpolicy sim --prompt-template`) is held to it before anything loads
PROMPT_PUNCTUATION = " ,.'-"
PROMPT_CHARACTERS = string.ascii_letters + string.digits + PROMPT_PUNCTUATION
PROMPT_MAX_LENGTH = 256


@dataclass
class Waypoint:
    """A TCP target (world xyz, yaw about world z for a down-pointing gripper), gripper g, speed and settle steps."""

    pos: np.ndarray
    yaw: float
    gripper: float
    speed: float = 0.25  # m/s
    settle: int = 0  # control steps to hold once reached (e.g. while the fingers close)
    tolerance: float = 0.01  # m


@dataclass
class SimState:
    """Privileged simulator state for success checks and scripted experts (never sent to a policy).

    `gripper_command` is the last commanded DROID g; `gripper_position` the measured one (a held 5 cm cube reads ~0.4).
    `velocities` are each object's linear (m/s, world) and angular (rad/s) velocity; `held_heights` the highest its
    centre has been since reset while the gripper held it (world z, every physics step: commanded closed, both fingers
    touching it and kept apart by it; where it lay at reset if never held), the episode's memory a success check needs
    to tell a cube that was picked up from one that was pushed, or knocked into the air.
    """

    tcp: np.ndarray  # 4x4 world pose of the robot's end-effector frame
    objects: dict[str, np.ndarray]
    yaws: dict[str, float]
    goal: np.ndarray
    gripper_command: float
    gripper_position: float
    velocities: dict[str, np.ndarray]  # [6]: linear xyz, angular
    held_heights: dict[str, float]


@dataclass
class EpisodeState:
    """Per-episode randomisation: object/goal positions, colours, and the prompt naming them."""

    positions: dict[str, np.ndarray]
    yaws: dict[str, float]
    colors: dict[str, str]
    prompt: str


class Task:
    """Base class: subclasses name objects, sample an episode and judge success from object/TCP positions."""

    name: str = ""
    max_steps: int = 150
    object_names: tuple[str, ...] = ()
    # The task's definition: what `sample` draws, what `success` judges and what `expert_waypoints` plan. Raised with
    # any change to them, so a sim report records which definition judged its episodes and `--resume` refuses to pool
    # episodes judged by two (`evaluate.version_changes`). 1 is the definition before versions were recorded.
    version: int = 1
    # The prompt, as `sample` draws it: a template of the task's placeholders (`placeholders`): {color} and {object},
    # the thing to act on (reach's ball, the cube), and, where there is one apart from it, {goal_color} and {goal},
    # where it goes. `object_noun` and `goal_noun` fill {object} and {goal}; the colours are the episode's.
    prompt: str = ""
    object_noun: str = ""
    goal_noun: str = ""
    # The same instruction in other words (`worldpolicy sim --perturb prompt=paraphrase`: one drawn per episode from
    # its seed), each naming the same things by the same placeholders; never the drawn wording itself. For a policy
    # fine-tuned on `prompt`'s words, whether it follows the instruction or the words (LIBERO-PRO's and LIBERO-plus's
    # instruction perturbations)
    paraphrases: tuple[str, ...] = ()

    def placeholders(self) -> tuple[str, ...]:
        """The names a prompt template of this task may use, `{color}` and the like."""
        return ("color", "object", *(("goal_color", "goal") if self.object_names else ()))

    def prompt_fields(self, episode: EpisodeState) -> dict[str, str]:
        """Each placeholder's value in `episode`: the colours it drew, the task's nouns."""
        thing = self.object_names[0] if self.object_names else "goal"
        fields = {"color": episode.colors[thing], "object": self.object_noun}
        if self.object_names:
            fields.update(goal_color=episode.colors["goal"], goal=self.goal_noun)
        return fields

    def fill_prompt(self, template: str, episode: EpisodeState) -> str:
        """`template` (checked: `check_prompt_template`) with `episode`'s colours and the task's nouns."""
        return template.format_map(self.prompt_fields(episode))

    def wordings(self, episode: EpisodeState) -> list[str]:
        """Every wording of `episode`'s instruction, each once: its prompt as drawn first (the task's, a template's or
        a paraphrase's: `--prompt-template`, `--perturb prompt=paraphrase`), then the task's own wording and its
        paraphrases, filled for its scene (`dataset from-sim --prompt-variants all`)."""
        return list(dict.fromkeys([episode.prompt, *(self.fill_prompt(template, episode)
                                                     for template in (self.prompt, *self.paraphrases))]))

    def objects(self) -> list[ObjectSpec]:
        raise NotImplementedError

    def sample(self, rng: np.random.Generator) -> EpisodeState:
        raise NotImplementedError

    def success(self, s: SimState) -> bool:
        raise NotImplementedError

    def distance(self, s: SimState) -> float:
        """Metres left to the goal (TCP for reach, the cube's centre in xy otherwise), for per-episode metrics."""
        if not self.object_names:
            return float(np.linalg.norm(s.tcp[:3, 3] - s.goal))
        return float(np.linalg.norm(s.objects[self.object_names[0]][:2] - s.goal[:2]))

    def expert_waypoints(self, s: SimState) -> list[Waypoint]:
        """Remaining waypoints from the current state (closed loop: re-evaluated every chunk)."""
        raise NotImplementedError

    @staticmethod
    def _two_colors(rng: np.random.Generator) -> tuple[str, str]:
        names = list(COLORS)
        a, b = rng.choice(len(names), size=2, replace=False)
        return names[a], names[b]

    @staticmethod
    def _table_xy(rng: np.random.Generator, x=(0.4, 0.65), y=(-0.2, 0.2)) -> np.ndarray:
        return np.array([rng.uniform(*x), rng.uniform(*y)])


def _at_rest(s: SimState, name: str) -> bool:
    v = s.velocities[name]
    return bool(np.linalg.norm(v[:3]) <= REST_SPEED and np.linalg.norm(v[3:]) <= REST_SPIN)


def _down_yaw(yaw: float) -> float:
    """Cube yaw folded into [-pi/4, pi/4] (a square cube looks the same every 90 deg)."""
    return float((yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4)


class ReachTask(Task):
    """Bring the gripper (TCP) inside a floating target ball (3 cm radius: success is the TCP within the ball)."""

    name = "reach"
    max_steps = 60
    object_names = ()
    radius = 0.03
    X, Y = (0.35, 0.65), (-0.25, 0.25)  # the evaluated range: ball centre on the table plane, metres
    HEIGHT = (0.08, 0.35)  # and above the table
    prompt = "move the gripper to the {color} {object}"
    object_noun = "ball"
    paraphrases = ("reach the {color} ball", "touch the {color} ball with the gripper",
                   "bring the hand to the {color} sphere", "go to the {color} ball", "move to the {color} sphere")

    def __init__(self, upper_share: float = 0.0):
        """`upper_share` (for making training data): that share of balls is drawn from the upper half of the height
        range, the rest from all of it. The top of the range is where a single exterior view and a downward wrist
        camera judge height worst. 0 keeps the evaluated distribution (and its seeded episodes) unchanged."""
        if not is_real(upper_share) or not 0.0 <= upper_share <= 1.0:
            raise ValueError(f"task 'reach': upper_share={upper_share!r}; expected a number in [0, 1]")
        self.upper_share = float(upper_share)

    def objects(self) -> list[ObjectSpec]:
        return [ObjectSpec("goal", "marker", (self.radius,), COLORS["green"])]

    def sample(self, rng):
        (color, _) = self._two_colors(rng)
        xy = self._table_xy(rng, x=self.X, y=self.Y)
        low, high = self.HEIGHT
        if self.upper_share and rng.uniform() < self.upper_share:
            low = (low + high) / 2
        goal = np.array([xy[0], xy[1], TABLE_TOP + rng.uniform(low, high)])
        episode = EpisodeState({"goal": goal}, {}, {"goal": color}, "")
        episode.prompt = self.fill_prompt(self.prompt, episode)
        return episode

    def success(self, s):
        return bool(np.linalg.norm(s.tcp[:3, 3] - s.goal) <= self.radius)

    def expert_waypoints(self, s):
        return [Waypoint(s.goal.copy(), 0.0, 0.0, tolerance=0.005)]


class PushTask(Task):
    """Push the cube onto the goal disc: success is its centre within 4 cm of the disc's, on the table, and at rest.

    At rest (`REST_SPEED`, `REST_SPIN`): without it a cube pushed across the disc succeeded at the one step its centre
    passed over it, wherever it stopped. ManiSkill's PushCube checks the region alone; its placing tasks (StackCube)
    also require the object static, and that is what a reported push rate should mean: the cube stays there.
    """

    name = "push"
    max_steps = 150
    object_names = ("cube",)
    radius = 0.04
    # 2: the cube at rest on the disc; the expert descends diagonally and re-plans without climbing back
    # 3: the expert's tolerances are the TCP's reach, not its plan's (it climbed back up every chunk under action noise)
    version = 3
    prompt = "push the {color} {object} onto the {goal_color} {goal}"
    object_noun, goal_noun = "cube", "circle"
    paraphrases = ("slide the {color} cube onto the {goal_color} circle",
                   "move the {color} block onto the {goal_color} disc",
                   "shove the {color} cube over to the {goal_color} circle",
                   "push the {color} block until it rests on the {goal_color} circle")

    def objects(self):
        return [ObjectSpec("cube", "box", (CUBE_HALF,) * 3, mass=0.1), ObjectSpec("goal", "pad", (0.045, 0.001))]

    def sample(self, rng):
        cube_color, goal_color = self._two_colors(rng)
        while True:
            # Not closer than 0.45 m to the base: pushing low right in front of it folds the arm onto its limits.
            cube, goal = self._table_xy(rng, x=(0.45, 0.62), y=(-0.18, 0.18)), self._table_xy(rng, x=(0.45, 0.62), y=(-0.18, 0.18))
            if 0.12 <= np.linalg.norm(goal - cube) <= 0.25:
                break
        episode = EpisodeState(
            {"cube": np.array([*cube, TABLE_TOP + CUBE_HALF]), "goal": np.array([*goal, TABLE_TOP + 0.001])},
            {"cube": float(rng.uniform(-np.pi / 4, np.pi / 4))},
            {"cube": cube_color, "goal": goal_color},
            "",
        )
        episode.prompt = self.fill_prompt(self.prompt, episode)
        return episode

    def success(self, s):
        cube = s.objects["cube"]
        on_disc = np.linalg.norm(cube[:2] - s.goal[:2]) <= self.radius and cube[2] < TABLE_TOP + 2 * CUBE_HALF
        return bool(on_disc and _at_rest(s, "cube"))

    def expert_waypoints(self, s):
        cube, goal, tcp = s.objects["cube"], s.goal, s.tcp[:3, 3]
        to_goal = goal[:2] - cube[:2]
        dist = np.linalg.norm(to_goal)
        if dist < 0.015:
            return [Waypoint(np.array([*tcp[:2], HOVER_Z]), 0.0, 1.0)]
        d = to_goal / dist
        yaw = float((np.arctan2(d[1], d[0]) + np.pi / 2) % np.pi - np.pi / 2)  # the paddle is symmetric
        low = TABLE_TOP + 0.025  # fingertips ~1.6 cm above the table, pushing the cube below its centre of mass
        behind = cube[:2] - d * (CUBE_HALF + 0.03)
        # Where the TCP stands relative to the cube along / across the push line.
        rel = tcp[:2] - cube[:2]
        along, across = float(rel @ d), float(rel @ np.array([-d[1], d[0]]))
        # Tolerances of the TCP's reach, not of its plan: under --action-noise 0.02 (TCP 12 mm off at the median, 13 mm
        # in height) tighter ones (12 mm across, 15 mm up, 10 mm from `behind`) sent the expert back up to 8 cm
        # every chunk. The closed fingers and the hand span the push line, so 2 cm across still pushes square.
        in_position = along < -CUBE_HALF and abs(across) < 0.02 and tcp[2] < low + 0.02
        push_end = goal[:2] - d * (CUBE_HALF + 0.012)
        push = Waypoint(np.array([*push_end, low]), yaw, 1.0, speed=0.1, tolerance=0.004)
        if in_position:
            return [push]
        descend = Waypoint(np.array([*behind, low]), yaw, 1.0, speed=0.15, tolerance=0.005)
        if np.linalg.norm(tcp[:2] - behind) < 0.02 and tcp[2] < TABLE_TOP + 0.09:  # already descending behind it
            return [descend, push]  # (planning the 8 cm point again sent chunks of 4 back up, over and over)
        # straight to 8 cm behind the cube (a diagonal descent from the start pose, clear of the 5 cm cube)
        return [Waypoint(np.array([*behind, TABLE_TOP + 0.08]), yaw, 1.0, tolerance=0.01), descend, push]


class PickPlaceTask(Task):
    """Pick the cube up and place it on the goal pad.

    Success: the cube was picked (held in the gripper `LIFT_CLEARANCE` clear of the table at some point of the
    episode) and now lies on the pad (centre within 3 cm of the pad's, resting on the table), released (gripper
    commanded open) and at rest. robosuite (a bin), LIBERO (a plate) and ManiSkill (PickCube's goal in the air) put the
    target where a push cannot reach, so there "placed" implies "picked". This pad is flat and 1 mm thick: checking the
    end state alone counted a cube slid onto it, so the episode's highest held cube point (`SimState.held_heights`) is
    checked too; held (both fingers on it, the test ManiSkill's `is_grasping` makes with contact forces), so a cube
    knocked into the air that lands on the pad is no pick. Released and at rest follow ManiSkill's StackCube (placed,
    static, not grasped): the cube stays put without the hand.
    """

    name = "pick_place"
    max_steps = 200
    object_names = ("cube",)
    radius = 0.03
    # 2: the cube picked (lifted LIFT_CLEARANCE at some step) and at rest on the pad; 3: picked means lifted while held;
    # 4: the expert descends onto the cube and the pad from within 15 mm (it climbed back every chunk under action
    # noise) and puts the cube, not the TCP, over the pad
    version = 4
    prompt = "put the {color} {object} on the {goal_color} {goal}"
    object_noun, goal_noun = "cube", "pad"
    paraphrases = ("pick up the {color} cube and place it on the {goal_color} pad",
                   "place the {color} block on the {goal_color} pad",
                   "lift the {color} cube and set it down on the {goal_color} pad",
                   "put the {color} block onto the {goal_color} mat")

    def objects(self):
        return [ObjectSpec("cube", "box", (CUBE_HALF,) * 3, mass=0.05), ObjectSpec("goal", "pad", (0.05, 0.001))]

    def sample(self, rng):
        cube_color, goal_color = self._two_colors(rng)
        while True:
            cube, goal = self._table_xy(rng), self._table_xy(rng)
            if np.linalg.norm(goal - cube) >= 0.15:
                break
        episode = EpisodeState(
            {"cube": np.array([*cube, TABLE_TOP + CUBE_HALF]), "goal": np.array([*goal, TABLE_TOP + 0.001])},
            {"cube": float(rng.uniform(-np.pi / 4, np.pi / 4))},
            {"cube": cube_color, "goal": goal_color},
            "",
        )
        episode.prompt = self.fill_prompt(self.prompt, episode)
        return episode

    def success(self, s):
        cube = s.objects["cube"]
        picked = s.held_heights["cube"] >= TABLE_TOP + CUBE_HALF + LIFT_CLEARANCE
        return bool(
            picked
            and np.linalg.norm(cube[:2] - s.goal[:2]) <= self.radius
            and cube[2] < TABLE_TOP + CUBE_HALF + 0.01
            and s.gripper_command < 0.5
            and _at_rest(s, "cube")
        )

    def expert_waypoints(self, s):
        cube, goal, tcp, gripper = s.objects["cube"], s.goal, s.tcp[:3, 3], s.gripper_command
        yaw = _down_yaw(s.yaws["cube"])
        grasp_z = TABLE_TOP + CUBE_HALF + 0.002
        lift, place = self._lift_place(cube, goal, yaw, grasp_z)
        near = np.linalg.norm(cube - tcp) < 0.02
        if gripper > 0.5 and near and s.gripper_position < 0.3:  # fingers still closing on the cube
            return [Waypoint(tcp.copy(), yaw, 1.0, settle=3), lift] + place
        held = gripper > 0.5 and near
        on_goal = np.linalg.norm(cube[:2] - goal[:2]) <= self.radius * 0.6 and cube[2] < TABLE_TOP + CUBE_HALF + 0.01
        if on_goal and not held:
            return [Waypoint(tcp.copy(), yaw, 0.0, settle=3), Waypoint(np.array([*tcp[:2], HOVER_Z]), yaw, 0.0)]
        if held:
            # the cube over the pad, not the TCP: a cube held 11 mm off the fingers' centre was put down 11 mm off
            _, place = self._lift_place(cube, np.array([*(goal[:2] + tcp[:2] - cube[:2]), goal[2]]), yaw, grasp_z)
            if np.linalg.norm(cube[:2] - goal[:2]) < 0.015:  # over the pad: keep descending, re-centring on the way
                return place[1:]  # (within 8 mm, and noise sent it back up to the hover height every chunk)
            return place if tcp[2] > HOVER_Z - 0.03 else [lift] + place
        # over the cube within the fingers' margin (8 cm open on a 5 cm cube): descend from here, re-centring on the
        # way down. Re-planning the approach from a TCP 6 mm or more off climbed back to 10 cm every chunk: under
        # --action-noise 0.02 (12 mm median TCP offset) the expert hovered over the cube until the episode ended
        above = np.linalg.norm(tcp[:2] - cube[:2]) < 0.015 and gripper < 0.5
        approach = [] if above else [
            Waypoint(np.array([*tcp[:2], max(tcp[2], TABLE_TOP + 0.1)]), yaw, 0.0, tolerance=0.02),
            Waypoint(np.array([*cube[:2], TABLE_TOP + 0.1]), yaw, 0.0, tolerance=0.004),
        ]
        return approach + [
            Waypoint(np.array([*cube[:2], grasp_z]), yaw, 0.0, speed=0.15, tolerance=0.004, settle=2),
            Waypoint(np.array([*cube[:2], grasp_z]), yaw, 1.0, settle=6),
            lift,
        ] + place

    @staticmethod
    def _lift_place(cube, goal, yaw, grasp_z):
        lift = Waypoint(np.array([*cube[:2], HOVER_Z]), yaw, 1.0, tolerance=0.02)
        place = [
            Waypoint(np.array([*goal[:2], HOVER_Z]), yaw, 1.0, tolerance=0.006),
            Waypoint(np.array([*goal[:2], grasp_z + 0.008]), yaw, 1.0, speed=0.15, tolerance=0.005),
            Waypoint(np.array([*goal[:2], grasp_z + 0.008]), yaw, 0.0, settle=4),
            Waypoint(np.array([*goal[:2], HOVER_Z]), yaw, 0.0),
        ]
        return lift, place


TASKS: dict[str, type[Task]] = {t.name: t for t in (ReachTask, PushTask, PickPlaceTask)}


def list_tasks() -> list[str]:
    return list(TASKS)


def get_task(name: str | Task, **options: Any) -> Task:
    """A task by name; `options` go to its constructor (e.g. reach's `upper_share`)."""
    if isinstance(name, Task):
        if options:
            raise ValueError(f"task: options {sorted(options)} given with a task instance; pass the task's name")
        return name
    if name not in TASKS:
        raise KeyError(f"task: unknown name {name!r}; known tasks: {list_tasks()}")
    accepted = [p for p in inspect.signature(TASKS[name]).parameters]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"task {name!r}: unknown option(s) {unknown}; accepted: {accepted or 'none'}")
    return TASKS[name](**options)


def check_prompt_template(task: str | Task, template: Any, name: str = "prompt_template") -> str:
    """`template`, a prompt in the user's own words for `task`'s episodes (`worldpolicy sim --prompt-template "move to
    the {color} {object}"`), checked without MuJoCo: text, its placeholders the task's (`Task.placeholders`), each
    bare (no `{color!r}`, `{color:>8}`, `{}`), and every prompt it makes within the observation space's
    characters and length. A bad one raises ValueError naming `name`, what was given and what is accepted."""
    task = get_task(task)
    accepted = ", ".join(f"{{{p}}}" for p in task.placeholders())
    said = f"{name}: {template!r}"
    if not isinstance(template, str) or not template.strip():
        raise ValueError(f"{said}: expected the prompt's words, with any of the placeholders task {task.name!r} "
                         f"fills: {accepted} (e.g. {task.prompt!r})")
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:  # a lone { or }
        raise ValueError(f"{said}: {exc} (write a brace as {{{{ or }}}}? a prompt has none); placeholders of task "
                         f"{task.name!r}: {accepted}") from None
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in task.placeholders():
            what = "a placeholder {} names nothing" if not field else f"unknown placeholder {{{field}}}"
            raise ValueError(f"{said}: {what}; task {task.name!r} fills {accepted}")
        if spec or conversion:
            raise ValueError(f"{said}: {{{field}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}"
                             f" formats its placeholder; give it bare: {{{field}}}")
    literal = "".join(text for text, *_ in parts)
    bad = sorted(set(literal) - set(PROMPT_CHARACTERS))
    if bad:
        raise ValueError(f"{said}: character(s) {''.join(bad)!r} outside a prompt's alphabet: letters, digits and "
                         f"{PROMPT_PUNCTUATION!r}, as the env's observation space says")
    longest = {"color": max(COLORS, key=len), "goal_color": max(COLORS, key=len), "object": task.object_noun,
               "goal": task.goal_noun}
    if len(template.format_map(longest)) > PROMPT_MAX_LENGTH:
        raise ValueError(f"{said}: its prompts run to {len(template.format_map(longest))} characters; at most "
                         f"{PROMPT_MAX_LENGTH}, as the env's observation space says")
    return template
