"""Device, dtype and memory choices as a machine without an NVIDIA GPU meets them (a laptop's CPU, Apple's MPS),
checked here by making torch say what such a machine has."""

import logging

import pytest
import torch

import worldpolicy
from worldpolicy.engine import loading
from worldpolicy.policy import Policy


@pytest.fixture
def no_weights_load(monkeypatch):
    monkeypatch.setattr(loading, "load_components", lambda *a, **k: pytest.fail("weights loaded"))


def test_a_checkpoint_past_the_ram_is_refused_with_its_size_before_any_weights_load(
        tiny_checkpoint, monkeypatch, no_weights_load):
    values = sum(loading.weights_values(tiny_checkpoint).values())
    assert values > 100_000  # the headers' shapes, counted: transformer and VAE
    monkeypatch.setattr(loading, "device_memory", lambda device: (3 * values, None))  # bf16 fits, fp32 does not
    with pytest.raises(ValueError, match=r"checkpoint='.*' does not fit on device='cpu': its weights alone take "
                       r"0\.0 GiB in float32 \(0\.00 billion values\), and this machine has 0\.0 GiB of RAM; loading "
                       r"it would be killed by the system, not refused\. Try dtype='bfloat16' \(0\.0 GiB\), or run"):
        worldpolicy.load_policy(tiny_checkpoint, "droid/relative_pose", device="cpu")
    monkeypatch.setattr(loading, "device_memory", lambda device: (values, None))
    with pytest.raises(ValueError, match=r"in bfloat16 .* of RAM; .* refused\. Run it on a machine with the memory"):
        Policy.check_pretrained(tiny_checkpoint, "droid/relative_pose", dtype="bf16")


def test_the_command_line_names_its_flags_in_the_refusal(tiny_checkpoint, monkeypatch, no_weights_load, tmp_path,
                                                          capsys):
    from PIL import Image

    from worldpolicy.cli import main

    image = tmp_path / "obs.png"
    Image.new("RGB", (64, 64)).save(image)
    monkeypatch.setattr(loading, "device_memory", lambda device: (1000, None))
    rc = main(["predict", "--checkpoint", str(tiny_checkpoint), "--embodiment", "droid/relative_pose", "--image",
               str(image), "--prompt", "x", "--out", str(tmp_path / "out")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "does not fit on --device='cpu'" in err and "Try --dtype='bfloat16'" not in err, err
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_past_the_available_ram_is_warned_of(tiny_checkpoint, monkeypatch, caplog):
    values = sum(loading.weights_values(tiny_checkpoint).values())
    monkeypatch.setattr(loading, "device_memory", lambda device: (10 * values, values))
    with caplog.at_level(logging.WARNING, logger="worldpolicy"):
        Policy.check_pretrained(tiny_checkpoint, "droid/relative_pose")
    assert "is available now: loading it may swap" in caplog.text
    caplog.clear()
    monkeypatch.setattr(loading, "device_memory", lambda device: (10 * values, 10 * values))
    with caplog.at_level(logging.WARNING, logger="worldpolicy"):
        Policy.check_pretrained(tiny_checkpoint, "droid/relative_pose")
    assert "available now" not in caplog.text


def test_mps_memory_is_what_metal_lets_the_process_use(monkeypatch):
    monkeypatch.setattr(torch.mps, "recommended_max_memory", lambda: 12 * 2**30, raising=False)
    assert loading.device_memory(torch.device("mps")) == (12 * 2**30, None)
    total, available = loading.device_memory(torch.device("cpu"))
    assert total > 2**28 and (available is None or available <= total)
    assert loading.device_memory(torch.device("cuda")) == (None, None)  # its allocator says it, without a kill
