"""Fast Cosmos3 sampling over diffusers' own modules: text K/V cache, batched CFG, minimal VAE work.

The sampler (torch and diffusers) is imported when first named, so the torch-free parts (`schedules`, `sources`) check
settings and checkpoints in a config or a command without the seconds those imports take."""

from typing import TYPE_CHECKING

from .schedules import PRESETS, SamplingConfig

if TYPE_CHECKING:
    from .sampler import Engine, EngineOutput, EngineRequest

__all__ = ["PRESETS", "Engine", "EngineOutput", "EngineRequest", "SamplingConfig"]


def __getattr__(name: str):
    if name in ("Engine", "EngineOutput", "EngineRequest"):
        from . import sampler

        return getattr(sampler, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
