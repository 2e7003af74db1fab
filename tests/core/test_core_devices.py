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
    monkeypatch.setattr(loading, "_SWAP_WARNED", set())  # whatever another test warned of in this process
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


def test_a_command_warns_of_the_available_ram_once(tiny_checkpoint, monkeypatch, tmp_path, capsys):
    """`predict` checks the checkpoint before it reads its inputs (`Policy.check_pretrained`), then loads it
    (`from_pretrained`, which checks again): "is available now: loading it may swap" was said twice."""
    from PIL import Image

    from worldpolicy.cli import main

    monkeypatch.setattr(loading, "_SWAP_WARNED", set())  # whatever another test warned of in this process
    values = sum(loading.weights_values(tiny_checkpoint).values())
    monkeypatch.setattr(loading, "device_memory", lambda device: (10 * values, values))
    Image.new("RGB", (64, 64)).save(tmp_path / "obs.png")
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--embodiment", "droid/relative_pose", "--image",
                 str(tmp_path / "obs.png"), "--prompt", "x", "--steps", "1", "--no-plots", "--out",
                 str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert err.count("is available now: loading it may swap") == 1, err


def test_mps_is_refused_against_the_memory_metal_lets_it_use(tiny_checkpoint, monkeypatch, no_weights_load):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(loading, "device_memory", lambda device: (1000, None))
    with pytest.raises(ValueError, match=r"does not fit on device='mps': its weights alone take .* in float32 .*, "
                       r"and this machine has 0\.0 GiB of memory MPS may use \(shared with the system\); loading it "
                       r"would fail once they are read\. Run it"):
        Policy.check_pretrained(tiny_checkpoint, "droid/relative_pose", device="mps")


def test_mps_memory_is_what_metal_lets_the_process_use(monkeypatch):
    monkeypatch.setattr(torch.mps, "recommended_max_memory", lambda: 12 * 2**30, raising=False)
    assert loading.device_memory(torch.device("mps")) == (12 * 2**30, None)
    total, available = loading.device_memory(torch.device("cpu"))
    assert total > 2**28 and (available is None or available <= total)
    monkeypatch.delattr(torch.mps, "recommended_max_memory")  # torch < 2.5: the RAM MPS shares
    assert loading.device_memory(torch.device("mps"))[0] == total
    assert loading.device_memory(torch.device("cuda")) == (None, None)  # its allocator says it, without a kill


@pytest.fixture
def gpus(monkeypatch):
    """CUDA as torch says it on a machine with an H100 (cuda:0, current) and a V100 (cuda:1, no bf16 arithmetic);
    the warnings said once per process start afresh."""
    from types import SimpleNamespace

    cards = [SimpleNamespace(name="NVIDIA H100 80GB HBM3", major=9, minor=0),
             SimpleNamespace(name="Tesla V100-SXM2-16GB", major=7, minor=0)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(cards))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: cards[index])
    monkeypatch.setattr(torch.version, "hip", None)
    loading._say_bf16_emulated.cache_clear()
    yield cards
    loading._say_bf16_emulated.cache_clear()


def test_a_gpu_without_bf16_arithmetic_defaults_to_float32_and_says_why(gpus, caplog, monkeypatch):
    """A V100 or T4 (compute capability < 8.0) emulates bf16: the default there is float32, said once with the flag
    that chooses another; bf16 asked for runs, with a warning that it is slow; float16 and float32 say nothing, nor
    does an Ampere or later GPU."""
    h100, v100 = torch.device("cuda:0"), torch.device("cuda:1")
    with caplog.at_level(logging.WARNING, logger=loading.logger.name):
        assert loading.resolve_dtype(None, h100) is torch.bfloat16
        assert loading.resolve_dtype("bf16", torch.device("cuda")) is torch.bfloat16  # the current one: the H100
        assert loading.resolve_dtype("fp16", v100) is torch.float16
        assert loading.resolve_dtype(torch.float32, v100) is torch.float32
        assert caplog.records == []
        for _ in range(2):  # a server checks its arguments up front, then again as it loads: said once
            assert loading.resolve_dtype(None, v100) is torch.float32
    said = [record.getMessage() for record in caplog.records]
    assert said == [("cuda:1 (Tesla V100-SXM2-16GB, compute capability 7.0) has no bfloat16 arithmetic (compute "
                     "capability 8.0, Ampere, and later have it): the model runs in float32, twice bfloat16's memory; "
                     "dtype= (--dtype) chooses another: bfloat16 (emulated, slow) or float16 (half the memory; values "
                     "past 65504 overflow, unchecked for this model)")]
    caplog.clear()
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    with caplog.at_level(logging.WARNING, logger=loading.logger.name):
        for asked in ("BF16", torch.bfloat16):
            assert loading.resolve_dtype(asked, torch.device("cuda")) is torch.bfloat16  # runs, not refused
    assert [record.levelname for record in caplog.records] == ["WARNING"]
    assert caplog.records[0].getMessage().startswith("cuda:1 (Tesla V100-SXM2-16GB, compute capability 7.0) has no "
                                                     "bfloat16 arithmetic")
    assert "bfloat16 runs emulated, far slower" in caplog.records[0].getMessage()
    assert [loading.cuda_bf16_native(index) for index in (0, 1)] == [True, False]
    monkeypatch.setattr(torch.version, "hip", "6.2")  # ROCm: torch counts every AMD GPU it runs as bf16-capable
    assert loading.cuda_bf16_native(v100) and loading.resolve_dtype(None, v100) is torch.bfloat16


def test_bf16_on_mps_before_macos_14_is_refused_before_any_weights_load(tiny_checkpoint, monkeypatch, no_weights_load):
    """torch's MPS has no bfloat16 before macOS 14 (`checkSupportsBFloat16`): the load failed once weights were read."""
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_macos_or_newer", lambda major, minor: (major, minor) <= (13, 6))
    with pytest.raises(ValueError, match=r"^dtype='bf16' on device='mps' needs macOS 14 or newer \(torch's MPS has "
                       r"no bfloat16 before it: .*\); accepted here: float32 \(MPS's default\) or float16$"):
        Policy.check_pretrained(tiny_checkpoint, "droid/relative_pose", device="mps", dtype="bf16")
    for dtype in (None, "fp16"):
        assert loading.resolve_dtype(dtype, torch.device("mps")) in (torch.float32, torch.float16)
    monkeypatch.setattr(torch.backends.mps, "is_macos_or_newer", lambda major, minor: (major, minor) <= (14, 0))
    assert loading.resolve_dtype("bf16", torch.device("mps")) is torch.bfloat16


@pytest.mark.parametrize("cuda", [False, True])
def test_auto_is_the_default_device_by_name_and_never_mps_unasked(gpus, monkeypatch, cuda):
    """`--device auto`, which `sim --help` and `dataset from-sim --help` named as their default, was refused as not
    a torch device; on a Mac with MPS the default stays the CPU (in fp32), MPS only when asked (in fp32 too)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    expected = torch.device("cuda" if cuda else "cpu")
    for name in (None, "auto", " AUTO"):
        assert loading.resolve_device(name) == expected
    assert loading.resolve_dtype(None, expected) == (torch.bfloat16 if cuda else torch.float32)
    assert loading.resolve_device("MPS") == torch.device("mps")
    assert loading.resolve_dtype(None, torch.device("mps")) == torch.float32


def test_every_device_flag_says_one_default(capsys):
    from worldpolicy.cli import DEVICE_HELP, build_parser

    parser = build_parser()
    for command in (["predict"], ["sim"], ["serve"], ["dataset", "from-sim"], ["dataset", "label"]):
        with pytest.raises(SystemExit):
            parser.parse_args([*command, "--help"])
        said = " ".join(capsys.readouterr().out.split())
        assert DEVICE_HELP in said, (command, said)


def test_closing_an_mps_policy_gives_its_cached_memory_back(tiny_checkpoint, monkeypatch):
    """On a Mac the MPS allocator's cache is the RAM the system shares: `close` emptied CUDA's alone."""
    emptied = []
    monkeypatch.setattr(torch.mps, "empty_cache", lambda: emptied.append("mps"))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append("cuda"))
    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid/relative_pose", resolution_tier=256)
    policy.close()
    assert emptied == []  # a CPU policy leaves both alone
    for device in ("mps", "mps:0", "cuda:1"):
        policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid/relative_pose", resolution_tier=256)
        policy.engine.device = torch.device(device)  # as a load there records it
        policy.close()
    assert emptied == ["mps", "mps", "cuda"]


def test_stage_timings_wait_for_mps_as_for_cuda(tiny_policy, monkeypatch):
    """MPS queues its kernels as CUDA does: `Prediction.timings` timed their launches on a Mac."""
    waited = []
    monkeypatch.setattr(torch.mps, "synchronize", lambda: waited.append("mps"))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waited.append(str(device)))
    engine = tiny_policy.engine
    engine._clock()
    assert waited == []  # the CPU runs each op as it is called
    monkeypatch.setattr(engine, "device", torch.device("mps"))
    engine._clock()
    monkeypatch.setattr(engine, "device", torch.device("cuda:1"))
    engine._clock()
    assert waited == ["mps", "cuda:1"]


def test_the_ram_is_read_where_there_is_no_sysconf(monkeypatch):
    """Windows has no os.sysconf nor /proc/meminfo: the check went quiet there (psutil reads every system's)."""
    import os
    from types import SimpleNamespace

    import psutil

    monkeypatch.delattr(os, "sysconf", raising=False)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(total=16 * 2**30, available=5 * 2**30))
    total, available = loading.device_memory(torch.device("cpu"))
    assert total <= 16 * 2**30 and available == 5 * 2**30  # a cgroup limit may lower the total


def test_a_hub_checkpoint_too_large_is_refused_before_its_weights_download(tiny_checkpoint, model_repo, monkeypatch,
                                                                          no_weights_load):
    """A hub id's snapshot holds its configs alone until the checks pass: the weights' sizes come from their headers
    on the hub (range requests), so a laptop is told before 60 GB download, not after."""
    from huggingface_hub import HfApi

    calls, snapshot = model_repo(tiny_checkpoint)
    counts = loading.weights_values(tiny_checkpoint)
    monkeypatch.setattr(loading, "device_memory", lambda device: (sum(counts.values()), None))
    with pytest.raises(ValueError, match=r"does not fit on device='cpu': its weights alone take .* in float32 "
                       rf"\({sum(counts.values()) / 1e9:.2f} billion"):
        Policy.check_pretrained("me/pick", "droid/relative_pose")
    assert not list(snapshot.rglob("*.safetensors")) and len(calls) == 1  # the configs alone: no weights downloaded

    def offline(self, *a, **k):
        raise OSError("offline")

    monkeypatch.setattr(HfApi, "parse_safetensors_file_metadata", offline)  # the hub does not say: judged once here
    with pytest.raises(ValueError, match=r"does not fit on device='cpu'"):
        Policy.check_pretrained("me/pick", "droid/relative_pose")
    assert list(snapshot.rglob("*.safetensors"))  # downloaded, then judged


def test_a_gpu_without_the_memory_free_is_refused_before_its_weights_load(tiny_checkpoint, gpus, monkeypatch):
    """A V100 holds the weights in float32 by default (twice bfloat16's memory), and nothing compared them with what
    the GPU has free: the load ran out of memory in torch's words after minutes of reading. Weights in the dtype asked
    and `CUDA_MARGIN`, against `torch.cuda.mem_get_info`'s free bytes, refused naming the GPU, both figures and the
    fixes that fit: bfloat16 (emulated on this GPU), what other processes hold, another GPU, a smaller model."""
    from diffusers import Cosmos3OmniPipeline

    monkeypatch.setattr(Cosmos3OmniPipeline, "from_pretrained", lambda *a, **k: pytest.fail("weights loaded"))
    values = loading.weights_values(tiny_checkpoint)
    count = sum(values.values())
    free = loading.CUDA_MARGIN + 2 * count  # bfloat16 fits, float32 does not
    asked = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index: asked.append(index) or (free, 16 * 2**30))
    with pytest.raises(ValueError) as refused:
        loading.load_components(tiny_checkpoint, torch.device("cuda:1"), torch.float32)
    assert asked == [1] and str(refused.value) == (
        f"checkpoint={str(tiny_checkpoint)!r} does not fit on device='cuda:1' (Tesla V100-SXM2-16GB): its weights "
        f"take 0.0 GiB in float32 ({count / 1e9:.2f} billion values), 1.0 GiB with 1.0 GiB for the first step, and it "
        "has 1.0 GiB free of its 16.0 GiB; loading it would run out of memory. Try dtype='bfloat16' (`--dtype "
        "bfloat16`, for inference: 1.0 GiB, emulated on this GPU without its arithmetic: slower); or free what other "
        "processes hold of it (15.0 GiB: nvidia-smi lists them); or another GPU with more memory free "
        "(device='cuda:N'); or a smaller model, or a GPU with more memory")
    loading.check_cuda_memory(tiny_checkpoint, torch.device("cuda:1"), torch.bfloat16)  # fits: no refusal
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index: (free - 2, 16 * 2**30))  # a byte short of it
    with pytest.raises(ValueError, match=r"'cuda:0' \(NVIDIA H100.* in bfloat16 .*; loading it would run out of "
                       r"memory\. Try free what"):
        loading.check_cuda_memory(tiny_checkpoint, torch.device("cuda"), torch.bfloat16)  # the current one, cuda:0
    # a sharded rank's transformer is an empty structure: only the other parts are judged
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index: (loading.CUDA_MARGIN + 4 * values["vae"], 2**34))
    loading.check_cuda_memory(tiny_checkpoint, torch.device("cuda:0"), torch.float32, transformer=False)
    with pytest.raises(ValueError, match="does not fit on device='cuda:0' \\(NVIDIA H100"):
        loading.check_cuda_memory(tiny_checkpoint, torch.device("cuda:0"), torch.float32)


def test_a_cpu_load_asks_no_gpu_nor_reads_a_header_again(tiny_checkpoint, monkeypatch):
    """The CUDA check costs a load on the CPU nothing: no header read, no CUDA asked."""
    monkeypatch.setattr(loading, "weights_values", lambda *a: pytest.fail("headers read"))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: pytest.fail("CUDA asked"))
    parts = loading.load_components(tiny_checkpoint, torch.device("cpu"), torch.float32, checked=True)
    assert next(parts["transformer"].parameters()).device.type == "cpu"


def test_a_gpu_load_reads_no_header_nor_asks_the_hub(tiny_checkpoint, monkeypatch):
    """A GPU's memory is not judged up front (asking it initialises CUDA, which a server must not before it forks;
    `check_cuda_memory` judges it where the model loads): no header is read for it, nor asked of the hub, where an
    offline cluster node would wait on each request."""
    asked = []
    monkeypatch.setattr(loading, "weights_values", lambda *a: asked.append(a) or {})
    assert loading.check_memory(tiny_checkpoint, torch.device("cuda"), torch.bfloat16) and asked == []
    loading.check_memory(tiny_checkpoint, torch.device("cpu"), torch.float32)
    assert asked == [(tiny_checkpoint,)]


def fake_cgroups(tmp_path, monkeypatch, cgroups: str, files: dict[str, str]) -> None:
    """This process's /proc/self/cgroup as `cgroups`, and a cgroup file system of `files` (paths under its root)."""
    (tmp_path / "cgroup").write_text(cgroups)
    for name, text in files.items():
        (tmp_path / "fs" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "fs" / name).write_text(text)
    monkeypatch.setattr(loading, "PROC_CGROUP", tmp_path / "cgroup")
    monkeypatch.setattr(loading, "CGROUP_ROOT", tmp_path / "fs")


@pytest.mark.parametrize(("cgroups", "files", "limit"), [
    ("0::/\n", {"memory.max": "8589934592\n"}, 8 * 2**30),  # a container's own cgroup v2, its root as it sees it
    ("0::/\n", {"memory.max": "max\n"}, None),
    # a Slurm step under its job, no cgroup namespace: the step's own is unset, its job's set
    ("0::/system.slice/job_7/step_0\n", {"system.slice/job_7/step_0/memory.max": "max\n",
                                         "system.slice/job_7/memory.max": "4294967296\n"}, 4 * 2**30),
    # cgroup v1 (RHEL 8, an older Docker host): the container's limit at the root it sees, /docker/ID not there
    ("12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n",
     {"memory/memory.limit_in_bytes": "2147483648\n"}, 2 * 2**30),
    ("12:memory:/\n", {"memory/memory.limit_in_bytes": "9223372036854771712\n"}, 9223372036854771712),  # unlimited
])
def test_the_ram_is_the_lowest_cgroup_limit_above_this_process(tmp_path, monkeypatch, cgroups, files, limit):
    """Only /sys/fs/cgroup/memory.max was read: a Slurm job's limit (set on its job, not at that root) and cgroup
    v1's (`memory.limit_in_bytes`) went unseen, and a model past them was killed by the system, not refused."""
    from types import SimpleNamespace

    import psutil

    fake_cgroups(tmp_path, monkeypatch, cgroups, files)
    assert loading.cgroup_memory() == (limit, None)  # no usage file here: the headroom is not known
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(total=16 * 2**30, available=5 * 2**30))
    assert loading.device_memory(torch.device("cpu")) == (min(16 * 2**30, limit or 16 * 2**30), 5 * 2**30)


@pytest.mark.parametrize(("cgroups", "files"), [
    ("0::/\n", {"memory.max": "8589934592\n", "memory.current": str(8 * 2**30),
                "memory.stat": f"anon {7 * 2**30}\ninactive_file {2**29}\nactive_file 0\n"}),
    # a Slurm step under its job, the job's the tighter: its usage counts every step's
    ("0::/job_7/step_0\n", {"job_7/step_0/memory.max": "max\n", "job_7/step_0/memory.current": "1024\n",
                            "job_7/memory.max": "8589934592\n", "job_7/memory.current": str(15 * 2**29)}),
    ("12:memory:/docker/abc\n", {"memory/memory.limit_in_bytes": "8589934592\n",
                                 "memory/memory.usage_in_bytes": str(8 * 2**30),
                                 "memory/memory.stat": f"cache {2**30}\ntotal_inactive_file {2**29}\n"}),
])
def test_the_ram_available_now_is_the_cgroups_headroom_where_lower(tmp_path, monkeypatch, cgroups, files):
    """What is available now was the system's (psutil), the host's inside a container: a model past the container's
    headroom, well within the host's free RAM, loaded with no word, then swapped or was killed. The headroom is the
    limit less the usage, less the file cache the kernel reclaims first (`inactive_file`)."""
    from types import SimpleNamespace

    import psutil

    fake_cgroups(tmp_path, monkeypatch, cgroups, files)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(total=64 * 2**30, available=50 * 2**30))
    assert loading.device_memory(torch.device("cpu")) == (8 * 2**30, 2**29)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(total=64 * 2**30, available=2**20))
    assert loading.device_memory(torch.device("cpu")) == (8 * 2**30, 2**20)  # the system's, where lower


def test_an_adapter_on_a_hub_base_is_judged_by_the_bases_headers(tiny_checkpoint, model_repo, monkeypatch, tmp_path):
    """An adapter checkpoint names its base by hub id (fetched as it loads, by diffusers): its weights counted none,
    so the check passed as judged, and a laptop downloaded the base whole before the system killed the load."""
    import json

    calls, snapshot = model_repo(tiny_checkpoint)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "base_model.json").write_text(json.dumps({"base_model_name_or_path": "me/pick", "weight_samples": {}}))
    counts = loading.weights_values(tiny_checkpoint)
    assert loading.weights_values(adapter) == counts  # the base's, from its headers on the hub
    assert len(calls) == 1 and not list(snapshot.rglob("*.safetensors"))  # its configs alone fetched
    monkeypatch.setattr(loading, "device_memory", lambda device: (sum(counts.values()), None))
    with pytest.raises(ValueError, match=r"does not fit on device='cpu': its weights alone take .* in float32"):
        loading.check_memory(adapter, torch.device("cpu"), torch.float32)
