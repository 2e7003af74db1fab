"""What `worldpolicy dream` spends writing its run, side by side in one run: the old way (the whole run, `write_dream`
without plots, rewritten after every chunk, then once more with plots at the end: its video re-encoded whole each time,
so the writing grows with the square of the dream's length) against the new (`sim.world_model.DreamRecorder`: each
chunk appended as a line of chunks.jsonl and an mp4 of its own frames, the whole run written once at the end, its
rollout.mp4 those mp4s' packets joined, not encoded again). One dream of the longest length is imagined first (the
shipped model on CPU, one denoising step, two random 180x320 cameras) and its chunks are then written both ways for
each length, so both write the same chunks; the model's time per chunk is printed beside them. Both ways must end
with the same files (dream.json, actions.json, settings.json: checked byte for byte; rollout.mp4: as many frames of
one size, the new one's decoded pixels the chunks' mp4s' own, the old one's the frames encoded as one stream: each
frame is encoded once both ways, in one stream or in its chunk's file, so their pixels may differ).

    python benchmarks/bench_dream_io.py [--chunks 8,32] [--execute-steps 4] [--no-plots]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _args import exit_if_failed, parser_for

COMPARED = ("dream.json", "actions.json", "settings.json")


def _lengths(text: str) -> list[int]:
    """--chunks: comma-separated dream lengths, each >= 1."""
    try:
        lengths = [int(v) for v in text.split(",")]
    except ValueError:
        lengths = []
    if not lengths or min(lengths) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated chunk counts, each >= 1 (e.g. 8,32), got {text!r}")
    return lengths


def _old(chunks: list, out: Path, settings: dict, plots: bool) -> tuple[list[float], float]:
    """The run rewritten after every chunk (what `worldpolicy dream` did), then once with plots: (seconds per chunk,
    seconds at the end)."""
    from worldpolicy.sim.world_model import Dream, write_dream

    per_chunk = []
    for k in range(1, len(chunks) + 1):
        tick = time.perf_counter()
        write_dream(Dream.of_chunks(chunks[:k]), out, settings, len(chunks), plots=False)
        per_chunk.append(time.perf_counter() - tick)
    tick = time.perf_counter()
    write_dream(Dream.of_chunks(chunks), out, settings, len(chunks), plots=plots)
    return per_chunk, time.perf_counter() - tick


def _new(chunks: list, out: Path, settings: dict, plots: bool) -> tuple[list[float], float]:
    """Each chunk recorded (`DreamRecorder.add`), the run written once (`finish`): (seconds per chunk, at the end)."""
    from worldpolicy.sim.world_model import DreamRecorder

    recorder = DreamRecorder(out, settings, len(chunks), plots=plots)
    per_chunk = []
    for chunk in chunks:
        tick = time.perf_counter()
        recorder.add(chunk)
        per_chunk.append(time.perf_counter() - tick)
    tick = time.perf_counter()
    recorder.finish()
    return per_chunk, time.perf_counter() - tick


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--chunks", type=_lengths, default=[8, 32],
                        help="dream lengths, comma-separated (default 8,32)")
    parser.add_argument("--execute-steps", type=int, choices=range(1, 5), default=None, metavar="K",
                        help="actions of each chunk imagined, 1..4 (default: the whole chunk, 4)")
    parser.add_argument("--no-plots", action="store_true", help="the end's run without plots and page, both ways")
    args = parser.parse_args()

    import worldpolicy
    from worldpolicy.processing.video import read_video
    from worldpolicy.sim.world_model import dream, dream_settings

    policy = worldpolicy.load_policy("shipped", device="cpu", steps=1)
    rng = np.random.default_rng(0)
    cameras = {key: rng.integers(0, 256, (180, 320, 3), dtype=np.uint8) for key in policy.embodiment.camera_keys}
    longest = max(args.chunks)
    ran, ticks = [], [time.perf_counter()]
    dream(policy, policy, cameras, "reach the red ball", longest, seed=0, execute_steps=args.execute_steps,
          on_chunk=lambda chunk: ran.append(chunk) or ticks.append(time.perf_counter()))
    model = float(np.median(np.diff(ticks)))
    frame = ran[0].frames.shape[1:3]
    print(f"model (policy + world model) per chunk: {1e3 * model:.0f} ms (median of {longest}); "
          f"{len(ran[0].actions)} frames of {frame[0]}x{frame[1]} per chunk")
    plots = not args.no_plots
    checks = {}
    with tempfile.TemporaryDirectory() as tmp:  # first-call set-up (imports, the encoder, matplotlib) outside both
        warm = dream_settings("shipped", "shipped", 0, 1, args.execute_steps, None, {})
        _old(ran[:1], Path(tmp) / "old", warm, plots)
        _new(ran[:1], Path(tmp) / "new", warm, plots)
    for n in sorted(set(args.chunks)):
        settings = dream_settings("shipped", "shipped", 0, n, args.execute_steps, None, {})
        with tempfile.TemporaryDirectory() as tmp:
            old_chunks, old_end = _old(ran[:n], Path(tmp) / "old", settings, plots)
            new_chunks, new_end = _new(ran[:n], Path(tmp) / "new", settings, plots)
            same = all((Path(tmp) / "old" / name).read_bytes() == (Path(tmp) / "new" / name).read_bytes()
                       for name in COMPARED)
            videos = [read_video(Path(tmp) / way / "rollout.mp4")[0] for way in ("old", "new")]
            same = same and videos[0].shape == videos[1].shape
            apart = int(np.abs(videos[0].astype(int) - videos[1]).max())
        old_total, new_total = sum(old_chunks) + old_end, sum(new_chunks) + new_end
        print(f"{n} chunks: old writes {1e3 * sum(old_chunks):.0f} ms over the chunks (first {1e3 * old_chunks[0]:.0f}"
              f" ms, last {1e3 * old_chunks[-1]:.0f} ms) + {1e3 * old_end:.0f} ms at the end = {old_total:.2f} s; "
              f"new {1e3 * sum(new_chunks):.0f} ms (first {1e3 * new_chunks[0]:.0f} ms, last "
              f"{1e3 * new_chunks[-1]:.0f} ms) + {1e3 * new_end:.0f} ms = {new_total:.2f} s")
        print(f"{n} chunks: writing old / new {old_total / new_total:.2f}x (over the chunks "
              f"{sum(old_chunks) / sum(new_chunks):.2f}x, at the end, encoding the video or joining the chunks': "
              f"{old_end / new_end:.2f}x); last chunk's write old / new {old_chunks[-1] / new_chunks[-1]:.2f}x; "
              f"writing / model time: old {old_total / (n * model):.2f}, new {new_total / (n * model):.2f}; "
              f"same files: {'yes' if same else 'NO'} (rollout.mp4's pixels up to {apart}/255 apart: encoded as one "
              "stream against chunk by chunk)")
        checks[f"{n} chunks: both ways end with the same files"] = same
    exit_if_failed(checks)


if __name__ == "__main__":
    main()
