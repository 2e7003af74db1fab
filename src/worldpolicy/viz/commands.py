"""`worldpolicy viz` and `worldpolicy report` subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..fileio import FOLDER_KINDS
    from .plots import FIGURE_FORMATS

    p = sub.add_parser("viz", help="plot an actions file or run directory (plots + playhead animation)")
    p.add_argument("path", help="ACTIONS.json or a run directory containing actions.json")
    p.add_argument("--out", default=None, help="output folder (default: <run dir>/plots)")
    p.add_argument("--video", default=None, help="video to animate beside the plot (default: <run dir>/rollout.mp4)")
    p.add_argument("--video-label", default=None,
                   help="caption of the video in the animation, e.g. 'real robot' (default: 'imagined video' for the "
                        "run's rollout.mp4, 're-decoded input video' for inverse dynamics, 'video' for --video)")
    p.add_argument("--format", default="png", choices=FIGURE_FORMATS, dest="fmt",
                   help="the plots' file format: png (default, what the run's index.html embeds), or pdf / svg "
                        "(vector, TrueType fonts in a PDF) for a paper: actions.pdf, ee_path.pdf...")
    p.add_argument("--no-animation", action="store_true", help="write the plots only")
    add_rerun_flags(p, "the run (a predict run: its action chunk, imagined video, observation and prompt; a sim run "
                    "folder: its recorded episodes' videos, prompts and outcomes), instead of the plots")
    p.set_defaults(func=_viz)

    r = sub.add_parser("report", help="write a self-contained index.html for a run directory")
    # every kind of run a command writes (sim compare's, dataset eval's... too), from the one list of them
    runs = [kind.what for kind in FOLDER_KINDS if kind.writer is not None]
    r.add_argument("run_dir", help=f"a run directory: {', '.join(runs[:-1])} or {runs[-1]}")
    r.add_argument("--title", default=None, help="page title (default: '<kind> run · <folder name>')")
    r.add_argument("--serve", action="store_true", help="then serve the folder over HTTP until Ctrl-C")
    r.add_argument("--host", default="127.0.0.1", help="address to serve on (default: %(default)s, this machine only)")
    r.add_argument("--port", type=int, default=8765,
                   help="port to serve on, 0..65535; 0 picks a free one (default: %(default)s)")
    r.set_defaults(func=_report)


# RerunTarget's parameters as the commands spell them (`cli.flag_named`)
RERUN_FLAGS = ("--rerun", "--rerun-spawn", "--rerun-connect")


def add_rerun_flags(p: argparse.ArgumentParser, what: str) -> None:
    """--rerun FILE.rrd, --rerun-spawn and --rerun-connect URL: where a command's Rerun recording of `what` goes
    (`viz.rerun`; the `rerun` extra)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--rerun", metavar="OUT.rrd", help=f"write a Rerun recording to this file (open it with `rerun "
                       f"OUT.rrd`; the rerun extra): {what}")
    group.add_argument("--rerun-spawn", action="store_true", help="the Rerun recording to a viewer started here")
    group.add_argument("--rerun-connect", metavar="URL",
                       help="the Rerun recording to a running viewer, e.g. rerun+http://127.0.0.1:9876/proxy")


def rerun_target(args: argparse.Namespace):
    """The `RerunTarget` the command's rerun flags name, None where none is given."""
    from .rerun import RerunTarget

    if args.rerun is None and not args.rerun_spawn and args.rerun_connect is None:
        return None
    return RerunTarget(args.rerun, args.rerun_spawn, args.rerun_connect, flags=RERUN_FLAGS)


def _viz_rerun(args: argparse.Namespace, target) -> int:
    """`viz PATH --rerun...`: a predict run's recording, or a sim run's (its episodes as `sim.evaluate.read_report`
    reads them), the plots' flags refused."""
    from ..fileio import SIM_REPORT_FILE, folder_kind
    from ..sim.evaluate import read_report
    from .report import SIM_EPISODE_VIDEOS
    from .rerun import log_sim_run, recording, write_run_recording

    plots = [flag for flag, given in (("--out", args.out), ("--video", args.video), ("--video-label", args.video_label),
                                      ("--format", args.fmt != "png"), ("--no-animation", args.no_animation)) if given]
    if plots:
        raise ValueError(f"{', '.join(plots)}: the plots' options; a Rerun recording ({'/'.join(RERUN_FLAGS)}) "
                         "draws no plots: leave them out")
    found = folder_kind(args.path)
    if found is None or found[1] != SIM_REPORT_FILE:
        write_run_recording(args.path, target)
    else:
        run = Path(args.path)
        if not any(run.glob(SIM_EPISODE_VIDEOS)):
            raise FileNotFoundError(f"PATH: sim run {str(run)!r} recorded no episode videos ({SIM_EPISODE_VIDEOS}), "
                                    "which its recording shows; run `worldpolicy sim` with --videos N")
        episodes = [episode.to_json() for episode in read_report(run).episodes]
        with recording(target, f"sim run {run.resolve().name}") as rec:
            log_sim_run(rec, run, episodes)
    print(args.rerun or f"sent to the Rerun viewer{' at ' + args.rerun_connect if args.rerun_connect else ''}")
    return 0


def _viz(args: argparse.Namespace) -> int:
    from ..cli import flag_named
    from ..fileio import REPORT_FILE, output_folder
    from .report import write_report
    from .run import resolve_actions_path, visualize

    target = rerun_target(args)
    if target is not None:
        try:
            return _viz_rerun(args, target)
        except (ValueError, FileNotFoundError) as exc:
            raise flag_named(exc, {"path": "PATH"}) from None
    if args.video_label is not None and not args.video_label.strip():
        raise ValueError(f"--video-label {args.video_label!r}: expected a caption, e.g. 'real robot' (leave it out for "
                         "the default)")
    if args.out is not None:
        output_folder(args.out, "--out", create=False, writer="viz")  # made once the inputs have been read

    try:
        written = visualize(args.path, args.out, animate=not args.no_animation, video=args.video,
                            video_label=args.video_label, fmt=args.fmt)
    except (ValueError, FileNotFoundError) as exc:  # `video=...: ... choose another out_dir`: the flags to fix
        raise flag_named(exc, {"path": "PATH", "video": "--video", "out_dir": "--out"}) from None
    for path in written:
        print(path)
    run_dir = resolve_actions_path(args.path).parent
    page = run_dir / REPORT_FILE
    if page.is_file() and (args.out is None or Path(args.out).resolve() == (run_dir / "plots").resolve()):
        print(write_report(run_dir))  # the run's page embeds these plots: keep it in step with them
    return 0


def _report(args: argparse.Namespace) -> int:
    from .report import serve_report, write_report

    if args.serve and not 0 <= args.port <= 65535:
        raise ValueError(f"--port {args.port}: expected 0..65535 (0 picks a free port)")
    out = write_report(args.run_dir, args.title)
    print(out)
    if args.serve:
        try:
            serve_report(args.run_dir, args.host, args.port)
        except OSError as exc:  # port in use, address not on this machine...
            raise ValueError(f"--host {args.host} --port {args.port}: cannot serve there: {exc.strerror or exc}") from None
    return 0
