"""The memory a training run takes to open its latent cache and read every window once: the whole file read into RAM
(how `LatentCache.load` read a cache before it was a memory map: every tensor copied out with `safe_open`, the
latents split into one tensor per window) against `LatentCache.load` now (the latents a copy-on-write memory map of
the file, read as a window is used), each then turned into the trainer's examples (`model_examples`) and every
example's latents read once, as an epoch's batches read them (`flow.noise_example` casts them to float32 and uses
them). One cache file of DROID-shaped windows (8 action columns and a state row, chunk 16) with random latents of
`--latent` [channels, frames, height, width] is written once (the default: a DROID composite on tier 480's 544x736
canvas, 16 times smaller a side, by a VAE of 16 channels, 5 latent frames: ~0.4 MiB a window). Each way is measured
in a fresh process, for its peak RSS (VmHWM). What is resident at the end is split into anonymous memory (the
process's own: the system cannot drop it, and with no swap a run past the RAM is killed) and file-backed pages (the
map's: the system drops them when it needs the memory and reads them again from the disk when used again), so RSS
counts the map's pages a run has read, which never pass the file's size nor make the run killed. The check: both
ways read the same bits (a checksum of every window's latents).

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

WAYS = ("read whole", "memory map")
CHUNK = 16
ACTION_DIM = 8


def _status() -> dict[str, int]:
    """This process's peak RSS and what is resident now (all, anonymous, file-backed), in bytes."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


def _write(path: Path, windows: int, latent: tuple[int, ...]) -> None:
    """A cache file of `windows` windows, written a window at a time (`LatentCache.save`): this process never holds
    them together either."""
    from collections.abc import Sequence

    import numpy as np
    import torch

    from worldpolicy.train.data import LatentCache

    class Rows(Sequence):
        def __len__(self) -> int:
            return windows

        def __getitem__(self, i):
            if isinstance(i, slice):
                return [self[j] for j in range(*i.indices(windows))]
            if not -windows <= i < windows:
                raise IndexError(i)
            return torch.randn(latent, generator=torch.Generator().manual_seed(i % windows))

    rng = np.random.default_rng(0)
    actions = [rng.uniform(-0.5, 0.5, (CHUNK, ACTION_DIM)) for _ in range(windows)]
    states = [rng.uniform(-0.5, 0.5, ACTION_DIM) for _ in range(windows)]
    caption = [list(range(1000, 1100))]
    LatentCache(Rows(), actions, [np.ones(CHUNK, bool)] * windows, states, [caption] * windows,
                [(i // 100, i % 100) for i in range(windows)], {"windows": windows}).save(path)


def _read_whole(path: Path):
    """The cache as `LatentCache.load` read it before its latents were a memory map."""
    from safetensors import safe_open

    from worldpolicy.train.data import LatentCache

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["worldpolicy"])
        t = {k: f.get_tensor(k) for k in f.keys()}
    rows = iter(row[:n].tolist() for row, n in zip(t["token_ids"], t["token_lengths"].tolist()))
    captions = [[next(rows) for _ in range(count)] for count in t["caption_counts"].tolist()]
    states = list(t["states"].numpy()) if "states" in t else None
    return LatentCache(list(t["latents"].unbind(0)), list(t["actions"].numpy()), list(t["valid"].bool().numpy()),
                       states, captions, [tuple(x) for x in t["index"].tolist()], meta)


def _measure(way: str, path: Path) -> dict:
    """In this (fresh) process: open the cache `way`, make its examples, read every window's latents once."""
    import torch

    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.train.data import LatentCache

    emb = get_embodiment("droid")  # its imports before the first figure: what follows is the cache's
    start = _status()
    cache = _read_whole(path) if way == "read whole" else LatentCache.load(path)
    examples = cache.model_examples(emb)
    del cache  # as the trainer keeps only its examples (and their captions)
    opened = _status()
    digest = hashlib.sha256()
    for example in examples:
        latents = example.latents.to(dtype=torch.float32).unsqueeze(0)  # as `flow.noise_example` reads them
        digest.update(latents.numpy().tobytes())
    done = _status()
    return {"start": start, "opened": opened, "done": done, "digest": digest.hexdigest(), "windows": len(examples)}


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--windows", type=at_least(2), default=2000, help="windows in the cache (default 2000)")
    parser.add_argument("--latent", default="16x5x33x40", help="one window's latents, CxTxHxW (default 16x5x33x40)")
    parser.add_argument("--measure", nargs=2, metavar=("WAY", "FILE"), help=argparse.SUPPRESS)  # a measuring process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(_measure(args.measure[0], Path(args.measure[1]))))
        return
    try:
        latent = tuple(int(v) for v in args.latent.lower().split("x"))
    except ValueError:
        parser.error(f"--latent={args.latent!r}: expected CxTxHxW, e.g. 16x5x33x40")
    if len(latent) != 4 or min(latent) < 1:
        parser.error(f"--latent={args.latent!r}: expected four sizes >= 1 (CxTxHxW), e.g. 16x5x33x40")
    mib = 2**20
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "latents.safetensors"
        _write(path, args.windows, latent)
        size = path.stat().st_size
        print(f"cache of {args.windows} windows, latents {'x'.join(map(str, latent))} float32: "
              f"{size / mib:.1f} MiB on disk")
        results = {}
        for way in WAYS:
            done = subprocess.run([sys.executable, __file__, "--measure", way, str(path)], check=True,
                                  capture_output=True, text=True)
            results[way] = json.loads(done.stdout.splitlines()[-1])
    for way, r in results.items():
        base = r["start"]["VmRSS"]
        print(f"{way:>11}: after opening: RSS +{(r['opened']['VmRSS'] - base) / mib:.0f} MiB (anonymous "
              f"+{(r['opened']['RssAnon'] - r['start']['RssAnon']) / mib:.0f}); after reading every window: "
              f"RSS +{(r['done']['VmRSS'] - base) / mib:.0f} MiB (anonymous "
              f"+{(r['done']['RssAnon'] - r['start']['RssAnon']) / mib:.0f}, file-backed "
              f"+{(r['done']['RssFile'] - r['start']['RssFile']) / mib:.0f}); peak RSS {r['done']['VmHWM'] / mib:.0f} "
              f"MiB (from {base / mib:.0f} MiB before opening)")
    whole, mapped = results["read whole"], results["memory map"]
    grown = {way: r["done"]["VmHWM"] - r["start"]["VmRSS"] for way, r in results.items()}
    anon = {way: r["done"]["RssAnon"] - r["start"]["RssAnon"] for way, r in results.items()}
    print(f"peak RSS growth, read whole / memory map: {grown['read whole'] / max(grown['memory map'], 1):.2f}x; "
          f"anonymous memory held after an epoch, read whole / memory map: "
          f"{anon['read whole'] / max(anon['memory map'], mib):.1f}x")
    same = whole["digest"] == mapped["digest"] and whole["windows"] == mapped["windows"] == args.windows
    print(f"same latents read both ways: {same}")
    exit_if_failed({"both ways read the same latents": same})


if __name__ == "__main__":
    main()
