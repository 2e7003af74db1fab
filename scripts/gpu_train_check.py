"""Fine-tuning on CUDA against the same run on CPU: the trainer tests' tiny checkpoint and two-episode dataset, 6 full
fine-tuning steps on each device (same seed: the losses should agree to fp32 rounding), 3 LoRA steps and 6 bf16 steps
with gradient checkpointing on CUDA, then the trained checkpoint loaded on CUDA acts. Part of scripts/gpu_check.sh;
`python scripts/gpu_train_check.py cpu` compares CPU with itself (a dry run without a GPU)."""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "train"))
from train_setup import CAMERAS, CHUNK, IMAGE_SIZE, TINY_EMBODIMENT, VIDEO_KEYS, make_episode

from worldpolicy.data import write_episodes
from worldpolicy.data.from_sim import sim_features
from worldpolicy.testing import make_tiny_checkpoint
from worldpolicy.train.config import load_config
from worldpolicy.train.trainer import Trainer

DEVICE = sys.argv[1] if len(sys.argv) > 1 else "cuda"
root = Path(tempfile.mkdtemp(prefix="gpu_train_check_"))
checkpoint = make_tiny_checkpoint(root / "tiny")
dataset = root / "ds"
write_episodes(dataset, (make_episode(s) for s in range(2)), fps=15, robot_type="panda", video_codec="libx264rgb",
               features=sim_features("panda", IMAGE_SIZE, CAMERAS))


def train(name: str, device: str, steps: int, **overrides):
    raw = {"output_dir": str(root / name), "checkpoint": str(checkpoint), "embodiment": dict(TINY_EMBODIMENT),
           "seed": 3, "log_every": 1, "save_every": steps, "device": device,
           "data": {"dataset": str(dataset), "chunk_size": CHUNK, "video_keys": list(VIDEO_KEYS),
                    "cache_dir": str(root / f"cache_{device}")},
           "objectives": {"preset": "cosmos_policy"},
           "optim": {"steps": steps, "batch_size": 2, "lr": 1e-3, "warmup_steps": 2}, **overrides}
    trainer = Trainer(load_config(raw), progress=False)
    tick = time.perf_counter()
    records = trainer.run()
    print(f"{name}: {len(records)} steps on {device} in {time.perf_counter() - tick:.1f} s, losses "
          + " ".join(f"{r.loss:.6f}" for r in records))
    return trainer, np.array([r.loss for r in records])


_, cpu = train("full_cpu", "cpu", 6)
trainer, gpu = train("full_gpu", DEVICE, 6)
print(f"largest loss difference {DEVICE} vs cpu over 6 steps: {np.abs(gpu - cpu).max():.2e} (relative "
      f"{(np.abs(gpu - cpu) / np.abs(cpu)).max():.2e})")
train("lora_gpu", DEVICE, 3, finetune={"mode": "lora", "lora_rank": 4, "lora_alpha": 8})
_, bf16 = train("bf16_checkpointing_gpu", DEVICE, 6, optim={"steps": 6, "batch_size": 2, "lr": 1e-3, "warmup_steps": 2,
                                                              "precision": "bf16", "gradient_checkpointing": True})
print(f"bf16 + gradient checkpointing on {DEVICE} vs fp32: largest relative loss difference "
      f"{(np.abs(bf16 - gpu) / np.abs(gpu)).max():.2e}")

from worldpolicy.policy import Policy

final = trainer._checkpoints()[-1]
policy = Policy.from_pretrained(final, device=DEVICE)
rng = np.random.default_rng(0)
obs = {**{k: rng.integers(0, 255, (*IMAGE_SIZE, 3), dtype=np.uint8) for k in CAMERAS},
       "observation/joint_position": np.zeros(7, np.float32), "observation/gripper_position": np.zeros(1, np.float32)}
pred = policy.act(obs, "reach the square", seed=0)
print(f"trained checkpoint on {DEVICE}: actions {pred.actions.shape}, finite {bool(np.isfinite(pred.actions).all())}, "
      f"columns {pred.columns[:2]}...")
