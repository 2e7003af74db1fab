"""Where a checkpoint is, judged without torch: a diffusers-format folder, a LoRA adapter checkpoint on a base that is
one, or a hub id (fetched later). A config or a command names a wrong checkpoint in a second, not after the seconds
torch and diffusers take to import; `loading` loads what these checks passed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import NamedTuple

from ..fileio import (
    ADAPTER_FILE,
    BASE_FILE,
    MODEL_INDEX_FILE,
    TRAINED_FILE,
    is_checkpoint,
    saved_checkpoints,
    sweep_scratch_folders,
)
from ..hub import hub_id_shaped, refuse_local_owner


class AdapterBase(NamedTuple):
    """What an adapter checkpoint's `base_model.json` says about the base it applies to."""

    path: str  # an absolute path or a hub id (a relative path in the file is relative to the checkpoint)
    samples: dict[str, list[float]]  # `weight_samples` of the base as trained on
    adapter_sha256: str | None  # when the base is itself an adapter checkpoint: `adapter_digest` of it


def adapter_base(folder: str | Path) -> AdapterBase | None:
    """An adapter checkpoint's base; None for any other folder."""
    folder = Path(str(folder))
    file = folder / BASE_FILE
    if not file.is_file() or (folder / MODEL_INDEX_FILE).is_file():  # a complete folder is one, whatever else it holds
        return None
    try:
        info = json.loads(file.read_text())
        if not isinstance(info, dict):
            raise ValueError("expected a JSON object")
        missing = [key for key in ("base_model_name_or_path", "weight_samples") if key not in info]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        base, samples, digest = info["base_model_name_or_path"], info["weight_samples"], info.get("base_adapter_sha256")
        if not (isinstance(base, str) and base.strip() and isinstance(samples, dict)
                and isinstance(digest, (str, type(None)))):
            raise ValueError("accepted: base_model_name_or_path a non-empty string, weight_samples an object, "
                             "base_adapter_sha256 a string if present")
    except (OSError, ValueError) as exc:
        raise ValueError(f"checkpoint {str(folder)!r}: {BASE_FILE} is unreadable ({exc}); it names the base model "
                         "this LoRA adapter checkpoint applies to") from None
    from ..models import portable_checkpoint, resolve_checkpoint

    # `shipped` (or, from an older version, the shipped model's folder in this or another install) is this install's,
    # `~/x` expanded; a hub id stays one: listing or checking an adapter fetches no base, its load does
    base = str(resolve_checkpoint(portable_checkpoint(base), fetch=False))
    if not Path(base).is_absolute() and (folder / base).exists():
        base = str(folder / base)
    return AdapterBase(base, samples, digest)


def adapter_digest(path_or_id: str | Path) -> str | None:
    """sha256 of an adapter checkpoint's adapters and trained weights (None for any other checkpoint): which one an
    adapter trained on it needs, whose fused weights differ by device and dtype in their last bits."""
    folder = Path(str(path_or_id))
    if not (folder / BASE_FILE).is_file():
        return None
    digest = hashlib.sha256()
    for name in (ADAPTER_FILE, TRAINED_FILE):
        with open(folder / name, "rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()


def _refuse_run_folder(path: Path, source: str, hint: str = "") -> None:
    """`checkpoint` naming a training run's folder (or its `checkpoints/`, or a part of a checkpoint) rather than a
    checkpoint: said so with the checkpoint to name, where "has no model_index.json" left the user to find it."""
    if not path.is_dir():
        return
    if is_checkpoint(path.parent):
        raise FileNotFoundError(f"checkpoint={source!r} is a part of the checkpoint {str(path.parent)!r}: give that "
                                "folder")
    run = path.parent if path.name == "checkpoints" else path
    saved = saved_checkpoints(run)
    if saved:
        what = "checkpoints folder" if run != path else "folder"
        raise FileNotFoundError(f"checkpoint={source!r} is a training run's {what}, not a checkpoint: give one of its "
                                f"checkpoints/step-*, e.g. the newest, {str(saved[-1][1])!r}{hint}")


def check_checkpoint_source(path_or_id: str | Path, _chain: tuple[str, ...] = (), *, run_hint: str = "") -> None:
    """A diffusers-format folder, an adapter checkpoint whose base is one, or a string shaped like a hub id (fetched
    later): checked before anything loads. `run_hint`: said after the checkpoint to name when a training run's folder
    is given (`_refuse_run_folder`), by a caller for which that run means something more."""
    source = str(path_or_id)
    local = Path(source)
    sweep_scratch_folders(local, ())  # a checkpoint a killed save was replacing: put back (`fileio.replace_folder`)
    if local.exists():
        base = adapter_base(local)
        if base is not None:
            missing = [name for name in (ADAPTER_FILE, TRAINED_FILE) if not (local / name).is_file()]
            if missing:
                raise FileNotFoundError(f"checkpoint={source!r} is a LoRA adapter checkpoint ({BASE_FILE}) but lacks "
                                        f"{', '.join(missing)}: it was not written whole; use another checkpoint")
            from ..extras import extra_imports

            with extra_imports(f"checkpoint={source!r} is a LoRA adapter checkpoint"):  # its base would load first
                import peft  # noqa: F401  (`apply_adapter_checkpoint`)
            chain = (*_chain, str(local.resolve()))
            if len(chain) > 8 or str(Path(base.path).resolve()) in chain:
                raise ValueError(f"checkpoint={source!r}: the bases named by {BASE_FILE} files form a loop or a chain "
                                 f"over 8 deep ({' -> '.join(chain)} -> {base.path})")
            try:
                check_checkpoint_source(base.path, chain)
            except FileNotFoundError as exc:
                raise FileNotFoundError(
                    f"checkpoint={source!r} is a LoRA adapter on the base {base.path!r}, which cannot be found "
                    f"({exc}); put the base back there, or set base_model_name_or_path in {str(local / BASE_FILE)!r}"
                ) from None
            return
        if not (local / MODEL_INDEX_FILE).is_file():
            _refuse_run_folder(local, source, run_hint)
            raise FileNotFoundError(
                f"checkpoint={source!r} is a path but has no model_index.json; expected a diffusers-format Cosmos3 "
                f"folder (transformer/, vae/, text_tokenizer/, scheduler/) or a LoRA adapter checkpoint ({BASE_FILE})"
            )
    elif not hub_id_shaped(source):
        from ..models import SHIPPED_NAME

        raise FileNotFoundError(
            f"checkpoint={source!r} is neither an existing folder nor a hub id like 'nvidia/Cosmos3-Nano-Policy-DROID'"
            f" (nor {SHIPPED_NAME!r}, the model in the package)"
        )
    else:
        refuse_local_owner(source, f"checkpoint={source!r}")
