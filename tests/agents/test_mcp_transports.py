"""`worldpolicy mcp` as a real process: stdio and streamable HTTP, driven by the SDK's client (slow)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import numpy as np
import pytest

pytest.importorskip("mcp", reason="agents extra not installed: pip install 'worldpolicy[agents]'")

from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from ports import free_port

pytestmark = pytest.mark.slow


def _server_args(tiny_checkpoint_dir, inputs_dir, out) -> list[str]:
    return [
        "-m",
        "worldpolicy.cli",
        "mcp",
        "--checkpoint-dir",
        str(tiny_checkpoint_dir),
        "--output-dir",
        str(out),
        "--input-root",
        str(inputs_dir),
        "--input-root",
        str(out),
        "--chunk-size",
        "4",
        "--resolution-tier",
        "256",
        "--device",
        "cpu",
    ]


async def _exercise(client, inputs_dir) -> dict:
    names = {t.name for t in (await client.list_tools()).tools}
    assert {"predict_actions", "imagine_rollout", "infer_actions"} <= names
    bad = await client.call_tool("predict_actions", {"prompt": "go", "embodiment": "nope", "image": "obs.png"})
    assert bad.is_error and bad.structured_content["error"]["parameter"] == "embodiment"
    result = await client.call_tool(
        "predict_actions",
        {"prompt": "go", "embodiment": "bridge", "image": str(inputs_dir / "obs.png"), "seed": 0, "steps": 1},
    )
    assert not result.is_error, result.content
    return result.structured_content


def test_stdio_server(tiny_checkpoint_dir, inputs_dir, tmp_path):
    params = StdioServerParameters(command=sys.executable, args=_server_args(tiny_checkpoint_dir, inputs_dir, tmp_path))

    async def run():
        async with Client(params, read_timeout_seconds=120) as client:
            return await _exercise(client, inputs_dir)

    result = anyio.run(run)
    assert np.asarray(result["actions"]).shape == (4, 10)
    assert Path(result["files"]["actions"]).is_file() and Path(result["run_dir"]).parent == tmp_path


def test_streamable_http_server(tiny_checkpoint_dir, inputs_dir, tmp_path):
    port = free_port()
    args = _server_args(tiny_checkpoint_dir, inputs_dir, tmp_path) + ["--transport", "http", "--port", str(port)]
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.3)

        async def run():
            async with Client(f"http://127.0.0.1:{port}/mcp", read_timeout_seconds=120) as client:
                return await _exercise(client, inputs_dir)

        result = anyio.run(run)
        assert Path(result["files"]["report"]).is_file()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
