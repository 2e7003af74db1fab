"""A training run's page says what was trained and how to use it: before, it showed only the metrics plot (one point
after a few steps), and what was trained, on which frames, and which checkpoint to run were only files in a list."""

from __future__ import annotations

import json
import shlex

from test_report import _parse

from worldpolicy.train.config import ObjectiveConfig
from worldpolicy.viz import report

EMBODIMENT = {"name": "<b>bot", "layout": "joint_position", "action_dim": 3, "columns": ["j0", "j1", "<script>grip"],
              "units": ["rad", "deg", "1"], "gripper_column": "<script>grip", "fps": 10, "domain": "worldpolicy_bot",
              "camera_keys": ["observation/front", "observation/wrist"], "composite": "stacked", "state_history": 1}
FRAMES = {"cameras": {"observation/front": [120, 160], "observation/wrist": [96, 128]},
          "videos": {"observation/front": "observation.images.front", "observation/wrist": "observation.images.wrist"},
          "composed": [216, 160]}


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _train_run(tmp_path):
    """What `worldpolicy train` leaves (LoRA, adapter checkpoints, the cosmos_policy mix, sim evaluations logged),
    written directly: the page reads files, and these are the ones the trainer writes."""
    dataset = tmp_path / "data" / "my robot"
    _write(dataset / "meta" / "info.json", {"total_episodes": 7, "total_frames": 321, "fps": 10, "robot_type": "arm"})
    config = {"checkpoint": "shipped", "embodiment": EMBODIMENT, "seed": 5,
              "data": {"dataset": str(dataset), "chunk_size": 16, "source_embodiment": "<b>bot",
                       "action_conversion": "none"},
              "objectives": {"preset": "cosmos_policy", "policy": 1.0, "forward_dynamics": 0.0,
                             "inverse_dynamics": 0.0, "action_loss_weight": 1.0},
              "optim": {"steps": 10, "batch_size": 4, "lr": 3e-4, "precision": "bf16", "warmup_steps": 2},
              "finetune": {"mode": "lora", "lora_save": "adapter", "lora_rank": 8, "lora_alpha": 16.0},
              "eval": {"every": 4, "task": "reach", "episodes": 4}}
    run = tmp_path / "run"
    _write(run / "config.json", config)
    for step in (4, 8):
        folder = run / "checkpoints" / f"step-{step:07d}"
        _write(folder / "trainer_state.json", {"step": step, "config": config, "frames": FRAMES})
        _write(folder / "embodiment.json", EMBODIMENT)
        _write(folder / "base_model.json", {"base_model_name_or_path": "shipped"})
        (folder / "adapter.safetensors").write_bytes(b"\0" * 2_000_000)
    lines = [{"step": s, "loss": 1.0 / s, "lr": 3e-4, "loss_action_policy": 0.5 / s} for s in range(1, 9)]
    lines.insert(4, {"step": 4, "eval_task": "reach", "eval_success_rate": 0.25, "eval_episodes": 4})
    lines.append({"step": 8, "eval_task": "reach", "eval_success_rate": 0.5, "eval_episodes": 4,
                  "eval_perturb": "light=0.5"})  # `[eval] perturb`
    lines.insert(2, {"step": 2, "loss_action_inverse_dynamics": 0.75})  # an objective drawn at step 2 only
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    return run


def test_a_training_runs_page_says_what_was_trained_and_how_to_run_it(tmp_path):
    run = _train_run(tmp_path)
    raw = report.write_report(run).read_text()
    page = _parse(run / "index.html")
    for section in ("training", "embodiment", "frames", "checkpoints", "usage", "evaluation", "losses", "plots"):
        assert section in page.sections
    text = page.text
    mix = ", ".join(f"{k} {v:g}" for k, v in ObjectiveConfig(preset="cosmos_policy").weights().items() if v)
    assert "policy 0.5, forward_dynamics 0.25" in mix and mix in text  # the preset's mix, not the table's 1/0/0
    assert "steps8 of 10" in text and "LoRA (rank 8, alpha 16, saved adapter)" in text and "precisionbf16" in text
    assert "batch4" in text and "lr0.0003" in text and "starting checkpointshipped" in text
    assert f"dataset{tmp_path / 'data' / 'my robot'}" in text and "episodes7" in text and "frames321" in text
    # the embodiment, its columns with units, and the gripper named; escaped, never markup
    assert "1j1deg" in text and "2<script>grip1gripper" in text and "domainworldpolicy_bot" in text
    assert "<th class=k>unit</th><th class=k>role</th></tr>" in raw  # what "gripper" in the last column is
    assert "<script>grip" not in raw and "&lt;script&gt;grip" in raw and "&lt;b&gt;bot" in raw
    # the frames it trained on, as trainer_state.json recorded them
    assert "observation/wristobservation.images.wrist96 × 128" in text and "composed frame: 216 × 160" in text
    # the checkpoints: both steps, the latest marked, adapter kind, size on disk
    assert "4checkpoints/step-00000042.00LoRA adapter" in text
    assert "8checkpoints/step-00000082.00LoRA adapter (loaded onto its base)latest" in text
    # how to use the latest: its path quoted for a shell (the folder has a space), its own cameras and state
    latest = shlex.quote(str((run / "checkpoints" / "step-0000008").resolve()))
    assert f"worldpolicy serve --checkpoint {latest}" in text
    assert f"worldpolicy sim --policy {latest} --task reach" in text
    assert "--episodes 10 --out runs/sim" in text and "--perturb" not in text  # no `[eval] perturb`: none
    assert f"--checkpoint {latest}" in text and "--camera observation/front=front.png" in text and "--state=" in text
    # a frame of the training dataset taken as those inputs, its path quoted too
    assert (f"worldpolicy dataset frame {shlex.quote(str(tmp_path / 'data' / 'my robot'))} --episode 0 --frame 0 "
            f"--out runs/frame --checkpoint {latest}") in text
    # the sim evaluations over steps, and each objective's last logged loss at the step it was logged
    assert "4reach25.0 %4" in text and "8reach perturbed light=0.550.0 %4" in text
    assert "loss_action_inverse_dynamics0.752" in text and "loss_action_policy0.06258" in text
    assert "notes" not in page.sections


def test_the_sim_command_carries_the_runs_eval_perturb(tmp_path):
    """`[eval] perturb` set: the command that evaluates the latest checkpoint in the sim ran it on the scenes as drawn,
    not under the shifts the run's own evaluations used (and logged beside its success rates)."""
    run = _train_run(tmp_path)
    for path in (run / "config.json", *run.glob("checkpoints/step-*/trainer_state.json")):
        stored = json.loads(path.read_text())
        config = stored.get("config", stored)
        config["eval"]["perturb"] = ["light=0.5", "camera=0.03"]
        _write(path, stored)
    text = _parse(report.write_report(run)).text
    latest = shlex.quote(str((run / "checkpoints" / "step-0000008").resolve()))
    assert (f"worldpolicy sim --policy {latest} --task reach --episodes 10 --perturb light=0.5,camera=0.03 "
            "--out runs/sim") in text
    assert "under the shifts the run's own evaluation used" in text


def test_only_folders_that_load_as_a_checkpoint_are_listed_and_run(tmp_path):
    """The page lists a run's checkpoints as `fileio.saved_checkpoints` does: a `step-*` folder holding no
    model_index.json or base_model.json (a copy cut short, a folder of the user's) is no checkpoint to run."""
    run = _train_run(tmp_path)
    _write(run / "checkpoints" / "step-0000012" / "trainer_state.json", {"step": 12})
    html = report.write_report(run).read_text()
    listed = html.split("<section id=checkpoints>", 1)[1].split("</section>", 1)[0]
    assert "step-0000008" in listed and "step-0000012" not in listed
    assert "Use the latest checkpoint (step-0000008)" in html


def test_a_training_run_with_files_missing_still_gets_its_page_with_notes(tmp_path):
    run = _train_run(tmp_path)
    (run / "config.json").unlink()  # the checkpoints' trainer_state.json holds the config too
    (tmp_path / "data" / "my robot" / "meta" / "info.json").unlink()
    for folder in (run / "checkpoints").iterdir():
        state = json.loads((folder / "trainer_state.json").read_text())
        del state["frames"]  # a checkpoint an older version saved
        (folder / "trainer_state.json").write_text(json.dumps(state))
    (run / "checkpoints" / "step-0000008" / "embodiment.json").write_text("{torn")
    page = _parse(report.write_report(run))
    assert page.sections[0] == "notes" and "frames" not in page.sections
    text = page.text
    assert "no meta/info.json there" in text and "records no frames" in text
    assert "step-0000008's embodiment (embodiment.json) could not be read" in text
    assert "steps8 of 10" in text and "2<script>grip1" in text  # the config's embodiment table instead
    assert "usage" in page.sections and "episodes7" not in text
    assert "worldpolicy dataset frame" not in text  # the dataset is not there to take a frame of


def test_a_log_alone_is_drawn_and_says_what_it_lacks(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 0.5}))
    page = _parse(report.write_report(tmp_path))
    assert "no config.json and no checkpoints/step-* here" in page.text
    assert "plots" in page.sections and "training" not in page.sections


def test_a_run_of_a_registered_embodiment_shows_the_registrys_columns(tmp_path):
    """A registered embodiment leaves no embodiment.json (its trainer_state.json names it): its columns come from the
    registry, as the checkpoint runs with them."""
    from worldpolicy.embodiments import get_embodiment

    run = _train_run(tmp_path)
    for folder in (run / "checkpoints").iterdir():
        (folder / "embodiment.json").unlink()
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "embodiment": "droid"}))
    page = _parse(report.write_report(run))
    droid = get_embodiment("droid")
    assert f"name{droid.key}" in page.text and f"0{droid.columns[0]}{droid.units[0]}" in page.text
    assert f"domain{droid.domain}" in page.text and "notes" not in page.sections


def test_a_training_runs_page_is_built_without_torch(tmp_path):
    """The page reads JSON files only: it imported torch (seconds, and gigabytes on a login node) through
    engine.loading, for one file name. Checked in a fresh interpreter, as this one has torch loaded already, on a run
    as the trainer writes it now (its mix recorded: a run from before that record has its table read by train.config,
    which imports torch)."""
    import subprocess
    import sys

    run = _train_run(tmp_path)
    for state_file in run.glob("checkpoints/step-*/trainer_state.json"):
        state = json.loads(state_file.read_text())
        _write(state_file, {**state, "objective_weights": {"policy": 1.0}})
    code = ("import sys; from worldpolicy.viz.report import write_report; "
            f"write_report({str(run)!r}); print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"], done.stdout
    assert "checkpoints" in (run / "index.html").read_text()


def test_a_run_trained_with_action_prefixes_says_so(tmp_path):
    """`objectives.action_prefix_*` (real-time chunking) shapes what the checkpoints do with an action prefix: the
    page names it beside the objective mix; a run without it (or from before the setting) names none."""
    run = _train_run(tmp_path)
    assert "action prefix" not in _parse(report.write_report(run)).text
    for path in (run / "config.json", *run.glob("checkpoints/step-*/trainer_state.json")):
        stored = json.loads(path.read_text())
        config = stored.get("config", stored)
        config["objectives"].update(action_prefix_probability=0.5, action_prefix_max_rows=3)
        _write(path, stored)
    text = _parse(report.write_report(run)).text
    assert "action prefix50% of policy examples, a clean prefix of 1 to 3 actions (real-time chunking)" in text
