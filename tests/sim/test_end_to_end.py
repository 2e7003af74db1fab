"""A tiny random Cosmos3 checkpoint drives the sim through the local and the ws:// backends: same seed, same episode.

The tiny model's actions are meaningless (joint targets far outside the limits, so the decoder clips them with a
warning); this checks plumbing and determinism, not success.
"""

import numpy as np
import pytest

pytest.importorskip("mink")
pytest.importorskip("websockets")
pytest.importorskip("diffusers")

from worldpolicy.robot.control import ChunkStrategy
from worldpolicy.sim.env import TabletopEnv
from worldpolicy.sim.policies import make_policy
from worldpolicy.sim.rollout import Rollout


@pytest.fixture(scope="module")
def local_policy(tmp_path_factory):
    from worldpolicy.testing import make_tiny_checkpoint

    ckpt = make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")
    return make_policy(str(ckpt), seed=3, steps=1, resolution_tier=256)


def _episode(env, policy):
    seen, chunks = [], []

    class Spy:
        embodiment = policy.embodiment

        def reset(self, seed=None):
            policy.reset(seed)

        def act(self, observation, prompt):
            seen.append(observation)
            pred = policy.act(observation, prompt)
            chunks.append(pred.actions)
            return pred

    result = Rollout(env, Spy(), ChunkStrategy("execute", execute_steps=8)).run(seed=4)
    return result, np.stack(chunks), seen


def test_local_and_ws_backends_give_identical_episodes(local_policy, caplog):
    from worldpolicy.serving import PolicyServer, ServerConfig, ServerThread

    env = TabletopEnv("reach", image_size=(64, 96), max_steps=12)
    local, a_local, seen = _episode(env, local_policy)
    # The policy saw exactly what a DROID client sends.
    obs = seen[0]
    assert {"observation/exterior_image_1_left", "observation/exterior_image_2_left", "observation/wrist_image_left",
            "observation/joint_position", "observation/gripper_position", "prompt"} <= set(obs)
    assert local.chunks == 2 and local.steps == 12 and local.clipped > 0
    assert local_policy.embodiment.key == "droid/joint_pos"

    with ServerThread(PolicyServer(local_policy.policy, ServerConfig(host="127.0.0.1", port=0))) as server:
        remote = make_policy(server.url, seed=3)
        try:
            ws, a_ws, _ = _episode(env, remote)
        finally:
            remote.close()
        with caplog.at_level("WARNING", logger="worldpolicy.sim.policies"):
            make_policy(server.url, embodiment="droid/relative_pose").close()
        assert "--embodiment droid/relative_pose is not used: the server" in caplog.text
    assert a_local.shape == (2, 32, 8)
    np.testing.assert_allclose(a_local, a_ws, rtol=0, atol=1e-6)
    assert not np.allclose(a_local[0], a_local[1])  # per-chunk seeds differ (call_seed(episode seed, call))
    assert (local.final_distance_m, local.clipped, local.chunks) == (ws.final_distance_m, ws.clipped, ws.chunks)
