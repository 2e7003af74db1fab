"""One torchrun process of the FSDP tests: `fsdp_run.py CONFIG.json [STOP_AFTER]` trains (stopping after STOP_AFTER
steps, as a kill would) and rank 0 prints the steps' losses and gradient norms as one JSON line."""

from __future__ import annotations

import json
import sys

from worldpolicy.train.config import load_config
from worldpolicy.train.trainer import Trainer

if __name__ == "__main__":
    stop_after = int(sys.argv[2]) if len(sys.argv) > 2 else None
    trainer = Trainer(load_config(sys.argv[1]), progress=False)
    records = trainer.run(stop_after=stop_after)
    if trainer.rank == 0:
        print("RECORDS " + json.dumps([[r.step, r.loss, r.parts["grad_norm"]] for r in records]))
