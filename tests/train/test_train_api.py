"""Training from Python (`worldpolicy.train`, docs/training.md "Training from Python"): the package names its entry
points and loads them on first use, so the CLI's `worldpolicy.train.commands` stays without torch; a `Trainer` names
the checkpoint its run saved, a finished run's too."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_package_names_its_entry_points_and_imports_torch_only_for_the_trainer():
    code = ("import json, sys, worldpolicy.train as t\n"
            "heavy = lambda: sorted(m for m in ('torch', 'diffusers') if m in sys.modules)\n"
            "names = sorted(n for n in dir(t) if not n.startswith('_'))\n"
            "import worldpolicy.train.config as c\n"
            "light = [heavy(), t.load_config is c.load_config, t.read_config is c.read_config,"
            " t.TrainConfig is c.TrainConfig, heavy()]\n"
            "import worldpolicy.train.trainer as tr\n"
            "print(json.dumps([names, light, t.Trainer is tr.Trainer, t.StepRecord is tr.StepRecord, heavy()]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    names, light, trainer, record, heavy = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"StepRecord", "TrainConfig", "Trainer", "load_config", "read_config"} <= set(names)
    import worldpolicy.train

    assert sorted(worldpolicy.train.__all__) == sorted(worldpolicy.train._EXPORTS)  # each name loads from somewhere
    assert light == [[], True, True, True, []]  # the config and the package itself: neither torch nor diffusers
    assert trainer and record and heavy == ["diffusers", "torch"]


def test_an_unknown_name_is_an_attribute_error_naming_it():
    import pytest

    import worldpolicy.train

    with pytest.raises(AttributeError, match="module 'worldpolicy.train' has no attribute 'Trainr'"):
        worldpolicy.train.Trainr  # noqa: B018


def test_the_trainer_names_the_newest_checkpoint_saved_a_finished_runs_too(train_config, tmp_path):
    from worldpolicy.train import Trainer, load_config

    out = tmp_path / "run"
    raw = train_config(out, optim={"steps": 3})  # saves at 2 (save_every) and 3 (the last step)
    trainer = Trainer(load_config(raw), progress=False)
    assert trainer.last_checkpoint is None  # nothing saved yet
    assert [r.step for r in trainer.run(stop_after=1)] == [1] and trainer.last_checkpoint is None  # a kill, no save
    assert [r.step for r in trainer.run()] == [1, 2, 3]
    assert trainer.last_checkpoint == out / "checkpoints" / "step-0000003"
    (out / "checkpoints" / ".step-0000009").mkdir()  # a save a kill cut short is none
    again = Trainer(load_config(raw), progress=False)
    assert again.run() == [] and again.last_checkpoint == out / "checkpoints" / "step-0000003"  # finished: nothing run
    longer = Trainer(load_config(train_config(out, optim={"steps": 10})), progress=False)
    assert longer.last_checkpoint == out / "checkpoints" / "step-0000003"  # before its run: the run's folder says
    assert [r.step for r in longer.run(stop_after=1)] == [4]  # resumed, one step, saved (save_every=2)
    assert longer.last_checkpoint == out / "checkpoints" / "step-0000004"
