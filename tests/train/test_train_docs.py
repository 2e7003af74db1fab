"""The run file in docs/training.md is a valid config: every key is known and typed as its field expects."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "training.md"


def test_the_documented_run_file_loads(tmp_path, tiny_dataset):
    from worldpolicy.train.config import load_config

    block = re.search(r"```toml\n(# my_run\.toml.*?)```", DOC.read_text(), re.DOTALL)
    assert block, "docs/training.md lost its example run file"
    path = tmp_path / "my_run.toml"
    path.write_text(block.group(1))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "my_droid").symlink_to(tiny_dataset, target_is_directory=True)  # any LeRobot v3 dataset
    config = load_config(path)
    assert (config.optim.precision, config.optim.gradient_checkpointing, config.finetune.mode) == ("bf16", True, "lora")
    assert config.data.chunk_size == 32 and config.objectives.weights()["policy"] == 0.5
    assert Path(config.output_dir) == tmp_path / "runs" / "droid_lora"  # resolved against the file's folder
