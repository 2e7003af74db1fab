"""Controlled distribution shifts on top of each episode's scene, for robustness evaluation
(`worldpolicy sim --perturb`).

A policy is evaluated on the scenes it was trained for and then under one shift at a time (the exterior cameras moved,
the lights dimmed, the table recoloured, distractor boxes added, the instruction reworded) on the same seeds, so
`worldpolicy sim compare` pairs the runs scene by scene. A shift changes what the cameras see, for distractors what
stands on the table, and for the prompt its words (the same objects and colours named: one of the task's
`Task.paraphrases`); never the task's objects, goal, success check or the arm. What is drawn per episode (camera
offsets, a random table colour, distractor poses and colours, the paraphrase) comes from the episode's seed, after the
scene's own draws: two runs with the same seed share the scene and the shift, and a clean run draws exactly the scenes
it drew before shifts existed.

`PERTURBATIONS` is the one table of them: name, unit, accepted values, default. Parsing needs no MuJoCo, so a bad
`--perturb` is refused before anything loads; `Perturber` applies a parsed `Perturbation` to a built scene.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

from worldpolicy.sim.scenes import CAMERAS, TABLE_CENTER, TABLE_HALF, TABLE_TOP, ObjectSpec
from worldpolicy.sim.tasks import COLORS, EpisodeState, Task, check_prompt_template

if TYPE_CHECKING:
    import mujoco

__all__ = ["DISTRACTOR_PREFIX", "PERTURBATIONS", "Knob", "Perturbation", "Perturber", "check_rewording", "footprints",
           "parse_perturbations", "perturbation_help"]


@dataclass(frozen=True)
class Knob:
    """One kind of shift: its name in a spec (`camera=0.03`), the unit of its value, the values accepted (a number in
    [low, high], whole for `integer`, or one of `words`), the value `name` alone gives, and what it does."""

    name: str
    unit: str
    default: float | int | str
    means: str
    low: float | None = None
    high: float | None = None
    integer: bool = False
    words: tuple[str, ...] = ()

    def accepted(self) -> str:
        """The values accepted, as errors and the docs say them."""
        if self.words:
            return " | ".join(self.words)
        kind = "a whole number" if self.integer else "a number"
        return f"{kind} of {self.low:g} to {self.high:g}{' ' + self.unit if self.unit else ''}"

    def parse(self, text: str) -> float | int | str:
        if self.words:
            if text in self.words:
                return text
            raise ValueError(self.accepted())
        try:
            value = float(text)
        except ValueError:
            raise ValueError(self.accepted()) from None
        if not np.isfinite(value) or not self.low <= value <= self.high or (self.integer and value != int(value)):
            raise ValueError(self.accepted())
        return int(value) if self.integer else value


# Each exterior camera is also turned by this much per metre it moves (3 cm: 3 deg), about a random axis: a camera
# knocked on its mount moves and tilts together. The wrist camera rides on the hand and is left alone.
CAMERA_TURN_DEG_PER_M = 100.0
MAX_DISTRACTORS = 4
# Distractor boxes' half sizes (m), one per distractor: a cube, a flat bar, a tall block, a low slab
DISTRACTOR_SIZES = ((0.02, 0.02, 0.02), (0.035, 0.015, 0.015), (0.015, 0.015, 0.04), (0.03, 0.03, 0.01))
DISTRACTOR_PREFIX = "distractor_"
# Clear of the task's objects and goal (in xy, beyond both footprints) and of each other at reset, m
DISTRACTOR_CLEARANCE = 0.05
# Where distractors stand: on the table, in front of the base (it stands at x = 0), within the cameras' view
DISTRACTOR_X, DISTRACTOR_Y = (0.3, 0.75), (-0.35, 0.35)
# A random table colour is at least this far (RGB distance, each channel 0-1) from every colour the task names, so the
# table never hides the target (a red ball on a red-ish table); redrawn from the same stream until so
TABLE_COLOR_CLEARANCE = 0.3

PERTURBATIONS: dict[str, Knob] = {k.name: k for k in (
    Knob("camera", "m", 0.03, "each exterior camera moved this far in a random direction and turned by "
         f"{CAMERA_TURN_DEG_PER_M / 100:g} deg per cm about a random axis, drawn per episode",
         low=0.001, high=0.1),
    Knob("light", "", 0.5, "every light's intensity, the key light's and the headlight's, scaled by this factor",
         low=0.1, high=3.0),
    Knob("table", "", "random", "the table top's colour: a named one, or random, drawn per episode clear of the "
         "colours the task names",
         words=("random", *COLORS)),
    Knob("distractors", "boxes", 2, "that many loose boxes on the table, in colours the prompt does not name, clear "
         "of the task's objects and goal at reset, drawn per episode", low=1, high=MAX_DISTRACTORS, integer=True),
    # last: each kind draws from its stream by its place here (`Perturber.apply`), the others' kept as they were
    Knob("prompt", "", "paraphrase", "the instruction in other words naming the same objects and colours, one of "
         "the task's paraphrases drawn per episode (`--prompt-template` gives your own)", words=("paraphrase",)),
)}


def perturbation_help() -> str:
    """Each perturbation's name, accepted values and default, as `--perturb`'s help and errors list them."""
    return "; ".join(f"{k.name}=<{k.accepted()}> (alone: {k.default})" for k in PERTURBATIONS.values())


@dataclass(frozen=True)
class Perturbation:
    """The shifts of a run, each None where not applied. `spec` is its canonical text (the table's order), which a
    report records and `--perturb` takes back; "" is no shift."""

    camera: float | None = None
    light: float | None = None
    table: str | None = None
    distractors: int | None = None
    prompt: str | None = None

    def __post_init__(self) -> None:
        """One made in Python is held to the table's ranges too, as a parsed spec is, and its values to the table's
        types (`distractors=2.0` is 2; a NumPy number, `np.float64(0.5)`, is its value: str, not repr, says it)."""
        for name, value in self._given().items():
            try:
                text = value if isinstance(value, str) else str(value)
                object.__setattr__(self, name, PERTURBATIONS[name].parse(text))
            except ValueError as exc:
                raise ValueError(f"perturb: {name}={value!r}: {name} takes {exc}") from None

    def _given(self) -> dict[str, float | int | str]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @property
    def spec(self) -> str:
        return ",".join(f"{k}={v if isinstance(v, str) else format(v, 'g')}" for k, v in self._given().items())

    def __bool__(self) -> bool:
        return bool(self.spec)

    def objects(self) -> list[ObjectSpec]:
        """The distractor boxes a scene is built with (loose, colliding bodies: `scenes.build_scene`'s "box")."""
        return [ObjectSpec(f"{DISTRACTOR_PREFIX}{i}", "box", DISTRACTOR_SIZES[i], mass=0.05)
                for i in range(self.distractors or 0)]


def parse_perturbations(specs: str | Iterable[str] | Perturbation | None, name: str = "perturb") -> Perturbation:
    """A `Perturbation` from specs such as "camera=0.03", "light=0.5,table=random" or ["camera", "distractors=3"]
    (a name alone takes its default); None, [] or "none" is none (beside a shift it is refused: which was meant?).
    An empty part ("", "light=0.5,,camera") is refused, not skipped: a shift may have been lost from it. A bad one
    raises ValueError naming `name` (the parameter or flag), what was given and what is accepted."""
    if isinstance(specs, Perturbation):
        return specs
    if specs is None:
        return Perturbation()
    # a mapping is refused, not read as its keys ({"light": 0.9} would run light's default, 0.5); a number too
    listed = isinstance(specs, Iterable) and not isinstance(specs, (str, Mapping))
    items = [specs] if isinstance(specs, str) else list(specs) if listed else None
    if items is None or not all(isinstance(item, str) for item in items):
        raise ValueError(f"{name}: expected text like 'camera=0.03' (or a list of such, or a Perturbation), got "
                         f"{specs!r}; accepted: {perturbation_help()}")
    values: dict[str, float | int | str] = {}
    given: dict[str, str] = {}  # each key's part as typed, for the errors
    parts: list[str] = []
    for item in items:
        parts += [p.strip() for p in item.split(",")]
        if "" in parts:
            raise ValueError(f"{name}: {item!r} has an empty part; give shifts separated by single commas ('none' "
                             f"for no shift); accepted: {perturbation_help()}")
    for part in parts:
        if part == "none":
            continue
        key, eq, text = (s.strip() for s in part.partition("="))
        knob = PERTURBATIONS.get(key)
        if knob is None:
            raise ValueError(f"{name}: unknown perturbation {key!r} in {part!r}; accepted: {perturbation_help()}")
        if key in values:
            raise ValueError(f"{name}: {key} given twice ({given[key]!r} and {part!r}); give each perturbation once")
        try:
            values[key] = knob.parse(text) if eq else knob.default
        except ValueError as exc:
            raise ValueError(f"{name}: {part!r}: {key} takes {exc}; it means {knob.means}") from None
        given[key] = part
    if values and "none" in parts:  # "none" beside a shift: which was meant cannot be told
        raise ValueError(f"{name}: 'none' given with {', '.join(given.values())}; 'none' means no shift: give it "
                         "alone, or drop it to apply the others")
    return Perturbation(**values)


def check_rewording(perturbation: Perturbation, template: str | None, task: str | Task,
                    names: tuple[str, str] = ("prompt_template", "perturb")) -> str | None:
    """`template` (the user's own wording of the prompt, None: the task's) checked for `task`
    (`tasks.check_prompt_template`) and against `perturbation`: with `prompt=paraphrase` both reword the prompt, and
    which was meant cannot be told. `names`: the parameters (or flags) of the template and the perturbation, as the
    error names them."""
    if template is None:
        return None
    if perturbation.prompt is not None:
        raise ValueError(f"{names[0]}: {template!r} given with {names[1]} prompt={perturbation.prompt}: both reword "
                         f"the prompt; give one of them")
    return check_prompt_template(task, template, names[0])


class Perturber:
    """A `Perturbation` applied to a built scene (`model`, with `perturbation.objects()` among its bodies) and its
    episode at every reset. It keeps the scene's own camera poses, lights and table colour and sets them again each
    episode, so shifts never accumulate. `task`: the scene's, whose objects' footprints distractors keep clear of and
    whose paraphrases reword the prompt."""

    def __init__(self, model: mujoco.MjModel, perturbation: Perturbation, task: Task) -> None:
        import mujoco

        if perturbation.prompt is not None and not task.paraphrases:
            raise ValueError(f"perturb: prompt={perturbation.prompt}: task {task.name!r} has no paraphrases "
                             "(`Task.paraphrases`) to reword its prompt with")
        self.perturbation = perturbation
        self._task = task
        self._footprints = footprints(task.objects())
        self._cameras = [model.camera(CAMERAS[key]).id for key in CAMERAS if "exterior" in key]
        self._cam_pos = model.cam_pos[self._cameras].copy()
        self._cam_quat = model.cam_quat[self._cameras].copy()
        self._light = {a: getattr(model, a).copy() for a in ("light_ambient", "light_diffuse", "light_specular")}
        self._headlight = {a: np.array(getattr(model.vis.headlight, a)) for a in ("ambient", "diffuse", "specular")}
        self._table = model.geom("table").id
        self._table_rgba = model.geom_rgba[self._table].copy()
        self._distractors = [(spec, model.geom(spec.name).id, model.jnt_qposadr[model.joint(f"{spec.name}_joint").id])
                             for spec in perturbation.objects()]
        self._mju = mujoco

    def apply(self, model: mujoco.MjModel, data: mujoco.MjData, seed: int, episode: EpisodeState) -> None:
        """This episode's shift: each kind draws from its own stream of `seed` (so adding a kind leaves the others'
        draws as they were)."""
        p = self.perturbation
        rng = {name: np.random.default_rng([seed, i]) for i, name in enumerate(PERTURBATIONS)}
        model.cam_pos[self._cameras] = self._cam_pos
        model.cam_quat[self._cameras] = self._cam_quat
        if p.camera is not None:
            for row, cam in enumerate(self._cameras):
                model.cam_pos[cam] = self._cam_pos[row] + p.camera * _unit(rng["camera"])
                turn = np.empty(4)
                self._mju.mju_axisAngle2Quat(turn, _unit(rng["camera"]), np.radians(CAMERA_TURN_DEG_PER_M * p.camera))
                self._mju.mju_mulQuat(model.cam_quat[cam], self._cam_quat[row], turn)  # turned in its own frame
        scale = 1.0 if p.light is None else p.light
        for attr, base in self._light.items():
            getattr(model, attr)[:] = base * scale
        for attr, base in self._headlight.items():
            setattr(model.vis.headlight, attr, base * scale)
        model.geom_rgba[self._table] = self._table_rgba
        if p.table == "random":
            model.geom_rgba[self._table, :3] = _table_color(rng["table"], episode)
        elif p.table is not None:
            model.geom_rgba[self._table] = COLORS[p.table]
        if self._distractors:
            self._place_distractors(model, data, rng["distractors"], episode)
        if p.prompt == "paraphrase":
            paraphrases = self._task.paraphrases
            episode.prompt = self._task.fill_prompt(paraphrases[rng["prompt"].integers(len(paraphrases))], episode)

    def _place_distractors(self, model, data, rng: np.random.Generator, episode: EpisodeState) -> None:
        """Each box at a random pose on the table clear of the task's objects, goal and the boxes placed before it, in
        a colour the episode's prompt does not name."""
        taken = [(np.asarray(pos[:2]), self._footprints.get(name, 0.0)) for name, pos in episode.positions.items()]
        colors = [c for c in COLORS if c not in set(episode.colors.values())]
        for spec, geom, qadr in self._distractors:
            radius = float(np.hypot(*spec.size[:2]))
            for _ in range(1000):
                xy = np.array([rng.uniform(*DISTRACTOR_X), rng.uniform(*DISTRACTOR_Y)])
                inside = np.all(np.abs(xy - TABLE_CENTER) <= np.array(TABLE_HALF) - radius)
                if inside and all(np.linalg.norm(xy - c) > r + radius + DISTRACTOR_CLEARANCE for c, r in taken):
                    break
            else:
                raise RuntimeError(f"{spec.name}: no free spot on the table after 1000 draws")
            taken.append((xy, radius))
            yaw = rng.uniform(-np.pi, np.pi)
            data.qpos[qadr:qadr + 3] = [*xy, TABLE_TOP + spec.size[2]]
            data.qpos[qadr + 3:qadr + 7] = [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
            model.geom_rgba[geom] = COLORS[colors[rng.integers(len(colors))]]


def _table_color(rng: np.random.Generator, episode: EpisodeState) -> np.ndarray:
    """A random table colour `TABLE_COLOR_CLEARANCE` or more from each colour the episode names: a shift of the
    background, not one that hides the object the prompt asks for."""
    named = [np.asarray(COLORS[c][:3]) for c in set(episode.colors.values())]
    for _ in range(1000):
        rgb = rng.uniform(0.1, 0.9, 3)
        if all(np.linalg.norm(rgb - c) >= TABLE_COLOR_CLEARANCE for c in named):
            return rgb
    raise RuntimeError(f"no table colour clear of {sorted(set(episode.colors.values()))} after 1000 draws")


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def footprints(objects: Sequence[ObjectSpec]) -> dict[str, float]:
    """Each task object's radius in xy (a box's half diagonal, a marker's or pad's radius)."""
    return {o.name: float(np.hypot(*o.size[:2])) if o.kind == "box" else float(o.size[0]) for o in objects}
