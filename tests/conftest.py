"""Suite-wide fixtures."""

from __future__ import annotations

import logging
import os

import pytest


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """`cli.main` binds the root log handler to the current stderr, which under pytest is a per-test capture closed
    when the test ends; a later log line (often from a server's thread) then printed "--- Logging error ---"."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def default_sigterm():
    """SIGTERM's and SIGUSR1's dispositions as a shell starts a command (default: terminate), for a test that sends
    one to this process: a handler an earlier test left behind (ray.init installs its own) would otherwise decide what
    it does, up to ending the test run."""
    import signal

    previous = {sig: signal.signal(sig, signal.SIG_DFL) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    yield
    for sig, handler in previous.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


@pytest.fixture(autouse=True)
def _default_sigint():
    """Ctrl-C delivered as a KeyboardInterrupt, as in a terminal, for every test (several press it): a suite started
    in the background (`nohup ... &`, a CI runner's job) inherits SIGINT ignored, and Python then installs no handler,
    so a test's Ctrl-C did nothing and "did not raise"; put back after each test, whatever the test set."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


@pytest.fixture(autouse=True)
def _restore_embodiment_registry():
    """Training registers the embodiment it trains in the process registry (as a user's script would want); a test
    that trains left it there, and a later test listing embodiments saw it (`panda_reach` as a registry entry),
    depending on the order tests ran in. Registrations a module's fixtures made before the test stay."""
    from worldpolicy import embodiments

    registered = dict(embodiments._USER)
    yield
    embodiments._USER.clear()
    embodiments._USER.update(registered)


@pytest.fixture
def synced_paths(monkeypatch) -> list[str]:
    """The paths `os.fsync` is called on, in order, from then on (their descriptors' targets)."""
    synced: list[str] = []
    real = os.fsync

    def record(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    return synced


@pytest.fixture
def keyed_server(monkeypatch):
    """A policy server holding API key `s3cret-key-123` that never loads a policy (the key is checked at the
    handshake, before readiness), and no WORLDPOLICY_API_KEY in the environment: a client must send the key itself."""
    import threading

    from worldpolicy.serving import PolicyServer, ServerConfig, ServerThread

    monkeypatch.delenv("WORLDPOLICY_API_KEY", raising=False)
    done = threading.Event()

    def load():
        done.wait(60)
        raise RuntimeError("not loaded in this test")

    config = ServerConfig(host="127.0.0.1", port=0, api_key="s3cret-key-123")
    server = ServerThread(PolicyServer(loader=load, config=config, warmup_requests=0)).start(wait_ready=False)
    yield server
    done.set()
    server.stop()


# Run in a process of its own `code` (which replaces a folder with `fileio.replace_folder`), SIGKILLed right after the
# `renames`-th rename counted from the one moving the earlier folder aside: 1, between the two; 2, after both.
_KILLED_REPLACEMENT = """
import os, signal, sys
from worldpolicy import fileio
real, renames = os.replace, []
def replace(src, dst):
    real(src, dst)
    if renames or os.path.basename(dst) == "previous":
        renames.append(dst)
        if len(renames) == int(sys.argv[1]):
            os.kill(os.getpid(), signal.SIGKILL)
fileio.os.replace = replace
"""


@pytest.fixture
def sent_requests(monkeypatch):
    """`sent_requests(policy)`: a list gathering every request `policy.act_batch` is given from then on (the policy
    still answers them)."""

    def spy_on(policy) -> list:
        sent, act_batch = [], policy.act_batch

        def spy(requests, progress=None):
            sent.extend(requests)
            return act_batch(requests, progress)

        monkeypatch.setattr(policy, "act_batch", spy)
        return sent

    return spy_on


@pytest.fixture
def killed_replacing():
    """`killed_replacing(code, renames, *args)`: run `code` (`sys.argv[2:]` are `args`) as a process SIGKILLed in
    `fileio.replace_folder` after `renames` renames (1: between its two, 2: after both); it must die so."""
    import signal
    import subprocess
    import sys

    def run(code: str, renames: int, *args: str) -> None:
        proc = subprocess.run([sys.executable, "-c", _KILLED_REPLACEMENT + code, str(renames), *args],
                              check=False, capture_output=True, text=True)
        assert proc.returncode == -signal.SIGKILL, proc.stderr

    return run


@pytest.fixture
def model_repo(tmp_path, monkeypatch):
    """`model_repo(folder)` serves `folder` as the hub's model repository `me/pick` (huggingface_hub's
    snapshot_download replaced: no network), copying into the cache's snapshot folder only the files a call's
    allow_patterns match, as the hub does, and a safetensors file's header at the snapshot's commit
    (`HfApi.parse_safetensors_file_metadata`); returns the download calls and the snapshot folder. `me` is no folder
    here."""
    import json
    import shutil
    from typing import Any

    from huggingface_hub import HfApi
    from huggingface_hub.utils import SafetensorsFileMetadata, TensorInfo, filter_repo_objects

    from worldpolicy.hub import model_metadata, model_snapshot

    calls: list[dict[str, Any]] = []
    # a commit, as the hub names one
    snapshot = tmp_path / "cache" / "models--me--pick" / "snapshots" / ("0123abcd" * 5)

    def serve(folder):
        def download(repo_id: str, **kwargs: Any) -> str:
            calls.append({"repo_id": repo_id, **kwargs})
            found = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
            for name in filter_repo_objects(found, allow_patterns=kwargs.get("allow_patterns")):
                (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(folder / name, snapshot / name)
            return str(snapshot)

        def header(self, repo_id: str, filename: str, *, revision: str | None = None,
                   **_: Any) -> SafetensorsFileMetadata:
            if (repo_id, revision) != ("me/pick", snapshot.name):
                raise OSError(f"404: {repo_id}@{revision}")  # as the hub answers an unknown repository or commit
            with open(folder / filename, "rb") as f:
                tensors = json.loads(f.read(int.from_bytes(f.read(8), "little")))
            metadata = tensors.pop("__metadata__", {})
            return SafetensorsFileMetadata(metadata, {name: TensorInfo(**info) for name, info in tensors.items()})

        monkeypatch.setattr("huggingface_hub.snapshot_download", download)
        monkeypatch.setattr(HfApi, "parse_safetensors_file_metadata", header)
        return calls, snapshot

    monkeypatch.chdir(tmp_path)
    model_metadata.cache_clear()
    model_snapshot.cache_clear()
    yield serve
    model_metadata.cache_clear()
    model_snapshot.cache_clear()
