import json

import numpy as np

from worldpolicy.embodiments import get_embodiment
from worldpolicy.robot.se3 import rot6d_to_matrix
from worldpolicy.viz import examples


def test_example_chunks_are_valid_for_their_embodiments():
    droid, bridge = examples.droid_chunk(), examples.bridge_chunk()
    assert droid.shape == (32, get_embodiment("droid").action_dim)
    assert bridge.shape == (16, get_embodiment("bridge").action_dim)
    # rot6d columns encode proper rotations; gripper values stay in [0, 1]
    rot = rot6d_to_matrix(bridge[:, 3:9])
    assert np.allclose(rot[:, :, 0], bridge[:, 3:6]) and np.allclose(np.linalg.det(rot), 1)
    assert droid[:, 7].min() == 0 and droid[:, 7].max() == 1


def test_example_run_is_complete(tmp_path):
    run = examples._write_run(tmp_path / "run", "bridge", examples.bridge_chunk(8), "stack")
    names = sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file())
    assert names == [
        "actions.json",
        "index.html",
        "plots/actions.png",
        "plots/animation.mp4",
        "plots/ee_path.png",
        "rollout.mp4",
        "settings.json",
    ]
    assert json.loads((run / "actions.json").read_text())["chunk_size"] == 8
