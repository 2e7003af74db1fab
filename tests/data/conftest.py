"""Fixtures for the dataset tests: small LeRobot v3 datasets built on the fly."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pyarrow", reason="worldpolicy.data needs the train extra (pyarrow)")

from dataset_factory import make_episode


@pytest.fixture
def small_dataset(tmp_path: Path):
    """Three lossless-video episodes (12, 7, 9 frames) with two tasks; returns (dataset, the written episodes)."""
    from worldpolicy.data import write_episodes

    episodes = []
    for i, length in enumerate((12, 7, 9)):
        ep = make_episode(length, seed=i, offset=100 * i)
        ep["task"] = "pick the cube" if i != 1 else "push the cube | shove the block"
        episodes.append(ep)
    ds = write_episodes(tmp_path / "ds", episodes, fps=10, robot_type="testbot", video_codec="libx264rgb")
    return ds, episodes


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A tiny random Cosmos3 checkpoint, made once per test module (label, open-loop evaluation)."""
    from worldpolicy.testing import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture(scope="module")
def policy(tiny):
    """`tiny` as pusht (one camera, 10 fps, columns x and y), chunks of 4 (inverse-dynamics windows of 5 frames), one
    denoising step: fresh per module, so what one module's policy has said is not carried into another's."""
    import worldpolicy

    return worldpolicy.load_policy(tiny, embodiment="pusht", chunk_size=4, resolution_tier=256, steps=1)
