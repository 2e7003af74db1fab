"""A user with only the core install (or one extra) who runs a command needing another extra gets one line naming
the extra and its pip command, not a `No module named 'mujoco'` traceback. Every extra is installed here, so the
tests hide modules (`sys.modules[name] = None` makes `import name` fail) in a fresh interpreter."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from worldpolicy.extras import MissingExtraError, extra_imports, extra_of, missing_extra

ROOT = Path(__file__).resolve().parents[2]
# What each extra installs, as imported: hidden together, they make this interpreter a core-only install.
EXTRA_MODULES = {
    "sim": ("mujoco", "mink", "qpsolvers", "gymnasium"),
    "serve": ("websockets", "msgpack", "prometheus_client", "uvloop"),
    "train": ("pyarrow", "peft", "h5py"),
    "agents": ("mcp",),
    "strands": ("strands",),
    "ray": ("ray",),
    "track": ("tensorboard", "wandb"),
    "rerun": ("rerun",),
    "teleop": ("hid", "pygame"),
}

# Modules the code imports that no requirement of pyproject.toml names, each with the requirement that brings it: the
# MCP SDK's own types and its anyio and pydantic, the FastAPI that ray[serve] serves through. Each is imported only
# by a module of the extra that requires its bringer (`test_every_third_party_import_is_a_declared_requirement`).
BROUGHT_BY = {"anyio": "mcp", "mcp_types": "mcp", "pydantic": "mcp", "fastapi": "ray"}
# Imported, and declared by no extra, because pip cannot install it beside the core: lerobot 0.4.4 (the last for
# Python 3.11) pins transformers < 5 and torch < 2.11 (`data/lerobot_policy.py`; docs/serving.md says how it goes in)
UNDECLARABLE = {"lerobot"}


def _message(module: str, extra: str) -> str:
    return f"{module} is not installed; it comes with the '{extra}' extra: pip install 'worldpolicy[{extra}]'"


def _line(command: str, module: str, extra: str) -> str:
    return f"worldpolicy {command}: error: {_message(module, extra)}\n"


_both = ("pyarrow and gymnasium are not installed; they come with the 'train' and 'sim' extras: "
         "pip install 'worldpolicy[train,sim]'")


def _run_hidden(hidden: list[str], code: str) -> dict:
    """`code` (which sets `out`, a JSON-able dict) run in a fresh interpreter where the `hidden` modules are missing."""
    script = f"import json, sys\nfor name in {hidden!r}:\n    sys.modules[name] = None\n{code}\nprint(json.dumps(out))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("module", "extra"), [
    ("mujoco", "sim"), ("mujoco.viewer", "sim"), ("qpsolvers", "sim"), ("gymnasium", "sim"),
    ("websockets", "serve"), ("prometheus_client", "serve"), ("pyarrow", "train"), ("peft", "train"), ("h5py", "train"),
    ("mcp", "agents"), ("strands", "strands"), ("ray.serve", "ray"), ("wandb", "track"), ("tensorboard", "track"),
    ("rerun", "rerun"), ("rerun.chunk", "rerun"), ("hid", "teleop"), ("pygame", "teleop"),
    ("numpy", None), ("torch", None), ("worldpolicy", None), ("no_such_module", None),
])
def test_extra_of_reads_the_installed_metadata(module, extra):
    assert extra_of(module) == extra


def test_every_hidden_module_is_in_the_table():
    assert {m: extra_of(m) for ms in EXTRA_MODULES.values() for m in ms} == {
        m: extra for extra, ms in EXTRA_MODULES.items() for m in ms}


def test_extra_imports_turns_a_missing_extra_module_into_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingExtraError) as caught, extra_imports("reading a dataset"):
        import pyarrow  # noqa: F401
    assert str(caught.value) == f"reading a dataset: {_message('pyarrow', 'train')}"
    assert isinstance(caught.value, ModuleNotFoundError) and caught.value.name == "pyarrow"
    with pytest.raises(ModuleNotFoundError) as other, extra_imports():  # not an extra's: shown as it is
        import no_such_module_anywhere  # noqa: F401
    assert not isinstance(other.value, MissingExtraError) and missing_extra(other.value) is None


def test_check_extras_names_every_missing_extra_in_one_command(monkeypatch):
    from worldpolicy.extras import check_extras

    for name in ("pyarrow", "mujoco", "gymnasium"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingExtraError) as caught:
        check_extras("pyarrow", "numpy", "mujoco", "gymnasium")
    assert str(caught.value) == ("pyarrow and mujoco and gymnasium are not installed; they come with the 'train' and "
                                 "'sim' extras: pip install 'worldpolicy[train,sim]'")
    with pytest.raises(MissingExtraError) as one:
        check_extras("numpy", "gymnasium")
    assert str(one.value) == _message("gymnasium", "sim")
    with pytest.raises(ModuleNotFoundError) as other:  # not an extra's: shown as it is
        check_extras("gymnasium", "no_such_module_anywhere")
    assert not isinstance(other.value, MissingExtraError)


def test_core_only_commands_and_imports_name_the_extra(tmp_path):
    """The commands and documented imports of README/docs, as a `pip install worldpolicy` user runs them."""
    out = _run_hidden([m for ms in EXTRA_MODULES.values() for m in ms], f"""
import contextlib, importlib, io
from worldpolicy.cli import main
tmp = {str(tmp_path)!r}
out = {{}}
for argv in (["embodiments"], ["serve", "--checkpoint", "shipped"], ["sim", "--policy", "scripted", "--out", tmp + "/sim"],
             ["demo", "--out", tmp + "/demo"], ["dataset", "info", tmp], ["dataset", "from-sim", tmp + "/ds", "--episodes", "1"],
             ["train", "reach-from-scratch", "--out", tmp + "/train"], ["mcp"]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    out[" ".join(argv[:2])] = [code, err.getvalue()]
out["heavy"] = sorted(name for name in ("torch", "diffusers") if name in sys.modules)  # before any message
for statement in ("from worldpolicy.serving import RemotePolicy", "from worldpolicy.data import LeRobotDataset",
                  "import worldpolicy.robot.kinematics", "from worldpolicy.serving.ray_serve import build_app",
                  "from worldpolicy.agents.strands_tool import worldpolicy_tool", "import worldpolicy.sim"):
    try:
        exec(statement)
        out[statement] = "ok"
    except ImportError as exc:
        out[statement] = [type(exc).__name__, str(exc)]
""")
    assert out.pop("embodiments") == [0, ""]  # the core's commands work
    assert out.pop("heavy") == []  # each names its extra before torch and diffusers load (`train`: seconds)
    assert out.pop("import worldpolicy.sim") == "ok"  # `sim --help` needs it
    lines = {
        "serve --checkpoint": _line("serve", "msgpack", "serve"),
        "sim --policy": _line("sim", "gymnasium", "sim"),
        "demo --out": _line("demo", "mink", "sim"),  # its start pose (mink FK) before the env
        "dataset info": _line("dataset info", "pyarrow", "train"),
        # two extras missing: both named, with the one pip command (a user with neither had to run it twice)
        "dataset from-sim": f"worldpolicy dataset from-sim: error: {_both}\n",
        "train reach-from-scratch": f"worldpolicy train: error: {_both}\n",
        "mcp": _line("mcp", "mcp", "agents"),
    }
    assert {k: v for k, v in out.items() if k in lines} == {k: [2, v] for k, v in lines.items()}
    imports = {k: v for k, v in out.items() if k not in lines}
    assert imports == {
        "from worldpolicy.serving import RemotePolicy": ["MissingExtraError", _message("websockets", "serve")],
        "from worldpolicy.data import LeRobotDataset": ["MissingExtraError", _message("pyarrow", "train")],
        "import worldpolicy.robot.kinematics": ["MissingExtraError", _message("mink", "sim")],
        "from worldpolicy.serving.ray_serve import build_app": ["MissingExtraError", _message("ray", "ray")],
        "from worldpolicy.agents.strands_tool import worldpolicy_tool": ["MissingExtraError",
                                                                         _message("strands", "strands")],
    }


def test_without_sim_fails_before_any_work():
    """The sim extra alone missing (mujoco hidden): gymnasium's module form of make, and a recording whose episodes
    are made in worker processes (the import used to happen only there: a broken process pool) name the extra when
    called, before any episode."""
    out = _run_hidden(["mujoco"], """
out = {}
import gymnasium
from worldpolicy.data.from_sim import expert_episodes
for name, call in (("make", lambda: gymnasium.make("worldpolicy.sim:worldpolicy/Reach-v0", image_size=None)),
                   ("expert_episodes", lambda: expert_episodes("reach", 1, workers=2))):
    try:
        call()
        out[name] = "no error"
    except ImportError as exc:
        out[name] = [type(exc).__name__, str(exc)]
""")
    assert out == {name: ["MissingExtraError", _message("mujoco", "sim")] for name in ("make", "expert_episodes")}


def test_a_recipe_without_sim_names_it_before_training_loads(tmp_path):
    """`train reach-from-scratch` records its dataset in the simulator: with the train extra but not sim, the sim
    extra is named before diffusers and the trainer load (seconds), and no --out is left behind."""
    out = _run_hidden(list(EXTRA_MODULES["sim"]), f"""
import contextlib, io
from worldpolicy.cli import main
err = io.StringIO()
with contextlib.redirect_stderr(err):
    code = main(["train", "reach-from-scratch", "--out", {str(tmp_path / "r")!r}, "--no-progress"])
out = {{"code": code, "err": err.getvalue(), "diffusers": "diffusers" in sys.modules}}
""")
    assert out == {"code": 2, "err": _line("train", "gymnasium", "sim"), "diffusers": False}
    assert not (tmp_path / "r").exists()


def test_an_adapter_checkpoint_without_peft_fails_before_its_base_loads(tmp_path, monkeypatch):
    """Applying LoRA adapters needs peft (the train extra), imported only after the base had loaded."""
    from worldpolicy.engine.sources import check_checkpoint_source
    from worldpolicy.policy import Policy

    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "model_index.json").write_text("{}")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "base_model.json").write_text(json.dumps({"base_model_name_or_path": "../base", "weight_samples": {}}))
    for name in ("adapter.safetensors", "trained.safetensors"):
        (adapter / name).write_bytes(b"")
    check_checkpoint_source(adapter)
    monkeypatch.setitem(sys.modules, "peft", None)
    loads = []
    monkeypatch.setattr("worldpolicy.engine.loading.load_components", lambda *a, **k: loads.append(a))
    with pytest.raises(MissingExtraError) as caught:
        Policy.from_pretrained(str(adapter), device="cpu")
    assert str(caught.value) == f"checkpoint={str(adapter)!r} is a LoRA adapter checkpoint: {_message('peft', 'train')}"
    assert loads == []


def test_module_level_imports_of_an_extra_go_through_extra_imports():
    """A module importing an extra's module at its top does it inside `with extra_imports()`: importing it directly
    (`from worldpolicy.sim.env import TabletopEnv`, gymnasium's entry point) names the extra too."""
    bare = []
    for path in sorted((ROOT / "src" / "worldpolicy").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and not node.level else [])
            bare += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if extra_of(n)]
    assert bare == []


def _distribution(requirement: str) -> str:
    """The normalised distribution name a requirement line (`ray[serve]>=2.40; extra == "ray"`) names."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\s\[<>=!~(;]", requirement.strip(), maxsplit=1)[0]).lower()


def _requirement_groups() -> dict[str, list[str]]:
    """pyproject.toml's requirements: "core" and each extra's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {"core": project["dependencies"], **project["optional-dependencies"]}


def _third_party_imports() -> dict[str, list[tuple[str, set[str]]]]:
    """Each third-party top-level module the code imports, anywhere in a file → (where, that file's such modules) for
    each file importing it."""
    imported: dict[str, list[tuple[str, set[str]]]] = {}
    for path in sorted((ROOT / "src" / "worldpolicy").rglob("*.py")):
        found: dict[str, str] = {}  # this file's third-party top-level modules, each where it is first imported
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and not node.level else [])
            for name in names:
                top = name.partition(".")[0]
                if top not in sys.stdlib_module_names and top != "worldpolicy":
                    found.setdefault(top, f"{path.relative_to(ROOT)}:{node.lineno}")
        for top, where in found.items():
            imported.setdefault(top, []).append((where, set(found)))
    return imported


def test_every_imported_module_of_an_extra_names_its_extra():
    """A module the code imports from a distribution only an extra requires (as installed here:
    `packages_distributions`) is one `extra_of` names that extra for, as it must where the module is missing: one
    imported under another name than its distribution (`hid` of `hidapi`) is in `extras.MODULE_DISTRIBUTIONS`."""
    groups = _requirement_groups()
    core = {_distribution(r) for r in groups.pop("core")}
    providers = metadata.packages_distributions()
    wrong = {}
    for top in _third_party_imports():
        distributions = {_distribution(d) for d in providers.get(top, [])} - core
        extras = {extra for extra, group in groups.items() if distributions & {_distribution(r) for r in group}}
        if extras and extra_of(top) not in extras:
            wrong[top] = (extra_of(top), sorted(extras))
    assert wrong == {}


def test_every_third_party_import_is_a_declared_requirement():
    """A package the code imports comes from a requirement of the core or of an extra, or is one that such a
    requirement brings (`BROUGHT_BY`) imported only in files that import its bringer too (that extra's modules, not a
    core one that would then need the extra): one installed here only by the dev set-up or by chance fails for users.
    pyproject.toml is read, not the installed metadata, which lags an edit until the next `pip install -e`; the dev
    extra is this checkout's tooling (pytest, moviepy), which no user's extra installs, so it declares nothing here."""
    groups = _requirement_groups()
    declared = {_distribution(r) for name, group in groups.items() if name != "dev" for r in group}
    providers = metadata.packages_distributions()
    imported = _third_party_imports()
    assert "mujoco" in imported and "torch" in imported  # the walk sees imports inside functions and `with` blocks

    def distributions(module: str) -> set[str]:
        return {_distribution(d) for d in providers.get(module, [])}

    undeclared = {}
    for top, files in imported.items():
        if top in UNDECLARABLE:
            continue
        bringer = BROUGHT_BY.get(top)
        brought = {_distribution(r) for r in metadata.requires(bringer) or []} if bringer in declared else set()
        # the files importing it without its bringer: the first is named, not merely the first to import it
        alone = [where for where, tops in files if not any(bringer in distributions(module) for module in tops)]
        if not distributions(top) & declared and not (distributions(top) & brought and not alone):
            undeclared[top] = (alone or [files[0][0]])[0]
    assert undeclared == {}
    assert set(BROUGHT_BY) | UNDECLARABLE <= set(imported)  # no stale entry


def _source(module: str) -> Path | None:
    base = ROOT.joinpath("src", *module.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def _import_time(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports a module runs when imported: its top level and the `with`/`try`/`if` blocks there, not functions,
    not `if TYPE_CHECKING`."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            yield from _import_time(node.body + node.orelse)
        elif isinstance(node, ast.With):
            yield from _import_time(node.body)
        elif isinstance(node, ast.Try):
            yield from _import_time(node.body + node.orelse + [s for h in node.handlers for s in h.body])


def _extras_at_import(module: str, seen: set[str]) -> set[str]:
    """The extras whose packages importing `module` imports, through the worldpolicy modules it imports."""
    path = _source(module)
    if module in seen or path is None:
        return set()
    seen.add(module)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    extras = set()
    for node in _import_time(ast.parse(path.read_text()).body):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            names = [base, *(f"{base}.{a.name}" for a in node.names)]  # `from . import policy` imports a module
        for name in names:
            if name.partition(".")[0] == "worldpolicy":
                extras |= _extras_at_import(name, seen)
            elif extra := extra_of(name):
                extras.add(extra)
    return extras


def test_a_module_needing_several_extras_comes_with_one_of_them():
    """A module that imports more than one extra's packages (Ray Serve replicas run the serve extra's server) is
    installed by one extra that includes the others (`ray` includes `serve`, as `strands` includes `agents`): the
    one pip command a missing module names is then enough."""
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]

    def closure(extra: str) -> set[str]:
        named = [m.group(1) for r in table[extra] if (m := re.fullmatch(r"worldpolicy\[([^]]+)]", r.strip()))]
        return {extra}.union(*(closure(e.strip()) for group in named for e in group.split(",")))

    uncovered, several = {}, []
    for path in sorted((ROOT / "src" / "worldpolicy").rglob("*.py")):
        parts = path.relative_to(ROOT / "src").with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        needed = _extras_at_import(module, set())
        if len(needed) > 1:
            several.append(module)
            if not any(needed <= closure(e) for e in table if e != "all"):
                uncovered[module] = sorted(needed)
    assert "worldpolicy.serving.ray_serve" in several  # the walk follows imports across worldpolicy's modules
    assert uncovered == {}


def _git(root: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "HOME": str(root), "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def test_a_checkout_names_its_commit_and_whether_it_was_changed(tmp_path):
    """`__version__` names no code: a source checkout's commit is read from .git (loose ref, packed-refs, a
    worktree's .git file, a detached HEAD), `-dirty` once a tracked file changes; a folder with no .git: None."""
    from worldpolicy.extras import checkout_commit

    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    (repo / "src" / "a.py").write_text("x = 1\n")
    (repo / "link").symlink_to("src/a.py")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    head = _git(repo, "rev-parse", "HEAD")
    assert checkout_commit(repo) == head
    _git(repo, "pack-refs", "--all")  # the branch only in packed-refs
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert checkout_commit(repo) == head
    (repo / "src" / "a.py").write_text("x = 1\n")  # rewritten as it was: its time differs, its content does not
    assert checkout_commit(repo) == head
    (repo / "src" / "a.py").write_text("x = 2\n")
    assert checkout_commit(repo) == head + "-dirty"
    (repo / "src" / "a.py").unlink()
    assert checkout_commit(repo) == head + "-dirty"
    _git(repo, "checkout", "-q", "src/a.py")
    assert checkout_commit(repo) == head
    _git(repo, "worktree", "add", "-q", "--detach", str(tmp_path / "wt"))
    assert checkout_commit(tmp_path / "wt") == head
    (tmp_path / "wt" / "src" / "a.py").write_text("y = 3\n")
    assert checkout_commit(tmp_path / "wt") == head + "-dirty"
    assert checkout_commit(tmp_path / "wt" / "src") is None
    index = repo / ".git" / "index"
    index.write_bytes(index.read_bytes()[:50])  # cut short: not read, not guessed
    assert checkout_commit(repo) is None


def test_software_versions_name_the_commit_of_a_source_checkout_only(monkeypatch, tmp_path):
    """Run from src/worldpolicy of a checkout the commit is recorded; installed (site-packages) nothing is added."""
    from worldpolicy import extras

    monkeypatch.setattr(extras, "checkout_commit", lambda root: f"commit of {root}")
    monkeypatch.setattr(extras, "__file__", str(tmp_path / "repo" / "src" / "worldpolicy" / "extras.py"))
    assert extras.software_versions()["worldpolicy_commit"] == f"commit of {tmp_path / 'repo'}"
    monkeypatch.setattr(extras, "__file__", str(tmp_path / "site-packages" / "worldpolicy" / "extras.py"))
    assert "worldpolicy_commit" not in extras.software_versions()
