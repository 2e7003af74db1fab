"""A run killed after its last checkpoint and restarted continues with exactly the losses of an uninterrupted run; its
log has one line per step and its checkpoints are complete diffusers folders that `Policy` loads and runs."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from train_setup import tiny_observation


def _weights(folder):
    from safetensors.torch import load_file

    out = {}
    for shard in sorted((folder / "transformer").glob("*.safetensors")):
        out.update(load_file(str(shard)))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, train_config):
    """Run A: 6 steps uninterrupted. Run B: killed after step 3 (last checkpoint: step 2), then resumed."""
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    def config(out):
        return load_config(train_config(out))

    root = tmp_path_factory.mktemp("resume")
    a = Trainer(config(root / "a"), progress=False).run()
    killed = Trainer(config(root / "b"), progress=False).run(stop_after=3)
    metrics_at_kill = (root / "b" / "metrics.jsonl").read_text()
    checkpoints_at_kill = sorted(p.name for p in (root / "b" / "checkpoints").iterdir())
    resumed = Trainer(config(root / "b"), progress=False).run()
    return {"root": root, "a": a, "killed": killed, "resumed": resumed, "metrics_at_kill": metrics_at_kill,
            "checkpoints_at_kill": checkpoints_at_kill}


def test_resumed_run_has_identical_losses(runs):
    a, killed, resumed = runs["a"], runs["killed"], runs["resumed"]
    assert [r.step for r in a] == [1, 2, 3, 4, 5, 6]
    assert [r.step for r in killed] == [1, 2, 3]
    assert runs["checkpoints_at_kill"] == ["step-0000002"]  # step 3 ran but was never saved
    assert [r.step for r in resumed] == [3, 4, 5, 6]
    # before the kill the two runs agree; after it, the restored weights, optimizer and LR schedule reproduce A
    assert [r.loss for r in killed] == [r.loss for r in a[:3]]
    assert [r.loss for r in resumed] == [r.loss for r in a[2:]]
    assert [r.lr for r in resumed] == [r.lr for r in a[2:]]
    # not trivially equal: the losses move, and every objective was drawn
    assert len({round(r.loss, 6) for r in a}) == 6
    parts = set().union(*(r.parts for r in a))
    assert {"loss_action_policy", "loss_action_inverse_dynamics", "loss_video"} <= parts
    # and the final weights are the same tensors
    wa = _weights(runs["root"] / "a" / "checkpoints" / "step-0000006")
    wb = _weights(runs["root"] / "b" / "checkpoints" / "step-0000006")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_the_lr_warms_up_linearly_then_decays_on_a_half_cosine_to_its_floor(runs):
    """docs/training.md's schedule, for the runs' lr 1e-3, warmup_steps 2, steps 6 and the default min_lr_ratio 0.1."""
    import math

    cosine = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - 2) / 4)) for step in range(2, 6)]
    assert [r.lr for r in runs["a"]] == pytest.approx([1e-3 * f for f in [0.5, 1.0, *cosine]], rel=1e-12)


def test_metrics_have_one_line_per_step_after_resume(runs):
    at_kill = [json.loads(line)["step"] for line in runs["metrics_at_kill"].splitlines()]
    assert at_kill == [1, 2, 3]  # the killed run logged a step past its last checkpoint
    lines = [json.loads(line) for line in (runs["root"] / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3, 4, 5, 6]
    reference = [json.loads(line) for line in (runs["root"] / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [line["loss"] for line in lines] == [line["loss"] for line in reference]
    assert all(line["world_size"] == 1 and np.isfinite(line["loss"]) for line in lines)


def test_ctrl_c_finishes_the_step_saves_it_and_the_resumed_run_goes_on_exactly(runs, train_config, caplog, capsys):
    """Ctrl-C used to drop every step since the last checkpoint (all of them before the first save). It now waits for
    the step it came in, saves that step, and stops; the same command resumes from there with run A's losses."""
    import os
    import signal

    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    out = runs["root"] / "ctrl_c"
    config = train_config(out, save_every=100)  # no periodic save before the interruption

    def ctrl_c_in_step_3(record):
        if record.step == 3:  # mid-step: the metrics line and the bar are still to come
            os.kill(os.getpid(), signal.SIGINT)

    trainer = Trainer(load_config(config), progress=False, on_step=ctrl_c_in_step_3)
    with caplog.at_level("WARNING", logger="worldpolicy.train.trainer"), pytest.raises(KeyboardInterrupt):
        trainer.run()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000003"]
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert "interrupted after step 3: saved " in caplog.text and "step-0000003" in caplog.text
    assert "Ctrl-C: finishing step 3, then saving it\n" in capsys.readouterr().err  # said at once, not after the step
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C stops anything after the run
    resumed = Trainer(load_config(config), progress=False).run()
    assert [r.step for r in resumed] == [4, 5, 6]
    assert [r.loss for r in resumed] == [r.loss for r in runs["a"][3:]]


@pytest.mark.parametrize("name", ["SIGTERM", "SIGUSR1"])
def test_sigterm_saves_the_step_it_came_in_like_ctrl_c(tmp_path, train_config, capsys, default_sigterm, name):
    """A cluster's SIGTERM (time limit, preemption) killed the run at once, losing every step since the last save.
    On the command line (`terminating_as_interrupt`) it is now held like Ctrl-C: the step finishes and is saved, and
    the run stops with `Terminated` (exit 143); the same command resumes from that step. So is Slurm's advance
    warning, SIGUSR1 (`sbatch --signal=USR1@120`), whose default action had killed the run as SIGTERM's did (exit
    138 then, 128 + the signal, as the shell reports it)."""
    import os
    import signal

    from worldpolicy.fileio import Terminated, exit_status, terminating_as_interrupt
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    config = train_config(tmp_path / "run", save_every=100, optim={"steps": 4})
    signum = signal.Signals[name]

    def signal_in_step_2(record):
        if record.step == 2:
            os.kill(os.getpid(), signum)

    with terminating_as_interrupt(), pytest.raises(Terminated) as stop:
        Trainer(load_config(config), progress=False, on_step=signal_in_step_2).run()
    assert stop.value.signum == signum and exit_status(stop.value) == 128 + signum
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step-0000002"]
    assert f"{name}: finishing step 2, then saving it\n" in capsys.readouterr().err
    # the run's log keeps the notice too, timed as it came: before the step's save and the session's last line
    log = (tmp_path / "run" / "train.log").read_text().splitlines()
    notice = [i for i, line in enumerate(log)
              if re.fullmatch(rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d {name}: finishing step 2, then saving it", line)]
    saved = [i for i, line in enumerate(log) if f"terminated ({name}) after step 2: saved " in line]
    assert len(notice) == 1 and len(saved) == 1 and notice[0] < saved[0]
    assert log[-1].endswith(f" session stopped: terminated ({name})")
    assert signal.getsignal(signum) == signal.SIG_DFL  # put back once the command is done
    assert [r.step for r in Trainer(load_config(config), progress=False).run()] == [3, 4]


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_during_a_periodic_save_finishes_it_unless_pressed_again(runs, train_config, monkeypatch, caplog, capsys,
                                                                        presses):
    """Saving a large model takes minutes, where a Ctrl-C is likely: it cut the save short and lost every step since
    the last checkpoint. Now the save is finished and the run stops there (resuming with run A's losses); a second
    Ctrl-C stops the save, keeping the older checkpoints and no half one."""
    import os
    import signal

    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    real = Trainer.export_pipeline

    def ctrl_c_while_saving_step_4(self, target):
        if target.name.startswith(".step-0000004."):
            for _ in range(presses):
                os.kill(os.getpid(), signal.SIGINT)
        real(self, target)

    monkeypatch.setattr(Trainer, "export_pipeline", ctrl_c_while_saving_step_4)
    out = runs["root"] / f"ctrl_c_save_{presses}"
    config = train_config(out)
    with caplog.at_level("WARNING", logger="worldpolicy.train.trainer"), pytest.raises(KeyboardInterrupt):
        Trainer(load_config(config), progress=False).run()
    assert "Ctrl-C: finishing the save of step 4, then stopping (again: stop the save)\n" in capsys.readouterr().err
    kept = sorted(p.name for p in (out / "checkpoints").iterdir())  # staging folders are hidden: none may be left
    assert kept == (["step-0000002", "step-0000004"] if presses == 1 else ["step-0000002"])
    assert ("interrupted after step 4: saved " in caplog.text) == (presses == 1)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    monkeypatch.undo()
    resumed = Trainer(load_config(config), progress=False).run()
    assert [r.loss for r in resumed] == [r.loss for r in runs["a"][len(kept) * 2:]]


def test_ctrl_c_during_an_evaluation_keeps_that_step(runs, train_config, monkeypatch):
    """The periodic evaluation runs the policy in the simulator for minutes, where a Ctrl-C is likely; the weights are
    that step's, so it is saved like a Ctrl-C in a step (it used to be lost with every step since the last save)."""
    pytest.importorskip("mujoco", reason="eval.every needs the sim extra")
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    def ctrl_c(self, step, metrics_path):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_evaluate", ctrl_c)
    out = runs["root"] / "ctrl_c_eval"
    config = train_config(out, save_every=100, eval={"every": 3})
    with pytest.raises(KeyboardInterrupt):
        Trainer(load_config(config), progress=False).run()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000003"]
    monkeypatch.undo()
    resumed = Trainer(load_config(dict(config, eval={"every": 0})), progress=False).run()  # eval.* may change
    assert [r.loss for r in resumed] == [r.loss for r in runs["a"][3:]]


def test_checkpoints_are_complete_diffusers_folders(runs):
    from worldpolicy.fileio import folder_kind
    from worldpolicy.train.trainer import EMBODIMENT_FILE, OPTIMIZER_FILE, STATE_FILE

    folder = runs["root"] / "b" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["step-0000004", "step-0000006"]  # keep_checkpoints = 2
    assert folder_kind(runs["root"] / "b")[0].writer == "train"  # what the output-folder checks recognise
    for ckpt in folder.iterdir():
        index = json.loads((ckpt / "model_index.json").read_text())
        assert {"transformer", "vae", "text_tokenizer", "scheduler"} <= set(index)
        for part in ("transformer", "vae"):
            assert (ckpt / part / "config.json").is_file() and list((ckpt / part).glob("*.safetensors"))
        assert (ckpt / OPTIMIZER_FILE).is_file() and json.loads((ckpt / STATE_FILE).read_text())["step"] == int(
            ckpt.name.split("-")[1])
        spec = json.loads((ckpt / EMBODIMENT_FILE).read_text())
        assert spec["name"] == "tiny_panda" and spec["normalization"] == "quantile" and len(spec["stats"]["q01"]) == 8
    assert not list(folder.glob(".step-*"))  # no temporary folders left behind


def test_a_checkpoint_records_the_software_and_the_base_checkpoint_it_was_trained_from(runs, tiny_checkpoint):
    """A reader reproducing a checkpoint needs the versions it trained on and which weights it started from: the
    config's `checkpoint` names a folder (or `shipped`), whose content a later install or a save may change."""
    from worldpolicy import __version__
    from worldpolicy.models import checkpoint_files
    from worldpolicy.train.trainer import STATE_FILE

    state = json.loads((runs["root"] / "b" / "checkpoints" / "step-0000006" / STATE_FILE).read_text())
    assert state["software"]["worldpolicy"] == __version__ and state["software"]["torch"]
    assert state["base_checkpoint"] == checkpoint_files(tiny_checkpoint)


def test_every_checkpoint_of_a_session_records_the_software_it_started_on(train_config, tmp_path, monkeypatch):
    """The code a session runs is the one it imported as it started: a checkout edited or pulled while it trains
    changes the files (a commit, `-dirty`), not what runs, so each checkpoint it saves records what it started on."""
    from worldpolicy import extras
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import STATE_FILE, Trainer

    read = iter(range(100))
    monkeypatch.setattr(extras, "software_versions", lambda: {"worldpolicy_commit": f"commit {next(read)}"})
    out = tmp_path / "run"
    Trainer(load_config(train_config(out, save_every=1, optim={"steps": 2})), progress=False,
            command="worldpolicy train run.toml").run()
    states = [json.loads((out / "checkpoints" / f"step-000000{step}" / STATE_FILE).read_text()) for step in (1, 2)]
    assert [state["software"] for state in states] == [{"worldpolicy_commit": "commit 0"}] * 2
    assert [state["command"] for state in states] == ["worldpolicy train run.toml"] * 2


def test_a_checkpoint_records_the_embodiment_it_trained_resolved(runs, capsys, tmp_path):
    """embodiment.json held the spec as given (no execute_steps, description...: whatever a later version's defaults
    say). Now it records every field as trained, which the resumed run B reads back as its own (no changed setting)
    and every reader takes."""
    from train_setup import TINY_EMBODIMENT

    from worldpolicy.agents import Toolbox, ToolboxConfig
    from worldpolicy.cli import main
    from worldpolicy.embodiments import Embodiment, embodiment_from_spec
    from worldpolicy.fileio import EMBODIMENT_SCHEMA

    ckpt = runs["root"] / "b" / "checkpoints" / "step-0000006"  # saved after the resume from step 2's record
    spec = json.loads((ckpt / "embodiment.json").read_text())
    assert set(spec) == set(Embodiment.__dataclass_fields__) - {"variant", "variants"} | {"schema"}  # + its version
    assert (spec["execute_steps"], spec["description"], spec["aliases"]) == (None, "", [])  # defaults, written out
    trained = embodiment_from_spec({**TINY_EMBODIMENT, **{k: spec[k] for k in ("domain", "domain_id", "chunk_size",
                                                                             "normalization", "stats")}})
    assert embodiment_from_spec(spec) == trained and spec == {"schema": EMBODIMENT_SCHEMA, **trained.to_spec()}
    assert main(["embodiments", "--checkpoint", str(ckpt), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["key"], row["source"]) == ("tiny_panda", f"checkpoint {ckpt} (its embodiment.json)")
    toolbox = Toolbox(ToolboxConfig(output_dir=tmp_path, checkpoint_dirs=[ckpt.parent], device="cpu"))
    [row] = toolbox.list_embodiments(checkpoint=ckpt.name)["embodiments"]
    assert (row["key"], row["source"]) == ("tiny_panda", f"checkpoint {ckpt.name} (embodiment.json)")


def test_a_checkpoint_records_the_objective_mix_it_trained(runs):
    """trainer_state.json held the preset beside raw weights it overrides (policy 1, forward 0...): a reader saw a
    policy-only run where the preset's 50/25/25 mix was trained."""
    state = json.loads((runs["root"] / "b" / "checkpoints" / "step-0000006" / "trainer_state.json").read_text())
    assert state["config"]["objectives"]["preset"] == "cosmos_policy"
    assert state["objective_weights"] == {"policy": 0.5, "forward_dynamics": 0.25, "inverse_dynamics": 0.25}


def test_untrained_modes_read_the_recorded_mix_and_an_older_runs_config(tmp_path):
    """The recorded mix is what the run trained, whatever this version's preset says; an older run's state (no record)
    is read from its objectives as before."""
    from worldpolicy.policy import recorded_untrained_modes

    config = {"checkpoint": "shipped", "objectives": {"preset": None, "policy": 1.0, "forward_dynamics": 0.0,
                                                      "inverse_dynamics": 0.0, "action_loss_weight": 1.0}}
    state = {"step": 2, "config": config}
    assert sorted(recorded_untrained_modes(tmp_path, state)) == ["forward_dynamics", "inverse_dynamics"]
    assert recorded_untrained_modes(tmp_path, None) == {}  # no run's record: nothing to say
    state["objective_weights"] = {"policy": 0.5, "forward_dynamics": 0.5, "inverse_dynamics": 0.0}
    said = recorded_untrained_modes(tmp_path, state)
    assert list(said) == ["inverse_dynamics"]
    assert "(its trainer_state.json: policy 0.5, forward_dynamics 0.5, inverse_dynamics 0)" in said["inverse_dynamics"]


def test_checkpoint_loads_as_a_policy_with_its_embodiment(runs):
    from worldpolicy import Policy

    ckpt = runs["root"] / "b" / "checkpoints" / "step-0000006"
    spec = json.loads((ckpt / "embodiment.json").read_text())
    policy = Policy.from_pretrained(ckpt, device="cpu", steps=2, seed=0)
    assert policy.embodiment.name == "tiny_panda" and policy.embodiment.domain_id == spec["domain_id"]
    assert policy.chunk_size == 4 and policy.embodiment.stats["q99"] == tuple(spec["stats"]["q99"])
    obs = tiny_observation(0)
    prediction = policy.act(obs, "move the gripper to the red ball")
    assert prediction.actions.shape == (4, 8) and np.all(np.isfinite(prediction.actions))
    assert prediction.columns == spec["columns"]
    # the checkpoint's own stats turn the model's output into physical units
    np.testing.assert_allclose(policy.embodiment.denormalize(prediction.actions_normalized), prediction.actions)
    assert not np.allclose(prediction.actions, prediction.actions_normalized)


def test_checkpoints_record_their_frames_and_policy_says_once_when_an_observation_differs(runs, tmp_path, caplog):
    """A model trained on 64x96 cameras given a 32x48 one sees it padded onto its canvas, at half size: the checkpoint
    records what it was trained on (trainer_state.json, the run's own record) and `Policy` says so, once per set of
    sizes. A checkpoint saved before the record (no `frames`) is used as before, silently."""
    import shutil

    from train_setup import CAMERAS, VIDEO_KEYS

    from worldpolicy import Policy
    from worldpolicy.policy import TRAINER_STATE_FILE, trained_frames

    ckpt = runs["root"] / "b" / "checkpoints" / "step-0000006"
    record = json.loads((ckpt / TRAINER_STATE_FILE).read_text())["frames"]
    assert record == {"cameras": {c: [64, 96] for c in CAMERAS}, "videos": dict(zip(CAMERAS, VIDEO_KEYS)),
                      "composed": [128, 96]}  # the two cameras stacked
    obs = tiny_observation(0)
    small = dict(obs, **{CAMERAS[1]: obs[CAMERAS[1]][::2, ::2]})
    prompt = "move the gripper to the red ball"
    state = np.concatenate([obs["observation/joint_position"], obs["observation/gripper_position"]])

    def said(policy, *observations):
        caplog.clear()
        with caplog.at_level("WARNING", logger="worldpolicy.policy"):
            for observation in observations:  # one image carries no state: given beside it
                policy.act(observation, prompt, state=None if isinstance(observation, dict) else state)
        return [r.getMessage() for r in caplog.records if "was trained on frames" in r.getMessage()]

    policy = Policy.from_pretrained(ckpt, device="cpu", steps=1, seed=0)
    assert said(policy, obs, np.zeros((256, 192, 3), np.uint8)) == []  # as trained; a larger composite of its shape
    warned = said(policy, small, small, obs)
    assert len(warned) == 1 and warned[0].startswith(
        f"checkpoint {ckpt} was trained on frames of 64x96 per camera ({CAMERAS[0]}, {CAMERAS[1]}), composed to "
        f"128x96, but camera {CAMERAS[1]} is 32x48 where it was 64x96")
    assert said(policy, np.zeros((100, 60, 3), np.uint8)) == [  # one pre-composed image of another shape
        warned[0].split(", but")[0] + ", but the observation is 100x60 where it was 128x96: "
        "frames are only scaled down "
        "and padded onto the model's canvas, so it sees the scene smaller or framed otherwise than it learned it, and "
        "its actions and futures may be off. Give frames of the trained size (resize the camera images; `worldpolicy "
        "sim --image-size`), or fine-tune on frames of this size"]

    old = tmp_path / "old"
    shutil.copytree(ckpt, old)
    state = json.loads((old / TRAINER_STATE_FILE).read_text())
    del state["frames"]
    (old / TRAINER_STATE_FILE).write_text(json.dumps(state))
    assert trained_frames(old) is None
    assert said(Policy.from_pretrained(old, device="cpu", steps=1, seed=0), small) == []


def test_fine_tuning_a_trained_checkpoint_keeps_its_embodiment_and_stats(runs, train_config, tmp_path):
    """Its embodiment.json is the default (as predict/serve/sim use it), and a table re-describing it keeps its stats:
    new data must not silently change the action space the checkpoint learned."""
    from train_setup import CAMERAS, IMAGE_SIZE, TINY_EMBODIMENT, make_episode

    from worldpolicy.data import write_episodes
    from worldpolicy.data.from_sim import sim_features
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    start = runs["root"] / "a" / "checkpoints" / "step-0000006"
    own = json.loads((start / "embodiment.json").read_text())
    data = write_episodes(tmp_path / "one", [make_episode(1)], fps=15, robot_type="panda", video_codec="libx264rgb",
                          features=sim_features("panda", IMAGE_SIZE, CAMERAS)).root
    for name, embodiment in (("default", None), ("table", dict(TINY_EMBODIMENT)),
                             ("file", str(start / "embodiment.json"))):
        raw = train_config(tmp_path / name, checkpoint=str(start), embodiment=embodiment, optim={"steps": 2})
        raw["data"] = dict(raw["data"], dataset=str(data))
        Trainer(load_config(raw), progress=False).run()
        tuned = json.loads((tmp_path / name / "checkpoints" / "step-0000002" / "embodiment.json").read_text())
        assert (tuned["name"], tuned["domain_id"], tuned["stats"]) == (own["name"], own["domain_id"], own["stats"]), name
    # the starting checkpoint's resolved spec, stored as the run's embodiment, is the same setting on resume
    resumed = train_config(tmp_path / "default", checkpoint=str(start), embodiment=None, optim={"steps": 3})
    resumed["data"] = dict(resumed["data"], dataset=str(data))
    assert [r.step for r in Trainer(load_config(resumed), progress=False).run()] == [3]
    renamed = train_config(tmp_path / "new", checkpoint=str(start), embodiment=dict(TINY_EMBODIMENT, name="other"))
    renamed["data"] = dict(renamed["data"], dataset=str(data))
    trainer = Trainer(load_config(renamed), progress=False)
    trainer._load()  # a new embodiment on the same data: stats from these actions
    assert trainer.embodiment.stats["q99"] != tuple(own["stats"]["q99"])


def test_another_embodiment_than_the_checkpoints_own_is_warned(runs, caplog):
    from worldpolicy import Policy

    ckpt = runs["root"] / "a" / "checkpoints" / "step-0000006"
    with caplog.at_level("WARNING", logger="worldpolicy.policy"):
        Policy.from_pretrained(ckpt, device="cpu")
        Policy.from_pretrained(ckpt, "TINY_PANDA", device="cpu")  # names are matched without case
        assert not caplog.records
        Policy.from_pretrained(ckpt, "droid", device="cpu")
    assert [r.getMessage().count("trained for embodiment 'tiny_panda', not 'droid/joint_pos'")
            for r in caplog.records] == [1]


def test_an_unset_embodiment_is_stored_as_what_it_resolves_to(runs, train_config, tmp_path):
    """config.json names what was trained; a run an older version stored with "droid" resumes with it unset."""
    from worldpolicy.train.config import changed_settings, load_config
    from worldpolicy.train.trainer import Trainer

    plain = train_config(tmp_path / "plain")
    del plain["embodiment"]
    trainer = Trainer(load_config(plain), progress=False)
    assert trainer.config.embodiment == "droid"
    assert changed_settings(dict(trainer.config.to_dict(), embodiment="droid"), trainer.config.to_dict()) == []
    start = runs["root"] / "a" / "checkpoints" / "step-0000006"
    tuned = train_config(tmp_path / "tuned", checkpoint=str(start))
    del tuned["embodiment"]
    assert Trainer(load_config(tuned), progress=False).config.embodiment == {  # the spec, without its file's version
        key: value for key, value in json.loads((start / "embodiment.json").read_text()).items() if key != "schema"}


def test_a_new_embodiment_takes_no_head_the_starting_weights_hold(runs, train_config, tmp_path, monkeypatch, caplog):
    """A spec's domain_id took any slot: fractal's (20, built in) or the starting checkpoint's own robot's, whose head
    training then overwrote. Such a slot is taken only by naming its domain; left out, a new robot gets a free one
    (the starting checkpoint's own slot was handed out again)."""
    from train_setup import TINY_EMBODIMENT

    from worldpolicy.engine import loading
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    monkeypatch.setattr(loading, "load_components", lambda *a, **k: pytest.fail("weights loaded"))

    def trainer(out, spec, **overrides):
        return Trainer(load_config(train_config(tmp_path / out, embodiment=spec, **overrides)), progress=False)

    with pytest.raises(ValueError, match=r"embodiment 'tiny_panda': domain_id=20 is the action-head slot of domain "
                                         r"'fractal' \(built in, registry.json\), which training domain "
                                         r"'worldpolicy_tiny_panda' there would overwrite: leave domain_id out \(a free "
                                         r"slot: 10\), or set domain = 'fractal'"):
        trainer("fractal", dict(TINY_EMBODIMENT, domain_id=20)).run()
    assert not (tmp_path / "fractal").exists()

    start = runs["root"] / "a" / "checkpoints" / "step-0000006"
    own = json.loads((start / "embodiment.json").read_text())
    other = dict(TINY_EMBODIMENT, name="other")
    assert trainer("free", other, checkpoint=str(start))._embodiment(stats=None).domain_id == own["domain_id"] + 1
    with pytest.raises(ValueError, match=rf"domain_id={own['domain_id']} is the action-head slot of domain "
                                         rf"'{own['domain']}' \(the starting checkpoint's 'tiny_panda'\)"):
        trainer("taken", dict(other, domain_id=own["domain_id"]), checkpoint=str(start))._embodiment(stats=None)
    named = dict(other, domain_id=own["domain_id"], domain=own["domain"])  # on purpose: its head goes on learning
    assert trainer("named", named, checkpoint=str(start))._embodiment(stats=None).domain_id == own["domain_id"]

    # a run an older version started on fractal's slot resumes there, warned
    folder = tmp_path / "older" / "checkpoints" / "step-0000002"
    folder.mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")  # a saved checkpoint (`fileio.saved_checkpoints`)
    (folder / "trainer_state.json").write_text("{}")
    (folder / "embodiment.json").write_text(json.dumps({**TINY_EMBODIMENT, "domain": "worldpolicy_tiny_panda",
                                                        "domain_id": 20}))
    with caplog.at_level("WARNING", logger="worldpolicy.train.trainer"):
        assert trainer("older", dict(TINY_EMBODIMENT, domain_id=20))._embodiment(stats=None).domain_id == 20
    assert "this run has trained there from its start, so it resumes" in caplog.text
