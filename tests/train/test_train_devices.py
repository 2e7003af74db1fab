"""A training run on a machine whose RAM cannot hold the model: refused before any weights load, not killed."""

import os

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


def test_the_weights_headers_are_read_once_before_training_loads_them(train_config, tiny_checkpoint, tmp_path,
                                                                    monkeypatch):
    """`Trainer._load` read every safetensors header twice: once to count the weights against the RAM
    (`check_memory`), once more as `load_components` checked the folder whole. It runs the one sequence
    `Policy.check_pretrained` runs (`engine.loading.check_loadable`), and the load does not check again."""
    from worldpolicy.engine import loading
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    opened = []

    def counted_open(file, *args, **kwargs):
        if str(file).endswith(".safetensors"):
            opened.append(os.path.relpath(file, tiny_checkpoint))
        return open(file, *args, **kwargs)

    class Loaded(Exception):
        pass

    def load(path_or_id, *args, checked=False, **kwargs):  # its checks, without the weights
        if not checked:
            loading.check_checkpoint_complete(path_or_id)
        raise Loaded

    monkeypatch.setattr(loading, "open", counted_open, raising=False)
    monkeypatch.setattr(loading, "load_components", load)
    monkeypatch.setattr(Trainer, "_check_cache_fits", lambda *args: None)
    monkeypatch.setattr(loading, "device_memory", lambda device: (2**40, None))  # judged, and it fits
    with pytest.raises(Loaded):
        Trainer(load_config(train_config(tmp_path / "run")), progress=False).run()
    assert "transformer/diffusion_pytorch_model.safetensors" in opened and len(opened) == len(set(opened)), opened
