"""Evaluation: N seeded episodes → success rate with a Wilson 95% interval, per-episode metrics, report files.

Episode i uses seed `seed + i` for the scene (object poses, colours, prompt) and for the policy's sampling, so two
backends serving the same checkpoint see identical episodes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldpolicy.fileio import write_bytes_atomic
from worldpolicy.sim.policies import policy_fps
from worldpolicy.sim.rollout import ChunkStrategy, EpisodeResult, Rollout

__all__ = ["EvalReport", "evaluate", "report_figure", "wilson_interval", "write_report"]


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (sane at 0 % and 100 %, unlike the normal approximation)."""
    if n <= 0:
        raise ValueError(f"n: expected at least one episode, got {n}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


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

    @property
    def successes(self) -> int:
        return sum(e.success for e in self.episodes)

    @property
    def success_rate(self) -> float:
        return self.successes / len(self.episodes)

    def to_json(self) -> dict[str, Any]:
        lo, hi = wilson_interval(self.successes, len(self.episodes))
        steps = [e.success_step for e in self.episodes if e.success]
        ik = [e.ik_mean_mm for e in self.episodes if e.ik_mean_mm is not None]
        return {
            "schema": "worldpolicy.sim_eval/v1",
            "task": self.task, "policy": self.policy, "embodiment": self.embodiment, "robot": self.robot,
            "strategy": self.strategy,
            "control_hz": self.control_hz, "actual_control_hz": self.actual_control_hz, "policy_fps": self.policy_fps,
            "max_steps": self.max_steps,
            "seed": self.seed,
            "n_episodes": len(self.episodes), "episodes_requested": max(self.requested, len(self.episodes)),
            "successes": self.successes, "success_rate": self.success_rate,
            "ci95": [lo, hi],
            "mean_steps_to_success": float(np.mean(steps)) if steps else None,
            "mean_final_distance_m": float(np.mean([e.final_distance_m for e in self.episodes])),
            "mean_policy_s_per_episode": float(np.mean([e.policy_s for e in self.episodes])),
            "mean_ik_error_mm": float(np.mean(ik)) if ik else None,
            "over_velocity_steps": sum(e.over_velocity_steps for e in self.episodes),
            "episodes": [e.to_json() for e in self.episodes],
        }

    def markdown(self) -> str:
        doc = self.to_json()
        lo, hi = doc["ci95"]
        lines = [
            f"# {self.task} · {self.policy}",
            "",
            (
                f"**Success {self.successes}/{len(self.episodes)} = {100 * self.success_rate:.1f} %** "
                f"(95 % Wilson CI {100 * lo:.1f}-{100 * hi:.1f} %), robot `{self.robot}`, {self.control_hz:g} Hz, "
                f"strategy `{self.strategy['kind']}`, seeds {self.seed}..{self.seed + len(self.episodes) - 1}."
            ),
            "",
            *([f"**Incomplete: {len(self.episodes)} of {self.requested} episodes ran.**", ""]
              if self.requested > len(self.episodes) else []),
            "| seed | success | steps | final distance (cm) | chunks | policy s | IK mean/max mm | clipped | too fast | prompt |",
            "|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for e in self.episodes:
            ik = "-" if e.ik_mean_mm is None else f"{e.ik_mean_mm:.2f}/{e.ik_max_mm:.2f}"
            lines.append(
                f"| {e.seed} | {'yes' if e.success else 'no'} | {e.steps} | {100 * e.final_distance_m:.1f} | "
                f"{e.chunks} | {e.policy_s:.2f} | {ik} | {e.clipped} | {e.over_velocity_steps} | {e.prompt} |"
            )
        return "\n".join(lines) + "\n"


def evaluate(
    env,
    policy,
    *,
    policy_name: str,
    episodes: int,
    seed: int = 0,
    strategy: ChunkStrategy | None = None,
    video_dir: Path | None = None,
    videos: int = 0,
    progress: bool = True,
    on_episode: Callable[[EvalReport], None] | None = None,
) -> EvalReport:
    """Run `episodes` seeded episodes (`env`: a `TabletopEnv`, or one made by `gymnasium.make("worldpolicy/...")`;
    `policy`: a backend, or a loaded `Policy` / `RemotePolicy`, which gets the episodes' sampling seeds); record
    side-by-side mp4s for the first `videos` into `video_dir`.
    `on_episode(report so far)` runs after each episode (e.g. to write it, so a failure loses no finished episode)."""
    if episodes < 1:
        raise ValueError(f"episodes: expected >= 1, got {episodes}")
    from tqdm.auto import tqdm

    rollout = Rollout(env, policy, strategy)
    env, policy, strategy = rollout.env, rollout.policy, rollout.strategy
    report = EvalReport(env.task.name, policy_name, env.robot.name,
                        {"kind": strategy.kind, "execute_steps": strategy.execute_steps,
                         "ensemble_decay": strategy.ensemble_decay}, env.control_hz, seed, requested=episodes,
                        actual_control_hz=env.actual_control_hz, max_steps=rollout.max_steps,
                        embodiment=getattr(getattr(policy, "embodiment", None), "key", None),
                        policy_fps=policy_fps(policy))
    bar = tqdm(range(episodes), desc=f"{env.task.name}/{policy_name}", disable=not progress, unit="ep")
    for i in bar:
        record = video_dir is not None and i < videos
        result = rollout.run(seed + i, record=record)
        report.strategy["execute_steps"] = rollout.execute_steps  # the k used, once the first chunk told the size
        if record and result.frames is not None:
            from worldpolicy.processing.video import write_video

            write_video(Path(video_dir) / f"episode_{seed + i:04d}.mp4", result.frames, env.control_hz)
            result.frames = None
        report.episodes.append(result)
        bar.set_postfix(success=f"{report.successes}/{i + 1}")
        if on_episode is not None:
            on_episode(report)
    return report



def write_report(report: EvalReport, out: Path, *, plots: bool = True) -> list[Path]:
    """report.json, report.md and (optionally) report.png: cumulative success with its CI band, episode lengths."""
    out = Path(out)
    written = [out / "report.json", out / "report.md"]
    write_bytes_atomic(written[0], json.dumps(report.to_json(), indent=1))
    write_bytes_atomic(written[1], report.markdown())
    if plots:
        from worldpolicy.viz.plots import save_figure

        written.append(save_figure(report_figure(report), out / "report.png"))
    return written


def report_figure(report: EvalReport):
    """The report.png figure, drawn like the viz figures (a private Agg figure: switching pyplot's backend closed a
    notebook's open figures). Episodes and seeds are whole numbers on the axes; the step limit is drawn."""
    from matplotlib.ticker import MaxNLocator

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
    )

    eps = report.episodes
    n = np.arange(1, len(eps) + 1)
    wins = np.cumsum([e.success for e in eps])
    band = np.array([wilson_interval(int(w), int(k)) for w, k in zip(wins, n)])
    fig = _new_figure(10.0, 4.2)
    top = figure_title(
        fig, f"{report.task} · {report.policy}",
        f"success {report.successes}/{plural(len(eps), 'episode')} at {report.control_hz:g} Hz, "
        f"strategy {report.strategy['kind']}",
    )
    _grid_margins(fig, 1, 2, top=top, bottom=0.95, wgap=0.9)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.fill_between(n, band[:, 0], band[:, 1], color=LINE_COLOR, alpha=0.2, lw=0, label="95 % Wilson CI")
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
    ax2.set_xlabel("episode seed", fontsize=LABEL_FONTSIZE)
    ax2.set_ylabel(f"episode length [control steps at {report.control_hz:g} Hz]", fontsize=LABEL_FONTSIZE)
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=TICK_FONTSIZE)
        ax.grid(alpha=0.3)
        # below the axes: over them, the legend hid the CI band it explains
        ax.legend(fontsize=LEGEND_FONTSIZE, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)
    return fig
