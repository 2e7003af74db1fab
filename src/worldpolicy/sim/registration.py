"""gymnasium ids for the tabletop tasks, one per `tasks.TASKS` entry: `worldpolicy/Reach-v0`, `worldpolicy/Push-v0`,
`worldpolicy/PickPlace-v0`; and `worldpolicy/WorldModel-v0`, a world model as an env
(`gymnasium.make("worldpolicy/WorldModel-v0", world_model=policy, observation=obs, prompt="...")`).

`import worldpolicy.sim` registers them when gymnasium (the sim extra) is installed: `gymnasium.make(...)` works after
it, and `gymnasium.make("worldpolicy.sim:worldpolicy/Reach-v0")` imports it first. gymnasium >= 1.0 loads no plugins
from package entry points (0.26's `gymnasium.envs` group is gone), so an import is what registers. Registering stays
cheap: the entry point is a string, so MuJoCo loads when the first env is made, not here.
"""

from __future__ import annotations

from worldpolicy.extras import extra_imports
from worldpolicy.sim.tasks import TASKS

with extra_imports():
    import gymnasium

__all__ = ["ENTRY_POINT", "ENV_IDS", "NAMESPACE", "WORLD_MODEL_ENTRY_POINT", "WORLD_MODEL_ID", "env_id",
           "register_envs"]

NAMESPACE = "worldpolicy"
ENTRY_POINT = "worldpolicy.sim.env:GymTabletopEnv"
# a world model rolled forward as an env (`world_model.WorldModelEnv`): no task, no MuJoCo; `make` takes the model
WORLD_MODEL_ID = f"{NAMESPACE}/WorldModel-v0"
WORLD_MODEL_ENTRY_POINT = "worldpolicy.sim.world_model:WorldModelEnv"


def env_id(task: str) -> str:
    """`pick_place` -> `worldpolicy/PickPlace-v0`: gymnasium's CamelCase, versioned names in our namespace."""
    return f"{NAMESPACE}/{''.join(part.capitalize() for part in task.split('_'))}-v0"


ENV_IDS = {task: env_id(task) for task in TASKS}


def register_envs() -> None:
    """Register each task's id: `kwargs` pick the task, `max_episode_steps` is its horizon (the TimeLimit that
    `GymTabletopEnv` leaves its step limit to)."""
    for task, cls in TASKS.items():
        gymnasium.register(id=ENV_IDS[task], entry_point=ENTRY_POINT, kwargs={"task": task},
                           max_episode_steps=cls.max_steps)
    gymnasium.register(id=WORLD_MODEL_ID, entry_point=WORLD_MODEL_ENTRY_POINT)
