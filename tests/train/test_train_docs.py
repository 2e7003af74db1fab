"""The run file in docs/training.md is a valid config: every key is known and typed as its field expects."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "training.md"


def _documented_run_file(tmp_path: Path, name: str, what: str, datasets: dict[str, Path] | None = None) -> Path:
    """docs/training.md's `# NAME.toml` block written to tmp_path/NAME.toml, each of `datasets` (a folder name under
    data/, as the file names it -> a dataset) linked beside it."""
    block = re.search(rf"```toml\n(# {re.escape(name)}\.toml.*?)```", DOC.read_text(), re.DOTALL)
    assert block, f"docs/training.md lost its {what}"
    path = tmp_path / f"{name}.toml"
    path.write_text(block.group(1))
    if datasets:
        (tmp_path / "data").mkdir()
        for folder, dataset in datasets.items():
            (tmp_path / "data" / folder).symlink_to(dataset, target_is_directory=True)
    return path


def test_the_documented_run_file_loads(tmp_path, tiny_dataset):
    from worldpolicy.train.config import load_config

    path = _documented_run_file(tmp_path, "my_run", "example run file",
                                {"my_droid": tiny_dataset})  # any LeRobot v3 dataset
    config = load_config(path)
    assert (config.optim.precision, config.optim.gradient_checkpointing, config.finetune.mode) == ("bf16", True, "lora")
    assert config.data.chunk_size == 32 and config.objectives.weights()["policy"] == 0.5
    assert Path(config.output_dir) == tmp_path / "runs" / "droid_lora"  # resolved against the file's folder


def test_the_documented_shipped_model_fine_tune_resolves_its_data_before_loading(tmp_path, reach_dataset, monkeypatch):
    """The short run file for sim data and the shipped model: nothing more is needed (the rest is read from the data)."""
    from worldpolicy.engine import loading
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    path = _documented_run_file(tmp_path, "my_reach", "shipped-model run file", {"my_reach": reach_dataset})
    monkeypatch.setattr(loading, "load_components", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("loading")))
    trainer = Trainer(load_config(path), progress=False)
    with pytest.raises(RuntimeError, match="loading"):  # every data check passed: the weights were next
        trainer.run()
    assert (trainer.config.data.action_conversion, trainer.embodiment_spec["name"]) == ("joint_to_relative_pose",
                                                                                        "panda_reach")
    # it trains what the shipped model was trained on (not the policy alone): the recipe's objectives, to the letter
    # (and this version's defaults, no preset and no action prefix, for the settings it leaves out)
    import tomllib
    from dataclasses import asdict
    from importlib import resources

    from worldpolicy.train.config import ObjectiveConfig

    recipe = tomllib.loads(resources.files("worldpolicy.train.recipes").joinpath("reach_from_scratch.toml").read_text())
    assert trainer.config.to_dict()["objectives"] == {**asdict(ObjectiveConfig()), **recipe["objectives"]}


def test_the_documented_own_robot_run_file_passes_every_check_before_the_weights(tmp_path, monkeypatch):
    """The new-robot example: a dataset shaped as the text says (actions named as the table's columns) passes every
    check that runs before the weights load, with and without the state row the text describes, and its actions are
    read as the robot's own with nothing more in [data]."""
    import tomllib

    import numpy as np

    from worldpolicy.data import LeRobotDatasetWriter
    from worldpolicy.engine import loading
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    path = _documented_run_file(tmp_path, "my_robot", "own-robot run file")
    columns = tomllib.loads(path.read_text())["embodiment"]["columns"]
    video = np.zeros((12, 32, 48, 3), np.uint8)
    features = {"action": {"dtype": "float32", "shape": [len(columns)], "names": columns},
                "observation.state": {"dtype": "float32", "shape": [len(columns)], "names": columns},
                **{key: {"dtype": "video", "shape": [32, 48, 3]}
                   for key in ("observation.images.front", "observation.images.wrist")}}
    with LeRobotDatasetWriter(tmp_path / "data" / "my_robot", fps=10, features=features,
                              video_codec="libx264rgb") as writer:
        for _ in range(2):
            writer.add_episode(frames={"action": np.zeros((12, len(columns)), np.float32),
                                       "observation.state": np.zeros((12, len(columns)), np.float32)},
                               videos={"observation.images.front": video, "observation.images.wrist": video},
                               task="pick up the block")
    monkeypatch.setattr(loading, "load_components", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("loading")))
    # the weights' own checks (memory, a whole snapshot) come first of the weights' stage: the empty snapshot below
    # has none to pass
    monkeypatch.setattr(loading, "check_loadable", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("loading")))
    # the hub checkpoint it names: its configs are fetched as the run starts (`hub.model_metadata`); an empty snapshot
    # here (no network), so no config of the model to check before its weights
    from worldpolicy.hub import model_metadata

    snapshot = tmp_path / "hub" / "models--nvidia--Cosmos3-Nano-Policy-DROID" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    monkeypatch.setattr("huggingface_hub.snapshot_download", lambda repo_id, **kwargs: str(snapshot))
    model_metadata.cache_clear()
    states = {"state_history": 1, "state_keys": {"joints": "observation/joint_position",
                                                 "gripper": "observation/gripper_position"}}
    try:
        for table, data in (({}, {}), (states, {"state_keys": ["observation.state"]})):
            config = load_config(path)
            config.embodiment.update(table)
            config.data.state_keys = data.get("state_keys", config.data.state_keys)
            trainer = Trainer(config, progress=False)
            with pytest.raises(RuntimeError, match="loading"):  # every data check passed: the weights were next
                trainer.run()
            data_config = trainer.config.data
            assert (data_config.source_embodiment, data_config.action_conversion) == ("my_robot", "none")
    finally:
        model_metadata.cache_clear()


def test_the_documented_optimizer_defaults_are_the_configs():
    """The optimizer section states each `[optim]` default once in prose: it must follow `OptimConfig`."""
    from worldpolicy.train.config import OptimConfig

    section = DOC.read_text().split("## Optimizer and learning rate", 1)[1].split("\n## ", 1)[0]
    defaults = OptimConfig()
    for name in ("lr", "weight_decay", "batch_size", "warmup_steps", "min_lr_ratio", "grad_clip"):
        stated = re.search(rf"`{name}`\s*\((?:default )?([0-9.e-]+)[;,)]", section)
        assert stated, f"the optimizer section states no default for optim.{name}"
        assert float(stated.group(1)) == getattr(defaults, name), name


def test_the_documented_augmentation_ranges_are_the_configs_defaults():
    """The image augmentation section lists every `[augment]` setting with its default: it must follow
    `AugmentConfig` (enabled aside, which it turns on)."""
    import tomllib
    from dataclasses import asdict

    from worldpolicy.train.config import AugmentConfig

    block = re.search(r"### Image augmentation\n.*?```toml\n(\[augment\].*?)```", DOC.read_text(), re.DOTALL)
    assert block, "docs/training.md lost its [augment] table"
    assert tomllib.loads(block.group(1))["augment"] == {**asdict(AugmentConfig()), "enabled": True}


def test_the_documented_mixture_loads_with_its_tables(tmp_path, tiny_dataset, tiny_checkpoint):
    from worldpolicy.train.config import load_config

    path = _documented_run_file(tmp_path, "my_mixture", "mixture example",  # any LeRobot v3 datasets
                                {name: tiny_dataset for name in ("sim_expert", "teleop", "real")})
    config = load_config(path, checkpoint=str(tiny_checkpoint))
    assert [Path(t.dataset).name for t in config.data.mixture] == ["sim_expert", "teleop", "real"]
    assert [t.weight for t in config.data.mixture] == [1.0, 2.0, 1.0]
    assert config.data.sources()[1].exclude_episodes == [1] and not config.data.dataset
    assert config.data.mixture[2].validation_episodes == [0] and config.validation.every == 250
