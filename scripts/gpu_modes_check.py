"""Every mode on CUDA against the same call on CPU: policy, forward dynamics with a decoded video, inverse dynamics, a
mixed batch, and the DROID state-row variant, on a tiny checkpoint in fp32 (expected equal to rounding) and bf16
(expected finite and close). Part of scripts/gpu_check.sh; `python scripts/gpu_modes_check.py cpu` is a dry run."""

import sys

import numpy as np

import worldpolicy
from worldpolicy.policy import PolicyRequest
from worldpolicy.testing import make_tiny_checkpoint

DEVICE = sys.argv[1] if len(sys.argv) > 1 else "cuda"
TASK = "put the marker in the cup"
checkpoint = make_tiny_checkpoint("/tmp/gpu_modes_tiny")
rng = np.random.default_rng(0)
image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
video = rng.integers(0, 255, (17, 120, 160, 3), dtype=np.uint8)
droid_obs = {"observation/wrist_image_left": image, "observation/exterior_image_1_left": image[::-1],
             "observation/exterior_image_2_left": image[:, ::-1],
             "observation/joint_position": rng.uniform(-1, 1, 7).astype(np.float32),
             "observation/gripper_position": np.array([0.3], np.float32)}


def run_all(device: str, dtype: str) -> dict[str, np.ndarray]:
    p = worldpolicy.load_policy(checkpoint, embodiment="droid/relative_pose", chunk_size=16, resolution_tier=256,
                                device=device, dtype=dtype)
    out = {"policy": p.act(image, TASK, seed=1).actions}
    fd = p.imagine(image, reference_actions, TASK, seed=2)
    out["forward video"] = fd.video.astype(np.float64)
    out["inverse"] = p.infer_actions(video, TASK, seed=3).actions
    batch = p.act_batch([PolicyRequest(image, TASK, seed=1), PolicyRequest(video, TASK, mode="inverse_dynamics", seed=3),
                         PolicyRequest(image, "open the drawer", seed=4, guidance=1.0)])
    out["batch[0] = policy"] = batch[0].actions
    out["batch[1] = inverse"] = batch[1].actions
    droid = worldpolicy.load_policy(checkpoint, embodiment="droid", chunk_size=16, device=device, dtype=dtype)
    out["droid state row"] = droid.act(droid_obs, TASK, seed=5).actions
    return out


reference_actions = worldpolicy.load_policy(checkpoint, embodiment="droid/relative_pose", chunk_size=16,
                                            resolution_tier=256, device="cpu").act(image, TASK, seed=1).actions
reference = run_all("cpu", "float32")
for dtype in ("float32", "bfloat16"):
    got = run_all(DEVICE, dtype)
    for name, value in got.items():
        ref = reference[name]
        rel = float(np.abs(value - ref).max() / max(np.abs(ref).max(), 1e-12))
        print(f"{DEVICE} {dtype:>8} {name:<20} shape {tuple(value.shape)}, finite {bool(np.isfinite(value).all())}, "
              f"max relative difference to cpu fp32 {rel:.1e}")
