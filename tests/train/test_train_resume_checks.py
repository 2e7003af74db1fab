"""A folder holds one run: a resume with settings that shape the weights is refused (naming them) before anything is
written, settings that only say how far and how often are accepted, and another run's files are never replaced."""

from __future__ import annotations

import json
import math

import pytest


def _run(raw, **kwargs):
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    return Trainer(load_config(raw), progress=False).run(**kwargs)


def _files(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, train_config):
    out = tmp_path_factory.mktemp("finished") / "run"
    _run(train_config(out, optim={"steps": 4}))
    return out


@pytest.mark.parametrize("overrides, named", [
    ({"optim": {"steps": 4, "lr": 1e-2}}, ["optim.lr: 0.001 -> 0.01"]),
    ({"optim": {"steps": 4}, "seed": 4, "finetune": {"mode": "lora"}}, ["seed: 3 -> 4", "finetune.mode: 'full' -> 'lora'"]),
    ({"optim": {"steps": 4, "warmup_steps": 3}}, ["optim.warmup_steps: 2 -> 3"]),
    ({"optim": {"steps": 4}, "data": {"exclude_episodes": [1]}}, ["data.exclude_episodes: [] -> [1]"]),
])
def test_resume_with_other_settings_is_refused_before_anything_is_written(finished, train_config, overrides, named):
    before = _files(finished)
    with pytest.raises(ValueError, match="holds a run .*step-0000004.* with other settings") as error:
        _run(train_config(finished, **overrides))
    assert all(n in str(error.value) for n in named) and "new --out" in str(error.value)
    assert _files(finished) == before  # config.json still describes the run that happened


def test_steps_below_the_checkpoint_are_refused(finished, train_config):
    """A run extended with --steps and resumed with the plain command (its config's smaller optim.steps) was told
    "optim.steps=2 (--steps)", naming a flag it had not been given, and "pass at least 4" without saying how."""
    with pytest.raises(ValueError, match=r"optim.steps=2 \(the config's, or --steps\) is below step 4.*: pass "
                                         r"--steps 4 or more \(or set optim.steps\)"):
        _run(train_config(finished, optim={"steps": 2}))


def test_a_run_is_extended_with_more_steps_and_other_cadences(finished, train_config, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(finished, out)
    records = _run(train_config(out, optim={"steps": 6}, keep_checkpoints=3, log_every=2, eval={"episodes": 2}))
    assert [r.step for r in records] == [5, 6]
    # the cosine decay (lr 1e-3, warmup 2, min_lr_ratio 0.1) stretches to the new total from the first resumed step
    # on: that step used to keep the LR the 4-step schedule gave it (its floor, 1e-4)
    factor = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - 2) / (6 - 2))) for step in (4, 5)]
    assert [r.lr for r in records] == pytest.approx([1e-3 * f for f in factor], rel=1e-12)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000002", "step-0000004", "step-0000006"]
    config = json.loads((out / "config.json").read_text())
    assert config["optim"]["steps"] == 6 and config["keep_checkpoints"] == 3


def test_another_runs_log_and_config_are_never_replaced(train_config, tmp_path):
    out = tmp_path / "prev"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    with pytest.raises(ValueError, match="holds a metrics.jsonl but no config.json or checkpoint"):
        _run(train_config(out))
    assert _files(out) == {"metrics.jsonl": b'{"step": 1, "loss": 0.5}\n'}
    (out / "config.json").write_text(json.dumps(train_config(out, seed=11)))
    before = _files(out)
    with pytest.raises(ValueError, match="config.json, step 0.* seed: 11 -> 3"):
        _run(train_config(out))
    assert _files(out) == before


def test_a_run_killed_before_its_first_checkpoint_starts_again(train_config, tmp_path):
    out = tmp_path / "run"
    _run(train_config(out, optim={"steps": 4}), stop_after=1)
    assert not (out / "checkpoints").exists() and (out / "config.json").is_file()
    assert [r.step for r in _run(train_config(out, optim={"steps": 4}))] == [1, 2, 3, 4]
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_a_resume_on_changed_data_is_refused_before_the_weights_load(train_config, tiny_dataset, tmp_path,
                                                                     monkeypatch):
    """The same dataset path, re-recorded: the run's windows and stats would change mid-run. Refused before the weights
    load (the checkpoint keeps the data's `data_key`); a run saved before that key was kept, once they have, before
    anything is encoded."""
    import shutil

    from train_setup import CAMERAS, IMAGE_SIZE, make_episode

    from worldpolicy.data import write_episodes
    from worldpolicy.data.from_sim import sim_features
    from worldpolicy.engine import loading
    from worldpolicy.train import data as train_data

    out, dataset = tmp_path / "run", tmp_path / "data"
    shutil.copytree(tiny_dataset, dataset)
    raw = train_config(out, optim={"steps": 2})
    raw["data"] = dict(raw["data"], dataset=str(dataset), cache_dir=str(tmp_path / "cache"))
    _run(raw)
    write_episodes(dataset, (make_episode(s) for s in (1, 0)), fps=15, robot_type="panda", overwrite=True,
                   features=sim_features("panda", IMAGE_SIZE, CAMERAS), video_codec="libx264rgb")
    monkeypatch.setattr(train_data.LatentCache, "_build", lambda *a, **k: pytest.fail("encoded the changed data"))
    load = loading.load_components
    monkeypatch.setattr(loading, "load_components", lambda *a, **k: pytest.fail("loaded the weights"))
    with pytest.raises(ValueError, match="not the data this run trained on"):
        _run(dict(raw, optim=dict(raw["optim"], steps=4)))
    state_file = out / "checkpoints" / "step-0000002" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    del state["data_key"]
    state_file.write_text(json.dumps(state))
    monkeypatch.setattr(loading, "load_components", load)
    with pytest.raises(ValueError, match="not the data this run trained on"):
        _run(dict(raw, optim=dict(raw["optim"], steps=4)))


def test_trimming_the_metrics_of_a_killed_run_never_leaves_half_a_file(tmp_path, monkeypatch):
    """A resume drops the lines past the checkpoint by rewriting metrics.jsonl: a kill during the rewrite used to leave
    it truncated (every earlier step's metrics lost); it is now replaced whole or not at all."""
    from worldpolicy.train.trainer import _trim_metrics

    path = tmp_path / "metrics.jsonl"
    original = "".join(json.dumps({"step": s, "loss": 1 / s}) + "\n" for s in range(1, 6)) + '{"step": 6, "lo'
    path.write_text(original)

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr("worldpolicy.fileio.os.replace", killed)
    with pytest.raises(KeyboardInterrupt):
        _trim_metrics(path, 3)
    assert path.read_text() == original and [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]
    monkeypatch.undo()
    _trim_metrics(path, 3)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3]


def test_a_warmup_longer_than_the_run_is_warned(train_config, tmp_path, caplog):
    """optim.steps = 3 with the default 100 warmup steps trained at 1-3 % of optim.lr, without a word."""
    with caplog.at_level("WARNING", logger="worldpolicy.train.trainer"):
        records = _run(train_config(tmp_path / "run", optim={"steps": 3, "warmup_steps": 100}))
    assert [r.lr for r in records] == pytest.approx([1e-5, 2e-5, 3e-5], rel=1e-12)
    assert ("optim.warmup_steps=100 is more than optim.steps=3: the LR rises for the whole run and reaches 3e-05, "
            "3 % of optim.lr=0.001; lower warmup_steps to train at optim.lr") in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="worldpolicy.train.trainer"):
        _run(train_config(tmp_path / "short", optim={"steps": 3, "warmup_steps": 3}))
    assert "warmup_steps" not in caplog.text


def test_a_batch_larger_than_the_dataset_is_warned_before_anything_loads(train_config, tiny_dataset, tmp_path, caplog,
                                                                         monkeypatch):
    """A batch_size past the dataset's windows trained silently, repeating windows within every step."""
    from worldpolicy.train.config import load_config
    from worldpolicy.train.data import count_windows
    from worldpolicy.train.trainer import Trainer

    def stop(self):
        raise RuntimeError("the weights load here")

    monkeypatch.setattr(Trainer, "_load", stop)
    trainer = Trainer(load_config(train_config(tmp_path / "big", optim={"batch_size": 64})), progress=False)
    with caplog.at_level("WARNING", logger="worldpolicy.train.trainer"), pytest.raises(RuntimeError, match="load here"):
        trainer.run()
    windows = count_windows(trainer._data()[0])
    assert windows < 64
    assert (f"optim.batch_size=64 is more than the {windows} training windows of data.dataset {tiny_dataset} "
            f"(chunk_size 4, stride 1): every step holds some windows more than once (with other noise and σ); lower "
            f"optim.batch_size to {windows} or less, or record more episodes") in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="worldpolicy.train.trainer"):
        Trainer(load_config(train_config(tmp_path / "fits", optim={"batch_size": windows})), progress=False)._data()
    assert "batch_size" not in caplog.text


def test_a_batch_larger_than_an_episode_selection_says_the_selection_is_what_is_small(train_config, tiny_dataset,
                                                                                      tmp_path, caplog):
    """With episodes selected, "record more episodes" sent the user to record data the dataset already holds: the
    warning says how much of the dataset the selection keeps, and whether selecting more would do."""
    from dataclasses import replace

    from worldpolicy.train.config import load_config
    from worldpolicy.train.data import count_windows
    from worldpolicy.train.trainer import Trainer

    def warned(batch_size, **data):
        caplog.clear()
        trainer = Trainer(load_config(train_config(tmp_path / "run", data=data, optim={"batch_size": batch_size})),
                          progress=False)
        with caplog.at_level("WARNING", logger="worldpolicy.train.trainer"):
            spec = trainer._data()[0]
        return caplog.text, count_windows(spec), count_windows(replace(spec, episodes=None))

    text, windows, whole = warned(16, episodes=[1])
    assert windows < 16 <= whole  # the tiny dataset: two 10-frame episodes
    assert (f"optim.batch_size=16 is more than the {windows} training windows (chunk_size 4, stride 1) of the episodes "
            f"selected: data.episodes=[1] keeps 1 of the 2 episodes of data.dataset {tiny_dataset} (10 of its 20 "
            f"frames): every step holds some windows more than once (with other noise and σ); lower optim.batch_size "
            f"to {windows} or less, or select more episodes (all 2 hold {whole} windows)") in text
    text, _, _ = warned(64, exclude_episodes=[0])
    assert (f"data.exclude_episodes=[0] keeps 1 of the 2 episodes of data.dataset {tiny_dataset} (10 of its 20 "
            f"frames)") in text and f"or record more episodes (all 2 hold only {whole} windows)" in text
    assert warned(windows, episodes=[1])[0] == ""


def test_elapsed_time_runs_on_across_a_resume(train_config, tmp_path):
    """`elapsed_s` went back to 0 at each resume: the log's curve of it fell mid-run. Each checkpoint records the
    run's training time so far, and the resumed run counts on from it."""
    out = tmp_path / "run"
    _run(train_config(out, optim={"steps": 4}), stop_after=2)  # save_every 2: step 2 is saved, then a kill
    state = json.loads((out / "checkpoints" / "step-0000002" / "trainer_state.json").read_text())
    logged = {line["step"]: line["elapsed_s"] for line in map(json.loads, (out / "metrics.jsonl").open())}
    assert state["elapsed_s"] >= logged[2] > logged[1] > 0
    _run(train_config(out, optim={"steps": 4}))
    logged = {line["step"]: line["elapsed_s"] for line in map(json.loads, (out / "metrics.jsonl").open())}
    assert list(logged) == [1, 2, 3, 4] and logged[4] > logged[3] > state["elapsed_s"]
