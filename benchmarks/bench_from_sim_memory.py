"""Peak memory of `dataset from-sim` (`sim_to_dataset`), side by side in one run: every episode's frames held as
arrays until it ends and added whole (the recorder before session 32: `expert_episodes` without a spool into
`LeRobotDatasetWriter.add_episode`, here `_record_whole`) against the frames spooled to disk as they are rendered and
streamed into the videos a block at a time (`sim_to_dataset`). The scripted expert on `reach`, each episode held for
`--frames` steps (`settle_steps` and `max_steps` both that): what is measured is the recording's frames, not the
simulator. Each run is a fresh process; peak RSS is the kernel's high-water mark above the RSS before recording, reset
just before it (Linux). Besides the wall time, each run's CPU time (user + system, all of its threads: the renderer's
and the encoders' included) is printed: on a machine loaded by other jobs the wall times follow the load, the CPU times
the work. `--repeats` runs each variant that many times, interleaved, and prints the medians. Each pair of runs'
datasets is compared file by file: each is recorded as `recorded` (in a folder of its variant's name), since the
dataset card (README.md) is titled by the folder it is written to.

    python benchmarks/bench_from_sim_memory.py [--episodes 3] [--frames 300] [--size 240x320] [--repeats 1]
"""

from __future__ import annotations

import argparse
import filecmp
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _args import at_least, exit_if_failed, frame_size, parser_for
from bench_label_memory import _same_tree, _status


def _record_whole(root: str, episodes: int, options: dict) -> None:
    """The recording before session 32: each episode's frames as arrays (`expert_episodes` without a spool), added
    whole, with the provenance `sim_to_dataset` writes (so the two datasets compare file by file)."""
    from worldpolicy.data.from_sim import expert_episodes, sim_features
    from worldpolicy.data.lerobot import LeRobotDatasetWriter
    from worldpolicy.extras import run_record

    recording = expert_episodes("reach", episodes, **options)
    settings = recording.provenance
    features = sim_features(settings["robot"], tuple(settings["image_size"]), settings["cameras"])
    seeds: list[int] = []
    with LeRobotDatasetWriter(root, settings["control_hz"], features, settings["robot"], video_codec="libx264rgb",
                              provenance={**settings, **run_record(None), "seeds": seeds}) as writer:
        for episode in recording:
            writer.add_episode(episode["frames"], episode["videos"], episode["task"], success=episode["success"])
            seeds.append(episode["seed"])
            writer.provenance["seeds"] = list(seeds)


def _measure(root: str, variant: str, episodes: int, options: dict) -> None:
    """Child process: one recording, its peak RSS above the RSS before it, and its time."""
    from worldpolicy.data.from_sim import sim_to_dataset
    from worldpolicy.data.lerobot import LeRobotDatasetWriter  # noqa: F401  (imports outside the measurement)
    from worldpolicy.sim.env import TabletopEnv  # noqa: F401
    from worldpolicy.sim.policies import ScriptedPolicy  # noqa: F401

    Path("/proc/self/clear_refs").write_text("5")
    before = _status("VmRSS")
    cpu = _cpu_seconds()
    tick = time.perf_counter()
    if variant == "whole":
        _record_whole(root, episodes, options)
    else:
        sim_to_dataset(root, "reach", episodes, **options)
    seconds = time.perf_counter() - tick
    print(json.dumps({"peak_rss_mib": round(_status("VmHWM") - before), "seconds": round(seconds, 2),
                      "cpu_seconds": round(_cpu_seconds() - cpu, 2)}))


def _cpu_seconds() -> float:
    """This process's CPU time so far, user and system, over all of its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--episodes", type=at_least(1), default=3, help="episodes recorded (default 3)")
    parser.add_argument("--frames", type=at_least(2), default=300, help="frames of each episode (default 300)")
    parser.add_argument("--size", default="240x320", help="HxW of each camera, each side >= 16 (default 240x320)")
    parser.add_argument("--repeats", type=at_least(1), default=1,
                        help="runs of each variant, interleaved; medians are printed (default 1)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _measure(args.child[0], args.child[1], int(args.child[2]), json.loads(args.child[3]))
        return
    height, width = frame_size(parser, args.size, "240x320")
    options = {"image_size": [height, width], "max_steps": args.frames, "settle_steps": args.frames,
               "keep_failures": True}

    runs: dict[str, list[dict]] = {"whole": [], "streamed": []}
    same = True
    for _ in range(args.repeats):  # interleaved: a change in the machine's load falls on both variants alike
        with tempfile.TemporaryDirectory() as tmp:
            for variant, rows in runs.items():
                child = [str(Path(tmp) / variant / "recorded"), variant, str(args.episodes), json.dumps(options)]
                ran = subprocess.run([sys.executable, __file__, "--child", *child], check=False, capture_output=True,
                                     text=True)
                if ran.returncode:  # the child's traceback, not a bare CalledProcessError
                    sys.exit(f"the {variant!r} recording failed:\n{ran.stderr.strip()}")
                rows.append(json.loads(ran.stdout.strip().splitlines()[-1]))
            same = same and _same_tree(filecmp.dircmp(Path(tmp) / "whole", Path(tmp) / "streamed"))
    medians = {variant: {name: float(np.median([row[name] for row in rows])) for name in rows[0]}
               for variant, rows in runs.items()}
    episode_mib = args.frames * height * width * 3 * 3 / 2**20
    print(f"{args.episodes} episodes of {args.frames} frames, 3 cameras at {height}x{width} ({episode_mib:.0f} MiB of "
          f"uint8 frames each), median of {args.repeats}")
    for variant, row in medians.items():
        print(f"{variant:>8}: peak RSS +{row['peak_rss_mib']:5.0f} MiB, {row['seconds']:6.2f} s wall, "
              f"{row['cpu_seconds']:6.2f} s CPU")
    whole, streamed = medians["whole"], medians["streamed"]
    print(f"whole / streamed: peak RSS {whole['peak_rss_mib'] / max(streamed['peak_rss_mib'], 1):.2f}x, wall "
          f"{whole['seconds'] / streamed['seconds']:.2f}x, CPU {whole['cpu_seconds'] / streamed['cpu_seconds']:.2f}x; "
          f"datasets identical file by file: {same}")
    exit_if_failed({"the whole and streamed recordings' datasets are identical file by file": same})


if __name__ == "__main__":
    main()
