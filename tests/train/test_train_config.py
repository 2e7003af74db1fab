"""A bad training config fails before anything loads, with an error that names the field; the CLI prints one line."""

from __future__ import annotations

import json
import os
import re
import sys

import numpy as np
import pytest

from worldpolicy.cli import main
from worldpolicy.engine.sources import check_checkpoint_source
from worldpolicy.extras import MissingExtraError
from worldpolicy.train.config import load_config


@pytest.fixture
def valid(tiny_dataset):
    """A config that passes `check()` (the checkpoint is only required to be named; it is loaded later)."""
    return {"checkpoint": "some/hub-id", "output_dir": "unused", "data": {"dataset": str(tiny_dataset), "chunk_size": 4}}


def _with(raw, section, **values):
    out = json.loads(json.dumps(raw))
    if section is None:
        out.update(values)
    else:
        out.setdefault(section, {}).update(values)
    return out


def test_valid_config_checks_and_resolves_paths_against_its_file(tmp_path, tiny_dataset, valid):
    assert load_config(valid).check().data.chunk_size == 4
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "model_index.json").write_text("{}")  # a checkpoint folder, as far as the checks read
    path = tmp_path / "conf" / "train.toml"
    path.parent.mkdir()
    path.write_text(f'checkpoint = "../runs"\noutput_dir = "out"\n[data]\ndataset = "{tiny_dataset}"\n'
                    '[optim]\nsteps = 7\n[objectives]\npreset = "cosmos_policy"\n')
    config = load_config(path, output_dir=None).check()
    assert config.output_dir == str(path.parent / "out") and config.checkpoint == str(tmp_path / "runs")
    assert config.optim.steps == 7 and config.objectives.weights()["inverse_dynamics"] == 0.25
    assert load_config(_with(valid, None, checkpoint="nvidia/some-model")).checkpoint == "nvidia/some-model"
    from worldpolicy.models import shipped_model

    shipped = load_config(_with(valid, None, checkpoint="shipped"))  # kept by name, resolved where it is used
    assert (shipped.checkpoint, shipped.checkpoint_source) == ("shipped", str(shipped_model()))
    # a missing folder is named first, not as the default embodiment's chunk size not fitting the data
    with pytest.raises(FileNotFoundError, match=r"checkpoint='nothere_base' is neither an existing folder nor a hub id"):
        load_config(_with(valid, None, checkpoint="nothere_base"))


def test_the_shipped_model_is_stored_by_name_and_older_runs_stored_folders_read_as_it(valid, tmp_path):
    """A run's config.json and trainer_state.json name `shipped`, not this install's folder for it, which a run moved
    to another machine or environment would name after it is gone. Older versions stored that folder: read back (here
    or from another install), it is `shipped`, and a resume compares it as the same setting."""
    from worldpolicy.models import shipped_model
    from worldpolicy.train.config import changed_settings

    config = load_config(_with(valid, None, checkpoint="shipped"))
    assert config.to_dict()["checkpoint"] == "shipped"
    moved = "/elsewhere/venv/lib/python3.11/site-packages/worldpolicy/models/panda_reach"  # another install's, gone
    for stored in (str(shipped_model()), moved):
        assert load_config(_with(valid, None, checkpoint=stored)).checkpoint == "shipped", stored
        assert changed_settings(dict(config.to_dict(), checkpoint=stored), config.to_dict()) == [], stored
    other = tmp_path / "worldpolicy" / "models" / "panda_reach"  # an existing folder is itself, whatever its name
    other.mkdir(parents=True)
    (other / "model_index.json").write_text("{}")
    assert load_config(_with(valid, None, checkpoint=str(other))).checkpoint == str(other)
    assert changed_settings(dict(config.to_dict(), checkpoint=str(other)), config.to_dict()) == [
        f"checkpoint: {str(other)!r} -> 'shipped'"]


def test_command_line_paths_are_relative_to_the_working_directory(tmp_path, tiny_dataset, monkeypatch):
    path = tmp_path / "conf" / "train.toml"
    path.parent.mkdir()
    path.write_text(f'checkpoint = "some/hub-id"\noutput_dir = "out"\n[data]\ndataset = "{tiny_dataset}"\n')
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert load_config(path, output_dir="runs/cli").output_dir == str(tmp_path / "work" / "runs" / "cli")
    assert load_config(path).output_dir == str(path.parent / "out")  # the file's own value: next to the file


@pytest.mark.parametrize("raw_change, field", [
    ({"optimm": {}}, "optimm"),
    ({"optim": {"stepz": 3}}, "stepz"),
    ({"data": {"chunk": 8}}, "chunk"),
    ({"finetune": "lora"}, "finetune"),
])
def test_unknown_keys_are_named(valid, raw_change, field):
    raw = json.loads(json.dumps(valid))
    for key, value in raw_change.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) and key in raw else value
    with pytest.raises(ValueError, match=field):
        load_config(raw)


@pytest.mark.parametrize("section, values, error, field", [
    ("data", {"chunk_size": 6}, ValueError, "data.chunk_size"),
    ("data", {"chunk_size": 0}, ValueError, "data.chunk_size"),
    ("data", {"dataset": ""}, ValueError, "data.dataset"),
    ("data", {"dataset": "/nonexistent/dataset"}, FileNotFoundError, "data.dataset"),
    (None, {"checkpoint": ""}, ValueError, "checkpoint"),
    ("objectives", {"policy": -1.0}, ValueError, "objectives.policy=-1.0: must be >= 0 and finite"),
    ("objectives", {"policy": 0.0}, ValueError, "objectives: every weight is 0"),
    ("objectives", {"forward_dynamics": float("nan")}, ValueError, "objectives.forward_dynamics=nan: must be >= 0"),
    ("objectives", {"preset": "pi0"}, ValueError, "objectives.preset"),
    ("objectives", {"preset": "cosmos_policy", "forward_dynamics": 0.6}, ValueError, "objectives.forward_dynamics"),
    ("timesteps", {"kind": "beta"}, ValueError, "timesteps.kind"),
    # refused once the latent cache was encoded, minutes to hours in
    ("timesteps", {"std": 0.0}, ValueError, "timesteps.std=0.0 must be > 0"),
    ("timesteps", {"shift": -1.0}, ValueError, "timesteps.shift=-1.0 must be > 0"),
    ("timesteps", {"mean": float("nan")}, ValueError, "timesteps.mean=nan must be finite"),
    ("optim", {"steps": 0}, ValueError, "optim.steps"),
    ("optim", {"batch_size": 2.5}, ValueError, "optim.batch_size"),
    ("optim", {"lr": 0.0}, ValueError, "optim.lr"),
    ("optim", {"data_parallel": "zero3"}, ValueError, "optim.data_parallel='zero3'; accepted: ddp, fsdp"),
    ("finetune", {"mode": "qlora"}, ValueError, "finetune.mode"),
    ("finetune", {"mode": "lora", "lora_rank": 0}, ValueError, "finetune.lora_rank"),
    ("finetune", {"mode": "lora", "lora_alpha": 0.0}, ValueError, "finetune.lora_alpha"),
    ("finetune", {"mode": "lora", "lora_targets": []}, ValueError, "finetune.lora_targets"),
    ("finetune", {"mode": "lora", "lora_save": "adapters"}, ValueError, "finetune.lora_save='adapters'; accepted"),
    ("finetune", {"lora_save": "adapter"}, ValueError, "finetune.lora_save='adapter' saves LoRA adapters, but finetune.mode"),
    (None, {"save_every": 0}, ValueError, "save_every"),
    (None, {"checkpoint_every_minutes": -0.5}, ValueError, "checkpoint_every_minutes=-0.5: must be a number of"),
    (None, {"checkpoint_every_minutes": float("inf")}, ValueError, "checkpoint_every_minutes=inf: must be a number"),
    (None, {"checkpoint_every_minutes": "30"}, ValueError, "checkpoint_every_minutes='30': "),
    ("eval", {"task": "rech"}, ValueError, "eval.task"),
    ("eval", {"every": -1}, ValueError, "eval.every=-1: must be an integer >= 0"),
    ("eval", {"episodes": 0}, ValueError, "eval.episodes=0: must be an integer >= 1"),
    # refused at the first batch or evaluation, after the latent cache was encoded (and without the setting's name)
    (None, {"seed": -1}, ValueError, "seed=-1 must be an integer"),
    ("eval", {"seed": -1}, ValueError, "eval.seed: seed=-1 must be an integer"),
    ("eval", {"steps": 0}, ValueError, "eval.steps: steps=0 must be an integer"),
    ("eval", {"perturb": "light=9"}, ValueError, "eval.perturb: 'light=9': light takes a number of 0.1 to 3"),
    ("eval", {"perturb": ["camera", "fog"]}, ValueError, "eval.perturb: unknown perturbation 'fog' in 'fog'; accepted"),
])
def test_bad_values_name_the_field(valid, section, values, error, field):
    from worldpolicy.train.trainer import Trainer

    with pytest.raises(error, match=field.replace(".", r"\.")):
        load_config(_with(valid, section, **values))
    config = load_config(valid)  # valid, then broken after loading: the Trainer checks again before any work
    holder = getattr(config, section) if section else config
    for key, value in values.items():
        setattr(holder, key, value)
    with pytest.raises(error, match=field.replace(".", r"\.")):
        Trainer(config)


@pytest.mark.parametrize("changes, message", [
    ({"finetune": {"mode": "lora"}}, "optim.data_parallel='fsdp' with finetune.mode='lora': not supported"),
    ({"eval": {"every": 10}}, "optim.data_parallel='fsdp' with eval.every=10: not supported (the sim evaluation"),
])
def test_what_a_sharded_run_cannot_do_is_refused_naming_the_settings(valid, changes, message):
    raw = _with(valid, "optim", data_parallel="fsdp")
    for section, values in changes.items():
        raw = _with(raw, section, **values)
    with pytest.raises(ValueError, match=re.escape(message)):
        load_config(raw)


def test_a_sharded_run_may_hold_episodes_out_without_scoring_them(valid):
    raw = _with(_with(valid, "optim", data_parallel="fsdp"), "validation", episodes=[1], every=0)
    assert load_config(raw).optim.data_parallel == "fsdp"


def test_a_sharded_run_may_log_the_held_out_loss_and_action_error(valid):
    """Every rank scores its share of the held-out windows and samples its share of the chunks."""
    raw = _with(_with(valid, "optim", data_parallel="fsdp"), "validation", episodes=[1], every=5, action_chunks=8)
    assert load_config(raw).validation.action_chunks == 8


def test_load_config_itself_checks(valid):
    with pytest.raises(ValueError, match="data.chunk_size"):
        load_config(_with(valid, "data", chunk_size=6))


def _cli_error(capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert "Traceback" not in err
    errors = [line for line in lines if line.startswith(f"worldpolicy {argv[0]}: error:")]
    assert len(errors) == 1, err
    return errors[0]


@pytest.mark.parametrize("section, values, message", [
    ("data", {"chunk_size": 6}, "data.chunk_size=6"),
    ("timesteps", {"kind": "beta"}, "timesteps.kind='beta'"),
    ("objectives", {"policy": 0.0}, "objectives: every weight is 0 (policy = 0.0, "),
    (None, {"optimizer": {}}, "unknown keys ['optimizer']"),
    ("data", {"dataset": "missing_dataset"}, "missing_dataset' does not exist (expected a LeRobot v3 dataset folder"),
])
def test_cli_bad_config_is_one_line(tmp_path, capsys, valid, section, values, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_with(valid, section, **values)))
    assert message in _cli_error(capsys, ["train", str(path), "--no-progress"])
    assert not (tmp_path / "unused").exists()


@pytest.mark.parametrize("setting", ["output_dir", "data.cache_dir"])
def test_an_output_folder_that_cannot_be_written_is_refused_before_anything_loads(tmp_path, capsys, valid, monkeypatch,
                                                                                  setting):
    """A read-only disk (or a folder without write permission) was found once the model had loaded and the windows
    were encoded, when the latent cache or the first checkpoint was written."""
    import os
    from pathlib import Path

    locked = tmp_path / "locked"
    locked.mkdir()
    access = os.access  # read-only to this user (root may write anywhere, so chmod alone would not show it)
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == locked else access(path, mode))
    section, _, name = setting.rpartition(".")
    path = tmp_path / "run.json"
    path.write_text(json.dumps(_with(valid, section or None, **{name: str(locked / "run")})))
    flag = "--out / output_dir" if setting == "output_dir" else setting
    assert _cli_error(capsys, ["train", str(path), "--no-progress"]) == (
        f"worldpolicy train: error: {flag}={str(locked / 'run')!r}: {str(locked)!r}, where the folder would be made, "
        f"is not writable (a read-only disk, or no write permission); give {flag} a folder this user can write")
    path.write_text(json.dumps(_with(valid, section or None, **{name: str(locked)})))
    assert f"{flag}={str(locked)!r}: {str(locked)!r} is not writable" in _cli_error(capsys, ["train", str(path)])
    assert not (locked / "run").exists()


def test_a_training_runs_folder_given_as_checkpoint_names_the_checkpoint_to_give(valid, tmp_path, capsys):
    """Starting from one's earlier run by its folder was refused as "is a path but has no model_index.json", which
    left the user to find that the checkpoints are under checkpoints/step-*."""
    run = tmp_path / "runs" / "a"
    for step in ("step-0000002", "step-0000004"):
        (run / "checkpoints" / step / "transformer").mkdir(parents=True)
        (run / "checkpoints" / step / "model_index.json").write_text("{}")  # a checkpoint, as far as the checks read
    newest = run / "checkpoints" / "step-0000004"
    for given, what in ((run, "folder"), (run / "checkpoints", "checkpoints folder")):
        with pytest.raises(FileNotFoundError) as error:
            load_config(_with(valid, None, checkpoint=str(given)))
        assert str(error.value) == (
            f"checkpoint={str(given)!r} is a training run's {what}, not a checkpoint: give one of its "
            f"checkpoints/step-*, e.g. the newest, {str(newest)!r} (to continue that run itself, give its folder as "
            "--out / output_dir with its own config)")
    with pytest.raises(FileNotFoundError, match=rf"^checkpoint='{newest}/transformer' is a part of the checkpoint "
                                                rf"'{newest}': give that folder$"):
        load_config(_with(valid, None, checkpoint=str(newest / "transformer")))
    assert load_config(_with(valid, None, checkpoint=str(newest))).checkpoint == str(newest)
    # loading a policy (predict, serve) and merging an adapter: the same mistake, each named as its argument
    with pytest.raises(FileNotFoundError, match=rf"^checkpoint='{run}' is a training run's folder, not a checkpoint: "
                                                rf"give one of its checkpoints/step-\*, e.g. the newest, '{newest}'$"):
        check_checkpoint_source(run)
    assert _cli_error(capsys, ["merge-adapter", str(run), "--out", str(tmp_path / "merged")]) == (
        f"worldpolicy merge-adapter: error: CHECKPOINT={str(run)!r} is a training run's folder, not a checkpoint: "
        f"give one of its checkpoints/step-*, e.g. the newest, {str(newest)!r}")


def test_an_unknown_embodiment_name_is_refused_before_the_trainer_imports(valid, tiny_checkpoint):
    """`embodiment = "dorid"` passed `check()` and was refused by the trainer, after torch and diffusers had imported;
    a name is judged with the other settings: registered, or the starting checkpoint's own (`shipped`'s panda_reach).
    A hub checkpoint's own embodiment is read as the run starts, so a name it may hold is left to the trainer."""
    with pytest.raises(KeyError, match=r"embodiment='dorid' is not registered \(did you mean 'droid'\?\)"):
        load_config(_with(valid, None, checkpoint=str(tiny_checkpoint), embodiment="dorid"))
    assert load_config(_with(valid, None, checkpoint="shipped", embodiment="panda_reach")).embodiment == "panda_reach"
    assert load_config(_with(valid, None, embodiment="hub_robot")).embodiment == "hub_robot"  # some/hub-id's own?


def test_a_dataset_worldpolicy_cannot_read_is_refused_before_the_trainer_imports(valid, tiny_dataset, tmp_path):
    """A LeRobot v2.1 dataset (or damaged metadata) passed `check()`, having meta/info.json, and was refused only by
    the trainer, after torch and diffusers had imported (seconds); its metadata is read with the other settings."""
    import shutil

    from worldpolicy.data import DatasetFormatError

    old = tmp_path / "v21"
    shutil.copytree(tiny_dataset, old)
    info = json.loads((old / "meta" / "info.json").read_text())
    (old / "meta" / "info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(DatasetFormatError, match=r"field 'codebase_version': got 'v2.1'; only 'v3.0' is read; "
                                                 r"convert it"):
        load_config(_with(valid, "data", dataset=str(old)))


def test_a_dataset_folder_given_one_level_off_names_the_dataset(valid, tiny_dataset, tmp_path):
    """A folder inside the dataset (its meta/) or above datasets (a download folder: LeRobot's cache keeps
    `<owner>/<name>`) was refused as "has no meta/info.json", leaving the user to find which folder was meant."""
    import shutil

    def refused(dataset):
        with pytest.raises(FileNotFoundError) as error:
            load_config(_with(valid, "data", dataset=str(dataset)))
        return str(error.value)

    inside = f"data.dataset={str(tiny_dataset / 'meta')!r} has no meta/info.json (not a LeRobot v3 dataset); "
    assert refused(tiny_dataset / "meta") == inside + f"it is inside the dataset {str(tiny_dataset)!r}: set " \
                                                      "data.dataset to that folder"
    shutil.copytree(tiny_dataset / "meta", tmp_path / "hub" / "owner" / "pick" / "meta")
    assert refused(tmp_path / "hub").endswith("(not a LeRobot v3 dataset); its subfolder 'owner/pick' is one: set "
                                              "data.dataset to the one to train on")
    shutil.copytree(tiny_dataset / "meta", tmp_path / "hub" / "place" / "meta")
    assert refused(tmp_path / "hub").endswith("its subfolders 'owner/pick', 'place' are datasets: set data.dataset to "
                                              "the one to train on")
    (tmp_path / "empty").mkdir()
    assert refused(tmp_path / "empty").endswith("has no meta/info.json (not a LeRobot v3 dataset)")
    # a checkpoint given for the dataset is said to be one, as the dataset commands say it (`data.layout.held_instead`)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "model_index.json").write_text("{}")
    assert refused(tmp_path / "ckpt").endswith("has no meta/info.json (not a LeRobot v3 dataset); it holds a diffusers "
                                               "checkpoint (model_index.json), not a dataset")
    demos = tmp_path / "demos.hdf5"  # robomimic / LIBERO demonstrations: the command that makes a dataset of them
    demos.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))  # the HDF5 signature, as h5py writes it
    assert refused(demos).endswith(f"(not a LeRobot v3 dataset); {str(demos)!r} is an HDF5 file: make a dataset of its "
                                   f"demonstrations with `worldpolicy dataset import-hdf5 {demos} --out NEW`")


def test_an_output_folder_holding_other_runs_is_refused(valid, tmp_path, capsys):
    """`--out runs` (for `runs/new`) wrote config.json, metrics.jsonl and checkpoints/ in among the runs there; the
    run's own folder is still accepted, to resume it."""
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "a" / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    path = tmp_path / "run.json"
    path.write_text(json.dumps(valid))
    assert _cli_error(capsys, ["train", str(path), "--out", str(tmp_path / "runs")]).endswith(
        f"--out / output_dir: {str(tmp_path / 'runs')!r} holds other runs in its subfolders "
        f"({str(tmp_path / 'runs' / 'a')!r}: a training run (metrics.jsonl)); this run's files would be mixed in among "
        f"them: choose another --out / output_dir (a new or empty folder, or {str(tmp_path / 'runs' / 'a')!r} itself "
        "to rerun into that run)")
    assert not (tmp_path / "runs" / "config.json").exists()
    assert load_config(_with(valid, None, output_dir=str(tmp_path / "runs" / "a"))).output_dir == str(
        tmp_path / "runs" / "a")


def test_a_key_in_the_wrong_table_says_where_it_belongs(valid, tmp_path):
    """In TOML every key after `[optim]` is optim's, so `seed = 1` written below it was "optim: unknown keys ['seed']"
    for a key that is right; the error says which table has it (or, for a typo, the key it is near). A checkpoint's
    trainer_state.json given as the config was nine unknown keys: it names the run's config.json."""
    path = tmp_path / "run.toml"
    text = f'checkpoint = "some/hub-id"\n[data]\ndataset = "{valid["data"]["dataset"]}"\nchunk_size = 4\n'
    for extra, hint in (("[optim]\nsteps = 5\nseed = 1\n",
                         "(seed is a key of the top level (above every [table]) or [eval])"),
                        ("batch_size = 4\n", "(batch_size is a key of [optim])"),
                        ("[optim]\nstpes = 5\n", "(stpes: did you mean steps?)"),
                        ("[optim]\nsteps = 5\nunheard_of = 1\n", "'weight_decay']")):
        path.write_text(text + extra)
        with pytest.raises(ValueError) as error:
            load_config(path)
        assert str(error.value).endswith(hint)
    state = tmp_path / "run" / "checkpoints" / "step-0000002" / "trainer_state.json"  # a checkpoint's, given as CONFIG
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"step": 2, "config": valid, "params": []}))
    (tmp_path / "run" / "config.json").write_text(json.dumps(valid))
    with pytest.raises(ValueError, match=rf"^config '{state}' is a checkpoint's training state, not a TrainConfig: the "
                                         rf"run's settings are its config.json \('{tmp_path / 'run' / 'config.json'}'\)"):
        load_config(state)


def test_cli_unreadable_and_missing_configs(tmp_path, capsys, valid):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    assert "is not valid JSON" in _cli_error(capsys, ["train", str(path)])
    typo = tmp_path / "typo.toml"  # the line it points at, quoted: the typo is seen without counting lines
    typo.write_text('output_dir = "runs/x"\n\n[optim]\nsteps = 3\nlr = 1e-4x\n')
    assert _cli_error(capsys, ["train", str(typo)]).endswith("(at line 5, column 10): 'lr = 1e-4x'")
    assert "not a file and not a recipe name" in _cli_error(capsys, ["train", str(tmp_path / "nope.toml")])
    (tmp_path / "run.txt").write_text("[optim]\nsteps = 3\n")  # was read as JSON: "is not valid TXT"
    assert "config " + repr(str(tmp_path / "run.txt")) + ": expected a TrainConfig file ending in .toml or .json" in \
        _cli_error(capsys, ["train", str(tmp_path / "run.txt")])
    good = tmp_path / "good.json"
    good.write_text(json.dumps(valid))
    assert "--steps=0" in _cli_error(capsys, ["train", str(good), "--steps", "0"])
    # a TrainConfig with --install: said what --install is for and what to do, naming the file given
    assert f"{str(good)!r} is a TrainConfig: drop --install" in _cli_error(capsys, ["train", str(good), "--install"])


def test_the_episodes_trained_on_are_chosen_on_the_command_line(train_config, tmp_path, capsys):
    """`data.episodes` / `data.exclude_episodes` had no flag: choosing episodes meant writing a config file. The
    flags override the file's settings (a selection wrong for this dataset included), name themselves in errors, and
    are stored in config.json as the settings, so a resume with another selection is refused."""
    out = tmp_path / "run"
    path = tmp_path / "run.json"
    path.write_text(json.dumps(train_config(out, data={"episodes": [7]}, optim={"steps": 1})))
    assert _cli_error(capsys, ["train", str(path), "--episodes", "0,a"]) == (
        "worldpolicy train: error: --episodes '0,a': expected episode indices (integers from 0) or ranges A-B (A <= B) "
        "separated by commas, e.g. --episodes 0,3,5-9")
    assert "error: data.episodes=[7]: [7] not episodes of data.dataset, which has 2 (accepted: indices 0 to 1)" in \
        _cli_error(capsys, ["train", str(path)])  # the file's own selection: named as the file's setting
    assert "error: --episodes=[0, 2]: [2] not episodes of data.dataset, which has 2 (accepted: indices 0 to 1)" in \
        _cli_error(capsys, ["train", str(path), "--episodes", "0, 2"])
    assert "error: --exclude-episodes=[1] leaves out --episodes=[1]: nothing to train on" in \
        _cli_error(capsys, ["train", str(path), "--episodes", "1", "--exclude-episodes", "1"])
    assert not out.exists()
    assert main(["train", str(path), "--episodes", "1", "--no-progress"]) == 0
    capsys.readouterr()
    stored = json.loads((out / "config.json").read_text())["data"]
    assert (stored["episodes"], stored["exclude_episodes"]) == ([1], [])
    assert json.loads(path.read_text())["data"]["episodes"] == [7]  # the file is left as it was
    # the flags as typed, which config.json resolves away, and where: in the checkpoint's trainer_state.json
    state = json.loads(next((out / "checkpoints").glob("step-*/trainer_state.json")).read_text())
    assert (state["command"], state["cwd"]) == (f"worldpolicy train {path} --episodes 1 --no-progress", os.getcwd())
    assert "data.episodes: [1] -> [0]" in _cli_error(capsys, ["train", str(path), "--episodes", "0", "--steps", "2"])
    assert "data.exclude_episodes: [] -> [0]. Put them back to resume it (--exclude-episodes sets " \
        "data.exclude_episodes on the command line)" in _cli_error(
            capsys, ["train", str(path), "--episodes", "1", "--exclude-episodes", "0", "--steps", "2"])
    assert "--exclude-episodes: a recipe records its own dataset" in _cli_error(
        capsys, ["train", "reach-from-scratch", "--exclude-episodes", "3"])


@pytest.mark.parametrize("section, values, message", [
    ("optim", {"lr": "1e-3"}, "optim.lr='1e-3': expected a number, got str"),
    ("data", {"chunk_size": "4"}, "data.chunk_size='4': expected an integer, got str"),
    ("eval", {"every": "2"}, "eval.every='2': expected an integer, got str"),
    ("eval", {"perturb": 0.5}, "eval.perturb=0.5: expected a string or a list of strings or null, got float"),
    (None, {"seed": 1.5}, "seed=1.5: expected an integer, got float"),
    (None, {"embodiment": 3}, "embodiment=3: expected a string or a table or null, got int"),
    ("data", {"video_keys": [1, 2]}, "data.video_keys=[1, 2]: expected a list of strings or null, got list"),
    ("optim", {"steps": True}, "optim.steps=True: expected an integer, got bool"),
    ("optim", {"min_lr_ratio": -3}, r"optim.min_lr_ratio=-3.0: must be in [0.0, 1.0]"),
    ("optim", {"warmup_steps": -1}, "optim.warmup_steps=-1: must be >= 0"),
    ("objectives", {"action_loss_weight": -1}, "objectives.action_loss_weight=-1.0: must be >= 0.0"),
])
def test_wrong_types_and_ranges_name_the_field(valid, section, values, message):
    with pytest.raises(ValueError) as error:
        load_config(_with(valid, section, **values))
    assert message in str(error.value)


@pytest.mark.parametrize("values, message", [
    ({"episodes": 1}, "data.episodes=1: expected a list of integers or null, got int"),
    ({"exclude_episodes": ["1"]}, "data.exclude_episodes=['1']: expected a list of integers, got list"),
    ({"episodes": [0, 1.0]}, "data.episodes=[0, 1.0]: expected a list of integers or null, got list"),
    # the tiny dataset holds episodes 0 and 1
    ({"episodes": [0, 2, -1]}, ("data.episodes=[0, 2, -1]: [2, -1] not episodes of data.dataset, which has 2 "
                               "(accepted: indices 0 to 1)")),
    ({"exclude_episodes": [5]}, "data.exclude_episodes=[5]: [5] not episodes of data.dataset, which has 2"),
    ({"episodes": [1, 0, 1]}, "data.episodes=[1, 0, 1]: [1] given more than once; name each episode once"),
    ({"exclude_episodes": [0, 1]}, ("data.exclude_episodes=[0, 1] leaves out every episode of data.dataset: nothing "
                                   "to train on")),
    ({"episodes": []}, "data.episodes=[]: no episode to train on; name some, or leave it unset for all of them"),
    ({"episodes": [1], "exclude_episodes": [1]}, "data.exclude_episodes=[1] leaves out data.episodes=[1]: nothing"),
])
def test_an_episode_selection_is_checked_against_the_dataset_naming_the_setting(valid, values, message):
    with pytest.raises(ValueError) as error:
        load_config(_with(valid, "data", **values))
    assert str(error.value).startswith(message)


def test_the_episodes_trained_on_are_the_selection_without_the_excluded_ones(valid):
    from worldpolicy.train.config import DataConfig, TrainConfig

    def selected(**values):
        return load_config(_with(valid, "data", **values)).data.selected_episodes(2)

    assert selected() is None and selected(episodes=[1, 0]) is None  # all of them: as a run before the setting
    assert selected(episodes=[1]) == (1,) and selected(exclude_episodes=[0]) == (1,)
    assert selected(episodes=[0, 1], exclude_episodes=[1]) == (0,)
    assert DataConfig(episodes=[7, 3, 5], exclude_episodes=[5]).selected_episodes(8) == (3, 7)  # ascending
    picked = DataConfig(episodes=list(np.array([4, 1]))).selected_episodes(8)  # numpy's ints, given in Python
    assert picked == (1, 4) and all(type(i) is int for i in picked)  # the cache key as a file's [1, 4] gives
    config = TrainConfig(**{**load_config(valid).__dict__, "data": DataConfig(dataset=valid["data"]["dataset"],
                                                                              episodes=[0.5])})
    with pytest.raises(ValueError, match=r"^data.episodes=\[0.5\]: expected a list of integers \(episode indices\)"):
        config.check()  # built in Python, not read from a file: checked all the same


def test_a_changed_episode_selection_is_a_changed_setting_on_resume(valid):
    from worldpolicy.train.config import changed_settings

    current = load_config(valid).to_dict()
    older = json.loads(json.dumps(current))  # a run stored before the settings existed trained on every episode
    del older["data"]["episodes"], older["data"]["exclude_episodes"]
    assert changed_settings(older, current) == []
    excluding = load_config(_with(valid, "data", exclude_episodes=[1])).to_dict()
    assert changed_settings(older, excluding) == ["data.exclude_episodes: [] -> [1]"]
    assert changed_settings(excluding, current) == ["data.exclude_episodes: [1] -> []"]
    assert changed_settings(current, load_config(_with(valid, "data", episodes=[0])).to_dict()) == [
        "data.episodes: None -> [0]"]


def test_one_string_is_a_list_of_one_and_integers_are_numbers(valid):
    config = load_config(_with(_with(valid, "data", video_keys="observation.image.exterior_image_1_left"),
                               "optim", lr=1, grad_clip=2))
    assert config.data.video_keys == ["observation.image.exterior_image_1_left"]
    assert config.optim.lr == 1.0 and isinstance(config.optim.lr, float) and config.optim.grad_clip == 2.0


def test_preset_accepts_its_own_weights_and_a_saved_config(valid, tmp_path):
    """A run's config.json stores the preset beside the weight fields (defaults or the preset's own): it loads again."""
    mix = {"preset": "cosmos_policy", "policy": 0.5, "forward_dynamics": 0.25, "inverse_dynamics": 0.25}
    assert load_config(_with(valid, "objectives", **mix)).objectives.weights() == {
        "policy": 0.5, "forward_dynamics": 0.25, "inverse_dynamics": 0.25}
    saved = load_config(_with(valid, "objectives", preset="cosmos_policy")).to_dict()
    assert load_config(saved).objectives.weights()["forward_dynamics"] == 0.25


def test_a_resume_from_another_folder_or_spelling_is_the_same_run(tmp_path, tiny_dataset, monkeypatch):
    """Paths are stored absolute; a run stored with relative ones still matches when they name the same folders."""
    from worldpolicy.train.config import changed_settings

    for folder in ("ckpt", "other"):  # checkpoint folders, as far as the checks read
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "model_index.json").write_text("{}")
    path = tmp_path / "conf" / "train.toml"
    path.parent.mkdir()
    path.write_text(f'checkpoint = "../ckpt"\noutput_dir = "out"\n[data]\ndataset = "{tiny_dataset}"\n')
    monkeypatch.chdir(path.parent)
    first = load_config("train.toml").to_dict()
    assert first["checkpoint"] == str(tmp_path / "ckpt")
    monkeypatch.chdir(tmp_path)
    assert changed_settings(first, load_config(path).to_dict()) == []
    older = dict(first, checkpoint="ckpt")  # an older version stored what the file said, relative to where it ran
    assert changed_settings(older, load_config(path).to_dict()) == []
    other = tmp_path / "other"
    assert changed_settings(first, load_config(path, checkpoint=str(other)).to_dict()) == [
        f"checkpoint: {str(tmp_path / 'ckpt')!r} -> {str(other)!r}"]


def test_an_embodiment_tables_own_stats_are_checked_before_the_weights_load(valid, tiny_checkpoint, tmp_path,
                                                                             monkeypatch):
    """The trainer's first (layout) pass dropped the table's stats: q01 > q99 surfaced after the weights had loaded
    and every training window had been encoded. (A local checkpoint: a hub id's configs are fetched as a run starts.)"""
    from train_setup import TINY_EMBODIMENT

    from worldpolicy.engine import loading
    from worldpolicy.train.trainer import Trainer

    monkeypatch.setattr(loading, "load_components", lambda *a, **k: pytest.fail("weights loaded"))
    table = dict(TINY_EMBODIMENT, normalization="quantile", stats={"q01": [0.0] * 7 + [2.0], "q99": [1.0] * 8})
    raw = _with(valid, None, output_dir=str(tmp_path / "run"), embodiment=table, checkpoint=str(tiny_checkpoint))
    with pytest.raises(ValueError, match=r"embodiment 'tiny_panda' stats: q01 > q99 in column gripper "
                                         r"\(q01=2, q99=1\)"):
        Trainer(load_config(raw), progress=False)._load()


def test_a_new_embodiment_with_normalization_none_trains_on_raw_actions(train_config, tmp_path):
    """The trainer attached the data's stats to a table that asked for normalization 'none'; once stats without a
    normalization were refused, such a run failed after encoding its data."""
    from train_setup import TINY_EMBODIMENT

    from worldpolicy import Policy
    from worldpolicy.train.trainer import Trainer

    raw = train_config(tmp_path / "run", embodiment=dict(TINY_EMBODIMENT, normalization="none"),
                       optim={"steps": 1, "batch_size": 2})
    Trainer(load_config(raw), progress=False).run()
    ckpt = tmp_path / "run" / "checkpoints" / "step-0000001"
    spec = json.loads((ckpt / "embodiment.json").read_text())
    assert spec["normalization"] == "none" and not spec.get("stats")
    assert Policy.from_pretrained(ckpt, device="cpu").embodiment.normalization == "none"
    # a checkpoint written before (normalization 'none' named, stats attached) still loads: the stats are unused
    (ckpt / "embodiment.json").write_text(json.dumps({**spec, "stats": {"q01": [0.0] * 8, "q99": [1.0] * 8}}))
    Policy.check_pretrained(ckpt)


def test_lora_settings_on_a_full_fine_tune_are_refused(valid):
    """`mode = "full"` with lora_rank set was accepted and the rank silently unused: the user meant one or the other."""
    for values, named in (({"lora_rank": 8}, "finetune.lora_rank=8"),
                          ({"lora_alpha": 32, "lora_targets": ["to_q"]},
                           "finetune.lora_alpha=32.0, finetune.lora_targets=['to_q']")):
        with pytest.raises(ValueError, match=rf"finetune.mode='full' trains every weight and adds no adapters, but LoRA "
                                             rf"settings are set \({re.escape(named)}\): set finetune.mode = 'lora'"):
            load_config(_with(valid, "finetune", **values))
        assert load_config(_with(valid, "finetune", mode="lora", **values)).finetune.mode == "lora"
    stored = load_config(valid).to_dict()  # a full run's config.json lists the LoRA settings at their defaults
    assert load_config(stored).finetune.lora_rank == 16


def test_a_full_run_stored_with_lora_settings_resumes_once_they_are_removed(valid):
    """Older versions stored a full run's unused lora_rank: removing it (as the refusal asks) must not read as a
    changed setting; for a LoRA run the rank shapes the weights and stays compared."""
    from worldpolicy.train.config import changed_settings

    current = load_config(valid).to_dict()
    stored = json.loads(json.dumps(current))
    stored["finetune"].update(lora_rank=8, lora_targets=["to_q"])
    assert changed_settings(stored, current) == []
    lora = load_config(_with(valid, "finetune", mode="lora")).to_dict()
    stored_lora = json.loads(json.dumps(lora))
    stored_lora["finetune"]["lora_rank"] = 8
    assert changed_settings(stored_lora, lora) == ["finetune.lora_rank: 8 -> 16"]


def test_a_config_files_relative_inputs_are_from_its_folder_not_the_shells(tmp_path, tiny_dataset, monkeypatch):
    """`checkpoint = "ckpt/tiny"` in conf/train.toml, with ckpt/tiny beside conf/: it was kept as a hub id and found
    from the working directory, stored so, and a resume from another folder went to the hub for 'ckpt/tiny'. A dataset
    written so was reported missing without a word on why."""
    (tmp_path / "ds").symlink_to(tiny_dataset)
    (tmp_path / "ckpt" / "tiny").mkdir(parents=True)
    (tmp_path / "ckpt" / "tiny" / "model_index.json").write_text("{}")
    conf = tmp_path / "conf" / "train.toml"
    (conf.parent / "runs").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)

    def load(checkpoint: str, dataset: str):
        conf.write_text(f'checkpoint = "{checkpoint}"\n[data]\ndataset = "{dataset}"\nchunk_size = 4\n')
        return load_config(conf)

    with pytest.raises(FileNotFoundError, match=r"checkpoint='ckpt/tiny': relative paths in a config file resolve "
                                                r"against its folder.* write '../ckpt/tiny' or an absolute path"):
        load("ckpt/tiny", "../ds")
    with pytest.raises(FileNotFoundError, match=r"data.dataset='ds': .* write '../ds' or an absolute path"):
        load("../ckpt/tiny", "ds")
    with pytest.raises(FileNotFoundError, match=r"checkpoint='runs/x' does not exist: .*conf/runs' .* holds no 'x'"):
        load("runs/x", "../ds")  # `runs` beside the config: a missing path there, not a hub id
    config = load("../ckpt/tiny", "../ds")
    assert config.checkpoint == str(tmp_path / "ckpt" / "tiny") and config.data.dataset == str(tmp_path / "ds")
    assert load("nvidia/some-model", "../ds").checkpoint == "nvidia/some-model"


def test_an_embodiments_stats_file_is_read_from_its_spec_and_kept_inline(tmp_path, valid, monkeypatch):
    """A spec file's relative `stats_file` was read from the working directory when a training config named the spec
    (register_embodiment(path) reads it from the spec's folder), and the checkpoints' embodiment.json kept the path,
    so a checkpoint moved without that file did not load."""
    from train_setup import TINY_EMBODIMENT

    from worldpolicy.embodiments import embodiment_from_spec

    stats = {"action": {"q01": [-1.0] * 8, "q99": [2.0] * 8}}
    (tmp_path / "robot").mkdir()
    (tmp_path / "robot" / "stats.json").write_text(json.dumps(stats))
    spec = dict(TINY_EMBODIMENT, stats_file="stats.json")
    (tmp_path / "robot" / "spec.json").write_text(json.dumps(spec))
    monkeypatch.chdir(tmp_path)  # no stats.json here
    config = load_config(_with(valid, None, embodiment=str(tmp_path / "robot" / "spec.json")))
    assert "stats_file" not in config.embodiment and config.embodiment["normalization"] == "quantile"
    spec_alone = dict(config.embodiment, domain="tiny_panda", domain_id=20, chunk_size=4)
    assert embodiment_from_spec(spec_alone).stats["q99"] == (2.0,) * 8
    # a table in the config file: its stats file from the config's folder
    conf = tmp_path / "robot" / "train.toml"
    conf.write_text(f'checkpoint = "some/hub-id"\n[data]\ndataset = "{valid["data"]["dataset"]}"\nchunk_size = 4\n'
                    '[embodiment]\n' + "".join(f"{k} = {json.dumps(v)}\n" for k, v in spec.items()
                                               if not isinstance(v, dict)) +
                    '[embodiment.state_keys]\njoints = "observation/joint_position"\n'
                    'gripper = "observation/gripper_position"\n')
    assert load_config(conf).embodiment["stats"]["q01"] == [-1.0] * 8


def test_a_run_stored_with_a_stats_file_resumes_now_that_the_stats_are_inlined(tmp_path, valid, monkeypatch):
    """Older versions stored an embodiment's `stats_file` as written; load_config now stores the stats it holds, so
    resuming such a run was refused as "embodiment.stats_file: 'stats.json' -> unset". Other changes still count."""
    from train_setup import TINY_EMBODIMENT

    from worldpolicy.train.config import changed_settings

    (tmp_path / "stats.json").write_text(json.dumps({"action": {"q01": [-1.0] * 8, "q99": [2.0] * 8}}))
    monkeypatch.chdir(tmp_path)
    table = dict(TINY_EMBODIMENT, stats_file="stats.json", stats_feature="action")
    current = load_config(_with(valid, None, embodiment=table)).to_dict()
    assert "stats_file" not in current["embodiment"]
    stored = dict(json.loads(json.dumps(current)), embodiment=table)  # what an older version wrote
    assert changed_settings(stored, current) == []
    stored["embodiment"] = dict(table, fps=30)
    assert changed_settings(stored, current) == ["embodiment.fps: 30 -> 15"]


def test_a_starting_checkpoints_stats_file_is_read_from_its_folder_and_kept_inline(train_config, tiny_checkpoint,
                                                                                    tmp_path, monkeypatch):
    """A checkpoint an older version wrote with its embodiment.json naming `stats_file` loads as a Policy with the
    file beside it (read from the checkpoint's folder); fine-tuning from it read the file from the working directory
    (missing there, or another file), and the new checkpoints' embodiment.json kept the path."""
    import shutil

    from train_setup import TINY_EMBODIMENT

    from worldpolicy.train.trainer import Trainer

    start = tmp_path / "start"
    (start / "transformer").mkdir(parents=True)
    shutil.copy(tiny_checkpoint / "model_index.json", start)
    shutil.copy(tiny_checkpoint / "transformer" / "config.json", start / "transformer")
    (start / "embodiment.json").write_text(json.dumps(dict(
        TINY_EMBODIMENT, stats_file="stats.json", normalization="quantile", domain="worldpolicy_tiny_panda",
        domain_id=20, chunk_size=4)))
    (start / "stats.json").write_text(json.dumps({"action": {"q01": [-1.0] * 8, "q99": [2.0] * 8}}))
    monkeypatch.chdir(tmp_path)  # no stats.json here
    raw = train_config(tmp_path / "run", checkpoint=str(start))
    del raw["embodiment"]
    trainer = Trainer(load_config(raw), progress=False)
    assert "stats_file" not in trainer.config.embodiment  # config.json stands alone too
    assert trainer._data()[1].key == "tiny_panda"
    trained = trainer._embodiment(stats={"q01": [0.0] * 8, "q99": [1.0] * 8})  # the data's: the checkpoint's win
    assert trained.stats["q99"] == (2.0,) * 8
    assert "stats_file" not in trainer.embodiment_spec and trainer.embodiment_spec["stats"]["q99"] == [2.0] * 8


def test_the_checkpoints_action_head_is_checked_before_the_weights_load(train_config, tiny_checkpoint, tmp_path,
                                                                         monkeypatch):
    """An embodiment wider than the checkpoint's action head failed in the first training step with torch's "expanded
    size of the tensor (6) must match the existing size (8)", and a domain slot past the head's was refused only once
    the weights had loaded: both are read from transformer/config.json first."""
    import shutil

    from worldpolicy.engine import loading
    from worldpolicy.train.trainer import Trainer

    monkeypatch.setattr(loading, "load_components", lambda *a, **k: pytest.fail("weights loaded"))

    def checkpoint(name, **config):
        folder = tmp_path / name
        (folder / "transformer").mkdir(parents=True)
        shutil.copy(tiny_checkpoint / "model_index.json", folder)
        doc = json.loads((tiny_checkpoint / "transformer" / "config.json").read_text())
        (folder / "transformer" / "config.json").write_text(json.dumps({**doc, **config}))
        return str(folder)

    narrow = load_config(train_config(tmp_path / "a", checkpoint=checkpoint("narrow", action_dim=6)))
    with pytest.raises(ValueError, match=r"embodiment 'tiny_panda' has 8 action columns but the action head of "
                                         r"checkpoint '.*narrow' holds 6"):
        Trainer(narrow, progress=False).run()
    few = load_config(train_config(tmp_path / "b", checkpoint=checkpoint("few", num_embodiment_domains=8)))
    with pytest.raises(ValueError, match=r"embodiment 'tiny_panda' uses domain id 10 but checkpoint '.*few' has 8 "
                                         r"domains"):
        Trainer(few, progress=False).run()
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_evaluating_without_the_sim_extra_fails_at_the_check(monkeypatch, valid):
    """It trained until its first evaluation, then failed on `No module named 'mujoco'`."""
    import worldpolicy.sim

    assert load_config(_with(valid, "eval", every=5)).check().eval.every == 5
    monkeypatch.setitem(sys.modules, "mujoco", None)  # `import mujoco` now fails, as without the sim extra
    monkeypatch.delitem(sys.modules, "worldpolicy.sim.env", raising=False)
    monkeypatch.delattr(worldpolicy.sim, "env", raising=False)
    load_config(valid).check()  # no evaluation: no simulator needed
    with pytest.raises(MissingExtraError) as caught:
        load_config(_with(valid, "eval", every=5)).check()
    assert str(caught.value) == ("eval.every=5 evaluates in the simulator (0: never): mujoco is not installed; it "
                                 "comes with the 'sim' extra: pip install 'worldpolicy[sim]'")


def test_a_spec_file_named_in_a_config_built_in_python_is_read_as_load_config_reads_it(tmp_path, tiny_dataset):
    """`TrainConfig(embodiment="my_robot.json")` built in Python (not through `load_config`) kept the path as the
    setting, so the run trained the spec but its checkpoints held no embodiment.json and loaded as droid."""
    from train_setup import TINY_EMBODIMENT

    from worldpolicy.train.config import DataConfig, TrainConfig

    stats = {"action": {"q01": [-1.0] * 8, "q99": [1.0] * 8}}
    (tmp_path / "stats.json").write_text(json.dumps(stats))
    (tmp_path / "my_robot.json").write_text(json.dumps(dict(TINY_EMBODIMENT, stats_file="stats.json")))
    config = TrainConfig(checkpoint="some/hub-id", output_dir=str(tmp_path / "out"), embodiment=str(
        tmp_path / "my_robot.json"), data=DataConfig(dataset=str(tiny_dataset), chunk_size=4)).check()
    assert isinstance(config.embodiment, dict) and config.embodiment["name"] == TINY_EMBODIMENT["name"]
    assert config.embodiment["stats"]["q99"] == [1.0] * 8 and "stats_file" not in config.embodiment  # beside its file
    assert load_config({"checkpoint": "some/hub-id", "output_dir": str(tmp_path / "out"),
                        "embodiment": str(tmp_path / "my_robot.json"),
                        "data": {"dataset": str(tiny_dataset), "chunk_size": 4}}).embodiment == config.embodiment
    with pytest.raises(ValueError, match=r"embodiment='.*nowhere\.json': cannot read the spec file"):
        TrainConfig(checkpoint="some/hub-id", output_dir=str(tmp_path / "out"),
                    embodiment=str(tmp_path / "nowhere.json"),
                    data=DataConfig(dataset=str(tiny_dataset), chunk_size=4)).check()


def test_the_sim_evaluation_runs_under_eval_perturb_and_logs_it(tmp_path, monkeypatch, valid):
    """`[eval] perturb` reaches the evaluation's env, parsed as `worldpolicy sim --perturb` parses it, and its
    canonical spec is logged with the success rate (null for the scenes as drawn), as report.json records it."""
    pytest.importorskip("mujoco", reason="the evaluation runs the simulator (the sim extra)")
    import contextlib
    from types import SimpleNamespace

    import worldpolicy.sim.evaluate as sim_evaluate
    from worldpolicy.train.tracking import Trackers
    from worldpolicy.train.trainer import Trainer

    seen = []

    def evaluate(env, policy, **kwargs):  # the episodes are not run: what they would run under is the point
        seen.append(env.perturbation.spec)
        return SimpleNamespace(success_rate=0.5)

    @contextlib.contextmanager
    def live_policy(steps, source):
        yield SimpleNamespace(embodiment=None)

    monkeypatch.setattr(sim_evaluate, "evaluate", evaluate)
    metrics = tmp_path / "metrics.jsonl"
    for perturb in (["table", "light=0.5,prompt"], None):  # the instruction reworded too: the same table
        config = load_config(_with(valid, "eval", every=2, episodes=1, **({"perturb": perturb} if perturb else {})))
        trainer = SimpleNamespace(config=config, _live_policy=live_policy, progress=False, trackers=Trackers())
        trainer._log = lambda path, line, trainer=trainer: Trainer._log(trainer, path, line)
        Trainer._evaluate(trainer, 2, metrics)
    assert seen == ["light=0.5,table=random,prompt=paraphrase", ""]
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [line["eval_perturb"] for line in lines] == ["light=0.5,table=random,prompt=paraphrase", None]
    assert lines[0] == {"step": 2, "eval_task": "reach", "eval_success_rate": 0.5, "eval_episodes": 1,
                        "eval_perturb": "light=0.5,table=random,prompt=paraphrase"}
    from worldpolicy.train.config import changed_settings

    # a resumed run may evaluate under another shift, or none, as it may change the other [eval] settings; a run
    # stored before `perturb` existed resumes with one
    older = config.to_dict()
    del older["eval"]["perturb"]
    shifted = load_config(_with(valid, "eval", perturb="camera")).to_dict()
    assert changed_settings(older, shifted) == [] and changed_settings(shifted, config.to_dict()) == []


def test_the_sim_evaluation_runs_at_the_embodiment_s_rate(tmp_path, monkeypatch, valid):
    """The in-training sim evaluation made its env at 15 Hz whatever the embodiment: a 10 fps one's actions ran 1.5
    times too fast, unsaid. It runs at the policy's own rate, as `worldpolicy sim` runs the checkpoint."""
    pytest.importorskip("mujoco", reason="the evaluation runs the simulator (the sim extra)")
    import contextlib
    from types import SimpleNamespace

    import worldpolicy.sim.evaluate as sim_evaluate
    from worldpolicy.train.tracking import Trackers
    from worldpolicy.train.trainer import Trainer

    seen = []

    def evaluate(env, policy, **kwargs):  # the episodes are not run: the env's rate is the point
        seen.append(env.control_hz)
        return SimpleNamespace(success_rate=0.5)

    monkeypatch.setattr(sim_evaluate, "evaluate", evaluate)
    for fps in (10, 15):
        embodiment = SimpleNamespace(fps=fps)  # all the rate is read from

        @contextlib.contextmanager
        def live_policy(steps, source, embodiment=embodiment):
            yield SimpleNamespace(embodiment=embodiment)

        config = load_config(_with(valid, "eval", every=2, episodes=1))
        trainer = SimpleNamespace(config=config, _live_policy=live_policy, progress=False, trackers=Trackers())
        trainer._log = lambda path, line, trainer=trainer: Trainer._log(trainer, path, line)
        Trainer._evaluate(trainer, 2, tmp_path / "metrics.jsonl")
    assert seen == [10.0, 15.0]


@pytest.mark.parametrize("values, message", [
    ({"action_prefix_probability": 1.5, "action_prefix_max_rows": 2},
     "objectives.action_prefix_probability=1.5: must be in [0, 1]"),
    ({"action_prefix_probability": float("nan"), "action_prefix_max_rows": 2},
     "objectives.action_prefix_probability=nan: must be in [0, 1]"),
    ({"action_prefix_probability": 0.5, "action_prefix_max_rows": 4},  # chunk_size 4: one row must stay generated
     "objectives.action_prefix_max_rows=4: must be an integer from 1 to data.chunk_size - 1 = 3"),
    ({"action_prefix_probability": 0.5, "action_prefix_max_rows": 0},
     "objectives.action_prefix_max_rows=0: must be an integer from 1 to data.chunk_size - 1 = 3"),
    ({"action_prefix_probability": 0.5, "action_prefix_max_rows": 2.0},
     "objectives.action_prefix_max_rows=2.0: expected an integer or null, got float"),
    ({"action_prefix_probability": 0.5}, ("objectives.action_prefix_probability=0.5 gives policy examples a clean "
                                          "prefix of 1 to action_prefix_max_rows actions, but action_prefix_max_rows "
                                          "is unset: set it (1 to 3)")),
    ({"action_prefix_max_rows": 2}, "objectives.action_prefix_max_rows=2 is set, but action_prefix_probability is 0"),
    ({"action_prefix_probability": 0.5, "action_prefix_max_rows": 2, "policy": 0.0, "inverse_dynamics": 1.0},
     "objectives.action_prefix_probability=0.5 conditions the policy objective, but objectives.policy is 0"),
])
def test_action_prefix_settings_are_checked_naming_the_setting(valid, values, message):
    with pytest.raises(ValueError) as error:
        load_config(_with(valid, "objectives", **values))
    assert str(error.value).startswith(message)


def test_action_prefix_settings_load_and_are_compared_on_resume(valid):
    from worldpolicy.train.config import changed_settings

    config = load_config(_with(valid, "objectives", action_prefix_probability=1, action_prefix_max_rows=3))
    assert (config.objectives.action_prefix_probability, config.objectives.action_prefix_max_rows) == (1.0, 3)
    current = load_config(valid).to_dict()
    older = json.loads(json.dumps(current))  # a run stored before the settings existed: no prefix
    del older["objectives"]["action_prefix_probability"], older["objectives"]["action_prefix_max_rows"]
    assert changed_settings(older, current) == []
    assert changed_settings(older, config.to_dict()) == ["objectives.action_prefix_probability: 0.0 -> 1.0",
                                                         "objectives.action_prefix_max_rows: None -> 3"]


def test_config_mistakes_are_said_before_torch_loads(tmp_path, valid):
    """A wrong setting is the commonest first failure of `worldpolicy train`: said in a second, not after the 10-25 s
    torch and diffusers take to import (the objectives, timestep and checkpoint checks need neither)."""
    from fresh import cli_in_fresh_process

    configs = {"checkpoint": {**valid, "checkpoint": ""}, "chunk": _with(valid, "data", chunk_size=6),
               "timesteps": _with(valid, "timesteps", kind="beta"), "weights": _with(valid, "objectives", policy=0.0)}
    for name, raw in configs.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(raw))
    out, heavy = cli_in_fresh_process({name: ["train", str(tmp_path / f"{name}.json"), "--no-progress"]
                                       for name in configs})
    assert heavy == []
    said = {"checkpoint": "checkpoint: required", "chunk": "data.chunk_size=6", "timesteps": "timesteps.kind='beta'",
            "weights": "objectives: every weight is 0"}
    assert {name: (code, said[name] in err) for name, (code, err) in out.items()} == {
        name: (2, True) for name in said}


def test_a_malformed_pinned_hub_id_is_refused_naming_its_setting(valid):
    """`OWNER/NAME@REV` pins a hub revision; one with nothing after the `@` is refused by the setting that names it,
    as the config loads, not by the hub later."""
    with pytest.raises(ValueError, match=r"^data.dataset='some/data@': expected OWNER/NAME@REV"):
        load_config(_with(valid, "data", dataset="some/data@"))
    with pytest.raises(ValueError, match=r"^checkpoint='some/model@': expected OWNER/NAME@REV"):
        load_config(_with(valid, None, checkpoint="some/model@"))
    assert load_config(_with(valid, None, checkpoint="some/model@v1")).checkpoint == "some/model@v1"
