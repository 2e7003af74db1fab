"""Atomic file writes: readers see the old file or the new one, never half of one; a failure leaves nothing behind."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temp path beside `path`; when the block succeeds it replaces `path`, otherwise it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def file_in_the_way(path: str | Path) -> Path | None:
    """`path` itself or the nearest parent that exists as a file: a folder can never be made there."""
    path = Path(path)
    return next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)


def output_folder(path: str | Path, flag: str, create: bool = True) -> Path:
    """A command's output folder, checked before any work starts and named by its flag in errors; with `create`,
    made now, so one that cannot be made fails here rather than after a model has loaded."""
    path = Path(path)
    blocking = file_in_the_way(path)
    if blocking == path:
        raise ValueError(f"{flag}: {str(path)!r} exists and is not a folder (give {flag} a folder path)")
    if blocking is not None:
        raise ValueError(f"{flag}: {str(path)!r} is under {str(blocking)!r}, which is a file")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"{flag}: cannot create {str(path)!r}: {exc.strerror or exc}") from None
    return path


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def share_tree(root: str | Path) -> Path:
    """Give a folder staged with `tempfile.mkdtemp` (always 0700), and everything in it, the modes `mkdir` and `open`
    would under the process umask (some writers, e.g. safetensors, make their files 0600): a dataset or checkpoint
    renamed into place ends up readable like any other output."""
    umask = _umask()
    for folder, _, files in os.walk(root):
        os.chmod(folder, 0o777 & ~umask)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o666 & ~umask)
    return Path(root)


def write_bytes_atomic(path: str | Path, data: str | bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)


def write_json_atomic(path: str | Path, doc: Any, indent: int = 1, ensure_ascii: bool = True) -> Path:
    return write_bytes_atomic(path, json.dumps(doc, indent=indent, ensure_ascii=ensure_ascii))
