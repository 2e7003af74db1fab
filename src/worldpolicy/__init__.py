"""worldpolicy: video world-model robot policies (NVIDIA Cosmos3 family).

`import worldpolicy` stays light (no numpy, torch or diffusers): its names load on first use, so the `worldpolicy`
command (`__main__.run`) starts its Ctrl-C handling before anything heavy is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"  # the package's version: pyproject.toml reads it from here
__all__ = [
    "MODES",
    "Embodiment",
    "Policy",
    "PolicyRequest",
    "Prediction",
    "get_embodiment",
    "list_embodiments",
    "load_policy",
    "register_embodiment",
]

if TYPE_CHECKING:
    from pathlib import Path

    from .embodiments import Embodiment, get_embodiment, list_embodiments, register_embodiment
    from .policy import Policy, PolicyRequest
    from .results import MODES, Prediction

# the names of `__all__` a submodule defines, by submodule: imported when first read (`__getattr__`), as are these
# submodules themselves (`worldpolicy.embodiments.RESOLUTION_TIERS` after `import worldpolicy`)
_LAZY = {"embodiments": ("Embodiment", "get_embodiment", "list_embodiments", "register_embodiment"),
         "results": ("MODES", "Prediction"), "policy": ("Policy", "PolicyRequest")}


def load_policy(path_or_id: str | Path, embodiment: str | Embodiment | None = None, **kwargs: Any) -> Policy:
    """Load a diffusers-format Cosmos3 checkpoint (local folder, hub id, or `shipped`: the model in the package), or a
    LoRA adapter checkpoint onto its base, as a `Policy` for `embodiment` (default: the one the checkpoint ships, else
    droid). See `Policy.from_pretrained`."""
    import inspect

    from .policy import Policy

    # named with the options accepted, as `act()` names its own: Python's bare TypeError named neither
    accepted = ["embodiment", *(p.name for p in inspect.signature(Policy.from_pretrained).parameters.values()
                                if p.kind is p.KEYWORD_ONLY)]
    for key, value in kwargs.items():
        if key not in accepted:
            raise TypeError(f"load_policy() got an unknown option {key}={value!r}; accepted: {', '.join(accepted)}")
    return Policy.from_pretrained(path_or_id, embodiment=embodiment, **kwargs)


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    for module, names in _LAZY.items():
        if name in names:
            return getattr(importlib.import_module(f".{module}", __name__), name)
    raise AttributeError(f"module 'worldpolicy' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The API (`__all__`, the lazy names among it) and the module's own dunders; not the typing helpers and the
    submodules its imports load (`Any`, `TYPE_CHECKING`, `annotations`, `fileio`, ...), which would read as API."""
    return sorted({*__all__, "__version__", *(name for name in globals() if name.startswith("__"))})
