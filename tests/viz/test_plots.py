import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from worldpolicy.embodiments import MODEL_SPACE_UNIT, get_embodiment
from worldpolicy.processing.trajectory import TrajectoryChunks
from worldpolicy.viz import plots


def _png(path) -> np.ndarray:
    img = np.asarray(Image.open(path).convert("RGB"))
    return img


def _non_white_fraction(img: np.ndarray) -> float:
    return float(np.mean(np.any(img < 235, axis=-1)))


def _subplots_by_column(fig) -> dict:
    """An actions figure's subplots by the column their y label names (a multi-arm one's are not in column order)."""
    return {ax.yaxis.label.get_text().replace("\n", "").split(" [")[0]: ax for ax in fig.axes if ax.get_visible()}


def test_timeseries_labels_units_and_gripper_spans(joint_chunk):
    e = get_embodiment("droid")
    fig = plots.action_timeseries_figure(joint_chunk, e.columns, e.units, e.fps, e.gripper_column)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 8
    labels = [ax.get_ylabel() for ax in visible]
    assert labels == [f"joint_{i} [rad]" for i in range(7)] + ["gripper"]  # unitless: no "[1]"
    assert {ax.get_xlabel() for ax in visible[-2:]} == {"time [s]"}
    # x axis in seconds: last sample at 31/15 s
    xdata = visible[0].lines[0].get_xdata()
    assert xdata[-1] == pytest.approx(31 / 15)
    # one closed interval (steps 13..31) shaded on every subplot
    for ax in visible:
        assert len(ax.patches) == 1
        x0 = ax.patches[0].get_x()
        assert x0 == pytest.approx(12.5 / 15)
    # the gripper line has its own colour
    assert visible[-1].lines[0].get_color() != visible[0].lines[0].get_color()


def test_the_closed_threshold_line_is_named_where_no_closed_span_names_it(joint_chunk):
    """A gripper that never closes (the shipped reach model's) showed a dotted red line at 0.5 that nothing named."""
    e = get_embodiment("droid")
    never = joint_chunk.copy()
    never[:, 7] = 0.0
    for chunk, named in ((never, True), (joint_chunk, False)):  # joint_chunk closes: its span's entry names 0.5
        series = plots.action_timeseries_figure(chunk, e.columns, e.units, e.fps, e.gripper_column).axes[7]
        joints = plots.joints_figure(chunk, e.columns, e.units, e.fps, gripper_column="gripper").axes[2]
        for ax in (series, joints):
            labels = ax.get_legend_handles_labels()[1]
            assert ("closed at ≥ 0.5" in labels) is named and ("gripper closed (≥ 0.5)" in labels) is not named


def test_timeseries_png_is_written_atomically_and_not_blank(tmp_path, joint_chunk):
    e = get_embodiment("droid")
    out = plots.plot_action_timeseries(joint_chunk, e.columns, e.units, e.fps, "gripper", tmp_path / "a" / "ts.png")
    assert out.is_file()
    img = _png(out)
    assert img.shape[0] > 300 and img.shape[1] > 500
    assert _non_white_fraction(img) > 0.05
    assert [p.name for p in out.parent.iterdir()] == ["ts.png"]  # no temp files left behind


def test_ee_path_matches_integrated_geometry(pose_chunk):
    e = get_embodiment("droid/relative_pose")
    poses = plots.ee_poses(pose_chunk, e.columns)
    assert poses.shape == (33, 4, 4)
    # forward 1 cm per step while turning: the path is an arc of total length 32 cm, not a straight 32 cm line
    p = poses[:, :3, 3]
    assert np.sum(np.linalg.norm(np.diff(p, axis=0), axis=1)) == pytest.approx(0.32)
    assert np.linalg.norm(p[-1] - p[0]) < 0.30
    assert p[-1, 1] > 0.05  # yaw to +y
    fig = plots.ee_path_figure(pose_chunk, e.columns, gripper_column="grasp")
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_zlabel()) == ("EE x [cm]", "EE y [cm]", "EE z [cm]")  # 32 cm
    colours = [ln.get_color() for ln in ax.lines]
    # an RGB frame triple at every sampled pose (12 or 13 of them) plus the path line
    assert colours.count("r") == colours.count("g") == colours.count("b") >= 12
    # the x axis of the final frame is rotated by 32 * 0.05 rad about z
    final_x = poses[-1, :3, 0]
    assert np.arctan2(final_x[1], final_x[0]) == pytest.approx(1.6)
    # no start pose given (the heading says so): the legend did call the start "start (anchor)"
    labels = ax.get_legend_handles_labels()[1]
    assert "start" in labels and "start (anchor)" not in labels
    anchored = plots.ee_path_figure(pose_chunk, e.columns, anchor=np.eye(4), gripper_column="grasp")
    assert "start (anchor)" in anchored.axes[0].get_legend_handles_labels()[1]


def test_ee_path_anchor_moves_the_path(tmp_path, pose_chunk):
    e = get_embodiment("bridge")
    anchor = np.eye(4)
    anchor[:3, 3] = [0.4, -0.1, 0.3]
    poses = plots.ee_poses(pose_chunk, e.columns, anchor=anchor)
    assert np.allclose(poses[0], anchor)
    out = plots.plot_ee_path(pose_chunk, e.columns, tmp_path / "p.png", anchor=anchor)
    assert _non_white_fraction(_png(out)) > 0.03


def test_joints_plot_has_positions_velocities_gripper(joint_chunk):
    e = get_embodiment("droid")
    fig = plots.joints_figure(joint_chunk, e.columns, e.units, e.fps, gripper_column="gripper")
    assert [ax.get_ylabel() for ax in fig.axes] == ["joint position [rad]", "joint velocity [rad/s]", "gripper"]
    assert len(fig.axes[0].lines) == 7
    vel = fig.axes[1].lines[6].get_ydata()
    expected = np.gradient(joint_chunk[:, 6], 1 / 15)
    assert np.allclose(vel, expected)


def test_plot_prediction_picks_layout_plots(tmp_path, joint_chunk, pose_chunk, actions_json):
    joints = plots.plot_prediction(actions_json("droid", joint_chunk), tmp_path / "j")
    assert [p.name for p in joints] == ["actions.png", "joints.png"]
    pose = plots.plot_prediction(actions_json("bridge", pose_chunk[:16]), tmp_path / "b")
    assert [p.name for p in pose] == ["actions.png", "ee_path.png"]
    generic = actions_json("bridge", pose_chunk[:16])
    generic.update(embodiment="my_robot", columns=[f"c{i}" for i in range(10)])
    assert [p.name for p in plots.plot_prediction(generic, tmp_path / "g")] == ["actions.png"]
    assert all(p.is_file() for p in joints + pose)


def test_prediction_figures_are_plot_predictions_figures_unwritten(tmp_path, joint_chunk, actions_json, monkeypatch):
    """A notebook shows a Prediction's plots as Figures (the viz API wrote them to files only): the same figures,
    by the names plot_prediction writes them under, and nothing written."""
    from matplotlib.figure import Figure

    monkeypatch.chdir(tmp_path)
    doc = actions_json("droid", joint_chunk)
    figures = plots.prediction_figures(doc)
    assert list(figures) == ["actions", "joints"] and all(isinstance(f, Figure) for f in figures.values())
    assert list(tmp_path.iterdir()) == []
    written = _captured_figures(monkeypatch)
    plots.plot_prediction(doc, tmp_path / "out")
    assert [f.get_suptitle() for f in figures.values()] == [f.get_suptitle() for f in written.values()]
    assert [name.removesuffix(".png") for name in written] == list(figures)
    from worldpolicy.viz import prediction_figures

    assert prediction_figures is plots.prediction_figures


@pytest.mark.parametrize(
    "change, match",
    [
        ({"schema": "other/v9"}, "schema"),
        ({"columns": ["a"]}, "columns has 1 names"),
        ({"fps": 0}, "fps=0"),
        ({"actions": [[float("nan")] * 8]}, "NaN"),
        ({"columns": list(range(8))}, r"columns=\[0, 1, .*expected a list of strings"),
        ({"columns": None}, "columns=None: expected a list of strings"),
        ({"units": "rad"}, "units='rad': expected a list of strings"),
    ],
)
def test_plot_prediction_rejects_bad_input(tmp_path, joint_chunk, actions_json, change, match):
    bad = actions_json("droid", joint_chunk)
    bad.update(change)
    with pytest.raises(ValueError, match=match):
        plots.plot_prediction(bad, tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("key, files", [
    ("agibot", ["actions.png", "ee_path_ego.png", "ee_path_left.png", "ee_path_right.png"]),
    ("robomind_franka_dual", ["actions.png", "ee_path_left.png", "ee_path_right.png"]),
])
def test_multi_arm_layouts_get_one_path_per_arm(tmp_path, actions_json, key, files):
    e = get_embodiment(key)
    chunk = np.zeros((8, e.action_dim))
    for prefix in ("ego_", "left_", "right_"):
        if prefix + "r0" in e.columns:  # identity rotation (rot6d = first two columns of I)
            chunk[:, list(e.columns).index(prefix + "r0")] = chunk[:, list(e.columns).index(prefix + "r4")] = 1.0
            chunk[:, list(e.columns).index(prefix + "tx")] = 0.01
    doc = actions_json(key, chunk)
    assert set(doc["units"]) == {MODEL_SPACE_UNIT}  # the registry's head: no published stats
    # as registered with stats: physical units
    doc["units"] = ["m" if c.split("_")[-1] in ("tx", "ty", "tz") else "1" for c in doc["columns"]]
    written = plots.plot_prediction(doc, tmp_path / "physical")
    assert [p.name for p in written] == files and all(_non_white_fraction(_png(p)) > 0.01 for p in written)


@pytest.mark.parametrize("key", ["umi", "agibot"])
def test_model_space_actions_draw_no_path(tmp_path, actions_json, key, caplog):
    """Normalised deltas integrated as metres drew a path of about a metre per step that no arm would take."""
    e = get_embodiment(key)
    chunk = np.zeros((8, e.action_dim))
    chunk[:, list(e.columns).index(next(c for c in e.columns if c.endswith("tx")))] = 0.5
    with caplog.at_level(logging.INFO, logger="worldpolicy.viz.plots"):
        written = plots.plot_prediction(actions_json(key, chunk), tmp_path)
    assert [p.name for p in written] == ["actions.png"]
    assert "end-effector path not drawn" in caplog.text and "model space" in caplog.text


def test_names_with_dollar_signs_are_drawn_literally_and_numpy_rates_accepted(tmp_path, actions_json, joint_chunk):
    doc = actions_json("droid", joint_chunk)
    doc.update(embodiment="my_robot", columns=[f"cost_$x{i}" for i in range(7)] + ["gripper"],
               units=["$\\theta$"] * 7 + ["1"])
    assert [p.name for p in plots.plot_prediction(doc, tmp_path)] == ["actions.png"]
    assert plots.plot_action_timeseries(joint_chunk, doc["columns"], doc["units"], np.float32(10),
                                        path=tmp_path / "np.png").is_file()
    with pytest.raises(ValueError, match="fps=True"):
        plots.plot_action_timeseries(joint_chunk, doc["columns"], doc["units"], True, path=tmp_path / "b.png")


def test_ee_path_needs_pose_columns(joint_chunk):
    with pytest.raises(ValueError, match="tx,ty,tz"):
        plots.ee_path_figure(joint_chunk, get_embodiment("droid").columns)


def test_ee_path_draws_a_files_translation_units_as_lengths(tmp_path, pose_chunk, actions_json):
    """A file in mm was drawn as metres: the same motion 1000x longer ("travel 3200 cm") on axes labelled [m]."""
    e = get_embodiment("bridge")
    metres = plots.plot_prediction(actions_json("bridge", pose_chunk), tmp_path / "m")[1]
    for unit, scale in (("mm", 1000.0), ("cm", 100.0)):
        doc = actions_json("bridge", pose_chunk * np.r_[[scale] * 3, [1.0] * 7])
        doc["units"] = [unit] * 3 + list(e.units[3:])
        drawn = plots.plot_prediction(doc, tmp_path / unit)[1]
        assert drawn.name == "ee_path.png" and np.array_equal(_png(drawn), _png(metres)), unit
    mm = ["mm"] * 3 + list(e.units[3:])
    fig = plots.ee_path_figure(pose_chunk * np.r_[[1000.0] * 3, [1.0] * 7], e.columns, units=mm)
    assert fig.axes[0].get_xlabel() == "EE x [cm]" and "travel 32.0 cm" in fig.get_suptitle()


@pytest.mark.parametrize("metres_per_step, unit, travel", [(40.0, "m", "travel 1280.0 m"), (0.01, "cm", "travel 32.0 cm"),
                                                           (0.0001, "mm", "travel 3.2 mm")])
def test_ee_path_is_drawn_in_a_unit_for_its_size(pose_chunk, metres_per_step, unit, travel):
    """The travel was always in cm ("27787.4 cm" from random weights) on axes always in metres (a 3 mm path ticked in
    0.0025 m steps): axes and travel now share mm, cm or m, whichever suits the path."""
    e = get_embodiment("bridge")
    chunk = pose_chunk.copy()
    chunk[:, 0] = metres_per_step
    fig = plots.ee_path_figure(chunk, e.columns, gripper_column="grasp")
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_zlabel()) == (f"EE x [{unit}]", f"EE y [{unit}]", f"EE z [{unit}]")
    assert f"32 steps, {travel};" in fig.get_suptitle()
    drawn = np.stack(ax.lines[0].get_data_3d(), axis=1)  # the path line, in the axes' unit
    metres = plots.ee_poses(chunk, e.columns)[:, :3, 3]
    np.testing.assert_allclose(drawn, metres / plots.LENGTH_UNITS[unit])
    assert 1 <= abs(np.diff(ax.get_xlim())[0]) <= 1000  # ticks a person reads: not 0.0025 m, not 55000 cm


def test_a_one_step_chunk_is_drawn_readably(joint_chunk, pose_chunk):
    """One step got matplotlib's ±0.05 s axis of meaningless ticks, a dot 3 px wide, and in joints.png nothing at
    all (a line through one point draws nothing) over a velocity of 0."""
    e = get_embodiment("droid")
    for fig in (plots.action_timeseries_figure(joint_chunk[:1], e.columns, e.units, e.fps, e.gripper_column),
                plots.joints_figure(joint_chunk[:1], e.columns, e.units, e.fps, e.gripper_column)):
        shown = [ax for ax in fig.axes if ax.get_visible()]
        for ax in shown:
            assert ax.get_xlim() == pytest.approx((-1 / 15, 1 / 15)) and list(ax.get_xticks()) == [0.0]
        points = [line for ax in shown for line in ax.lines if len(line.get_xdata()) == 1]
        assert len(points) == 8 and {line.get_marker() for line in points} == {"o"}
    velocity = fig.axes[1]
    assert len(velocity.lines) == 0 and velocity.texts[0].get_text() == "one step: no velocity"
    ee = get_embodiment("droid/relative_pose")
    fig = plots.action_timeseries_figure(pose_chunk[:2], ee.columns, ee.units, ee.fps, "grasp")
    assert fig.axes[0].get_xlim()[1] > 1 / 15  # two steps keep matplotlib's axis


def test_ee_path_takes_a_unit_that_is_not_a_length_as_metres(tmp_path, pose_chunk, actions_json, caplog):
    """A spec without units gets "1" for every column: refusing it lost every figure (and index.html) of a run."""
    in_metres = actions_json("bridge", pose_chunk)
    in_metres["embodiment"] = "my_arm"  # the title names the embodiment: the same name, the same pixels
    metres = plots.plot_prediction(in_metres, tmp_path / "m")
    doc = actions_json("bridge", pose_chunk)
    doc.update(embodiment="my_arm", units=["1"] * 10)
    with caplog.at_level(logging.WARNING, logger="worldpolicy.viz.plots"):
        drawn = plots.plot_prediction(doc, tmp_path / "1")
    assert [p.name for p in drawn] == ["actions.png", "ee_path.png"]
    assert np.array_equal(_png(drawn[1]), _png(metres[1]))
    assert "'tx' in '1', 'ty' in '1', 'tz' in '1', not a length unit (m, cm, mm)" in caplog.text
    caplog.clear()
    e = get_embodiment("agibot")
    chunk = np.zeros((4, e.action_dim))
    chunk[:, [i for i, c in enumerate(e.columns) if c.endswith(("r0", "r4"))]] = 1.0  # identity rotations
    arms = actions_json("agibot", chunk)
    arms["units"] = ["m" if c.split("_")[-1] in ("tx", "tz") else "1" for c in e.columns]  # left_ty in '1'
    with caplog.at_level(logging.WARNING, logger="worldpolicy.viz.plots"):
        assert "ee_path_left.png" in [p.name for p in plots.plot_prediction(arms, tmp_path / "arms")]
    assert "'left_ty' in '1'" in caplog.text and "'ty'" not in caplog.text
    units = ["in", *get_embodiment("bridge").units[1:]]
    assert np.allclose(plots.ee_poses(pose_chunk, doc["columns"], units=units), plots.ee_poses(pose_chunk, doc["columns"]))


def test_a_checkpoints_own_embodiment_keeps_its_gripper_and_layout_in_the_plots(tmp_path, joint_chunk):
    """A checkpoint's embodiment is not registered, so its actions.json (columns j0..j6, grip) was plotted as a
    generic layout without a gripper: no joints plot, no red gripper line, no closed spans."""
    from worldpolicy.results import Prediction

    columns = [f"j{i}" for i in range(7)] + ["grip"]
    prediction = Prediction(mode="policy", embodiment="my_own_arm", columns=columns, units=["rad"] * 7 + ["1"],
                            actions=joint_chunk, actions_normalized=joint_chunk, fps=15.0, layout="joint_position",
                            gripper_column="grip")
    doc = prediction.to_json()
    assert (doc["layout"], doc["gripper_column"]) == ("joint_position", "grip")
    assert [p.name for p in plots.plot_prediction(doc, tmp_path)] == ["actions.png", "joints.png"]
    assert plots.resolve_layout(doc, columns) == ("joint_position", "grip")
    fig = plots.action_timeseries_figure(joint_chunk, columns, doc["units"], 15.0, "grip")
    assert len(fig.axes[0].patches) == 1  # the closed span, shaded
    # a file without them (older, or hand-written) is read as before: from the registry or the column names
    older = {k: v for k, v in doc.items() if k not in ("layout", "gripper_column")}
    assert plots.resolve_layout(older, columns) == ("generic", None)


def _captured_figures(monkeypatch) -> dict:
    """plot_prediction's figures by file name, kept as matplotlib objects instead of written."""
    figures = {}

    def keep(fig, path):
        figures[Path(path).name] = fig
        return Path(path)

    monkeypatch.setattr(plots, "save_figure", keep)
    return figures


@pytest.mark.parametrize("key", ["agibot", "hand_pose", "droid"])
def test_the_title_sits_above_every_axes_of_a_tall_figure(key):
    """The suptitle sat at 98 % of the height: 0.9 in down a 29-row figure, inside the first row of subplots."""
    e = get_embodiment(key)
    chunk = np.random.default_rng(0).normal(size=(16, e.action_dim))
    fig = plots.action_timeseries_figure(chunk, e.columns, e.units, e.fps, title=f"policy · {key}: actions")
    fig.canvas.draw()
    title = fig.get_suptitle()
    assert title.startswith(f"policy · {key}: actions\n16 steps × {e.action_dim} dims")
    title_bottom = fig._suptitle.get_window_extent().y0
    assert all(title_bottom > ax.get_tightbbox().y1 for ax in fig.axes if ax.get_visible())
    width, height = fig.canvas.get_width_height()
    assert height < 2400 and width <= 2000  # 57 dims: 4 columns of subplots, not 29 rows of 2


def test_a_dream_is_named_a_policy_acting_in_a_world_model_not_forward_dynamics():
    """A dream's actions.json is the world model's forward dynamics over the policy's actions: its figures and page
    were headed "forward_dynamics", as if a user had given the actions."""
    dream = {"mode": "forward_dynamics", "embodiment": "panda_reach", "settings": {"command": "dream"}}
    assert plots.run_mode(dream) == "dream: policy acting in a world model (forward_dynamics)"
    assert plots.run_title(dream).startswith("dream: policy acting in a world model (forward_dynamics) · panda_reach")
    assert plots.run_mode({**dream, "settings": {"command": "predict"}}) == "forward_dynamics"


def test_a_checkpoint_folder_that_says_it_is_one_is_not_labelled_ckpt_again():
    """A checkpoint folder named `ckpt` was headed "ckpt ckpt"; a name that does not say it keeps its label."""
    def title(checkpoint):
        return plots.run_title({"mode": "policy", "embodiment": "bridge", "settings": {"checkpoint": checkpoint}})

    assert title("/runs/x/ckpt") == "policy · bridge · ckpt"
    assert title("/runs/my_Checkpoint") == "policy · bridge · my_Checkpoint"
    assert title("/runs/pick_lora/checkpoints/step-0000800") == "policy · bridge · ckpt pick_lora/step-0000800"
    assert title("shipped") == "policy · bridge · ckpt shipped"


def test_a_long_run_name_is_wrapped_inside_a_narrow_figure(pose_chunk):
    """A run's name with a 60-character prompt ran off both sides of ee_path.png (6.4 in) and of a 4-column chunk's
    actions.png: the mode's first letters and the figure's subject were cut."""
    name = plots.run_title({"mode": "forward_dynamics", "embodiment": "droid/joint_pos",
                            "settings": {"prompt": "pick up the red marker from the table and put it in the blue mug"}})
    e = get_embodiment("bridge")
    figures = [
        plots.ee_path_figure(pose_chunk, e.columns, gripper_column="grasp", title=f"{name}: left end-effector path"),
        plots.action_timeseries_figure(pose_chunk[:, :4], e.columns[:4], e.units[:4], e.fps, title=f"{name}: actions"),
    ]
    for fig in figures:
        fig.canvas.draw()
        extent = fig._suptitle.get_window_extent()
        assert 0 <= extent.x0 and extent.x1 <= fig.canvas.get_width_height()[0]
        title = fig.get_suptitle()
        assert title.count("\n") >= 2 and " ".join(title.split()).startswith(name)  # wrapped between words, all kept
        assert extent.y0 > max(ax.get_tightbbox().y1 for ax in fig.axes if ax.get_visible())  # and above the axes


def test_a_long_heading_breaks_between_the_runs_parts_its_prompt_kept_on_one_line(pose_chunk):
    """Broken between words alone, ee_path.png's heading split its quoted prompt over two lines (the figure's subject
    at the end of the second): it breaks after the run's ` · ` separators first."""
    prompt = "pick up the red cube from the left side of the table and put it in the bowl"
    name = plots.run_title({"mode": "policy", "embodiment": "bridge", "settings": {
        "checkpoint": "/runs/bridge_finetune_long_name/checkpoints/step-0012000", "prompt": prompt}})
    e = get_embodiment("bridge")
    fig = plots.ee_path_figure(pose_chunk, e.columns, gripper_column="grasp", title=f"{name}: end-effector path")
    lines = fig.get_suptitle().split("\n")
    assert lines[0] == "policy · bridge · ckpt bridge_finetune_long_name/step-0012000 ·"
    assert lines[1] == f'"{prompt[:plots.MAX_TITLE_PROMPT - 1].rstrip()}…": end-effector path'


def test_a_y_label_longer_than_its_subplot_is_wrapped_not_run_into_the_next():
    """hand_pose's `left_finger_2 [normalized]` was taller than its 1.2-inch subplot and ran into the label below."""
    e = get_embodiment("hand_pose")
    fig = plots.action_timeseries_figure(np.zeros((2, e.action_dim)), e.columns, e.units, e.fps)
    fig.canvas.draw()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert all(ax.yaxis.label.get_window_extent().height <= ax.get_window_extent().height for ax in axes)
    labels = {ax.get_ylabel() for ax in axes}
    assert "left_finger_2\n[normalized]" in labels and "ego_tx [normalized]" in labels  # a short one stays on one line


def test_long_one_word_column_names_stay_beside_their_own_subplot_and_inside_the_figure(joint_chunk):
    """A column name has no spaces to break at: `observation.state.left_arm_shoulder_pan_joint_position` stayed one
    line, taller than its subplot, over its neighbours' labels; the joints' legend ran off the figure's right edge."""
    long = ["observation.state.left_arm_shoulder_pan_joint_position", "x",
            "base_velocity_forward_backward_meters_per_second_commanded", "right_arm.end_effector.gripper_open_fraction"]
    units = ["rad", "m", "m/s", "normalized"]
    fig = plots.action_timeseries_figure(joint_chunk[:, :4], long, units, 15.0)
    fig.canvas.draw()
    for ax, name, unit in zip(fig.axes, long, units):
        label, box = ax.yaxis.label.get_window_extent(), ax.get_window_extent()
        assert box.y0 <= label.y0 and label.y1 <= box.y1 and label.x0 >= 0, name
        lines = ax.get_ylabel().split("\n")
        assert 1 <= len(lines) <= 3 and f"{name} [{unit}]".startswith(lines[0]) and lines[-1].endswith(f"[{unit}]")
    assert fig.axes[1].get_ylabel() == "x [m]"
    assert fig.axes[0].get_ylabel().startswith("observation.state.\n") and "…" in fig.axes[0].get_ylabel()
    names = [f"left_arm_joint_{i}_position_with_a_very_long_descriptive_suffix" for i in range(7)]
    fig = plots.joints_figure(joint_chunk, [*names, "gripper_closure_amount_commanded"], ["rad"] * 7 + ["normalized"],
                              15.0, gripper_column="gripper_closure_amount_commanded")
    fig.canvas.draw()
    legend = fig.axes[0].get_legend()
    assert legend.get_window_extent().x1 <= fig.canvas.get_width_height()[0]
    assert [t.get_text().replace("\n", "") for t in legend.get_texts()] == names  # broken into lines, not cut
    gripper, box = fig.axes[2].yaxis.label.get_window_extent(), fig.axes[2].get_window_extent()
    assert box.y0 <= gripper.y0 and gripper.y1 <= box.y1


def test_each_arms_gripper_is_drawn_as_one_and_shades_its_own_arm(actions_json):
    """agibot's left_grasp / right_grasp were plain blue lines in actions.png (red points in ee_path_left.png)."""
    e = get_embodiment("agibot")
    chunk = np.zeros((10, e.action_dim))
    columns = list(e.columns)
    chunk[6:, columns.index("left_grasp")] = 1.0  # left closes at step 6, right at step 2
    chunk[2:, columns.index("right_grasp")] = 1.0
    doc = actions_json("agibot", chunk)
    assert plots.gripper_columns(doc, columns) == ["left_grasp", "right_grasp"]
    physical = ["1"] * len(columns)  # the registry's agibot is in model space, where nothing is shaded (test below)
    fig = plots.action_timeseries_figure(chunk, columns, physical, e.fps, plots.gripper_columns(doc, columns))
    axes = _subplots_by_column(fig)
    assert list(axes) == [c for r in range(10) for c in (columns[r] if r < 9 else None, columns[9 + r], columns[19 + r])
                          if c]  # the ego frame, the left arm and the right arm side by side
    assert axes["left_grasp"].lines[0].get_color() == axes["right_grasp"].lines[0].get_color() == plots.GRIPPER_COLOR
    assert axes["left_tx"].lines[0].get_color() == plots.LINE_COLOR
    assert axes["left_tx"].patches[0].get_x() == pytest.approx(5.5 / e.fps)  # its own arm's gripper
    assert axes["right_r3"].patches[0].get_x() == pytest.approx(1.5 / e.fps)
    assert not axes["ego_tx"].patches  # the ego frame has no gripper
    with pytest.raises(ValueError, match=r"gripper_column=\['left_grasp', 'claw'\]: \['claw'\] not among"):
        plots.action_timeseries_figure(chunk, columns, e.units, e.fps, ["left_grasp", "claw"])


def test_model_space_actions_are_named_so_and_shade_no_closed_gripper(pose_chunk, joint_chunk):
    """fractal's normalised grasp (about [-1, 1]) was shaded "gripper closed (>= 0.5)", a threshold of the physical
    [0, 1] gripper, and nothing said the values were not metres and radians."""
    e = get_embodiment("fractal")
    assert set(e.units) == {MODEL_SPACE_UNIT}
    chunk = pose_chunk.copy()
    chunk[:, 9] = np.linspace(-1.0, 1.0, len(chunk))  # above 0.5 for its last quarter
    fig = plots.action_timeseries_figure(chunk, e.columns, e.units, e.fps, "grasp", "fractal: actions")
    grasp = fig.axes[list(e.columns).index("grasp")]
    assert grasp.lines[0].get_color() == plots.GRIPPER_COLOR and len(grasp.lines) == 1  # red, no threshold line
    assert not any(ax.patches for ax in fig.axes)
    assert "all dims in model space (normalized, about [-1, 1]), not physical units" in fig.get_suptitle()
    bridge = get_embodiment("bridge")  # physical: shaded as before, nothing said
    fig = plots.action_timeseries_figure(chunk.clip(0, 1), bridge.columns, bridge.units, bridge.fps, "grasp")
    assert all(ax.patches for ax in fig.axes) and "model space" not in fig.get_suptitle()
    droid = get_embodiment("droid")
    fig = plots.joints_figure(joint_chunk, droid.columns, [MODEL_SPACE_UNIT] * 8, droid.fps, "gripper")
    assert not any(ax.patches for ax in fig.axes) and "model space" in fig.get_suptitle()
    fig = plots.joints_figure(joint_chunk, droid.columns, droid.units, droid.fps, "gripper")
    assert all(ax.patches for ax in fig.axes)


def test_a_pose_chunks_heading_says_what_its_columns_are(pose_chunk, joint_chunk):
    """A reader new to robotics saw subplots `tx [m]` and `r0`..`r5` near 1 and 0 with nothing saying that they are
    the end effector's move and turn per step, nor what "no turn" reads as."""
    bridge = get_embodiment("bridge")
    fig = plots.action_timeseries_figure(pose_chunk, bridge.columns, bridge.units, bridge.fps, "grasp")
    assert "tx, ty, tz: the end effector's move per step; r0..r5: its turn (rot6d; 1 0 0 0 1 0: none)" in (
        fig.get_suptitle())
    columns = [f"{arm}_{c}" for arm in ("left", "right") for c in bridge.columns]  # one note for both arms
    fig = plots.action_timeseries_figure(np.hstack([pose_chunk, pose_chunk]), columns, [*bridge.units] * 2,
                                         bridge.fps)
    assert fig.get_suptitle().count("move per step") == 1 and "(left_, right_)" in fig.get_suptitle()
    fractal = get_embodiment("fractal")  # model space: no turn is not 1 0 0 0 1 0 there
    fig = plots.action_timeseries_figure(pose_chunk, fractal.columns, fractal.units, fractal.fps, "grasp")
    assert "move per step" in fig.get_suptitle() and "1 0 0 0 1 0" not in fig.get_suptitle()
    droid = get_embodiment("droid")
    fig = plots.action_timeseries_figure(joint_chunk, droid.columns, droid.units, droid.fps, "gripper")
    assert "move per step" not in fig.get_suptitle()


def test_joint_legend_hides_no_line_and_no_joint_is_gripper_red(joint_chunk):
    e = get_embodiment("droid")
    fig = plots.joints_figure(joint_chunk, e.columns, e.units, e.fps, gripper_column="gripper")
    fig.canvas.draw()
    positions = fig.axes[0]
    legend = positions.get_legend().get_window_extent()
    assert legend.x0 >= positions.get_window_extent().x1  # beside the axes (loc="best" sat on joint_5's line)
    assert legend.x1 <= fig.canvas.get_width_height()[0]  # and not cut off
    colours = [line.get_color() for line in positions.lines]
    assert plots.GRIPPER_COLOR not in colours and len(set(colours)) == 7  # joint_3 was the gripper's red
    many = np.tile(joint_chunk[:, :1], (1, 12))
    fig = plots.joints_figure(many, [f"j{i}" for i in range(12)], ["rad"] * 12, 15.0)
    styles = {(line.get_color(), line.get_linestyle()) for line in fig.axes[0].lines}
    assert len(styles) == 12  # more joints than colours: repeated colours are dashed


def test_every_figure_names_the_run(monkeypatch, tmp_path, joint_chunk, pose_chunk, actions_json):
    """joints.png and a single arm's ee_path.png said only 'joint trajectory' / 'end-effector path'."""
    figures = _captured_figures(monkeypatch)
    doc = actions_json("droid", joint_chunk)
    doc["settings"]["prompt"] = "pick up the marker and put it in the mug " * 3
    plots.plot_prediction(doc, tmp_path)
    doc = actions_json("bridge", pose_chunk, mode="inverse_dynamics")
    plots.plot_prediction(doc, tmp_path / "b")
    titles = {name: fig.get_suptitle() for name, fig in figures.items()}
    assert titles["joints.png"].startswith('policy · droid/joint_pos · "pick up the marker and put it in the mug pick')
    assert "…\": joints\n32 steps @ 15 Hz" in titles["joints.png"]  # a long prompt is cut
    assert titles["actions.png"].startswith("inverse_dynamics · bridge: actions")
    assert titles["ee_path.png"].startswith("inverse_dynamics · bridge: end-effector path\n32 steps, travel 32.0 cm")


def test_ee_path_legend_explains_the_point_colours(pose_chunk):
    e = get_embodiment("bridge")
    labels = plots.ee_path_figure(pose_chunk, e.columns, gripper_column="grasp").axes[0].get_legend_handles_labels()[1]
    assert {"gripper open", "gripper closed (≥ 0.5)"} <= set(labels)
    labels = plots.ee_path_figure(pose_chunk[:, :9], e.columns[:9]).axes[0].get_legend_handles_labels()[1]
    assert "pose after each step" in labels and not any(label.startswith("gripper") for label in labels)
    # a chunk that never closes (a dream's random policy) names no closed square it does not draw
    never = pose_chunk.copy()
    never[:, e.columns.index("grasp")] = 0.0
    labels = plots.ee_path_figure(never, e.columns, gripper_column="grasp").axes[0].get_legend_handles_labels()[1]
    assert "gripper open" in labels and not any(label.startswith("gripper closed") for label in labels)


def test_ee_path_gripper_points_are_not_mistaken_for_the_frame_axes(pose_chunk):
    """Closed-gripper points were red like every frame's x axis beside them, open ones blue like its z axis: which
    was which was the legend's word against the picture. Now neither is any triad colour, and their shapes differ."""
    from matplotlib.colors import to_rgb

    e = get_embodiment("bridge")
    ax = plots.ee_path_figure(pose_chunk, e.columns, gripper_column="grasp").axes[0]
    points = {c.get_label(): c for c in ax.collections}
    closed, opened = points["gripper closed (≥ 0.5)"], points["gripper open"]
    assert len(closed.get_offsets()) == 11 and len(opened.get_offsets()) == 22  # poses 22..32 follow closed commands
    triads = {to_rgb(c) for c in "rgb"}
    for points in (closed, opened):
        faces = {tuple(np.round(c[:3], 3)) for c in points.get_facecolors()}
        edges = {tuple(np.round(c[:3], 3)) for c in points.get_edgecolors()}
        assert not (faces | edges) & triads
    assert closed.get_paths()[0].vertices.shape != opened.get_paths()[0].vertices.shape  # a square, a circle


def _hatched(ax) -> list:
    return [p for p in ax.patches if p.get_hatch() == plots.PADDED_HATCH]


def test_inverse_dynamics_rows_past_the_clip_are_marked_in_every_figure(monkeypatch, tmp_path, joint_chunk, pose_chunk,
                                                                        actions_json):
    """settings.real_rows said only the first rows explain the clip's frames; the plots drew the rest as equals."""
    figures = _captured_figures(monkeypatch)
    doc = actions_json("bridge", pose_chunk, mode="inverse_dynamics")
    doc["settings"]["real_rows"] = 20
    plots.plot_prediction(doc, tmp_path)
    fps = doc["fps"]
    series = [ax for ax in figures["actions.png"].axes if ax.get_visible()]
    for ax in series:
        (span,) = _hatched(ax)  # rows 20..31: from half a step before row 20 to half a step after row 31
        assert (span.get_x(), span.get_x() + span.get_width()) == pytest.approx((19.5 / fps, 31.5 / fps))
    label, legend = "rows 20-31: past the clip's end (its last frame repeated)", "rows 20-31:\npast the clip's end"
    assert legend in series[0].get_legend_handles_labels()[1]
    # the line before the pose note's
    assert figures["actions.png"].get_suptitle().splitlines()[-2].endswith(f"@ 5 Hz; hatched: {label}")
    path = figures["ee_path.png"].axes[0]
    (dashed,) = [line for line in path.lines if line.get_label() == legend]
    assert dashed.get_linestyle() == "--" and len(dashed.get_data_3d()[0]) == 13  # poses 20..32
    assert figures["ee_path.png"].get_suptitle().endswith(f"\ndashed: {label}")

    doc = actions_json("droid", joint_chunk, mode="inverse_dynamics")
    doc["settings"]["real_rows"] = 31
    plots.plot_prediction(doc, tmp_path / "j")
    joints = figures["joints.png"]
    assert all(len(_hatched(ax)) == 1 for ax in joints.axes)
    assert "row 31:\npast the clip's end" in joints.axes[0].get_legend_handles_labels()[1]
    assert joints.get_suptitle().endswith("hatched: row 31: past the clip's end (its last frame repeated)")
    joints.canvas.draw()  # the legend beside the axes fits in the figure
    assert joints.axes[0].get_legend().get_window_extent().x1 <= joints.canvas.get_width_height()[0]

    for mode, rows in (("inverse_dynamics", 32), ("policy", 20)):  # a full clip, or not inverse dynamics: no mark
        doc = actions_json("bridge", pose_chunk, mode=mode)
        doc["settings"]["real_rows"] = rows
        plots.plot_prediction(doc, tmp_path / "n")
        assert not any(_hatched(ax) for ax in figures["actions.png"].axes)
        assert "dashed" not in figures["ee_path.png"].get_suptitle()
    doc = actions_json("bridge", pose_chunk, mode="inverse_dynamics")
    doc["settings"]["real_rows"] = 40
    with pytest.raises(ValueError, match=r"settings.real_rows=40: expected a whole number of rows from 0 to the "
                                         r"chunk's 32"):
        plots.plot_prediction(doc, tmp_path / "bad")


def test_ee_path_heading_says_which_frame_its_axes_are(pose_chunk):
    """Without an anchor the path is in the start end-effector frame (z down on a Panda over a table), but the axes
    read as x, y, z of the room."""
    e = get_embodiment("bridge")
    title = plots.ee_path_figure(pose_chunk, e.columns).get_suptitle()
    assert title.endswith("\naxes: the start end-effector frame (no start pose known), z out of the gripper")
    anchor = np.eye(4)
    anchor[:3, 3] = [0.5, 0.0, 0.4]
    title = plots.ee_path_figure(pose_chunk, e.columns, anchor=anchor).get_suptitle()
    assert title.endswith("\naxes: the robot's base frame (anchor: the start end-effector pose)")


def test_ee_path_from_a_start_pose_is_drawn_in_the_base_frame():
    """A reach toward the table (+z of a Panda's TCP, which points down) was drawn going up on axes labelled x, y, z:
    from the start pose (the TCP over the table, as FK gives it) it goes down on axes labelled as the base frame's."""
    e = get_embodiment("droid/relative_pose")
    reach = np.zeros((10, 10))
    reach[:, [2, 3, 7]] = [0.01, 1.0, 1.0]  # 1 cm a step along the TCP's z, no turn
    tcp_down = np.diag([1.0, -1.0, -1.0, 1.0])
    tcp_down[:3, 3] = [0.55, 0.0, 0.5]
    for anchor, labels, drop in ((None, ("EE x [cm]", "EE y [cm]", "EE z [cm]"), -10.0),
                                 (tcp_down, ("base x [cm]", "base y [cm]", "base z [cm]"), 10.0)):
        ax = plots.ee_path_figure(reach, e.columns, anchor=anchor).axes[0]
        assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_zlabel()) == labels
        z = ax.lines[0].get_data_3d()[2]  # the path, in cm
        assert z[0] - z[-1] == pytest.approx(drop)
    assert z[0] == pytest.approx(50.0)  # drawn where the TCP is in the base frame


def test_a_run_that_recorded_its_start_pose_draws_its_path_in_the_base_frame(monkeypatch, tmp_path, pose_chunk,
                                                                             actions_json):
    """`worldpolicy demo` knows where the sim arm started, yet its ee_path.png was drawn in the start end-effector
    frame, a reach toward the table going up: from `settings.ee_start_pose` it is drawn from that pose, in the base
    frame. A pose that is no 4x4 matrix is refused naming the setting."""
    figures = _captured_figures(monkeypatch)
    doc = actions_json("bridge", pose_chunk)
    start = np.diag([1.0, -1.0, -1.0, 1.0])
    start[:3, 3] = [0.46, 0.0, 0.4]
    doc["settings"]["ee_start_pose"] = start.tolist()
    plots.plot_prediction(doc, tmp_path)
    ax = figures["ee_path.png"].axes[0]
    assert ax.get_zlabel() == "base z [cm]"
    assert np.array(ax.lines[0].get_data_3d())[:, 0] == pytest.approx([46.0, 0.0, 40.0])  # the path starts there
    doc["settings"]["ee_start_pose"] = [[1.0, 0.0], [0.0, 1.0]]
    with pytest.raises(ValueError, match=r"settings.ee_start_pose=\[\[1.0, 0.0\], \[0.0, 1.0\]\]: expected the start "
                                         r"end-effector pose, a finite 4x4 matrix"):
        plots.plot_prediction(doc, tmp_path)


def _deuteranope_lab(hex_colour: str) -> np.ndarray:
    """CIELAB of a colour as a deuteranope sees it (Machado et al. 2009, severity 1, on linear sRGB)."""
    srgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]) / 255
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    seen = np.clip(np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                             [-0.011820, 0.042940, 0.968881]]) @ linear, 0, 1)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ seen
    f = np.cbrt(np.maximum(xyz / np.array([0.95047, 1.0, 1.08883]), 0.008856))
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


@pytest.mark.parametrize("first, second", [("SUCCESS_COLOR", "FAILURE_COLOR"), ("LINE_COLOR", "GRIPPER_COLOR")])
def test_colours_told_apart_by_colour_alone_survive_red_green_colour_blindness(first, second):
    """The sim's success and failure bars were tab10 green and red: about ΔE 7 apart to a deuteranope (1 in 16 men),
    one colour. Pairs a figure distinguishes by colour alone stay well apart (ΔE > 30) as they see them."""
    gap = np.linalg.norm(_deuteranope_lab(getattr(plots, first)) - _deuteranope_lab(getattr(plots, second)))
    assert gap > 30, f"{first} and {second} are ΔE {gap:.1f} apart to a deuteranope"


def test_a_figure_is_written_in_the_format_its_name_asks_for(tmp_path, joint_chunk, pose_chunk):
    """`plot_ee_path(..., "path.pdf")` for a paper wrote a PNG named path.pdf; a name no format fits is refused before
    anything is drawn or written."""
    e, b = get_embodiment("droid"), get_embodiment("bridge")
    pdf = plots.plot_ee_path(pose_chunk, b.columns, tmp_path / "path.pdf", units=b.units)
    svg = plots.plot_joints(joint_chunk, e.columns, e.units, e.fps, tmp_path / "joints.SVG", "gripper")
    png = plots.plot_action_timeseries(joint_chunk, e.columns, e.units, e.fps, "gripper", tmp_path / "ts.png")
    assert pdf.read_bytes().startswith(b"%PDF-") and b"<svg" in svg.read_bytes()[:1000]
    assert png.read_bytes().startswith(b"\x89PNG")
    for name in ("ts.jpg", "ts"):
        with pytest.raises(ValueError, match=rf"path='.*{name}': expected a file name ending in \.png, \.pdf, \.svg"):
            plots.plot_action_timeseries(joint_chunk, e.columns, e.units, e.fps, "gripper", tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["joints.SVG", "path.pdf", "ts.png"]


def test_ee_path_legend_sits_below_the_axes_and_their_labels(pose_chunk):
    """Inside the 3-D axes (upper left) the legend covered a path that rose towards it, and the end marker was drawn
    under the path's points."""
    b = get_embodiment("bridge")
    chunk = pose_chunk.copy()
    chunk[:, :3] = [-0.01, 0.01, 0.012]
    fig = plots.ee_path_figure(chunk, b.columns, gripper_column="grasp", units=b.units, real_rows=20)
    fig.canvas.draw()
    (ax,), (legend,) = fig.axes, fig.legends
    assert legend.get_window_extent().y1 <= ax.get_tightbbox(fig.canvas.get_renderer()).y0
    assert ax.get_legend() is None and legend.get_window_extent().y0 >= 0
    end = next(c for c in ax.collections if c.get_label() == "end")
    assert not ax.computed_zorder  # drawn by zorder, not by depth
    others = [c.get_zorder() for c in ax.collections if c is not end and c.get_label() != "start"]
    assert end.get_zorder() > max(others)


def test_a_pdf_figure_embeds_truetype_fonts_and_leaves_matplotlibs_settings_alone(tmp_path, pose_chunk):
    """PDFs were written with Type 3 fonts, which journals' and arXiv's checks refuse. Type 42 (TrueType) is set
    while a PDF is written, not for every figure of the process."""
    import matplotlib

    before = {key: matplotlib.rcParams[key] for key in ("pdf.fonttype", "ps.fonttype")}
    b = get_embodiment("bridge")
    pdf = plots.plot_ee_path(pose_chunk, b.columns, tmp_path / "path.pdf", gripper_column="grasp", units=b.units)
    data = pdf.read_bytes()
    assert b"/FontFile2" in data and b"/Type3" not in data  # embedded TrueType programs, no Type 3 glyph procedures
    assert {key: matplotlib.rcParams[key] for key in before} == before


def test_plot_prediction_writes_the_format_asked_for(tmp_path, pose_chunk, actions_json):
    doc = actions_json("bridge", pose_chunk)
    assert [p.name for p in plots.plot_prediction(doc, tmp_path, "svg")] == ["actions.svg", "ee_path.svg"]
    with pytest.raises(ValueError, match=r"fmt='jpg': expected one of png, pdf, svg"):
        plots.plot_prediction(doc, tmp_path / "jpg", "jpg")
    assert not (tmp_path / "jpg").exists()


def test_an_axis_scale_is_written_as_small_as_its_tick_labels(tmp_path, joint_chunk, pose_chunk):
    """A column in the millions is ticked "-1.0 ... 1.0" with "1e7" above its axes: that factor was drawn at 10 pt,
    larger than the 7 pt labels it scales, into the gap above the subplot."""
    e, b = get_embodiment("droid"), get_embodiment("bridge")
    big = joint_chunk.copy()
    big[:, 0] *= 1e7
    figures = [plots.action_timeseries_figure(big, e.columns, e.units, e.fps, "gripper"),
               plots.joints_figure(big, e.columns, e.units, e.fps, "gripper"),
               plots.ee_path_figure(pose_chunk, b.columns, units=b.units)]
    for fig in figures:
        fig.canvas.draw()
        for ax in fig.axes:
            axes = [ax.xaxis, ax.yaxis, *([ax.zaxis] if hasattr(ax, "zaxis") else [])]
            assert {a.get_offset_text().get_fontsize() for a in axes} == {plots.TICK_FONTSIZE}
    assert figures[0].axes[0].yaxis.get_offset_text().get_text() == "1e6"  # 0.2 sin(t) x 1e7


def test_a_column_constant_up_to_rounding_is_drawn_as_a_constant_one(joint_chunk):
    """A column computed to 0 came out as ±1.4e-17 and was drawn as a zigzag on a "1e-17" offset axis, rounding
    noise that read as motion: it is drawn as matplotlib draws an exactly constant column (0 ± 0.055, no offset), in
    every figure of per-column subplots; 0.3 up to rounding as 0.3 is, and a column that moves as before."""
    e = get_embodiment("droid")
    noise = np.resize([0.0, 1.4e-17, -1.4e-17, 2.8e-17], len(joint_chunk))
    a = joint_chunk.copy()
    a[:, 1] = noise
    a[:, 2] = 0.3 + noise
    flat = joint_chunk.copy()
    flat[:, :7] = noise[:, None]  # every joint still: positions and velocities both rounding
    recorded = [(0, a)]
    figures = {"time series": (plots.action_timeseries_figure(a, e.columns, e.units, e.fps, "gripper"), [1, 2]),
               "open loop": (plots.open_loop_figure(recorded, [(0, a), (8, a[8:])], e.columns, e.units, e.fps), [1, 2]),
               "joints": (plots.joints_figure(flat, e.columns, e.units, e.fps, "gripper"), [0, 1])}
    for name, (fig, constant) in figures.items():
        fig.canvas.draw()
        for i in constant:
            ax = fig.axes[i]
            lo, hi = ax.get_ylim()
            centre = 0.3 if name != "joints" and i == 2 else 0.0
            assert (lo, hi) == pytest.approx((centre - 0.055 * (abs(centre) or 1), centre + 0.055 * (abs(centre) or 1)))
            assert ax.yaxis.get_offset_text().get_text() == "", (name, i)
        lo, hi = fig.axes[0 if name != "joints" else 2].get_ylim()  # a joint that moves, the gripper's 0..1
        assert hi - lo > 0.15, name


def test_a_column_that_barely_moves_is_drawn_over_its_units_least_span():
    """The open-loop plot of the reach model's `grasp` (never closed in its data) drew 1e-8 noise on a 1e-8 axis,
    which read as activity: a column moving less than its unit's `MIN_Y_SPAN` is drawn over that span, around 0 when
    it lies near 0 and around its values elsewhere, in every figure of action columns; one that moves keeps its range,
    as does a unit not listed."""
    b = get_embodiment("bridge")  # tx, ty, tz in m, r0..r5 and grasp unitless
    noise = 1e-8 * np.resize([0.0, 3.0, -2.0, 5.0], 24)
    a = np.zeros((24, 10))
    a[:, 0] = 0.2 + noise  # m, away from 0
    a[:, 1] = np.linspace(0.0, 0.05, 24)  # moves 5 cm
    a[:, 2] = noise  # m, at 0
    a[:, 3] = noise  # unitless, at 0
    a[:, 9] = noise  # the gripper, never closed
    figures = {"time series": plots.action_timeseries_figure(a, b.columns, b.units, b.fps, "grasp"),
               "open loop": plots.open_loop_figure([(0, a)], [(0, a + 2e-8)], b.columns, b.units, b.fps)}
    for name, fig in figures.items():
        fig.canvas.draw()
        spans = {column: fig.axes[i].get_ylim() for i, column in enumerate(b.columns)}
        assert spans["tx"] == pytest.approx((0.2 - 5e-5, 0.2 + 5e-5), abs=1e-7), name  # 0.1 mm around the values
        assert spans["tz"] == pytest.approx((-5e-5, 5e-5)), name  # around 0
        assert spans["r0"] == pytest.approx((-5e-4, 5e-4)), name
        lo, hi = spans["grasp"]  # a closed threshold line keeps the range it widens to
        assert hi - lo >= plots.MIN_Y_SPAN["1"], name
        lo, hi = spans["ty"]  # a column that moves: matplotlib's range
        assert hi - lo == pytest.approx(0.05 * 1.1), name
    ax = plots._new_figure(2, 2).subplots()
    ax.plot([0, 1], [1e-8, 2e-8])
    before = ax.get_ylim()
    plots.steady_ylim(ax, "furlong")  # a unit not listed
    assert ax.get_ylim() == before


def test_ee_path_heading_says_how_far_the_hand_turned(pose_chunk):
    """A wrist rotation in place was headed "travel 0.0 mm" and nothing else; the net turn start to end is named."""
    b = get_embodiment("bridge")
    turning = pose_chunk.copy()
    turning[:, :3] = 0.0
    fig = plots.ee_path_figure(turning, b.columns, units=b.units)  # 32 steps of 0.05 rad about z: 91.7°
    assert "travel 0.0 mm; turned 91.7° start to end;" in fig.get_suptitle()


@pytest.mark.parametrize("source, shown", [
    ("runs/pick_lora/checkpoints/step-0000800", "ckpt pick_lora/step-0000800"),
    ("/data/ckpts/tiny/", "ckpt tiny"),
    ("shipped", "ckpt shipped"),
    ("nvidia/Cosmos-Policy", "ckpt Cosmos-Policy"),
])
def test_every_figure_names_the_checkpoint_that_made_it(monkeypatch, tmp_path, joint_chunk, actions_json, source,
                                                        shown):
    """Two checkpoints' figures of one prompt had one heading ("policy · droid/joint_pos · ..."): side by side in a
    comparison, which was which was in settings.json only."""
    figures = _captured_figures(monkeypatch)
    doc = actions_json("droid", joint_chunk)
    doc["settings"].update(checkpoint=source, prompt="pick up the marker")
    plots.plot_prediction(doc, tmp_path)
    for fig in figures.values():
        assert fig.get_suptitle().startswith(f'policy · droid/joint_pos · {shown} · "pick up the marker"')


def _whole_clip(doc: dict, start: int, step: float, windows: list[int], resampled: bool) -> dict:
    """`doc` as an inverse dynamics result of a whole clip: row i from clip frame start + round(i * step)."""
    rows = sum(windows)
    used = [start + int(np.floor(i * step + 0.5)) for i in range(rows + 1)]
    settings = {**doc["settings"], "real_rows": rows, "clip": {"start_frame": start, "frames_used": used,
                "clip_fps": 30.0 if resampled else 15.0, "resampled": resampled, "window_rows": windows}}
    return {**doc, "mode": "inverse_dynamics", "settings": settings}


def test_a_whole_clips_figures_give_each_rows_clip_frame_and_its_windows(joint_chunk, actions_json, monkeypatch):
    """A whole clip labelled from frame 40 at 30 fps, read at 15 (`--resample`), was plotted from t = 0 with nothing
    to say which of the clip's frames a row explains or where the model's windows of 4 rows start (its outputs jump
    there)."""
    doc = _whole_clip(actions_json("droid", joint_chunk, "inverse_dynamics"), 40, 2.0, [4] * 7 + [4], True)
    clip = plots.clip_rows_of(doc)
    assert clip.frames_used[:3] == (40, 42, 44) and clip.window_starts() == [48, 56, 64, 72, 80, 88, 96]
    figures = _captured_figures(monkeypatch)
    plots.plot_prediction(doc, "unused")
    for name in ("actions.png", "joints.png"):
        fig = figures[name]
        assert "rows from clip frames 40..104 (8 windows of 4 rows), resampled from 30 fps" in fig._suptitle.get_text()
        fig.canvas.draw()  # a second axis takes its limits from its parent's when drawn
        top = [child for ax in fig.axes for child in ax.child_axes]
        assert top and all(t.get_xlabel() == "clip frame; short ticks: window starts" for t in top)
        assert top[0].get_xlim() == pytest.approx(tuple(40 + 2 * 15 * x for x in fig.axes[0].get_xlim()))
        assert list(top[0].xaxis.get_minorticklocs()) == clip.window_starts()
    assert len(figures["actions.png"].axes[0].child_axes) == 1 and not figures["actions.png"].axes[-1].child_axes
    # the clip's own frames from 0 in one window: the time axis says it all
    assert plots.clip_rows_of(_whole_clip(doc, 0, 1.0, [32], False)) is None
    assert plots.clip_rows_of(_whole_clip(doc, 0, 1.0, [16, 16], False)).window_starts() == [16]
    assert plots.clip_rows_of({**doc, "actions": doc["actions"][:-1]}) is None  # rows it does not describe
    with pytest.raises(ValueError, match="clip=.*33 frames_used"):
        plots.action_timeseries_figure(joint_chunk[:32], doc["columns"], doc["units"], 15.0, clip=plots.clip_rows_of(
            _whole_clip(doc, 0, 1.0, [16, 15], False) | {"actions": doc["actions"][:31]}))


@pytest.mark.parametrize("layout", ["joint_position", "relative_pose"])
def test_a_head_without_a_gripper_column_is_drawn_without_one(tmp_path, layout):
    """`RobotCommand.gripper` is None for a head without a gripper column: its actions file (gripper_column null)
    gets every figure and the animation, none of them with a gripper line or closed span."""
    from worldpolicy.viz.run import visualize

    rng = np.random.default_rng(0)
    columns = [f"joint_{i}" for i in range(6)] if layout == "joint_position" else list(plots.POSE_COLUMNS)
    units = ["rad"] * 6 if layout == "joint_position" else ["m"] * 3 + ["1"] * 6
    actions = np.cumsum(rng.normal(0, 0.01, (12, len(columns))), axis=0)
    if layout == "relative_pose":
        actions[:, 3:] = [1, 0, 0, 0, 1, 0]
    doc = {"schema": "worldpolicy.actions/v1", "mode": "policy", "embodiment": "my_arm", "fps": 15.0,
           "chunk_size": 12, "columns": columns, "units": units, "actions": actions.tolist(), "layout": layout,
           "gripper_column": None}
    (tmp_path / "actions.json").write_text(__import__("json").dumps(doc))
    figure = "joints.png" if layout == "joint_position" else "ee_path.png"
    assert [p.name for p in visualize(tmp_path)] == ["actions.png", figure, "animation.mp4"]
    fig = plots.action_timeseries_figure(actions, columns, units, 15.0, plots.gripper_columns(doc, columns))
    assert all(not ax.patches and ax.lines[0].get_color() == plots.LINE_COLOR for ax in fig.axes if ax.get_visible())
    if layout == "joint_position":
        assert len(plots.joints_figure(actions, columns, units, 15.0, None).axes) == 2  # positions, velocities


def _whole_trajectory(doc: dict, rows: int, chunk_size: int, state_chained: bool = False) -> dict:
    """`doc` as a forward dynamics result over a whole trajectory of `rows` rows rolled out in chunks of `chunk_size`,
    its `settings["trajectory"]` as `Policy.imagine(whole_trajectory=True)` records it."""
    trajectory = TrajectoryChunks(np.zeros((rows, 1)), chunk_size, seed=7).settings(state_chained)
    return {**doc, "mode": "forward_dynamics", "settings": {**doc["settings"], "trajectory": trajectory}}


def _dashed_at(ax) -> list[float]:
    return [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"]


def test_a_whole_trajectorys_figures_mark_where_each_chunk_starts_from_an_imagined_frame(joint_chunk, actions_json,
                                                                                          monkeypatch):
    """A 32-row trajectory rolled out in chunks of 12, 12 and 8 rows was drawn as one chunk: nothing showed that rows
    12 and 24 start from the model's own imagined frame, where its errors begin to feed on themselves (drift)."""
    doc = _whole_trajectory(actions_json("droid", joint_chunk), 32, 12, state_chained=True)
    chunks = plots.rollout_chunks_of(doc)
    assert chunks.window_rows == (12, 12, 8) and chunks.window_starts() == [12, 24]
    assert plots.clip_rows_of(doc) is None  # a clip's frames are inverse dynamics'
    figures = _captured_figures(monkeypatch)
    plots.plot_prediction(doc, "unused")
    fps = doc["fps"]
    for name in ("actions.png", "joints.png"):
        fig = figures[name]
        assert ("rolled out in 3 chunks of 12 rows, the last 8; dashed: chunks 1-2 start from the model's own last "
                "imagined frame, its last action as the state (drift can begin there)") in " ".join(
                    fig._suptitle.get_text().split())  # wrapped to the figure's width
        shown = [ax for ax in fig.axes if ax.get_visible()]
        assert all(_dashed_at(ax) == pytest.approx([12 / fps, 24 / fps]) for ax in shown)  # every subplot
        labels = [(t.get_text(), t.get_position()[0]) for ax in shown for t in ax.texts]
        assert labels[:3] == [("chunk 0", 0.0), ("chunk 1", pytest.approx(12 / fps)),
                              ("chunk 2", pytest.approx(24 / fps))]
        assert not any(ax.child_axes for ax in fig.axes)  # no clip-frame axis: the rollout's frames are the rows'
    assert len(labels) == 3  # above the top subplot of joints.png only


def test_docs_viz_quotes_a_whole_trajectorys_heading_and_card_as_they_are_written():
    """docs/viz.md quotes the heading of a 70-row trajectory in chunks of 32 (and its report card, 32 in 12s): a
    rewording of `RolloutChunks.note` or `card` left the docs quoting words no figure or page shows."""
    docs = " ".join((Path(__file__).resolve().parents[2] / "docs" / "viz.md").read_text().split())
    seventy = plots.rollout_chunks_of(_whole_trajectory({"settings": {}, "actions": [[0.0]] * 70}, 70, 32))
    thirty_two = plots.rollout_chunks_of(_whole_trajectory({"settings": {}, "actions": [[0.0]] * 32}, 32, 12))
    assert f'("{seventy.note()}",' in docs
    assert f'"trajectory" card ("{thirty_two.card()[1]}")' in docs
    chained = dataclasses.replace(seventy, state_chained=True).note()
    assert 'with ", its last action as the state" where the state was chained' in docs
    assert chained == seventy.note().replace(" (drift", ", its last action as the state (drift")


def test_a_single_chunk_or_an_untiled_trajectory_is_drawn_as_before(joint_chunk, actions_json, monkeypatch):
    doc = actions_json("droid", joint_chunk, "forward_dynamics")
    assert plots.rollout_chunks_of(_whole_trajectory(doc, 32, 32)) is None
    assert plots.rollout_chunks_of(_whole_trajectory(doc, 28, 12)) is None  # 28 rows said, 32 given
    assert plots.rollout_chunks_of(_whole_trajectory(doc, 32, 16) | {"mode": "policy"}) is None
    figures = _captured_figures(monkeypatch)
    plots.plot_prediction(_whole_trajectory(doc, 32, 32), "unused")
    fig = figures["actions.png"]
    assert "chunk" not in fig._suptitle.get_text() and not any(_dashed_at(ax) or ax.texts for ax in fig.axes)


def test_a_long_trajectory_labels_every_kth_chunk_and_lines_each(joint_chunk, actions_json):
    doc = _whole_trajectory(actions_json("droid", np.tile(joint_chunk, (2, 1))), 64, 4)
    fig = plots.action_timeseries_figure(np.asarray(doc["actions"]), doc["columns"], doc["units"], doc["fps"],
                                         clip=plots.run_rows_of(doc))
    assert len(_dashed_at(fig.axes[0])) == 15
    assert [t.get_text() for t in fig.axes[0].texts] == [f"chunk {j}" for j in range(0, 16, 2)]


def test_a_whole_trajectorys_end_effector_path_marks_the_poses_chunks_start_from(pose_chunk, actions_json,
                                                                                 monkeypatch):
    """The 3-D path of a relative-pose trajectory rolled out in chunks of 12 showed nothing of where each chunk
    started from an imagined frame: pose 12 and 24 are diamonds, named in the legend and the heading."""
    doc = _whole_trajectory(actions_json("bridge", pose_chunk), 32, 12)
    figures = _captured_figures(monkeypatch)
    plots.plot_prediction(doc, "unused")
    fig = figures["ee_path.png"]
    assert ("rolled out in 3 chunks of 12 rows, the last 8; diamonds: chunks 1-2 start from the model's own last "
            "imagined frame (drift can begin there)") in " ".join(fig._suptitle.get_text().split())
    ax = fig.axes[0]
    handles, labels = ax.get_legend_handles_labels()
    diamonds = handles[labels.index("chunk start (imagined frame)")]
    poses = plots.ee_poses(pose_chunk, doc["columns"], units=doc["units"])[:, :3, 3] * 100  # drawn in cm
    np.testing.assert_allclose(np.column_stack(diamonds._offsets3d), poses[[12, 24]], atol=1e-9)
    assert [t.get_text().strip() for t in ax.texts] == ["chunk 1", "chunk 2"]
    with pytest.raises(ValueError, match="chunks=.*RolloutChunks.*of the chunk's 31 rows"):
        plots.ee_path_figure(pose_chunk[:31], doc["columns"], chunks=plots.rollout_chunks_of(doc))


def test_action_values_near_1_are_labelled_as_values_not_as_an_offset():
    """A column of 0.9995 .. 0.99999 showed a "+1" offset over steps of 1e-5 while its neighbour read plainly."""
    from worldpolicy.viz.plots import action_timeseries_figure

    a = np.zeros((8, 10))
    a[:, 3] = np.linspace(0.9995, 0.99999, 8)  # a rot6d entry near 1
    a[:, 0] = np.linspace(0.0, 0.02, 8)
    cols = ["tx", "ty", "tz", "r0", "r1", "r2", "r3", "r4", "r5", "grasp"]
    fig = action_timeseries_figure(a, cols, ["m"] * 3 + [""] * 6 + ["g"], 15.0, "grasp")
    fig.canvas.draw()
    assert [ax.yaxis.get_offset_text().get_text() for ax in fig.axes if ax.get_visible()] == [""] * 10


def test_plot_prediction_takes_an_actions_file_or_a_prediction_as_well_as_its_dict(tmp_path, pose_chunk, actions_json):
    """Given the path of a run's actions.json, plot_prediction raised "prediction must be a dict"."""
    from worldpolicy.results import Prediction

    doc = actions_json("droid/relative_pose", pose_chunk[:8])
    (tmp_path / "actions.json").write_text(json.dumps(doc))
    for given in (tmp_path / "actions.json", str(tmp_path / "actions.json")):
        assert [p.name for p in plots.plot_prediction(given, tmp_path / "p")] == ["actions.png", "ee_path.png"]
    prediction = Prediction(mode="policy", embodiment="droid/relative_pose", columns=doc["columns"], units=doc["units"],
                            actions=pose_chunk[:8], actions_normalized=pose_chunk[:8], fps=15.0)
    assert plots.plot_prediction(prediction, tmp_path / "q")[0].is_file()
    with pytest.raises(TypeError, match=r"prediction_json: got list; accepted: a worldpolicy.actions/v1 dict .*, a "
                                        r"Prediction, or the path of an actions.json"):
        plots.plot_prediction([1, 2], tmp_path / "r")


def _whole_ticks(axis) -> list[float]:
    """The major tick values an x axis shows within its limits, once drawn."""
    axis.figure.canvas.draw()
    lo, hi = sorted(axis.get_xlim())
    return [float(t) for t in axis.get_xticks() if lo <= t <= hi]


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_the_error_vs_horizon_axis_is_ticked_at_whole_steps(steps):
    """A chunk of one step was ticked -0.045, -0.03, ... 0.045: MaxNLocator(integer=True) falls back to fractions
    where fewer than two whole numbers are in view."""
    horizon = np.linspace(0.1, 0.5, 2 * steps).reshape(steps, 2)
    fig = plots.open_loop_summary_figure(["x", "y"], ["m", "m"], np.array([0.2, 0.3]), np.array([0.25, 0.35]),
                                         np.array([1.0, 1.0]), horizon, 10)
    shown = _whole_ticks(fig.axes[1])
    assert shown and all(t.is_integer() for t in shown), shown


@pytest.mark.parametrize("used", [(40, 41), (40, 42), (40, 41, 42, 43)])
def test_a_clips_frame_axis_is_ticked_at_whole_frames(used):
    """One row's clip (a span of one frame) had its clip-frame axis ticked 39.25, 39.5, ... 40.75."""
    rows = len(used) - 1
    fig = plots._new_figure(6, 3)
    ax = fig.subplots()
    ax.plot(np.arange(rows) / 15, np.zeros(rows), "o")
    plots.ClipRows(frames_used=used, window_rows=(rows,), clip_fps=15.0, resampled=False).mark(ax, 15.0, top=True)
    shown = _whole_ticks(ax.child_axes[0])
    assert shown and all(t.is_integer() for t in shown), shown


def test_the_open_loop_legend_sits_under_the_heading_over_no_subplot(joint_chunk):
    """At loc "best" in the first subplot, "recorded / predicted" sat on the lines it named wherever the chunks
    covered the episode: the gap between them is what the figure shows."""
    from matplotlib.text import Text

    e = get_embodiment("droid")
    chunks = [(start, joint_chunk[start:] + 0.1) for start in range(0, 32, 4)]  # every frame covered
    fig = plots.open_loop_figure([(0, joint_chunk)], chunks, e.columns, e.units, e.fps, title="open loop")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["recorded", "predicted"]
    box = legend.get_window_extent(renderer)
    assert all(not box.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes if ax.get_visible())
    (heading,) = [t for t in fig.get_children() if isinstance(t, Text) and t.get_text() == fig.get_suptitle()]
    assert box.y1 <= heading.get_window_extent(renderer).y0 + 1  # under the heading, not on it
    assert box.y0 >= max(ax.get_window_extent(renderer).y1 for ax in fig.axes)  # above the subplots


@pytest.mark.parametrize("d", [4, 7, 10])
def test_the_open_loop_summary_has_its_note_under_the_labels_and_its_legend_inside(d):
    """`openloop_summary.png` left about an inch of blank above its note (a bottom margin guessed for turned labels),
    and seven or more columns' legend, six across, ran past the figure's right edge."""
    columns = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper", "j1", "j2", "j3"][:d]
    fig = plots.open_loop_summary_figure(columns, ["m"] * d, np.full(d, 0.01), np.full(d, 0.012), np.full(d, 20.0),
                                         np.linspace(0.01, 0.05, 4 * d).reshape(4, d), 15, title="open-loop error",
                                         detail="24 chunks", scale_note="1 = one standard deviation")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    note = fig.texts[-1].get_window_extent(renderer)
    labels = min(ax.get_tightbbox(renderer).y0 for ax in fig.axes)
    assert 0 < (labels - note.y1) / fig.dpi < 0.3
    legend, panel = (a.get_window_extent(renderer) for a in (fig.axes[1].get_legend(), fig.axes[1]))
    assert panel.x0 <= legend.x0 and legend.x1 <= panel.x1
    points = np.concatenate([fig.axes[1].transData.transform(line.get_xydata()) for line in fig.axes[1].lines])
    assert points[:, 1].max() < legend.y0 <= legend.y1 <= panel.y1  # in room above the curves, not on them


def test_a_two_arm_joint_robots_plots_give_each_arm_a_column_and_both_grippers():
    """An ALOHA-style spec names one gripper_column: right_gripper was drawn as a joint (in `[mixed]` units beside
    radians) and its closing never shaded; actions.png interleaved the arms (left_waist beside left_shoulder) and the
    joint legend switched to dashes at the 8th joint, right_waist solid like the left arm's."""
    arm = ["waist", "shoulder", "elbow", "wrist", "gripper"]
    columns = [f"{side}_{j}" for side in ("left", "right") for j in arm]
    units = ["rad", "rad", "rad", "rad", "1"] * 2
    actions = np.zeros((8, 10))
    actions[:, :4] = actions[:, 5:9] = np.linspace(0, 1, 8)[:, None]
    actions[5:, columns.index("right_gripper")] = 1.0
    doc = {"schema": "worldpolicy.actions/v1", "mode": "policy", "embodiment": "aloha", "fps": 50.0,
           "chunk_size": 8, "columns": columns, "units": units, "actions": actions.tolist(),
           "layout": "joint_position", "gripper_column": "left_gripper"}
    assert plots.gripper_columns(doc, columns) == ["left_gripper", "right_gripper"]
    figures = plots.prediction_figures(doc)
    # actions.png: the left arm down the first column of subplots, the right arm down the second, row by row
    places = {name: ax.get_position() for name, ax in _subplots_by_column(figures["actions"]).items()}
    for j in arm:
        left, right = places[f"left_{j}"], places[f"right_{j}"]
        assert left.x1 < right.x0 and left.y0 == pytest.approx(right.y0), j
    assert places["left_waist"].y0 > places["left_shoulder"].y0
    right_gripper = _subplots_by_column(figures["actions"])["right_gripper"]
    assert right_gripper.lines[0].get_color() == plots.GRIPPER_COLOR
    assert right_gripper.patches[0].get_x() == pytest.approx(4.5 / 50.0)  # its own closing shaded
    # joints.png: no gripper among the joints; each joint one colour, the right arm dashed; both grippers below
    joints, _, grippers = figures["joints"].axes
    legend = {t.get_text(): line for t, line in zip(joints.get_legend().get_texts(), joints.get_legend().get_lines())}
    assert list(legend) == [c for c in columns if not c.endswith("gripper")]
    assert legend["left_elbow"].get_color() == legend["right_elbow"].get_color()
    assert legend["left_elbow"].get_linestyle() == "-" and legend["right_waist"].get_linestyle() == "--"
    assert joints.yaxis.label.get_text() == "joint position [rad]"
    assert [t.get_text() for t in grippers.get_legend().get_texts()] == ["left_gripper", "right_gripper"]
    assert {line.get_color() for line in grippers.lines[:2]} == {plots.GRIPPER_COLOR}


def test_a_one_arm_robot_whose_columns_end_as_its_gripper_has_one_gripper():
    """`gripper_pos` beside `shoulder_pos`: every `*_pos` column was taken for another arm's gripper, so the joints
    figure had no joint left and raised."""
    columns = ["shoulder_pos", "elbow_pos", "wrist_pos", "gripper_pos"]
    doc = {"schema": "worldpolicy.actions/v1", "mode": "policy", "embodiment": "arm", "fps": 10.0, "chunk_size": 4,
           "columns": columns, "units": ["rad"] * 3 + ["1"], "actions": np.zeros((4, 4)).tolist(),
           "layout": "joint_position", "gripper_column": "gripper_pos"}
    assert plots.gripper_columns(doc, columns) == ["gripper_pos"]
    joints = plots.prediction_figures(doc)["joints"].axes[0]
    assert [t.get_text() for t in joints.get_legend().get_texts()] == columns[:3]


def test_two_arms_of_more_joints_than_colours_keep_each_joints_line_its_own():
    """Two 8-joint arms: the left arm's 8th joint took the dashes and first colour of the right arm's 1st, two lines
    of one look."""
    columns = [f"{side}_j{k}" for side in ("left", "right") for k in range(8)]
    fig = plots.joints_figure(np.zeros((4, 16)), columns, ["rad"] * 16, 10.0)
    legend = fig.axes[0].get_legend()
    looks = [(line.get_color(), line.get_linestyle()) for line in legend.get_lines()]
    assert len(set(looks)) == 16, looks
    assert looks[0][1] == "-" and looks[8][1] != "-" and looks[0][0] == looks[8][0]  # arms by style, joint by colour
