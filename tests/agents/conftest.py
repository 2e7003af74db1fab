"""A tiny random Cosmos3 checkpoint, an input folder with an observation image, and a toolbox over them; a LeRobot
dataset and sim run folders for the evaluation tools."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from worldpolicy.agents import Toolbox, ToolboxConfig


@pytest.fixture(scope="session")
def tiny_checkpoint_dir(tmp_path_factory):
    from worldpolicy.testing import make_tiny_checkpoint

    root = tmp_path_factory.mktemp("checkpoints")
    make_tiny_checkpoint(root / "tiny")
    return root


@pytest.fixture(scope="session")
def inputs_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (72, 96, 3), dtype=np.uint8)).save(d / "obs.png")
    (d / "notes.txt").write_text("not an image")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    from worldpolicy.processing.video import write_video

    write_video(d / "clip.mp4", rng.integers(0, 255, (5, 64, 96, 3), dtype=np.uint8), fps=5)  # bridge's rate
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(d / "tiny.png")
    write_video(d / "tiny.mp4", np.zeros((5, 8, 8, 3), np.uint8), fps=15)
    write_video(d / "short.mp4", rng.integers(0, 255, (2, 64, 96, 3), dtype=np.uint8), fps=15)
    Image.fromarray(rng.integers(0, 65535, (72, 96), dtype=np.uint16)).save(d / "obs16.tif")
    # one clip as an animated GIF and as a folder of frames (few colours: the GIF palette holds them exactly)
    pages = [Image.fromarray(np.full((64, 96, 3), (40 * i, 255 - 40 * i, 90), np.uint8)) for i in range(3)]
    pages[0].save(d / "clip.gif", save_all=True, append_images=pages[1:], duration=66, loop=0)
    (d / "frames").mkdir()
    for i, page in enumerate(pages):
        page.save(d / "frames" / f"frame_{i}.png")
    return d


@pytest.fixture(scope="session")
def toolbox(tiny_checkpoint_dir, inputs_dir, tmp_path_factory):
    """Small and fast: chunk 4 (5 video frames), the 256 resolution tier; two policies kept loaded."""
    out = tmp_path_factory.mktemp("runs")
    return Toolbox(
        ToolboxConfig(
            output_dir=out,
            checkpoint_dirs=[tiny_checkpoint_dir],
            input_roots=[inputs_dir, out],
            chunk_size=4,
            resolution_tier=256,
            device="cpu",
            max_loaded=2,
        )
    )


FRONT = "observation.images.front"


@pytest.fixture(scope="session")
def pusht_dataset(inputs_dir):
    """Two episodes (10 and 7 frames) at pusht's 10 fps, one camera, actions named as pusht's columns x and y."""
    from worldpolicy.data import write_episodes

    features = {"action": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
                FRONT: {"dtype": "video", "shape": [16, 16, 3]}}
    episodes = []
    for i, length in enumerate((10, 7)):
        t = np.arange(length)
        frames = np.broadcast_to((5 * (t + 20 * i) % 256)[:, None, None, None], (length, 16, 16, 3)).astype(np.uint8)
        episodes.append({"frames": {"action": np.stack([10.0 * t + i, np.sin(t) - 5 * i], axis=1).astype(np.float32)},
                         "videos": {FRONT: frames}, "task": "push the T"})
    write_episodes(inputs_dir / "pusht_ds", episodes, fps=10, features=features, video_codec="libx264rgb")
    return inputs_dir / "pusht_ds"


def _sim_run(folder: Path, outcomes: dict[int, bool], training_seeds=None, prompt="reach the ball"):
    """A finished sim run's folder as `worldpolicy sim` writes it (report.json), with these seeds' outcomes, each
    episode told `prompt` (a callable: its seed's)."""
    from worldpolicy.sim.evaluate import EvalReport, write_report
    from worldpolicy.sim.rollout import EpisodeResult
    from worldpolicy.sim.tasks import TrainingScenes

    episodes = [EpisodeResult(seed=s, success=won, steps=20 if won else 60, success_step=20 if won else None,
                              prompt=prompt(s) if callable(prompt) else prompt, chunks=3,
                              final_distance_m=0.01 if won else 0.2, policy_s=0.1, wall_s=0.2)
                for s, won in outcomes.items()]
    scenes = None if training_seeds is None else TrainingScenes("reach", "its dataset", (0, 9), tuple(training_seeds))
    report = EvalReport("reach", folder.name, "panda", {"kind": "execute", "execute_steps": 8, "ensemble_decay": 0.1,
                                                        "execute_steps_requested": None},
                        15.0, min(outcomes), episodes=episodes, requested=len(episodes), max_steps=60,
                        embodiment="panda_reach", task_version=1, training_scenes=scenes,
                        policy_settings={"kind": "checkpoint", "path": f"/ckpts/{folder.name}", "sampling": {
                            "steps": 4 if folder.name == "a" else 8}})
    write_report(report, folder, plots=False)
    return folder


@pytest.fixture
def sim_run():
    """`_sim_run`: a sim run folder with chosen outcomes (needs the sim extra, as `sim.compare` does)."""
    pytest.importorskip("mujoco", reason="sim extra not installed")
    return _sim_run


@pytest.fixture(scope="module")
def cropped(tiny_checkpoint_dir, inputs_dir, tmp_path_factory):
    """A toolbox over the tiny checkpoint as a run trained with `[augment]` records it (its trainer_state.json says
    to crop 0.9 of each frame's area from its centre)."""
    import json
    import shutil

    root = tmp_path_factory.mktemp("augmented")
    shutil.copytree(tiny_checkpoint_dir / "tiny", root / "augmented")
    config = {"augment": {"enabled": True, "crop_area": 0.9}}
    (root / "augmented" / "trainer_state.json").write_text(json.dumps({"step": 1, "config": config}))
    out = tmp_path_factory.mktemp("augmented_runs")
    return Toolbox(ToolboxConfig(output_dir=out, checkpoint_dirs=[root], input_roots=[inputs_dir, out], chunk_size=4,
                                 resolution_tier=256, device="cpu"))
