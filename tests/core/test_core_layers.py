"""The layer order of docs/architecture.md, checked: no module of worldpolicy imports a layer above its own.

Every import counts, at a module's top, inside a function (the lazy imports that keep `import worldpolicy` light) and
under `TYPE_CHECKING`: a lazy upward import is still a lower layer depending on a higher one, only found later.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "worldpolicy"

# Lowest first; a module may import its own layer and those before it. A package's `commands.py` (its CLI
# subcommands) belongs to the `cli` layer, with `cli.py`, `commands.py` and `__main__.py`.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "extras", "fileio", "hub", "logcapture", "models"),  # none imports a higher layer (models: the
    # shipped checkpoints' folders and names, which loading resolves and an embodiment lookup points to; hub: what a
    # hub id looks like, for loading's checkpoints and data's datasets, and `push`, which reads fileio's folder kinds)
    ("embodiments",),
    ("results",),
    ("processing",),
    ("engine",),
    ("testing",),  # tiny checkpoints, built with engine.loading's casts
    ("policy",),
    ("planning", "serving"),
    ("robot",),
    ("viz",),
    ("sim",),
    ("data",),
    ("train",),
    ("agents",),
    ("cli",),
)
LAYER = {name: rank for rank, names in enumerate(LAYERS) for name in names}

# (importing module, imported module) → why the upward import stays. Keep this short: each entry is a reason not to
# move something down.
ALLOWED = {
    ("worldpolicy.results", "worldpolicy.viz.run"):
        "Prediction.save is the documented shortcut to viz.run.write_run (lazy: `import worldpolicy` stays light)",
    ("worldpolicy.results", "worldpolicy.processing.video"):
        "a notebook's VideoPlayer encodes its clip with the one mp4 writer (lazy, asked for: `video_player`)",
    ("worldpolicy.policy", "worldpolicy.train.config"):
        "an older run's objectives table (before trainer_state.json recorded the mix) read as train's config defines it",
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    line: int
    target: str  # the imported module (or, for `from m import name`, `m.name`: a submodule when name is one)


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, tree: ast.AST | None = None) -> Iterator[Import]:
    """The worldpolicy imports in `path` (or in `tree`, a part of it), relative ones made absolute."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree or ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            names = [f"{source}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == "worldpolicy" or name.startswith("worldpolicy."):
                yield Import(module, node.lineno, name)


@cache
def _root_names() -> dict[str, str]:
    """Where each name `from worldpolicy import name` gives comes from: the module the package root imports it from
    (`Policy`: under TYPE_CHECKING, for its lazy `__getattr__`), or, for a function the root defines (`load_policy`),
    the highest module that function imports."""
    root = PACKAGE / "__init__.py"
    tree = ast.parse(root.read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and (inner := [imp.target for imp in _imports(root, node)]):
            found[node.name] = max(inner, key=lambda target: LAYER[_layer(target)])
    for imp in _imports(root, tree):
        found.setdefault(imp.target.rpartition(".")[2], imp.target)
    return found


def _layer(module: str) -> str:
    """The layer of a dotted worldpolicy module (or of a name inside one)."""
    parts = module.split(".")
    return "cli" if parts[1] in ("cli", "__main__") or "commands" in parts[1:3] else parts[1]


def _resolve(target: str, root_names: dict[str, str]) -> str | None:
    """The module `target` is in; None for the package root's own `__version__`, which every layer may read."""
    parts = target.split(".")
    if len(parts) == 2 and not (PACKAGE / parts[1]).is_dir() and not (PACKAGE / f"{parts[1]}.py").is_file():
        if parts[1] == "__version__":
            return None
        if parts[1] not in root_names:
            raise AssertionError(f"`from worldpolicy import {parts[1]}`: the package root has no such name")
        return root_names[parts[1]]
    return target


def upward_imports(path: Path, tree: ast.AST | None = None) -> list[str]:
    """Each import of a higher layer in the module at `path` (its source parsed, or `tree`), as
    `module:line imports target (layer a → higher layer b)`."""
    if path == PACKAGE / "__init__.py":
        return []  # the package's face, which may export any layer; what it gives is judged where used (`_resolve`)
    found = []
    for imp in _imports(path, tree):
        target = _resolve(imp.target, _root_names())
        if target is None:
            continue
        here, there = _layer(imp.module), _layer(target)
        allowed = any((imp.module, module) in ALLOWED for module in (target, target.rpartition(".")[0]))
        if LAYER[there] > LAYER[here] and not allowed:
            found.append(f"{imp.module}:{imp.line} imports {target} (layer {here} → higher layer {there})")
    return found


def test_the_docs_state_this_order():
    """docs/architecture.md's "lowest first" line is this order, so that the page a newcomer reads is the one tested."""
    text = " ".join((SRC.parent / "docs" / "architecture.md").read_text().split())
    line = text.partition("lowest first: ")[2].partition(" → the CLI")[0]
    stated = tuple(tuple(name.strip(" `") for name in group.split(",")) for group in line.split("→"))
    assert stated == LAYERS[:-1]


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_package_has_a_layer():
    """A new package or top-level module needs its place in the order before this test can say what it may import."""
    names = {_layer(_module_name(path)) for path in _sources() if path != PACKAGE / "__init__.py"}
    assert sorted(names - set(LAYER)) == []
    assert sorted(set(LAYER) - names) == [], "a layer named here that no module is in"


def test_no_module_imports_a_higher_layer():
    found = [line for path in _sources() for line in upward_imports(path)]
    assert not found, "imports against docs/architecture.md's layer order:\n" + "\n".join(found)


def test_each_allowed_upward_import_is_still_made():
    """An exception whose import is gone is dropped, so that the list stays the few reasons there are."""
    made = set()
    for path in _sources():
        made.update((imp.module, imp.target.rpartition(".")[0]) for imp in _imports(path))
        made.update((imp.module, imp.target) for imp in _imports(path))
    assert sorted(set(ALLOWED) - made) == []


@pytest.mark.parametrize(("code", "message"), [
    ("from ..policy import Policy", "3 imports worldpolicy.policy.Policy (layer processing → higher layer policy)"),
    ("def f():\n    from worldpolicy.sim import env",  # a lazy import, as the lazy loading does
     "4 imports worldpolicy.sim.env (layer processing → higher layer sim)"),
    ("import worldpolicy.train.config", "3 imports worldpolicy.train.config (layer processing → higher layer train)"),
    ("from worldpolicy import load_policy",  # through the package root, to what it wraps
     "3 imports worldpolicy.policy.Policy (layer processing → higher layer policy)"),
    ("from .. import viz", "3 imports worldpolicy.viz (layer processing → higher layer viz)"),
    ("from ..sim.commands import add_parser",
     "3 imports worldpolicy.sim.commands.add_parser (layer processing → higher layer cli)"),
    ("from ..commands import add_parser", "3 imports worldpolicy.commands.add_parser (layer processing → higher layer cli)"),
])
def test_an_upward_import_is_named(code, message):
    """The check sees each form of import, and its message names the module, the line and what it imports."""
    found = upward_imports(PACKAGE / "processing" / "probe.py", ast.parse(f"import json\n\n{code}\n"))
    assert found == [f"worldpolicy.processing.probe:{message}"]
