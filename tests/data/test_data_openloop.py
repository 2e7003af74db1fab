"""`worldpolicy dataset eval` / `evaluate_open_loop`: a checkpoint's predicted chunks compared with a dataset's recorded
actions (open-loop evaluation), per column, per episode and per chunk step."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from dataset_factory import frame_ramp

from worldpolicy.cli import main
from worldpolicy.data import write_episodes
from worldpolicy.data.openloop import (
    EPISODE_FIGURE,
    SUMMARY_FIGURE,
    OpenLoopData,
    check_open_loop,
    compare_open_loop,
    evaluate_open_loop,
    model_scale,
    spread_starts,
)
from worldpolicy.data.served import SOURCE as SERVED
from worldpolicy.fileio import OPENLOOP_FILE

FRONT = "observation.images.front"
OFFSETS = (0, 20)  # episode i's frame t has every pixel 5 * (t + OFFSETS[i]): the stand-in reads t back
DROID_CAMERAS = ("wrist_image_left", "exterior_image_1_left", "exterior_image_2_left")


def _mae_table(summary: str) -> list[list[str]]:
    """The per-column table `OpenLoopResult.summary` ends with (its header and a row per column), split in cells."""
    lines = summary.splitlines()
    return [line.split() for line in lines[[line.split()[:3] for line in lines].index(["column", "MAE", "unit"]):]]


def _dataset(root: Path, lengths=(10, 7), fps: float = 10, y=None, **writer_options) -> tuple:
    """Episodes whose `action` feature is named as pusht's columns, recorded values that differ at every frame (`y`:
    column y's values as a function of the frame, instead)."""
    features = {"action": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
                FRONT: {"dtype": "video", "shape": [16, 16, 3]}}
    actions = []
    episodes = []
    for i, length in enumerate(lengths):
        t = np.arange(length)
        recorded = np.stack([10.0 * t + i, np.sin(t) - 5 * i if y is None else y(t)], axis=1).astype(np.float32)
        actions.append(recorded.astype(np.float64))
        episodes.append({"frames": {"action": recorded}, "videos": {FRONT: frame_ramp(length, offset=OFFSETS[i])},
                         "task": "push the T | shove the T" if i == 0 else "push it back"})
    ds = write_episodes(root, episodes, fps=fps, features=features, video_codec="libx264rgb", **writer_options)
    return ds, actions


def _stand_in(policy, monkeypatch, actions: list[np.ndarray], offset=(0.0, 0.0), seed: int = 0) -> list:
    """`policy.act_batch` replaced by one that answers each request with the recorded chunk from its frame (read
    back from the image; the episode from the seed, `seed + episode`) plus `offset`, rows past the episode's end
    filled with 1e6: what the evaluation must measure as `offset` exactly. Returns the requests seen."""
    seen: list = []

    def act_batch(requests, progress=None):
        out = []
        for r in requests:
            seen.append(r)
            episode = r.seed - seed
            t = int(r.observation["observation/image"][0, 0, 0]) // 5 - OFFSETS[episode]
            rows = np.full((policy.chunk_size, 2), 1e6)
            recorded = actions[episode][t:t + policy.chunk_size]
            rows[:len(recorded)] = recorded + np.asarray(offset)
            out.append(SimpleNamespace(actions=rows))
        return out

    monkeypatch.setattr(policy, "act_batch", act_batch)
    return seen


def test_a_policy_that_predicts_the_recording_has_no_error_even_past_an_episodes_end(policy, tmp_path, monkeypatch):
    ds, actions = _dataset(tmp_path / "ds")
    seen = _stand_in(policy, monkeypatch, actions, seed=7)
    result = evaluate_open_loop(ds, policy, tmp_path / "out", seed=7, batch_size=2, action_keys=["action"])
    # chunks of 4 tile each episode: frames 0, 4, 8 of 10 (the last reaches 2 recorded steps), 0, 4 of 7 (3 steps)
    assert [e.starts for e in result.episodes] == [[0, 4, 8], [0, 4]]
    assert result.horizon_steps.tolist() == [5, 5, 4, 3] and result.steps == 17
    assert result.mae.tolist() == [0.0, 0.0] and result.rmse.tolist() == [0.0, 0.0]
    assert np.all(result.horizon_mae == 0.0)
    # the inputs are the frame's, as `dataset frame` reads them: its camera, its task's first phrasing, seed + episode
    assert [(r.seed, r.prompt) for r in seen] == [(7, "push the T")] * 3 + [(8, "push it back")] * 2
    np.testing.assert_array_equal(seen[1].observation["observation/image"], frame_ramp(10)[4])
    assert all(r.state is None for r in seen)  # pusht takes no state
    written = json.loads((tmp_path / "out" / OPENLOOP_FILE).read_text())
    assert written["mae"] == {"x": 0.0, "y": 0.0} and written["units"] == {"x": "normalized", "y": "normalized"}
    assert [h["chunks"] for h in written["horizon"]] == [5, 5, 4, 3]
    assert written["settings"]["action_keys"] == ["action"] and written["settings"]["source_embodiment"] == "pusht"


def test_a_constant_offset_is_measured_as_that_offset_per_column(policy, tmp_path, monkeypatch):
    ds, actions = _dataset(tmp_path / "ds")
    _stand_in(policy, monkeypatch, actions, offset=(0.5, -2.0))
    result = evaluate_open_loop(ds, policy, tmp_path / "out", every=3, action_keys=["action"])
    assert [e.starts for e in result.episodes] == [[0, 3, 6, 9], [0, 3, 6]]  # chunks overlap: every 3 frames
    np.testing.assert_allclose(result.mae, [0.5, 2.0])
    np.testing.assert_allclose(result.rmse, [0.5, 2.0])
    np.testing.assert_allclose(result.horizon_mae, np.tile([0.5, 2.0], (4, 1)))
    for episode in result.episodes:
        np.testing.assert_allclose(episode.mae, [0.5, 2.0])
    # the recorded spread over the steps compared, for information
    compared = np.concatenate([a[f:f + 4] for a, e in zip(actions, result.episodes) for f in e.starts])
    np.testing.assert_allclose(result.scale, compared.std(axis=0))
    # pusht has no stats (its model reads its values as they are): the unit-free mean is the plain MAE's
    assert result.normalized_mae() == pytest.approx(1.25) and result.left_out == []
    written = json.loads((tmp_path / "out" / OPENLOOP_FILE).read_text())
    assert written["mae_normalized"] == pytest.approx(1.25) and written["normalization"] == "none"
    assert written["mae_normalized_by_column"] == pytest.approx({"x": 0.5, "y": 2.0})
    assert written["recorded_std"] == pytest.approx(dict(zip("xy", compared.std(axis=0))))
    assert "mae_over_std" not in written
    assert written["rmse"] == pytest.approx({"x": 0.5, "y": 2.0})
    assert written["episodes"][1]["mae"] == pytest.approx({"x": 0.5, "y": 2.0})
    assert _mae_table(result.summary()) == [["column", "MAE", "unit"], ["x", "0.5", "normalized"],
                                            ["y", "2", "normalized"]]


def _scaled(stats: dict) -> object:
    """pusht's action space with quantile stats (what a training run's embodiment carries), x in m and y unit-free."""
    from worldpolicy.embodiments import embodiment_from_spec, get_embodiment

    spec = get_embodiment("pusht").to_spec()
    spec.update(name="pusht_scaled", units=["m", "1"], normalization="quantile", stats=stats)
    return embodiment_from_spec(spec)


def _compare(embodiment, ds, actions, monkeypatch, offset):
    """`compare_open_loop` (what `dataset eval` and validation run) of a stand-in predicting the recording + `offset`
    as `embodiment`, at frames 0 and 4 of episode 0 and frame 0 of episode 1."""
    from worldpolicy.data.actions import recorded_actions
    from worldpolicy.data.label import label_cameras

    stand_in = SimpleNamespace(embodiment=embodiment, chunk_size=4, act_batch=None)
    _stand_in(stand_in, monkeypatch, actions, offset=offset)
    data = OpenLoopData(ds, label_cameras(ds.video_keys, embodiment), [],
                        recorded_actions(ds, embodiment, ["action"], [], source="pusht"))  # its columns, x and y
    return compare_open_loop(stand_in, data, {0: [0, 4], 1: [0]}, seed=0, batch_size=2)


def test_the_unit_free_error_is_the_mae_of_the_actions_on_the_models_normalised_scale(tmp_path, monkeypatch):
    """`normalized_mae`: each column's MAE of `to_model(predicted)` against `to_model(recorded)` (the embodiment's
    stats: q01..q99 span [-1, 1]), averaged over the columns, Cosmos Policy's action L1."""
    from worldpolicy.processing.actions import to_model

    ds, actions = _dataset(tmp_path / "ds")
    embodiment = _scaled({"q01": [0.0, -6.0], "q99": [100.0, 2.0]})  # x spans 100 (slope 0.02), y 8 (0.25)
    result = _compare(embodiment, ds, actions, monkeypatch, offset=(0.5, -2.0))
    np.testing.assert_allclose(model_scale(embodiment), [0.02, 0.25])
    np.testing.assert_allclose(result.normalized_columns(), [0.01, 0.5])
    assert result.normalized_mae() == pytest.approx(0.255)
    # the same as comparing the model-space chunks directly
    model = [np.abs(to_model(embodiment, p[:len(r)]) - to_model(embodiment, r)).mean(axis=0)
             for e in result.episodes for p, r in zip(e.predicted, e.recorded)]
    assert result.normalized_mae() == pytest.approx(np.mean(model))
    assert result.to_json()["mae_normalized"] == pytest.approx(0.255)
    assert "normalised MAE 0.255 (mean over columns on the model's normalised scale: the training data's range " \
        "spans 2, [-1, 1])" in result.summary()
    # y is unitless ("1"): its unit is shown as "-", not as a bare 1 beside its value; on the report's plot beside
    # its value none (`embodiments.shown_unit`: it said "y\n2 1"); a bracketed label keeps it, as the report's table
    # headers do
    assert _mae_table(result.summary()) == [["column", "MAE", "unit"], ["x", "0.5", "m"], ["y", "2", "-"]]
    from worldpolicy.viz.plots import axis_label, open_loop_summary_figure

    fig = open_loop_summary_figure(result.columns, result.units, result.mae, result.rmse, result.model_scale,
                                   result.horizon_mae, 10)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["x\n0.5 m", "y\n2"]
    assert (axis_label("x", "m"), axis_label("y", "1"), axis_label("z", "")) == ("x [m]", "y", "z")


def test_a_column_the_recording_barely_moves_does_not_swamp_the_unit_free_error(tmp_path, monkeypatch):
    """The walk's case: a rotation entry recorded within ~1e-6 of 1 (the shipped reach model's r0, r4). Divided by
    the spread of the steps compared, a 1e-3 error was ~1,000 and the mean said nothing; on the embodiment's scale
    (its training data's range, ~1 here) it is of the order of the other column's."""
    ds, actions = _dataset(tmp_path / "ds", y=lambda t: 1.0 + 1e-6 * np.sin(t))
    embodiment = _scaled({"q01": [0.0, 0.5], "q99": [100.0, 1.5]})
    result = _compare(embodiment, ds, actions, monkeypatch, offset=(0.5, 1e-3))
    assert 0 < result.scale[1] < 1e-5 and result.mae[1] / result.scale[1] > 100  # the old ratio
    np.testing.assert_allclose(result.normalized_columns(), [0.01, 2e-3], rtol=1e-4)
    assert result.normalized_mae() == pytest.approx(0.006, rel=1e-3)


def test_a_column_the_training_stats_hold_constant_is_left_out_of_the_unit_free_error(tmp_path, monkeypatch):
    """A column whose stats have no spread (a reach's never-closed gripper, q01 = q99) is normalised over the floor
    of the spread (1e-6): any error there is ~1e6 on that scale. It is left out of the mean, null per column, named
    in the summary, and drawn as 'constant in training' with no bar; the other column's error stands alone."""
    from worldpolicy.viz.plots import open_loop_summary_figure

    ds, actions = _dataset(tmp_path / "ds")
    embodiment = _scaled({"q01": [0.0, 0.0], "q99": [100.0, 0.0]})
    assert embodiment.constant_columns().tolist() == [False, True]
    result = _compare(embodiment, ds, actions, monkeypatch, offset=(0.5, 1e-3))
    assert np.isnan(model_scale(embodiment)[1]) and result.left_out == ["y"]
    assert result.normalized_mae() == pytest.approx(0.01)
    written = result.to_json()
    assert written["mae_normalized"] == pytest.approx(0.01)
    assert written["mae_normalized_by_column"] == {"x": pytest.approx(0.01), "y": None}
    assert "; y left out: constant in the training data's stats)\n" in result.summary()
    assert _mae_table(result.summary()) == [["column", "MAE", "unit"], ["x", "0.5", "m"], ["y", "0.001", "-"]]
    json.dumps(written, allow_nan=False)  # no NaN in openloop.json
    fig = open_loop_summary_figure(result.columns, result.units, result.mae, result.rmse, result.model_scale,
                                   result.horizon_mae, 10, scale_note="the training data's range spans 2")
    bars, lines = fig.axes
    assert [p.get_height() for p in bars.patches] == pytest.approx([0.01, 0.0])
    assert [t.get_text() for t in bars.get_xticklabels()] == ["x\n0.5 m", "y\nconstant in\ntraining"]
    assert [line.get_label() for line in lines.lines] == ["x", "mean"]
    assert list(lines.lines[1].get_ydata()) == pytest.approx([0.01] * 4)
    assert lines.get_ylim()[1] >= 1.1 * 0.01 and lines.get_legend() is not None  # its legend has room above them
    assert "normalised scale: the training data's range spans 2" in [t.get_text() for t in fig.texts]


def test_start_frames_are_spread_evenly_over_the_frames_whose_whole_chunk_was_recorded():
    """`spread_starts`, what a training run's validation samples at (`validation.action_chunks`): an even spread over
    the episodes' frames a whole chunk fits from, all of them where they are fewer, frame 0 of an episode shorter than
    a chunk; an episode given none is left out."""
    # chunks of 4: frames 0..6 of 10 and 0..3 of 7 fit one, 11 in all; 4 of them at 0, 3.3, 6.7 and 10 of those 11
    assert spread_starts({0: 10, 1: 7}, 4, 4) == {0: [0, 3], 1: [0, 3]}
    assert spread_starts({0: 10, 1: 7}, 4, 1) == {0: [0]}
    assert spread_starts({3: 5, 1: 2}, 4, 99) == {3: [0, 1], 1: [0]}  # all of them; episode 1 shorter than a chunk


def test_chunks_spread_over_the_episodes_instead_of_every(policy, tmp_path, monkeypatch):
    """`chunks`: that many predictions at `spread_starts`' frames, compared as `every`'s are, with their own plots."""
    ds, actions = _dataset(tmp_path / "ds")
    seen = _stand_in(policy, monkeypatch, actions, offset=(1.0, 0.0))
    result = evaluate_open_loop(ds, policy, tmp_path / "out", chunks=4, action_keys=["action"])
    assert [(e.episode, e.starts) for e in result.episodes] == [(0, [0, 3]), (1, [0, 3])]
    assert len(seen) == 4 and result.horizon_steps.tolist() == [4, 4, 4, 4]  # whole chunks only
    np.testing.assert_allclose(result.mae, [1.0, 0.0])
    written = json.loads((tmp_path / "out" / OPENLOOP_FILE).read_text())
    assert written["settings"]["chunks"] == 4 and written["settings"]["every"] is None and written["chunks"] == 4
    assert (tmp_path / "out" / SUMMARY_FIGURE).stat().st_size > 0
    with pytest.raises(ValueError, match=r"^every=2 and chunks=4: give one"):
        evaluate_open_loop(ds, policy, tmp_path / "out", every=2, chunks=4, action_keys=["action"])


def _droid_dataset(root: Path, length: int = 6) -> tuple:
    """One episode with the Cosmos3-DROID keys `dataset from-sim` writes (training's defaults): three cameras (camera
    j a ramp offset by 10 j), the joints + gripper state and joint-target actions."""
    rng = np.random.default_rng(0)
    state = rng.normal(scale=0.3, size=(length, 8)).astype(np.float32)
    recorded = (state + rng.normal(scale=0.05, size=(length, 8))).astype(np.float32)
    state[:, 7] = recorded[:, 7] = rng.random(length)
    episode = {"frames": {"observation.state.joint_positions": state[:, :7],
                          "observation.state.gripper_position": state[:, 7:],
                          "action.joint_position": recorded[:, :7], "action.gripper_position": recorded[:, 7:]},
               "videos": {f"observation.image.{c}": frame_ramp(length, offset=10 * j)
                          for j, c in enumerate(DROID_CAMERAS)},
               "task": "put the cube on the pad"}
    return write_episodes(root, [episode], fps=15, video_codec="libx264rgb"), state, recorded


def _frame_of(request) -> int:
    return int(request.observation["observation/wrist_image_left"][0, 0, 0]) // 5


def test_a_state_conditioned_embodiment_gets_each_frames_state_and_cameras(tmp_path, monkeypatch, tiny):
    """droid: three cameras matched by name and the joints + gripper state at the frame predicted from."""
    import worldpolicy

    droid = worldpolicy.load_policy(tiny, embodiment="droid", chunk_size=4, resolution_tier=256, steps=1)
    ds, state, recorded = _droid_dataset(tmp_path / "droid")
    seen = []

    def act_batch(requests, progress=None):
        seen.extend(requests)
        return [SimpleNamespace(actions=np.resize(recorded[_frame_of(r):], (4, 8))) for r in requests]

    monkeypatch.setattr(droid, "act_batch", act_batch)
    result = evaluate_open_loop(ds, droid, tmp_path / "out", plots=False)  # the from-sim keys: training's defaults
    assert [r.observation.keys() for r in seen] == [{f"observation/{c}" for c in DROID_CAMERAS}] * 2
    np.testing.assert_array_equal(seen[1].observation["observation/exterior_image_2_left"], frame_ramp(6, offset=20)[4])
    np.testing.assert_allclose([r.state for r in seen], state[[0, 4]])
    assert result.mae.tolist() == [0.0] * 8 and result.horizon_steps.tolist() == [2, 2, 1, 1]
    assert not list((tmp_path / "out").glob("*.png"))  # plots=False: openloop.json alone


def test_joint_targets_are_compared_as_end_effector_deltas_from_each_chunks_frame(tmp_path, monkeypatch, tiny):
    """A relative_pose checkpoint on a joint-target recording: each chunk's recorded rows are converted from the state
    at its own frame, as training converts a window (`data.actions`), and plotted with it."""
    import worldpolicy
    from worldpolicy.data.actions import recorded_actions

    pose = worldpolicy.load_policy(tiny, embodiment="droid/relative_pose", chunk_size=4, resolution_tier=256, steps=1)
    ds, _, _ = _droid_dataset(tmp_path / "droid", length=7)
    reader = recorded_actions(ds, pose.embodiment)
    frames = ds.episode(0, videos=False).frames
    monkeypatch.setattr(pose, "act_batch", lambda requests, progress=None: [
        SimpleNamespace(actions=np.resize(reader.chunk(frames, _frame_of(r), min(_frame_of(r) + 4, 7)), (4, 10)))
        for r in requests])
    result = evaluate_open_loop(ds, pose, tmp_path / "out", every=2)
    assert result.settings["action_conversion"] == "joint_to_relative_pose"
    assert [e.starts for e in result.episodes] == [[0, 2, 4, 6]]
    np.testing.assert_allclose(result.mae, 0.0, atol=1e-12)
    # from frame 2, the rows differ from frame 0's chunk's: deltas start from their own chunk's pose
    assert not np.allclose(reader.chunk(frames, 2, 4), reader.chunk(frames, 0, 4)[2:])
    assert (tmp_path / "out" / EPISODE_FIGURE.format(0)).stat().st_size > 0


def test_the_command_line_runs_the_model_and_writes_metrics_and_plots(policy, tmp_path, capsys, monkeypatch):
    """End to end on a tiny dataset with the tiny checkpoint (loaded once, at a chunk of 4); a rerun evaluating
    fewer episodes removes the plot of the one it left out."""
    import worldpolicy.policy as policy_module

    ds, _ = _dataset(tmp_path / "ds")
    loaded = []
    monkeypatch.setattr(policy_module.Policy, "from_pretrained",
                        classmethod(lambda cls, *a, **k: loaded.append(k) or policy))
    out = tmp_path / "eval"
    argv = ["dataset", "eval", str(policy.source), str(ds.root), "--out", str(out), "--embodiment", "pusht",
            "--action-keys", "action", "--no-progress"]
    assert main(argv) == 0
    assert loaded[-1]["center_crop"] is None  # as the checkpoint's record says (the tiny one: none)
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[0] == f"open loop: 5 chunks over 2 episodes (17 steps compared); wrote {out / OPENLOOP_FILE}"
    assert printed[1].startswith("normalised MAE ")
    assert printed[1].endswith("(mean over columns on the model's normalised scale: no stats: the values as the model "
                               "reads them)")
    # a table: a header and a row per column, the MAE right-aligned under its head, pusht's unit after it
    head, *rows = printed[2:]
    assert head.split() == ["column", "MAE", "unit"] and [r.split()[0] for r in rows] == ["x", "y"]
    assert all(r.index("normalized") == head.index("unit") and r.split()[1][-1] == r[head.index("MAE") + 2]
               for r in rows)
    written = json.loads((out / OPENLOOP_FILE).read_text())
    assert written["columns"] == ["x", "y"] and written["settings"]["embodiment"] == "pusht"
    assert written["settings"]["episodes"] == [0, 1] and written["steps_compared"] == 17
    assert written["settings"]["center_crop"] is None  # the policy's (`Policy.center_crop`): no crop
    assert all(np.isfinite(v) and v > 0 for v in written["mae"].values())  # a random tiny model is off
    assert written["rmse"]["x"] >= written["mae"]["x"]
    plots = [SUMMARY_FIGURE, EPISODE_FIGURE.format(0), EPISODE_FIGURE.format(1)]
    assert all((out / name).stat().st_size > 0 for name in plots)
    assert written["plots"] == {"summary": plots[0], "episodes": plots[1:]}
    assert main([*argv, "--episodes=-1", "--every", "2", "--json"]) == 0
    written = json.loads((out / OPENLOOP_FILE).read_text())
    assert written["settings"]["episodes"] == [1] and written["episodes"][0]["starts"] == [0, 2, 4, 6]
    # --json: openloop.json's fields with where they were written, on stdout; the summary lines on stderr
    printed, said = capsys.readouterr()
    doc = json.loads(printed)
    assert {k: doc[k] for k in written} == written and doc["run_dir"] == str(out)
    assert sorted(doc["written"]) == sorted(str(out / name) for name in
                                            (OPENLOOP_FILE, SUMMARY_FIGURE, EPISODE_FIGURE.format(1)))
    assert said.startswith("open loop: ")
    assert not (out / EPISODE_FIGURE.format(0)).exists() and (out / EPISODE_FIGURE.format(1)).exists()
    assert main([*argv, "--no-center-crop"]) == 0 and loaded[-1]["center_crop"] is False  # load_policy's False
    # --no-plots: no earlier run's figure is left beside the new openloop.json (the summary of other episodes was)
    assert main([*argv, "--episodes", "0", "--no-plots"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [OPENLOOP_FILE]
    assert json.loads((out / OPENLOOP_FILE).read_text())["plots"] == {"summary": None, "episodes": []}
    # a folder that held no evaluation keeps files that only share the figures' names (the user's own)
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in (SUMMARY_FIGURE, EPISODE_FIGURE.format(7)):
        (mine / name).write_bytes(b"mine")
    assert main([*argv[:4], "--out", str(mine), *argv[6:], "--no-plots"]) == 0
    assert sorted(p.name for p in mine.iterdir()) == sorted([OPENLOOP_FILE, SUMMARY_FIGURE, EPISODE_FIGURE.format(7)])


@pytest.mark.parametrize(("extra", "message"), [
    (["--episodes", "0,5"], "--episodes=[0, 5]: [5] out of range; accepted: episode indexes in 0..1"),
    (["--episodes", "0;1"], "--episodes '0;1': expected episode indices"),
    (["--every", "0"], "--every=0; accepted: an integer >= 1"),
    (["--chunks", "0"], ("--chunks=0; accepted: an integer >= 1, the chunks spread over the episodes (or --every "
                         "instead)")),
    (["--batch-size", "0"], "--batch-size=0; accepted: an integer >= 1"),
    (["--steps", "0"], "--steps=0 must be"),
    (["--state-keys", "observation.state"], ("--state-keys=['observation.state']: embodiment 'pusht' does not "
                                             "condition on the robot state")),
])
def test_a_bad_argument_is_named_before_the_model_loads(policy, tmp_path, capsys, monkeypatch, extra, message):
    import worldpolicy.policy as policy_module

    ds, _ = _dataset(tmp_path / "ds")

    def never(*args, **kwargs):
        raise AssertionError("the weights were loaded")

    monkeypatch.setattr(policy_module.Policy, "from_pretrained", classmethod(never))
    out = tmp_path / "eval"
    assert main(["dataset", "eval", str(policy.source), str(ds.root), "--out", str(out), "--embodiment", "pusht",
                 "--action-keys", "action", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("worldpolicy dataset eval: error: ") and message in err
    assert not out.exists()


def test_every_and_chunks_together_are_refused_naming_both_flags(tmp_path, capsys):
    """--every and --chunks are two spacings of the chunks: given both, argparse names the two flags (the API's
    `every=... and chunks=...` read half as a flag, half as a parameter)."""
    with pytest.raises(SystemExit) as refused:
        main(["dataset", "eval", "shipped", str(tmp_path / "ds"), "--out", str(tmp_path / "eval"), "--every", "2",
              "--chunks", "3"])
    assert refused.value.code == 2
    assert "argument --chunks: not allowed with argument --every" in capsys.readouterr().err
    assert not (tmp_path / "eval").exists()


def test_a_missing_checkpoint_or_dataset_is_named_as_its_positional(policy, tmp_path, capsys):
    """A path that is not there is named CHECKPOINT or DATASET, as the other errors name what to fix."""
    ds, _ = _dataset(tmp_path / "ds")
    out = tmp_path / "eval"
    assert main(["dataset", "eval", str(tmp_path / "nope"), str(ds.root), "--out", str(out)]) == 2
    assert f"error: CHECKPOINT={str(tmp_path / 'nope')!r} " in capsys.readouterr().err
    assert main(["dataset", "eval", str(policy.source), str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert f"error: DATASET: dataset root {str(tmp_path / 'nope')!r} is not a directory" in capsys.readouterr().err
    assert not out.exists()


def test_a_dataset_and_checkpoint_given_swapped_are_said_to_be_and_the_command_shown_in_its_order(policy, tmp_path,
                                                                                                  capsys):
    """`dataset eval DATASET CHECKPOINT` (train's config and `dataset label` name the dataset first) was refused for
    the checkpoint given as the dataset only; with both checked the message says the two look swapped and shows the
    command to run. One of them alone wrong is said as before."""
    import shlex

    ds, _ = _dataset(tmp_path / "ds")
    out = tmp_path / "eval"
    for checkpoint, said in ((str(policy.source), "a diffusers checkpoint"), ("shipped", "the shipped model")):
        assert main(["dataset", "eval", str(ds.root), checkpoint, "--out", str(out), "--every", "3"]) == 2
        assert capsys.readouterr().err == (
            f"worldpolicy dataset eval: error: CHECKPOINT {str(ds.root)!r} is a LeRobot dataset and DATASET "
            f"{checkpoint!r} is {said}: the two look swapped; the checkpoint comes first: worldpolicy dataset eval "
            f"{shlex.join([checkpoint, str(ds.root), '--out', str(out), '--every', '3'])}\n")
    assert main(["dataset", "eval", str(ds.root), str(ds.root), "--out", str(out)]) == 2  # a dataset twice
    assert "look swapped" not in capsys.readouterr().err
    assert not out.exists()


def test_a_dataset_whose_actions_the_embodiment_cannot_read_is_refused_by_flag(policy, tmp_path, capsys, monkeypatch):
    """Keys that are not the dataset's actions are refused by their flag; actions of another width, another fps and
    an output folder holding a dataset are refused too, before the model loads. Without --action-keys the defaults
    are training's: from-sim's keys, or, as here, the dataset's one action feature `action`."""
    import worldpolicy.policy as policy_module

    monkeypatch.setattr(policy_module.Policy, "from_pretrained",
                        classmethod(lambda cls, *a, **k: pytest.fail("the weights were loaded")))
    ds, _ = _dataset(tmp_path / "ds")
    assert check_open_loop(ds, policy.embodiment).data.reader.action_keys == ["action"]
    base = ["dataset", "eval", str(policy.source), str(ds.root), "--embodiment", "pusht"]
    assert main([*base, "--action-keys", FRONT, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "error: --action-keys: the dataset's actions do not map to embodiment 'pusht'" in err
    slow, _ = _dataset(tmp_path / "slow", fps=5)
    assert main(["dataset", "eval", str(policy.source), str(slow.root), "--embodiment", "pusht", "--action-keys",
                 "action", "--out", str(tmp_path / "b")]) == 2
    assert "error: DATASET: " in (err := capsys.readouterr().err) and "is at 5 fps and embodiment 'pusht'" in err
    served, _ = _dataset(tmp_path / "served", fps=5, provenance={"source": SERVED, "embodiment": "pusht"})
    assert main(["dataset", "eval", str(policy.source), str(served.root), "--embodiment", "pusht", "--action-keys",
                 "action", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err  # a served recording's fps is its request rate: why, as `train` says it
    assert (f"error: DATASET: {str(served.root)!r} is a `serve --record` recording at 5 fps: one frame per policy "
            "request, its `action` the first of each chunk, so it is fit for an open-loop evaluation only when the "
            "client asked every control step (execute_steps 1: 10 fps for embodiment 'pusht'); this one is for "
            "looking at (dataset show), not for an open-loop evaluation") in err
    assert main([*base, "--action-keys", "action", "--out", str(ds.root)]) == 2
    assert "--out: " in capsys.readouterr().err


def test_nan_in_the_recorded_actions_is_refused_naming_the_episode(policy, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    ds, _ = _dataset(tmp_path / "ds")
    data = ds.root / "data/chunk-000/file-000.parquet"  # the writer refuses NaN: a dataset made elsewhere holds it
    table = pq.read_table(data)
    actions = table.column("action").to_pylist()
    actions[10 + 3][1] = float("nan")  # episode 1, frame 3
    column = table.column_names.index("action")
    pq.write_table(table.set_column(column, "action", pa.array(actions, table.schema.field("action").type)), data)
    with pytest.raises(ValueError, match=r"action_keys: 'action' holds NaN or inf in episode 1 \(first at frame 3\)"):
        evaluate_open_loop(tmp_path / "ds", policy, tmp_path / "out", action_keys=["action"])
    assert not (tmp_path / "out" / OPENLOOP_FILE).exists()
    evaluate_open_loop(tmp_path / "ds", policy, tmp_path / "out", action_keys=["action"], episodes=[0], plots=False)


def test_episodes_that_are_the_checkpoints_training_scenes_are_warned_about_and_recorded(policy, tmp_path, monkeypatch,
                                                                                          capsys):
    """`worldpolicy sim`'s rule (`sim.tasks.training_scenes`) on a `dataset from-sim` recording's episodes: a
    checkpoint evaluated on the scenes its training dataset recorded is warned about before it loads, said in the
    summary and recorded in openloop.json as report.json records it; another recording's held-out scenes are not.
    The rule is applied once per evaluation, and the checkpoint named one way (`models.checkpoint_name`: given as `.`,
    by its folder's name) before loading and in the summary."""
    import sys

    import worldpolicy.policy as policy_module
    from worldpolicy.fileio import TRAINER_STATE_FILE
    from worldpolicy.sim import tasks

    trained, actions = _dataset(tmp_path / "trained", provenance={"task": "reach", "seeds": [5, 6]})
    checkpoint = Path(shutil.copytree(policy.source, tmp_path / "ckpt"))  # the tiny one, trained on `trained`
    (checkpoint / TRAINER_STATE_FILE).write_text(json.dumps({"config": {"data": {"dataset": str(trained.root)}}}))
    monkeypatch.setattr(policy, "source", str(checkpoint))

    def loaded(cls, *args, **kwargs):
        print("loading the model", file=sys.stderr)
        return policy

    monkeypatch.setattr(policy_module.Policy, "from_pretrained", classmethod(loaded))
    _stand_in(policy, monkeypatch, actions)
    applied = []
    rule = tasks.training_scenes
    monkeypatch.setattr(tasks, "training_scenes", lambda *args: applied.append(args) or rule(*args))
    out = tmp_path / "eval"
    monkeypatch.chdir(checkpoint)  # given as `.`
    assert main(["dataset", "eval", ".", str(trained.root), "--out", str(out), "--embodiment", "pusht",
                 "--action-keys", "action", "--no-progress", "--no-plots", "--episodes", "1"]) == 0
    monkeypatch.chdir(tmp_path)
    assert len(applied) == 1
    said = (f"1 of the 1 episodes (seed 6) are reach scenes ckpt was trained on (its dataset {trained.root} recorded "
            "seeds 5..6): their error says how well it imitates its training data, not how it does on new scenes; "
            "record held-out ones to compare on with `worldpolicy dataset from-sim --task reach --seed 10000`")
    printed = capsys.readouterr()
    assert printed.err.index(said) < printed.err.index("loading the model")
    assert printed.out.strip().splitlines()[-1] == f"warning: {said}"
    assert _training_scenes(out) == {"task": "reach", "source": f"its dataset {trained.root}",
                                     "recorded_seeds": [5, 6], "seeds": [6]}
    # another recording of the task: scene 5 is a training scene, 20000 is not
    other, _ = _dataset(tmp_path / "other", provenance={"task": "reach", "seeds": [20000, 5]})
    result = evaluate_open_loop(other, policy, tmp_path / "other_eval", action_keys=["action"], plots=False)
    assert result.summary().splitlines()[-1] == ("warning: 1 of the 2 episodes (seed 5) are reach scenes ckpt was "
                                                 f"trained on (its dataset {trained.root} recorded seeds 5..6): their "
                                                 "error says how well it imitates its training data, not how it does "
                                                 "on new scenes; record held-out ones to compare on with `worldpolicy "
                                                 "dataset from-sim --task reach --seed 10000`")
    result = evaluate_open_loop(other, policy, tmp_path / "other_eval", episodes=[0], action_keys=["action"],
                                plots=False)
    assert _training_scenes(tmp_path / "other_eval")["seeds"] == [] and "warning" not in result.summary()
    # a dataset that is no sim recording, or a checkpoint whose training data does not say: not known
    plain, _ = _dataset(tmp_path / "plain")
    evaluate_open_loop(plain, policy, tmp_path / "plain_eval", action_keys=["action"], plots=False)
    assert _training_scenes(tmp_path / "plain_eval") is None
    monkeypatch.setattr(policy, "source", str(tmp_path / "nothing_said"))
    evaluate_open_loop(trained, policy, tmp_path / "plain_eval", action_keys=["action"], plots=False)
    assert _training_scenes(tmp_path / "plain_eval") is None


def _training_scenes(out: Path) -> dict | None:
    """openloop.json's `training_scenes` in `out`."""
    return json.loads((out / OPENLOOP_FILE).read_text())["training_scenes"]


def test_an_interrupted_run_leaves_an_earlier_ones_files_as_they_were(policy, tmp_path, monkeypatch):
    """Nothing is written until every chunk is compared: Ctrl-C in the second batch changes no file in --out."""
    ds, actions = _dataset(tmp_path / "ds")
    _stand_in(policy, monkeypatch, actions)
    out = tmp_path / "out"
    evaluate_open_loop(ds, policy, out, action_keys=["action"])
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls = []

    def interrupted(requests, progress=None):
        calls.append(requests)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return [SimpleNamespace(actions=np.zeros((policy.chunk_size, 2))) for _ in requests]

    monkeypatch.setattr(policy, "act_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate_open_loop(ds, policy, out, action_keys=["action"], batch_size=2)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_progress_callable_is_told_the_chunks_predicted_at_each_denoising_step(policy, tmp_path, monkeypatch):
    """Before each batch and at each of its denoising steps: the chunks done so far (a batch's n chunks advance
    n * step / steps) of those planned; no bar is shown. Raising in it stops the run with nothing written."""
    ds, actions = _dataset(tmp_path / "ds")
    recorded = _stand_in(policy, monkeypatch, actions)
    stand_in = policy.act_batch

    def two_steps(requests, progress=None):  # as the engine reports a 2-step sampling
        for step in (1, 2):
            progress(step, 2)
        return stand_in(requests)

    monkeypatch.setattr(policy, "act_batch", two_steps)
    told: list = []
    evaluate_open_loop(ds, policy, tmp_path / "out", batch_size=2, action_keys=["action"], plots=False,
                       progress=lambda done, total: told.append((done, total)))
    # episode 0's starts 0, 4 | 8, episode 1's 0, 4: batches of 2, 1 and 2 chunks
    assert told == [(0, 5), (1, 5), (2, 5), (2, 5), (2.5, 5), (3, 5), (3, 5), (4, 5), (5, 5)]
    assert len(recorded) == 5

    def stop(done, total):
        if done >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluate_open_loop(ds, policy, tmp_path / "stopped", batch_size=2, action_keys=["action"], progress=stop)
    assert not (tmp_path / "stopped" / OPENLOOP_FILE).exists()
    with pytest.raises(TypeError, match="progress must be True, False, None or a callable"):
        evaluate_open_loop(ds, policy, tmp_path / "out", action_keys=["action"], progress="no")


def test_steps_ride_on_each_request_and_leave_a_loaded_policy_as_it_was(policy, tmp_path, monkeypatch):
    ds, actions = _dataset(tmp_path / "ds")
    seen = _stand_in(policy, monkeypatch, actions)
    before = policy.sampling
    result = evaluate_open_loop(ds, policy, tmp_path / "out", chunks=3, steps=3, action_keys=["action"], plots=False)
    assert [r.steps for r in seen] == [3, 3, 3] and policy.sampling == before and before.steps == 1
    assert result.settings["sampling"]["steps"] == 3
    evaluate_open_loop(ds, policy, tmp_path / "out", chunks=1, action_keys=["action"], plots=False)
    assert seen[-1].steps is None  # the policy's own sampling
    with pytest.raises(ValueError, match=r"steps=0 must be an integer in \[1, 1000\]"):
        evaluate_open_loop(ds, policy, tmp_path / "out", steps=0, action_keys=["action"])
    assert len(seen) == 4  # refused before any prediction


def test_the_checks_before_weights_are_one_function_that_plans_the_chunks(policy, tmp_path):
    """`check_open_loop` refuses what `evaluate_open_loop` refuses before loading, and places the chunks as it does."""
    ds, _ = _dataset(tmp_path / "ds")
    plan = check_open_loop(ds, policy.embodiment, action_keys=["action"], episodes=[-1])
    assert plan.episodes == [1] and plan.starts(4) == {1: [0, 4]} and plan.starts(3) == {1: [0, 3, 6]}
    assert check_open_loop(ds, policy.embodiment, chunks=3, action_keys=["action"]).starts(4) == \
        spread_starts({0: 10, 1: 7}, 4, 3)
    slow, _ = _dataset(tmp_path / "slow", fps=5)
    with pytest.raises(ValueError, match="is at 5 fps and embodiment 'pusht'"):
        check_open_loop(slow, policy.embodiment, action_keys=["action"])
    with pytest.raises(ValueError, match="^action_keys: "):
        check_open_loop(ds, policy.embodiment, action_keys=[FRONT])
    from dataclasses import replace

    from worldpolicy.data.openloop import run_open_loop
    from worldpolicy.embodiments import get_embodiment

    # the plan as it is, nothing checked again
    result = run_open_loop(plan, policy, tmp_path / "run", training_scenes=None, plots=False)
    assert result.settings["episodes"] == [1] and result.every == 4 and (tmp_path / "run" / OPENLOOP_FILE).is_file()
    assert run_open_loop(plan, policy, str(tmp_path / "text"), training_scenes=None,
                         plots=False).out == tmp_path / "text"  # a str too
    with pytest.raises(ValueError, match="^policy: runs embodiment 'pusht', but the plan was checked for 'bridge'"):
        run_open_loop(replace(plan, embodiment=get_embodiment("bridge")), policy, tmp_path / "other",
                      training_scenes=None)


def test_the_summary_figure_of_an_episode_shorter_than_a_chunk_warns_nothing():
    """A chunk from frame 0 of an episode shorter than it reaches no later step (`horizon` NaN there, as documented):
    the mean line stops there instead of numpy's 'Mean of empty slice' RuntimeWarning reaching the terminal."""
    import warnings

    from worldpolicy.viz.plots import open_loop_summary_figure

    horizon = np.array([[0.1, 0.2], [0.3, 0.4], [np.nan, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = open_loop_summary_figure(["x", "y"], ["m", "m"], np.array([0.2, 0.3]), np.array([0.25, 0.35]),
                                       np.array([1.0, 1.0]), horizon, 10)
    mean = fig.axes[1].lines[-1].get_ydata()
    assert mean[:2] == pytest.approx([0.15, 0.35]) and np.isnan(mean[2])


def test_actions_named_as_a_checkpoints_own_embodiments_columns_are_read_as_they_are(tmp_path):
    """A `serve --record` recording of the shipped model keeps `action` in panda_reach's columns, an embodiment that
    comes with the checkpoint and is not registered: `dataset eval shipped REC --action-keys action` was refused
    ("data.source_embodiment='panda_reach': ... not registered") where the target itself was the layout."""
    from worldpolicy.data import LeRobotDataset
    from worldpolicy.data.actions import recorded_actions
    from worldpolicy.embodiments import embodiment_from_spec, get_embodiment
    from worldpolicy.models import shipped_model
    from worldpolicy.policy import checkpoint_spec

    target = embodiment_from_spec({**checkpoint_spec(shipped_model()), "name": "own_unregistered", "aliases": []})
    with pytest.raises(KeyError):
        get_embodiment(target.key)
    rows = np.random.default_rng(0).normal(size=(6, target.action_dim)).astype(np.float32)
    frames = {"frames": {"action": rows}, "videos": {FRONT: np.zeros((6, 16, 16, 3), np.uint8)}, "task": "reach"}
    action = {"dtype": "float32", "shape": [target.action_dim], "names": list(target.columns)}
    write_episodes(tmp_path / "rec", [frames], fps=15, video_codec="libx264rgb",
                   features={"action": action, FRONT: {"dtype": "video", "shape": [16, 16, 3]}})
    reader = recorded_actions(LeRobotDataset.open(tmp_path / "rec"), target, ["action"])
    assert (reader.source, reader.conversion) == (target.key, "none")
    actions, _ = reader.convert(rows[:4], None)
    np.testing.assert_array_equal(actions, rows[:4])


class _Loaded(Exception):
    """Raised where the checkpoint's weights would load: every check before them passed."""


def _checkpoint_run_on_action(tiny: Path, tmp_path: Path, monkeypatch) -> Path:
    """A copy of `tiny` whose training run read `action_keys = ["action"]`; loading its weights raises `_Loaded`."""
    import worldpolicy.policy as policy_module

    def loaded(cls, *args, **kwargs):
        raise _Loaded

    monkeypatch.setattr(policy_module.Policy, "from_pretrained", classmethod(loaded))
    checkpoint = tmp_path / "ckpt"
    shutil.copytree(tiny, checkpoint)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"config": {"data": {"action_keys": ["action"]}}}))
    return checkpoint


def test_a_checkpoint_is_evaluated_on_the_keys_its_training_run_read(tiny, tmp_path, monkeypatch):
    """A checkpoint trained with `action_keys = ["action"]` (a LeRobot dataset of a robot of one's own) was refused on
    its own dataset without `--action-keys action`: the default was `dataset from-sim`'s names, though the checkpoint's
    trainer_state.json records the keys its run read. Keys the dataset lacks fall back to the default: from-sim's
    names, or, on a dataset without them, its one action feature `action`."""
    checkpoint = _checkpoint_run_on_action(tiny, tmp_path, monkeypatch)
    _dataset(tmp_path / "ds")
    options = {"embodiment": "pusht", "chunk_size": 4, "resolution_tier": 256, "plots": False}
    with pytest.raises(_Loaded):  # every check before the weights passed
        evaluate_open_loop(tmp_path / "ds", checkpoint, tmp_path / "out", **options)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"config": {"data": {"action_keys": ["act"]}}}))
    with pytest.raises(_Loaded):  # `act` is not the dataset's: the default, its one action feature
        evaluate_open_loop(tmp_path / "ds", checkpoint, tmp_path / "out", **options)


def test_a_hub_checkpoint_is_evaluated_on_the_keys_its_training_run_read(tiny, tmp_path, monkeypatch, model_repo):
    """Named by its hub id, the checkpoint's trainer_state.json was looked for at `./me/pick` (the id as a path), not
    in the snapshot its checks read: the keys its run read went unread and the dataset was refused, while `dataset
    frame` and the agent tool, which resolve the name, read them."""
    checkpoint = _checkpoint_run_on_action(tiny, tmp_path, monkeypatch)
    model_repo(checkpoint)
    _dataset(tmp_path / "ds")
    with pytest.raises(_Loaded):  # every check before the weights passed, on the keys the run read
        evaluate_open_loop(tmp_path / "ds", "me/pick", tmp_path / "out", embodiment="pusht", chunk_size=4,
                           resolution_tier=256, plots=False)


def test_a_state_conditioned_checkpoint_is_checked_on_the_state_keys_its_run_read(tmp_path):
    """`check_open_loop`'s `trained` gives a state-conditioned embodiment the state features the checkpoint's run read
    where the dataset has them all, before `observation.state`; keys the dataset lacks fall back to the default. Only
    the action keys' default was tested."""
    from worldpolicy.embodiments import embodiment_from_dict

    emb = embodiment_from_dict({"name": "stateful_push", "variant": "default", "domain": "stateful_push",
                                "domain_id": 22, "action_dim": 2, "columns": ["x", "y"], "chunk_size": 4, "fps": 10,
                                "camera_keys": ["observation/image"], "state_history": 1})
    state = np.zeros((6, 2), np.float32)
    features = {"action": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
                "observation.state": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
                "robot.q": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
                FRONT: {"dtype": "video", "shape": [16, 16, 3]}}
    ds = write_episodes(tmp_path / "ds", [{"frames": {"action": state, "observation.state": state, "robot.q": state},
                                           "videos": {FRONT: frame_ramp(6)}, "task": "push"}], fps=10,
                        features=features, video_codec="libx264rgb")
    trained = {"action_keys": ["action"], "state_keys": ["robot.q"]}
    assert check_open_loop(ds, emb, trained=trained).data.state_keys == ["robot.q"]
    assert check_open_loop(ds, emb, trained={**trained, "state_keys": ["robot.q", "gone"]}).data.state_keys == [
        "observation.state"]
    assert check_open_loop(ds, emb, trained=trained, state_keys=["observation.state"]).data.state_keys == [
        "observation.state"]  # given keys win


# -- the world model's modes: forward dynamics (imagined frames) and inverse dynamics (recovered actions) ----------


def test_psnr_and_ssim_equal_their_formulas_on_frames_computed_by_hand():
    from worldpolicy.processing.similarity import frame_mse, frame_ssim, psnr

    a = np.full((2, 16, 16, 3), 100, dtype=np.uint8)
    b = a + np.uint8(5)
    assert frame_mse(a, b).tolist() == [25.0, 25.0]
    assert psnr(25.0) == pytest.approx(10 * np.log10(255**2 / 25))  # 34.15 dB
    # constant frames: no variance, so SSIM is its luminance term (2ab + C1) / (a^2 + b^2 + C1), C1 = (0.01 * 255)^2
    c1 = (0.01 * 255) ** 2
    np.testing.assert_allclose(frame_ssim(a, b), (2 * 100 * 105 + c1) / (100**2 + 105**2 + c1), rtol=1e-12)
    noise = np.random.default_rng(0).integers(0, 256, (1, 24, 20, 3), dtype=np.uint8)
    assert psnr(frame_mse(noise, noise)[0]) == np.inf and frame_ssim(noise, noise).tolist() == [1.0]
    assert frame_ssim(noise, 255 - noise)[0] < 0  # anti-correlated
    with pytest.raises(ValueError, match="two uint8 videos"):
        frame_ssim(a, b[:, :8])


def _imagining(policy, monkeypatch, ds, shift: int = 0) -> list:
    """`policy.act_batch` replaced by a world model that imagines the recording itself (each camera's frames after
    the request's, read back from its pixels, shifted by `shift`), on the canvas `Policy` would put 16x16 frames on:
    what forward dynamics must score as identical (or as that shift)."""
    from worldpolicy.processing.observations import canvas_bin

    seen: list = []
    canvas = list(canvas_bin(16, 16, policy.resolution_tier)[1])

    def act_batch(requests, progress=None):
        out = []
        for r in requests:
            seen.append(r)
            episode = r.seed
            t = int(r.observation["observation/image"][0, 0, 0]) // 5 - OFFSETS[episode]
            frames = ds.camera_frames(episode, FRONT, t, min(t + policy.chunk_size + 1, ds.episode_lengths[episode]))
            video = np.concatenate([frames, np.repeat(frames[-1:], policy.chunk_size + 1 - len(frames), axis=0)])
            out.append(SimpleNamespace(video=(video.astype(np.int16) + shift).clip(0, 255).astype(np.uint8),
                                       settings={"canvas_hw": canvas}))
        return out

    monkeypatch.setattr(policy, "act_batch", act_batch)
    return seen


def test_forward_dynamics_of_a_model_that_imagines_the_recording_scores_identical_frames(policy, tmp_path,
                                                                                         monkeypatch):
    from worldpolicy.processing.video import read_video

    ds, actions = _dataset(tmp_path / "ds")
    seen = _imagining(policy, monkeypatch, ds)
    out = tmp_path / "out"
    result = evaluate_open_loop(ds, policy, out, action_keys=["action"], mode="forward_dynamics")
    # starts tile each episode, its last frame left out (nothing after it): 0, 4, 8 of 10 (1 frame ahead), 0, 4 of 7
    assert [e["starts"] for e in result.episodes] == [[0, 4, 8], [0, 4]]
    assert result.errors.count.tolist() == [5, 4, 3, 3]  # chunks whose episode recorded each frame ahead
    # the request: the frame's camera, the recorded actions from it (past the end, its last row repeated)
    assert seen[2].mode == "forward_dynamics"
    np.testing.assert_array_equal(seen[2].actions, actions[0][[8, 9, 9, 9]])
    assert result.psnr == {FRONT: np.inf} and result.ssim[FRONT] == pytest.approx(1.0, abs=1e-12)
    written = json.loads((out / OPENLOOP_FILE).read_text())
    assert written["schema"] == "worldpolicy.openloop/v2" and written["mode"] == "forward_dynamics"
    # an infinite PSNR (identical frames) is written as null, with the MSE of 0 beside it
    assert written["psnr"] == {FRONT: None} and written["mse"] == {FRONT: 0.0}
    assert written["ssim"][FRONT] == pytest.approx(1.0, abs=1e-12)
    assert len(written["horizon"]) == policy.chunk_size  # frames ahead 1 .. chunk
    assert [h["frames_ahead"] for h in written["horizon"]] == [1, 2, 3, 4]
    assert written["untrained"] is None
    videos = written["plots"]["videos"]
    assert videos == ["forward_episode_000000.mp4", "forward_episode_000001.mp4"]
    clip, fps = read_video(out / videos[1])  # recorded | imagined | abs diff, each chunk's frames one after another
    assert clip.shape == (4 + 2, 16, 48, 3) and fps == 10  # chunks at 0 (4 ahead) and 4 (2: the episode's 7 frames)
    np.testing.assert_allclose(clip[:, :, :16].astype(float), frame_ramp(7, offset=OFFSETS[1])[[1, 2, 3, 4, 5, 6]],
                               atol=2)
    np.testing.assert_allclose(clip[:, :, 32:].astype(float), 0, atol=2)  # no difference (the codec's rounding)
    assert (out / SUMMARY_FIGURE).stat().st_size > 0
    assert result.videos is None  # each episode's video held encoded until written, not after


def test_the_world_models_modes_start_no_chunk_in_an_episode_of_one_frame(policy, tmp_path, monkeypatch):
    """Forward and inverse dynamics read the frame after a start: an episode of one frame has none, so no chunk is
    planned there, spread (`chunks`) or tiled (`every`), where the policy mode still predicts one from its frame."""
    ds, _ = _dataset(tmp_path / "ds", lengths=(1, 6))
    for mode in ("forward_dynamics", "inverse_dynamics"):
        assert check_open_loop(ds, policy.embodiment, chunks=4, action_keys=["action"], mode=mode).starts(4) == {
            1: [0, 1]}
        assert check_open_loop(ds, policy.embodiment, action_keys=["action"], mode=mode).starts(4) == {1: [0, 4]}
    assert check_open_loop(ds, policy.embodiment, chunks=4, action_keys=["action"]).starts(4) == {0: [0], 1: [0, 1, 2]}
    _imagining(policy, monkeypatch, ds)
    result = evaluate_open_loop(ds, policy, tmp_path / "out", chunks=4, action_keys=["action"],
                                mode="forward_dynamics")
    assert [e["episode"] for e in result.episodes] == [1] and result.errors.count.tolist() == [2, 2, 2, 2]
    assert result.psnr == {FRONT: np.inf}


def test_forward_dynamics_errors_equal_a_hand_computation(policy, tmp_path, monkeypatch):
    ds, _ = _dataset(tmp_path / "ds")
    _imagining(policy, monkeypatch, ds, shift=5)
    result = evaluate_open_loop(ds, policy, tmp_path / "out", action_keys=["action"], mode="forward_dynamics",
                                episodes=[0], plots=False)
    c1 = (0.01 * 255) ** 2
    assert result.psnr[FRONT] == pytest.approx(10 * np.log10(255**2 / 25))  # every pixel 5 off
    # frames ahead k of the chunk at f show 5 * (f + k): SSIM's luminance term of each against it + 5, averaged
    expected = [np.mean([(2 * v * (v + 5) + c1) / (v**2 + (v + 5) ** 2 + c1) for v in 5 * (np.array(starts) + k)])
                for k, starts in ((1, [0, 4, 8]), (2, [0, 4]), (3, [0, 4]), (4, [0, 4]))]
    np.testing.assert_allclose(result.horizon_ssim[FRONT], expected, rtol=1e-9)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [OPENLOOP_FILE]  # --no-plots: no video


def test_inverse_dynamics_compares_the_actions_recovered_from_each_chunks_frames(policy, tmp_path, monkeypatch):
    ds, actions = _dataset(tmp_path / "ds")
    rng = np.random.default_rng(1)
    seen, returned = [], []

    def act_batch(requests, progress=None):
        seen.extend(requests)
        rows = [rng.normal(size=(policy.chunk_size, 2)) for _ in requests]
        returned.extend(rows)
        return [SimpleNamespace(actions=r) for r in rows]

    monkeypatch.setattr(policy, "act_batch", act_batch)
    result = evaluate_open_loop(ds, policy, tmp_path / "out", action_keys=["action"], mode="inverse_dynamics")
    assert [e.starts for e in result.episodes] == [[0, 4, 8], [0, 4]]
    # each request: the clip of frames f .. f + chunk (past the end, the last repeated), as infer_actions reads one
    assert all(r.mode == "inverse_dynamics" for r in seen)
    np.testing.assert_array_equal(seen[2].observation["observation/image"], frame_ramp(10)[[8, 9, 9, 9, 9]])
    # the MAE is numpy's over the returned rows against the recorded ones that have a next frame
    compared = [(0, 0, 4), (0, 4, 4), (0, 8, 1), (1, 0, 4), (1, 4, 2)]
    diffs = np.concatenate([returned[k][:n] - actions[e][f:f + n] for k, (e, f, n) in enumerate(compared)])
    np.testing.assert_allclose(result.mae, np.abs(diffs).mean(axis=0))
    np.testing.assert_allclose(result.rmse, np.sqrt((diffs**2).mean(axis=0)))
    written = json.loads((tmp_path / "out" / OPENLOOP_FILE).read_text())
    assert written["mode"] == "inverse_dynamics" and written["steps_compared"] == 15
    assert result.summary().startswith("inverse dynamics: 5 chunks over 2 episodes (15 steps compared)")


def test_the_world_models_modes_run_the_tiny_checkpoint_from_the_command_line(policy, tmp_path, capsys, monkeypatch):
    """End to end with the tiny checkpoint's weights; a mode its training left out is said in the result."""
    import worldpolicy.policy as policy_module
    from worldpolicy.processing.video import read_video

    ds, _ = _dataset(tmp_path / "ds", lengths=(6,))
    monkeypatch.setattr(policy_module.Policy, "from_pretrained", classmethod(lambda cls, *a, **k: policy))
    why = "checkpoint x was trained with no forward_dynamics objective"
    monkeypatch.setattr(policy_module.Policy, "untrained_modes", property(lambda self: {"forward_dynamics": why}))
    out = tmp_path / "fd"
    argv = ["dataset", "eval", str(policy.source), str(ds.root), "--out", str(out), "--embodiment", "pusht",
            "--action-keys", "action", "--no-progress"]
    assert main([*argv, "--mode", "forward_dynamics"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("forward dynamics: 2 chunks over 1 episode (5 frames compared)")
    assert f"warning: {why}" in printed
    written = json.loads((out / OPENLOOP_FILE).read_text())
    assert written["untrained"] == why and len(written["horizon"]) == policy.chunk_size
    assert all(v is None or 0 < v < 100 for v in written["psnr"].values()) and -1 <= written["ssim"][FRONT] <= 1
    assert read_video(out / written["plots"]["videos"][0])[0].shape[0] == 5
    # the same folder evaluated again in inverse dynamics: the forward mode's video is removed
    assert main([*argv, "--mode", "inverse_dynamics", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["mode"] == "inverse_dynamics" and doc["untrained"] is None and doc["steps_compared"] == 5
    assert not list(out.glob("*.mp4"))


def test_a_bad_mode_is_refused_before_the_model_loads(policy, tmp_path, capsys, monkeypatch):
    import worldpolicy.policy as policy_module

    ds, _ = _dataset(tmp_path / "ds")

    def never(*args, **kwargs):
        raise AssertionError("the weights were loaded")

    monkeypatch.setattr(policy_module.Policy, "from_pretrained", classmethod(never))
    with pytest.raises(SystemExit) as exit_:
        main(["dataset", "eval", str(policy.source), str(ds.root), "--out", str(tmp_path / "eval"), "--mode", "world"])
    assert exit_.value.code == 2
    assert "argument --mode: invalid choice: 'world'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="mode='world'; accepted: policy, forward_dynamics, inverse_dynamics"):
        evaluate_open_loop(ds, str(policy.source), tmp_path / "eval", mode="world")
    assert not (tmp_path / "eval").exists()


def test_forward_dynamics_scores_each_camera_on_its_place_in_the_composed_frame(tmp_path, monkeypatch, tiny):
    """droid's three cameras composed (wrist on top, the exteriors below): a world model that imagines the recording
    but brightens the second exterior's place by 40 is scored identical on the other two and 40 off on that one."""
    import worldpolicy
    from worldpolicy.processing.observations import composite_regions, frames_canvas, frames_from_mapping, model_frames

    droid = worldpolicy.load_policy(tiny, embodiment="droid", chunk_size=4, resolution_tier=256, steps=1)
    ds, state, _ = _droid_dataset(tmp_path / "droid")
    emb = droid.embodiment
    placed = frames_canvas(540, 640, droid.resolution_tier, emb.snap_to_16)  # the DROID composite's canvas
    canvas, size = (placed.canvas_h, placed.canvas_w), (16 * placed.latent_h, 16 * placed.latent_w)
    keys = [f"observation/{c}" for c in DROID_CAMERAS]
    top, left, _, _ = composite_regions(keys, emb.camera_keys, emb.composite)[keys[2]]
    seen = []

    def act_batch(requests, progress=None):
        out = []
        for r in requests:
            seen.append(r)
            t = _frame_of(r)
            clip = {k: ds.camera_frames(0, f"observation.image.{k.split('/')[1]}", t, min(t + 5, 6)) for k in keys}
            video = model_frames(frames_from_mapping(clip, emb.camera_keys, emb.composite), droid.resolution_tier,
                                 canvas, size, emb.snap_to_16).astype(np.int16)
            video[:, round(top * size[0]):, round(left * size[1]):] += 40
            out.append(SimpleNamespace(video=video.astype(np.uint8), settings={"canvas_hw": list(canvas)}))
        return out

    monkeypatch.setattr(droid, "act_batch", act_batch)
    result = evaluate_open_loop(ds, droid, tmp_path / "out", mode="forward_dynamics", plots=False)
    np.testing.assert_allclose([r.state for r in seen], state[[0, 4]])  # the state at the frame, as the policy's
    wrist, exterior_1, exterior_2 = (f"observation.image.{c}" for c in DROID_CAMERAS)
    assert result.cameras == [wrist, exterior_1, exterior_2]
    assert result.psnr[wrist] == result.psnr[exterior_1] == np.inf
    assert result.psnr[exterior_2] == pytest.approx(10 * np.log10(255**2 / 40**2))


def test_a_comparison_that_fails_closes_its_progress_bar_at_once(tmp_path, monkeypatch):
    """The bar belongs to the iterator every mode reads its episodes from (`_predicted_episodes`): a comparison that
    raises while reading them (here a chunk that is no numbers) closes it as it fails, while the traceback is still
    held, not once the traceback is let go (after the command's error line, which the bar's last redraw then
    followed). It holds because the comparison's `for` alone holds the iterator: one kept in a local stays suspended
    in its bar until the traceback goes."""
    import worldpolicy.logcapture
    from worldpolicy.data.actions import recorded_actions
    from worldpolicy.data.label import label_cameras

    closed: list[bool] = []

    class Bar:
        def __init__(self, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            closed.append(True)

        def update(self, n):
            pass

    monkeypatch.setattr(worldpolicy.logcapture, "progress_bar", Bar)
    ds, actions = _dataset(tmp_path / "ds")
    embodiment = _scaled({"q01": [0.0, -6.0], "q99": [100.0, 2.0]})
    assert _compare(embodiment, ds, actions, monkeypatch, (0.0, 0.0)).steps == 12
    assert closed == [True]  # a comparison that finishes closes it once
    stand_in = SimpleNamespace(embodiment=embodiment, chunk_size=4,
                               act_batch=lambda requests, progress=None: [SimpleNamespace(actions="?")] * len(requests))
    data = OpenLoopData(ds, label_cameras(ds.video_keys, embodiment), [],
                        recorded_actions(ds, embodiment, ["action"], [], source="pusht"))
    with pytest.raises(ValueError, match="could not convert") as failed:  # the comparison's, not the iterator's
        compare_open_loop(stand_in, data, {0: [0, 4], 1: [0]}, seed=0, batch_size=2)
    assert failed.value.__traceback__ is not None and closed == [True, True]
