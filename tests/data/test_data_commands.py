"""`worldpolicy dataset info|check|from-sim`."""

from __future__ import annotations

import argparse
import json
import shlex

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from worldpolicy.data import commands


class _PlainParser(argparse.ArgumentParser):
    """argparse's own parser, where a flag given twice keeps the last (which the from-sim tests lean on to vary one
    flag of a shared argv), taking the `absent_flags` the command line's parsers take (`cli._Parser`, whose refusals
    `cli.main` tests)."""

    def __init__(self, *args, absent_flags=None, **kwargs):
        super().__init__(*args, **kwargs)


def run(argv: list[str]) -> int:
    parser = _PlainParser()
    commands.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_registered_with_the_cli():
    from worldpolicy.cli import COMMAND_MODULES

    assert "worldpolicy.data.commands" in COMMAND_MODULES


def test_the_key_flags_say_they_default_to_the_keys_the_checkpoints_run_read():
    """`dataset frame --actions` and `dataset eval` read the keys the checkpoint's training run read by default
    (`data.actions.run_keys`), but their --help still said training's default keys, and `observation.state`."""
    from worldpolicy.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["dataset"]
    actions = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices
    helps = {(name, flag): " ".join(a.help.split()) for name in ("frame", "eval") for a in actions[name]._actions
             for flag in a.option_strings if flag in ("--action-keys", "--state-keys", "--checkpoint")}
    for flag in (("frame", "--action-keys"), ("eval", "--action-keys"), ("eval", "--state-keys")):
        assert helps[flag].startswith(helps[flag].split("(default: ")[0] + "(default: the keys the checkpoint's "
                                      "training run read, as its trainer_state.json records them"), flag
    assert "only its embodiment.json and trainer_state.json (the embodiment and keys its run trained on)" in helps[
        "frame", "--checkpoint"]
    assert "conditions on the state: the keys the checkpoint's training run read" in helps["frame", "--state-keys"]


def test_an_error_names_the_action_run(tmp_path, capsys):
    """`worldpolicy dataset from-sim: error: ...`: the action too, as the usage line names it."""
    from worldpolicy.cli import main

    assert main(["dataset", "info", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("worldpolicy dataset info: error: ")


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


def test_info_shows_the_column_names_a_training_config_must_repeat(tmp_path, capsys):
    """A new robot's `columns` must be the dataset's action names, which `info` did not show (only in info.json)."""
    import numpy as np

    from worldpolicy.data import write_episodes

    names = ["shoulder", "elbow", "gripper"]
    features = {"action": {"dtype": "float32", "shape": [3], "names": names},
                "observation.images.front": {"dtype": "video", "shape": [16, 16, 3]}}
    episode = {"frames": {"action": np.zeros((4, 3), np.float32)}, "task": "wave",
               "videos": {"observation.images.front": np.zeros((4, 16, 16, 3), np.uint8)}}
    ds = write_episodes(tmp_path / "ds", [episode], fps=10, features=features, video_codec="libx264rgb")
    assert run(["dataset", "info", str(ds.root)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["features"]["action"] == {"dtype": "float32", "shape": [3], "names": names}
    assert summary["features"]["observation.images.front"] == {"dtype": "video", "shape": [16, 16, 3]}


def test_info_shows_what_made_the_dataset_but_not_every_seed(tmp_path, capsys):
    """A from-sim dataset says which task and expert versions recorded it; `info` shows that (the seed of each of
    thousands of episodes stays in info.json). A dataset made elsewhere shows no provenance."""
    import numpy as np

    from worldpolicy.data import write_episodes

    made = {"source": "worldpolicy dataset from-sim", "task": "reach", "task_version": 1, "expert": "scripted",
            "expert_version": 2, "seeds": [0, 2]}
    episode = {"frames": {"action": np.zeros((4, 3), np.float32)}, "task": "wave"}
    ds = write_episodes(tmp_path / "ds", [episode], fps=10, provenance=made)
    assert run(["dataset", "info", str(ds.root)]) == 0
    assert json.loads(capsys.readouterr().out)["provenance"] == {k: v for k, v in made.items() if k != "seeds"}
    plain = write_episodes(tmp_path / "plain", [episode], fps=10)
    assert run(["dataset", "info", str(plain.root)]) == 0
    assert "provenance" not in json.loads(capsys.readouterr().out)


def test_info_on_a_dataset_of_no_episodes(small_dataset, capsys):
    """Its episode lengths are none (a numpy error about a zero-size reduction, exit 2, before)."""
    ds, _ = small_dataset
    episodes = ds.root / "meta/episodes/chunk-000/file-000.parquet"
    pq.write_table(pq.read_table(episodes).slice(0, 0), episodes)
    info = json.loads((ds.root / "meta/info.json").read_text())
    (ds.root / "meta/info.json").write_text(json.dumps({**info, "total_episodes": 0, "total_frames": 0}))
    assert run(["dataset", "info", str(ds.root)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["episodes"], summary["frames"], summary["episode_length"]) == (0, 0, None)


def test_check_shows_its_progress_over_the_episodes(small_dataset, capsys):
    """`check` decodes every video, which takes long on a real dataset: a bar on stderr counts the episodes."""
    ds, _ = small_dataset
    assert run(["dataset", "check", str(ds.root)]) == 0
    out = capsys.readouterr()
    assert "checking episodes" in out.err and "3/3" in out.err and out.out.startswith("ok: 3 episodes")
    assert run(["dataset", "check", "--no-progress", str(ds.root)]) == 0
    assert capsys.readouterr().err == ""


def test_check_reads_the_episodes_in_order(small_dataset, monkeypatch):
    """`check` decodes each episode on from the previous one in its file (`reading_in_order`): the file is opened
    once, not sought again before each episode."""
    from worldpolicy.data.video import SegmentReader

    ds, _ = small_dataset
    starts, real = [], SegmentReader._start
    monkeypatch.setattr(SegmentReader, "_start", lambda self, first, *rest: starts.append(first) or real(self, first,
                                                                                                        *rest))
    assert run(["dataset", "check", "--no-progress", str(ds.root)]) == 0
    assert starts == [0]


@pytest.mark.parametrize("error", [RuntimeError("decoder crashed"), KeyboardInterrupt()])
def test_check_closes_its_bar_whatever_stops_it(small_dataset, monkeypatch, error):
    """An error it does not report (a crashed decoder, Ctrl-C) propagates, but the bar is closed first: left open,
    it stayed half-drawn on the terminal under the traceback."""
    import tqdm.auto

    from worldpolicy.data import LeRobotDataset

    bars = []

    class RecordingBar(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    def episode(self, index, videos=True):
        if index == 1:
            raise error
        return real_episode(self, index, videos)

    real_episode = LeRobotDataset.episode
    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    monkeypatch.setattr(LeRobotDataset, "episode", episode)
    ds, _ = small_dataset
    with pytest.raises(type(error)):
        run(["dataset", "check", str(ds.root)])
    assert len(bars) == 1 and bars[0].n == 1 and bars[0].disable  # tqdm marks a closed bar disabled


@pytest.mark.parametrize("name, corrupt, message", [
    ("no root", lambda root: root.rename(root.with_name("gone")), "is not a directory"),
    ("a file", lambda root: root.with_name("file").write_text("x"), "is not a directory"),
    ("stats width", lambda root: (root / "meta/stats.json").write_text('{"action": {"mean": [1, 2]}}'),
     "meta/stats.json: field 'action.mean': holds 2 int64 values; action needs 3 numbers"),
    ("unlisted file", lambda root: pq.write_table(pq.read_table(root / "data/chunk-000/file-000.parquet"),
                                                  root / "data/chunk-000/file-001.parquet"),
     "data/chunk-000/file-001.parquet: no episode in meta/episodes places its frames in this file"),
])
def test_check_exits_1_naming_what_is_wrong(small_dataset, capsys, name, corrupt, message):
    ds, _ = small_dataset
    corrupt(ds.root)
    root = ds.root.with_name("file") if name == "a file" else ds.root
    assert run(["dataset", "check", str(root)]) == 1
    assert message in capsys.readouterr().err


def test_from_sim_names_the_flags_before_recording(tmp_path, monkeypatch):
    pytest.importorskip("mujoco", reason="the sim extra (MuJoCo) is not installed")
    pytest.importorskip("worldpolicy.sim.policies", reason="worldpolicy.sim has no scripted expert here")
    from worldpolicy.data import from_sim

    def record(self, seed: int):
        raise AssertionError("an episode was recorded before the settings were checked")

    monkeypatch.setattr(from_sim._Recorder, "record", record)
    argv = ["dataset", "from-sim", str(tmp_path / "sim"), "--task", "reach", "--image-size", "24x24", "--max-steps",
            "3", "--cameras", "observation/wrist_image_left", "--no-progress"]
    for extra, match in (
        (["--episodes", "0"], r"^--episodes=0 must be an int >= 1$"),
        (["--seed", "-1"], r"^--seed=-1 must be an int >= 0$"),  # gymnasium's traceback mid-recording, before
        (["--task", "stack"], r"^--task: unknown task 'stack'; accepted: reach, push, pick_place$"),
        (["--task-option", "height=3"], r"^--task-option: task 'reach': unknown option\(s\) \['height'\]"),
        (["--workers", "0"], r"^--workers=0 must be an int >= 1$"),
        (["--video-codec", "h265"], r"^--video-codec='h265'; accepted: libx264, libx264rgb, libsvtav1$"),
        (["--image-size", "0x64"],
         r"^--image-size '0x64'; accepted: HxW, the height and width in pixels, e.g. 180x320$"),
        # the env's check
        (["--image-size", "8x8"], r"^--image-size: expected \(height, width\), two ints of 16 to 4096 pixels"),
        (["--max-steps", "0"], r"^--max-steps: expected an int >= 1"),
        (["--image-size", "47x64", "--video-codec", "libx264"],
         (r"^--image-size='47x64': --video-codec='libx264' needs even frame sizes; choose even ones or "
          r"--video-codec libx264rgb$")),
    ):
        with pytest.raises(ValueError, match=match):
            run([*argv, *extra])
    assert list(tmp_path.iterdir()) == []


def test_from_sim_names_a_long_run_of_failures_in_one_short_line():
    """The summary's failed seeds and episodes are named as every list of them is (`errors.brief_list`): a run of
    consecutive ones as `A..B`, not the first ten and a count (a twin helper of its own said `1, 2, ..., 10 and 30
    more`)."""
    from types import SimpleNamespace

    import numpy as np

    success = np.array([i % 2 == 0 for i in range(60)])
    dataset = SimpleNamespace(root="/data/reach", num_episodes=60, num_frames=600, fps=15.0,
                              video_keys=["observation.image.wrist_image_left"], episode_success=success)
    result = SimpleNamespace(dataset=dataset, seeds=[0, *range(41, 100)], failed_seeds=list(range(1, 41)), wall_s=9.0)
    said = commands._from_sim_said(result, "reach").splitlines()
    assert said[0] == "recorded 60 episodes of reach, 600 frames at 15 fps, in 9.0 s: /data/reach"
    assert said[1] == "  seeds 0..99; left out, failed: [1..40] (--keep-failures keeps them, flagged)"
    assert said[3] == ("  success: 30 of 60 episodes (failed: episodes [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, ..., 59] "
                       "(30 in all))")


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
    said = capsys.readouterr().out.splitlines()  # a few lines and what comes next, not info's ~130 lines of JSON
    assert said[0].startswith("recorded 1 episode of reach, 3 frames at 15 fps, in ") and said[0].endswith(
        f" s: {root}")
    assert said[1:4] == ["  seed 0", "  cameras: observation.image.wrist_image_left",
                         "  success: 0 of 1 episodes (failed: episodes [0])"]
    assert said[4:] == ["next:", f"  worldpolicy dataset show {root} --out {root}_show   # a page: clips, columns",
                        f'  worldpolicy train CONFIG.toml   # with [data] dataset = "{root}" (docs/training.md)',
                        "(--json prints the whole summary)"]
    with pytest.raises(FileExistsError, match="holds a `dataset from-sim` recording; pass --resume to continue it up "
                                              "to --episodes=1, --overwrite to replace it"):
        run(argv)
    with pytest.raises(ValueError, match="--image-size '24'; accepted: HxW"):
        run([*argv[:7], "--image-size", "24", "--overwrite"])
    with pytest.raises(ValueError, match=r"--task-option='upper_share'; expected NAME=VALUE"):
        run([*argv, "--overwrite", "--task-option", "upper_share"])
    with pytest.raises(ValueError, match=r"task 'reach': upper_share='high'; expected a number in \[0, 1\]"):
        run([*argv, "--overwrite", "--task-option", "upper_share=high"])
    assert run([*argv, "--overwrite", "--task-option", "upper_share=1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)  # the whole summary, as `dataset info` prints it, with the seeds
    assert out["episodes"] == 1 and out["frames"] == 3 and out["seeds"] == [0] and out["fps"] == 15
    assert out["features"]["observation.image.wrist_image_left"] == {"dtype": "video", "shape": [24, 24, 3]}


def test_from_sim_shows_progress_and_says_what_ctrl_c_kept(tmp_path, capsys, monkeypatch):
    pytest.importorskip("mujoco", reason="the sim extra (MuJoCo) is not installed")
    pytest.importorskip("worldpolicy.sim.policies", reason="worldpolicy.sim has no scripted expert here")
    from worldpolicy.data import from_sim
    from worldpolicy.fileio import Terminated

    root = tmp_path / "sim"
    argv = ["dataset", "from-sim", str(root), "--task", "reach", "--episodes", "3", "--image-size", "24x24",
            "--max-steps", "3", "--cameras", "observation/wrist_image_left", "--keep-failures"]
    assert run([*argv, "--episodes", "2"]) == 0
    captured = capsys.readouterr()
    assert "recording reach" in captured.err and "2/2" in captured.err and "solved" in captured.err
    assert captured.out.startswith("recorded 2 episodes of reach")

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
    again = shlex.join(["worldpolicy", "dataset", "from-sim", str(tmp_path / "new"), "--task", "reach", "--episodes",
                        "3", "--image-size", "24x24", "--cameras", "observation/wrist_image_left", "--max-steps", "3",
                        "--keep-failures", "--no-progress", "--resume"])  # the arguments as given, in --help's order
    assert capsys.readouterr().err.strip() == (f"worldpolicy dataset from-sim: interrupted: 1 of 3 episodes kept in "
                                               f"{tmp_path / 'new'} (a complete dataset); rerun with --resume to "
                                               f"record the other 2; to go on: {again}")

    def terminated(self, seed: int):  # SIGTERM as the command line raises it (`fileio.terminating_as_interrupt`)
        if seed == 1:
            raise Terminated
        return real(self, seed)

    monkeypatch.setattr(from_sim._Recorder, "record", terminated)
    assert run([*argv[:2], str(tmp_path / "term"), *argv[3:], "--no-progress"]) == 143
    # its line says the stop as the command's others do (`fileio.how_stopped`), not as Ctrl-C
    assert "worldpolicy dataset from-sim: terminated (SIGTERM): 1 of 3 episodes kept in" in capsys.readouterr().err


def test_from_sim_cameras_given_with_one_flag_each_are_all_recorded(tmp_path, monkeypatch):
    """`--cameras A --cameras B` recorded B alone without a word (argparse kept the last flag's list), so a dataset
    meant for the shipped two-camera model lacked its exterior camera."""
    from worldpolicy.data import from_sim

    def parsed(root, task, episodes, **settings):
        raise LookupError(settings["cameras"])  # what the flags said, before anything is recorded

    monkeypatch.setattr(from_sim, "sim_to_dataset", parsed)
    ext, wrist = "observation/exterior_image_1_left", "observation/wrist_image_left"
    with pytest.raises(LookupError) as info:
        run(["dataset", "from-sim", str(tmp_path / "sim"), "--cameras", ext, "--cameras", wrist])
    assert info.value.args[0] == [ext, wrist]


def test_an_episode_named_twice_through_a_negative_index_says_which_indices_name_it():
    """`--episodes 0,-2` of a 2-episode dataset was refused as '[0] given more than once', though 0 was typed once:
    the message names the indices typed that are one episode."""
    from worldpolicy.data.checks import check_once

    with pytest.raises(ValueError, match=r"^--episodes=\[0, 1, 2, -1, -3\]: \[0, 2\] given more than once \(a negative "
                       r"index counts from the end: 0 and -3 are episode 0; 2 and -1 are episode 2\); name each"):
        check_once("--episodes", [0, 1, 2, -1, -3], 3)
    with pytest.raises(ValueError, match=r"^--episodes=\[1, 1\]: \[1\] given more than once; name each episode once$"):
        check_once("--episodes", [1, 1], 3)


def test_select_says_what_it_wrote_in_a_plain_line_as_sim_and_dream_do(small_dataset, tmp_path, capsys):
    """`dataset select`, `merge` and `label` said what they wrote after a timestamp, level and logger
    (`2026-12-06 06:00:37,879 INFO worldpolicy.data.edit: wrote ...`), unlike every other command's lines."""
    from worldpolicy.cli import main

    out = tmp_path / "selected"
    assert main(["dataset", "select", str(small_dataset[0].root), "--episodes", "0", "--out", str(out),
                 "--no-progress"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if line.startswith("wrote ")] == [line for line in err if "wrote" in line], err
    assert any(line.startswith("wrote ") and line.endswith(f"into {out}") for line in err), err
    assert any(line.startswith("wrote 1 episode (") for line in err), err  # not "1 episodes", read out as written
