"""`PolicyServer(recorder=)` / `worldpolicy serve --record`: the served run as a LeRobot dataset, one episode per
connection, written off the request path; a writer that falls behind drops records, never responses."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from ports import free_port
from serving_standins import StandInPolicy, droid_request, metric, start_server_script

from worldpolicy.cli import main
from worldpolicy.data import LeRobotDataset
from worldpolicy.data.served import ServedRunDataset, recover_served_run
from worldpolicy.serving import (
    PolicyServer,
    RemotePolicy,
    RemotePolicyError,
    ServerConfig,
    ServerError,
    ServerThread,
)
from worldpolicy.serving.recording import Exchange, Recorder

CAMERAS = ("wrist_image_left", "exterior_image_1_left", "exterior_image_2_left")


def _server(recorder: Recorder, policy: StandInPolicy | None = None) -> ServerThread:
    server = PolicyServer(policy or StandInPolicy(), ServerConfig(host="127.0.0.1", port=0), recorder=recorder)
    return ServerThread(server).start()


def test_each_connection_is_an_episode_of_what_was_sent_and_answered(tmp_path):
    root = tmp_path / "record"
    recorder = Recorder(ServedRunDataset(root, StandInPolicy().embodiment))
    thread = _server(recorder)
    sent, received = {}, {}
    try:
        for client, prompt in enumerate(("pick up the cup", "open the drawer")):
            with RemotePolicy(thread.url) as policy:
                for k in range(3):
                    request = droid_request(np.full(7, client + 0.1 * k))
                    sent.setdefault(prompt, []).append(request)
                    received.setdefault(prompt, []).append(policy.act(request, prompt).actions)
        with RemotePolicy(thread.url) as policy:  # one answered, then refused: the episode says why it ended
            policy.act(droid_request(np.zeros(7)), "fails next")
            with pytest.raises(ServerError, match="stand-in failure"):
                policy.act(droid_request(np.zeros(7)), "raise")
        assert metric(thread, "worldpolicy_records_dropped_total") == 0
    finally:
        thread.stop()

    ds = LeRobotDataset.open(root)
    assert ds.num_episodes == 3 and ds.provenance["source"] == "worldpolicy serve --record"
    fields = ds.episode_fields()
    assert [f["serving.connection"] for f in fields] == [1, 2, 3]
    assert fields[0]["serving.error"] is None and "stand-in failure" in fields[2]["serving.error"]
    for i, prompt in enumerate(("pick up the cup", "open the drawer")):
        ep = ds.episode(i)
        assert ep.task == prompt and ep.length == 3
        np.testing.assert_array_equal(ep.frames["serving.request_id"].ravel(), [0, 1, 2])
        chunks = ep.frames["action_chunk"].reshape(3, 32, 8)
        np.testing.assert_allclose(chunks, np.stack(received[prompt]), rtol=1e-6)  # float32 of what was sent back
        np.testing.assert_array_equal(ep.frames["action"], chunks[:, 0])
        for k, request in enumerate(sent[prompt]):
            np.testing.assert_allclose(ep.frames["observation.state.joint_position"][k],
                                       request["observation/joint_position"])
            for camera in CAMERAS:  # lossless: the pixels the robot sent
                np.testing.assert_array_equal(ep.videos[f"observation.images.{camera}"][k],
                                              request[f"observation/{camera}"])
    assert ds.episode(2).length == 1


class _BlockingSink:
    """A writer that cannot keep up: its first record blocks until released."""

    def __init__(self) -> None:
        self.release, self.blocked = threading.Event(), threading.Event()
        self.exchanges, self.ends, self.closed = [], [], False

    def exchange(self, record) -> None:
        self.blocked.set()
        self.release.wait(30)
        self.exchanges.append(record.request_id)

    def end(self, conn: int, error: str | None) -> None:
        self.ends.append((conn, error))

    def close(self) -> None:
        self.closed = True


class _ContinuingStandIn(StandInPolicy):
    """Continues a request's `action_prefix` as the local Policy does (its rows first, `settings["action_prefix_rows"]`)
    while `continues`; else ignores the key, as an openpi policy would."""

    continues = True

    def act(self, observation, prompt, *, action_prefix=None, **options):
        prediction = super().act(observation, prompt, **options)
        if action_prefix is not None and self.continues:
            prediction.actions[:len(action_prefix)] = action_prefix
            prediction.settings["action_prefix_rows"] = len(action_prefix)
        return prediction


def test_the_rows_a_request_s_action_prefix_supplied_are_recorded(tmp_path):
    """`serving.prefix_rows`: which of `action_chunk`'s first rows the client sent (real-time chunking), not the
    policy; 0 for a request without a prefix and for one whose policy ignored it (every row the policy's)."""
    root = tmp_path / "record"
    policy = _ContinuingStandIn()
    thread = _server(Recorder(ServedRunDataset(root, policy.embodiment)), policy)
    prefixes = [None, np.random.default_rng(1).uniform(-0.5, 0.5, (3, 8)), np.full((2, 8), 0.25)]
    try:
        with RemotePolicy(thread.url) as remote:
            received = [remote.act(droid_request(np.full(7, 0.1 * k)), "go", action_prefix=prefix).actions
                        for k, prefix in enumerate(prefixes)]
        policy.continues = False
        with RemotePolicy(thread.url) as remote, pytest.raises(RemotePolicyError, match="did not condition"):
            remote.act(droid_request(np.zeros(7)), "go", action_prefix=prefixes[1])  # answered, then refused
    finally:
        thread.stop()
    continued, ignored = LeRobotDataset.open(root).episodes()
    np.testing.assert_array_equal(continued.frames["serving.prefix_rows"].ravel(), [0, 3, 2])
    chunks = continued.frames["action_chunk"].reshape(3, 32, 8)
    np.testing.assert_array_equal(chunks, np.stack(received).astype(np.float32))
    for chunk, prefix in zip(chunks[1:], prefixes[1:], strict=True):
        np.testing.assert_array_equal(chunk[:len(prefix)], prefix.astype(np.float32))
    np.testing.assert_array_equal(ignored.frames["serving.prefix_rows"].ravel(), [0])


def test_the_server_says_at_start_that_dynamics_requests_are_not_recorded(caplog):
    """Forward and inverse dynamics are served but only policy requests recorded: a client of them found its requests
    missing from the recording with nothing having said so."""
    import logging

    from worldpolicy.serving.logformat import Event

    sink = _BlockingSink()
    sink.release.set()
    with caplog.at_level(logging.INFO, logger="worldpolicy.serving"):
        thread = _server(Recorder(sink, destination="/data/robot_run"))
        thread.stop()
    [line] = [r.msg.fields for r in caplog.records if isinstance(r.msg, Event) and r.msg.fields["event"] == "recording"]
    assert line["records"] == "mode policy requests (act)" and line["dir"] == "/data/robot_run"  # where it goes
    assert line["detail"] == ("mode forward_dynamics and inverse_dynamics requests (imagine, infer_actions) are "
                              "served, not recorded")


def test_a_writer_that_falls_behind_drops_records_not_responses():
    sink = _BlockingSink()
    thread = _server(Recorder(sink, max_pending=1))
    try:
        with RemotePolicy(thread.url) as policy:
            for k in range(6):  # all answered while the writer is stuck in the first record
                assert policy.act(droid_request(np.full(7, 0.1 * k)), "go").actions.shape == (32, 8)
        assert sink.blocked.wait(10) and not sink.exchanges
        dropped = metric(thread, "worldpolicy_records_dropped_total")
        assert dropped >= 4  # at most one being written and `max_pending` queued
        sink.release.set()
    finally:
        sink.release.set()
        thread.stop()
    assert sink.closed and sink.ends == [(1, None)]
    assert len(sink.exchanges) == 6 - dropped and sink.exchanges[0] == 0 and sink.exchanges == sorted(sink.exchanges)


SERVER_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from serving_standins import StandInPolicy
    from worldpolicy.data.served import ServedRunDataset, recover_served_run
    from worldpolicy.serving import PolicyServer, ServerConfig
    from worldpolicy.serving.recording import Recorder
    policy = StandInPolicy()
    recorder = Recorder(ServedRunDataset({root!r}, policy.embodiment))
    sys.exit(PolicyServer(policy, ServerConfig(host="127.0.0.1", port={port}), recorder=recorder).run())
    """
)


def _recording_server(tmp_path: Path) -> tuple[subprocess.Popen, int]:
    """`PolicyServer.run()` recording to tmp_path/record, in a process of its own (signals, exit code), once ready."""
    port = free_port()
    root = tmp_path / "record"
    script = tmp_path / "server.py"
    script.write_text(SERVER_SCRIPT.format(tests=str(Path(__file__).parent), root=str(root), port=port))
    return start_server_script(script, port), port


def test_sigterm_finalises_the_open_episodes(tmp_path):
    proc, port = _recording_server(tmp_path)
    root = tmp_path / "record"
    try:
        with RemotePolicy(f"ws://127.0.0.1:{port}") as policy:
            for k in range(2):
                policy.act(droid_request(np.full(7, 0.1 * k)), "still connected")
            proc.send_signal(signal.SIGTERM)  # the connection is open: its episode is finalised by the drain
            assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    ds = LeRobotDataset.open(root)
    assert ds.num_episodes == 1 and ds.episode(0).length == 2 and ds.episode(0).task == "still connected"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".record.")]  # staging and spool gone


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} was not written"
        time.sleep(0.05)


def test_a_killed_server_s_recording_is_recovered_bit_exact(tmp_path, capsys, monkeypatch):
    """SIGKILL: no drain, no finalise. Every exchange the clients received is in the spool; `serve --record` refuses
    to start over it, naming `dataset recover`, which writes it (a torn tail left out) as the dataset."""
    proc, port = _recording_server(tmp_path)
    root = tmp_path / "record"
    sent, received = {1: [], 2: []}, {1: [], 2: []}
    try:
        with RemotePolicy(f"ws://127.0.0.1:{port}") as open_at_kill:
            for k in range(2):
                sent[1].append(droid_request(np.random.default_rng(k).random(7)))
                received[1].append(open_at_kill.act(sent[1][-1], "open at the kill").actions)
            with RemotePolicy(f"ws://127.0.0.1:{port}") as closed:
                for k in range(3):
                    sent[2].append(droid_request(np.random.default_rng(10 + k).random(7)))
                    received[2].append(closed.act(sent[2][-1], "closed before").actions)
            (spool,) = tmp_path.glob(".record.writing-spool-*")
            _wait_for(spool / "2.end.json")  # written in order: connection 1's records are before its end
            proc.kill()
            proc.wait(30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert not root.exists()
    with open(spool / "1.values", "ab") as values:  # the kill cut a record short: left out, said
        values.write(b"\x40\x00\x00\x00\x01")

    from worldpolicy.policy import Policy

    monkeypatch.setattr(Policy, "from_pretrained", lambda *a, **k: pytest.fail("the model loaded"))
    assert main(_serve(tmp_path, "--record", str(root))) == 2
    err = capsys.readouterr().err
    assert f"error: --record: a server recording to {str(root)!r} was killed" in err
    assert f"worldpolicy dataset recover {spool} --out {root}" in err and spool.is_dir()

    assert main(["dataset", "recover", str(spool), "--out", str(root)]) == 0
    err = capsys.readouterr().err
    assert "connection 1: 1 record half-written at the kill was left out" in err
    assert err.count("left out") == 1  # said once, by the command, not again by the library's log
    assert "connection 1 was open at the kill" in err
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".record.")]  # spool and dead staging gone
    ds = LeRobotDataset.open(root)
    assert ds.provenance["source"] == "worldpolicy serve --record"
    assert [(f["serving.connection"], f["serving.killed"], f["serving.error"]) for f in ds.episode_fields()] == [
        (1, True, None), (2, False, None)]
    for i, conn in enumerate((1, 2)):
        ep = ds.episode(i)
        assert ep.length == len(sent[conn])
        np.testing.assert_array_equal(ep.frames["serving.request_id"].ravel(), range(len(sent[conn])))
        np.testing.assert_array_equal(ep.frames["action_chunk"].reshape(-1, 32, 8),
                                      np.stack(received[conn]).astype(np.float32))  # bit for bit
        for k, request in enumerate(sent[conn]):
            np.testing.assert_array_equal(ep.frames["observation.state.joint_position"][k],
                                          np.float32(request["observation/joint_position"]))
            for camera in CAMERAS:
                np.testing.assert_array_equal(ep.videos[f"observation.images.{camera}"][k],
                                              request[f"observation/{camera}"])
    assert ds.episode(0).task == "open at the kill" and ds.episode(1).task == "closed before"


def test_a_running_server_s_spool_is_not_touched(tmp_path):
    embodiment = StandInPolicy().embodiment
    root = tmp_path / "record"
    sink = ServedRunDataset(root, embodiment)
    sink.exchange(_exchange(1, 0, np.zeros((6, 10, 3), np.uint8)))
    (spool,) = tmp_path.glob(".record.writing-spool-*")
    files = sorted((p.name, p.stat().st_size) for p in spool.iterdir())
    # said as what it is (they said "in use by another worldpolicy process ... choose another spool", naming the spool)
    with pytest.raises(ValueError, match=re.escape(f"spool: '{spool}' belongs to a running server (PID {os.getpid()}),"
                                                   " still recording to it; stop it first")):
        recover_served_run(spool, root)
    with pytest.raises(ValueError, match=re.escape(f"out: a running server (PID {os.getpid()}) is recording to "
                                                   f"'{root}'; stop it first, or choose another out")):
        ServedRunDataset(root, embodiment)  # a second server recording to DIR
    assert sorted((p.name, p.stat().st_size) for p in spool.iterdir()) == files and not root.exists()
    sink.close()
    assert LeRobotDataset.open(root).episode_fields() == [
        {"serving.connection": 1, "serving.connection_episode": 0, "serving.error": None, "serving.killed": False}]
    assert not spool.exists()


def _serve(tmp_path, *extra: str) -> list[str]:
    from worldpolicy.testing import make_tiny_checkpoint

    make_tiny_checkpoint(tmp_path / "ckpt")
    return ["serve", "--checkpoint", str(tmp_path / "ckpt"), "--device", "cpu", *extra]


def test_a_bad_record_folder_is_refused_before_the_model_loads(tmp_path, capsys, monkeypatch):
    from worldpolicy.policy import Policy

    monkeypatch.setattr(Policy, "from_pretrained", lambda *a, **k: pytest.fail("the model loaded"))
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    assert main(_serve(tmp_path, "--record", str(tmp_path / "file" / "rec"))) == 2
    assert "error: --record: " in capsys.readouterr().err
    assert main(_serve(tmp_path, "--record", str(tmp_path / "full"), "--overwrite")) == 2
    assert "error: --record: " in capsys.readouterr().err and (tmp_path / "full" / "notes.txt").read_text() == "mine"
    assert main(_serve(tmp_path, "--overwrite")) == 2
    assert "--overwrite replaces an earlier recording at --record DIR" in capsys.readouterr().err
    assert main(_serve(tmp_path, "--record", str(tmp_path / "rec"), "--replicas", "2")) == 2
    assert "--record records the single-process server" in capsys.readouterr().err


def test_recording_is_not_set_up_without_a_recorder():
    server = PolicyServer(StandInPolicy(), ServerConfig(host="127.0.0.1", port=0))
    assert server.recorder is None and not hasattr(server._metrics, "records_dropped")


def _exchange(conn: int, request_id: int, image: np.ndarray) -> Exchange:
    return Exchange(conn, request_id, "wave", {"observation/image": image}, np.zeros(8), np.ones((32, 8)), 0, 0.0,
                    1.0, 2.0, 3.0, 1)


def test_overwrite_replaces_only_an_earlier_recording(tmp_path):
    embodiment = StandInPolicy().embodiment
    root = tmp_path / "record"
    sink = ServedRunDataset(root, embodiment)
    pixels = np.random.default_rng(0).random((3, 6, 10)).astype(np.float32)  # float, channels first
    sink.exchange(_exchange(1, 0, pixels))
    sink.exchange(_exchange(1, 1, np.zeros((5, 5, 3), np.uint8)))  # another frame size: skipped, not recorded
    sink.close()
    ds = LeRobotDataset.open(root)
    assert ds.num_episodes == 1 and sink.skipped == 1
    np.testing.assert_array_equal(ds.episode(0).videos["observation.images.image"][0],
                                  np.round(pixels.transpose(1, 2, 0) * 255).astype(np.uint8))
    np.testing.assert_array_equal(ds.episode(0).frames["observation.state"][0], np.zeros(8))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ServedRunDataset(root, embodiment)
    again = ServedRunDataset(root, embodiment, overwrite=True)
    again.exchange(_exchange(4, 0, pixels))
    again.exchange(_exchange(5, 0, pixels))
    again.close()
    assert [f["serving.connection"] for f in LeRobotDataset.open(root).episode_fields()] == [4, 5]


def test_a_connection_s_skipped_requests_are_said_once_then_counted(tmp_path, caplog):
    """A robot whose frames were not the recording's size logged a warning for every request it sent (one a tick),
    burying the log; a connection skipped throughout (it has no spool) is counted too, also when still open at close."""
    sink = ServedRunDataset(tmp_path / "record", StandInPolicy().embodiment)
    small = np.zeros((5, 5, 3), np.uint8)
    sink.exchange(_exchange(1, 0, np.zeros((6, 10, 3), np.uint8)))  # fixes the features
    with caplog.at_level(logging.WARNING, logger="worldpolicy.data.served"):
        for request_id in range(4):
            sink.exchange(_exchange(2, request_id, small))
            sink.exchange(_exchange(3, request_id, small))
        sink.end(2, None)
        sink.close()
    lines = [r.getMessage() for r in caplog.records]
    assert sum("not recorded: observation.images.image has shape [5, 5, 3]" in line for line in lines) == 2
    assert "serve --record: connection 2: 4 requests not recorded" in lines[2]
    assert "serve --record: connection 3: 4 requests not recorded" in lines[3] and sink.skipped == 8
    assert LeRobotDataset.open(tmp_path / "record").num_episodes == 1


def test_a_record_cut_short_in_the_spool_is_counted_in_words(tmp_path, caplog):
    """A spool write that failed mid-record: the warning said "1 record(s) ... were cut short", not a sentence."""
    sink = ServedRunDataset(tmp_path / "record", StandInPolicy().embodiment)
    (spool,) = tmp_path.glob(".record.writing-spool-*")
    sink.exchange(_exchange(1, 0, np.zeros((6, 10, 3), np.uint8)))
    sink.exchange(_exchange(1, 1, np.zeros((6, 10, 3), np.uint8)))
    with open(spool / "1.values", "ab") as values:  # a record's header, its payload never written
        values.write(b"\x40\x00\x00\x00\x01")
    with caplog.at_level(logging.WARNING, logger="worldpolicy.data.served"):
        sink.end(1, None)
    sink.close()
    assert ("serve --record: connection 1 episode 0: 1 record at the end of its spool was cut short (a spool write "
            "that failed) and is left out") in caplog.text
    assert LeRobotDataset.open(tmp_path / "record").num_episodes == 1


def test_recover_given_the_record_folder_names_its_spool(tmp_path):
    """A user who passes `--record DIR` to `dataset recover` in place of its spool is told where the spool is."""
    root = tmp_path / "record"
    sink = ServedRunDataset(root, StandInPolicy().embodiment)
    sink.exchange(_exchange(1, 0, np.zeros((6, 10, 3), np.uint8)))
    (spool,) = tmp_path.glob(".record.writing-spool-*")
    message = f"'{root}' does not exist; the spool a server recording to it left is '{spool}'"
    with pytest.raises(ValueError, match=re.escape(message)):
        recover_served_run(root, tmp_path / "out")
    with pytest.raises(ValueError, match="'.*elsewhere' does not exist; a killed server leaves it beside"):
        recover_served_run(tmp_path / "elsewhere", tmp_path / "out")
    with pytest.raises(ValueError, match=re.escape(f"'{spool / 'run.json'}' is a file in the spool; give the spool's "
                                                   f"folder, '{spool}'")):  # a tab completion one step too far
        recover_served_run(spool / "run.json", tmp_path / "out")
    sink.close()


def test_recordings_with_and_without_an_error_merge(tmp_path, capsys):
    """`serving.error` was typed null in a run where no connection ended on an error, so `dataset merge` refused that
    run beside one where one did (string): the column is a string column either way."""
    import pyarrow as pa

    embodiment = StandInPolicy().embodiment
    for name, error in (("clean", None), ("refused", "bad request: steps=0")):
        sink = ServedRunDataset(tmp_path / name, embodiment)
        sink.exchange(_exchange(1, 0, np.zeros((6, 10, 3), np.uint8)))
        sink.end(1, error)
        sink.close()
        assert LeRobotDataset.open(tmp_path / name).episode_columns().schema.field("serving.error").type == pa.string()
    assert main(["dataset", "merge", str(tmp_path / "clean"), str(tmp_path / "refused"), "--out",
                 str(tmp_path / "both"), "--no-progress"]) == 0
    assert [f["serving.error"] for f in LeRobotDataset.open(tmp_path / "both").episode_fields()] == [
        None, "bad request: steps=0"]


def test_a_run_that_recorded_nothing_leaves_no_folder_it_made(tmp_path, caplog):
    """`serve --record newparent/deep/day1` stopped before any request left `newparent/deep/` behind."""
    embodiment = StandInPolicy().embodiment
    (tmp_path / "kept").mkdir()
    ServedRunDataset(tmp_path / "kept" / "new" / "deep" / "day1", embodiment).close()
    assert [p.name for p in tmp_path.iterdir()] == ["kept"] and not any((tmp_path / "kept").iterdir())
    sink = ServedRunDataset(tmp_path / "kept" / "deep" / "day2", embodiment)
    sink.exchange(_exchange(1, 0, np.zeros((6, 10, 3), np.uint8)))
    with caplog.at_level("INFO", logger="worldpolicy.data.served"):
        sink.close()
    assert LeRobotDataset.open(tmp_path / "kept" / "deep" / "day2").num_episodes == 1
    assert f"serve --record: 1 episode written to {tmp_path / 'kept' / 'deep' / 'day2'}" in caplog.messages


def test_recovering_elsewhere_removes_the_killed_server_s_staging(tmp_path):
    """The half-built staging folder a killed server's writer left beside --record DIR is removed by a recovery into
    another --out too (a dead writer's, swept as `fileio.sweep_scratch_folders` sweeps every one)."""
    embodiment = StandInPolicy().embodiment
    root = tmp_path / "record"
    sink = ServedRunDataset(root, embodiment)
    sink.exchange(_exchange(1, 0, np.zeros((6, 10, 3), np.uint8)))
    sink.end(1, None)  # the writer and its staging folder exist from the first closed connection
    (stage,) = tmp_path.glob(".record.writing-????????")
    _kill(sink)
    (spool,) = tmp_path.glob(".record.writing-spool-*")
    recovered = recover_served_run(spool, tmp_path / "elsewhere")
    assert recovered.dataset.num_episodes == 1 and not stage.exists() and not spool.exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".record.")]


def test_recovering_a_spool_no_exchange_reached_says_so_once(tmp_path, capsys):
    """A server killed before any reply leaves a spool without features: `dataset recover` removes it and says so in
    one line (a log line said it too, so a user read it twice)."""
    root = tmp_path / "record"
    sink = ServedRunDataset(root, StandInPolicy().embodiment)
    sink._lock.close()  # the server killed: its lock goes with it
    (spool,) = tmp_path.glob(".record.writing-spool-*")
    assert main(["dataset", "recover", str(spool), "--out", str(root)]) == 0
    err = capsys.readouterr().err
    assert err.count("no exchange reached") == 1, err
    assert f"worldpolicy dataset recover: no exchange reached {spool}; nothing to recover, the spool was removed" in err
    assert not spool.exists() and not root.exists()


def test_recovering_a_spool_whose_every_record_was_cut_short_says_so(tmp_path, capsys):
    """A kill that cut every record short leaves records, none whole: `dataset recover` lists them and says that no
    whole record reached the spool (it said "no exchange reached", untrue after the torn lines it had just printed)."""
    root = tmp_path / "record"
    sink = ServedRunDataset(root, StandInPolicy().embodiment)
    sink.exchange(_exchange(1, 0, np.zeros((6, 10, 3), np.uint8)))
    sink._lock.close()  # the server killed: its lock goes with it
    (spool,) = tmp_path.glob(".record.writing-spool-*")
    values = spool / "1.values"
    values.write_bytes(values.read_bytes()[:-3])  # the kill cut its only record short
    assert main(["dataset", "recover", str(spool), "--out", str(root)]) == 0
    err = capsys.readouterr().err
    assert "connection 1: 1 record half-written at the kill was left out" in err
    assert (f"worldpolicy dataset recover: no whole record reached {spool}; nothing to recover, the spool was removed"
            in err) and "no exchange reached" not in err
    assert not spool.exists() and not root.exists()


def test_a_killed_connection_whose_every_record_was_cut_short_is_not_said_to_have_an_episode(tmp_path, capsys):
    """Two connections open at the kill, one with a whole record and one whose only record was cut short: only the
    first is an episode, so only it is named as open at the kill (`serving.killed`); the other is reported torn."""
    root = tmp_path / "record"
    sink = ServedRunDataset(root, StandInPolicy().embodiment)
    sink.exchange(_exchange(1, 0, np.zeros((6, 10, 3), np.uint8)))
    sink.exchange(_exchange(2, 0, np.zeros((6, 10, 3), np.uint8)))
    sink._lock.close()  # the server killed: its lock goes with it
    (spool,) = tmp_path.glob(".record.writing-spool-*")
    values = spool / "2.values"
    values.write_bytes(values.read_bytes()[:-3])  # the kill cut connection 2's only record short
    assert main(["dataset", "recover", str(spool), "--out", str(root)]) == 0
    err = capsys.readouterr().err
    assert "connection 2: 1 record half-written at the kill was left out" in err
    assert "connection 1 was open at the kill: its episodes have serving.killed true" in err, err
    ds = LeRobotDataset.open(root)
    assert ds.num_episodes == 1


def test_a_spool_written_before_prefix_rows_is_recovered_without_it(tmp_path, monkeypatch):
    """A spool describes its own records (features.json): one a version without `serving.prefix_rows` left is
    recovered as the dataset it was recording, every other value bit for bit."""
    from worldpolicy.data import served

    frame = served.ServedRunDataset._frame
    monkeypatch.setattr(served.ServedRunDataset, "_frame", lambda self, record: {
        key: value for key, value in frame(self, record).items() if key != "serving.prefix_rows"})
    root = tmp_path / "record"
    sink = ServedRunDataset(root, StandInPolicy().embodiment)
    for k in range(2):
        sink.exchange(_exchange(1, k, np.full((6, 10, 3), k, np.uint8)))
    sink._lock.close()  # the server killed: its lock goes with it
    monkeypatch.undo()
    (spool,) = tmp_path.glob(".record.writing-spool-*")
    ep = recover_served_run(spool, root).dataset.episode(0)
    assert "serving.prefix_rows" not in ep.frames and ep.length == 2
    np.testing.assert_array_equal(ep.frames["serving.request_id"].ravel(), [0, 1])
    np.testing.assert_array_equal(ep.frames["action_chunk"], np.ones((2, 256), np.float32))


@pytest.mark.parametrize("flags", [[], ["--no-progress"]])
def test_dataset_recover_shows_its_progress_unless_told_not_to(tmp_path, capsys, flags):
    """A day's recording is hours of frames to encode: `dataset recover` counts the episodes on stderr, as the
    other dataset commands count theirs, and says of how many connections (the bar said "recovering 2 connections"
    over 3 episodes); --no-progress, as theirs, turns it off."""
    root = tmp_path / "record"
    sink = ServedRunDataset(root, StandInPolicy().embodiment)
    image = np.zeros((6, 10, 3), np.uint8)
    for conn, prompt in ((1, "pick"), (2, "pick"), (1, "place")):  # connection 1's prompt changes: a 2nd episode
        sink.exchange(_timed(conn, 0, prompt, 100.0, image))
    _kill(sink)  # before a connection ended
    (spool,) = tmp_path.glob(".record.writing-spool-*")
    assert main(["dataset", "recover", str(spool), "--out", str(root), *flags]) == 0
    assert ("recovering 3 episodes of 2 connections" in capsys.readouterr().err) == (not flags)
    assert LeRobotDataset.open(root).num_episodes == 3


def test_ctrl_c_during_dataset_recover_keeps_the_spool_to_rerun(tmp_path, capsys, monkeypatch):
    """Ctrl-C while the spool is encoded said only "interrupted": the spool is kept whole (removed only once the
    dataset is published) and nothing is at --out, so the same command recovers it; the user is told so."""
    from worldpolicy.data import served

    root = tmp_path / "record"
    sink = ServedRunDataset(root, StandInPolicy().embodiment)
    for conn in (1, 2):
        sink.exchange(_exchange(conn, 0, np.zeros((6, 10, 3), np.uint8)))
    sink._lock.close()  # the server killed: its lock gone with it
    (spool,) = tmp_path.glob(".record.writing-spool-*")
    files = sorted((p.name, p.read_bytes()) for p in spool.iterdir())
    real = served._add_episode

    def interrupted(writer, spool, features, episode, error, *, killed):
        if episode[0] == 2:
            raise KeyboardInterrupt
        return real(writer, spool, features, episode, error, killed=killed)

    monkeypatch.setattr(served, "_add_episode", interrupted)
    assert main(["dataset", "recover", str(spool), "--out", str(root), "--no-progress"]) == 130
    assert capsys.readouterr().err == (f"worldpolicy dataset recover: interrupted; nothing was written to {root} (a "
                                       f"dataset already there is unchanged) and the spool {spool} is kept as it was: "
                                       "rerun the command to recover it\n")
    assert sorted((p.name, p.read_bytes()) for p in spool.iterdir()) == files and not root.exists()
    monkeypatch.setattr(served, "_add_episode", real)
    assert main(["dataset", "recover", str(spool), "--out", str(root), "--no-progress"]) == 0
    assert LeRobotDataset.open(root).num_episodes == 2 and not spool.exists()


def test_serve_record_s_recording_line_names_the_folder(tmp_path):
    """The `recording` line said what is recorded but not where: a server started among several had to be asked."""
    import argparse

    from worldpolicy.serving.commands import _recorder

    root = tmp_path / "robot_run"
    recorder = _recorder(argparse.Namespace(record=str(root), overwrite=False, checkpoint="shipped",
                                            record_episode_gap=None), StandInPolicy().embodiment)
    try:
        assert recorder.destination == str(root)
    finally:
        recorder.close()


def _keeping_recording(tmp_path: Path, monkeypatch) -> tuple[Path, ServedRunDataset, Path]:
    """A recording at `tmp_path / "record"` and its spool, kept at every connection's end (the keep's due time and
    cost share out of the way: no clock involved)."""
    from worldpolicy.data.lerobot import KeepSchedule

    monkeypatch.setattr(KeepSchedule, "EVERY_S", 0.0)
    monkeypatch.setattr(KeepSchedule, "COST_SHARE", float("inf"))
    root = tmp_path / "record"
    sink = ServedRunDataset(root, StandInPolicy().embodiment)
    (spool,) = tmp_path.glob(".record.writing-spool-*")
    return root, sink, spool


def _kill(sink: ServedRunDataset) -> None:
    """The server killed: its locks go with it (its writer's hold and the --record DIR lock)."""
    sink._writer._hold.release()
    sink._lock.close()


def _connections(root: Path) -> list[int]:
    return [f["serving.connection"] for f in LeRobotDataset.open(root).episode_fields()]


def test_finished_connections_are_kept_at_dir_while_the_server_runs(tmp_path, monkeypatch):
    """A server runs for days: nothing was readable at DIR until it stopped, and its spool only grew. A closed
    connection's episode is published on the keep schedule and its spool files go; an open one's stay."""
    root, sink, spool = _keeping_recording(tmp_path, monkeypatch)
    images = np.random.default_rng(0).integers(0, 255, (3, 6, 10, 3), np.uint8)
    sink.exchange(_exchange(1, 0, images[0]))
    sink.exchange(_exchange(2, 0, images[1]))
    sink.exchange(_exchange(1, 1, images[2]))
    sink.end(1, None)
    assert _connections(root) == [1]  # while connection 2 is open
    np.testing.assert_array_equal(LeRobotDataset.open(root).episode(0).videos["observation.images.image"],
                                  images[[0, 2]])
    assert sorted(p.name for p in spool.iterdir()) == [
        ".worldpolicy.lock", "2-observation.images.image.u8", "2.values", "features.json", "kept.json",
        "run.json"]  # 1's went
    sink.close()
    assert _connections(root) == [1, 2] and not spool.exists()


def _packets(ds: LeRobotDataset, episode: int) -> list[bytes]:
    with ds.encoded_segment(episode, "observation.images.image") as segment:
        return [bytes(packet) for packet in segment.packets]


def test_a_killed_server_s_kept_episodes_stay_and_its_spool_is_added_once(tmp_path, monkeypatch, capsys):
    """SIGKILL after keeps: `dataset recover` adds the spool's connections (one closed, one open at the kill) to the
    dataset kept at DIR, in connection order, each once, also a connection kept whose spool files the kill left
    (killed between the keep and their removal); the kept episodes are copied as they are, not encoded again."""
    from worldpolicy.data.lerobot import EpisodeVideoStream, KeepSchedule

    root, sink, spool = _keeping_recording(tmp_path, monkeypatch)
    images = np.random.default_rng(1).integers(0, 255, (6, 6, 10, 3), np.uint8)
    sink.exchange(_exchange(1, 0, images[0]))
    sink.exchange(_exchange(1, 1, images[1]))
    sink.end(1, None)
    sink.exchange(_exchange(2, 0, images[2]))
    sink.exchange(_exchange(3, 0, images[3]))  # open at the kill
    spooled_2 = {p.name: p.read_bytes() for p in spool.glob("2*")}
    sink.end(2, "bad request: steps=0")
    for name, data in spooled_2.items():  # killed before the keep removed them: their end too
        (spool / name).write_bytes(data)
    (spool / "2.end.json").write_text('{"error": "bad request: steps=0"}')
    kept = LeRobotDataset.open(root)
    assert _connections(root) == [1, 2]
    kept_packets = [_packets(kept, i) for i in range(2)]
    monkeypatch.setattr(KeepSchedule, "EVERY_S", 1e9)  # connection 4 closes and is not kept before the kill
    sink.exchange(_exchange(4, 0, images[4]))
    sink.exchange(_exchange(4, 1, images[5]))
    sink.end(4, None)
    _kill(sink)
    del sink
    with pytest.raises(ValueError, match="was killed and left what it had not yet kept there in"):  # not "overwrite"
        ServedRunDataset(root, StandInPolicy().embodiment)

    encoded = []
    append = EpisodeVideoStream.append
    monkeypatch.setattr(EpisodeVideoStream, "append",
                        lambda self, blocks: (encoded.extend(len(b) for b in blocks.values()), append(self, blocks)))
    assert main(["dataset", "recover", str(spool), "--out", str(root), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "the 2 episodes the server kept before the kill come first, then 2 from the spool" in err
    assert "connection 3 was open at the kill" in err
    assert sum(encoded) == 3  # connections 3 and 4's frames: the kept ones' are copied
    ds = LeRobotDataset.open(root)
    assert [(f["serving.connection"], f["serving.killed"], f["serving.error"]) for f in ds.episode_fields()] == [
        (1, False, None), (2, False, "bad request: steps=0"), (3, True, None), (4, False, None)]
    assert [_packets(ds, i) for i in range(2)] == kept_packets  # bit for bit
    for i, frames in enumerate(([0, 1], [2], [3], [4, 5])):
        np.testing.assert_array_equal(ds.episode(i).videos["observation.images.image"], images[frames])
    assert not spool.exists() and not [p.name for p in tmp_path.iterdir() if p.name.startswith(".record.")]


def test_a_killed_server_s_recording_recovered_elsewhere_copies_what_it_kept(tmp_path, monkeypatch):
    """`dataset recover SPOOL --out OTHER`: the episodes kept at DIR come first there too; DIR keeps them."""
    root, sink, spool = _keeping_recording(tmp_path, monkeypatch)
    sink.exchange(_exchange(1, 0, np.zeros((6, 10, 3), np.uint8)))
    sink.end(1, None)
    sink.exchange(_exchange(2, 0, np.ones((6, 10, 3), np.uint8)))
    _kill(sink)
    recovered = recover_served_run(spool, tmp_path / "elsewhere")
    assert (recovered.kept, recovered.killed) == (1, [2]) and _connections(tmp_path / "elsewhere") == [1, 2]
    assert _connections(root) == [1] and not spool.exists()


def test_a_server_killed_with_everything_kept_is_recovered_leaving_dir_untouched(tmp_path, monkeypatch, capsys):
    """Killed with no connection open and none closed since the last keep: DIR holds it all; recovery removes the
    spool and writes nothing (the same files at DIR)."""
    root, sink, spool = _keeping_recording(tmp_path, monkeypatch)
    sink.exchange(_exchange(1, 0, np.zeros((6, 10, 3), np.uint8)))
    sink.end(1, None)
    _kill(sink)
    files = {p: p.stat().st_ino for p in root.rglob("*") if p.is_file()}
    assert main(["dataset", "recover", str(spool), "--out", str(root)]) == 0
    assert "the 1 episode the server kept before the kill comes first, then 0 from the spool" in capsys.readouterr().err
    assert {p: p.stat().st_ino for p in root.rglob("*") if p.is_file()} == files and not spool.exists()


def _timed(conn: int, request_id: int, prompt: str, received: float, image: np.ndarray,
           total_ms: float = 2.0) -> Exchange:
    """An exchange of `prompt` that arrived at `received` (UNIX s) and was answered `total_ms` later."""
    return Exchange(conn, request_id, prompt, {"observation/image": image}, np.zeros(8), np.ones((32, 8)), 0, received,
                    1.0, 2.0, total_ms, 1)


def _episodes(root: Path) -> list[tuple[int, int]]:
    return [(f["serving.connection"], f["serving.connection_episode"])
            for f in LeRobotDataset.open(root).episode_fields()]


def test_one_connection_s_session_is_split_at_a_prompt_change_and_at_a_pause(tmp_path):
    """openpi clients keep one connection for a whole session (no episode boundary on the wire): it was one episode.
    A new prompt starts the next episode, and so does a pause longer than the gap between a reply and the next request
    (a reset); a slow reply (a compile) is no pause: it is measured from the reply, not from the request before."""
    root = tmp_path / "record"
    sink = ServedRunDataset(root, StandInPolicy().embodiment, episode_gap_s=5.0)
    images = np.random.default_rng(2).integers(0, 255, (7, 6, 10, 3), np.uint8)
    sent = [("pick the cup", 100.0, 40_000.0),  # answered 40 s later: the next request, 40.5 s on, is the same episode
            ("pick the cup", 140.5, 2.0), ("pick the cup", 141.1, 2.0),
            ("place it", 141.7, 2.0), ("place it", 142.3, 2.0),  # a new prompt
            ("place it", 152.3, 2.0), ("place it", 152.9, 2.0)]  # the same prompt after a 10 s reset
    for k, (prompt, received, total_ms) in enumerate(sent):
        sink.exchange(_timed(1, k, prompt, received, images[k], total_ms))
    sink.end(1, "bad request: steps=0")
    sink.close()
    ds = LeRobotDataset.open(root)
    assert _episodes(root) == [(1, 0), (1, 1), (1, 2)]
    assert [f["serving.error"] for f in ds.episode_fields()] == [None, None, "bad request: steps=0"]
    for i, (task, frames) in enumerate((("pick the cup", [0, 1, 2]), ("place it", [3, 4]), ("place it", [5, 6]))):
        ep = ds.episode(i)
        assert ep.task == task
        np.testing.assert_array_equal(ep.frames["serving.request_id"].ravel(), frames)
        np.testing.assert_array_equal(ep.videos["observation.images.image"], images[frames])


def test_an_episode_gap_of_0_records_one_episode_per_connection(tmp_path):
    root = tmp_path / "record"
    sink = ServedRunDataset(root, StandInPolicy().embodiment, episode_gap_s=0)
    for k, (prompt, received) in enumerate((("pick", 100.0), ("place", 100.5), ("place", 1000.0))):
        sink.exchange(_timed(1, k, prompt, received, np.zeros((6, 10, 3), np.uint8)))
    sink.close()
    assert _episodes(root) == [(1, 0)] and LeRobotDataset.open(root).episode(0).length == 3
    with pytest.raises(ValueError, match=re.escape("episode_gap_s=-1.0 is invalid; accepted: seconds >= 0")):
        ServedRunDataset(tmp_path / "other", StandInPolicy().embodiment, episode_gap_s=-1.0)


def test_a_still_open_connection_s_finished_episodes_are_kept_and_leave_the_spool(tmp_path, monkeypatch):
    """A session's connection stays open all day: its finished episodes are kept at DIR by the next keep, and their
    spool files go, while it goes on."""
    root, sink, spool = _keeping_recording(tmp_path, monkeypatch)
    images = np.random.default_rng(3).integers(0, 255, (5, 6, 10, 3), np.uint8)
    sink.exchange(_timed(1, 0, "pick", 100.0, images[0]))
    sink.exchange(_timed(1, 1, "pick", 100.5, images[1]))
    assert not root.exists()
    sink.exchange(_timed(1, 2, "place", 101.0, images[2]))  # the first episode ends: kept
    assert _episodes(root) == [(1, 0)]
    np.testing.assert_array_equal(LeRobotDataset.open(root).episode(0).videos["observation.images.image"], images[:2])
    assert sorted(p.name for p in spool.glob("1*")) == ["1.1-observation.images.image.u8", "1.1.values"]
    sink.exchange(_timed(1, 3, "place", 200.0, images[3]))  # after a reset: the second ends
    sink.exchange(_timed(1, 4, "place", 200.5, images[4]))
    assert _episodes(root) == [(1, 0), (1, 1)]
    assert sorted(p.name for p in spool.glob("1*")) == ["1.2-observation.images.image.u8", "1.2.values"]
    sink.close()
    assert _episodes(root) == [(1, 0), (1, 1), (1, 2)] and not spool.exists()
    np.testing.assert_array_equal(LeRobotDataset.open(root).episode(2).videos["observation.images.image"], images[3:])


def test_a_killed_server_s_split_connection_is_recovered_each_exchange_once(tmp_path, monkeypatch):
    """SIGKILL mid-session: the episodes kept at DIR (one kept whose spool files the kill left), one ended but not yet
    kept, the one open at the kill and another connection's: each exchange is in the recovered dataset once."""
    from worldpolicy.data.lerobot import KeepSchedule

    root, sink, spool = _keeping_recording(tmp_path, monkeypatch)
    images = np.random.default_rng(4).integers(0, 255, (8, 6, 10, 3), np.uint8)
    sink.exchange(_timed(1, 0, "pick", 100.0, images[0]))
    sink.exchange(_timed(1, 1, "pick", 100.5, images[1]))
    spooled = {p.name: p.read_bytes() for p in spool.glob("1*")}
    sink.exchange(_timed(1, 2, "place", 101.0, images[2]))  # episode 0 ends and is kept
    for name, data in spooled.items():  # killed before the keep removed its files: their end too
        (spool / name).write_bytes(data)
    (spool / "1.end.json").write_text('{"error": null}')
    monkeypatch.setattr(KeepSchedule, "EVERY_S", 1e9)  # nothing more is kept before the kill
    sink.exchange(_timed(2, 0, "wave", 101.2, images[3]))
    sink.end(2, None)
    sink.exchange(_timed(1, 3, "place", 101.5, images[4]))
    sink.exchange(_timed(1, 4, "place", 200.0, images[5]))  # after a reset: episode 1 ends, not kept
    sink.exchange(_timed(1, 5, "place", 200.5, images[6]))  # open at the kill
    _kill(sink)
    assert _episodes(root) == [(1, 0)]
    recovered = recover_served_run(spool, root)
    assert (recovered.kept, recovered.killed, recovered.torn) == (1, [1], {})
    ds = recovered.dataset
    assert _episodes(root) == [(1, 0), (1, 1), (1, 2), (2, 0)]
    assert [f["serving.killed"] for f in ds.episode_fields()] == [False, False, True, False]
    frames = [[0, 1], [2, 4], [5, 6], [3]]
    for i, want in enumerate(frames):
        np.testing.assert_array_equal(ds.episode(i).videos["observation.images.image"], images[want])
    assert [ds.episode(i).task for i in range(4)] == ["pick", "place", "place", "wave"]
    assert sorted(k for want in frames for k in want) == list(range(7)) and not spool.exists()


def test_record_episode_gap_is_checked_before_the_model_loads(tmp_path, capsys, monkeypatch):
    import argparse

    from worldpolicy.cli import build_parser
    from worldpolicy.policy import Policy
    from worldpolicy.serving.commands import _recorder

    monkeypatch.setattr(Policy, "from_pretrained", lambda *a, **k: pytest.fail("the model loaded"))
    for bad in ("-1", "soon", "inf"):
        with pytest.raises(SystemExit):
            main(_serve(tmp_path, "--record", str(tmp_path / "rec"), "--record-episode-gap", bad))
        assert f"argument --record-episode-gap: {bad!r} is invalid; accepted: seconds >= 0" in capsys.readouterr().err
    assert main(_serve(tmp_path, "--record-episode-gap", "30")) == 2
    assert "--record-episode-gap splits what --record DIR records" in capsys.readouterr().err
    assert not (tmp_path / "rec").exists()
    for given, gap in ((None, 5.0), ("none", 0.0), ("0", 0.0), ("12.5", 12.5)):
        args = build_parser().parse_args(["serve", "--record", str(tmp_path / "rec"),
                                          *(["--record-episode-gap", given] if given else [])])
        recorder = _recorder(argparse.Namespace(record=args.record, overwrite=False, checkpoint="shipped",
                                                record_episode_gap=args.record_episode_gap),
                             StandInPolicy().embodiment)
        try:
            assert recorder.sink.episode_gap_s == gap
        finally:
            recorder.close()


def test_recovering_into_an_older_copy_of_dir_takes_the_latest_keep(tmp_path, monkeypatch):
    """A copy of DIR taken mid-run (a backup, a folder to look at) holds an earlier keep of the same run: recovering
    into it added the spool to that keep and left out the episodes kept at DIR since, whose spool files were gone. The
    latest keep (the most episodes: each keep holds the one before) is the one the spool completes."""
    import shutil

    root, sink, spool = _keeping_recording(tmp_path, monkeypatch)
    copy = tmp_path / "copy"
    for conn in (1, 2):
        sink.exchange(_exchange(conn, 0, np.full((6, 10, 3), conn, np.uint8)))
        sink.end(conn, None)
        if conn == 1:
            shutil.copytree(root, copy)  # taken after the first keep
    sink.exchange(_exchange(3, 0, np.full((6, 10, 3), 3, np.uint8)))  # open at the kill
    _kill(sink)
    with pytest.raises(FileExistsError, match="pass overwrite=True"):  # not the latest keep: replaced when told
        recover_served_run(spool, copy)
    recovered = recover_served_run(spool, copy, overwrite=True)
    assert recovered.kept == 2 and _connections(copy) == [1, 2, 3] and not spool.exists()


def test_recovering_without_the_episodes_the_server_kept_says_so(tmp_path, monkeypatch, capsys):
    """DIR moved (or removed, or replaced) after the kill: the spool no longer holds what the server kept there, and the
    recovery wrote the spool's episodes alone without a word, as if that were the whole run."""
    root, sink, spool = _keeping_recording(tmp_path, monkeypatch)
    sink.exchange(_exchange(1, 0, np.zeros((6, 10, 3), np.uint8)))
    sink.end(1, None)
    sink.exchange(_exchange(2, 0, np.ones((6, 10, 3), np.uint8)))  # open at the kill
    _kill(sink)
    root.rename(tmp_path / "moved")
    assert main(["dataset", "recover", str(spool), "--out", str(root), "--no-progress"]) == 0
    assert (f"the server kept 1 more episode before the kill than {root} or its --record DIR holds now (moved, "
            f"removed or replaced since): {root} lacks it; `worldpolicy dataset merge`") in capsys.readouterr().err
    assert _connections(root) == [2] and _connections(tmp_path / "moved") == [1] and not spool.exists()
    sink = ServedRunDataset(root, StandInPolicy().embodiment, overwrite=True)  # a run whose every keep is found
    (spool,) = tmp_path.glob(".record.writing-spool-*")
    sink.exchange(_exchange(1, 0, np.zeros((6, 10, 3), np.uint8)))
    sink.end(1, None)
    _kill(sink)
    assert recover_served_run(spool, root).unfound == 0


def test_a_recording_that_cannot_be_published_at_stop_names_the_command_that_recovers_its_spool(tmp_path, monkeypatch):
    """A keep that failed after its publish left the writer finished: the stop then failed with the writer's own
    "open a new LeRobotDatasetWriter", which told the user nothing of the spool left to recover."""
    from worldpolicy.data.lerobot import LeRobotDatasetWriter

    root, sink, spool = _keeping_recording(tmp_path, monkeypatch)
    sink.exchange(_exchange(1, 0, np.zeros((6, 10, 3), np.uint8)))
    sink.end(1, None)  # kept at root
    sink.exchange(_exchange(2, 0, np.zeros((6, 10, 3), np.uint8)))

    def full_disk(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(LeRobotDatasetWriter, "finalize", full_disk)
    with pytest.raises(RuntimeError, match=rf"could not be published at '{root}' \(\[Errno 28\] No space left on "
                       rf"device\); what reached its spool stays: worldpolicy dataset recover {spool} --out {root}"):
        sink.close()
    assert spool.is_dir() and _connections(root) == [1]
