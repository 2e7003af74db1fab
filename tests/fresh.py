"""A helper the test folders share (tests/ is on `sys.path` through its conftest.py): command lines run in a fresh
interpreter, for the tests that hold a mistake to be said before torch and diffusers import (seconds)."""

from __future__ import annotations

import json
import subprocess
import sys


def cli_in_fresh_process(commands: dict[str, list[str]]) -> tuple[dict[str, tuple[int, str]], list[str]]:
    """Each of `commands` (a name: its argv) run by `worldpolicy.cli.main` in one fresh interpreter: each one's exit
    code and stderr by name, and which of torch and diffusers were imported once all had run."""
    script = f"""
import contextlib, io, json, sys
from worldpolicy.cli import main
out = {{}}
for name, argv in {commands!r}.items():
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        out[name] = [main(argv), err.getvalue()]
heavy = sorted(name for name in ("torch", "diffusers") if name in sys.modules)
print(json.dumps([out, heavy]))"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out, heavy = json.loads(done.stdout.strip().splitlines()[-1])
    return {name: (code, err) for name, (code, err) in out.items()}, heavy
