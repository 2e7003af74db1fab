"""Models that ship inside the package (trained by `worldpolicy train reach-from-scratch --install`)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SHIPPED = {"panda_reach": "Franka Panda reaching a coloured ball in the MuJoCo tabletop (relative EE deltas, 4-step chunks)"}


def shipped_model(name: str = "panda_reach") -> Path:
    """Folder of a shipped diffusers-format checkpoint; a clear error if this install lacks it."""
    if name not in SHIPPED:
        raise KeyError(f"shipped model {name!r} is unknown; shipped: {', '.join(SHIPPED)}")
    path = Path(str(resources.files(__package__).joinpath(name)))
    if not (path / "model_index.json").is_file():
        raise FileNotFoundError(
            f"shipped model {name!r} is missing from {path}; rebuild it with "
            "`worldpolicy train reach-from-scratch --install`"
        )
    return path


def resolve_checkpoint(value: str | Path) -> str | Path:
    """What a command's checkpoint argument names: `shipped` is the shipped model's folder, anything else itself."""
    return str(shipped_model()) if value == "shipped" else value

