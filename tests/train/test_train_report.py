"""`worldpolicy report` on what a real training run leaves: the page reads the trainer's own files (config.json,
trainer_state.json frames, embodiment.json, base_model.json, metrics.jsonl), so a change to what the trainer writes
that the page no longer finds fails here, not in front of a researcher."""

from __future__ import annotations

import html
import json
import re

from train_setup import TINY_EMBODIMENT

from worldpolicy.train.config import ObjectiveConfig


def test_the_report_of_a_lora_run_names_what_it_trained_and_its_latest_checkpoint(train_config, tiny_checkpoint,
                                                                                  tiny_dataset, tmp_path):
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer
    from worldpolicy.viz.report import write_report

    out = tmp_path / "run"
    objectives = {"preset": None, "policy": 1.0, "inverse_dynamics": 0.5}
    raw = train_config(out, objectives=objectives, optim={"steps": 3},
                       finetune={"mode": "lora", "lora_save": "adapter", "lora_rank": 4})
    Trainer(load_config(raw), progress=False).run()
    page = write_report(out).read_text()
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    mix = ", ".join(f"{k} {v:g}" for k, v in ObjectiveConfig(**objectives).weights().items() if v)
    assert mix == "policy 1, inverse_dynamics 0.5" and mix in text
    assert "steps3 of 3" in text and "LoRA (rank 4" in text and "precisionfp32" in text and "batch2" in text
    assert f"starting checkpoint{tiny_checkpoint}" in text and f"dataset{tiny_dataset}" in text
    # what a reader reproducing it needs: the starting weights by content, the data's fingerprint, the versions
    from worldpolicy import __version__
    from worldpolicy.models import checkpoint_files

    assert f"starting checkpoint{tiny_checkpoint} (files {checkpoint_files(tiny_checkpoint)['files']})" in text
    assert re.search(r"data fingerprint[0-9a-f]{24}", text) and f"softwareworldpolicy {__version__}, python " in text
    assert "episodes2" in text and "frames20" in text  # the dataset's meta/info.json: 2 episodes of 10 frames
    assert f"name{TINY_EMBODIMENT['name']}" in text and "0joint_0rad" in text and "7gripper1gripper" in text
    assert "observation/exterior_image_1_leftobservation.image.exterior_image_1_left64 × 96" in text
    assert "2checkpoints/step-0000002" in text
    assert re.search(r"3checkpoints/step-0000003[\d.]+LoRA adapter.*latest", text)
    latest = out.resolve() / "checkpoints" / "step-0000003"
    assert f"worldpolicy serve --checkpoint {latest}" in text and f"worldpolicy sim --policy {latest}" in text
    assert "--camera observation/exterior_image_2_left=exterior_image_2_left.png" in text
    assert "loss_action_policy" in text and "<section id=notes>" not in page
    trained = page.split("<section id=training>", 1)[1].split("</section>", 1)[0]  # (train.log's lines say "off")
    assert "image augmentation" not in trained  # trained without `[augment]`: not said
    assert "command" not in text.split("What was trained")[1].split("Embodiment")[0]  # from Python: none
    state = latest / "trainer_state.json"  # run by `worldpolicy train`: its line as typed, and where
    state.write_text(json.dumps({**json.loads(state.read_text()), "command": "worldpolicy train run.toml",
                                 "cwd": "/home/me/proj"}))
    text = html.unescape(re.sub(r"<[^>]+>", "", write_report(out).read_text()))
    assert "commandworldpolicy train run.toml" in text and "command typed in/home/me/proj" in text


def test_the_pages_sim_command_evaluates_on_scenes_the_sim_dataset_did_not_record(tmp_path):
    """`worldpolicy sim` and `dataset from-sim` both started at seed 0: the page's evaluation line ran the policy on the
    very scenes it was trained on, and a researcher read that success rate as the policy's. The line names its seed,
    the run's own evaluation's where it clears the recording, so it holds whatever `sim`'s default."""
    from train_setup import CAMERAS, IMAGE_SIZE, make_episode

    from worldpolicy.data import write_episodes
    from worldpolicy.data.from_sim import sim_features
    from worldpolicy.viz.train_report import _usage

    def recording(provenance):
        root = tmp_path / f"ds{len(list(tmp_path.iterdir()))}"
        write_episodes(root, [make_episode(0)], fps=15, features=sim_features("panda", IMAGE_SIZE, CAMERAS),
                       video_codec="libx264rgb", provenance=provenance)
        return str(root)

    said = []

    def sim_line(provenance, evaluation=None, data=None):
        page = html.unescape(re.sub(r"<[^>]+>", "\n", _usage(tmp_path / "ckpt", None, {
            "data": data or {"dataset": recording(provenance)}, "eval": {"task": "reach", **(evaluation or {})}})))
        said[:] = [line for line in page.splitlines() if line.startswith("evaluate it in the MuJoCo sim")]
        return next(line for line in page.splitlines() if line.startswith("worldpolicy sim"))

    recorded = {"source": "worldpolicy dataset from-sim", "task": "reach", "seeds": [0, 1, 3, 4]}  # seed 2 failed
    assert sim_line(recorded).endswith("--task reach --episodes 10 --seed 5 --out runs/sim")
    assert said[0].endswith(f", on scenes its dataset {tmp_path / 'ds0'} did not record (reach seeds 0..4)")
    # the run's own evaluation scenes ([eval] seed) where the recording did not reach them, else past the recording
    assert sim_line(recorded, {"seed": 10_000}).endswith("--task reach --episodes 10 --seed 10000 --out runs/sim")
    assert sim_line(recorded, {"seed": 3}).endswith("--task reach --episodes 10 --seed 5 --out runs/sim")
    for other in (None, {**recorded, "task": "push"}):  # no sim seeds, or another task's: its default seeds
        assert sim_line(other).endswith("--task reach --episodes 10 --out runs/sim")
    # a mixture: past every table's recording of the task (not only a first table's, nor another task's)
    tables = [{"dataset": recording({**recorded, "task": "push", "seeds": [40]}), "weight": 1},
              {"dataset": recording(recorded), "weight": 1}, {"dataset": recording({**recorded, "seeds": [8]})}]
    assert sim_line(None, data={"dataset": "", "mixture": tables}).endswith("--seed 9 --out runs/sim")
    # named as the seeds' source says them: the tables recording the task, not the one recording another
    assert said[0].endswith(f"on scenes its datasets {tables[1]['dataset']}, {tables[2]['dataset']} did not record "
                            "(reach seeds 0..8)")


def test_the_episodes_trained_are_named_only_when_a_selection_is_set():
    from worldpolicy.viz.train_report import _episode_selection

    assert _episode_selection({"episodes": None, "exclude_episodes": []}, {}) is None
    assert _episode_selection({}, {}) is None
    assert _episode_selection({"episodes": None, "exclude_episodes": [3]}, {}) == "all except 3"
    assert _episode_selection({"episodes": [0, 2, 5], "exclude_episodes": [2]}, {}) == "0, 2, 5 except 2"
    assert _episode_selection({"episodes": list(range(40))}, {}) == ", ".join(map(str, range(12))) + ", ... (40 in all)"
