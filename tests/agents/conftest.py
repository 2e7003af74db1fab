"""A tiny random Cosmos3 checkpoint, an input folder with an observation image, and a toolbox over them."""

from __future__ import annotations

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
