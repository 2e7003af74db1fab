"""`worldpolicy sim`: roll a policy out in the MuJoCo tabletop and report its success rate."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from worldpolicy.cli import (
    DEVICE_HELP,
    add_api_key_flags,
    add_center_crop_flag,
    add_json_flag,
    center_crop_option,
    continue_command,
    lines_for_people,
    pixel_size,
    print_json,
    run_json,
)
from worldpolicy.extras import run_record, software_changes
from worldpolicy.fileio import (
    REPORT_FILE,
    SIM_CANDIDATES_DIR,
    SIM_EPISODES_CSV,
    SIM_EPISODES_FILE,
    SIM_LOG_FILE,
    SIM_REPORT_FIGURE,
    SIM_REPORT_FILE,
    SIM_REPORT_MARKDOWN,
    exit_status,
    how_stopped,
)
from worldpolicy.logcapture import console_may_close, is_terminal, run_log
from worldpolicy.planning import PLAN_CANDIDATES
from worldpolicy.sim.perturb import check_rewording, parse_perturbations, perturbation_help
from worldpolicy.sim.progress import SCORER_REWARDS, SCORERS
from worldpolicy.sim.scenes import DEFAULT_IMAGE_SIZE  # --image-size's default, as TabletopEnv's
from worldpolicy.sim.tasks import (  # EVAL_SEED: --seed's default, here too; DEFAULT_CONTROL_HZ: random's rate
    BUILTIN_POLICIES,
    DEFAULT_CONTROL_HZ,
    EVAL_SEED,
    LATENCY_ACCEPTED,
    list_tasks,
    warn_training_scenes,
)
from worldpolicy.viz.commands import RERUN_FLAGS, add_rerun_flags, rerun_target

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "sim",
        help="evaluate a policy (checkpoint, ws:// server, scripted, random) on a simulated Franka Panda",
        description="Roll out a policy on a MuJoCo Panda tabletop task seen by DROID-placed cameras; writes "
        "report.json/.md/.png, episodes.jsonl/.csv (a line, a row per episode), sim.log (the console's lines, timed, "
        "and a line per episode), index.html and side-by-side mp4s "
        "(sim cameras | imagined video). "
        "`worldpolicy sim compare RUN_A RUN_B ...` compares finished runs.",
        absent_flags={"--checkpoint": "sim takes the checkpoint as --policy CKPT (shipped, a folder or a hub id; also "
                                      "ws://HOST:PORT, scripted, random)"},
    )
    _add_arguments(p)
    p.set_defaults(func=run)
    actions = p.add_subparsers(dest="sim_command", metavar="[compare]")
    c = actions.add_parser(
        "compare",
        help="compare finished sim runs of one task: success rates with Wilson CIs, a paired exact McNemar test on "
        "their shared seeds, the settings that differ",
        description="Compare finished `worldpolicy sim` runs of one task side by side: each run's success rate with "
        "its Wilson 95 % CI, each pair tested on the seeds both ran (exact McNemar; with more than one pair, the "
        "verdict on its Holm-Bonferroni adjusted p), and which settings (flags) differ. Writes "
        "compare.json/.md/.png, compare.csv (a row per run), compare_pairs.csv (a row per pair) and "
        "index.html into --out and prints the table.",
    )
    c.add_argument("runs", nargs="+", metavar="RUN", help="sim run folders (two or more), as `worldpolicy sim --out` "
                   "wrote them")
    c.add_argument("--out", dest="compare_out", metavar="DIR", type=Path, required=True,
                   help="output folder for compare.json/.md/.png/.csv, compare_pairs.csv and index.html")
    c.add_argument("--no-plots", dest="compare_no_plots", action="store_true", help="no compare.png or index.html")
    add_json_flag(c, "the comparison (compare.json's fields) with run_dir and the files written", dest="compare_json")
    c.set_defaults(func=compare)


def check_ensemble_decay(strategy: str | None, decay: float | None) -> None:
    """`--ensemble-decay` without `--strategy ensemble` would be ignored, and the run look as asked: refused (sim and
    `dataset from-sim --policy` alike)."""
    if decay is not None and strategy != "ensemble":
        raise ValueError(f"--ensemble-decay {decay:g} weighs the chunks --strategy ensemble blends; --strategy "
                         f"{strategy or 'execute'} blends none: add --strategy ensemble or leave --ensemble-decay out")


def _milliseconds(text: str) -> float:
    """argparse type of `--latency`: milliseconds as `rollout.latency_ticks` accepts them, so a word, a negative number
    and nan or inf are refused alike, with the usage, the flag and the text as typed (`-5` was refused later, as -5.0);
    the step limit is `latency_ticks`' to check, with the env's."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"expected {LATENCY_ACCEPTED}, e.g. 200; got {text!r}")
    return value


def add_latency_flags(p: argparse.ArgumentParser, recorded: str, effect: str = "") -> None:
    """--latency and --rtc, parsed alike by `worldpolicy sim` and `dataset from-sim` (a policy's recording); `recorded`
    says where the run keeps them, `effect` where --rtc's effect shows."""
    p.add_argument("--latency", type=_milliseconds, default=0.0, metavar="MS",
                   help="simulated inference time of each request, in ms: the sim steps on until its reply lands, as "
                   "your robot would (execute holds the arm, async runs its chunk on, ensemble's chunks start that "
                   "much later; ensemble, and async with --rtc, refuse one of the policy's chunk or more); rounded "
                   f"to the nearest whole control step at --control-hz (halves up), {recorded} "
                   "(default: %(default)g, none)")
    p.add_argument("--rtc", action="store_true",
                   help="real-time chunking, with --strategy async and a model policy (checkpoint or ws://): each "
                   "next chunk is asked to begin with the running chunk's actions that run while it is computed "
                   "(--latency), so the hand-over does not jump; best with a checkpoint fine-tuned for it "
                   f"(docs/training.md){effect} (default: off)")


# `--episodes` when not given, and not resuming a run (which asked for its own)
DEFAULT_EPISODES = 10


def _check_plan(args: argparse.Namespace) -> None:
    """--plan and --plan-scorer before anything loads (`progress.check_plan`, its errors naming the flags); the scorer
    against the checkpoint's cameras once its embodiment is known (`_plan_scorer`). Sets --plan-scorer's default."""
    from worldpolicy.sim.progress import check_plan

    try:
        args.plan_scorer = check_plan(args.plan, args.plan_scorer, policy=args.policy, num_envs=args.num_envs,
                                      rtc=args.rtc)
    except ValueError as exc:
        raise _as_flag(exc) from None
    if args.plan_save_candidates and args.plan is None:
        raise ValueError("--plan-save-candidates writes a planner's candidates, and no --plan is given: nothing is "
                         "planned; give --plan N, or leave --plan-save-candidates out")
    if args.plan_save_candidates and args.videos == 0:
        raise ValueError("--plan-save-candidates writes the candidates of the recorded episodes, and --videos 0 "
                         "records none; give --videos N (the first N episodes), or leave --plan-save-candidates out")


def _plan_scorer(args: argparse.Namespace, embodiment):
    """--plan-scorer's scorer of the frames the checkpoint's `embodiment` imagines (`progress.scorer_for`, refused
    naming the flag where it cannot read its cameras); None without --plan."""
    from worldpolicy.sim.progress import scorer_for

    return None if args.plan is None else scorer_for(args.plan_scorer, embodiment, "--plan-scorer")


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", default="shipped",
                   help="shipped (default: the model in the package) | CHECKPOINT dir (diffusers-format or LoRA "
                   "adapter) | ws://HOST:PORT | scripted | random")
    p.add_argument("--all-checkpoints", action="store_true",
                   help="with --policy RUN, a training run's folder: evaluate each checkpoint it saved "
                   "(checkpoints/step-*) on the same seeds and settings, each into its own --out/step-NNNNNNN, and "
                   "write sweep.csv/.json/.png into --out: success rate with its 95 %% CI against the training step, "
                   "the best checkpoint named; --resume skips the checkpoints finished and runs the rest (new ones "
                   "too), --overwrite starts over")
    p.add_argument("--task", default=None,
                   help=f"one of {', '.join(list_tasks())} (default: the task of the policy's embodiment, a "
                   "checkpoint's or a ws:// server's: reach for the shipped model and checkpoints fine-tuned from "
                   "it, else pick_place)")
    p.add_argument("--episodes", type=int, default=None,
                   help=f"episodes to run (default: {DEFAULT_EPISODES}; with --resume, as many as the stored run "
                   "asked for: an interrupted run is finished)")
    p.add_argument("--seed", type=int, default=EVAL_SEED,
                   help="episode i uses seed + i (scene and sampling) (default: %(default)s, past the scenes "
                   "`dataset from-sim` records from 0: held out from a checkpoint trained on them)")
    p.add_argument("--robot", default="panda",
                   help="panda | fr3 | menagerie_panda | path to a Menagerie panda.xml | a robot file (*.json: "
                   "RobotConfig's fields, docs/robot.md) (default: %(default)s)")
    p.add_argument("--embodiment", default=None,
                   help="action space: a name from `worldpolicy embodiments` or a spec file (*.json) (default: a "
                   "checkpoint's own, its embodiment.json or trainer_state.json; a ws:// server's metadata; "
                   "else droid; "
                   "random: droid/relative_pose)")
    p.add_argument("--strategy", choices=("execute", "ensemble", "async"), default="execute",
                   help="execute (default): k actions of each chunk, then ask again; ensemble: a chunk every k "
                   "steps (k = 1 unless --execute-steps says), the actions of those covering a step blended; async: the "
                   "next chunk computed while this one runs")
    p.add_argument("--execute-steps", type=int, default=None,
                   help="k actions per chunk (default: the model's execute_steps for execute, else per strategy)")
    p.add_argument("--ensemble-decay", type=float, default=None,  # None: ChunkStrategy's, and not given
                   help="with --strategy ensemble: weight exp(-decay * i) of the i-th oldest chunk covering a step, "
                   "as ACT (default: 0.1)")
    add_latency_flags(p, "recorded in report.json; compare a run with a clean one by `sim compare` (same --seed)",
                      "; report.json's hand-over jumps show the effect")
    p.add_argument("--control-hz", type=float, default=None,  # None: the policy's rate (`_run_held`)
                   help=f"control rate, in Hz (default: the policy's fps, its embodiment's: a local checkpoint's read "
                   f"before it loads, a server's or hub model's once connected; {DEFAULT_CONTROL_HZ:g} for random "
                   "actions); another than the policy's is warned about")
    p.add_argument("--max-steps", type=int, default=None, help="episode step limit (default: the task's)")
    p.add_argument("--image-size", default="x".join(map(str, DEFAULT_IMAGE_SIZE)),
                   help="HxW of each camera image (default: %(default)s)")
    p.add_argument("--perturb", action="append", default=None, metavar="SPEC",
                   help="a controlled shift on top of every episode's scene, for robustness runs compared with a clean "
                   "one by `sim compare` (same --seed): " + perturbation_help() + "; repeat the flag or give a comma "
                   "list (default: none)")
    p.add_argument("--prompt-template", default=None, metavar="TEXT",
                   help="every episode's instruction in your own words, the same seeds' scenes, e.g. \"move to the "
                   "{color} {object}\": {color} and {object} name what the task acts on (reach's ball, the cube), "
                   "{goal_color} and {goal} where it goes (push, pick_place); recorded in report.json, so `sim "
                   "compare` against a run without it (same --seed) says whether the wording mattered; --perturb "
                   "prompt=paraphrase draws the task's own rewordings instead (default: the task's wording)")
    p.add_argument("--num-envs", type=int, default=1, metavar="N",
                   help="episodes in flight at once, each env starting the next seed as soon as its episode ends, "
                   "their model requests on the same step answered by one batched forward (the same episodes, up to "
                   "batched-float rounding, in fewer model calls); a checkpoint policy, or a ws:// server, sent a "
                   "step's requests at once over up to its --max-batch connections so it fuses them; any --strategy "
                   "(default: %(default)s, one episode at a time)")
    p.add_argument("--videos", type=int, default=1,
                   help="record mp4s of the first N episodes (default: %(default)s), captioned with the episode, its "
                   "step and its outcome; only those are rendered for scripted and random, which see no cameras")
    p.add_argument("--imagine", action="store_true", help="ask the policy for its imagined video (side-by-side)")
    p.add_argument("--plan", type=int, default=None, metavar="N",
                   help="best-of-N planning, with a checkpoint policy: each chunk is chosen among N sampled ones by "
                   "the score (--plan-scorer) of the future the model imagines for it (its forward dynamics), at N "
                   "samples and N imagined videos per chunk; report.json keeps each decision's scores, and "
                   "`sim compare` against a run without --plan on the same --seed says whether it paid; with "
                   "--imagine the videos show the chosen future and its score; "
                   f"N from {PLAN_CANDIDATES[0]} to {PLAN_CANDIDATES[1]} (default: none, the plain policy)")
    p.add_argument("--plan-save-candidates", action="store_true",
                   help=f"with --plan: also write every candidate's imagined future of each decision of the recorded "
                   f"episodes (--videos), side by side, each captioned with its score and the one run marked: "
                   f"{SIM_CANDIDATES_DIR}/episode_SEED_decision_J.mp4, J the episode's policy call from 0 "
                   "(default: off; the episode videos show the chosen future alone, with --imagine)")
    p.add_argument("--plan-scorer", choices=SCORERS, default=None,
                   help=f"with --plan: what ranks the imagined futures: reach ({SCORER_REWARDS['reach']}; the "
                   "checkpoint's cameras stacked top to bottom) (default: reach)")
    p.add_argument("--steps", type=int, default=None,
                   help="denoising steps, >= 1 (checkpoint policies) (default: the embodiment's sampling preset, "
                   "else 4)")
    p.add_argument("--device", default=None, help=f"checkpoint policies' {DEVICE_HELP}")
    add_center_crop_flag(p)
    add_api_key_flags(p)
    p.add_argument("--out", type=Path, default=Path("sim_runs"), help="output folder (default: %(default)s)")
    p.add_argument("--no-plots", action="store_true", help="no report.png or index.html")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_flag(p, "the report (report.json's fields) with run_dir and the files written")
    add_rerun_flags(p, "every step of the episodes this run runs, as they run (docs/robot.md): under "
                    "episode_SEED/, the camera images the policy was asked with, the joints measured, the targets "
                    "sent, each chunk as it arrived, the imagined future, the distance to done and the outcome; with "
                    "--resume, the episodes it adds; Ctrl-C or a failure keeps the file of what was logged")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out (interrupted, or to more --episodes): only the episodes it has not "
                   "finished run; every setting must be the stored run's")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the sim run already in --out (its reports, plot and videos); without it (or "
                   "--resume) such a folder is refused, so a rerun never throws away finished episodes")


def compare(args: argparse.Namespace) -> int:
    """`worldpolicy sim compare`: the runs compared (`sim.compare`), written to --out, the table printed. A flag of a
    sim run given before `compare` would be ignored, so it is refused."""
    from worldpolicy.sim.compare import check_compare_out, compare_runs, write_comparison

    parser = argparse.ArgumentParser(add_help=False)
    _add_arguments(parser)
    given = [action.option_strings[0] for action in parser._actions
             if getattr(args, action.dest) != action.default]
    if given:
        raise ValueError(f"{', '.join(given)}: a flag of a sim run, which `sim compare` does not run; its own flags "
                         "(--out, --no-plots, --json) come after `compare`")
    check_compare_out(args.compare_out)  # before any run is read
    comparison = compare_runs(args.runs)
    paths = write_comparison(comparison, args.compare_out, plots=not args.compare_no_plots)
    with lines_for_people(args.compare_json):
        print(comparison.table(_terminal_width()))
        for path in paths:
            print(f"  {path}")
    if args.compare_json:
        print_json(run_json(comparison.to_json(), args.compare_out, paths))
    return 0


def _terminal_width() -> int | None:
    """The columns of the terminal stdout is (`shutil.get_terminal_size`: $COLUMNS, where set, first); None where
    stdout is a pipe, a file or closed (`is_terminal`) and no $COLUMNS says a width: it gets the whole table, as git
    and rich print to one."""
    import os
    import shutil

    if "COLUMNS" not in os.environ and not is_terminal(sys.stdout):
        return None
    return shutil.get_terminal_size().columns


def _resume_command(args: argparse.Namespace, resume: bool = True) -> str:
    """The command line that continues this run (`cli.continue_command`; `resume=False`: the one that makes it, which
    report.json records as `command`): --seed always named, as its default changed once, from 0: the command printed
    by one version continues the same scenes under the next; --api-key left out, a secret is not printed, and
    --overwrite, which --resume is refused with; to continue, the rerun flags too: a resumed run records the episodes
    it adds, so the same --rerun file would lose the first session's (pass one again to record them)."""
    rerun = ("rerun", "rerun_spawn", "rerun_connect") if resume else ()
    return continue_command("worldpolicy sim", _add_arguments, args, left_out=("api_key", "overwrite", *rerun),
                            always=("seed",), resume=resume)


def _image_size(text: str) -> tuple[int, int] | None:
    return None if text.lower() == "none" else pixel_size("--image-size", text, "180x320 (or none)")


FLAGS = {"control_hz": "--control-hz", "image_size": "--image-size", "execute_steps": "--execute-steps",
         "ensemble_decay": "--ensemble-decay", "robot": "--robot",  # what TabletopEnv and ChunkStrategy check
         "latency_ms": "--latency",  # what rollout.latency_ticks checks
         "rtc": "--rtc",  # what robot.control.check_rtc and policies.check_rtc_policy check
         "strategy": "--strategy",  # what rollout.check_latency_chunk names
         "episodes": "--episodes",  # what evaluate.episodes_left checks for --resume
         "num_envs": "--num-envs",  # what sim.batch.check_num_envs checks
         # what make_policy and Policy.check_pretrained check (the checkpoint is --policy here)
         "policy": "--policy", "checkpoint": "--policy", "embodiment": "--embodiment", "steps": "--steps",
         "device": "--device", "center_crop": "--no-center-crop", "ca_file": "--tls-ca",  # what RemotePolicy checks
         "timeout_s": "--server-timeout-s",
         "plan": "--plan", "plan_scorer": "--plan-scorer"}  # what progress.check_plan checks


def _as_flag(exc: Exception) -> Exception:
    """The API's error names its parameter first (`control_hz: ...`); on the command line the flag is what to fix."""
    from worldpolicy.cli import flag_named

    return flag_named(exc, FLAGS)


def _refuse_previous_run(out: Path) -> None:
    """A folder that holds a sim run is written again only with --resume or --overwrite: a rerun of the command as
    first typed (the --resume left off after an interruption, or a reused --out) replaced it, throwing away episodes
    that may have taken hours."""
    from worldpolicy.sim.evaluate import read_report

    if not (out / SIM_REPORT_FILE).is_file():
        return
    try:  # its episodes as --resume reads them (episodes.jsonl: report.json may be a summary behind)
        stored = read_report(out)
        n = len(stored.episodes)
        held = f"{n} of {max(n, stored.requested)} episodes of {stored.task} · {stored.policy}"
    except (OSError, ValueError):
        held = SIM_REPORT_FILE
    raise ValueError(f"--out: {str(out)!r} holds a sim run ({held}); pass --resume to continue it, --overwrite to "
                     "replace it, or choose another --out")


def _clear_previous_run(out: Path) -> None:
    """Remove what an earlier sim run left in `out` (its reports, plot and episode videos), so the folder describes one
    run even if this one fails before its first report. Called once every check has passed; a folder without a sim
    report is left alone."""
    import json

    from worldpolicy.sim.evaluate import SCHEMA

    try:
        previous = json.loads((out / SIM_REPORT_FILE).read_text())
    except (OSError, ValueError):
        return
    if not isinstance(previous, dict) or previous.get("schema") != SCHEMA:
        return
    # the marker last: an interrupted clear is still recognised as a sim run
    for path in [out / REPORT_FILE, out / SIM_REPORT_FIGURE, out / SIM_REPORT_MARKDOWN, out / SIM_EPISODES_CSV,
                 out / SIM_EPISODES_FILE, out / SIM_LOG_FILE, *episode_videos(out), *candidate_videos(out),
                 out / SIM_REPORT_FILE]:
        if path.is_file():
            path.unlink()
    logger.info("--out %s: replacing the previous sim run there", out)


def _stored_run(out: Path):
    """The report --resume continues, read before anything loads."""
    from worldpolicy.sim.evaluate import read_report

    try:
        return read_report(out / SIM_REPORT_FILE)
    except FileNotFoundError:
        raise ValueError(f"--resume: {str(out)!r} holds no sim report ({SIM_REPORT_FILE}) to continue; drop --resume to "
                         "start a run there") from None
    except ValueError as exc:
        raise ValueError(f"--resume: {exc}; pass --overwrite instead of --resume to start over there") from None


def _episodes_left(args: argparse.Namespace, previous, current) -> range:
    """The episodes --resume runs: refused, naming each flag, old -> new, when the stored run differs (`current`: the
    new run's `start_report`), and naming each definition when it was judged or driven by another version of the task
    or the baseline policy (`version_changes`), which no flag brings back. Other software (a package upgraded since)
    is warned of, not refused (`extras.software_changes`)."""
    from worldpolicy.sim.evaluate import episodes_left, flag_of, resume_conflicts, version_changes

    report = args.out / SIM_REPORT_FILE
    versions = version_changes(previous, current)
    if versions:
        shown = "; ".join(f"{what}: v{old} -> v{new}" for what, old, new in versions)
        raise ValueError(f"--resume: the run in {str(args.out)!r} was judged or driven by other versions ({report}), "
                         f"old -> new: {shown}. Its episodes and this worldpolicy's would not make one success rate: "
                         "start a new run with another --out, or pass --overwrite instead of --resume to rerun it "
                         "(replacing it)")
    try:
        changes = resume_conflicts(previous, current.settings())
    except ValueError as exc:
        raise ValueError(f"--resume: {report}: {exc}; pass --overwrite instead of --resume to start over "
                         "(replacing it)") from None
    if changes:
        kind = previous.policy_settings.get("kind")  # the same as now: another kind lists only itself

        def said(value) -> str:  # None: not given (no --perturb, no --execute-steps), as --help and compare say it
            return "none" if value is None else repr(value)

        shown = "; ".join(dict.fromkeys(f"{flag_of(name, kind)}: {said(old)} -> {said(new)}"
                                        for name, old, new in changes))
        raise ValueError(f"--resume: the run in {str(args.out)!r} ran with other settings ({report}), old -> new: "
                         f"{shown}. Pass the old values to continue it, or --overwrite instead of --resume to start "
                         "over (replacing it)")
    try:
        left = episodes_left(previous, current, args.episodes)
    except ValueError as exc:
        raise _as_flag(exc) from None
    if left and (upgraded := software_changes(previous.software, current.software)):  # not refused: said
        logger.warning("--resume: the run in %s ran on other software: %s; its episodes so far keep theirs, "
                       "report.json says this session's", args.out, "; ".join(upgraded))
    return left


# The task an embodiment was made for, where the simulator has it: a checkpoint fine-tuned from the shipped model keeps
# its embodiment.json, so it is evaluated on the task it learned unless --task says otherwise.
EMBODIMENT_TASKS = {"panda_reach": "reach"}


def _default_task(policy: str) -> str:
    from worldpolicy.policy import checkpoint_spec

    try:
        spec = checkpoint_spec(policy) if Path(policy).is_dir() else None
    except (OSError, ValueError):  # an unreadable embodiment.json is reported when the checkpoint loads
        spec = None
    return EMBODIMENT_TASKS.get(spec.get("name") if isinstance(spec, dict) else None, "pick_place")


def _open_env(args: argparse.Namespace, image_size: tuple[int, int] | None):
    """The task's env, its renderer opened: a machine that cannot render says so now, before a checkpoint loads or
    --out is cleared."""
    from worldpolicy.sim.env import TabletopEnv

    try:
        env = TabletopEnv(args.task, args.robot, control_hz=args.control_hz, image_size=image_size,
                          max_steps=args.max_steps, perturb=args.perturb, prompt_template=args.prompt_template)
    except (ValueError, KeyError, FileNotFoundError) as exc:  # KeyError: an unknown --robot (or its MJCF not there)
        raise _as_flag(exc) from None
    if image_size is not None:
        env.open_renderer()
    return env


def _check_latency(args: argparse.Namespace, env) -> None:
    """--latency against the env's step limit (`rollout.latency_ticks`): before any weights load."""
    from worldpolicy.sim.rollout import latency_ticks

    try:
        latency_ticks(args.latency, env.control_hz, env.max_steps)
    except ValueError as exc:
        raise _as_flag(exc) from None


def _check_chunk(args: argparse.Namespace, env, strategy, embodiment, chunk: int) -> None:
    """--execute-steps and --latency against the policy's chunk (`rollout.check_chunk_timing`: k too long, ensemble's
    replies all past, --rtc with none in flight): before any episode, and before an --overwrite clears the run there."""
    from worldpolicy.sim.rollout import check_chunk_timing

    try:
        check_chunk_timing(strategy, embodiment, chunk, args.latency, env.control_hz, rtc=args.rtc,
                           setting="--execute-steps")
    except ValueError as exc:
        raise _as_flag(exc) from None


def _checked_checkpoint(args: argparse.Namespace):
    """`Policy.check_pretrained` of --policy CHECKPOINT (embodiment, sampling, device, dtype), its errors naming the
    flags: what sim can know of a checkpoint before its weights load."""
    from worldpolicy.policy import Policy

    try:
        return Policy.check_pretrained(args.policy, args.embodiment, steps=args.steps, device=args.device)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise _as_flag(exc) from None


def _unloaded_checkpoint(args: argparse.Namespace, image_size: tuple[int, int] | None):
    """A checkpoint's embodiment and `policy_settings` before its weights load (what `Policy.check_pretrained`
    resolves), so --resume refuses another run's settings without loading a model."""
    from worldpolicy.planning import planner_settings
    from worldpolicy.policy import resolved_center_crop
    from worldpolicy.sim.policies import checkpoint_settings

    emb, sampling, device, dtype = _checked_checkpoint(args)
    settings = checkpoint_settings(args.policy, sampling, chunk_size=emb.chunk_size,
                                   resolution_tier=emb.resolution_tier, device=device, dtype=dtype,
                                   decode_video=args.imagine, image_size=image_size,
                                   center_crop=resolved_center_crop(args.policy, center_crop_option(args)))
    scorer = _plan_scorer(args, emb)  # a planned run's settings: its checkpoint's and its planner's, as policy_settings
    return emb, settings if scorer is None else {**settings, **planner_settings(scorer, args.plan)}


def run(args: argparse.Namespace, *, episode_done: Callable[[], None] | None = None, in_sweep: bool = False) -> int:
    """`worldpolicy sim`; `episode_done`: called after each episode is kept (a sweep's progress bar,
    `_run_sweep`); `in_sweep`: a checkpoint's run in a sweep (`_run_sweep`), whose console has its result line alone,
    not its files (sweep.csv names each run's folder) nor how to continue it alone (the sweep says how to continue it
    all), as its sim.log has them."""
    from worldpolicy.fileio import folder_lock, output_folder
    from worldpolicy.models import resolve_checkpoint

    rerun = _rerun_target(args)  # before anything loads: a bad target, or no rerun extra
    if args.all_checkpoints:
        if rerun is not None:
            raise ValueError(f"{'/'.join(RERUN_FLAGS)}: a recording of one run's episodes; --all-checkpoints runs a "
                             "run per checkpoint: record one checkpoint's run (--policy RUN/checkpoints/step-N)")
        return _run_sweep(args)
    # before any value is resolved: the command as given, to continue the run and as report.json's `command`
    commands = (_resume_command(args), run_record(_resume_command(args, resume=False)))
    args.policy = resolve_checkpoint(args.policy)
    _refuse_training_run(args.policy)
    task_given = args.task is not None
    args.task = args.task or _default_task(args.policy)
    if args.task not in list_tasks():
        raise ValueError(f"--task: unknown task {args.task!r}; accepted: {', '.join(list_tasks())}")
    if args.episodes is not None and args.episodes < 1:
        raise ValueError(f"--episodes: expected >= 1, got {args.episodes}")
    if args.seed < 0:
        raise ValueError(f"--seed: expected >= 0 (episode i uses seed + i), got {args.seed}")
    if args.max_steps is not None and args.max_steps < 1:
        raise ValueError(f"--max-steps: expected >= 1 (or leave it out for the task's default), got {args.max_steps}")
    if args.videos < 0:
        raise ValueError(f"--videos: expected >= 0, got {args.videos}")
    check_ensemble_decay(args.strategy, args.ensemble_decay)
    _check_plan(args)
    args.perturb = parse_perturbations(args.perturb, "--perturb")
    args.prompt_template = check_rewording(args.perturb, args.prompt_template, args.task,
                                           ("--prompt-template", "--perturb"))
    image_size = _image_size(args.image_size)
    needs_images = args.policy not in BUILTIN_POLICIES
    if needs_images and image_size is None:
        raise ValueError("--image-size none: a model policy needs camera images")
    if image_size is None and args.videos > 0:
        raise ValueError(f"--image-size none renders no cameras, so --videos {args.videos} cannot record; "
                         "pass --videos 0 or an image size")
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in --out, --overwrite replaces it: pass one of them")
    # before anything loads; a folder of other runs (the demo's runs/demo) is refused too: this run's report, page
    # and videos would lie at its top, in among them
    output_folder(args.out, "--out", writer="sim", not_over_runs=True)
    # held for the whole run, before its report is read: a second sim on this --out (a --resume of a run still going)
    # would write its episodes into the same report. The session's lines go to its sim.log from when its episodes are
    # about to run (`_run_held` starts it): a session refused before, or one with nothing to run, writes nothing there.
    # A console found gone (`| head` had its lines, a killed `| tee`, a closed ssh session) is no longer written and the
    # run goes on (`logcapture.console_may_close`: said once, in sim.log), as a training run does
    with folder_lock(args.out, "--out"), run_log(args.out / SIM_LOG_FILE, held=True) as log, console_may_close():
        again, made_by = commands
        log.session_started(again if args.resume else made_by["command"], made_by["software"].get("worldpolicy"))
        try:
            return _run_held(args, commands, task_given, image_size, needs_images, log, episode_done,
                             in_sweep=in_sweep)
        except BaseException as stop:
            log.session_stopped(stop)
            raise


def _rerun_target(args: argparse.Namespace):
    """The `viz.rerun.RerunTarget` the rerun flags name (viz's: `viz.commands.rerun_target`), the extra checked; None
    where none is given."""
    target = rerun_target(args)
    if target is not None:
        from worldpolicy.viz.rerun import check_rerun

        check_rerun()
    return target


def _refuse_training_run(policy: str) -> None:
    """--policy naming a training run's folder (or its checkpoints/) is refused as every command refuses it as a
    checkpoint (`engine.sources.check_checkpoint_source`: its newest checkpoint named), the sweep of them all named
    too, before anything else is checked."""
    from worldpolicy.engine.sources import check_checkpoint_source
    from worldpolicy.fileio import folder_kind

    path = Path(policy)
    run = path.parent if path.name == "checkpoints" else path
    if path.is_dir() and (found := folder_kind(run)) is not None and found[0].writer == "train":
        try:
            check_checkpoint_source(policy, run_hint=f"; or, to evaluate every one of them, --policy {run} "
                                                     "--all-checkpoints")
        except (ValueError, FileNotFoundError) as exc:
            raise _as_flag(exc) from None


def _run_sweep(args: argparse.Namespace) -> int:
    """`worldpolicy sim --policy RUN --all-checkpoints`: each checkpoint the training run saved
    (`sweep.run_checkpoints`, refused before anything loads where RUN is none or holds none) run as `worldpolicy sim
    --policy CKPT --out OUT/step-NNNNNNN` with the sweep's other flags (the same seeds), resumed with --resume as such a
    run is (a finished one loads no model); one progress bar over checkpoints x episodes; then the learning curve
    (`sweep.write_sweep`) and the best checkpoint. --out is held for the whole of it; sweep.json, its marker, is
    written first (removed again where the first run is refused before any episode). A console found gone is no
    longer written and the sweep goes on (`logcapture.console_may_close`, as each run's): the progress bar over the
    runs is written outside them, and the first line it wrote to a gone console stopped the sweep."""
    import shutil

    from worldpolicy.fileio import SWEEP_FILE, folder_kind, folder_lock, output_folder
    from worldpolicy.logcapture import progress_bar
    from worldpolicy.sim.evaluate import read_report
    from worldpolicy.sim.sweep import SWEEP_CSV, SWEEP_FIGURE, read_sweep, run_checkpoints, stored_sweep, write_sweep

    again = _resume_command(args)
    checkpoints = run_checkpoints(str(args.policy))
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the sweep in --out, --overwrite replaces it: pass one of them")
    run_dir = str(Path(args.policy).absolute())
    output_folder(args.out, "--out", writer="sim sweep", not_over_runs=True)
    with folder_lock(args.out, "--out"), console_may_close():
        stored = stored_sweep(args.out)
        if stored is not None and not (args.resume or args.overwrite):
            raise ValueError(f"--out: {str(args.out)!r} holds a sweep of {stored['run']}'s checkpoints; pass --resume "
                             "to continue it (the checkpoints finished are skipped), --overwrite to replace it, or "
                             "choose another --out")
        if args.resume and stored is None:
            raise ValueError(f"--resume: {str(args.out)!r} holds no sweep ({SWEEP_FILE}) to continue; "
                             "drop --resume to start one there")
        if args.resume and Path(stored["run"]) != Path(run_dir):
            raise ValueError(f"--resume: the sweep in {str(args.out)!r} evaluated the checkpoints of {stored['run']}, "
                             f"not of {run_dir}: give that --policy, or another --out")
        if args.episodes is None:  # as many as the sweep's runs asked for: a new checkpoint runs as many as the rest
            asked = [row["episodes_requested"] for row in (stored or {}).get("checkpoints") or []]
            args.episodes = max(asked) if args.resume and asked else DEFAULT_EPISODES
        if args.overwrite and stored is not None:  # the previous sweep's runs, checkpoints rotated away included
            for folder in args.out.glob("step-*"):
                if (found := folder_kind(folder)) is not None and found[0].writer == "sim":
                    shutil.rmtree(folder)
            for name in (SWEEP_CSV, SWEEP_FIGURE, REPORT_FILE):
                (args.out / name).unlink(missing_ok=True)
        write_sweep(read_sweep(args.out, run_dir, again), args.out, plots=False)  # the marker, before any run
        kept = 0
        for _, ckpt in checkpoints:
            if args.resume and (args.out / ckpt.name / SIM_REPORT_FILE).is_file():
                kept += min(len(read_report(args.out / ckpt.name).episodes), args.episodes)
        bar = progress_bar(total=len(checkpoints) * args.episodes, initial=kept, unit="ep",
                           desc=f"{Path(run_dir).name}: {len(checkpoints)} checkpoints", disable=args.no_progress)
        done, ran = 0, []  # checkpoints finished, episodes run in this session

        def episode_done() -> None:
            ran.append(1)
            bar.update(1)

        try:
            for _, ckpt in checkpoints:
                one = argparse.Namespace(**vars(args))
                one.policy, one.out, one.all_checkpoints = str(ckpt), args.out / ckpt.name, False
                one.resume = args.resume and (one.out / SIM_REPORT_FILE).is_file()
                one.overwrite, one.no_progress, one.json = False, True, False
                bar.set_postfix(checkpoint=ckpt.name)
                with lines_for_people(args.json):
                    run(one, episode_done=episode_done, in_sweep=True)
                done += 1
        except BaseException as exc:
            if stored is None and not read_sweep(args.out, run_dir).points:  # refused before any episode: no sweep
                for name in (SWEEP_CSV, SWEEP_FILE):
                    (args.out / name).unlink(missing_ok=True)
            # else refused before any episode ran (a resumed sweep's flag its runs refuse): that command fails again
            elif done or ran or isinstance(exc, KeyboardInterrupt):
                print(f"worldpolicy sim --all-checkpoints: {how_stopped(exc)} after {done} of {len(checkpoints)} "
                      f"checkpoints finished; to continue the sweep: {again}", file=sys.stderr)
                if isinstance(exc, KeyboardInterrupt):  # said in full, once (`cli.main` would say it again, bare)
                    return exit_status(exc)
            raise
        finally:
            bar.close()
        sweep = read_sweep(args.out, run_dir, again)
        paths = write_sweep(sweep, args.out, plots=not args.no_plots)
        if args.no_plots:  # an earlier session's figure and page, which this one does not redraw, would show fewer
            for stale in (SWEEP_FIGURE, REPORT_FILE):
                (args.out / stale).unlink(missing_ok=True)
    with lines_for_people(args.json):
        print(f"{sweep.task} · {Path(run_dir).name}: {len(sweep.points)} checkpoints evaluated into {args.out}")
        print(sweep.best_line())
        for path in paths:
            print(f"  {path}")
    if args.json:
        print_json(run_json(sweep.to_json(), args.out, paths))
    return 0


def _run_held(args: argparse.Namespace, commands: tuple[str, dict[str, Any]], task_given: bool,
              image_size: tuple[int, int] | None, needs_images: bool, log,
              episode_done: Callable[[], None] | None = None, *, in_sweep: bool = False) -> int:
    """`run` from the moment --out is held: the rest of its checks (the folder's run, the strategy and policy flags),
    then the episodes. `commands`: the command line that continues the run and the record of the one that made it
    (`_resume_command`, `extras.run_record`: the line and the folder it was typed in). `log`: the folder's sim.log
    (`logcapture.run_log`, held), started once every check has passed and the episodes are about to run, a line per
    episode and the run's result written there too; `episode_done`, `in_sweep`: `run`'s."""
    from worldpolicy.cli import policy_api_key, policy_server_timeout, policy_tls_ca, with_key_hint

    again, made_by = commands

    # first: it picks MuJoCo's GL before the modules below (and the stored run's reader, `sim.evaluate`) import mujoco
    import worldpolicy.sim.env  # noqa: F401
    if not (args.resume or args.overwrite):
        _refuse_previous_run(args.out)
    previous = _stored_run(args.out) if args.resume else None
    if args.episodes is None:  # not given: a resumed run finishes what it asked for, where 10 was refused as too few
        args.episodes = previous.requested if previous is not None else DEFAULT_EPISODES

    from worldpolicy.models import checkpoint_name, served, served_name
    from worldpolicy.robot.control import ChunkStrategy, check_rtc
    from worldpolicy.robot.decode import check_executable
    from worldpolicy.sim.batch import check_num_envs
    from worldpolicy.sim.evaluate import evaluate, keep_report, plan_said, seed_range, start_report, write_report
    from worldpolicy.sim.policies import (
        CandidateVideos,
        check_rtc_policy,
        chunk_size,
        control_hz_for,
        make_policy,
        planned,
        policy_fps,
        policy_kind,
        policy_settings,
        served_metadata,
    )

    try:
        decay = {} if args.ensemble_decay is None else {"ensemble_decay": args.ensemble_decay}
        strategy = ChunkStrategy(args.strategy, args.execute_steps, **decay)
        check_rtc(args.rtc, strategy)
        check_num_envs(args.num_envs, policy=policy_kind(args.policy) if args.num_envs != 1 else args.policy)
    except (ValueError, FileNotFoundError) as exc:
        raise _as_flag(exc) from None
    local = {k: v for k, v in (("steps", args.steps), ("device", args.device),
                               ("center_crop", center_crop_option(args))) if v is not None}
    # a server by its scheme (`models.SERVER_SCHEMES`), as `policy_kind` tells it: "ws" alone took a folder `ws_run`
    # for one, refusing its --steps and skipping its checks before the weights load
    checkpoint = args.policy not in BUILTIN_POLICIES and not served(args.policy)
    if local and not checkpoint:
        raise ValueError(f"--steps/--device/--no-center-crop apply to checkpoint policies only, not {args.policy!r}")
    if args.imagine and args.policy in BUILTIN_POLICIES:  # they imagine nothing: no side-by-side would show it
        raise ValueError(f"--imagine asks a model for its imagined video; --policy {args.policy} has none")
    try:
        check_rtc_policy(args.rtc, args.policy)  # the expert's and random act take no prefix: before anything runs
    except ValueError as exc:
        raise _as_flag(exc) from None
    api_key = policy_api_key(args, args.policy)
    ca_file = policy_tls_ca(args, args.policy)
    timeout_s = policy_server_timeout(args, args.policy)
    if args.embodiment is not None and args.policy == "scripted":  # it would be ignored, and the run look as asked
        raise ValueError(f"--embodiment {args.embodiment} does not apply to --policy scripted: the expert always acts "
                         "in droid/joint_pos (absolute joints); leave --embodiment out")
    record_size = image_size if (needs_images or args.videos > 0) else None
    rate_given = args.control_hz is not None
    emb = None  # a checkpoint's embodiment, once `Policy.check_pretrained` has resolved it
    if not rate_given:  # the policy's rate: a local checkpoint's before the env is made, another's once made (below)
        if checkpoint and Path(args.policy).exists():
            emb = _checked_checkpoint(args)[0]
        args.control_hz = control_hz_for(emb.fps if emb is not None else None)
    env = _open_env(args, record_size)
    # a checkpoint by `models.checkpoint_name`, as every run of one is labelled: `shipped` for the shipped model (its
    # folder's name `panda_reach` was), a hub id as given (`OWNER/NAME@REV` with its revision), `--policy .` by its
    # folder's name (`Path('.').name` is empty: the report was titled 'reach · '); a server's, once connected, by the
    # model it announces and its address (`models.served_name`)
    name = checkpoint_name(str(args.policy)) if checkpoint else args.policy
    policy = None
    finished: list[int] = []
    left: range | None = None  # with --resume: the episodes still to run
    scenes = None  # a checkpoint's (or its server's) training scenes among the episodes (`warn_training_scenes`)

    write_partial = keep_report(args.out)
    # --plan-save-candidates: the recorded episodes' (evaluate's first --videos, by seed) candidates of each decision
    candidates = (CandidateVideos(args.out / SIM_CANDIDATES_DIR, range(args.seed, args.seed + args.videos))
                  if args.plan_save_candidates else None)

    def made(report) -> None:  # the line that began the run, or continued it, and where it was typed
        if previous is None:
            report.command, report.cwd = made_by["command"], made_by["cwd"]
        elif len(report.resumed_by) == len(previous.resumed_by):  # once, at its first episode (evaluate keeps them)
            report.resumed_by.append({"command": again, "cwd": made_by["cwd"]})

    def keep(partial) -> None:  # after every episode: a failure later loses none of the finished ones
        made(partial)
        log.said(_episode_said(partial, args.episodes))
        try:
            write_partial(partial)
        except KeyboardInterrupt:  # held until a summary being written was whole: the summary on the way out keeps it
            finished[:] = [len(partial.episodes)]
            raise
        finished[:] = [len(partial.episodes)]
        if episode_done is not None:
            episode_done()

    def header(embodiment, chunk: int, settings: dict):  # the new run's settings, as --resume compares them
        try:
            return start_report(env, policy_name=name, seed=args.seed, strategy=strategy.for_embodiment(embodiment),
                                episodes=args.episodes, embodiment=embodiment, chunk=chunk, policy_fps=None,
                                policy_settings=settings, latency_ms=args.latency, rtc=args.rtc)
        except ValueError as exc:
            raise _as_flag(exc) from None

    try:
        _check_latency(args, env)
        if previous is not None and checkpoint and (previous.policy_settings or {}).get("files"):
            name = _resumed_label(previous, name)  # the same content under another folder's name: labelled as it was
        if previous is not None and checkpoint:  # compared before the weights load
            emb, settings = _unloaded_checkpoint(args, image_size)
            left = _episodes_left(args, previous, header(emb, emb.chunk_size, settings))
        if left is None or left:  # a finished checkpoint run resumed to as many episodes loads no model
            # a chunk too short for --execute-steps: said before the weights load (minutes at Nano size); a path that
            # is not there is make_policy's to name
            if checkpoint and Path(args.policy).exists():
                emb = emb or _checked_checkpoint(args)[0]
                check_executable(emb, env.robot)
                _check_chunk(args, env, strategy, emb, emb.chunk_size)
                _plan_scorer(args, emb)  # its cameras, which the scorer must be able to read
            if checkpoint:  # once every check before the weights has passed: a refused run is not warned about
                scenes = warn_training_scenes(args.policy, args.task, args.seed, args.episodes)
                _training_data_changed(previous, scenes)
            try:
                policy = make_policy(
                    args.policy, env=env, embodiment=args.embodiment, seed=args.seed, decode_video=args.imagine,
                    api_key=api_key, ca_file=ca_file, timeout_s=timeout_s, **local,
                )
            except ConnectionError as exc:
                raise with_key_hint(exc, "sim") from None
            except (ValueError, KeyError, FileNotFoundError) as exc:  # a bad checkpoint, embodiment or sampling setting
                raise _as_flag(exc) from None
            if getattr(policy, "embodiment", None) is not None:  # e.g. --embodiment pusht: said before any episode
                check_executable(policy.embodiment, env.robot)
            if args.plan is not None:  # a hub id's embodiment is known once fetched: its cameras checked here
                policy = planned(policy, _plan_scorer(args, policy.embodiment), args.plan, candidates)
            served_task = EMBODIMENT_TASKS.get(getattr(getattr(policy, "embodiment", None), "name", None))
            rate_hz = control_hz_for(policy_fps(policy))
            # a server's model is known once connected: its task, as a checkpoint's is before it loads; a server's or
            # a hub model's rate once made, as a local checkpoint's is before the env is
            task = not task_given and served(args.policy) and served_task not in (None, args.task)
            rate = not rate_given and rate_hz != env.control_hz
            if task or rate:
                env.close()
                args.task = served_task if task else args.task
                args.control_hz = rate_hz if rate else args.control_hz
                env = _open_env(args, record_size)
                _check_latency(args, env)  # against its task's step limit and rate
            if served(args.policy):  # the model it announces: the run says which, not only where it was served
                name = served_name(args.policy, served_metadata(policy).get("model"))
            # a chunk too short for --execute-steps: say so now, not after the first inference
            chunk = chunk_size(policy)
            _check_chunk(args, env, strategy, getattr(policy, "embodiment", None), chunk)
            _warn_plan_steps(args, strategy.for_embodiment(policy.embodiment).steps_for(chunk), chunk)
            if previous is None:
                _clear_previous_run(args.out)  # every check passed: --overwrite replaces the previous run
            elif left is None:
                left = _episodes_left(args, previous,
                                      header(policy.embodiment, chunk, policy_settings(policy, env.image_size)))
            if served(args.policy):  # what its server announces of its checkpoint, once every check has passed
                scenes = warn_training_scenes(name, args.task, args.seed, args.episodes, served_metadata(policy))
                _training_data_changed(previous, scenes)
        if left is not None and not left:
            with lines_for_people(args.json):
                print(f"--resume: the run in {args.out} already has its {len(previous.episodes)} episodes; nothing "
                      "to run (a larger --episodes extends it)")
            previous.requested = args.episodes
            report = previous
        else:
            finished[:] = [len(previous.episodes)] if previous is not None else []
            log.start()  # the folder holds this run, which runs: what this session said so far, and on
            # where the run goes, before its progress bar: a bare `worldpolicy sim` (default --out) never said it; a
            # resumed run says which episodes it keeps and which it runs (with --no-progress nothing else did)
            logger.info("sim: %s the run in %s%s (each episode appended to %s as it ends, what this console shows to "
                        "%s; --out picks another folder)", "continuing" if previous is not None else "writing",
                        args.out,
                        "" if previous is None else ": " + _kept_said(args.seed, len(previous.episodes), args.episodes),
                        SIM_EPISODES_FILE, SIM_LOG_FILE)
            with _live_recording(args, name, left) as watch:
                report = evaluate(
                    env, policy, policy_name=name, episodes=args.episodes, seed=args.seed, strategy=strategy,
                    video_dir=args.out / "videos", videos=args.videos if record_size else 0,
                    progress=not args.no_progress, on_episode=keep, resume=previous, latency_ms=args.latency,
                    rtc=args.rtc, num_envs=args.num_envs, training_scenes=scenes,  # as warned of above
                    watch=watch,
                )
            made(report)  # a finished run resumed to as many episodes keeps its report as it was
    except BaseException as exc:
        if finished:
            said = (f"worldpolicy sim: {how_stopped(exc)} after {finished[0]} of {args.episodes} episodes finished; "
                    f"their report: {args.out / SIM_REPORT_FILE}; to continue: {again}")
            if not in_sweep:  # the sweep's own line says how to continue it
                print(said, file=sys.stderr)
            log.said(said)
        # report.json of every kept episode (rewritten at most every SUMMARY_INTERVAL_S while it ran), its figure
        kept = write_partial.stopped()
        if kept is not None and not args.no_plots:
            _draw_kept(kept, args.out)
        if finished and not in_sweep and isinstance(exc, KeyboardInterrupt):  # said in full above: returned, not
            log.session_stopped(exc)  # raised, which `cli.main` said again, bare (and `run` logs as this does)
            return exit_status(exc)  # the shell's code: 130 Ctrl-C, 143 SIGTERM, 138 SIGUSR1
        raise
    finally:
        getattr(policy, "close", lambda: None)()
        env.close()
    paths = write_report(report, args.out, plots=not args.no_plots)
    if not args.no_plots:  # one page to open, as predict writes: the report, its figure and the episode videos
        from worldpolicy.viz.report import write_report as write_html

        paths.append(write_html(args.out))
    else:  # a resumed run's earlier figure and page, which this one does not redraw, would show fewer episodes
        for stale in (SIM_REPORT_FIGURE, REPORT_FILE):
            (args.out / stale).unlink(missing_ok=True)
    doc = report.to_json()
    lo, hi = doc["ci95"]
    # the scenes it ran said too: they are what a second run, or another policy's, must share to compare
    result = (f"{args.task} · {name}: success {report.successes}/{args.episodes} = {100 * report.success_rate:.1f} % "
              f"(95 % CI {100 * lo:.1f}-{100 * hi:.1f} %) on {seed_range(report.seed, len(report.episodes))}")
    planning = ([plan_said(doc["plan"], (report.policy_settings or {}).get("scorer")).replace("`", "")]
                if "plan" in doc else [])  # what planning did: ties bought nothing
    for line in planning:
        log.said(line)
    with lines_for_people(args.json):  # a console found gone drops them (`console_may_close`); sim.log has the result
        print(result)
        for line in planning:
            print(line)
        for path in [] if in_sweep else [*paths, *_videos_said(args.out)]:
            print(f"  {path}")
    if args.json:  # every episode video (and candidate video), where the lines above may count them
        print_json(run_json(doc, args.out, [*paths, *episode_videos(args.out), *candidate_videos(args.out)]))
    log.said(f"session ended: {result}")  # last: after the warning of a console found gone at the result
    return 0


@contextmanager
def _live_recording(args: argparse.Namespace, name: str, left: range | None) -> Iterator[Any]:
    """With a rerun flag, the run's episodes logged live (`sim.rerun.RerunWatch`) into its recording, named by the
    task, policy and seeds it runs (`left`: a resumed run's episodes still to run); a file kept with what was logged
    when Ctrl-C or an error (a policy server gone) stops the run after its first step (`viz.rerun.recording`'s
    `keep_partial`), as report.json keeps the episodes that finished. Without one, no watch."""
    target = rerun_target(args)
    if target is None:
        yield None
        return
    from worldpolicy.sim.evaluate import seed_range
    from worldpolicy.sim.rerun import RerunWatch
    from worldpolicy.viz.rerun import recording

    todo = left if left is not None else range(args.episodes)
    title = f"sim {args.task} · {name} · {seed_range(args.seed + todo.start, len(todo))}"
    where = (f"in {args.rerun} (open it with `rerun {args.rerun}`)" if args.rerun else
             "sent to the Rerun viewer")
    watch: RerunWatch | None = None
    try:
        with recording(target, title, keep_partial=lambda: watch is not None and watch.begun > 0) as rec:
            watch = RerunWatch(rec)
            yield watch
    except BaseException:
        if watch is not None and watch.begun:
            logger.info("sim: the steps of %d episode(s) logged before the run stopped %s", watch.begun, where)
        raise
    logger.info("sim: every step of its episodes %s", where)


def _warn_plan_steps(args: argparse.Namespace, k: int, chunk: int) -> None:
    """--plan scores each candidate's whole imagined chunk; a run of k < chunk of its actions before planning again
    runs a part of what was scored, at chunk / k times the decisions: said, not refused (the plain run it is
    compared with should run the same k, which `sim compare` checks)."""
    if args.plan is not None and k < chunk:
        logger.warning("--plan %d scores each candidate's whole imagined chunk (%d actions) but runs %d of them before "
                       "planning again (--execute-steps), %dx the decisions of running it whole: pass --execute-steps "
                       "%d, to the run it is compared with too, to run what was scored", args.plan, chunk, k,
                       -(-chunk // k), chunk)


def _draw_kept(report, out: Path) -> None:
    """report.png and index.html for the episodes a stopped run kept (`ReportKeeper.stopped`: drawn only at the end,
    a stopped run had no figure to show); a failure drawing them is warned of, not raised over the one that stopped
    the run. A second Ctrl-C stops the drawing (each file is written whole or not at all)."""
    from worldpolicy.sim.evaluate import report_figure
    from worldpolicy.viz.plots import save_figure
    from worldpolicy.viz.report import write_report as write_html

    try:
        save_figure(report_figure(report), out / SIM_REPORT_FIGURE)
        write_html(out)
    except Exception as exc:  # noqa: BLE001 - the run's own error is the one to raise
        logger.warning("sim: the figure of the %d kept episodes was not drawn: %s", len(report.episodes), exc)


def _training_data_changed(previous, scenes) -> None:
    """Warn when a resumed run's checkpoint now says other training data (`TrainingScenes.recording`: the task, the
    `dataset from-sim` recording named and its seeds) than the stored run recorded: the checkpoint's files are the
    same (--resume compared them), but the dataset its training run names may have been recorded again, extended or
    moved since. report.json records what it says now, for every episode: said, not refused, as it changes no
    episode. None of either (a run that recorded nothing, a checkpoint that says nothing) is not compared."""
    stored = None if previous is None else previous.training_scenes
    if stored is None or scenes is None or stored.recording == scenes.recording:
        return
    logger.warning("--resume: the checkpoint's training data now says %s; the stored run recorded %s. report.json "
                   "records what it says now for every episode (which are its training scenes)",
                   scenes.recording_said(), stored.recording_said())


def _resumed_label(previous, now: str) -> str:
    """The label a resumed checkpoint run keeps: the stored run's (`policy_label`: as a run of it is labelled now),
    where the checkpoint given now is labelled otherwise (a checkpoint is its recorded files' content, which --resume
    compares, not its folder: moved or copied under another name, it relabelled the run mid-way), said once. The
    report, its page, `sim compare` and the line printed at the end name the run as it began."""
    from worldpolicy.sim.evaluate import policy_label

    stored = policy_label(previous)
    if stored != now:
        logger.info("--resume: the run keeps its label %r (--policy now would label it %r)", stored, now)
    return stored


def _episode_said(report, episodes: int) -> str:
    """The line sim.log keeps of the episode that joined `report` last, of `episodes` in the run: `episode 3/500 (seed
    10002): success at step 21, final distance 2.3 cm, policy 1.52 s; success 2/3 so far` (the console's progress
    bar, redrawn in place or every 30 s in a log, says no episode's outcome)."""
    e = report.episodes[-1]
    outcome = f"success at step {e.success_step}" if e.success else f"failure at step {e.steps} (the step limit)"
    return (f"episode {len(report.episodes)}/{episodes} (seed {e.seed}): {outcome}, final distance "
            f"{100 * e.final_distance_m:.1f} cm, policy {e.policy_s:.2f} s; success {report.successes}/"
            f"{len(report.episodes)} so far")


def _kept_said(seed: int, kept: int, episodes: int) -> str:
    """What a resumed run keeps and runs, as its first line says it: `23 episodes kept (seeds 10000..10022), 177 to
    run (seeds 10023..10199)`."""
    from worldpolicy.sim.evaluate import seed_range
    from worldpolicy.viz.plots import plural

    return (f"{plural(kept, 'episode')} kept ({seed_range(seed, kept)}), {episodes - kept} to run "
            f"({seed_range(seed + kept, episodes - kept)})")  # a stored report holds one episode at least


# Up to this many episode videos are listed one by one among the files written; more as their folder and a count
LISTED_VIDEOS = 3


def _videos_said(out: Path) -> list[str]:
    """The run's episode videos as the list of files written says them: each, or, when many, their folder and count;
    its candidate videos (`--plan-save-candidates`) as their folder and count."""
    videos, candidates = episode_videos(out), candidate_videos(out)
    said = ([str(path) for path in videos] if len(videos) <= LISTED_VIDEOS
            else [f"{videos[0].parent}/ ({len(videos)} episode videos)"])
    if candidates:  # one a decision: a folder and a count (`--plan-save-candidates`)
        said.append(f"{candidates[0].parent}/ ({len(candidates)} candidate videos, one per decision)")
    return said


def episode_videos(out: Path) -> list[Path]:
    """The run's episode videos (`viz.report.SIM_EPISODE_VIDEOS`), in order."""
    from worldpolicy.viz.report import SIM_EPISODE_VIDEOS

    return sorted(out.glob(SIM_EPISODE_VIDEOS))


def candidate_videos(out: Path) -> list[Path]:
    """The run's candidate videos (`--plan-save-candidates`: `sim.policies.CandidateVideos`,
    `viz.report.SIM_CANDIDATE_VIDEOS`), in order."""
    from worldpolicy.viz.report import SIM_CANDIDATE_VIDEOS

    return sorted(out.glob(SIM_CANDIDATE_VIDEOS))
