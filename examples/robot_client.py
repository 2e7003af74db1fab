"""A robot client: the template for running a served worldpolicy model on a real arm.

What it shows: a small `Robot` interface (read the cameras and joints, send joint targets, stop) that you fill in
for your own arm, connected to a `worldpolicy serve` with `RemotePolicy` and driven by `ChunkController` at the
embodiment's control rate. The loop keeps going through a policy that fails for a while (`on_policy_error="hold"`:
the arm holds and the controller asks again), the robot side runs only a command that is fresh by its
`(episode, tick)` and `stamp` (`JointTarget.fresh`: every one is in this loop, which sends each target as it is made;
one turns stale where a servo thread or driver process receives them), and Ctrl-C (or SIGTERM) stops the arm before
the script exits (status 130).

As shipped, the robot is a stand-in, the simulated Franka Panda of `worldpolicy.sim` (`SimRobot`), and without
`--url` the script serves the model itself, in this process, as `worldpolicy serve` would on the GPU box:

    python examples/robot_client.py                                # shipped model, served here, 45 ticks on CPU
    worldpolicy serve --device cpu --port 8000 &                   # or a real server, then:
    python examples/robot_client.py --url ws://127.0.0.1:8000 --ticks 150

On your robot: write a `Robot` for it (the four methods below that raise NotImplementedError; the camera keys are
the ones `policy.embodiment` names, the joints in rad), replace `SimRobot(...)` in `run`, and pass `--url` of your
server. On a GPU server whose replies land within a chunk's span (`chunk_size / fps`) add `--realtime`, so the arm
runs on while the next chunk is computed (docs/robot.md, "On your own robot"). Needs the `serve` extra, and `sim`
for the stand-in robot.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

from worldpolicy.robot.control import ChunkController, ChunkStrategy, JointTarget
from worldpolicy.robot.decode import ActionDecoder
from worldpolicy.serving import RemotePolicy, RemotePolicyError

# --timeout-s's default, by whether --url names a server: a real one (on a GPU) answers within it or is gone; the model
# served in this process, on a CPU shared with the loop, took up to 8 s a reply on a loaded 2-core machine
TIMEOUT_S = {True: 5.0, False: 60.0}


class Robot:
    """What the control loop needs from an arm. Fill these in for your own."""

    def observe(self) -> dict:
        """The cameras (RGB uint8 [H, W, 3], keyed as `policy.embodiment.camera_keys` names them) and the state keys
        the policy reads, as `policy.act` takes them. Convert an OpenCV/ROS `bgr8` image with `image[..., ::-1]`."""
        raise NotImplementedError

    def joint_positions(self) -> np.ndarray:
        """The measured arm joints, rad, in the robot's `arm_joints` order (7 for a Panda)."""
        raise NotImplementedError

    def command(self, qpos: np.ndarray, gripper: float | None) -> None:
        """Send one joint target (rad) and gripper g in [0, 1] (0 open; None: keep the last gripper command)."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the arm where it is (an e-stop, or holding the measured joints). Must not raise."""
        raise NotImplementedError

    def success(self) -> bool | None:
        """Whether the task was done, where the robot can tell (the stand-in's scene can); None: unknown."""
        return None

    def send(self, target: JointTarget, newest: tuple[int, int] | None, max_age_s: float) -> bool:
        """Run `target` if it is fresh (`JointTarget.fresh`): newer than the last command run (`newest`: its
        `(episode, tick)`, None before any) and made at most `max_age_s` ago by the controller's clock. Returns whether
        it ran. In this script's loop, which sends each target as soon as `step` made it, every one is fresh: the check
        matters where targets reach the arm through a queue, as a servo thread or a driver process receives them, and
        one can wait there past its time or arrive after a newer one."""
        if not target.fresh(newest, max_age_s):
            return False
        self.command(target.qpos, target.gripper)
        return True


class SimRobot(Robot):
    """The stand-in: the simulated Panda on the reach task (`worldpolicy.sim.env.TabletopEnv`), one control period
    of physics per command; `keys`: the observation keys the policy reads (the sim renders DROID's three cameras)."""

    def __init__(self, seed: int, keys) -> None:
        from worldpolicy.sim.env import TabletopEnv

        self.keys = tuple(keys)
        self.env = TabletopEnv("reach")
        _, info = self.env.reset(seed=seed)
        self.prompt = info["prompt"]  # the scene's own instruction, e.g. "move the gripper to the blue ball"
        self.gripper = self.env.gripper_position()

    def observe(self) -> dict:
        observation = self.env.observe()
        return {key: observation[key] for key in self.keys}

    def joint_positions(self) -> np.ndarray:
        return self.env.joint_positions()

    def command(self, qpos: np.ndarray, gripper: float | None) -> None:
        if gripper is not None:
            self.gripper = gripper
        self.env.act(np.append(qpos, self.gripper))

    def stop(self) -> None:
        self.env.act(np.append(self.env.joint_positions(), self.gripper))  # hold where it is

    def success(self) -> bool:
        return self.env.success()


def serve_here(checkpoint: str, device: str | None):
    """`worldpolicy serve` in this process (a background thread), for a run without a server of its own. On a robot
    the server runs on the GPU box instead: `worldpolicy serve --checkpoint CKPT`."""
    import worldpolicy
    from worldpolicy.serving import PolicyServer, ServerConfig, ServerThread

    policy = worldpolicy.load_policy(checkpoint, device=device, progress=False)
    # one warm-up request before it is ready (`worldpolicy serve --warmup 1`): the first call is no slower than the rest
    server = PolicyServer(policy, ServerConfig(host="127.0.0.1", port=0), warmup_requests=1, close_on_stop=True)
    return ServerThread(server).start()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running `worldpolicy serve` (ws://HOST:PORT); default: serve --checkpoint here")
    p.add_argument("--checkpoint", default="shipped", help="what to serve here without --url (default: shipped)")
    p.add_argument("--device", default=None, help="the device to serve on here (default: CUDA if any, else CPU)")
    p.add_argument("--api-key-env", default=None, help="environment variable holding the server's API key")
    p.add_argument("--prompt", default=None, help="the instruction (default: the stand-in scene's own)")
    p.add_argument("--robot", default="panda", help="the decoder's robot: panda, fr3, a robot file (default: panda)")
    p.add_argument("--ticks", type=int, default=45, help="control ticks to run (default: 45, 3 s at 15 Hz)")
    p.add_argument("--strategy", default="async", choices=["execute", "ensemble", "async"],
                   help="how chunks run: execute k then ask, a temporal ensemble, or asked ahead (default: async)")
    p.add_argument("--execute-steps", type=int, default=None,
                   help="k: actions run per chunk before the next takes over (default: the strategy's)")
    p.add_argument("--realtime", action="store_true",
                   help="run on while the next chunk is computed (a policy that answers within its chunk's span)")
    p.add_argument("--timeout-s", type=float, default=None,
                   help=f"a request's whole time before it fails, s (default: {TIMEOUT_S[True]:g} with --url; "
                        f"{TIMEOUT_S[False]:g} without, for the model served here, whose replies on a busy CPU take "
                        "several seconds)")
    p.add_argument("--max-policy-errors", type=int, default=10, help="failed requests in a row before stopping")
    p.add_argument("--seed", type=int, default=6, help="the stand-in scene's seed (default: 6)")
    p.add_argument("--out", type=Path, default=None, help="write a summary.json of the run here")
    args = p.parse_args(argv)
    if args.timeout_s is None:
        args.timeout_s = TIMEOUT_S[args.url is not None]
    if args.api_key_env is not None and args.api_key_env not in os.environ:
        p.error(f"--api-key-env {args.api_key_env}: no such environment variable is set")
    for flag in ("ticks", "execute_steps"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            p.error(f"--{flag.replace('_', '-')}={value}: expected an int >= 1")
    return args


def run(args: argparse.Namespace) -> dict:
    server = serve_here(args.checkpoint, args.device) if args.url is None else None
    api_key = os.environ[args.api_key_env] if args.api_key_env else None
    # connects now: a server that is not there raises ServerRefusedError here, before the arm is commanded
    policy = RemotePolicy(server.url if server else args.url, api_key=api_key, timeout_s=args.timeout_s,
                          client_name="robot_client example")
    decoder = ActionDecoder(policy.embodiment, args.robot)  # every safety check on: a chunk it refuses fails the tick
    robot = SimRobot(args.seed, keys=(*policy.embodiment.camera_keys, *policy.embodiment.state_keys))
    period = 1 / decoder.embodiment.fps  # the rate the chunk's rows are meant for
    summary = {"ticks_run": 0, "commands_sent": 0, "stale_dropped": 0, "held": 0, "policy_errors": 0,
               "stopped": "done"}
    newest = None  # the (episode, tick) of the last command run
    try:
        strategy = ChunkStrategy(args.strategy, execute_steps=args.execute_steps)
        with ChunkController(policy, decoder, strategy, prompt=args.prompt or robot.prompt, realtime=args.realtime,
                             on_policy_error="hold", max_policy_errors=args.max_policy_errors) as control:
            next_tick = time.monotonic()
            for tick in range(args.ticks):
                if tick:  # tick 0 waits for the first chunk: the clock starts after it
                    next_tick += period
                    if time.monotonic() > next_tick:  # the last tick overran (a reply waited for): no catching up
                        next_tick = time.monotonic() + period
                    time.sleep(max(0.0, next_tick - time.monotonic()))
                target = control.step(robot.observe, robot.joint_positions())
                if robot.send(target, newest, max_age_s=2 * period):
                    newest = (target.episode, target.tick)
                    summary["commands_sent"] += 1
                else:
                    summary["stale_dropped"] += 1  # none here (Robot.send): a servo thread's queue can hold some
                summary["ticks_run"] += 1
                summary["held"] += bool(target.held)
                # a failed request's error is logged by the controller, once per streak of failures in a row
                failed = f" (request failed, {control.policy_error_streak} in a row)" if target.policy_error else ""
                print(f"tick {target.tick}: {'held' if target.held else f'row {target.index}'}{failed}", flush=True)
            summary["policy_errors"] = control.policy_errors
            seconds = [r.seconds for r in control.replies]
            summary["replies"] = len(seconds)
            if seconds:  # none where every request failed (held ticks, fewer than --max-policy-errors)
                summary["reply_s_p50_p99"] = [round(float(s), 3) for s in np.percentile(seconds, [50, 99])]
    except KeyboardInterrupt:
        summary["stopped"] = "interrupted"
        raise
    except RemotePolicyError as error:  # max_policy_errors failures in a row: the server is gone for good
        summary["stopped"] = f"policy failed: {type(error).__name__}"
        raise
    finally:
        # whatever ended the loop (done, Ctrl-C, the policy given up on, a refused chunk): stop the arm, with Ctrl-C
        # and SIGTERM ignored meanwhile, as a second Ctrl-C would raise inside `stop` and cut it short
        handlers = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            robot.stop()
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
        policy.close()
        if server is not None:
            server.stop()
        summary["success"] = robot.success()
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
        print(f"arm stopped ({summary['stopped']}): {json.dumps(summary)}", file=sys.stderr)
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C, and `kill` or a job's time limit (SIGTERM), raise KeyboardInterrupt in the loop, which stops the arm;
    # SIGINT set again, as a shell starts a background job (`... &`) with it ignored
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    try:
        run(args)
    except KeyboardInterrupt:
        return 130
    except RemotePolicyError as error:  # no server at --url, or it stopped answering: one line, the arm stopped
        print(f"robot_client: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
