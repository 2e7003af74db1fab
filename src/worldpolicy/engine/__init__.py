"""Fast Cosmos3 sampling over diffusers' own modules: text K/V cache, batched CFG, minimal VAE work."""

from .sampler import Engine, EngineOutput, EngineRequest
from .schedules import PRESETS, SamplingConfig

__all__ = ["PRESETS", "Engine", "EngineOutput", "EngineRequest", "SamplingConfig"]
