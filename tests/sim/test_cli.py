import json

import numpy as np
import pytest

pytest.importorskip("mink")

from worldpolicy.cli import main
from worldpolicy.sim.evaluate import wilson_interval


def test_sim_cli_writes_report_and_video(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["sim", "--policy", "scripted", "--task", "reach", "--episodes", "2", "--videos", "1",
               "--image-size", "48x64", "--out", str(out), "--no-progress"])
    assert rc == 0
    doc = json.loads((out / "report.json").read_text())
    assert doc["schema"] == "worldpolicy.sim_eval/v1" and doc["n_episodes"] == 2 and doc["embodiment"] == "droid/joint_pos"
    from worldpolicy.fileio import folder_kind

    assert folder_kind(out)[0].writer == "sim"  # what the output-folder checks recognise
    assert doc["success_rate"] == 1.0 and doc["ci95"][0] < 1.0 <= doc["ci95"][1] + 1e-12
    # held out by default: past the seeds `dataset from-sim` records from 0 (a checkpoint trained on them ran its
    # training scenes), and the training run's own evaluation's
    import inspect

    from worldpolicy.sim.evaluate import evaluate
    from worldpolicy.sim.tasks import EVAL_SEED
    from worldpolicy.train.config import EvalConfig

    assert doc["seed"] == EVAL_SEED == EvalConfig().seed == 10_000
    assert inspect.signature(evaluate).parameters["seed"].default == EVAL_SEED  # the Python API's too
    assert doc["training_scenes"] is None  # no checkpoint: nothing it was trained on to check
    assert "| 10000 | yes |" in (out / "report.md").read_text() and "seeds 10000..10001, task reach v1, scripted policy v2." in (out / "report.md").read_text()
    assert (out / "report.png").stat().st_size > 1000
    page = (out / "index.html").read_text()  # one page to open, with the episodes and the video in it
    assert "episode_10000.mp4" in page and "<table" in page
    from worldpolicy.processing.video import read_video

    frames, fps = read_video(out / "videos" / "episode_10000.mp4")
    from worldpolicy.viz.video import GAP, label_height

    # at the actual control rate, 33 physics steps of 2 ms (a 15 fps video ran 1 % slower than the sim)
    assert fps == pytest.approx(500 / 33) and frames.std() > 5
    assert frames.shape[1] == 48 + 2 * label_height(48) and frames.shape[2] >= 3 * 64 + 2 * GAP  # captioned
    assert not (out / "videos" / "episode_10001.mp4").exists()
    printed = capsys.readouterr().out
    assert "reach · scripted: success 2/2 = 100.0 % (95 % CI 34.2-100.0 %) on seeds 10000..10001\n" in printed
    assert f"  {out / 'videos' / 'episode_10000.mp4'}\n" in printed  # the episode video among the files written


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--task", "stack"], "--task: unknown task 'stack'"),
        (["--episodes", "0"], "--episodes: expected >= 1"),
        (["--image-size", "big"], "--image-size 'big'; accepted: HxW"),
        (["--robot", "ur5"], "sim: error: --robot: unknown name 'ur5'"),
        (["--robot", "nowhere/panda.xml"], "sim: error: --robot: MJCF file 'nowhere/panda.xml' does not exist"),
        (["--policy", "no_such_checkpoint"], "sim: error: --policy: 'no_such_checkpoint' is not 'scripted'"),
        (["--policy", "shiped"], "sim: error: --policy: 'shiped' is not 'scripted', 'random', a ws:// URL, 'shipped'"),
        (["--imagine"], "sim: error: --imagine asks a model for its imagined video; --policy random has none"),
        (["--api-key", "k"],
         "sim: error: --api-key is sent to a ws:// or wss:// policy server, not to --policy 'random'"),
        (["--api-key-env", "K"],
         "sim: error: --api-key-env is sent to a ws:// or wss:// policy server, not to --policy 'random'"),
        (["--server-timeout-s", "2"],
         "sim: error: --server-timeout-s 2: bounds a ws:// or wss:// policy server's requests, not --policy 'random'"),
        (["--policy", "ws://127.0.0.1:9", "--server-timeout-s", "0"],  # checked before connecting
         "sim: error: --server-timeout-s 0: accepted: a finite number of seconds > 0 (leave the flag out"),
        (["--policy", "ws://127.0.0.1:9", "--server-timeout-s", "inf"],
         "sim: error: --server-timeout-s inf: accepted: a finite number of seconds > 0"),
        (["--seed", "-1"], "--seed: expected >= 0"),
        (["--max-steps", "0"], "--max-steps: expected >= 1"),
        (["--image-size", "none", "--videos", "2"], "--image-size none renders no cameras, so --videos 2"),
        (["--execute-steps", "100"], "--execute-steps: 100 exceeds what a 32-step chunk allows"),
        (["--control-hz", "1000"], "sim: error: --control-hz: 1000 Hz is not a whole number"),
        (["--execute-steps", "0"], "sim: error: --execute-steps: expected an int >= 1, got 0"),
        (["--strategy", "ensemble", "--ensemble-decay", "-1"],
         "sim: error: --ensemble-decay: expected a finite number >= 0, got -1.0"),
        (["--strategy", "ensemble", "--ensemble-decay", "inf"],  # blended NaN targets
         "sim: error: --ensemble-decay: expected a finite number >= 0, got inf"),
        # ignored by the other strategies: the run looked as asked (was silently ignored)
        (["--ensemble-decay", "0.5"], ("sim: error: --ensemble-decay 0.5 weighs the chunks --strategy ensemble blends; "
                                      "--strategy execute blends none: add --strategy ensemble or leave --ensemble-decay out")),
        (["--strategy", "async", "--ensemble-decay", "0.1"], "--strategy async blends none"),
        (["--image-size", "8x8"], "sim: error: --image-size: expected (height, width), two ints of 16 to 4096 pixels"),
        (["--rtc"], ("sim: error: --rtc: conditions each chunk on the actions that run while it is computed, which "
                     "only the 'async' strategy does; got 'execute'; accepted: 'async'")),
        (["--strategy", "async", "--rtc"], ("sim: error: --rtc: asks a model to continue the running chunk's "
                                            "actions; policy random has no model to condition: leave --rtc out")),
        (["--policy", "scripted", "--strategy", "async", "--rtc"], "policy scripted has no model to condition"),
        (["--max-steps", "10", "--latency", "700"],  # 10.5 steps, rounded to 11
         ("sim: error: --latency: 700 ms is 11 control steps at 15 Hz, at or past the 10-step limit: no reply would "
         "land before it; accepted: 0 to below 633.333 ms")),
    ],
)
def test_sim_cli_bad_input(argv, message, capsys, tmp_path):
    policy = [] if "--policy" in argv else ["--policy", "random"]  # a flag given twice is refused by the parser
    assert main(["sim", *policy, "--out", str(tmp_path / "run"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before any episode ran, and the folder made for it removed


def test_sim_robot_naming_a_folder_without_a_panda_names_the_flag_and_folder(capsys, tmp_path):
    """It named `robot 'menagerie_panda'`, which the user had not given, and neither --robot nor the folder."""
    (tmp_path / "empty").mkdir()
    assert main(["sim", "--policy", "random", "--out", str(tmp_path / "run"), "--robot", str(tmp_path / "empty")]) == 2
    assert (f"sim: error: --robot: {str(tmp_path / 'empty')!r} holds no franka_emika_panda/panda.xml nor panda.xml"
            in capsys.readouterr().err)


def test_sim_cli_ensemble_decay_help_quotes_the_strategys_default():
    """The flag's argparse default is None (given or not), so the docs test cannot compare its help with it."""
    import re

    from worldpolicy.cli import build_parser
    from worldpolicy.robot.control import ChunkStrategy

    sim = next(a for a in build_parser()._actions if a.dest == "command").choices["sim"]
    action = next(a for a in sim._actions if a.dest == "ensemble_decay")
    assert action.default is None
    assert float(re.search(r"\(default: ([\d.]+)\)", action.help)[1]) == ChunkStrategy().ensemble_decay


def test_sim_cli_image_size_default_is_the_envs(monkeypatch):
    """`--image-size` said 180x320 itself where `TabletopEnv` takes `scenes.DEFAULT_IMAGE_SIZE`: one place for it."""
    from worldpolicy.cli import build_parser
    from worldpolicy.sim import commands
    from worldpolicy.sim.scenes import DEFAULT_IMAGE_SIZE

    assert commands._image_size(build_parser().parse_args(["sim"]).image_size) == DEFAULT_IMAGE_SIZE
    monkeypatch.setattr(commands, "DEFAULT_IMAGE_SIZE", (48, 64))
    sim = next(a for a in build_parser()._actions if a.dest == "command").choices["sim"]
    action = next(a for a in sim._actions if a.dest == "image_size")
    assert action.default == "48x64"
    assert "HxW of each camera image (default: 48x64)" in " ".join(sim.format_help().split())


def test_sim_cli_execute_steps_beyond_a_checkpoints_chunk_is_refused_before_it_loads(tmp_path, capsys, monkeypatch):
    from worldpolicy.policy import Policy

    monkeypatch.setattr(Policy, "from_pretrained", lambda *a, **k: pytest.fail("the weights loaded"))
    assert main(["sim", "--policy", "shipped", "--execute-steps", "100", "--out", str(tmp_path / "run")]) == 2
    assert "sim: error: --execute-steps: 100 exceeds what a 4-step chunk allows" in capsys.readouterr().err


def test_sim_cli_refuses_an_embodiment_the_scripted_expert_would_ignore(tmp_path, capsys):
    """The expert acts in droid/joint_pos whatever --embodiment says: the run used to go ahead and succeed."""
    assert main(["sim", "--policy", "scripted", "--embodiment", "bridge", "--out", str(tmp_path / "run")]) == 2
    assert "--embodiment bridge does not apply to --policy scripted" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("embodiment, said", [
    ("umi", "embodiment 'umi' gives its actions in model space (units 'normalized'"),
    ("pusht", "embodiment 'pusht' has layout 'generic'; a robot can only execute"),
])
def test_sim_cli_refuses_actions_no_robot_can_run_before_any_episode(tmp_path, capsys, monkeypatch, embodiment, said):
    """Normalised deltas would have moved the arm up to a metre per step; a generic layout was refused only once the
    first chunk came, after a checkpoint's weights had loaded and the previous run was cleared."""
    from worldpolicy.policy import Policy

    out = tmp_path / "run"
    out.mkdir()
    (out / "report.json").write_text("{}")  # an earlier run's: kept when the new one, told to replace it, is refused
    assert main(["sim", "--policy", "random", "--embodiment", embodiment, "--out", str(out), "--overwrite"]) == 2
    assert said in capsys.readouterr().err and (out / "report.json").read_text() == "{}"
    monkeypatch.setattr(Policy, "from_pretrained", lambda *a, **k: pytest.fail("the weights loaded"))
    assert main(["sim", "--policy", "shipped", "--embodiment", embodiment, "--out", str(out), "--overwrite"]) == 2
    assert said in capsys.readouterr().err and (out / "report.json").read_text() == "{}"


def test_sim_cli_refuses_joint_targets_for_another_arm_before_any_episode(tmp_path, capsys, monkeypatch):
    """A 6-joint arm's checkpoint on the 7-joint Panda ran its model first and then failed on the chunk (for a
    state-conditioned arm with 'state is required', which says nothing about the arm)."""
    from worldpolicy.policy import Policy

    spec = tmp_path / "six.json"
    spec.write_text(json.dumps({
        "name": "six_arm", "domain": "six_arm", "domain_id": 21, "action_dim": 7, "chunk_size": 4, "fps": 15,
        "columns": [f"j{i}" for i in range(6)] + ["gripper"], "units": ["rad"] * 6 + ["1"], "gripper_column": "gripper",
        "layout": "joint_position", "normalization": "quantile",
        "stats": {"q01": [-1.0] * 6 + [0.0], "q99": [1.0] * 7}}))
    said = "embodiment 'six_arm' has 6 joint columns but robot 'panda' has 7 arm joints"
    out = tmp_path / "run"
    assert main(["sim", "--policy", "random", "--embodiment", str(spec), "--out", str(out)]) == 2
    assert said in capsys.readouterr().err
    monkeypatch.setattr(Policy, "from_pretrained", lambda *a, **k: pytest.fail("the weights loaded"))
    assert main(["sim", "--policy", "shipped", "--embodiment", str(spec), "--out", str(out)]) == 2
    assert said in capsys.readouterr().err and not out.exists()


def test_sim_cli_out_must_be_a_folder(tmp_path, capsys):
    taken = tmp_path / "file"
    taken.write_text("mine")
    assert main(["sim", "--policy", "random", "--out", str(taken)]) == 2
    assert "--out: " in capsys.readouterr().err and taken.read_text() == "mine"


def test_sim_cli_refuses_an_out_that_holds_another_kind_of_run(tmp_path, capsys, monkeypatch):
    """A predict or training run is not replaced or mixed into, and the refusal comes before the scene loads."""
    import worldpolicy.sim.env

    def no_scene(*args, **kwargs):
        raise AssertionError("the scene was built before --out was checked")

    monkeypatch.setattr(worldpolicy.sim.env, "TabletopEnv", no_scene)
    predict_run, train_run = tmp_path / "predict", tmp_path / "train"
    for folder, files in ((predict_run, ("actions.json", "settings.json", "index.html")),
                          (train_run, ("config.json", "metrics.jsonl"))):
        folder.mkdir()
        for name in files:
            (folder / name).write_text("theirs")
    for out, what in ((predict_run, "a predict run (actions.json)"), (train_run, "a training run (metrics.jsonl)")):
        before = sorted(p.name for p in out.iterdir())
        assert main(["sim", "--policy", "random", "--task", "reach", "--no-progress", "--out", str(out)]) == 2
        assert f"--out: {str(out)!r} holds {what}, not a sim run; " in capsys.readouterr().err
        assert sorted(p.name for p in out.iterdir()) == before


def test_sim_cli_refuses_an_out_that_holds_other_runs_in_its_subfolders(tmp_path, capsys):
    """`sim --out runs/demo` wrote its report, page and videos at the top of the demo's folder, in among its predict
    and sim runs (and a second such run was then taken for a rerun of the first)."""
    demo = tmp_path / "demo"
    for sub, name in (("policy", "actions.json"), ("sim", "report.json")):
        (demo / sub).mkdir(parents=True)
        (demo / sub / name).write_text("{}")
    before = sorted(p.relative_to(demo) for p in demo.rglob("*"))
    assert main(["sim", "--policy", "random", "--task", "reach", "--no-progress", "--out", str(demo)]) == 2
    err = capsys.readouterr().err
    assert f"--out: {str(demo)!r} holds other runs in its subfolders (" in err
    assert f"choose another --out (a new or empty folder, or {str(demo / 'sim')!r} itself to rerun into that run)" in err
    assert sorted(p.relative_to(demo) for p in demo.rglob("*")) == before


def test_sim_cli_rerun_into_the_same_folder_leaves_no_stale_artefacts(tmp_path, monkeypatch):
    out = tmp_path / "run"
    common = ["sim", "--task", "reach", "--image-size", "48x64", "--no-progress", "--out", str(out)]
    assert main([*common, "--policy", "scripted", "--episodes", "2", "--videos", "2", "--max-steps", "3"]) == 0
    assert (out / "report.png").exists() and (out / "videos" / "episode_10001.mp4").exists()
    from worldpolicy.sim import commands

    monkeypatch.setattr(commands, "LISTED_VIDEOS", 1)  # more videos than are listed one by one: folder and count
    assert commands._videos_said(out) == [f"{out / 'videos'}/ (2 episode videos)"]
    assert main([*common, "--policy", "random", "--episodes", "1", "--videos", "0", "--no-plots", "--overwrite"]) == 0
    doc = json.loads((out / "report.json").read_text())
    assert doc["policy"] == "random" and doc["max_steps"] == 60 and doc["actual_control_hz"] == pytest.approx(15.15, abs=0.01)
    assert doc["strategy"]["execute_steps"] == 32  # the k used: random's whole chunk
    assert not (out / "report.png").exists() and not list((out / "videos").glob("*.mp4"))


def test_sim_cli_a_refused_run_leaves_the_previous_one_alone(tmp_path):
    out = tmp_path / "run"
    common = ["sim", "--task", "reach", "--image-size", "48x64", "--no-progress", "--out", str(out)]
    assert main([*common, "--policy", "scripted", "--episodes", "1", "--videos", "1", "--max-steps", "3"]) == 0
    kept = sorted(p.relative_to(out) for p in out.rglob("*"))
    for bad in (["--control-hz", "200"], ["--robot", "ur5"], ["--execute-steps", "100"]):
        assert main([*common, "--policy", "random", "--overwrite", *bad]) == 2
        assert sorted(p.relative_to(out) for p in out.rglob("*")) == kept


def test_sim_cli_a_rerun_without_resume_or_overwrite_keeps_the_previous_run(tmp_path, capsys):
    """Rerunning the command as first typed (the --resume left off after an interruption, or an --out reused by
    mistake) replaced the run there, throwing away its finished episodes; it is now refused, naming both flags."""
    out = tmp_path / "run"
    argv = ["sim", "--policy", "scripted", "--task", "reach", "--episodes", "2", "--max-steps", "3", "--image-size",
            "48x64", "--videos", "1", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    kept = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(argv) == 2
    assert (f"error: --out: {str(out)!r} holds a sim run (2 of 2 episodes of reach · scripted); pass --resume to "
            "continue it, --overwrite to replace it, or choose another --out\n") in capsys.readouterr().err
    assert main([*argv, "--resume", "--overwrite"]) == 2
    assert "--resume continues the run in --out, --overwrite replaces it: pass one of them" in capsys.readouterr().err
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == kept
    assert main([*argv, "--overwrite"]) == 0


def _fail_on_the_second_episode(monkeypatch, error: BaseException) -> None:
    from worldpolicy.sim.rollout import Rollout

    real_run, calls = Rollout.run, []

    def run_then_fail(self, seed, **kwargs):
        calls.append(seed)
        if len(calls) == 2:
            raise error
        return real_run(self, seed, **kwargs)

    monkeypatch.setattr(Rollout, "run", run_then_fail)


def test_sim_cli_ctrl_c_is_one_line_and_keeps_the_finished_episodes(tmp_path, capsys, monkeypatch):
    _fail_on_the_second_episode(monkeypatch, KeyboardInterrupt())
    out = tmp_path / "run"
    argv = ["sim", "--policy", "random", "--task", "reach", "--episodes", "3", "--no-progress", "--out", str(out)]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "sim: interrupted after 1 of 3 episodes finished;" in err
    # said once, in full, as the last line: not again, bare, after it
    assert err.count(": interrupted") == 1 and err.splitlines()[-1].startswith("worldpolicy sim: interrupted after ")
    assert "Traceback" not in err
    assert json.loads((out / "report.json").read_text())["n_episodes"] == 1
    # the figure and page of the kept episode, drawn as the run stopped (only at the end before: none to show)
    assert (out / "report.png").stat().st_size > 0 and "report.png" in (out / "index.html").read_text()


def test_sim_cli_an_interrupted_run_with_no_plots_draws_none(tmp_path, capsys, monkeypatch):
    _fail_on_the_second_episode(monkeypatch, KeyboardInterrupt())
    out = tmp_path / "run"
    argv = ["sim", "--policy", "random", "--task", "reach", "--episodes", "3", "--no-progress", "--no-plots",
            "--out", str(out)]
    assert main(argv) == 130
    assert json.loads((out / "report.json").read_text())["n_episodes"] == 1
    assert not (out / "report.png").exists() and not (out / "index.html").exists()


def test_sim_cli_sigterm_stops_like_ctrl_c_and_says_how_to_continue(tmp_path, capsys, monkeypatch, default_sigterm):
    """A cluster's SIGTERM (time limit, preemption) killed the run at once: the finished episodes were in report.json,
    but nothing said so, nor how to continue. It now stops the run as Ctrl-C does, with the shell's 143."""
    import os
    import signal

    from worldpolicy.sim.rollout import Rollout

    real_run, calls = Rollout.run, []

    def run_then_sigterm(self, seed, **kwargs):
        calls.append(seed)
        if len(calls) == 2:
            if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:  # it would kill the test run itself
                raise AssertionError("the command line left SIGTERM to kill the process")
            os.kill(os.getpid(), signal.SIGTERM)
        return real_run(self, seed, **kwargs)

    monkeypatch.setattr(Rollout, "run", run_then_sigterm)
    out = tmp_path / "run"
    argv = ["sim", "--policy", "random", "--task", "reach", "--episodes", "3", "--no-progress", "--out", str(out)]
    assert main(argv) == 143
    err = capsys.readouterr().err
    assert "sim: terminated (SIGTERM) after 1 of 3 episodes finished;" in err and "--resume" in err
    assert err.count("terminated (SIGTERM)") == 1 and "Traceback" not in err  # not again, bare (`cli.main`)
    assert json.loads((out / "report.json").read_text())["n_episodes"] == 1
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # put back after the command


def test_sim_cli_a_full_disk_is_one_line_and_keeps_the_finished_episodes(tmp_path, capsys, monkeypatch):
    """A full disk (or quota) while an episode was kept ended in a traceback wall; the episodes finished before are
    kept (episodes.jsonl appended to, the summary replaced atomically: the earlier one stays whole) and it is one
    line."""
    import errno

    from worldpolicy.sim.evaluate import EpisodeLog

    real_append, calls = EpisodeLog.append, []

    def disk_fills(self, report):
        calls.append(len(report.episodes))
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        return real_append(self, report)

    monkeypatch.setattr(EpisodeLog, "append", disk_fills)
    out = tmp_path / "run"
    argv = ["sim", "--policy", "random", "--task", "reach", "--episodes", "3", "--no-progress", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "sim: failed after 1 of 3 episodes finished;" in err and "--resume" in err
    assert f"sim: error: No space left on device: '{out / 'episodes.jsonl'}'\n" in err
    assert "Traceback" not in err
    assert json.loads((out / "report.json").read_text())["n_episodes"] == 1


def test_sim_cli_server_down_is_a_one_line_error(tmp_path, capsys):
    from ports import free_port

    port = free_port()  # nothing listens there
    argv = ["sim", "--policy", f"ws://127.0.0.1:{port}", "--task", "reach", "--episodes", "1", "--no-progress",
            "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    assert f"sim: error: cannot connect to ws://127.0.0.1:{port}" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # made when --out was checked; nothing ran, so nothing is left


# The commands that take a ws:// policy server's key (`cli.add_api_key_flags`, one definition): how each is run
# against `url`, writing into `out`
KEYED_COMMANDS = {
    "sim": lambda url, out: ["sim", "--policy", url, "--task", "reach", "--episodes", "1", "--no-progress",
                             "--out", str(out)],
    "dataset from-sim": lambda url, out: ["dataset", "from-sim", str(out), "--policy", url, "--task", "reach",
                                          "--episodes", "1", "--max-steps", "2", "--image-size", "24x24",
                                          "--no-progress"],
}


@pytest.mark.parametrize("command", KEYED_COMMANDS)
def test_a_wrong_api_key_says_how_to_send_one(tmp_path, capsys, keyed_server, command):
    t = keyed_server
    assert main(KEYED_COMMANDS[command](t.url, tmp_path / "run")) == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if f"{command}: error:" in line]  # not the server's
    # in the command's flags, not RemotePolicy's Python words (`pass api_key=`)
    assert f"{command}: error: {t.url} refused the API key (HTTP 401): {command} sent no key (it says: " in line
    assert line.endswith(f"give {command} the server's key (what the variable its --api-key-env names holds) with "
                         "--api-key-env VAR, WORLDPOLICY_API_KEY or --api-key KEY") and "api_key=" not in line
    assert main([*KEYED_COMMANDS[command](t.url, tmp_path / "run2"), "--api-key", "wrong-key-1234"]) == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if f"{command}: error:" in line]
    assert "(HTTP 401): the key it sent is not the server's (it says: " in line and "api_key" not in line


@pytest.mark.parametrize("command", KEYED_COMMANDS)
def test_a_server_timeout_bounds_each_request_to_the_server(tmp_path, capsys, command):
    """`--server-timeout-s` is the client's `timeout_s`: a server that stops answering (wedged) fails the command
    once that has passed, not after the client's read_timeout_s (120 s)."""
    import threading
    import time

    from websockets.sync.server import serve

    from worldpolicy.serving.client import packb

    def wedged(ws) -> None:  # connects as openpi's server does (an empty metadata frame), then answers nothing
        ws.send(packb({}))
        for _ in ws:
            time.sleep(3)

    server = serve(wedged, "127.0.0.1", 0, compression=None)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
        assert main([*KEYED_COMMANDS[command](url, tmp_path / "run"), "--server-timeout-s", "0.3"]) == 2
    finally:
        server.shutdown()
    assert f"no reply from {url} within timeout_s=0.3 s (this call's whole time" in capsys.readouterr().err


@pytest.mark.parametrize("command", KEYED_COMMANDS)
def test_the_servers_key_is_read_from_the_variable_api_key_env_names(tmp_path, capsys, monkeypatch, command):
    """`--api-key KEY` is in the process list (`ps`) of every user of the machine; `--api-key-env VAR` reads it from
    the environment, as serve's does, and WORLDPOLICY_API_KEY is read when neither flag is given."""
    from worldpolicy.sim import policies

    sent = []

    def make_policy(spec, **kwargs):  # what would connect: the key it was given, and no further
        sent.append(kwargs["api_key"])
        raise ValueError("stopped before connecting")

    monkeypatch.setattr(policies, "make_policy", make_policy)
    monkeypatch.setenv("WP_SIM_KEY", "s3cret-key-123")
    monkeypatch.setenv("WORLDPOLICY_API_KEY", "other-key-456")
    argv = KEYED_COMMANDS[command]("ws://127.0.0.1:9", tmp_path / "run")
    for extra in (["--api-key-env", "WP_SIM_KEY"], [], ["--api-key", "typed-key-789"]):
        assert main([*argv, *extra]) == 2
    assert sent == ["s3cret-key-123", "other-key-456", "typed-key-789"]
    assert "s3cret" not in capsys.readouterr().err
    monkeypatch.setenv("WP_SIM_KEY", "")
    for extra, message in ((["--api-key-env", "WP_SIM_KEY"],
                            "error: --api-key-env WP_SIM_KEY: that environment variable is unset or empty"),
                           (["--api-key-env", "WP_SIM_KEY", "--api-key", "k"],
                            "error: --api-key and --api-key-env both give the server's key: pass one")):
        assert main([*argv, *extra]) == 2
        assert f"{command}: {message}" in capsys.readouterr().err
    assert len(sent) == 3  # refused before connecting


def test_sim_cli_keeps_the_finished_episodes_when_a_later_one_fails(tmp_path, capsys, monkeypatch):
    _fail_on_the_second_episode(monkeypatch, ValueError("the policy server went away"))  # as a ws:// backend does
    out = tmp_path / "run"
    argv = ["sim", "--policy", "scripted", "--task", "reach", "--episodes", "3", "--no-progress", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "sim: failed after 1 of 3 episodes finished;" in err and "the policy server went away" in err
    doc = json.loads((out / "report.json").read_text())
    assert doc["n_episodes"] == 1 and doc["episodes_requested"] == 3 and doc["episodes"][0]["seed"] == 10_000
    assert "Incomplete: 1 of 3 episodes ran." in (out / "report.md").read_text()
    assert ", seed 10000, task reach v1" in (out / "report.md").read_text()  # one episode: not "seeds 10000..10000"


@pytest.mark.parametrize("successes, n, expected", [  # Newcombe 1998, Stat. Med. 17:857, Table I, method 3
    (81, 263, (0.2553, 0.3662)), (15, 148, (0.0624, 0.1605)), (0, 20, (0.0, 0.1611)), (1, 29, (0.0061, 0.1718))])
def test_wilson_interval_matches_the_published_values(successes, n, expected):
    np.testing.assert_allclose(wilson_interval(successes, n), expected, atol=5e-5)


def test_wilson_interval():
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert np.isclose(sum(wilson_interval(5, 10)), 1.0)
    with pytest.raises(ValueError, match="n"):
        wilson_interval(0, 0)


def test_sim_cli_warns_when_a_checkpoint_would_run_the_scenes_it_was_trained_on(tmp_path, monkeypatch, capsys):
    """`dataset from-sim` and `sim` both started at seed 0, so a checkpoint trained on a recording was evaluated on
    its training scenes by default, with nothing said. The default is now past them; a --seed that reaches into them
    (its trainer_state.json names the dataset, whose provenance lists the seeds) is warned about, naming a clear one,
    once every check before the weights load has passed: a run refused (an unknown --robot) is not warned about first.
    (The tiny checkpoint, its load stopped: the warning comes before it.)"""
    from worldpolicy.data import write_episodes
    from worldpolicy.sim import policies
    from worldpolicy.testing import make_tiny_checkpoint

    episode = {"frames": {"action": np.zeros((3, 2), np.float32)}, "task": "reach"}
    dataset = write_episodes(tmp_path / "data", [episode], fps=15,
                             provenance={"task": "reach", "seeds": [0, 1, 2, 4]}).root
    ckpt = make_tiny_checkpoint(tmp_path / "step-0000010")
    (ckpt / "trainer_state.json").write_text(json.dumps({"step": 10, "config": {"data": {"dataset": str(dataset)}}}))

    def loaded(*args, **kwargs):
        raise ValueError("not loaded")

    monkeypatch.setattr(policies, "make_policy", loaded)

    def run(*argv):
        episodes = [] if "--episodes" in argv else ["--episodes", "3"]
        main(["sim", "--policy", str(ckpt), *episodes, "--no-progress", "--image-size", "24x24", "--videos", "0",
              "--out", str(tmp_path / "run"), *argv])
        return capsys.readouterr().err

    err = run("--task", "reach", "--seed", "2")
    assert (f"--seed 2: 2 of the 3 episodes (seeds 2..4) are reach scenes step-0000010 was trained on (its dataset "
            f"{dataset} recorded seeds 0..4): their success says how well it fits its training data, not how it does "
            "on new scenes; pass --seed 10000 for held-out ones") in err
    assert err.index("trained on") < err.index("not loaded")
    monkeypatch.chdir(ckpt)  # given as `.`: named by its folder, as `dataset eval` names it (`models.checkpoint_name`)
    main(["sim", "--policy", ".", "--episodes", "3", "--no-progress", "--image-size", "24x24", "--videos", "0",
          "--out", str(tmp_path / "run"), "--task", "reach", "--seed", "2"])
    assert "reach scenes step-0000010 was trained on" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    refused = run("--task", "reach", "--seed", "2", "--robot", "nope")
    assert "--robot" in refused and "trained on" not in refused
    assert "trained on" not in run("--task", "reach")  # the default: held out
    assert "trained on" not in run("--task", "reach", "--seed", "5")
    assert "trained on" not in run("--task", "push", "--seed", "0")  # another task's scenes
    # the shipped model (a recipe's): its training_summary.json says what was recorded (reach 0..900, 35 failed)
    from worldpolicy.models import shipped_model

    (ckpt / "trainer_state.json").unlink()
    (ckpt / "training_summary.json").write_bytes((shipped_model() / "training_summary.json").read_bytes())
    err = run("--task", "reach", "--seed", "30", "--episodes", "10")
    assert ("--seed 30: 9 of the 10 episodes (seeds 30..39) are reach scenes step-0000010 was trained on (the "
            "recording in its training_summary.json recorded seeds 0..900)") in err and "--seed 10000 for" in err


def test_a_sim_run_applies_the_training_scene_rule_once_and_records_what_it_warned_of(tmp_path, monkeypatch,
                                                                                      capsys):
    """`worldpolicy sim` read the checkpoint's training data twice: to warn before the model loads, then again in
    `evaluate` to record it. The warning's result is passed down (`evaluate(training_scenes=)`) and recorded as it is;
    a library call that leaves it out still works it out (`test_evaluate_records_a_checkpoints_training_scenes`), and
    anything but what the rule gives is refused, naming the parameter."""
    pytest.importorskip("diffusers")
    from worldpolicy.data import write_episodes
    from worldpolicy.sim import tasks
    from worldpolicy.sim.evaluate import evaluate
    from worldpolicy.testing import make_tiny_checkpoint

    episode = {"frames": {"action": np.zeros((3, 2), np.float32)}, "task": "reach"}
    dataset = write_episodes(tmp_path / "data", [episode], fps=15,
                             provenance={"task": "reach", "seeds": [0, 1, 2, 4]}).root
    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    (ckpt / "trainer_state.json").write_text(json.dumps({"step": 10, "config": {"data": {"dataset": str(dataset)}}}))
    read = []
    rule = tasks.training_seeds  # what the rule reads: however a caller reached `training_scenes`
    monkeypatch.setattr(tasks, "training_seeds",
                        lambda checkpoint, **kw: read.append(checkpoint) or rule(checkpoint, **kw))
    assert main(["sim", "--policy", str(ckpt), "--task", "reach", "--seed", "2", "--episodes", "2", "--steps", "1",
                 "--image-size", "48x64", "--videos", "0", "--max-steps", "2", "--no-progress", "--no-plots",
                 "--out", str(tmp_path / "run")]) == 0
    assert len(read) == 1, read
    assert "1 of the 2 episodes (seed 2) are reach scenes tiny was trained on" in capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "report.json").read_text())["training_scenes"] == {
        "task": "reach", "source": f"its dataset {dataset}", "recorded_seeds": [0, 4], "seeds": [2]}
    with pytest.raises(ValueError, match="^training_scenes: expected a sim.tasks.TrainingScenes or None .*got 'yes'"):
        evaluate(None, None, policy_name="x", episodes=1, training_scenes="yes")  # before any env or policy is used


def test_a_checkpoint_folder_whose_name_begins_with_ws_is_a_checkpoint_not_a_server(tmp_path, monkeypatch, capsys):
    """`--policy ws_run` (a checkpoint folder) was taken for a server by its first two letters: its --steps refused as
    "checkpoint policies only" and its checks before the weights load (the training-scene warning) skipped. A server
    is told by its scheme, ws:// or wss://, as `policy_kind` tells it."""
    from worldpolicy.sim import policies
    from worldpolicy.testing import make_tiny_checkpoint

    make_tiny_checkpoint(tmp_path / "ws_run")
    (tmp_path / "ws_run" / "training_summary.json").write_text(json.dumps(
        {"scratch": {"task": "reach", "seed": 0}, "stages": {"dataset": {"episodes": 5, "failed_seeds": []}}}))

    def loaded(*args, **kwargs):
        raise ValueError("not loaded")

    monkeypatch.setattr(policies, "make_policy", loaded)
    monkeypatch.chdir(tmp_path)
    main(["sim", "--policy", "ws_run", "--steps", "1", "--task", "reach", "--seed", "0", "--episodes", "2",
          "--no-progress", "--image-size", "24x24", "--videos", "0", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert "checkpoint policies only" not in err and "not loaded" in err
    assert "2 of the 2 episodes (seeds 0..1) are reach scenes ws_run was trained on" in err


def test_a_checkpoint_given_as_dot_is_named_by_its_folder_in_the_report(tmp_path, monkeypatch):
    """`--policy .` named the run by `Path('.').name`, nothing: report.md's title said 'reach · ' and report.json's
    policy was ''."""
    pytest.importorskip("diffusers")
    from worldpolicy.testing import make_tiny_checkpoint

    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    monkeypatch.chdir(ckpt)
    assert main(["sim", "--policy", ".", "--task", "reach", "--episodes", "1", "--steps", "1", "--image-size", "48x64",
                 "--videos", "0", "--max-steps", "1", "--no-progress", "--no-plots",
                 "--out", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "report.json").read_text())["policy"] == "tiny"
    assert (tmp_path / "run" / "report.md").read_text().startswith("# reach · tiny\n")


def test_a_run_of_the_shipped_model_is_labelled_shipped_and_an_older_run_labelled_by_its_folder_resumes(tmp_path):
    """`--policy shipped` labelled its report by the folder's name (`panda_reach`), where its training-scene warning,
    the demo and every saved setting say `shipped` (`models.checkpoint_name`). A run from before (its report labelled
    `panda_reach`) still resumes (its checkpoint's files are compared, not its label), and is labelled as a run is
    now once it runs more episodes (finished, it is left as it is, as every finished run resumed is)."""
    out = tmp_path / "run"
    flags = ["sim", "--policy", "shipped", "--steps", "1", "--max-steps", "1", "--videos", "0", "--no-progress",
             "--no-plots", "--device", "cpu", "--out", str(out)]
    assert main([*flags, "--episodes", "1"]) == 0
    doc = json.loads((out / "report.json").read_text())
    assert (doc["policy"], doc["policy_settings"]["path"]) == ("shipped", "shipped")
    assert (out / "report.md").read_text().startswith("# reach · shipped\n")
    (out / "report.json").write_text(json.dumps({**doc, "policy": "panda_reach"}))  # as an older run labelled it
    assert main([*flags, "--episodes", "2", "--resume"]) == 0
    doc = json.loads((out / "report.json").read_text())
    assert (doc["policy"], doc["n_episodes"]) == ("shipped", 2)
    old = {**doc, "policy": "panda_reach"}
    (out / "report.json").write_text(json.dumps(old))
    assert main([*flags, "--episodes", "2", "--resume"]) == 0  # none left to run
    assert json.loads((out / "report.json").read_text()) == old


def test_a_report_says_which_episodes_were_scenes_the_checkpoint_was_trained_on(tmp_path):
    """The warning went to the log only: a report read later did not say whether its success measured new scenes or
    the training data. report.json keeps it (`training_scenes`, counting the episodes that ran: a partial report's
    too) and report.md says it, as it says held-out scenes; read back for --resume."""
    from worldpolicy.sim.evaluate import EvalReport, read_report, write_report
    from worldpolicy.sim.rollout import EpisodeResult
    from worldpolicy.sim.tasks import TrainingScenes

    def episode(seed):
        return EpisodeResult(seed=seed, success=True, steps=3, success_step=3, prompt="reach", chunks=1,
                             final_distance_m=0.01, policy_s=0.1, wall_s=0.2)

    scenes = TrainingScenes("reach", "its dataset data/reach", (0, 9), (7, 9))
    report = EvalReport("reach", "step-10", "panda", {"kind": "execute"}, 15.0, 7, [episode(7), episode(8)],
                        requested=3, training_scenes=scenes)
    stored = {"task": "reach", "source": "its dataset data/reach", "recorded_seeds": [0, 9], "seeds": [7]}
    assert report.to_json()["training_scenes"] == stored  # seed 9 has not run yet
    write_report(report, tmp_path, plots=False)
    assert json.loads((tmp_path / "report.json").read_text())["training_scenes"] == stored
    assert ("**Training scenes: 1 of the 2 episodes (seed 7) are scenes the checkpoint was trained on (its dataset "
            "data/reach: reach seeds 0..9): their success says how well it fits its training data, not how it does "
            "on new scenes. Seeds from 10000 on are held out.**") in (tmp_path / "report.md").read_text()
    assert read_report(tmp_path).training_scenes == TrainingScenes("reach", "its dataset data/reach", (0, 9), (7,))
    held_out = EvalReport("reach", "step-10", "panda", {"kind": "execute"}, 15.0, 10_000, [episode(10_000)],
                          training_scenes=TrainingScenes("reach", "its dataset data/reach", (0, 9), ()))
    assert ("Held out: none of these episodes is a scene the checkpoint was trained on (its dataset data/reach: "
            "reach seeds 0..9).") in held_out.markdown()
    assert "rained on" not in EvalReport("reach", "scripted", "panda", {"kind": "execute"}, 15.0, 0,
                                         [episode(0)]).markdown()  # not known: nothing said


def test_a_training_scene_warning_names_the_checkpoint_however_a_caller_gives_it(tmp_path, monkeypatch):
    """sim, the demo, dataset eval and the agents' tools each gave the checkpoint as they had it (`.`, a folder, the
    shipped model's path), and each was mended in turn to name it by `models.checkpoint_name`: `trained_on` names it
    for all of them."""
    from worldpolicy.models import shipped_model
    from worldpolicy.sim.tasks import TrainingScenes

    scenes = TrainingScenes("reach", "its dataset data/reach", (0, 9), (7,))
    folder = tmp_path / "my_ckpt"
    folder.mkdir()
    monkeypatch.chdir(folder)
    for given in (".", str(folder), folder):
        assert scenes.warning(3, given, "--seed ").startswith(
            "1 of the 3 episodes (seed 7) are reach scenes my_ckpt was trained on (its dataset data/reach recorded")
    assert " are reach scenes shipped was trained on " in scenes.trained_on(3, shipped_model())


def test_evaluate_records_a_checkpoints_training_scenes(tmp_path):
    """`evaluate` itself checks a checkpoint folder's training data (the shipped model's kind: training_summary.json),
    for the Python API as for the command, and its default seed is the held-out one."""
    pytest.importorskip("diffusers")
    from worldpolicy import load_policy
    from worldpolicy.sim.env import TabletopEnv
    from worldpolicy.sim.evaluate import evaluate
    from worldpolicy.sim.policies import wrap_policy
    from worldpolicy.testing import make_tiny_checkpoint

    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    (ckpt / "training_summary.json").write_text(json.dumps(
        {"scratch": {"task": "reach", "seed": 0}, "stages": {"dataset": {"episodes": 4, "failed_seeds": [2]}}}))
    policy = wrap_policy(load_policy(ckpt, steps=1))
    env, push = (TabletopEnv(task, image_size=(48, 64), max_steps=1) for task in ("reach", "push"))
    try:
        trained = evaluate(env, policy, policy_name="tiny", episodes=3, seed=1, progress=False)
        held_out = evaluate(env, policy, policy_name="tiny", episodes=1, progress=False)
        pushed = evaluate(push, policy, policy_name="tiny", episodes=1, seed=0, progress=False)
    finally:
        env.close()
        push.close()
    source = "the recording in its training_summary.json"
    assert trained.to_json()["training_scenes"] == {"task": "reach", "source": source, "recorded_seeds": [0, 4],
                                                    "seeds": [1, 3]}  # seed 2 failed: not recorded
    assert held_out.seed == 10_000 and held_out.to_json()["training_scenes"]["seeds"] == []
    assert pushed.to_json()["training_scenes"]["seeds"] == []  # push scenes: reach's seeds are not them


@pytest.mark.parametrize("argv, fps, warned", [
    (["--control-hz", "5", "--steps", "1"], 15.0, "acts at 15 fps but --control-hz is 5"),  # the shipped model
    (["--control-hz", "15", "--steps", "1"], 15.0, None),
    (["--policy", "scripted", "--control-hz", "5"], 5.0, None),  # the expert plans at the control rate
    (["--policy", "random", "--embodiment", "bridge"], None, None),  # noise has no rate
])
def test_sim_cli_warns_when_the_policy_rate_is_not_the_control_rate(argv, fps, warned, tmp_path, capsys):
    out = tmp_path / "run"
    image_size = "none" if "--policy" in argv else "48x64"  # the shipped model sees its cameras
    assert main(["sim", "--task", "reach", "--episodes", "1", "--max-steps", "2", "--image-size", image_size,
                 "--videos", "0", "--no-plots", "--no-progress", "--out", str(out), *argv]) == 0
    err = capsys.readouterr().err
    if warned:
        assert warned in err and "pass --control-hz 15 " in err
    else:
        assert "fps but --control-hz" not in err
    assert json.loads((out / "report.json").read_text())["policy_fps"] == fps


def test_sim_cli_runs_a_checkpoint_at_its_own_rate_when_no_control_hz_is_given(tmp_path, capsys, monkeypatch):
    """--control-hz defaulted to 15 whatever the policy: a 10 fps robot's checkpoint ran 1.5 times too fast, with a
    warning naming the fix. Left out, it is the checkpoint's rate, read before the env is made and the weights load
    (once); given, it is kept (and warned about); random actions have no rate and run at 15 Hz."""
    import shutil

    from worldpolicy.models import shipped_model
    from worldpolicy.policy import Policy

    slow = tmp_path / "slow"
    shutil.copytree(shipped_model(), slow)
    spec = json.loads((slow / "embodiment.json").read_text())
    (slow / "embodiment.json").write_text(json.dumps({**spec, "fps": 10}))
    loads = []
    real = Policy.from_pretrained.__func__
    monkeypatch.setattr(Policy, "from_pretrained", classmethod(lambda cls, *a, **k: loads.append(1) or real(cls, *a,
                                                                                                             **k)))
    common = ["sim", "--task", "reach", "--episodes", "1", "--max-steps", "2", "--videos", "0", "--no-plots",
              "--no-progress"]
    for out, argv, hz in (("own", ["--policy", str(slow), "--steps", "1", "--image-size", "48x64"], 10.0),
                          ("given", ["--policy", str(slow), "--steps", "1", "--image-size", "48x64",
                                     "--control-hz", "15"], 15.0),
                          ("random", ["--policy", "random", "--image-size", "none"], 15.0)):
        loads.clear()
        assert main([*common, "--out", str(tmp_path / out), *argv]) == 0
        err = capsys.readouterr().err
        doc = json.loads((tmp_path / out / "report.json").read_text())
        assert doc["control_hz"] == hz, out
        assert ("acts at 10 fps but --control-hz is 15" in err) == (out == "given")
        assert loads == ([1] if out != "random" else []), out
    # a server's rate is known once connected: the env is made again at it
    pytest.importorskip("websockets")
    from worldpolicy.serving import PolicyServer, ServerConfig, ServerThread

    served = Policy.from_pretrained(slow, device="cpu", steps=1)
    with ServerThread(PolicyServer(served, ServerConfig(host="127.0.0.1", port=0))) as server:
        assert main([*common, "--out", str(tmp_path / "served"), "--policy", server.url, "--image-size", "48x64"]) == 0
    doc = json.loads((tmp_path / "served" / "report.json").read_text())
    assert (doc["control_hz"], doc["task"]) == (10.0, "reach") and "fps but --control-hz" not in capsys.readouterr().err


def test_sim_cli_a_rerun_that_fails_in_its_first_episode_leaves_no_stale_report(tmp_path, capsys, monkeypatch):
    """The old report.json/.md stayed (describing the previous run) while its plot and videos were gone."""
    out = tmp_path / "run"
    common = ["sim", "--task", "reach", "--image-size", "48x64", "--no-progress", "--out", str(out)]
    assert main([*common, "--policy", "scripted", "--episodes", "1", "--videos", "1", "--max-steps", "3"]) == 0
    from worldpolicy.sim.rollout import Rollout

    def fail(self, seed, **kwargs):
        raise ValueError("the policy server went away")

    monkeypatch.setattr(Rollout, "run", fail)
    assert main([*common, "--policy", "random", "--episodes", "2", "--overwrite"]) == 2
    assert "the policy server went away" in capsys.readouterr().err
    # the previous run's files gone; this session's log says why it stopped (its lines alone: the old run's went too)
    assert [p.name for p in out.rglob("*") if p.is_file()] == ["sim.log"]
    log = (out / "sim.log").read_text()
    assert log.count("session started: ") == 1 and "--policy random" in log
    assert log.endswith(" session stopped by an error: ValueError: the policy server went away\n")


def test_sim_cli_no_offscreen_rendering_is_one_line_and_leaves_the_previous_run(tmp_path, capsys, monkeypatch):
    """MUJOCO_GL=glfw without a display printed a 43-line traceback ending in RenderingUnavailable."""
    import worldpolicy.sim.env
    from worldpolicy.sim.rendering import RenderingUnavailable

    out = tmp_path / "run"
    common = ["sim", "--task", "reach", "--image-size", "48x64", "--no-progress", "--out", str(out)]
    assert main([*common, "--policy", "scripted", "--episodes", "1", "--videos", "1", "--max-steps", "3"]) == 0
    kept = sorted(p.relative_to(out) for p in out.rglob("*"))

    def no_gl(*args, **kwargs):
        raise RenderingUnavailable("offscreen rendering failed with MUJOCO_GL=glfw (no display)")

    monkeypatch.setattr(worldpolicy.sim.env, "make_renderer", no_gl)
    assert main([*common, "--policy", "scripted", "--episodes", "1", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "sim: error: offscreen rendering failed with MUJOCO_GL=glfw" in err and "Traceback" not in err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == kept


def test_sim_cli_mujoco_gl_osmesa_without_the_library_is_one_line(tmp_path):
    """`import mujoco` failed with "'NoneType' object has no attribute 'glGetError'" and a 25-line traceback."""
    import ctypes.util
    import os
    import subprocess
    import sys
    from pathlib import Path

    import worldpolicy

    if ctypes.util.find_library("OSMesa"):
        pytest.skip("libOSMesa is installed here")
    env = {k: v for k, v in os.environ.items() if k != "PYOPENGL_PLATFORM"}  # set by this process's EGL context
    env.update(MUJOCO_GL="osmesa", PYTHONPATH=str(Path(worldpolicy.__file__).parents[1]))
    argv = [sys.executable, "-m", "worldpolicy.cli", "sim", "--policy", "scripted", "--out", str(tmp_path / "run")]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    expected = ("worldpolicy sim: error: MUJOCO_GL=osmesa but libOSMesa is not installed: `apt-get install -y "
                "libosmesa6`, or unset MUJOCO_GL to use whichever of egl and osmesa is installed")
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [expected]


def test_a_checkpoint_is_evaluated_on_its_embodiments_task_by_default(tmp_path):
    """The shipped model given by its path, or a checkpoint fine-tuned from it (its embodiment.json), ran pick_place."""
    import shutil

    from worldpolicy.models import resolve_checkpoint, shipped_model
    from worldpolicy.sim.commands import _default_task

    assert resolve_checkpoint("shipped") == str(shipped_model()) and resolve_checkpoint("x/y", fetch=False) == "x/y"
    assert _default_task(str(shipped_model())) == "reach"
    fine_tuned = tmp_path / "step-0000002"
    fine_tuned.mkdir()
    shutil.copyfile(shipped_model() / "embodiment.json", fine_tuned / "embodiment.json")
    assert _default_task(str(fine_tuned)) == "reach"
    (fine_tuned / "embodiment.json").write_text('{"name": "other_arm"}')
    assert _default_task(str(fine_tuned)) == "pick_place"
    (fine_tuned / "embodiment.json").write_text("{broken")
    assert _default_task(str(fine_tuned)) == "pick_place"  # the load reports it


def test_a_ws_server_is_evaluated_on_its_embodiments_task_by_default(tmp_path, capsys):
    """`sim --policy ws://...` against a server of the shipped model (or one fine-tuned from it) ran pick_place: the
    task was chosen before the server said which model it serves."""
    pytest.importorskip("websockets")
    pytest.importorskip("diffusers")
    import worldpolicy
    from worldpolicy.serving import PolicyServer, ServerConfig, ServerThread

    policy = worldpolicy.load_policy("shipped", device="cpu")
    with ServerThread(PolicyServer(policy, ServerConfig(host="127.0.0.1", port=0))) as server:
        rc = main(["sim", "--policy", server.url, "--episodes", "1", "--max-steps", "1", "--videos", "0",
                   "--no-plots", "--no-progress", "--out", str(tmp_path / "run")])
        assert rc == 0
        doc = json.loads((tmp_path / "run" / "report.json").read_text())
        assert doc["task"] == "reach" and capsys.readouterr().out.startswith(f"reach · shipped @ {server.url}: ")
        rc = main(["sim", "--policy", server.url, "--task", "push", "--episodes", "1", "--max-steps", "1",
                   "--videos", "0", "--no-plots", "--no-progress", "--out", str(tmp_path / "push")])
        assert rc == 0 and json.loads((tmp_path / "push" / "report.json").read_text())["task"] == "push"  # as given


def test_the_strategy_flag_offers_the_rollouts_strategies():
    """`--strategy`'s choices are spelled out in sim/commands.py (its --help imports no gymnasium, which the rollout
    needs); they must stay the strategies `ChunkStrategy` accepts."""
    import argparse

    from worldpolicy.robot.control import STRATEGIES
    from worldpolicy.sim.commands import _add_arguments

    parser = argparse.ArgumentParser()
    _add_arguments(parser)
    (flag,) = [a for a in parser._actions if a.dest == "strategy"]
    assert tuple(flag.choices) == STRATEGIES and flag.default == "execute"


def test_a_run_with_a_latency_records_it_and_compare_lists_it(tmp_path, capsys):
    """The same seeds at --latency 0 and 200: the report says both the milliseconds and the steps they ran as, the
    page and report.md show it, a resume with another latency is refused naming --latency, and `sim compare` lists it
    among the settings that differ."""
    common = ["sim", "--policy", "scripted", "--task", "reach", "--episodes", "3", "--videos", "0", "--no-progress"]
    assert main([*common, "--no-plots", "--out", str(tmp_path / "clean")]) == 0
    assert main([*common, "--latency", "200", "--out", str(tmp_path / "late")]) == 0
    clean, late = (json.loads((tmp_path / run / "report.json").read_text()) for run in ("clean", "late"))
    assert clean["latency"] == {"ms": 0.0, "ticks": 0} and late["latency"] == {"ms": 200.0, "ticks": 3}
    steps = [[e["steps"] for e in doc["episodes"]] for doc in (clean, late)]
    assert all(b > a for a, b in zip(*steps)), steps  # each request cost 3 held steps: later to the ball
    assert "latency 200 ms = 3 steps at 15 Hz" in (tmp_path / "late" / "report.md").read_text()
    assert "latency" not in (tmp_path / "clean" / "report.md").read_text().replace(str(tmp_path), "")  # its command
    assert "<b>latency</b><span>200 ms = 3 steps</span>" in (tmp_path / "late" / "index.html").read_text()
    capsys.readouterr()
    assert main([*common, "--latency", "100", "--resume", "--out", str(tmp_path / "late")]) == 2
    assert "--latency: 200.0 -> 100.0" in capsys.readouterr().err
    assert main(["sim", "compare", str(tmp_path / "clean"), str(tmp_path / "late"), "--out", str(tmp_path / "cmp"),
                 "--no-plots"]) == 0
    cmp = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [(d["setting"], d["flag"], d["values"]) for d in cmp["differences"]] == [
        ("latency.ms", "--latency", [0.0, 200.0]), ("latency.ticks", "--latency", [0, 3])]
    assert cmp["pairs"][0]["both"] == 3


def test_ensemble_with_a_latency_of_a_whole_chunk_is_refused_before_any_episode(tmp_path, capsys):
    """The scripted expert's chunks are 8 steps: 600 ms (9 steps at 15 Hz) would drop every ensemble reply; async
    with the same latency runs and succeeds."""
    common = ["sim", "--policy", "scripted", "--task", "reach", "--episodes", "1", "--videos", "0", "--no-progress",
              "--no-plots", "--latency", "600"]
    assert main([*common, "--strategy", "ensemble", "--out", str(tmp_path / "ens")]) == 2
    assert ("sim: error: --latency: 600 ms is 9 control steps at 15 Hz, at or past the policy's 8-step chunk: with "
            "--strategy=ensemble every reply lands past its whole chunk and is dropped, so the arm never moves; "
            "accepted with --strategy=ensemble: 0 to below 500 ms (7 steps), or --strategy=execute or --strategy=async"
            in capsys.readouterr().err)
    assert not (tmp_path / "ens" / "report.json").exists()
    assert main([*common, "--strategy", "async", "--out", str(tmp_path / "async")]) == 0
    assert json.loads((tmp_path / "async" / "report.json").read_text())["successes"] == 1


def test_a_latency_under_half_a_step_runs_as_none_warned(tmp_path, capsys):
    """docs/robot.md: under half a control step runs as none, warned (`Rollout`'s warning, said by the command)."""
    assert main(["sim", "--policy", "scripted", "--task", "reach", "--episodes", "1", "--max-steps", "5", "--videos",
                 "0", "--image-size", "none", "--no-progress", "--no-plots", "--latency", "20",
                 "--out", str(tmp_path / "run")]) == 0
    assert ("latency: 20 ms is under half a control step at 15 Hz, so it runs as none (0 steps)"
            in capsys.readouterr().err)
    assert json.loads((tmp_path / "run" / "report.json").read_text())["latency"] == {"ms": 20.0, "ticks": 0}


@pytest.mark.parametrize("command", [["sim"], ["dataset", "from-sim"]])
@pytest.mark.parametrize("given", ["fast", "-5", "nan", "inf", "-0.5"])
def test_a_latency_that_is_no_number_or_below_0_is_refused_by_the_parser_alike(command, given, tmp_path, capsys):
    """A word and a negative number are refused the same way (`-5` was refused after the parse, as -5.0, a word with
    the usage): the flag, the text as typed and what is accepted, by `sim` and `dataset from-sim` alike."""
    with pytest.raises(SystemExit) as exit:
        main([*command, "--policy", "scripted", "--latency", given, "--out", str(tmp_path / "run")])
    assert exit.value.code == 2 and not (tmp_path / "run").exists()
    err = capsys.readouterr().err
    assert f"usage: worldpolicy {' '.join(command)}" in err
    assert (f"{command[-1]}: error: argument --latency: expected milliseconds, a finite number >= 0 (0: none), "
            f"e.g. 200; got '{given}'") in err


def test_a_report_from_before_latency_reads_as_none():
    """A report.json without `latency` ran with none: it resumes and compares as a clean run."""
    from worldpolicy.sim.evaluate import EvalReport

    doc = {"schema": "worldpolicy.sim_eval/v1", "task": "reach", "policy": "scripted", "robot": "panda",
           "strategy": {"kind": "execute"}, "control_hz": 15.0, "seed": 0, "episodes": []}
    assert EvalReport.from_json(doc).settings()["latency.ms"] == 0.0


def test_the_command_that_continues_a_run_repeats_its_latency():
    import argparse

    from worldpolicy.sim import commands

    parser = argparse.ArgumentParser()
    commands._add_arguments(parser)
    args = parser.parse_args(["--policy", "scripted", "--latency", "250"])
    assert commands._resume_command(args) == "worldpolicy sim --policy scripted --seed 10000 --latency 250.0 --resume"


def test_rtc_is_a_setting_a_resume_compares_and_an_older_report_ran_without():
    """report.json records `rtc`; one written before it existed reads as False, so it continues and compares as a run
    without; a resume that changes it is refused naming --rtc."""
    from worldpolicy.sim.evaluate import EvalReport, flag_of, resume_conflicts

    doc = {"schema": "worldpolicy.sim_eval/v1", "task": "reach", "policy": "p", "robot": "panda",
           "strategy": {"kind": "async"}, "control_hz": 15.0, "seed": 0, "episodes": [], "policy_settings": {}}
    old = EvalReport.from_json(doc)
    assert old.rtc is False and old.settings()["rtc"] is False
    assert resume_conflicts(old, {**old.settings(), "rtc": True}) == [("rtc", False, True)]
    assert flag_of("rtc", None) == "--rtc"
    assert EvalReport.from_json({**doc, "rtc": True}).settings()["rtc"] is True


def test_the_command_that_continues_a_run_repeats_rtc():
    import argparse

    from worldpolicy.sim import commands

    parser = argparse.ArgumentParser()
    commands._add_arguments(parser)
    args = parser.parse_args(["--policy", "ws://gpu:8000", "--strategy", "async", "--rtc"])
    assert commands._resume_command(args) == ("worldpolicy sim --policy ws://gpu:8000 --seed 10000 --strategy async "
                                              "--rtc --resume")


def test_a_bare_sim_says_where_it_writes_its_run_before_it_starts(tmp_path, capsys, monkeypatch):
    """`worldpolicy sim` without --out showed a progress bar and nothing else until the run ended: where its run goes
    (the default folder) is said on stderr before the first episode, as a resumed run's is."""
    monkeypatch.chdir(tmp_path)
    argv = ["sim", "--policy", "scripted", "--task", "reach", "--episodes", "1", "--videos", "0", "--no-plots"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    said = ("sim: writing the run in sim_runs (each episode appended to episodes.jsonl as it ends, what this console "
            "shows to sim.log; --out picks another folder)")
    assert said in err and err.index(said) < err.index("reach/scripted")  # before the progress bar
    assert (tmp_path / "sim_runs" / "report.json").is_file()
    assert main([*argv[:6], "2", *argv[7:], "--resume"]) == 0
    assert ("sim: continuing the run in sim_runs: 1 episode kept (seed 10000), 1 to run (seed 10001) "
            "(each episode appended to episodes.jsonl") in capsys.readouterr().err


def test_each_progress_line_in_a_log_counts_the_episodes_its_success_counts(tmp_path, capsys, monkeypatch):
    """In a log (`nohup worldpolicy sim ... > log`), an episode's end drew its success count before the bar's:
    "1/3 [...] success=0/2", one episode ahead of the bar on every line."""
    import re

    monkeypatch.setenv("TQDM_MININTERVAL", "0")  # a line for every redraw
    argv = ["sim", "--policy", "scripted", "--task", "reach", "--episodes", "3", "--image-size", "none",
            "--videos", "0", "--max-steps", "2", "--no-plots", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    lines = re.findall(r"(\d+)/3 \[.*success=\d+/(\d+)", capsys.readouterr().err)
    assert len(lines) >= 3 and all(bar == joined for bar, joined in lines), lines


@pytest.mark.parametrize("stdout", ["none", "closed"])
def test_the_comparison_table_width_is_the_whole_table_where_stdout_is_none_or_closed(monkeypatch, tmp_path, stdout):
    """`sim --compare`'s table width asked `sys.stdout.isatty()` itself: under pythonw (stdout None) or with stdout
    closed that raised (AttributeError, ValueError) where no terminal means the whole table."""
    import io

    from worldpolicy.sim.commands import _terminal_width

    closed = io.StringIO()
    closed.close()
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr("sys.stdout", None if stdout == "none" else closed)
    assert _terminal_width() is None
