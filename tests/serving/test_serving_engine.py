"""The real engine behind the server: a tiny random Cosmos3 checkpoint served on the wire, answers == local calls."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from ports import free_port
from serving_standins import http_get, wait_answering

from worldpolicy.serving import PolicyServer, RemotePolicy, ServerConfig, ServerThread


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from worldpolicy.testing import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("serving") / "tiny")


@pytest.fixture(scope="module")
def tiny_policy(tiny_checkpoint):
    import worldpolicy

    return worldpolicy.load_policy(
        tiny_checkpoint, embodiment="droid/relative_pose", device="cpu", chunk_size=8, resolution_tier=256, steps=2
    )


def _cameras(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    keys = ("observation/wrist_image_left", "observation/exterior_image_1_left", "observation/exterior_image_2_left")
    return {k: rng.integers(0, 255, (36, 64, 3), dtype=np.uint8) for k in keys}


def test_real_policy_over_the_wire_matches_local_calls(tiny_policy):
    server = PolicyServer(
        loader=lambda: tiny_policy, config=ServerConfig(host="127.0.0.1", port=0, max_wait_ms=1000), warmup_requests=1
    )
    with ServerThread(server) as t:
        with RemotePolicy(t.url) as remote:
            meta = remote.metadata()
            assert meta["embodiment"] == "droid/relative_pose" and meta["chunk_size"] == 8
            got = remote.act(_cameras(0), "pick up the cup", seed=11)
            # the checkpoint by its name: where the server's disk keeps it is no client's business
            assert meta["model"] == got.settings["checkpoint"] == "tiny"
            with pytest.raises(ValueError, match="prompt is empty"):  # as the local Policy says, before sending
                remote.act(_cameras(0), "")
        want = tiny_policy.act(_cameras(0), "pick up the cup", seed=11)
        assert got.actions.shape == (8, 10) and got.columns == list(want.columns) and got.units == list(want.units)
        np.testing.assert_allclose(got.actions, want.actions, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got.actions_normalized, want.actions_normalized, rtol=1e-5, atol=1e-6)

        # two connections at once are fused into one act_batch; each still gets the answer to its own request
        remotes = [RemotePolicy(t.url) for _ in range(2)]  # both connected before either sends
        with ThreadPoolExecutor(2) as pool:
            batched = list(pool.map(lambda i: remotes[i - 1].act(_cameras(i), f"task {i}", seed=i), (1, 2)))
        for remote in remotes:
            remote.close()
        assert [p.settings["server_batch_size"] for p in batched] == [2, 2]
        for i, pred in zip((1, 2), batched):
            local = tiny_policy.act(_cameras(i), f"task {i}", seed=i)
            np.testing.assert_allclose(pred.actions, local.actions, rtol=1e-4, atol=1e-5)


def test_which_inverse_dynamics_rows_real_frames_explain_survives_the_wire(tiny_policy, tmp_path):
    """A clip shorter than chunk_size+1 frames has its last frame repeated; `settings["real_rows"]` (the lead rows its
    own frames explain) reaches a RemotePolicy's result and the actions file, as the local result has it."""
    from worldpolicy.fileio import read_json
    from worldpolicy.viz.run import write_run

    clip = np.random.default_rng(6).integers(0, 255, (5, 48, 64, 3), dtype=np.uint8)  # chunk_size 8: 9 used
    server = PolicyServer(loader=lambda: tiny_policy, config=ServerConfig(host="127.0.0.1", port=0))
    with ServerThread(server) as t, RemotePolicy(t.url) as remote:
        got = remote.infer_actions(clip, "open the drawer", seed=2)
    assert got.settings["real_rows"] == tiny_policy.infer_actions(clip, "open the drawer", seed=2).settings[
        "real_rows"] == 4
    write_run(got, tmp_path / "run", plots=False)
    assert read_json(tmp_path / "run" / "actions.json", "actions.json")["settings"]["real_rows"] == 4


def test_a_whole_clip_labelled_over_the_wire_is_the_local_policys_labelling(tiny_policy):
    """A robot lab labels videos against a GPU server: `infer_actions(whole_clip=True, start_frame=...)` over the wire
    gives the local call's result, its windows sent `batch_size` at a time (the server fuses what arrives together,
    as the local call runs them in one batched forward): the same actions to the serving parity tolerance (that of
    fused requests), and the same `settings["clip"]`."""
    clip = np.random.default_rng(8).integers(0, 255, (12, 48, 64, 3), dtype=np.uint8)  # from frame 1: 8 + 2 rows
    options = {"start_frame": 1, "whole_clip": True, "batch_size": 2, "seed": 4, "steps": 1}
    server = PolicyServer(loader=lambda: tiny_policy, config=ServerConfig(host="127.0.0.1", port=0, max_wait_ms=500))
    with ServerThread(server) as t, RemotePolicy(t.url) as remote:
        got = remote.infer_actions(clip, "open the drawer", **options)
        first = remote.infer_actions(clip, "open the drawer", seed=4, steps=1)
    want = tiny_policy.infer_actions(clip, "open the drawer", **options)
    assert got.actions.shape == want.actions.shape == (10, 10)
    np.testing.assert_allclose(got.actions, want.actions, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got.actions_normalized, want.actions_normalized, rtol=1e-4, atol=1e-5)
    assert got.settings["clip"] == want.settings["clip"] == {
        "start_frame": 1, "frames_used": list(range(1, 12)), "clip_fps": None, "resampled": False,
        "window_rows": [8, 2]}
    assert got.settings["real_rows"] == want.settings["real_rows"] == 10 and got.settings["seed"] == 4
    local_first = tiny_policy.infer_actions(clip, "open the drawer", seed=4, steps=1)
    np.testing.assert_allclose(first.actions, local_first.actions, rtol=1e-4, atol=1e-5)
    assert first.settings["clip"] == local_first.settings["clip"] and first.settings["clip"]["frames_used"] == list(
        range(9))


def test_a_state_conditioned_model_gets_the_state_a_dict_clip_carries_over_the_wire(tiny_checkpoint):
    """DROID's released variant (droid/joint_pos) conditions on the state. A dict of camera clips carrying its state
    keys was labelled locally from them, but refused by the server, which received the frames alone; now remote ==
    local, for the first window, a whole clip (each window from its first frame's state) and a forward-dynamics
    observation whose keys hold a history (its last row). Another state gives other actions, so the match is the
    state's, not an ignored one's."""
    import worldpolicy

    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid", device="cpu", chunk_size=8,
                                     resolution_tier=256, steps=1)
    rng = np.random.default_rng(9)
    clips = {k: np.stack([_cameras(i)[k] for i in range(12)]) for k in _cameras(0)}
    video = {**clips, "observation/joint_position": rng.normal(size=(12, 7)),
             "observation/gripper_position": rng.uniform(size=(12, 1))}
    observation = {**_cameras(3), "observation/joint_position": video["observation/joint_position"][:3],
                   "observation/gripper_position": video["observation/gripper_position"][:3, 0]}
    moved = {**video, "observation/joint_position": video["observation/joint_position"] + 0.5}
    options = {"start_frame": 1, "whole_clip": True, "batch_size": 2, "seed": 4}
    server = PolicyServer(loader=lambda: policy, config=ServerConfig(host="127.0.0.1", port=0, max_wait_ms=200))
    with ServerThread(server) as t, RemotePolicy(t.url) as remote:
        got = [remote.infer_actions(video, "open the drawer", seed=4), remote.infer_actions(moved, "open the drawer",
               seed=4), remote.infer_actions(video, "open the drawer", **options),
               remote.imagine(observation, np.zeros((8, 8)), "push", seed=2, decode_video=False)]
    want = [policy.infer_actions(video, "open the drawer", seed=4), policy.infer_actions(moved, "open the drawer",
            seed=4), policy.infer_actions(video, "open the drawer", **options),
            policy.imagine(observation, np.zeros((8, 8)), "push", seed=2, decode_video=False)]
    assert got[2].settings["clip"]["window_rows"] == [8, 2]
    for remote_result, local_result in zip(got, want):
        np.testing.assert_allclose(remote_result.actions, local_result.actions, rtol=1e-4, atol=1e-5)
    assert not np.allclose(want[0].actions, want[1].actions, rtol=1e-4, atol=1e-5)  # the state steers the actions


def test_forward_dynamics_requests_fused_on_the_server_return_their_rollout_and_schedule(tiny_policy):
    """`act_batch([PolicyRequest(mode="forward_dynamics")])` computed the rollout and returned no video: the client
    sent decode_video=False (the dataclass default) and only the server's own default decoded it. Two such requests,
    fused into one `act_batch` on the server, each come back with video and with the schedule that ran, as locally."""
    from worldpolicy.policy import PolicyRequest

    chunk = np.zeros((8, 10))
    server = PolicyServer(loader=lambda: tiny_policy, config=ServerConfig(host="127.0.0.1", port=0, max_wait_ms=1000))
    with ServerThread(server) as t:
        remotes = [RemotePolicy(t.url) for _ in range(2)]  # both connected before either sends
        request = [PolicyRequest(_cameras(i), "push", mode="forward_dynamics", actions=chunk,
                                 actions_space="normalized", seed=i) for i in range(2)]
        with ThreadPoolExecutor(2) as pool:
            fused = list(pool.map(lambda i: remotes[i].act_batch([request[i]])[0], range(2)))
        for remote in remotes:
            remote.close()
    assert [p.settings["server_batch_size"] for p in fused] == [2, 2]
    local = tiny_policy.act_batch(request[:1])[0]
    assert local.video is not None and all(p.video is not None and p.video.shape == local.video.shape for p in fused)
    ran = ("schedule_used", "shift_used", "native_grid_used", "sigmas")
    assert {k: fused[0].settings[k] for k in ran} == {k: local.settings[k] for k in ran}
    assert fused[0].settings["sigmas"] == [1.0, 0.8336, 0.0]  # the tiny checkpoint's linear flow, shift 5, 2 steps


def test_each_client_hears_the_warnings_about_its_own_request_once(tiny_policy, caplog):
    """Two requests fused into one `act_batch`: the one whose state the embodiment ignores gets that warning, its
    neighbour nothing, and a later client sending a state hears it once too, though the policy says it once; actions
    far outside the training range, which the client reads (and warns about) before sending, are not said a second
    time when the server says the same."""
    import logging
    import threading

    from worldpolicy import Prediction
    from worldpolicy.policy import PolicyRequest, ignored_state_warning

    server = PolicyServer(loader=lambda: tiny_policy, config=ServerConfig(host="127.0.0.1", port=0, max_wait_ms=1000))
    requests = [PolicyRequest(_cameras(0), "push", state=np.zeros(10), seed=0), PolicyRequest(_cameras(1), "push")]
    threads = {}

    def send(i: int) -> Prediction:
        threads[i] = threading.get_ident()
        return remotes[i].act_batch([requests[i]])[0]

    def said_in(thread: int) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.thread == thread and r.levelno == logging.WARNING]

    with ServerThread(server) as t, caplog.at_level(logging.WARNING, logger="worldpolicy"):
        remotes = [RemotePolicy(t.url) for _ in range(2)]  # both connected before either sends
        with ThreadPoolExecutor(2) as pool:
            fused = list(pool.map(send, range(2)))
        assert [p.settings["server_batch_size"] for p in fused] == [2, 2]
        ignored = ignored_state_warning(tiny_policy.embodiment, np.zeros(10))
        assert said_in(threads[0]) == [ignored]  # the client's own line; the server's copy is not said again
        assert said_in(threads[1]) == []
        caplog.clear()
        # a second robot that sends its state hears it too, though the policy said it once already (to the first)
        with RemotePolicy(t.url) as second:
            second.act(_cameras(1), "push", state=np.zeros(10), seed=0)
            second.act(_cameras(1), "push", state=np.zeros(10), seed=0)
        assert said_in(threading.get_ident()) == [ignored]  # once per client
        caplog.clear()
        far = np.full((8, 10), 50.0)  # metres and radians no arm reaches: wrong units
        remotes[0].imagine(_cameras(0), far, "push", decode_video=False)
        for remote in remotes:
            remote.close()
    said = said_in(threading.get_ident())
    assert len(said) == 1 and said[0].startswith("actions: tx (|x| up to")  # the client's own line only
    assert [r.getMessage() for r in caplog.records if r.threadName == "worldpolicy-infer"] == said  # the server's


def _serve_on_cpu(checkpoint, steps: int, *flags: str) -> tuple[int, list[str]]:
    """A free loopback port, and the `worldpolicy serve` command line of the tiny checkpoint on CPU there."""
    port = free_port()
    return port, [
        sys.executable, "-m", "worldpolicy.cli", "serve", "--checkpoint", str(checkpoint), "--embodiment",
        "droid/relative_pose", "--chunk-size", "8", "--resolution-tier", "256", "--steps", str(steps), "--device",
        "cpu", "--host", "127.0.0.1", "--port", str(port), *flags,
    ]


def test_serve_command_end_to_end(tiny_checkpoint, tiny_policy):
    port = free_port()
    command = [
        sys.executable, "-m", "worldpolicy.cli", "serve", "--checkpoint", str(tiny_checkpoint),
        "--embodiment", "droid", "--variant", "relative_pose", "--chunk-size", "8", "--resolution-tier", "256",
        "--steps", "2", "--host", "127.0.0.1", "--port", str(port), "--api-key-env", "WP_TEST_KEY", "--warmup", "1",
    ]
    env = {**os.environ, "WP_TEST_KEY": "cli-key-0001"}
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_answering(proc, port, timeout_s=120)  # it loads and warms up first
        with RemotePolicy(f"ws://127.0.0.1:{port}", api_key="cli-key-0001") as remote:
            got = remote.act(_cameras(5), "open the drawer", seed=3)
        want = tiny_policy.act(_cameras(5), "open the drawer", seed=3)
        np.testing.assert_allclose(got.actions, want.actions, rtol=1e-5, atol=1e-6)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    log = proc.stderr.read()
    assert '"event": "ready"' in log
    assert log.index('"event": "policy_closed"') < log.index('"event": "stopped"')  # the model released in the drain


def test_serve_command_json_log_is_one_object_per_line_and_a_refusal_flood_is_summed_up(tiny_checkpoint):
    """`--log-format json`: every stderr line of a served session parses as a JSON object, the event's fields its own
    keys (not a JSON string inside `message`); refused handshakes are one full line, then one summary with the count
    (said at the drain here), while /metrics counts each of them."""
    import json

    from worldpolicy.serving.client import AuthenticationError

    port, command = _serve_on_cpu(tiny_checkpoint, 2, "--api-key-env", "WP_TEST_KEY", "--log-format", "json")
    proc = subprocess.Popen(command, env={**os.environ, "WP_TEST_KEY": "cli-key-0001"}, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_answering(proc, port, timeout_s=120)  # it loads and warms up first
        with RemotePolicy(f"ws://127.0.0.1:{port}", api_key="cli-key-0001") as remote:
            remote.act(_cameras(5), "open the drawer", seed=3)
        for _ in range(5):
            with pytest.raises(AuthenticationError):
                RemotePolicy(f"ws://127.0.0.1:{port}", api_key="wrong-key-0001").metadata()
        status, text = http_get(f"ws://127.0.0.1:{port}", "/metrics", {"Authorization": "Api-Key cli-key-0001"})
        assert status == 200, text
        assert 'worldpolicy_requests_total{status="unauthorized"} 5.0' in text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [json.loads(line) for line in proc.stderr.read().splitlines()]  # each line an object, or this fails
    assert lines and all(isinstance(line, dict) and {"time", "level", "logger"} <= line.keys() for line in lines)
    events = [line for line in lines if line["logger"] == "worldpolicy.serving"]
    start = ["starting", "listening", "loading", "warming_up", "ready"]  # each stage of a start said as it begins
    assert [e.get("event") for e in events][:len(start)] == start, events[:len(start)]
    ready = next(e for e in events if e.get("event") == "ready")
    assert ready["level"] == "INFO" and ready["embodiment"] == "droid/relative_pose" and "message" not in ready
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ready["time"])
    refused = [e for e in events if e.get("event") == "auth_refused"]
    summary = [e for e in events if e.get("event") == "refused_summary"]
    assert len(refused) == 1 and refused[0]["level"] == "WARNING" and refused[0]["status"] == "unauthorized"
    assert [(s["of"], s["status"], s["count"]) for s in summary] == [("auth_refused", "unauthorized", 4)]
    assert [e.get("event") for e in events][-1] == "stopped"


def test_serve_command_stopped_during_warmup_exits_0_without_aborting(tiny_checkpoint):
    """SIGTERM while the worker is inside torch: interpreter shutdown used to abort the process (exit -6)."""
    port, command = _serve_on_cpu(tiny_checkpoint, 200, "--warmup", "100")  # a warm-up of a minute or more
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2)
                pytest.fail("the warm-up finished before the signal")
            except urllib.error.HTTPError as exc:  # 503 loading: listening, loading or warming up
                assert exc.code == 503
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):  # a loaded 2-core machine: ask again
                assert proc.poll() is None and time.monotonic() < deadline, "server never listened"
                time.sleep(0.1)
        time.sleep(1.0)  # into the load / warm-up
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    log = proc.stderr.read()
    assert '"worker": "loading"' in log and "terminate called" not in log


def test_serve_command_refuses_bad_settings_before_loading(tmp_path):
    serve = [sys.executable, "-m", "worldpolicy.cli", "serve"]
    # the other settings are checked with a checkpoint that exists (the shipped one): where it is is checked first
    shipped = ["--checkpoint", "shipped"]
    env = {**{k: v for k, v in os.environ.items() if k != "WP_UNSET_KEY"}, "WP_SHORT_KEY": "abc"}
    for extra, message in [
        (["--api-key-env", "WP_UNSET_KEY"], "WP_UNSET_KEY: that environment variable is unset or empty"),
        (["--api-key-env", "WP_SHORT_KEY"], "WP_SHORT_KEY: the key has 3 characters; use at least 8"),
        (["--embodiment", "hexapod"], "embodiment='hexapod' is not registered"),
        (["--key-map", "nonsense"], "--key-map 'nonsense' must look like CANONICAL=CLIENT_KEY"),
        (["--max-batch", "0"], "serve: error: --max-batch=0 is invalid; accepted: an int >= 1"),
        (["--event-loop", "tokio"], "--event-loop='tokio' is invalid; accepted: auto, asyncio, uvloop"),
        (["--steps", "0"], "steps=0 must be an integer in [1, 1000]"),  # checked before the port opens, as are
        (["--device", "abacus"], "device='abacus' is not a torch device"),  # these and the checkpoint's files
    ]:
        done = subprocess.run(serve + shipped + extra, env=env, capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 2 and message in done.stderr, (extra, done.stderr)
    done = subprocess.run(serve + ["--checkpoint", str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2 and "is a path but has no model_index.json" in done.stderr, done.stderr


def test_serve_command_port_in_use_is_a_one_line_error(tiny_checkpoint):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = [sys.executable, "-m", "worldpolicy.cli", "serve", "--checkpoint", str(tiny_checkpoint), "--device",
                "cpu", "--host", "127.0.0.1", "--port", str(port), "--embodiment", "droid/relative_pose"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert f"serve: error: --host 127.0.0.1 --port {port}: cannot listen there" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_mistake_warned_about_on_one_connection_is_told_to_the_next_client_making_it(tiny_policy, caplog):
    """The policy a server holds is every connection's: it said each warning once per policy, so robot B sending
    one camera's image for the composite after robot A did never heard it. Each client is told once of each of its
    own mistakes, and the server's log says it once per connection that made it."""
    import logging
    import threading

    image = np.zeros((40, 72, 3), dtype=np.uint8)  # one camera's view, of a shape no other test sends
    server = PolicyServer(loader=lambda: tiny_policy, config=ServerConfig(host="127.0.0.1", port=0, max_wait_ms=1000))

    def told(url: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.thread == threading.get_ident()
                and r.getMessage().startswith(f"server {url}: ")]

    with ServerThread(server) as t, caplog.at_level(logging.WARNING, logger="worldpolicy"):
        with RemotePolicy(t.url) as first:
            first.act(image, "push", seed=0)
            said = told(t.url)
            assert len(said) == 1 and "looks like one camera's view" in said[0], said
            caplog.clear()
            first.act(image, "push", seed=0)  # a control loop's next tick: not said again
            assert told(t.url) == []
        with RemotePolicy(t.url) as second:
            second.act(image, "push", seed=0)
            assert told(t.url) == said  # robot B's own mistake: it is told too
            second.act(image, "push", seed=0)
            assert told(t.url) == said
        logged = [r.getMessage() for r in caplog.records if r.threadName == "worldpolicy-infer"]
        assert logged == [line.removeprefix(f"server {t.url}: ") for line in said]  # the log: once per connection
        # two clients making the same mistake in one fused batch: each request judged against its own client's record
        wide = np.zeros((44, 80, 3), dtype=np.uint8)
        remotes = [RemotePolicy(t.url) for _ in range(2)]  # both connected before either sends
        caplog.clear()

        def send(i: int) -> tuple[int, list[str]]:
            size = remotes[i].act(wide, "push", seed=i).settings["server_batch_size"]
            return size, told(t.url)

        with ThreadPoolExecutor(2) as pool:
            fused = list(pool.map(send, range(2)))
        for remote in remotes:
            remote.close()
    assert [size for size, _ in fused] == [2, 2]
    assert [len(lines) for _, lines in fused] == [1, 1] and "44x80 pixels" in fused[0][1][0]


def test_a_client_that_reconnects_hears_the_servers_ignored_state_line_again(tiny_policy, caplog):
    """Warnings are told once per connection (`logcapture.told_once`): `RemotePolicy` says an ignored state itself
    once, and after it reconnects the new connection's server relays its own copy, as it does any warning."""
    import logging
    import threading

    from worldpolicy.policy import ignored_state_warning

    server = PolicyServer(loader=lambda: tiny_policy, config=ServerConfig(host="127.0.0.1", port=0, max_wait_ms=1000))
    ignored = ignored_state_warning(tiny_policy.embodiment, np.zeros(10))

    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.thread == threading.get_ident()]

    with ServerThread(server) as t, caplog.at_level(logging.WARNING, logger="worldpolicy"):
        remote = RemotePolicy(t.url)
        remote.act(_cameras(0), "push", state=np.zeros(10), seed=0)
        assert said() == [ignored]  # the client's own line; the server's copy in that reply is not said again
        caplog.clear()
        remote.close()  # its next call reconnects: a new connection, told again by the server
        remote.act(_cameras(0), "push", state=np.zeros(10), seed=0)
        remote.act(_cameras(0), "push", state=np.zeros(10), seed=0)
        remote.close()
    assert said() == [f"server {t.url}: {ignored}"]
