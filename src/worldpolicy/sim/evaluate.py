"""Evaluation: N seeded episodes → success rate with a Wilson 95% interval, per-episode metrics, report files.

Episode i uses seed `seed + i` for the scene (object poses, colours, prompt) and for the policy's sampling, so two
backends serving the same checkpoint see identical episodes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np

from worldpolicy.errors import is_integer
from worldpolicy.extras import software_versions
from worldpolicy.fileio import (
    SIM_EPISODES_CSV,
    SIM_EPISODES_FILE,
    SIM_EPISODES_SCHEMA,
    SIM_REPORT_FIGURE,
    SIM_REPORT_FILE,
    SIM_REPORT_MARKDOWN,
    SIM_REPORT_SCHEMA,
    flat_settings,
    schema_matches,
    sim_episode_name,
    write_bytes_atomic,
    write_csv_atomic,
)
from worldpolicy.robot.control import ChunkStrategy

# the training-scene rule lives with EVAL_SEED, without MuJoCo, so `dataset eval` applies it too (`data.openloop`);
# `tasks.training_scenes` by its module: `evaluate`'s parameter of that name takes what a caller worked out with it
from worldpolicy.sim import tasks
from worldpolicy.sim.policies import (
    SERVER_ANNOUNCED,
    chunk_size,
    policy_fps,
    policy_settings,
    served_metadata,
    warn_rate_mismatch,
)
from worldpolicy.sim.rollout import STORED_FIELDS, EpisodeResult, EpisodeWatch, Rollout, latency_ticks, measured
from worldpolicy.sim.tasks import BUILTIN_POLICIES, EVAL_SEED, TrainingScenes, seed_span

__all__ = ["EPISODE_COLUMNS", "EpisodeLog", "EpisodeTimes", "EvalReport", "ReportKeeper", "episodes_left", "evaluate",
           "keep_report", "policy_label", "read_report", "report_figure", "resume_conflicts",
           "seed_range", "start_report", "version_changes", "wilson_interval", "write_report"]

logger = logging.getLogger(__name__)

SCHEMA = SIM_REPORT_SCHEMA
# What a report that recorded no version ran: the definitions before versions were recorded
UNRECORDED_VERSION = 1
# What a report that recorded no latency ran with: none (a reply on the step that asked), before --latency existed
NO_LATENCY = {"ms": 0.0, "ticks": 0}


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (sane at 0 % and 100 %, unlike the normal approximation)."""
    if n <= 0:
        raise ValueError(f"n: expected at least one episode, got {n}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # it holds p exactly: float rounding left 6/6's upper end at 1 - 1e-16 and 0/11's lower at 3e-17, which a plot's
    # error bar (p - lo, hi - p) took as a negative length and refused
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


# The `worldpolicy sim` flag that sets each setting a resume compares and `sim compare` lists (`EvalReport.settings`);
# the other policy settings come with the policy (its chunk, dtype...) and are named as the policy's
SETTING_FLAGS = {
    "task": "--task", "policy": "--policy", "robot": "--robot", "embodiment": "--embodiment",
    "control_hz": "--control-hz", "max_steps": "--max-steps", "seed": "--seed", "perturb": "--perturb",
    "prompt_template": "--prompt-template",
    "paraphrases": "--perturb prompt=paraphrase's wordings (the installed worldpolicy's Task.paraphrases)",
    "strategy.kind": "--strategy",
    "strategy.execute_steps": "--execute-steps", "strategy.execute_steps_requested": "--execute-steps",
    "strategy.ensemble_decay": "--ensemble-decay", "latency.ms": "--latency", "latency.ticks": "--latency",
    "rtc": "--rtc",
    "policy_settings.kind": "--policy", "policy_settings.path": "--policy", "policy_settings.model": "--policy",
    "policy_settings.files": "--policy's files (names, sizes, content)",
    "policy_settings.sampling.steps": "--steps", "policy_settings.device": "--device",
    "policy_settings.decode_video": "--imagine", "policy_settings.image_size": "--image-size",
    "policy_settings.center_crop": "--no-center-crop",
    "policy_settings.planner": "--plan", "policy_settings.candidates": "--plan",
    "policy_settings.scorer": "--plan-scorer",
}


def flag_of(setting: str, kind: str | None) -> str:
    """The flag to pass for `setting`; what a server announces (`SERVER_ANNOUNCED`: its sampling, not this run's
    `--steps`) is the server's, set where it is served."""
    group, _, rest = setting.partition(".")
    if kind == "server" and group == "policy_settings" and rest.split(".")[0] in SERVER_ANNOUNCED:
        return setting.replace("policy_settings.", "the server's ", 1)
    return SETTING_FLAGS.get(setting, setting.replace("policy_settings.", "--policy's ", 1))


@dataclass
class EvalReport:
    task: str
    policy: str
    robot: str
    strategy: dict[str, Any]
    control_hz: float
    seed: int
    episodes: list[EpisodeResult] = field(default_factory=list)
    requested: int = 0  # episodes asked for; more than len(episodes) in a report written while it runs
    actual_control_hz: float | None = None  # whole physics steps per control period (15 Hz runs at 15.15 Hz)
    max_steps: int | None = None
    embodiment: str | None = None  # the action space the policy's chunks were decoded in
    policy_fps: float | None = None  # the rate the policy's actions are meant to run at (compare control_hz)
    # what else shapes the actions (`policies.policy_settings`: checkpoint files, sampling, device, camera size...);
    # None in a report written before it was recorded
    policy_settings: dict[str, Any] | None = None
    task_version: int | None = None  # the task definition that judged the episodes (`Task.version`); None: unrecorded
    # whether the episodes' scenes are ones the checkpoint was trained on, where its training data says; None: not
    # known (not a checkpoint folder, one whose training data does not say, or a report written before it was recorded)
    training_scenes: TrainingScenes | None = None
    # the shifts applied on top of every scene (`sim.perturb.Perturbation.spec`, e.g. "camera=0.03,light=0.5"); None:
    # the scenes as drawn (a report written before shifts existed ran none)
    perturb: str | None = None
    # every episode's prompt in the user's words (`worldpolicy sim --prompt-template`, `TabletopEnv(prompt_template=)`),
    # the task's placeholders filled per episode; None: the task's own wording (or reworded by `perturb`'s prompt=)
    prompt_template: str | None = None
    # the wordings `perturb`'s prompt=paraphrase drew from (`Task.paraphrases` as the installed worldpolicy has them):
    # edited, the same seeds are told other words, so a resume compares them (`resume_conflicts`); None: none drawn,
    # or a report written before they were recorded, which a resume continues
    paraphrases: list[str] | None = None
    # how long each request was taken to think (`worldpolicy sim --latency`): the milliseconds asked for and the whole
    # control steps they ran as (`rollout.latency_ticks`); `NO_LATENCY` in a report written before it was recorded
    latency: dict[str, Any] = field(default_factory=lambda: dict(NO_LATENCY))
    # real-time chunking (`worldpolicy sim --rtc`): async's requests conditioned on the running chunk's actions; False
    # in a report written before it was recorded, which ran without
    rtc: bool = False
    # episodes in flight at once (`worldpolicy sim --num-envs`) in the run that wrote the report (a resumed run's own:
    # its stored episodes may have run with another): no setting of the results (`settings`), which a batched run
    # shares with a sequential one; None in a report written before it was recorded
    num_envs: int | None = 1
    # what the session that last wrote the report ran on (`extras.software_versions`: worldpolicy, Python, torch,
    # diffusers...); None in a report written before it was recorded
    software: dict[str, str | None] | None = None
    # the `worldpolicy sim` command line that began the run (its --out another folder: the same episodes again; with
    # --resume: the run continued); None for a run from Python
    command: str | None = None
    # the folder `command` was typed in (`extras.run_record`): its relative paths are relative to it; None without one
    cwd: str | None = None
    # each `worldpolicy sim --resume` that added episodes, oldest first: {"command": its line, "cwd": its folder}
    resumed_by: list[dict[str, str | None]] = field(default_factory=list)

    @property
    def successes(self) -> int:
        return sum(e.success for e in self.episodes)

    @property
    def success_rate(self) -> float:
        return self.successes / len(self.episodes)

    def __repr__(self) -> str:
        """One line: what ran and how it did. The dataclass's own repr spelled out every episode and the policy's
        settings, a screenful per episode in a notebook; `to_json()` and `episodes` hold them, `markdown()` tabulates
        them (a notebook shows that: `_repr_markdown_`)."""
        n = len(self.episodes)
        done = f"success {self.successes}/{n}" if n else "no episodes"
        if n:
            lo, hi = wilson_interval(self.successes, n)
            done += f" = {100 * self.success_rate:.1f} % (95 % CI {100 * lo:.1f}-{100 * hi:.1f} %)"
        if self.requested > n:
            done += f", incomplete: {n} of {self.requested} ran"
        return (f"EvalReport(task={self.task!r}, policy={self.policy!r}, {done}, "
                f"{seed_range(self.seed, max(n, self.requested, 1))}, strategy={self.strategy.get('kind')!r})")

    def _repr_markdown_(self) -> str | None:
        """What a notebook shows for a report: its report.md (None, the one line, for a report of no episodes yet,
        which has no success rate to tabulate)."""
        return self.markdown() if self.episodes else None

    def to_json(self) -> dict[str, Any]:
        """report.json: the run's settings, its success rate, its episodes (`EpisodeResult.to_json`) and their means,
        taken over the episodes as written and kept to what they mean (`rollout.measured`), so a resumed run's, whose
        stored episodes were read back rounded, are the uninterrupted run's."""
        lo, hi = wilson_interval(self.successes, len(self.episodes))
        episodes = [e.to_json() for e in self.episodes]
        steps = [e["success_step"] for e in episodes if e["success"]]
        ik = [e["ik_mean_mm"] for e in episodes if e["ik_mean_mm"] is not None]
        jumps = {f"{stat}_{kind}_jump_rad": _over([e[f"{kind}_jump_{stat}_rad"] for e in episodes], stat)
                 for kind in ("handover", "chunk") for stat in ("mean", "max")}
        means = {"mean_final_distance_m": float(np.mean([e["final_distance_m"] for e in episodes])),
                 "mean_policy_s_per_episode": float(np.mean([e["policy_s"] for e in episodes])),
                 "mean_ik_error_mm": float(np.mean(ik)) if ik else None}
        return {
            "schema": SCHEMA,
            "task": self.task, "task_version": self.task_version, "policy": self.policy, "embodiment": self.embodiment,
            "robot": self.robot,
            "strategy": self.strategy,
            "control_hz": self.control_hz, "actual_control_hz": self.actual_control_hz, "policy_fps": self.policy_fps,
            "policy_settings": self.policy_settings,
            "max_steps": self.max_steps,
            "seed": self.seed, "perturb": self.perturb, "prompt_template": self.prompt_template,
            "paraphrases": self.paraphrases, "latency": self.latency, "rtc": self.rtc,
            "num_envs": self.num_envs, "software": self.software, "command": self.command,
            "cwd": self.cwd, "resumed_by": self.resumed_by,
            "training_scenes": (None if self.training_scenes is None
                                else self.training_scenes.to_json(e.seed for e in self.episodes)),
            "n_episodes": len(self.episodes), "episodes_requested": max(self.requested, len(self.episodes)),
            "successes": self.successes, "success_rate": self.success_rate,
            "ci95": [lo, hi],
            "mean_steps_to_success": float(np.mean(steps)) if steps else None,
            **{key: measured(key, value) for key, value in means.items()},
            "over_velocity_steps": sum(e.over_velocity_steps for e in self.episodes),
            **{key: measured(key, value) for key, value in jumps.items()},
            **({"plan": plan} if (plan := plan_summary(self.episodes)) is not None else {}),
            "episodes": episodes,
        }

    @classmethod
    def from_json(cls, doc: Any, where: str = "report") -> EvalReport:
        """A report read back from its `to_json` (to continue the run: `evaluate(..., resume=...)`); `where` names it in
        errors."""
        if not schema_matches(doc, SCHEMA, where):
            found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
            raise ValueError(f"{where}: not a sim report (schema {found!r}, expected {SCHEMA!r})")
        try:
            episodes = [_episode(e) for e in doc["episodes"]]
            return cls(doc["task"], doc["policy"], doc["robot"], dict(doc["strategy"]), doc["control_hz"], doc["seed"],
                       episodes, requested=doc.get("episodes_requested", len(episodes)),
                       actual_control_hz=doc.get("actual_control_hz"), max_steps=doc.get("max_steps"),
                       embodiment=doc.get("embodiment"), policy_fps=doc.get("policy_fps"),
                       policy_settings=doc.get("policy_settings"), task_version=doc.get("task_version"),
                       perturb=doc.get("perturb"), prompt_template=doc.get("prompt_template"),
                       paraphrases=doc.get("paraphrases"),
                       latency=dict(doc.get("latency") or NO_LATENCY),
                       rtc=bool(doc.get("rtc", False)), num_envs=doc.get("num_envs"),
                       software=doc.get("software"), command=doc.get("command"), cwd=doc.get("cwd"),
                       resumed_by=[dict(r) for r in doc.get("resumed_by") or []],
                       training_scenes=(None if doc.get("training_scenes") is None
                                        else TrainingScenes.from_json(doc["training_scenes"])))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"{where}: a sim report with missing or malformed fields ({exc!r})") from None

    def settings(self) -> dict[str, Any]:
        """Every setting that changes what an episode does, by flat name (`strategy.kind`,
        `policy_settings.sampling.steps`...), as report.json stores them: what a resumed run must share with it."""
        flat = {"task": self.task, "policy": self.policy, "robot": self.robot, "embodiment": self.embodiment,
                "control_hz": self.control_hz, "max_steps": self.max_steps, "seed": self.seed,
                "perturb": self.perturb, "prompt_template": self.prompt_template, "paraphrases": self.paraphrases,
                "rtc": self.rtc}
        flat.update(flat_settings(self.strategy, "strategy."))
        flat.update(flat_settings(self.latency, "latency."))
        flat.update(flat_settings(self.policy_settings or {}, "policy_settings."))
        if flat.get("policy_settings.files"):  # a checkpoint folder is its content: it may have been moved or copied
            del flat["policy"], flat["policy_settings.path"]
        return json.loads(json.dumps(flat))  # a tuple compares as the list it is stored as

    def versions(self) -> dict[str, int | None]:
        """What judged and drove the episodes, by what it is: the task's definition and, for the scripted expert or
        random actions, the policy's (`Task.version`, `ScriptedPolicy.version`, `RandomPolicy.version`); None where
        the report did not record it. Other policies are their checkpoint or server (`policy_settings`)."""
        out = {f"task {self.task}": self.task_version}
        kind = (self.policy_settings or {}).get("kind")
        if kind in BUILTIN_POLICIES:
            out[f"{kind} policy"] = self.policy_settings.get("version")
        return out

    def markdown(self, doc: dict[str, Any] | None = None) -> str:
        """report.md; `doc`: this report's `to_json()` where the caller has it (`write_report`: built once per
        rewrite, each episode's, of a run whose every episode is rewritten after each)."""
        doc = self.to_json() if doc is None else doc
        lo, hi = doc["ci95"]
        lines = [
            f"# {self.task} · {self.policy}",
            "",
            (
                f"**Success {self.successes}/{len(self.episodes)} = {100 * self.success_rate:.1f} %** "
                f"(95 % Wilson CI {100 * lo:.1f}-{100 * hi:.1f} %), robot `{self.robot}`, {self.control_hz:g} Hz, "
                f"strategy `{self.strategy['kind']}`, "
                + ", ".join([seed_range(self.seed, len(self.episodes)),
                             *([f"perturbed `{self.perturb}`"] if self.perturb else []),
                             *([f"prompt template `{self.prompt_template}`"] if self.prompt_template else []),
                             *([f"latency {self.latency_said()}"] if self.latency["ms"] else []),
                             *(["real-time chunking (`--rtc`)"] if self.rtc else []),
                             *([f"{self.num_envs} episodes in flight (`--num-envs`)"] if (self.num_envs or 1) > 1
                               else []),
                             *(f"{what} v{number}" for what, number in self.versions().items() if number is not None)])
                + "."
            ),
            "",
            *([" ".join([*([_made_said("Made by", self.command, self.cwd)] if self.command else []),
                         *(_made_said("Continued by", r.get("command"), r.get("cwd")) for r in self.resumed_by)]), ""]
              if self.command or self.resumed_by else []),
            *([self._software_line(), ""] if self.software else []),
            *([f"**Incomplete: {len(self.episodes)} of {self.requested} episodes ran.**", ""]
              if self.requested > len(self.episodes) else []),
            *([self._training_line(doc["training_scenes"]), ""] if doc["training_scenes"] is not None else []),
            *([self._jumps_line(doc), ""] if doc["mean_handover_jump_rad"] is not None else []),
            *([plan_said(doc["plan"], (self.policy_settings or {}).get("scorer")), ""] if "plan" in doc else []),
            ("| seed | success | steps | final distance (cm) | chunks | policy s | IK mean/max mm | clipped | too fast "
             "| hand-over jump mean/max rad | in-chunk jump mean/max rad | prompt |"),
            "|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for e in self.episodes:
            ik = "-" if e.ik_mean_mm is None else f"{e.ik_mean_mm:.2f}/{e.ik_max_mm:.2f}"
            handover, within = (_mean_max(getattr(e, f"{kind}_jump_mean_rad"), getattr(e, f"{kind}_jump_max_rad"))
                                for kind in ("handover", "chunk"))
            lines.append(
                f"| {e.seed} | {'yes' if e.success else 'no'} | {e.steps} | {100 * e.final_distance_m:.1f} | "
                f"{e.chunks} | {e.policy_s:.2f} | {ik} | {e.clipped} | {e.over_velocity_steps} | {handover} | "
                f"{within} | {e.prompt} |"
            )
        return "\n".join(lines) + "\n"

    def _software_line(self) -> str:
        """`Software: worldpolicy 0.1.0, python 3.11.7, torch 2.5.1, ...`: what the run ran on, as report.md says it."""
        return "Software: " + ", ".join(f"{name} {version}" for name, version in self.software.items()
                                         if version is not None) + "."

    @staticmethod
    def _jumps_line(doc: dict[str, Any]) -> str:
        """How smoothly chunks handed over (`rollout.Jumps`), said in the report: the mean and largest jump in joint
        targets at hand-over steps against those within chunks."""
        within = doc["mean_chunk_jump_rad"]
        return (f"Hand-overs: joint targets jumped {doc['mean_handover_jump_rad']:.4f} rad on average (at most "
                f"{doc['max_handover_jump_rad']:.4f}) where a newer chunk took over, "
                + ("a hand-over at every step, so no step within a chunk to set them against" if within is None else
                   f"against {within:.4f} (at most {doc['max_chunk_jump_rad']:.4f}) from step to step within a chunk")
                + " (the largest joint's change; episodes' means averaged).")

    def latency_said(self) -> str:
        """`200 ms = 3 steps at 15 Hz`: the latency as report.md says it (the run's page, `viz.report`, leaves out
        the rate)."""
        from worldpolicy.viz.report import latency_said

        return f"{latency_said(self.latency['ms'], self.latency['ticks'])} at {self.control_hz:g} Hz"

    def _training_line(self, scenes: dict[str, Any]) -> str:
        """Whether the episodes are the checkpoint's training scenes (`TrainingScenes.to_json`), said in the report."""
        first, last = scenes["recorded_seeds"]
        recorded = f"{scenes['source']}: {scenes['task']} seeds {first}..{last}"
        seen = scenes["seeds"]
        if not seen:
            return f"Held out: none of these episodes is a scene the checkpoint was trained on ({recorded})."
        return (f"**Training scenes: {len(seen)} of the {len(self.episodes)} episodes ({seed_span(seen)}) are "
                f"scenes the checkpoint was trained on ({recorded}): their success says how well it fits its training "
                f"data, not how it does on new scenes. Seeds from "
                f"{TrainingScenes.from_json(scenes).held_out_from} on are held out.**")


def plan_summary(episodes: list[EpisodeResult]) -> dict[str, Any] | None:
    """A best-of-N planned run's decisions over its episodes (`EpisodeResult.plans`), as report.json keeps them
    (`plan`): the candidates per decision, the decisions, those where every candidate scored the same (`tied`: the
    first ran, exactly the plain policy's own sample, so planning bought nothing) and those where another candidate
    than the first ran (`changed`: where planning changed what the arm did). None for a run that did not plan."""
    plans = [d for e in episodes for d in e.plans or []]
    if not plans:
        return None
    return {"candidates": max(len(d["scores"]) for d in plans), "decisions": len(plans),
            "tied": sum(len(set(d["scores"])) == 1 for d in plans), "changed": sum(d["chosen"] != 0 for d in plans)}


def plan_said(plan: dict[str, Any], scorer: str | None) -> str:
    """report.md's line on a planned run's decisions (`plan_summary`), the command's too."""
    n = plan["decisions"]

    def share(k: int) -> str:
        return f"{k} ({100 * k / n:.0f} %)"

    return (f"Planning: best of {plan['candidates']}" + (f" by `{scorer}`" if scorer else "") + f", {n} decisions: "
            f"every candidate scored the same in {share(plan['tied'])} (the first, the plain policy's own sample, "
            f"ran), another candidate than the first ran in {share(plan['changed'])}.")


def _over(values: list[float | None], stat: str) -> float | None:
    """The run's `stat` (mean or max) of episodes' values, those with none left out; None where no episode has one."""
    known = [v for v in values if v is not None]
    return None if not known else float(np.mean(known) if stat == "mean" else np.max(known))


def _mean_max(mean: float | None, largest: float | None) -> str:
    """A report.md cell: `0.0123/0.0456`, or `-` where there was none."""
    return "-" if mean is None else f"{mean:.4f}/{largest:.4f}"


def _episode(doc: Any) -> EpisodeResult:
    """An episode as report.json and episodes.jsonl keep it (`EpisodeResult.to_json`); fields it does not know (a
    later version's) left out."""
    return EpisodeResult(**{k: v for k, v in doc.items() if k in _EPISODE_FIELDS})


_EPISODE_FIELDS = frozenset(STORED_FIELDS)
# episodes.csv's columns: the run's task and policy label (a lab concatenates several runs' files), then each episode's
# fields as report.json keeps them, their units in their names (_m, _s, _mm, _rad; steps: control steps), but a
# planned run's decisions (`plans`: a list per episode, in report.json and summed in its `plan`)
EPISODE_COLUMNS = ("task", "policy", *(name for name in STORED_FIELDS if name != "plans"))


def read_report(path: str | Path) -> EvalReport:
    """The report of a sim run (its report.json, or the folder holding it), e.g. to continue the run:
    `evaluate(..., resume=read_report(out))`. Its episodes are episodes.jsonl's where the folder has one (`EpisodeLog`:
    appended after every episode, where report.json is rewritten at most every `SUMMARY_INTERVAL_S` while a run goes
    on); a run written before episodes.jsonl existed has its episodes in report.json alone."""
    path = Path(path)
    file = path / SIM_REPORT_FILE if path.is_dir() else path
    try:
        text = file.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"{file}: no sim report there") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{file}: not a sim report (unreadable JSON: {exc})") from None
    report = EvalReport.from_json(doc, str(file))
    logged = EpisodeLog(file.parent).read(report)
    if logged is not None and len(logged) > len(report.episodes):
        report.episodes = logged
    return report


class EpisodeLog:
    """A run folder's episodes.jsonl (`fileio.SIM_EPISODES_FILE`): a first line naming its schema and the run (task,
    first seed), then each episode (`EpisodeResult.to_json`) on a line, appended as it joins the report, so a run of
    hundreds of episodes keeps each at the cost of one line, not of rewriting them all. Its first `append` writes the
    file whole (atomically): a line a kill cut short, or an earlier run's file, is never appended to."""

    def __init__(self, out: str | Path) -> None:
        self.path = Path(out) / SIM_EPISODES_FILE
        self.written: int | None = None  # episodes in the file, once this log wrote it whole

    def rewrite(self, report: EvalReport) -> Path:
        """The file whole, atomically: its header and every episode of `report`."""
        header = {"schema": SIM_EPISODES_SCHEMA, "task": report.task, "seed": report.seed}
        write_bytes_atomic(self.path, "".join(json.dumps(line) + "\n"
                                              for line in [header, *(e.to_json() for e in report.episodes)]))
        self.written = len(report.episodes)
        return self.path

    def append(self, report: EvalReport) -> None:
        """The episodes of `report` not in the file yet, a line each (the file written whole the first time)."""
        if self.written is None or self.written > len(report.episodes):
            self.rewrite(report)
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(e.to_json()) + "\n" for e in report.episodes[self.written:]))
        self.written = len(report.episodes)

    def read(self, report: EvalReport) -> list[EpisodeResult] | None:
        """The episodes in the file, for the run `report` (its report.json) describes; None where there is no file.
        A last line a kill cut short is left out (its episode runs again); a file of another run, another schema or
        a malformed line before the last is refused, naming it."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return None
        where = str(self.path)
        try:
            header = json.loads(lines[0]) if lines else None
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("schema") != SIM_EPISODES_SCHEMA:
            found = header.get("schema") if isinstance(header, dict) else None
            raise ValueError(f"{where}: not a sim run's episodes (schema {found!r}, expected {SIM_EPISODES_SCHEMA!r})")
        if (header.get("task"), header.get("seed")) != (report.task, report.seed):
            raise ValueError(f"{where}: another run's episodes (task {header.get('task')!r} from seed "
                             f"{header.get('seed')!r}) than its {SIM_REPORT_FILE}'s ({report.task!r} from seed "
                             f"{report.seed})")
        episodes = []
        for number, line in enumerate(lines[1:], start=2):
            try:
                episodes.append(_episode(json.loads(line)))
            except (ValueError, TypeError, AttributeError) as exc:
                if number == len(lines):  # cut short by a kill while it was appended
                    break
                raise ValueError(f"{where}: line {number} is no episode ({exc})") from None
        return episodes


def start_report(env, *, policy_name: str, seed: int, strategy: ChunkStrategy, episodes: int, embodiment,
                 chunk: int, policy_fps: float | None, policy_settings: dict[str, Any],
                 max_steps: int | None = None, latency_ms: float = 0.0, rtc: bool = False) -> EvalReport:
    """The report a run of `episodes` starts from, holding every setting it records; k (`strategy.execute_steps`) is
    resolved for `chunk`-action chunks now and set to the k used as episodes run. A resume compares the k asked for
    (`execute_steps_requested`: the strategy's, else the embodiment's; None: from the chunk) instead: the k used also
    follows from the chunk the policy returns, which a server's may make other than the one it announces (openpi's
    announce none: the embodiment's chunk_size is assumed)
    `worldpolicy sim --resume` builds it before a checkpoint loads, `evaluate` from the loaded backend; `env` is the
    `TabletopEnv` itself, `max_steps` the episodes' step limit (default: the env's own; a made env's is its
    TimeLimit's), `latency_ms` the time each request is taken to think, recorded with the whole steps it runs as, `rtc`
    whether async's requests are conditioned on the running chunk (real-time chunking)."""
    max_steps = max_steps or env.max_steps
    latency = {"ms": float(latency_ms), "ticks": latency_ticks(latency_ms, env.control_hz, max_steps)}
    return EvalReport(env.task.name, policy_name, env.robot.name,
                      {"kind": strategy.kind, "execute_steps": strategy.steps_for(chunk),
                       "ensemble_decay": strategy.ensemble_decay, "execute_steps_requested": strategy.execute_steps},
                      env.control_hz, seed, requested=episodes,
                      actual_control_hz=env.actual_control_hz, max_steps=max_steps,
                      embodiment=getattr(embodiment, "key", None), policy_fps=policy_fps,
                      policy_settings=policy_settings, task_version=env.task.version,
                      perturb=env.perturbation.spec or None, prompt_template=env.prompt_template,
                      paraphrases=list(env.task.paraphrases) if env.perturbation.prompt else None,
                      latency=latency, rtc=bool(rtc),
                      software=software_versions())


def _made_said(verb: str, command: str | None, cwd: str | None) -> str:
    """`Made by `worldpolicy sim ...` in `/home/me`.`, as report.md says a command line that made or continued a run."""
    return f"{verb} `{command}`" + (f" in `{cwd}`" if cwd else "") + "."


def seed_range(first: int, count: int) -> str:
    """`seeds 10000..10019` (`seed 3` for one): the scenes a run's episodes are, as its report and the command say."""
    return f"seed {first}" if count == 1 else f"seeds {first}..{first + count - 1}"


def policy_label(report: EvalReport) -> str:
    """The run's policy as a run of it is labelled now (`sim compare`'s table and legends, what `--resume` compares):
    a checkpoint run by `models.checkpoint_name` of its folder (`sim.commands`, the demo, the agent tool and the
    training recipe label it so), where an older report labelled it by its folder's own name; a server's by the model
    it announced and its address (`models.served_name`), where an older report labelled it by the address alone. Only
    those old labels are mapped, from what the report records: the shipped model's path (`panda_reach`, now
    `shipped`), a hub snapshot's (its revision, now the hub id as given: without the revision a path pins, as
    `--policy OWNER/NAME` is labelled) and the model a server announced
    (`policy_settings.model`: `ws://host:8000`, now `step-0000010 @ ws://host:8000`); a label given in code (the
    trainer's `step-N`) is kept, as is every other policy's."""
    from worldpolicy.hub import HUB_COMMIT, hub_id_shaped, split_revision
    from worldpolicy.models import SERVER_SCHEMES, SHIPPED_DEFAULT, SHIPPED_NAME, portable_checkpoint, served_name

    settings = report.policy_settings or {}
    if settings.get("kind") == "server" and report.policy.startswith(SERVER_SCHEMES):
        return served_name(report.policy, settings.get("model"))
    path = settings.get("path")
    if not isinstance(path, str) or settings.get("kind") != "checkpoint":
        return report.policy
    portable = str(portable_checkpoint(path))
    shipped = portable == SHIPPED_NAME and report.policy == SHIPPED_DEFAULT
    snapshot = hub_id_shaped(portable) and HUB_COMMIT.fullmatch(report.policy) is not None
    if snapshot:
        return split_revision(portable)[0]
    return portable if shipped else report.policy  # as `checkpoint_name` names them


def resume_conflicts(previous: EvalReport, current: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(setting, stored, now) for each setting of `current` (flat names, as `EvalReport.settings`; a caller that does
    not know one yet leaves it out) that differs from the run `previous` stored; when the policy's kind differs, its
    other policy settings are not listed. A report from before `policy_settings` were recorded is refused: whether
    the same checkpoint, sampling and device would continue it cannot be checked; one of a server that did not record
    what its server announced (`SERVER_ANNOUNCED`: an older report, or openpi's server) is compared without it."""
    if previous.policy_settings is None:
        raise ValueError("it was written by an older worldpolicy, which did not record the policy's settings "
                         "(checkpoint files, sampling, device, camera size), so whether this run continues it cannot "
                         "be checked")
    stored = previous.settings()
    if "policy" in stored:  # an older report's label as a run of its policy is labelled now: not another policy
        stored["policy"] = policy_label(previous)
    # a baseline's version is compared by `version_changes`, before the settings; the latency's steps follow from its
    # milliseconds and the control rate, both compared
    skip = {"policy_settings.version", "latency.ticks"}
    if stored.get("paraphrases") is None:  # recorded since prompt=paraphrase's first run: an older one continues
        skip.add("paraphrases")  # (a stored run that drew none differs in `perturb`)
    # the k asked for where the report has it (`start_report`), else (written before it was) the k used
    asked = "strategy.execute_steps_requested"
    skip.add("strategy.execute_steps" if asked in stored else asked)
    if "ensemble" not in (stored.get("strategy.kind"), current.get("strategy.kind")):
        skip.add("strategy.ensemble_decay")  # weighs nothing outside the ensemble strategy (stored all the same)
    if stored.get("policy_settings.kind") == "server":  # what the stored run's server announced, where recorded
        recorded = {name.split(".")[1] for name in stored if name.startswith("policy_settings.")}
        skip.update(name for name in current if name.startswith("policy_settings.")
                    and name.split(".")[1] in set(SERVER_ANNOUNCED) - recorded)
    changes = [(name, stored.get(name), value) for name, value in json.loads(json.dumps(current)).items()
               if name not in skip and stored.get(name) != value]
    if any(name == "policy_settings.kind" for name, _, _ in changes):
        changes = [c for c in changes if not c[0].startswith("policy_settings.") or c[0] == "policy_settings.kind"]
        # another policy is one change, named by the policy as given: a checkpoint's report keeps its path, not its
        # name, and showed "--policy: none -> 'scripted'; --policy: 'checkpoint' -> 'scripted'"
        if any(name == "policy" for name, _, _ in changes):
            old = stored.get("policy", previous.policy_settings.get("path"))
            changes = [("policy", old, new) if name == "policy" else (name, before, new)
                       for name, before, new in changes if name != "policy_settings.kind"]
    return changes


def version_changes(previous: EvalReport, current: EvalReport) -> list[tuple[str, str, int]]:
    """(what, stored, now) for each definition that judged or drove `previous` (`EvalReport.versions`: the task's, the
    scripted expert's or random policy's) and differs in `current`, the run that would continue it: their episodes
    measure different things and must not be pooled into one rate. A version the report did not record is taken as
    `UNRECORDED_VERSION` (shown as such): a task or policy that has not changed since is continued. Another task or
    policy is a setting (`resume_conflicts`), not a version."""
    if (previous.task, (previous.policy_settings or {}).get("kind")) != (current.task,
                                                                         (current.policy_settings or {}).get("kind")):
        return []
    stored = previous.versions()
    return [(what, shown, now) for what, now in current.versions().items()
            if (shown := stored_version_change(stored.get(what), now)) is not None]


def stored_version_change(stored: int | None, now: int) -> str | None:
    """`stored` as a change shows it (`UNRECORDED_VERSION` and "(unrecorded)" where None) when it differs from `now`;
    None when it is the same definition. Shared by `version_changes` and `data.from_sim.check_recording`."""
    if (UNRECORDED_VERSION if stored is None else stored) == now:
        return None
    return f"{UNRECORDED_VERSION} (unrecorded)" if stored is None else str(stored)


def episodes_left(previous: EvalReport, current: EvalReport, episodes: int) -> range:
    """The episodes the run `current` (its `start_report`) runs to continue `previous` up to `episodes` in all: those
    after the stored ones (episode i is seed + i whether run in one go or not). Refused when a task or baseline
    policy's version differs (`version_changes`), a setting differs (`resume_conflicts`) or `episodes` is fewer than
    the stored ones."""
    versions = version_changes(previous, current)
    if versions:
        raise ValueError("resume: the stored run was judged or driven by other versions: "
                         + "; ".join(f"{what}: v{old} -> v{new}" for what, old, new in versions)
                         + ". Its episodes and this version's would not make one rate: start a new report")
    changes = resume_conflicts(previous, current.settings())
    if changes:
        raise ValueError("resume: the stored run has other settings: "
                         + "; ".join(f"{name}: {old!r} -> {new!r}" for name, old, new in changes)
                         + ". Continue it with the env, policy, strategy and seed it ran with, or start a new report")
    done = len(previous.episodes)
    if [e.seed for e in previous.episodes] != list(range(previous.seed, previous.seed + done)):
        raise ValueError(f"resume: the stored episodes are not seeds {previous.seed}..{previous.seed + done - 1} in "
                         "order, as evaluate writes them")
    if episodes < done:
        raise ValueError(f"episodes: {episodes} is fewer than the {done} the stored run already finished; pass at "
                         f"least {done}")
    return range(done, episodes)


class EpisodeTimes:
    """The seconds a run's episodes left will take (its progress bar's time left), from those that ended: the time
    between one episode's end and the one before it (with `num_envs`, episodes overlap: the run's pace), recorded
    episodes (the first `videos`) apart from the rest. Recording one (drawing its frames, encoding its mp4) made it
    several times slower than one that records nothing, and tqdm's rate, over every episode so far, took each episode
    left to be as slow as those: a run of 200 with --videos 4 said minutes left where seconds were. Until an episode
    that records nothing has ended, one is taken as a recorded one less its recording."""

    def __init__(self, episodes: int, videos: int) -> None:
        self.episodes, self.videos = episodes, videos
        self.last = time.perf_counter()
        self.spent = {True: [0.0, 0], False: [0.0, 0]}  # recorded or not: [seconds, episodes]
        self.recording = 0.0  # of the recorded episodes' seconds, their recording's

    def ended(self, i: int, recording_s: float) -> None:
        """Episode i ended (its video, if any, written), `recording_s` of it spent recording."""
        now, recorded = time.perf_counter(), i < self.videos
        self.spent[recorded][0] += now - self.last
        self.spent[recorded][1] += 1
        self.recording += recording_s if recorded else 0.0
        self.last = now

    def remaining(self, done: int) -> float | None:
        """The seconds the episodes after the first `done` will take; None before any has ended."""
        (rec_s, rec_n), (plain_s, plain_n) = self.spent[True], self.spent[False]
        if rec_n + plain_n == 0:
            return None
        recorded = rec_s / rec_n if rec_n else None
        plain = plain_s / plain_n if plain_n else max(0.0, rec_s - self.recording) / rec_n
        left = max(0, min(self.videos, self.episodes) - done)
        # a recorded episode before one has ended: one that records nothing, plus as long again for its recording
        return left * (recorded if recorded is not None else 2 * plain) + (self.episodes - done - left) * plain


# `evaluate(training_scenes=)` left out: the run's checkpoint folder is checked there (`sim.tasks.training_scenes`)
_WORKED_OUT_HERE: Any = object()


def evaluate(
    env,
    policy,
    *,
    policy_name: str,
    episodes: int,
    seed: int = EVAL_SEED,
    strategy: ChunkStrategy | None = None,
    video_dir: Path | None = None,
    videos: int = 0,
    progress: bool = True,
    on_episode: Callable[[EvalReport], None] | None = None,
    resume: EvalReport | None = None,
    latency_ms: float = 0.0,
    rtc: bool = False,
    num_envs: int = 1,
    training_scenes: TrainingScenes | None = _WORKED_OUT_HERE,
    watch: EpisodeWatch | None = None,
) -> EvalReport:
    """Run `episodes` seeded episodes (`env`: a `TabletopEnv`, or one made by `gymnasium.make("worldpolicy/...")`;
    `policy`: a backend, or a loaded `Policy` / `RemotePolicy`, which gets the episodes' sampling seeds); record
    side-by-side mp4s for the first `videos` into `video_dir`.
    `on_episode(report so far)` runs after each episode (e.g. to write it, so a failure loses no finished episode).
    `resume` (a stored report: `read_report`) continues that run: refused unless every setting is the same
    (`episodes_left`), its episodes are kept and only the rest run, so the result is the uninterrupted run's.
    `seed` defaults to `EVAL_SEED`, past the seeds `dataset from-sim` records from 0, as `worldpolicy sim --seed` does:
    a checkpoint trained on such a recording is evaluated on new scenes. Whether a checkpoint's episodes are scenes it
    was trained on (where its training data says: `sim.tasks.training_scenes`) is recorded in the report: the
    `training_scenes` a caller already worked out for this checkpoint, task and `seed`..`seed + episodes - 1` (to warn
    before the model loads: `worldpolicy sim`, the demo), recorded as given; left out, worked out here for a checkpoint
    folder and for a server that announces its checkpoint's (`models.announced_training_seeds`), None for any other
    policy.
    `latency_ms`: how long each request is taken to think, as whole control steps (`rollout.latency_ticks`) during which
    the sim steps on (docs/robot.md); 0 runs as before it existed. `rtc`: real-time chunking (`async` only, a policy
    that takes `action_prefix`: `robot.control.ChunkController`), refused otherwise before any episode.
    `num_envs`: episodes in flight at once, on `env` and envs made like it, each env starting the next seed as soon as
    its episode ends, the requests of a control step answered by one batched call (`sim.batch`: a loaded checkpoint,
    or a ws:// server sent them at once over several connections; any strategy; refused otherwise, naming it, before
    any episode); recorded as the report's `num_envs`. Episodes end out of order; the report keeps them in seed
    order, `on_episode` running as each joins it (once those before it have ended).
    `watch` sees every step of the episodes this call runs (`rollout.EpisodeWatch`; with `resume`, the ones left),
    interleaved under `num_envs`: `worldpolicy sim --rerun` logs them (`sim.rerun.RerunWatch`)."""
    # checked before any episode: a negative or numpy seed failed inside gymnasium's reset, not naming `seed`
    if not is_integer(episodes) or episodes < 1:
        raise ValueError(f"episodes: expected an int >= 1, got {episodes!r}")
    if not is_integer(seed) or seed < 0:
        raise ValueError(f"seed: expected an int >= 0 (episode i uses seed + i), got {seed!r}")
    episodes, seed = int(episodes), int(seed)  # gymnasium's reset takes a Python int only
    if not is_integer(videos) or videos < 0:
        raise ValueError(f"videos: expected an int >= 0 (episodes to record), got {videos!r}")
    if videos and video_dir is None:  # recorded nothing, silently
        raise ValueError(f"videos: {videos} episodes to record, but video_dir is None; pass the folder for their mp4s")
    if training_scenes is not _WORKED_OUT_HERE and not isinstance(training_scenes, (TrainingScenes, type(None))):
        raise ValueError("training_scenes: expected a sim.tasks.TrainingScenes or None (what "
                         "sim.tasks.training_scenes gives), or leave it out to work it out here; "
                         f"got {training_scenes!r}")
    from ..logcapture import progress_bar

    rollout = Rollout(env, policy, strategy, name=policy_name, latency_ms=latency_ms, rtc=rtc)
    env, policy = rollout.env, rollout.policy
    report = start_report(env, policy_name=policy_name, seed=seed, strategy=rollout.strategy, episodes=episodes,
                          embodiment=getattr(policy, "embodiment", None), chunk=chunk_size(policy),
                          policy_fps=policy_fps(policy), policy_settings=policy_settings(policy, env.image_size),
                          max_steps=rollout.max_steps, latency_ms=latency_ms, rtc=rtc)
    settings = report.policy_settings
    if training_scenes is _WORKED_OUT_HERE:  # a checkpoint folder's training data may say, or a server announce it
        checked = settings.get("kind") == "checkpoint" and settings.get("files")
        said = settings["path"] if checked else served_metadata(policy)  # {}: no server, which says nothing
        training_scenes = tasks.training_scenes(said, env.task.name, range(seed, seed + episodes)) if said else None
    report.training_scenes = training_scenes
    todo = range(episodes)
    if resume is not None:
        todo = episodes_left(resume, report, episodes)
        report.episodes = list(resume.episodes)
        # what began the run and continued it so far: a caller that continues it adds itself (`worldpolicy sim`)
        report.command, report.cwd, report.resumed_by = resume.command, resume.cwd, list(resume.resumed_by)
    from worldpolicy.sim.batch import Lockstep, check_num_envs

    report.num_envs = check_num_envs(num_envs, policy=settings.get("kind"))
    # an env built at another rate than the policy's (`policies.control_hz_for`) moves the arm at the wrong speed:
    # said once, before the episodes, of `worldpolicy sim --control-hz` as of an env of the caller's own
    warn_rate_mismatch(report.policy_fps, env.control_hz, policy_name)
    envs = min(report.num_envs, max(len(todo), 1))  # no env made that no episode would run on
    lockstep = Lockstep(rollout, envs) if envs > 1 else None
    times = EpisodeTimes(episodes, videos if video_dir is not None else 0)
    bar = progress_bar(total=episodes, initial=todo.start, desc=f"{env.task.name}/{policy_name}", disable=not progress,
                       unit="ep", remaining=lambda: times.remaining(len(report.episodes)))

    shown_at = [0.0]

    def show_step(done: int) -> None:  # redrawn at most every `mininterval`, not at every step
        bar.set_postfix(success=f"{report.successes}/{len(report.episodes)}", step=f"{done}/{rollout.max_steps}",
                        refresh=False)
        # not `update(0)`: once an episode has ended, tqdm's dynamic miniters (1) skip every redraw of a 0 increment
        if time.monotonic() - shown_at[0] >= bar.mininterval:
            shown_at[0] = time.monotonic()
            bar.refresh()

    def ended() -> Iterator[tuple[int, EpisodeResult]]:
        """(i, result) of each episode as it ends: one after another, or `num_envs` in flight at a time."""
        on_step = show_step if progress else None
        if lockstep is None:
            for i in todo:
                yield i, rollout.run(seed + i, record=video_dir is not None and i < videos, on_step=on_step,
                                     watch=watch)
            return
        for j, result in lockstep.run([seed + i for i in todo], [video_dir is not None and i < videos for i in todo],
                                      on_step, watch=watch):
            yield todo[j], result

    waiting: dict[int, EpisodeResult] = {}  # ended, waiting for an episode before them to end

    def join(i: int, result: EpisodeResult) -> None:
        """Episode i, ended: its video written, then it joins the report once those before it have (row i: seed
        order), `on_episode` running for each that joins."""
        report.strategy["execute_steps"] = rollout.execute_steps  # the k used, once the first chunk told the size
        recording = result.recording_s
        if result.frames is not None:
            from worldpolicy.processing.video import write_video

            encoding = time.perf_counter()
            # at the env's render_fps, its actual control rate: played back in real time, as the caption's clock runs
            video = Path(video_dir) / f"{sim_episode_name(seed + i)}.mp4"
            write_video(video, result.frames, env.metadata["render_fps"])
            result.frames = None
            recording += time.perf_counter() - encoding
        times.ended(i, recording)
        waiting[i] = result
        while len(report.episodes) in waiting:
            report.episodes.append(waiting.pop(len(report.episodes)))
            if on_episode is not None:
                on_episode(report)
        # the step of no episode now; drawn by the update, with the count it goes with: drawn first, a log's line
        # read "1/3 ... success=0/2", the episode counted in the postfix before the bar
        bar.set_postfix(success=f"{report.successes}/{len(report.episodes)}", refresh=False)
        bar.update(1)

    try:
        with closing(ended()) as episodes_ended:  # cut short (Ctrl-C): the episodes still running are closed first
            for i, result in episodes_ended:
                join(i, result)
    finally:
        bar.close()
        if lockstep is not None:
            lockstep.close()
    return report


def write_report(report: EvalReport, out: Path, *, plots: bool = True) -> list[Path]:
    """report.json, report.md, episodes.csv (a row per episode, `EPISODE_COLUMNS`), episodes.jsonl (`EpisodeLog`,
    written whole) and (optionally) report.png: cumulative success with its CI band, episode lengths. Each is written
    atomically; Ctrl-C (SIGTERM) waits for the last of them, then stops: one between them left report.md an episode
    behind report.json (or missing, after the first)."""
    from worldpolicy.fileio import sigint_deferred

    out = Path(out)
    written = [out / SIM_REPORT_FILE, out / SIM_REPORT_MARKDOWN, out / SIM_EPISODES_CSV]
    with sigint_deferred():
        doc = report.to_json()
        write_bytes_atomic(written[0], json.dumps(doc, indent=1))
        write_bytes_atomic(written[1], report.markdown(doc))
        label = {"task": report.task, "policy": report.policy}
        write_csv_atomic(written[2], EPISODE_COLUMNS, ({**label, **e} for e in doc["episodes"]))
        written.append(EpisodeLog(out).rewrite(report))
        if plots:
            from worldpolicy.viz.plots import save_figure

            written.append(save_figure(report_figure(report), out / SIM_REPORT_FIGURE))
    return written


# While a run goes on, its summary (report.json, report.md, episodes.csv) is rewritten after its first episode and then
# at most this often (`ReportKeeper`); each episode is appended to episodes.jsonl as it ends
SUMMARY_INTERVAL_S = 30.0


class ReportKeeper:
    """An `evaluate(on_episode=...)` that keeps the run so far in `out`: each episode appended to episodes.jsonl as it
    ends (`EpisodeLog`), the summary (`write_report`'s files but the figure, drawn once at the end) after the first
    episode and then at most every `interval` seconds: rewriting every episode's after each made a run of n episodes
    O(n²) work. An interruption or a later failure loses none of the finished episodes (`read_report` reads them from
    episodes.jsonl): `worldpolicy sim --resume` continues such a run. `summary(report)` writes the summary now;
    `stopped()`, called by a run that stops before its end, that of every episode kept (its report.json then holds
    them all). As a context manager, `stopped()` is called for the block when it raises (a failure, Ctrl-C) and the
    error goes on: `with keep_report(out) as keeper: report = evaluate(..., on_episode=keeper)`."""

    def __init__(self, out: str | Path, interval: float = SUMMARY_INTERVAL_S) -> None:
        self.out, self.interval = Path(out), interval
        self.log = EpisodeLog(out)
        self._summarised: float | None = None  # when the summary was last written
        # the run's report as last kept and its episodes then (it grows on), what a stopped run summarises (`stopped`):
        # not an episode whose keeping failed
        self._kept: tuple[EvalReport, int] | None = None

    def __call__(self, partial: EvalReport) -> None:
        try:
            self.log.append(partial)
            if self._summarised is None or time.monotonic() - self._summarised >= self.interval:
                self.summary(partial)
        except KeyboardInterrupt:  # held until a summary being written was whole: the one `stopped` writes keeps it
            self._kept = (partial, len(partial.episodes))
            raise
        self._kept = (partial, len(partial.episodes))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None:  # an interruption, a failure: report.json of every episode kept
            self.stopped()

    def stopped(self) -> EvalReport | None:
        """For a run that stops before its end (an interruption, a failure): the report of the episodes kept, its
        summary written now (report.json, rewritten at most every `interval` while the run went on, then holds every
        one of them); None where none was kept. A failure writing it is warned of, not raised over what stopped the
        run: episodes.jsonl keeps the episodes all the same."""
        if self._kept is None:
            return None
        report, kept = self._kept
        report = dataclasses.replace(report, episodes=report.episodes[:kept])
        try:
            self.summary(report)
        except Exception as exc:  # noqa: BLE001 - the run's own error is the one to raise
            logger.warning("sim: the report of the %d kept episodes was not written whole: %s (%s keeps them)",
                           kept, exc, self.log.path)
        return report

    def summary(self, partial: EvalReport) -> list[Path]:
        written = write_report(partial, self.out, plots=False)
        self.log.written = len(partial.episodes)  # episodes.jsonl was written whole with it
        self._summarised = time.monotonic()
        return written


def keep_report(out: Path) -> ReportKeeper:
    """The `ReportKeeper` of `out` (`evaluate(on_episode=keep_report(out))`; `with keep_report(out) as keeper:` keeps
    the summary of a run that stops)."""
    return ReportKeeper(out)


def report_figure(report: EvalReport):
    """The report.png figure, drawn like the viz figures (a private Agg figure: switching pyplot's backend closed a
    notebook's open figures). Episodes, seeds and steps are whole numbers on the axes; the step limit is drawn."""

    from worldpolicy.viz.plots import (
        FAILURE_COLOR,
        LABEL_FONTSIZE,
        LEGEND_FONTSIZE,
        LINE_COLOR,
        SUCCESS_COLOR,
        TICK_FONTSIZE,
        _grid_margins,
        _new_figure,
        figure_title,
        plural,
        step_markers,
        whole_number_ticks,
    )

    eps = report.episodes
    n = np.arange(1, len(eps) + 1)
    wins = np.cumsum([e.success for e in eps])
    band = np.array([wilson_interval(int(w), int(k)) for w, k in zip(wins, n)])
    plans = [d for e in eps for d in e.plans or []]  # a planned run's decisions (`--plan`): a third panel
    fig = _new_figure(15.0 if plans else 10.0, 4.2)
    top = figure_title(
        fig, f"{report.task} · {report.policy}",
        f"success {report.successes}/{plural(len(eps), 'episode')} at {report.control_hz:g} Hz, "
        f"strategy {report.strategy['kind']}",
    )
    _grid_margins(fig, 1, 3 if plans else 2, top=top, bottom=0.95, wgap=0.9)
    ax1, ax2, *ax3 = fig.subplots(1, 3 if plans else 2)
    if plans:
        _plans_panel(ax3[0], plans, len(eps))
    # half an episode past either end: a one-episode run's band was a line of no width, which draws nothing
    edges = np.r_[n[0] - 0.5, n, n[-1] + 0.5]
    band = np.vstack([band[:1], band, band[-1:]])
    ax1.fill_between(edges, band[:, 0], band[:, 1], color=LINE_COLOR, alpha=0.2, lw=0, label="95 % Wilson CI")
    ax1.set_xlim(edges[0], edges[-1])
    ax1.plot(n, wins / n, color=LINE_COLOR, **step_markers(len(eps)), label="success rate")
    ax1.set_ylim(-0.02, 1.02)
    ax1.set_xlabel("episodes run", fontsize=LABEL_FONTSIZE)
    ax1.set_ylabel("cumulative success rate", fontsize=LABEL_FONTSIZE)
    for success, color, label in ((True, SUCCESS_COLOR, "success"), (False, FAILURE_COLOR, "failure")):
        shown = [e for e in eps if e.success == success]
        if shown:  # an empty group's legend entry came out in the default blue
            ax2.bar([e.seed for e in shown], [e.steps for e in shown], color=color, label=label)
    if report.max_steps is not None:
        ax2.axhline(report.max_steps, color="0.3", lw=0.8, ls="--", label=f"step limit ({report.max_steps})")
    ax2.ticklabel_format(axis="x", style="plain", useOffset=False)  # seeds 10000.. read "0 1 2 ... +1e4"
    ax2.set_xlabel("episode seed", fontsize=LABEL_FONTSIZE)
    ax2.set_ylabel(f"episode length [control steps at {report.control_hz:g} Hz]", fontsize=LABEL_FONTSIZE)
    ax2.yaxis.set_major_locator(whole_number_ticks(steps=[1, 2, 5, 10]))  # a 20-step limit was ticked 2.5, 5.0
    for ax in (ax1, ax2, *ax3):
        # one integer in view is enough: with the default two, one episode's axes fell back to 0.945, 0.96, ...
        ax.xaxis.set_major_locator(whole_number_ticks())
        ax.tick_params(labelsize=TICK_FONTSIZE)
        ax.grid(alpha=0.3)
        # below the axes: over them, the legend hid the CI band it explains
        ax.legend(fontsize=LEGEND_FONTSIZE, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)
    return fig


def _plans_panel(ax, plans: list[dict[str, Any]], episodes: int) -> None:
    """report.png's third panel for a planned run: each decision's candidate scores (grey) and the one run (green
    where it told the candidates apart, red where every candidate tied and the plain policy's own sample ran), the
    decisions of every episode in order: whether the scorer told the imagined futures apart at all."""
    from worldpolicy.viz.plots import FAILURE_COLOR, LABEL_FONTSIZE, SUCCESS_COLOR

    for j, decision in enumerate(plans, 1):
        scores = decision["scores"]
        ax.scatter([j] * len(scores), scores, s=10, color="0.6", lw=0,
                   label="candidates' scores" if j == 1 else None)
    for tied, color, label in ((False, SUCCESS_COLOR, "chosen"), (True, FAILURE_COLOR, "chosen, all tied")):
        shown = [(j, d["scores"][d["chosen"]]) for j, d in enumerate(plans, 1) if (len(set(d["scores"])) == 1) == tied]
        if shown:
            ax.scatter(*zip(*shown), s=18, color=color, label=label)
    ax.set_xlabel(f"decision (chunk planned, {episodes} episodes in order)", fontsize=LABEL_FONTSIZE)
    ax.set_ylabel("score of the imagined future", fontsize=LABEL_FONTSIZE)
