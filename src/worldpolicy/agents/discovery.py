"""Which world-foundation / action-capable pipelines the installed diffusers offers, found at run time.

Names come from diffusers' lazy import table (no pipeline is imported just to be listed); only the world-model
candidates are imported, to read their `__call__` signature (modular pipelines: their default blocks' inputs) for
action inputs.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

__all__ = ["DRIVABLE_PIPELINES", "discover_world_models"]

# Pipelines worldpolicy's engine can drive, and how (one place for this fact).
DRIVABLE_PIPELINES = {
    "Cosmos3OmniPipeline": "worldpolicy.Policy: policy (act), forward dynamics (imagine), inverse dynamics (infer_actions)",
}
_WORLD_MODEL = re.compile(r"cosmos|world|action|robot|dynamics", re.IGNORECASE)
_ACTION_PARAM = re.compile(r"action", re.IGNORECASE)


def _pipeline_names(structure: dict[str, list[str]]) -> list[tuple[str, str]]:
    """(module key, class name) of every pipeline class in diffusers' lazy import table."""
    out = []
    for key, names in structure.items():
        if key.split(".")[0] not in ("pipelines", "modular_pipelines"):
            continue
        out.extend((key, n) for n in names if n.endswith("Pipeline"))
    return sorted(set(out), key=lambda kv: kv[1])


def _call_inputs(diffusers, cls) -> list[str]:
    """What a pipeline call accepts: `__call__` parameters, or for modular pipelines its default blocks' inputs."""
    blocks_name = getattr(cls, "default_blocks_name", None)
    if blocks_name and hasattr(diffusers, blocks_name):
        return [i.name for i in getattr(diffusers, blocks_name)().inputs if i.name]
    return list(inspect.signature(cls.__call__).parameters)


def discover_world_models(include_all: bool = False) -> dict[str, Any]:
    """World-model pipelines in the installed diffusers: name, kind, action parameters, whether worldpolicy drives it.

    `include_all=True` also returns the count of every pipeline class diffusers exposes.
    """
    import diffusers

    names = _pipeline_names(diffusers._import_structure)
    found = []
    for key, name in names:
        if not _WORLD_MODEL.search(name):
            continue
        entry: dict[str, Any] = {"name": name, "module": f"diffusers.{key}", "modular": key.startswith("modular")}
        try:
            cls = getattr(diffusers, name)
            params = _call_inputs(diffusers, cls)
            doc = (cls.__doc__ or "").strip().splitlines()
            entry["description"] = doc[0].strip() if doc else ""
            entry["action_parameters"] = [p for p in params if _ACTION_PARAM.search(p)]
            entry["importable"] = True
        except Exception as exc:  # noqa: BLE001 - a pipeline whose optional deps are missing is still worth listing
            entry.update(
                description="", action_parameters=[], importable=False, import_error=f"{type(exc).__name__}: {exc}"
            )
        entry["action_capable"] = bool(entry["action_parameters"])
        entry["drivable"] = name in DRIVABLE_PIPELINES
        entry["worldpolicy"] = DRIVABLE_PIPELINES.get(name, "")
        found.append(entry)
    result: dict[str, Any] = {"diffusers_version": diffusers.__version__, "pipelines": found}
    if include_all:
        result["all_pipeline_count"] = len(names)
    return result
