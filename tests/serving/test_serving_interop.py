"""Interop with the reference packages: openpi-client → our server, and our client → the openpi-server package.

Both are installed with `--no-deps` (they pin numpy<2 in metadata only; wire-protocol.md §8, .ci/extra-test-installs.sh).
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from ports import free_port
from serving_standins import droid_request, expected_actions

from worldpolicy.serving import RemotePolicy, ServerError

openpi_client = pytest.importorskip("openpi_client", reason="pip install --no-deps openpi-client dm-tree")


def test_openpi_client_gets_an_action_chunk_from_our_server(serve):
    from openpi_client.action_chunk_broker import ActionChunkBroker
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    t = serve(api_key="robot-key-0001")
    client = WebsocketClientPolicy(host="127.0.0.1", port=t.server.port, api_key="robot-key-0001")
    assert client.get_server_metadata()["embodiment"] == "droid/joint_pos"
    joints = np.linspace(0, 0.6, 7)
    reply = client.infer(droid_request(joints, prompt="put the marker in the cup"))
    np.testing.assert_allclose(reply["actions"], expected_actions(joints, "put the marker in the cup"))
    assert reply["action"].shape == (32, 8) and reply["server_timing"]["infer_ms"] >= 0
    warned = client.infer(droid_request(joints, prompt="warn"))  # a reply with the policy's warnings: one more key
    np.testing.assert_allclose(warned["actions"], expected_actions(joints, "warn"))
    assert warned["warnings"] == ["stand-in: this request asked for a warning"]
    # the chunk broker (openpi's open-loop executor) steps through our chunk row by row
    broker = ActionChunkBroker(client, action_horizon=8)
    rows = [broker.infer(droid_request(joints, prompt="put the marker in the cup"))["actions"] for _ in range(3)]
    np.testing.assert_allclose(np.stack(rows), expected_actions(joints, "put the marker in the cup")[:3])
    # an error reaches the openpi client as its documented RuntimeError
    with pytest.raises(RuntimeError, match="Error in inference server:\nbad request: .*'prompt'"):
        client.infer({k: v for k, v in droid_request(joints).items() if k != "prompt"})


class _OpenpiStyleDroidPolicy:
    """What an openpi policy looks like to `WebsocketPolicyServer`: `infer(obs) -> {"actions": ...}`."""

    def infer(self, obs: dict) -> dict:
        joints = obs["observation/joint_position"]
        if not np.isfinite(joints).all():
            raise ValueError("non-finite joints")
        return {"actions": expected_actions(joints, obs["prompt"], chunk=15).astype(np.float32)}

    def reset(self) -> None:
        pass


@pytest.fixture
def openpi_server():
    server_module = pytest.importorskip("openpi_server", reason="pip install --no-deps openpi-server")
    port = free_port()
    server = server_module.WebsocketPolicyServer(_OpenpiStyleDroidPolicy(), host="127.0.0.1", port=port)
    loop = asyncio.new_event_loop()
    task = loop.create_task(server.run())
    thread = threading.Thread(target=lambda: loop.run_until_complete(asyncio.gather(task, return_exceptions=True)))
    thread.start()
    yield f"ws://127.0.0.1:{port}"
    loop.call_soon_threadsafe(task.cancel)
    thread.join(10)
    loop.close()


def test_our_client_against_the_reference_openpi_server(openpi_server):
    deadline = time.monotonic() + 10
    while True:
        try:
            policy = RemotePolicy(openpi_server, embodiment="droid")
            break
        except ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    with policy:
        assert policy.metadata() == {}
        joints = np.full(7, 0.3)
        pred = policy.act(droid_request(joints), "wipe the table", seed=1)  # extra keys are ignored by openpi
        np.testing.assert_allclose(pred.actions, expected_actions(joints, "wipe the table", chunk=15), rtol=1e-6)
        assert pred.columns[-1] == "gripper" and pred.chunk_size == 15 and "server_infer" in pred.timings
        with pytest.raises(ServerError, match="non-finite joints") as info:
            policy.act({**droid_request(joints), "observation/joint_position": np.full(7, np.nan)}, "x")
        assert info.value.code == 1011
        assert policy.act(droid_request(joints), "again").actions.shape == (15, 8)  # reconnected
