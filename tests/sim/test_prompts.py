"""The instruction reworded (`--perturb prompt=paraphrase`, `--prompt-template`): the same seeds' scenes, other
words."""

import html
import json

import numpy as np
import pytest

mujoco = pytest.importorskip("mujoco")
pytest.importorskip("gymnasium")

from worldpolicy.cli import main
from worldpolicy.sim.env import TabletopEnv
from worldpolicy.sim.perturb import Perturbation, check_rewording, parse_perturbations
from worldpolicy.sim.tasks import COLORS, PROMPT_CHARACTERS, check_prompt_template, get_task, list_tasks
from worldpolicy.viz.compare_page import build_compare_html

SEEDS = range(10000, 10008)


@pytest.mark.parametrize("task", list_tasks())
def test_each_paraphrase_names_the_same_things_in_other_words(task):
    """The paraphrases are data the checks hold too: the task's placeholders only, a prompt's characters, never the
    drawn wording; and the drawn wording is the task's template filled (one place for it)."""
    t = get_task(task)
    assert len(t.paraphrases) >= 3 and len(set(t.paraphrases)) == len(t.paraphrases)
    for template in (t.prompt, *t.paraphrases):
        assert check_prompt_template(t, template) == template
        assert "{color}" in template and ("{goal_color}" in template) == bool(t.object_names)
    assert t.prompt not in t.paraphrases
    episode = t.sample(np.random.default_rng(0))
    assert episode.prompt == t.fill_prompt(t.prompt, episode)
    assert set(episode.prompt) <= set(PROMPT_CHARACTERS)


def test_the_drawn_prompts_are_the_wording_they_were():
    """The template moved into the task definition: every seed still draws the prompt it drew before."""
    said = {"reach": "move the gripper to the {} ball", "push": "push the {} cube onto the {} circle",
            "pick_place": "put the {} cube on the {} pad"}
    for task, wording in said.items():
        t = get_task(task)
        for seed in range(5):
            e = t.sample(np.random.default_rng(seed))
            colors = [e.colors[n] for n in (*t.object_names, "goal")][:wording.count("{}")]
            assert e.prompt == wording.format(*colors)


def test_paraphrase_is_a_perturbation_of_the_table():
    p = parse_perturbations("light=0.7,prompt")
    assert p == Perturbation(light=0.7, prompt="paraphrase") and p.spec == "light=0.7,prompt=paraphrase"
    assert parse_perturbations(p.spec) == p
    with pytest.raises(ValueError, match=r"^perturb: 'prompt=rephrase': prompt takes paraphrase; it means the "):
        parse_perturbations("prompt=rephrase")


@pytest.mark.parametrize("template, said", [
    ("move to the {colour} ball", "unknown placeholder {colour}; task 'reach' fills {color}, {object}"),
    ("put it on the {goal_color} pad", "unknown placeholder {goal_color}; task 'reach' fills {color}, {object}"),
    ("go to the {} ball", "a placeholder {} names nothing; task 'reach' fills {color}, {object}"),
    ("go to the {color.upper} ball", "unknown placeholder {color.upper}"),
    ("go to the {color!r} ball", "{color!r} formats its placeholder; give it bare: {color}"),
    ("go to the {color:>9} ball", "{color:>9} formats its placeholder; give it bare: {color}"),
    ("go to the {color ball", "expected '}' before end of string"),
    ("go to the red ball!", "character(s) '!' outside a prompt's alphabet: letters, digits and \" ,.'-\""),
    ("   ", ("expected the prompt's words, with any of the placeholders task 'reach' fills: {color}, {object} "
            "(e.g. 'move the gripper to the {color} {object}')")),
    (3, "expected the prompt's words"),
    ("go " * 90, "its prompts run to 270 characters; at most 256"),
])
def test_a_bad_template_names_the_parameter_what_was_given_and_the_accepted_names(template, said):
    with pytest.raises(ValueError) as caught:
        check_prompt_template("reach", template)
    assert str(caught.value).startswith(f"prompt_template: {template!r}: ") and said in str(caught.value)


def test_a_template_beside_a_paraphrase_is_refused_and_push_takes_the_goals_names():
    with pytest.raises(ValueError, match=r"^--prompt-template: 'reach the \{color\} ball' given with --perturb "
                                         r"prompt=paraphrase: both reword the prompt; give one of them"):
        check_rewording(Perturbation(prompt="paraphrase"), "reach the {color} ball", "reach",
                        ("--prompt-template", "--perturb"))
    assert check_rewording(Perturbation(light=0.5), None, "push") is None
    assert check_rewording(Perturbation(), "slide the {color} {object} to the {goal_color} {goal}", "push")


# --- in the env ---------------------------------------------------------------------------------------------------


def _episodes(env, seeds=SEEDS):
    out = []
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        assert obs["prompt"] == info["prompt"] == env.episode.prompt  # what the policy is told
        assert env.observation_space["prompt"].contains(obs["prompt"])
        out.append((env.episode, env.state()))
    return out


@pytest.mark.parametrize("task", ["reach", "pick_place"])
def test_a_paraphrase_keeps_the_seeds_scene_and_rewords_its_prompt_from_the_seed(task):
    clean, reworded = (TabletopEnv(task, image_size=None, perturb=p) for p in (None, "prompt=paraphrase"))
    try:
        before, after = _episodes(clean), _episodes(reworded)
        again = _episodes(reworded)
    finally:
        clean.close()
        reworded.close()
    t = get_task(task)
    for (e0, s0), (e1, s1), (e2, _) in zip(before, after, again):
        assert e1.colors == e0.colors and e1.yaws == e0.yaws
        for name in e0.positions:
            np.testing.assert_array_equal(e1.positions[name], e0.positions[name])
        np.testing.assert_array_equal(s1.goal, s0.goal)
        np.testing.assert_array_equal(s1.tcp, s0.tcp)
        assert e1.prompt != e0.prompt  # never the drawn wording
        assert e1.prompt in {t.fill_prompt(p, e0) for p in t.paraphrases}  # naming the same colours
        assert e2.prompt == e1.prompt  # the seed's paraphrase, every time
    assert len({e.prompt.replace(e.colors[t.object_names[0] if t.object_names else "goal"], "")
                for e, _ in after}) > 1  # the paraphrase is drawn per episode, not one for the run


def test_a_template_is_every_episodes_prompt_in_the_users_words_on_the_same_scenes():
    clean = TabletopEnv("push", image_size=None)
    mine = TabletopEnv("push", image_size=None, prompt_template="slide the {color} {object} to the {goal_color} spot")
    try:
        for (e0, s0), (e1, s1) in zip(_episodes(clean, SEEDS[:3]), _episodes(mine.replica(), SEEDS[:3])):
            assert e1.prompt == f"slide the {e0.colors['cube']} cube to the {e0.colors['goal']} spot"
            np.testing.assert_array_equal(s1.objects["cube"], s0.objects["cube"])
            assert e1.colors == e0.colors and set(e1.colors.values()) <= set(COLORS)
    finally:
        clean.close()
        mine.close()
    with pytest.raises(ValueError, match="prompt_template: 'to the {goal}': unknown placeholder {goal}; task 'reach'"):
        TabletopEnv("reach", image_size=None, prompt_template="to the {goal}")


def test_sim_cli_refuses_a_bad_template_before_anything_loads(tmp_path, capsys, monkeypatch):
    import worldpolicy.sim.env as env_module

    monkeypatch.setattr(env_module, "TabletopEnv", None)  # building the scene (or loading the model) would fail
    out = str(tmp_path / "run")
    assert main(["sim", "--task", "reach", "--prompt-template", "move to the {colour} {object}", "--out", out]) == 2
    assert ("sim: error: --prompt-template: 'move to the {colour} {object}': unknown placeholder {colour}; task "
            "'reach' fills {color}, {object}") in capsys.readouterr().err
    assert main(["sim", "--task", "reach", "--prompt-template", "go to the {color} ball", "--perturb",
                 "prompt=paraphrase", "--out", out]) == 2
    assert "--prompt-template: 'go to the {color} ball' given with --perturb prompt=paraphrase" in \
        capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_reworded_runs_record_their_prompts_and_compare_lists_them_by_seed(tmp_path, capsys):
    base = ["sim", "--policy", "scripted", "--task", "reach", "--videos", "0", "--no-progress", "--no-plots"]
    common = [*base, "--episodes", "2"]
    template = "move to the {color} {object}"
    assert main([*common, "--out", str(tmp_path / "clean")]) == 0
    assert main([*common, "--perturb", "prompt", "--out", str(tmp_path / "para")]) == 0
    assert main([*common, "--prompt-template", template, "--out", str(tmp_path / "mine")]) == 0
    reports = {name: json.loads((tmp_path / name / "report.json").read_text()) for name in ("clean", "para", "mine")}
    assert [(r["perturb"], r["prompt_template"]) for r in reports.values()] == [
        (None, None), ("prompt=paraphrase", None), (None, template)]
    prompts = {name: [e["prompt"] for e in r["episodes"]] for name, r in reports.items()}
    assert prompts["mine"] == [p.replace("move the gripper to", "move to") for p in prompts["clean"]]
    assert all(a != b for a, b in zip(prompts["clean"], prompts["para"]))
    assert f"prompt template `{template}`" in (tmp_path / "mine" / "report.md").read_text()
    assert prompts["para"][0] in (tmp_path / "para" / "episodes.csv").read_text()
    capsys.readouterr()
    # resumed in other words: refused, naming the flag
    assert main([*base, "--episodes", "3", "--resume", "--out", str(tmp_path / "mine")]) == 2
    assert f"--prompt-template: {template!r} -> none" in capsys.readouterr().err
    assert main(["sim", "compare", *(str(tmp_path / n) for n in ("clean", "para", "mine")), "--out",
                 str(tmp_path / "cmp"), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert f"prompts differ on 2 seeds (seeds 10000..10001), e.g. 10000: {prompts['clean'][0]} | " in printed
    cmp = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [(d["setting"], d["flag"]) for d in cmp["differences"]] == [("perturb", "--perturb"),
                                                                       ("prompt_template", "--prompt-template")]
    assert cmp["prompts"] == [{"seed": 10000 + i, "prompts": [prompts[n][i] for n in ("clean", "para", "mine")],
                               "success": [True] * 3} for i in range(2)]
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert f"| 10000 | {prompts['clean'][0]} (yes) | {prompts['para'][0]} (yes) | {prompts['mine'][0]} (yes) |" in md
    page = build_compare_html(tmp_path / "cmp")  # the page (--no-plots wrote none) shows the table compare.md has
    assert "<section id=prompts><h2>Prompts</h2>" in page
    for i in range(2):
        assert f"<td class='n'>{10000 + i}</td>" + "".join(
            f"<td class='k'>{html.escape(prompts[n][i])} (yes)</td>" for n in ("clean", "para", "mine")) in page


def test_a_task_of_ones_own_without_paraphrases_is_refused_a_paraphrase_when_the_env_is_made():
    from worldpolicy.sim.tasks import ReachTask

    class Plain(ReachTask):
        name = "plain_reach"
        paraphrases = ()

    with pytest.raises(ValueError, match=r"^perturb: prompt=paraphrase: task 'plain_reach' has no paraphrases"):
        TabletopEnv(Plain(), image_size=None, perturb="prompt")


def test_a_resume_drawing_from_other_paraphrases_is_refused_and_an_older_report_continues(tmp_path, capsys,
                                                                                            monkeypatch):
    """Editing `Task.paraphrases` changes what prompt=paraphrase tells the same seeds without changing the task's
    version: report.json records the wordings, and a resume drawing from others is refused, naming them; a report
    from before they were recorded continues."""
    from worldpolicy.sim.tasks import ReachTask

    out = tmp_path / "para"
    run = ["sim", "--policy", "scripted", "--task", "reach", "--videos", "0", "--no-progress", "--no-plots",
           "--max-steps", "5", "--perturb", "prompt=paraphrase", "--out", str(out)]
    assert main([*run, "--episodes", "1"]) == 0
    assert json.loads((out / "report.json").read_text())["paraphrases"] == list(ReachTask.paraphrases)
    edited = (*ReachTask.paraphrases[:-1], "head for the {color} ball")
    monkeypatch.setattr(ReachTask, "paraphrases", edited)
    capsys.readouterr()
    assert main([*run, "--episodes", "2", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "--perturb prompt=paraphrase's wordings (the installed worldpolicy's Task.paraphrases): [" in err
    assert "'move to the {color} sphere'] -> [" in err and "'head for the {color} ball']" in err
    doc = json.loads((out / "report.json").read_text())
    assert doc["n_episodes"] == 1
    del doc["paraphrases"]  # as a report from before they were recorded
    (out / "report.json").write_text(json.dumps(doc))
    assert main([*run, "--episodes", "2", "--resume"]) == 0
    doc = json.loads((out / "report.json").read_text())
    assert doc["n_episodes"] == 2 and doc["paraphrases"] == list(edited)
