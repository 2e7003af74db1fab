"""Simulation: tabletop scenes with DROID-placed cameras, tasks with success checks, a gymnasium env, rollouts, eval.

Importing this package picks a headless GL backend (EGL, else OSMesa) before MuJoCo loads and, with gymnasium
installed, registers the tasks' gymnasium ids (`worldpolicy.sim.registration`); nothing heavy is imported here.
"""

import importlib.util

from worldpolicy.sim.rendering import select_gl_backend

select_gl_backend()

if importlib.util.find_spec("gymnasium") is not None:  # the sim extra's; `worldpolicy sim --help` works without it
    from worldpolicy.sim.registration import register_envs

    register_envs()

__all__ = ["select_gl_backend"]
