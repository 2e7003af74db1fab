"""`worldpolicy dataset show` / `show_dataset`: a page to look at a dataset (summary, clips, plotted columns)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dataset_factory import frame_ramp

from worldpolicy.cli import main
from worldpolicy.data import write_episodes
from worldpolicy.fileio import SHOW_FILE

DROID_CAMERAS = ("exterior_image_1_left", "exterior_image_2_left", "wrist_image_left")


def _shown(out: Path) -> dict:
    return json.loads((out / SHOW_FILE).read_text())


def _add_episode_column(ds, name: str, values: list) -> None:
    """A field a recorder added to the episodes table (LeRobot keeps columns it does not know)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (path,) = sorted((ds.root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    table = pq.read_table(path)
    pq.write_table(table.append_column(name, pa.array(values)), path)


def test_the_page_holds_each_chosen_episodes_clip_plots_task_and_fields(small_dataset, tmp_path):
    from worldpolicy.data import LeRobotDataset
    from worldpolicy.data.show import show_dataset
    from worldpolicy.processing.video import read_video

    ds, episodes = small_dataset
    _add_episode_column(ds, "success", [True, False, True])
    ds = LeRobotDataset.open(ds.root)
    assert ds.episode_fields() == [{"success": True}, {"success": False}, {"success": True}]
    out = tmp_path / "look"
    shown = show_dataset(ds, out, episodes=[2, -2])
    assert shown.chosen == [1, 2] and shown.complete and shown.page == out / "index.html"
    for ep in shown.episodes:
        clip, fps = read_video(ep.videos["observation.images.front"])
        length = len(episodes[ep.episode]["frames"]["action"])
        assert clip.shape == (length, 16, 16, 3) and fps == 10  # the episode cut out of the shared file, all of it
        # frame t of episode i is the ramp value 5 * (t + 100 i): the episode's own frames, in order
        np.testing.assert_allclose(clip[:, 0, 0, 0], 5 * (np.arange(length) + 100 * ep.episode) % 256, atol=3)
        assert set(ep.plots) == {"action", "state", "other"} and all(p.stat().st_size > 0 for p in ep.plots.values())
    doc = _shown(out)
    assert [e["episode"] for e in doc["shown"]] == [1, 2] and doc["complete"] and not doc["chosen_by_default"]
    assert doc["shown"][0]["fields"] == {"success": False}
    assert doc["shown"][0]["tasks"] == ["push the cube | shove the block"]
    assert [p["shows"] for p in doc["shown"][0]["plots"]] == [
        "action as recorded", "observation.state as recorded", "next.done, next.reward as recorded"]
    assert doc["features"]["action"]["names"] == ["action_0", "action_1", "action_2"]
    assert {r["feature"] for r in doc["stats"]} == {"action", "observation.state", "next.done", "next.reward",
                                                    "observation.images.front"}  # no index columns
    page = shown.page.read_text()
    for text in ("id=episode-1", "id=episode-2", "push the cube | shove the block", "success", "id=stats",
                 "observation.images.front", "testbot"):
        assert text in page
    assert "id=episode-0" not in page


def test_by_default_the_first_episodes_are_shown_and_a_rerun_keeps_only_the_chosen(small_dataset, tmp_path,
                                                                                   monkeypatch, capsys):
    from worldpolicy.data import show as show_module

    ds, _ = small_dataset
    out = tmp_path / "look"
    monkeypatch.setattr(show_module, "DEFAULT_EPISODES", 2)
    assert main(["dataset", "show", str(ds.root), "--out", str(out), "--no-progress"]) == 0
    assert "2 of 3 episodes shown (0, 1)" in capsys.readouterr().out
    doc = _shown(out)
    assert doc["chosen"] == [0, 1] and doc["chosen_by_default"]
    assert "the first 2 (by default" in (out / "index.html").read_text()
    assert main(["dataset", "show", str(ds.root), "--out", str(out), "--episodes", "2", "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["dataset_show.json", "episode_000002", "index.html"]
    from worldpolicy.viz.report import write_report

    assert "id=episode-2" in write_report(out).read_text()  # `worldpolicy report` redraws it from the folder


def test_an_embodiment_reads_the_actions_and_state_in_its_columns(tmp_path):
    from worldpolicy.data.show import show_dataset
    from worldpolicy.embodiments import get_embodiment

    rng = np.random.default_rng(0)
    length = 6
    episode = {"frames": {"observation.state.joint_positions": rng.normal(size=(length, 7)).astype(np.float32),
                          "observation.state.gripper_position": rng.random((length, 1)).astype(np.float32),
                          "action.joint_position": rng.normal(size=(length, 7)).astype(np.float32),
                          "action.gripper_position": rng.random((length, 1)).astype(np.float32)},
               "videos": {f"observation.image.{c}": frame_ramp(length, offset=10 * j)
                          for j, c in enumerate(DROID_CAMERAS)},
               "task": "put the cube on the pad"}
    ds = write_episodes(tmp_path / "droid", [episode], fps=15, video_codec="libx264rgb")
    shown = show_dataset(ds, tmp_path / "look", embodiment="droid")
    droid = get_embodiment("droid")
    plots = {p["group"]: p["shows"] for p in _shown(tmp_path / "look")["shown"][0]["plots"]}
    assert plots["action"] == f"action.joint_position, action.gripper_position as embodiment {droid.key}'s columns"
    assert plots["state"].endswith(f"as embodiment {droid.key}'s state row")
    assert len(shown.episodes[0].videos) == 3
    with pytest.raises(ValueError, match=r"^embodiment='pusht': action_keys: .*pusht"):
        show_dataset(ds, tmp_path / "other", embodiment="pusht")  # 8 columns do not map to 2
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("argv, said", [
    (["--episodes", "3"], "--episodes=[3]: [3] out of range; accepted: episode indexes in 0..2"),
    (["--episodes", "1;2"], "--episodes '1;2': expected episode indices"),
    (["--embodiment", "no_such_robot"], "--embodiment='no_such_robot': "),
])
def test_bad_flags_are_named_before_anything_is_written(small_dataset, tmp_path, capsys, argv, said):
    ds, _ = small_dataset
    assert main(["dataset", "show", str(ds.root), "--out", str(tmp_path / "look"), *argv]) == 2
    assert said in capsys.readouterr().err
    assert not (tmp_path / "look").exists()


def test_a_missing_root_a_folder_not_a_dataset_and_an_out_inside_the_dataset_are_refused(small_dataset, tmp_path,
                                                                                        capsys):
    ds, _ = small_dataset
    assert main(["dataset", "show", str(tmp_path / "nowhere"), "--out", str(tmp_path / "look")]) == 2
    assert "dataset root" in capsys.readouterr().err
    (tmp_path / "plain").mkdir()
    assert main(["dataset", "show", str(tmp_path / "plain"), "--out", str(tmp_path / "look")]) == 2
    assert "meta/info.json" in capsys.readouterr().err
    assert main(["dataset", "show", str(ds.root), "--out", str(ds.root / "look")]) == 2
    err = capsys.readouterr().err
    assert "--out: " in err and "a LeRobot dataset" in err
    assert not (tmp_path / "look").exists() and not (ds.root / "look").exists()


def test_ctrl_c_keeps_the_finished_episodes_on_the_page_and_no_half_one(small_dataset, tmp_path, monkeypatch,
                                                                        capsys):
    from worldpolicy.viz import plots

    ds, _ = small_dataset
    real = plots.save_figure
    calls = []

    def stop_in_the_second_episode(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 4:  # episode 0 drew 3 plots; episode 1's clip is written, its first plot is not
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(plots, "save_figure", stop_in_the_second_episode)
    out = tmp_path / "look"
    assert main(["dataset", "show", str(ds.root), "--out", str(out), "--no-progress"]) == 130
    assert "interrupted: 1 of 3 episodes shown" in capsys.readouterr().err
    doc = _shown(out)
    assert [e["episode"] for e in doc["shown"]] == [0] and not doc["complete"]
    assert "Incomplete: 1 of 3 written" in (out / "index.html").read_text()
    # episode 1's staging folder, which held its clip, is gone: no half episode, hidden or not
    assert sorted(p.name for p in out.iterdir()) == ["dataset_show.json", "episode_000000", "index.html"]


def test_a_feature_holding_nan_is_named_not_plotted(small_dataset, tmp_path):
    """A dataset written elsewhere may hold NaN (`dataset check` reports it): the episode says where, and the rest of
    it is shown."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from worldpolicy.data.show import show_dataset

    ds, _ = small_dataset
    (path,) = sorted((ds.root / "data").glob("chunk-*/file-*.parquet"))
    table = pq.read_table(path)
    actions = np.asarray(table.column("action").to_pylist(), dtype=np.float32)
    actions[3, 1] = np.nan  # episode 0, frame 3
    column = pa.FixedSizeListArray.from_arrays(pa.array(actions.ravel()), 3)
    pq.write_table(table.set_column(table.column_names.index("action"), "action", column), path)
    shown = show_dataset(ds.root, tmp_path / "look", episodes=[0])
    (episode,) = shown.episodes
    assert set(episode.plots) == {"state", "other"} and len(episode.videos) == 1
    (note,) = episode.notes
    assert note.startswith("action (action as recorded) not plotted: ") and "action_1" in note
    assert "action_1" in shown.page.read_text()
