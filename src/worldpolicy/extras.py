"""Optional extras: a module an extra installs, when missing, is reported as the extra to install and its pip command.

The module → extra table is read from the installed package's metadata (`importlib.metadata.requires`), which
pip writes from pyproject.toml, so it cannot drift from it. It is read only when an import has failed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

__all__ = ["MissingExtraError", "check_extras", "extra_imports", "extra_of", "install_command", "missing_extra",
           "package_license", "software_versions"]

_DIST = "worldpolicy"
_EXTRA = re.compile(r"""\bextra\s*==\s*["']([^"']+)["']""")


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
    packages' metadata, so nothing heavy is imported. A reader reproducing a result installs these."""
    import platform
    from importlib import metadata

    from . import __version__

    found: dict[str, str | None] = {"worldpolicy": __version__, "python": platform.python_version()}
    for name in RECORDED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def install_command(extra: str) -> str:
    return f"pip install '{_DIST}[{extra}]'"


@lru_cache(maxsize=1)
def _module_extras() -> dict[str, str]:
    """Distribution name (lower case, `_` for `-` and `.`) → the first extra that lists it; an extra that only names
    other extras (`all`, `strands`'s `worldpolicy[agents]`) adds nothing. Empty when worldpolicy is not installed."""
    from importlib import metadata

    try:
        requirements = metadata.requires(_DIST) or []
    except metadata.PackageNotFoundError:
        return {}
    table: dict[str, str] = {}
    for requirement in requirements:
        spec, _, marker = requirement.partition(";")
        found = _EXTRA.search(marker)
        name = re.split(r"[\s\[<>=!~(]", spec.strip(), maxsplit=1)[0].lower().replace("-", "_").replace(".", "_")
        if found and name != _DIST:
            table.setdefault(name, found.group(1))
    return table


def extra_of(module: str) -> str | None:
    """The extra that installs the top-level package of `module` (`mujoco.viewer` → `sim`), else None. A package
    imported under a shorter name than its distribution (`strands` from `strands-agents`) matches that prefix."""
    top = module.partition(".")[0].lower()
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
        top = name.partition(".")[0]  # the package to install (`ray`), not the submodule that failed (`ray.serve`)
        message = f"{top} is not installed; it comes with the '{extra}' extra: {install_command(extra)}"
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
        packages = [error.name.partition(".")[0] for error in missing]
        extras = list(dict.fromkeys(extra_of(error.name) for error in missing))
        said = " and ".join(f"'{extra}'" for extra in extras)
        raise MissingExtraError(f"{' and '.join(packages)} are not installed; they come with the {said} extra"
                                f"{'s' if len(extras) > 1 else ''}: {install_command(','.join(extras))}",
                                name=missing[0].name)
