"""`worldpolicy serve`: a checkpoint on the openpi WebSocket wire (see docs/serving.md)."""

from __future__ import annotations

import argparse
import errno
import logging
import math
import os
import re
import socket
from typing import TYPE_CHECKING

from ..cli import add_center_crop_flag, add_device_flags, center_crop_option
from .logformat import LOG_FORMAT_ENV, log_format

if TYPE_CHECKING:
    from .recording import Recorder

_BIND_ERRORS = (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)
_CONFIG_FIELD = re.compile(r"ServerConfig\.(\w+)")
_MAX_MESSAGE_MB = 4096  # msgpack's bin32 carries less than 4 GiB per array
_FLAG_OF = {f: "--" + f.replace("_", "-") for f in (
    "port", "max_batch", "max_wait_ms", "max_queue", "max_connections", "drain_timeout_s", "event_loop",
    "batch_timeout_s", "message_timeout_s", "tls_cert", "tls_key")}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a policy on the openpi WebSocket wire",
        description="Serve a Cosmos3 checkpoint to openpi-speaking robots and simulators (ws://HOST:PORT, wss:// with "
        "--tls-cert/--tls-key), with "
        "cross-connection batching, GET /healthz, /readyz, /metrics and an optional API key. SIGTERM drains; "
        "SIGHUP reloads the TLS certificate and key.",
    )
    p.add_argument(
        "--checkpoint", default="shipped",
        help="shipped (default: the model in the package) | diffusers-format checkpoint folder | LoRA adapter "
        "checkpoint folder (base_model.json, loaded onto its base) | hub id",
    )
    p.add_argument(
        "--embodiment", help="embodiment name or alias from `worldpolicy embodiments`, or a spec file of your own "
        "robot (*.json) (default: the checkpoint's own, its embodiment.json or the registered one its "
        "trainer_state.json names, else droid)"
    )
    p.add_argument("--variant", help="embodiment variant, e.g. joint_pos or relative_pose")
    p.add_argument("--host", default="0.0.0.0", help="bind address (default: %(default)s, all interfaces)")
    p.add_argument("--port", type=int, default=8000, help="TCP port, 0..65535 (default: %(default)s)")
    p.add_argument(
        "--api-key-env", metavar="VAR", help="environment variable holding the API key clients must send "
        "as 'Authorization: Api-Key <key>', at least 8 characters (keeps the key out of the process list) (default: "
        "none: any client that reaches the port is served)"
    )
    # not a way in: without it argparse reads `--api-key KEY` (sim's and openpi's flag) as `--api-key-env KEY` and
    # echoes the key in its "unset variable" error
    p.add_argument("--api-key", dest="api_key_on_command_line", nargs="?", const="", help=argparse.SUPPRESS)
    p.add_argument("--tls-cert", metavar="CERT.pem",
                   help="with --tls-key: serve wss:// and https:// (the probes and /metrics too) with this PEM "
                   "certificate, the server's first, then any intermediate ones (default: plain ws://; a proxy in "
                   "front may end TLS instead, docs/serving.md \"TLS\"). Renewed files are read again on SIGHUP; "
                   "with --replicas, Ray Serve's proxy reads them when it starts: renewal is a restart")
    p.add_argument("--tls-key", metavar="KEY.pem", help="with --tls-cert: the certificate's private key, PEM, "
                   "unencrypted (keep it readable by the serving user only)")
    p.add_argument("--max-batch", type=int, default=8,
                   help="most requests fused into one forward (default: %(default)s)")
    p.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="longest wait to fill a batch, in ms (default: %(default)g)")
    p.add_argument("--max-queue", type=int, default=64, help="queued requests before 'busy' (default: %(default)s)")
    p.add_argument("--max-connections", type=int, default=1024,
                   help="open WebSocket connections before handshakes get HTTP 503 (default: %(default)s)")
    p.add_argument("--max-message-mb", type=float, default=64.0,
                   help="largest request accepted, in MiB (default: %(default)g)")
    p.add_argument("--max-incoming-mb", type=float, default=1024.0,
                   help="most MiB of requests still arriving (with --replicas: read by the router, not yet "
                   "answered), over all connections; past it the connection that goes over closes with 1013 "
                   "(default: %(default)g; at least --max-message-mb)")
    p.add_argument("--message-timeout-s", type=_seconds_or_none, default=60.0, metavar="S",
                   help="seconds a request may take to arrive whole from its first byte, else close 1008; none: no "
                   "limit; not with --replicas, whose proxy reads the pieces (default: %(default)g)")
    p.add_argument("--drain-timeout-s", type=float, default=30.0,
                   help="SIGTERM: time to finish queued requests, in s (default: %(default)g)")
    p.add_argument(
        "--batch-timeout-s", type=_seconds_or_none, metavar="S",
        help="seconds: a policy call running longer is taken for stuck (wedged GPU, deadlock): /readyz and /livez "
        "answer 503 naming the batch, its clients and those queued get an error; with --replicas Serve replaces the "
        "replica (default: none, no limit; docs/serving.md says how to pick one)",
    )
    p.add_argument(
        "--log-format", type=log_format, default=os.environ.get(LOG_FORMAT_ENV) or "text", metavar="{text,json}",
        help="text (default: a timestamp, level and logger before each line, for a terminal) or json (one object per "
        f"line: time, level, logger and the event's fields, for a log pipeline); {LOG_FORMAT_ENV} sets the default",
    )
    p.add_argument(
        "--event-loop", default="auto",
        help="auto (default: uvloop when installed, else asyncio's own loop), asyncio or uvloop",
    )
    p.add_argument(
        "--key-map", action="append", default=[], metavar="CANONICAL=CLIENT_KEY",
        help="read a canonical observation key from another client key (repeatable), e.g. "
        "observation/exterior_image_2_left=observation/exterior_image_1_left",
    )
    p.add_argument(
        "--replicas", type=int, default=1, metavar="N",
        help="policy replicas behind the one endpoint (default: %(default)s, this process). N >= 2 runs them on Ray "
        "Serve (pip install 'worldpolicy[ray]') on the Ray cluster this machine belongs to, else a new local one; one "
        "GPU per replica when the cluster has GPUs",
    )
    p.add_argument("--warmup", type=int, default=1,
                   help="synthetic requests run before /readyz is 200 (default: %(default)s)")
    p.add_argument(
        "--record", metavar="DIR",
        help="record the run as a LeRobot v3 dataset at DIR, a new or empty folder: one frame per answered request "
        "(its cameras, state and prompt, the chunk sent back, timings), a connection's episode ending at a change of "
        "prompt or a pause (--record-episode-gap); the finished episodes are kept there as it runs (as one ends, 10 "
        "minutes or more apart), all when it stops "
        "(each exchange is spooled to disk as it comes: a killed server's run is recovered with `worldpolicy dataset "
        "recover`); records are dropped (counted: worldpolicy_records_dropped) while the writer is behind (default: "
        "nothing recorded)",
    )
    p.add_argument("--overwrite", action="store_true",
                   help="with --record: replace the dataset an earlier `serve --record` wrote at DIR")
    p.add_argument(
        "--record-episode-gap", type=_episode_gap, metavar="SECONDS",
        help="with --record: a pause longer than this between a reply and the connection's next request ends the "
        "episode, as a prompt change does (openpi clients keep one connection for a whole session: the wire has no "
        "episode boundary); 0 or none: one episode per connection (default: 5; openpi's DROID client asks again "
        "0.5 s after a reply within a rollout, 2.1 s when it runs a whole chunk of 32, and between rollouts asks a "
        "person for the result and the next instruction and moves the arm home: seconds to minutes)",
    )
    add_device_flags(p)
    p.add_argument("--steps", type=int, help="denoising steps, >= 1, of a request that sends no 'steps' (default: the "
                   "embodiment's sampling preset, else 4)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance of a request that sends no 'guidance'; 1 "
                   "turns it off (default: the embodiment's preset, else 3)")
    p.add_argument("--chunk-size", type=int, help="actions per chunk (default: the embodiment's)")
    p.add_argument("--resolution-tier", type=int, help="canvas resolution tier (default: the embodiment's)")
    add_center_crop_flag(p)
    p.add_argument("--seed", type=int, help="seed of the first request that sends none, the next one +1 and so on: a "
                   "deterministic sequence, in [0, 2**63) (default: a random seed per request)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the generation tower (GPU); each new batch size or prompt length compiles on "
                   "its first request")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="torch.compile with CUDA graphs (CUDA only; 1.3x eager at Cosmos3-Nano size on an H200); each "
                   "new batch size or prompt length compiles on its first request (~40 s at Nano size)")
    p.set_defaults(func=_serve)


def library_logs_to_root() -> None:
    """For `--log-format json`: diffusers and transformers write their warnings through stderr handlers of their own,
    as text lines that never reach the root logger's JSON handler; from now on they go there, as other libraries'
    lines do."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.disable_default_handler()
        library.enable_propagation()


def _key_map(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        canonical, sep, client = item.partition("=")
        if not sep or not canonical or not client:
            raise ValueError(f"--key-map {item!r} must look like CANONICAL=CLIENT_KEY")
        out[canonical] = client
    return out


def _seconds_or_none(text: str) -> float | None:
    """--message-timeout-s and --batch-timeout-s: seconds, or none: no limit (`ServerConfig`'s None, which checks the
    range and names the flag)."""
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid; accepted: a number of seconds, or none (no limit)"
                                         ) from None


def _episode_gap(text: str) -> float:
    """--record-episode-gap: seconds (`data.served.check_episode_gap`), or none: 0, one episode per connection."""
    from ..data.served import EPISODE_GAP_ACCEPTED, check_episode_gap

    try:
        return check_episode_gap(0.0 if text.strip().lower() == "none" else float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid; accepted: {EPISODE_GAP_ACCEPTED}, or none (as 0)"
                                         ) from None


def _check_replicas(replicas: int) -> None:
    """Before anything loads: a valid count, and Ray Serve importable when it is needed."""
    if replicas < 1:
        raise ValueError(f"--replicas {replicas} must be >= 1 (1: this process; N >= 2: N replicas on Ray Serve)")
    if replicas > 1:
        from ..extras import extra_imports

        with extra_imports(f"--replicas {replicas} runs the replicas on Ray Serve"):
            import ray.serve  # noqa: F401


def _serve(args: argparse.Namespace) -> int:
    from ..cli import LOAD_FLAGS, api_key_from_env, flag_named
    from ..policy import Policy, check_seed
    from .adapters import check_key_map
    from .codec import Limits
    from .server import PolicyServer, ServerConfig, _log, checked_api_key

    if args.api_key_on_command_line is not None:  # the key itself is never shown
        raise ValueError("--api-key: serve takes the key from an environment variable, which keeps it out of the "
                         "process list and shell history: export WP_KEY=...; worldpolicy serve --api-key-env WP_KEY "
                         "(clients send it with --api-key or api_key=)")
    if args.overwrite and args.record is None:
        raise ValueError("--overwrite replaces an earlier recording at --record DIR; give --record, or leave "
                         "--overwrite out")
    if args.record_episode_gap is not None and args.record is None:
        raise ValueError("--record-episode-gap splits what --record DIR records into episodes; give --record, or "
                         "leave --record-episode-gap out")
    if args.record is not None and args.replicas > 1:
        raise ValueError(f"--record records the single-process server; --replicas {args.replicas} runs Ray Serve "
                         "replicas, which it does not record: leave out one of them")
    if args.replicas > 1:
        # Ray folds lines of several replicas that differ only in words with digits (a timestamp, a conn) within 5 s
        # into the last one, suffixed "[repeated Nx across cluster]": replica events (policy_failed, reply_failed...)
        # lost, and text after a JSON object. Read when Ray is imported (next): set first, unless set
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    _check_replicas(args.replicas)
    logging.getLogger("websockets.server").setLevel(logging.WARNING)  # one INFO line per probe; ours log connects
    api_key = None
    if args.api_key_env:
        api_key = checked_api_key(api_key_from_env(args.api_key_env), f"--api-key-env {args.api_key_env}: the key")
    size = int(args.max_message_mb * 2**20) if math.isfinite(args.max_message_mb) else 0
    if not (size >= 1 and args.max_message_mb <= _MAX_MESSAGE_MB):
        raise ValueError(f"--max-message-mb {args.max_message_mb} is invalid; accepted: a number of MiB in (0, "
                         f"{_MAX_MESSAGE_MB}], at least one byte")
    incoming = int(args.max_incoming_mb * 2**20) if math.isfinite(args.max_incoming_mb) else 0
    if incoming < size:
        raise ValueError(f"--max-incoming-mb {args.max_incoming_mb:g} is invalid; accepted: a finite number of MiB "
                         f"at least --max-message-mb ({args.max_message_mb:g}): one whole request must fit")
    if args.warmup < 0:
        raise ValueError(f"--warmup={args.warmup} is invalid; accepted: an int >= 0 (synthetic requests run before "
                         "the server is ready; 0: none)")
    try:
        config = ServerConfig(
            host=args.host,
            port=args.port,
            api_key=api_key,
            max_batch=args.max_batch,
            max_wait_ms=args.max_wait_ms,
            max_queue=args.max_queue,
            max_connections=args.max_connections,
            limits=Limits(max_message_bytes=size, max_array_bytes=size),
            drain_timeout_s=args.drain_timeout_s,
            event_loop=args.event_loop,
            batch_timeout_s=args.batch_timeout_s,
            message_timeout_s=args.message_timeout_s,
            max_incoming_bytes=incoming,
            tls_cert=args.tls_cert,  # loaded now: a bad certificate or key fails before the checkpoint is looked up
            tls_key=args.tls_key,
        )
    except ValueError as exc:  # name the flag the user typed, not the config field behind it
        raise ValueError(_CONFIG_FIELD.sub(lambda m: _FLAG_OF.get(m[1], m[0]), str(exc))) from None
    if config.certificate is not None:  # and so does a SIGHUP reload that fails
        config.certificate.names = (_FLAG_OF["tls_cert"], _FLAG_OF["tls_key"])
    from ..models import checkpoint_name, resolve_checkpoint

    # the first line: checking the checkpoint imports the engine (torch, diffusers), seconds to a minute of silence
    _log(logging.INFO, "starting", checkpoint=checkpoint_name(args.checkpoint), replicas=args.replicas,
         detail="checking the checkpoint and flags; then the port opens, the model loads and warms up (ready)")
    args.checkpoint = resolve_checkpoint(args.checkpoint)
    key_map = _key_map(args.key_map)
    options = dict(
        embodiment=args.embodiment, variant=args.variant, device=args.device, dtype=args.dtype, steps=args.steps,
        guidance=args.guidance, chunk_size=args.chunk_size, resolution_tier=args.resolution_tier, compile=args.compile,
        cuda_graphs=args.cuda_graphs, center_crop=center_crop_option(args),
    )
    try:  # a bad flag fails now, before the port opens
        # N replicas load on Ray's machines, each judging its own memory: not this one's (a cluster's CPU head node)
        embodiment = Policy.check_pretrained(args.checkpoint, **options, memory=args.replicas == 1)[0]
        if args.seed is not None:
            check_seed(args.seed)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise flag_named(exc, {**LOAD_FLAGS, "compile": "--compile", "cuda_graphs": "--cuda-graphs"}) from None
    check_key_map(embodiment, key_map, "--key-map")
    if (args.compile or args.cuda_graphs) and args.max_batch > 1:
        flag = "--cuda-graphs" if args.cuda_graphs else "--compile"
        _log(logging.WARNING, "compiles_per_shape", flag=flag, max_batch=args.max_batch,
             detail=f"{flag} with --max-batch {args.max_batch}: the first batch of each new size and each new prompt "
             "length compiles (tens of seconds at Cosmos3-Nano size) while later requests wait; --max-batch 1 and "
             "fixed prompts keep it to one compile per prompt")

    recorder = _recorder(args, embodiment) if args.record is not None else None

    def load():
        from ..logcapture import quiet_loading

        if args.log_format == "json":
            library_logs_to_root()
        with quiet_loading():  # a server's log is JSON lines: no progress bar (carriage returns) in it
            return Policy.from_pretrained(args.checkpoint, seed=args.seed, **options)

    if args.replicas > 1:
        from ..engine.loading import device_named, resolve_device  # torch: not before the checks above
        from .ray_serve import serve_until_signal

        return serve_until_signal(
            load, num_replicas=args.replicas, host=args.host, port=args.port,
            # a device named (in any case) other than CUDA takes no GPU; left to the machine, one where the cluster has
            gpus_per_replica=0 if device_named(args.device) and resolve_device(args.device).type != "cuda" else None,
            max_batch=args.max_batch,
            max_wait_ms=args.max_wait_ms, api_key=api_key, key_map=key_map, limits=config.limits,
            warmup_requests=args.warmup, max_queue=args.max_queue, max_connections=args.max_connections,
            drain_timeout_s=args.drain_timeout_s, max_incoming_bytes=config.max_incoming_bytes,
            batch_timeout_s=config.batch_timeout_s,
            certificate=config.certificate,  # checked above, before Ray starts; Serve's proxy serves the same files
            logs=(args.log_format, args.verbose),  # the replicas' and router's events in the command's log format
        )
    try:
        server = PolicyServer(loader=load, config=config, key_map=key_map, warmup_requests=args.warmup,
                              close_on_stop=True,  # its own policy: released after the drain's last batch
                              recorder=recorder)
        return server.run()
    except OSError as exc:  # the address: in use, not on this machine, no such host, or a privileged port
        if not (isinstance(exc, socket.gaierror) or exc.errno in _BIND_ERRORS):
            raise
        raise ValueError(f"--host {args.host} --port {args.port}: cannot listen there ({exc.strerror or exc})") from None
    finally:
        if recorder is not None:
            recorder.close()  # a server that never listened never started it: its spool is removed here


def _recorder(args: argparse.Namespace, embodiment) -> Recorder:
    """`--record DIR`: the data layer's dataset writer behind the serving layer's hand-off (serving does not import
    data: the CLI wires them), its folder checked now, before the model loads."""
    from ..cli import flag_named
    from ..data.served import ServedRunDataset
    from ..models import checkpoint_name
    from .recording import Recorder

    try:
        gap = {} if args.record_episode_gap is None else {"episode_gap_s": args.record_episode_gap}
        sink = ServedRunDataset(args.record, embodiment, overwrite=args.overwrite,
                                provenance={"checkpoint": checkpoint_name(args.checkpoint)}, **gap)
    except (ValueError, FileExistsError) as exc:
        raise flag_named(exc, {"out": "--record", "overwrite": "--overwrite"}) from None
    except OSError as exc:
        raise ValueError(f"--record {args.record}: cannot write there ({exc.strerror or exc})") from None
    return Recorder(sink, destination=str(sink.root))
