"""A fast stand-in with the Policy interface, for transport tests (the real engine is exercised in test_serving_engine).

Its actions are a deterministic function of the request (joint state, prompt, seed), so a test can check that every
client received the answer to its own request and not a neighbour's. The prompts "raise", "nan" and "narrow" make it
fail, return NaN actions, or return 3 columns where the embodiment has 8; "warn" makes it log a warning, as the
local Policy logs one about its inputs.
"""

from __future__ import annotations

import logging
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from websockets.sync.client import connect

from worldpolicy import Prediction, get_embodiment
from worldpolicy.embodiments import Embodiment
from worldpolicy.serving import packb, unpackb


def expected_actions(joints: np.ndarray, prompt: str, seed: int = 0, chunk: int = 32) -> np.ndarray:
    """What the stand-in answers for a DROID request: the joints ramped over the chunk, gripper = f(prompt, seed)."""
    ramp = np.arange(chunk)[:, None] * 0.001
    grip = np.full((chunk, 1), (sum(prompt.encode()) % 97) / 97 + seed * 1e-3)
    return np.concatenate([np.asarray(joints, np.float64).reshape(1, 7) + ramp, grip], axis=1)


class StandInPolicy:
    """`batch_cost_s` is paid once per call (act or act_batch): a fixed-cost-per-batch device, like a GPU. Another
    embodiment than DROID's (a registered name, or an `Embodiment`: a shipped model's) gets the same actions,
    zero-padded or cut to its columns."""

    def __init__(self, embodiment: str | Embodiment = "droid", batch_cost_s: float = 0.0,
                 batching: bool = True, gate: threading.Event | None = None) -> None:
        self.embodiment = embodiment if isinstance(embodiment, Embodiment) else get_embodiment(embodiment)
        self.batch_cost_s = batch_cost_s
        # a call waits inside the policy until the test sets it (at most 30 s): what the server does meanwhile is
        # then asserted without a clock
        self.gate = gate
        self.batch_sizes: list[int] = []
        self.running = threading.Event()  # set while a call is in progress (to kill clients mid-inference)
        self.calls = 0
        self.source = ""  # where its checkpoint lies, as a loaded Policy says it
        self.options: list[dict[str, Any]] = []  # per request: the local-Policy options that reached it
        self.closed = 0  # close() calls; a closed stand-in refuses calls, as a closed Policy does
        if not batching:
            self.act_batch = None  # type: ignore[assignment]  # what the server sees on a policy without it

    def metadata(self) -> dict[str, Any]:
        return {"model": "stand-in", "checkpoint": None}

    def _predict(self, observation: Any, prompt: str, seed: int | None, decode_video: bool, mode: str) -> Prediction:
        e = self.embodiment
        if isinstance(observation, dict) and "observation/joint_position" in observation:
            joints = np.asarray(observation["observation/joint_position"], np.float64).reshape(-1, 7)[-1]
        else:
            joints = np.zeros(7)
        if prompt == "raise":
            raise RuntimeError("stand-in failure requested by the prompt")
        if prompt == "warn":
            logging.getLogger("worldpolicy.policy").warning(
                "stand-in: this request asked for a warning" + (f" (checkpoint {self.source})" if self.source else ""))
        actions = expected_actions(joints, prompt, seed or 0, e.chunk_size)
        actions = np.pad(actions, ((0, 0), (0, max(e.action_dim - 8, 0))))[:, :e.action_dim]
        if prompt == "nan":  # actions no robot should run: the server must refuse to send them
            actions[3, 2] = np.nan
        elif prompt == "narrow":
            actions = actions[:, :3]
        video = np.zeros((5, 8, 8, 3), np.uint8) if decode_video else None
        return Prediction(
            mode=mode, embodiment=e.key, columns=list(e.columns), units=list(e.units), actions=actions,
            actions_normalized=actions.astype(np.float32).astype(np.float64), fps=e.fps, video=video,
            timings={"total": self.batch_cost_s}, settings={"seed": seed},
        )

    def close(self) -> None:
        self.closed += 1

    def _pay(self, n: int) -> None:
        if self.closed:
            raise RuntimeError("this stand-in is closed")
        self.running.set()
        self.calls += 1
        self.batch_sizes.append(n)
        if self.batch_cost_s:
            time.sleep(self.batch_cost_s)
        if self.gate is not None:
            self.gate.wait(30)
        self.running.clear()

    def act(self, observation, prompt, *, seed=None, steps=None, guidance=None, decode_video=False, **extra):
        self.options.append(extra)
        self._pay(1)
        return self._predict(observation, prompt, seed, decode_video, "policy")

    def act_batch(self, requests: list[Any]) -> list[Prediction]:
        """Takes `worldpolicy.policy.PolicyRequest`s, like the real Policy."""
        self._pay(len(requests))
        out = []
        for r in requests:
            extra = {"negative_prompt": r.negative_prompt, "state": r.state,
                     "actions_space": None if r.actions_space == "physical" else r.actions_space}  # the default
            self.options.append({k: v for k, v in extra.items() if v is not None})  # (a state array: no `!=`)
            if r.mode == "policy":
                out.append(self._predict(r.observation, r.prompt, r.seed, r.decodes_video, "policy"))
            elif r.mode == "forward_dynamics":
                out.append(self._imagined(r.observation, r.actions, r.prompt, r.seed, r.decodes_video))
            else:
                out.append(self._inverse(r.observation, r.prompt, r.seed))
        return out

    def imagine(self, observation, actions, prompt, *, seed=None, steps=None, guidance=None, decode_video=True,
                **extra):
        self.options.append(extra)
        self._pay(1)
        return self._imagined(observation, actions, prompt, seed, decode_video)

    def infer_actions(self, video, prompt, *, seed=None, steps=None, guidance=None, **extra):
        self.options.append(extra)
        self._pay(1)
        return self._inverse(video, prompt, seed)

    def _imagined(self, observation, actions, prompt, seed, decode_video) -> Prediction:
        p = self._predict(observation, prompt, seed, decode_video, "forward_dynamics")
        p.actions = np.asarray(actions, np.float64)
        p.actions_normalized = p.actions.copy()
        return p

    def _inverse(self, video, prompt, seed) -> Prediction:
        p = self._predict(None, prompt, seed, False, "inverse_dynamics")
        p.actions[:, 0] = float(video.shape[0])  # proves the video reached the policy
        return p


def droid_request(joints: np.ndarray, prompt: str = "pick up the cup", size: int = 32) -> dict[str, Any]:
    rng = np.random.default_rng(int(abs(joints[0]) * 1e6) % 2**32)
    images = rng.integers(0, 255, (3, size, size, 3), dtype=np.uint8)
    return {
        "observation/wrist_image_left": images[0],
        "observation/exterior_image_1_left": images[1],
        "observation/exterior_image_2_left": images[2],
        "observation/joint_position": np.asarray(joints, np.float32),
        "observation/gripper_position": np.array([0.25], np.float32),
        "prompt": prompt,
    }


def raw_send(url: str, message: dict, timeout: float = 30) -> dict | str:
    """One request from a client that checks nothing (no RemotePolicy): the decoded reply, or the server's text
    frame."""
    with connect(url, compression=None, max_size=None) as ws:
        unpackb(ws.recv())  # the server's metadata
        ws.send(packb(message))
        reply = ws.recv(timeout=timeout)
        return reply if isinstance(reply, str) else unpackb(reply)


def http_get(url: str, path: str, headers: dict | None = None, tls: ssl.SSLContext | None = None) -> tuple[int, str]:
    """GET `path` on the server at `url` (its ws:// or wss:// URL; https:// trusting `tls` where given): the status and
    body, an error status's too."""
    http = "http" + url.removeprefix("ws")  # ws:// -> http://, wss:// -> https://
    request = urllib.request.Request(http + path, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10, context=tls) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(thread: Any, name: str, tls: ssl.SSLContext | None = None) -> float:
    """The value of metric `name` (no labels) on a `ServerThread`'s GET /metrics (https:// trusting `tls` where given);
    0.0 when it is not there yet."""
    status, text = http_get(thread.url, "/metrics", tls=tls)
    assert status == 200, f"GET /metrics answered {status}: {text}"
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    return values[0] if values else 0.0


def wait_answering(proc: subprocess.Popen, port: int, probe: str = "readyz", tls: ssl.SSLContext | None = None,
                   timeout_s: float = 120.0) -> None:
    """Until the server `proc` runs on `port` answers GET /`probe` with 200 (over https:// trusting `tls` where given);
    the last error once `proc` exits or `timeout_s` passes (generous: a loaded 2-core CI machine took over 30 s to
    start one that imports torch)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(f"{'https' if tls else 'http'}://127.0.0.1:{port}/{probe}", timeout=2, context=tls)
            return
        except OSError:  # not listening yet, or 503 loading
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
            time.sleep(0.1)


def start_server_script(script: Path, port: int, probe: str = "readyz",
                        tls: ssl.SSLContext | None = None) -> subprocess.Popen:
    """Run `script` (a `PolicyServer.run()` on `port`) in a process of its own, once GET /`probe` answers (over
    https:// trusting `tls` where given)."""
    proc = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True)
    try:
        wait_answering(proc, port, probe, tls)
    except OSError:
        proc.kill()
        raise
    return proc
