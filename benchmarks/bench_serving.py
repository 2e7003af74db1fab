"""Serving benchmark: batching throughput and loopback overhead, side by side with the reference openpi server.

    python benchmarks/bench_serving.py                 # both parts
    python benchmarks/bench_serving.py --part load     # 8 clients, fixed cost per batch
    python benchmarks/bench_serving.py --part overhead # 1 client, zero-cost policy, three 224x224x3 images

Each server runs in its own process (so client threads never share its GIL) and serves the same `FixedCostPolicy`,
whose cost per call is fixed whatever the batch size (a GPU-like device). Part `load`: 8 concurrent clients; ours
with `max_batch=8` against one-at-a-time serving (ours with `max_batch=1`, and the reference openpi server when the
`openpi-server` package is installed). Part `overhead`: one client, zero-cost policy, DROID-sized requests; the same
openpi-client `WebsocketClientPolicy` drives every server, so the difference is the server. Ours runs as shipped (uvloop
when installed; our `run()` keeps freed heap for reuse, glibc `keep_freed_memory`). Three more servers show where the
difference comes from: ours on asyncio's own loop, the reference given our allocator settings (glibc environment
variables), and the reference given both our allocator settings and uvloop. Prints the ratios.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Self

import numpy as np
from _args import at_least

# This checkout's worldpolicy, in this process and in each server process (`ServerProcess` puts it on PYTHONPATH): an
# installed worldpolicy, for example an editable install of another checkout, would otherwise serve the requests.
SRC = str(Path(__file__).resolve().parents[1] / "src")
sys.path.insert(0, SRC)

CHUNK, DIM = 32, 8


class FixedCostPolicy:
    """`cost_s` per call, whatever the batch size; speaks both our Policy interface and openpi's `infer`."""

    def __init__(self, cost_s: float) -> None:
        from worldpolicy import get_embodiment

        self.embodiment = get_embodiment("droid")
        self.cost_s = cost_s

    def _chunk(self, obs) -> np.ndarray:
        joints = np.asarray(obs["observation/joint_position"], np.float64).reshape(7)
        return np.concatenate([np.tile(joints, (CHUNK, 1)), np.zeros((CHUNK, 1))], axis=1)

    def _prediction(self, obs):
        from worldpolicy import Prediction

        e, actions = self.embodiment, self._chunk(obs)
        return Prediction("policy", e.key, list(e.columns), list(e.units), actions, actions, e.fps)

    def _pay(self) -> None:
        if self.cost_s:
            time.sleep(self.cost_s)

    def act(self, observation, prompt, **options):
        self._pay()
        return self._prediction(observation)

    def act_batch(self, requests):
        self._pay()
        return [self._prediction(r.observation) for r in requests]

    def infer(self, obs: dict) -> dict:  # openpi BasePolicy
        self._pay()
        return {"actions": self._chunk(obs)}


def _serve(impl: str, port: int, cost_s: float, max_batch: int, event_loop: str) -> None:
    policy = FixedCostPolicy(cost_s)
    if impl == "openpi":
        from openpi_server import WebsocketPolicyServer

        if event_loop == "uvloop":  # the reference calls asyncio.run, which takes the installed loop policy
            import uvloop

            uvloop.install()
        WebsocketPolicyServer(policy, host="127.0.0.1", port=port).serve_forever()
    else:
        from worldpolicy.serving import PolicyServer, ServerConfig

        config = ServerConfig(
            host="127.0.0.1", port=port, max_batch=max_batch, max_wait_ms=5, max_queue=256, event_loop=event_loop
        )
        PolicyServer(policy, config).run()


MIN_CPU_TICKS = 10  # a server CPU ratio from fewer clock ticks on either side is quantisation, not a figure
# What `PolicyServer.run` sets in-process (`keep_freed_memory`), as glibc environment variables for the reference.
SAME_ALLOCATOR = {"MALLOC_TRIM_THRESHOLD_": str(32 * 2**20), "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20)}


class ServerProcess:
    def __init__(
        self,
        impl: str,
        cost_s: float,
        max_batch: int = 8,
        env: dict[str, str] | None = None,
        event_loop: str = "auto",  # ours: ServerConfig.event_loop; the reference: "uvloop" installs uvloop's policy
    ) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        args = [sys.executable, __file__, "--serve", impl, "--port", str(self.port), "--cost-ms", str(cost_s * 1000)]
        # kept out of the measurement, shown if the server does not start; closed in __exit__
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*args, "--max-batch", str(max_batch), "--event-loop", event_loop],
            stderr=self.stderr,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p),
                 **(env or {})},
        )
        self.name = f"{impl}" + (f" (max_batch={max_batch})" if impl == "ours" else "")
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.proc.terminate()
                    self.proc.wait(30)
                    self.stderr.seek(0)
                    said = self.stderr.read().decode(errors="replace").strip()[-2000:] or "(nothing on stderr)"
                    self.stderr.close()
                    raise RuntimeError(f"{self.name} server did not start: {said}") from None
                time.sleep(0.1)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.stderr.close()


def _request(i: int, side: int) -> dict:
    rng = np.random.default_rng(i)
    cams = ("observation/wrist_image_left", "observation/exterior_image_1_left", "observation/exterior_image_2_left")
    request = {k: rng.integers(0, 255, (side, side, 3), dtype=np.uint8) for k in cams}
    request["observation/joint_position"] = np.full(7, float(i))
    request["observation/gripper_position"] = np.zeros(1)
    request["prompt"] = "put the marker in the cup"
    return request


def _client(port: int, n: int, side: int, offset: int) -> list[float]:
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    client = WebsocketClientPolicy(host="127.0.0.1", port=port)
    requests = [_request(offset + k, side) for k in range(min(n, 8))]
    latencies = []
    for k in range(n):
        request = requests[k % len(requests)]
        t0 = time.perf_counter()
        reply = client.infer(request)
        latencies.append(time.perf_counter() - t0)
        if reply["actions"][0, 0] != request["observation/joint_position"][0]:
            raise AssertionError("a client received another request's answer")
    client._ws.close()
    return latencies


def _run_clients(port: int, clients: int, n: int, side: int) -> tuple[float, np.ndarray]:
    _client(port, 3, side, 10_000)  # warm up the server's code paths
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        parts = list(pool.map(lambda c: _client(port, n, side, c * 1000), range(clients)))
    wall = time.perf_counter() - t0
    return clients * n / wall, np.concatenate(parts) * 1000


def _row(name: str, throughput: float, lat_ms: np.ndarray) -> str:
    p50, p99 = np.percentile(lat_ms, [50, 99])
    return f"  {name:<28} {throughput:9.1f} req/s   p50 {p50:8.2f} ms   p99 {p99:8.2f} ms   (n={lat_ms.size})"


def _have_openpi_server() -> bool:
    try:
        import openpi_server  # noqa: F401
    except ImportError:
        return False
    return True


def part_load(cost_ms: float, clients: int, n: int) -> None:
    print(f"\n== load: {clients} concurrent clients x {n} requests, fixed cost {cost_ms:g} ms per batch, 64x64 images")
    results = {}
    impls = [("ours", 8), ("ours", 1)] + ([("openpi", 1)] if _have_openpi_server() else [])
    for impl, max_batch in impls:
        with ServerProcess(impl, cost_ms / 1000, max_batch) as server:
            throughput, lat = _run_clients(server.port, clients, n, 64)
        results[server.name] = throughput
        print(_row(server.name, throughput, lat))
    batched = results["ours (max_batch=8)"]
    for name, value in results.items():
        if name != "ours (max_batch=8)":
            print(f"  throughput ratio batched / {name}: {batched / value:.2f}x  (target >= 4x)")


def _cpu_s_and_faults(pid: int) -> np.ndarray:
    """User + system CPU seconds and minor page faults of a process (Linux /proc): CPU compares servers independently
    of machine noise; page faults show whether glibc handed a request's buffers back to the kernel."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return np.array([(int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), int(fields[7])])


def part_overhead(n: int, repeats: int) -> None:
    print(f"\n== overhead: 1 client, zero-cost policy, three 224x224x3 uint8 images + state, {repeats} x {n} requests")
    if not _have_openpi_server():
        print("  reference openpi-server not installed (pip install --no-deps openpi-server): skipped")
        return
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    requests = [_request(i, 224) for i in range(8)]
    with (
        ServerProcess("ours", 0.0, 8) as ours,
        ServerProcess("ours", 0.0, 8, event_loop="asyncio") as ours_asyncio,
        ServerProcess("openpi", 0.0, 1) as ref,
        ServerProcess("openpi", 0.0, 1, env=SAME_ALLOCATOR) as ref_alloc,
        ServerProcess("openpi", 0.0, 1, env=SAME_ALLOCATOR, event_loop="uvloop") as ref_alloc_uvloop,
    ):
        servers = {
            "ours": ours,
            "ours, asyncio loop": ours_asyncio,
            "openpi": ref,
            "openpi + our allocator": ref_alloc,
            "openpi + allocator + uvloop": ref_alloc_uvloop,
        }
        names = list(servers)
        clients = {name: WebsocketClientPolicy(host="127.0.0.1", port=s.port) for name, s in servers.items()}
        lat: dict[str, list[float]] = {name: [] for name in servers}
        cpu = {name: np.zeros(2) for name in servers}  # CPU seconds, page faults
        for name in servers:  # warm-up
            for request in requests:
                clients[name].infer(request)
        for r in range(repeats):
            cpu0 = {name: _cpu_s_and_faults(s.proc.pid) for name, s in servers.items()}
            for k in range(n):  # interleaved, rotating who goes first: drift hits all alike
                first = (k + r) % len(names)
                for name in names[first:] + names[:first]:
                    t0 = time.perf_counter()
                    clients[name].infer(requests[k % len(requests)])
                    lat[name].append(time.perf_counter() - t0)
            for name, s in servers.items():
                cpu[name] += _cpu_s_and_faults(s.proc.pid) - cpu0[name]
        for client in clients.values():
            client._ws.close()
    total = repeats * n
    for name in servers:
        ms = np.asarray(lat[name]) * 1000
        cpu_ms, faults = cpu[name][0] / total * 1000, cpu[name][1] / total
        print(_row(name, 1000 / ms.mean(), ms) + f"   server CPU {cpu_ms:.3f} ms, {faults:.0f} page faults per request")
    p50 = {name: float(np.median(v)) for name, v in lat.items()}
    notes = {"openpi": "  (target <= 1.0: the reference as shipped)"}
    for name in names[1:]:
        low, high = _paired_ratio_ci(np.asarray(lat["ours"]), np.asarray(lat[name]))
        note = notes.get(name, "")
        # /proc counts CPU in clock ticks (10 ms): a few requests show none or one each (1 / 1 printed 1.000), so a
        # ratio is printed only where each side counted at least MIN_CPU_TICKS (within ~10 %)
        ticks = round(min(cpu["ours"][0], cpu[name][0]) * os.sysconf("SC_CLK_TCK"))
        cpu_ratio = f"{cpu['ours'][0] / cpu[name][0]:.3f}" if ticks >= MIN_CPU_TICKS else (
            f"n/a (under {MIN_CPU_TICKS} clock ticks of {1000 / os.sysconf('SC_CLK_TCK'):g} ms of CPU: more requests)")
        print(f"  ours / {name}: round-trip p50 {p50['ours'] / p50[name]:.3f} (95 % CI {low:.3f}-{high:.3f}), "
              f"server CPU per request {cpu_ratio}{note}")


def _paired_ratio_ci(ours: np.ndarray, ref: np.ndarray, resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap CI of median(ours) / median(ref), resampling the interleaved rounds so each pair stays together."""
    rng = np.random.default_rng(seed)
    ratios = []
    for _ in range(resamples // 100):
        rounds = rng.integers(0, len(ours), size=(100, len(ours)))
        ratios.append(np.median(ours[rounds], axis=1) / np.median(ref[rounds], axis=1))
    low, high = np.percentile(np.concatenate(ratios), [2.5, 97.5])
    return float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("load", "overhead", "all"), default="all")
    parser.add_argument("--cost-ms", type=at_least(0, float), default=50.0,
                        help="load: policy cost per batch (default 50)")
    parser.add_argument("--clients", type=at_least(1), default=8, help="load: concurrent clients (default 8)")
    parser.add_argument("--requests", type=at_least(1), default=40, help="load: requests per client (default 40)")
    parser.add_argument("--overhead-requests", type=at_least(1), default=500,
                        help="overhead: requests per server in each repeat (default 500)")
    parser.add_argument("--repeats", type=at_least(1), default=3,
                        help="overhead: interleaved repeats, each with its own CPU count (default 3)")
    parser.add_argument("--serve", choices=("ours", "openpi"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--max-batch", type=int, default=8, help=argparse.SUPPRESS)
    parser.add_argument("--event-loop", default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve, args.port, args.cost_ms / 1000, args.max_batch, args.event_loop)
        return
    if args.part in ("load", "all"):
        part_load(args.cost_ms, args.clients, args.requests)
    if args.part in ("overhead", "all"):
        part_overhead(args.overhead_requests, args.repeats)


if __name__ == "__main__":
    main()
