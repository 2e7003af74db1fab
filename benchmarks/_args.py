"""Argument parsing and the exit status shared by the benchmark scripts (run as `python benchmarks/X.py`, so this
folder is on sys.path).

A count of zero or a negative cost used to get past argparse and fail later as a division by zero or an empty
median; as an argparse `type` the check names the flag, the value given and what is accepted, before any work runs.
A script's own check (both ways wrote the same files, say) used to print its failure and exit 0 (`exit_if_failed`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def at_least(minimum: float, kind: type = int) -> Callable[[str], float]:
    """An argparse `type`: `kind(text)`, refused unless it is >= `minimum`."""

    def parse(text: str):
        refusal = argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'} >= {minimum:g}, got {text!r}")
        try:
            value = kind(text)
        except ValueError:
            raise refusal from None
        if not value >= minimum:  # `not >=` also refuses NaN
            raise refusal
        return value

    return parse


def frame_size(parser: argparse.ArgumentParser, text: str, example: str, even: bool = False) -> tuple[int, int]:
    """`--size HxW` as (height, width), each side >= 16 (and even, for `even`: an encoder's need), else the parser's
    error naming the value given (`example`: a valid one, for the message)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        parser.error(f"--size={text!r}: expected HxW, e.g. {example}")
    if height < 16 or width < 16 or (even and (height % 2 or width % 2)):
        parser.error(f"--size={text!r}: each side must be {'even and ' if even else ''}>= 16")
    return height, width


def parser_for(doc: str) -> argparse.ArgumentParser:
    """The script's parser, with its whole docstring, line breaks kept, as the description: `--help` then says what
    is measured against what and shows the documented commands (a first line alone stopped mid-sentence)."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def exit_if_failed(checks: dict[str, bool]) -> None:
    """After everything is printed (so a failed run's figures are still seen): exit 1 with a last line naming each
    of `checks` (what is checked: whether it held) that failed; return if all held."""
    failed = [name for name, held in checks.items() if not held]
    if failed:
        sys.stdout.flush()  # the figures before the verdict, also when both streams go to one file
        sys.exit(f"check failed: {'; '.join(failed)}")
