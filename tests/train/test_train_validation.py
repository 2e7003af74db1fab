"""Held-out validation (`[validation]`): episodes never trained on, scored at fixed σ and noise so the curve moves only
with the weights. Upstream's validation step was a no-op (cosmos-policy.md §13), so overfitting a small robot dataset
went unseen; these tests hold the number to what it claims: logged at its steps, the same for the same weights, on
windows training never read, kept and trimmed with the log on resume, and drawn beside the training loss."""

from __future__ import annotations

import html
import json
import logging
import math
import re
from pathlib import Path

import pytest
import torch
from train_setup import TINY_EMBODIMENT

from worldpolicy.cli import main
from worldpolicy.train.config import load_config


def _lines(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _val(out):
    return [line for line in _lines(out) if "val/loss" in line]


def _run(raw, **kwargs):
    from worldpolicy.train.trainer import Trainer

    trainer = Trainer(load_config(raw), progress=False)
    trainer.run(**kwargs)
    return trainer


def test_held_out_losses_are_logged_at_their_steps_on_episodes_training_never_reads(train_config, tmp_path, caplog):
    from worldpolicy.train.data import LatentCache, count_windows, data_key

    out = tmp_path / "run"
    raw = train_config(out, validation={"episodes": [1], "every": 2, "windows": 3, "action_chunks": 3,
                                        "action_steps": 1}, optim={"steps": 5})
    with caplog.at_level(logging.INFO, logger="worldpolicy.train.trainer"):
        trainer = _run(raw)
    assert "validation.episodes [1] held out of training: 3 of their 9 windows scored and 3 chunks sampled" in \
        caplog.text
    lines = _val(out)
    assert [line["step"] for line in lines] == [0, 2, 4, 5]  # the starting weights, every 2 steps, the last step
    # every objective of the cosmos_policy mix, each term it generates (inverse dynamics: no frame; forward: no action)
    parts = {"val/loss_video_policy", "val/loss_action_policy", "val/loss_video_forward_dynamics",
             "val/loss_action_inverse_dynamics"}
    # the sampled chunks' error: unit-free over the columns, and each column's in its units
    columns = {f"val/action_mae/{column}" for column in TINY_EMBODIMENT["columns"]}
    for line in lines:
        assert set(line) == {"step", "val/loss", "val/loss_video", "val/loss_action", "val/windows", *parts,
                             "val/action_mae", "val/action_chunks", *columns}
        assert line["val/windows"] == 3 and line["val/action_chunks"] == 3
        assert all(isinstance(v, float) and 0 < v < 1e3 for k, v in line.items() if k.startswith("val/loss"))
        assert all(isinstance(line[k], float) and 0 < line[k] < 1e3 for k in ("val/action_mae", *columns))
    assert len({line["val/loss"] for line in lines}) == 4  # the weights changed between them, so did the loss
    assert len({line["val/action_mae"] for line in lines}) == 4
    # the training windows are episode 0's alone: the cache the run trained from holds no window of episode 1
    spec, _ = trainer._windows
    assert spec.episodes == (0,) and trainer._val_spec.episodes == (1,)
    assert len(trainer.examples) == count_windows(spec) and len(trainer.val_examples) == count_windows(
        trainer._val_spec)
    caches = [LatentCache.load(path) for path in Path(trainer.config.data.cache_dir).glob("latents-*-v3")]
    trained = [c for c in caches if c.meta.get("data_key") == trainer.data_key]
    assert len(trained) == 1 and {episode for episode, _ in trained[0].index} == {0}
    held = [c for c in caches if c.meta.get("data_key") == data_key(trainer._val_spec, trainer._windows[1])]
    assert len(held) == 1 and {episode for episode, _ in held[0].index} == {1}

    # the same weights score the same, to the last bit, however often; training mode is back after each
    again = [trainer._validate(5, tmp_path / "again.jsonl") for _ in range(2)]
    assert again[0] == again[1] == lines[-1] and trainer.transformer.training
    # each validation's Policy on the live weights is a new one: what it warns of once is said once a run (`said`)
    with trainer._live_policy(1, "a") as first:
        assert first._once("range", "state", (0,))
    with trainer._live_policy(1, "b") as second:
        assert second is not first and not second._once("range", "state", (0,))


def test_validation_changes_nothing_of_training(train_config, tmp_path):
    """Scoring held-out windows draws from its own generator, without gradients: the training losses of a run with
    validation are those of the same run without it (episode 1 left out of both)."""
    steps = {"steps": 3}
    plain = train_config(tmp_path / "plain", data={"exclude_episodes": [1]}, optim=steps)
    scored = train_config(tmp_path / "scored", data={"exclude_episodes": [1]}, optim=steps,
                          validation={"episodes": [1], "every": 1, "windows": 2})
    _run(plain)
    _run(scored)
    train = [[{k: v for k, v in line.items() if k not in ("step_s", "elapsed_s")} for line in _lines(tmp_path / name)
              if "loss" in line] for name in ("plain", "scored")]
    assert train[0] == train[1] and len(train[0]) == 3
    assert [line["step"] for line in _val(tmp_path / "scored")] == [0, 1, 2, 3]


def test_the_held_out_action_error_is_what_dataset_eval_measures_on_that_steps_checkpoint(train_config, tiny_dataset,
                                                                                          tmp_path):
    """`val/action_mae` is `dataset eval`'s computation (`compare_open_loop`) on the live weights: the checkpoint saved
    at a validated step, evaluated with `chunks` = validation.action_chunks, the run's seed, the same denoising steps
    and batch, gives the same numbers to the last bit; and two validations of the same weights agree as exactly."""
    import worldpolicy
    from worldpolicy.data.layout import ACTION_KEYS, STATE_KEYS
    from worldpolicy.data.openloop import evaluate_open_loop

    out = tmp_path / "run"
    trainer = _run(train_config(out, optim={"steps": 2}, validation={"episodes": [1], "every": 2, "windows": 1,
                                                                     "action_chunks": 3, "action_steps": 2}))
    line = _val(out)[-1]
    assert line["step"] == 2 and trainer.transformer.training
    again = [trainer._validate(2, tmp_path / "again.jsonl") for _ in range(2)]
    assert again[0] == again[1] == line and trainer.transformer.training
    policy = worldpolicy.load_policy(out / "checkpoints" / "step-0000002", steps=2, device="cpu")
    result = evaluate_open_loop(tiny_dataset, policy, tmp_path / "eval", episodes=[1], chunks=3, seed=3, batch_size=2,
                                state_keys=list(STATE_KEYS), action_keys=list(ACTION_KEYS), plots=False)
    assert result.chunks == line["val/action_chunks"] == 3
    assert result.normalized_mae() == line["val/action_mae"]
    assert {f"val/action_mae/{c}": m for c, m in zip(result.columns, result.mae.tolist())} == \
        {k: v for k, v in line.items() if k.startswith("val/action_mae/")}


def test_a_resumed_run_keeps_the_validations_of_its_checkpoint_and_logs_those_after_it_again(train_config, tmp_path):
    """metrics.jsonl is trimmed back to the checkpoint on resume: a validation logged past it goes and is logged again,
    with the same values as an uninterrupted run's (resume is exact); a run killed before its first checkpoint logs its
    step-0 validation once."""
    validation = {"episodes": [1], "every": 3, "windows": 2, "action_chunks": 2, "action_steps": 1}
    reference = tmp_path / "reference"
    _run(train_config(reference, validation=validation))
    killed = tmp_path / "killed"
    raw = train_config(killed, validation=validation)
    _run(raw, stop_after=1)  # before the first save (save_every 2): only the log is there
    assert [line["step"] for line in _val(killed)] == [0] and not (killed / "checkpoints").exists()
    _run(raw, stop_after=3)  # from the start again; checkpoint at step 2, validation at 3 past it
    assert [line["step"] for line in _val(killed)] == [0, 3]
    _run(raw)  # resumes at step 2: the step-3 validation is dropped with the step-3 line, then logged again
    assert [line["step"] for line in _lines(killed) if "loss" in line] == list(range(1, 7))
    assert _val(killed) == _val(reference) and [line["step"] for line in _val(reference)] == [0, 3, 6]


@pytest.mark.parametrize("validation, data, message", [
    ({"episodes": [2], "every": 1}, {}, ("validation.episodes=[2]: [2] not episodes of data.dataset, which has 2 "
                                        "(accepted: indices 0 to 1)")),
    ({"episodes": [1, 1], "every": 1}, {}, "validation.episodes=[1, 1]: [1] given more than once"),
    ({"episodes": [1], "every": 1}, {"episodes": [0, 1]}, ("validation.episodes=[1] overlaps data.episodes=[0, 1] "
                                                          "(both name [1]): a held-out episode must not be trained on")),
    ({"episodes": [0, 1], "every": 1}, {}, ("validation.episodes=[0, 1] leaves out every episode of data.dataset: "
                                            "nothing to train on")),
    ({"episodes": [1], "every": 1}, {"exclude_episodes": [0]}, ("data.exclude_episodes=[0] and validation.episodes=[1] "
                                                                "leave out every episode of data.dataset")),
    ({"episodes": [1], "every": -1}, {}, "validation.every=-1: must be an integer >= 0 (0: never)"),
    ({"episodes": [1], "every": 1, "windows": 0}, {}, "validation.windows=0: must be an integer >= 1"),
    ({"episodes": [1], "every": 1, "action_chunks": -1}, {}, ("validation.action_chunks=-1: must be an integer >= 0 "
                                                             "(0: no action error)")),
    ({"episodes": [1], "every": 1, "action_steps": 0}, {}, "validation.action_steps: steps=0 "),
    ({"every": 5}, {}, "validation.every=5 scores held-out episodes, but validation.episodes is empty"),
    ({"episodes": "1"}, {}, "validation.episodes='1': expected a list of integers, got str"),
])
def test_wrong_validation_settings_are_refused_with_the_config(train_config, tmp_path, validation, data, message):
    with pytest.raises(ValueError) as error:
        load_config(train_config(tmp_path / "run", validation=validation, data=data))
    assert str(error.value).startswith(message)
    assert not (tmp_path / "run").exists()


def test_ctrl_c_in_a_validated_step_says_the_validation_runs_before_the_save(train_config, tmp_path, capsys):
    """A Ctrl-C is held until the step is done, and a step's held-out validation (which may take longer than the step)
    is part of it: the notice says so, and the step's val/ line is logged before its checkpoint is saved."""
    import os
    import signal

    from worldpolicy.train.trainer import Trainer

    out = tmp_path / "run"
    raw = train_config(out, save_every=100, validation={"episodes": [1], "every": 2, "action_chunks": 0},
                       optim={"steps": 4}, data={"cache_dir": str(tmp_path / "cache")})  # its own: both encoded here

    def ctrl_c(record):
        if record.step == 2:  # mid-step: its validation is still to come
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        Trainer(load_config(raw), progress=True, on_step=ctrl_c).run()
    err = capsys.readouterr().err
    assert "Ctrl-C: finishing step 2 and its held-out validation, then saving it\n" in err
    # the two latent caches' bars, one after the other, say which windows each encodes
    assert err.index("encoding windows") < err.index("encoding held-out windows")
    assert [line["step"] for line in _val(out)] == [0, 2]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000002"]


def test_the_held_out_episodes_are_chosen_on_the_command_line(train_config, tmp_path, capsys):
    """`--val-episodes` overrides `validation.episodes`, names itself in errors, is stored as the setting, and a
    resume with other held-out episodes (other training data) is refused; `validation.every` may change."""
    out = tmp_path / "run"
    path = tmp_path / "run.json"
    path.write_text(json.dumps(train_config(out, validation={"every": 1, "action_chunks": 0}, optim={"steps": 1})))

    def error(*flags):
        assert main(["train", str(path), "--no-progress", *flags]) == 2
        return capsys.readouterr().err

    assert "error: --val-episodes=[5]: [5] not episodes of data.dataset, which has 2" in error("--val-episodes", "5")
    overlap = error("--val-episodes", "1", "--episodes", "1")
    assert "error: --val-episodes=[1] overlaps --episodes=[1] (both name [1])" in overlap
    # what to change is named as typed too: the config sets no data.episodes to remove it from
    assert "remove it from --episodes, or leave --episodes unset" in overlap and "data.episodes" not in overlap
    assert main(["train", str(path), "--val-episodes", "1", "--no-progress"]) == 0
    capsys.readouterr()
    assert json.loads((out / "config.json").read_text())["validation"]["episodes"] == [1]
    assert "validation.episodes: [1] -> [0]. Put them back to resume it (--val-episodes sets validation.episodes on " \
           "the command line)" in error("--val-episodes", "0", "--steps", "2")
    path.write_text(json.dumps(train_config(out, validation={"every": 2, "action_chunks": 0}, optim={"steps": 1})))
    assert main(["train", str(path), "--val-episodes", "1", "--no-progress", "--steps", "2"]) == 0
    assert [line["step"] for line in _val(out)] == [0, 1, 2]
    assert not any(key.startswith("val/action") for line in _val(out) for key in line)  # action_chunks = 0: none


def test_an_older_run_resumed_with_held_out_episodes_is_refused(train_config, tmp_path):
    """A run stored before `[validation]` existed trained on every episode: holding some out now would change its data;
    scoring more or less often would not."""
    from worldpolicy.train.config import changed_settings

    current = load_config(train_config(tmp_path / "run")).to_dict()
    older = json.loads(json.dumps(current))
    del older["validation"]
    assert changed_settings(older, current) == []
    held = load_config(train_config(tmp_path / "run", validation={"episodes": [1], "every": 2})).to_dict()
    assert changed_settings(older, held) == ["validation.episodes: [] -> [1]"]
    more_often = json.loads(json.dumps(held))
    more_often["validation"]["every"] = 1
    assert changed_settings(held, more_often) == []
    more_often["validation"]["windows"] = 8  # other windows: the run's curve would be two sets of windows
    assert changed_settings(held, more_often) == ["validation.windows: 32 -> 8"]


def test_a_bf16_lora_run_scores_under_its_autocast_with_gradient_checkpointing_off(train_config, tmp_path,
                                                                                   monkeypatch):
    """LoRA's frozen weights are bf16 in a bf16 run: the held-out pass runs under the same autocast, so it scores, and
    without gradients nothing is recomputed (`recompute` is for the backward pass)."""
    import worldpolicy.train.trainer as trainer_module

    seen = []
    packed = trainer_module.batch_losses

    def spy(*args, **kwargs):
        seen.append((torch.is_grad_enabled(), torch.is_autocast_enabled("cpu"), kwargs["recompute"]))
        return packed(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "batch_losses", spy)
    out = tmp_path / "run"
    trainer = _run(train_config(out, optim={"steps": 2, "precision": "bf16", "gradient_checkpointing": True},
                                finetune={"mode": "lora", "lora_rank": 4},
                                validation={"episodes": [1], "every": 2, "windows": 2, "action_chunks": 2,
                                            "action_steps": 1}))
    lines = _val(out)
    assert [line["step"] for line in lines] == [0, 2]
    assert all(math.isfinite(v) for line in lines for k, v in line.items() if k.startswith(("val/loss", "val/action")))
    assert lines[0]["val/action_mae"] != lines[1]["val/action_mae"]  # sampled with the adapters the steps trained
    assert set(seen) == {(True, True, True), (False, True, False)}  # training steps; held-out passes
    assert trainer._validate(2, tmp_path / "again.jsonl") == lines[-1]


def test_the_report_names_step_0_as_the_starting_checkpoint_and_each_column_with_its_unit(tmp_path):
    """Held-out numbers lowest at step 0 mean the fine-tune made them no better: the weights are the starting
    checkpoint's, which no save_every or keep_checkpoints would keep (the report named those settings). The last
    per-column errors are "in its units": the units are written beside them (metres and unit-free side by side)."""
    from worldpolicy.viz.train_report import _validation

    metrics = [{"step": 0, "val/loss": 0.17, "val/action_mae": 1.5}, {"step": 1, "loss": 0.2},
               {"step": 2, "loss": 0.3, "val/loss": 0.18, "val/action_mae": 1.9, "val/action_mae/tx": 0.0035,
                "val/action_mae/grasp": 0.25}]
    text = html.unescape(re.sub(r"<[^>]+>", "", _validation(metrics, [(2, tmp_path / "step-0000002")], "shipped",
                                                            {"tx": "m", "grasp": "1"})))
    assert "the lowest held-out loss is at step 0: the starting weights, the run's starting checkpoint (shipped)" in text
    assert "lowest 1.5 at step 0, the starting weights, the run's starting checkpoint (shipped); last 1.9" in text
    assert "save_every" not in text
    # each column's unit, as the embodiment has it; none beside a unitless one's value (it said "grasp 0.25 1")
    assert "per column in its units: tx 0.0035 m, grasp 0.25" in text and "grasp 0.25 1" not in text


def test_the_report_shows_the_held_out_curve_beside_the_training_loss(train_config, tmp_path):
    """The run's page: the held-out episodes among what was trained, the held-out loss at its first, lowest and last
    validation beside the training loss of the same steps, and in the metrics plot `val/loss` on `loss`'s panel
    (and each part on its part's), not panels of their own further down; the held-out action error in the table,
    its lowest and last, and on a panel of its own beside one of its columns."""
    from worldpolicy.viz.report import log_curves_figure, write_report
    from worldpolicy.viz.train_report import train_sections

    out = tmp_path / "run"
    _run(train_config(out, validation={"episodes": [1], "every": 2, "windows": 2, "action_chunks": 2,
                                       "action_steps": 1}, optim={"steps": 4}, keep_checkpoints=1))
    scored = {line["step"]: line["val/loss"] for line in _val(out)}
    sampled = {line["step"]: line["val/action_mae"] for line in _val(out)}
    lowest = min(scored, key=scored.get)
    page = write_report(out).read_text()
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    # the index held out, said as one (not read as a count), and left out of the episodes trained
    assert "episodes held outepisode 1 (scored every 2 steps on up to 2 windows and 2 sampled chunks)" in text
    assert "episodes trainedall except 1 held out" in text
    best = min(sampled, key=sampled.get)
    assert f"lowest {sampled[best]:.4g} at step {best}, " in text and f"last {sampled[4]:.4g} at step 4, " in text
    last = _val(out)[-1]
    assert f"per column in its units: joint_0 {last['val/action_mae/joint_0']:.4g} rad, " in text  # the unit named
    assert "held-out action MAE (normalised)" in text and f"{sampled[0]:.4g}" in text  # the first row's
    assert "the MAE on the model's normalised action scale, unit-free, mean over the columns" in text
    assert "<section id=validation><h2>Held-out loss</h2>" in page and f"{len(scored)} validations logged" in text
    assert f"the lowest held-out loss is at step {lowest}: " in text
    assert ("its checkpoint (step-0000004) is kept" if lowest == 4 else "the starting weights" if lowest == 0
            else "no checkpoint of that step is kept") in text
    assert f"last4{scored[4]:.5g}" in text  # the training loss column: the mean of steps 3 and 4
    training = {line["step"]: line["loss"] for line in _lines(out) if "loss" in line}
    assert f"{(training[3] + training[4]) / 2:.5g}" in text

    # the page's plot groups the per-column errors by the units of the run's embodiment
    _, _, units = train_sections(out)
    assert units == dict(zip(TINY_EMBODIMENT["columns"], TINY_EMBODIMENT["units"]))
    fig, _ = log_curves_figure(out / "metrics.jsonl", units)
    titles = {ax.get_title(loc="left"): ax for ax in fig.axes if ax.get_visible()}
    panels = {title.split(" · ")[0].split(" (")[0]: ax for title, ax in titles.items()}
    # the losses drawn with the training curves, not on their own; the action error has no training curve; its
    # columns a panel per unit, so radians and the unit-free gripper do not share an axis
    assert [name for name in panels if name.startswith("val/")] == ["val/action_mae", "val/action_mae/<name>",
                                                                     "val/action_mae/<name> [rad]"]
    assert "val/action_mae · unit-free: MAE on the model's normalised action scale, mean over columns" in titles
    assert list(panels["val/action_mae"].lines[0].get_ydata()) == list(sampled.values())
    joints = panels["val/action_mae/<name> [rad]"]
    assert [line.get_label() for line in joints.lines] == [f"joint_{i}" for i in range(7)]
    gripper = panels["val/action_mae/<name>"]
    assert [line.get_label() for line in gripper.lines] == ["gripper"]
    assert list(gripper.lines[0].get_ydata()) == [line["val/action_mae/gripper"] for line in _val(out)]
    # the legend above the curves: the axis leaves it room over the highest point
    highest = max(max(line.get_ydata()) for line in joints.lines)
    low, top = joints.get_ylim()
    assert top - highest >= 0.2 * (top - low)
    loss = panels["loss"]
    assert [line.get_label() for line in loss.lines] == ["training", "val/loss (held out)"]
    assert list(loss.lines[1].get_xdata()) == [0, 2, 4] and list(loss.lines[1].get_ydata()) == list(scored.values())
    assert [t.get_text() for t in loss.get_legend().get_texts()] == ["training", "val/loss (held out)"]
    assert "val/windows = 2" in fig.get_suptitle()


def test_keep_best_keeps_the_checkpoint_of_the_lowest_held_out_loss_past_the_rotation(train_config, tmp_path,
                                                                                        monkeypatch, caplog):
    """Over days, `keep_checkpoints` rotated away the checkpoint of the lowest held-out loss, the one to try: only
    keeping every checkpoint (tens of GB each) kept it. `validation.keep_best` keeps it beside the newest, resumed
    runs too; the setting needs a validation to read, and is refused without one."""
    import logging

    from worldpolicy.train.trainer import Trainer

    held_out = {0: 5.0, 1: 4.0, 2: 1.0, 3: 3.0, 4: 2.0, 5: 1.5, 6: 1.0}  # lowest at step 2 (6 ties it, later)

    def scored(self, step, metrics_path):  # the held-out loss, without its cost: what the rotation reads
        line = {"step": step, "val/loss": held_out[step]}
        self._log(metrics_path, line)
        return line

    monkeypatch.setattr(Trainer, "_validate", scored)
    out = tmp_path / "run"
    config = train_config(out, save_every=1, keep_checkpoints=1, optim={"steps": 4},
                          validation={"episodes": [1], "every": 1, "action_chunks": 0, "keep_best": True})
    with caplog.at_level(logging.INFO, logger="worldpolicy.train.trainer"):
        _run(config)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000002", "step-0000004"]
    assert caplog.text.count("kept step-0000002 beside the 1 newest") == 1
    _run({**config, "optim": {**config["optim"], "steps": 6}})  # resumed: still the best, step 6 ties it
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000002", "step-0000006"]
    with pytest.raises(ValueError, match=r"validation.keep_best=true keeps the checkpoint of the lowest held-out "
                                         r"loss, but validation.every is 0"):
        load_config(train_config(tmp_path / "no", validation={"keep_best": True}))
