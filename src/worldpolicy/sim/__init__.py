"""Simulation: tabletop scenes with DROID-placed cameras, tasks with success checks, a gymnasium env, rollouts, eval.

Importing this package picks a headless GL backend (EGL, else OSMesa) before MuJoCo loads and, with gymnasium
installed, registers the tasks' gymnasium ids and the world model's (`worldpolicy.sim.registration`); nothing heavy
is imported here. `worldpolicy.sim.WorldModelEnv` (a world model as a gymnasium env) and `dream` (a policy run closed
loop in its imagination) load `worldpolicy.sim.world_model` when first named: it needs gymnasium, never MuJoCo.
"""

import importlib.util

from worldpolicy.sim.rendering import select_gl_backend

select_gl_backend()

if importlib.util.find_spec("gymnasium") is not None:  # the sim extra's; `worldpolicy sim --help` works without it
    from worldpolicy.sim.registration import register_envs

    register_envs()

__all__ = ["Dream", "WorldModelEnv", "dream", "select_gl_backend"]
_WORLD_MODEL = ("Dream", "WorldModelEnv", "dream")


def __getattr__(name: str):
    """`worldpolicy.sim.WorldModelEnv` and the rest of `world_model` on first use, so importing the package (and
    `worldpolicy sim --help`) stays without gymnasium and the model's code."""
    if name in _WORLD_MODEL:
        from worldpolicy.sim import world_model

        return getattr(world_model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
