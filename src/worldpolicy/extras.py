"""Optional extras: a module an extra installs, when missing, is reported as the extra to install and its pip command.

The module → extra table is read from the installed package's metadata (`importlib.metadata.requires`), which
pip writes from pyproject.toml, so it cannot drift from it. It is read only when an import has failed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["MissingExtraError", "check_extras", "extra_imports", "extra_of", "extras_missing", "install_command",
           "missing_extra", "package_license", "run_record", "software_changes", "software_versions"]

_DIST = "worldpolicy"
_EXTRA = re.compile(r"""\bextra\s*==\s*["']([^"']+)["']""")
# A top-level module an extra installs under a name that is neither its distribution's nor a prefix of it (`rerun` of
# `rerun-sdk` is one) → that distribution, which `importlib.metadata.packages_distributions` tells only once it is
# installed: `extra_of` needs it where the import failed. The tests check it against the installed packages.
MODULE_DISTRIBUTIONS = {"hid": "hidapi"}


class MissingExtraError(ModuleNotFoundError):
    """A module of an optional extra is not installed; the message names the extra and the pip command. A
    ModuleNotFoundError, so code that tolerates a missing optional module keeps catching it."""


def package_license() -> str | None:
    """The package's license expression (pyproject's `license`, as installed) in the hub's lower-case spelling: what a
    card says of a work the package made on its own (a recipe's model, a recording of its simulation). None where
    worldpolicy runs uninstalled (a source tree on PYTHONPATH): left out, not guessed, and the card still written."""
    from importlib import metadata

    try:
        found = metadata.metadata(_DIST).get("License-Expression")
    except metadata.PackageNotFoundError:
        return None
    return found.lower() if found else None


# The packages whose versions change what a run computes, recorded beside its results (`software_versions`)
RECORDED_PACKAGES = ("torch", "diffusers", "transformers", "mujoco", "numpy")


def software_versions() -> dict[str, str | None]:
    """What a run ran on, as its results record it (a sim report's `software`, a checkpoint's trainer_state.json's):
    worldpolicy's version, Python's and each of `RECORDED_PACKAGES`' as installed (None: not installed), read from the
    packages' metadata, so nothing heavy is imported. A reader reproducing a result installs these. Run from a git
    checkout (an editable install: `__version__` names no commit), `worldpolicy_commit` too (`checkout_commit`); an
    install from a wheel adds nothing."""
    import platform
    from importlib import metadata

    from . import __version__

    found: dict[str, str | None] = {"worldpolicy": __version__, "python": platform.python_version()}
    package = Path(__file__).resolve().parent
    if package.parent.name == "src":  # a source checkout (an editable install): the version names no code
        commit = checkout_commit(package.parent.parent)
        if commit:
            found["worldpolicy_commit"] = commit
    for name in RECORDED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


# What `run_record` adds to a run's record: what it ran on and how it was asked for, not a setting of its results (a
# resume does not compare them: a package upgraded between two sessions continues a run, with a warning)
RUN_RECORD_KEYS = ("software", "command", "cwd")


def run_record(command: str | None) -> dict[str, Any]:
    """What a run's record holds for a reader reproducing it, beside its settings (`RUN_RECORD_KEYS`): `software`
    (`software_versions`), `command`, the command line that made it as typed (a command's `continue_command(...,
    resume=False)`; None for a run from Python), and `cwd`, the folder it was typed in, which its relative paths
    (`--policy runs/x`, `--out`, a dataset) are relative to (None without a command)."""
    return {"software": software_versions(), "command": command, "cwd": os.getcwd() if command else None}


def software_changes(before: Any, after: Any) -> list[str]:
    """How the software of two runs (`software_versions` as recorded; None or another type: unrecorded) differs, one
    `name A -> B` per package (`unrecorded`, `none`: not installed), in `after`'s order; empty when either is
    unrecorded: a run from before versions were recorded says nothing of its own."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return []
    return [f"{name} {before.get(name, 'unrecorded') or 'none'} -> {after.get(name, 'unrecorded') or 'none'}"
            for name in dict.fromkeys([*after, *before]) if before.get(name) != after.get(name)]


def checkout_commit(root: Path) -> str | None:
    """The commit git checkout `root` (a folder holding `.git`: a folder, or a worktree's file naming one) has checked
    out, `-dirty` added where a tracked file differs from it (git's index: its size or time first, then its content);
    None for no checkout, or one read no further (a ref not found, an index in a format not read). Read from the
    `.git` files (HEAD, refs, packed-refs, index), no `git` run: it may be missing, and a run should not spawn it."""
    git = root / ".git"
    try:
        if git.is_file():  # a worktree's: "gitdir: <its folder in the main checkout's .git>"
            git = (root / git.read_text().partition("gitdir:")[2].strip()).resolve()
        common = git / (git / "commondir").read_text().strip() if (git / "commondir").is_file() else git
        head = (git / "HEAD").read_text().strip()
        if head.startswith("ref:"):
            ref = head[4:].strip()
            loose = [folder / ref for folder in (git, common) if (folder / ref).is_file()]
            packed = common / "packed-refs"
            lines = packed.read_text().splitlines() if packed.is_file() else []
            found = loose[0].read_text().strip() if loose else next(
                (line.split()[0] for line in lines if line.endswith(" " + ref)), None)
            if found is None:
                return None
            head = found
        if not re.fullmatch(r"[0-9a-f]{40}", head):  # a SHA-256 repository's index is laid out otherwise
            return None
        dirty = _index_dirty(root, git / "index")
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return None if dirty is None else head + ("-dirty" if dirty else "")


def _index_dirty(root: Path, index: Path) -> bool | None:
    """Whether a file git index `index` tracks under `root` differs from it: gone, or its size or modification time
    another and its content's blob id too (as `git status` judges it); None for an index of a version not read (4),
    or cut short."""
    import struct

    data = index.read_bytes()
    if data[:4] != b"DIRC" or data[4:8] not in (b"\0\0\0\2", b"\0\0\0\3"):
        return None
    try:
        return _entries_dirty(root, data)
    except struct.error:
        return None


def _entries_dirty(root: Path, data: bytes) -> bool:
    """`_index_dirty` of the index `data`, entry by entry (struct.error where it is cut short)."""
    import hashlib
    import struct

    at = 12
    for _ in range(struct.unpack(">I", data[8:12])[0]):
        mtime, mtime_ns = struct.unpack(">II", data[at + 8:at + 16])
        size, = struct.unpack(">I", data[at + 36:at + 40])
        blob = data[at + 40:at + 60].hex()
        flags, = struct.unpack(">H", data[at + 60:at + 62])
        extended = flags & 0x4000
        skip = extended and struct.unpack(">H", data[at + 62:at + 64])[0] & 0x4000  # skip-worktree: not checked out
        start = at + 62 + (2 if extended else 0)
        end = data.index(b"\0", start)
        name = data[start:end].decode()
        mode, = struct.unpack(">I", data[at + 24:at + 28])
        at += ((end - at) // 8 + 1) * 8  # an entry is padded with 1 to 8 NULs to a multiple of 8 bytes
        if skip or (flags >> 12) & 3 or mode >> 12 == 0o16:  # a merge's stage, a submodule: no file of this checkout
            continue
        file = root / name
        try:
            seen = file.lstat()
        except OSError:
            return True
        if seen.st_size % (1 << 32) == size and divmod(seen.st_mtime_ns, 10**9) == (mtime, mtime_ns):
            continue
        content = os.readlink(file).encode() if file.is_symlink() else file.read_bytes()
        if hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest() != blob:
            return True
    return False


def install_command(extra: str) -> str:
    return f"pip install '{_DIST}[{extra}]'"


@lru_cache(maxsize=1)
def _requirements() -> tuple[tuple[str, str, str], ...]:
    """(distribution name as spelled, extra, the requirement's marker) of each requirement an extra adds, in the
    installed metadata's order; another extra it names is `worldpolicy[agents]`. Empty when worldpolicy is not
    installed."""
    from importlib import metadata

    try:
        requirements = metadata.requires(_DIST) or []
    except metadata.PackageNotFoundError:
        return ()
    found = []
    for requirement in requirements:
        spec, _, marker = requirement.partition(";")
        extra = _EXTRA.search(marker)
        if extra:
            found.append((re.split(r"[\s<>=!~(]", spec.strip(), maxsplit=1)[0], extra.group(1), marker.strip()))
    return tuple(found)


def _normalized(distribution: str) -> str:
    return distribution.lower().replace("-", "_").replace(".", "_")


@lru_cache(maxsize=1)
def _module_extras() -> dict[str, str]:
    """Distribution name (lower case, `_` for `-` and `.`) → the first extra that lists it; an extra that only names
    other extras (`all`, `strands`'s `worldpolicy[agents]`) adds nothing. Empty when worldpolicy is not installed."""
    table: dict[str, str] = {}
    for spec, extra, _ in _requirements():
        name = _normalized(spec.partition("[")[0])
        if name != _DIST:
            table.setdefault(name, extra)
    return table


def extras_missing() -> dict[str, list[str]] | None:
    """Each extra that lists a package of its own (not `all`) → the packages it installs that are not installed
    (those of an extra it names too: `strands` needs `agents`' mcp), empty where it is installed; a package for another
    platform than this one (uvloop on Windows) is not needed. A package is installed where its metadata is and its
    modules are found (`importlib.util.find_spec`: a module hidden as `sys.modules[name] = None`, as the tests make a
    core install, is not), nothing imported: what `worldpolicy env` reports, `install_command` saying what adds one.
    None where worldpolicy runs uninstalled (a source tree on PYTHONPATH): its extras are then unknown."""
    import importlib.util
    from importlib import metadata

    from packaging.markers import Marker

    requirements = _requirements()
    if not requirements:
        return None
    needs: dict[str, list[str]] = {}
    for spec, extra, marker in requirements:
        name, _, named = spec.partition("[")
        if _normalized(name) == _DIST:
            needs.setdefault(extra, []).extend(f"[{part.strip()}]" for part in named.rstrip("]").split(","))
        elif Marker(marker).evaluate({"extra": extra}):
            needs.setdefault(extra, []).append(name)

    modules: dict[str, list[str]] = {}  # distribution (normalized) → the top-level modules it installs
    for module, distributions in metadata.packages_distributions().items():
        for distribution in distributions:
            modules.setdefault(_normalized(distribution), []).append(module)

    def found(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except ValueError:  # imported, but without a spec (made in code): there
            return True

    def installed(distribution: str) -> bool:
        try:
            metadata.version(distribution)
        except metadata.PackageNotFoundError:
            return False
        return all(found(module) for module in modules.get(_normalized(distribution), []) if not module.startswith("_"))

    def missing(extra: str, seen: frozenset[str]) -> list[str]:
        absent: list[str] = []
        for need in needs.get(extra, []):
            if need.startswith("["):
                if need[1:-1] not in seen:
                    absent += missing(need[1:-1], seen | {need[1:-1]})
                continue
            if not installed(need):
                absent.append(need)
        return list(dict.fromkeys(absent))

    return {extra: missing(extra, frozenset({extra})) for extra, listed in needs.items()
            if any(not need.startswith("[") for need in listed)}


def _package(module: str) -> str:
    """The package to install for `module`: its top-level package (`ray` for `ray.serve`), or the distribution
    `MODULE_DISTRIBUTIONS` names (`hidapi` for `hid`)."""
    top = module.partition(".")[0]
    return MODULE_DISTRIBUTIONS.get(top, top)


def extra_of(module: str) -> str | None:
    """The extra that installs the top-level package of `module` (`mujoco.viewer` → `sim`), else None. A package
    imported under a shorter name than its distribution (`strands` from `strands-agents`) matches that prefix; one
    imported under another name (`hid` from `hidapi`) is named in `MODULE_DISTRIBUTIONS`."""
    top = _package(module).lower()
    table = _module_extras()
    if top in table:
        return table[top]
    return next((extra for name, extra in table.items() if name.startswith(top + "_")), None)


def missing_extra(exc: ImportError, needed_for: str | None = None) -> MissingExtraError | None:
    """The clear error for a failed import of a module an extra installs (`needed_for`, when given, says what needed
    it), else None: any other failed import is a bug or a broken install, to be shown as it is."""
    name = getattr(exc, "name", None)
    extra = extra_of(name) if isinstance(exc, ModuleNotFoundError) and name else None
    if extra is None:
        return None
    if isinstance(exc, MissingExtraError):
        if not needed_for:
            return exc
        message = str(exc)
    else:
        message = f"{_package(name)} is not installed; it comes with the '{extra}' extra: {install_command(extra)}"
    if needed_for:
        message = f"{needed_for}: {message}"
    return MissingExtraError(message, name=name)


@contextmanager
def extra_imports(needed_for: str | None = None) -> Iterator[None]:
    """Imports of an extra's modules: a missing one raises `MissingExtraError` (see `missing_extra`) instead of a bare
    `No module named ...`."""
    try:
        yield
    except ModuleNotFoundError as exc:
        error = missing_extra(exc, needed_for)
        if error is None or error is exc:
            raise
        raise error from None


def check_extras(*modules: str) -> None:
    """Import `modules` (a command's, one for each extra it needs, in that order) before its heavy work: where several
    extras are missing, one `MissingExtraError` names each missing package and the one pip command for them all (a
    user lacking both had to run the command, and pip, twice); one missing is `missing_extra`'s error."""
    import importlib

    missing: list[MissingExtraError] = []
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            error = missing_extra(exc)
            if error is None:
                raise
            missing.append(error)
    if len(missing) == 1:
        raise missing[0] from None
    if missing:
        packages = [_package(error.name) for error in missing]
        extras = list(dict.fromkeys(extra_of(error.name) for error in missing))
        said = " and ".join(f"'{extra}'" for extra in extras)
        raise MissingExtraError(f"{' and '.join(packages)} are not installed; they come with the {said} extra"
                                f"{'s' if len(extras) > 1 else ''}: {install_command(','.join(extras))}",
                                name=missing[0].name)
