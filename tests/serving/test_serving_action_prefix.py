"""Real-time chunking over the wire: `RemotePolicy.act(action_prefix=)` sends the wire's `action_prefix` and gets what
the local policy gives; a bad prefix is a clear error to its client alone, and a server that ignores the key is an
error, never a chunk that silently was not conditioned."""

from __future__ import annotations

import numpy as np
import pytest
from serving_standins import StandInPolicy, droid_request, raw_send

from worldpolicy.processing.actions import to_physical
from worldpolicy.serving import (
    PolicyServer,
    RemotePolicy,
    RemotePolicyError,
    ServerConfig,
    ServerThread,
)

TASK = "pick up the cup"


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    import worldpolicy
    from worldpolicy.testing import make_tiny_checkpoint

    checkpoint = make_tiny_checkpoint(tmp_path_factory.mktemp("prefix") / "tiny")
    return worldpolicy.load_policy(checkpoint, embodiment="droid/relative_pose", device="cpu", chunk_size=8,
                                   resolution_tier=256, steps=2)


@pytest.fixture(scope="module")
def served(tiny_policy):
    server = PolicyServer(loader=lambda: tiny_policy, config=ServerConfig(host="127.0.0.1", port=0))
    with ServerThread(server) as thread:
        yield thread


def _image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)


def _prefix(policy, rows: int) -> np.ndarray:
    e = policy.embodiment
    return to_physical(e, np.random.default_rng(rows).uniform(-0.8, 0.8, (rows, e.action_dim)))


def test_remote_act_with_a_prefix_gives_what_the_local_policy_gives(tiny_policy, served):
    prefix = _prefix(tiny_policy, 3)
    want = tiny_policy.act(_image(), TASK, seed=4, action_prefix=prefix)
    with RemotePolicy(served.url) as remote:
        got = remote.act(_image(), TASK, seed=4, action_prefix=prefix)
        plain = remote.act(_image(), TASK, seed=4)
    assert np.array_equal(got.actions[:3], prefix)  # exactly: physical rows travel as float64, copied back
    np.testing.assert_allclose(got.actions, want.actions, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.actions_normalized, want.actions_normalized, rtol=1e-5, atol=1e-6)
    assert got.settings["action_prefix_rows"] == 3 and "action_prefix_rows" not in plain.settings
    assert not np.allclose(plain.actions[3:], got.actions[3:])


def test_remote_act_refuses_a_bad_prefix_as_the_local_policy_does(tiny_policy, served):
    """Checked on the client with the server's embodiment and chunk size, in the local Policy's words."""
    bad = {"wrong width": np.zeros((2, 9)), "whole chunk": np.zeros((8, 10)), "NaN": np.full((1, 10), np.nan),
           "not numbers": [["x"] * 10]}
    with RemotePolicy(served.url) as remote:
        for case, prefix in bad.items():
            with pytest.raises(ValueError) as local:
                tiny_policy.act(_image(), TASK, action_prefix=prefix)
            with pytest.raises(ValueError) as over_the_wire:
                remote.act(_image(), TASK, action_prefix=prefix)
            assert str(over_the_wire.value) == str(local.value), case
        with pytest.raises(TypeError, match=r"imagine\(\) takes no action_prefix"):
            remote.imagine(_image(), np.zeros((8, 10)), TASK, action_prefix=np.zeros((1, 10)))


def test_a_bad_prefix_from_a_raw_client_is_its_error_and_the_server_keeps_serving(tiny_policy, served):
    """A client that checks nothing: the adapter refuses it (shape, numbers, the row count against the served chunk:
    a too-long prefix fails its own request at parse time, never the batch it would join); each reply names
    `action_prefix` to that client, and the next request is served."""
    base = {"observation/image": _image(), "prompt": TASK, "seed": 4}
    for prefix, text in [
        (np.zeros((2, 9)), "bad request: action_prefix has shape (2, 9); accepted: rows [d, 10]"),
        (np.full((1, 10), np.nan), "bad request: action_prefix holds nan at row 0, column 'tx'"),
        (np.zeros((8, 10)), ("bad request: action_prefix has 8 rows; accepted: rows [d, 10] (tx, ty, tz, r0, r1, r2, "
                            "r3, r4, r5, grasp) with 1 <= d <= chunk_size - 1 = 7")),
    ]:
        reply = raw_send(served.url, {**base, "action_prefix": prefix})
        assert isinstance(reply, str) and reply.startswith(text), reply
    prefix = _prefix(tiny_policy, 2)
    reply = raw_send(served.url, {**base, "action_prefix": prefix})
    assert np.array_equal(reply["actions"][:2], prefix) and reply["settings"]["action_prefix_rows"] == 2


def test_a_server_that_ignores_the_prefix_is_an_error_not_an_unconditioned_chunk(serve):
    """An openpi server, or a worldpolicy one from before real-time chunking, answers without the key's effect."""
    t = serve(StandInPolicy())
    with RemotePolicy(t.url) as remote:
        with pytest.raises(RemotePolicyError, match=r"did not condition its chunk on action_prefix .* = 2\)"):
            remote.act(droid_request(np.zeros(7)), TASK, action_prefix=np.zeros((2, 8)))
        assert remote.act(droid_request(np.zeros(7)), TASK).actions.shape == (32, 8)  # without one: as before
