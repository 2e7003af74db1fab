"""A run at its last step: a rerun says it is finished without loading anything (a recipe, which exports the weights
after, still loads them), and the last step is evaluated whatever the step count, also where the session that saved
it stopped before its evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _trainer(raw):
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    return Trainer(load_config(raw), progress=False)


def _folder(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _fake_evaluate(stops: list[int]):
    """`Trainer._evaluate` without the simulator: a success rate of step / 10, Ctrl-C at the steps in `stops` (once)."""

    def evaluate(self, step, metrics_path):
        if step in stops:
            stops.remove(step)
            raise KeyboardInterrupt
        line = {"step": step, "eval_task": "reach", "eval_success_rate": step / 10, "eval_episodes": 1,
                "eval_perturb": None}
        self._log(metrics_path, line)
        return line

    return evaluate


def _evaluated(out: Path) -> list[int]:
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [line["step"] for line in lines if "eval_success_rate" in line]


@pytest.mark.parametrize("steps", [None, "6"])
def test_a_finished_run_rerun_is_said_finished_and_loads_nothing(train_config, tmp_path, monkeypatch, capsys, steps):
    """Rerunning a run at its `optim.steps` (the same command, or --steps at its step) loaded the weights and the
    latent cache, then trained 0 steps: minutes at Cosmos3-Nano size. It is one line naming the run, its step and the
    fix, exit 0, the folder as it was."""
    from worldpolicy.cli import main
    from worldpolicy.train.trainer import Trainer

    out = tmp_path / "run"
    config = tmp_path / "run.json"
    config.write_text(json.dumps(train_config(out)))
    assert [r.step for r in _trainer(train_config(out)).run()] == [1, 2, 3, 4, 5, 6]
    before = _folder(out)

    def no_load(self):
        raise AssertionError("a finished run loaded its weights")

    monkeypatch.setattr(Trainer, "_load", no_load)
    capsys.readouterr()
    assert main(["train", str(config), "--no-progress", *(["--steps", steps] if steps else [])]) == 0
    captured = capsys.readouterr()
    assert (f"the run in {str(out)!r} is finished: its newest checkpoint, step-0000006, is at step 6, optim.steps=6 "
            "(the config's, or --steps); nothing trained or loaded. Raise --steps (or optim.steps) to train on"
            in captured.err)
    printed = json.loads(captured.out)
    assert (printed["steps_run"], printed["checkpoint"]) == (0, str(out / "checkpoints" / "step-0000006"))
    assert captured.err.splitlines()[-1] == (f"worldpolicy train: next: worldpolicy report {out} (the run's page: its "
                                             "curves, and the sim, serve and predict lines for its checkpoint)")
    assert _folder(out) == before


def test_a_finished_run_still_loads_for_a_caller_that_exports_it(train_config, tmp_path):
    """The recipe exports the trained weights right after `run()` (`run(load_finished=True)`): a rerun of a finished
    recipe still writes its model."""
    out = tmp_path / "run"
    _trainer(train_config(out)).run()
    trainer = _trainer(train_config(out))
    assert trainer.run(load_finished=True) == []
    target = tmp_path / "model"
    target.mkdir()
    trainer.export_pipeline(target)
    assert (target / "model_index.json").is_file()


def test_the_last_step_is_evaluated_and_its_card_shows_it(train_config, tmp_path, monkeypatch):
    """With `[eval] every = 4` and 6 steps the final checkpoint was never evaluated; it is now, and its model card,
    written before the evaluation, is written again with it."""
    from worldpolicy.train.trainer import Trainer

    monkeypatch.setattr(Trainer, "_evaluate", _fake_evaluate([]))
    out = tmp_path / "run"
    _trainer(train_config(out, eval={"every": 4})).run()
    assert _evaluated(out) == [4, 6]
    card = (out / "checkpoints" / "step-0000006" / "README.md").read_text()
    assert "sim evaluation at step 6: `reach` success 60 %" in card
    assert "sim evaluation at step 4" in (out / "checkpoints" / "step-0000004" / "README.md").read_text()


def test_an_evaluation_a_stop_skipped_runs_on_resume(train_config, tmp_path, monkeypatch):
    """Ctrl-C during a step's evaluation saves the step and stops; the resume skipped that evaluation for good, and a
    finished run's last one was never made. The resume runs it first; a finished run loads only for it."""
    from worldpolicy.train.trainer import Trainer

    monkeypatch.setattr(Trainer, "_evaluate", _fake_evaluate([4, 6]))
    out = tmp_path / "run"
    raw = train_config(out, eval={"every": 4})
    with pytest.raises(KeyboardInterrupt):
        _trainer(raw).run()
    assert _evaluated(out) == []
    with pytest.raises(KeyboardInterrupt):
        _trainer(raw).run()
    assert _evaluated(out) == [4]
    assert _trainer(raw).run() == []  # finished, its last evaluation not logged: loaded for that only
    assert _evaluated(out) == [4, 6]
    assert "sim evaluation at step 6" in (out / "checkpoints" / "step-0000006" / "README.md").read_text()

    def no_load(self):
        raise AssertionError("a finished, evaluated run loaded its weights")

    monkeypatch.setattr(Trainer, "_load", no_load)
    assert _trainer(raw).run() == []
    assert _evaluated(out) == [4, 6]


def test_a_validation_turned_on_for_a_finished_run_scores_its_last_step(train_config, tmp_path):
    """`validation.every` may change on resume: turned on for a finished run, the rerun loads it to score the final
    checkpoint (due at the last step), trains nothing, and the next rerun is finished."""
    out = tmp_path / "run"
    validation = {"episodes": [1], "every": 0, "windows": 2, "action_chunks": 0}
    _trainer(train_config(out, optim={"steps": 2}, validation=validation)).run()
    raw = train_config(out, optim={"steps": 2}, validation={**validation, "every": 4})
    assert _trainer(raw).run() == []
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "val/loss" in line] == [2]
    assert "held-out validation at step 2" in (out / "checkpoints" / "step-0000002" / "README.md").read_text()
    assert _trainer(raw).run() == []
    assert (out / "metrics.jsonl").read_text().count('"val/loss":') == 1


def test_a_recipe_prints_the_result_train_config_prints_and_its_evaluation(tmp_path, monkeypatch, capsys):
    """`train CONFIG` prints its result as JSON on stdout (README "Command line"), read by scripts; `train
    reach-from-scratch` printed another shape, from inside `run_recipe` (no steps, loss or checkpoint). Both print the
    same keys now, the recipe its evaluation too, its checkpoint being the model it exported."""
    from worldpolicy import extras
    from worldpolicy.cli import main
    from worldpolicy.train import scratch

    summary = {"stages": {"transformer": {"wall_s": 3.0, "steps": 4, "steps_run": 4, "last_loss": 0.5},
                          "evaluation": {"wall_s": 2.0, "success_rate": 0.75}}, "train_wall_s": 9.0,
               "total_wall_s": 11.0}
    monkeypatch.setattr(extras, "check_extras", lambda *modules: None)
    monkeypatch.setattr(scratch, "run_recipe", lambda *args, **kwargs: (summary, tmp_path / "model"))
    assert main(["train", "reach-from-scratch", "--out", str(tmp_path), "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "steps_run": 4, "last_loss": 0.5, "checkpoint": str(tmp_path / "model"), "wall_s": 11.0, "train_wall_s": 9.0,
        "eval": {"wall_s": 2.0, "success_rate": 0.75}, "installed": None}
    # a checkpoint under a relative --out is printed absolute, as every command's JSON gives a path (a script reading
    # it runs elsewhere)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(scratch, "run_recipe", lambda *args, **kwargs: (summary, Path("rel") / "model"))
    assert main(["train", "reach-from-scratch", "--out", "rel", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["checkpoint"] == str(tmp_path / "rel" / "model")
