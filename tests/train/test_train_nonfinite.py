"""Non-finite values never reach a checkpoint: NaN data is refused before it is encoded, and a NaN loss stops the run
before that state is saved, so the good checkpoints stay."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch


@pytest.fixture
def nan_dataset(tiny_dataset, tmp_path):
    """The tiny dataset with one NaN joint target (episode 1, frame 3)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "nan_ds"
    shutil.copytree(tiny_dataset, root)
    path = next((root / "data").rglob("*.parquet"))
    table = pq.read_table(path)
    column = table.column("action.joint_position").to_pylist()
    row = next(i for i, (ep, frame) in enumerate(zip(table.column("episode_index").to_pylist(),
                                                      table.column("frame_index").to_pylist())) if (ep, frame) == (1, 3))
    column[row][2] = float("nan")
    index = table.column_names.index("action.joint_position")
    table = table.set_column(index, table.field(index), pa.array(column, type=table.schema.field(index).type))
    pq.write_table(table, path)
    return root


def test_nan_action_is_refused_before_anything_is_encoded(nan_dataset, train_config, tmp_path, monkeypatch):
    from worldpolicy.engine import sampler
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    monkeypatch.setattr(sampler, "encode_latents", lambda *a: pytest.fail("encoded a window of NaN data"))
    raw = train_config(tmp_path / "run", data={"dataset": str(nan_dataset), "cache_dir": str(tmp_path / "cache")})
    with pytest.raises(ValueError, match=r"action\.joint_position is nan in episode 1 \(frame 3, column 2"):
        Trainer(load_config(raw), progress=False).run()
    assert not list((tmp_path / "cache").glob("latents-*")) and not (tmp_path / "run" / "checkpoints").exists()


def test_nan_loss_stops_the_run_and_keeps_the_good_checkpoints(train_config, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import FlowMatchingLoss, Trainer

    real = FlowMatchingLoss.forward
    calls = []

    def diverging(self, *args):
        loss, parts = real(self, *args)
        calls.append(1)
        return (loss * float("nan"), parts) if len(calls) == 5 else (loss, parts)

    monkeypatch.setattr(FlowMatchingLoss, "forward", diverging)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"step 5: the loss is nan; stopped without saving .*step-0000004"):
        Trainer(load_config(train_config(out)), progress=False).run()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000002", "step-0000004"]
    for shard in (out / "checkpoints" / "step-0000004" / "transformer").glob("*.safetensors"):
        assert all(torch.isfinite(t).all() for t in load_file(str(shard)).values())
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3, 4] and np.isfinite([line["loss"] for line in lines]).all()
