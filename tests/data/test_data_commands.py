"""`worldpolicy dataset info|check|from-sim`."""

from __future__ import annotations

import argparse
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from worldpolicy.data import commands


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    commands.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_registered_with_the_cli():
    from worldpolicy.cli import COMMAND_MODULES

    assert "worldpolicy.data.commands" in COMMAND_MODULES


def test_info_and_check(small_dataset, capsys):
    ds, _ = small_dataset
    assert run(["dataset", "info", str(ds.root)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 3 and summary["frames"] == 28 and summary["tasks"] == 2
    assert summary["features"]["action"] == {"dtype": "float32", "shape": [3]}
    assert summary["episode_length"] == {"min": 7, "mean": 28 / 3, "max": 12}
    assert run(["dataset", "check", str(ds.root)]) == 0
    assert "ok: 3 episodes, 28 frames" in capsys.readouterr().out

    data_file = next((ds.root / "data").rglob("*.parquet"))
    table = pq.read_table(data_file)
    actions = table.column("action").to_pylist()
    actions[9][0] = float("nan")  # row 9 of the first file: frame 9 of episode 0
    pq.write_table(table.set_column(table.column_names.index("action"), "action",
                                    pa.array(actions, table.schema.field("action").type)), data_file)
    assert run(["dataset", "check", str(ds.root)]) == 1
    assert "episode 0: 'action' holds NaN or inf in 1 frames (first: frame 9)" in capsys.readouterr().err

    (ds.root / "videos/observation.images.front/chunk-000/file-000.mp4").unlink()
    assert run(["dataset", "check", str(ds.root)]) == 1
    assert "videos/observation.images.front/chunk-000/file-000.mp4: video file is missing" in capsys.readouterr().err


def test_from_sim(tmp_path, capsys):
    pytest.importorskip("mujoco", reason="the sim extra (MuJoCo) is not installed")
    pytest.importorskip("worldpolicy.sim.policies", reason="worldpolicy.sim has no scripted expert here")
    root = tmp_path / "sim"
    argv = [
        "dataset",
        "from-sim",
        str(root),
        "--task",
        "reach",
        "--episodes",
        "1",
        "--image-size",
        "24x24",
        "--max-steps",
        "3",
        "--cameras",
        "observation/wrist_image_left",
        "--keep-failures",
    ]
    assert run(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["episodes"] == 1 and out["frames"] == 3 and out["seeds"] == [0] and out["fps"] == 15
    assert out["features"]["observation.image.wrist_image_left"] == {"dtype": "video", "shape": [24, 24, 3]}
    with pytest.raises(FileExistsError, match="holds a dataset; pass --overwrite to replace it"):
        run(argv)
    with pytest.raises(ValueError, match="--image-size='24'"):
        run([*argv[:7], "--image-size", "24", "--overwrite"])
    with pytest.raises(ValueError, match=r"--task-option='upper_share'; expected NAME=VALUE"):
        run([*argv, "--overwrite", "--task-option", "upper_share"])
    with pytest.raises(ValueError, match=r"task 'reach': upper_share='high'; expected a number in \[0, 1\]"):
        run([*argv, "--overwrite", "--task-option", "upper_share=high"])
    assert run([*argv, "--overwrite", "--task-option", "upper_share=1"]) == 0


def test_from_sim_shows_progress_and_says_what_ctrl_c_kept(tmp_path, capsys, monkeypatch):
    pytest.importorskip("mujoco", reason="the sim extra (MuJoCo) is not installed")
    pytest.importorskip("worldpolicy.sim.policies", reason="worldpolicy.sim has no scripted expert here")
    from worldpolicy.data import from_sim

    root = tmp_path / "sim"
    argv = ["dataset", "from-sim", str(root), "--task", "reach", "--episodes", "3", "--image-size", "24x24",
            "--max-steps", "3", "--cameras", "observation/wrist_image_left", "--keep-failures"]
    assert run([*argv, "--episodes", "2"]) == 0
    captured = capsys.readouterr()
    assert "recording reach" in captured.err and "2/2" in captured.err and "solved" in captured.err
    assert json.loads(captured.out)["episodes"] == 2

    real = from_sim._Recorder.record

    def record(self, seed: int):
        if seed == 1:
            raise KeyboardInterrupt
        return real(self, seed)

    monkeypatch.setattr(from_sim._Recorder, "record", record)
    assert run([*argv, "--overwrite", "--no-progress"]) == 130
    captured = capsys.readouterr()
    assert captured.out == "" and "recording reach" not in captured.err
    assert captured.err.strip().endswith(f"1 of 3 episodes; they were discarded and the dataset already in {root} is "
                                         "unchanged (a dataset is replaced only by a complete recording); rerun with "
                                         "--overwrite to replace it with all 3")
    assert run([*argv[:2], str(tmp_path / "new"), *argv[3:], "--no-progress"]) == 130
    assert capsys.readouterr().err.strip() == (f"worldpolicy dataset from-sim: interrupted: 1 of 3 episodes kept in "
                                               f"{tmp_path / 'new'} (a complete dataset); rerun with --overwrite to "
                                               "record all 3")
