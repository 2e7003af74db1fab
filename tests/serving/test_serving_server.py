"""Server + RemotePolicy against a fast stand-in policy: wire, modes, health/ready/metrics, batching, auth, shutdown."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import websockets
from ports import open_connections
from serving_standins import StandInPolicy, droid_request, expected_actions, http_get, metric, raw_send
from websockets.sync.client import connect

from worldpolicy.embodiments import get_embodiment
from worldpolicy.processing.actions import to_model
from worldpolicy.serving import (
    AuthenticationError,
    Limits,
    PolicyServer,
    RemotePolicy,
    ServerBusyError,
    ServerClosedError,
    ServerConfig,
    ServerError,
    ServerRefusedError,
    ServerThread,
    ServerTimeoutError,
    packb,
    unpackb,
)
from worldpolicy.serving import server as serving_server


def _one_connections_replies(url: str, message: dict, requests: int) -> list[dict]:
    """The replies one new connection gets to `message` sent `requests` times (what a client told once per connection
    is told: the tests connect again to see it told again)."""
    with connect(url, compression=None, max_size=None) as ws:
        ws.recv()  # metadata
        replies = []
        for _ in range(requests):
            ws.send(packb(message))
            replies.append(unpackb(ws.recv()))
    return replies


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_roundtrip_metadata_and_reply_keys(serve, event_loop):
    if event_loop == "uvloop":
        pytest.importorskip("uvloop")
    t = serve(event_loop=event_loop)
    assert type(t._loop).__module__.split(".")[0] == event_loop  # the loop the config asked for
    with RemotePolicy(t.url) as policy:
        meta = policy.metadata()
        assert meta["embodiment"] == "droid/joint_pos" and meta["chunk_size"] == 32 and meta["model"] == "stand-in"
        assert meta["server"] == "worldpolicy" and len(meta["columns"]) == 8
        joints = np.linspace(-1, 1, 7)
        pred = policy.act(droid_request(joints), "pick up the cup", seed=5)
        np.testing.assert_allclose(pred.actions, expected_actions(joints, "pick up the cup", seed=5), rtol=1e-6)
        assert pred.actions.dtype == np.float64 and pred.actions.flags.writeable
        assert pred.mode == "policy" and pred.embodiment == "droid/joint_pos" and pred.columns[-1] == "gripper"
        assert pred.fps == 15.0 and pred.settings["seed"] == 5 and pred.video is None
        assert {"roundtrip", "server_queue", "server_infer", "server_total", "total"} <= set(pred.timings)
        raw = policy.infer({**droid_request(joints), "prompt": "pick up the cup"})
    np.testing.assert_array_equal(raw["action"], raw["actions"])  # RoboLab's key and openpi's alias
    assert raw["server_timing"]["batch_size"] == 1 and "prev_total_ms" in raw["server_timing"]


def test_forward_and_inverse_dynamics_over_the_wire(serve):
    t = serve()
    with RemotePolicy(t.url) as policy:
        chunk = np.random.default_rng(0).normal(size=(32, 8))
        fd = policy.imagine(droid_request(np.zeros(7)), chunk, "push")
        assert fd.mode == "forward_dynamics" and fd.video.shape == (5, 8, 8, 3)
        # sent as the local Policy reads it: model space (the stand-in echoes what it received)
        np.testing.assert_allclose(fd.actions, to_model(policy.embodiment, chunk))
        inv = policy.infer_actions(np.zeros((9, 16, 16, 3), np.uint8), "push")
        assert inv.mode == "inverse_dynamics" and (inv.actions[:, 0] == 9).all()


def test_image_observation_and_key_map(serve):
    """Under a key map the metadata named the client's keys in `observation_keys` but the canonical ones in
    `camera_keys`, `state_keys` and `trained_frames`, and nothing said which is which: it announces the map itself."""
    key_map = {"observation/joint_position": "q", "observation/gripper_position": "g"}
    t = serve(key_map=key_map)
    with RemotePolicy(t.url) as policy:
        image = np.zeros((64, 96, 3), np.uint8)
        pred = policy.act({"observation/image": image, "q": np.ones(7), "g": 0.5}, "wave")
        meta = policy.metadata()
    np.testing.assert_allclose(pred.actions, expected_actions(np.ones(7), "wave"))
    assert meta["key_map"] == key_map and {"q", "g"} <= set(meta["observation_keys"])
    assert [key_map.get(k, k) for k in meta["state_keys"].values()] == ["q", "g"]  # translated by the client
    with RemotePolicy(serve().url) as plain:
        assert plain.metadata()["key_map"] == {}  # none: every key as announced


def test_a_key_map_reading_two_cameras_from_one_key_is_said_once_per_connection(serve, caplog):
    """openpi's two-camera DROID request, served with the documented key map, showed the model one exterior view in
    both exterior places, an input it was never trained on, and nothing said so: each connection's first reply names
    both slots and the key, as the log does."""
    shared = "observation/exterior_image_1_left"
    t = serve(key_map={"observation/exterior_image_2_left": shared})
    caplog.set_level(logging.WARNING, logger="worldpolicy")
    message = {k: v for k, v in droid_request(np.zeros(7)).items() if k != "observation/exterior_image_2_left"}
    for _ in range(2):  # a client that reconnects is told again
        replies = _one_connections_replies(t.url, message, 2)
        said = ("camera slots of embodiment 'droid/joint_pos' read the same image (observation/exterior_image_1_left "
                f"and observation/exterior_image_2_left are read from the client's key {shared!r}, by the server's "
                "--key-map), so the model sees one view twice where it was trained on different cameras: its actions "
                "may be worse than with each camera sent (docs/serving.md, 'Request keys')")
        assert replies[0]["warnings"] == [said]
        assert "warnings" not in replies[1]
    logged = [json.loads(r.getMessage()) for r in caplog.records if '"shared_cameras"' in r.getMessage()]
    assert [line["conn"] for line in logged] == [1, 2] and logged[0]["detail"] == replies[0]["warnings"][0]
    assert "warnings" not in raw_send(serve().url, droid_request(np.zeros(7)))  # each camera its own key: nothing


def test_health_ready_and_metrics(serve):
    t = serve()
    assert http_get(t.url, "/healthz") == (200, "OK\n")
    assert http_get(t.url, "/readyz") == (200, "ready\n")
    with RemotePolicy(t.url) as policy:
        policy.act(droid_request(np.zeros(7)), "a")
    status, text = http_get(t.url, "/metrics")
    assert status == 200
    for name in ("worldpolicy_requests_total", "worldpolicy_request_latency_seconds_bucket",
                 "worldpolicy_batch_size_bucket", "worldpolicy_queue_depth", "worldpolicy_connections"):
        assert name in text
    assert metric(t, 'worldpolicy_requests_total{status="ok"}') == 1.0
    assert metric(t, "worldpolicy_ready") == 1.0
    # each request's wait for its batch, the very number its reply's queue_ms says
    queue_ms = [raw_send(t.url, droid_request(np.zeros(7)))["server_timing"]["queue_ms"] for _ in range(2)]
    assert metric(t, "worldpolicy_queue_wait_seconds_count") == 3.0
    assert metric(t, "worldpolicy_queue_wait_seconds_sum") >= sum(queue_ms) / 1000 > 0
    # the process's own, as a Prometheus user expects of any exporter: a restart, open files against the limit
    assert metric(t, "process_start_time_seconds") > 0
    assert 0 < metric(t, "process_open_fds") < metric(t, "process_max_fds")
    from worldpolicy import __version__

    info = f'worldpolicy_server_info{{embodiment="droid/joint_pos",model="stand-in",version="{__version__}"}}'
    assert metric(t, info) == 1.0  # which model this server runs, beside its numbers on a dashboard


def test_healthz_answers_while_inference_runs(serve):
    """The policy holds its call until /healthz, a handshake and the metadata frame have been answered: a server
    that served them only between batches would answer none of them (http_get's 10 s timeout fails the test)."""
    release = threading.Event()
    stand_in = StandInPolicy(gate=release)
    t = serve(stand_in)
    try:
        with ThreadPoolExecutor(1) as pool, RemotePolicy(t.url) as policy:
            pending = pool.submit(policy.act, droid_request(np.zeros(7)), "slow")
            assert stand_in.running.wait(5)
            assert http_get(t.url, "/healthz") == (200, "OK\n")
            with RemotePolicy(t.url) as second:  # handshake + metadata also proceed during inference
                assert second.metadata()["embodiment"] == "droid/joint_pos"
            assert stand_in.running.is_set() and not pending.done()  # all of it while the call was held
            release.set()
            assert pending.result(10).actions.shape == (32, 8)
    finally:
        release.set()


def test_readyz_is_503_until_the_loader_finishes_and_the_log_says_each_stage(caplog):
    """The log says what a long start is doing: `loading`, then `warming_up`, then `ready` (a start of a minute
    used to show only `listening`, then nothing until `ready`)."""
    release = threading.Event()

    def loader():
        release.wait(10)
        return StandInPolicy()

    def events() -> list[str]:
        return [json.loads(r.getMessage())["event"] for r in caplog.records if r.name == "worldpolicy.serving"]

    t = ServerThread(PolicyServer(loader=loader, config=ServerConfig(host="127.0.0.1", port=0), warmup_requests=2))
    caplog.set_level(logging.INFO, logger="worldpolicy.serving")
    t.start(wait_ready=False)
    try:
        deadline = time.monotonic() + 5
        while "loading" not in events() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert events()[-1] == "loading"  # said while the loader still runs
        assert http_get(t.url, "/healthz") == (200, "OK\n")
        assert http_get(t.url, "/readyz") == (503, "loading\n")
        with pytest.raises(ServerRefusedError, match="503.*loading the model"):
            RemotePolicy(t.url)
        release.set()
        deadline = time.monotonic() + 5
        while not t.server.ready and time.monotonic() < deadline:
            time.sleep(0.01)
        assert http_get(t.url, "/readyz") == (200, "ready\n")
        assert t.server.policy.batch_sizes == [2]  # the warm-up ran as one batch
        warming = next(json.loads(r.getMessage()) for r in caplog.records if '"warming_up"' in r.getMessage())
        assert warming["requests"] == 2 and warming["load_s"] >= 0
        assert events()[events().index("listening"):] == ["listening", "loading", "warming_up", "ready"]
    finally:
        release.set()
        t.stop()


def test_requests_from_many_connections_are_batched(serve):
    stand_in = StandInPolicy(batch_cost_s=0.05)
    t = serve(stand_in, max_batch=8, max_wait_ms=20)

    def client(i: int) -> bool:
        with RemotePolicy(t.url) as policy:
            ok = True
            for k in range(3):
                joints = np.full(7, i + k / 10)
                pred = policy.act(droid_request(joints), f"task {i}")
                ok &= np.allclose(pred.actions, expected_actions(joints, f"task {i}"))
            return ok

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(client, range(8)))
    assert max(stand_in.batch_sizes) > 1 and sum(stand_in.batch_sizes) == 24
    assert len(stand_in.batch_sizes) < 24


class _ImageChecksums(StandInPolicy):
    """Answers with the sum of each camera's pixels in the first action column: proves every byte arrived intact."""

    def _predict(self, observation, prompt, seed, decode_video, mode):
        p = super()._predict(observation, prompt, seed, decode_video, mode)
        for row, key in enumerate(self.embodiment.camera_keys):
            p.actions[row, 0] = float(observation[key].sum(dtype=np.int64))
        return p


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_large_frames_from_connections_of_two_servers_arrive_intact(serve, event_loop):
    """On uvloop each server reads every connection into one buffer of its own (`_ReadInto`): frames larger than the
    buffer, sent at once by several clients of two servers in one process, each reach the policy byte for byte."""
    if event_loop == "uvloop":
        pytest.importorskip("uvloop")
    servers = [serve(_ImageChecksums(), event_loop=event_loop, max_batch=4) for _ in range(2)]

    def client(i: int) -> bool:
        ok = True
        with RemotePolicy(servers[i % 2].url) as policy:
            for k in range(3):
                request = droid_request(np.full(7, i + k / 10), size=224)  # 0.45 MB: more than one 256 kB read
                pred = policy.act(request, "go")
                sums = [float(request[key].sum(dtype=np.int64)) for key in policy.embodiment.camera_keys]
                ok &= pred.actions[:3, 0].tolist() == sums
        return ok

    with ThreadPoolExecutor(6) as pool:
        assert all(pool.map(client, range(6)))
    for t in servers:  # on uvloop the connections read through the server's buffer; asyncio's loop copies nothing
        with RemotePolicy(t.url) as policy:
            policy.metadata()
            readers = [ws.transport.get_protocol() for ws in t.server._connections]
            assert readers and all(isinstance(r, serving_server._ReadInto) == (event_loop == "uvloop") for r in readers)


def test_policy_without_act_batch_is_served_one_by_one(serve):
    stand_in = StandInPolicy(batch_cost_s=0.01, batching=False)
    t = serve(stand_in)

    def client(i: int) -> bool:
        with RemotePolicy(t.url) as policy:
            return np.allclose(policy.act(droid_request(np.full(7, i)), "x").actions, expected_actions(np.full(7, i), "x"))

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(client, range(4)))
    assert stand_in.batch_sizes == [1] * 4


def test_a_failing_request_does_not_fail_its_batch_neighbours(serve):
    stand_in = StandInPolicy(batch_cost_s=0.2)
    t = serve(stand_in, max_batch=4, max_wait_ms=100)

    def client(prompt: str):
        with RemotePolicy(t.url) as policy:
            try:
                return policy.act(droid_request(np.zeros(7)), prompt).actions
            except ServerError as exc:
                return exc

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(client, ["a", "raise", "b"]))
    assert isinstance(results[1], ServerError) and "RuntimeError: stand-in failure" in str(results[1])
    assert results[1].code == 1011
    np.testing.assert_allclose(results[0], expected_actions(np.zeros(7), "a"))
    np.testing.assert_allclose(results[2], expected_actions(np.zeros(7), "b"))


def test_full_queue_answers_busy(serve):
    stand_in = StandInPolicy(batch_cost_s=1.0)
    t = serve(stand_in, max_batch=1, max_queue=1, max_wait_ms=0)
    with ThreadPoolExecutor(2) as pool, RemotePolicy(t.url) as third:
        first = pool.submit(lambda: RemotePolicy(t.url).act(droid_request(np.zeros(7)), "1"))
        assert stand_in.running.wait(5)
        second = pool.submit(lambda: RemotePolicy(t.url).act(droid_request(np.ones(7)), "2"))
        deadline = time.monotonic() + 5
        while metric(t, "worldpolicy_queue_depth") < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(ServerBusyError, match=r"server busy: 1 requests queued \(max_queue=1\)") as info:
            third.act(droid_request(np.zeros(7)), "3")
        assert info.value.code == 1013
        assert first.result(10).actions.shape == second.result(10).actions.shape == (32, 8)
    assert metric(t, 'worldpolicy_requests_total{status="busy"}') == 1.0


def test_handshakes_past_max_connections_get_503_while_probes_and_open_connections_go_on(serve):
    """A client that leaks connections (reconnects without closing) must not run the server out of file descriptors,
    after which nothing, /healthz included, is accepted."""
    t = serve(max_connections=2)
    first, second = RemotePolicy(t.url), RemotePolicy(t.url)
    with pytest.raises(ServerRefusedError, match=r"HTTP 503: server full: 2 connections open \(max_connections=2\)"):
        RemotePolicy(t.url)
    assert http_get(t.url, "/healthz") == (200, "OK\n") and http_get(t.url, "/readyz")[0] == 200
    assert first.act(droid_request(np.zeros(7)), "a").actions.shape == (32, 8)  # those open are served
    assert metric(t, 'worldpolicy_requests_total{status="busy"}') == 1.0
    second.close()
    open_connections(t, 1)  # the server has seen it go
    with RemotePolicy(t.url) as third:  # a freed place is taken again
        assert third.act(droid_request(np.zeros(7)), "b").actions.shape == (32, 8)
    first.close()


def test_api_key(serve):
    t = serve(api_key="s3cret-key-123")
    with pytest.raises(AuthenticationError, match=r"\(HTTP 401\): this client sent no key: pass api_key="):
        RemotePolicy(t.url)
    with pytest.raises(AuthenticationError, match=r"\(HTTP 401\): the api_key this client sent is not the server"):
        RemotePolicy(t.url, api_key="wrong-key-1234")
    with RemotePolicy(t.url, api_key="s3cret-key-123") as policy:
        assert policy.act(droid_request(np.zeros(7)), "a").actions.shape == (32, 8)
    with connect(t.url, additional_headers={"Authorization": "Bearer s3cret-key-123"}) as ws:  # RoboLab's scheme
        assert unpackb(ws.recv())["embodiment"] == "droid/joint_pos"
    both = [("Authorization", "Api-Key s3cret-key-123")] * 2
    with pytest.raises(websockets.InvalidStatus, match="401"):  # two headers: refused, not an internal error
        connect(t.url, additional_headers=both).close()
    assert http_get(t.url, "/healthz")[0] == 200  # probes need no key
    assert http_get(t.url, "/metrics")[0] == 401
    assert http_get(t.url, "/metrics", {"Authorization": "Api-Key s3cret-key-123"})[0] == 200
    with pytest.raises(ValueError, match="api_key"):
        ServerConfig(api_key="short")


def test_api_key_surrounding_whitespace_is_stripped_and_control_characters_refused(serve):
    t = serve(api_key="s3cret-key-123\n")  # as read from a file or a Kubernetes secret
    assert t.server.config.api_key == "s3cret-key-123"
    with RemotePolicy(t.url, api_key="s3cret-key-123") as policy:
        assert policy.metadata()["embodiment"] == "droid/joint_pos"
    t = serve(api_key="correct horse battery staple")  # inner spaces travel in the header
    with RemotePolicy(t.url, api_key="correct horse battery staple") as policy:
        assert policy.metadata()["embodiment"] == "droid/joint_pos"
    for bad, why in [(" \n", "has 0 characters; use at least 8"), ("s3cret\tkey-123", "contains a control character")]:
        with pytest.raises(ValueError, match=f"ServerConfig.api_key {why}") as refused:
            ServerConfig(api_key=bad)
        assert "key-123" not in str(refused.value)  # the key itself is never shown


def test_a_batch_with_a_state_array_is_one_act_batch():
    """The stand-in's `act_batch` crashed on a request's state array (compared to "physical" as the actions space
    is), so the server fell back to one call per request: an embodiment read from `state` warmed up as [2, 1, 1]."""
    stateful = dataclasses.replace(get_embodiment("droid"), state_keys={})  # its state is the message's `state`
    server = PolicyServer(StandInPolicy(stateful), ServerConfig(host="127.0.0.1", port=0), warmup_requests=2)
    with ServerThread(server) as t:
        assert t.server.policy.batch_sizes == [2]
        assert [o["state"].shape for o in t.server.policy.options] == [(8,), (8,)]


def test_warmup_runs_under_the_key_map():
    key_map = {"observation/wrist_image_left": "wrist", "prompt": "task"}
    server = PolicyServer(StandInPolicy(), ServerConfig(host="127.0.0.1", port=0), key_map=key_map, warmup_requests=2)
    with ServerThread(server) as t:
        assert t.server.policy.batch_sizes == [2]
        message = droid_request(np.zeros(7))
        message["wrist"], message["task"] = message.pop("observation/wrist_image_left"), message.pop("prompt")
        with RemotePolicy(t.url) as policy:
            assert policy.infer(message)["actions"].shape == (32, 8)


def test_warmup_sends_frames_of_the_size_the_checkpoint_was_trained_on(tmp_path):
    """A 224x224 warm-up made a checkpoint trained on other frames warn at startup about frames no client sent, and
    used up the policy's once-per-size warning, so a robot that then sent 224x224 frames was never warned."""
    cameras = {"observation/exterior_image_1_left": [96, 128], "observation/exterior_image_2_left": [96, 128],
               "observation/wrist_image_left": [48, 64]}
    (tmp_path / "trainer_state.json").write_text(json.dumps({"frames": {"cameras": cameras, "composed": [144, 256]}}))

    class Recording(StandInPolicy):
        def act_batch(self, requests):
            self.seen = [{k: np.shape(v) for k, v in r.observation.items() if k in cameras} for r in requests]
            return super().act_batch(requests)

    policy = Recording()
    policy.source = str(tmp_path)
    server = PolicyServer(policy, ServerConfig(host="127.0.0.1", port=0), warmup_requests=2)
    with ServerThread(server):
        assert policy.seen == [{k: (h, w, 3) for k, (h, w) in cameras.items()}] * 2


def test_a_message_over_the_limit_is_closed_1009_and_counted(serve):
    t = serve(limits=Limits(max_message_bytes=4096, max_array_bytes=4096))
    with connect(t.url, compression=None, max_size=None) as ws:
        unpackb(ws.recv())
        ws.send(packb(droid_request(np.zeros(7))))  # three 32x32 images: ~9 kB
        with pytest.raises(websockets.ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd.code == 1009
    deadline = time.monotonic() + 5
    while metric(t, 'worldpolicy_requests_total{status="too_big"}') < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert metric(t, 'worldpolicy_requests_total{status="too_big"}') == 1.0


def test_failures_are_logged_as_one_json_object_and_an_empty_message_still_says_something(serve, caplog):
    class Silent(StandInPolicy):
        def act(self, observation, prompt, **options):
            if prompt == "assert":
                raise AssertionError
            return super().act(observation, prompt, **options)

    t = serve(Silent(batching=False))
    with caplog.at_level(logging.INFO, logger="worldpolicy.serving"), RemotePolicy(t.url) as policy:
        policy.act(droid_request(np.zeros(7)), "fine")
        with pytest.raises(ServerError, match=r"AssertionError: \(no message; see the server log\)"):
            policy.act(droid_request(np.zeros(7)), "assert")
        with pytest.raises(ServerError, match="unusable policy result"):
            policy.act(droid_request(np.zeros(7)), "nan")
    records = [r for r in caplog.records if r.name == "worldpolicy.serving"]
    assert all(r.exc_info is None for r in records)  # no traceback lines after the JSON object
    entries = {e["event"]: e for e in (json.loads(r.getMessage()) for r in records)}
    assert entries["policy_failed"]["mode"] == "policy" and "raise AssertionError" in entries["policy_failed"]["traceback"]
    # a result no robot should run: the same check each time, said without a traceback (`UnusableLog`)
    assert entries["reply_failed"]["error"] == "ValueError: actions contain NaN, inf or values beyond float32's range"
    assert "traceback" not in entries["reply_failed"] and entries["reply_failed"]["repeated"] == 0
    # the refusal names the client as its connect line does (a server for several robots: which one was it?)
    lines = [json.loads(r.getMessage()) for r in records]
    peers = {e["conn"]: e["peer"] for e in lines if e["event"] == "connect"}
    assert all(re.fullmatch(r"127\.0\.0\.1:\d+", peer) for peer in peers.values())
    said = [e for e in lines if e["event"] in ("refused", "disconnect")]
    assert sum(e["event"] == "refused" for e in said) == 2 and all(e["peer"] == peers[e["conn"]] for e in said)
    assert entries["policy_failed"]["conn"] == said[0]["conn"]  # the traceback names whose request it was
    # a connection's last line says what it did: the first answered one request, then its second was refused
    first = next(e for e in lines if e["event"] == "disconnect")
    assert first["conn"] == said[0]["conn"] and first["requests"] == 1 and first["seconds"] > 0
    # and how long its slowest answered request took on the server: which robot saw a stall, at INFO
    assert 0 < first["slowest_ms"] <= first["seconds"] * 1000


def test_unusable_log_windows_only_unrunnable_results_and_traces_the_rest(caplog):
    """Both front ends hand every reply failure to `UnusableLog`: `reply_fields`' ValueError (NaN actions) is
    windowed, without a traceback; anything else (not a Prediction) is logged each time with its traceback."""
    log = serving_server.UnusableLog(every_s=3600)
    with caplog.at_level(logging.ERROR, logger="worldpolicy.serving"):
        assert log(ValueError("actions contain NaN"), conn=1) and log(ValueError("actions contain NaN"), conn=2)
        assert not log(TypeError("not a Prediction"), conn=3) and not log(TypeError("not a Prediction"), conn=4)
    lines = [json.loads(r.getMessage()) for r in caplog.records]
    assert [(e["conn"], "traceback" in e) for e in lines] == [(1, False), (3, True), (4, True)]
    assert {e["event"] for e in lines} == {"reply_failed"}


def test_a_model_returning_nan_is_logged_once_per_kind_not_per_request(serve, caplog):
    """Each request a model answered with NaN wrote a traceback at ERROR: a client that found such an input (a state
    of 1e308, before it was refused) could flood the log. Now one line per kind per window, the rest counted."""
    t = serve(StandInPolicy(batching=False))
    t.server._refusals.every_s = t.server._unusable.every_s = 3600  # one window, however slow the machine
    with caplog.at_level(logging.INFO, logger="worldpolicy.serving"):
        for _ in range(3):
            with RemotePolicy(t.url) as policy, pytest.raises(ServerError, match="unusable policy result"):
                policy.act(droid_request(np.zeros(7)), "nan")
        assert metric(t, 'worldpolicy_requests_total{status="error"}') == 3.0  # each still counted
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "worldpolicy.serving"]
    assert [e["event"] for e in lines if e["event"] in ("reply_failed", "refused")] == ["reply_failed", "refused"]
    assert all("traceback" not in e for e in lines)
    t.stop()  # the drain says what the open window counted
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "worldpolicy.serving"]
    summary = [e for e in lines if e["event"] == "refused_summary"]
    assert [(e["status"], e["count"]) for e in summary] == [("error", 2)]


def test_shutdown_closes_the_policy_the_server_owns_after_its_last_batch(caplog):
    """The served policy was never closed: a process going on after `ServerThread.stop()` (a notebook) kept the model
    on its GPU. With `close_on_stop` (what `worldpolicy serve` sets) it is closed in the worker after the drain's last
    batch (the request in flight is still answered); without, it stays its owner's."""
    stand_in = StandInPolicy(batch_cost_s=0.5)
    t = ServerThread(PolicyServer(loader=lambda: stand_in, config=ServerConfig(host="127.0.0.1", port=0),
                                  close_on_stop=True))
    t.start()
    with ThreadPoolExecutor(1) as pool, RemotePolicy(t.url) as policy:
        pending = pool.submit(policy.act, droid_request(np.zeros(7)), "finish me")
        assert stand_in.running.wait(5)
        with caplog.at_level(logging.INFO, logger="worldpolicy.serving"):
            t.stop()
        np.testing.assert_allclose(pending.result(10).actions, expected_actions(np.zeros(7), "finish me"))
    assert stand_in.closed == 1 and not t.server._worker.is_alive()
    assert '{"event": "policy_closed"}' in caplog.text

    handed_in = StandInPolicy()
    ServerThread(PolicyServer(loader=lambda: handed_in, config=ServerConfig(host="127.0.0.1", port=0))).start().stop()
    assert handed_in.closed == 0


def test_a_policy_whose_warm_up_fails_is_closed_and_a_failing_close_is_logged(caplog):
    class Failing(StandInPolicy):
        def act(self, *args, **kwargs):
            raise RuntimeError("cannot warm up")

        def close(self):
            super().close()
            raise OSError("device lost")

    stand_in = Failing(batching=False)
    t = ServerThread(PolicyServer(loader=lambda: stand_in, config=ServerConfig(host="127.0.0.1", port=0),
                                  warmup_requests=1, close_on_stop=True))
    with caplog.at_level(logging.INFO, logger="worldpolicy.serving"), \
            pytest.raises(RuntimeError, match="warm-up request failed: cannot warm up"):
        t.start()
    t.stop()
    assert stand_in.closed == 1
    assert '"event": "close_failed", "error": "OSError: device lost"' in caplog.text


def test_drain_waits_for_the_batch_of_a_client_that_left(serve):
    stand_in = StandInPolicy(batch_cost_s=1.0)
    t = serve(stand_in)
    with RemotePolicy(t.url, read_timeout_s=0.2) as policy, pytest.raises(ServerTimeoutError):
        policy.act(droid_request(np.zeros(7)), "gone")
    assert stand_in.running.is_set()
    t.stop()
    # the worker finished its batch and stopped before serve() returned: no thread left inside the policy
    assert not stand_in.running.is_set() and not t.server._worker.is_alive()
    requests = t.server._metrics.requests
    assert requests.labels("vanished")._value.get() == 1 and requests.labels("abandoned")._value.get() == 0


def test_a_request_outliving_the_drain_timeout_is_abandoned(serve, caplog):
    release = threading.Event()  # the batch is held inside the policy until the server has stopped
    stand_in = StandInPolicy(gate=release)
    t = serve(stand_in, drain_timeout_s=0.2)
    try:
        with ThreadPoolExecutor(1) as pool, RemotePolicy(t.url) as policy:
            pending = pool.submit(policy.act, droid_request(np.zeros(7)), "too slow")
            assert stand_in.running.wait(5)
            with caplog.at_level(logging.INFO, logger="worldpolicy.serving"):
                t.stop()
            # stopped at the drain timeout, the batch still inside the policy: the daemon worker finishes on its own
            assert stand_in.running.is_set()
            with pytest.raises(ServerClosedError, match="1001"):
                pending.result(5)
    finally:
        release.set()
    requests = t.server._metrics.requests
    assert requests.labels("abandoned")._value.get() == 1 and requests.labels("vanished")._value.get() == 0
    assert '{"event": "abandoned", "requests": 1, "drain_timeout_s": 0.2, "worker": "busy"}' in caplog.text
    # the request inside the policy is not queued any more: the drain line said 0 of what it waited for
    assert '{"event": "draining", "queued": 0, "active": 1, "connections": 1}' in caplog.text


def test_graceful_shutdown_finishes_inflight_requests(serve):
    stand_in = StandInPolicy(batch_cost_s=0.8)
    t = serve(stand_in)
    with ThreadPoolExecutor(1) as pool, RemotePolicy(t.url) as policy:
        pending = pool.submit(policy.act, droid_request(np.zeros(7)), "finish me")
        assert stand_in.running.wait(5)
        stopper = threading.Thread(target=t.stop)
        stopper.start()
        deadline = time.monotonic() + 5
        while t.server.ready and time.monotonic() < deadline:
            time.sleep(0.01)
        # draining: still listening, so probes see a draining server rather than a closed port
        assert http_get(t.url, "/readyz") == (503, "draining\n") and http_get(t.url, "/healthz") == (200, "OK\n")
        with pytest.raises(websockets.InvalidStatus, match="503"):  # no new connections
            connect(t.url).close()
        np.testing.assert_allclose(pending.result(10).actions, expected_actions(np.zeros(7), "finish me"))
        stopper.join(10)
        assert not t._thread.is_alive()
    with pytest.raises((urllib.error.URLError, ConnectionError)):  # and once drained, the port is closed
        http_get(t.url, "/healthz")


def test_config_validation():
    with pytest.raises(ValueError, match=r"ServerConfig.max_batch=0 is invalid; accepted: an int >= 1"):
        ServerConfig(max_batch=0)
    with pytest.raises(ValueError, match="port"):
        ServerConfig(port=70000)
    with pytest.raises(ValueError, match="exactly one of policy"):
        PolicyServer()
    with pytest.raises(ValueError, match=r"ServerConfig.event_loop='trio' is invalid; accepted: auto, asyncio, uvloop"):
        ServerConfig(event_loop="trio")
    # a wrong type names its field too (a string compared with a number raised a bare TypeError), and True is no int
    with pytest.raises(ValueError, match=r"ServerConfig.max_wait_ms='5' is invalid; accepted: a number in \[0, 10000\]"):
        ServerConfig(max_wait_ms="5")
    with pytest.raises(ValueError, match=r"ServerConfig.drain_timeout_s=None is invalid; accepted: a number >= 0"):
        ServerConfig(drain_timeout_s=None)
    with pytest.raises(ValueError, match=r"ServerConfig.max_batch=True is invalid; accepted: an int >= 1"):
        ServerConfig(max_batch=True)
    with pytest.raises(ValueError, match=r"ServerConfig.host=None is invalid; accepted: a str"):
        ServerConfig(host=None)
    with pytest.raises(ValueError, match=r"ServerConfig.max_connections=0 is invalid; accepted: an int >= 1"):
        ServerConfig(max_connections=0)
    with pytest.raises(ValueError, match=r"ServerConfig.limits=1024 is invalid; accepted: a worldpolicy.serving.Limits"):
        ServerConfig(limits=1024)
    with pytest.raises(ValueError, match=r"Limits.max_depth=True is invalid; accepted: an int >= 1"):
        Limits(max_depth=True)
    # numpy's numbers are the numbers they are (`errors.is_integer`, `is_real`), as every other setting takes them
    assert ServerConfig(port=np.int64(0), max_batch=np.int64(2), max_wait_ms=np.float32(5)).max_batch == 2


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(monkeypatch):
    from worldpolicy.serving import server

    monkeypatch.setattr(server, "_have_uvloop", lambda: False)
    assert server.event_loop_factory("auto") is None  # asyncio's own loop
    with pytest.raises(ValueError, match=r"uvloop is not installed; pip install uvloop"):
        ServerConfig(event_loop="uvloop")


def test_metadata_frame_is_first_and_wire_exact(serve):
    t = serve()
    with connect(t.url, compression=None, max_size=None) as ws:
        meta = unpackb(ws.recv())
        assert meta["server_version"] and meta["max_batch"] == 8
        ws.send(packb(droid_request(np.zeros(7))))
        reply = unpackb(ws.recv())
        assert reply["actions"].shape == (32, 8)


def test_the_metadata_frame_says_the_gripper_replies_are_already_unflipped(serve):
    """The spec showed `gripper_flip: true` and nothing said the replies were flipped back already, so a client
    reading it flipped again, opening a closing gripper. The frame's `gripper` says the column and its convention."""
    from worldpolicy.embodiments import get_embodiment

    t = serve()
    with connect(t.url, compression=None, max_size=None) as ws:
        meta = unpackb(ws.recv())
    assert meta["embodiment_spec"]["gripper_flip"] is True
    assert meta["gripper"] == {"column": "gripper", "index": 7, "open": 0.0, "closed": 1.0, "model_flip": True}
    bridge = get_embodiment("bridge")
    assert bridge.gripper_convention() == {"column": "grasp", "index": 9, "open": 0.0, "closed": 1.0,
                                           "model_flip": False}
    assert dataclasses.replace(bridge, gripper_column=None).gripper_convention() is None  # no gripper: nothing


def test_the_policy_metadata_is_asked_once_and_its_chunk_size_bounds_the_frame_and_the_adapter(serve):
    """Startup asked `policy.metadata()` three times (the adapter's chunk, the frame's chunk, the frame): a relayed
    `RemotePolicy` answers it from its server. A policy saying `chunk_size: None` announced None while the adapter
    bounded by the embodiment's chunk."""

    class Counting(StandInPolicy):
        asked = 0

        def metadata(self):
            self.asked += 1
            return {**super().metadata(), "chunk_size": None}

    policy = Counting()
    t = serve(policy)
    with connect(t.url, compression=None, max_size=None) as ws:
        assert unpackb(ws.recv())["chunk_size"] == policy.embodiment.chunk_size == t.server.adapter.chunk_size
    assert policy.asked == 1


def test_the_checkpoint_is_announced_by_a_name_another_machine_can_use(tmp_path):
    """The metadata frame announced the checkpoint's absolute path (`/home/<user>/...`): a detail of the server's
    machine, of no use to a client, and what `sim --resume` compared, so the same checkpoint moved to another folder
    read as another model."""
    from worldpolicy.models import checkpoint_name, shipped_model

    folder = tmp_path / "Cosmos3-Nano-Policy-DROID"
    folder.mkdir()
    assert checkpoint_name(str(folder)) == "Cosmos3-Nano-Policy-DROID"
    assert checkpoint_name(str(folder / ".")) == checkpoint_name(str(folder / "sub" / "..")) == folder.name
    assert checkpoint_name(str(tmp_path / "gone" / "step-0000300")) == "step-0000300"  # an absolute path, even gone
    assert checkpoint_name(str(shipped_model())) == "shipped"  # what `--checkpoint` takes for it
    assert checkpoint_name("nvidia/Cosmos3-Nano-Policy-DROID") == "nvidia/Cosmos3-Nano-Policy-DROID"  # a hub id


class _PreparingPolicy(StandInPolicy):
    """Shaped as the real Policy: `act` is a batch of one, and `act_batch` reads each request's inputs (warning about
    them) under `request_index` before running any; the prompt "bad" fails that reading, and with it the batch."""

    def act(self, observation, prompt, **options):
        from worldpolicy.policy import PolicyRequest

        return self.act_batch([PolicyRequest(observation, prompt, **options)])[0]

    def act_batch(self, requests):
        import logging

        from worldpolicy.logcapture import request_index

        for i, r in enumerate(requests):
            with request_index(i):
                logging.getLogger("worldpolicy.policy").warning("about the request %r", r.prompt)
                if r.prompt == "bad":
                    raise ValueError("a bad request")
        return super().act_batch(requests)


def test_warnings_reach_their_own_request_also_when_a_failed_batch_is_rerun_one_by_one():
    """A fused batch that failed (one bad request) is rerun one request at a time: each rerun is `Policy.act`, a batch
    of one, which marked its warnings as request 0's, so request 2's warning reached request 0's client."""
    from worldpolicy.serving.adapters import WireRequest
    from worldpolicy.serving.server import run_batch

    requests = [WireRequest("policy", p, observation=droid_request(np.zeros(7))) for p in ("bad", "a", "b")]
    results, said = run_batch(_PreparingPolicy(), requests)
    assert isinstance(results[0], ValueError) and [r.mode for r in results[1:]] == ["policy", "policy"]
    assert said == [["about the request 'bad'"], ["about the request 'a'"], ["about the request 'b'"]]


def test_collecting_and_request_marks_end_with_their_block_also_when_it_raises():
    """What a block collects and which request it marks stop at the block's end, also when it raises: a mark left
    behind would send the next batch's shared warnings to one request, a collector left behind would keep filling."""
    from worldpolicy.logcapture import logged_warnings, request_index

    log = logging.getLogger("worldpolicy.policy")
    with pytest.raises(RuntimeError), logged_warnings(2) as said:
        with request_index(1), request_index(0):  # the outer mark stands
            log.warning("about request 1")
        with pytest.raises(RuntimeError), request_index(0):
            raise RuntimeError("while reading request 0")
        log.warning("about both")
        raise RuntimeError("after")
    log.warning("after the block")
    assert said == [["about both"], ["about request 1", "about both"]]


def test_the_open_file_limit_is_raised_to_fit_max_connections_within_the_hard_limit(monkeypatch, caplog):
    """A process out of descriptors accepts nothing, /healthz included; the soft limit is often 1024 while the hard one
    allows far more, so `run()` raises it, and says so when the hard limit is what stops it."""
    import resource

    from worldpolicy.serving.server import room_for_connections

    limits, set_to = {}, []
    monkeypatch.setattr(resource, "getrlimit", lambda which: limits[which])
    monkeypatch.setattr(resource, "setrlimit", lambda which, value: set_to.append(value))
    limits[resource.RLIMIT_NOFILE] = (1024, 1_048_576)
    assert room_for_connections(1024) == 1280 and set_to == [(1280, 1_048_576)]
    limits[resource.RLIMIT_NOFILE] = (4096, 1_048_576)
    assert room_for_connections(1024) == 4096 and len(set_to) == 1  # already room: left as it is
    limits[resource.RLIMIT_NOFILE] = (1024, 1100)
    with caplog.at_level(logging.WARNING, logger="worldpolicy.serving"):
        assert room_for_connections(1024) == 1100 and set_to[-1] == (1100, 1100)
    said = json.loads(caplog.records[-1].getMessage())
    assert said["event"] == "open_file_limit" and "room for about 844 connections" in said["detail"]


def test_a_policy_that_ends_the_inference_thread_stops_the_server_instead_of_leaving_it_deaf(serve, caplog):
    """SystemExit from inside the policy (a library's fatal-error exit) is no request's error: it ended the worker
    thread, after which the server stayed up and ready, queued every request and answered none. Now its client is told,
    the server drains and stops (`run` exits 1), and a supervisor restarts it."""

    class Exiting(StandInPolicy):
        def act(self, observation, prompt, **options):
            if prompt == "exit":
                raise SystemExit("fatal CUDA error")
            return super().act(observation, prompt, **options)

    t = serve(Exiting(batching=False))
    with caplog.at_level(logging.INFO, logger="worldpolicy.serving"), RemotePolicy(t.url) as policy:
        assert policy.act(droid_request(np.zeros(7)), "fine").actions.shape == (32, 8)
        with pytest.raises(ServerError, match=r"ended the server's inference thread \(SystemExit: fatal CUDA error\)"):
            policy.act(droid_request(np.zeros(7)), "exit")
        t._thread.join(30)
    assert not t._thread.is_alive() and t.server._died  # stopped by itself: no SIGTERM was sent
    events = [json.loads(r.getMessage()) for r in caplog.records if r.name == "worldpolicy.serving"]
    died = next(e for e in events if e["event"] == "worker_died")
    assert died["error"] == "SystemExit: fatal CUDA error" and [e["event"] for e in events][-1] == "stopped"


def test_inverse_dynamics_reads_the_state_keys_a_raw_client_sends_beside_the_video(serve):
    """An openpi-style robot script sending `video` with DROID's state keys (not `state`) had the keys ignored: a
    state-conditioned policy refused it ("state is required"), though the local Policy and `RemotePolicy` read the
    keys. The server now reads them as they do (the clip's first row); `state` still wins; a bad shape or one key
    without the other is a bad request before any inference, and the server goes on serving."""
    policy = StandInPolicy()  # droid/joint_pos: state-conditioned, 7 joints + gripper
    t = serve(policy)
    rng = np.random.default_rng(3)
    joints, gripper = rng.normal(size=(9, 7)), rng.uniform(size=9)
    base = {"mode": "inverse_dynamics", "video": np.zeros((9, 16, 16, 3), np.uint8), "prompt": "push",
            "observation/joint_position": joints, "observation/gripper_position": gripper}

    def send(message: dict) -> dict | str:
        return raw_send(t.url, message, timeout=5)

    assert send(base)["actions"].shape == (32, 8)
    np.testing.assert_array_equal(policy.options.pop()["state"], np.r_[joints[0], gripper[0]])
    send({**base, "observation/gripper_position": gripper[:, None].astype(np.float32)})  # [T, 1], any float dtype
    np.testing.assert_allclose(policy.options.pop()["state"], np.r_[joints[0], gripper[0]], rtol=1e-6)
    send({**base, "observation/joint_position": joints[4], "observation/gripper_position": 0.5})  # one row
    np.testing.assert_array_equal(policy.options.pop()["state"], np.r_[joints[4], 0.5])
    send({**base, "state": np.arange(8.0)})  # given: the keys are not read
    np.testing.assert_array_equal(policy.options.pop()["state"], np.arange(8.0))
    calls = policy.calls
    for bad, reason in [
        ({"observation/joint_position": joints[:, :6]},
         r"observation/joint_position has shape \(9, 6\); embodiment 'droid/joint_pos' reads joints as \[7\] or \[T, 7\]"),
        ({"observation/joint_position": joints[:0]}, r"observation/joint_position has shape \(0, 7\)"),
        ({"observation/gripper_position": np.zeros(0)}, r"observation/gripper_position has shape \(0,\)"),
        ({"observation/joint_position": np.full(7, np.nan)}, "observation/joint_position contains NaN"),
        ({"observation/gripper_position": "open"}, "observation/gripper_position must be a numeric array, got str"),
        ({"observation/gripper_position": None}, "missing key 'observation/gripper_position'"),
    ]:
        assert re.search("^bad request: " + reason, send({**base, **bad})), reason
    one_key = {k: v for k, v in base.items() if k != "observation/gripper_position"}
    assert send(one_key).startswith("bad request: missing state key 'observation/gripper_position' (gripper) required")
    assert policy.calls == calls  # refused before inference
    assert send(base)["actions"].shape == (32, 8)  # and still serving


def test_a_policy_request_with_a_state_of_the_wrong_width_is_a_bad_request_before_inference(serve):
    """A DROID client sending 6 joints (a 6-axis arm's state, a dropped column) passed the server's checks and failed
    inside the policy as `ValueError: ...`, not the documented `bad request: ...`, after costing the batch it joined
    (which failed, then ran again one request at a time). The state keys are now checked as the request is read, as
    they already were beside an inverse-dynamics clip."""
    policy = StandInPolicy()  # droid/joint_pos: state-conditioned, 7 joints + gripper
    t = serve(policy)
    base = droid_request(np.zeros(7))
    for bad, reason in [
        ({"observation/joint_position": np.zeros(6)},
         (r"observation/joint_position has shape \(6,\); embodiment 'droid/joint_pos' reads joints as \[7\] or "
          r"\[T, 7\] with T >= 1 \(the latest row: the current state\)")),
        ({"observation/joint_position": np.zeros((2, 8))}, r"observation/joint_position has shape \(2, 8\)"),
        ({"observation/joint_position": np.float32(0.1)}, r"observation/joint_position has shape \(\)"),
        ({"observation/gripper_position": np.zeros(0)}, r"observation/gripper_position has shape \(0,\)"),
    ]:
        assert re.search("^bad request: " + reason, raw_send(t.url, {**base, **bad}, timeout=5)), reason
    assert policy.calls == 0  # refused before inference
    assert raw_send(t.url, {**base, "observation/joint_position": np.zeros((3, 7))})["actions"].shape == (32, 8)
    # an explicit `state` wins over the keys, as for the local Policy: keys it replaces are not refused as it is read
    # (the stand-in reads the keys regardless, so only the reading is checked here)
    reply = raw_send(t.url, {**base, "observation/joint_position": np.zeros(6), "state": np.zeros(8)})
    assert not str(reply).startswith("bad request")


def test_keys_nothing_reads_are_told_once_per_connection_in_the_reply_and_the_log(serve, caplog):
    """A DROID client of a `panda_reach` server had its joint state and second camera dropped without a word."""
    from worldpolicy.models import shipped_model
    from worldpolicy.policy import checkpoint_embodiment

    policy = StandInPolicy(checkpoint_embodiment(shipped_model(), None))
    t = serve(policy)
    caplog.set_level(logging.WARNING, logger="worldpolicy.serving")
    message = {k: v for k, v in droid_request(np.zeros(7)).items() if k != "observation/exterior_image_2_left"}
    for _ in range(2):  # a client that reconnects is told again
        replies = _one_connections_replies(t.url, message, 3)
        said = replies[0]["warnings"]
        assert len(said) == 1 and said[0].startswith("request keys 'observation/joint_position', "
                                                     "'observation/gripper_position' are not read by embodiment "
                                                     "'panda_reach'")
        assert all("warnings" not in reply for reply in replies[1:])  # the requests after it cost nothing more
    logged = [json.loads(r.getMessage()) for r in caplog.records if '"unread_keys"' in r.getMessage()]
    assert [line["conn"] for line in logged] == [1, 2] and logged[0]["detail"] == said[0]
    # a client that sends only what the embodiment reads hears nothing of it
    assert "warnings" not in raw_send(t.url, {k: message[k] for k in ("prompt", *policy.embodiment.camera_keys)})


def test_a_state_beyond_float32_once_normalized_fails_only_its_own_request_not_its_batch(serve):
    """Two robots whose requests meet in one batch (max_batch=2: the batch waits for the second connection's): one
    sends a gripper of 1e38, inf to the float32 model once normalized by a column of tiny spread. It was refused inside
    the policy (`ValueError: state contains ...` after its batch failed and ran again one by one); it is now a bad
    request as it is read, and the other robot's request runs as if it had been alone."""
    meanstd = dataclasses.replace(StandInPolicy().embodiment, normalization="meanstd",
                                  stats={"mean": [0.0] * 8, "std": [1.0] * 7 + [0.0]})
    policy = StandInPolicy(meanstd)
    t = serve(policy, max_batch=2, max_wait_ms=1000)
    bad = {**droid_request(np.zeros(7)), "state": np.array([0.0] * 7 + [1e38])}
    with connect(t.url, max_size=None) as first, connect(t.url, max_size=None) as second:
        unpackb(first.recv()), unpackb(second.recv())  # both connections are open: a batch waits for both
        first.send(packb(bad))
        second.send(packb(droid_request(np.ones(7), "b")))
        refused, answered = first.recv(timeout=10), unpackb(second.recv(timeout=10))
        with pytest.raises(websockets.ConnectionClosed):
            first.recv(timeout=10)
    assert refused.startswith("bad request: state contains NaN, inf or values beyond float32's range in column "
                              "'gripper', as given or once normalized by embodiment 'droid/joint_pos''s stats")
    assert first.close_code == 1011
    np.testing.assert_allclose(answered["actions"], expected_actions(np.ones(7), "b"))
    assert policy.batch_sizes == [1] and len(policy.options) == 1  # the bad request never reached the policy


def test_the_connect_line_names_the_client_by_its_user_agent_and_a_remote_policy_by_its_name(serve, caplog):
    """Several sims on one host were told apart by port alone: the `connect` line now says the client's User-Agent
    (`client`), a `RemotePolicy(client_name=...)` appending its robot's name; a header is the client's text, so it is
    cut to `CLIENT_CHARS` and its control characters escaped."""
    from websockets.http11 import USER_AGENT

    t = serve()
    with caplog.at_level(logging.INFO, logger="worldpolicy.serving"):
        with RemotePolicy(t.url, client_name="arm-3") as named:
            named.act(droid_request(np.zeros(7)), "a")
            with named._spawn() as peer:  # an act_batch's extra connection says the same name
                peer.act(droid_request(np.zeros(7)), "b")
        with RemotePolicy(t.url) as plain:
            plain.metadata()
        with connect(t.url, user_agent_header="sim\t" + "x" * 200) as raw:
            unpackb(raw.recv())  # the connect line is said before the metadata frame is sent
    clients = [e["client"] for e in (json.loads(r.getMessage()) for r in caplog.records) if e["event"] == "connect"]
    assert clients == [f"{USER_AGENT} arm-3"] * 2 + [USER_AGENT, "sim\\t" + "x" * 116 + "..."]
    for bad in ("", "arm\n3", "a" * 65, "bras-é", 3):
        with pytest.raises(ValueError, match=r"^client_name=.* is invalid; accepted: None, or 1 to 64 printable ASCII"):
            RemotePolicy(t.url, client_name=bad, connect_now=False)
    assert serving_server.client_agent([]) is None and serving_server.client_agent(["a", "b\x85"]) == "a, b\\x85"
