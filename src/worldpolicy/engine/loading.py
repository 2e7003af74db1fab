"""Load a diffusers-format Cosmos3 checkpoint (local folder or hub id) into diffusers' own classes, or a LoRA adapter
checkpoint (`worldpolicy train` with `finetune.lora_save = "adapter"`) onto the base it names."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from .. import fileio
from ..errors import is_integer
from ..fileio import (
    ADAPTER_FILE,
    BASE_FILE,
    MODEL_INDEX_FILE,
    TRAINED_FILE,
    safetensors_files,
    safetensors_index,
)
from ..hub import (
    HubError,
    complete_snapshot,
    hub_bars_hidden,
    hub_id_shaped,
    model_metadata,
    names_hub_id,
    remote_weight_values,
    snapshot_fix,
    snapshot_repo_id,
    split_revision,
    unfetched,
)
from ..logcapture import loading_quietly
from .sources import AdapterBase, adapter_base, adapter_digest, check_checkpoint_source

logger = logging.getLogger(__name__)

SAMPLES_PER_TENSOR = 4
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"  # a diffusers model's weights; sharded: its .index.json + shards
# The parts of a complete folder `Cosmos3OmniPipeline.from_pretrained` loads for worldpolicy (never a safety checker),
# each with the config file it needs (None: a tokenizer, saved in one of several layouts); the sound tokenizer only
# where model_index.json names one. The models among them hold weights.
PARTS = {"transformer": "config.json", "vae": "config.json", "text_tokenizer": None,
         "scheduler": "scheduler_config.json", "sound_tokenizer": "config.json"}
MODEL_PARTS = ("transformer", "vae", "sound_tokenizer")

DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16,
}


def device_named(device: str | torch.device | None) -> bool:
    """Whether `device` names one, rather than leaving it to the machine that runs the model: None or 'auto'."""
    return device is not None and not (isinstance(device, str) and device.strip().lower() == "auto")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """None or 'auto': CUDA where there is a GPU, else the CPU (never MPS unasked: the project's checks run on CPU and
    CUDA only); else the device named, in any case (`CPU`, `Cuda:1`), as dtype names are read, if this machine has
    it."""
    if not device_named(device):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device.strip().lower() if isinstance(device, str) else device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r} is not a torch device; accepted e.g. 'auto', 'cpu', 'cuda', 'cuda:1', "
                         "'mps'") from None
    available = {
        "cpu": lambda: True,
        "cuda": torch.cuda.is_available,
        "mps": lambda: torch.backends.mps.is_available(),
        "xpu": lambda: hasattr(torch, "xpu") and torch.xpu.is_available(),
    }
    if resolved.type not in available:
        raise ValueError(f"device={device!r} cannot run a model; accepted: {', '.join(available)} (e.g. 'cuda:1')")
    if not available[resolved.type]():
        raise ValueError(f"device={device!r} was asked for but {resolved.type} is not available here; run on the "
                         "CPU: device='cpu'")  # the command line names its flag (`cli.flag_named`)
    count = torch.cuda.device_count() if resolved.type == "cuda" else 0
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= count:
        accepted = ", ".join(repr(f"cuda:{i}") for i in range(count))
        raise ValueError(f"device={device!r}: this machine has {count} CUDA device(s); accepted: 'cuda', {accepted}")
    return resolved


def check_compile_options(device: torch.device, compile: bool, cuda_graphs: bool) -> None:
    """CUDA graphs capture CUDA kernels only; say so before any weights load."""
    if cuda_graphs and device.type != "cuda":
        raise ValueError(f"cuda_graphs=True needs a CUDA device, but device={str(device)!r}; drop it or use device='cuda'")


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """CUDA → bf16 (fp32 on a GPU without bf16 arithmetic: `cuda_bf16_native`), any other device fp32, unless asked
    otherwise. A name is read as torch and numpy spell it, in any case (`BF16`, `"Float16"`, `torch.bfloat16` as
    text, as `str(torch_dtype)` and a results' settings write it). bf16 on a GPU without its arithmetic, by default
    or asked for, is said in a warning (`_say_bf16_emulated`), once per device and case; on MPS before macOS 14,
    which has none, it is refused."""
    if dtype is None:
        if device.type != "cuda":
            return torch.float32
        if cuda_bf16_native(device):
            return torch.bfloat16
        _say_bf16_emulated(_cuda_index(device), asked=False)
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"dtype={dtype} is not supported; accepted: float32, bfloat16, float16")
        resolved = dtype
    else:
        name = dtype.strip().lower().removeprefix("torch.") if isinstance(dtype, str) else None
        if name not in DTYPES:
            raise ValueError(f"dtype={dtype!r} is not supported; accepted: {', '.join(DTYPES)} (in any case)")
        resolved = DTYPES[name]
    if resolved == torch.bfloat16 and device.type == "cuda" and not cuda_bf16_native(device):
        _say_bf16_emulated(_cuda_index(device), asked=True)
    if resolved == torch.bfloat16 and device.type == "mps" and not torch.backends.mps.is_macos_or_newer(14, 0):
        raise ValueError(f"dtype={dtype!r} on device='mps' needs macOS 14 or newer (torch's MPS has no bfloat16 "
                         "before it: the load would fail once weights are read); accepted here: float32 (MPS's "
                         "default) or float16")
    return resolved


def _cuda_index(device: torch.device) -> int:
    return device.index if device.index is not None else torch.cuda.current_device()


def cuda_bf16_native(device: torch.device | int) -> bool:
    """Whether a CUDA device (a torch device or its index; `cuda` alone: the current one) computes bfloat16 in
    hardware: compute capability 8.0 (Ampere) or later, or a ROCm GPU, as `torch.cuda.is_bf16_supported(
    including_emulation=False)` judges the current device. An older GPU (V100 7.0, T4 7.5) emulates it: slowly, and
    some kernels refuse it."""
    index = device if isinstance(device, int) else _cuda_index(device)
    return bool(torch.version.hip) or torch.cuda.get_device_properties(index).major >= 8


@functools.cache
def _say_bf16_emulated(index: int, *, asked: bool) -> None:
    """Why a GPU without bf16 arithmetic runs the model in float32 by default, or slowly in bfloat16 as asked; once
    per device and case (a server checks its arguments up front and again as it loads). float32, not float16: the
    model's weights are bfloat16, whose range float16 lacks (values past 65504 overflow), and no float16 run of a
    real checkpoint has been checked here; float32 takes twice bfloat16's memory."""
    props = torch.cuda.get_device_properties(index)
    gpu = f"cuda:{index} ({props.name}, compute capability {props.major}.{props.minor})"
    if asked:
        logger.warning("%s has no bfloat16 arithmetic (compute capability 8.0, Ampere, and later have it): bfloat16 "
                       "runs emulated, far slower than on a newer GPU; this GPU's default is float32 (dtype=None: "
                       "leave --dtype out)", gpu)
    else:
        logger.warning("%s has no bfloat16 arithmetic (compute capability 8.0, Ampere, and later have it): the model "
                       "runs in float32, twice bfloat16's memory; dtype= (--dtype) chooses another: bfloat16 "
                       "(emulated, slow) or float16 (half the memory; values past 65504 overflow, unchecked for this "
                       "model)", gpu)


def cast_like_pretrained(module, dtype: torch.dtype, frozen_only: bool = False) -> None:
    """Cast parameters in place as `from_pretrained(dtype=...)` loads them: those of `_keep_in_fp32_modules` stay
    fp32 (`frozen_only`: and so do trainable ones, which keep an fp32 master copy)."""
    keep = set(module._keep_in_fp32_modules or ())
    for name, param in module.named_parameters():
        if name.split(".")[0] not in keep and not (frozen_only and param.requires_grad):
            param.data = param.data.to(dtype)


def check_checkpoint_files(folder: Path, source: str) -> dict[str, int]:
    """Each part of a complete folder is there and whole, judged from file names, sizes and safetensors headers (a few
    KB read), as loading starts: a partial download or copy (a part or shard missing, a file cut short, a Git LFS
    pointer) otherwise failed inside diffusers, with a message naming neither the checkpoint nor the fix, after the
    parts before it had loaded (the transformer: 28 GiB for Nano). Not part of `check_checkpoint_source`, which
    judges where a checkpoint is (also for configs and servers that load later), not what it holds. Returns how many
    values each model part's weights hold, from the headers read here (`check_loadable` judges the memory by them)."""
    index = _local_json(folder, MODEL_INDEX_FILE) or {}
    problems = []
    headers: dict[str, dict[str, dict]] = {}  # by model part, its weights files' safetensors headers: read once
    for part, config in PARTS.items():
        named = index.get(part)
        if part == "sound_tokenizer" and not (isinstance(named, list) and any(named)):
            continue
        where = folder / part
        if not where.is_dir() or not any(where.iterdir()):
            problems.append(f"{part}/ is {'empty' if where.is_dir() else 'missing'}")
            continue
        if config is not None and not (where / config).is_file():
            problems.append(f"{part}/{config} is missing")
        if part in MODEL_PARTS:
            found, headers[part] = _weights_problems(where, part, source)
            problems.extend(found)
    _refuse_incomplete(source, problems)
    for part in MODEL_PARTS:
        named = index.get(part)
        if isinstance(named, list) and len(named) == 2 and named[0] == "diffusers" and isinstance(named[1], str):
            _refuse_config_sizes(folder / part, part, named[1], source, headers[part])
    return {part: _header_values(found) for part, found in headers.items()}


def check_checkpoint_complete(path_or_id: str | Path, *, located: bool = False) -> dict[str, int] | None:
    """`check_checkpoint_source`, then what a local folder holds: a LoRA adapter checkpoint's own weights, then its
    base's (down the chain of bases) parts (`check_checkpoint_files`); a hub id's weights are fetched first, after
    the checks its configs allowed (`hub.complete_snapshot`), a hub id not yet fetched (an adapter's base) checked as
    it downloads.
    Everything `load_components` refuses before any part loads, from a few KB read of a local folder (a hub
    snapshot's missing weights are downloaded here), so that a listing (the MCP `list_checkpoints`) says a partial
    folder is unusable rather than the first call that loads it. `located=True`: the caller has run
    `check_checkpoint_source` on it already (which checks an adapter's chain of bases too), so it is not run again.
    Returns the values each model part's weights hold (`check_checkpoint_files`: an adapter's base's), None where no
    weights were read (a base named by its hub id, which diffusers fetches as the adapter loads)."""
    if not located:
        check_checkpoint_source(path_or_id)
    source = str(path_or_id)
    local = Path(source)
    if not local.is_dir():
        return None
    complete_snapshot(local)  # a hub id's weights, after the checks its configs allowed (`hub.model_metadata`)
    base = adapter_base(local)
    if base is None:
        return check_checkpoint_files(local, source)
    _refuse_incomplete(source, [f"{name} is {problem}" for name in (ADAPTER_FILE, TRAINED_FILE)
                                if (problem := _safetensors_header(local / name)[1])])  # before the base is read
    return check_checkpoint_complete(base.path, located=True)  # its place: checked with the adapter's, down the chain


def weights_values(path_or_id: str | Path) -> dict[str, int | None]:
    """How many values each model part's weights hold (`MODEL_PARTS`, an adapter checkpoint's base's: its own LoRA
    weights are a rounding error), from their safetensors headers (a few KB read): the files here, or, for a hub
    snapshot whose weights are not fetched yet, the hub's (`hub.remote_weight_values`); None for a part whose count
    is not known (the hub did not say; a partial folder, which `check_checkpoint_complete` refuses). A base named by
    its hub id, which diffusers fetches as the adapter loads, is counted from its snapshot's configs
    (`hub.model_metadata`, a few KB fetched) and its headers on the hub; None for each part where it cannot be
    fetched (the load says why)."""
    local = Path(str(path_or_id))
    base = adapter_base(local) if local.is_dir() else None
    if base is not None and names_hub_id(base.path):
        try:
            return weights_values(model_metadata(base.path))
        except HubError:
            return dict.fromkeys(MODEL_PARTS)
    if base is not None:
        return weights_values(base.path)
    values = {}
    for part in MODEL_PARTS:
        where = local / part
        if not where.is_dir():
            continue
        files = _weight_files(where)
        if files is None:
            values[part] = None  # an unreadable index: check_checkpoint_complete names it
        elif all((where / name).is_file() for name in files):
            problems, headers = _weights_problems(where, part, str(path_or_id))
            values[part] = None if problems else _header_values(headers)
        else:
            values[part] = remote_weight_values(local, [f"{part}/{name}" for name in files])
    return values


def _weight_files(where: Path) -> list[str] | None:
    """A model part's weights files: the shards its index names, else the one file; None for an unreadable index."""
    try:
        return [name for name in safetensors_files(where, WEIGHTS_FILE)
                if name != safetensors_index(WEIGHTS_FILE)] or [WEIGHTS_FILE]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _header_values(headers: dict[str, dict]) -> int:
    """How many values the weights in safetensors `headers` (by file name) hold."""
    return sum(math.prod(int(n) for n in weight["shape"]) for header in headers.values()
               for key, weight in header.items() if key != "__metadata__")


def _weights_here(path_or_id: str | Path) -> bool:
    """Whether the weights a checkpoint loads (an adapter's base's) are all files here, whose headers
    `check_checkpoint_complete` reads: not a hub snapshot's not fetched yet, nor a base named by its hub id."""
    local = Path(str(path_or_id))
    if not local.is_dir():
        return False
    base = adapter_base(local)
    if base is not None:
        return _weights_here(base.path)
    return snapshot_repo_id(local, "model") is None or all(
        files is None or all((local / part / name).is_file() for name in files)
        for part in MODEL_PARTS if (local / part).is_dir() for files in [_weight_files(local / part)])


def device_memory(device: torch.device) -> tuple[int | None, int | None]:
    """(total, available) bytes of the memory a model on `device` is held in, each None where it is not known: the
    CPU's RAM and what the system says is available now, each a Linux cgroup's where lower (`cgroup_memory`: a
    container's limit and its headroom, which the system-wide figure does not see); MPS's is the RAM Metal lets this
    process use (`torch.mps.recommended_max_memory`, torch >= 2.5; before it, the RAM: MPS shares it). None for a GPU
    with memory of its own: asking it initialises CUDA in this process (a server checks before it forks), and its
    allocator says out of memory in one line, where the system kills a process that overruns its RAM without a word;
    it is judged where the model loads (`check_cuda_memory`)."""
    import psutil

    recommended = getattr(torch.mps, "recommended_max_memory", None)
    if device.type == "mps" and recommended is not None:
        return recommended(), None
    if device.type not in ("cpu", "mps"):
        return None, None
    memory = psutil.virtual_memory()
    limit, headroom = cgroup_memory()
    return (min(size for size in (memory.total, limit) if size is not None),
            min(size for size in (memory.available, headroom) if size is not None))


PROC_CGROUP = Path("/proc/self/cgroup")  # this process's cgroups, by hierarchy: `ID:CONTROLLERS:/PATH` a line
CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_memory() -> tuple[int | None, int | None]:
    """(limit, headroom): the lowest memory limit of this process's cgroup and the cgroups above it (a container's, a
    Slurm job's: a step's own is often unset under its job's), and the least any of them has left (its limit less
    what its processes use, `_cgroup_used`), each None where none is set or none can be read (no Linux). Read where
    this process sees them: cgroup v2's `memory.max` and `memory.current` (the unified hierarchy, `0::/PATH`), v1's
    `memory/memory.limit_in_bytes` and `memory.usage_in_bytes` (RHEL 8, older Docker hosts). A container's own cgroup
    is the root it sees, its path here naming the host's (`/docker/ID`): each folder up to the root is read, those
    missing skipped."""
    try:
        lines = PROC_CGROUP.read_text().splitlines()
    except OSError:
        return None, None
    limits, headrooms = [], []
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        if fields[1] == "":  # "max" where there is no limit
            root, names = CGROUP_ROOT, ("memory.max", "memory.current", "inactive_file")
        elif "memory" in fields[1].split(","):  # about 2**63 where there is none
            root, names = CGROUP_ROOT / "memory", ("memory.limit_in_bytes", "memory.usage_in_bytes",
                                                   "total_inactive_file")
        else:
            continue
        parts = [part for part in fields[2].split("/") if part and part != ".."]
        for depth in range(len(parts), -1, -1):
            folder = root.joinpath(*parts[:depth])
            try:
                text = (folder / names[0]).read_text().strip()
            except OSError:
                continue
            if text.isdigit():
                limits.append(int(text))
                used = _cgroup_used(folder, *names[1:])
                if used is not None:
                    headrooms.append(max(int(text) - used, 0))
    return min(limits, default=None), min(headrooms, default=None)


def _cgroup_used(folder: Path, usage: str, cache: str) -> int | None:
    """The memory cgroup `folder`'s processes hold: its `usage` file less the file cache the kernel reclaims before
    it swaps (`memory.stat`'s `cache` line, as `docker stats` and the kubelet count it; the usage alone where that
    is not there). None where the usage cannot be read."""
    try:
        used = int((folder / usage).read_text())
    except (OSError, ValueError):
        return None
    try:
        stat = dict(line.split(maxsplit=1) for line in (folder / "memory.stat").read_text().splitlines() if " " in line)
        return used - int(stat[cache])
    except (OSError, ValueError, KeyError):
        return used


def gib(size: float) -> str:
    return f"{size / 2**30:.1f} GiB"


def _weights_size(count: int, dtype: torch.dtype) -> str:
    """What `count` weight values take in `dtype`, as a refusal says it: `2.0 GiB in float32 (0.54 billion values)`."""
    return f"{gib(count * dtype.itemsize)} in {str(dtype).removeprefix('torch.')} ({count / 1e9:.2f} billion values)"


# The checkpoints (source, device, dtype) warned of as past the memory available now: said once in a process, not
# again as a command that checked before reading its inputs (`Policy.check_pretrained`) loads (`from_pretrained`)
_SWAP_WARNED: set[tuple[str, str, str]] = set()


def check_memory(path_or_id: str | Path, device: torch.device, dtype: torch.dtype, fix: str | None = None,
                 values: dict[str, int | None] | None = None) -> bool:
    """Refuse a checkpoint whose weights alone, in `dtype`, exceed the memory `device` holds them in (`device_memory`),
    before any weights load: on the CPU a load past the RAM is killed by the system (or swaps for hours), with no
    message, after minutes of reading. Warned of where they exceed the memory available now (once a process for the
    same checkpoint, device and dtype: `_SWAP_WARNED`). Activations (and a training run's gradients and optimizer
    state) come on top: passing is no promise that it runs. `fix`: what the refusal advises (default: bfloat16 where
    that fits, else another machine). False where a part's size was not known (a hub snapshot's weights, when the
    hub did not say): the caller asks again once they are here. `values`: each model part's count, as the caller
    read them (`check_checkpoint_complete`); else `weights_values`."""
    total, available = device_memory(device)
    if total is None:
        return True  # nothing to judge against: no header is read (nor asked of the hub)
    values = weights_values(path_or_id) if values is None else values
    count = sum(value or 0 for value in values.values())
    need = count * dtype.itemsize
    judged = None not in values.values()
    if not count:
        return judged
    held = f"its weights alone take {_weights_size(count, dtype)}"
    if need > total:
        where, outcome = (("RAM", "would be killed by the system, not refused") if device.type == "cpu" else
                          ("memory MPS may use (shared with the system)", "would fail once they are read"))
        half = count * torch.bfloat16.itemsize
        smaller = f"Try dtype='bfloat16' ({gib(half)}), or run" if dtype.itemsize > 2 and half <= total else "Run"
        fix = fix or (f"{smaller} it on a machine with the memory (a GPU: device='cuda') and reach it from here over "
                      "the network (`worldpolicy serve`, RemotePolicy)")
        raise ValueError(f"checkpoint={str(path_or_id)!r} does not fit on device='{device}': {held}, and this machine "
                         f"has {gib(total)} of {where}; loading it {outcome}. {fix}")
    warned = (str(path_or_id), str(device), str(dtype))
    if available is not None and need > available and warned not in _SWAP_WARNED:
        _SWAP_WARNED.add(warned)
        logger.warning("checkpoint %s: %s, and %s of this machine's %s of RAM is available now: loading it may "
                       "swap for a long time or be killed by the system; close other programs first",
                       path_or_id, held, gib(available), gib(total))
    return judged


# What a model on a CUDA device needs beside its weights, at the least, in `check_cuda_memory`: the CUDA context's
# kernels and cuBLAS's workspace once they load, and the first step's activations. A GPU with less free than the
# weights and this fails at the first step, if not as the weights move.
CUDA_MARGIN = 2**30


def check_cuda_memory(path_or_id: str | Path, device: torch.device, dtype: torch.dtype, *,
                      transformer: bool = True) -> None:
    """Refuse a checkpoint whose weights in `dtype` (`weights_values`: from their safetensors headers, a few KB read;
    `transformer=False`: the transformer's left out, a sharded rank's) and `CUDA_MARGIN` exceed the memory CUDA
    `device` has free now (`torch.cuda.mem_get_info`: other processes' share taken off), before any weights load: a
    GPU without bfloat16 arithmetic holds them in float32 by default (`resolve_dtype`), twice bfloat16's memory, and
    the load otherwise ran out of memory with torch's own message after minutes of reading. Asked only where the
    model loads (`load_components`): it initialises CUDA in this process, which a server must not do before it forks
    (`check_memory` leaves a GPU alone for that). Passing is no promise that it runs: the activations of longer
    inputs, a training run's gradients and optimizer state, come on top."""
    if not _weights_here(path_or_id):
        return  # a base named by its hub id, which diffusers fetches: the hub is not asked (an offline node waits)
    values = weights_values(path_or_id)
    count = sum(value or 0 for part, value in values.items() if transformer or part != "transformer")
    if not count:
        return
    index = _cuda_index(device)
    free, total = torch.cuda.mem_get_info(index)
    need = count * dtype.itemsize + CUDA_MARGIN
    if need <= free:
        return
    props = torch.cuda.get_device_properties(index)
    fixes = []
    half = count * torch.bfloat16.itemsize + CUDA_MARGIN
    if dtype.itemsize > 2 and half <= free:
        emulated = "" if cuda_bf16_native(index) else ", emulated on this GPU without its arithmetic: slower"
        fixes.append(f"dtype='bfloat16' (`--dtype bfloat16`, for inference: {gib(half)}{emulated})")
    if total - free > CUDA_MARGIN:
        fixes.append(f"free what other processes hold of it ({gib(total - free)}: nvidia-smi lists them)")
    if torch.cuda.device_count() > 1:
        fixes.append("another GPU with more memory free (device='cuda:N')")
    fixes.append("a smaller model, or a GPU with more memory")
    raise ValueError(f"checkpoint={str(path_or_id)!r} does not fit on device='cuda:{index}' ({props.name}): its "
                     f"weights take {_weights_size(count, dtype)}, {gib(need)} with {gib(CUDA_MARGIN)} for the first "
                     f"step, and it has {gib(free)} free of its {gib(total)}; loading it would run out of memory. "
                     f"Try {'; or '.join(fixes)}")


def check_loadable(path_or_id: str | Path, device: torch.device, dtype: torch.dtype, *, memory: bool = True,
                   fix: str | None = None, located: bool = False) -> None:
    """`check_checkpoint_complete` and, unless `memory=False`, `check_memory` (with its `fix`), each safetensors header
    read once: a local folder's weights are judged by the headers the completeness check read; a hub snapshot's
    (an adapter's base by hub id) from the hub's headers before they download, and, where the hub did not say, once
    they are here. `located`: as `check_checkpoint_complete` takes it."""
    judged = not memory or (not _weights_here(path_or_id) and check_memory(path_or_id, device, dtype, fix))
    values = check_checkpoint_complete(path_or_id, located=located)
    if not judged and values is not None:
        check_memory(path_or_id, device, dtype, fix, values)


def _refuse_incomplete(source: str, problems: list[str]) -> None:
    """`problems` with checkpoint `source`: a hub snapshot named by its hub id, with what to do about it
    (`hub.snapshot_fix`), any other folder as a partial download or copy."""
    if problems:
        fix = snapshot_fix(source)
        shown = source if fix is None else snapshot_repo_id(source, "model")
        raise ValueError(f"checkpoint={shown!r} is incomplete: {'; '.join(problems)}. " + (
            fix or "A partial download or copy: fetch it again whole (e.g. `hf download <hub id> --local-dir "
            "<folder>`), or use another"))


def _weights_problems(where: Path, part: str, source: str) -> tuple[list[str], dict[str, dict]]:
    """What keeps a model part's safetensors weights (one file, or the shards its index names) from loading whole, and
    the headers of those that are whole, by file name."""
    index = where / safetensors_index(WEIGHTS_FILE)
    if (where / WEIGHTS_FILE).is_file() or index.is_file():
        try:
            files = [name for name in safetensors_files(where, WEIGHTS_FILE) if name != index.name]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            return [f"{part}/{index.name} is unreadable ({exc.__class__.__name__}: {exc})"], {}
    elif next(where.glob("*.bin"), None) is not None:
        raise ValueError(f"checkpoint={source!r}: {part}/ has .bin weights: pickles, which worldpolicy never loads; "
                         "save the model with safe_serialization=True or convert the .bin files to .safetensors")
    else:
        others = sorted(f.name for f in where.glob("*.safetensors"))  # e.g. a variant's (`.bf16.safetensors`)
        found = f"; it holds {', '.join(others[:3])}, which diffusers loads only as a variant" if others else ""
        return [f"{part}/{WEIGHTS_FILE} is missing (nor is there a sharded {index.name}{found})"], {}
    problems, headers = [], {}
    for name in files:
        file = where / name
        header, problem = _safetensors_header(file) if file.is_file() else (None, "missing")
        if problem:
            problems.append(f"{part}/{name} is {problem}")
        else:
            headers[name] = header
    return problems, headers


# The config keys counting a model's repeated blocks, by class, and the weights' prefix numbering them: checked against
# the highest block index before the model is built (one built of a million blocks took minutes and gigabytes)
BLOCK_COUNTS = {"Cosmos3OmniTransformer": {"num_hidden_layers": "layers"}}


class _TooManyWeights(Exception):
    pass


def _refuse_config_sizes(where: Path, part: str, class_name: str, source: str, headers: dict[str, dict]) -> None:
    """Every size a model part's config declares agrees with the shapes its weights' safetensors `headers` (by file
    name, as `_weights_problems` read them) hold, before
    diffusers builds it: a config is data, and diffusers builds what it says before it compares the weights with it
    (`vocab_size=10**10` tried to allocate terabytes, `num_hidden_layers=10**6` grew past a gigabyte for minutes). The
    block counts are compared with the highest block index (`BLOCK_COUNTS`); then the model is built on the meta
    device (no memory, no values), stopped once it has more weights than the files hold, and each of its weights'
    shapes compared with the header's. Headers only: no tensor data is read."""
    import diffusers

    model_class = getattr(diffusers, class_name, None) if class_name.isidentifier() else None
    if not (isinstance(model_class, type) and issubclass(model_class, diffusers.ModelMixin)):
        return  # not a diffusers model class: diffusers refuses the name itself
    file = f"{part}/{PARTS[part]}"
    config = _local_json(where.parent, file)
    if not isinstance(config, dict):
        raise ValueError(f"checkpoint={source!r}: {file} is not a JSON object")
    shapes = _weights_shapes(headers, part, source)
    said = f"checkpoint={source!r}: {file}"
    for key, prefix in BLOCK_COUNTS.get(class_name, {}).items():
        indexes = {int(name.split(".")[1]) for name in shapes
                   if name.startswith(prefix + ".") and name.split(".")[1].isdigit()}
        held = max(indexes, default=-1) + 1
        if key in config and config[key] != held:
            found = f"{held} ({prefix}.0 to {prefix}.{held - 1})" if held else f"none ({prefix}.*)"
            raise ValueError(f"{said} says {key}={config[key]!r} but its weights hold {found}: the config does not "
                             "describe these weights; use another checkpoint")
    accepted = inspect.signature(model_class.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):  # the keys it ignores: the load warns of them
        config = {key: value for key, value in config.items() if key in accepted}
    model = _meta_model(model_class, config, len(shapes), said)
    built = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    differ = [(name, built[name], shapes[name]) for name in built if name in shapes and built[name] != shapes[name]]
    if not differ:
        return
    sizes = {key: value for key, value in config.items() if is_integer(value)}

    def keys(wanted: tuple[int, ...], held: tuple[int, ...]) -> list[str]:
        return [f"{key}={value}" for key, value in sizes.items() if value in set(wanted) - set(held)]

    differ.sort(key=lambda d: not keys(d[1], d[2]))  # those a config key names first
    name, wanted, held = differ[0]
    named = keys(wanted, held)
    raise ValueError(f"{said} says {' and '.join(named) or 'sizes'} giving {name} the shape {list(wanted)}, but its "
                     f"weights hold {list(held)} ({len(differ)} weight(s) differ): the config does not describe these "
                     "weights; use another checkpoint")


def _meta_model(model_class: type, config: dict[str, Any], held: int, said: str) -> Any:
    """`model_class` of `config` on the meta device, refused once it registers far more weights than the `held` its
    files hold (twice, and some: a model may hold weights its files need not, e.g. tied ones)."""
    import threading

    from torch.nn.modules import module

    thread, count, most = threading.get_ident(), [0], 2 * held + 64

    def counted(*_: Any) -> None:
        if threading.get_ident() == thread:  # another thread's modules are its own
            count[0] += 1
            if count[0] > most:
                raise _TooManyWeights

    hooks = [module.register_module_parameter_registration_hook(counted),
             module.register_module_buffer_registration_hook(counted)]
    try:
        with torch.device("meta"):
            return model_class.from_config(config)
    except _TooManyWeights:
        raise ValueError(f"{said} describes a model of over {most} weights where its weights files hold {held}: a "
                         "block count in it disagrees with the weights; use another checkpoint") from None
    except (TypeError, ValueError, RuntimeError, AttributeError, KeyError, IndexError, ZeroDivisionError) as exc:
        raise ValueError(f"{said} is not a config diffusers' {model_class.__name__} builds ({exc.__class__.__name__}: "
                         f"{exc}); use another checkpoint") from None
    finally:
        for hook in hooks:
            hook.remove()


def _weights_shapes(headers: dict[str, dict], part: str, source: str) -> dict[str, tuple[int, ...]]:
    """Each weight's shape in a model part's (whole) safetensors files, from their headers (by file name)."""
    shapes = {}
    for name, header in headers.items():
        try:
            shapes.update({key: tuple(int(n) for n in value["shape"]) for key, value in header.items()
                           if key != "__metadata__"})
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"checkpoint={source!r}: {part}/{name} has a header safetensors does not read (a "
                             f"weight without a list of sizes, {exc.__class__.__name__}: {exc}); use another "
                             "checkpoint") from None
    return shapes


def _safetensors_header(file: Path) -> tuple[dict | None, str | None]:
    """`file`'s safetensors header, or why it is not a whole safetensors file (the header None). safetensors refuses a
    file whose size is not exactly 8 bytes + header + the data the header describes; the same sum tells a cut-short
    download here."""
    size = file.stat().st_size
    with open(file, "rb") as f:
        head = f.read(8)
        if head.startswith(b"version "):  # "version https://git-lfs.github.com/spec/v1"
            return None, "a Git LFS pointer, not the weights (run `git lfs pull` in the clone)"
        length = int.from_bytes(head, "little") if len(head) == 8 else 0
        if len(head) == 8 and 2 <= length <= 100_000_000 and length > size - 8:  # safetensors' header limit: 100 MB
            return None, f"{size} bytes, cut short within its {length}-byte header"
        try:
            if not 2 <= length <= size - 8:
                raise ValueError(length)
            header = json.loads(f.read(length))
            end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return None, f"not a safetensors file ({size} bytes)"
    expected = 8 + length + end
    if size != expected:
        return None, f"{size} bytes where its header describes {expected}: cut short"
    return header, None


def weight_samples(transformer, exclude: set[str] | frozenset[str] = frozenset()) -> dict[str, list[float]]:
    """A few values of every weight (names without peft's `.base_layer`): which base an adapter was trained on,
    cheap to store and to compare in whatever dtype the base is loaded in."""
    samples = {}
    for name, param in transformer.state_dict().items():
        name = name.replace(".base_layer", "")
        if ".lora_" in name or name in exclude or param.numel() == 0:
            continue
        flat = param.detach().reshape(-1)
        picks = torch.linspace(0, flat.numel() - 1, SAMPLES_PER_TENSOR).long().unique().to(flat.device)
        samples[name] = [float(v) for v in flat[picks].float().cpu()]
    return samples


def samples_differ(transformer, samples: dict[str, list[float]], exclude: set[str]) -> list[str]:
    """Sampled weights whose values are not `samples` rounded to their dtype, or that the model lacks (weights the
    samples lack, e.g. added by a newer diffusers, are not compared)."""
    found = weight_samples(transformer, exclude)
    samples = {name: values for name, values in samples.items() if name not in exclude}
    dtypes = {name.replace(".base_layer", ""): value.dtype for name, value in transformer.state_dict().items()}
    differ = sorted(set(samples) - set(found))
    for name in sorted(set(found) & set(samples)):
        expected = torch.tensor(samples[name], dtype=torch.float32).to(dtypes[name]).float()
        if len(samples[name]) != len(found[name]) or not torch.equal(expected, torch.tensor(found[name])):
            differ.append(name)
    return differ


def fused_by_adapters(path_or_id: str | Path) -> set[str]:
    """The weights adapter checkpoints fuse into, along the chain of bases from `path_or_id` (empty for any other
    checkpoint): their last bits depend on the device and dtype the fusing ran in, so an adapter trained on such a
    base is checked by the base's digest and its other weights (exact after a cast)."""
    base = adapter_base(path_or_id) if Path(str(path_or_id)).is_dir() else None
    if base is None:
        return set()
    from safetensors import safe_open

    with safe_open(str(Path(str(path_or_id)) / ADAPTER_FILE), framework="pt") as adapter:
        fused = {key.split(".lora_")[0] + ".weight" for key in adapter.keys() if ".lora_" in key}
    return fused | fused_by_adapters(base.path)


def base_mismatch(transformer, base: AdapterBase, trained: set[str]) -> str | None:
    """How the loaded base differs from the one an adapter checkpoint was trained on (None: it is that base)."""
    digest = adapter_digest(base.path) if Path(base.path).is_dir() else None
    if digest != base.adapter_sha256:
        if digest is None:
            return (f"it was trained on a LoRA adapter checkpoint (sha256 {base.adapter_sha256[:12]}...) and this is a "
                    "complete folder; a merged copy is another base: point it at that adapter checkpoint")
        if base.adapter_sha256 is None:
            return "it was trained on a complete folder and this is a LoRA adapter checkpoint"
        return "its adapters or trained weights differ"
    differ = samples_differ(transformer, base.samples, trained | fused_by_adapters(base.path))
    return f"{len(differ)} weights differ, e.g. {differ[0]!r}" if differ else None


def apply_adapter_checkpoint(transformer, folder: str | Path) -> None:
    """Fuse an adapter checkpoint's LoRA into its loaded base and set the weights it trained fully: the result is the
    transformer a merged checkpoint of the same step would load."""
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    folder = Path(str(folder))
    base = adapter_base(folder)
    trained = load_file(str(folder / TRAINED_FILE))
    params = dict(transformer.named_parameters())
    unknown = sorted(set(trained) - set(params))
    if unknown:
        raise ValueError(f"checkpoint {str(folder)!r}: {TRAINED_FILE} holds weights its base {base.path!r} lacks "
                         f"({', '.join(unknown[:3])}): the base is another model")
    mismatch = base_mismatch(transformer, base, set(trained))
    if mismatch:
        raise ValueError(
            f"checkpoint {str(folder)!r} is a LoRA adapter trained on another base than {base.path!r} holds now "
            f"({mismatch}): point base_model_name_or_path in {BASE_FILE} at the base it was trained on"
        )
    transformer.load_lora_adapter(str(folder), weight_name=ADAPTER_FILE, adapter_name="worldpolicy", prefix=None)
    # fuse the fp32 adapters, as a merged checkpoint is written: a bf16 base's copy of them rounds B·A past bf16's
    # rounding of the fused weight
    for name, param in transformer.named_parameters():
        if ".lora_" in name:
            param.data = param.data.float()
    set_peft_model_state_dict(transformer, load_file(str(folder / ADAPTER_FILE)), adapter_name="worldpolicy")
    transformer.fuse_lora(adapter_names=["worldpolicy"])
    transformer.unload_lora()  # peft's wrappers go; the fused weights stay
    with torch.no_grad():
        for name, value in trained.items():
            params[name].copy_(value)


def check_action_head(transformer_config: Any, source: str = "", embodiment: Any = None) -> None:
    """The checkpoint must have an action head, holding `embodiment`'s columns and domain id when one is given (read
    from `transformer/config.json` before any weights load, and again from the loaded model)."""
    name = f"checkpoint {source!r}" if source else "the checkpoint"
    head, domains = transformer_config.get("action_dim"), transformer_config.get("num_embodiment_domains")
    if not transformer_config.get("action_gen", False) or head is None:
        raise ValueError(f"{name} has no action head (transformer action_gen=False); it cannot act")
    if embodiment is None:
        return
    if embodiment.action_dim > head:
        raise ValueError(
            f"embodiment {embodiment.key!r} has {embodiment.action_dim} action columns but the action head of {name} "
            f"holds {head}: use an embodiment of at most {head} columns (the one it was trained for)"
        )
    if domains is not None and embodiment.domain_id >= domains:
        raise ValueError(
            f"embodiment {embodiment.key!r} uses domain id {embodiment.domain_id} but {name} has {domains} domains"
        )


def _local_json(path_or_id: str | Path, relative: str) -> dict[str, Any] | None:
    """A local checkpoint's JSON file `relative` (e.g. `transformer/config.json`), an adapter checkpoint's base's
    (None for a hub id or a folder without one)."""
    base = adapter_base(path_or_id) if Path(str(path_or_id)).is_dir() else None
    if base is not None:
        return _local_json(base.path, relative)
    config = Path(str(path_or_id)) / relative
    if not config.is_file():
        return None
    try:
        return json.loads(config.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"checkpoint {str(path_or_id)!r}: {relative} is unreadable ({exc})") from None


def local_transformer_config(path_or_id: str | Path) -> dict[str, Any] | None:
    """A local checkpoint's `transformer/config.json` (None for a hub id or a folder without one)."""
    return _local_json(path_or_id, "transformer/config.json")


def local_vae_config(path_or_id: str | Path) -> dict[str, Any] | None:
    """A local checkpoint's `vae/config.json` (None for a hub id or a folder without one)."""
    return _local_json(path_or_id, "vae/config.json")


def local_scheduler(path_or_id: str | Path) -> tuple[Any, bool] | None:
    """A local checkpoint's scheduler (built from `scheduler/scheduler_config.json`) and `model_index.json`'s
    `use_native_flow_schedule`, as loading gives them, without the weights; None for a hub id or a folder without
    them. Sampling settings the scheduler cannot honour are refused with these before anything loads."""
    config = _local_json(path_or_id, "scheduler/scheduler_config.json")
    index = _local_json(path_or_id, MODEL_INDEX_FILE)
    if config is None or index is None:
        return None
    return _scheduler_class(config, path_or_id).from_config(config), bool(index.get("use_native_flow_schedule", False))


def _scheduler_class(config: dict[str, Any], path_or_id: str | Path) -> type:
    """The diffusers scheduler class `scheduler_config.json` names (UniPC when it names none diffusers has). Only a
    scheduler: the name is data from the checkpoint, and any other diffusers class (a model, a pipeline) would be
    built from it here, at whatever size its config asks."""
    import diffusers

    name = config.get("_class_name")
    found = getattr(diffusers, name, None) if isinstance(name, str) and name.isidentifier() else None
    if found is None:
        return diffusers.UniPCMultistepScheduler
    if not (isinstance(found, type) and issubclass(found, diffusers.SchedulerMixin)):
        raise ValueError(f"checkpoint {str(path_or_id)!r}: scheduler/scheduler_config.json's _class_name={name!r} is "
                         "not a scheduler; accepted: a diffusers scheduler class such as 'UniPCMultistepScheduler' or "
                         "'FlowMatchEulerDiscreteScheduler'")
    return found


@contextmanager
def _diffusers_bar_hidden(hidden: bool) -> Iterator[None]:
    """Without diffusers' "Loading pipeline components" bar while the block loads (when `hidden`), nor the download
    bars of a checkpoint it fetches from the hub (`hub_bars_hidden`), as they were after."""
    from diffusers.utils import logging as diffusers_logging

    shown = diffusers_logging.is_progress_bar_enabled()
    if hidden:
        diffusers_logging.disable_progress_bar()
    try:
        with hub_bars_hidden(hidden):
            yield
    finally:
        if shown:
            diffusers_logging.enable_progress_bar()


def empty_transformer(config: Any) -> Any:
    """A Cosmos3 transformer of `config` whose parameters are on the meta device (no memory, no values) and whose
    buffers are computed as its `__init__` computes them (the rotary table, `rotary_emb.inv_freq`, is in no weights
    file): the structure a sharded training rank shards before it takes its shard of the weights from rank 0, or that
    a sharded run's gathered weights are saved from."""
    from accelerate import init_empty_weights
    from diffusers import Cosmos3OmniTransformer

    with init_empty_weights(include_buffers=False):
        return Cosmos3OmniTransformer.from_config(config)


def load_components(path_or_id: str | Path, device: torch.device, dtype: torch.dtype, *,
                    checked: bool = False, transformer_weights: bool = True) -> dict[str, Any]:
    """Returns transformer, vae, tokenizer, scheduler and the pipeline flags, on `device` in `dtype`. `checked=True`:
    the caller has run `check_checkpoint_complete` on it already (`check_loadable`: `Policy.check_pretrained`,
    `Trainer._load`; it covers an adapter's chain of bases too), so its folders are not walked and its weight headers
    not read a second time.
    `transformer_weights=False`: the transformer's weights files are never read (nor an adapter's): it is
    `empty_transformer` of its config, for a sharded training rank that takes its shard from rank 0. On a CUDA device,
    weights past the memory it has free are refused first (`check_cuda_memory`, which reads the headers again, a few
    KB, `checked` or not; on the CPU nothing more is read)."""
    if not checked:
        check_checkpoint_complete(path_or_id)
    if device.type == "cuda":
        check_cuda_memory(path_or_id, device, dtype, transformer=transformer_weights)
    return _load_components(path_or_id, device, dtype, transformer_weights)


def _load_components(path_or_id: str | Path, device: torch.device, dtype: torch.dtype,
                     transformer_weights: bool) -> dict[str, Any]:
    """`load_components` once its checks passed; an adapter's base (down the chain) loaded as it is."""
    from diffusers import Cosmos3OmniPipeline, Cosmos3OmniTransformer

    source = str(path_or_id)
    local = Path(source)
    base = adapter_base(local) if local.is_dir() else None
    if base is not None:
        try:  # the chain was checked above
            parts = _load_components(base.path, device, dtype, transformer_weights)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"checkpoint {source!r} is a LoRA adapter on the base {base.path!r}: {exc} (with "
                                    f"a local copy of the base, set base_model_name_or_path in its {BASE_FILE})") from None
        if transformer_weights:
            apply_adapter_checkpoint(parts["transformer"], local)
        return parts
    # a hub id diffusers fetches itself (an adapter's base) at the revision it pins (`hub.split_revision`)
    repo_id, revision = split_revision(source) if not local.exists() and hub_id_shaped(source) else (source, None)
    try:
        # safetensors only: a `.bin` checkpoint would be unpickled (a local one is refused by check_checkpoint_files)
        with _diffusers_bar_hidden(loading_quietly()):  # `--no-progress`, a server (`logcapture.quiet_loading`)
            pipe = Cosmos3OmniPipeline.from_pretrained(repo_id, revision=revision, enable_safety_checker=False,
                                                       dtype=dtype, use_safetensors=True,
                                                       **({} if transformer_weights else {"transformer": None}))
    except OSError as exc:
        if local.exists():
            raise
        raise FileNotFoundError(unfetched(source, "model", exc)) from exc
    transformer = pipe.transformer if transformer_weights else \
        empty_transformer(Cosmos3OmniTransformer.load_config(repo_id, subfolder="transformer",
                                                             revision=revision)).to(dtype)
    check_action_head(transformer.config, source)
    pipe.to(device)
    return {
        "transformer": transformer.eval(),
        "vae": pipe.vae.eval(),
        "tokenizer": pipe.text_tokenizer,
        "scheduler": pipe.scheduler,
        "use_native_flow_schedule": bool(pipe.config.use_native_flow_schedule),
        "default_use_system_prompt": bool(pipe.config.default_use_system_prompt),
    }


def save_components(target: str | Path, transformer, vae, tokenizer, scheduler, use_native_flow_schedule: bool,
                    default_use_system_prompt: bool, *,
                    transformer_weights: Callable[[Path], None] | None = None) -> None:
    """Write components as a diffusers-format Cosmos3 pipeline folder (safetensors), loadable by `load_components`
    and by `Cosmos3OmniPipeline.from_pretrained`. `transformer_weights(folder)`: writes the transformer's weights
    into its folder itself (a sharded run's, gathered a file at a time), `transformer` giving its config alone (an
    `empty_transformer`, whose own save would find no values)."""
    from diffusers import Cosmos3OmniPipeline

    if transformer_weights is not None:
        def save_transformer(folder: str, **_: Any) -> None:  # what diffusers' save_pretrained writes but the weights
            Path(folder).mkdir(parents=True, exist_ok=True)
            transformer.save_config(folder)
            transformer_weights(Path(folder))

        transformer.save_pretrained = save_transformer  # this instance's: the pipeline saves each part through it
    pipe = Cosmos3OmniPipeline(
        transformer=transformer, text_tokenizer=tokenizer, vae=vae, scheduler=scheduler, safety_checker=None,
        enable_safety_checker=False, default_use_system_prompt=default_use_system_prompt,
        use_native_flow_schedule=use_native_flow_schedule,
    )
    # MAX_SHARD_SIZE read at the call, not bound at import: tests lower it
    pipe.save_pretrained(target, safe_serialization=True, max_shard_size=fileio.MAX_SHARD_SIZE)
