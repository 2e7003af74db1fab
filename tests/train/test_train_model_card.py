"""Every checkpoint worldpolicy writes carries a model card (README.md with the hub's YAML front matter) made from the
records it holds: a training checkpoint, the recipe's installed model, the shipped model."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from huggingface_hub import ModelCard

TAGS = ["robotics", "world-model", "cosmos3", "worldpolicy", "lerobot"]


def test_a_training_checkpoint_carries_its_card_and_still_loads(train_config, tmp_path):
    from train_setup import TINY_EMBODIMENT

    from worldpolicy.policy import Policy
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    out = tmp_path / "run"
    raw = train_config(out, optim={"steps": 2}, save_every=2, validation={"episodes": [1], "every": 2, "windows": 1})
    Trainer(load_config(raw), progress=False).run()
    [checkpoint] = sorted((out / "checkpoints").iterdir())
    card = ModelCard.load(checkpoint / "README.md")
    front = card.data.to_dict()
    assert front == {"library_name": "worldpolicy", "pipeline_tag": "robotics", "tags": TAGS}  # a local base: no id
    text = card.text
    assert "# tiny_panda checkpoint, step 2" in text
    for column, unit in zip(TINY_EMBODIMENT["columns"], TINY_EMBODIMENT["units"]):
        assert f"| `{column}` | {unit} |" in text
    assert "- chunk: 4 actions at 15 fps" in text and "(stacked), on a 256-pixel canvas tier" in text
    assert "trained on frames of `observation/exterior_image_1_left` 64x96" in text  # trainer_state's frames
    # local folders by their names: a path tells the trainer's file layout to whoever reads the card on the hub
    dataset = Path(raw['data']['dataset']).name
    # not "episodes all": the held-out episode was never trained on
    assert f"- dataset: `{dataset}` (LeRobot v3), episodes all but those held out; held out for validation: [1]" in text
    assert f"- base: `{Path(raw['checkpoint']).name}`" in text and "- full fine-tuning" in text
    assert str(tmp_path) not in text and os.path.dirname(raw["checkpoint"]) not in text
    assert "- steps: 2 of 2, batch 2" in text and "policy (actions from frames and a task)" in text
    [validation] = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
                    if "val/loss" in line and json.loads(line)["step"] == 2]
    assert f"- held-out validation at step 2: loss {validation['val/loss']:.4g}" in text
    assert "worldpolicy predict --checkpoint path/to/step-0000002 --camera observation/exterior_image_1_left=" in text
    assert 'worldpolicy.load_policy("path/to/step-0000002")' in text
    # the card is the hub repository's page once pushed: its visitor loads it by the repository's id
    assert "or the hub repository holding it by its id (`OWNER/NAME`" in text
    assert sorted(p.name for p in checkpoint.iterdir() if p.name.startswith(".")) == []  # no temp file left
    Policy.check_pretrained(str(checkpoint))  # the validators take the card as any other file they do not read

    # an export without trainer_state.json (the recipe's model/): the training from the run's config.json
    from worldpolicy.train.model_card import model_card

    export = tmp_path / "export"
    export.mkdir()
    shutil.copyfile(checkpoint / "embodiment.json", export / "embodiment.json")
    text = model_card(export, tmp_path / "model", out)
    assert "# tiny_panda checkpoint\n" in text and "- steps: 2, batch 2" in text and "objectives" not in text
    assert f"- held-out validation at step 2: loss {validation['val/loss']:.4g}" in text
    assert 'load_policy("path/to/model")' in text


def test_a_hub_base_is_named_in_the_front_matter_and_a_card_says_nothing_a_record_does_not(tmp_path):
    from worldpolicy.train.model_card import model_card

    folder = tmp_path / "step-0000010"
    folder.mkdir()
    (folder / "trainer_state.json").write_text(json.dumps({"step": 10, "config": {
        "checkpoint": "nvidia/Cosmos3-Nano-Policy-DROID", "embodiment": "droid",
        "data": {"dataset": "/data/mine", "episodes": [0, 1, 2, 5]},
        "finetune": {"mode": "lora", "lora_rank": 8, "lora_alpha": 16.0}, "optim": {"steps": 100}}}))
    card = ModelCard(model_card(folder, folder))
    assert card.data.to_dict()["base_model"] == "nvidia/Cosmos3-Nano-Policy-DROID"
    assert "license" not in card.data.to_dict()  # a fine-tune's license is its base's, which nothing here records
    assert "**Embodiment** `droid/joint_pos`" in card.text  # the registered entry its trainer_state names
    assert "episodes [0, 1, 2, 5]" in card.text
    assert "LoRA rank 8, alpha 16.0, saved merged into the weights" in card.text
    assert "## Results" not in card.text and "objectives" not in card.text  # no run log, no objective weights

    # a name its run registered in Python, which this process cannot build: named, the save goes on
    state = json.loads((folder / "trainer_state.json").read_text())
    state["config"]["embodiment"] = "my_arm"
    (folder / "trainer_state.json").write_text(json.dumps(state))
    text = model_card(folder, folder)
    assert "# my_arm checkpoint, step 10" in text and "**Embodiment** `my_arm`, registered by its training run" in text
    assert "| action column |" not in text and "--image FRAME.png" in text


def test_a_fine_tune_of_the_shipped_model_says_what_its_base_is(tmp_path):
    """`shipped` is worldpolicy's own name: a hub visitor reading the card is told which model it is."""
    from worldpolicy.train.model_card import model_card

    folder = tmp_path / "step-0000003"
    folder.mkdir()
    (folder / "trainer_state.json").write_text(json.dumps({"step": 3, "config": {
        "checkpoint": "shipped", "embodiment": "panda_reach", "data": {"dataset": "/data/r2"},
        "optim": {"steps": 3}}}))
    text = model_card(folder, folder)
    assert "- base: `shipped` (the model worldpolicy ships, trained by `worldpolicy train reach-from-scratch`)" in text


def test_the_installed_model_card_is_the_recipe_summary_s_and_the_shipped_one_is_current(tmp_path, monkeypatch):
    import types

    from worldpolicy.models import shipped_model
    from worldpolicy.train import scratch
    from worldpolicy.train.model_card import model_card

    shipped = shipped_model()
    # the shipped README.md is this version's card of the shipped records (regenerate it when the card changes)
    assert (shipped / "README.md").read_text() == model_card(shipped, shipped)
    card = ModelCard.load(shipped / "README.md")
    assert card.data.to_dict()["license"] == "apache-2.0" and "base_model" not in card.data.to_dict()
    assert "success 89/100 episodes" in card.text and "worldpolicy predict --checkpoint shipped" in card.text

    models = tmp_path / "models"
    monkeypatch.setattr(scratch, "resources", types.SimpleNamespace(files=lambda package: models))
    trained = tmp_path / "model"
    trained.mkdir()
    for name in ("model_index.json", "embodiment.json"):
        shutil.copyfile(shipped / name, trained / name)
    (trained / "README.md").write_text("the card export wrote, before the evaluation")
    summary = json.loads((shipped / "training_summary.json").read_text())
    installed = scratch.install_model(trained, summary)
    text = (installed / "README.md").read_text()
    assert "before the evaluation" not in text and "success 89/100 episodes" in text
    assert "4000 steps" in text and "900 expert episodes of the sim task `reach`" in text


def test_a_card_made_where_worldpolicy_is_not_installed_leaves_the_license_out(monkeypatch):
    from importlib import metadata

    from worldpolicy.models import shipped_model
    from worldpolicy.train.model_card import model_card

    def uninstalled(name):  # a source tree on PYTHONPATH: no distribution's metadata
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "metadata", uninstalled)
    card = ModelCard(model_card(shipped_model(), shipped_model()))
    assert "license" not in card.data.to_dict() and "success 89/100 episodes" in card.text


def test_a_card_names_no_local_path(tmp_path):
    """Every field that names a checkpoint or a dataset: a hub id where one is known (a snapshot in the hub's cache is
    its repository's), else the folder's name; never the path (/home/<user>/...), which pushing would publish."""
    from worldpolicy.train.model_card import model_card

    cache = tmp_path / "home" / "alice" / ".cache" / "huggingface" / "hub"
    folder = tmp_path / "home" / "alice" / "runs" / "step-0000004"
    folder.mkdir(parents=True)
    (folder / "base_model.json").write_text(json.dumps({
        "base_model_name_or_path": str(cache / "models--me--base" / "snapshots" / "abc123"), "weight_samples": {}}))
    (folder / "trainer_state.json").write_text(json.dumps({"step": 4, "config": {
        "checkpoint": str(tmp_path / "home" / "alice" / "models" / "my-base"), "embodiment": "droid",
        "data": {"dataset": str(cache / "datasets--lerobot--pusht" / "snapshots" / "def456")},
        "finetune": {"mode": "lora", "lora_rank": 8, "lora_alpha": 16.0}, "optim": {"steps": 4}}}))
    card = ModelCard(model_card(folder, folder))
    assert card.data.to_dict()["base_model"] == "me/base" and card.data.to_dict()["datasets"] == ["lerobot/pusht"]
    # the text names the commit it loads onto; the front matter, which takes a repository, the repository
    assert "it loads onto its base, `me/base@abc123` (`base_model.json` says where it is)" in card.text
    assert "- dataset: `lerobot/pusht` (LeRobot v3)" in card.text
    state = json.loads((folder / "trainer_state.json").read_text())
    state["config"]["data"]["dataset"] = str(tmp_path / "home" / "alice" / "data" / "picks")
    (folder / "base_model.json").unlink()
    (folder / "trainer_state.json").write_text(json.dumps(state))
    text = model_card(folder, folder)
    assert "- base: `my-base`" in text and "- dataset: `picks` (LeRobot v3)" in text
    assert "alice" not in text and str(tmp_path) not in text


def test_a_cards_front_matter_and_text_name_a_checkpoint_and_a_dataset_by_one_rule(tmp_path, monkeypatch):
    """Shaped like a hub id but a path here (a file of that name, a missing one in a folder here): the text shows its
    own name and the front matter names no hub repository; a hub id both name as given."""
    from worldpolicy.train.model_card import model_card

    monkeypatch.chdir(tmp_path)
    (tmp_path / "me").mkdir()
    (tmp_path / "me" / "base").write_text("x")  # a file, not the hub's me/base
    (tmp_path / "runs").mkdir()  # runs/picks: a dataset folder gone, not a hub id
    folder = tmp_path / "step-0000004"
    folder.mkdir()
    config = {"checkpoint": "me/base", "embodiment": "droid", "data": {"dataset": "runs/picks"}, "optim": {"steps": 4}}
    (folder / "trainer_state.json").write_text(json.dumps({"step": 4, "config": config}))
    card = ModelCard(model_card(folder, folder))
    assert "base_model" not in card.data.to_dict() and "datasets" not in card.data.to_dict()
    assert "- base: `base`" in card.text and "- dataset: `picks` (LeRobot v3)" in card.text
    config.update(checkpoint="nvidia/base", data={"dataset": "lerobot/pusht"})
    (folder / "trainer_state.json").write_text(json.dumps({"step": 4, "config": config}))
    card = ModelCard(model_card(folder, folder))
    assert card.data.to_dict()["base_model"] == "nvidia/base" and card.data.to_dict()["datasets"] == ["lerobot/pusht"]
    assert "- base: `nvidia/base`" in card.text and "- dataset: `lerobot/pusht` (LeRobot v3)" in card.text


def test_a_card_counts_one_evaluated_episode_as_one(tmp_path):
    """`[eval] episodes = 1` is a quick check of a run: the card said "over 1 episodes"."""
    from worldpolicy.train.model_card import _figures

    run = tmp_path / "run"
    run.mkdir()
    lines = [{"step": 3, "eval_task": "reach", "eval_success_rate": 1.0, "eval_episodes": 1, "eval_perturb": None},
             {"step": 6, "eval_task": "reach", "eval_success_rate": 0.5, "eval_episodes": 2, "eval_perturb": None}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert "- sim evaluation at step 3: `reach` success 100 % over 1 episode\n" in _figures(run, {"step": 3}, None)
    assert "- sim evaluation at step 6: `reach` success 50 % over 2 episodes\n" in _figures(run, {"step": 6}, None)


def test_the_shipped_model_keeps_the_record_the_recipe_writes_of_its_frames(tmp_path, monkeypatch):
    """The shipped model had no record of its training frames: no size warning ran, a server announced no frames and
    warmed up with 224x224 ones. Its trainer_state.json is what `run_recipe` writes into the recipe's model
    (`scratch.model_record` of the run's last checkpoint), for the frames its dataset records: the recipe's cameras at
    the size `make_dataset` records them (sim episodes' default), the recipe's steps and objectives."""
    import inspect
    import tomllib
    from types import SimpleNamespace

    from worldpolicy import data as data_package
    from worldpolicy.data.from_sim import expert_episodes, sim_features
    from worldpolicy.models import shipped_model
    from worldpolicy.policy import checkpoint_embodiment, trained_frames
    from worldpolicy.train import scratch
    from worldpolicy.train.config import ObjectiveConfig
    from worldpolicy.train.data import trained_frames as run_frames

    raw = tomllib.loads(scratch.recipe_path("reach-from-scratch").read_text())
    recorded = inspect.signature(expert_episodes).parameters["image_size"].default
    features = sim_features("panda", recorded, raw["scratch"]["cameras"])
    dataset = SimpleNamespace(features=features, video_keys=[k for k, f in features.items() if f["dtype"] == "video"])
    monkeypatch.setattr(data_package.LeRobotDataset, "open", lambda path: dataset)  # what the recipe's dataset says
    shipped = shipped_model()
    frames = run_frames(SimpleNamespace(dataset="dataset", video_keys=raw["data"]["video_keys"]),
                        checkpoint_embodiment(shipped, None))
    last = tmp_path / "train" / "checkpoints" / f"step-{raw['optim']['steps']:07d}"
    last.mkdir(parents=True)
    (last / "model_index.json").write_text("{}")  # a saved checkpoint (`fileio.saved_checkpoints`)
    (last / "trainer_state.json").write_text(json.dumps({
        "step": raw["optim"]["steps"], "config": {"output_dir": "/home/someone/runs/train"}, "history": [],
        "objective_weights": ObjectiveConfig(**raw["objectives"]).weights(), "frames": frames}))
    assert json.loads((shipped / "trainer_state.json").read_text()) == scratch.model_record(tmp_path / "train")
    assert trained_frames(shipped)["cameras"] == {camera: [180, 320] for camera in raw["scratch"]["cameras"]}
    assert "- trained on frames of `observation/exterior_image_1_left` 180x320" in (shipped / "README.md").read_text()
