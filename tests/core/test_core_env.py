"""`worldpolicy env`: the report a bug report needs, printed without loading a model, and never a secret."""

from __future__ import annotations

import json
import subprocess
import sys

from worldpolicy import commands
from worldpolicy.cli import main

SECTIONS = ["software", "platform", "extras", "accelerator", "rendering", "video", "hub"]


def _env(capsys, *flags: str) -> tuple[int, str, str]:
    code = main(["env", *flags])
    said = capsys.readouterr()
    return code, said.out, said.err


def test_env_json_has_every_section_and_writes_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = _env(capsys, "--json")
    report = json.loads(out)
    assert code == 0 and list(report) == SECTIONS
    assert not any("error" in section for section in report.values()), report
    assert {"worldpolicy", "python", "torch", "diffusers", "mujoco"} <= set(report["software"])
    assert set(report["accelerator"]) >= {"cuda_build", "cuda_available", "devices", "mps", "cpu_threads"}
    assert report["extras"]["sim"] == {"installed": True, "missing": [], "install": None}
    assert report["rendering"]["offscreen_context"] == "opens"  # this machine renders headless (EGL or OSMesa)
    assert set(report["video"]["encoders"]) == {"libx264", "libx264rgb", "libsvtav1"}
    assert set(report["hub"]) >= {"endpoint", "cache", "offline", "token", "shipped_model"}
    assert report["hub"]["shipped_model"].startswith("present")
    assert not any(tmp_path.iterdir())


def test_a_missing_extra_is_reported_with_its_install_command(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` fails, as where `train` is not installed
    code, out, _ = _env(capsys)
    assert code == 0
    assert "- train: missing pyarrow (`pip install 'worldpolicy[train]'`)" in out.splitlines()
    assert "- sim: installed" in out.splitlines()
    assert out.startswith("Paste the text below") and "## extras" in out


def test_without_the_sim_extra_rendering_is_not_checked_and_the_report_still_runs():
    hidden = ["mujoco", "mink", "qpsolvers", "gymnasium"]
    script = (f"import sys\nfor name in {hidden!r}:\n    sys.modules[name] = None\n"
              "from worldpolicy.cli import main\nsys.exit(main(['env', '--json']))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    sim = {"installed": False, "missing": hidden, "install": "pip install 'worldpolicy[sim]'"}
    assert report["extras"]["sim"] == sim
    assert report["rendering"]["offscreen_context"].startswith("not checked: the 'sim' extra is missing (mujoco, ")
    assert "error" not in report["video"] and "error" not in report["hub"]


def test_no_token_or_endpoint_credential_is_printed(capsys, monkeypatch):
    import huggingface_hub.constants

    token = "hf_NeverPrintThisTokenAnywhere0123"
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "https://someone:s3cretpass@hub.example.com")
    for flags in ((), ("--json",)):
        code, out, err = _env(capsys, *flags)
        assert code == 0
        assert token not in out + err and "s3cretpass" not in out + err and "someone" not in out + err
        assert "set (HF_TOKEN)" in out and "https://<redacted>@hub.example.com" in out


def test_a_probe_that_fails_says_why_and_the_command_exits_0(capsys, monkeypatch):
    def broken():
        raise RuntimeError("PyAV could not list its codecs")

    monkeypatch.setattr(commands, "_video", broken)
    code, out, _ = _env(capsys)
    assert code == 0
    assert "## video\n- error: RuntimeError: PyAV could not list its codecs\n" in out
    assert "## hub\n" in out  # the probes after it ran


def test_rendering_that_fails_says_why_in_rendering_s_words(capsys, monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "glfw")  # no display here: glfw opens no context
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    code, out, _ = _env(capsys, "--json")
    rendering = json.loads(out)["rendering"]
    assert code == 0 and rendering["mujoco_gl"] == "glfw (set)"
    assert rendering["offscreen_context"].startswith("fails: offscreen rendering failed with MUJOCO_GL=glfw")


def test_an_extra_that_names_another_needs_its_packages_too(monkeypatch):
    from worldpolicy.extras import extras_missing

    monkeypatch.setitem(sys.modules, "mcp", None)
    missing = extras_missing()
    assert missing["agents"] == ["mcp"] and missing["strands"] == ["mcp"]  # strands = worldpolicy[agents] + its own
    assert "all" not in missing and missing["sim"] == []  # `all` lists no package of its own


def test_a_gpu_is_listed_with_its_memory_capability_and_bf16(capsys, monkeypatch):
    """No GPU here: torch's answers for one H100 and one pre-Ampere card, as the report reads them."""
    from types import SimpleNamespace

    import torch

    cards = [SimpleNamespace(name="NVIDIA H100 80GB HBM3", total_memory=85 * 10**9, major=9, minor=0),
             SimpleNamespace(name="Tesla V100-SXM2-16GB", total_memory=16 * 2**30, major=7, minor=0)]
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: cards[index])
    found = commands._accelerator()
    assert found["cuda_build"] == "12.8" and found["cuda_available"] is True
    assert found["devices"] == [
        {"device": "cuda:0", "name": "NVIDIA H100 80GB HBM3", "memory_gib": 79.2, "compute_capability": "9.0",
         "bf16": True},
        {"device": "cuda:1", "name": "Tesla V100-SXM2-16GB", "memory_gib": 16.0, "compute_capability": "7.0",
         "bf16": False}]
    lines = commands._said_lines(found)
    assert "- devices: 2" in lines
    assert "  - device=cuda:0, name=NVIDIA H100 80GB HBM3, memory_gib=79.2, compute_capability=9.0, bf16=yes" in lines

    def no_driver():
        raise RuntimeError("Found no NVIDIA driver on your system.")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "init", no_driver)
    found = commands._accelerator()
    assert found["devices"] == [] and found["cuda_unavailable_because"] == "Found no NVIDIA driver on your system."
