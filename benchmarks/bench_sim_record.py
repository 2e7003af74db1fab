"""What recording an episode costs for a policy that looks at the cameras, as `worldpolicy demo`'s episodes record
theirs (one request per control step, every step a recorded frame), side by side in one run: each request's cameras
rendered anew after the frame of the step before had rendered the same state (until session 45), against taken
from that frame (`Rollout._observe`'s `views`). The policy is random actions that read every image (no model: what is
timed is the sim, its rendering and the frames); alternate runs, medians. Check: both ways the requests got the same
images and the episodes the same frames.

    python benchmarks/bench_sim_record.py [--episodes 2] [--steps 60] [--repeats 3] [--size 180x320]
"""

from __future__ import annotations

import hashlib
import statistics
import time

from _args import at_least, exit_if_failed, frame_size, parser_for

from worldpolicy.sim.env import TabletopEnv
from worldpolicy.sim.policies import RandomPolicy
from worldpolicy.sim.rollout import Rollout


class _Looking(RandomPolicy):
    """Random actions, one per request, that read each request's camera images (kept as digests)."""

    uses_images = True

    def __init__(self) -> None:
        super().__init__(seed=0, chunk_size=1)
        self.seen: list[str] = []

    def act(self, observation, prompt):
        digest = hashlib.sha256()
        for key, value in observation.items():
            if "image" in key:
                digest.update(key.encode() + value.tobytes())
        self.seen.append(digest.hexdigest())
        return super().act(observation, prompt)


def _rendering_again(rollout: Rollout, views=None) -> dict:
    """How a request's observation was taken before: its cameras rendered, whatever the last frame rendered."""
    return _OWN_OBSERVE(rollout)


_OWN_OBSERVE = Rollout._observe


def _episodes(env: TabletopEnv, episodes: int, again: bool) -> tuple[float, list[str], str, int]:
    """Seconds, the requests' image digests, the frames' digest and the renders of `episodes` recorded episodes."""
    renders = [0]
    render = TabletopEnv.render_camera

    def counted(key):
        renders[0] += 1
        return render(env, key)

    env.render_camera = counted
    Rollout._observe = _rendering_again if again else _OWN_OBSERVE
    try:
        policy, frames = _Looking(), hashlib.sha256()
        rollout = Rollout(env, policy)
        tick = time.perf_counter()
        for seed in range(episodes):
            frames.update(rollout.run(seed, record=True).frames.tobytes())
        return time.perf_counter() - tick, policy.seen, frames.hexdigest(), renders[0]
    finally:
        Rollout._observe = _OWN_OBSERVE
        del env.render_camera


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--episodes", type=at_least(1), default=2, help="recorded episodes per run (default 2)")
    parser.add_argument("--steps", type=at_least(1), default=60, help="control steps per episode (default 60, the "
                        "demo's reach task's limit; random actions never end one early)")
    parser.add_argument("--repeats", type=at_least(1), default=3, help="runs of each way, alternated (default 3)")
    parser.add_argument("--size", default="180x320", help="camera image HxW (default 180x320, the sim's default)")
    args = parser.parse_args()
    size = frame_size(parser, args.size, "180x320")

    env = TabletopEnv("reach", image_size=size, max_steps=args.steps)
    times: dict[bool, list[float]] = {True: [], False: []}
    found: dict[bool, tuple] = {}
    try:
        _episodes(env, 1, again=False)  # the renderer's context and first-call set-up outside the measurement
        for _ in range(args.repeats):
            for again in (True, False):
                seconds, seen, frames, renders = _episodes(env, args.episodes, again)
                times[again].append(seconds)
                found[again] = (seen, frames, renders)
    finally:
        env.close()
    before, after = statistics.median(times[True]), statistics.median(times[False])
    same_images, same_frames = found[True][0] == found[False][0], found[True][1] == found[False][1]
    print(f"{args.episodes} recorded episodes of {args.steps} steps at {size[0]}x{size[1]}, median of {args.repeats}: "
          f"cameras rendered again {before:.2f} s ({found[True][2]} renders), taken from the frame {after:.2f} s "
          f"({found[False][2]} renders), {before / after:.2f}x")
    print(f"same request images: {same_images}; same frames: {same_frames}")
    exit_if_failed({"the requests' images are the same both ways": same_images,
                    "the recorded frames are the same both ways": same_frames})


if __name__ == "__main__":
    main()
