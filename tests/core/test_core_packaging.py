"""`pip install worldpolicy` must carry every data file the code reads (registry, shipped model, robot assets,
recipes): a file left out of `package-data` works in the editable checkout and fails only for users. And nothing
else: bytecode a checkout that has run leaves beside the data (`models/__pycache__`) must not ship. The sdist is the
repository README.md walks (its docs, setup script, tests, benchmarks), so the same goes for MANIFEST.in."""

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import worldpolicy
from worldpolicy.cli import main

ROOT = Path(__file__).resolve().parents[2]

# Both builds compare against what git tracks; an unpacked sdist (which carries these tests) has no git to ask
needs_git = pytest.mark.skipif(not (ROOT / ".git").exists(), reason="compares the build with `git ls-files`")


def _tracked_copy(source: Path, *pathspecs: str) -> list[str]:
    """Copy the tracked files under `pathspecs` (all of them when none) to `source`, returning their names: a stale
    build/ folder or egg-info in the checkout would hide a gap the build leaves."""
    tracked = subprocess.run(["git", "ls-files", "-z", *pathspecs], cwd=ROOT, capture_output=True, check=True)
    names = tracked.stdout.decode().split("\0")[:-1]
    for name in names:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    return names


@needs_git
def test_the_wheel_ships_every_package_file(tmp_path):
    source = tmp_path / "source"
    tracked = _tracked_copy(source, "src", "pyproject.toml", "README.md", "LICENSE")
    wanted = {Path(p).relative_to("src").as_posix() for p in tracked if p.startswith("src/")}
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


@needs_git
def test_the_sdist_carries_the_repository_the_readme_walks(tmp_path):
    source = tmp_path / "source"
    tracked = _tracked_copy(source)
    stale = source / "tests" / "core" / "__pycache__" / "test_core_packaging.cpython-311.pyc"
    stale.parent.mkdir()
    stale.write_bytes(b"")
    build = subprocess.run(
        [sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(tmp_path)!r})"],
        cwd=source, capture_output=True, text=True, timeout=300, check=False,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (sdist,) = tmp_path.glob("worldpolicy-*.tar.gz")
    with tarfile.open(sdist) as archive:
        shipped = {m.name.split("/", 1)[1] for m in archive.getmembers() if m.isfile()}
    for named in ("docs/viz.md", "docs/images/viz_report.png", "scripts/setup.sh", ".ci/extra-test-installs.sh",
                  "benchmarks/README.md", "examples/robot_client.py",
                  "tests/conftest.py"):  # what README.md and setup.sh point to
        assert named in shipped
    assert sorted(set(tracked) - shipped) == [".gitignore"]  # a git file, meaningless outside a clone
    assert [name for name in shipped if name.endswith(".pyc")] == []


def test_version_option_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"worldpolicy {worldpolicy.__version__}\n"
