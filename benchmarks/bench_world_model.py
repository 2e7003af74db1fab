"""World-model quality of a trained checkpoint on held-out sim episodes (default: the shipped model).

- Inverse dynamics: actions inferred from the true (chunk+1)-frame clip vs the expert's actions (translation error,
  mm per step), against a baseline that always answers the training mean action.
- Forward dynamics: frames imagined from frame 0 under the expert's actions vs the simulator's frames (PSNR over the
  canvas content, frames 1..chunk), against a baseline that repeats frame 0 (a static world).
- Policy: the sampled chunk vs the expert's chunk from the same observation (translation error), for reference.

    python benchmarks/bench_world_model.py [--checkpoint DIR] [--episodes 10] [--seed 50000]
"""

from __future__ import annotations

import json
import time

import numpy as np
from _args import at_least, parser_for


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--checkpoint", help="trained checkpoint folder (default: the shipped model)")
    parser.add_argument("--episodes", type=at_least(1), default=10, help="held-out episodes (default 10)")
    parser.add_argument("--seed", type=at_least(0), default=50_000,
                        help="held-out env seeds start here (default 50000; training used 0..)")
    parser.add_argument("--stride", type=at_least(1), default=4, help="window stride within an episode (default 4)")
    args = parser.parse_args()

    from worldpolicy import load_policy
    from worldpolicy.data.from_sim import ACTION_KEYS, STATE_KEYS, camera_feature, expert_episodes
    from worldpolicy.models import shipped_model
    from worldpolicy.processing.observations import frames_from_mapping, prepare_canvas
    from worldpolicy.robot.decode import encode_relative_pose
    from worldpolicy.robot.kinematics import IKSolver
    from worldpolicy.robot.robots import get_robot

    checkpoint = args.checkpoint or shipped_model()
    try:
        policy = load_policy(checkpoint, seed=args.seed)
    except (FileNotFoundError, ValueError) as exc:
        parser.error(f"--checkpoint {args.checkpoint}: {exc}")
    emb = policy.embodiment
    chunk = policy.chunk_size
    mean_action = np.asarray(emb.stats["mean"]) if emb.stats and "mean" in emb.stats else None
    ik = IKSolver(get_robot("panda"))
    cams = list(emb.camera_keys)
    rows = {"id": [], "id_baseline": [], "policy": [], "fd_psnr": [], "fd_static_psnr": [], "vae_psnr": []}
    started = time.perf_counter()
    for ep in expert_episodes("reach", args.episodes, seed=args.seed, cameras=cams, start_jitter=0.5):
        frames_by_cam = {c: ep["videos"][camera_feature(c)] for c in cams}
        joints = np.concatenate([ep["frames"][ACTION_KEYS[0]], ep["frames"][ACTION_KEYS[1]]], axis=1)
        state = ep["frames"][STATE_KEYS[0]]
        length = len(joints)
        for t in range(0, length - chunk, args.stride):
            truth = encode_relative_pose(state[t], joints[t : t + chunk, :7], joints[t : t + chunk, 7], ik)
            clip = {c: v[t : t + chunk + 1] for c, v in frames_by_cam.items()}
            first = {c: v[0] for c, v in clip.items()}
            inferred = policy.infer_actions(clip, ep["task"]).actions
            rows["id"].append(1000 * np.linalg.norm(inferred[:, :3] - truth[:, :3], axis=1).mean())
            if mean_action is not None:
                rows["id_baseline"].append(1000 * np.linalg.norm(mean_action[:3] - truth[:, :3], axis=1).mean())
            sampled = policy.act(first, ep["task"]).actions
            rows["policy"].append(1000 * np.linalg.norm(sampled[:, :3] - truth[:, :3], axis=1).mean())
            imagined = policy.imagine(first, truth, ep["task"]).video
            real_canvas, info = prepare_canvas(frames_from_mapping(clip, cams, emb.composite), policy.resolution_tier,
                                               chunk + 1, emb.snap_to_16)
            real = ((real_canvas[0].permute(1, 2, 3, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
            h, w = min(info.content_h, imagined.shape[1]), min(info.content_w, imagined.shape[2])
            later = range(1, chunk + 1)
            rows["fd_psnr"].append(np.mean([psnr(imagined[i, :h, :w], real[i, :h, :w]) for i in later]))
            rows["fd_static_psnr"].append(np.mean([psnr(real[0, :h, :w], real[i, :h, :w]) for i in later]))
            latents = policy.engine.encode_video(real_canvas)[:, :, :, : info.latent_h, : info.latent_w]
            recon = np.clip(np.round(policy.engine.decode_video(latents) * 255), 0, 255).astype(np.uint8)
            rows["vae_psnr"].append(np.mean([psnr(recon[i, :h, :w], real[i, :h, :w]) for i in later]))
    if not rows["id"]:
        raise SystemExit(f"no window to measure: every episode is {chunk} steps or shorter (the model's chunk size)")
    out = {k: float(np.mean(v)) for k, v in rows.items() if v}
    out["windows"] = len(rows["id"])
    out["episodes"] = args.episodes
    out["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out, indent=1))
    baseline = out.get("id_baseline", float("nan"))
    print(f"inverse dynamics: {out['id']:.2f} mm/step vs mean-action baseline {baseline:.2f} mm/step "
          f"({baseline / out['id']:.2f}x better)")
    print(f"forward dynamics: PSNR {out['fd_psnr']:.2f} dB vs static-frame baseline {out['fd_static_psnr']:.2f} dB "
          f"(the VAE's own reconstruction of the true frames: {out['vae_psnr']:.2f} dB, what decoding alone loses)")
    print(f"policy vs expert chunk: {out['policy']:.2f} mm/step")


if __name__ == "__main__":
    main()
