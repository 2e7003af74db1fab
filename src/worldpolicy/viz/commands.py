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


def _viz(args: argparse.Namespace) -> int:
    from ..cli import flag_named
    from ..fileio import REPORT_FILE, output_folder
    from .report import write_report
    from .run import resolve_actions_path, visualize

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
