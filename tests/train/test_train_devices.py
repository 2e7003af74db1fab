"""A training run on a machine whose RAM cannot hold the model: refused before any weights load, not killed."""

import pytest


def test_a_checkpoint_past_the_ram_is_refused_before_training_loads_it(train_config, tmp_path, monkeypatch):
    from worldpolicy.engine import loading
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    monkeypatch.setattr(loading, "load_components", lambda *a, **k: pytest.fail("weights loaded"))
    monkeypatch.setattr(loading, "device_memory", lambda device: (1000, None))
    # the latent cache, judged against the RAM before the weights (test_train_data.py), is past 1000 bytes too
    monkeypatch.setattr(Trainer, "_check_cache_fits", lambda *args: None)
    raw = train_config(tmp_path / "run", optim={"precision": "bf16"})  # loads in fp32 all the same
    with pytest.raises(ValueError, match=r"checkpoint='.*' does not fit on device='cpu': its weights alone take "
                       r"0\.0 GiB in float32 .* Fine-tune it on a machine with the memory \(training holds"):
        Trainer(load_config(raw), progress=False).run()
    assert not (tmp_path / "run").exists()
