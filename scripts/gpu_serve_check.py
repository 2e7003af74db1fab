"""`worldpolicy serve --device cuda` (or argv[1]) on a tiny checkpoint: 8 concurrent clients x 5 requests (one seed),
then SIGTERM. Prints the batch sizes the server formed, the spread of the chunks (same seed: equal up to batch-shape rounding),
one reply's timings and the exit code. Part of scripts/gpu_check.sh."""

import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from worldpolicy.serving import RemotePolicy
from worldpolicy.testing import make_tiny_checkpoint

PORT = 8765
DEVICE = sys.argv[1] if len(sys.argv) > 1 else "cuda"  # `cpu` tries the script out without a GPU
checkpoint = make_tiny_checkpoint("/tmp/gpu_check_tiny")
proc = subprocess.Popen([sys.executable, "-m", "worldpolicy.cli", "serve", "--checkpoint", str(checkpoint),
                         "--embodiment", "droid", "--variant", "relative_pose", "--device", DEVICE,
                         "--host", "127.0.0.1", "--port", str(PORT)])
deadline = time.monotonic() + 80
while True:
    try:
        if urllib.request.urlopen(f"http://127.0.0.1:{PORT}/readyz", timeout=2).status == 200:
            break
    except OSError:
        pass
    if proc.poll() is not None or time.monotonic() > deadline:
        proc.kill()
        sys.exit(f"server not ready (exit {proc.poll()})")
    time.sleep(0.5)

rng = np.random.default_rng(0)
keys = ("observation/wrist_image_left", "observation/exterior_image_1_left", "observation/exterior_image_2_left")
obs = {k: rng.integers(0, 255, (180, 320, 3), dtype=np.uint8) for k in keys}


def client(_: int) -> list[dict]:
    with RemotePolicy(f"ws://127.0.0.1:{PORT}", read_timeout_s=60) as remote:
        return [remote.infer({**obs, "prompt": "open the drawer", "seed": 3}) for _ in range(5)]


tick = time.perf_counter()
with ThreadPoolExecutor(8) as pool:
    raws = [raw for replies in pool.map(client, range(8)) for raw in replies]
wall = time.perf_counter() - tick
chunks = [np.asarray(raw["actions"]) for raw in raws]
spread = max(float(np.abs(c - chunks[0]).max()) for c in chunks)
batches = sorted({raw["server_timing"]["batch_size"] for raw in raws})
print(f"{len(raws)} replies in {wall:.2f} s, chunk {chunks[0].shape}, batch sizes {batches}, largest difference "
      f"between same-seed chunks {spread:.2e} (scale {float(np.abs(chunks[0]).max()):.3f})")
print("one reply's server_timing:", raws[-1]["server_timing"], "policy_timing:", raws[-1].get("policy_timing"))
proc.send_signal(signal.SIGTERM)
print("server exit code after SIGTERM:", proc.wait(60))
