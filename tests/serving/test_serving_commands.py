"""`worldpolicy serve --replicas`: bad values and a missing Ray are one-line errors before anything loads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

import worldpolicy.serving.ray_serve
from worldpolicy.cli import main
from worldpolicy.embodiments import get_embodiment


def _serve(tmp_path, *extra: str) -> list[str]:
    return ["serve", "--checkpoint", str(tmp_path / "never-loaded"), *extra]


@pytest.mark.parametrize("n", ["0", "-3"])
def test_replicas_below_one_is_a_clear_error(tmp_path, capsys, n):
    assert main(_serve(tmp_path, "--replicas", n)) == 2
    assert f"serve: error: --replicas {n} must be >= 1" in capsys.readouterr().err


def test_replicas_not_an_int_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(_serve(tmp_path, "--replicas", "two"))
    assert exc.value.code == 2 and "argument --replicas: invalid int value: 'two'" in capsys.readouterr().err


def test_replicas_without_ray_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray.serve", None)  # `import ray.serve` now raises ImportError
    assert main(_serve(tmp_path, "--replicas", "2")) == 2
    err = capsys.readouterr().err
    assert err == ("worldpolicy serve: error: --replicas 2 runs the replicas on Ray Serve: ray is not installed; "
                   "it comes with the 'ray' extra: pip install 'worldpolicy[ray]'\n")


@pytest.mark.parametrize("device, gpus", [("cpu", 0), ("CPU", 0), ("auto", None), (None, None)])
def test_replicas_go_to_ray_serve(tmp_path, monkeypatch, device, gpus):
    """Each replica takes a GPU where the cluster has them unless a device other than CUDA is named: `--device CPU`
    (device names are read in any case) asked Ray for a GPU per replica."""
    _checked_checkpoint(tmp_path)
    calls = []
    monkeypatch.setenv("RAY_DEDUP_LOGS", "unset below, put back after")
    monkeypatch.delenv("RAY_DEDUP_LOGS")
    monkeypatch.setattr(worldpolicy.serving.ray_serve, "serve_until_signal",
                        lambda loader, **kw: calls.append({**kw, "dedup": os.environ.get("RAY_DEDUP_LOGS")}) or 0)
    argv = _serve(tmp_path, "--replicas", "3", "--port", "8123", "--max-batch", "4",
                  *(["--device", device] if device else []), "--batch-timeout-s", "300", "--max-incoming-mb", "256")
    assert main(argv) == 0
    [kw] = calls  # nothing loaded here: the replicas load the checkpoint
    assert (kw["num_replicas"], kw["port"], kw["max_batch"], kw["gpus_per_replica"]) == (3, 8123, 4, gpus)
    assert kw["batch_timeout_s"] == 300 and kw["max_incoming_bytes"] == 256 * 2**20  # the router's budget
    assert kw["dedup"] == "0"  # each replica's lines kept whole, none folded into another's


@contextmanager
def _two_replicas(tmp_path, *extra: str, session: bool = False) -> Iterator[tuple[subprocess.Popen, int, list[str]]]:
    """`worldpolicy serve --replicas 2` of the tiny checkpoint on CPU, on a local Ray instance of its own, once it
    logged `ready`: the process, its port and its log lines so far (read to the end, so Ray's chatter never fills the
    pipe); with `session`, in a session (and process group) of its own, as under `setsid`. SIGTERM at the end when
    the test left it running (a killed driver leaves Ray's agents behind)."""
    from ports import free_port

    from worldpolicy.testing import make_tiny_checkpoint

    checkpoint = make_tiny_checkpoint(tmp_path / "tiny")
    port = free_port()
    command = [
        sys.executable, "-m", "worldpolicy.cli", "serve", "--checkpoint", str(checkpoint), "--embodiment", "droid",
        "--variant", "relative_pose", "--chunk-size", "8", "--resolution-tier", "256", "--steps", "2",
        "--host", "127.0.0.1", "--port", str(port), "--replicas", "2", "--device", "cpu", "--warmup", "0", *extra,
    ]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env={**os.environ, "RAY_ADDRESS": ""},
                            start_new_session=session)
    log: list[str] = []
    ready = threading.Event()

    def read_stderr() -> None:
        for line in proc.stderr:
            log.append(line)
            if '"event": "ready", "replicas": 2' in line:  # /healthz answers as soon as the router is up
                ready.set()

    threading.Thread(target=read_stderr, daemon=True).start()
    try:
        assert ready.wait(180) and proc.poll() is None, "".join(log[-20:])
        yield proc, port, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()


def _observation() -> dict:
    rng = np.random.default_rng(0)
    keys = ("observation/wrist_image_left", "observation/exterior_image_1_left", "observation/exterior_image_2_left")
    return {**{k: rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for k in keys}, "prompt": "open the drawer"}


def _events(log: list[str]) -> dict[str, list[str]]:
    """The JSON lines of `--log-format json` by event, each as the prefix before its object: none for the command's
    own lines, Ray's `(ServeReplica:… pid=…)` for those it forwards from the replicas and the router."""
    events: dict[str, list[str]] = {}
    for line in log:
        start = line.find('{"time": ')
        if start >= 0 and (event := json.loads(line[start:]).get("event")) is not None:
            events.setdefault(event, []).append(line[:start])
    return events


@pytest.mark.slow
def test_serve_two_replicas_end_to_end(tmp_path):
    """The command itself: a local Ray instance, two CPU replicas of the tiny checkpoint, SIGTERM exits 0; the
    router's and replicas' events (connect, disconnect, the drain, each policy closed) reach the command's log in its
    format, JSON objects after Ray's prefix (~35 s)."""
    from concurrent.futures import ThreadPoolExecutor

    from serving_standins import http_get

    from worldpolicy.serving import RemotePolicy

    with _two_replicas(tmp_path, "--log-format", "json") as (proc, port, log):
        assert http_get(f"ws://127.0.0.1:{port}", "/healthz") == (200, "OK\n")

        def client(_: int) -> list[dict]:
            with RemotePolicy(f"ws://127.0.0.1:{port}", read_timeout_s=120) as remote:
                return [remote.infer({**_observation(), "seed": 3}) for _ in range(3)]

        with ThreadPoolExecutor(4) as pool:  # concurrent requests: Ray spreads them over both replicas
            raws = [raw for replies in pool.map(client, range(4)) for raw in replies]
        replicas = {raw["server_timing"]["replica"] for raw in raws}
        chunks = [np.asarray(raw["actions"]) for raw in raws]
        assert len(replicas) == 2 and chunks[0].shape == (8, 10)
        for chunk in chunks[1:]:  # same seed, same weights: every replica gives the same chunk
            np.testing.assert_allclose(chunk, chunks[0], rtol=1e-5, atol=1e-6)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    deadline = time.monotonic() + 10  # the reader thread reaches the last line
    while "stopped" not in _events(log):
        assert time.monotonic() < deadline, "".join(log[-5:])
        time.sleep(0.1)
    events = _events(log)
    assert events["ready"] == [""] and events["stopped"] == [""]  # the command's own
    assert len(events["starting"]) == 1 and len(events["loading"]) == 2  # each replica says it loads (no --warmup)
    for event in ("connect", "disconnect", "draining"):
        assert events[event] and all("WireIngress" in prefix for prefix in events[event]), (event, events)
    assert len(events["policy_closed"]) == 2 and all("PolicyReplica" in p for p in events["policy_closed"])


def _in_session(sid: int) -> list[int]:
    """The processes still in session `sid`."""
    def sid_of(pid: int) -> int | None:
        try:
            return os.getsid(pid)
        except OSError:  # gone meanwhile
            return None

    return [int(pid) for pid in os.listdir("/proc") if pid.isdigit() and sid_of(int(pid)) == sid]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_serve_two_replicas_drains_on_a_sigterm_to_its_whole_process_group(tmp_path):
    """Slurm's scancel, systemd's control-group kill, `timeout` and `kill -- -PGID` signal the group, where the local
    Ray instance's processes are too: they ignored it once the command blocked the signal for them, so the command
    drains, stops Ray itself and exits 0, leaving no process behind (it lost Ray and died a minute later) (~35 s)."""
    with _two_replicas(tmp_path, session=True) as (proc, _, log):
        assert len(_in_session(proc.pid)) > 1  # Ray's processes are in it
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(60) == 0, "".join(log[-20:])
    deadline = time.monotonic() + 10  # the reader thread reaches the last line; SIGKILLed processes are gone
    while not (any('"event": "stopped"' in line for line in log) and not _in_session(proc.pid)):
        assert time.monotonic() < deadline, f"{_in_session(proc.pid)} left, log ends: {''.join(log[-5:])}"
        time.sleep(0.1)


@pytest.mark.slow
def test_serve_two_replicas_over_tls(tmp_path):
    """--tls-cert/--tls-key with --replicas: Serve's proxy speaks wss:// (and https:// for the probes) with the pair
    the command checked; the listening line says wss://, a certificate close to its end is warned about with a
    restart as its renewal, and SIGHUP, which cannot reload Serve's proxy, is logged and leaves it serving (~40 s)."""
    import ssl
    import time
    from datetime import UTC, datetime, timedelta

    from certificates import make_certificate
    from serving_standins import http_get

    from worldpolicy.serving import RemotePolicy

    now = datetime.now(UTC).replace(microsecond=0)  # a certificate's dates are whole seconds
    made = make_certificate(tmp_path, "server", now - timedelta(hours=1), now + timedelta(days=2))
    with _two_replicas(tmp_path, "--tls-cert", str(made.cert), "--tls-key", str(made.key)) as (proc, port, log):
        url = f"wss://127.0.0.1:{port}"
        [listening] = [line for line in log if '"event": "listening"' in line]
        assert f'"scheme": "wss", "url": "{url}"' in listening
        assert any('"event": "tls_expires_soon"' in line and "restart `worldpolicy serve --replicas`" in line
                   for line in log)
        trusting = ssl.create_default_context(cafile=str(made.cert))
        assert http_get(url, "/healthz", tls=trusting) == (200, "OK\n")
        status, metrics = http_get(url, "/metrics", tls=trusting)
        expiry = [float(line.split()[-1]) for line in metrics.splitlines()
                  if line.startswith("worldpolicy_tls_cert_expiry_timestamp_seconds ")]
        assert status == 200 and expiry == [made.not_after.timestamp()]
        with RemotePolicy(url, ca_file=made.cert, read_timeout_s=120) as remote:
            assert np.asarray(remote.infer(_observation())["actions"]).shape == (8, 10)
            proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 30
            while not any('"event": "tls_not_reloaded"' in line for line in log) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert proc.poll() is None and any('"event": "tls_not_reloaded"' in line for line in log), log[-5:]
            assert np.asarray(remote.infer(_observation())["actions"]).shape == (8, 10)  # the same connection
        with RemotePolicy(url, ca_file=made.cert, read_timeout_s=120) as remote:  # and a new one: still served
            assert np.asarray(remote.infer(_observation())["actions"]).shape == (8, 10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0


@pytest.mark.parametrize("mb", ["inf", "nan", "1e-9", "0", "4097"])
def test_max_message_mb_out_of_range_names_the_flag(tmp_path, capsys, mb):
    assert main(_serve(tmp_path, "--max-message-mb", mb)) == 2
    err = capsys.readouterr().err
    assert f"serve: error: --max-message-mb {float(mb)} is invalid; accepted: a number of MiB in (0, 4096]" in err


def test_a_negative_warmup_names_the_flag_and_what_it_accepts(tmp_path, capsys):
    assert main(_serve(tmp_path, "--warmup", "-1")) == 2
    assert "serve: error: --warmup=-1 is invalid; accepted: an int >= 0" in capsys.readouterr().err


def _checked_checkpoint(tmp_path) -> None:
    """A whole checkpoint where `_serve` names one: `Policy.check_pretrained` reads its configs and file headers
    before the port opens (a folder of model_index.json alone is refused as incomplete); the tests load nothing."""
    from worldpolicy.testing import make_tiny_checkpoint

    make_tiny_checkpoint(tmp_path / "never-loaded")


@pytest.mark.parametrize("flag", [["--api-key", "mysecretkey123"], ["--api-key=mysecretkey123"]])
def test_a_key_on_the_command_line_is_refused_without_showing_it(tmp_path, capsys, flag):
    """argparse read `--api-key KEY` as an abbreviation of `--api-key-env` and echoed the key as a variable name."""
    assert main(_serve(tmp_path, *flag)) == 2
    err = capsys.readouterr().err
    assert "--api-key: serve takes the key from an environment variable" in err and "--api-key-env WP_KEY" in err
    assert "mysecretkey123" not in err


def test_api_key_env_is_stripped_as_a_secret_file_leaves_it(tmp_path, monkeypatch):
    from worldpolicy.serving.server import PolicyServer

    _checked_checkpoint(tmp_path)
    keys = []
    monkeypatch.setattr(PolicyServer, "run", lambda self: keys.append(self.config.api_key) or 0)
    monkeypatch.setenv("WP_FILE_KEY", "s3cret-key-123\n")
    assert main(_serve(tmp_path, "--api-key-env", "WP_FILE_KEY", "--device", "cpu")) == 0
    assert keys == ["s3cret-key-123"]


@pytest.mark.parametrize(("key", "why"), [("   \n", "has 0 characters; use at least 8"),
                                          ("s3cret\nkey-123", "contains a control character")])
def test_api_key_env_no_client_could_send_is_refused(tmp_path, capsys, monkeypatch, key, why):
    monkeypatch.setenv("WP_BAD_KEY", key)
    assert main(_serve(tmp_path, "--api-key-env", "WP_BAD_KEY")) == 2
    err = capsys.readouterr().err
    assert f"serve: error: --api-key-env WP_BAD_KEY: the key {why}" in err and "key-123" not in err


def test_the_loaded_checkpoint_draws_no_progress_bar_into_the_log(tmp_path, monkeypatch):
    from worldpolicy.logcapture import loading_quietly
    from worldpolicy.policy import Policy
    from worldpolicy.serving.server import PolicyServer

    _checked_checkpoint(tmp_path)
    quiet = []
    monkeypatch.setattr(Policy, "from_pretrained", staticmethod(lambda *a, **kw: quiet.append(loading_quietly())))
    monkeypatch.setattr(PolicyServer, "run", lambda self: self.loader() or 0)
    assert main(_serve(tmp_path, "--device", "cpu")) == 0
    assert quiet == [True]  # `engine.loading.load_components` then hides diffusers' bar


def test_serve_exits_with_the_servers_code(tmp_path, monkeypatch):
    from worldpolicy.serving.server import PolicyServer

    _checked_checkpoint(tmp_path)
    monkeypatch.setattr(PolicyServer, "run", lambda self: 1)  # requests abandoned at the drain deadline
    assert main(_serve(tmp_path, "--device", "cpu")) == 1


@pytest.mark.parametrize(("given", "expected"), [([], None), (["--batch-timeout-s", "120"], 120.0)])
def test_batch_timeout_s_reaches_the_server_and_is_off_by_default(tmp_path, monkeypatch, given, expected):
    from worldpolicy.serving.server import PolicyServer

    _checked_checkpoint(tmp_path)
    seen = []
    monkeypatch.setattr(PolicyServer, "run", lambda self: seen.append(self.config.batch_timeout_s) or 0)
    assert main(_serve(tmp_path, "--device", "cpu", *given)) == 0
    assert seen == [expected]


@pytest.mark.parametrize("value", ["0", "-5", "inf"])
def test_a_bad_batch_timeout_s_names_the_flag(tmp_path, capsys, value):
    _checked_checkpoint(tmp_path)
    assert main(_serve(tmp_path, "--device", "cpu", "--batch-timeout-s", value)) == 2
    err = capsys.readouterr().err
    assert f"serve: error: --batch-timeout-s={float(value)} is invalid; accepted: None (no limit) or a finite" in err


@pytest.mark.parametrize(("given", "expected"), [([], (60.0, 2**30)),
                                                (["--message-timeout-s", "5", "--max-incoming-mb", "100"],
                                                 (5.0, 100 * 2**20))])
def test_message_timeout_and_max_incoming_reach_the_server(tmp_path, monkeypatch, given, expected):
    from worldpolicy.serving.server import PolicyServer

    _checked_checkpoint(tmp_path)
    seen = []
    monkeypatch.setattr(PolicyServer, "run",
                        lambda self: seen.append((self.config.message_timeout_s, self.config.max_incoming_bytes)) or 0)
    assert main(_serve(tmp_path, "--device", "cpu", *given)) == 0
    assert seen == [expected]


def test_max_incoming_mb_below_max_message_mb_names_both_flags(tmp_path, capsys):
    assert main(_serve(tmp_path, "--max-incoming-mb", "32")) == 2
    assert "serve: error: --max-incoming-mb 32 is invalid; accepted: a finite number of MiB at least " \
           "--max-message-mb (64)" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--message-timeout-s", "--batch-timeout-s"])
def test_a_timeout_is_switched_off_with_none(tmp_path, monkeypatch, capsys, flag):
    """`ServerConfig(message_timeout_s=None)` takes the limit off and its error said "accepted: None (no limit)", but
    `--message-timeout-s none` was refused: the limit could not be switched off from the command line."""
    from worldpolicy.serving.server import PolicyServer

    _checked_checkpoint(tmp_path)
    field = flag[2:].replace("-", "_")
    seen = []
    monkeypatch.setattr(PolicyServer, "run", lambda self: seen.append(getattr(self.config, field)) or 0)
    assert main(_serve(tmp_path, "--device", "cpu", flag, "None")) == 0
    assert seen == [None]
    with pytest.raises(SystemExit):
        main(_serve(tmp_path, "--device", "cpu", flag, "soon"))
    assert f"argument {flag}: 'soon' is invalid; accepted: a number of seconds, or none (no limit)" in \
        capsys.readouterr().err


def test_a_bad_message_timeout_s_names_the_flag(tmp_path, capsys):
    _checked_checkpoint(tmp_path)
    assert main(_serve(tmp_path, "--device", "cpu", "--message-timeout-s", "0")) == 2
    assert "serve: error: --message-timeout-s=0.0 is invalid; accepted: None (no limit) or a finite" in \
        capsys.readouterr().err


def test_serve_closes_the_policy_it_loaded_at_shutdown(tmp_path, monkeypatch):
    from worldpolicy.serving.server import PolicyServer

    _checked_checkpoint(tmp_path)
    owned = []
    monkeypatch.setattr(PolicyServer, "run", lambda self: owned.append(self.close_on_stop) or 0)
    assert main(_serve(tmp_path, "--device", "cpu")) == 0
    assert owned == [True]


def test_key_map_of_a_key_nothing_reads_fails_before_the_port_opens(tmp_path, capsys, monkeypatch):
    """A typo in the canonical name was ignored: the server came up, and every robot request was refused."""
    from worldpolicy.serving.server import PolicyServer

    _checked_checkpoint(tmp_path)
    monkeypatch.setattr(PolicyServer, "run", lambda self: pytest.fail("the server started"))
    typo = "observation/exterior_image_1=cam"
    assert main(_serve(tmp_path, "--device", "cpu", "--embodiment", "droid", "--key-map", typo)) == 2
    err = capsys.readouterr().err
    assert (f"--key-map {typo}: 'observation/exterior_image_1' is not a key embodiment 'droid/joint_pos' reads; "
            "accepted: prompt, observation/image, observation/wrist_image_left") in err


def test_bad_seed_fails_before_the_port_opens(tmp_path, capsys, monkeypatch):
    from worldpolicy.serving.server import PolicyServer

    _checked_checkpoint(tmp_path)
    monkeypatch.setattr(PolicyServer, "run", lambda self: pytest.fail("the server started"))
    assert main(_serve(tmp_path, "--device", "cpu", "--seed", "-1")) == 2
    assert "serve: error: --seed=-1 must be an integer in [0, 2**63)" in capsys.readouterr().err


def test_cuda_graphs_needs_cuda_before_the_port_opens(tmp_path, capsys, monkeypatch):
    from worldpolicy.serving.server import PolicyServer

    _checked_checkpoint(tmp_path)
    monkeypatch.setattr(PolicyServer, "run", lambda self: pytest.fail("the server started"))
    assert main(_serve(tmp_path, "--cuda-graphs", "--device", "cpu")) == 2
    assert "error: --cuda-graphs needs a CUDA device, but --device='cpu'; drop it or use --device='cuda'" in \
        capsys.readouterr().err


def test_compiling_with_batches_warns_that_shapes_compile_on_first_use(tmp_path, capsys, monkeypatch):
    from worldpolicy.serving.server import PolicyServer

    _checked_checkpoint(tmp_path)
    options = []
    monkeypatch.setattr(PolicyServer, "run", lambda self: 0)
    monkeypatch.setattr("worldpolicy.policy.Policy.check_pretrained",
                        staticmethod(lambda checkpoint, **kw: options.append(kw) or (get_embodiment("droid"),)))
    assert main(_serve(tmp_path, "--compile", "--device", "cpu")) == 0
    assert options[0]["compile"] and not options[0]["cuda_graphs"]
    warning = "--compile with --max-batch 8: the first batch of each new size and each new prompt length compiles"
    err = capsys.readouterr().err
    assert warning in err and '{"event": "compiles_per_shape", "flag": "--compile", "max_batch": 8' in err
    assert main(_serve(tmp_path, "--compile", "--max-batch", "1", "--device", "cpu")) == 0
    assert "compiles" not in capsys.readouterr().err


def test_the_first_line_says_it_is_starting_before_the_checkpoint_is_checked(tmp_path, capsys, monkeypatch):
    """Checking the checkpoint imports torch and diffusers (up to a minute on a busy machine) before `listening`: the
    log said nothing meanwhile, and the server looked hung."""
    from worldpolicy.serving.server import PolicyServer

    said_before_check = []

    def check(checkpoint, **kw):
        said_before_check.append(capsys.readouterr().err)
        return (get_embodiment("droid"),)

    monkeypatch.setattr(PolicyServer, "run", lambda self: 0)
    monkeypatch.setattr("worldpolicy.policy.Policy.check_pretrained", staticmethod(check))
    assert main(_serve(tmp_path, "--device", "cpu")) == 0
    starting = [json.loads(line.partition("worldpolicy.serving: ")[2]) for line in said_before_check[0].splitlines()]
    assert [(s["event"], s["checkpoint"], s["replicas"]) for s in starting] == [("starting", "never-loaded", 1)]


@pytest.mark.parametrize(("extra", "default"), [
    ((), "the default: steps 12, guidance 1 (the sampling preset 'small_no_cfg' of embodiment 'panda_reach')"),
    (("--embodiment", "droid"),
     "the default: steps 4, guidance 3 (the sampling preset 'droid_native' of embodiment 'droid/joint_pos')"),
])
def test_a_bad_steps_names_the_served_checkpoint_s_default(capsys, monkeypatch, extra, default):
    """`--steps 0` on the shipped model hinted "(released DROID policy: 4)", the engine's text, not the checkpoint's."""
    from worldpolicy.serving.server import PolicyServer

    monkeypatch.setattr(PolicyServer, "run", lambda self: pytest.fail("the server started"))
    assert main(["serve", "--device", "cpu", "--steps", "0", *extra]) == 2
    err = capsys.readouterr().err
    assert f"serve: error: --steps=0 must be an integer in [1, 1000]; {default}" in err and "released" not in err


def test_serve_help_states_the_defaults_the_server_and_its_recording_use():
    """`serve`'s flags repeat defaults held elsewhere (the parser must not import the server or the dataset writer to
    read them: every command's start would pay for it): each must be the one that holds the fact."""
    import argparse
    import dataclasses

    from worldpolicy.cli import build_parser
    from worldpolicy.data.lerobot import KeepSchedule
    from worldpolicy.data.served import DEFAULT_EPISODE_GAP_S
    from worldpolicy.serving.server import ServerConfig

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    flags = {a.dest: a for a in sub.choices["serve"]._actions}
    fields = {f.name: f.default for f in dataclasses.fields(ServerConfig) if f.init}
    compared = [(name, flags[name].default, fields[name]) for name in fields
                if name in flags and flags[name].default is not None]
    assert {name for name, *_ in compared} >= {"host", "port", "max_batch", "max_wait_ms", "max_queue",
                                                "max_connections", "drain_timeout_s", "event_loop"}
    assert [(name, flag) for name, flag, field in compared if flag != field] == []
    assert flags["max_incoming_mb"].default * 2**20 == fields["max_incoming_bytes"]
    assert f"(default: {DEFAULT_EPISODE_GAP_S:g};" in flags["record_episode_gap"].help
    assert f"as one ends, {KeepSchedule.EVERY_S / 60:g} minutes or more apart" in flags["record"].help


def test_replicas_are_not_judged_against_this_machines_ram(tmp_path, monkeypatch, capsys):
    """`--replicas N` loads the model on Ray's replicas, each judging its own memory as it loads: a cluster's head
    node, CPU-only and small, was refused a checkpoint past its own RAM (in fp32, the CPU's dtype) that its GPU workers
    hold, with no flag to get past it (`--device cuda` is refused where this machine has no GPU)."""
    from worldpolicy.engine import loading

    _checked_checkpoint(tmp_path)
    monkeypatch.setattr(loading, "device_memory", lambda device: (1000, None))
    calls = []
    monkeypatch.setattr(worldpolicy.serving.ray_serve, "serve_until_signal", lambda loader, **kw: calls.append(kw) or 0)
    assert main(_serve(tmp_path, "--replicas", "2")) == 0 and len(calls) == 1
    assert main(_serve(tmp_path)) == 2  # the single-process server loads here: refused before its port opens
    assert "does not fit on --device='cpu'" in capsys.readouterr().err
