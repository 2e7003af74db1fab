"""Core subcommands: `predict`, `dream`, `demo`, `embodiments`, `push`, `env`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cli import (
    add_center_crop_flag,
    add_device_flags,
    add_json_flag,
    center_crop_option,
    flag_named,
    lines_for_people,
    print_json,
    run_json,
)
from .errors import brief_list
from .results import MODES

if TYPE_CHECKING:
    from .embodiments import Embodiment
    from .hub import PushResult
    from .results import Prediction

logger = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embodiments", help="list the embodiment registry and the shipped models' own embodiments")
    p.add_argument("--json", action="store_true",
                   help="print them in full as JSON (each with its source: registry or shipped model)")
    p.add_argument("--checkpoint", help="list only the embodiment this checkpoint (shipped or a local folder) runs "
                   "with when --embodiment is left out, read without its weights")
    p.set_defaults(func=_embodiments)

    p = sub.add_parser("predict", help="run a Cosmos3 checkpoint once: policy, forward or inverse dynamics")
    p.add_argument("--checkpoint", required=True, help="shipped (the model in the package), a diffusers-format Cosmos3 "
                   "folder, a LoRA adapter checkpoint folder (holds base_model.json: `worldpolicy train` with "
                   "lora_save = \"adapter\") or a hub id (owner/name; owner/name@REV for a branch, tag or commit)")
    p.add_argument("--mode", type=_mode, choices=MODES, default="policy",
                   help="policy (default): actions for --prompt from the observation; forward_dynamics (or forward): "
                   "the video --actions lead to; inverse_dynamics (or inverse): the actions a --video shows")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", help="observation image (policy / forward dynamics); for an embodiment that composes "
                     "several cameras, their composite (or give each with --camera)")
    src.add_argument("--video", help="clip, animated GIF or folder of frames (inverse dynamics; the other modes "
                                    "condition on its last frame, the current one)")
    src.add_argument("--camera", action="append", metavar="KEY=FILE",
                     help="one camera's image or clip, repeated for each of a multi-camera embodiment's camera keys "
                     "(`worldpolicy embodiments --json`: camera_keys); composed as the model was trained (an "
                     "embodiment with no composite sees one: name which)")
    p.add_argument("--prompt", required=True, help="task description, e.g. 'Pick up the banana.'")
    p.add_argument("--actions", help="actions file for forward dynamics: .json, .npy, .npz or .csv with a header of "
                   "column names (docs/actions-schema.md)")
    p.add_argument("--actions-space", choices=("physical", "normalized"), default="physical",
                   help="units of --actions: physical (default: the embodiment's units) or normalized (model space)")
    _add_model_flags(p)
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: %(default)s)")
    p.add_argument("--start-frame", type=int, default=0, metavar="N",
                   help="inverse dynamics: explain the clip from its frame N (from 0; default: %(default)s)")
    p.add_argument("--whole-clip", action="store_true",
                   help="inverse dynamics: label every frame of the clip (from --start-frame), in windows of "
                   "chunk_size+1 frames sharing their boundary frames: one action per frame transition")
    p.add_argument("--resample", action="store_true",
                   help="inverse dynamics: read a clip recorded at another rate than the embodiment's fps at that "
                   "rate (the frames nearest its timestamps; the rate from the file's header)")
    p.add_argument("--whole-trajectory", action="store_true",
                   help="forward dynamics: roll out every row of --actions, not only the first chunk: chunks of "
                   "chunk_size rows, each from the last imagined frame of the one before (autoregressive, so one "
                   "after another), joined into one video of rows+1 frames")
    p.add_argument("--decode-video", action="store_true",
                   help="also decode the imagined video (always on for forward_dynamics)")
    p.add_argument("--no-plots", action="store_true", help="no plots/ or index.html: actions and settings only")
    p.add_argument("--out", required=True, help="output run directory")
    add_json_flag(p, "the result (actions.json's fields: docs/actions-schema.md) with run_dir and the files written")
    p.set_defaults(func=_predict)

    from .sim.progress import SCORER_REWARDS, SCORERS  # light, as sim.commands below: `dream --score`'s choices

    p = sub.add_parser("dream", help="run a policy closed loop in a world model's imagination: each action chunk it "
                       "sends is imagined, and it acts on the imagined frame (no simulator)",
                       description="Evaluate a policy in a world model's imagination (worldpolicy.sim.dream): from an "
                       "observation, the policy acts, the world model imagines the frames its actions lead to, the "
                       "policy acts on the last of them, --chunks times. Writes rollout.mp4 (the dreamed video), "
                       "actions.json (the actions run, as a whole forward-dynamics trajectory: "
                       "docs/actions-schema.md), "
                       "dream.json (per chunk: its rows, the policy's seed, the reward with --score), settings.json, "
                       "plots/ (chunk boundaries dashed) and index.html.")
    p.add_argument("--policy", required=True, help="the policy's checkpoint: shipped, a diffusers-format Cosmos3 "
                   "folder, a LoRA adapter checkpoint folder or a hub id")
    p.add_argument("--world-model", help="the world model's checkpoint, as --policy takes it (default: --policy's, "
                   "loaded once: a Cosmos3 checkpoint is both)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", help="the start observation; for an embodiment that composes several cameras, their "
                     "composite (or give each with --camera)")
    src.add_argument("--camera", action="append", metavar="KEY=FILE",
                     help="one camera's start image, repeated for each of the embodiment's camera keys (`worldpolicy "
                     "embodiments --json`: camera_keys)")
    p.add_argument("--prompt", required=True, help="task description, e.g. 'reach the red ball'")
    p.add_argument("--chunks", type=int, required=True, metavar="N", help="action chunks to dream, >= 1")
    p.add_argument("--execute-steps", type=int, metavar="K",
                   help="the first K actions of each chunk are imagined before the policy acts again, 1..chunk size "
                   "(default: the whole chunk)")
    p.add_argument("--score", choices=SCORERS,
                   help="score each chunk's imagined frames: reach (sim.progress.reach_scorer: "
                   f"{SCORER_REWARDS['reach']}; the --prompt names the ball's colour; the world model's cameras "
                   "one alone or stacked top to bottom) (default: no reward)")
    _add_model_flags(p)
    p.add_argument("--seed", type=int, default=0,
                   help="the world model's chunk j samples with seed + j, the policy's with seed + N + j "
                   "(default: %(default)s)")
    p.add_argument("--no-plots", action="store_true", help="no plots/ or index.html")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (the chunks', and the checkpoint "
                   "loading's)")
    p.add_argument("--out", required=True, help="output run directory (a dream run there is replaced)")
    add_json_flag(p, "the dream (actions.json's fields, and dream.json's under `dream`) with run_dir and the files "
                  "written")
    p.set_defaults(func=_dream)

    from .sim.commands import EVAL_SEED  # the parser `worldpolicy sim` adds too: nothing more to import

    p = sub.add_parser("demo", help="run the shipped model through all three modes and in the simulator")
    p.add_argument("--out", default="runs/demo", help="output directory (default: %(default)s)")
    p.add_argument("--seed", type=int, default=EVAL_SEED,
                   help="scene and sampling seed; episode i uses seed + i (default: %(default)s, as `sim`: scenes "
                   "the shipped model did not train on)")
    p.add_argument("--episodes", type=int, default=3, help="closed-loop simulator episodes (default: %(default)s)")
    add_json_flag(p, "each run by its folder's name (policy, forward_dynamics, inverse_dynamics: as predict --json; "
                  "sim: as sim --json)")
    p.set_defaults(func=_demo)

    p = sub.add_parser("push", help="share a checkpoint (a model repository) or a LeRobot dataset (a dataset "
                       "repository) on the Hugging Face hub")
    p.add_argument("path", metavar="PATH", help="a checkpoint folder (model_index.json, or a LoRA adapter's "
                   "base_model.json) or a LeRobot dataset folder (meta/info.json); it is only read")
    p.add_argument("--repo-id", required=True, help="the hub repository, OWNER/NAME (made if missing)")
    p.add_argument("--private", action="store_true", help="make the repository private when it is new")
    p.add_argument("--revision", help="the branch to push to, made from main if missing (default: main)")
    p.add_argument("--message", help="the commit message (default: 'Upload <what it is> with worldpolicy push')")
    p.add_argument("--with-training-state", action="store_true", help="also send a checkpoint's training state, "
                   "which only a resume reads (optimizer.safetensors, or its shards and index; a merged LoRA "
                   "checkpoint's adapter.safetensors), to resume the run from the hub's copy (default: the model "
                   "alone, what loading and fine-tuning read)")
    p.add_argument("--dry-run", action="store_true", help="read the repository and list, file by file, what a push "
                   "would send (new or changed), leave unchanged (held byte for byte), remove (what it holds of an "
                   "earlier checkpoint or dataset that this one lacks) and keep; send and change nothing, nor make "
                   "the repository or branch; no token needed for a public repository")
    p.set_defaults(func=_push)

    p = sub.add_parser("env", help="print what a bug report needs: versions, extras, accelerator, rendering, video "
                       "encoders and the hub's settings, to paste into an issue (no model is loaded)")
    add_json_flag(p, "the report")
    p.set_defaults(func=_env)


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    """The flags that say how a checkpoint loads and samples (`load_policy`'s), alike for predict and dream."""
    p.add_argument("--state", help="comma-separated current state for state-conditioned embodiments (droid joints)")
    p.add_argument("--embodiment", default=None, help="name[/variant] from `worldpolicy embodiments`, or a spec file "
                   "of your own robot (*.json, as register_embodiment reads it) (default: the checkpoint's own, "
                   "its embodiment.json or the registered one its trainer_state.json names, else droid)")
    p.add_argument("--steps", type=int, help="denoising steps (default: the embodiment's sampling preset, else 4)")
    p.add_argument("--guidance", type=float,
                   help="classifier-free guidance; 1 turns it off (default: the embodiment's preset, else 3)")
    p.add_argument("--schedule", type=str.lower, choices=("checkpoint", "linear", "karras"),
                   help="noise schedule, any case (default: the preset's, else the checkpoint's own scheduler)")
    p.add_argument("--shift", type=float, help="schedule shift (default: the preset's, else the scheduler's own)")
    p.add_argument("--preset", help="named sampling preset, e.g. droid_native (any case)")
    p.add_argument("--chunk-size", type=int, help="actions per chunk, a multiple of 4 (default: the embodiment's)")
    p.add_argument("--resolution-tier", type=int, help="canvas tier: 256, 480, 704 or 720 (default: the embodiment's)")
    add_center_crop_flag(p)
    add_device_flags(p)


_SHORT_MODES = {"forward": "forward_dynamics", "inverse": "inverse_dynamics"}  # as the docs and papers say them


def _mode(value: str) -> str:
    """--mode, any case, `forward`/`inverse` read as the mode they name (argparse's choices then check the rest)."""
    mode = value.strip().lower()
    return _SHORT_MODES.get(mode, mode)


PUSH_FLAGS = {"path": "PATH", "repo_id": "--repo-id", "revision": "--revision", "private": "--private"}


def _push(args: argparse.Namespace) -> int:
    """`hub.push`, its errors naming the flags."""
    from .hub import push, removal_command

    try:
        pushed = push(args.path, args.repo_id, private=args.private, revision=args.revision, message=args.message,
                      with_training_state=args.with_training_state, dry_run=args.dry_run)
    except (ValueError, FileNotFoundError) as exc:
        raise flag_named(exc, PUSH_FLAGS) from None
    if pushed.dry_run:
        _said_dry_run(args, pushed)
        return 0
    commits = f", in {pushed.commits} commits" if pushed.commits > 1 else ""
    held = f"; the repository held the other {len(pushed.unchanged)} as they are: not sent" if pushed.unchanged else ""
    if pushed.commits:
        print(f"pushed {pushed.what} {args.path} ({len(pushed.sent)} files, {pushed.sent_size / 1e6:.1f} MB{commits}"
              f"{held}) to the {pushed.repo_type} repository {pushed.repo_id}: {pushed.url}")
    else:  # the branch held every file, and nothing to remove: no commit
        print(f"nothing to push: the {pushed.repo_type} repository {pushed.repo_id} holds {pushed.what} {args.path} "
              f"as it is ({len(pushed.files)} files), at {pushed.url}")
    if pushed.removed:
        print(f"removed {len(pushed.removed)} files there that this push does not send ({brief_list(pushed.removed)}): "
              f"{_removed_why(args, pushed)}; the hub's history keeps them")
    if pushed.kept:
        print(f"kept {len(pushed.kept)} files there that this push does not send and no loader reads as part of "
              f"{pushed.what} (a card, its figures, a license: added on the hub's page): {brief_list(pushed.kept)}; "
              f"to remove them: `{removal_command(pushed.repo_id, pushed.repo_type, args.revision)} FILE...`")
    if pushed.left_out:
        print(f"left out its training state, which only a resume reads ({', '.join(pushed.left_out)}, "
              f"{pushed.left_out_size / 1e6:.1f} MB): --with-training-state sends it too")
    return 0


def _removed_why(args: argparse.Namespace, pushed: PushResult) -> str:
    """Why `push` removes (or, dry, would remove) `pushed.removed`: an earlier push's or upload's files the folder
    lacks, and the training state it leaves out though the folder has it (an earlier push's, read as this one's)."""
    state = sum(name in pushed.left_out for name in pushed.removed)
    what = ([f"what an earlier push or upload left that {args.path} does not have"]
            if state < len(pushed.removed) else [])
    what += ["the training state this push leaves out (--with-training-state sends this one's)"] if state else []
    return " and ".join(what)


def _said_dry_run(args: argparse.Namespace, pushed: PushResult) -> None:
    """`push --dry-run`'s listing: a line for what a push would do, then each file by what becomes of it."""
    from .hub import LOG_IN

    where = f"branch {args.revision} of " if args.revision else ""
    commits = f", in {pushed.commits} commits" if pushed.commits > 1 else ""
    if pushed.commits:
        print(f"dry run, nothing sent: a push would send {len(pushed.sent)} of the {len(pushed.files)} files of "
              f"{pushed.what} {args.path} ({pushed.sent_size / 1e6:.1f} MB{commits}) to {where}the "
              f"{pushed.repo_type} repository {pushed.repo_id}, leave {len(pushed.unchanged)} there as they are, "
              f"remove {len(pushed.removed)} files there and keep {len(pushed.kept)}")
    else:
        print(f"dry run, nothing sent: a push would change nothing, {where}the {pushed.repo_type} repository "
              f"{pushed.repo_id} holding {pushed.what} {args.path} as it is ({len(pushed.files)} files)")
    if pushed.anonymous:
        print(f"read without a token ({LOG_IN}), as anyone may: a private repository reads as not there yet, and a "
              "push needs a token with write access")
    rows = [("send", pushed.sent, "new, or changed from the repository's"),
            ("unchanged", pushed.unchanged, "the repository holds them byte for byte: not sent"),
            ("remove", pushed.removed, _removed_why(args, pushed) if pushed.removed else None),
            ("keep", pushed.kept, "no loader reads them as part of it: a card, its figures, a license"),
            ("leave out", pushed.left_out,
             "the training state, which only a resume reads: --with-training-state sends it")]
    for verb, names, why in rows:
        if names:
            print(f"{verb} ({len(names)}{': ' + why if why else ''}):")
            for name in names:
                print(f"  {name}")


def _embodiments(args: argparse.Namespace) -> int:
    """The registry, then each shipped model's own embodiment (`policy.listed_embodiments`), with the checkpoint
    argument that runs it."""
    from .models import SHIPPED_DEFAULT, SHIPPED_NAME
    from .policy import listed_embodiments

    rows = [_checkpoint_row(args.checkpoint)] if args.checkpoint is not None else []
    for listed in listed_embodiments() if args.checkpoint is None else ():
        if listed.shipped is None:
            rows.append((listed.embodiment, "registry"))
            continue
        use = SHIPPED_NAME if listed.shipped == SHIPPED_DEFAULT else listed.checkpoint  # what --checkpoint takes
        rows.append((listed.embodiment, f"shipped model {listed.shipped} (use --checkpoint {use})"))
    if args.json:
        print_json([{**e.to_dict(), "source": source} for e, source in rows])
        return 0
    # "no stats": actions in model space (units MODEL_SPACE_UNIT), not physical as "none" would say
    header = (f"{'embodiment':<28} {'domain':<24} {'id':>3} {'dim':>4} {'chunk':>5} {'fps':>5}  {'norm':<9} "
              f"{'layout':<14} source")
    print(header)
    print("-" * len(header))
    for e, source in rows:
        print(
            f"{e.key:<28} {e.domain:<24} {e.domain_id:>3} {e.action_dim:>4} {e.chunk_size:>5} {e.fps:>5g}  "
            f"{'no stats' if e.in_model_space else e.normalization:<9} {e.layout:<14} {source}"
        )
    print("embodiment: a robot and the action space it is driven in (name/variant). domain: its action head's name.\n"
          "id: the action-head slot. dim: numbers per action. chunk: actions per model call. fps: actions per second.\n"
          "norm: how actions are scaled for the model (none: used as they are;\n"
          "no stats: not published, so actions stay in model space until you register yours: docs/robot.md)\n"
          "layout: what the numbers are (relative_pose: end-effector moves; joint_position: joint angles; generic).\n"
          "source: the registry, or the model that carries it. New to these words: docs/concepts.md")
    return 0


def _checkpoint_row(checkpoint: str):
    """The embodiment a checkpoint runs with by default (`policy.checkpoint_embodiment`) and which record says so."""
    from .embodiments import get_embodiment
    from .fileio import folder_kind, is_checkpoint
    from .models import resolve_checkpoint
    from .policy import EMBODIMENT_FILE, TRAINER_STATE_FILE, checkpoint_embodiment, trained_embodiment

    folder = Path(resolve_checkpoint(checkpoint))
    accepted = ("accepted: shipped, a checkpoint folder, with model_index.json or base_model.json, or a hub id "
                "(fetched into the hub's cache); its embodiment.json / trainer_state.json are read")
    if not folder.is_dir():
        raise ValueError(f"--checkpoint: {checkpoint!r} is not a local folder; {accepted}")
    if not is_checkpoint(folder):  # a training run's folder, say, was listed as running droid, the default
        held = folder_kind(folder)
        said = f" (it holds {held[0].what}: {held[1]})" if held is not None else ""
        raise ValueError(f"--checkpoint: {checkpoint!r} is not a checkpoint folder{said}; {accepted}")
    own = checkpoint_embodiment(folder, None)
    if (folder / EMBODIMENT_FILE).is_file():
        source = f"checkpoint {checkpoint} (its {EMBODIMENT_FILE})"
    elif trained_embodiment(folder) is not None:
        source = f"registry (checkpoint {checkpoint} was trained for it: its {TRAINER_STATE_FILE})"
    else:
        source = f"registry (checkpoint {checkpoint} names none: the default)"
    return (get_embodiment(own) if isinstance(own, str) else own), source


def _progress(desc: str):
    from .logcapture import progress_bar

    bar = None  # made on the first step, so an error while preparing is not printed on a progress-bar line

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:  # counted from this step: the ones already done took no time the bar saw
            bar = progress_bar(total=total, desc=desc, unit="step", leave=False, initial=done)
        bar.total = total
        bar.n = done
        bar.refresh()
        if done == total:
            bar.close()

    return update


def _checked_out(out: Path, inputs: dict[str, Path | None], writer: str = "predict",
                 outputs: tuple[str, ...] = ()) -> Path:
    """--out, created now (a bad folder fails before any work), never a folder of another kind (a checkpoint, a dataset,
    another command's run than `writer`'s) or one whose subfolders hold runs (the demo's), and never one of this run's
    own inputs' places (what `write_run` writes, and `outputs`)."""
    from .cli import UsageError
    from .fileio import output_folder
    from .viz.run import RUN_OUTPUTS

    output_folder(out, "--out", create=False, writer=writer, not_over_runs=True)
    for flag, path in inputs.items():
        if path is None:
            continue
        for name in (*RUN_OUTPUTS, *outputs):
            target = (out / name).resolve()
            if path.resolve() == target or target in path.resolve().parents:
                raise UsageError(f"{flag} {str(path)!r} is where this run writes its {name}; choose another --out "
                                 "(or move the input) so it is not overwritten")
    return output_folder(out, "--out")


def _camera_files(values: list[str]) -> dict[str, Path]:
    """--camera KEY=FILE values → {camera key: file}, in the order given."""
    from .cli import UsageError

    cameras: dict[str, Path] = {}
    for value in values:
        key, sep, file = value.partition("=")
        if not (sep and key and file):
            raise UsageError(f"--camera {value!r}: expected KEY=FILE, e.g. --camera observation/wrist_image_left=w.png")
        if key in cameras:
            raise UsageError(f"--camera {key} is given twice; give each camera once")
        cameras[key] = Path(file)
    return cameras


def _check_cameras(embodiment: Embodiment, cameras: tuple[str, ...]) -> None:
    """--camera names each of the embodiment's cameras once (what the model composes, as in training), or the one an
    embodiment that composes none sees (`processing.observations.camera_key_problems`)."""
    from .processing.observations import camera_key_problems

    problems = camera_key_problems(embodiment, cameras)
    if problems:
        raise ValueError(f"--camera: embodiment {embodiment.key!r} has the cameras {', '.join(embodiment.camera_keys)} "
                         f"({problems}); pass one --camera KEY=FILE"
                         + (" for each" if embodiment.composite is not None else ""))


def _warn_single_view(embodiment: Embodiment, checkpoint: str, flag: str, source: Path, height: int,
                      width: int) -> bool:
    """One --image/--video for an embodiment that composes several cameras is taken as that composite (a pre-composed
    image is valid); one that looks like a single camera's view is worth a warning that says how to pass each, unless
    `checkpoint` was trained on one such view. True if it was said (the run is told: `Policy.single_view_said`)."""
    from .policy import trained_frames
    from .processing.observations import single_view_warning

    message = single_view_warning(embodiment, f"{flag} {str(source)!r}", height, width,
                                  " ".join(f"--camera {k}=FILE" for k in embodiment.camera_keys),
                                  trained_frames(checkpoint))
    if message is not None:
        logger.warning("%s", message)
    return message is not None


def _flag_for(exc: ValueError, where: str, flag: str) -> ValueError:
    """A reader's error about a file (`where`: "actions file 'F'") as the command line's about its flag ("--actions
    'F'"): the flag is what a user fixes, and the other input errors start with it."""
    return ValueError(str(exc).replace(where, flag, 1))


@dataclass
class _SaidBeforeLoading:
    """What `_check_inputs` warned of before the weights loaded, so that the run does not say it again: the (height,
    width) of each image or clip taken for one camera's view, said in the command line's terms (the policy is told:
    `Policy.single_view_said`), and the policy's own warnings said from the files and the checkpoint's record alone
    (a clip's frame rate, frames of another size than it was trained on, a mode its training left out), kept out of
    the run's log (`_not_said_again`)."""

    views: list[tuple[int, int]] = field(default_factory=list)
    messages: set[str] = field(default_factory=set)

    def say(self, message: str | None) -> None:
        if message is not None and message not in self.messages:
            self.messages.add(message)
            logging.getLogger("worldpolicy.policy").warning("%s", message)  # as the run would have said it


@contextmanager
def _not_said_again(messages: set[str]) -> Iterator[None]:
    """The policy's log without the warnings in `messages` (said before the weights loaded) while the block runs."""

    def not_said(record: logging.LogRecord) -> bool:
        return record.getMessage() not in messages

    policy_log = logging.getLogger("worldpolicy.policy")
    policy_log.addFilter(not_said)
    try:
        yield
    finally:
        policy_log.removeFilter(not_said)


def _check_inputs(args: argparse.Namespace, sources: dict[str, Path], cameras: tuple[str, ...],
                  state: list[float] | None, embodiment: Embodiment | None = None) -> _SaidBeforeLoading:
    """Read what the run will read (frames, actions, prompt, state) against the checkpoint's embodiment, and say what
    the run would warn of that the files and the checkpoint's record tell without the weights: a user waits through
    no load to learn that an input is wrong or off. `embodiment`: what `Policy.check_pretrained` gave for
    `args.checkpoint` already (`dream` checks it under its own flag), not checked again."""
    from .cli import LOAD_FLAGS, flag_named
    from .embodiments import stateless_hint
    from .policy import Policy, check_seed, input_warnings
    from .processing.actions import PHYSICAL_FLOAT32_ACCEPTED, beyond_float32, load_actions
    from .processing.observations import check_source, frame_keys
    from .processing.prompts import check_task
    from .processing.trajectory import check_trajectory_embodiment

    check_task(args.prompt, "--prompt")
    try:
        if embodiment is None:
            embodiment = Policy.check_pretrained(
                args.checkpoint, args.embodiment, device=args.device, dtype=args.dtype, preset=args.preset,
                steps=args.steps, guidance=args.guidance, schedule=args.schedule, shift=args.shift,
                chunk_size=args.chunk_size, resolution_tier=args.resolution_tier,
            )[0]
        check_seed(args.seed)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise flag_named(exc, LOAD_FLAGS) from None
    if cameras:
        _check_cameras(embodiment, cameras)
    said = _SaidBeforeLoading()
    shapes = {}
    for flag, source in sources.items():
        try:
            shapes[flag] = shape = check_source(source, flag, min_frames=2 if args.mode == "inverse_dynamics" else 1)
        except ValueError as exc:  # the clip decoder's "video file 'F': why" names no flag
            raise _flag_for(exc, f"video file {str(source)!r}", f"{flag} {str(source)!r}") from None
        if not cameras and _warn_single_view(embodiment, args.checkpoint, flag, source, *shape):
            said.views.append(shape)
    if args.mode == "inverse_dynamics":
        _check_clip(args, sources, cameras, embodiment)
    if args.whole_trajectory:
        check_trajectory_embodiment(embodiment, "--whole-trajectory")
    if args.actions:
        try:
            load_actions(args.actions, embodiment, args.actions_space, warn=False)  # the run itself warns, once
        except ValueError as exc:  # "actions file 'F': why", as every reader says it
            raise _flag_for(exc, f"actions file {str(Path(args.actions))!r}", f"--actions {args.actions!r}") from None
    if state is None and embodiment.state_history:  # an image or clip carries no joint state
        raise ValueError(f"--state is required for embodiment {embodiment.key!r}, which conditions on the robot state: "
                         f"{embodiment.action_dim} comma-separated values ({', '.join(embodiment.columns)})"
                         + stateless_hint(embodiment, "--embodiment {}"))
    # a state the embodiment ignores is said to be (`input_warnings`), not refused: `policy.ignored_state_warning`
    if state is not None and embodiment.state_history:
        if len(state) != embodiment.action_dim:
            raise ValueError(f"--state has {len(state)} values but embodiment {embodiment.key!r} expects "
                             f"{embodiment.action_dim} ({', '.join(embodiment.columns)})")
        if (beyond := beyond_float32(state, embodiment)).any():  # float() reads "nan", "inf" and "1e308"
            bad = [column for column, b in zip(embodiment.columns, beyond) if b]
            raise ValueError(f"--state has NaN, inf or values beyond float32 in {', '.join(bad)} (given "
                             f"{args.state!r}); accepted: {PHYSICAL_FLOAT32_ACCEPTED}, one per column "
                             f"({', '.join(embodiment.columns)})")
    sizes = ({key: shapes[f"--camera {key}"] for key in frame_keys(cameras, embodiment.camera_keys,
                                                                    embodiment.composite)}
             if cameras else next(iter(shapes.values())))
    # the policy's source as its warnings name it; each clip's rate from its header: the request reads the same files
    judged = list(sources.values()) if args.mode == "inverse_dynamics" else ()  # their rates
    for message in input_warnings(str(args.checkpoint), embodiment, args.mode, sizes, judged, resample=args.resample,
                                  state=state, actions=args.actions, actions_space=args.actions_space):
        said.say(message)
    return said


def _check_clip(args: argparse.Namespace, sources: dict[str, Path], cameras: tuple[str, ...],
                embodiment: Embodiment) -> None:
    """An inverse-dynamics clip as the run reads it, before the weights load: the cameras' clips start together with as
    many frames each, --start-frame leaves at least 2 frames of each, and --resample has the rate from each file's
    header (`processing.clip.read_clip` refuses the same)."""
    from .processing.observations import clip_fps, clip_from_mapping, load_frames

    if embodiment.state_history and (args.whole_clip or args.start_frame):
        from .embodiments import stateless_variant

        # a window from clip frame N starts from frame N's state (`ClipWindows.state`): --state is one row, frame 0's
        flag = "--whole-clip" if args.whole_clip else f"--start-frame {args.start_frame}"
        other = stateless_variant(embodiment)  # the one to name, as a missing --state's refusal names it
        raise ValueError(f"{flag}: embodiment {embodiment.key!r} conditions on the robot state, and a window from a "
                         "later clip frame starts from that frame's state, which --state (one row: frame 0's) cannot "
                         "give; pass one state row per clip frame in Python (Policy.infer_actions(..., state=rows)), "
                         "label a dataset that records the state (worldpolicy dataset label), or choose an "
                         "--embodiment that conditions on no state ("
                         + (f"--embodiment {other.key}" if other is not None
                            else "worldpolicy embodiments --checkpoint CKPT") + ")")
    if cameras:
        clip_from_mapping({key: sources[f"--camera {key}"] for key in cameras}, embodiment.camera_keys,
                          embodiment.composite,
                          max_frames=args.start_frame + (args.chunk_size or embodiment.chunk_size) + 2)
    for flag, source in sources.items():
        if args.resample and not clip_fps(source):
            raise ValueError(f"--resample: {flag} {str(source)!r} carries no frame rate to resample from; accepted: a "
                             f"video file (its stream's rate) or an animated GIF/PNG with frame durations (resample a "
                             f"folder of frames yourself, to {embodiment.fps:g} fps)")
        if args.start_frame:
            count = len(load_frames(source, flag, max_frames=args.start_frame + 2))
            if count < args.start_frame + 2:
                raise ValueError(f"--start-frame {args.start_frame}: {flag} {str(source)!r} has {count} frames "
                                 f"(0 .. {count - 1}); inverse dynamics needs 2 from the start frame")


def _state_values(text: str | None) -> list[float] | None:
    """--state as numbers (their count and range are `_check_inputs`' to judge, against the embodiment)."""
    from .cli import UsageError

    if not text:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"--state {text!r} must be comma-separated numbers") from None


def _input_sources(args: argparse.Namespace) -> tuple[dict[str, Path], dict[str, Path]]:
    """(--camera files by key, every input file by its flag), each checked to exist."""
    from .cli import UsageError

    cameras = _camera_files(args.camera) if args.camera else {}
    sources = ({f"--camera {key}": path for key, path in cameras.items()} if cameras
               else {"--image" if args.image else "--video": Path(args.image or getattr(args, "video", None))})
    for flag, source in sources.items():
        if not source.exists():
            raise UsageError(f"{flag} {str(source)!r} does not exist")
    return cameras, sources


def _predict(args: argparse.Namespace) -> int:
    from . import load_policy
    from .cli import UsageError
    from .models import resolve_checkpoint
    from .policy import PolicyRequest
    from .processing.actions import check_actions_file
    from .viz.run import write_run_whole

    args.checkpoint = resolve_checkpoint(args.checkpoint)
    if args.mode == "forward_dynamics" and not args.actions:
        raise UsageError("--actions FILE is required with --mode forward_dynamics")
    if args.mode != "forward_dynamics" and args.actions:
        raise UsageError(f"--actions is only used with --mode forward_dynamics (got --mode {args.mode})")
    if args.actions_space != "physical" and not args.actions:
        raise UsageError(f"--actions-space {args.actions_space} says how to read --actions, and no --actions is given")
    if args.mode == "inverse_dynamics" and args.image:
        raise UsageError("--mode inverse_dynamics needs --video (the clip whose actions to recover), or --camera "
                         "KEY=CLIP for each camera")
    clip_flags = [flag for flag, given in (("--start-frame", args.start_frame != 0), ("--whole-clip", args.whole_clip),
                                           ("--resample", args.resample)) if given]
    if clip_flags and args.mode != "inverse_dynamics":
        raise UsageError(f"{clip_flags[0]} is only used with --mode inverse_dynamics (got --mode {args.mode})")
    if args.whole_trajectory and args.mode != "forward_dynamics":
        raise UsageError(f"--whole-trajectory is only used with --mode forward_dynamics (got --mode {args.mode})")
    if args.start_frame < 0:
        raise UsageError(f"--start-frame {args.start_frame}: accepted a frame of the clip, from 0")
    cameras, sources = _input_sources(args)
    if args.actions:  # missing, or a folder: said before any work
        try:
            check_actions_file(Path(args.actions))
        except (ValueError, FileNotFoundError) as exc:
            raise _flag_for(exc, f"actions file {str(Path(args.actions))!r}", f"--actions {args.actions!r}") from None
    state = _state_values(args.state)
    out = _checked_out(Path(args.out), {**sources, "--actions": Path(args.actions) if args.actions else None})
    said = _check_inputs(args, sources, tuple(cameras), state)  # before the weights load: a bad file fails in a second
    policy = load_policy(
        args.checkpoint, embodiment=args.embodiment, device=args.device, dtype=args.dtype, preset=args.preset,
        steps=args.steps, guidance=args.guidance, schedule=args.schedule, shift=args.shift,
        chunk_size=args.chunk_size, resolution_tier=args.resolution_tier, center_crop=center_crop_option(args),
    )
    for shape in said.views:  # warned above, in the command line's terms
        policy.single_view_said(*shape)
    observation = {key: str(path) for key, path in cameras.items()} or str(next(iter(sources.values())))
    decode_video = args.decode_video or None  # None: the mode's default (FD decodes)
    # a whole clip's bar is over its windows, a whole trajectory's over its chunks
    steps = (None if args.whole_clip or args.whole_trajectory
             else _progress(f"{args.mode} ({policy.embodiment.key}), denoising"))  # its steps: not the chunk's
    with _not_said_again(said.messages):
        if args.mode == "inverse_dynamics":
            prediction = policy.infer_actions(observation, args.prompt, start_frame=args.start_frame,
                                              whole_clip=args.whole_clip, resample=args.resample, state=state,
                                              seed=args.seed, decode_video=decode_video, progress=steps)
        elif args.whole_trajectory:
            prediction = policy.imagine(observation, args.actions, args.prompt, whole_trajectory=True,
                                        actions_space=args.actions_space, state=state, seed=args.seed)
        else:
            request = PolicyRequest(observation=observation, prompt=args.prompt, mode=args.mode, actions=args.actions,
                                    actions_space=args.actions_space, state=state, seed=args.seed,
                                    decode_video=decode_video)
            prediction = policy.act_batch([request], progress=steps)[0]
    # which files the run read: the page and settings.json otherwise never say what was observed or rolled out
    inputs = {**sources, **({"--actions": Path(args.actions)} if args.actions else {})}
    prediction.settings["inputs"] = {flag: str(path.resolve()) for flag, path in inputs.items()}
    # what the model started from, beside what it imagined (inverse dynamics is given a clip, not one observation)
    given = None if args.mode == "inverse_dynamics" else observation
    written = write_run_whole(prediction, out, plots=not args.no_plots, observation=given)
    with lines_for_people(args.json):
        print(_summary(prediction))
        for path in written:
            print(f"  wrote {path}")
    if args.json:
        print_json(run_json(prediction.to_json(), out, written))
    return 0


def _summary(prediction: Prediction) -> str:
    """predict's line about its result, in its mode's terms: forward dynamics' answer is the video its actions lead
    to (the actions are its input, echoed), inverse dynamics' the actions a clip's frames explain (`real_rows`: a
    short clip's last frame was repeated for the rest). Frame sizes are HxW, as settings.json's `content_hw` and
    `--image-size` give them: printed WxH, a 256-high frame read as 256 wide beside its settings."""
    actions = (f"{prediction.chunk_size} x {len(prediction.columns)} actions at {prediction.fps:g} Hz "
               f"({', '.join(prediction.columns)})")
    video = prediction.video
    frames = (None if video is None
              else f"{video.shape[0]} frames of {video.shape[1]}x{video.shape[2]} (HxW) at {prediction.fps:g} fps")
    if prediction.mode == "forward_dynamics":
        said = f"imagined {frames} from {actions}" if frames else f"{actions} rolled forward, no video decoded"
        chunks = len(prediction.settings.get("trajectory", {}).get("chunks", ()))
        if chunks > 1:
            said += f" in {chunks} chunks, each from the last imagined frame of the one before"
    elif prediction.mode == "inverse_dynamics":
        real = prediction.settings.get("real_rows", prediction.chunk_size)
        short = (f" (only the first {real} explain the clip's own frames: settings real_rows)"
                 if real != prediction.chunk_size else "")
        said = f"recovered {actions}{_clip_part(prediction.settings.get('clip'))}{short}"
    else:
        said = actions + (f", imagined {frames}" if frames else "")
    return f"{prediction.mode}: {said} in {prediction.timings['total']:.2f} s"


def _clip_part(clip: dict | None) -> str:
    """Which frames of the clip an inverse-dynamics result explains, where that is not the first chunk_size+1 at
    their own rate ('' then): a start frame, several windows, a resampled clip
    (`processing.clip.ClipWindows.settings`)."""
    if not clip or not (clip["start_frame"] or len(clip["window_rows"]) > 1 or clip["resampled"]):
        return ""
    windows = len(clip["window_rows"])
    return (f" from clip frames {clip['frames_used'][0]}..{clip['frames_used'][-1]}"
            + (f" ({windows} windows)" if windows > 1 else "")
            + (f", resampled from {clip['clip_fps']:.3g} fps" if clip["resampled"] else ""))


def _dream(args: argparse.Namespace) -> int:
    """`worldpolicy dream`: every input checked as predict checks it, before any weights load; each chunk recorded as
    it ends (`DreamRecorder`: the same small cost for each), the whole run written once at the end, or on Ctrl-C or a
    failure from the chunks that finished."""
    from . import load_policy
    from .cli import LOAD_FLAGS, UsageError, flag_named
    from .engine.sources import check_checkpoint_source
    from .fileio import (
        DREAM_FILE,
        DREAM_PARTIAL_DIR,
        exit_status,
        folder_lock,
        how_stopped,
        read_json,
        sigint_deferred,
        sigint_held,
        signal_name,
        stop_signal,
    )
    from .logcapture import progress_bar
    from .models import resolve_checkpoint
    from .policy import Policy
    from .processing.trajectory import check_trajectory_embodiment
    from .sim.world_model import DreamRecorder, dream, dream_settings, dream_steps_refusal
    from .viz.plots import plural
    from .viz.run import ACTIONS_FILE

    # the record names the checkpoints as given (`dream_settings`: `~/x` too, not this machine's home folder)
    named = (args.policy, args.world_model if args.world_model is not None else args.policy)
    args.policy = resolve_checkpoint(args.policy)
    world = resolve_checkpoint(args.world_model) if args.world_model is not None else args.policy
    one_model = str(world) == str(args.policy)
    if args.chunks < 1:
        raise UsageError(f"--chunks {args.chunks}: accepted: the chunks to dream, >= 1")
    cameras, sources = _input_sources(args)
    state = _state_values(args.state)
    out = _checked_out(Path(args.out), sources, writer="dream", outputs=(DREAM_FILE,))
    sampling = {"embodiment": args.embodiment, "device": args.device, "dtype": args.dtype, "preset": args.preset,
                "steps": args.steps, "guidance": args.guidance, "schedule": args.schedule, "shift": args.shift,
                "chunk_size": args.chunk_size, "resolution_tier": args.resolution_tier,
                "center_crop": center_crop_option(args)}
    roles = (("--policy", args.policy), ("--world-model", world))[:1 if one_model else 2]
    for flag, checkpoint in roles:  # where each is: a mistyped --world-model said before --policy's checks load torch
        try:
            check_checkpoint_source(checkpoint)
        except (ValueError, FileNotFoundError) as exc:
            raise flag_named(exc, {"checkpoint": flag}) from None
    embodiments = {}
    for flag, checkpoint in roles:
        try:  # one checkpoint in both roles is checked once
            embodiments[flag] = Policy.check_pretrained(checkpoint, **sampling)[0]
        except (ValueError, KeyError, FileNotFoundError) as exc:
            raise flag_named(exc, {**LOAD_FLAGS, "checkpoint": flag}) from None
    e = embodiments["--policy"]
    w = embodiments.get("--world-model", e)
    check_trajectory_embodiment(w, "--world-model")  # a dream is a whole trajectory, chunk by chunk
    if list(e.columns) != list(w.columns):
        raise UsageError(f"--world-model: its actions ({', '.join(w.columns)}) are not --policy's "
                         f"({', '.join(e.columns)}); accepted: a policy and a world model of one embodiment")
    scorer = None
    if args.score is not None:
        from .sim.progress import prompt_color, scorer_for

        try:  # the world model's frames, read as it composes its cameras (as `sim --plan-scorer` reads them)
            scorer = scorer_for(args.score, w, "--score", without="leave --score out")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        try:  # reach, the one scorer there is, scores the ball the prompt names
            prompt_color(args.prompt)
        except ValueError as exc:
            raise UsageError(f"--score {args.score}: the --prompt names the ball it scores: {exc}") from None
    checked = argparse.Namespace(**vars(args), checkpoint=args.policy, mode="policy", video=None, actions=None,
                                 actions_space="physical", whole_trajectory=False, resample=False)
    said = _check_inputs(checked, sources, tuple(cameras), state, e)  # the policy's inputs, before the weights load
    chunk = args.chunk_size or e.chunk_size  # what the policy will send (--chunk-size was checked above)
    imagined = args.chunk_size or w.chunk_size  # the most rows the world model imagines per step
    if (refusal := dream_steps_refusal(chunk, imagined, args.execute_steps)) is not None:
        which, why, accepted = refusal
        raise UsageError(f"{'--execute-steps' if which == 'execute_steps' else '--policy'}: {why}; accepted: "
                         f"{accepted.replace('execute_steps', '--execute-steps')}")
    # held for the whole run, before any weights load: a second dream on this --out would replace the first's run
    with folder_lock(out, "--out"):
        policy = load_policy(args.policy, **sampling)  # `--no-progress`: diffusers' loading bar too (`cli.main`)
        world_model = policy if one_model else load_policy(world, **sampling)
        for model in {id(policy): policy, id(world_model): world_model}.values():
            for shape in said.views:  # warned above, in the command line's terms
                model.single_view_said(*shape)
        observation = {key: str(path) for key, path in cameras.items()} or str(next(iter(sources.values())))
        settings = dream_settings(*named, args.seed, args.chunks, args.execute_steps, args.score,
                                  {flag: str(path.resolve()) for flag, path in sources.items()})
        recorder = DreamRecorder(out, settings, args.chunks, plots=not args.no_plots, observation=observation)
        bar = progress_bar(total=args.chunks, desc=f"dream ({w.key})", unit="chunk", leave=False,
                           disable=args.no_progress)

        def writing(done: int) -> str:  # what a Ctrl-C while the whole run is written is told
            return (f"writing the run of the {plural(done, 'chunk')} dreamed; Ctrl-C again stops it (each chunk stays "
                    f"in {out / DREAM_PARTIAL_DIR} until the run's files are written; after that only its plots and "
                    f"page are left, which `worldpolicy viz {out}` draws)")

        def keep(chunk) -> None:  # after every chunk: an interruption loses none of the finished ones
            with sigint_deferred():  # a chunk's record written whole, or not at all
                recorder.add(chunk)
                bar.update(1)

        try:
            with _not_said_again(said.messages):
                result = dream(policy, world_model, observation, args.prompt, args.chunks, state=state, seed=args.seed,
                               execute_steps=args.execute_steps, scorer=scorer, on_chunk=keep)
        except BaseException as exc:
            bar.close()
            if recorder.chunks:
                done = len(recorder.chunks)
                how = how_stopped(exc)
                # stopping anyway: what it held is not raised
                with sigint_held(writing(done), second_stops=True) as held:
                    if isinstance(exc, KeyboardInterrupt):  # the signal that stopped the dream was the first: the
                        signum = stop_signal(exc)  # next one stops the writing
                        print(f"{signal_name(signum)}: {writing(done)}", file=sys.stderr, flush=True)
                        held.append(signum)
                    recorder.finish()
                print(f"worldpolicy dream: {how} after {done} of {args.chunks} chunks finished; their run is in {out} "
                      f"(rollout.mp4, actions.json, {DREAM_FILE}{'' if args.no_plots else ', plots, index.html'})",
                      file=sys.stderr)
                if isinstance(exc, KeyboardInterrupt):  # said in full, once (`cli.main` would say it again, bare)
                    return exit_status(exc)  # the shell's code: 130 Ctrl-C, 143 SIGTERM, 138 SIGUSR1
            raise
        bar.close()
        with sigint_deferred(writing(args.chunks), second_stops=True):
            written = recorder.finish()
        scored = f"; reward per chunk {', '.join(f'{r:.3f}' for r in result.rewards)}" if scorer is not None else ""
        with lines_for_people(args.json):
            print(f"dream: {plural(args.chunks, 'chunk')}, {len(result.actions)} actions of {policy.embodiment.key} "
                  f"imagined into {len(result.frames)} frames at {result.fps:g} fps{scored}")
            for path in written:
                print(f"  wrote {path}")
        if args.json:  # what its actions.json and dream.json hold, read back: the whole dream is not joined again
            record = {name: read_json(out / name, repr(str(out / name))) for name in (ACTIONS_FILE, DREAM_FILE)}
            print_json(run_json({**record[ACTIONS_FILE], "dream": record[DREAM_FILE]}, out, written))
        return 0


def _shipped_success(checkpoint: Path) -> str:
    """The shipped model's measured success, from the summary its training run wrote ('' if absent). The run evaluates
    the model as shipped (its embodiment's `execute_steps`), so this is the figure `worldpolicy sim` reproduces."""
    import json

    from .fileio import TRAINING_SUMMARY_FILE

    summary = checkpoint / TRAINING_SUMMARY_FILE
    if not summary.is_file():
        return ""
    evaluation = json.loads(summary.read_text()).get("stages", {}).get("evaluation", {})
    if "success_rate" not in evaluation:
        return ""
    return (f"measured {evaluation.get('task', 'task')} success {100 * evaluation['success_rate']:.0f} % over "
            f"{evaluation['episodes']} seeded episodes")


_DEMO_RUNS = {"policy": "predict", "forward_dynamics": "predict", "inverse_dynamics": "predict", "sim": "sim"}


def _demo_out(out: Path) -> Path:
    """The demo's --out holds a predict run per mode and a sim run (`_DEMO_RUNS`): each checked as those commands
    check their --out (never in a checkpoint or dataset, nor another kind of run), and --out made, before the model
    loads. Unchecked, a checkpoint folder got the policy run's files before a later step refused it."""
    from .fileio import output_folder

    for sub, writer in _DEMO_RUNS.items():
        output_folder(out / sub, "--out", create=False, writer=writer)
    return output_folder(out, "--out")


def _print_rerun(images: dict[str, Path], out: Path, task: str, runs: dict) -> None:
    """The `predict` lines that rerun the demo's world-model runs on its files, with their seeds: forward dynamics on
    the same pixels and actions, inverse dynamics on the rollout.mp4 the demo's own run explained. Their --out is
    in the demo's own folder (`<mode>_rerun`): a bare `runs/fd` was wherever the user stood, and replaced a run of
    theirs there, as a predict rerun into its --out does."""
    import shlex

    from .viz.run import ACTIONS_FILE, ROLLOUT_VIDEO

    cams = " ".join(f"--camera {shlex.quote(f'{key}={path}')}" for key, path in images.items())
    common = f"worldpolicy predict --checkpoint shipped --prompt {shlex.quote(task)}"
    fd, inverse = runs["forward_dynamics"], runs["inverse_dynamics"]
    print("the same from the command line (new --out folders beside the demo's runs):\n"
          f"  {common} --mode forward_dynamics {cams} "
          f"--actions {shlex.quote(str(out / 'policy' / ACTIONS_FILE))} --seed {fd.settings['seed']} "
          f"--out {shlex.quote(str(out / 'forward_dynamics_rerun'))}\n"
          f"  {common} --mode inverse_dynamics --video {shlex.quote(str(out / 'forward_dynamics' / ROLLOUT_VIDEO))} "
          f"--seed {inverse.settings['seed']} --out {shlex.quote(str(out / 'inverse_dynamics_rerun'))}")


def _write_demo_run(prediction: Prediction, folder: Path, observation: dict | None = None) -> dict[str, Any]:
    """One of the demo's `_DEMO_RUNS` predict folders, with the `observation` it started from (written whole under
    Ctrl-C, as `predict` writes its run: a rerun replaces the last demo's), and its line of the demo's output; returns
    what `predict --json` prints of it."""
    from .viz.run import write_run_whole

    paths = write_run_whole(prediction, folder, observation=observation)
    kind = "imagined" if prediction.mode != "inverse_dynamics" else "re-decoded"
    video = "no video" if prediction.video is None else f"{len(prediction.video)} {kind} frames"
    print(f"{prediction.mode:>17}: {prediction.chunk_size} actions of {len(prediction.columns)} columns at "
          f"{prediction.fps:g} Hz, {video}, {prediction.timings['total']:.2f} s -> {paths[0].parent}")
    return run_json(prediction.to_json(), folder, paths)


def _demo(args: argparse.Namespace) -> int:
    """The shipped model (trained from scratch by `worldpolicy train reach-from-scratch`) on a simulated reach task:
    one observation through all three modes, then closed-loop episodes in the simulator."""
    from .cli import LOAD_FLAGS, flag_named
    from .policy import check_seed

    if args.episodes < 1:
        raise ValueError(f"--episodes={args.episodes}: must be >= 1")
    try:
        check_seed(args.seed)  # the policy's and the scene's: before the model loads
    except ValueError as exc:
        raise flag_named(exc, LOAD_FLAGS) from None
    out = _demo_out(Path(args.out))
    with lines_for_people(args.json):
        done = _demo_runs(args, out)
    if args.json:
        print_json(done)
    return 0


def _demo_runs(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """The demo's runs into `out` (checked), each said in a line; returns what `demo --json` prints: each run by its
    folder's name, as `predict --json` and `sim --json` print theirs."""
    from . import load_policy
    from .fileio import REPORT_FILE
    from .models import checkpoint_name, shipped_model
    from .robot.kinematics import IKSolver
    from .sim.commands import episode_videos
    from .sim.env import TabletopEnv
    from .sim.evaluate import evaluate, keep_report, write_report
    from .sim.policies import wrap_policy
    from .sim.tasks import warn_training_scenes
    from .viz.plots import EE_START_POSE
    from .viz.report import write_report as write_page
    from .viz.run import ROLLOUT_VIDEO, observation_file

    checkpoint = shipped_model()
    scenes = warn_training_scenes(str(checkpoint), "reach", args.seed, args.episodes)  # a --seed into its recording
    policy = load_policy(checkpoint, seed=args.seed)
    env = TabletopEnv("reach")
    try:
        obs, _ = env.reset(seed=args.seed)
        task = obs["prompt"]
        cameras = {k: obs[k] for k in policy.embodiment.camera_keys}
        # the model by its one name (`--checkpoint shipped`, as its reports say it), not its folder's, the embodiment's
        print(f"worldpolicy demo: checkpoint {checkpoint_name(str(checkpoint))}, embodiment {policy.embodiment.key}, "
              f"task: {task!r}")
        measured = _shipped_success(checkpoint)
        if measured:
            print(f"  NOTE: trained from scratch on CPU by `worldpolicy train reach-from-scratch`; {measured}. "
                  "It is a small, weak policy: expect misses.")
        # where the arm's TCP is in the base frame: every run starts from this observation (the inverse dynamics
        # run's clip from the forward dynamics run's first frame), so each ee_path.png is drawn in the base frame
        start = {EE_START_POSE: IKSolver(env.robot).fk(env.joint_positions()).tolist()}
        runs = {"policy": policy.act(cameras, task, decode_video=True)}
        runs["forward_dynamics"] = policy.imagine(cameras, runs["policy"].actions, task)
        done = {}
        for mode in ("policy", "forward_dynamics"):  # each page shows the observation beside its imagined video
            runs[mode].settings.update(start)
            done[mode] = _write_demo_run(runs[mode], out / mode, observation=cameras)
        # the demo's inputs, for `predict` to reuse: its runs' are otherwise the only ones a user cannot see or reuse
        images = {key: observation_file(out / "policy", key) for key in cameras}
        # the imagined video as its file holds it (H.264, not the decoded frames), which the printed `predict` line
        # reads: explaining the frames in memory gave other actions than that line, by as much as the motion itself
        runs["inverse_dynamics"] = policy.infer_actions(out / "forward_dynamics" / ROLLOUT_VIDEO, task)
        runs["inverse_dynamics"].settings.update(start)
        done["inverse_dynamics"] = _write_demo_run(runs["inverse_dynamics"], out / "inverse_dynamics")
        _print_rerun(images, out, task, runs)
        # an interruption, a failure: report.json of every episode kept, as `sim` writes it
        with keep_report(out / "sim") as keeper:
            report = evaluate(env, wrap_policy(policy, seed=args.seed, decode_video=True),
                              policy_name=checkpoint_name(str(checkpoint)),  # `shipped`, as `worldpolicy sim` says it
                              episodes=args.episodes, seed=args.seed, video_dir=out / "sim" / "videos",
                              videos=args.episodes, progress=True, on_episode=keeper,
                              training_scenes=scenes)  # as warned of above
    finally:
        env.close()
    written = write_report(report, out / "sim")
    written.append(write_page(out / "sim"))  # its index.html, as `worldpolicy sim` writes one: outcome, videos
    print(f"       simulator: reach success {report.successes}/{args.episodes} closed-loop episodes "
          f"(videos: sim cameras | imagined future) -> {out / 'sim'}")
    print(f"open {out / 'policy' / REPORT_FILE} to look at the policy run")
    done["sim"] = run_json(report.to_json(), out / "sim", [*written, *episode_videos(out / "sim")])
    return done


# The most `env`'s offscreen rendering check may take: a GL driver may hang where it cannot open a context
OFFSCREEN_CHECK_S = 30
_OFFSCREEN_CHECK = ("import sys\nfrom worldpolicy.sim.rendering import RenderingUnavailable, check_offscreen\ntry:\n"
                    "    check_offscreen()\nexcept RenderingUnavailable as exc:\n    print(exc)\n    sys.exit(3)\n")


def _env(args: argparse.Namespace) -> int:
    """`worldpolicy env`: `environment_report` as JSON, or as Markdown-ish lines to paste into an issue. A report:
    a probe that fails says why in its section, and the command still exits 0."""
    report = environment_report()
    if args.json:
        print_json(report)
        return 0
    print("Paste the text below into your bug report (`worldpolicy env --json` gives it as JSON).\n")
    for section, found in report.items():
        print(f"## {section}")
        lines = (_extras_lines(found) if section == "extras" and "error" not in found else _said_lines(found))
        print("\n".join(lines) + "\n")
    return 0


def environment_report() -> dict[str, dict[str, Any]]:
    """What a bug report needs, one section per probe; one that fails is `{"error": why}`. Nothing is written and no
    model loaded: versions come from the packages' metadata, the rendering check runs in a process of its own."""
    report: dict[str, dict[str, Any]] = {}
    probes = {"software": _software, "platform": _platform, "extras": _extras, "accelerator": _accelerator,
              "rendering": lambda: _rendering(report["extras"]), "video": _video, "hub": _hub_settings}
    for section, probe in probes.items():
        try:
            report[section] = probe()
        except Exception as exc:  # noqa: BLE001 - a report: each probe's failure is its finding, said in its line
            report[section] = {"error": f"{type(exc).__name__}: {exc}"}
    return report


def _software() -> dict[str, Any]:
    from .extras import software_versions

    return software_versions()


def _platform() -> dict[str, Any]:
    import platform

    try:
        release = platform.freedesktop_os_release().get("PRETTY_NAME")
    except OSError:  # not Linux, or no os-release file
        release = None
    return {"system": platform.platform(), "os": release, "executable": sys.executable}


def _extras() -> dict[str, Any]:
    from .extras import extras_missing, install_command

    missing = extras_missing()
    if missing is None:
        return {"error": "worldpolicy is not installed (run from a source tree): its extras are not known"}
    return {extra: {"installed": not absent, "missing": absent, "install": install_command(extra) if absent else None}
            for extra, absent in missing.items()}


def _extras_lines(extras: dict[str, Any]) -> list[str]:
    return [f"- {extra}: installed" if found["installed"]
            else f"- {extra}: missing {', '.join(found['missing'])} (`{found['install']}`)"
            for extra, found in extras.items()]


def _accelerator() -> dict[str, Any]:
    import os

    import torch

    from .engine.loading import cuda_bf16_native

    found: dict[str, Any] = {"cuda_build": torch.version.cuda,
                             "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                             "cuda_available": torch.cuda.is_available(),
                             "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    if torch.version.cuda and not found["cuda_available"]:
        try:
            torch.cuda.init()  # raises saying why: no driver, a driver too old for this build, no device
        except (RuntimeError, AssertionError) as exc:  # torch's lazy CUDA initialisation raises either
            found["cuda_unavailable_because"] = str(exc).strip()
    devices = []
    for index in range(torch.cuda.device_count() if found["cuda_available"] else 0):
        props = torch.cuda.get_device_properties(index)
        devices.append({"device": f"cuda:{index}", "name": props.name,
                        "memory_gib": round(props.total_memory / 2**30, 1),
                        "compute_capability": f"{props.major}.{props.minor}", "bf16": cuda_bf16_native(index)})
    found["devices"] = devices
    mps = torch.backends.mps
    found["mps"] = "available" if mps.is_available() else "built, not available" if mps.is_built() else "not built"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    found["cpu_threads"] = torch.get_num_threads()
    found["cpu_cores"] = cores
    return found


def _rendering(extras: dict[str, Any]) -> dict[str, Any]:
    """MUJOCO_GL and whether an offscreen context opens (`sim.rendering.check_offscreen`, in a process of its own,
    at most `OFFSCREEN_CHECK_S`), not checked where `extras` (`_extras`) says the sim extra is missing."""
    import os
    import subprocess

    from .sim.rendering import gl_backend_said

    found: dict[str, Any] = {"mujoco_gl": gl_backend_said(), "pyopengl_platform": os.environ.get("PYOPENGL_PLATFORM")}
    sim = extras.get("sim")
    if isinstance(sim, dict) and not sim["installed"]:
        found["offscreen_context"] = (f"not checked: the 'sim' extra is missing ({', '.join(sim['missing'])}): "
                                      f"{sim['install']}")
        return found
    package_root = str(Path(__file__).resolve().parent.parent)  # the child imports this worldpolicy, not another
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run([sys.executable, "-c", _OFFSCREEN_CHECK], env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=OFFSCREEN_CHECK_S, check=False)
    except subprocess.TimeoutExpired:
        found["offscreen_context"] = f"fails: no context within {OFFSCREEN_CHECK_S} s (the GL driver hangs)"
        return found
    said = (done.stdout if done.returncode == 3 else done.stderr).strip().splitlines()
    found["offscreen_context"] = "opens" if done.returncode == 0 else (
        f"fails: {said[-1] if said else f'the check exited with status {done.returncode}'}")
    return found


def _video() -> dict[str, Any]:
    import av

    from .processing.video import CODECS

    encoders = {}
    for name in CODECS:
        try:
            av.codec.Codec(name, "w")
            encoders[name] = True
        except ValueError:  # av's UnknownCodecError: this FFmpeg has no such encoder
            encoders[name] = False
    libavcodec = av.library_versions.get("libavcodec")
    return {"pyav": av.__version__, "libavcodec": ".".join(map(str, libavcodec)) if libavcodec else None,
            "encoders": encoders}


def _hub_settings() -> dict[str, Any]:
    import os
    from urllib.parse import urlsplit

    import huggingface_hub
    from huggingface_hub import constants, get_token

    from .hub import offline_setting
    from .models import shipped_model

    endpoint = urlsplit(constants.ENDPOINT)
    if endpoint.username or endpoint.password:  # credentials in the URL: never printed
        endpoint = endpoint._replace(netloc=f"<redacted>@{endpoint.hostname}"
                                     + (f":{endpoint.port}" if endpoint.port else ""))
    token = ("set (HF_TOKEN)" if os.environ.get("HF_TOKEN") else
             "set (stored by `hf auth login`)" if get_token() else "not set")
    try:
        shipped = f"present ({shipped_model()})"
    except FileNotFoundError as exc:
        shipped = f"missing: {exc}"
    offline = offline_setting()
    return {"huggingface_hub": huggingface_hub.__version__, "endpoint": endpoint.geturl(),
            "cache": str(constants.HF_HUB_CACHE), "offline": f"yes ({offline})" if offline else "no",
            "token": token, "shipped_model": shipped}


def _said_lines(found: dict[str, Any], indent: str = "") -> list[str]:
    """A section as Markdown bullets: `- key: value`, a nested mapping or a list of them indented under its key."""
    lines = []
    for key, value in found.items():
        label = key.replace("_", " ")
        if isinstance(value, dict):
            lines += [f"{indent}- {label}:", *_said_lines(value, indent + "  ")]
        elif isinstance(value, list) and all(isinstance(item, dict) for item in value):
            lines.append(f"{indent}- {label}: {len(value) or 'none'}")
            for item in value:
                lines.append(f"{indent}  - " + ", ".join(f"{k}={_said(v)}" for k, v in item.items()))
        else:
            lines.append(f"{indent}- {label}: {_said(value)}")
    return lines


def _said(value: Any) -> str:
    return "yes" if value is True else "no" if value is False else "none" if value is None else str(value)
