"""The docs name real things: commands and flags parse, Python names resolve and take the arguments the snippets
pass, repository paths exist, help texts quote the defaults the code has. Nothing is run, so this stays fast."""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from worldpolicy.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# `worldpolicy SUBCOMMAND` where a shell would run it: at a line's start, after a space or a path (.venv/bin/)
INVOCATION = re.compile(r"(?:^|(?<=[\s/]))worldpolicy\s+(?=[a-z])")
FLAG = re.compile(r"(?<![\w-])--[a-z][\w-]*")
SHELL_END = {"&&", "||", "|", ";"}
GYM_ID = re.compile(r"worldpolicy/[A-Z]\w*-v\d+")  # a gymnasium id, not a path: tests/sim/test_gym.py checks those


def _doc_id(doc: Path) -> str:
    return str(doc.relative_to(ROOT))


def _shell_lines(text: str) -> Iterator[str]:
    """Each command line of the ```bash blocks, continuations joined."""
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, re.DOTALL):
        yield from block.replace("\\\n", " ").splitlines()


def _inline_spans(text: str) -> Iterator[str]:
    """Inline `code` of the prose (fenced blocks removed)."""
    yield from re.findall(r"`([^`\n]*(?:\n[^`\n]*)?)`", re.sub(r"```.*?```", "", text, flags=re.DOTALL))


def _invocations(text: str) -> Iterator[str]:
    """What follows `worldpolicy` in every command line and inline span that calls it."""
    for chunk in (*_shell_lines(text), *_inline_spans(text)):
        for match in INVOCATION.finditer(chunk):
            yield chunk[match.end():]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _command(words: list[str]) -> tuple[str, argparse.ArgumentParser]:
    """The (sub)command the words name and its parser (`dataset from-sim` is two words)."""
    commands = _subparsers(build_parser())
    assert words and words[0] in commands, f"no subcommand {words[:1]}; there are {sorted(commands)}"
    name, parser = words[0], commands[words[0]]
    actions = _subparsers(parser)
    if actions and len(words) > 1 and words[1] in actions:
        name, parser = f"{name} {words[1]}", actions[words[1]]
    return name, parser


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_every_documented_flag_belongs_to_its_subcommand(doc):
    problems = []
    for call in _invocations(doc.read_text()):
        words = call.split()
        try:
            name, parser = _command(words)
        except AssertionError as exc:
            problems.append(f"worldpolicy {call.strip()!r}: {exc}")
            continue
        options = {option for action in parser._actions for option in action.option_strings}
        problems += [f"worldpolicy {call.strip()!r}: {flag} is not a flag of `worldpolicy {name}`"
                     for flag in FLAG.findall(call.split("#")[0]) if flag not in options]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_every_documented_command_line_parses(doc):
    """A command in a ```bash block is one a user copies: it must parse as written (placeholders included)."""
    problems = []
    for line in _shell_lines(doc.read_text()):
        match = INVOCATION.search(line)
        if match is None:
            continue
        argv = []
        for word in shlex.split(line[match.end():], comments=True):
            if word in SHELL_END:
                break
            argv.append(word)
        try:
            build_parser().parse_args(argv)
        except SystemExit:
            problems.append(f"worldpolicy {' '.join(argv)}")
    assert not problems, "these documented commands do not parse:\n" + "\n".join(problems)


# Modules that import lerobot, which imports here only with torchvision stood in for (tests/lerobot_import.py)
LEROBOT_MODULES = ("worldpolicy.data.lerobot_policy",)


def _resolve(dotted: str) -> Any:
    """The object a dotted name names: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for module in LEROBOT_MODULES:
        if dotted == module or dotted.startswith(module + "."):
            from lerobot_import import LEROBOT_NEEDS, import_lerobot

            import_lerobot(module, needs=LEROBOT_NEEDS)
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError as exc:
            if exc.name is None or not ".".join(parts[:i]).startswith(exc.name):
                raise  # a dependency of an existing module is missing: that is not the doc's fault, show it
            continue
        for part in parts[i:]:
            obj = getattr(obj, part)
        return obj
    raise ModuleNotFoundError(dotted)


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.DOTALL)


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_every_documented_python_name_exists(doc):
    text = doc.read_text()
    # not after a dot: a file name (a run folder's `.worldpolicy.lock`), not a Python one
    names = set(re.findall(r"(?<![\w.])worldpolicy(?:\.[A-Za-z_]\w*)+(?![\w/-])", text))
    for block in _python_blocks(text):
        for module, imported in re.findall(r"^from (worldpolicy[\w.]*) import ([\w, ]+)$", block, re.MULTILINE):
            names |= {f"{module}.{name.strip()}" for name in imported.split(",")}
    problems = []
    for name in sorted(names):
        try:
            _resolve(name)
        except (ImportError, AttributeError) as exc:
            problems.append(f"{name}: {exc}")
    assert not problems, "\n".join(problems)


def _callee(func: ast.expr, imported: dict[str, str]) -> str | None:
    """The dotted worldpolicy name a call's function is (`f` imported from worldpolicy, `worldpolicy.x.f`,
    `Cls.method`), or None for anything else (methods of objects the snippet made)."""
    parts = []
    while isinstance(func, ast.Attribute):
        parts.insert(0, func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        return None
    if func.id == "worldpolicy":
        return ".".join(["worldpolicy", *parts])
    return ".".join([imported[func.id], *parts]) if func.id in imported else None


@pytest.mark.parametrize("doc", [doc for doc in DOCS if _python_blocks(doc.read_text())], ids=_doc_id)
def test_documented_python_snippets_parse_and_call_with_accepted_arguments(doc):
    """Each snippet is valid Python, and every call of a worldpolicy function or class in it passes a number of
    positional arguments and keyword names that its signature accepts."""
    problems = []
    for block in _python_blocks(doc.read_text()):
        tree = ast.parse(block)  # a SyntaxError names the snippet's line
        imported = {alias.asname or alias.name: f"{node.module}.{alias.name}" for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("worldpolicy")
                    for alias in node.names}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or (name := _callee(node.func, imported)) is None:
                continue
            if any(isinstance(arg, ast.Starred) for arg in node.args) or any(k.arg is None for k in node.keywords):
                continue
            try:
                inspect.signature(_resolve(name)).bind_partial(*node.args, **{k.arg: k.value for k in node.keywords})
            except TypeError as exc:
                problems.append(f"{ast.unparse(node)}: {exc}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_every_documented_repository_path_exists(doc):
    paths = re.findall(r"(?<![\w/.-])((?:src|tests|benchmarks|scripts|docs|worldpolicy)/[\w/.-]*\w)", doc.read_text())
    missing = sorted({p for p in paths if not GYM_ID.fullmatch(p) and not (ROOT / p).exists()
                      and not (ROOT / "src" / p).exists()})
    assert not missing, f"{_doc_id(doc)} names paths that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_every_documented_gymnasium_make_of_our_ids_says_the_import_that_registers_them(doc):
    """`gymnasium.make("worldpolicy/...")` fails unless `worldpolicy.sim` was imported first (it registers the ids):
    each paragraph or code block that makes one imports it or says so."""
    blocks, lines, fenced = [], [], False  # paragraphs of the prose and whole ``` blocks
    for line in [*doc.read_text().splitlines(), ""]:
        fenced ^= line.startswith("```")
        if line.strip() or fenced:
            lines.append(line)
        else:
            blocks.append("\n".join(lines))
            lines = []
    lacking = [block.strip()[:80] for block in blocks if re.search(r"\bgym(?:nasium)?\.make\([\"']worldpolicy/", block)
               and not re.search(r"(?:import|from) worldpolicy\.sim\b", block)]
    assert not lacking, \
        f"{_doc_id(doc)}: gymnasium.make of a worldpolicy id without `import worldpolicy.sim`: {lacking}"


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_documented_benchmark_flags_exist(doc):
    problems = []
    for chunk in (*_shell_lines(doc.read_text()), *_inline_spans(doc.read_text())):
        for script, args in re.findall(r"python (benchmarks/\w+\.py)([^`\n]*)", chunk):
            source = (ROOT / script).read_text()
            problems += [f"{script} {flag}" for flag in FLAG.findall(args.split("#")[0]) if f'"{flag}"' not in source]
    assert not problems, "flags these benchmark scripts do not define:\n" + "\n".join(problems)


def test_help_texts_quote_the_defaults_the_code_has():
    """`(default: 8)` in a flag's help is read by users as the truth: it must be the argparse default."""
    problems = []
    commands = _subparsers(build_parser())
    parsers = [(name, parser) for name, parser in commands.items()]
    parsers += [(f"{name} {sub}", p) for name, parser in commands.items() for sub, p in _subparsers(parser).items()]
    for name, parser in parsers:
        for action in parser._actions:
            match = re.search(r"\bdefault:?\s+([^\s,;)]+)", action.help or "")
            if match is None or action.default is None:
                continue
            try:
                quoted = float(match.group(1))
            except ValueError:
                continue  # words: "the checkpoint's own", "cuda if available", ...
            if not isinstance(action.default, (int, float)) or float(action.default) != quoted:
                problems.append(f"worldpolicy {name} {action.option_strings[-1]}: help says default "
                                f"{match.group(1)}, the code's is {action.default!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_relative_links_and_images_resolve(doc):
    """`![..](images/x.png)`, `[..](data.md#...)`: relative to the doc, as a browser or GitHub resolves them."""
    targets = re.findall(r"\]\(([^)\s]+)\)", doc.read_text())
    missing = sorted({t for t in targets if not re.match(r"[a-z]+:|#", t)
                      and not (doc.parent / t.split("#")[0]).exists()})
    assert not missing, f"{_doc_id(doc)} links to files that do not exist: {missing}"


def test_architecture_names_every_module_and_only_modules_that_exist():
    """docs/architecture.md is where a newcomer looks for a module: each one is named there (`name.py`, or
    `name.attribute`), and each `name.py` it names exists."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    package = ROOT / "src" / "worldpolicy"
    modules = {p for p in package.rglob("*.py") if p.name != "__init__.py"}
    unnamed = sorted(str(p.relative_to(package)) for p in modules
                     if not re.search(rf"\b{p.stem}\.(py\b|[A-Za-z_])", text))
    assert not unnamed, f"docs/architecture.md does not name these modules: {unnamed}"
    stems = {p.stem for p in package.rglob("*.py")}
    gone = sorted(name for name in set(re.findall(r"(?<![\w/.*-])([\w/]+\.py)\b", text))
                  if not ((package / name).is_file() or (ROOT / name).is_file() or name[:-3] in stems))
    assert not gone, f"docs/architecture.md names modules that do not exist: {gone}"


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_no_figure_cites_a_script_outside_the_repository(doc):
    """A figure sits beside the command that reproduces it; a script under /tmp is one no reader has."""
    scratch = sorted(set(re.findall(r"/tmp/[\w/.-]+\.(?:py|sh)\b", doc.read_text())))
    assert not scratch, f"{_doc_id(doc)} cites scripts outside the repository: {scratch}"


_RETURNS_PREDICTION = {"act", "imagine", "infer_actions"}  # Policy's (and RemotePolicy's) calls that return one


def _snippet_types(tree: ast.AST, imported: dict[str, str]) -> dict[str, Any]:
    """The class of each variable a snippet assigns from a worldpolicy call: `load_policy(...)` a Policy, a class
    call that class, a policy's `act`/`imagine`/`infer_actions` a Prediction (in the snippet's order)."""
    from worldpolicy.policy import Policy
    from worldpolicy.results import Prediction

    types: dict[str, Any] = {}
    for node in ast.walk(tree):
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, value = node.targets[0].id, node.value
        elif isinstance(node, ast.withitem) and isinstance(node.optional_vars, ast.Name):
            target, value = node.optional_vars.id, node.context_expr
        if target is None or not isinstance(value, ast.Call):
            continue
        func = value.func
        if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.attr in _RETURNS_PREDICTION
                and types.get(func.value.id) is not None and hasattr(types[func.value.id], func.attr)):
            types[target] = Prediction
        elif (name := _callee(func, imported)) is not None:
            obj = _resolve(name)
            types[target] = Policy if name.endswith(".load_policy") else obj if inspect.isclass(obj) else None
    return types


@pytest.mark.parametrize("doc", [doc for doc in DOCS if _python_blocks(doc.read_text())], ids=_doc_id)
def test_documented_methods_and_fields_of_snippet_objects_exist(doc):
    """`pred.save(...)`, `policy.imagine(...)`, `pred.units`: what a snippet uses of the objects it made (a policy
    from `load_policy`, a `RemotePolicy`, their results) exists, and its calls pass arguments the method accepts."""
    problems = []
    for block in _python_blocks(doc.read_text()):
        tree = ast.parse(block)
        imported = {alias.asname or alias.name: f"{node.module}.{alias.name}" for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("worldpolicy")
                    for alias in node.names}
        types = _snippet_types(tree, imported)
        calls = {id(n.func): n for n in ast.walk(tree) if isinstance(n, ast.Call)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and types.get(node.value.id) is not None):
                continue
            cls = types[node.value.id]
            fields = getattr(cls, "__dataclass_fields__", {})
            if id(node) not in calls:  # a field read: only a dataclass's are known without an instance
                if fields and node.attr not in fields and not hasattr(cls, node.attr):
                    problems.append(f"{ast.unparse(node)}: {cls.__name__} has no {node.attr!r}")
                continue
            if not hasattr(cls, node.attr):
                problems.append(f"{ast.unparse(node)}(...): {cls.__name__} has no method {node.attr!r}")
                continue
            call = calls[id(node)]
            if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
                continue
            try:
                inspect.signature(getattr(cls, node.attr)).bind_partial(None, *call.args,
                                                                        **{k.arg: k.value for k in call.keywords})
            except TypeError as exc:
                problems.append(f"{ast.unparse(call)}: {exc}")
    assert not problems, "\n".join(problems)


def _module_constant(path: Path, name: str) -> Any:
    """A module's top-level constant read from its source (`4 * 1024 * 1024` included), without importing it: the
    MCP server's module needs the agents extra."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == [name]:
            return eval(compile(ast.Expression(node.value), str(path), "eval"), {"__builtins__": {}})
    raise AssertionError(f"{path} defines no {name}")


def test_the_agents_doc_states_the_limits_the_code_has():
    """docs/agents.md quotes the tools' limits and defaults (the most episodes, chunks, runs, plots a call takes...),
    each a constant in the code: every number it states is the constant's value, so changing one fails here until the
    page says the new one."""
    from worldpolicy.agents import toolbox as tb
    from worldpolicy.data.show import DEFAULT_EPISODES
    from worldpolicy.processing.observations import MIN_SIDE
    from worldpolicy.processing.prompts import MAX_PROMPT_CHARS
    from worldpolicy.processing.trajectory import LONG_ROLLOUT_CHUNKS
    from worldpolicy.sim.perturb import PERTURBATIONS
    from worldpolicy.sim.tasks import EVAL_SEED

    mib = 1024 * 1024
    body = _module_constant(ROOT / "src" / "worldpolicy" / "agents" / "mcp_server.py", "MAX_REQUEST_BODY_BYTES")
    mcp = {a.dest: a.default for a in _subparsers(build_parser())["mcp"]._actions}
    sim_episodes = inspect.signature(tb.Toolbox.evaluate_sim).parameters["episodes"].default
    stated = [
        f"`--max-loaded N` (cache bound, default {mcp['max_loaded']})", f"`--host` (default {mcp['host']})",
        f"`--port` (default {mcp['port']})",
        f"`episodes` ≤ {tb.MAX_SIM_EPISODES}", f"seed + i; default {EVAL_SEED}, `worldpolicy sim`'s",
        f"`max_steps` ≤ {tb.MAX_SIM_STEPS}", f"`chunks` (1-{tb.MAX_DREAM_CHUNKS})",
        "`worldpolicy sim --perturb` takes them, comma-separated: " + ", ".join(f"`{k}`" for k in PERTURBATIONS),
        f"At most {tb.MAX_DREAM_CHUNKS} chunks a call", f"`episodes` [1 to {tb.MAX_SHOWN_EPISODES} indexes",
        f"default the first {DEFAULT_EPISODES}]", f"at most {tb.MAX_SHOWN_EPISODES} episodes a call",
        f"`task_texts` (the first {tb.MAX_LISTED_TASKS})", f"`runs`: 2 to {tb.MAX_COMPARED_RUNS} finished",
        f"the first {tb.MAX_LISTED_PROMPT_SEEDS}, lowest seed first",
        f"(up to {tb.MAX_INLINE_PLOTS}, {tb.MAX_INLINE_PLOT_BYTES / mib:g} MiB each)",
        f"at most {tb.MAX_OPEN_LOOP_CHUNKS} chunks", f"before each batch of {tb.OPEN_LOOP_BATCH_SIZE}",
        f"the windows running {tb.CLIP_BATCH_SIZE} to a batched forward",
        f"a rollout of more than {LONG_ROLLOUT_CHUNKS} is warned of", f"under {MIN_SIDE} pixels a side",
        f"caps request bodies at {body / mib:g} MiB", f"prompts are capped at {MAX_PROMPT_CHARS} characters",
        f"`episodes` is `evaluate_sim`'s count (default {sim_episodes})", f"at the held-out {EVAL_SEED} as",
    ]
    text = " ".join((ROOT / "docs" / "agents.md").read_text().split())  # a phrase may wrap
    missing = [phrase for phrase in stated if phrase not in text]
    assert not missing, "docs/agents.md does not say these as the code has them:\n" + "\n".join(missing)


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_no_merge_conflict_markers(doc):
    """A conflict resolved by hand in a long table row can leave git's markers behind, which read as prose."""
    marked = [n for n, line in enumerate(doc.read_text().splitlines(), 1)
              if re.fullmatch(r"(<{7}|>{7}) .*|={7}", line)]
    assert not marked, f"{_doc_id(doc)}: merge conflict markers at lines {marked}"
