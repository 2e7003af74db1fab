"""`worldpolicy mcp` (serve the agent tools over MCP) and `worldpolicy world-models` (diffusers discovery)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
from pathlib import Path

from ..cli import add_device_flags, print_json
from .toolbox import DEFAULT_CALL_TIMEOUT_S

logger = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mcp", help="serve predict/imagine/infer/visualise/sim tools to agents over MCP")
    p.add_argument("--transport", choices=("stdio", "http"), default="stdio", help="stdio (default) or streamable HTTP")
    p.add_argument("--host", default="127.0.0.1", help="HTTP address (default: %(default)s, this machine only)")
    p.add_argument("--port", type=int, default=8020, help="HTTP port (default: %(default)s)")
    p.add_argument(
        "--checkpoint-dir",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="a checkpoint folder (diffusers-format or LoRA adapter), a folder of them, or shipped (the model in the "
        "package); repeatable",
    )
    p.add_argument("--output-dir", type=Path, default=Path("worldpolicy_runs"),
                   help="where run folders are written (default: %(default)s)")
    p.add_argument(
        "--input-root",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="folder tools may read images/videos/actions from (repeatable; default: cwd and output dir)",
    )
    p.add_argument("--max-loaded", type=int, default=2,
                   help="checkpoints kept loaded at once, least recently used unloaded first (default: %(default)s)")
    add_device_flags(p)
    p.add_argument("--chunk-size", type=int, default=None,
                   help="actions per chunk, a multiple of 4 (default: the embodiment's)")
    p.add_argument("--resolution-tier", type=int, default=None,
                   help="canvas tier: 256, 480, 704 or 720 (default: the embodiment's)")
    p.add_argument("--call-timeout", type=float, default=DEFAULT_CALL_TIMEOUT_S, metavar="SECONDS",
                   help="stop a tool call still running after this long and answer it with a `timeout` error; 0: no "
                   "limit (default: %(default)g)")
    p.set_defaults(func=_mcp)

    w = sub.add_parser("world-models", help="list world-model pipelines in the installed diffusers")
    w.add_argument("--json", action="store_true", help="print the pipelines as JSON")
    w.set_defaults(func=_world_models)


# ToolboxConfig's fields as `mcp` spells them: its errors name the field, the user typed the flag
FLAGS = {"checkpoint_dirs": "--checkpoint-dir", "input_roots": "--input-root", "max_loaded": "--max-loaded",
         "device": "--device", "dtype": "--dtype", "chunk_size": "--chunk-size", "resolution_tier": "--resolution-tier"}


def _mcp(args: argparse.Namespace) -> int:
    from ..cli import UsageError, flag_named
    from ..fileio import output_folder
    from .mcp_server import run_server  # a missing agents extra is one line (`extras`)
    from .toolbox import ToolboxConfig

    if not 0 <= args.call_timeout < float("inf"):  # NaN too
        raise UsageError(f"--call-timeout {args.call_timeout:g}: expected seconds > 0, or 0 (no limit)")
    if args.transport == "http":
        _check_address(args.host, args.port)
    _check_not_in_root(args)
    output_folder(args.output_dir, "--output-dir", create=False)  # a file there fails now, not at the first tool call
    try:
        config = ToolboxConfig(
            output_dir=args.output_dir,
            checkpoint_dirs=args.checkpoint_dir,
            input_roots=args.input_root,
            max_loaded=args.max_loaded,
            device=args.device,
            dtype=args.dtype,
            chunk_size=args.chunk_size,
            resolution_tier=args.resolution_tier,
        )
    except ValueError as exc:
        raise flag_named(exc, FLAGS) from None
    run_server(config, args.transport, args.host, args.port, call_timeout_s=args.call_timeout or None)
    return 0


def _check_not_in_root(args: argparse.Namespace) -> None:
    """Some MCP clients (Claude Desktop, for one) start stdio servers in the filesystem root: a default taken from the
    working directory there lets the tools read image, video and actions files anywhere on the machine
    (--input-root), or fails every call writing under / (a relative --output-dir). Refused before the server starts,
    naming the flags to give."""
    from ..cli import UsageError

    cwd = Path.cwd()
    if cwd != Path(cwd.anchor):
        return
    unset = {flag: why for flag, why, default in (
        ("--input-root", "the tools could read files anywhere on this machine", not args.input_root),
        ("--output-dir", f"runs would be written under {cwd}", not args.output_dir.is_absolute())) if default}
    if unset:
        raise UsageError(f"{' and '.join(unset)}: the working directory is {cwd} (where some MCP clients, such as "
                         f"Claude Desktop, start servers): {'; '.join(unset.values())}; give "
                         f"{' and '.join(f'{flag} DIR' for flag in unset)} as absolute paths")


def _check_address(host: str, port: int) -> None:
    """Bind --host/--port once before the server starts: uvicorn reports an address it cannot use as log lines and
    exit code 3, naming neither flag. (Another process may still take the port in between; then uvicorn says so.)"""
    import socket

    from ..cli import UsageError

    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port}: expected 0..65535 (0 picks a free port)")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as exc:  # an unknown host (gaierror), a port in use or privileged, an address not on this machine
        raise UsageError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})") from None
    if not ipaddress.ip_address(address[0].split("%")[0]).is_loopback:  # the MCP HTTP transport has no authentication
        logger.warning("--host %s: every client that reaches this address may call the tools, unauthenticated: read "
                       "files under the input roots, write runs, load checkpoints; 127.0.0.1 (the default) keeps them "
                       "to this machine", host)


def _world_models(args: argparse.Namespace) -> int:
    from .discovery import discover_world_models

    found = discover_world_models(include_all=True)
    if args.json:
        print_json(found)
        return 0
    print(
        f"diffusers {found['diffusers_version']}: {found['all_pipeline_count']} pipelines, "
        f"{len(found['pipelines'])} world-model candidates"
    )
    print(f"{'pipeline':<34} {'actions':<8} {'drivable':<9} description")
    for p in found["pipelines"]:
        print(
            f"{p['name']:<34} {'yes' if p['action_capable'] else 'no':<8} {'yes' if p['drivable'] else 'no':<9} "
            f"{(p['worldpolicy'] or p['description'])[:70]}"
        )
    return 0
