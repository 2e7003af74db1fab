"""`worldpolicy dataset show ROOT --rerun OUT.rrd` / `data.show.rerun_dataset`: a dataset's episodes as a Rerun
recording (cameras, plotted columns, task), read back with rerun's own reader."""

from __future__ import annotations

import numpy as np
import pytest
from dataset_factory import frame_ramp
from rerun_read import images, read_rrd, scalars, text

from worldpolicy.cli import main

pytest.importorskip("rerun", reason="rerun-sdk is not installed (the rerun extra)")


def test_each_chosen_episode_holds_its_camera_frames_columns_and_task(small_dataset, tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    ds, episodes = small_dataset
    # timestamps as a recorder may store them, off frame_index / fps by less than a quarter frame (what LeRobot
    # accepts): the recording's `timestamp` timeline is the column, as lerobot-dataset-viz logs it, not frame / fps
    data = ds.root / "data/chunk-000/file-000.parquet"
    table = pq.read_table(data)
    recorded = (np.asarray(table["frame_index"]) + 0.2 * (np.asarray(table["frame_index"]) % 2)) / ds.fps
    column = table.column_names.index("timestamp")
    pq.write_table(table.set_column(column, "timestamp", pa.array(recorded.astype(np.float32))), data)
    out = tmp_path / "ds.rrd"
    assert main(["dataset", "show", str(ds.root), "--rerun", str(out), "--episodes", "0,2", "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == f"{out}: episodes 0, 2"
    logged = read_rrd(out)
    names = {"action": ds.feature_names("action"), "state": ds.feature_names("observation.state"),
             "other": ds.feature_names(["next.done", "next.reward"])}
    for i in (0, 2):
        ep, folder = episodes[i], f"/episode_{i:06d}"
        assert {path for path in logged if path.startswith(folder)} == {
            f"{folder}/observation.images.front", f"{folder}/task",
            *(f"{folder}/{group}/{column}" for group, columns in names.items() for column in columns)}
        length = len(ep["frames"]["action"])
        camera = logged[f"{folder}/observation.images.front"]
        stamps = recorded[np.asarray(table["episode_index"]) == i].astype(np.float32)
        for series in (camera, logged[f"{folder}/action/{names['action'][0]}"]):  # LeRobot's timelines, values
            assert series.timelines == {("frame_index", "timestamp")}
            assert series.steps == list(range(length)) and series.times == pytest.approx(stamps, abs=1e-9)
        # frame t of the episode's clip at step t: frame_ramp's value, to within JPEG's rounding
        ramp = frame_ramp(length, offset=100 * i)[:, 0, 0, 0]
        assert [frame.mean() for frame in images(camera)] == pytest.approx(ramp, abs=2)
        for k, column in enumerate(names["action"]):
            assert scalars(logged[f"{folder}/action/{column}"]) == pytest.approx(ep["frames"]["action"][:, k])
        for k, column in enumerate(names["state"]):
            assert scalars(logged[f"{folder}/state/{column}"]) == pytest.approx(ep["frames"]["observation.state"][:, k])
        assert scalars(logged[f"{folder}/other/{names['other'][1]}"]) == list(ep["frames"]["next.reward"])
        assert text(logged[f"{folder}/task"]) == ep["task"]
    assert not any(path.startswith("/episode_000001") for path in logged)


def test_an_embodiments_columns_and_units_name_the_actions(tmp_path):
    from worldpolicy.data import write_episodes
    from worldpolicy.data.show import rerun_dataset
    from worldpolicy.embodiments import get_embodiment, unit_label
    from worldpolicy.viz.rerun import RerunTarget

    rng = np.random.default_rng(0)
    frames = {"observation.state.joint_positions": rng.normal(size=(6, 7)).astype(np.float32),
              "observation.state.gripper_position": rng.random((6, 1)).astype(np.float32),
              "action.joint_position": rng.normal(size=(6, 7)).astype(np.float32),
              "action.gripper_position": rng.random((6, 1)).astype(np.float32)}
    ds = write_episodes(tmp_path / "droid", [{"frames": frames, "task": "put the cube on the pad"}], fps=15)
    assert rerun_dataset(ds, RerunTarget(file=tmp_path / "d.rrd"), embodiment="droid") == [0]
    logged = read_rrd(tmp_path / "d.rrd")
    droid = get_embodiment("droid")
    actions = np.concatenate([frames["action.joint_position"], frames["action.gripper_position"]], axis=1)
    for k, (column, unit) in enumerate(zip(droid.columns, droid.units)):
        series = logged[f"/episode_000000/action/{column}"]
        assert series.static["SeriesLines:names"] == [unit_label(column, unit)]
        assert scalars(series) == pytest.approx(actions[:, k], abs=1e-6)
    assert logged["/episode_000000/action/joint_0"].static["SeriesLines:names"] == ["joint_0 [rad]"]


def test_bad_inputs_are_refused_naming_the_flag_before_anything_is_written(small_dataset, tmp_path, capsys):
    ds, _ = small_dataset
    out = tmp_path / "ds.rrd"
    for argv, said in (
            (["--episodes", "7"], "--episodes=[7]: [7] out of range; accepted: episode indexes in 0..2"),
            (["--embodiment", "nope"], "--embodiment"),
            (["--out", str(tmp_path / "page")], "--out and a Rerun flag given"),
            (["--rerun-spawn", "--no-progress", "--rerun-connect", "x"], "not allowed with argument")):
        argv = ["dataset", "show", str(ds.root), *([] if "--rerun-spawn" in argv else ["--rerun", str(out)]), *argv]
        try:
            code = main(argv)
        except SystemExit as exit:
            code = exit.code
        assert code == 2, argv
        assert said in capsys.readouterr().err, argv
    assert main(["dataset", "show", str(ds.root)]) == 2
    assert "neither --out nor a Rerun flag given" in capsys.readouterr().err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
