"""`worldpolicy report` on what a real training run leaves: the page reads the trainer's own files (config.json,
trainer_state.json frames, embodiment.json, base_model.json, metrics.jsonl), so a change to what the trainer writes
that the page no longer finds fails here, not in front of a researcher."""

from __future__ import annotations

import html
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
    assert "episodes2" in text and "frames20" in text  # the dataset's meta/info.json: 2 episodes of 10 frames
    assert f"name{TINY_EMBODIMENT['name']}" in text and "0joint_0rad" in text and "7gripper1gripper" in text
    assert "observation/exterior_image_1_leftobservation.image.exterior_image_1_left64 × 96" in text
    assert "2checkpoints/step-0000002" in text
    assert re.search(r"3checkpoints/step-0000003[\d.]+LoRA adapter.*latest", text)
    latest = out.resolve() / "checkpoints" / "step-0000003"
    assert f"worldpolicy serve --checkpoint {latest}" in text and f"worldpolicy sim --policy {latest}" in text
    assert "--camera observation/exterior_image_2_left=exterior_image_2_left.png" in text
    assert "loss_action_policy" in text and "<section id=notes>" not in page
