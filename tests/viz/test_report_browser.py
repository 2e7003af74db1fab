"""Opens a report in headless Chromium and checks what a person would see.

Needs the Debian `chromium` package (`apt-get update && apt-get install -y chromium`, see docs/viz.md); slow-marked.
"""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from worldpolicy.processing.video import write_video
from worldpolicy.viz import plots, report
from worldpolicy.viz.run import visualize

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio"]


def _chromium(*args, timeout=90) -> str:
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH: apt-get update && apt-get install -y chromium")
    done = subprocess.run([CHROMIUM, *FLAGS, *args], check=False, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture
def rendered_run(tmp_path, joint_chunk, actions_json):
    run = tmp_path / "run"
    run.mkdir()
    (run / "actions.json").write_text(json.dumps(actions_json("droid", joint_chunk)))
    (run / "settings.json").write_text(json.dumps({"command": "predict", "prompt": "stack the blocks"}))
    video = np.zeros((17, 96, 128, 3), np.uint8)
    video[..., 2] = 220
    write_video(run / "rollout.mp4", video, 15)
    visualize(run)
    return report.write_report(run)


def test_chromium_decodes_videos_and_shows_sections(rendered_run):
    dom = _chromium("--virtual-time-budget=8000", "--dump-dom", rendered_run.as_uri())
    # the page's script fills each video caption once the browser has decoded the stream's metadata
    decoded = dict(re.findall(r'id="(video-\d)-meta" data-state="(\w+)"', dom))
    assert decoded == {"video-0": "ok", "video-1": "ok"}, decoded
    assert "decoded: 128×96, 1.13 s" in dom  # rollout.mp4: 17 frames at 15 fps
    for heading in ("Summary", "Videos", "Plots", "Actions (physical units)", "Settings", "Files"):
        assert f"<h2>{heading}</h2>" in dom
    assert "stack the blocks" in dom


def test_chromium_screenshot_shows_plots(rendered_run, tmp_path):
    shot = tmp_path / "shot.png"
    _chromium("--window-size=1400,2400", f"--screenshot={shot}", rendered_run.as_uri())
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (2400, 1400)
    # the dark header band, the time-series blue and the gripper-span shading are all on screen
    assert (np.abs(img[5:40, 200:800] - (0x1D, 0x23, 0x30)).sum(-1) < 10).mean() > 0.8
    from matplotlib.colors import to_rgb

    line = np.array(to_rgb(plots.LINE_COLOR)) * 255
    span = 255 - plots.CLOSED_ALPHA * (255 - np.array(to_rgb(plots.CLOSED_COLOR)) * 255)  # over white
    blue = (np.abs(img - line).sum(-1) < 40).sum()
    shade = (np.abs(img - span).sum(-1) < 25).sum()
    assert blue > 2000 and shade > 20000, (blue, shade)
