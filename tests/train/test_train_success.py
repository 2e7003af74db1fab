"""`data.success` / `--success`: training (and its held-out episodes) on the episodes a recording flags as succeeded
(meta/episodes' `success` column, as `dataset from-sim --policy --keep-failures` writes it): filtered behaviour cloning
without copying `dataset info`'s failed episodes into `exclude_episodes`."""

from __future__ import annotations

import json

import pytest
from train_setup import CAMERAS, IMAGE_SIZE, make_episode

from worldpolicy.cli import main
from worldpolicy.train.config import changed_settings, load_config

OUTCOMES = [True, False, True]  # episode 1 failed


@pytest.fixture(scope="module")
def flagged_dataset(tmp_path_factory):
    """The trainer tests' tiny episodes, three of them, each flagged with its outcome (`OUTCOMES`)."""
    from worldpolicy.data import LeRobotDatasetWriter
    from worldpolicy.data.from_sim import sim_features

    root = tmp_path_factory.mktemp("flagged") / "ds"
    writer = LeRobotDatasetWriter(root, 15, sim_features("panda", IMAGE_SIZE, CAMERAS), "panda",
                                  video_codec="libx264rgb")
    for seed, succeeded in enumerate(OUTCOMES):
        episode = make_episode(seed)
        writer.add_episode(episode["frames"], episode["videos"], episode["task"], success=succeeded)
    assert writer.finalize().episode_success.tolist() == OUTCOMES
    return root


def _config(dataset, data=None, validation=None):
    return {"checkpoint": "some/hub-id", "output_dir": "unused",
            "data": {"dataset": str(dataset), "chunk_size": 4, **(data or {})}, "validation": validation or {}}


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("worldpolicy train: error:")]
    assert len(errors) == 1
    return errors[0]


def test_only_the_episodes_that_succeeded_are_trained_on(flagged_dataset):
    def trained(**data):
        return load_config(_config(flagged_dataset, data)).training_episodes(3, OUTCOMES)

    assert trained() is None  # "any", the default: every episode, as before the setting
    assert trained(success="only") == (0, 2)
    assert trained(success="only", episodes=[0, 1]) == (0,)  # a filter on the episodes chosen
    assert trained(success="only", exclude_episodes=[0]) == (2,)
    with pytest.raises(ValueError, match=r"^data.exclude_episodes=\[0, 2\] and data.success='only' \(episodes \[1\] "
                                         r"failed\) leave out every episode of data.dataset: nothing to train on"):
        load_config(_config(flagged_dataset, {"success": "only", "exclude_episodes": [0, 2]}))


def test_held_out_episodes_are_of_those_that_succeeded(flagged_dataset):
    config = load_config(_config(flagged_dataset, {"success": "only"}, {"episodes": [2]}))
    assert config.training_episodes(3, OUTCOMES) == (0,)
    with pytest.raises(ValueError, match=r"^validation.episodes=\[1, 2\] names \[1\], which failed \(data.dataset's "
                                         r"success column\), but data.success='only' trains on episodes that "
                                         r"succeeded: hold out episodes that succeeded, or train on every "
                                         r"episode \(data.success any\)"):
        load_config(_config(flagged_dataset, {"success": "only"}, {"episodes": [1, 2]}))
    # every episode trained on: a failed one may be held out
    assert load_config(_config(flagged_dataset, validation={"episodes": [1]})).training_episodes(3, OUTCOMES) == (0, 2)


def test_a_filter_on_a_dataset_without_the_column_or_an_unknown_value_is_refused(flagged_dataset, tiny_dataset):
    with pytest.raises(ValueError) as error:
        load_config(_config(tiny_dataset, {"success": "only"}))
    assert str(error.value).startswith(f"data.success='only' keeps the episodes that succeeded, but data.dataset "
                                       f"{str(tiny_dataset)!r} does not say which did (no success column in "
                                       "meta/episodes")
    with pytest.raises(ValueError, match=r"^data.success='yes'; accepted: any, only"):
        load_config(_config(flagged_dataset, {"success": "yes"}))
    with pytest.raises(ValueError, match=r"^data.success=True: expected a string, got bool"):
        load_config(_config(flagged_dataset, {"success": True}))
    assert load_config(_config(tiny_dataset, {"success": "any"})).data.success == "any"


def test_a_changed_success_filter_is_a_changed_setting_on_resume(flagged_dataset):
    current = load_config(_config(flagged_dataset)).to_dict()
    older = json.loads(json.dumps(current))  # a run stored before the setting trained on every episode
    del older["data"]["success"]
    assert changed_settings(older, current) == []
    only = load_config(_config(flagged_dataset, {"success": "only"})).to_dict()
    assert changed_settings(older, only) == ["data.success: 'any' -> 'only'"]
    assert changed_settings(only, current) == ["data.success: 'only' -> 'any'"]


def test_success_on_the_command_line_trains_on_the_successes_and_resumes_only_with_them(
        train_config, flagged_dataset, tiny_dataset, tmp_path, capsys):
    """`--success only` overrides the file's setting, is named as the flag in errors (before anything loads), is
    stored in config.json, and a resume without it is refused naming the flag."""
    out = tmp_path / "run"
    path = tmp_path / "run.json"
    path.write_text(json.dumps(train_config(out, optim={"steps": 1})))  # the tiny dataset: no success column
    assert _error(capsys, ["train", str(path), "--success", "only"]).startswith(
        "worldpolicy train: error: --success='only' keeps the episodes that succeeded, but data.dataset "
        f"{str(tiny_dataset)!r} does not say which did")
    assert "error: --success='most'; accepted: any, only" in _error(capsys, ["train", str(path), "--success", "most"])
    assert not out.exists()
    path.write_text(json.dumps(train_config(out, data={"dataset": str(flagged_dataset)}, optim={"steps": 1})))
    assert _error(capsys, ["train", str(path), "--success", "only", "--val-episodes", "1"]).endswith(
        "error: --val-episodes=[1] names [1], which failed (data.dataset's success column), but --success='only' "
        "trains on episodes that succeeded: hold out episodes that succeeded, or train on every episode (--success "
        "any)")
    assert not out.exists()
    assert main(["train", str(path), "--success", "only", "--no-progress"]) == 0
    assert "data.success='only': episodes [1] of data.dataset failed (its success column) and are not trained on" \
        in capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["data"]["success"] == "only"
    refused = _error(capsys, ["train", str(path), "--steps", "2"])
    assert "data.success: 'only' -> 'any'. Put them back to resume it (--success sets data.success on the command " \
           "line)" in refused


def test_the_run_page_says_only_episodes_that_succeeded_were_trained():
    from worldpolicy.viz.train_report import _episode_selection

    assert _episode_selection({"episodes": None, "exclude_episodes": [], "success": "any"}, {}) is None
    assert _episode_selection({"episodes": None, "exclude_episodes": [], "success": "only"}, {}) == \
        "all, those that succeeded"
    assert _episode_selection({"episodes": None, "exclude_episodes": [3], "success": "only"}, {}) == \
        "all except 3, those that succeeded"
    # held-out episodes are left out of "all" too; a `data.episodes` list never names them
    assert _episode_selection({"episodes": None, "exclude_episodes": [3], "success": "only"}, {"episodes": [1]}) == \
        "all except 3, 1 held out, those that succeeded"
    assert _episode_selection({"episodes": [0, 2], "exclude_episodes": [], "success": "any"}, {"episodes": [1]}) == \
        "0, 2"


def test_the_windows_and_held_out_windows_are_cut_from_episodes_that_succeeded(train_config, flagged_dataset,
                                                                                tmp_path):
    from worldpolicy.train.trainer import Trainer

    raw = train_config(tmp_path / "run", data={"dataset": str(flagged_dataset), "success": "only"},
                       validation={"episodes": [2]})
    trainer = Trainer(load_config(raw), progress=False)
    spec, _ = trainer._data()
    assert spec.episodes == (0,) and trainer._val_spec.episodes == (2,)
