"""The memory a latent cache takes, before and after its latents became a memory map read as batches use them, each
way in a fresh process, for its peak RSS (VmHWM). Two steps of a run, each side by side:

- building: `--windows` encoded windows (random latents of `--latent` [channels, frames, height, width], made a
  window at a time as the VAE's batches give them) kept until the cache is written. Before: every window's latents
  kept in RAM and stacked into one tensor for `safetensors.torch.save_file`, one file (the build and `save` as they
  were). After: as `LatentCache._build` and `build_or_load` do now: every `SHARD_WINDOWS` windows a shard is written
  (`LatentCache.save`, safetensors' `save_file`) and its latents held as safetensors' map of it (`_read_shard`); the
  shards, the meta beside them and the folder renamed, are the cache.
- training: the cache opened, the trainer's examples made (`model_examples`) and every window's latents read once,
  as an epoch's batches read them (`flow.noise_example` casts them to float32). Before: `LatentCache.load` of the one
  file as it was (`safe_open`'s `get_tensor`, which safetensors itself returns as a copy-on-write map of the file for
  torch: so this step was already lazy, by safetensors' implementation). After: `LatentCache.load` of the folder: the
  same maps, one a shard, and views of them a window.

The windows are DROID-shaped (8 action columns and a state row, chunk 16); the default latents are a DROID composite
on tier 480's 544x736 canvas, 16 times smaller a side, by a VAE of 16 channels, 5 latent frames: ~0.4 MiB a window.
Peak RSS counts both kinds; what is resident at the end is split into anonymous memory (the process's own: the
system cannot drop it, and with no swap a run past the RAM is killed) and file-backed pages (a map's: the system
drops them when it needs the memory and reads them again when they are used again), so a map's pages a run has read
count in RSS without ever making it killed. The check: every way writes and reads the same bits (a checksum of every
window's latents).

    python benchmarks/bench_latent_cache.py [--windows 2000] [--latent 16x5x33x40]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _args import at_least, exit_if_failed, parser_for

STEPS = ("build", "train")
WAYS = ("before", "after")
CHUNK = 16
ACTION_DIM = 8
MIB = 2**20


def _status() -> dict[str, int]:
    """This process's peak RSS and what is resident now (all, anonymous, file-backed), in bytes."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


def _windows(windows: int):
    """Every window's actions, flags, state, caption ids and (episode, start): what a build keeps besides latents."""
    import numpy as np

    rng = np.random.default_rng(0)
    actions = [rng.uniform(-0.5, 0.5, (CHUNK, ACTION_DIM)) for _ in range(windows)]
    states = [rng.uniform(-0.5, 0.5, ACTION_DIM) for _ in range(windows)]
    caption = [list(range(1000, 1100))]
    return (actions, [np.ones(CHUNK, bool)] * windows, states, [caption] * windows,
            [(i // 100, i % 100) for i in range(windows)])


def _encoded(i: int, latent: tuple[int, ...]):
    """Window `i`'s latents, as the VAE gives them: new memory."""
    import torch

    return torch.randn(latent, generator=torch.Generator().manual_seed(i))


def _build(way: str, folder: Path, windows: int, latent: tuple[int, ...]) -> None:
    import numpy as np
    import torch

    from worldpolicy.fileio import replace_folder, write_json_atomic
    from worldpolicy.train.data import CACHE_META, SHARD_WINDOWS, LatentCache, _read_shard

    actions, valid, states, captions, index = _windows(windows)
    if way == "before":
        path = folder / "latents-before.safetensors"
        from safetensors.torch import save_file

        latents = [_encoded(i, latent) for i in range(windows)]
        rows = [tok for c in captions for tok in c]
        ids = torch.tensor(rows, dtype=torch.long)
        tensors = {"latents": torch.stack(latents).contiguous(),
                   "actions": torch.from_numpy(np.stack(actions).astype(np.float64)),
                   "valid": torch.from_numpy(np.stack(valid).astype(np.uint8)),
                   "index": torch.tensor(index, dtype=torch.long), "token_ids": ids,
                   "token_lengths": torch.tensor([len(t) for t in rows]),
                   "caption_counts": torch.tensor([len(c) for c in captions]),
                   "states": torch.from_numpy(np.stack(states).astype(np.float64))}
        save_file(tensors, str(path), metadata={"worldpolicy": json.dumps({"windows": windows})})
        return
    partial = folder / "latents-after.partial"
    latents: list = []
    for start in range(0, windows, SHARD_WINDOWS):
        done = min(start + SHARD_WINDOWS, windows)
        latents += [_encoded(i, latent) for i in range(start, done)]
        shard = partial / f"windows-{start:09d}.safetensors"
        LatentCache(latents[start:done], actions[start:done], valid[start:done], states[start:done],
                    captions[start:done], index[start:done], {}).save(shard)
        latents[start:done] = _read_shard(shard).latents
    write_json_atomic(partial / CACHE_META, {"windows": windows})
    replace_folder(partial, folder / "latents-after")


def _train(way: str, path: Path):
    """The cache opened `way`, the trainer's examples made from it and every window's latents read once; a digest."""
    import torch

    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.train.data import LatentCache

    emb = get_embodiment("droid")
    if way == "before":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["worldpolicy"])
            t = {k: f.get_tensor(k) for k in f.keys()}
        rows = iter(row[:n].tolist() for row, n in zip(t["token_ids"], t["token_lengths"].tolist()))
        captions = [[next(rows) for _ in range(count)] for count in t["caption_counts"].tolist()]
        cache = LatentCache(list(t["latents"].unbind(0)), list(t["actions"].numpy()), list(t["valid"].bool().numpy()),
                            list(t["states"].numpy()), captions, [tuple(x) for x in t["index"].tolist()], meta)
        del t
    else:
        cache = LatentCache.load(path)
    examples = cache.model_examples(emb)
    del cache  # as the trainer keeps only its examples (and their captions)
    digest = hashlib.sha256()
    for example in examples:
        latents = example.latents.to(dtype=torch.float32).unsqueeze(0)  # as `flow.noise_example` reads them
        digest.update(latents.numpy().tobytes())
    return digest.hexdigest()


def _measure(step: str, way: str, folder: Path, windows: int, latent: tuple[int, ...]) -> dict:
    """In this (fresh) process: one step one way, with the memory before and after it (after the imports), and the
    largest anonymous memory seen while it ran (sampled every 2 ms: the kernel keeps no peak of it)."""
    import threading
    import time

    # imported before the first figure: what follows is the step's
    import worldpolicy.embodiments
    import worldpolicy.train.data  # noqa: F401

    start = _status()
    peak_anon = [start["RssAnon"]]
    running = threading.Event()
    running.set()

    def sample() -> None:
        while running.is_set():
            peak_anon[0] = max(peak_anon[0], _status()["RssAnon"])
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if step == "build":
        _build(way, folder, windows, latent)
        digest = ""
    else:
        digest = _train(way, folder / ("latents-before.safetensors" if way == "before" else "latents-after"))
    running.clear()
    sampler.join()
    done = _status()
    return {"start": start, "done": done, "peak_anon": max(peak_anon[0], done["RssAnon"]), "digest": digest}


def _line(step: str, way: str, r: dict) -> str:
    start, done = r["start"], r["done"]

    def grew(field: str) -> str:
        return f"{(done[field] - start[field]) / MIB:+.0f}"

    return (f"{step} {way:>6}: peak RSS {(done['VmHWM'] - start['VmRSS']) / MIB:+.0f} MiB (anonymous "
            f"{(r['peak_anon'] - start['RssAnon']) / MIB:+.0f}) over the {start['VmRSS'] / MIB:.0f} MiB before it; "
            f"resident at its end: anonymous {grew('RssAnon')} MiB, file-backed {grew('RssFile')} MiB")


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--windows", type=at_least(2), default=2000, help="windows in the cache (default 2000)")
    parser.add_argument("--latent", default="16x5x33x40", help="one window's latents, CxTxHxW (default 16x5x33x40)")
    parser.add_argument("--measure", nargs=3, metavar=("STEP", "WAY", "FOLDER"),
                        help=argparse.SUPPRESS)  # a measuring process's
    args = parser.parse_args()
    try:
        latent = tuple(int(v) for v in args.latent.lower().split("x"))
    except ValueError:
        parser.error(f"--latent={args.latent!r}: expected CxTxHxW, e.g. 16x5x33x40")
    if len(latent) != 4 or min(latent) < 1:
        parser.error(f"--latent={args.latent!r}: expected four sizes >= 1 (CxTxHxW), e.g. 16x5x33x40")
    if args.measure:
        step, way, folder = args.measure
        print(json.dumps(_measure(step, way, Path(folder), args.windows, latent)))
        return
    results: dict[tuple[str, str], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for step in STEPS:  # the build's files first: training reads what each way wrote
            for way in WAYS:
                done = subprocess.run([sys.executable, __file__, "--windows", str(args.windows), "--latent",
                                       args.latent, "--measure", step, way, tmp], check=True, capture_output=True,
                                      text=True)
                results[step, way] = json.loads(done.stdout.splitlines()[-1])
        shards = sorted(Path(tmp, "latents-after").glob("windows-*.safetensors"))
        size = sum(shard.stat().st_size for shard in shards)
        import torch
        from safetensors.torch import load_file

        before = load_file(str(Path(tmp, "latents-before.safetensors")))
        after = [load_file(str(shard)) for shard in shards]
        same_files = all(before[k].equal(torch.cat([part[k] for part in after]))
                         for k in ("latents", "actions", "valid", "states", "index"))
        del before, after
    print(f"cache of {args.windows} windows, latents {'x'.join(map(str, latent))} float32: "
          f"{size / MIB:.1f} MiB on disk ({len(shards)} shard{'s' if len(shards) > 1 else ''})")
    for (step, way), r in results.items():
        print(_line(step, way, r))
    for step in STEPS:
        peak = {way: results[step, way]["done"]["VmHWM"] - results[step, way]["start"]["VmRSS"] for way in WAYS}
        anon = {way: results[step, way]["peak_anon"] - results[step, way]["start"]["RssAnon"] for way in WAYS}
        print(f"{step}: peak RSS growth before / after: {peak['before'] / max(peak['after'], MIB):.2f}x; peak "
              f"anonymous growth before / after: {anon['before'] / max(anon['after'], MIB):.2f}x")
    same = same_files and results["train", "before"]["digest"] == results["train", "after"]["digest"]
    print(f"same latents written and read every way: {same}")
    exit_if_failed({"every way writes and reads the same latents": same})


if __name__ == "__main__":
    main()
