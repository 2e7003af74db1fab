"""Robustness shifts (`sim.perturb`): each changes what it should, only that, drawn from the episode's seed."""

import json

import numpy as np
import pytest

mujoco = pytest.importorskip("mujoco")
gym = pytest.importorskip("gymnasium")

from worldpolicy.cli import main
from worldpolicy.sim.env import TabletopEnv
from worldpolicy.sim.perturb import PERTURBATIONS, Perturbation, parse_perturbations
from worldpolicy.sim.scenes import CAMERAS, TABLE_TOP

EXTERIOR = [k for k in CAMERAS if "exterior" in k]
WRIST = "observation/wrist_image_left"
SIZE = (48, 64)


def _env(task="reach", perturb=None):
    return TabletopEnv(task, image_size=SIZE, perturb=perturb)


@pytest.fixture(scope="module")
def clean():
    e = _env()
    yield e
    e.close()


def _images(env, seed):
    obs, _ = env.reset(seed=seed)
    return {k: obs[k].astype(float) for k in CAMERAS}


def test_specs_parse_to_one_canonical_text_and_a_name_alone_takes_its_default():
    p = parse_perturbations(["light=0.7,camera", "distractors=3", "table=blue"])
    assert p == Perturbation(camera=PERTURBATIONS["camera"].default, light=0.7, table="blue", distractors=3)
    assert p.spec == "camera=0.03,light=0.7,table=blue,distractors=3"  # the table's order, as reports record it
    assert parse_perturbations(p.spec) == p  # what a report records is what --perturb takes back
    assert not parse_perturbations(None) and not parse_perturbations("none") and parse_perturbations([]).spec == ""


def test_the_table_names_every_field_and_a_perturbation_made_in_python_is_checked_too():
    from dataclasses import fields

    assert [f.name for f in fields(Perturbation)] == list(PERTURBATIONS)
    with pytest.raises(ValueError, match=r"^perturb: light=10: light takes a number of 0.1 to 3"):
        Perturbation(light=10)
    with pytest.raises(ValueError, match="distractors takes a whole number of 1 to 4 boxes"):
        Perturbation(distractors=9)
    assert Perturbation(distractors=2.0).objects() == Perturbation(distractors=2).objects()  # the table's type: int
    # a NumPy number (a sweep over np.linspace) is its value, not refused as out of range for its repr's text
    assert Perturbation(light=np.float64(0.5), distractors=np.int64(2)) == Perturbation(light=0.5, distractors=2)


@pytest.mark.parametrize("spec, said", [
    ("camera=0.5", "perturb: 'camera=0.5': camera takes a number of 0.001 to 0.1 m"),
    ("light=0", "light takes a number of 0.1 to 3"),
    ("light=nan", "light takes a number of 0.1 to 3"),
    ("table=pink", "table takes random | red | green"),
    ("distractors=1.5", "distractors takes a whole number of 1 to 4 boxes"),
    ("fog=1", "perturb: unknown perturbation 'fog' in 'fog=1'; accepted: camera=<a number of 0.001 to 0.1 m>"),
    ("light=0.5,light=0.7", "perturb: light given twice ('light=0.5' and 'light=0.7')"),
    ("light,light=0.7", "perturb: light given twice ('light' and 'light=0.7')"),
    ("none,light=0.5,camera", "perturb: 'none' given with light=0.5, camera; 'none' means no shift"),
    # an empty part was skipped: a shift may have been lost from the spec
    ("", "perturb: '' has an empty part; give shifts separated by single commas ('none' for no shift)"),
    ("light=0.5,,camera=0.02", "perturb: 'light=0.5,,camera=0.02' has an empty part"),
    ("light=0.5,", "perturb: 'light=0.5,' has an empty part"),
])
def test_a_bad_spec_names_the_parameter_what_was_given_and_what_is_accepted(spec, said):
    with pytest.raises(ValueError) as caught:
        parse_perturbations(spec)
    assert str(caught.value).startswith("perturb: ") and said in str(caught.value)


@pytest.mark.parametrize("given", [{"light": 0.9}, 0.5, ["light=0.5", 2]])
def test_specs_neither_text_nor_a_list_of_it_are_refused_naming_the_parameter(given):
    """A mapping is not read as its keys ({"light": 0.9} ran light's default, 0.5), nor a number failed as a
    TypeError that names nothing."""
    with pytest.raises(ValueError, match=r"^perturb: expected text like 'camera=0.03'"):
        parse_perturbations(given)


def test_a_perturbed_scene_is_the_clean_scene_with_the_same_objects_prompt_and_arm(clean):
    env = _env(perturb="camera,light=0.7,table=random,distractors=4")
    try:
        for seed in (10000, 10001):
            clean.reset(seed=seed)
            env.reset(seed=seed)
            assert env.episode.prompt == clean.episode.prompt
            np.testing.assert_array_equal(env.state().goal, clean.state().goal)
            np.testing.assert_allclose(env.joint_positions(), clean.joint_positions(), atol=1e-9)
            assert env.success() is clean.success() is False
    finally:
        env.close()


def test_camera_shift_moves_the_exterior_views_only_and_is_the_seeds(clean):
    env = _env(perturb="camera=0.03")
    try:
        base = _images(clean, 10000)
        shifted = _images(env, 10000)
        for key in EXTERIOR:
            assert np.abs(shifted[key] - base[key]).mean() > 2, key  # the scene moved in the image
        np.testing.assert_array_equal(shifted[WRIST], base[WRIST])  # the wrist camera rides on the hand: not moved
        moved = env.model.cam_pos[[env.model.camera(CAMERAS[k]).id for k in EXTERIOR]]
        home = clean.model.cam_pos[[clean.model.camera(CAMERAS[k]).id for k in EXTERIOR]]
        np.testing.assert_allclose(np.linalg.norm(moved - home, axis=1), 0.03)  # that far, in some direction
        ids = [env.model.camera(CAMERAS[k]).id for k in EXTERIOR]
        dots = np.abs(np.sum(env.model.cam_quat[ids] * clean.model.cam_quat[ids], axis=1))
        np.testing.assert_allclose(np.degrees(2 * np.arccos(np.minimum(dots, 1))), 3.0, atol=1e-6)  # and turned 3 deg
        again = _images(env, 10000)  # the same seed: the same shift (none accumulated over resets)
        for key in CAMERAS:
            np.testing.assert_array_equal(again[key], shifted[key])
        env.reset(seed=10001)
        assert not np.allclose(env.model.cam_pos[[env.model.camera(CAMERAS[k]).id for k in EXTERIOR]], moved)
    finally:
        env.close()


def test_light_scales_brightness_and_leaves_the_geometry(clean):
    base = _images(clean, 10000)
    for scale, darker in ((0.5, True), (1.5, False)):
        env = _env(perturb=f"light={scale}")
        try:
            lit = _images(env, 10000)
            for key in CAMERAS:
                assert (lit[key].mean() < base[key].mean() - 5) if darker else (lit[key].mean() > base[key].mean() + 5)
            np.testing.assert_array_equal(env.model.cam_pos, clean.model.cam_pos)
            np.testing.assert_array_equal(env.model.geom_rgba, clean.model.geom_rgba)
        finally:
            env.close()


def test_table_colour_is_drawn_per_episode_or_named(clean):
    table = clean.model.geom("table").id
    env = _env(perturb="table=random")
    try:
        env.reset(seed=10000)
        first = env.model.geom_rgba[table].copy()
        env.reset(seed=10001)
        assert not np.allclose(env.model.geom_rgba[table], first)  # another episode, another colour
        env.reset(seed=10000)
        np.testing.assert_array_equal(env.model.geom_rgba[table], first)
        others = np.ones(env.model.ngeom, bool)
        others[table] = False
        clean.reset(seed=10000)
        np.testing.assert_array_equal(env.model.geom_rgba[others], clean.model.geom_rgba[others])
    finally:
        env.close()
    env = _env(perturb="table=blue")
    try:
        base, blue = _images(clean, 10000), _images(env, 10000)
        # the table fills the bottom of the exterior views: bluer than the clean wooden one
        for key in EXTERIOR:
            rows = slice(SIZE[0] * 3 // 4, None)
            assert (blue[key][rows, :, 2] - blue[key][rows, :, 0]).mean() > (
                base[key][rows, :, 2] - base[key][rows, :, 0]).mean() + 20
    finally:
        env.close()


def test_a_random_table_colour_keeps_clear_of_the_colours_the_task_names():
    """Reach seed 3 drew a red-ish table under the red ball; the draw is redone until clear of the task's colours."""
    from worldpolicy.sim.perturb import TABLE_COLOR_CLEARANCE
    from worldpolicy.sim.tasks import COLORS

    env = _env(perturb="table=random")
    try:
        table = env.model.geom("table").id
        for seed in range(12):
            env.reset(seed=seed)
            for name in set(env.episode.colors.values()):
                gap = np.linalg.norm(env.model.geom_rgba[table, :3] - np.asarray(COLORS[name][:3]))
                assert gap >= TABLE_COLOR_CLEARANCE, (seed, name, gap)
    finally:
        env.close()


@pytest.mark.parametrize("task", ["reach", "pick_place"])
def test_distractors_stand_on_the_table_clear_of_the_tasks_objects(task):
    env = _env(task, perturb="distractors=4")
    try:
        names = [f"distractor_{i}" for i in range(4)]
        for seed in range(10000, 10005):
            env.reset(seed=seed)
            state = env.state()
            taken = [state.goal[:2], *(state.objects[n][:2] for n in env.task.object_names)]
            xy = [env.data.body(n).xpos[:2].copy() for n in names]
            for i, p in enumerate(xy):
                assert all(np.linalg.norm(p - q) > 0.06 for q in taken), (seed, i)  # footprint + clearance
                assert env.data.body(names[i]).xpos[2] < TABLE_TOP + 0.05  # on the table, settled
            colors = {tuple(env.model.geom_rgba[env.model.geom(n).id]) for n in names}
            from worldpolicy.sim.tasks import COLORS

            assert not colors & {COLORS[c] for c in env.episode.colors.values()}  # no colour the prompt names
            if seed == 10000:
                first = xy
        env.reset(seed=10000)
        np.testing.assert_allclose([env.data.body(n).xpos[:2] for n in names], first)  # the seed's draw
    finally:
        env.close()


def test_gymnasium_make_takes_the_perturbation():
    import worldpolicy.sim  # noqa: F401  registers the ids

    env = gym.make("worldpolicy/Reach-v0", image_size=SIZE, perturb="light=0.7")
    try:
        env.reset(seed=1)
        assert env.unwrapped.perturbation == Perturbation(light=0.7)
    finally:
        env.close()
    with pytest.raises(ValueError, match="perturb: unknown perturbation 'dark'"):
        gym.make("worldpolicy/Reach-v0", perturb="dark")


def test_the_command_that_continues_a_run_repeats_each_perturb_given():
    import argparse

    from worldpolicy.sim import commands

    parser = argparse.ArgumentParser()
    commands._add_arguments(parser)
    args = parser.parse_args(["--policy", "scripted", "--perturb", "light=0.7", "--perturb", "camera,table=red"])
    assert commands._resume_command(args) == ("worldpolicy sim --policy scripted --seed 10000 --perturb light=0.7 "
                                              "--perturb camera,table=red --resume")


def test_sim_cli_refuses_a_bad_perturb_before_anything_loads(tmp_path, capsys, monkeypatch):
    import worldpolicy.sim.env as env_module

    monkeypatch.setattr(env_module, "TabletopEnv", None)  # building the scene would fail: the check comes first
    assert main(["sim", "--policy", "scripted", "--perturb", "light=5", "--out", str(tmp_path / "run")]) == 2
    assert "sim: error: --perturb: 'light=5': light takes a number of 0.1 to 3" in capsys.readouterr().err
    assert main(["sim", "--policy", "scripted", "--perturb", "", "--out", str(tmp_path / "run")]) == 2
    assert "sim: error: --perturb: '' has an empty part" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_perturbed_runs_record_it_and_compare_pairs_them_by_seed(tmp_path, capsys):
    """The scripted expert sees no cameras: it still reaches every ball with the lights at 0.7, and `sim compare`
    lists the perturbation as the setting that differs, pairing the runs' shared seeds."""
    common = ["sim", "--policy", "scripted", "--task", "reach", "--videos", "0", "--no-progress", "--no-plots"]
    assert main([*common, "--episodes", "3", "--out", str(tmp_path / "clean")]) == 0
    assert main([*common, "--episodes", "3", "--perturb", "light=0.7", "--perturb", "camera=0.02",
                 "--out", str(tmp_path / "dim")]) == 0
    doc = json.loads((tmp_path / "dim" / "report.json").read_text())
    assert doc["schema"] == "worldpolicy.sim_eval/v1" and doc["perturb"] == "camera=0.02,light=0.7"
    assert doc["successes"] == 3
    assert json.loads((tmp_path / "clean" / "report.json").read_text())["perturb"] is None
    assert "perturbed `camera=0.02,light=0.7`" in (tmp_path / "dim" / "report.md").read_text()
    from worldpolicy.viz.report import write_report as write_page

    page = write_page(tmp_path / "dim").read_text()  # the run's page says it in its cards, the clean one's does not
    assert "<b>perturbed</b><span>camera=0.02,light=0.7</span>" in page
    assert "<b>perturbed</b>" not in write_page(tmp_path / "clean").read_text()
    capsys.readouterr()
    # resumed with another perturbation: refused, naming the flag
    assert main([*common, "--episodes", "4", "--perturb", "light=0.5", "--resume", "--out", str(tmp_path / "dim")]) == 2
    assert "--perturb: 'camera=0.02,light=0.7' -> 'light=0.5'" in capsys.readouterr().err
    assert main(["sim", "compare", str(tmp_path / "clean"), str(tmp_path / "dim"), "--out", str(tmp_path / "cmp"),
                 "--no-plots"]) == 0
    cmp = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [(d["setting"], d["flag"], d["values"]) for d in cmp["differences"]] == [
        ("perturb", "--perturb", [None, "camera=0.02,light=0.7"])]
    assert cmp["pairs"][0]["seeds"] == [10000, 10001, 10002] and cmp["pairs"][0]["both"] == 3
