"""`worldpolicy dataset info|check|frame|from-sim|teleop|from-videos|label|eval|show|select|merge|split|convert|
import-hdf5|recover`: inspect LeRobot v3 datasets, take one observation out of one as `worldpolicy predict`'s inputs,
record scripted-expert sim data or your own (teleop in MuJoCo's viewer), make one of raw video clips, pseudo-label
videos with actions, compare a checkpoint's predicted chunks with the recorded actions (open loop), write a page to
look at one, keep some of its episodes (features renamed or dropped) as a new dataset, merge several into one, split
one into train and validation sets, convert a LeRobot v2.x dataset or robomimic-format HDF5 demonstrations (robomimic,
LIBERO, MimicGen) into one, and recover the recording of a killed `serve --record`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from ..cli import (
    DEVICE_HELP,
    add_api_key_flags,
    add_center_crop_flag,
    add_device_flags,
    add_json_flag,
    lines_for_people,
    print_json,
    run_json,
)

# sim_to_dataset's parameters as from-sim spells them: its errors name the parameter, the user typed the flag
FLAGS = {
    "root": "ROOT",  # the positional folder (`--resume: ROOT='...' holds no dataset to continue`)
    "num_episodes": "--episodes",
    "seed": "--seed",
    "video_codec": "--video-codec",
    "image_size": "--image-size",
    "cameras": "--cameras",
    "max_steps": "--max-steps",
    "chunk_size": "--chunk-size",
    "start_jitter": "--start-jitter",
    "settle_steps": "--settle-steps",
    "action_noise": "--action-noise",
    "workers": "--workers",
    "control_hz": "--control-hz",
    "robot": "--robot",
    "policy": "--policy",  # a policy's rollouts (`dataset from-sim --policy`)
    "checkpoint": "--policy",  # what Policy.check_pretrained checks (the checkpoint is --policy here, as in sim)
    "embodiment": "--embodiment",
    "strategy": "--strategy",
    "execute_steps": "--execute-steps",
    "ensemble_decay": "--ensemble-decay",
    "latency_ms": "--latency",
    "rtc": "--rtc",
    "steps": "--steps",
    "device": "--device",
    "center_crop": "--no-center-crop",
    "overwrite": "--overwrite",
    "resume": "--resume",
    "ca_file": "--tls-ca",  # what RemotePolicy checks
    "timeout_s": "--server-timeout-s",
    "prompt_template": "--prompt-template",
    "prompt_variants": "--prompt-variants",
    "speed": "--speed",  # a teleop device's (`data.teleop_devices.DeviceMapping`)
}


# what every dataset-reading command's dataset argument takes (docs/data.md, "Datasets on the Hugging Face hub")
DATASET_ARG_HELP = ("dataset folder (holds meta/info.json), or a hub id (owner/name, owner/name@REV for a branch, tag "
                    "or commit) fetched into the hub's cache")
# what --action-keys and --state-keys default to first (`data.actions.run_keys`)
_RUN_KEYS = ("the keys the checkpoint's training run read, as its trainer_state.json records them, where the dataset "
             "has them all")
# what --action-keys defaults to after that, or alone (`data.actions.default_action_keys`)
_TRAINING_ACTION_KEYS = ("training's: the ones `dataset from-sim` writes, or `action` where it is the dataset's one "
                         "action feature")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dataset",
        help="inspect LeRobot v3 datasets, record sim expert data",
        description="LeRobotDataset v3.0 tools (pyarrow + PyAV, no lerobot package).",
    )
    cmds = p.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)

    info = cmds.add_parser("info", help="print a dataset's summary as JSON")
    info.add_argument("root", help=DATASET_ARG_HELP)
    info.set_defaults(func=_info)

    check = cmds.add_parser(
        "check", help="load every episode and video; exit 1 naming the first bad file/field (--embodiment: and "
        "whether it fits that embodiment as training reads it)",
        description="Load every episode and video; exit 1 naming the first bad file or field. With --embodiment, "
        "first check that training reads the dataset as that embodiment (its fps, its actions' columns, order and "
        "units, the state row, a video per camera), from the metadata alone: every problem is printed on a line "
        "naming the column or camera and the training config's [data] setting that fixes it, and exit 1 before the "
        "files are read; else what maps where is printed.")
    check.add_argument("root", help=DATASET_ARG_HELP)
    check.add_argument("--embodiment", metavar="NAME|SPEC.json",
                       help="the embodiment to fine-tune: a registered name or a spec file (as train's `embodiment`)")
    check.add_argument("--action-keys", nargs="+", action="extend", metavar="KEY",
                       help="with --embodiment: the features that hold the actions, as a training config's "
                       f"data.action_keys (default: {_TRAINING_ACTION_KEYS})")
    check.add_argument("--state-keys", nargs="+", action="extend", metavar="KEY",
                       help="with --embodiment: the features that make the state row, as data.state_keys (default: "
                       "training's)")
    check.add_argument("--video-keys", nargs="+", action="extend", metavar="KEY",
                       help="with --embodiment: the videos to train on, as data.video_keys (default: each camera's by "
                       "name, as training picks them)")
    check.add_argument("--no-progress", action="store_true", help="no progress bar (it goes to stderr)")
    add_json_flag(check, "the result (ok, problems, counts; with --embodiment what maps where)")
    check.set_defaults(func=_check)

    frame = cmds.add_parser(
        "frame",
        help="write one frame's camera images, state and task as `worldpolicy predict` inputs, and print the command",
        description="Write frame FRAME of episode EPISODE as predict's inputs: a PNG per camera, optionally a folder "
        "of the last N frames per camera (--clip, for inverse dynamics), the actions recorded from it with the "
        "frames they led to (--actions, for forward dynamics; --actions-to-end: to the episode's end), and "
        "dataset_frame.json (task, state, files). With --checkpoint, print the predict commands for it, built for "
        "its embodiment (cameras as --camera KEY=FILE, --state for state-conditioned ones).",
    )
    frame.add_argument("root", help=DATASET_ARG_HELP)
    frame.add_argument("--out", required=True, help="folder for the files (made if missing)")
    frame.add_argument("--episode", type=int, default=0,
                       help="episode index; negative counts from the end (default: %(default)s)")
    frame.add_argument("--frame", type=int, default=0,
                       help="frame index within the episode; negative counts from the end (default: %(default)s)")
    frame.add_argument("--checkpoint", help="print the predict command for this checkpoint (as predict takes it: "
                       "shipped, a folder or a hub id); no weights: only its embodiment.json and trainer_state.json "
                       "(the embodiment and keys its run trained on) are read")
    frame.add_argument("--embodiment", help="the embodiment to run it as (as predict takes it; default: the "
                       "checkpoint's own, else droid)")
    frame.add_argument("--cameras", nargs="+", action="extend", metavar="KEY",
                       help="dataset camera keys to write (default: all)")
    frame.add_argument("--clip", type=int, metavar="N",
                       help="also write the N frames ending at --frame per camera, as a folder of PNGs (N >= 2)")
    frame.add_argument("--state-keys", nargs="+", action="extend", metavar="KEY",
                       help="features that make the state vector, side by side (default, for a --checkpoint whose "
                       f"embodiment conditions on the state: {_RUN_KEYS}; else observation.state, else the "
                       "observation.state.* features)")
    frame.add_argument("--actions", action="store_true",
                       help="also write the actions recorded from --frame on (recorded_actions.json, in the "
                       "--checkpoint's embodiment's columns and units) and the real frames they led to per camera, "
                       "and print the forward-dynamics predict command to compare with them")
    frame.add_argument("--actions-to-end", action="store_true",
                       help="as --actions, but every action recorded from --frame to the episode's end, with the real "
                       "frames they led to, and print the predict command that rolls the model out over all of them "
                       "(--whole-trajectory: chunk after chunk, each from the last imagined frame)")
    frame.add_argument("--chunk-size", type=int, help="actions to write with --actions (with --actions-to-end: the "
                       "chunk each step of the rollout runs, passed to predict), a multiple of 4 (default: the "
                       "embodiment's, as predict's)")
    frame.add_argument("--action-keys", nargs="+", action="extend", metavar="KEY",
                       help="features that hold the actions, as a training config's data.action_keys (default: "
                       f"{_RUN_KEYS}; else {_TRAINING_ACTION_KEYS})")
    frame.add_argument("--overwrite", action="store_true", help="replace files an earlier run wrote in --out")
    frame.set_defaults(func=_frame)

    sim = cmds.add_parser(
        "from-sim",
        help="record seeded episodes of the scripted expert, or of a policy as `worldpolicy sim` runs it",
        description="Run the simulator's scripted expert (or --policy: a checkpoint, a ws:// server or random "
        "actions, run as `worldpolicy sim` runs them) on a task and write the successful episodes (--keep-failures: "
        "all, each flagged in meta/episodes' success column) as a LeRobot v3 dataset with Cosmos3-DROID keys (needs "
        "the sim and train extras).",
        absent_flags={"--out": "from-sim takes the new dataset's folder as its first argument (root), not as --out "
                               "as the other dataset commands do: worldpolicy dataset from-sim FOLDER ..."},
    )
    _add_from_sim_arguments(sim)
    sim.set_defaults(func=_from_sim)

    teleop = cmds.add_parser(
        "teleop",
        help="record your own demonstrations in the simulator: drag the hand in MuJoCo's viewer, or move it with a "
        "SpaceMouse or a gamepad",
        description="Open MuJoCo's viewer on a task's scene: double-click the green bar, Ctrl+right-drag it and the "
        "hand follows (IK); Space opens or closes the gripper, Enter ends the episode as a success, End as a failure, "
        "Delete discards it and shows its scene again; close the window to stop. --input spacemouse or gamepad moves "
        "the hand with a 3Dconnexion SpaceMouse or a gamepad instead (the teleop extra; docs/data.md has their "
        "buttons). The episodes are written as `dataset "
        "from-sim` writes the expert's (the same features, cameras, fps and provenance; each flagged in "
        "meta/episodes' success column). Needs a display and the sim and train extras.",
        absent_flags={"--out": "teleop takes the new dataset's folder as its first argument (root), not as --out: "
                               "worldpolicy dataset teleop FOLDER ..."},
    )
    _add_teleop_arguments(teleop)
    teleop.set_defaults(func=_teleop)

    videos = cmds.add_parser(
        "from-videos",
        help="make a dataset of raw video clips (teleop recordings, downloaded videos), one episode each, to label",
        description="Write each CLIP (a video file, or a folder's video files) as an episode of a new LeRobot v3 "
        "dataset at --out: its frames at "
        "--fps (the frame nearest each timestamp by the clip's own presentation timestamps: a variable-frame-rate "
        "clip is read as it plays), turned upright as players show it, brought to one --size (--fit), as the video "
        "observation.image, a pre-composed "
        "view `dataset label` and training take; no actions, no state. Label it with `worldpolicy dataset label`. A "
        "clip that cannot be decoded, or gives fewer than 2 frames at --fps, is skipped with a warning and listed; "
        "audio is not read. Each clip is decoded twice, a frame at a time (its timestamps, then its frames): a long "
        "one is never held whole.",
    )
    _add_from_videos_arguments(videos)
    videos.set_defaults(func=_from_videos)

    label = cmds.add_parser(
        "label",
        help="pseudo-label a dataset's videos with an inverse-dynamics checkpoint's actions, as a new dataset",
        description="Run inverse dynamics over each episode's whole video (its task as the prompt) and write a new "
        "LeRobot v3 dataset at --out: the source's frames, videos and columns plus the labels (feature --action-key, "
        "named as the embodiment's columns, physical units). Row t is the transition from frame t to t+1; the last "
        "frame repeats the row before it. Train on it with data.action_keys = [\"action\"].",
    )
    _add_label_arguments(label)
    label.set_defaults(func=_label)

    evaluate = cmds.add_parser(
        "eval",
        help="open-loop evaluation: a checkpoint's predicted chunks (or imagined frames, recovered actions) against "
        "a dataset's recording",
        description="Predict a chunk every N frames of each chosen episode (or N chunks spread over them), from the "
        "frame's cameras, task and state as training reads them, and compare it with the actions recorded over the "
        "same steps (mapped to the embodiment's columns as training maps them), in physical units. Writes "
        "openloop.json (per-column MAE and RMSE, per episode, per chunk step), a plot per episode and a summary plot "
        "to --out, and prints one line. --mode forward_dynamics or inverse_dynamics scores the world model's other "
        "modes the same way: the frames imagined under the recorded actions against the recorded frames, or the "
        "actions recovered from the recorded frames against the recorded actions. "
        "Open-loop error is not success: `worldpolicy sim` runs the closed loop.",
    )
    _add_eval_arguments(evaluate)
    evaluate.set_defaults(func=_eval)

    show = cmds.add_parser(
        "show",
        help="write a page to look at a dataset: summary, stats, and per episode its camera clips and plotted columns",
        description="Write OUT/index.html: the dataset's summary (fps, robot, episodes and their lengths, features "
        "with shapes and names, tasks, stats, provenance) and, per chosen episode, each camera's clip as an mp4, its "
        "state, action and other numeric features plotted over time by column, its task and its episodes-table "
        "fields. Open it in a browser (or `worldpolicy report OUT --serve`). With --rerun OUT.rrd (--rerun-spawn, "
        "--rerun-connect URL) instead: the episodes as a Rerun recording.",
    )
    show.add_argument("root", help=f"{DATASET_ARG_HELP}; it is not changed")
    show.add_argument("--out", help="folder for the page (new, empty, or an earlier show's); or --rerun...")
    show.add_argument("--episodes", metavar="I,J,...",
                      help="episodes to show, indices from 0 or ranges A-B separated by commas as train takes them "
                      "(default: the first 5; negative from the end, e.g. --episodes=-1)")
    show.add_argument("--embodiment", help="read the actions (and a state-conditioned one's state) as this "
                      "embodiment's columns and units, as training maps them (a registered name or spec file; "
                      "default: the features as recorded)")
    show.add_argument("--no-progress", action="store_true", help="no progress bar (it goes to stderr)")
    from worldpolicy.viz.commands import add_rerun_flags

    add_rerun_flags(show, "the episodes (each camera's frames, the plotted columns, the task), instead of the page")
    show.set_defaults(func=_show)

    from worldpolicy.data.layout import SUCCESS_FILTERS  # the format's facts alone: no pyarrow

    select = cmds.add_parser(
        "select",
        help="keep some episodes of a dataset (a list, a policy recording's successes) as a new dataset",
        description="Write the chosen episodes of ROOT as a new LeRobot v3 dataset at --out, numbered from 0: their "
        "frames, tasks, videos (copied as their encoded packets where they decode on their own, else encoded again; by "
        "default in ROOT's codec) and success flags, stats recomputed over them. meta/worldpolicy_provenance.json "
        "names ROOT and the source index of every kept episode.",
    )
    select.add_argument("root", help=f"{DATASET_ARG_HELP}; it is not changed")
    select.add_argument("--out", required=True, help="folder for the new dataset (new or empty; outside ROOT)")
    select.add_argument("--episodes", nargs="+", action="extend", metavar="I",
                        help="episodes to keep: indices from 0 and ranges A-B, by spaces or commas, e.g. --episodes "
                        "0 3 5-9 (default: all; negative from the end)")
    select.add_argument("--drop-episodes", nargs="+", action="extend", metavar="I",
                        help="episodes to leave out, spelled as --episodes")
    select.add_argument("--success", choices=SUCCESS_FILTERS,
                        help="only: keep the episodes that succeeded; failures: the others (a dataset with a success "
                        "column: `dataset from-sim`)")
    select.add_argument("--rename-feature", action="append", metavar="OLD=NEW",
                        help="write feature OLD (a camera, state or action key) as NEW: its column, video folder, "
                        "stats and card row, e.g. observation.images.robot0_eye_in_hand=observation.images.eye_in_hand "
                        "(repeat the flag for more)")
    select.add_argument("--drop-feature", action="append", metavar="KEY",
                        help="leave feature KEY out of the new dataset (repeat the flag for more; a dataset without "
                        "cameras is one, not one without any feature)")
    _add_edit_flags(select, "an earlier select or merge")
    select.set_defaults(func=_select)

    merge = cmds.add_parser(
        "merge",
        help="join datasets recorded alike into one new dataset, every episode in order",
        description="Write every episode of ROOT ROOT ... (in that order) as one new LeRobot v3 dataset at --out. "
        "They must have the same fps and features (names, dtypes, shapes, column names, video sizes): what differs is "
        "named before anything is written. Their tasks go into one task table; the success column is kept when all "
        "have one.",
    )
    merge.add_argument("roots", nargs="+", metavar="ROOT",
                       help="datasets, two or more, each a folder or a hub id (owner/name[@REV]) fetched into the "
                       "hub's cache; they are not changed")
    merge.add_argument("--out", required=True, help="folder for the new dataset (new or empty; outside every ROOT)")
    merge.add_argument("--drop-success", action="store_true",
                       help="merge datasets of which only some have a success column, without it")
    merge.add_argument("--drop-columns", action="store_true",
                       help="merge datasets whose other meta/episodes columns differ (one only some have, or of "
                            "another type), without those")
    _add_edit_flags(merge, "an earlier merge or select")
    merge.set_defaults(func=_merge)

    split = cmds.add_parser(
        "split",
        help="deal a dataset's episodes out into disjoint new datasets (train and validation sets), drawn with a seed",
        description="Write the episodes of ROOT as disjoint new LeRobot v3 datasets --out/NAME, one per NAME=FRACTION "
        "of --splits, each holding that fraction of the episodes (rounded; none may be left empty), which ones drawn "
        "at random with --seed, each written as `dataset select` writes one. meta/worldpolicy_provenance.json names "
        "ROOT, the split's episodes there, the splits and the seed.",
    )
    split.add_argument("root", help=f"{DATASET_ARG_HELP}; it is not changed")
    split.add_argument("--out", required=True, help="folder for the new datasets, one folder per split (outside ROOT)")
    split.add_argument("--splits", required=True, metavar="NAME=FRACTION,...",
                       help="the splits and their fractions of the episodes, summing to 1, e.g. train=0.9,val=0.1 (as "
                       "LeRobot's `lerobot-edit-dataset --operation.splits`)")
    split.add_argument("--seed", type=int, default=0,
                       help="seed of the draw: the same seed, the same splits (default: %(default)s)")
    _add_edit_flags(split, "an earlier split")
    split.set_defaults(func=_split)

    convert = cmds.add_parser(
        "convert",
        help="convert a LeRobot v2.1 or v2.0 dataset into a new v3.0 dataset (without lerobot's converter)",
        description="Write the LeRobot v2.1 / v2.0 dataset SRC (one parquet and one mp4 per episode, meta/*.jsonl) "
        "as a new LeRobot v3.0 dataset at --out: every episode in order, its frames, tasks and timestamps as they "
        "are, each video copied as its encoded packets (the frames bit for bit; one that does not start on a keyframe "
        "is encoded again), stats recomputed. SRC's metadata and files are checked before anything is written; "
        "meta/worldpolicy_provenance.json names SRC and its version.",
    )
    convert.add_argument("root", metavar="SRC", help=f"the v2.x {DATASET_ARG_HELP}; it is not changed")
    convert.add_argument("--out", required=True, help="folder for the new dataset (new or empty; outside SRC)")
    _add_edit_flags(convert, "an earlier convert")
    convert.set_defaults(func=_convert)

    imp = cmds.add_parser(
        "import-hdf5",
        help="convert robomimic-format HDF5 demonstrations (robomimic, LIBERO, MimicGen) into a new dataset",
        description="Write the demos of FILE (data/demo_N with actions and obs/<key>, as robomimic, LIBERO and "
        "MimicGen ship them) as a new LeRobot v3 dataset at --out, one episode per demo in numeric order: the "
        "robot's own low-dimensional obs keys side by side as observation.state, actions as action (the file's "
        "dtype, bit for bit; its columns named after the robosuite controller env_args configures, e.g. eef_dx .. "
        "gripper for OSC_POSE), rewards and dones as next.reward and next.done, each episode's success where sparse "
        "rewards say it, each camera image key as the video observation.images.<key> (_image/_rgb left off). "
        "Everything is checked before a frame is written; meta/worldpolicy_provenance.json names FILE, the demos, "
        "the keys (and those left out), what each action column is and how success was read.",
    )
    imp.add_argument("path", metavar="FILE", help="the .hdf5 file; it is only read")
    imp.add_argument("--out", required=True, help="folder for the new dataset (new or empty)")
    imp.add_argument("--state-keys", nargs="*", action="extend", metavar="KEY",
                     help="obs keys that make observation.state, side by side in this order (default: the robot's "
                     "own low-dimensional ones, robot0_*, ee_*, eef_*, joint_*, gripper_* but no *_to_*, by name, the "
                     "simulator's object state left out; the flag alone: no state)")
    imp.add_argument("--image-keys", nargs="+", action="extend", metavar="KEY",
                     help="obs keys written as videos (default: every uint8 [H, W, 3] one)")
    imp.add_argument("--fps", type=float,
                     help="the demos' control rate (default: the file's env_args env_kwargs.control_freq)")
    imp.add_argument("--task", help="the instruction the demos carry out (default: LIBERO's problem_info "
                     "language_instruction; a file without one needs it)")
    imp.add_argument("--mask", metavar="NAME",
                     help="only the demos of this filter group (mask/NAME: train, valid, ...)")
    imp.add_argument("--flip-images", choices=("vertical", "rotate180", "none"), default=None,
                     help="how to turn the stored images: vertical (right side up from bottom row first), rotate180 "
                     "(as openpi's and OpenVLA's LIBERO datasets are: vertical, mirrored left-right), none (default: "
                     "vertical when the file's macros_image_convention is 'opengl', as LIBERO's is, else none)")
    _add_edit_flags(imp, "an earlier import", default_codec="libx264rgb",
                    codec_help="libx264rgb (lossless, default), libx264, libsvtav1 (lossy ones need even image sizes)")
    imp.set_defaults(func=_import_hdf5)

    recover = cmds.add_parser(
        "recover",
        help="add the recording a killed `worldpolicy serve --record DIR` left in its spool to the dataset at DIR",
        description="A server killed outright (SIGKILL, the OOM killer, a power loss) leaves what it recorded and had "
        "not yet kept at its --record DIR (it keeps the finished episodes there as it runs) in its spool, the hidden "
        "folder .DIR.writing-spool-* beside DIR (`serve --record DIR` names it and refuses to start over it). This "
        "writes the dataset the server was recording: the episodes it kept, copied as they are, then every exchange "
        "that reached the spool, in the episodes it was recording (a connection's episodes end at a prompt change or "
        "a pause); the episode of a connection open at the kill has serving.killed true, and a record half-written at "
        "the kill is left out and reported. The spool is removed once the dataset is written; a spool a running "
        "server holds is refused, untouched.",
    )
    recover.add_argument("spool", metavar="SPOOL", help="the spool folder (.DIR.writing-spool-*)")
    recover.add_argument("--out", required=True,
                         help="folder for the dataset: the server's --record DIR (what it kept there is added to), or "
                         "a new or empty one")
    recover.add_argument("--overwrite", action="store_true",
                         help="replace the dataset an earlier `serve --record` (or recover) wrote at --out")
    recover.add_argument("--no-progress", action="store_true", help="no progress bar (it goes to stderr)")
    recover.set_defaults(func=_recover)


def _add_edit_flags(parser: argparse.ArgumentParser, earlier: str, default_codec: str | None = None,
                    codec_help: str = "codec of the new videos: libx264rgb (lossless), libx264, libsvtav1 (default: "
                    "the source's, where it is one of these, each video then copied as its encoded packets where they "
                    "decode on their own; else libx264rgb); another than the source's encodes every video again"
                    ) -> None:
    """The flags `dataset select`, `merge`, `convert` and `import-hdf5` share: --video-codec (by default the source's,
    whose packets select, merge and convert copy as they are), --overwrite (what `earlier` wrote) and --no-progress."""
    parser.add_argument("--video-codec", default=default_codec, help=codec_help)
    parser.add_argument("--overwrite", action="store_true", help=f"replace the dataset {earlier} wrote at --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (it goes to stderr)")


def _info(args: argparse.Namespace) -> int:
    from worldpolicy.data import LeRobotDataset

    print(json.dumps(LeRobotDataset.open(args.root).summary(), indent=2))
    return 0


def _check(args: argparse.Namespace) -> int:
    import sys

    from worldpolicy.data import DatasetFormatError, LeRobotDataset, first_non_finite
    from worldpolicy.logcapture import progress_bar

    if not args.embodiment and (given := [f for f, v in (("--action-keys", args.action_keys), ("--state-keys",
                                                          args.state_keys), ("--video-keys", args.video_keys)) if v]):
        raise ValueError(f"{', '.join(given)} given without --embodiment; accepted: only with --embodiment (the keys "
                         "training reads as that embodiment's)")
    doc: dict[str, Any] = {"ok": False, "problems": []}

    def failed(problems: list[str]) -> int:
        for problem in problems:
            print(f"worldpolicy dataset check: {problem}", file=sys.stderr)
        if args.json:
            print_json({**doc, "problems": problems})
        return 1

    bad = None
    try:
        ds = LeRobotDataset.open(args.root)
        doc.update(root=str(ds.root.resolve()), episodes=ds.num_episodes, frames=ds.num_frames)
        if args.embodiment:
            fit = _embodiment_fit(ds, args)
            doc["embodiment"] = fit.to_json()
            if fit.problems:
                files = f"files not read: fix the {len(fit.problems)} problem(s) above for {fit.embodiment!r} first"
                return failed([*fit.problems, files])
        # decoding every video of a real dataset takes minutes to hours: show how far it is. The `with` closes the
        # bar on every way out (an unexpected error or Ctrl-C too), so no half-drawn bar is left on the terminal.
        # The episodes are read in order: each decodes on from the previous one in its file, not again from the
        # keyframe before it (about half the CPU on a long-GOP file: docs/data.md)
        with ds.reading_in_order(), progress_bar(total=ds.num_episodes, desc="checking episodes", unit="ep",
                                                 disable=args.no_progress) as bar:
            for i in range(ds.num_episodes):
                if (bad := first_non_finite(ds.episode(i).frames)) is not None:  # readable, but nothing can learn
                    break
                bar.update(1)
        if bad is not None:
            where = f"{bad.frames} frames (first: frame {bad.frame})"
            return failed([f"episode {i}: {bad.key!r} holds NaN or inf in {where}"])
        ds.check_files()
        stats = ds.stats
    except (DatasetFormatError, FileNotFoundError) as exc:  # FileNotFoundError: no dataset folder at `root`
        return failed([str(exc)])
    doc.update(ok=True, video_features=len(ds.video_keys), stats=bool(stats), not_read=dict(ds.unread_features))
    with lines_for_people(args.json):
        print(
            f"ok: {ds.num_episodes} episodes, {ds.num_frames} frames, {len(ds.video_keys)} video features, "
            f"{'with' if stats else 'no'} stats"
            + "".join(f"\n  not read: {name!r}: {why}" for name, why in ds.unread_features.items())
        )
        if args.embodiment:
            print(f"fits embodiment {fit.embodiment!r} at {fit.fps:g} fps:")
            print("\n".join(f"  {line}" for line in fit.lines()))
    if args.json:
        print_json(doc)
    return 0


# what a spec file may leave to `train` (the action-head slot, the chunk size: `data.chunk_size`) as `dataset check
# --embodiment` reads it: any accepted value, as no rule of the fit reads them
FIT_DOMAIN_ID = 0
FIT_CHUNK_SIZE = 4


def _embodiment_fit(ds, args: argparse.Namespace):
    """`dataset check --embodiment`: how `ds` fits it (`data.fit.embodiment_fit`); an unknown name or a bad spec file
    is refused naming the flag."""
    from worldpolicy.data.fit import embodiment_fit
    from worldpolicy.embodiments import (
        SPEC_FILE_SUFFIX,
        default_domain,
        domain_table,
        embodiment_from_spec,
        get_embodiment,
        read_spec_file,
    )

    try:
        if args.embodiment.strip().endswith(SPEC_FILE_SUFFIX):
            # a new robot's spec as train's layout pass reads it: the head's slot, the domain, the chunk size and the
            # stats, which a run settles, bear on no part of the fit
            spec = read_spec_file(args.embodiment)
            if isinstance(spec, dict):  # else refused as the spec it is not
                spec = {"chunk_size": FIT_CHUNK_SIZE, "domain": default_domain(spec), **spec,
                        "normalization": "none", "stats": None}
                if spec["domain"] not in domain_table():  # a known domain's slot is its own
                    spec.setdefault("domain_id", FIT_DOMAIN_ID)
            target = embodiment_from_spec(spec)
        else:
            target = get_embodiment(args.embodiment)
    except (KeyError, ValueError, TypeError, OSError) as exc:
        raise ValueError(f"--embodiment {args.embodiment!r}: {exc.args[0] if exc.args else exc}") from None
    return embodiment_fit(ds, target, args.action_keys, args.state_keys, args.video_keys, name=args.root)


# extract_frame's parameters as `dataset frame` spells them (`cli.flag_named`)
FRAME_FLAGS = {name: "--" + name.replace("_", "-") for name in (
    "out", "episode", "frame", "checkpoint", "embodiment", "cameras", "clip", "state_keys", "actions", "chunk_size",
    "action_keys", "overwrite")} | {"to_end": "--actions-to-end"}


def _frame(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from worldpolicy.cli import flag_named
    from worldpolicy.data.frame import FRAME_FILE, extract_frame
    from worldpolicy.viz.run import ROLLOUT_VIDEO

    try:
        obs = extract_frame(
            args.root, args.out, args.episode, args.frame, checkpoint=args.checkpoint, embodiment=args.embodiment,
            cameras=args.cameras, clip=args.clip, state_keys=args.state_keys,
            actions=args.actions or args.actions_to_end, chunk_size=args.chunk_size, action_keys=args.action_keys,
            overwrite=args.overwrite, to_end=args.actions_to_end,
        )
    except FileExistsError as exc:
        raise flag_named(exc, FRAME_FLAGS) from None
    except (ValueError, KeyError) as exc:
        # --actions-to-end asks for the actions too: an error about them names the flag given
        raise flag_named(exc, {**FRAME_FLAGS, "actions": "--actions-to-end"} if args.actions_to_end
                         else FRAME_FLAGS) from None
    print(f"episode {obs.episode}, frame {obs.frame} of {obs.root}: task {obs.task!r}")
    recorded = [obs.actions, *obs.futures.values()] if obs.actions is not None else []
    for path in [*obs.images.values(), *obs.clips.values(), *recorded, obs.out / FRAME_FILE]:  # the last: task, state
        print(f"  wrote {path}")
    for line in obs.command_lines.values():
        print(line)
    if "forward_dynamics" in obs.commands:
        out = obs.commands["forward_dynamics"][obs.commands["forward_dynamics"].index("--out") + 1]
        print(f"then compare {Path(out) / ROLLOUT_VIDEO} (imagined) with the recorded frames in "
              + ", ".join(str(p) for p in obs.futures.values()))
    if not obs.commands:
        print("pass --checkpoint to get the `worldpolicy predict` command for these files", file=sys.stderr)
    return 0


def _add_scene_arguments(sim: argparse.ArgumentParser, max_steps: int | None = None) -> None:
    """The arguments `dataset from-sim` and `dataset teleop` share that say what is recorded: the folder, task,
    episodes, seeds, cameras, step limit (`max_steps`: its default, None the task's), robot and rate."""
    from worldpolicy.sim.scenes import DEFAULT_IMAGE_SIZE  # as `worldpolicy sim`'s parser: no MuJoCo
    from worldpolicy.sim.tasks import DEFAULT_CONTROL_HZ, EVAL_SEED  # as `worldpolicy sim`'s parser: nothing more

    sim.add_argument("root", help="output dataset folder (must not exist unless --resume or --overwrite)")
    sim.add_argument("--task", default="pick_place", help="sim task (default: %(default)s)")
    sim.add_argument("--episodes", type=int, default=10, help="episodes to keep (default: %(default)s)")
    sim.add_argument("--seed", type=int, default=0,
                     help="first env seed; later episodes use seed+1, … (default: %(default)s; "
                     f"`worldpolicy sim` evaluates from {EVAL_SEED}, past them)")
    sim.add_argument("--image-size", default="x".join(map(str, DEFAULT_IMAGE_SIZE)), metavar="HxW",
                     help="camera size (default: %(default)s)")
    sim.add_argument("--cameras", nargs="+", action="extend",
                     help="DROID camera keys to record, one or more per flag (default: all three)")
    sim.add_argument("--max-steps", type=int, default=max_steps,
                     help="episode step limit (default: " + ("the task's)" if max_steps is None else "%(default)s)"))
    sim.add_argument("--robot", default="panda",
                     help="panda | fr3 | menagerie_panda | path to a Menagerie panda.xml | a robot file (*.json), as "
                     "`worldpolicy sim --robot` (default: %(default)s)")
    sim.add_argument("--control-hz", type=float, default=DEFAULT_CONTROL_HZ, metavar="HZ",
                     help="control rate to record at: one row per control step, the dataset's fps (default: "
                     "%(default)g, the droid embodiment's fps; training needs its embodiment's, e.g. 10 "
                     "for a 10 Hz robot's; evaluate with `worldpolicy sim --control-hz` the same)")


def _add_scene_shift_arguments(sim: argparse.ArgumentParser) -> None:
    """The arguments `dataset from-sim` and `dataset teleop` share that shape each scene and its words."""
    from worldpolicy.data.layout import PROMPT_VARIANTS  # as the sim imports below: no extra
    from worldpolicy.sim.perturb import perturbation_help  # as `worldpolicy sim`'s parser: no MuJoCo

    sim.add_argument("--task-option", action="append", default=[], metavar="NAME=VALUE",
                     help="task setting for the recorded episodes, e.g. upper_share=0.3 (reach: more high balls)")
    sim.add_argument("--perturb", action="append", default=None, metavar="SPEC",
                     help="record under shifts on top of every episode's scene, as `worldpolicy sim --perturb` applies "
                     "them (domain randomisation; recorded in the provenance): " + perturbation_help() + "; repeat "
                     "the flag or give a comma list (default: none)")
    sim.add_argument("--prompt-template", default=None, metavar="TEXT",
                     help="every episode's instruction in your own words, as `worldpolicy sim --prompt-template` takes "
                     "it, e.g. \"move to the {color} {object}\": {color} and {object} name what the task acts on, "
                     "{goal_color} and {goal} where it goes (push, pick_place); recorded in the provenance, --resume "
                     "refuses another; --perturb prompt=paraphrase draws the task's own rewordings instead (default: "
                     "the task's wording)")
    sim.add_argument("--prompt-variants", choices=tuple(PROMPT_VARIANTS), default="drawn",
                     help="what each episode's task holds (meta/tasks.parquet; recorded in the provenance): "
                     + "; ".join(f"{name}: {means}" for name, means in PROMPT_VARIANTS.items())
                     + " (language augmentation; default: %(default)s)")


def _add_output_arguments(sim: argparse.ArgumentParser, command: str, progress: bool = True) -> None:
    """The arguments `dataset from-sim` and `dataset teleop` (`command`) share that say how the dataset is written."""
    sim.add_argument("--video-codec", default=None,
                     help="libx264rgb (lossless, default; with --resume: the dataset's own), libx264, libsvtav1")
    sim.add_argument("--overwrite", action="store_true",
                     help=f"replace the dataset an earlier {command} recording wrote at ROOT")
    sim.add_argument("--resume", action="store_true",
                     help=f"continue the dataset an interrupted {command} recording (the same command and settings) "
                     "left at ROOT until it holds --episodes, from the seed after its last: the episodes of one "
                     "uninterrupted recording")
    if progress:
        sim.add_argument("--no-progress", action="store_true", help="no progress bar (it goes to stderr)")
    sim.add_argument("--json", action="store_true",
                     help="print the dataset's whole summary as JSON (as `dataset info`, with the seeds, failed seeds "
                     "and wall time) instead of a few lines and the next commands")


def _add_from_sim_arguments(sim: argparse.ArgumentParser) -> None:
    """`dataset from-sim`'s arguments (also read back by `_from_sim_resume_command`)."""
    _add_scene_arguments(sim)
    sim.add_argument("--policy", default="scripted",
                     help="what acts, as `worldpolicy sim --policy` takes it: scripted (default: the IK expert) | "
                     "shipped | CHECKPOINT dir | ws://HOST:PORT | random. A policy's episodes are what `worldpolicy "
                     "sim --seed SEED` runs for each seed, its commanded joint targets the recorded actions")
    sim.add_argument("--embodiment", default=None,
                     help="a policy's action space, as `worldpolicy sim --embodiment` (default: a checkpoint's own, a "
                     "server's; random: droid/relative_pose)")
    sim.add_argument("--strategy", choices=("execute", "ensemble", "async"), default=None,
                     help="a policy's chunk strategy, as `worldpolicy sim --strategy` (default: execute)")
    sim.add_argument("--execute-steps", type=int, default=None,
                     help="k actions per chunk, as `worldpolicy sim --execute-steps` (default: per strategy)")
    sim.add_argument("--ensemble-decay", type=float, default=None,
                     help="with --strategy ensemble: as `worldpolicy sim --ensemble-decay` (default: 0.1)")
    from worldpolicy.sim.commands import add_latency_flags  # the parser `worldpolicy sim` adds imports it: no MuJoCo

    add_latency_flags(sim, "as `worldpolicy sim --latency` takes it; recorded in the provenance")
    sim.add_argument("--steps", type=int, default=None,
                     help="denoising steps of a checkpoint policy (default: the embodiment's sampling preset, else 4)")
    sim.add_argument("--device", default=None, help=f"a checkpoint policy's {DEVICE_HELP}")
    add_center_crop_flag(sim)  # a checkpoint policy's, as `worldpolicy sim` takes it
    add_api_key_flags(sim)  # a ws:// policy's, as `worldpolicy sim` takes it
    sim.add_argument("--chunk-size", type=int, default=None,
                     help="the scripted expert's re-plan interval in steps (default: 8)")
    sim.add_argument("--start-jitter", type=float, default=0.0, metavar="RAD",
                     help="vary the arm's start pose by up to this many radians per joint (default: %(default)g)")
    sim.add_argument("--settle-steps", type=int, default=4, help="steps recorded after success (default: %(default)s)")
    sim.add_argument("--action-noise", type=float, default=0.0, metavar="RAD",
                     help="DART noise: per-chunk joint offset std on executed actions; labels stay clean "
                     "(default: %(default)g)")
    _add_scene_shift_arguments(sim)
    sim.add_argument("--keep-failures", action="store_true",
                     help="keep episodes the expert or policy did not solve (a policy's: flagged in meta/episodes' "
                     "success column)")
    sim.add_argument("--workers", type=int, default=1,
                     help="recording processes (default: %(default)s; output is the same); scripted and random only")
    _add_output_arguments(sim, "from-sim")


def _add_teleop_arguments(teleop: argparse.ArgumentParser) -> None:
    """`dataset teleop`'s arguments (also read back for the command line its provenance records)."""
    from worldpolicy.data.layout import TELEOP_MAX_STEPS

    _add_scene_arguments(teleop, max_steps=TELEOP_MAX_STEPS)
    teleop.add_argument("--input", choices=("viewer", "spacemouse", "gamepad"), default="viewer",
                        help="what moves the hand: viewer (drag the green bar in MuJoCo's viewer), spacemouse (a "
                        "3Dconnexion SpaceMouse), gamepad (an Xbox-layout pad); a device needs the teleop extra, and "
                        "the viewer still shows the scene (default: %(default)s)")
    teleop.add_argument("--speed", type=float, default=None, metavar="FACTOR",
                        help="with a device --input: the hand target's speed at full deflection, times 0.15 m/s and "
                        "1 rad/s (default: 1)")
    _add_scene_shift_arguments(teleop)
    _add_output_arguments(teleop, "teleop", progress=False)  # the viewer says each episode: no bar


def _add_eval_arguments(evaluate: argparse.ArgumentParser) -> None:
    """`dataset eval`'s arguments (also read back by `_eval` to show the command with CHECKPOINT and DATASET in
    their order, `cli.continue_command`)."""
    evaluate.add_argument("checkpoint", metavar="CHECKPOINT", help="as predict takes it: shipped, a folder or a hub id")
    evaluate.add_argument("root", metavar="DATASET", help=f"{DATASET_ARG_HELP}; it is not changed")
    evaluate.add_argument("--out", required=True, help="folder for openloop.json and the plots (new, empty, or an "
                          "earlier eval's)")
    evaluate.add_argument("--embodiment", help="the embodiment to run it as (as predict takes it; default: the "
                          "checkpoint's own, else droid)")
    from worldpolicy.results import MODES

    evaluate.add_argument("--mode", choices=MODES, default="policy",
                          help="what is compared with the recording: policy, the chunks predicted from a frame against "
                          "the recorded actions; forward_dynamics, the frames imagined from a frame under the recorded "
                          "actions against the recorded frames (PSNR, SSIM per camera and frame ahead; a video per "
                          "episode of recorded | imagined | abs diff); inverse_dynamics, the actions recovered from "
                          "the recorded frames against the recorded actions (default: %(default)s)")
    evaluate.add_argument("--episodes", metavar="I,J,...",
                          help="episodes to evaluate on, indices from 0 or ranges A-B separated by commas as train "
                          "takes them (default: all; negative from the end, e.g. --episodes=-1)")
    spacing = evaluate.add_mutually_exclusive_group()  # both given: refused naming both flags, before anything loads
    spacing.add_argument("--every", type=int, metavar="N",
                         help="predict at every N-th frame (default: the chunk size, so the chunks tile each episode)")
    spacing.add_argument("--chunks", type=int, metavar="N",
                         help="instead of --every: N chunks, their start frames spread evenly over the episodes (as "
                         "a training run's validation.action_chunks picks them)")
    evaluate.add_argument("--seed", type=int, default=0,
                          help="sampling seed; episode I's chunks are sampled with seed+I (default: %(default)s)")
    evaluate.add_argument("--batch-size", type=int, default=8,
                          help="predictions per batched forward (default: %(default)s)")
    evaluate.add_argument("--state-keys", nargs="+", action="extend", metavar="KEY",
                          help="state features for a state-conditioned embodiment, side by side (default: "
                          f"{_RUN_KEYS}; else observation.state, else the observation.state.* features)")
    evaluate.add_argument("--action-keys", nargs="+", action="extend", metavar="KEY",
                          help="features that hold the recorded actions, as a training config's data.action_keys "
                          f"(default: {_RUN_KEYS}; else {_TRAINING_ACTION_KEYS})")
    evaluate.add_argument("--steps", type=int, help="denoising steps (default: the embodiment's sampling preset, "
                          "else 4)")
    add_device_flags(evaluate)
    add_center_crop_flag(evaluate)
    evaluate.add_argument("--no-plots", action="store_true", help="write openloop.json only")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar (it goes to stderr)")
    add_json_flag(evaluate, "the comparison (openloop.json's fields) with run_dir and the files written")


def _add_from_videos_arguments(videos: argparse.ArgumentParser) -> None:
    """`dataset from-videos`'s arguments (also read back by `continue_command` for its provenance's command)."""
    from worldpolicy.data.from_videos import FITS, TASK_SOURCES  # names only: av and pyarrow load when it runs

    videos.add_argument("clips", nargs="+", metavar="CLIP",
                        help="video files, and folders whose video files (.mp4, .mov, .mkv, .avi, .webm; not in "
                        "subfolders) are taken sorted by name; they are only read")
    videos.add_argument("--out", required=True, help="folder for the new dataset (new or empty)")
    tasks = videos.add_mutually_exclusive_group()
    tasks.add_argument("--task", metavar="TEXT", help="every episode's instruction (the prompt training and "
                       "labelling condition on)")
    tasks.add_argument("--task-from", choices=TASK_SOURCES,
                       help="each clip's own instruction: filename (its name, _ and - as spaces, a trailing take "
                       "number left off: pick_up_the_cube_003.mp4 is 'pick up the cube'), sidecar (the text of "
                       "CLIP.txt beside CLIP.mp4); a clip without one is refused, named, before anything is read")
    videos.add_argument("--fps", type=float, help="the dataset's frame rate (default: --embodiment's; without it, "
                        "required)")
    videos.add_argument("--size", metavar="HxW", help="every frame's height x width in pixels, e.g. 480x640 "
                        "(default: the frame size --embodiment composes its cameras into where it is fixed, as DROID's "
                        "composite; else the first readable clip's)")
    videos.add_argument("--fit", choices=FITS, default="pad",
                        help="how a clip of another shape is brought to --size: pad (scaled to fit, the rest black, "
                        "proportions kept; default), crop (scaled to cover, the overhang cut evenly), stretch (each "
                        "side scaled on its own)")
    videos.add_argument("--embodiment", help="the embodiment it will be labelled as (a registered name or spec "
                        "file): its rate and frame size are the defaults, its name the dataset's robot_type")
    _add_edit_flags(videos, "an earlier from-videos", default_codec="libx264rgb",
                    codec_help="libx264rgb (lossless, default: the frames the labels will explain), libx264, "
                    "libsvtav1 (lossy ones need even frame sizes)")


def _add_label_arguments(label: argparse.ArgumentParser) -> None:
    """`dataset label`'s arguments (also read back by `_label_resume_command`)."""
    label.add_argument("root", help=f"{DATASET_ARG_HELP}; it is not changed")
    label.add_argument("--checkpoint", required=True, help="as predict takes it: shipped, a folder or a hub id")
    label.add_argument("--out", required=True, help="folder for the new dataset (new or empty; outside ROOT)")
    label.add_argument("--embodiment", help="the embodiment to run it as (as predict takes it; default: the "
                       "checkpoint's own, else droid)")
    label.add_argument("--episodes", metavar="I,J,...",
                       help="episodes to label and keep, indices from 0 or ranges A-B separated by commas as train "
                       "takes them (default: all; negative from the end, e.g. --episodes=-1)")
    label.add_argument("--seed", type=int, default=0,
                       help="sampling seed; episode I is labelled with seed+I (default: %(default)s)")
    label.add_argument("--batch-size", type=int, default=8, help="windows per batched forward (default: %(default)s)")
    label.add_argument("--resample", action="store_true",
                       help="label a dataset recorded at another fps at the embodiment's: the frames nearest its "
                       "timestamps are labelled and kept (without it such a dataset is refused)")
    label.add_argument("--state-keys", nargs="+", action="extend", metavar="KEY",
                       help="state features for a state-conditioned embodiment, side by side (default: "
                       "observation.state, else the observation.state.* features)")
    label.add_argument("--action-key", default="action",
                       help="feature for the labels; a source feature of this name is replaced (default: %(default)s)")
    label.add_argument("--steps", type=int, help="denoising steps (default: the embodiment's sampling preset, else 4)")
    add_device_flags(label)
    add_center_crop_flag(label)
    label.add_argument("--video-codec", default="libx264rgb",
                       help="codec the videos are written again with: libx264rgb (lossless, default: the frames the "
                       "labels explain), libx264, libsvtav1")
    label.add_argument("--overwrite", action="store_true",
                       help="replace the dataset an earlier label run wrote at --out (and the episodes an interrupted "
                       "one kept in OUT.partial: label anew)")
    label.add_argument("--resume", action="store_true",
                       help="continue the run (the same command and settings) that was interrupted or failed: the "
                       "episodes it labelled, kept in OUT.partial beside --out, are copied and the others labelled, "
                       "as one uninterrupted run labels them; once it finished, nothing is labelled (exit 0)")
    label.add_argument("--no-progress", action="store_true", help="no progress bar (it goes to stderr)")


def _check_task(task: str, options: dict) -> None:
    """--task and --task-option, named as flags (the task table speaks of `task` and options)."""
    from worldpolicy.sim.tasks import get_task, list_tasks

    if task not in list_tasks():
        raise ValueError(f"--task: unknown task {task!r}; accepted: {', '.join(list_tasks())}")
    try:
        get_task(task, **options)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--task-option: {exc}") from None


def _scene_options(args: argparse.Namespace) -> dict[str, Any]:
    """The scene settings `dataset from-sim` and `dataset teleop` share (`_add_scene_arguments`,
    `_add_scene_shift_arguments`), checked as flags, as `sim_to_dataset` takes them: the image size (even, for a codec
    that needs it), the task and its options, the shifts and the prompt's words."""
    from worldpolicy.cli import pixel_size
    from worldpolicy.processing.video import CODECS

    height, width = pixel_size("--image-size", args.image_size, "180x320")
    if args.video_codec in CODECS:  # an unknown codec is named by the writer, before anything is recorded
        try:
            CODECS[args.video_codec].check_frame_size(height, width)
        except ValueError:
            raise ValueError(
                f"--image-size={args.image_size!r}: --video-codec={args.video_codec!r} needs even frame sizes; "
                "choose even ones or --video-codec libx264rgb"
            ) from None
    task_options = {}
    for text in args.task_option:
        name, sep, value = text.partition("=")
        if not sep or not name:
            raise ValueError(f"--task-option={text!r}; expected NAME=VALUE, e.g. upper_share=0.3")
        try:
            task_options[name] = json.loads(value)
        except json.JSONDecodeError:
            task_options[name] = value
    _check_task(args.task, task_options)
    from worldpolicy.sim.perturb import check_rewording, parse_perturbations

    perturb = parse_perturbations(args.perturb, "--perturb")
    check_rewording(perturb, args.prompt_template, args.task, ("--prompt-template", "--perturb"))  # as sim checks it
    return {"task_options": task_options, "image_size": (height, width), "control_hz": args.control_hz,
            "robot": args.robot, "cameras": args.cameras, "max_steps": args.max_steps, "perturb": perturb,
            "prompt_template": args.prompt_template, "prompt_variants": args.prompt_variants}


def _from_sim(args: argparse.Namespace) -> int:
    import sys

    from worldpolicy.extras import check_extras

    check_extras("worldpolicy.data.lerobot", "worldpolicy.sim.env")  # it writes a dataset of simulator episodes
    from worldpolicy.cli import center_crop_option, flag_named
    from worldpolicy.data.from_sim import ExpertFailed, RecordingInterrupted, sim_to_dataset
    from worldpolicy.fileio import exit_status

    made_by = _from_sim_resume_command(args, resume=False)  # as typed: the provenance's `command`
    scene = _scene_options(args)  # before a checkpoint is looked for or a scene built
    strategy_flags = [flag for flag, value in (("--strategy", args.strategy), ("--execute-steps", args.execute_steps),
                                               ("--ensemble-decay", args.ensemble_decay)) if value is not None]
    timing_flags = [flag for flag, value in (("--latency", args.latency), ("--rtc", args.rtc)) if value]
    if (given := strategy_flags + timing_flags) and args.policy == "scripted":
        raise ValueError(f"{given[0]}: sets how a policy's chunks run; the scripted expert re-plans every "
                         "--chunk-size steps: leave it out or pass --policy")
    from worldpolicy.sim.commands import check_ensemble_decay
    from worldpolicy.sim.tasks import warn_training_scenes

    check_ensemble_decay(args.strategy, args.ensemble_decay)
    from worldpolicy.cli import policy_api_key, policy_server_timeout, policy_tls_ca, with_key_hint

    api_key = policy_api_key(args, args.policy)  # before anything is recorded, as the other policy-only flags
    ca_file = policy_tls_ca(args, args.policy)
    timeout_s = policy_server_timeout(args, args.policy)
    strategy = None  # a policy's: ChunkStrategy's default (execute) unless a flag says
    if strategy_flags:
        from worldpolicy.robot.control import ChunkStrategy

        decay = {} if args.ensemble_decay is None else {"ensemble_decay": args.ensemble_decay}
        try:
            strategy = ChunkStrategy(args.strategy or "execute", args.execute_steps, **decay)
        except ValueError as exc:
            raise flag_named(exc, FLAGS) from None

    def checked() -> None:
        """As `worldpolicy sim` warns: the seeds may be the scenes a checkpoint was trained on. Said once every
        setting is checked (`sim_to_dataset`'s on_checked), so a recording refused (--workers 2 with a model, a folder
        already recorded) is not warned about first."""
        from worldpolicy.models import SERVER_SCHEMES, resolve_checkpoint
        from worldpolicy.sim.tasks import BUILTIN_POLICIES

        if args.policy not in BUILTIN_POLICIES and not args.policy.startswith(SERVER_SCHEMES):
            warn_training_scenes(str(resolve_checkpoint(args.policy)), args.task, args.seed, args.episodes)

    try:
        result = sim_to_dataset(
            args.root,
            args.task,
            args.episodes,
            seed=args.seed,
            video_codec=args.video_codec,
            overwrite=args.overwrite,
            resume=args.resume,
            chunk_size=args.chunk_size,
            keep_failures=args.keep_failures,
            start_jitter=args.start_jitter,
            settle_steps=args.settle_steps,
            action_noise=args.action_noise,
            workers=args.workers,
            progress=not args.no_progress,
            policy=args.policy,
            embodiment=args.embodiment,
            strategy=strategy,
            latency_ms=args.latency,
            rtc=args.rtc,
            policy_options={k: v for k, v in (("steps", args.steps), ("device", args.device),
                                              ("center_crop", center_crop_option(args))) if v is not None},
            api_key=api_key,
            ca_file=ca_file,
            timeout_s=timeout_s,
            on_checked=checked,
            command=made_by,
            **scene,
        )
    except RecordingInterrupted as exc:  # Ctrl-C: say what became of the episodes recorded so far
        again = _from_sim_resume_command(args) if exc.kept or exc.resumed else None  # else nothing to continue
        print(f"worldpolicy dataset from-sim: {exc.describe('--overwrite', '--resume')}"
              + (f"; to go on: {again}" if again else ""), file=sys.stderr)
        return exit_status(exc)  # 143 SIGTERM, 138 SIGUSR1, 130 Ctrl-C
    except ConnectionError as exc:  # a server that refused the key: said with the flags that send one
        raise with_key_hint(exc, "dataset from-sim") from None
    except ExpertFailed as exc:  # bad settings for the expert, not a crash: one line, naming the flags
        raise ValueError(exc.describe(flags=True)) from None
    except (ValueError, KeyError, FileNotFoundError, FileExistsError) as exc:  # the last: the writer's overwrite=True
        # "num_episodes=0 ..." (from_sim), "image_size: ..." (the env) and "robot: unknown name ..." (a KeyError; a
        # FileNotFoundError for an MJCF path not there) alike
        raise flag_named(exc, FLAGS) from None
    return _said_recording(result, args, "from-sim")


def _said_recording(result: Any, args: argparse.Namespace, command: str) -> int:
    """What `dataset from-sim` and `dataset teleop` (`command`) print once their recording is written."""
    import sys

    if args.resume and result.resumed >= args.episodes:
        print(f"worldpolicy dataset {command}: {args.root} already holds {result.resumed} episodes (--episodes "
              f"{args.episodes}): nothing to record", file=sys.stderr)
    if args.json:
        out = result.dataset.summary()
        out.update(seeds=result.seeds, failed_seeds=result.failed_seeds, wall_s=round(result.wall_s, 2))
        print(json.dumps(out, indent=2))
    else:
        print(_from_sim_said(result, args.task))
    return 0


def _teleop(args: argparse.Namespace) -> int:
    from worldpolicy.extras import check_extras

    check_extras("worldpolicy.data.lerobot", "worldpolicy.sim.env")  # it writes a dataset of simulator episodes
    from worldpolicy.cli import flag_named
    from worldpolicy.data import teleop_devices
    from worldpolicy.data.teleop import ViewerInput, check_display

    if args.input == "viewer" and args.speed is not None:
        raise ValueError(f"--speed={args.speed:g}: sets a device's rates; with --input viewer the hand follows your "
                         "drag. Leave --speed out, or pick --input spacemouse or gamepad")
    # before anything is checked or built: without the device, or a window, there is nothing to do
    try:
        source = (ViewerInput() if args.input == "viewer" else
                  teleop_devices.device_input(args.input, 1.0 if args.speed is None else args.speed, ViewerInput()))
    except ValueError as exc:  # a bad --speed (DeviceMapping's `speed: ...`), or the device missing
        raise flag_named(exc, FLAGS) from None
    try:
        check_display()
        return _teleop_recorded(args, source)
    finally:
        source.close()  # the recording closes it too, once it began


def _teleop_recorded(args: argparse.Namespace, source: Any) -> int:
    """`dataset teleop`'s recording, once its input (`source`, a `data.teleop.TeleopInput`) is open, and what it
    prints."""
    import sys
    from functools import partial

    from worldpolicy.cli import continue_command, flag_named
    from worldpolicy.data.from_sim import RecordingInterrupted, sim_to_dataset
    from worldpolicy.data.teleop import TeleopQuit, teleop_episodes
    from worldpolicy.fileio import exit_status

    def line(resume: bool) -> str:
        return continue_command("worldpolicy dataset teleop", _add_teleop_arguments, args, left_out=("overwrite",),
                                resume=resume)

    scene = _scene_options(args)
    try:
        result = sim_to_dataset(args.root, args.task, args.episodes, seed=args.seed, video_codec=args.video_codec,
                                overwrite=args.overwrite, resume=args.resume, command=line(False),
                                recorder=partial(teleop_episodes, source=source), **scene)
    except RecordingInterrupted as exc:  # the window closed, or Ctrl-C: the finished episodes are kept
        again = line(True) if exc.kept or exc.resumed else None  # else nothing to continue
        print(f"worldpolicy dataset teleop: {exc.describe('--overwrite', '--resume')}"
              + (f"; to go on: {again}" if again else ""), file=sys.stderr)
        quit_ = isinstance(exc.__context__, TeleopQuit)  # the window closed: the person stopped, not a signal
        return 0 if quit_ else exit_status(exc)
    except (ValueError, KeyError, FileNotFoundError, FileExistsError) as exc:
        raise flag_named(exc, FLAGS) from None
    return _said_recording(result, args, "teleop")


def _from_sim_said(result: Any, task: str) -> str:
    """What `dataset from-sim` prints (without --json): the recording in a few lines (episodes, frames, fps, cameras,
    successes, where) and the commands that come next, to look at it and to train on it."""
    from pathlib import Path

    from worldpolicy.errors import brief_list
    from worldpolicy.sim.evaluate import seed_range
    from worldpolicy.viz.plots import plural

    ds = result.dataset
    root = str(Path(ds.root))
    head = (f"recorded {plural(ds.num_episodes, 'episode')} of {task}, {plural(ds.num_frames, 'frame')} at "
            f"{ds.fps:g} fps, in {result.wall_s:.1f} s: {root}")
    lines = [head]
    if tried := sorted([*result.seeds, *result.failed_seeds]):
        failed = sorted(result.failed_seeds)
        lines.append(f"  {seed_range(tried[0], tried[-1] - tried[0] + 1)}"
                     + (f"; left out, failed: {brief_list(failed)} (--keep-failures keeps them, flagged)"
                        if failed else ""))
    lines.append(f"  cameras: {', '.join(ds.video_keys) or 'none'}")
    if (done := ds.episode_success) is not None:
        failed = [i for i, ok in enumerate(done) if not ok]
        lines.append(f"  success: {int(done.sum())} of {len(done)} episodes"
                     + (f" (failed: episodes {brief_list(failed)})" if failed else ""))
    lines += ["next:", *_dataset_next(root), "(--json prints the whole summary)"]
    return "\n".join(lines)


def _dataset_next(root: str) -> list[str]:
    """The commands that come next for a dataset a command wrote at `root` (`dataset from-sim`, `dataset label`), one
    an indented line: to look at it and to train on it."""
    import shlex

    show = shlex.quote(root + "_show")
    return [f"  worldpolicy dataset show {shlex.quote(root)} --out {show}   # a page: clips, columns",
            f"  worldpolicy train CONFIG.toml   # with [data] dataset = {json.dumps(root)} (docs/training.md)"]


def _from_sim_resume_command(args: argparse.Namespace, resume: bool = True) -> str:
    """The command line that continues this `dataset from-sim` recording (`cli.continue_command`): ROOT and its flags
    as given but --api-key (a secret is not printed) and --overwrite (refused with --resume), plus --resume
    (`resume=False`: the line that makes it, as its provenance records it)."""
    from worldpolicy.cli import continue_command

    return continue_command("worldpolicy dataset from-sim", _add_from_sim_arguments, args,
                            left_out=("api_key", "overwrite"), resume=resume)


# label_dataset's parameters as `dataset label` spells them (`cli.flag_named`)
LABEL_FLAGS = {name: "--" + name.replace("_", "-") for name in (
    "out", "checkpoint", "embodiment", "episodes", "seed", "batch_size", "resample", "state_keys", "action_key",
    "steps", "device", "dtype", "video_codec", "overwrite", "resume")} | {"dataset": "ROOT"}


def _label(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from worldpolicy.cli import center_crop_option, episode_list, flag_named
    from worldpolicy.data.label import LabelInterrupted, label_dataset
    from worldpolicy.fileio import exit_status, how_stopped

    # `0,2` as train takes it; `0 2` (this command's older spelling) still reads
    episodes = None if args.episodes is None else episode_list("--episodes", args.episodes)
    try:
        ds = label_dataset(
            args.root, args.out, args.checkpoint, embodiment=args.embodiment, episodes=episodes, seed=args.seed,
            batch_size=args.batch_size, resample=args.resample, state_keys=args.state_keys,
            action_key=args.action_key, video_codec=args.video_codec, overwrite=args.overwrite, resume=args.resume,
            progress=not args.no_progress, command=_label_resume_command(args, resume=False),
            center_crop=center_crop_option(args),
            **{k: v for k in ("steps", "device", "dtype") if (v := getattr(args, k)) is not None},
        )
    except (FileExistsError, ValueError, KeyError, FileNotFoundError) as exc:  # the last: a --checkpoint not there
        raise flag_named(exc, LABEL_FLAGS) from None
    except LabelInterrupted as stop:  # say what became of the episodes labelled so far, and how to go on
        again = _label_resume_command(args)
        print(f"worldpolicy dataset label: {stop.describe('--resume')}"
              + (f"; to go on: {again}" if stop.kept else ""), file=sys.stderr)
        return exit_status(stop)  # 143 SIGTERM, 138 SIGUSR1, 130 Ctrl-C
    except KeyboardInterrupt as stop:  # while checking or loading the weights: nothing labelled yet
        print(f"worldpolicy dataset label: {how_stopped(stop)} before labelling began; nothing was written to "
              f"{args.out} (a dataset already there is unchanged)", file=sys.stderr)
        return exit_status(stop)
    print(json.dumps(ds.summary(), indent=2))
    # what comes next, beside the JSON (which scripts read), as `train` says it
    print("\n".join(["worldpolicy dataset label: next:", *_dataset_next(str(Path(ds.root)))]), file=sys.stderr)
    return 0


def _label_resume_command(args: argparse.Namespace, resume: bool = True) -> str:
    """The command line that continues this `dataset label` run (`cli.continue_command`): ROOT and its flags as given
    (--overwrite too: a run that replaces an earlier dataset at --out still does when resumed), plus --resume
    (`resume=False`: the line that makes it, as its provenance records it)."""
    from worldpolicy.cli import continue_command

    return continue_command("worldpolicy dataset label", _add_label_arguments, args, resume=resume)


# evaluate_open_loop's parameters as `dataset eval` spells them (`cli.flag_named`)
EVAL_FLAGS = {name: "--" + name.replace("_", "-") for name in (
    "out", "embodiment", "episodes", "every", "chunks", "seed", "batch_size", "state_keys", "action_keys", "steps",
    "device", "dtype", "mode")} | {"dataset": "DATASET", "checkpoint": "CHECKPOINT"}


def _eval(args: argparse.Namespace) -> int:
    from worldpolicy.cli import center_crop_option, episode_list, flag_named
    from worldpolicy.data.openloop import evaluate_open_loop

    _refuse_swapped_eval_arguments(args)
    episodes = None if args.episodes is None else episode_list("--episodes", args.episodes)
    try:
        result = evaluate_open_loop(
            args.root, args.checkpoint, args.out, embodiment=args.embodiment, episodes=episodes, every=args.every,
            chunks=args.chunks, seed=args.seed, batch_size=args.batch_size, state_keys=args.state_keys,
            action_keys=args.action_keys, plots=not args.no_plots, progress=not args.no_progress, mode=args.mode,
            center_crop=center_crop_option(args),
            **{k: v for k in ("steps", "device", "dtype") if (v := getattr(args, k)) is not None},
        )
    except (ValueError, KeyError, FileNotFoundError) as exc:  # a missing CHECKPOINT or DATASET named as such too
        raise flag_named(exc, EVAL_FLAGS) from None
    with lines_for_people(args.json):
        print(result.summary())
    if args.json:
        print_json(run_json(result.to_json(), args.out, result.files))
    return 0


def _refuse_swapped_eval_arguments(args: argparse.Namespace) -> None:
    """`dataset eval DATASET CHECKPOINT`, the two swapped (`train`'s config and `dataset label` name the dataset
    first) was refused for the checkpoint given as the dataset only. Where both are the other (CHECKPOINT a dataset's
    folder, DATASET a checkpoint's or the shipped model's name) it says so and shows the command in its order; either
    alone is left to the checks that say what is wrong with it."""
    from worldpolicy.cli import UsageError, continue_command
    from worldpolicy.fileio import folder_kind
    from worldpolicy.models import SHIPPED_NAME

    first, second = folder_kind(args.checkpoint), folder_kind(args.root)
    checkpoint = ("the shipped model" if args.root == SHIPPED_NAME
                  else second[0].what if second is not None and second[0].repo_type == "model" else None)
    if first is None or first[0].repo_type != "dataset" or checkpoint is None:
        return
    ordered = argparse.Namespace(**{**vars(args), "checkpoint": args.root, "root": args.checkpoint})
    raise UsageError(f"CHECKPOINT {args.checkpoint!r} is {first[0].what} and DATASET {args.root!r} is {checkpoint}: "
                     "the two look swapped; the checkpoint comes first: "
                     + continue_command("worldpolicy dataset eval", _add_eval_arguments, ordered, resume=False))


# show_dataset's parameters as `dataset show` spells them (`cli.flag_named`)
SHOW_FLAGS = {"out": "--out", "episodes": "--episodes", "embodiment": "--embodiment", "dataset": "ROOT"}


def _show(args: argparse.Namespace) -> int:
    import sys

    from worldpolicy.cli import UsageError, episode_list, flag_named
    from worldpolicy.data.show import ShowInterrupted, rerun_dataset, show_dataset
    from worldpolicy.fileio import exit_status
    from worldpolicy.viz.commands import RERUN_FLAGS, rerun_target

    target = rerun_target(args)
    if (target is None) == (args.out is None):
        said = "--out and a Rerun flag given" if target is not None else "neither --out nor a Rerun flag given"
        raise UsageError(f"{said}; accepted: one of --out DIR (a page) or {', '.join(RERUN_FLAGS)} (a Rerun "
                         "recording)")
    episodes = None if args.episodes is None else episode_list("--episodes", args.episodes)
    if target is not None:
        try:
            logged = rerun_dataset(args.root, target, episodes=episodes, embodiment=args.embodiment,
                                   progress=not args.no_progress)
        except (ValueError, KeyError) as exc:
            raise flag_named(exc, SHOW_FLAGS) from None
        print(f"{args.rerun or 'sent to the Rerun viewer'}: episodes {', '.join(map(str, logged))}")
        return 0
    try:
        shown = show_dataset(args.root, args.out, episodes=episodes, embodiment=args.embodiment,
                             progress=not args.no_progress)
    except (ValueError, KeyError) as exc:
        raise flag_named(exc, SHOW_FLAGS) from None
    except ShowInterrupted as stop:  # the episodes finished are on the page; the one being written is not
        print(f"worldpolicy dataset show: {stop.describe()}", file=sys.stderr)
        return exit_status(stop)  # 143 SIGTERM, 138 SIGUSR1, 130 Ctrl-C
    print(f"wrote {shown.page}: {len(shown.episodes)} of {shown.summary['episodes']} episodes shown "
          f"({', '.join(map(str, shown.chosen))})")
    return 0


# select_episodes' and merge_datasets' parameters as `dataset select` and `dataset merge` spell them (`cli.flag_named`)
EDIT_FLAGS = {name: "--" + name.replace("_", "-") for name in (
    "out", "episodes", "drop_episodes", "success", "drop_success", "drop_columns", "video_codec", "overwrite", "splits",
    "seed")} | {"dataset": "ROOT", "datasets": "ROOT", "rename_features": "--rename-feature",
                "drop_features": "--drop-feature"}


def _edit(run: Callable[[], Any], what: str, out: str, flags: dict[str, str] = EDIT_FLAGS) -> int:
    """Run `select_episodes`, `merge_datasets`, `split_dataset` or `import_hdf5` as the command `what`: errors and
    warnings named by `flags`, Ctrl-C said; the new dataset's summary printed (a split's: one per split, by name)."""
    import sys

    from worldpolicy.cli import flag_named, warnings_flag_named
    from worldpolicy.fileio import exit_status, how_stopped

    try:
        with warnings_flag_named(flags):
            result = run()
    except (FileExistsError, FileNotFoundError, ValueError, KeyError) as exc:
        raise flag_named(exc, flags) from None
    except KeyboardInterrupt as stop:
        written = (f"the splits finished are complete under {out}, the one being written is not there" if what ==
                   "split" else f"nothing was written to {out}")  # each split is published when it is complete
        print(f"worldpolicy dataset {what}: {how_stopped(stop)}; {written} (a dataset already there is unchanged, "
              "the sources were only read)", file=sys.stderr)
        return exit_status(stop)  # 130 for Ctrl-C, 143 for SIGTERM
    print(json.dumps({name: r.dataset.summary() for name, r in result.items()} if isinstance(result, dict) else
                     result.dataset.summary(), indent=2))
    return 0


def _episode_flag(flag: str, items: list[str] | None) -> list[int] | None:
    """`--episodes 0 3 5-9` (or `0,3,5-9`) as indices, parsed as every command that selects episodes does."""
    from worldpolicy.cli import episode_list

    return None if items is None else [i for item in items for i in episode_list(flag, item)]


def _select(args: argparse.Namespace) -> int:
    from worldpolicy.data.edit import select_episodes

    episodes = _episode_flag("--episodes", args.episodes)
    dropped = _episode_flag("--drop-episodes", args.drop_episodes)
    renamed = None if args.rename_feature is None else _named_pairs("--rename-feature", args.rename_feature, "OLD",
                                                                     "NEW")
    return _edit(lambda: select_episodes(args.root, args.out, episodes, drop_episodes=dropped, success=args.success,
                                         rename_features=renamed, drop_features=args.drop_feature,
                                         video_codec=args.video_codec, overwrite=args.overwrite,
                                         progress=not args.no_progress), "select", args.out)


def _named_pairs(flag: str, items: list[str], name: str, value: str) -> dict[str, str]:
    """`NAME=VALUE` items (`--rename-feature OLD=NEW`, repeated; `--splits a=0.9,b=0.1`) as a dict, each name once."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, given = item.partition("=")
        if not sep or not key or not given:
            raise ValueError(f"{flag} {item!r}: expected {name}={value}")
        if key in pairs:
            raise ValueError(f"{flag}: {key!r} is given more than once; name each {name} once")
        pairs[key] = given
    return pairs


def _split(args: argparse.Namespace) -> int:
    from worldpolicy.data.edit import split_dataset

    given = _named_pairs("--splits", [item.strip() for item in args.splits.split(",")], "NAME", "FRACTION")
    try:
        splits = {name: float(fraction) for name, fraction in given.items()}
    except ValueError:
        raise ValueError(f"--splits {args.splits!r}: expected NAME=FRACTION,... with fractions as numbers, e.g. "
                         "train=0.9,val=0.1") from None
    return _edit(lambda: split_dataset(args.root, args.out, splits, seed=args.seed, video_codec=args.video_codec,
                                       overwrite=args.overwrite, progress=not args.no_progress), "split", args.out)


def _merge(args: argparse.Namespace) -> int:
    from worldpolicy.data.edit import merge_datasets

    return _edit(lambda: merge_datasets(args.roots, args.out, drop_success=args.drop_success,
                                        drop_columns=args.drop_columns, video_codec=args.video_codec,
                                        overwrite=args.overwrite,
                                        progress=not args.no_progress), "merge", args.out)


def _convert(args: argparse.Namespace) -> int:
    from worldpolicy.data.convert import convert_dataset

    return _edit(lambda: convert_dataset(args.root, args.out, video_codec=args.video_codec, overwrite=args.overwrite,
                                         progress=not args.no_progress), "convert", args.out, CONVERT_FLAGS)


# convert_dataset's parameters as `dataset convert` spells them (`cli.flag_named`)
CONVERT_FLAGS = {name: "--" + name.replace("_", "-") for name in ("out", "video_codec", "overwrite")} | {
    "dataset": "SRC"}


# import_hdf5's parameters as `dataset import-hdf5` spells them (`cli.flag_named`)
IMPORT_FLAGS = {name: "--" + name.replace("_", "-") for name in (
    "out", "state_keys", "image_keys", "fps", "task", "mask", "flip_images", "video_codec", "overwrite")} | {
    "path": "FILE"}


def _import_hdf5(args: argparse.Namespace) -> int:
    from worldpolicy.data.from_hdf5 import import_hdf5

    return _edit(lambda: import_hdf5(args.path, args.out, state_keys=args.state_keys, image_keys=args.image_keys,
                                     fps=args.fps, task=args.task, mask=args.mask, flip_images=args.flip_images,
                                     video_codec=args.video_codec, overwrite=args.overwrite,
                                     progress=not args.no_progress), "import-hdf5", args.out, IMPORT_FLAGS)


# videos_to_dataset's parameters as `dataset from-videos` spells them (`cli.flag_named`)
FROM_VIDEOS_FLAGS = {name: "--" + name.replace("_", "-") for name in (
    "out", "task", "task_from", "fps", "size", "fit", "embodiment", "video_codec", "overwrite")} | {"clips": "CLIP"}


def _from_videos(args: argparse.Namespace) -> int:
    import shlex
    import sys

    from worldpolicy.cli import continue_command, flag_named, pixel_size, warnings_flag_named
    from worldpolicy.fileio import exit_status, how_stopped
    from worldpolicy.viz.plots import plural

    size = None if args.size is None else pixel_size("--size", args.size, "480x640")
    from worldpolicy.data.from_videos import videos_to_dataset

    made_by = continue_command("worldpolicy dataset from-videos", _add_from_videos_arguments, args, resume=False)
    try:
        with warnings_flag_named(FROM_VIDEOS_FLAGS):
            result = videos_to_dataset(
                args.clips, args.out, task=args.task, task_from=args.task_from, fps=args.fps, size=size, fit=args.fit,
                embodiment=args.embodiment, video_codec=args.video_codec, overwrite=args.overwrite,
                progress=not args.no_progress, command=made_by)
    except (FileExistsError, FileNotFoundError, ValueError, KeyError) as exc:
        raise flag_named(exc, FROM_VIDEOS_FLAGS) from None
    except KeyboardInterrupt as stop:
        print(f"worldpolicy dataset from-videos: {how_stopped(stop)}; nothing was written to {args.out} (a dataset "
              "already there is unchanged, the clips were only read)", file=sys.stderr)
        return exit_status(stop)  # 130 for Ctrl-C, 143 for SIGTERM
    ds = result.dataset
    root = str(ds.root)
    height, width = result.size
    clips = len(result.clips) + len(result.skipped)
    lines = [(f"wrote {plural(ds.num_episodes, 'episode')} of {plural(clips, 'clip')}, "
              f"{plural(ds.num_frames, 'frame')} at {ds.fps:g} fps, {height}x{width} ({args.fit}), in "
              f"{result.wall_s:.1f} s: {root}")]
    lines += [f"  skipped {clip}: {why}" for clip, why in result.skipped.items()]
    embodiment = f" --embodiment {shlex.quote(args.embodiment)}" if args.embodiment else ""
    quoted = shlex.quote(root)
    lines += ["next:",
              (f"  worldpolicy dataset label {quoted} --checkpoint CKPT{embodiment} --out "
               f"{shlex.quote(root + '_labelled')}   # actions for every frame transition"),
              _dataset_next(root)[0]]  # its page
    print("\n".join(lines))
    return 0


def _recover(args: argparse.Namespace) -> int:
    import sys

    from worldpolicy.cli import flag_named
    from worldpolicy.data.served import recover_served_run
    from worldpolicy.fileio import exit_status, how_stopped
    from worldpolicy.viz.plots import plural

    try:
        result = recover_served_run(args.spool, args.out, overwrite=args.overwrite, progress=not args.no_progress)
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        raise flag_named(exc, {"spool": "SPOOL", "out": "--out", "overwrite": "--overwrite"}) from None
    except KeyboardInterrupt as stop:  # the spool goes only once the dataset is published: it is all still there
        print(f"worldpolicy dataset recover: {how_stopped(stop)}; nothing was written to {args.out} (a dataset "
              f"already there is unchanged) and the spool {args.spool} is kept as it was: rerun the command to recover "
              "it", file=sys.stderr)
        return exit_status(stop)  # 130 for Ctrl-C, 143 for SIGTERM
    for conn, dropped in result.torn.items():
        print(f"worldpolicy dataset recover: connection {conn}: {plural(dropped, 'record')} half-written at the kill "
              f"{'was' if dropped == 1 else 'were'} left out", file=sys.stderr)
    if result.unfound:
        print(f"worldpolicy dataset recover: the server kept {plural(result.unfound, 'more episode')} before the kill "
              f"than {args.out} or its --record DIR holds now (moved, removed or replaced since): {args.out} lacks "
              f"{'it' if result.unfound == 1 else 'them'}; "
              "`worldpolicy dataset merge` the folder that holds them with it", file=sys.stderr)
    if result.dataset is None:  # torn: records reached it, each cut short (said above)
        what = "no whole record reached" if result.torn else "no exchange reached"
        print(f"worldpolicy dataset recover: {what} {args.spool}; nothing to recover, the spool was removed",
              file=sys.stderr)
        return 0
    if result.kept:
        print(f"worldpolicy dataset recover: the {plural(result.kept, 'episode')} the server kept before the kill "
              f"{'comes' if result.kept == 1 else 'come'} first, "
              f"then {result.dataset.num_episodes - result.kept} from the spool", file=sys.stderr)
    if result.killed:
        one = len(result.killed) == 1
        print(f"worldpolicy dataset recover: connection{'' if one else 's'} {', '.join(map(str, result.killed))} "
              f"{'was' if one else 'were'} open at the kill: {'its' if one else 'their'} episodes have serving.killed "
              "true", file=sys.stderr)
    print(json.dumps(result.dataset.summary(), indent=2))
    return 0
