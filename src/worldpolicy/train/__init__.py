"""Training from Python: what `worldpolicy train CONFIG` runs (docs/training.md, "Training from Python").

    from worldpolicy.train import Trainer, load_config
    config = load_config("my_reach.toml")          # or a dict of the file's tables; **{"optim.steps": 20} overrides
    trainer = Trainer(config, progress=False)
    records = trainer.run()                         # this session's StepRecords (step, loss, lr, parts, seconds)
    trainer.last_checkpoint                         # the newest checkpoint the run saved: load_policy takes it

Names load on first use: `Trainer` imports torch and diffusers (seconds), the config alone does not, and the CLI's
`worldpolicy.train.commands` (which imports this package first) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import TrainConfig, load_config, read_config
    from .trainer import StepRecord, Trainer

__all__ = ["StepRecord", "TrainConfig", "Trainer", "load_config", "read_config"]
# each name of `__all__` -> the submodule defining it, imported when the name is first read (`__getattr__`)
_EXPORTS = {"TrainConfig": "config", "load_config": "config", "read_config": "config",
            "StepRecord": "trainer", "Trainer": "trainer"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The lazy names too, as `dir()` and a shell's completion list the package's API."""
    return sorted({*globals(), *__all__})
