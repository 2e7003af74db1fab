"""Simulation: tabletop scenes with DROID-placed cameras, tasks with success checks, a gymnasium env, rollouts, eval.

Importing this package picks a headless GL backend (EGL, else OSMesa) before MuJoCo loads; nothing heavy is imported
here.
"""

from worldpolicy.sim.rendering import select_gl_backend

select_gl_backend()

__all__ = ["select_gl_backend"]
