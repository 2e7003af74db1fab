"""Success criteria and scripted experts: pick_place needs a pick, push a cube that stays, experts within joint speed."""

import dataclasses

import numpy as np
import pytest

from worldpolicy.sim.tasks import CUBE_HALF, HOVER_Z, TABLE_TOP, PickPlaceTask, PushTask, SimState, Waypoint, get_task

RESTING = TABLE_TOP + CUBE_HALF  # the cube's centre lying on the table


def _state(cube_xy, *, velocity=(0.0,) * 6, held=RESTING, gripper=0.0) -> SimState:
    """The cube at `cube_xy` on the table, the goal at the origin, the hand 15 cm above."""
    tcp = np.eye(4)
    tcp[:3, 3] = [0.0, 0.0, 0.15]
    return SimState(tcp, {"cube": np.array([*cube_xy, RESTING])}, {"cube": 0.0}, np.array([0.0, 0.0, TABLE_TOP + 0.001]),
                    gripper, 0.0, {"cube": np.asarray(velocity, float)}, {"cube": held})


def test_push_counts_a_cube_at_rest_on_the_disc_not_one_sliding_over_it():
    push = PushTask()
    assert push.success(_state((0.02, 0.0)))
    assert not push.success(_state((0.02, 0.0), velocity=(0.1, 0, 0, 0, 0, 0)))  # pushed across at 10 cm/s
    assert not push.success(_state((0.02, 0.0), velocity=(0, 0, 0, 0, 0, 0.5)))  # still turning
    assert not push.success(_state((0.05, 0.0)))  # at rest beside the disc


def test_pick_place_needs_the_cube_to_have_been_lifted_clear_of_the_table_while_held():
    task = PickPlaceTask()
    assert task.success(_state((0.01, 0.0), held=RESTING + 0.10))  # carried over at 10 cm and put down
    assert not task.success(_state((0.01, 0.0)))  # slid onto the pad, or knocked into the air: never held up
    assert not task.success(_state((0.01, 0.0), held=CUBE_HALF * np.sqrt(3)))  # tipped onto a corner
    assert not task.success(_state((0.01, 0.0), held=RESTING + 0.10, gripper=1.0))  # still held
    assert not task.success(_state((0.01, 0.0), held=RESTING + 0.10, velocity=(0, 0, -0.05, 0, 0, 0)))  # settling


# --- in the simulator ---------------------------------------------------------------------------------------------
pytest.importorskip("mink")
pytest.importorskip("gymnasium")

from worldpolicy.sim.env import TabletopEnv
from worldpolicy.sim.policies import ScriptedPolicy, make_policy
from worldpolicy.sim.rollout import Rollout


class _PushOntoPad(PickPlaceTask):
    """pick_place judged as shipped, driven by the push expert: the closed fingers slide the cube onto the pad, then
    open over it (released, as a place ends)."""

    def expert_waypoints(self, s):
        if self.distance(s) >= 0.015:
            return PushTask.expert_waypoints(self, s)
        tcp = s.tcp[:3, 3]
        return [Waypoint(tcp.copy(), 0.0, 0.0, settle=3), Waypoint(np.array([*tcp[:2], HOVER_Z]), 0.0, 0.0)]


class _PushPast(PushTask):
    """push judged as shipped, its expert aiming `beyond` metres past the disc: the cube slides across it."""

    beyond = 0.12

    def expert_waypoints(self, s):
        if not hasattr(self, "aim"):  # fixed at the first call, along the initial cube → goal line
            d = (s.goal[:2] - s.objects["cube"][:2]) / np.linalg.norm(s.goal[:2] - s.objects["cube"][:2])
            self.aim = np.array([*(s.goal[:2] + d * self.beyond), s.goal[2]])
        return PushTask.expert_waypoints(self, dataclasses.replace(s, goal=self.aim))


def test_a_cube_pushed_onto_the_pad_is_no_pick_and_place():
    """Before, a cube slid onto the pad with the gripper open counted: the end state was all it checked."""
    env = TabletopEnv(_PushOntoPad(), image_size=None)
    policy, placed = ScriptedPolicy(env), 0
    task = get_task("pick_place")
    for seed in range(4):
        result = Rollout(env, policy).run(seed)
        s = env.state()
        # what the end-state check saw: on the pad, on the table, released, at rest
        on_pad = (task.distance(s) <= task.radius and s.objects["cube"][2] < RESTING + 0.01 and s.gripper_command < 0.5
                  and np.linalg.norm(s.velocities["cube"]) < 0.01)
        placed += on_pad
        assert not result.success and s.held_heights["cube"] < RESTING + 0.02, (seed, result.to_json())
    assert placed >= 2, "the push expert no longer gets the cube onto the pad: the test shows nothing"


@pytest.mark.parametrize("gripper", [0.0, 1.0])
def test_a_cube_knocked_into_the_air_that_lands_on_the_pad_is_no_pick(gripper):
    """Before, any 3 cm of height counted as picked: a cube batted up that came down on the pad passed. Here it is
    tossed from the pad 10+ cm up, past the hand (open, or closed on nothing), and lands back on it."""
    env = TabletopEnv("pick_place", image_size=None)
    env.reset(seed=0)
    qadr, dofadr = env._object_qadr["cube"], env._object_dofadr["cube"]
    env.data.qpos[qadr:qadr + 2] = env.state().goal[:2]
    env.data.qvel[dofadr + 2] = 1.5  # m/s up: ~11 cm
    q, top = env.joint_positions(), RESTING
    for _ in range(30):
        env.act(np.append(q, gripper))
        top = max(top, env.state().objects["cube"][2])
    if gripper:  # closed on nothing, then opened, as a place ends
        for _ in range(5):
            env.act(np.append(q, 0.0))
    s, task = env.state(), get_task("pick_place")
    assert top > RESTING + 0.05 and task.distance(s) <= task.radius and np.linalg.norm(s.velocities["cube"]) < 0.01
    assert s.held_heights["cube"] < RESTING + 0.001 and not env.success()
    env.close()


def test_a_cube_pushed_across_the_disc_is_no_push():
    """Before, success was checked at the first step it held: a cube sliding over the disc counted where it passed."""
    for seed in range(3):
        task = _PushPast()
        env = TabletopEnv(task, image_size=None)
        env.reset(seed=seed)
        policy, crossed, actions = ScriptedPolicy(env), False, []
        while env.steps < env.max_steps and not env.success():
            if not actions:
                actions = list(policy.act(env.observe(), "").actions)
            env.act(actions.pop(0))
            s = env.state()
            crossed |= task.distance(s) <= task.radius  # the disc alone, as checked before
        assert crossed and not env.success() and task.distance(env.state()) > task.radius, seed
        env.close()


@pytest.mark.parametrize(("task", "chunk", "hz", "seeds"), [
    ("reach", 8, 15, 20), ("push", 8, 15, 20), ("pick_place", 8, 15, 20),
    ("push", 4, 15, 8), ("pick_place", 4, 15, 8), ("push", 8, 5, 8), ("pick_place", 8, 10, 8),
])
def test_experts_succeed_within_the_robots_joint_speed(task, chunk, hz, seeds):
    """The push expert turned joint 7 up to 23 % past Franka's limit in 9 of 20 episodes; its data inherited it. With
    chunks of 4 (`dataset from-sim --chunk-size 4`) it failed every push: each chunk planned the 8 cm approach point
    again and went back up before reaching the cube. At 5 and 10 Hz each step's jump alone overshot the limit."""
    horizon = get_task(task).max_steps * hz // 15  # the same time in seconds
    env = TabletopEnv(task, image_size=None, control_hz=hz, max_steps=horizon)
    rollout = Rollout(env, make_policy("scripted", env=env, chunk_size=chunk))
    results = [rollout.run(seed) for seed in range(seeds)]
    assert [r.seed for r in results if not r.success] == []
    assert [(r.seed, r.over_velocity_steps) for r in results if r.over_velocity_steps] == []


@pytest.mark.parametrize("bad", [0, 1.5, -0.1, True, "0.7"])
def test_expert_joint_speed_share_is_checked(bad):
    env = TabletopEnv("reach", image_size=None)
    with pytest.raises(ValueError, match=rf"joint_speed_share: policy 'scripted' takes a number in \(0, 1\].*got {bad!r}"):
        ScriptedPolicy(env, joint_speed_share=bad)


@pytest.mark.parametrize("task, seeds", [("push", (3, 15)), ("pick_place", (0, 10))])
def test_the_expert_finishes_under_the_recipes_action_noise(task, seeds):
    """Under `--action-noise 0.02` (the shipped recipe's: the TCP 12 mm off at the median, redrawn every chunk) the
    expert re-planned from a TCP just outside its plan's tolerances and went back up to its approach height every
    chunk: pick_place hovered over the cube, or over the pad holding it, until the episode ended (4 of 20 seeds
    solved), push re-descended behind the cube (13 of 20). These seeds failed so; all 20 solve without noise."""
    from worldpolicy.data.from_sim import expert_episodes

    for seed in seeds:
        episodes = expert_episodes(task, 1, seed=seed, action_noise=0.02, keep_failures=True, settle_steps=0,
                                   image_size=(16, 16), cameras=["observation/exterior_image_1_left"])
        assert next(iter(episodes))["success"], seed
