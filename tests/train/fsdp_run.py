"""One torchrun process of the FSDP tests: `fsdp_run.py CONFIG.json [STOP_AFTER]` trains (stopping after STOP_AFTER
steps, as a kill would) and rank 0 prints the steps' losses and gradient norms as one JSON line. Each rank writes the
safetensors files it opened to `opened-rank<R>.json` in the working folder (a spy on safetensors' readers, which
diffusers and the trainer call through the module: only rank 0 may read weights). `MAX_SHARD_SIZE` in the environment
(bytes): the files a checkpoint's tensors are split by (`fileio.MAX_SHARD_SIZE`), small enough to split the tiny
model's."""

from __future__ import annotations

import json
import os
import sys

import safetensors
import safetensors.torch

from worldpolicy import fileio
from worldpolicy.train.config import load_config
from worldpolicy.train.trainer import Trainer

OPENED: list[str] = []


def spy(read):
    def reading(path, *args, **kwargs):
        OPENED.append(os.path.abspath(str(path)))
        return read(path, *args, **kwargs)

    return reading


if __name__ == "__main__":
    if "MAX_SHARD_SIZE" in os.environ:
        fileio.MAX_SHARD_SIZE = int(os.environ["MAX_SHARD_SIZE"])
    safetensors.safe_open = spy(safetensors.safe_open)
    safetensors.torch.load_file = spy(safetensors.torch.load_file)
    stop_after = int(sys.argv[2]) if len(sys.argv) > 2 else None
    trainer = Trainer(load_config(sys.argv[1]), progress=False)
    records = trainer.run(stop_after=stop_after)
    with open(f"opened-rank{trainer.rank}.json", "w") as f:
        json.dump(OPENED, f)
    if trainer.rank == 0:
        print("RECORDS " + json.dumps([[r.step, r.loss, r.parts["grad_norm"]] for r in records]))
