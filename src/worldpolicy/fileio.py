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


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def share_like_mkdir(path: str | Path) -> Path:
    """Give a folder made by `tempfile.mkdtemp` (always 0700) the mode `mkdir` would, under the process umask: a
    dataset or checkpoint staged privately and renamed into place must end up readable like any other output."""
    os.chmod(path, 0o777 & ~_umask())
    return Path(path)


def share_tree(root: str | Path) -> Path:
    """`share_like_mkdir` for a staged folder and everything in it (files get `open`'s mode: some writers, e.g.
    safetensors, create theirs private)."""
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
