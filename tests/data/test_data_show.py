"""`worldpolicy dataset show` / `show_dataset`: a page to look at a dataset (summary, clips, plotted columns)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dataset_factory import frame_ramp

from worldpolicy.cli import main
from worldpolicy.data import write_episodes
from worldpolicy.fileio import SHOW_FILE, Terminated

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


def _put_nan(ds, key: str, row: int, column: int) -> None:
    """A NaN in `key`'s `column` at data row `row`, as a dataset written elsewhere may hold one (the writer refuses
    it; `dataset check` reports it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (path,) = sorted((ds.root / "data").glob("chunk-*/file-*.parquet"))
    table = pq.read_table(path)
    values = np.asarray(table.column(key).to_pylist())
    values[row, column] = np.nan
    array = pa.FixedSizeListArray.from_arrays(pa.array(values.ravel(), table.schema.field(key).type.value_type),
                                              values.shape[1])
    pq.write_table(table.set_column(table.column_names.index(key), key, array), path)


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
    # the dataset's summary is `dataset info`'s, key for key (its root made absolute); the task texts besides
    assert {k: doc[k] for k in ds.summary()} == {**ds.summary(), "root": str(ds.root.resolve())}
    assert doc["tasks"] == 2 and doc["task_texts"] == ["pick the cube", "push the cube | shove the block"]
    assert doc["success"] == {"succeeded": 2, "failed_episodes": [1]}
    assert {r["feature"] for r in doc["stats"]} == {"action", "observation.state", "next.done", "next.reward",
                                                    "observation.images.front"}  # no index columns
    page = shown.page.read_text()
    for text in ("id=episode-1", "id=episode-2", "push the cube | shove the block", "<b>succeeded</b><span>2 of 3<",
                 "id=stats",
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


def test_a_folder_of_the_users_keeps_its_own_folders_named_like_episodes(small_dataset, tmp_path):
    """Only an earlier show's episodes are removed, and only staging folders of its own: a folder of no known kind,
    accepted as --out, lost `episode_notes/` and `.episode_drafts/` (and an `episode_000002/` of its own)."""
    ds, _ = small_dataset
    out = tmp_path / "mine"
    for name in ("episode_notes", ".episode_drafts", "episode_000002"):
        (out / name).mkdir(parents=True)
        (out / name / "a.txt").write_text("mine")
    assert main(["dataset", "show", str(ds.root), "--out", str(out), "--episodes", "0", "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [".episode_drafts", "dataset_show.json", "episode_000000",
                                                     "episode_000002", "episode_notes", "index.html"]
    # a rerun into the show it made removes the episode folders it does not show now (episode_NNNNNN), no others
    assert main(["dataset", "show", str(ds.root), "--out", str(out), "--episodes", "1", "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [".episode_drafts", "dataset_show.json", "episode_000001",
                                                     "episode_notes", "index.html"]


def test_an_embodiment_reads_the_actions_and_state_in_its_columns(tmp_path, monkeypatch):
    from worldpolicy.data.show import show_dataset
    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.viz import plots as plots_module

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
    drawn = {}

    def figure(values, columns, units, fps, gripper, title):
        drawn[title.split(" · ")[1].split(":")[0]] = (columns, gripper)
        return real(values, columns, units, fps, gripper, title=title)

    real = plots_module.action_timeseries_figure
    monkeypatch.setattr(plots_module, "action_timeseries_figure", figure)
    shown = show_dataset(ds, tmp_path / "look", embodiment="droid")
    droid = get_embodiment("droid")
    plots = {p["group"]: p["shows"] for p in _shown(tmp_path / "look")["shown"][0]["plots"]}
    assert plots["action"] == f"action.joint_position, action.gripper_position as embodiment {droid.key}'s columns"
    assert plots["state"].endswith(f"as embodiment {droid.key}'s state row")
    # the state row in droid's columns, but no gripper band: its threshold is the command's, not a measured opening's
    assert drawn == {"action": (list(droid.columns), droid.gripper_column), "state": (list(droid.columns), None)}
    assert len(shown.episodes[0].videos) == 3
    with pytest.raises(ValueError, match=r"^embodiment='pusht': the dataset's actions do not map to embodiment "
                       r"'pusht' .*; to look at action.joint_position, action.gripper_position, choose an embodiment "
                       r"they map to, or none to plot them as recorded$"):
        show_dataset(ds, tmp_path / "other", embodiment="pusht")  # 8 columns do not map to 2
    assert not (tmp_path / "other").exists()
    # joint targets become bridge's end-effector steps from the state at frame 0: a NaN there is named as that
    _put_nan(ds, "observation.state.joint_positions", 0, 2)
    (episode,) = show_dataset(ds.root, tmp_path / "bridge", embodiment="bridge").episodes  # opened anew
    held = "'observation.state.joint_positions'"
    where = " holds NaN or inf in 1 frame (first: frame 0, column 'observation.state.joint_positions_2')"
    mapped = "action.joint_position, action.gripper_position as embodiment bridge's columns (joint_to_relative_pose from"
    assert set(episode.plots) == set() and episode.notes == [
        (f"action ({mapped} the state at frame 0)) not plotted: {held} (the state at frame 0, where the conversion "
        f"starts){where}"),
        (f"state (observation.state.joint_positions, observation.state.gripper_position as recorded) not plotted: "
        f"{held}{where}")]


def test_the_features_table_lists_the_names_as_info_json_gives_them(small_dataset, tmp_path):
    """LeRobot's nested names (`{"motors": [...]}`) are listed as such; the plots read them as the columns."""
    from worldpolicy.data.show import show_dataset

    ds, _ = small_dataset
    info_path = ds.root / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["features"]["action"]["names"] = {"motors": ["x", "y", "grip"]}
    info_path.write_text(json.dumps(info))
    shown = show_dataset(ds.root, tmp_path / "look", episodes=[0])
    assert _shown(tmp_path / "look")["features"]["action"]["names"] == {"motors": ["x", "y", "grip"]}
    page = shown.page.read_text()
    assert "<td class=k>motors: x, y, grip</td>" in page and "<td class=k>observation.state_0" in page  # stats rows
    assert "action_0" not in page


@pytest.mark.parametrize("argv, said", [
    (["--episodes", "3"], "--episodes=[3]: [3] out of range; accepted: episode indexes in 0..2"),
    (["--episodes", "1;2"], "--episodes '1;2': expected episode indices"),
    (["--embodiment", "no_such_robot"], "error: --embodiment='no_such_robot' is not registered; known: "),  # once
    # every embodiment `worldpolicy embodiments` lists, the shipped model's own too (with how it is given)
    (["--embodiment", "nosuch"], "umi, panda_reach (the shipped model's own: its spec file, '"),
    (["--embodiment", "nobot.json"], "error: --embodiment: embodiment file 'nobot.json' does not exist"),
    (["--embodiment", "droid"],  # named as typed; the embodiment it names, by its key
     "--embodiment='droid': the dataset's actions do not map to embodiment 'droid/joint_pos'"),
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
    assert "--out: " in err and "a LeRobot dataset" in err and "choose another --out outside it" in err
    assert not (tmp_path / "look").exists() and not (ds.root / "look").exists()


@pytest.mark.parametrize("stop, status, how", [(KeyboardInterrupt, 130, "interrupted"),
                                               (Terminated, 143, "terminated (SIGTERM)")])
def test_ctrl_c_keeps_the_finished_episodes_on_the_page_and_no_half_one(small_dataset, tmp_path, monkeypatch,
                                                                        capsys, stop, status, how):
    """... and the page says how the show stopped: a SIGTERM's was said to be "interrupted"; while the show goes on
    (or after a kill) it says no more than it knows."""
    from worldpolicy.viz import plots

    ds, _ = small_dataset
    real = plots.save_figure
    calls, pages = [], []

    def stop_in_the_second_episode(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 4:  # episode 0 drew 3 plots; episode 1's clip is written, its first plot is not
            pages.append((out / "index.html").read_text())
            raise stop()
        return real(*args, **kwargs)

    monkeypatch.setattr(plots, "save_figure", stop_in_the_second_episode)
    out = tmp_path / "look"
    assert main(["dataset", "show", str(ds.root), "--out", str(out), "--no-progress"]) == status
    assert f"{how}: 1 of 3 episodes shown" in capsys.readouterr().err
    assert "Incomplete: 1 of 3 written (stopped, or still being written)." in pages[0]  # the show still going
    doc = _shown(out)
    assert [e["episode"] for e in doc["shown"]] == [0] and not doc["complete"] and doc["stopped"] == how
    assert f"Incomplete: 1 of 3 written ({how})." in (out / "index.html").read_text()
    # episode 1's staging folder, which held its clip, is gone: no half episode, hidden or not
    assert sorted(p.name for p in out.iterdir()) == ["dataset_show.json", "episode_000000", "index.html"]


@pytest.mark.parametrize("key, group", [("action", "action"), ("observation.state", "state")])
def test_a_feature_holding_nan_is_named_not_plotted(small_dataset, tmp_path, key, group):
    """A dataset written elsewhere may hold NaN (`dataset check` reports it): the episode names the feature that holds
    it (not "actions" for a state), where, and the rest of it is shown."""
    from worldpolicy.data.show import show_dataset

    ds, _ = small_dataset
    _put_nan(ds, key, 3, 1)  # episode 0, frame 3
    shown = show_dataset(ds.root, tmp_path / "look", episodes=[0])
    (episode,) = shown.episodes
    assert set(episode.plots) == {"action", "state", "other"} - {group} and len(episode.videos) == 1
    said = f"{group} ({key} as recorded) not plotted: {key!r} holds NaN or inf in 1 frame (first: frame 3, column "
    said += f"'{key}_1')"
    assert episode.notes == [said]
    assert f"column &#x27;{key}_1&#x27;" in shown.page.read_text()


def test_a_feature_too_wide_for_a_plot_per_column_is_one_heat_map(tmp_path):
    """A served DROID run's flattened `action_chunk` (256 columns) was a subplot per column: a 2000x9670 px image,
    480 MB and a minute for a 3-frame episode. It is one heat map now; the other features keep their line plots."""
    from matplotlib.image import imread

    from worldpolicy.data.show import show_dataset

    rng = np.random.default_rng(0)
    frames = {"action": rng.normal(size=(3, 8)).astype(np.float32),
              "action_chunk": rng.normal(size=(3, 256)).astype(np.float32),
              "serving.total_ms": rng.uniform(size=(3, 1)).astype(np.float32)}
    ds = write_episodes(tmp_path / "served", [{"frames": frames, "task": "t"}], fps=15 / 32)
    shown = show_dataset(ds, tmp_path / "look")
    (episode,) = shown.episodes
    assert set(episode.plots) == {"action", "other", "action_chunk"}
    assert episode.plotted["other"] == "serving.total_ms as recorded"
    assert episode.plotted["action_chunk"] == "action_chunk as recorded (256 columns: a heat map)"
    height, width, _ = imread(episode.plots["action_chunk"]).shape
    assert (height, width) == (500, 1000)
    assert imread(episode.plots["action"]).shape[0] < 1000  # 8 columns: a subplot each, as before
    assert "action_chunk as recorded (256 columns: a heat map)" in shown.page.read_text()


def test_a_rerun_settles_what_a_killed_show_left_and_leaves_a_live_ones_staging(small_dataset, tmp_path):
    """Beside an episode's folder, what a kill left is settled as every writer settles it
    (`fileio.sweep_scratch_folders`), not removed by name: a staging a live process holds stays."""
    from worldpolicy.fileio import STAGED_KIND, ScratchFolder

    ds, _ = small_dataset
    out = tmp_path / "look"
    assert main(["dataset", "show", str(ds.root), "--out", str(out), "--episodes", "0", "--no-progress"]) == 0
    live, killed = ScratchFolder(out / "episode_000001", STAGED_KIND), ScratchFolder(out / "episode_000002",
                                                                                     STAGED_KIND)
    live.make()
    killed.make()
    killed.release()
    assert main(["dataset", "show", str(ds.root), "--out", str(out), "--episodes", "0", "--no-progress"]) == 0
    assert live.path.is_dir() and not killed.path.exists()
    live.release()


def test_features_as_recorded_are_plotted_in_the_units_the_datasets_card_gives_them(tmp_path, monkeypatch):
    """Without --embodiment a sim recording's joint positions were drawn with no unit on their axes, though its card
    names them in rad (`card.recorded_units`); a feature the dataset names no unit of keeps none."""
    from dataset_factory import write_sim_joint_recording

    from worldpolicy.data.show import show_dataset
    from worldpolicy.viz import plots as plots_module

    write_sim_joint_recording(tmp_path / "rec")
    drawn = {}
    real = plots_module.action_timeseries_figure

    def figure(values, columns, units, fps, gripper, title):
        drawn[title.split(" · ")[1].split(":")[0]] = list(units)
        return real(values, columns, units, fps, gripper, title=title)

    monkeypatch.setattr(plots_module, "action_timeseries_figure", figure)
    show_dataset(tmp_path / "rec", tmp_path / "look")
    assert drawn == {"action": ["rad"] * 7 + ["1"], "other": [""]}


def test_the_stats_table_says_each_columns_unit_as_the_dataset_records_it(tmp_path):
    """The stats table had no units: a mean of 0.02 said nothing until one knew it was radians. Each row's unit is
    the one the dataset records (`card.recorded_units`): rad for a sim recording's joints, "-" for its unitless
    gripper, none for a feature it names no unit of, on the page and in show.json."""
    import re

    from dataset_factory import write_sim_joint_recording

    from worldpolicy.data.show import show_dataset

    write_sim_joint_recording(tmp_path / "rec")
    shown = show_dataset(tmp_path / "rec", tmp_path / "look")
    rows = _shown(tmp_path / "look")["stats"]
    assert [(r["feature"], r["unit"]) for r in rows] == [
        *[("action.joint_position", "rad")] * 7, ("action.gripper_position", "-"), ("next.reward", "")]
    page = shown.page.read_text()
    section = page[page.index("<section id=stats>"):]
    head = re.findall(r"<th>([^<]*)</th>", section[:section.index("</tr>")])
    assert head[:3] == ["feature", "column", "unit"]
    assert (f"<td class=k>action.joint_position</td><td class=k>{rows[0]['column']}</td><td class=k>rad</td>"
            in section)


def test_labelled_actions_are_shown_as_labelled_not_as_recorded(tmp_path):
    """A `dataset label` dataset's actions were titled "as recorded", though a checkpoint inferred them; its
    provenance names them labelled, by which checkpoint (as a run's heading names it)."""
    from dataset_factory import make_episode

    from worldpolicy.data.label import LABEL_SOURCE
    from worldpolicy.data.show import show_dataset

    episode = make_episode(6, seed=0)
    episode["frames"]["action"] = episode["frames"]["action"][:, :2]
    provenance = {"source": LABEL_SOURCE, "action_key": "action",
                  "checkpoint": "/runs/pusht_id/checkpoints/step-0005000"}
    episode = {"frames": {"action": episode["frames"]["action"]}, "videos": episode["videos"], "task": "push the T"}
    features = {"action": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},  # pusht's columns, as labelled
                "observation.images.front": {"dtype": "video", "shape": [16, 16, 3]}}
    labelled = write_episodes(tmp_path / "labelled", [episode], fps=10, features=features, provenance=provenance)
    recorded = write_episodes(tmp_path / "recorded", [episode], fps=10, features=features,
                              provenance={**provenance, "source": "other"})
    said = "labelled by inverse dynamics (pusht_id/step-0005000)"

    def shows(ds, out, embodiment=None):
        show_dataset(ds, tmp_path / out, embodiment=embodiment)
        return {p["group"]: p["shows"] for p in _shown(tmp_path / out)["shown"][0]["plots"]}["action"]

    assert shows(labelled, "a") == f"action {said}"
    assert shows(labelled, "b", "pusht") == f"action as embodiment pusht's columns, {said}"
    assert shows(recorded, "c") == "action as recorded"
