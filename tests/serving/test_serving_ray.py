"""Scale-out: two Ray Serve replicas on CPU behind one openpi-wire endpoint (~30 s, most of it starting Ray).

Runs in the default suite: CI installs the `ray` extra through `all`, so a missing Ray fails here instead of skipping.
"""

from __future__ import annotations

import socket
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import ray
from ray import serve
from serving_standins import droid_request, expected_actions

from worldpolicy.serving.ray_serve import build_app, run


def _stand_in():
    from serving_standins import StandInPolicy  # imported inside the replica process

    return StandInPolicy(batch_cost_s=0.05)


@pytest.fixture(scope="module")
def ray_endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tests = str(Path(__file__).parent)
    ray.init(num_cpus=4, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": tests}})
    try:
        app = build_app(
            _stand_in, num_replicas=2, max_batch=4, max_wait_ms=20, api_key="ray-key-0001",
            replica_actor_options={"num_cpus": 0.5}, ingress_actor_options={"num_cpus": 0.5},
        )
        run(app, host="127.0.0.1", port=port)
        yield f"ws://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()


def test_two_replicas_behind_one_endpoint(ray_endpoint):
    from worldpolicy.serving import AuthenticationError, RemotePolicy, ServerError

    http = ray_endpoint.replace("ws://", "http://")
    assert urllib.request.urlopen(http + "/healthz", timeout=10).read() == b"OK\n"
    with pytest.raises(AuthenticationError):
        RemotePolicy(ray_endpoint, api_key="wrong-key-0000")

    def client(i: int):
        with RemotePolicy(ray_endpoint, api_key="ray-key-0001", read_timeout_s=60) as policy:
            replicas, good = set(), 0
            for k in range(6):
                joints = np.full(7, i * 10 + k, np.float64)
                raw = policy.infer({**droid_request(joints), "prompt": f"task {i}"})
                good += np.allclose(raw["actions"], expected_actions(joints, f"task {i}"))
                replicas.add(raw["server_timing"]["replica"])
            return good, replicas

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(client, range(8)))
    assert [good for good, _ in results] == [6] * 8  # every client got its own answers
    assert len(set().union(*(r for _, r in results))) == 2  # both replicas served
    with RemotePolicy(ray_endpoint, api_key="ray-key-0001") as policy:
        assert policy.metadata()["embodiment"] == "droid/joint_pos"
        with pytest.raises(ServerError, match="bad request: .*'prompt'"):
            policy.infer({k: v for k, v in droid_request(np.zeros(7)).items() if k != "prompt"})
