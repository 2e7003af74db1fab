"""`pip install worldpolicy` must carry every data file the code reads (registry, shipped model, robot assets,
recipes): a file left out of `package-data` works in the editable checkout and fails only for users. And nothing
else: bytecode a checkout that has run leaves beside the data (`models/__pycache__`) must not ship."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import worldpolicy
from worldpolicy.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_ships_every_package_file(tmp_path):
    files = ["git", "ls-files", "src", "pyproject.toml", "README.md", "LICENSE"]
    tracked = subprocess.run(files, cwd=ROOT, capture_output=True, text=True, check=True)
    source = tmp_path / "source"  # the tracked files only: a stale build/ folder in the checkout would hide a gap
    for name in tracked.stdout.split():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    wanted = {Path(p).relative_to("src").as_posix() for p in tracked.stdout.split() if p.startswith("src/")}
    assert "worldpolicy/embodiments/registry.json" in wanted
    for data in ("models", "robot/assets/panda"):  # where the package-data globs take every file
        stale = source / "src" / "worldpolicy" / data / "__pycache__" / "__init__.cpython-311.pyc"
        stale.parent.mkdir(exist_ok=True)
        stale.write_bytes(b"")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), "."],
        cwd=source, capture_output=True, text=True, timeout=300, check=False,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("worldpolicy-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
        metadata = next(archive.read(n).decode() for n in shipped if n.endswith(".dist-info/METADATA"))
    package = {name for name in shipped if not name.startswith("worldpolicy-")}
    assert (sorted(wanted - package), sorted(package - wanted)) == ([], [])
    assert f"Version: {worldpolicy.__version__}" in metadata.splitlines()
    assert "License-Expression: Apache-2.0" in metadata
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in shipped)
    assert any(line.startswith("Provides-Extra: serve") for line in metadata.splitlines())


def test_version_option_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"worldpolicy {worldpolicy.__version__}\n"
