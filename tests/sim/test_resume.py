"""`worldpolicy sim --resume` / `evaluate(..., resume=)`: an interrupted or shorter run continues to the episodes an
uninterrupted run would have given, and a run with other settings is refused before anything loads."""

import json
import os
import shlex
import shutil

import pytest

pytest.importorskip("mink")

from worldpolicy.cli import main

FAST = ["--task", "reach", "--image-size", "none", "--videos", "0", "--max-steps", "2", "--no-progress", "--no-plots"]
TIMING = ("wall_s", "policy_s")  # measured, not computed: the only per-episode numbers a resume may change


def _changed(argv: list[str], change: list[str]) -> list[str]:
    """`argv` with each flag of `change` set to the value given there (a flag given twice is refused), others added."""
    argv = list(argv)
    for i, word in enumerate(change):
        if not word.startswith("--"):
            continue
        value = change[i + 1:i + 2] if i + 1 < len(change) and not change[i + 1].startswith("--") else []
        if word in argv and value:
            argv[argv.index(word) + 1] = value[0]
        elif word not in argv:
            argv += [word, *value]
    return argv


def _episodes(out):
    """What each episode did (everything but its timings)."""
    doc = json.loads((out / "report.json").read_text())
    return [{k: v for k, v in e.items() if k not in TIMING} for e in doc["episodes"]]


def _interrupt_episode(monkeypatch, n: int) -> None:
    """Ctrl-C during the n-th episode (1-based) of the next run, once."""
    from worldpolicy.sim.rollout import Rollout

    real_run, calls = Rollout.run, []

    def run(self, seed, **kwargs):
        calls.append(seed)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real_run(self, seed, **kwargs)

    monkeypatch.setattr(Rollout, "run", run)


def test_an_interrupted_run_continued_with_the_printed_command_is_the_uninterrupted_run(tmp_path, capsys, monkeypatch):
    common = ["--policy", "scripted", "--task", "reach", "--episodes", "4", "--image-size", "none", "--videos", "0",
              "--max-steps", "12"]
    assert main(["sim", *common, "--out", str(tmp_path / "whole"), "--no-progress"]) == 0
    out = tmp_path / "resumed"
    _interrupt_episode(monkeypatch, 3)
    assert main(["sim", *common, "--out", str(out), "--no-progress"]) == 130
    err = capsys.readouterr().err
    again = shlex.join(["worldpolicy", "sim", "--policy", "scripted", "--task", "reach", "--episodes", "4",
                        "--seed", "10000", "--max-steps", "12", "--image-size", "none", "--videos", "0", "--out", str(out),
                        "--no-progress", "--resume"])  # flags in --help's order
    assert f"interrupted after 2 of 4 episodes finished; their report: {out / 'report.json'}; to continue: " \
           f"{again}\n" in err
    assert len(_episodes(out)) == 2
    assert main(shlex.split(again)[1:]) == 0
    # which episodes it keeps and which it runs, said before it runs them (with --no-progress nothing else says it)
    assert (f"sim: continuing the run in {out}: 2 episodes kept (seeds 10000..10001), 2 to run (seeds 10002..10003) "
            "(each episode appended to episodes.jsonl as it ends") in capsys.readouterr().err
    assert _episodes(out) == _episodes(tmp_path / "whole") and [e["seed"] for e in _episodes(out)] == [10_000, 10_001, 10_002, 10_003]
    doc = json.loads((out / "report.json").read_text())
    assert doc["n_episodes"] == doc["episodes_requested"] == 4 and "Incomplete" not in (out / "report.md").read_text()


def test_a_resume_without_episodes_finishes_the_run_as_it_asked(tmp_path, capsys, monkeypatch):
    """`--resume` typed onto the command without `--episodes` took the default, 10, and a 200-episode run stopped at
    25 was refused as "10 is fewer than the 25 finished": it finishes the episodes the stored run asked for."""
    out = tmp_path / "run"
    argv = ["sim", "--policy", "random", *FAST, "--out", str(out)]
    _interrupt_episode(monkeypatch, 2)
    assert main([*argv, "--episodes", "12"]) == 130
    assert "1 of 12 episodes finished" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    assert "1 episode kept (seed 10000), 11 to run (seeds 10001..10011)" in capsys.readouterr().err
    doc = json.loads((out / "report.json").read_text())
    assert doc["n_episodes"] == doc["episodes_requested"] == 12
    assert main([*argv, "--overwrite"]) == 0  # not resuming: the default
    assert json.loads((out / "report.json").read_text())["n_episodes"] == 10


def test_the_continue_command_names_the_seed_and_leaves_out_other_defaults_the_api_key_and_overwrite():
    """--seed is always named: its default changed from 0 to 10000, and a printed command left without it then asked
    for other scenes than the run it was printed to continue."""
    from worldpolicy.cli import build_parser
    from worldpolicy.sim.commands import _resume_command

    args = build_parser().parse_args(["sim", "--policy", "ws://box:8000", "--api-key", "s3cret", "--imagine",
                                      "--out", "my run", "--overwrite"])  # --resume with it is refused
    assert _resume_command(args) == "worldpolicy sim --policy ws://box:8000 --seed 10000 --imagine --out 'my run' --resume"


@pytest.fixture(scope="module")
def two_random_episodes(tmp_path_factory):
    out = tmp_path_factory.mktemp("stored") / "run"
    assert main(["sim", "--policy", "random", *FAST, "--episodes", "2", "--out", str(out)]) == 0
    return out


def _copy(run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(run, out)
    return out, (out / "report.json").read_bytes()


@pytest.mark.parametrize("change, message", [
    (["--task", "push"], "--task: 'reach' -> 'push'"),
    (["--seed", "1"], "--seed: 10000 -> 1"),
    (["--robot", "fr3"], "--robot: 'panda' -> 'fr3'"),
    (["--control-hz", "10"], "--control-hz: 15.0 -> 10.0"),
    (["--max-steps", "3"], "--max-steps: 2 -> 3"),
    (["--strategy", "async"], "--strategy: 'execute' -> 'async'"),
    (["--execute-steps", "8"], "--execute-steps: none -> 8"),  # none: not asked for (k from the chunk)
    (["--perturb", "light=0.5"], "--perturb: none -> 'light=0.5'"),  # none: not given, as --help says it
    (["--strategy", "ensemble", "--ensemble-decay", "0.5"],  # the default (0.1) was stored: it round-trips
     "--strategy: 'execute' -> 'ensemble'; --ensemble-decay: 0.1 -> 0.5"),
    (["--embodiment", "bridge"],  # its chunk is 16 actions (the default k follows from the chunk)
     "--embodiment: 'droid/relative_pose' -> 'bridge'; --policy's chunk_size: 32 -> 16"),
    (["--policy", "scripted"],  # named once (by name and by kind), no other policy setting listed
     "--policy: 'random' -> 'scripted'; --embodiment: 'droid/relative_pose' -> 'droid/joint_pos'"),
])
def test_a_resume_with_other_settings_is_refused_naming_each(change, message, two_random_episodes, tmp_path, capsys):
    out, stored = _copy(two_random_episodes, tmp_path)
    argv = _changed(["sim", "--policy", "random", *FAST, "--episodes", "3", "--out", str(out), "--resume"], change)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"error: --resume: the run in {str(out)!r} ran with other settings ({out / 'report.json'}), old -> new: " \
           f"{message}. Pass the old values to continue it, or --overwrite instead of --resume to start over (replacing it)\n" in err
    assert (out / "report.json").read_bytes() == stored


def test_a_resume_of_a_run_that_stored_an_unused_ensemble_decay_goes_ahead(two_random_episodes, tmp_path, capsys):
    """Before --ensemble-decay was refused outside --strategy ensemble, a run could store one it never used; the
    decay it would now have to be given to continue is refused, so it is not compared unless a run blends chunks."""
    out, stored = _copy(two_random_episodes, tmp_path)
    doc = json.loads(stored)
    assert doc["strategy"]["kind"] == "execute" and doc["strategy"]["ensemble_decay"] == 0.1  # stored all the same
    doc["strategy"]["ensemble_decay"] = 0.5
    (out / "report.json").write_text(json.dumps(doc))
    assert main(["sim", "--policy", "random", *FAST, "--episodes", "2", "--out", str(out), "--resume"]) == 0
    assert "already has its 2 episodes; nothing to run" in capsys.readouterr().out
    doc["strategy"]["kind"] = "ensemble"  # where it weighs the chunks, it is compared
    (out / "report.json").write_text(json.dumps(doc))
    argv = ["sim", "--policy", "random", *FAST, "--episodes", "2", "--out", str(out), "--strategy", "ensemble"]
    assert main([*argv, "--resume"]) == 2
    assert "--ensemble-decay: 0.5 -> 0.1" in capsys.readouterr().err
    assert main([*argv, "--ensemble-decay", "0.5", "--resume"]) == 0


def test_a_resume_needs_a_report_of_this_version_and_no_fewer_episodes(two_random_episodes, tmp_path, capsys):
    resume = ["sim", "--policy", "random", *FAST, "--resume"]
    empty = tmp_path / "empty"
    assert main([*resume, "--out", str(empty)]) == 2
    assert (f"--resume: {str(empty)!r} holds no sim report (report.json) to continue; drop --resume to start a run "
            "there") in capsys.readouterr().err
    assert not empty.exists()  # made when --out was checked, removed with the refusal

    out, stored = _copy(two_random_episodes, tmp_path)
    assert main([*resume, "--episodes", "1", "--out", str(out)]) == 2
    assert ("--episodes: 1 is fewer than the 2 the stored run already finished; pass at least 2"
            in capsys.readouterr().err)

    doc = json.loads(stored)
    del doc["policy_settings"]  # as a report of an older version
    (out / "report.json").write_text(json.dumps(doc))
    assert main([*resume, "--episodes", "3", "--out", str(out)]) == 2
    assert (f"--resume: {out / 'report.json'}: it was written by an older worldpolicy, which did not record the "
            "policy's settings") in capsys.readouterr().err
    (out / "report.json").write_text(json.dumps({"schema": "worldpolicy.other/v1"}))
    assert main([*resume, "--episodes", "3", "--out", str(out)]) == 2
    assert (f"--resume: {out / 'report.json'}: not a sim report (schema 'worldpolicy.other/v1', expected "
            "'worldpolicy.sim_eval/v1'); pass --overwrite instead of --resume to start over there") in capsys.readouterr().err


VERSIONS_FIX = (". Its episodes and this worldpolicy's would not make one success rate: start a new run with another "
                "--out, or pass --overwrite instead of --resume to rerun it (replacing it)\n")


def test_a_run_records_what_judged_and_drove_it(two_random_episodes):
    from worldpolicy.sim.policies import RandomPolicy
    from worldpolicy.sim.tasks import ReachTask

    doc = json.loads((two_random_episodes / "report.json").read_text())
    assert (doc["task_version"], doc["policy_settings"]["version"]) == (ReachTask.version, RandomPolicy.version)
    assert f"task reach v{ReachTask.version}, random policy v{RandomPolicy.version}." in \
        (two_random_episodes / "report.md").read_text()


def test_a_resume_of_a_run_from_before_the_random_policys_noise_changed_is_refused(two_random_episodes, tmp_path,
                                                                                   capsys):
    """A report without versions was written before they were recorded: its random noise was drawn from the scene's
    stream (random v1), and pooling it with today's noise makes a rate of neither. reach's criteria have not changed
    since, so the task is not named."""
    out, stored = _copy(two_random_episodes, tmp_path)
    doc = json.loads(stored)
    del doc["task_version"], doc["policy_settings"]["version"]  # as an older worldpolicy wrote it
    (out / "report.json").write_text(json.dumps(doc))
    stored = (out / "report.json").read_bytes()
    assert main(["sim", "--policy", "random", *FAST, "--episodes", "3", "--out", str(out), "--resume"]) == 2
    assert (f"error: --resume: the run in {str(out)!r} was judged or driven by other versions ({out / 'report.json'}), "
            "old -> new: random policy: v1 (unrecorded) -> v2" + VERSIONS_FIX) in capsys.readouterr().err
    assert (out / "report.json").read_bytes() == stored
    assert main(["sim", "--policy", "random", *FAST, "--episodes", "3", "--out", str(out), "--overwrite"]) == 0
    assert len(_episodes(out)) == 3


def test_a_resume_of_a_run_judged_by_another_task_definition_is_refused(tmp_path, capsys, monkeypatch):
    from worldpolicy.sim.policies import ScriptedPolicy
    from worldpolicy.sim.tasks import PushTask

    out = tmp_path / "push"
    argv = ["sim", "--policy", "scripted", *_changed(FAST, ["--task", "push"]), "--out", str(out), "--episodes"]
    assert main([*argv, "1"]) == 0
    doc = json.loads((out / "report.json").read_text())
    now = PushTask.version
    assert doc["task_version"] == now and doc["policy_settings"]["version"] == ScriptedPolicy.version
    monkeypatch.setattr(PushTask, "version", now + 1)  # push judged otherwise from now on
    monkeypatch.setattr(ScriptedPolicy, "version", ScriptedPolicy.version + 1)
    assert main([*argv, "2", "--resume"]) == 2
    assert (f"old -> new: task push: v{now} -> v{now + 1}; scripted policy: v{ScriptedPolicy.version - 1} -> "
            f"v{ScriptedPolicy.version}" + VERSIONS_FIX) in capsys.readouterr().err
    del doc["task_version"]  # before versions were recorded: push's criteria v1 (a cube crossing the disc counted)
    doc["policy_settings"]["version"] = ScriptedPolicy.version
    (out / "report.json").write_text(json.dumps(doc))
    monkeypatch.setattr(PushTask, "version", now)
    assert main([*argv, "2", "--resume"]) == 2
    assert (f"old -> new: task push: v1 (unrecorded) -> v{now}" + VERSIONS_FIX) in capsys.readouterr().err
    doc["task_version"] = now
    (out / "report.json").write_text(json.dumps(doc))
    assert main([*argv, "2", "--resume"]) == 0  # the same versions: continued


def test_version_changes_of_reports_the_api_continues():
    """`evaluate(resume=)` refuses the same way; a task never changed (reach) continues an unrecorded report, and a
    checkpoint's behaviour is its files, not a version."""
    from worldpolicy.sim.evaluate import EvalReport, episodes_left, version_changes

    def report(task, version, kind="checkpoint"):
        return EvalReport(task, "ckpt", "panda", {"kind": "execute"}, 15.0, 0, requested=2,
                          policy_settings={"kind": kind, "path": "/ckpt", "files": "ab"}, task_version=version)

    assert version_changes(report("reach", None), report("reach", 1)) == []
    assert version_changes(report("pick_place", None), report("pick_place", 2)) == [("task pick_place",
                                                                                      "1 (unrecorded)", 2)]
    assert version_changes(report("pick_place", 1), report("push", 2)) == []  # another task: a setting
    with pytest.raises(ValueError, match=r"^resume: the stored run was judged or driven by other versions: task "
                                         r"pick_place: v1 \(unrecorded\) -> v2\. Its episodes and this version's "
                                         r"would not make one rate: start a new report$"):
        episodes_left(report("pick_place", None), report("pick_place", 2), 3)
    assert episodes_left(report("pick_place", 2), report("pick_place", 2), 3) == range(3)


def test_a_resume_keeps_the_recorded_videos_and_plots_every_episode(tmp_path):
    out = tmp_path / "run"
    common = ["sim", "--policy", "random", "--task", "reach", "--image-size", "16x24", "--videos", "2",
              "--max-steps", "2", "--no-progress", "--out", str(out)]
    assert main([*common, "--episodes", "1"]) == 0
    first = out / "videos" / "episode_10000.mp4"
    stamp = first.stat().st_mtime_ns
    os.utime(first, ns=(stamp - 10**9, stamp - 10**9))  # a rewrite would set it to now
    assert main([*common, "--episodes", "3", "--resume"]) == 0
    assert first.stat().st_mtime_ns == stamp - 10**9
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["episode_10000.mp4", "episode_10001.mp4"]
    page = (out / "index.html").read_text()
    assert "episode_10000.mp4" in page and "episode_10001.mp4" in page
    assert (out / "report.png").is_file() and len(_episodes(out)) == 3
    # resumed with --no-plots: the figure and page of 3 episodes are removed, not left beside a report of 4
    assert main([*common, "--episodes", "4", "--resume", "--no-plots"]) == 0
    assert len(_episodes(out)) == 4 and not (out / "report.png").exists() and not (out / "index.html").exists()


def test_evaluate_resume_continues_a_report_read_back(tmp_path):
    from worldpolicy.sim.env import TabletopEnv
    from worldpolicy.sim.evaluate import evaluate, read_report, write_report
    from worldpolicy.sim.policies import RandomPolicy

    env = TabletopEnv("reach", image_size=None, max_steps=2)
    whole = evaluate(env, RandomPolicy(), policy_name="random", episodes=3, seed=4, progress=False)
    write_report(evaluate(env, RandomPolicy(), policy_name="random", episodes=1, seed=4, progress=False), tmp_path,
                 plots=False)
    stored = read_report(tmp_path)
    assert stored.to_json() == json.loads((tmp_path / "report.json").read_text())  # read back as written
    resumed = evaluate(env, RandomPolicy(), policy_name="random", episodes=3, seed=4, progress=False, resume=stored)
    assert resumed.episodes[0] is stored.episodes[0] and resumed.requested == 3  # kept, not rerun
    assert _results(resumed) == _results(whole)

    with pytest.raises(ValueError, match=r"resume: the stored run has other settings: seed: 4 -> 5\. Continue it"):
        evaluate(env, RandomPolicy(), policy_name="random", episodes=3, seed=5, progress=False, resume=stored)
    done = evaluate(env, RandomPolicy(), policy_name="random", episodes=3, seed=4, progress=False, resume=resumed)
    assert _results(done) == _results(whole) and done.episodes[2] is resumed.episodes[2]  # nothing left to run


def _results(report):
    return [{k: v for k, v in e.to_json().items() if k not in TIMING} for e in report.episodes]


def test_a_checkpoint_run_resumed_is_the_uninterrupted_run_and_is_checked_before_it_loads(tmp_path, capsys,
                                                                                          monkeypatch):
    pytest.importorskip("diffusers")
    from worldpolicy.testing import make_tiny_checkpoint

    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    common = ["sim", "--policy", str(ckpt), "--task", "reach", "--image-size", "48x64", "--steps", "1", "--videos",
              "0", "--max-steps", "2", "--no-progress", "--no-plots"]
    assert main([*common, "--episodes", "4", "--out", str(tmp_path / "whole")]) == 0
    out = tmp_path / "resumed"
    assert main([*common, "--episodes", "2", "--out", str(out)]) == 0
    assert main([*common, "--episodes", "4", "--out", str(out), "--resume"]) == 0
    assert _episodes(out) == _episodes(tmp_path / "whole")
    settings = json.loads((out / "report.json").read_text())["policy_settings"]
    assert settings["path"] == str(ckpt.resolve()) and settings["sampling"]["steps"] == 1
    assert (settings["device"], settings["dtype"], settings["image_size"]) == ("cpu", "float32", [48, 64])

    from worldpolicy.policy import Policy

    def no_load(*args, **kwargs):
        raise AssertionError("the checkpoint loaded")

    monkeypatch.setattr(Policy, "from_pretrained", no_load)
    stored = (out / "report.json").read_bytes()
    capsys.readouterr()
    # finished: nothing runs, nothing loads, the report stays as it is (--device cpu: what the run resolved)
    assert main([*common, "--episodes", "4", "--device", "cpu", "--out", str(out), "--resume"]) == 0
    assert "already has its 4 episodes; nothing to run" in capsys.readouterr().out
    assert (out / "report.json").read_bytes() == stored
    for change, message in ((["--steps", "2", "--imagine"], "--steps: 1 -> 2; --imagine: False -> True"),
                            (["--image-size", "64x64"], "--image-size: [48, 64] -> [64, 64]")):
        assert main([*_changed(common, change), "--episodes", "5", "--out", str(out), "--resume"]) == 2
        assert message in capsys.readouterr().err
    # the same checkpoint copied elsewhere (new modification times, another folder name) continues the run
    copy = shutil.copytree(ckpt, tmp_path / "moved" / "tiny_copy", copy_function=shutil.copyfile)
    moved = [str(copy) if arg == str(ckpt) else arg for arg in common]
    assert main([*moved, "--episodes", "4", "--out", str(out), "--resume"]) == 0
    assert "nothing to run" in capsys.readouterr().out  # its settings were compared first (`episodes_left`)
    assert (out / "report.json").read_bytes() == stored
    # continued from the copy, the run keeps the label it began with: the copy's folder name relabelled it mid-way
    monkeypatch.undo()
    assert main([*moved, "--episodes", "5", "--out", str(out), "--resume"]) == 0
    captured = capsys.readouterr()
    assert "--resume: the run keeps its label 'tiny' (--policy now would label it 'tiny_copy')" in captured.err
    assert captured.out.startswith("reach · tiny: success ") and json.loads((out / "report.json").read_text())[
        "policy"] == "tiny"
    monkeypatch.setattr(Policy, "from_pretrained", no_load)
    stored = (out / "report.json").read_bytes()
    config = ckpt / "transformer" / "config.json"  # saved again at the same path: other content
    config.write_text(config.read_text().replace("{", '{"_note": "retrained", ', 1))
    assert main([*common, "--episodes", "5", "--out", str(out), "--resume"]) == 2
    assert "--policy's files (names, sizes, content): '" in capsys.readouterr().err
    weights = next((copy / "transformer").glob("*.safetensors"))
    with open(weights, "r+b") as f:  # same name and size, other weights
        f.seek(weights.stat().st_size - 4)
        f.write(b"\x01\x02\x03\x04")
    assert main([*moved, "--episodes", "5", "--out", str(out), "--resume"]) == 2
    assert "--policy's files (names, sizes, content): '" in capsys.readouterr().err
    assert (out / "report.json").read_bytes() == stored


def test_a_checkpoint_trained_with_augmentation_runs_centre_cropped_unless_told_and_a_resume_compares_it(tmp_path,
                                                                                                          capsys):
    """A checkpoint whose training record says `[augment]` crops each frame's centre (`Policy.center_crop`); sim
    records the crop it ran with, `--no-center-crop` leaves the frames whole, and a resume with the other choice is
    refused before the weights load, naming the flag."""
    pytest.importorskip("diffusers")
    from worldpolicy.testing import make_tiny_checkpoint

    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    (ckpt / "trainer_state.json").write_text(json.dumps({"step": 1, "config": {"augment": {"enabled": True,
                                                                                           "crop_area": 0.9}}}))
    common = ["sim", "--policy", str(ckpt), "--task", "reach", "--image-size", "48x64", "--steps", "1", "--videos",
              "0", "--max-steps", "2", "--no-progress", "--no-plots"]
    for flags, crop in (([], 0.9), (["--no-center-crop"], None)):
        out = tmp_path / f"run{len(flags)}"
        assert main([*common, *flags, "--episodes", "1", "--out", str(out)]) == 0
        assert json.loads((out / "report.json").read_text())["policy_settings"]["center_crop"] == crop
    capsys.readouterr()
    assert main([*common, "--episodes", "2", "--out", str(tmp_path / "run0"), "--no-center-crop", "--resume"]) == 2
    assert "--no-center-crop: 0.9 -> none" in capsys.readouterr().err
    assert main(["sim", "--policy", "random", "--no-center-crop", "--out", str(tmp_path / "random")]) == 2
    assert "--steps/--device/--no-center-crop apply to checkpoint policies only" in capsys.readouterr().err


def test_policy_settings_of_a_server_and_of_a_checkpoint_without_a_folder():
    """A server is the model its metadata frame names (its address when it names none, as openpi's); a source that is
    no folder (a hub id, a `Policy` built in code) is its name, and no folder is walked for it."""
    from types import SimpleNamespace

    from worldpolicy import get_embodiment
    from worldpolicy.models import checkpoint_files
    from worldpolicy.sim.policies import policy_settings, wrap_policy

    emb = get_embodiment("droid")

    def server(meta):  # as a RemotePolicy: its chunk_size is what the metadata frame announces
        return wrap_policy(SimpleNamespace(embodiment=emb, url="ws://box:8000", metadata=lambda: meta,
                                           chunk_size=meta.get("chunk_size")), decode_video=True)

    ours = policy_settings(server({"model": "/srv/ckpt", "chunk_size": 16}), (48, 64))
    assert ours == {"kind": "server", "model": "/srv/ckpt", "chunk_size": 16, "decode_video": True,
                    "image_size": [48, 64]}
    sampling = {"steps": 4, "guidance": 3.0, "negative_prompt": ""}  # as our server's metadata frame announces it
    announced = policy_settings(server({"model": "/srv/ckpt", "chunk_size": 16, "sampling": sampling,
                                        "resolution_tier": 480}), (48, 64))
    assert announced == {**ours, "sampling": sampling, "resolution_tier": 480}
    assert policy_settings(server({}), None)["model"] == "ws://box:8000"
    assert checkpoint_files("") == {"path": "", "files": None}
    assert checkpoint_files("nvidia/some-model") == {"path": "nvidia/some-model", "files": None}


def test_a_recorded_hub_id_this_machine_cannot_look_up_says_nothing_of_training_scenes(tmp_path, monkeypatch):
    """A run records a hub snapshot by its hub id; where that id cannot be looked up again (offline, a snapshot
    without refs), what its training data says is not known: `evaluate` went on to raise HubError after the model
    had loaded."""
    from worldpolicy.hub import HubError
    from worldpolicy.models import resolve_checkpoint
    from worldpolicy.sim.tasks import training_scenes

    monkeypatch.chdir(tmp_path)  # no folder here named like the id's owner
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(HubError):
        resolve_checkpoint("someone/reach-model")
    assert training_scenes("someone/reach-model", "reach", range(3)) is None


def test_the_shipped_model_is_recorded_by_name_and_its_training_scenes_read(tmp_path):
    """A sim report (and a `dataset from-sim` recording's provenance) recorded the shipped model's folder in this
    install; it names it `shipped`, as predict and dream record it, and what it was trained on is still read from
    that name (`training_seeds`). Another folder is recorded by its resolved path."""
    from worldpolicy.models import checkpoint_files, shipped_model
    from worldpolicy.sim.tasks import training_seeds

    shipped = checkpoint_files(shipped_model())
    assert shipped["path"] == "shipped" and shipped["files"]
    assert training_seeds("shipped") == training_seeds(shipped_model()) is not None
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "model_index.json").write_text("{}")
    assert checkpoint_files(tmp_path / "ckpt" / ".." / "ckpt")["path"] == str((tmp_path / "ckpt").resolve())
    # its model card is prose about it, not the model: an edited card is the same checkpoint, a changed file is not
    before = checkpoint_files(tmp_path / "ckpt")["files"]
    (tmp_path / "ckpt" / "README.md").write_text("---\nlicense: mit\n---\n# mine\n")
    assert checkpoint_files(tmp_path / "ckpt")["files"] == before
    (tmp_path / "ckpt" / "model_index.json").write_text("{ }")
    assert checkpoint_files(tmp_path / "ckpt")["files"] != before


class _Server:
    """A backend as our server is to the client (`RemotePolicy` wrapped for the sim): random actions, and a metadata
    frame announcing its model and, unless `steps` is None (an older server, openpi's), its sampling defaults."""

    url = "ws://box:8000"

    def __init__(self, steps: int | None) -> None:
        from worldpolicy.sim.policies import RandomPolicy

        self.random = RandomPolicy(chunk_size=6)
        self.embodiment, self.chunk_size = self.random.embodiment, 6
        self.meta = {"model": "tiny", "chunk_size": 6}
        if steps is not None:
            self.meta["sampling"] = {"steps": steps, "guidance": 3.0}

    def metadata(self):
        return self.meta

    def act(self, observation, prompt, seed=None, decode_video=False):
        self.random.reset(seed)
        return self.random.act(observation, prompt)


def test_a_resume_against_a_server_compares_the_sampling_it_announces(tmp_path):
    """A server restarted with other steps was silently mixed into one report: only its model and chunk were
    recorded. Its announced sampling is compared now; a report from before it was recorded still resumes."""
    from worldpolicy.sim.env import TabletopEnv
    from worldpolicy.sim.evaluate import evaluate, flag_of, read_report, resume_conflicts, write_report
    from worldpolicy.sim.policies import wrap_policy

    env = TabletopEnv("reach", image_size=None, max_steps=7)

    def run(steps, episodes, resume=None):
        return evaluate(env, wrap_policy(_Server(steps)), policy_name="server", episodes=episodes, progress=False,
                        seed=3, resume=resume)

    whole = run(4, 3)
    write_report(run(4, 1), tmp_path, plots=False)
    assert _results(run(4, 3, read_report(tmp_path))) == _results(whole)
    with pytest.raises(ValueError, match=r"other settings: policy_settings\.sampling\.steps: 4 -> 8\. "):
        run(8, 3, read_report(tmp_path))
    assert flag_of("policy_settings.sampling.steps", "server") == "the server's sampling.steps"
    assert flag_of("policy_settings.sampling.steps", "checkpoint") == "--steps"

    older = read_report(tmp_path)  # as written before the server's sampling was recorded
    del older.policy_settings["sampling"]
    assert resume_conflicts(older, whole.settings()) == []
    resumed = run(8, 3, older)  # nothing recorded to compare with: it continues, and records what it ran with
    assert resumed.policy_settings["sampling"]["steps"] == 8
    assert resume_conflicts(older, run(None, 1).settings()) == []  # a server that announces none (openpi's)


def test_evaluate_records_the_training_scenes_a_server_announces():
    """`evaluate` works out a checkpoint folder's training scenes when the caller leaves them out; a server's run was
    recorded as not known. What its metadata frame announces (`training_seeds`) is recorded now; a server that
    announces none (openpi's, an older worldpolicy) still records null."""
    from worldpolicy.sim.env import TabletopEnv
    from worldpolicy.sim.evaluate import evaluate
    from worldpolicy.sim.policies import wrap_policy

    env = TabletopEnv("reach", image_size=None, max_steps=2)
    server = _Server(4)
    server.meta["training_seeds"] = {"task": "reach", "seeds": [0, 1, 2, 4], "source": "its dataset data"}
    told = evaluate(env, wrap_policy(server), policy_name="server", episodes=2, seed=2, progress=False)
    silent = evaluate(env, wrap_policy(_Server(4)), policy_name="server", episodes=2, seed=2, progress=False)
    assert told.to_json()["training_scenes"] == {"task": "reach", "source": "its dataset data",
                                                 "recorded_seeds": [0, 4], "seeds": [2]}
    assert silent.training_scenes is None
    for said in ({"task": "reach", "seeds": ["0", "1"], "source": "x"},
                 {"task": "reach", "seeds": [True], "source": "x"},
                 {"task": "reach", "seeds": [], "source": "x"}, {"task": "reach", "seeds": [0]}, [0, 1]):
        odd = _Server(4)  # a frame this version cannot read as the map it announces: not known, not a crash
        odd.meta["training_seeds"] = said
        assert evaluate(env, wrap_policy(odd), policy_name="server", episodes=1, seed=0,
                        progress=False).training_scenes is None


class _UnannouncedChunks:
    """A backend as an openpi server is to the client: it announces no chunk (its embodiment's 32 is assumed) and
    returns 6-action chunks."""

    def __init__(self) -> None:
        from worldpolicy.sim.policies import RandomPolicy

        self.random = RandomPolicy(chunk_size=6)
        self.embodiment = self.random.embodiment

    def reset(self, seed: int | None = None) -> None:
        self.random.reset(seed)

    def act(self, observation, prompt):
        return self.random.act(observation, prompt)


@pytest.mark.parametrize("kind", ["execute", "async"])
def test_a_resume_compares_the_k_asked_for_not_the_k_a_chunk_of_another_size_gave(kind, tmp_path):
    """The k used follows from the chunk the policy returns; the resume compared it with the k the announced chunk
    gives, so a run against an openpi server (15-action chunks, droid's 32 assumed) could not be continued with its
    own flags: "--execute-steps: 15 -> 32"."""
    from worldpolicy.robot.control import ChunkStrategy
    from worldpolicy.sim.env import TabletopEnv
    from worldpolicy.sim.evaluate import evaluate, read_report, write_report

    env = TabletopEnv("reach", image_size=None, max_steps=7)

    def run(episodes, resume=None, execute_steps=None):
        return evaluate(env, _UnannouncedChunks(), policy_name="server", episodes=episodes, progress=False,
                        strategy=ChunkStrategy(kind, execute_steps=execute_steps), resume=resume)

    whole = run(3)
    assert whole.strategy["execute_steps"] == {"execute": 6, "async": 3}[kind]
    write_report(run(1), tmp_path, plots=False)
    resumed = run(3, read_report(tmp_path))
    assert _results(resumed) == _results(whole) and resumed.strategy == whole.strategy
    with pytest.raises(ValueError, match=r"other settings: strategy\.execute_steps_requested: None -> 2\. "):
        run(3, read_report(tmp_path), execute_steps=2)


def test_the_demo_and_the_recipe_evaluation_keep_the_episodes_finished_before_an_interruption(tmp_path, monkeypatch):
    """Both wrote their report only at the end (as `worldpolicy sim` writes it after every episode), so an
    interruption lost every episode run. (A stand-in episode, then Ctrl-C: the shipped model's real ones take minutes.)
    The demo reads what the shipped model was trained on once, to warn before it loads and to record in its report
    (`evaluate(training_scenes=)`), as `worldpolicy sim` does. Their report.json holds every episode kept: rewritten
    at most every `SUMMARY_INTERVAL_S` while they ran, it held the first alone (`ReportKeeper.stopped`)."""
    from worldpolicy.models import shipped_model
    from worldpolicy.sim import tasks
    from worldpolicy.sim.rollout import EpisodeResult, Rollout
    from worldpolicy.train.scratch import evaluate_checkpoint

    def run(self, seed, **kwargs):  # each run's first two episodes end, its third is interrupted
        if calls[-2:] == [seed - 2, seed - 1]:
            raise KeyboardInterrupt
        calls.append(seed)
        return EpisodeResult(seed, False, 1, None, "reach", 1, 0.1, 0.0, 0.0)

    calls: list[int] = []
    monkeypatch.setattr(Rollout, "run", run)
    read = []
    rule = tasks.training_seeds  # what the rule reads: however a caller reached `training_scenes`
    monkeypatch.setattr(tasks, "training_seeds",
                        lambda checkpoint, **kw: read.append(checkpoint) or rule(checkpoint, **kw))
    assert main(["demo", "--out", str(tmp_path / "demo"), "--episodes", "3"]) == 130
    assert [e["seed"] for e in _episodes(tmp_path / "demo" / "sim")] == [10_000, 10_001]  # its held-out scenes
    assert len(read) == 1, read
    assert json.loads((tmp_path / "demo" / "sim" / "report.json").read_text())["training_scenes"]["seeds"] == []
    with pytest.raises(KeyboardInterrupt):
        evaluate_checkpoint(shipped_model(), "reach", 3, 7, tmp_path / "eval", progress=False)
    assert [e["seed"] for e in _episodes(tmp_path / "eval")] == [7, 8]


def test_the_recipe_evaluation_writes_its_page_as_sim_does(tmp_path, monkeypatch):
    """`out/eval` held report.json/md/png but no index.html, unlike `worldpolicy sim` and the demo's sim step.
    (Stand-in episodes: the shipped model's real ones take minutes.)"""
    from worldpolicy.models import shipped_model
    from worldpolicy.sim.rollout import EpisodeResult, Rollout
    from worldpolicy.train.scratch import evaluate_checkpoint

    def run(self, seed, **kwargs):  # even seeds succeed at their one step
        return EpisodeResult(seed, seed % 2 == 0, 1, 1 if seed % 2 == 0 else None, "reach", 1, 0.1, 0.0, 0.0)

    monkeypatch.setattr(Rollout, "run", run)
    result = evaluate_checkpoint(shipped_model(), "reach", 2, 4, tmp_path / "eval", progress=False)
    assert result["successes"] == 1
    # labelled as `worldpolicy sim --policy shipped` labels it (`models.checkpoint_name`), not `panda_reach`
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["policy"] == "shipped"
    page = (tmp_path / "eval" / "index.html").read_text()
    assert "1/2" in page or "1 / 2" in page, page[:2000]


def test_a_sim_refuses_an_out_another_process_holds_before_it_reads_the_run(two_random_episodes, tmp_path, monkeypatch,
                                                                           capsys):
    """A --resume of a run still going wrote its episodes into the same report.json as the run itself."""
    from worldpolicy.fileio import folder_lock

    out, report = _copy(two_random_episodes, tmp_path)

    def must_not_open(*args, **kwargs):
        raise AssertionError("opened an environment while another process held --out")

    monkeypatch.setattr("worldpolicy.sim.commands._open_env", must_not_open)
    with folder_lock(out, "elsewhere"):
        assert main(["sim", "--policy", "random", *FAST, "--episodes", "3", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"--out: {str(out)!r} is in use by another worldpolicy process (PID {os.getpid()}," in err
    assert (out / "report.json").read_bytes() == report
    monkeypatch.undo()
    assert main(["sim", "--policy", "random", *FAST, "--episodes", "3", "--out", str(out), "--resume"]) == 0
    assert not (out / ".worldpolicy.lock").exists()


def test_another_policy_than_a_checkpoint_is_named_once_by_what_was_given():
    """A checkpoint's report keeps its path, not its name: resuming it with --policy scripted said "--policy: none ->
    'scripted'; --policy: 'checkpoint' -> 'scripted'"."""
    from worldpolicy.sim.evaluate import EvalReport, resume_conflicts

    strategy = {"kind": "execute", "execute_steps": 1, "ensemble_decay": 0.1, "execute_steps_requested": 1}
    stored = EvalReport("reach", "panda_reach", "panda", strategy, 15.0, 10000, max_steps=20, embodiment="panda_reach",
                        policy_settings={"kind": "checkpoint", "path": "shipped", "files": "6690493ca4f6d586",
                                         "sampling": {"steps": 12}, "chunk_size": 4})
    scripted = EvalReport("reach", "scripted", "panda", {**strategy, "execute_steps_requested": None}, 15.0, 10000,
                          max_steps=20, embodiment="droid/joint_pos", policy_settings={"kind": "scripted", "chunk": 8})
    changes = resume_conflicts(stored, scripted.settings())
    assert [c for c in changes if c[0].startswith("policy")] == [("policy", "shipped", "scripted")]
    assert ("embodiment", "panda_reach", "droid/joint_pos") in changes


def test_ctrl_c_while_an_episodes_report_is_written_keeps_report_md_with_report_json(tmp_path, capsys, monkeypatch):
    """Ctrl-C between report.json and report.md (the summary, written after the first episode) left report.md an
    episode behind, or none after the first; both are written, then the run stops with the episode kept."""
    import signal

    from worldpolicy.sim import evaluate

    written = evaluate.write_bytes_atomic

    def interrupted(path, data):
        result = written(path, data)
        if path.name == "report.json" and len(json.loads(data)["episodes"]) == 1:
            signal.raise_signal(signal.SIGINT)
        return result

    monkeypatch.setattr(evaluate, "write_bytes_atomic", interrupted)
    out = tmp_path / "run"
    assert main(["sim", "--policy", "scripted", *FAST, "--episodes", "2", "--out", str(out)]) == 130
    assert "interrupted after 1 of 2 episodes finished" in capsys.readouterr().err
    assert len(_episodes(out)) == 1 and "| 1 |" in (out / "report.md").read_text()


def test_a_report_records_the_software_it_ran_on_and_the_command_that_reruns_it(tmp_path):
    """A reader reproducing a run needs, from its folder alone, the versions it ran on and the command that made it:
    that command, given another --out, reruns the same episodes."""
    from worldpolicy import __version__

    first = tmp_path / "first"
    argv = ["sim", "--policy", "random", "--episodes", "2", "--seed", "7", *FAST, "--out", str(first)]
    assert main(argv) == 0
    doc = json.loads((first / "report.json").read_text())
    assert doc["software"]["worldpolicy"] == __version__
    assert {"python", "torch", "diffusers", "mujoco", "numpy"} <= set(doc["software"])
    words = shlex.split(doc["command"])
    assert words[:2] == ["worldpolicy", "sim"] and "--resume" not in words and "--seed" in words
    again = tmp_path / "again"
    words[words.index("--out") + 1] = str(again)
    assert main(words[1:]) == 0
    assert _episodes(again) == _episodes(first)
    assert "worldpolicy sim" in (first / "report.md").read_text().split("| seed |")[0]  # said on the page too


def test_a_report_records_the_folder_its_relative_paths_are_relative_to(tmp_path, monkeypatch):
    """`--out run` as typed names a folder only beside `cwd`, which report.json records (and report.md says); a run
    from Python records neither."""
    from worldpolicy.sim.evaluate import EvalReport

    monkeypatch.chdir(tmp_path)
    assert main(["sim", "--policy", "random", "--episodes", "1", *FAST, "--out", "run"]) == 0
    doc = json.loads((tmp_path / "run" / "report.json").read_text())
    assert "--out run" in doc["command"] and doc["cwd"] == str(tmp_path)
    assert f"in `{tmp_path}`." in (tmp_path / "run" / "report.md").read_text()
    assert EvalReport.from_json(doc).cwd == str(tmp_path)
    assert EvalReport.from_json({**doc, "command": None, "cwd": None}).to_json()["cwd"] is None


def test_a_report_keeps_the_command_that_began_it_and_each_resume_that_added_episodes(tmp_path, monkeypatch):
    """After `--resume`, `command` was the last command's: the one that began the run was lost. It is kept, and each
    resume that added episodes is recorded after it, oldest first, with its folder; one that ran none adds nothing."""
    from worldpolicy.sim.evaluate import EvalReport

    monkeypatch.chdir(tmp_path)
    base = ["sim", "--policy", "random", *FAST, "--out", "run"]
    assert main([*base, "--episodes", "1"]) == 0
    first = json.loads((tmp_path / "run" / "report.json").read_text())["command"]
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    out = str(tmp_path / "run")
    second = [*base[:-1], out, "--episodes", "2", "--resume"]
    third = [*base[:-1], out, "--episodes", "3", "--resume"]
    assert main(second) == 0 and main(second) == 0 and main(third) == 0  # the second `second` runs no episode
    doc = json.loads((tmp_path / "run" / "report.json").read_text())
    assert doc["command"] == first and doc["cwd"] == str(tmp_path)
    said = [shlex.split(r["command"]) for r in doc["resumed_by"]]
    assert [words[words.index("--episodes") + 1] for words in said] == ["2", "3"] and all("--resume" in w for w in said)
    assert [r["cwd"] for r in doc["resumed_by"]] == [str(tmp_path / "elsewhere")] * 2
    md = (tmp_path / "run" / "report.md").read_text()
    assert f"Made by `{first}` in `{tmp_path}`. Continued by `{doc['resumed_by'][0]['command']}`" in md
    assert EvalReport.from_json(doc).to_json()["resumed_by"] == doc["resumed_by"]
    assert EvalReport.from_json({k: v for k, v in doc.items() if k != "resumed_by"}).resumed_by == []  # an older one


def test_a_resume_on_other_software_goes_ahead_naming_what_changed(tmp_path, capsys):
    """A package upgraded since the run stopped is not a setting: the run continues, the change said, and report.json
    records the resuming session's software."""
    from worldpolicy.extras import software_versions

    out = tmp_path / "run"
    assert main(["sim", "--policy", "random", "--episodes", "1", *FAST, "--out", str(out)]) == 0
    doc = json.loads((out / "report.json").read_text())
    (out / "report.json").write_text(json.dumps({**doc, "software": {**doc["software"], "numpy": "1.0.0"}}))
    capsys.readouterr()
    assert main(["sim", "--policy", "random", "--episodes", "2", *FAST, "--out", str(out), "--resume"]) == 0
    assert (f"--resume: the run in {out} ran on other software: numpy 1.0.0 -> {software_versions()['numpy']}; "
            in capsys.readouterr().err)
    assert json.loads((out / "report.json").read_text())["software"] == software_versions()
