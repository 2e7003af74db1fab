"""Load a diffusers-format Cosmos3 checkpoint (local folder or hub id) into diffusers' own classes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16,
}


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r} is not a torch device; accepted e.g. 'cpu', 'cuda', 'cuda:1'") from None
    available = {
        "cpu": lambda: True,
        "cuda": torch.cuda.is_available,
        "mps": lambda: torch.backends.mps.is_available(),
        "xpu": lambda: hasattr(torch, "xpu") and torch.xpu.is_available(),
    }
    if resolved.type not in available:
        raise ValueError(f"device={device!r} cannot run a model; accepted: {', '.join(available)} (e.g. 'cuda:1')")
    if not available[resolved.type]():
        raise ValueError(f"device={device!r} was asked for but {resolved.type} is not available here; use device='cpu'")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ValueError(f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return resolved


def check_compile_options(device: torch.device, compile: bool, cuda_graphs: bool) -> None:
    """CUDA graphs capture CUDA kernels only; say so before any weights load."""
    if cuda_graphs and device.type != "cuda":
        raise ValueError(f"cuda_graphs=True needs a CUDA device, but device={str(device)!r}; drop it or use device='cuda'")


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """CUDA → bf16, CPU → fp32 unless asked otherwise."""
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"dtype={dtype} is not supported; accepted: float32, bfloat16, float16")
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is not supported; accepted: {', '.join(DTYPES)}")
    return DTYPES[dtype]


def cast_like_pretrained(module, dtype: torch.dtype, frozen_only: bool = False) -> None:
    """Cast parameters in place as `from_pretrained(dtype=...)` loads them: those of `_keep_in_fp32_modules` stay
    fp32 (`frozen_only`: and so do trainable ones, which keep an fp32 master copy)."""
    keep = set(module._keep_in_fp32_modules or ())
    for name, param in module.named_parameters():
        if name.split(".")[0] not in keep and not (frozen_only and param.requires_grad):
            param.data = param.data.to(dtype)


def check_checkpoint_source(path_or_id: str | Path) -> None:
    """A diffusers-format folder, or a string shaped like a hub id (fetched later): checked before anything loads."""
    source = str(path_or_id)
    local = Path(source)
    if local.exists():
        if not (local / "model_index.json").is_file():
            raise FileNotFoundError(
                f"checkpoint={source!r} is a path but has no model_index.json; expected a diffusers-format Cosmos3 "
                "folder (transformer/, vae/, text_tokenizer/, scheduler/)"
            )
    elif source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise FileNotFoundError(
            f"checkpoint={source!r} is neither an existing folder nor a hub id like 'nvidia/Cosmos3-Nano-Policy-DROID'"
        )


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


def local_transformer_config(path_or_id: str | Path) -> dict[str, Any] | None:
    """A local checkpoint's `transformer/config.json` (None for a hub id or a folder without one)."""
    config = Path(str(path_or_id)) / "transformer" / "config.json"
    if not config.is_file():
        return None
    try:
        return json.loads(config.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"checkpoint {str(path_or_id)!r}: transformer/config.json is unreadable ({exc})") from None


def load_components(path_or_id: str | Path, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """Returns transformer, vae, tokenizer, scheduler and the pipeline flags, on `device` in `dtype`."""
    check_checkpoint_source(path_or_id)
    from diffusers import Cosmos3OmniPipeline

    source = str(path_or_id)
    local = Path(source)
    try:
        # safetensors only: a `.bin` checkpoint would be unpickled (never on our loading path)
        pipe = Cosmos3OmniPipeline.from_pretrained(source, enable_safety_checker=False, dtype=dtype, use_safetensors=True)
    except OSError as exc:
        if local.is_dir() and next(local.glob("*/*.bin"), None) is not None:
            raise ValueError(
                f"checkpoint {source!r}: {exc} (it has .bin weights: pickles, which worldpolicy never loads; save the "
                "model with safe_serialization=True or convert the .bin files to .safetensors)"
            ) from None
        if local.exists():
            raise
        raise FileNotFoundError(
            f"could not fetch checkpoint {source!r} from the Hugging Face hub ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). Offline? Download it elsewhere and pass the local folder."
        ) from exc
    transformer = pipe.transformer
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
