"""How an API error names what to fix: every error about an argument starts with the parameter's name (`steps=0 must
be >= 1`, `control_hz: ...`). The command line renames it, and the others it names with a value, to their flags
(`cli.flag_named`), the agents' tools to their argument (`agents.toolbox`); both read it here, so the convention is read
one way. A list an error echoes (episode indexes) is shown briefly (`brief_list`). What counts as a whole number or a
real one where a parameter asks for it is decided here too (`is_integer`, `is_real`), so every check agrees."""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["ClosedByCallerError", "MissingKeyError", "brief_list", "close_match", "error_accepted", "error_parameter",
           "is_integer", "is_real", "typo_note"]

_LEADING_PARAMETER = re.compile(r"(\w+)(?==|: )")
# what an error says is accepted: its last "accepted: X" or "accepted with C: X" (X to the end), else "expected X, got"
_ACCEPTED = re.compile(r"\baccepted(?P<condition> [^:;]*)?: (?P<value>[^;]+)$")
_EXPECTED = re.compile(r"\bexpected (?P<value>.+?), got ")
BRIEF_ITEMS = 12  # a list an error shows in full up to this many items (`brief_list`)
CLOSE_MATCH_CUTOFF = 0.65  # how alike a given name and an accepted one are (difflib's ratio) to be named as its typo


class ClosedByCallerError(Exception):
    """A call its own caller cut by closing the policy (an e-stop handler's `RemotePolicy.close()`): a stop asked
    for, which a robot loop must not undo by asking again (`ChunkController`'s hold mode raises it at once). Here, at
    the bottom layer, so the robot bridge tells it apart without importing the client (and its extra)."""


class MissingKeyError(KeyError):
    """A key an input lacks (an observation's camera), said as its message reads. Python shows a KeyError as the
    repr of its message (`KeyError: "observation is missing camera keys ['observation/wrist']..."`, quoted, its
    quotes escaped where it holds both kinds); this one as written. A KeyError still: callers that catch one (the
    command line, the agents' tools, `error_parameter`) keep doing so."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def error_parameter(exc: BaseException) -> tuple[str | None, str]:
    """The parameter `exc` names first (None where it names none) and its text (a KeyError's message, not its
    repr)."""
    text = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    match = _LEADING_PARAMETER.match(text)
    return (None if match is None else match[1]), text


def error_accepted(text: str) -> str | None:
    """What an error's text says is accepted, by the wording the library's errors share (`...; accepted: 0 to 1300
    ms`, `...; accepted with policy=scripted: 1`, `expected an int >= 1, got 0`), for a caller that hands it on as a
    field of its own (the agents' tools' `accepted`); None where the text says none."""
    if (match := _ACCEPTED.search(text)) is not None:
        condition = (match["condition"] or "").strip()
        return match["value"].strip() + (f" ({condition})" if condition else "")
    if (match := _EXPECTED.search(text)) is not None:
        return match["value"].strip()
    return None


def close_match(given: str, accepted: Iterable[str]) -> str | None:
    """The accepted name `given` is a typo of (`dorid` of `droid`, `stpes` of `steps`), for an error to name beside
    the whole list: the closest by difflib's ratio, ignoring case, at least `CLOSE_MATCH_CUTOFF` alike; else None.
    Names that share a namespace (`observation.images.`, `droid/`) are compared by what follows it: the long prefix
    made any two alike (`observation.images.wrist` a typo of `observation.images.top`)."""
    import difflib

    wanted = str(given).lower()
    best, best_ratio = None, CLOSE_MATCH_CUTOFF
    for name in accepted:
        other = str(name).lower()
        shared = os.path.commonprefix([wanted, other])
        cut = max(shared.rfind("."), shared.rfind("/")) + 1
        ratio = difflib.SequenceMatcher(None, wanted[cut:], other[cut:]).ratio()
        if ratio > best_ratio or (best is None and ratio == best_ratio):
            best, best_ratio = str(name), ratio
    return best


def typo_note(given: Iterable[str], accepted: Iterable[str]) -> str:
    """For an error refusing the names `given`, none of them `accepted`: the accepted name each is likely a typo of
    (`close_match`), as ` (did you mean 'x'?)` after the list the error shows (` (did you mean 'x' for 'y', ...?)`
    for several names), or "" where none is like one."""
    given, accepted = list(given), list(accepted)
    guesses = [(name, close) for name in given if (close := close_match(name, accepted)) is not None]
    if not guesses:
        return ""
    if len(given) == 1:
        return f" (did you mean {guesses[0][1]!r}?)"
    return f" (did you mean {', '.join(f'{close!r} for {name!r}' for name, close in guesses)}?)"


def is_integer(value: object) -> bool:
    """Whether `value` is a whole number a parameter asking for one accepts: a Python or numpy integer (`np.int64`
    from an array's `.max()`), never a bool (`True` is an int to Python, a mistake here) nor numpy's bool, nor a
    float that happens to be whole (`2.0`)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: object, finite: bool = True) -> bool:
    """Whether `value` is a real number a parameter asking for one accepts: a Python or numpy int or float (or a
    `Fraction`), never a bool nor numpy's bool, nor a string or `Decimal`; with `finite` (the default) not NaN or
    +-inf either. An integer or fraction is finite however large (no float conversion to overflow)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    return not finite or isinstance(value, numbers.Rational) or math.isfinite(value)


def brief_list(values: Sequence[Any]) -> str:
    """`values` as an error shows them: as Python writes a list when short, else with runs of consecutive integers
    as `A..B` and, still too long, the middle left out with the count (`--episodes 0-99999` on a small dataset is
    named in one line, not in a hundred thousand numbers)."""
    values = list(values)
    if len(values) <= BRIEF_ITEMS:
        return repr(values)
    whole = [is_integer(v) for v in values]
    parts, i = [], 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and whole[j] and whole[j + 1] and values[j + 1] == values[j] + 1:
            j += 1
        parts.extend([f"{values[i]}..{values[j]}"] if j - i >= 2 else map(repr, values[i:j + 1]))
        i = j + 1
    if len(parts) > BRIEF_ITEMS:
        parts = [*parts[:BRIEF_ITEMS - 2], "...", parts[-1]]
    return f"[{', '.join(parts)}]" + (f" ({len(values)} in all)" if "..." in parts else "")
