"""`worldpolicy` command line. Each subsystem owns its subcommands in `<package>/commands.py` (`add_parser`)."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import os
import re
import shlex
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

from . import __version__
from .__main__ import INTERRUPTED  # the one text of a Ctrl-C before the command starts
from .errors import error_parameter, typo_note
from .serving import API_KEY_ENV  # the variable a ws:// server's key is read from when no flag gives it

# Modules that contribute subcommands via `add_parser(subparsers)`; each keeps heavy imports inside its handlers.
COMMAND_MODULES = (
    "worldpolicy.commands",
    "worldpolicy.viz.commands",
    "worldpolicy.serving.commands",
    "worldpolicy.sim.commands",
    "worldpolicy.data.commands",
    "worldpolicy.train.commands",
    "worldpolicy.agents.commands",
)


class UsageError(Exception):
    """A bad command-line value, reported as one line without a traceback."""


# The parameters of `Policy.check_pretrained` / `from_pretrained` (and `check_seed`) as the commands spell them
LOAD_FLAGS = {name: "--" + name.replace("_", "-") for name in (
    "checkpoint", "embodiment", "variant", "device", "dtype", "preset", "steps", "guidance", "schedule", "shift",
    "chunk_size", "resolution_tier", "seed")}


DEVICE_HELP = "torch device: cpu, cuda, cuda:N, mps, ... (default: auto: cuda if available, else cpu)"


def add_device_flags(parser: argparse.ArgumentParser) -> None:
    """`--device` and `--dtype` (`load_policy`'s `device`, `dtype`), said alike by every command that loads a
    checkpoint for inference."""
    parser.add_argument("--device", help=DEVICE_HELP)
    parser.add_argument("--dtype", help="bfloat16 | float16 | float32 (or bf16, fp16, fp32; any case; default: "
                        "bfloat16 on CUDA, float32 on a GPU older than Ampere and off CUDA)")


def add_center_crop_flag(parser: argparse.ArgumentParser) -> None:
    """`--no-center-crop` (`load_policy`'s `center_crop=False`), said alike by every command that loads a checkpoint
    for inference: a checkpoint trained with `[augment]` centre-crops its frames as its record says, unless told not
    to (`center_crop_option`: what the flag passes)."""
    parser.add_argument("--no-center-crop", action="store_true",
                        help="leave the frames whole where the checkpoint was trained with [augment] and its record "
                        "says to crop their centre (docs/training.md, Image augmentation)")


def center_crop_option(args: argparse.Namespace) -> bool | None:
    """`load_policy`'s `center_crop` for `--no-center-crop` (`add_center_crop_flag`): False, else None (as recorded)."""
    return False if args.no_center_crop else None


def flag_named(exc: Exception, flags: Mapping[str, str]) -> Exception:
    """The error with its flags' names: the Python API names the parameter first (`steps=0 must be ...`,
    `control_hz: ...`) and may name others on (`episodes=[0], drop_episodes=[0]: ...`, `use video_codec='libx264rgb'`),
    while on the command line the flag is what to fix. `flags` maps parameters to flags (a command's one table); each
    parameter it knows is renamed wherever the text gives it a value (`name=0`; `name=True`, `name=...` and a bare
    `name=` are the flag alone: a switch, or "give it"; not a call's keyword, `RemotePolicy(embodiment=...)`, which is
    Python the user may write), where the text leads with it (`name: `, `errors.error_parameter`) and where it is
    named as the fix (`choose another name`, as the output-folder checks say it: `fileio.refuse_foreign_folder`;
    `leave name out`). An item of a list parameter, `name[j]`, is named as the user counts what they typed: `ROOT 2`
    for a positional argument (`datasets[1]` of `dataset merge ROOT...`), `--flag value 2` for a flag. A value the
    text quotes (`out='/data/seed=3'`: what the user gave) or a path shows, and a call's arguments
    (`ActionDecoder(..., prompt=...)`) are kept as they are. An error that names none of them is returned as it is."""
    if not flags:
        return exc
    name, text = error_parameter(exc)
    names = "|".join(sorted(map(re.escape, flags), key=len, reverse=True))
    mention = re.compile(
        r"(?<!\w)'[^'\n]*'|(?<!\w)\"[^\"\n]*\"|(?<=\w)\([^()\n]*\)"  # a quoted value, a call's arguments: kept
        rf"|(?<![\w.\[/-])(?<!\w\()(?P<given>{names})(?:=True\b|=\.\.\.|=(?=[\s,;)]|$)|(?==))"
        rf"|(?<=\bchoose another )(?P<fix>{names})\b|(?<=\bleave )(?P<left>{names})(?= out\b)"
        rf"|(?<![\w.\[/-])(?P<listed>{names})\[(?P<item>[0-9]+)\](?!\[)")  # not an element of a nested value

    def named(m: re.Match) -> str:
        if m["listed"]:
            flag = flags[m["listed"]]
            return f"{flag} {int(m['item']) + 1}" if not flag.startswith("-") else f"{flag} value {int(m['item']) + 1}"
        return flags[m["given"] or m["fix"] or m["left"]] if m.lastgroup else m[0]

    renamed = mention.sub(named, text)
    if name in flags and renamed.startswith(name + ": "):
        renamed = flags[name] + renamed[len(name):]
    return exc if renamed == text else type(exc)(renamed)


@contextmanager
def warnings_flag_named(flags: Mapping[str, str]) -> Iterator[None]:
    """Within it, the warnings an API logs name what to change as `flag_named` names an error's: `merge_datasets`'
    `dropped (drop_columns=True)` is `dropped (--drop-columns)` on the command line. A filter on the root logger's
    handlers, where every logger's records end (a logger's own filters see only what is logged to it by name)."""
    def renamed(record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            text = record.getMessage()
            said = str(flag_named(Exception(text), flags))
            if said != text:
                record.msg, record.args = said, ()
        return True

    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(renamed)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(renamed)


def add_json_flag(parser: argparse.ArgumentParser, what: str, dest: str = "json") -> None:
    """`--json` (into `dest`), said alike by every command that prints its result for a script (`predict`, `sim`,
    `sim compare`, `dataset eval`, ...): `what` it prints as one JSON object on stdout; the lines a person reads go to
    stderr (`lines_for_people`)."""
    parser.add_argument("--json", dest=dest, action="store_true",
                        help=f"print {what} as one JSON object on stdout, paths absolute, for a script; the lines "
                        "it prints otherwise go to stderr, as any progress")


@contextmanager
def lines_for_people(as_json: bool) -> Iterator[None]:
    """Within it, what a command prints for a person goes to stderr where `--json` keeps stdout for its one JSON
    object (`print_json`, after the block); as it is otherwise."""
    if not as_json:
        yield
        return
    with redirect_stdout(sys.stderr):
        yield


def print_json(doc: Any) -> None:
    """A command's `--json` result on stdout (json.dumps: ASCII, numbers as numbers): one object, or a listing's
    array (`embodiments --json`, `agents world-models --json`)."""
    print(json.dumps(doc, indent=1))


def run_json(doc: Mapping[str, Any], out: str | Path, written: Iterable[str | Path]) -> dict[str, Any]:
    """A result's own document (its `to_json`: the fields its files hold) with where a command wrote it: `run_dir`,
    the run folder, and `written`, the files (the `wrote` lines a person reads), absolute."""
    return {**doc, "run_dir": str(Path(out).resolve()), "written": [str(Path(p).resolve()) for p in written]}


def pixel_size(flag: str, text: str, example: str) -> tuple[int, int]:
    """`--size 480x640` (`sim --image-size`, `dataset from-videos --size`) as (height, width), spelled alike by every
    command that takes a frame size; whether the command takes that size is its own to say."""
    height, sep, width = text.lower().partition("x")
    if not (sep and height.isdigit() and width.isdigit() and int(height) > 0 and int(width) > 0):
        raise ValueError(f"{flag} {text!r}; accepted: HxW, the height and width in pixels, e.g. {example}")
    return int(height), int(width)


# The most episodes one `--episodes` may name (`episode_list`): far more than any dataset holds (DROID has ~92k), so
# only a typo (`0-999999999`) is refused, before a list of that many indices (gigabytes) is built
MAX_EPISODE_INDICES = 10_000_000


def episode_list(flag: str, text: str) -> list[int]:
    """`--episodes 0,3,7` (or `5-9`: 5 to 9 inclusive) as a list of indices, spelled alike by every command that
    selects episodes (`train`, `dataset label`, `dataset select`); the command's API checks them against the dataset.
    Negative indices pass through: whether they count from the end is the API's to say. More than
    `MAX_EPISODE_INDICES` in all is refused before any is listed."""
    parts: list[range] = []
    for item in (item.strip() for item in text.split(",")):
        span = re.fullmatch(r"([0-9]+)-([0-9]+)", item)
        if span and int(span[1]) <= int(span[2]):
            parts.append(range(int(span[1]), int(span[2]) + 1))
        elif re.fullmatch(r"-?[0-9]+", item):
            parts.append(range(int(item), int(item) + 1))
        else:
            raise ValueError(f"{flag} {text!r}: expected episode indices (integers from 0) or ranges A-B (A <= B) "
                             f"separated by commas, e.g. {flag} 0,3,5-9")
    total = sum(part.stop - part.start for part in parts)  # not len(): a range past sys.maxsize has none
    if total > MAX_EPISODE_INDICES:
        raise ValueError(f"{flag} {text!r}: names {total:,} episodes; at most {MAX_EPISODE_INDICES:,} are taken, more "
                         "than any dataset holds (DROID has about 92,000): check the range's bounds")
    return [i for part in parts for i in part]


def continue_command(command: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                     args: argparse.Namespace, *, left_out: Collection[str] = (),
                     always: Collection[str] = (), resume: bool = True) -> str:
    """The command line that continues the run `args` parsed (printed when one is interrupted, so it can be pasted):
    `command` ("worldpolicy sim"), then its arguments as given, in the order `add_arguments` adds them (a default
    left out, but one of `always`; the dests in `left_out` too: a secret is not printed), a positional as its values,
    a flag taken more than once (append, extend) once per value, then --resume (`resume=False`: none, the command
    that made the run, as its results record it)."""
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    words = command.split()
    for action in parser._actions:
        value = getattr(args, action.dest)
        if action.dest in ("resume", *left_out) or (value == action.default and action.dest not in always):
            continue
        for given in value if isinstance(value, list) else [value]:
            if not action.option_strings:  # a positional: ROOT
                words.append(str(given))
            else:
                words += [action.option_strings[0]] + ([] if action.nargs == 0 else [str(given)])
    return shlex.join([*words, *(["--resume"] if resume else [])])


def api_key_from_env(var: str) -> str:
    """The API key held by environment variable `var`, as `--api-key-env VAR` gives it (`serve`'s server key, `sim`'s
    key for a ws:// server): a key typed on the command line is in the process list (`ps`) of every user of the
    machine and in shell history, a variable's value is in neither. ValueError naming the flag when it is unset or
    empty (never the key: the caller checks what it holds)."""
    key = os.environ.get(var)
    if not key:
        raise ValueError(f"--api-key-env {var}: that environment variable is unset or empty")
    return key


def add_api_key_flags(parser: argparse.ArgumentParser) -> None:
    """`--api-key` and `--api-key-env`: the key a ws:// (or wss://) policy server asks for, `--tls-ca`: the CA a
    wss:// one's certificate is checked against, and `--server-timeout-s`: the most one request to it may take
    (`RemotePolicy(timeout_s=)`), said alike by every command that runs a `--policy` (`sim`, `dataset from-sim`);
    `policy_api_key`, `policy_tls_ca` and `policy_server_timeout` read them."""
    parser.add_argument("--api-key", default=None,
                        help="the key a ws:// or wss:// server asks for; other users of this machine see it in the "
                        "process list (ps), and shell history keeps it: prefer --api-key-env (default: none, the key "
                        "--api-key-env names)")
    parser.add_argument("--api-key-env", metavar="VAR", default=None,
                        help="environment variable holding the ws:// or wss:// server's key, as serve --api-key-env "
                        f"takes its own (default: {API_KEY_ENV}, when it is set)")
    parser.add_argument("--tls-ca", metavar="FILE", default=None,
                        help="a wss:// server's private CA certificate, or its self-signed one (PEM), to verify its "
                        "certificate with (default: the system's CAs)")
    parser.add_argument("--server-timeout-s", metavar="SECONDS", type=float, default=None,
                        help="the most the first connect to a ws:// or wss:// server, and each request to it, may "
                        "take, a reconnect included "
                        "(the client's timeout_s, as its errors name it): a wedged server fails the run then, not "
                        "after the client's per-wait timeouts (default: none: 10 s each connect, 120 s each reply)")


def policy_api_key(args: argparse.Namespace, policy: str) -> str | None:
    """The key `add_api_key_flags`' flags give for `--policy POLICY`: the variable --api-key-env names, --api-key,
    else `API_KEY_ENV` where set; None for a policy that is no ws:// or wss:// server, to which either flag is refused
    (it would be ignored, and the run look as asked), as both together are."""
    from .models import SERVER_SCHEMES

    given = [flag for flag, value in (("--api-key", args.api_key), ("--api-key-env", args.api_key_env))
             if value is not None]
    server = policy.startswith(SERVER_SCHEMES)
    if given and not server:
        raise ValueError(f"{given[0]} is sent to a ws:// or wss:// policy server, not to --policy {policy!r}")
    if len(given) == 2:
        raise ValueError("--api-key and --api-key-env both give the server's key: pass one (--api-key-env keeps it "
                         "out of the process list)")
    if not server:
        return None
    return api_key_from_env(args.api_key_env) if args.api_key_env is not None else (
        args.api_key or os.environ.get(API_KEY_ENV))


def policy_tls_ca(args: argparse.Namespace, policy: str) -> str | None:
    """`--tls-ca FILE` for `--policy POLICY`: refused for a policy that is no wss:// server, which would ignore it."""
    if args.tls_ca is not None and not policy.startswith("wss://"):
        raise ValueError(f"--tls-ca {args.tls_ca}: verifies a wss:// policy server's certificate, not --policy "
                         f"{policy!r}" + (": use its wss:// URL (worldpolicy serve --tls-cert/--tls-key)"
                                          if policy.startswith("ws://") else ""))
    return args.tls_ca


def policy_server_timeout(args: argparse.Namespace, policy: str) -> float | None:
    """`--server-timeout-s SECONDS` for `--policy POLICY`: refused for a policy that is no ws:// or wss:// server, which
    would ignore it, or that is no finite number of seconds > 0 (in the command line's words: the client's own check,
    `RemotePolicy(timeout_s=)`, also accepts Python's None)."""
    from .models import SERVER_SCHEMES

    seconds = args.server_timeout_s
    if seconds is not None and not policy.startswith(SERVER_SCHEMES):
        raise ValueError(f"--server-timeout-s {seconds:g}: bounds a ws:// or wss:// policy server's "
                         f"requests, not --policy {policy!r}")
    if seconds is not None and not 0 < seconds < math.inf:
        raise ValueError(f"--server-timeout-s {seconds:g}: accepted: a finite number of seconds > 0 (leave the flag "
                         "out for the client's per-wait timeouts alone)")
    return seconds


def with_key_hint(exc: ConnectionError, command: str) -> ConnectionError:
    """A server that refused the API key: say it, and how `command` sends one, in its flags (`add_api_key_flags`),
    not in the Python words of `RemotePolicy`'s message (`api_key=`; the server's text speaks of headers). Other
    errors are returned as they are."""
    client = sys.modules.get("worldpolicy.serving.client")
    if client is None or not isinstance(exc, client.AuthenticationError):
        return exc
    how = (f"give {command} the server's key (what the variable its --api-key-env names holds) with --api-key-env "
           f"VAR, {API_KEY_ENV} or --api-key KEY")
    if not exc.refusal:  # made elsewhere than `RemotePolicy`'s handshake: its text as it is
        return client.AuthenticationError(f"{exc}; {how}")
    why = "the key it sent is not the server's" if exc.key_sent else f"{command} sent no key"
    said = f" (it says: {exc.says})" if exc.says else ""
    return client.AuthenticationError(f"{exc.refusal}: {why}{said}; {how}", exc.refusal, exc.key_sent, exc.says)


_GIVEN = "_single_valued_options_given"  # what `_StoreOnce` saw during one parse; removed before the parse returns
# the innermost subcommand's parser that was left arguments it does not take, and those arguments (`_Subcommands`)
_UNRECOGNIZED_BY = "_unrecognized_by"


class _StoreOnce(argparse._StoreAction):
    """The `store` action of every worldpolicy parser: a single-valued option given twice is refused, naming both
    values. argparse keeps the last one silently, so `predict --image a.png --image b.png` ran on b.png and `--steps 4
    --steps 8` sampled 8 steps. Options meant to repeat say so with `append`/`extend`, which this leaves alone."""

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string is not None:  # a positional is consumed once by construction
            given = namespace.__dict__.setdefault(_GIVEN, {})
            if self.dest in given:
                raise argparse.ArgumentError(None, f"{option_string} is given twice ({given[self.dest]}, then "
                                                   f"{_typed(option_string, values)}); give it once")
            given[self.dest] = _typed(option_string, values)
        super().__call__(parser, namespace, values, option_string)


def _typed(option: str, values) -> str:
    """An option and its value(s) as a shell would show them."""
    return shlex.join([option, *map(str, values if isinstance(values, list) else [values])])


def _add_verbose(parser: argparse.ArgumentParser, default) -> None:
    """`-v/--verbose`, the one global option a command's parser also takes."""
    parser.add_argument("-v", "--verbose", action="store_true", default=default, help="debug logging")


class _Subcommands(argparse._SubParsersAction):
    """`add_subparsers` of every worldpolicy parser: a subcommand's `--help` opens with what it does, its one-line
    help from the command list, unless it has a description of its own (`worldpolicy demo --help` showed only its
    flags). Each subcommand takes `-v` too: `worldpolicy sim ... -v` was refused as an unknown argument, only
    `worldpolicy -v sim ...` worked. Its default is SUPPRESS: argparse copies a subcommand's values over the top
    level's, and a default False there would undo `worldpolicy -v sim`."""

    def add_parser(self, name, **kwargs):
        said = kwargs.get("help")
        if said and kwargs.get("description") is None:
            kwargs["description"] = f"{said[0].upper()}{said[1:]}."
        parser = super().add_parser(name, **kwargs)
        _add_verbose(parser, argparse.SUPPRESS)
        return parser

    def __call__(self, parser, namespace, values, option_string=None):
        """Parse the subcommand's arguments; the first parser left some it does not take is kept, the innermost (its
        own subcommand's ran first), so the error names it and shows its usage, not the top level's."""
        if values[0] not in self._name_parser_map:  # a stray word `_Parser._check_value` let through: see there
            vars(namespace).setdefault(argparse._UNRECOGNIZED_ARGS_ATTR, []).extend(values)
            return
        super().__call__(parser, namespace, values, option_string)
        left = getattr(namespace, argparse._UNRECOGNIZED_ARGS_ATTR, None)
        if left and not hasattr(namespace, _UNRECOGNIZED_BY):
            setattr(namespace, _UNRECOGNIZED_BY, (self._name_parser_map[values[0]], list(left)))


# options whose value is free text, where several unquoted words are likely (`--prompt reach the ball`)
_PROSE_DESTS = frozenset({"prompt", "task", "message", "title", "video_label"})


def _unquoted_prose(parser: argparse.ArgumentParser, argv: list[str], extras: list[str]) -> list[str]:
    """The hint for words left over after a free-text option's value (`--prompt reach the ball` left `the ball`): the
    shell split an unquoted value, so say how to quote it. [] when the leftovers follow no such option."""
    for i, word in enumerate(argv):
        if word != extras[0] or i == 0:
            continue
        if argv[i - 1].startswith("--") and "=" in argv[i - 1]:  # --prompt=reach the ball
            flag, value = argv[i - 1].split("=", 1)
        elif i >= 2:
            flag, value = argv[i - 2], argv[i - 1]
        else:
            continue
        action = parser._option_string_actions.get(flag)
        if action is None or action.dest not in _PROSE_DESTS or value.startswith("-"):
            continue
        words = [value]
        for leftover in argv[i:]:
            if leftover.startswith("-"):
                break
            words.append(leftover)
        quoted = shlex.quote(" ".join(words))
        return [f"{flag} takes one value ({value!r}): quote a value of several words, {flag} {quoted}"]
    return []


class _Parser(argparse.ArgumentParser):
    """The command line's parsers (subcommands' too: `add_subparsers` makes parsers of its parent's class), with
    `_StoreOnce` as their plain option action and `_Subcommands` as their subcommands'. `absent_flags` (a
    subcommand's `add_parser` keyword): flags it does not take that a user of the others may reach for, each with
    what to do instead, said after `unrecognized arguments` (`train --resume`: `sim` has one, train resumes itself)."""

    def __init__(self, *args, absent_flags: Mapping[str, str] | None = None, **kwargs):
        self.absent_flags = dict(absent_flags or {})
        super().__init__(*args, **kwargs)
        self.register("action", None, _StoreOnce)
        self.register("action", "store", _StoreOnce)
        self.register("action", "parsers", _Subcommands)

    def _check_value(self, action, value):
        """argparse's, but a word that names no subcommand of a command that runs without one (`sim`, beside `sim
        compare`) is one of its unrecognized arguments (`_Subcommands` leaves it to `parse_args`): `sim --policy random
        --bogus x` said `argument [compare]: invalid choice: 'x'` of a subcommand it never asked for. Where a
        subcommand is needed (`dataset ACTION`, the top level's COMMAND) it is an invalid choice, with the choices,
        and, as for every option's choices (`predict --mode polcy`, `sim --strategy ensamble`), the one it is likely
        a typo of (`errors.typo_note`): argparse named none."""
        if isinstance(action, _Subcommands) and not action.required and self.get_default("func") is not None:
            return
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as exc:
            guess = typo_note([value], action.choices) if isinstance(value, str) else ""
            if not guess:
                raise
            raise argparse.ArgumentError(action, exc.message + guess) from None

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        vars(namespace).pop(_GIVEN, None)  # the parse's own bookkeeping, not a command's argument
        return namespace, extras

    def parse_args(self, args=None, namespace=None):
        """argparse's, but arguments no parser takes are refused by the innermost subcommand's parser that was left
        them, with its usage (`worldpolicy dataset label: error: unrecognized arguments: 1`): the top level's named
        neither the subcommand nor its flags."""
        namespace, extras = self.parse_known_args(args, namespace)
        by, theirs = vars(namespace).pop(_UNRECOGNIZED_BY, (self, extras))
        if extras:
            parser = by if theirs == extras else self
            hints = [f"{flag}: {parser.absent_flags[flag]}" for flag in extras if flag in parser.absent_flags]
            hints += _unquoted_prose(parser, sys.argv[1:] if args is None else list(args), extras)
            parser.error(f"unrecognized arguments: {' '.join(extras)}" + "".join(f"; {hint}" for hint in hints))
        return namespace


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="worldpolicy",
        description="Video world-model robot policies (Cosmos3): predict, serve, simulate, train, visualise.",
    )
    _add_verbose(parser, False)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(sub)
    return parser


def _unencodable_escaped() -> None:
    """Stdout writes a character its encoding has no code for (`PYTHONIOENCODING=ascii`, a latin-1 locale's `…`) as
    Python writes one on stderr, `\\xb7`: `sim` ran its episodes, then failed on its summary line's `·` with exit 2
    (a UnicodeEncodeError is a ValueError), and `dataset from-sim --help` with a traceback. What commands print as
    JSON is ASCII already (`json.dumps` escapes the rest)."""
    if getattr(sys.stdout, "errors", None) == "strict" and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")


def main(argv: list[str] | None = None) -> int:
    _unencodable_escaped()
    try:
        parser = build_parser()  # imports every command's module: a second or more on a busy machine
        args = parser.parse_args(argv)
    except KeyboardInterrupt:  # Ctrl-C before the command starts: one line and 130, as once it runs (no traceback)
        print(INTERRUPTED, file=sys.stderr)
        return 130
    _configure_logging(args)
    if not getattr(args, "func", None):  # a usage error (status 2), on stderr: `worldpolicy > out` keeps it off out
        parser.print_help(sys.stderr)
        return 2
    from .fileio import (
        STORAGE_ERRNOS,
        exit_status,
        how_stopped,
        removing_empty_folders_on_failure,
        terminating_as_interrupt,
    )
    from .logcapture import is_terminal, log_progress_interval, quiet_loading

    try:
        log_progress_interval()  # a bad TQDM_MININTERVAL is said before the command's work, not at its first bar
        # SIGTERM or SIGUSR1 (a cluster job's time limit) stops a command as Ctrl-C does, keeping what it finished
        # ... and no empty --out it made; `--no-progress` hides diffusers' loading bar too (restored after), as does a
        # log (stderr no terminal), where it is carriage returns and block characters, not `progress_bar`'s lines
        with terminating_as_interrupt(), removing_empty_folders_on_failure(), \
                quiet_loading(getattr(args, "no_progress", False) or not is_terminal(sys.stderr)):
            status = int(args.func(args) or 0)
            sys.stdout.flush()  # a reader that left fails the flush here, not in the interpreter's exit
            return status
    except BrokenPipeError:  # `worldpolicy dataset info ROOT | head`: the reader took what it wanted and left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # what is still buffered cannot fail the exit
        return 141  # 128 + SIGPIPE: what a shell reports for a command whose pipe's reader ended
    except KeyboardInterrupt as stop:
        if args.verbose:
            raise
        # a SIGTERM or SIGUSR1, also where what kept the finished work replaced it (a recipe's recording)
        _say(args, logging.WARNING, f"worldpolicy {_command_name(args)}: {how_stopped(stop)}")
        return exit_status(stop)  # the shell's code: 130 for Ctrl-C, 143 for SIGTERM, 138 for SIGUSR1
    except Exception as exc:
        from .extras import missing_extra

        shown = missing_extra(exc) if isinstance(exc, ImportError) else None
        if shown is None and isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
            shown = f"{exc.strerror}: {str(exc.filename)!r}" if exc.filename else exc.strerror
        if shown is None and not isinstance(exc, _user_errors()):
            raise
        message = shown or (exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
        _say(args, logging.ERROR, f"worldpolicy {_command_name(args)}: error: {message}")
        if args.verbose:
            raise
        return 2


def _configure_logging(args: argparse.Namespace) -> None:
    """The root handler on stderr: `text` lines (a timestamp, level and logger before each message; a command's INFO
    lines plain, `logcapture.LineFormatter`, or timed for a command whose parser sets `timed_log`: `train`; every line
    timed for a server), or `json` ones for a command that has `--log-format` (`serve`), where Python's `warnings` go
    through logging too, so every line the process logs is one JSON object."""
    from .logcapture import LineFormatter
    from .serving.logformat import log_levels, log_to_stderr, log_uncaught

    if hasattr(args, "log_format"):  # a server's log: every line timed, its INFO events included
        log_to_stderr(args.log_format, args.verbose)
        if _json_lines(args):
            log_uncaught()  # a crash's traceback too: one JSON line, not Python's lines on stderr
        return
    handler = logging.StreamHandler()  # the current stderr, also when main() runs more than once in a process
    handler.setFormatter(LineFormatter(timed=getattr(args, "timed_log", False)))
    logging.basicConfig(  # other libraries' INFO lines (OpenGL, httpx...) are noise on a command line: warnings only
        level=logging.DEBUG if args.verbose else logging.WARNING, handlers=[handler], force=True,
    )
    log_levels(args.verbose)  # as log_to_stderr's
    logging.captureWarnings(False)


def _json_lines(args: argparse.Namespace) -> bool:
    """Whether stderr is a log pipeline's JSON lines (`serve --log-format json`) rather than a person's terminal."""
    return getattr(args, "log_format", "text") == "json"


def _say(args: argparse.Namespace, level: int, text: str) -> None:
    """A command's closing line on stderr (its one-line error, an interruption): as text, or as one JSON line where
    every line is one (`_json_lines`), so a log pipeline reads why the server stopped."""
    if _json_lines(args):
        logging.getLogger("worldpolicy").log(level, text)
    else:
        print(text, file=sys.stderr)


def _command_name(args: argparse.Namespace) -> str:
    """What the user ran, with the action of a command that has them (`dataset from-sim`), so an error names it."""
    action = getattr(args, f"{args.command}_command", None)
    return f"{args.command} {action}" if action else args.command


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors shown as one line (besides a missing extra's module, `extras.missing_extra`): bad input, a policy server
    or the Hugging Face hub that is down, refuses or fails, and no offscreen rendering (those modules are only
    imported by commands that use them, so a plain run never imports them here)."""
    from .hub import HubError  # the hub unreachable, or refusing (`push`, a dataset named by its hub id)

    errors: tuple[type[Exception], ...] = (
        UsageError, ValueError, KeyError, FileNotFoundError, FileExistsError, TypeError, HubError
    )
    client = sys.modules.get("worldpolicy.serving.client")
    rendering = sys.modules.get("worldpolicy.sim.rendering")
    return (errors + ((client.RemotePolicyError,) if client is not None else ())
            + ((rendering.RenderingUnavailable,) if rendering is not None else ()))


if __name__ == "__main__":
    sys.exit(main())
