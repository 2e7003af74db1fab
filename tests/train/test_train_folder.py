"""What a run leaves in its folder: the checkpoint of an evaluated step survives a failed evaluation, a kill's staging
folders are cleared, a torn last log line does not block the resume, and --out is relative to the working directory."""

from __future__ import annotations

import pytest


def _run(raw, **kwargs):
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    return Trainer(load_config(raw), progress=False).run(**kwargs)


def test_the_checkpoint_is_saved_before_the_evaluation(train_config, tmp_path, monkeypatch):
    from worldpolicy.train.trainer import Trainer

    def failing(self, step, metrics_path):
        raise RuntimeError("the simulator failed")

    monkeypatch.setattr(Trainer, "_evaluate", failing)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulator"):
        _run(train_config(out, eval={"every": 2}))
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-0000002"]
