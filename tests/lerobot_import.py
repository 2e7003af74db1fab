"""Importing the real `lerobot` (0.4.4, `.ci/extra-test-installs.sh`) beside this stack, which it was not made for.

torchvision: lerobot imports it at module level (image features, its pyav decoding backend, its training-time image
transforms). PyPI has no CPU torchvision for the CPU torch we pin, so where it is absent a stand-in that fails on any
use is in place while lerobot's modules are imported (videos are then decoded by torchcodec inside lerobot). A user
with CUDA torch installs the torchvision that matches it instead (docs/serving.md: "In LeRobot").
GR00T (its policy does not import beside transformers 5) is not stood in for here: `worldpolicy.data.lerobot_policy`
does that itself, as a user's process imports it.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


class _NoTorchvision(types.ModuleType):
    """Stands in for torchvision while lerobot is imported: any use names the missing package."""

    def __getattr__(self, name: str):
        raise AttributeError(f"{self.__name__}.{name}: torchvision is not installed (stand-in to import lerobot)")


class _Transform:
    """Stands in for `torchvision.transforms.v2.Transform`, which lerobot's image transforms subclass at import."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError("torchvision is not installed (stand-in to import lerobot): no image transforms")


# What lerobot's policy classes, factory, eval rollout and record step import that `--no-deps` left out (by module)
LEROBOT_NEEDS = ("draccus", "einops", "serial", "deepdiff", "jsonlines", "termcolor")
TORCHVISION = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional",
               "torchvision.transforms.v2", "torchvision.transforms.v2.functional")


@contextmanager
def _stand_ins(modules: dict[str, types.ModuleType]) -> Iterator[None]:
    for name, module in modules.items():
        sys.modules[name] = module
    try:
        yield
    finally:
        for name in modules:
            del sys.modules[name]


def _torchvision() -> dict[str, types.ModuleType]:
    if importlib.util.find_spec("torchvision") is not None:
        return {}
    # each looks for torchvision on import (transformers for lerobot's policies): they must not find the stand-in;
    # one the process goes without (a robot's LeRobot env, without transformers) has nothing to look for
    for looks_for_it in ("datasets", "transformers.modeling_utils"):
        if importlib.util.find_spec(looks_for_it.split(".")[0]) is not None:
            importlib.import_module(looks_for_it)

    found = {}
    for name in TORCHVISION:
        found[name] = _NoTorchvision(name)
        found[name].__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
    found["torchvision.transforms.v2"].__dict__["Transform"] = _Transform
    return found


def import_lerobot(*modules: str, needs: tuple[str, ...] = ()) -> list[types.ModuleType]:
    """`modules` imported (lerobot's, or ours that import it), skipping the test module only when lerobot or one of
    `needs` (lerobot's dependencies it was installed without, such as draccus) is not installed."""
    pytest.importorskip("lerobot", reason="pip install --no-deps lerobot==0.4.4 (see .ci/extra-test-installs.sh)")
    for name in needs:
        pytest.importorskip(name, reason=f"lerobot's {name} (see .ci/extra-test-installs.sh)")
    torchvision = _torchvision()
    # lerobot is installed: a dependency missing from here on is an error, not a skip
    with _stand_ins(torchvision):
        return [importlib.import_module(m) for m in modules]
