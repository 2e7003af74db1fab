"""Non-finite values never reach a checkpoint: NaN data is refused before it is encoded, and a NaN loss stops the run
before that state is saved, so the good checkpoints stay."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch


def _spoil_loss_at(monkeypatch, call: int, spoil) -> None:
    """The training loss of forward call `call` (the step of that number) passed through `spoil`; the others as they
    are."""
    from worldpolicy.train.trainer import FlowMatchingLoss

    real = FlowMatchingLoss.forward
    calls = []

    def spoiled(self, *args):
        loss, parts = real(self, *args)
        calls.append(1)
        return (spoil(loss), parts) if len(calls) == call else (loss, parts)

    monkeypatch.setattr(FlowMatchingLoss, "forward", spoiled)


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
    """Before the weights load, too: found at the encoding, it cost a large checkpoint's loading first."""
    from worldpolicy.engine import loading, sampler
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    monkeypatch.setattr(sampler, "encode_latents", lambda *a: pytest.fail("encoded a window of NaN data"))
    monkeypatch.setattr(loading, "load_components", lambda *a, **k: pytest.fail("loaded the weights for NaN data"))
    raw = train_config(tmp_path / "run", data={"dataset": str(nan_dataset), "cache_dir": str(tmp_path / "cache")})
    with pytest.raises(ValueError, match=r"action\.joint_position is nan in episode 1 \(frame 3, column 2.* leave the "
                                         r"episode out with data.exclude_episodes = \[1\] \(added to any already "
                                         r"there\), or fix it$"):
        Trainer(load_config(raw), progress=False).run()
    assert not list((tmp_path / "cache").glob("latents-*")) and not (tmp_path / "run" / "checkpoints").exists()


def test_the_bad_episode_left_out_as_the_refusal_says_trains_on_the_rest(nan_dataset, train_config, tmp_path):
    """The advice works as given, with no copy of the dataset: the run trains, its latent cache holds only the
    other episode's windows, and the new embodiment's normalisation stats are computed from those windows alone."""
    from worldpolicy.train.config import load_config
    from worldpolicy.train.data import LatentCache
    from worldpolicy.train.trainer import Trainer

    out = tmp_path / "run"
    raw = train_config(out, data={"dataset": str(nan_dataset), "cache_dir": str(tmp_path / "cache"),
                                  "exclude_episodes": [1]}, optim={"steps": 2})
    Trainer(load_config(raw), progress=False).run()
    (cache_folder,) = (tmp_path / "cache").glob("latents-*-v3")
    cache = LatentCache.load(cache_folder)
    assert {episode for episode, _ in cache.index} == {0} and len(cache) == 10 - 1  # padded windows of 10 frames
    spec = json.loads((out / "checkpoints" / "step-0000002" / "embodiment.json").read_text())
    layout = Trainer(load_config(raw), progress=False)._data()[1]
    assert spec["stats"] == cache.action_stats(layout)
    assert json.loads((out / "config.json").read_text())["data"]["exclude_episodes"] == [1]
    from worldpolicy.viz.report import write_report

    text = re.sub(r"<[^>]+>", "", write_report(out).read_text())
    assert "episodes2" in text and "episodes trainedall except 1" in text  # the dataset's, then those trained


def test_nan_loss_stops_the_run_and_keeps_the_good_checkpoints(train_config, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    _spoil_loss_at(monkeypatch, 5, lambda loss: loss * float("nan"))
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"step 5: the loss is nan; stopped without saving .*step-0000004"):
        Trainer(load_config(train_config(out)), progress=False).run()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000002", "step-0000004"]
    for shard in (out / "checkpoints" / "step-0000004" / "transformer").glob("*.safetensors"):
        assert all(torch.isfinite(t).all() for t in load_file(str(shard)).values())
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3, 4] and np.isfinite([line["loss"] for line in lines]).all()


class _NanGradient(torch.autograd.Function):
    """The loss unchanged on the way forward, NaN gradients on the way back (an overflow in the backward pass)."""

    @staticmethod
    def forward(ctx, loss):
        return loss.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


@pytest.mark.parametrize("grad_clip", [0.0, 1.0])
def test_a_nan_gradient_under_a_finite_loss_stops_the_run_with_or_without_clipping(train_config, tmp_path, monkeypatch,
                                                                                    grad_clip):
    """With `optim.grad_clip = 0` the gradient norm went unchecked: a NaN gradient under a finite loss reached the
    weights, and when that step was a save step its NaN checkpoint rotated a good one away."""
    from safetensors.torch import load_file

    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    _spoil_loss_at(monkeypatch, 4, _NanGradient.apply)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"step 4: the gradient norm is nan; stopped without saving .*step-0000002.*"
                                         r"start a new run \(another --out / output_dir\) with a lower optim\.lr"):
        Trainer(load_config(train_config(out, optim={"grad_clip": grad_clip})), progress=False).run()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000002"]
    for shard in (out / "checkpoints" / "step-0000002" / "transformer").glob("*.safetensors"):
        assert all(torch.isfinite(t).all() for t in load_file(str(shard)).values())
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3]
    assert all(np.isfinite(line["grad_norm"]) for line in lines)  # logged without clipping too


def test_grad_clip_zero_clips_nothing(train_config, tmp_path):
    """0 turns clipping off (the norm is still computed, logged and checked): the run is the one a clip too large to
    act gives, and not the one a small clip gives."""
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    def losses(name, grad_clip):
        config = load_config(train_config(tmp_path / name, optim={"grad_clip": grad_clip, "steps": 3}))
        return [r.loss for r in Trainer(config, progress=False).run()]

    off = losses("off", 0.0)
    assert off == losses("huge", 1e9)
    assert off[0] == losses("small", 1e-3)[0] and off[1:] != losses("small", 1e-3)[1:]


def test_the_error_that_stops_a_run_starts_its_own_line_after_the_progress_bar(train_config, tmp_path, monkeypatch,
                                                                                capsys):
    """The bar stayed open while the error went up, so the command's error line was glued to the end of the bar."""
    from worldpolicy.cli import main

    _spoil_loss_at(monkeypatch, 2, lambda loss: loss * float("nan"))
    config = tmp_path / "run.json"
    config.write_text(json.dumps(train_config(tmp_path / "run")))
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert "training:" in err and "\nworldpolicy train: error: step 2: the loss is nan" in err
