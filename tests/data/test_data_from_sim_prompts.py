"""`dataset from-sim`'s instructions in other words: `--prompt-template` (every episode's prompt in the user's words,
as `worldpolicy sim` takes it), the paraphrases `--perturb prompt=paraphrase` drew from (recorded, compared on
`--resume`), and `--prompt-variants all` (every wording of an episode's instruction as one " | "-joined task, of which
training draws one per example)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("mujoco", reason="the sim extra (MuJoCo) is not installed")
pytest.importorskip("worldpolicy.sim.policies", reason="worldpolicy.sim has no scripted expert here")

# 3 steps: tiny episodes, kept though the expert does not solve them
_TINY = {"image_size": (24, 24), "max_steps": 3, "cameras": ["observation/wrist_image_left"], "keep_failures": True}
_ARGV = ["--task", "reach", "--max-steps", "3", "--image-size", "24x24", "--cameras", "observation/wrist_image_left",
         "--no-progress", "--keep-failures"]
_MINE = "move to the {color} {object}"


def _rewrite_provenance(root, change) -> None:
    """Edit the provenance of the dataset at `root` as `change(doc)` does (as an older worldpolicy left it)."""
    from worldpolicy.fileio import PROVENANCE_FILE

    path = root / PROVENANCE_FILE
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def _wordings(prompt: str) -> list[str]:
    """Reach's wordings of the ball its own `prompt` names: that prompt, then its paraphrases."""
    from worldpolicy.sim.tasks import ReachTask

    color = prompt.removeprefix("move the gripper to the ").removesuffix(" ball")
    return [prompt, *(p.format(color=color) for p in ReachTask.paraphrases)]


def test_a_prompt_template_records_the_same_scenes_in_the_users_words(tmp_path):
    from worldpolicy.data.from_sim import check_recording, expert_episodes
    from worldpolicy.sim.tasks import get_task

    options = {"seed": 4, **_TINY}
    clean = expert_episodes("reach", 1, **options)
    mine = expert_episodes("reach", 1, prompt_template=_MINE, **options)
    assert clean.provenance["prompt_template"] is None and mine.provenance["prompt_template"] == _MINE
    assert clean.provenance["prompt_variants"] == "drawn" and clean.provenance["paraphrases"] is None
    (a,), (b,) = list(clean), list(mine)
    color = a["task"].removeprefix("move the gripper to the ").removesuffix(" ball")
    assert a["task"] == get_task("reach").prompt.format(color=color, object="ball")
    assert b["task"] == f"move to the {color} ball"  # the seed's scene, its colour in the user's words
    for name in a["frames"]:
        np.testing.assert_array_equal(a["frames"][name], b["frames"][name])

    # refused before anything is built: an unknown placeholder, and a template beside prompt=paraphrase
    with pytest.raises(ValueError, match=r"^prompt_template: 'go to the \{colour\}': unknown placeholder \{colour\}; "
                                         r"task 'reach' fills \{color\}, \{object\}"):
        expert_episodes("reach", 1, prompt_template="go to the {colour}")
    with pytest.raises(ValueError, match=r"^prompt_template: .* given with perturb prompt=paraphrase: both reword"):
        expert_episodes("reach", 1, prompt_template=_MINE, perturb="prompt=paraphrase")

    from worldpolicy.data import write_episodes

    made = write_episodes(tmp_path / "mine", [{"frames": {"action": np.zeros((3, 2), np.float32)}, "task": "x"}],
                          fps=15, provenance={**mine.provenance, "seeds": [4]})
    check_recording(made, "reach", prompt_template=_MINE, **options)
    with pytest.raises(ValueError, match=r"other settings: prompt_template: 'move to the \{color\} \{object\}' -> "
                                         r"None\. Record with"):
        check_recording(made, "reach", **options)


def test_the_command_line_takes_a_prompt_template_and_refuses_another_on_resume(tmp_path, capsys):
    from worldpolicy.cli import main
    from worldpolicy.data import LeRobotDataset

    root = tmp_path / "ds"
    # refused naming the flags, before anything is written
    assert main(["dataset", "from-sim", str(root), *_ARGV, "--prompt-template", "go to the {goal}"]) == 2
    assert ("error: --prompt-template: 'go to the {goal}': unknown placeholder {goal}; task 'reach' fills {color}, "
            "{object}" in capsys.readouterr().err)
    assert main(["dataset", "from-sim", str(root), *_ARGV, "--prompt-template", _MINE, "--perturb",
                 "prompt=paraphrase"]) == 2
    assert ("error: --prompt-template: 'move to the {color} {object}' given with --perturb prompt=paraphrase: both "
            "reword the prompt; give one of them" in capsys.readouterr().err)
    assert not root.exists()

    assert main(["dataset", "from-sim", str(root), "--episodes", "1", *_ARGV, "--prompt-template", _MINE]) == 0
    ds = LeRobotDataset.open(root)
    assert ds.provenance["prompt_template"] == _MINE and ds.episode(0).task.startswith("move to the ")
    assert "--prompt-template 'move to the {color} {object}'" in ds.provenance["command"]
    capsys.readouterr()
    for other in ([], ["--prompt-template", "go to the {color} {object}"]):
        assert main(["dataset", "from-sim", str(root), "--episodes", "2", "--resume", *_ARGV, *other]) == 2
        err = capsys.readouterr().err
        assert "error: --resume: " in err and f"prompt_template: {_MINE!r} -> " in err
    assert main(["dataset", "from-sim", str(root), "--episodes", "2", "--resume", *_ARGV, "--prompt-template",
                 _MINE]) == 0
    assert [e.task.startswith("move to the ") for e in map(LeRobotDataset.open(root).episode, (0, 1))] == [True, True]


def test_a_paraphrased_recording_records_its_paraphrases_and_refuses_others_on_resume(tmp_path, monkeypatch):
    """The paraphrases prompt=paraphrase drew from are the provenance's: a resumed recording after they changed
    (another worldpolicy) would tell the same scenes in other words, mixed in one dataset. One recorded before they
    were recorded continues, as `worldpolicy sim --resume` continues such a run."""
    from worldpolicy.data import LeRobotDataset
    from worldpolicy.data.from_sim import sim_to_dataset
    from worldpolicy.sim.tasks import ReachTask

    root = tmp_path / "ds"
    first = sim_to_dataset(root, "reach", 1, perturb="prompt=paraphrase", **_TINY)
    assert first.dataset.provenance["paraphrases"] == list(ReachTask.paraphrases)
    assert first.dataset.provenance["prompt_variants"] == "drawn"
    edited = (*ReachTask.paraphrases[:-1], "head for the {color} ball")
    monkeypatch.setattr(ReachTask, "paraphrases", edited)
    with pytest.raises(ValueError, match=r"^resume: .* was recorded with other settings: paraphrases: \[.*'move to "
                                         r"the \{color\} sphere'\] -> \[.*'head for the \{color\} ball'\]\. Pass"):
        sim_to_dataset(root, "reach", 2, perturb="prompt=paraphrase", resume=True, **_TINY)
    assert LeRobotDataset.open(root).num_episodes == 1

    _rewrite_provenance(root, lambda doc: [doc.pop(key) for key in ("paraphrases", "prompt_template",
                                                                     "prompt_variants")])
    resumed = sim_to_dataset(root, "reach", 2, perturb="prompt=paraphrase", resume=True, **_TINY)
    assert resumed.resumed == 1 and resumed.dataset.num_episodes == 2
    assert resumed.dataset.provenance["paraphrases"] == list(edited)  # this recording's, as the record says it


def test_all_prompt_variants_are_one_task_of_which_training_draws_one_per_example(tmp_path):
    """`prompt_variants="all"`: each episode's task is every wording of its instruction, its drawn prompt first, then
    the task's own and its paraphrases filled for its scene, joined by " | ": the data loader splits it and draws one
    per example (`caption_variants`), every one of them over enough draws; tools that need one prompt (`dataset
    label`, `dataset eval`, `dataset frame`) read the first, the prompt the episode ran with."""
    from worldpolicy.data import LeRobotDataset, sample_training_examples
    from worldpolicy.data.from_sim import ACTION_KEYS, sim_to_dataset
    from worldpolicy.data.sampling import caption_variants
    from worldpolicy.sim.tasks import ReachTask

    drawn = sim_to_dataset(tmp_path / "drawn", "reach", 2, seed=3, **_TINY).dataset
    every = sim_to_dataset(tmp_path / "all", "reach", 2, seed=3, prompt_variants="all", **_TINY).dataset
    assert every.provenance["prompt_variants"] == "all"
    assert every.provenance["paraphrases"] == list(ReachTask.paraphrases)  # what the tasks hold, compared on resume
    for i in range(2):
        wordings, task = _wordings(drawn.episode(i).task), every.episode(i).task
        assert task == " | ".join(wordings) and caption_variants(task) == wordings
        np.testing.assert_array_equal(drawn.episode(i).frames[ACTION_KEYS[0]], every.episode(i).frames[ACTION_KEYS[0]])

    reopened = LeRobotDataset.open(every.root)

    def drawn_tasks(seed: int, caption_sep=" | "):
        return [(ex.episode_index, ex.task) for ex in sample_training_examples(
            reopened, "droid", chunk_size=1, action_keys=list(ACTION_KEYS), video_keys=reopened.video_keys,
            pad=True, shuffle=True, seed=seed, caption_sep=caption_sep)]

    seen = {0: set(), 1: set()}
    for seed in range(30):
        for index, task in drawn_tasks(seed):
            assert task in caption_variants(every.episode(index).task)  # one wording, never the joined string
            seen[index].add(task)
    assert all(seen[i] == set(caption_variants(every.episode(i).task)) for i in (0, 1))  # each drawn at some step
    assert {task for _, task in drawn_tasks(0, None)} == set(every.tasks)  # caption_sep=None: as stored

    # a policy's recording of the same seeds: the same scenes, so the same wordings
    by_random = sim_to_dataset(tmp_path / "random", "reach", 2, seed=3, prompt_variants="all", policy="random",
                               **_TINY).dataset
    assert [by_random.episode(i).task for i in (0, 1)] == [every.episode(i).task for i in (0, 1)]

    # under prompt=paraphrase the drawn paraphrase leads, each wording once (the task's own among them)
    shifted = sim_to_dataset(tmp_path / "shifted", "reach", 1, seed=3, prompt_variants="all",
                             perturb="prompt=paraphrase", **_TINY).dataset
    variants = caption_variants(shifted.episode(0).task)
    assert variants[0] != drawn.episode(0).task and sorted(variants) == sorted(_wordings(drawn.episode(0).task))


def test_prompt_variants_on_the_command_line_are_checked_recorded_and_resumed(tmp_path, capsys):
    from worldpolicy.cli import main
    from worldpolicy.data import LeRobotDataset

    root = tmp_path / "ds"
    with pytest.raises(SystemExit, match="2"):  # argparse's usage error
        main(["dataset", "from-sim", str(root), *_ARGV, "--prompt-variants", "some"])
    assert "argument --prompt-variants: invalid choice: 'some' (choose from" in capsys.readouterr().err
    assert main(["dataset", "from-sim", str(root), "--episodes", "1", *_ARGV, "--prompt-variants", "all"]) == 0
    ds = LeRobotDataset.open(root)
    assert ds.provenance["prompt_variants"] == "all" and " | " in ds.episode(0).task
    assert "--prompt-variants all" in ds.provenance["command"]
    capsys.readouterr()
    assert main(["dataset", "from-sim", str(root), "--episodes", "2", "--resume", *_ARGV]) == 2
    assert "prompt_variants: 'all' -> 'drawn'" in capsys.readouterr().err
    assert main(["dataset", "from-sim", str(root), "--episodes", "2", "--resume", *_ARGV, "--prompt-variants",
                 "all"]) == 0
    assert all(" | " in task for task in LeRobotDataset.open(root).tasks)

    # a recording from before prompt variants were recorded held each episode's prompt as drawn: it continues so
    old = tmp_path / "old"
    assert main(["dataset", "from-sim", str(old), "--episodes", "1", *_ARGV]) == 0
    _rewrite_provenance(old, lambda doc: [doc.pop(key) for key in ("paraphrases", "prompt_template",
                                                                    "prompt_variants")])
    assert main(["dataset", "from-sim", str(old), "--episodes", "2", "--resume", *_ARGV, "--prompt-variants",
                 "all"]) == 2
    assert "prompt_variants: 'drawn' -> 'all'" in capsys.readouterr().err
    assert main(["dataset", "from-sim", str(old), "--episodes", "2", "--resume", *_ARGV]) == 0
    assert LeRobotDataset.open(old).num_episodes == 2


def test_bad_prompt_variants_are_refused_naming_the_parameter():
    from worldpolicy.data.from_sim import expert_episodes

    with pytest.raises(ValueError, match=r"^prompt_variants='some'; accepted: 'drawn' \(the prompt the episode ran "
                                         r"with\); 'all' \(every wording"):
        expert_episodes("reach", 1, prompt_variants="some")
