"""`worldpolicy dream`: a policy run closed loop in a world model's imagination from the command line, on the shipped
model (CPU, one denoising step): the run's files, a repeat with its --seed, refusals before any weights load, an
interruption or failure that ends with the run of the chunks that finished, and `worldpolicy report` redrawing its
page."""

import html
import json

import numpy as np
import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("diffusers")

import worldpolicy
from worldpolicy.cli import main
from worldpolicy.fileio import DREAM_FILE, DREAM_PARTIAL_DIR, folder_kind
from worldpolicy.processing.trajectory import call_seed
from worldpolicy.processing.video import read_video
from worldpolicy.sim.progress import SCORER_REWARDS

PROMPT = "reach the red ball"


@pytest.fixture(scope="module")
def cameras(tmp_path_factory) -> list[str]:
    """The shipped model's two cameras, one random image each, as --camera flags."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("cameras")
    rng = np.random.default_rng(0)
    flags = []
    for key in ("observation/exterior_image_1_left", "observation/wrist_image_left"):
        path = folder / f"{key.rsplit('/', 1)[-1]}.png"
        Image.fromarray(rng.integers(0, 256, (180, 320, 3), dtype=np.uint8)).save(path)
        flags += ["--camera", f"{key}={path}"]
    return flags


def _dream(out, cameras, *extra) -> int:
    return main(["dream", "--policy", "shipped", *cameras, "--prompt", PROMPT, "--steps", "1", "--device", "cpu",
                 "--out", str(out), *extra])


@pytest.fixture(scope="module")
def run(cameras, tmp_path_factory):
    """2 chunks of 3 of the policy's 4 actions, scored as a reach."""
    out = tmp_path_factory.mktemp("dream") / "run"
    assert _dream(out, cameras, "--chunks", "2", "--execute-steps", "3", "--seed", "5", "--score", "reach") == 0
    return out


def test_dream_writes_its_video_actions_chunks_plots_and_page(run):
    video, fps = read_video(run / "rollout.mp4")
    actions = json.loads((run / "actions.json").read_text())
    assert len(video) == 2 * 3 + 1 and fps == actions["fps"] == 15  # the start, then one frame per action run
    assert actions["schema"] == "worldpolicy.actions/v1" and len(actions["actions"]) == 6
    assert actions["video_frames"] == 7
    settings = json.loads((run / "settings.json").read_text())
    assert settings["command"] == "dream" and settings["dream"]["chunks"] == 2 and settings["dream"]["seed"] == 5
    assert settings["dream"]["policy"] == settings["dream"]["world_model"]  # one checkpoint, both roles
    # the shipped model as `label` and `train` record it (`portable_checkpoint`), not this install's folder
    assert settings["dream"]["policy"] == settings["checkpoint"] == actions["settings"]["checkpoint"] == "shipped"
    assert [c["actions"] for c in settings["trajectory"]["chunks"]] == [[0, 3], [3, 6]]
    assert [c["seed"] for c in settings["trajectory"]["chunks"]] == [5, 6]  # the world model's chunk j: seed + j
    doc = json.loads((run / DREAM_FILE).read_text())
    assert doc["chunks_done"] == doc["chunks_requested"] == 2
    assert [c["policy_seed"] for c in doc["chunks"]] == [call_seed(5, 0), call_seed(5, 1)]  # the policy's chunk j
    assert all(np.isfinite(c["reward"]) and c["reward"] <= 0 for c in doc["chunks"])  # minus a distance
    assert doc["score"] == "reach" and doc["reward_meaning"] == SCORER_REWARDS["reach"]
    assert (run / "plots" / "actions.png").is_file()
    page = (run / "index.html").read_text()
    # the reward column is said above the chunks' table, in the scorer's own words
    chunks = page[page.index("id='records-chunks'"):]
    assert chunks.index(f"reward (score reach): {html.escape(SCORER_REWARDS['reach'])}") < chunks.index("<table>")
    assert page.count(html.escape(SCORER_REWARDS["reach"])) == 1  # there only, not a Metrics row too
    assert "data-run-kind='dream'" in page and "id='records-chunks'" in page
    assert "models/panda_reach" not in page
    assert "stopped early" not in page  # every chunk asked for ran
    assert "under the actions the policy chose from the frame before it" in page  # not forward dynamics' "given"
    # one checkpoint in both roles: the world model finds the prompt its policy encoded, and the page says so
    assert actions["timings_s"]["text"] == 0 and html.escape("0 s (the prompt's encoding was cached)") in page
    assert "<b>mode</b><span>dream: policy acting in a world model (forward_dynamics)</span>" in page
    assert folder_kind(run)[0].writer == "dream"


def test_dream_keeps_the_camera_images_it_started_from_and_shows_them_first(run, cameras):
    """As predict's run: each --camera's image at observation/<camera>.png, on the page above the dreamed video."""
    from PIL import Image

    given = dict(flag.split("=", 1) for flag in cameras[1::2])
    for key, path in given.items():
        kept = run / "observation" / f"{key.rsplit('/', 1)[-1]}.png"
        assert np.array_equal(np.asarray(Image.open(kept)), np.asarray(Image.open(path))), key
    page = (run / "index.html").read_text()
    assert page.index("<section id=observation>") < page.index("<section id=videos>")
    assert page.count("src='data:image/png;base64,", page.index("<section id=observation>"),
                      page.index("<section id=videos>")) == len(given)


def test_a_rerun_with_its_seed_dreams_the_same_and_another_seed_does_not(run, cameras, tmp_path, monkeypatch,
                                                                          capsys):
    loads = []
    load = worldpolicy.load_policy
    monkeypatch.setattr(worldpolicy, "load_policy", lambda *a, **k: loads.append(a) or load(*a, **k))
    again = tmp_path / "again"
    assert _dream(again, cameras, "--chunks", "2", "--execute-steps", "3", "--seed", "5", "--score", "reach",
                  "--world-model", "shipped", "--json") == 0
    assert len(loads) == 1  # --world-model the policy's checkpoint: loaded once, both roles
    first = json.loads((run / "actions.json").read_text())["actions"]
    assert json.loads((again / "actions.json").read_text())["actions"] == first
    # --json: one object on stdout, what actions.json holds and dream.json's under `dream` (read back), where
    # they were written (absolute); the lines a person reads on stderr
    out, err = capsys.readouterr()
    doc = json.loads(out)
    saved = json.loads((again / "actions.json").read_text())
    assert {k: doc[k] for k in saved} == saved and doc["dream"] == json.loads((again / DREAM_FILE).read_text())
    assert doc["run_dir"] == str(again) and str(again / DREAM_FILE) in doc["written"]
    assert "dream: 2 chunks, 6 actions" in err and "  wrote " in err
    np.testing.assert_array_equal(read_video(again / "rollout.mp4")[0], read_video(run / "rollout.mp4")[0])
    # into the same folder (a dream run is replaced), with another seed and no score
    assert _dream(again, cameras, "--chunks", "2", "--execute-steps", "3", "--seed", "6") == 0
    assert json.loads((again / "actions.json").read_text())["actions"] != first
    unscored = json.loads((again / DREAM_FILE).read_text())
    assert "reward" not in unscored["chunks"][0] and "reward_meaning" not in unscored
    assert "id=reward-meaning" not in (again / "index.html").read_text()


def test_a_checkpoint_named_from_home_is_recorded_as_given(cameras, tmp_path, monkeypatch):
    """`--policy=~/m` (no shell expands it after `=`) names the folder `--world-model` names in full: one model,
    loaded once; the record keeps each name as given (`dream_settings`), `~/m` too, not this machine's home folder."""
    import shutil

    from worldpolicy.models import shipped_model

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    shutil.copytree(shipped_model(), tmp_path / "home" / "m")
    loads = []
    load = worldpolicy.load_policy
    monkeypatch.setattr(worldpolicy, "load_policy", lambda *a, **k: loads.append(a) or load(*a, **k))
    out = tmp_path / "o"
    assert main(["dream", "--policy=~/m", "--world-model", str(tmp_path / "home" / "m"), *cameras, "--prompt", PROMPT,
                 "--steps", "1", "--device", "cpu", "--chunks", "1", "--out", str(out)]) == 0
    assert len(loads) == 1
    settings = json.loads((out / "settings.json").read_text())["dream"]
    assert (settings["policy"], settings["world_model"]) == ("~/m", str(tmp_path / "home" / "m"))


def test_bad_input_is_refused_before_the_weights_load(cameras, tmp_path, capsys, monkeypatch):
    """Each refusal names its flag, what was given and what is accepted, and no weights load."""
    from PIL import Image

    from worldpolicy.testing import make_tiny_checkpoint

    droid = make_tiny_checkpoint(tmp_path / "droid")  # a world model of another embodiment (droid's)
    monkeypatch.setattr(worldpolicy, "load_policy", lambda *a, **k: pytest.fail("the weights were loaded"))
    predict_run = tmp_path / "predict"
    predict_run.mkdir()
    (predict_run / "actions.json").write_text("{}")
    missing = tmp_path / "missing.png"
    inside = tmp_path / "o" / "plots" / "start.png"
    inside.parent.mkdir(parents=True)
    inside.write_bytes(b"")
    composite = tmp_path / "composite.png"  # a DROID composite's size
    Image.fromarray(np.zeros((360, 640, 3), np.uint8)).save(composite)
    cases = [
        (cameras, ["--chunks", "0"], "--chunks 0: accepted: the chunks to dream, >= 1"),
        (cameras, ["--chunks", "1", "--execute-steps", "5"], "--execute-steps: 5 is not in 1..4; accepted: 1..4, or none (the whole chunk)"),
        (cameras, ["--chunks", "1", "--execute-steps", "9", "--chunk-size", "8"],
         "--execute-steps: 9 is not in 1..8; accepted: 1..8"),
        (cameras, ["--chunks", "1", "--score", "reach", "--prompt", "reach the ball"],
         "--score reach: the --prompt names the ball it scores: prompt 'reach the ball' names none of the scene"),
        (["--image", str(missing)], ["--chunks", "1"], f"--image {str(missing)!r} does not exist"),
        (cameras, ["--chunks", "1", "--out", str(predict_run)], "holds a predict run (actions.json), not a dream run"),
        (["--image", str(inside)], ["--chunks", "1"], "is where this run writes its plots; choose another --out"),
        (cameras, ["--chunks", "1", "--world-model", str(tmp_path / "nowhere")],
         f"--world-model={str(tmp_path / 'nowhere')!r} is neither an existing folder nor a hub id"),
        (cameras, ["--chunks", "1", "--world-model", str(droid)], "--world-model: its actions (joint_0,"),
        (cameras, ["--chunks", "1", "--world-model", str(droid)],
         "are not --policy's (tx, ty, tz, r0, r1, r2, r3, r4, r5, grasp); accepted: a policy and a world model of one"),
        # reach cut a DROID composite (the wrist camera on top, two exterior ones side by side) into three bands that
        # are none of its views, and scored every chunk on them: refused, as `sim --plan-scorer` refuses it
        (["--image", str(composite)], ["--chunks", "1", "--policy", str(droid), "--score", "reach"],
         "--score: reach reads the ball and the gripper in each camera's band of the imagined frame"),
        (["--image", str(composite)], ["--chunks", "1", "--policy", str(droid), "--score", "reach"],
         "embodiment 'droid/joint_pos' composes its cameras"),
        (["--image", str(composite)], ["--chunks", "1", "--policy", str(droid), "--score", "reach"],
         ("as 'droid_wrist_top': use a checkpoint whose embodiment stacks its cameras (the shipped model's "
         "panda_reach), or leave --score out")),
    ]
    for inputs, extra, said in cases:
        argv = ["dream", *inputs, "--steps", "1", "--device", "cpu", *extra]
        argv += [] if "--policy" in extra else ["--policy", "shipped"]
        argv += [] if "--out" in extra else ["--out", str(tmp_path / "o")]
        argv += [] if "--prompt" in extra else ["--prompt", PROMPT]
        assert main(argv) == 2, extra
        err = capsys.readouterr().err
        assert said in err, (extra, err)


def test_one_checkpoint_in_both_roles_is_checked_once(cameras, tmp_path, capsys, monkeypatch):
    """Without --world-model the policy is its own world model: its checkpoint is checked once, not once per role."""
    from worldpolicy.policy import Policy

    checked = []
    check = Policy.check_pretrained
    monkeypatch.setattr(Policy, "check_pretrained", lambda *a, **k: checked.append(a[0]) or check(*a, **k))
    assert _dream(tmp_path / "o", cameras, "--chunks", "1", "--execute-steps", "5") == 2  # refused after the checks
    assert "--execute-steps: 5 is not in 1..4" in capsys.readouterr().err
    assert len(checked) == 1, checked


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
def test_a_dream_cut_short_ends_with_the_whole_run_of_the_chunks_that_finished(cameras, tmp_path, capsys,
                                                                               monkeypatch, stop):
    """Ctrl-C (or a failure) during chunk 2 of 3: the run of chunks 0 and 1 is written whole (video, actions, record,
    plots and page), and the per-chunk record it was kept in while the dream ran is gone."""
    from worldpolicy.sim.world_model import WorldModelEnv

    step = WorldModelEnv.step

    def cut(self, action):
        if self.chunks == 2:
            raise stop("cut")
        return step(self, action)

    monkeypatch.setattr(WorldModelEnv, "step", cut)
    out = tmp_path / "cut"
    if stop is KeyboardInterrupt:
        assert _dream(out, cameras, "--chunks", "3") == 130
    else:
        with pytest.raises(RuntimeError, match="cut"):
            _dream(out, cameras, "--chunks", "3")
    how = "interrupted" if stop is KeyboardInterrupt else "failed"
    err = capsys.readouterr().err
    assert f"dream: {how} after 2 of 3 chunks finished; their run is in" in err
    assert err.count(f"dream: {how}") == 1  # not again, bare, by `cli.main`
    doc = json.loads((out / DREAM_FILE).read_text())
    assert doc["chunks_done"] == 2 and doc["chunks_requested"] == 3
    actions = json.loads((out / "actions.json").read_text())
    assert len(actions["actions"]) == 2 * 4 and actions["video_frames"] == 2 * 4 + 1
    assert [c["actions"] for c in actions["settings"]["trajectory"]["chunks"]] == [[0, 4], [4, 8]]
    assert len(read_video(out / "rollout.mp4")[0]) == 2 * 4 + 1  # playable: the start, then a frame per action
    assert (out / "plots" / "actions.png").is_file()
    page = (out / "index.html").read_text()
    assert "data-run-kind='dream'" in page and DREAM_PARTIAL_DIR not in page  # the record, gone: not on the page
    assert "<b>dreamed</b><span>2 of 3 chunks (stopped early)</span>" in page  # in its summary, not only Metrics'
    assert not (out / DREAM_PARTIAL_DIR).exists()
    (out / "index.html").unlink()
    assert main(["report", str(out)]) == 0  # `worldpolicy report` redraws its page
    assert "data-run-kind='dream'" in (out / "index.html").read_text()


def test_a_ctrl_c_while_an_interrupted_dream_writes_its_run_stops_the_writing(cameras, tmp_path, capsys, monkeypatch):
    """The Ctrl-C that stopped the dream is the first: the writing of its run is said at once, and the next Ctrl-C
    stops it, as the docs say, leaving each chunk in dream_partial/ (it took a third, and nothing was said until the
    second)."""
    import os
    import signal

    from worldpolicy.sim.world_model import DreamRecorder, WorldModelEnv

    step = WorldModelEnv.step

    def cut(self, action):
        if self.chunks == 1:
            raise KeyboardInterrupt
        return step(self, action)

    def finish(self):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C again while the run is written
        raise AssertionError("the second Ctrl-C did not stop the writing")

    monkeypatch.setattr(WorldModelEnv, "step", cut)
    monkeypatch.setattr(DreamRecorder, "finish", finish)
    out = tmp_path / "cut"
    assert _dream(out, cameras, "--chunks", "3") == 130
    err = capsys.readouterr().err
    assert "Ctrl-C: writing the run of the 1 chunk dreamed; Ctrl-C again stops it" in err
    assert not (out / DREAM_FILE).exists() and (out / DREAM_PARTIAL_DIR / "chunk-0000.mp4").is_file()


def test_a_dream_refuses_an_out_another_process_holds_before_the_weights_load(cameras, tmp_path, capsys, monkeypatch):
    """Two dreams started into one --out both wrote it, and the second silently replaced the first's run."""
    import os

    from worldpolicy.fileio import folder_lock

    monkeypatch.setattr(worldpolicy, "load_policy", lambda *a, **k: pytest.fail("the weights were loaded"))
    out = tmp_path / "held"
    with folder_lock(out, "elsewhere"):
        assert _dream(out, cameras, "--chunks", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"--out: {str(out)!r} is in use by another worldpolicy process (PID {os.getpid()}," in err
    assert not out.exists()  # the holder made it and wrote nothing: gone with its lock


def test_no_progress_hides_the_chunks_bar(cameras, tmp_path, capsys):
    """`dream --no-progress` was refused as an unrecognized argument, while `sim` takes it."""
    assert _dream(tmp_path / "shown", cameras, "--chunks", "1", "--no-plots") == 0
    assert "dream (panda_reach" in capsys.readouterr().err  # the bar, shown by default
    assert _dream(tmp_path / "quiet", cameras, "--chunks", "1", "--no-plots", "--no-progress") == 0
    assert "dream (" not in capsys.readouterr().err
