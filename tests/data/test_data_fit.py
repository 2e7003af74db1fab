"""`dataset check --embodiment` (`data.fit.embodiment_fit`): whether a dataset fits an embodiment as training reads it,
said before fine-tuning, every problem on a line naming the column or camera and the fix."""

from __future__ import annotations

import json

import pytest
from test_data_commands import run

COLUMNS = ["action_0", "action_1", "action_2"]  # small_dataset's `action` (no names in info.json)


def _spec(tmp_path, **change):
    # the action-head slot, domain and chunk size left to `train`, as a training config's [embodiment] table may
    spec = {"name": "fitbot", "action_dim": 3, "columns": COLUMNS, "units": ["m", "m", "rad"], "fps": 10,
            "camera_keys": ["observation/front"], **change}
    path = tmp_path / f"fitbot{len(list(tmp_path.glob('fitbot*.json')))}.json"
    path.write_text(json.dumps(spec))
    return str(path)


def test_a_fitting_dataset_passes_saying_what_maps_where(small_dataset, tmp_path, capsys):
    ds, _ = small_dataset
    spec = _spec(tmp_path)
    argv = ["dataset", "check", str(ds.root), "--no-progress", "--embodiment", spec, "--action-keys", "action"]
    assert run(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: 3 episodes") and "fits embodiment 'fitbot' at 10 fps:" in out
    assert "'action_2' -> action_2 (rad)" in out and "camera observation/front: 'observation.images.front'" in out
    assert run([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["ok"] and doc["problems"] == [] and doc["episodes"] == 3
    assert doc["embodiment"]["columns"] == dict(zip(COLUMNS, COLUMNS))
    assert doc["embodiment"]["cameras"] == {"observation/front": "observation.images.front"}
    assert "fits embodiment 'fitbot'" in captured.err  # the lines for a person, off stdout
    # no --action-keys: training's default reads the dataset's one action feature, `action` (data.default_action_keys)
    assert run(argv[:-2]) == 0
    assert "'action_2' -> action_2 (rad)" in capsys.readouterr().out


@pytest.mark.parametrize("change, keys, named", [
    # the embodiment's columns in another order: each would train on another column's values
    ({"columns": COLUMNS[::-1]}, ["action"], "'action_2' is column 2 in the dataset but 0 in 'fitbot'"),
    # two cameras composed, the dataset records one
    ({"camera_keys": ["observation/front", "observation/wrist"], "composite": "stacked"}, ["action"],
     "embodiment 'fitbot' needs its cameras observation/front (a video key ending in .front), observation/wrist"),
    ({"fps": 15}, ["action"], "recorded at 10 fps but embodiment 'fitbot' has fps=15: set the embodiment's fps to 10"),
])
def test_a_dataset_that_does_not_fit_fails_naming_the_problem(small_dataset, tmp_path, capsys, change, keys, named):
    ds, _ = small_dataset
    argv = ["dataset", "check", str(ds.root), "--no-progress", "--embodiment", _spec(tmp_path, **change)]
    assert run([*argv, "--action-keys", *keys]) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert [line for line in lines if named in line], err
    assert len(lines) == 2 and lines[-1].startswith("worldpolicy dataset check: files not read: fix the 1 problem")


def test_every_problem_is_said_at_once_and_as_json(small_dataset, tmp_path, capsys):
    ds, _ = small_dataset
    spec = _spec(tmp_path, fps=15, columns=COLUMNS[::-1], camera_keys=["observation/left", "observation/right"],
                 composite="stacked")
    assert run(["dataset", "check", str(ds.root), "--embodiment", spec, "--action-keys", "action", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert not doc["ok"] and len(doc["embodiment"]["problems"]) == 3
    assert [p.split(":")[0] for p in doc["embodiment"]["problems"]] == [
        f"data.dataset {str(ds.root)!r} is recorded at 10 fps but embodiment 'fitbot' has fps=15",
        ("data.action_keys=['action'] hold embodiment 'fitbot''s columns in another order ('action_2' is column 2 "
         "in the dataset but 0 in 'fitbot'; 'action_0' is column 0 in the dataset but 2 in 'fitbot')"),
        "data.dataset's videos ['observation.images.front']"]


def test_recorded_units_that_differ_are_named(small_dataset, monkeypatch):
    """A column recorded in degrees read as one in radians trains on numbers 57 times too large."""
    from worldpolicy.data import card
    from worldpolicy.data.fit import embodiment_fit
    from worldpolicy.embodiments import embodiment_from_spec

    ds, _ = small_dataset
    bot = embodiment_from_spec({"name": "fitbot", "domain": "fitbot", "domain_id": 20, "action_dim": 3,
                                "columns": COLUMNS, "units": ["m", "m", "rad"], "chunk_size": 4, "fps": 10,
                                "camera_keys": ["observation/front"]})
    assert embodiment_fit(ds, bot, ["action"]).ok
    monkeypatch.setattr(card, "recorded_units", lambda _: {"action": ["m", "m", "deg"]})
    fit = embodiment_fit(ds, bot, ["action"])
    assert fit.problems == [("data.action_keys: column 'action_2' is recorded in 'deg' but read as embodiment "
                             "'fitbot''s 'action_2', in 'rad': write the dataset's actions in 'rad', or give the "
                             "embodiment's column the dataset's unit")]


def test_keys_without_an_embodiment_and_a_bad_spec_are_refused_naming_the_flag(small_dataset, tmp_path):
    ds, _ = small_dataset
    with pytest.raises(ValueError, match="--action-keys given without --embodiment"):
        run(["dataset", "check", str(ds.root), "--action-keys", "action"])
    (tmp_path / "list.json").write_text("[1, 2]")
    for spec, message in (("drid", "not registered .did you mean 'droid'"), (str(tmp_path / "list.json"), "got list"),
                          (_spec(tmp_path, fps=None), "fps")):
        with pytest.raises(ValueError, match=f"^--embodiment '{spec}': .*{message}"):
            run(["dataset", "check", str(ds.root), "--embodiment", spec])


def test_a_dataset_without_videos_is_told_to_record_them(tmp_path):
    """The camera line named the videos "by name" there were, none: `the cameras  (a new embodiment's ...)`."""
    from dataset_factory import write_sim_joint_recording

    from worldpolicy.data import LeRobotDataset
    from worldpolicy.data.fit import embodiment_fit
    from worldpolicy.embodiments import get_embodiment

    write_sim_joint_recording(tmp_path / "sim")
    fit = embodiment_fit(LeRobotDataset.open(tmp_path / "sim"), get_embodiment("droid/joint_pos"))
    assert fit.problems[-1].endswith("and the dataset has no video or image features: record its cameras")
    assert fit.cameras == {} and len(fit.problems) == 2  # and the state row from-sim writes, which it lacks
