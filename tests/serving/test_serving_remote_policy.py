"""RemotePolicy has the local Policy's interface: act_batch, the same options by the same names, the same results."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import numpy as np
import pytest
from ports import open_connections
from serving_standins import StandInPolicy, droid_request, expected_actions

from worldpolicy import get_embodiment
from worldpolicy.embodiments import embodiment_from_dict
from worldpolicy.policy import PolicyRequest
from worldpolicy.processing.actions import to_model
from worldpolicy.serving import BadRequestError, RemotePolicy, RemotePolicyError, ServerError


def test_act_batch_spreads_requests_over_connections_so_the_server_fuses_them(serve):
    policy = StandInPolicy(batch_cost_s=0.2)
    t = serve(policy, max_batch=4, max_wait_ms=100)
    joints = [np.full(7, i / 10) for i in range(6)]
    requests = [PolicyRequest(droid_request(j), f"task {i}", seed=i) for i, j in enumerate(joints)]
    seen = []
    with RemotePolicy(t.url) as remote:
        preds = remote.act_batch(requests, progress=lambda done, total: seen.append((done, total)))
    for i, pred in enumerate(preds):  # in request order, each its own answer
        np.testing.assert_allclose(pred.actions, expected_actions(joints[i], f"task {i}", seed=i), rtol=1e-6)
    assert max(policy.batch_sizes) > 1  # four connections (the server's max_batch) shared forward passes
    assert seen[-1] == (6, 6) and len(seen) == 6
    assert remote._ws is None
    assert open_connections(t, 0) == 0  # the extra connections closed with the call: none left idle on the server


def test_act_batch_keeps_its_connections_for_the_next_call_when_asked(serve):
    """`keep_connections=True` (`worldpolicy sim --num-envs`): the next call reuses the extra connections instead of
    connecting again, one with fewer requests closes those it does not need (the server would wait on them), and
    `release_connections()` closes the rest, the client's own staying open. New connections open before any request
    is sent, so the server fuses the first call's requests too (it waits on open connections only)."""
    policy = StandInPolicy()
    t = serve(policy, max_batch=4, max_wait_ms=2000)
    requests = [PolicyRequest(droid_request(np.full(7, i / 10)), "a", seed=i) for i in range(4)]
    with RemotePolicy(t.url) as remote:  # its own connection open: its request would go first
        remote.act_batch(requests[:3], keep_connections=True)
        first = list(remote._peers)
        assert len(first) == 2 and open_connections(t, 3) == 3
        remote.act_batch(requests[:3], keep_connections=True)
        assert remote._peers == first and len(t.server._connections) == 3
        assert policy.batch_sizes == [3, 3]
        remote.act_batch(requests[:2], keep_connections=True)
        assert remote._peers == first[:1] and open_connections(t, 2) == 2
        remote.release_connections()
        assert remote._peers == [] and open_connections(t, 1) == 1
        remote.act_batch(requests[:2], keep_connections=True)
        assert remote.act_batch([], keep_connections=True) == []  # no request: none of them used, all closed
        assert remote._peers == [] and open_connections(t, 1) == 1
        remote.act_batch(requests[:2], keep_connections=True)
        with pytest.raises(ValueError, match="keep_connections='yes' must be True or False"):
            remote.act_batch(requests, keep_connections="yes")
    assert open_connections(t, 0) == 0  # close() closed the kept ones too


def test_act_batch_raises_the_first_failure_after_the_rest_finish(serve):
    policy = StandInPolicy()
    t = serve(policy, max_batch=1)  # a server that does not batch: one connection
    requests = [PolicyRequest(droid_request(np.zeros(7)), p) for p in ("a", "raise", "c")]
    with RemotePolicy(t.url) as remote:
        with pytest.raises(ServerError, match="stand-in failure"):
            remote.act_batch(requests)
        with pytest.raises(TypeError, match="list of PolicyRequest"):
            remote.act_batch([droid_request(np.zeros(7))])
        assert remote.act_batch([]) == []
        with pytest.raises(ValueError, match="connections=0"):
            remote.act_batch(requests, connections=0)
        with pytest.raises(ValueError, match="actions were given but mode='policy'"):
            remote.act_batch([PolicyRequest(droid_request(np.zeros(7)), "a", actions=np.zeros((32, 8)))])
    assert policy.calls == 3  # the failure did not stop "c"; the bad inputs above never left the client


def test_local_options_reach_the_policy(serve):
    policy = StandInPolicy(batching=False)
    t = serve(policy)
    image = np.zeros((64, 64, 3), np.uint8)
    with RemotePolicy(t.url) as remote:
        remote.act(droid_request(np.zeros(7)), "a", negative_prompt="blurry")
        assert policy.options[-1] == {"negative_prompt": "blurry"}
        remote.act({"observation/image": image}, "a", state=np.arange(8.0))  # state instead of the state keys
        np.testing.assert_array_equal(policy.options[-1]["state"], np.arange(8.0))
        chunk = np.zeros((32, 8))
        fd = remote.imagine(droid_request(np.zeros(7)), chunk, "push", decode_video=False, actions_space="normalized")
        assert fd.video is None and policy.options[-1] == {"actions_space": "normalized"}
        assert remote.imagine(droid_request(np.zeros(7)), chunk, "push").video.shape == (5, 8, 8, 3)
        with pytest.raises(TypeError, match="act\\(\\) got an unknown option sed=3; accepted: "):
            remote.act(droid_request(np.zeros(7)), "a", sed=3)
        # the methods' own keywords are listed too, as the local Policy's
        with pytest.raises(TypeError, match=r"imagine\(\) got an unknown option .*, whole_trajectory, progress$"):
            remote.imagine(droid_request(np.zeros(7)), chunk, "push", whole=True)
        with pytest.raises(TypeError, match=r"infer_actions\(\) got an unknown option .*, start_frame, whole_clip, "
                                            r"resample, batch_size, progress$"):
            remote.infer_actions(np.zeros((33, 8, 8, 3), np.uint8), "push", whole=True)
        # a canvas is a local Policy's option: the wire carries none, so it is refused, not dropped
        with pytest.raises(ValueError, match=r"canvas=\(256, 256\): the wire protocol carries no canvas"):
            remote.act(droid_request(np.zeros(7)), "a", canvas=(256, 256))


def test_imagine_reads_an_actions_file_on_the_client(serve, tmp_path):
    t = serve()
    e = get_embodiment("droid")
    physical = np.tile(np.linspace(0, 1, 8), (32, 1))
    path = tmp_path / "actions.json"
    path.write_text(json.dumps({"actions": physical.tolist(), "columns": list(e.columns)}))
    # not connected yet, a client read the file without the embodiment the server announces: refused, "needs the
    # embodiment"
    for connect_now in (True, False):
        with RemotePolicy(t.url, connect_now=connect_now) as remote:
            fd = remote.imagine(droid_request(np.zeros(7)), path, "push")
        np.testing.assert_allclose(fd.actions, to_model(e, physical))  # the stand-in echoes what it received


def test_a_connection_closed_while_idle_is_reopened_and_the_request_sent_once(serve):
    t = serve()
    remote = RemotePolicy(t.url)
    remote.act(droid_request(np.zeros(7)), "a")
    port = t.server.port
    t.stop()  # a restart: the server drains and closes the idle connection with 1001
    policy = StandInPolicy()
    serve(policy, port=port)
    pred = remote.act(droid_request(np.ones(7)), "b")
    np.testing.assert_allclose(pred.actions, expected_actions(np.ones(7), "b"), rtol=1e-6)
    assert policy.calls == 1
    remote.close()


def test_act_batch_stops_on_a_failing_progress_callback(serve):
    policy = StandInPolicy(batch_cost_s=0.05, batching=False)
    t = serve(policy)
    requests = [PolicyRequest(droid_request(np.full(7, k)), "a") for k in range(8)]

    def progress(done: int, total: int) -> None:
        raise RuntimeError("progress bar broke")

    with RemotePolicy(t.url) as remote:
        with pytest.raises(RuntimeError, match="progress bar broke"):
            remote.act_batch(requests, progress=progress, connections=2)
        assert policy.calls <= 3  # the requests in flight finish; no new ones are sent
        assert remote.act(droid_request(np.zeros(7)), "still usable").actions.shape == (32, 8)


def test_close_during_act_batch_stops_it_and_leaves_no_connection_open(serve):
    policy = StandInPolicy(batch_cost_s=0.3, batching=False)
    t = serve(policy, max_batch=2)
    remote = RemotePolicy(t.url)
    requests = [PolicyRequest(droid_request(np.full(7, k)), "a") for k in range(8)]
    outcome = []
    runner = threading.Thread(target=lambda: outcome.append(_raised(remote.act_batch, requests)))
    runner.start()
    assert policy.running.wait(5)
    remote.close()
    runner.join(10)
    assert isinstance(outcome[0], RemotePolicyError) and "close() was called during act_batch" in str(outcome[0])
    assert open_connections(t, 0) == 0 and policy.calls < 8


def _raised(fn, *args):
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return exc
    return None


def test_the_server_embodiment_reaches_clients_where_it_is_not_registered(serve):
    policy = StandInPolicy()
    policy.embodiment = embodiment_from_dict(dict(get_embodiment("droid").to_dict(), name="lab_arm", execute_steps=2))
    t = serve(policy)
    with pytest.raises(KeyError):
        get_embodiment("lab_arm")
    with RemotePolicy(t.url) as remote:
        e = remote.embodiment
        assert e == policy.embodiment and e.key == "lab_arm/joint_pos" and e.execute_steps == 2
        pred = remote.act(droid_request(np.zeros(7)), "a")
    assert pred.embodiment == "lab_arm/joint_pos" and pred.columns == list(e.columns)


def test_a_remote_policy_shows_what_it_is_in_a_line_without_connecting(serve):
    """`Policy` and `Prediction` print one line; a RemotePolicy printed as `<...RemotePolicy object at 0x...>`. The
    line says what is known without connecting (a repr opening a socket would hang a notebook on a dead server) and
    never the API key."""
    t = serve(StandInPolicy())
    remote = RemotePolicy(t.url, api_key="secret-key", embodiment="bridge", connect_now=False)
    assert repr(remote) == f"RemotePolicy({t.url!r}, embodiment='bridge', not connected)"
    assert remote._ws is None  # the repr did not connect
    with remote:
        remote.metadata()
        assert repr(remote) == (f"RemotePolicy({t.url!r}, model='stand-in', embodiment='droid/joint_pos', "
                                "chunk_size=32, connected)")
    assert repr(remote).endswith("chunk_size=32, not connected)") and "secret" not in repr(remote)


def test_inputs_are_read_as_the_local_policy_reads_them(serve, tmp_path):
    from PIL import Image

    from worldpolicy.processing.video import write_video

    policy = StandInPolicy(batching=False)
    t = serve(policy)
    palette = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(6, 8)).convert("P")
    clip = tmp_path / "clip.mp4"
    write_video(clip, np.stack([np.full((16, 16, 3), 40 * k, np.uint8) for k in range(5)]), 15)
    wire = RemotePolicy._observation({"observation/image": palette, "session_id": "abc"})
    assert wire["observation/image"].shape == (6, 8, 3) and wire["session_id"] == "abc"  # RGB, as load_frames
    sent = RemotePolicy._observation(str(clip))["observation/image"]  # only the current frame, the one the server uses
    assert sent.shape == (1, 16, 16, 3) and abs(int(sent.mean()) - 160) <= 2
    assert RemotePolicy._observation({"observation/image": clip})["observation/image"].shape == (1, 16, 16, 3)
    with RemotePolicy(t.url) as remote:
        with pytest.raises(TypeError, match="prompt must be a string"):  # refused here, before any traffic
            remote.act(droid_request(np.zeros(7)), 123)
        assert policy.calls == 0
        fd = remote.imagine(droid_request(np.zeros(7)), np.zeros(8), "push")  # one row, as load_actions takes it
        assert fd.actions.shape == (1, 8)
        inv = remote.infer_actions(np.zeros((9, 3, 16, 16), np.float32), "push")  # float, channels first
        assert (inv.actions[:, 0] == 9).all()
        calls = policy.calls
        with pytest.raises(ValueError, match=r"seed=-1 must be an integer in \[0, 2\*\*63\)"):  # the local Policy's
            remote.act(droid_request(np.zeros(7)), "a", seed=-1)
        assert policy.calls == calls  # refused here, before any traffic
        with pytest.raises(BadRequestError, match="steps=0") as info:  # the server's check
            remote.act(droid_request(np.zeros(7)), "a", steps=0)
        assert isinstance(info.value, ValueError)  # what the local Policy raises for the same input


def test_inverse_dynamics_sends_only_the_frames_the_server_reads(serve, tmp_path, monkeypatch, caplog):
    """A 60-frame clip was decoded and sent whole, though the server uses chunk_size + 1 frames: the local Policy reads
    chunk_size + 2 (one more tells a longer clip apart), and so does the client now, which says so itself and sends
    the chunk_size + 1 the server uses."""
    import logging

    import worldpolicy.processing.clip as clip_io
    import worldpolicy.processing.video as video_io

    t = serve(StandInPolicy())  # droid: chunk_size 32
    clip = tmp_path / "long.mp4"
    frames = np.zeros((40, 16, 16, 3), np.uint8)
    video_io.write_video(clip, frames, 15)
    reads = []
    read_video = video_io.read_video  # as the clip reader the client shares with the local Policy calls it
    monkeypatch.setattr(clip_io, "read_video", lambda *a, **k: reads.append(k) or read_video(*a, **k))
    with RemotePolicy(t.url) as remote, caplog.at_level(logging.WARNING, logger="worldpolicy"):
        assert remote.metadata()["chunk_size"] == 32
        for long in (clip, frames, list(frames)):
            caplog.clear()
            assert (remote.infer_actions(long, "push").actions[:, 0] == 33).all()
            assert "video has more than 33 frames from frame 0; using 33" in caplog.text  # as the local Policy says
        assert reads[0]["max_frames"] == 34
        short = remote.infer_actions(frames[:5], "push")
        assert (short.actions[:, 0] == 5).all()  # a short clip goes whole
        # a result is explained from its frames, as the local Policy takes one (`imagine`'s, then `infer_actions`)
        assert (remote.infer_actions(replace(short, video=frames[:7]), "push").actions[:, 0] == 7).all()
        with pytest.raises(ValueError, match="got a Prediction without a video"):
            remote.infer_actions(short, "push")


def test_per_camera_clips_travel_from_their_first_frames_as_the_local_policy_reads_them(serve):
    """A dict of camera clips was read whole and aligned at the clips' ends: cameras of different lengths made a
    composite of different instants, sent without a word. The composite travelled as float32: 34 DROID frames of
    540x640 are 141 MB, past the server's default message limit (64 MiB), so the call failed."""
    from worldpolicy.processing.observations import frames_from_mapping
    from worldpolicy.serving.client import _as_uint8_if_exact

    t = serve(StandInPolicy())  # droid: chunk_size 32, three cameras composed
    keys = get_embodiment("droid").camera_keys
    clip = np.random.default_rng(0).integers(0, 255, (40, 32, 32, 3), dtype=np.uint8)
    with RemotePolicy(t.url) as remote:
        sent = remote._video(dict.fromkeys(keys, clip))
        assert sent.dtype == np.uint8 and sent.shape == (34, 540, 640, 3)
        np.testing.assert_array_equal(sent / np.float32(255), frames_from_mapping(dict.fromkeys(keys, clip[:34]), keys,
                                                                                   "droid_wrist_top"))
        assert (remote.infer_actions(dict.fromkeys(keys, clip), "push").actions[:, 0] == 33).all()
        floats = np.full((2, 4, 4, 3), 0.3, np.float32)  # not a uint8 image's values: sent as given
        assert _as_uint8_if_exact(floats) is floats
        with pytest.raises(ValueError, match=f"different numbers of frames \\({keys[0]}: 34 or more, {keys[1]}: 34 "
                                             f"or more, {keys[2]}: 5\\)"):
            remote.infer_actions({keys[0]: clip, keys[1]: clip, keys[2]: clip[:5]}, "push")


def test_imagine_rolls_a_prediction_forward_on_a_server_without_an_embodiment_spec(serve, monkeypatch, tmp_path):
    """An openpi server, or one older than `embodiment_spec` running an embodiment not registered here, leaves the
    client without an embodiment: `imagine(obs, prediction)` failed with an unnamed "actions must be a rectangular
    numeric [T, action_dim] array", though the local Policy rolls a call's result forward."""
    from worldpolicy.serving import server

    announce = server.server_metadata

    def older(*args):
        meta, adapter = announce(*args)
        del meta["embodiment_spec"]
        return {**meta, "embodiment": "my_robot"}, adapter

    monkeypatch.setattr(server, "server_metadata", older)
    policy = StandInPolicy()
    t = serve(policy)
    obs = droid_request(np.zeros(7))
    with RemotePolicy(t.url) as remote:
        assert remote.embodiment is None
        pred = remote.act(obs, "push")
        (tmp_path / "actions.json").write_text(json.dumps(pred.to_json()))  # a run's file (refused: no embodiment)
        for given in (pred, pred.to_json(), tmp_path / "actions.json"):  # the stand-in echoes the actions it received
            np.testing.assert_allclose(remote.imagine(obs, given, "push").actions, pred.actions)
        normalized = {"actions": pred.actions_normalized.tolist(), "normalized": True}
        np.testing.assert_allclose(remote.imagine(obs, normalized, "push").actions, pred.actions_normalized)
        assert policy.options[-1] == {"actions_space": "normalized"}  # in the space the object names
        with pytest.raises(ValueError, match=r"actions: columns \[.*\] are not the server's \[.*\], and without its "
                                             r"embodiment .* pass RemotePolicy\(embodiment=...\)"):
            remote.imagine(obs, {**pred.to_json(), "columns": pred.columns[::-1]}, "push")
        with pytest.raises(ValueError, match=r"actions: units .* are not the server's"), \
                RemotePolicy(t.url, connect_now=False) as fresh:  # checked against what it announces once connected
            fresh.imagine(obs, {**pred.to_json(), "units": ["mm"] * 8}, "push")
        with pytest.raises(ValueError, match=r"actions: a set is not a rectangular numeric \[T, action_dim\] array; "
                                             r"accepted without the server's embodiment: .*a Prediction"):
            remote.imagine(obs, {1.0, 2.0}, "push")


def test_frame_lists_travel_only_as_far_as_they_are_used(serve, tmp_path):
    """A dict of camera clips given as lists of frame files was read whole (and an observation's list of frames for
    act/imagine too), where a video file is read only as far as the server uses it."""
    from PIL import Image

    t = serve(StandInPolicy())  # droid: chunk_size 32, 34 frames are read, 33 travel
    for i in range(34):  # the frames that travel; the rest do not exist
        Image.fromarray(np.full((16, 16, 3), i, np.uint8)).save(tmp_path / f"frame_{i}.png")
    files = [tmp_path / f"frame_{i}.png" for i in range(40)]
    with RemotePolicy(t.url) as remote:
        keys = remote.embodiment.camera_keys
        assert (remote.infer_actions(dict.fromkeys(keys, files), "push").actions[:, 0] == 33).all()
        wire = remote._observation({"observation/image": files[::-1]})["observation/image"]
        assert wire.shape == (1, 16, 16, 3) and wire[0, 0, 0, 0] == 0  # the current (last) frame only


def test_a_folder_of_frames_and_an_animated_gif_travel_as_the_local_policy_reads_them(serve, tmp_path):
    """A folder of frames was refused ('file does not exist') and an animated GIF sent as its first frame only, though
    the local Policy reads both as clips (inverse dynamics: the first chunk_size + 2 frames)."""
    from PIL import Image

    t = serve(StandInPolicy())  # droid: chunk_size 32
    frames = [Image.fromarray(np.full((16, 16, 3), 5 * i, np.uint8)) for i in range(40)]
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):
        frame.save(folder / f"frame_{i}.png")
    (folder / ".hidden.png").write_bytes(b"not an image")
    gif = tmp_path / "clip.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:3], duration=66, loop=0)
    with RemotePolicy(t.url) as remote:
        assert (remote.infer_actions(folder, "push").actions[:, 0] == 33).all()
        assert (remote.infer_actions(gif, "push").actions[:, 0] == 3).all()
        wire = remote._observation(folder)["observation/image"]
        assert wire.shape == (1, 16, 16, 3) and wire[0, 0, 0, 0] == 5 * 39  # the current (last) frame only
        assert remote._observation(gif)["observation/image"][0, 0, 0, 0] == 10


def test_the_servers_warnings_about_a_request_are_logged_by_the_client(serve, caplog):
    """A local Policy logs what may make a result wrong (actions or a state far outside the training range, a clip of
    the wrong length); behind a server those lines stayed in the server's log and a robot's engineer saw nothing. The
    reply carries them (`warnings`) and RemotePolicy logs them at WARNING, naming the server, for that request only."""
    import logging

    policy = StandInPolicy(batching=False)
    t = serve(policy)
    with RemotePolicy(t.url) as remote, caplog.at_level(logging.WARNING, logger="worldpolicy"):
        remote.act(droid_request(np.zeros(7)), "warn")
        said = [r for r in caplog.records if r.name == "worldpolicy.serving" and r.threadName == "MainThread"]
        assert [r.getMessage() for r in said] == [f"server {t.url}: stand-in: this request asked for a warning"]
        assert said[0].levelno == logging.WARNING
        caplog.clear()
        remote.act(droid_request(np.zeros(7)), "quiet")  # nothing to say: no warning, and no key in the reply
        assert not [r for r in caplog.records if r.name == "worldpolicy.serving" and r.threadName == "MainThread"]
        assert "warnings" not in remote.infer(droid_request(np.zeros(7), "quiet"))
        assert remote.infer(droid_request(np.zeros(7), "warn"))["warnings"] == [
            "stand-in: this request asked for a warning"]  # the raw openpi call returns them as they came


def test_the_servers_warnings_name_its_checkpoint_as_the_metadata_frame_does(serve, tmp_path):
    """A warning about a request that names the checkpoint (a mode its training never weighted) named it by the server
    machine's path, which the metadata frame no longer shows."""
    policy = StandInPolicy(batching=False)
    policy.source = str(tmp_path / "runs" / "my-ckpt")
    t = serve(policy)
    with RemotePolicy(t.url) as remote:
        assert remote.infer(droid_request(np.zeros(7), "warn"))["warnings"] == [
            "stand-in: this request asked for a warning (checkpoint my-ckpt)"]


def test_a_clip_at_another_frame_rate_is_warned_about_as_the_local_policy_does(serve, tmp_path, caplog):
    """The local Policy says when a clip's frame rate is not the embodiment's (each recovered action then spans another
    stretch of time); the client sends the file's frames, so the server cannot tell, and nobody said it."""
    import logging

    from worldpolicy.processing.video import write_video

    t = serve(StandInPolicy())  # droid: 15 fps
    clip = tmp_path / "fast.mp4"
    write_video(clip, np.zeros((6, 16, 16, 3), np.uint8), 30)
    keys = get_embodiment("droid").camera_keys
    with RemotePolicy(t.url) as remote, caplog.at_level(logging.WARNING, logger="worldpolicy"):
        remote.infer_actions(clip, "push")
        remote.infer_actions(dict.fromkeys(keys, clip), "push")  # each camera's clip, as the local Policy says it
    said = [r.getMessage() for r in caplog.records if "fps but embodiment actions are at 15 fps" in r.getMessage()]
    assert len(said) == 4 and all(m.startswith(f"video {clip} is 30 fps") for m in said)


def test_warnings_still_reach_stderr_in_a_script_that_configured_no_logging():
    """Collecting the warnings for a reply (server) or against repeats (client) put a handler on the `worldpolicy`
    logger, so logging no longer fell back to printing them on stderr: a plain script saw neither the server's line
    nor the client's own warning about its actions."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import worldpolicy

    script = """
import numpy as np
from serving_standins import StandInPolicy, droid_request
from worldpolicy.serving import PolicyServer, RemotePolicy, ServerConfig, ServerThread
with ServerThread(PolicyServer(StandInPolicy(), ServerConfig(host="127.0.0.1", port=0))) as t, RemotePolicy(t.url) as p:
    p.act(droid_request(np.zeros(7)), "warn")
    p.imagine(droid_request(np.zeros(7)), np.full((32, 8), 50.0), "push", decode_video=False)
"""
    paths = [str(Path(worldpolicy.__file__).parents[1]), str(Path(__file__).parent)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    err = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                         check=True).stderr.splitlines()
    assert "stand-in: this request asked for a warning" in err  # the server's log, in-process
    assert any(line.startswith("server ws://") and line.endswith(": stand-in: this request asked for a warning")
               for line in err)
    assert sum(line.startswith("actions: joint_0 (|x| up to 50)") for line in err) == 1  # the client's, said once


class _Gated(StandInPolicy):
    """Holds every call inside the policy until `gate` is set: a model that is slow, or wedged."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.gate, self.inside = threading.Event(), threading.Event()

    def _pay(self, n: int) -> None:
        self.inside.set()
        self.gate.wait(120)
        super()._pay(n)


def test_close_from_another_thread_ends_the_call_waiting_on_the_server_at_once(serve):
    """An e-stop handler calls close() while the control loop waits for a chunk: close() must end that wait, not
    wait read_timeout_s for it (or for the reply), and the waiting call must say it was closed, not blame the server."""
    from worldpolicy.serving import ClientClosedError

    policy = _Gated(batching=False)
    t = serve(policy)
    remote = RemotePolicy(t.url, read_timeout_s=600)
    outcome: list[BaseException | None] = []

    def control_loop() -> None:
        try:
            remote.act(droid_request(np.zeros(7)), "a")
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            outcome.append(exc)

    loop = threading.Thread(target=control_loop)
    loop.start()
    try:
        assert policy.inside.wait(30)  # the request is inside the policy, the client waits for its reply
        remote.close()
        loop.join(60)
        assert not loop.is_alive() and policy.calls == 0  # ended while the policy still held the request
        assert isinstance(outcome[0], ClientClosedError) and "close() was called" in str(outcome[0])
        assert remote._ws is None
    finally:
        policy.gate.set()
        loop.join(60)
    pred = remote.act(droid_request(np.zeros(7)), "b")  # a closed client reconnects on its next call
    np.testing.assert_allclose(pred.actions, expected_actions(np.zeros(7), "b"))
    remote.close()


@pytest.mark.parametrize("signalled", ["main", "button"])
def test_close_in_a_signal_handler_ends_the_call_it_interrupted(serve, signalled):
    """An e-stop wired to a signal (SIGINT, a foot pedal's SIGUSR1) runs its handler in the main thread, whose call it
    interrupts and which holds the client's lock: close() there must neither wait for itself (a deadlock) nor for the
    server. `button`: the signal is sent to another thread, which leaves the main thread's wait asleep as a signal
    landing just before the call blocks on the reply does (the main thread preempted between its last check for
    signals and the wait: seen under heavy load); Python runs the handler only once that wait ends, so the e-stop's
    close() waited for the server's reply (here the policy's gate) and the call returned the actions (without the
    0.25 s slices this hung till the gate's 120 s in 4 of 5 runs; the fifth, its handler ran before the wait began)."""
    import signal

    from worldpolicy.serving import ClientClosedError

    policy = _Gated(batching=False)
    t = serve(policy)
    remote = RemotePolicy(t.url, read_timeout_s=600)
    main = threading.get_ident()
    previous = signal.signal(signal.SIGUSR1, lambda *_: remote.close())

    def press_the_button() -> None:
        if policy.inside.wait(30):  # the main thread's call is waiting inside the policy
            signal.pthread_kill(main if signalled == "main" else threading.get_ident(), signal.SIGUSR1)

    button = threading.Thread(target=press_the_button)
    button.start()
    try:
        with pytest.raises(ClientClosedError):
            remote.act(droid_request(np.zeros(7)), "a")
        assert policy.calls == 0  # ended while the policy still held the request, not by its reply
    finally:
        signal.signal(signal.SIGUSR1, previous)
        policy.gate.set()
        button.join(30)
    remote.close()


def test_close_in_a_signal_handler_that_runs_once_the_reply_is_in_still_ends_the_call(serve, monkeypatch):
    """A handler Python runs only once the wait for the reply has ended (its signal woke no wait, or landed as the
    reply arrived) still ends the call it interrupted: the e-stop's close() came inside the call, so its actions are
    not returned."""
    import signal

    from worldpolicy.serving import ClientClosedError

    remote = RemotePolicy(serve(StandInPolicy()).url)
    receive = RemotePolicy._receive

    def reply_then_signal(self, *args, **kwargs):
        reply = receive(self, *args, **kwargs)
        if kwargs.get("what") == "reply":
            signal.raise_signal(signal.SIGUSR1)  # its handler runs here, the reply read
        return reply

    monkeypatch.setattr(RemotePolicy, "_receive", reply_then_signal)
    previous = signal.signal(signal.SIGUSR1, lambda *_: remote.close())
    try:
        with pytest.raises(ClientClosedError, match="close\\(\\) was called while this call waited on"):
            remote.act(droid_request(np.zeros(7)), "a")
    finally:
        signal.signal(signal.SIGUSR1, previous)
    monkeypatch.undo()
    assert remote.act(droid_request(np.zeros(7)), "a").actions.shape[0] > 0  # the next call reconnects
    remote.close()


def test_close_in_a_signal_handler_landing_inside_send_does_not_wait_on_websockets_own_lock(serve):
    """A signal can land while the call it interrupts is inside websockets' `send`, which holds the connection's
    (non-reentrant) protocol lock: a close() there that closed the connection itself waited on that lock forever.
    The handler's place is made here directly: the call's lock held, the exchange marked, websockets' lock taken."""
    remote = RemotePolicy(serve(StandInPolicy()).url)
    returned = threading.Event()

    def handler_inside_send() -> None:
        with remote._lock:
            remote._waiting = True
            with remote._ws.protocol_mutex:
                remote.close()
            remote._waiting = False
        returned.set()

    threading.Thread(target=handler_inside_send, daemon=True).start()
    assert returned.wait(30), "close() in the handler waited on the lock the interrupted send holds"
    assert remote.act(droid_request(np.zeros(7)), "a").actions.shape[0] > 0  # the next call reconnects
    remote.close()


def test_close_during_act_batch_ends_every_connection_waiting_on_the_server(serve):
    from worldpolicy.serving import ClientClosedError

    policy = _Gated()
    t = serve(policy, max_batch=2, max_wait_ms=1000)
    remote = RemotePolicy(t.url, read_timeout_s=600)
    outcome: list[BaseException] = []

    def batch() -> None:
        try:
            remote.act_batch([PolicyRequest(droid_request(np.zeros(7)), p) for p in "abcd"], connections=2)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            outcome.append(exc)

    thread = threading.Thread(target=batch)
    thread.start()
    try:
        assert policy.inside.wait(30)
        remote.close()
        thread.join(60)
        assert not thread.is_alive() and policy.calls == 0  # ended while the policy still held its requests
        assert isinstance(outcome[0], RemotePolicyError) and "close() was called during act_batch" in str(outcome[0])
        assert isinstance(outcome[0], ClientClosedError)  # as a single call's e-stop is, so one except takes both
    finally:
        policy.gate.set()
        thread.join(60)


def test_expected_embodiment_refuses_a_server_for_another_robot_at_connect(serve):
    """A robot that says what it is never runs another action space's chunks: the server's metadata frame is checked
    on every connect, before a request goes."""
    from worldpolicy.serving import EmbodimentMismatchError

    t = serve(StandInPolicy("droid"))
    with RemotePolicy(t.url, expected_embodiment="droid") as remote:  # the name resolves to droid/joint_pos
        assert remote.embodiment.key == "droid/joint_pos"
        remote.act(droid_request(np.zeros(7)), "a")
    with pytest.raises(EmbodimentMismatchError, match=r"another embodiment than expected_embodiment .*embodiment "
                                                      r"droid/joint_pos instead of droid/relative_pose"):
        RemotePolicy(t.url, expected_embodiment="droid/relative_pose")
    lazy = RemotePolicy(t.url, expected_embodiment=get_embodiment("bridge"), connect_now=False)
    with pytest.raises(EmbodimentMismatchError, match="instead of bridge"):
        lazy.act(droid_request(np.zeros(7)), "a")  # nothing was sent: refused while connecting
    assert lazy._ws is None and t.server._metrics.ok._value.get() == 1
    with pytest.raises(TypeError, match="expected_embodiment="):
        RemotePolicy(t.url, expected_embodiment={"name": "droid"}, connect_now=False)


def test_a_reconnect_to_a_server_for_another_embodiment_is_refused(serve):
    """Without expected_embodiment=, the embodiment first announced is held to: a server restarted with another
    checkpoint on the same address is refused on the transparent reconnect instead of feeding the robot its actions."""
    from worldpolicy.serving import EmbodimentMismatchError

    first = serve(StandInPolicy("droid"))
    remote = RemotePolicy(first.url)
    remote.act(droid_request(np.zeros(7)), "a")
    port = first.server.port
    first.stop()
    again = serve(StandInPolicy("droid"), port=port)  # the same robot's checkpoint again: reconnects as before
    remote.act(droid_request(np.zeros(7)), "b")
    again.stop()
    serve(StandInPolicy("bridge"), port=port)
    with pytest.raises(EmbodimentMismatchError, match=r"than the embodiment it first announced .*embodiment bridge "
                                                      r"instead of droid/joint_pos"):
        remote.act(droid_request(np.zeros(7)), "c")
    assert remote._ws is None  # dropped: the next call is refused again, never served by the other checkpoint
    with pytest.raises(EmbodimentMismatchError):
        remote.metadata()
    with RemotePolicy(first.url) as fresh:  # a new client accepts it
        assert fresh.embodiment.key == "bridge"


def test_an_act_batch_connection_holds_to_the_embodiment_first_announced_and_says_so(serve):
    """act_batch's extra connections hold to what its client does; the refusal names why (no expected_embodiment=
    was given: the one first announced)."""
    from worldpolicy.serving import EmbodimentMismatchError

    remote = RemotePolicy(serve(StandInPolicy("bridge")).url, connect_now=False)
    remote._held = get_embodiment("droid")  # as if droid had been announced first, before a restart
    with pytest.raises(EmbodimentMismatchError, match="than the embodiment it first announced"):
        remote._spawn().metadata()


class _Contradicting(StandInPolicy):
    """Announces droid, answers as another embodiment: a server that contradicts its own metadata frame."""

    def _predict(self, *args, **kwargs):
        from dataclasses import replace

        return replace(super()._predict(*args, **kwargs), embodiment="droid/relative_pose")


def test_a_reply_for_another_embodiment_than_announced_is_refused(serve):
    from worldpolicy.serving import EmbodimentMismatchError

    t = serve(_Contradicting(batching=False))
    with RemotePolicy(t.url) as remote:
        with pytest.raises(EmbodimentMismatchError, match="is for embodiment 'droid/relative_pose', but the server "
                                                          "announced 'droid/joint_pos'"):
            remote.act(droid_request(np.zeros(7)), "a")
        assert remote.infer(droid_request(np.zeros(7)))["embodiment"] == "droid/relative_pose"  # raw: as sent


def test_a_whole_clip_is_labelled_over_the_wire_as_windows_sharing_one_seed(serve):
    """`infer_actions(whole_clip=True)` was refused as an unknown option: a lab labelling videos against a GPU server
    could label only a clip's first chunk_size + 1 frames. Its windows now travel as ordinary inverse-dynamics
    requests, `batch_size` at a time, one seed for all, each with the state row at its first frame, and come back
    joined as the local Policy joins them."""
    policy = StandInPolicy()  # droid/joint_pos: chunk_size 32, windows of 33 frames
    t = serve(policy, max_batch=4, max_wait_ms=100)
    clip = np.random.default_rng(1).integers(0, 255, (70, 16, 16, 3), dtype=np.uint8)  # 69 transitions: 32 + 32 + 5
    states = np.arange(70 * 8, dtype=np.float64).reshape(70, 8)
    seen = []
    with RemotePolicy(t.url) as remote:
        got = remote.infer_actions(clip, "push", whole_clip=True, batch_size=2, state=states,
                                   progress=lambda done, total: seen.append((done, total)))
        assert got.actions.shape == got.actions_normalized.shape == (69, 8)
        assert got.settings["clip"] == {"start_frame": 0, "frames_used": list(range(70)), "clip_fps": None,
                                        "resampled": False, "window_rows": [32, 32, 5]}
        assert got.settings["real_rows"] == 69
        assert (got.actions[:, 0] == 33).all()  # every window its 33 frames (the stand-in echoes the count), the last
        drawn = got.settings["seed"]  # padded; the gripper column is f(seed): one seed drawn here for every window
        assert drawn is not None
        np.testing.assert_array_equal(got.actions[:, -1], expected_actions(np.zeros(7), "push", seed=drawn)[0, -1])
        assert max(policy.batch_sizes) <= 2 and seen == [(1, 2), (2, 2), (1, 1)]  # two windows, then the third
        sent = sorted(tuple(o["state"]) for o in policy.options)
        assert sent == [tuple(states[row]) for row in (0, 32, 64)]  # each window's state row at its first frame
        seeded = remote.infer_actions(clip, "push", whole_clip=True, seed=5)
        np.testing.assert_allclose(seeded.actions[:, -1], expected_actions(np.zeros(7), "push", seed=5)[0, -1])
        cameras = dict.fromkeys(remote.embodiment.camera_keys, clip[:40])  # each window composed here: 32 + 7 rows
        composed = remote.infer_actions(cameras, "push", whole_clip=True)
        assert composed.settings["clip"]["window_rows"] == [32, 7] and (composed.actions[:, 0] == 33).all()


def test_the_state_a_dict_of_camera_clips_carries_travels_with_each_window(serve):
    """A dict of camera clips carrying DROID's state keys (joints [T, 7], gripper [T]) is labelled locally from the
    state at each window's first frame; over the wire only the composed frames went, and a state-conditioned server
    refused the request for lacking a state. Each window's state row now travels as the wire's `state`, read from the
    keys as the local Policy reads them; an explicit state= still wins, and one key without the other is refused
    here, before anything is sent."""
    policy = StandInPolicy()  # droid/joint_pos: chunk_size 32, windows of 33 frames
    t = serve(policy, max_batch=4, max_wait_ms=100)
    rng = np.random.default_rng(2)
    joints, gripper = rng.normal(size=(70, 7)), rng.uniform(size=70)
    clip = rng.integers(0, 255, (70, 16, 16, 3), dtype=np.uint8)
    with RemotePolicy(t.url) as remote:
        video = {**dict.fromkeys(remote.embodiment.camera_keys, clip),
                 "observation/joint_position": joints, "observation/gripper_position": gripper}
        remote.infer_actions(video, "push", whole_clip=True, batch_size=2)
        sent = sorted(tuple(o["state"]) for o in policy.options)
        assert sent == sorted(tuple(np.r_[joints[row], gripper[row]]) for row in (0, 32, 64))
        policy.options.clear()
        remote.infer_actions({**video, "observation/gripper_position": gripper[:, None]}, "push", start_frame=3)
        np.testing.assert_array_equal(policy.options.pop()["state"], np.r_[joints[3], gripper[3]])
        remote.infer_actions(video, "push", state=np.zeros(8))  # given: the keys are not read
        np.testing.assert_array_equal(policy.options.pop()["state"], np.zeros(8))
        calls = policy.calls
        with pytest.raises(KeyError, match="missing state keys \\['observation/gripper_position'\\]"):
            remote.infer_actions({k: v for k, v in video.items() if k != "observation/gripper_position"}, "push")
        assert policy.calls == calls


def test_a_clip_file_is_read_from_a_start_frame_and_at_the_embodiments_rate_here(serve, tmp_path, caplog):
    """`start_frame` and `resample` pick the clip's frames on the client, which reads the file (the server receives
    frames, and cannot know their rate): the frames used and `settings["clip"]` are what the local Policy gives."""
    import logging

    from worldpolicy.processing.clip import resampled_frames
    from worldpolicy.processing.video import write_video

    t = serve(StandInPolicy())  # droid: 15 fps
    fast = tmp_path / "fast.mp4"
    write_video(fast, np.zeros((20, 16, 16, 3), np.uint8), 30)
    with RemotePolicy(t.url) as remote, caplog.at_level(logging.WARNING, logger="worldpolicy"):
        got = remote.infer_actions(fast, "push", whole_clip=True, resample=True)
        assert got.settings["clip"]["frames_used"] == resampled_frames(20, 30, 15) == list(range(0, 20, 2))
        assert got.settings["clip"]["resampled"] and got.settings["clip"]["clip_fps"] == pytest.approx(30)
        assert got.actions.shape == (9, 8) and "fps but embodiment actions are at" not in caplog.text
        later = remote.infer_actions(fast, "push", start_frame=3, resample=True)
        assert later.settings["clip"]["frames_used"] == [3, 5, 7, 9, 11, 13, 15, 17, 19]
        assert (later.actions[:, 0] == 9).all() and later.settings["real_rows"] == 8  # 9 frames travelled


def test_clip_options_are_refused_before_any_request_is_sent(serve, monkeypatch):
    """What the local Policy refuses about a clip, the client refuses before a request travels; a server that
    announces no chunk size (openpi's) cannot have the clip cut into its windows, and says so, naming the option."""
    from worldpolicy.serving import server

    policy = StandInPolicy()  # droid/joint_pos: its state conditions each window
    t = serve(policy)
    clip = np.zeros((40, 16, 16, 3), np.uint8)
    with RemotePolicy(t.url) as remote:
        with pytest.raises(ValueError, match=r"state has shape \(8,\), but the window from clip frame 32 starts"):
            remote.infer_actions(clip, "push", whole_clip=True, state=np.zeros(8))
        with pytest.raises(ValueError, match="resample=True needs the clip's frame rate, which video"):
            remote.infer_actions(clip, "push", resample=True)
        with pytest.raises(ValueError, match="at least 2 frames from start_frame=39 \\(the clip has 40\\)"):
            remote.infer_actions(clip, "push", start_frame=39)
        with pytest.raises(ValueError, match=r"batch_size=0; accepted: an integer >= 1"):
            remote.infer_actions(clip, "push", whole_clip=True, batch_size=0)
    assert policy.calls == 0

    announce = server.server_metadata

    def without_chunk(*args):
        meta, adapter = announce(*args)
        return {**meta, "chunk_size": None}, adapter

    monkeypatch.setattr(server, "server_metadata", without_chunk)
    t = serve(policy)
    with RemotePolicy(t.url) as remote:
        assert remote.chunk_size is None
        with pytest.raises(ValueError, match=r"start_frame=2 and whole_clip=True need the server's chunk size, which "
                                             f"{t.url} does not announce"):
            remote.infer_actions(clip, "push", start_frame=2, whole_clip=True)
        assert policy.calls == 0
        assert (remote.infer_actions(clip, "push").actions[:, 0] == 40).all()  # the clip as before: every frame


def test_the_metadata_frame_announces_the_frames_the_checkpoint_was_trained_on(caplog, tmp_path):
    """Nothing told a client what frame size to send; the shipped model (whose folder records its training frames)
    warmed up with 224x224 frames it was never trained on. A checkpoint without the record announces none."""
    import logging

    import worldpolicy
    from worldpolicy.serving import PolicyServer, ServerConfig, ServerThread
    from worldpolicy.serving.adapters import warmup_camera_sizes
    from worldpolicy.testing import make_tiny_checkpoint

    shipped = worldpolicy.load_policy("shipped", device="cpu", steps=1)
    assert warmup_camera_sizes(shipped) == {"observation/exterior_image_1_left": [180, 320],
                                            "observation/wrist_image_left": [180, 320]}
    caplog.set_level(logging.WARNING, logger="worldpolicy")
    server = PolicyServer(shipped, ServerConfig(host="127.0.0.1", port=0), warmup_requests=1)
    with ServerThread(server) as t, RemotePolicy(t.url) as remote:
        meta = remote.metadata()
        assert meta["trained_frames"] == warmup_camera_sizes(shipped)
        assert meta["composed_frame"] == [360, 320]  # stacked
        assert meta["canvas"] == list(shipped._frames_announced()["canvas"]) and len(meta["canvas"]) == 2
    assert "was trained on frames" not in caplog.text  # the warm-up sent the frames the checkpoint was trained on
    tiny = worldpolicy.load_policy(make_tiny_checkpoint(tmp_path / "tiny"), embodiment="droid", device="cpu", steps=1)
    announced = ("trained_frames", "composed_frame", "canvas")
    assert {key: tiny.metadata()[key] for key in announced} == dict.fromkeys(announced)  # no record: none
    as_droid = worldpolicy.load_policy("shipped", embodiment="droid", device="cpu", steps=1)
    assert {key: as_droid.metadata()[key] for key in announced} == dict.fromkeys(announced)  # of other cameras
    # what to send all the same: the record's sizes, else the cameras' places in DROID's fixed composite (RoboLab's)
    assert meta["expected_frames"] == meta["trained_frames"]
    robolab = {"observation/wrist_image_left": [360, 640], "observation/exterior_image_1_left": [180, 320],
               "observation/exterior_image_2_left": [180, 320]}
    assert tiny.metadata()["expected_frames"] == as_droid.metadata()["expected_frames"] == robolab
    bridge = worldpolicy.load_policy(make_tiny_checkpoint(tmp_path / "bridge"), embodiment="bridge", device="cpu",
                                     steps=1)
    assert bridge.metadata()["expected_frames"] is None  # one camera of any size: nothing to say


def test_the_metadata_frame_announces_the_scenes_the_checkpoint_was_trained_on(tmp_path):
    """A client evaluating a served checkpoint in the sim could not tell whether its episodes were scenes the
    checkpoint was trained on: only the server's machine has its trainer_state.json and dataset. The metadata frame
    announces them (`training_seeds`: task, seeds and where that is said, the dataset by its name, not the server's
    path), as `worldpolicy sim` reads them for a local checkpoint; null for a checkpoint whose training data does not
    say."""
    import worldpolicy
    from worldpolicy.data import write_episodes
    from worldpolicy.serving import PolicyServer, ServerConfig, ServerThread
    from worldpolicy.testing import make_tiny_checkpoint

    episode = {"frames": {"action": np.zeros((3, 2), np.float32)}, "task": "reach"}
    dataset = write_episodes(tmp_path / "data", [episode], fps=15,
                             provenance={"task": "reach", "seeds": [0, 1, 2, 4]}).root
    ckpt = make_tiny_checkpoint(tmp_path / "step-0000010")
    tiny = worldpolicy.load_policy(ckpt, embodiment="droid", device="cpu", steps=1)
    assert tiny.metadata()["training_seeds"] is None  # no training run's record
    (ckpt / "trainer_state.json").write_text(json.dumps({"step": 10, "config": {"data": {"dataset": str(dataset)}}}))
    tiny = worldpolicy.load_policy(ckpt, embodiment="droid", device="cpu", steps=1)
    server = PolicyServer(tiny, ServerConfig(host="127.0.0.1", port=0), warmup_requests=0)
    with ServerThread(server) as t, RemotePolicy(t.url) as remote:
        meta = remote.metadata()
    assert meta["model"] == "step-0000010"
    assert meta["training_seeds"] == {"task": "reach", "seeds": [0, 1, 2, 4], "source": "its dataset data"}


def test_the_sim_sends_a_server_only_the_keys_it_announces_it_reads(serve, caplog):
    """The sim renders every DROID camera and sends its joint state: against the shipped `panda_reach` model, whose
    server now says the keys nothing reads, `worldpolicy sim --policy ws://` would be told so on every connection."""
    import logging

    from worldpolicy.models import shipped_model
    from worldpolicy.policy import checkpoint_embodiment
    from worldpolicy.sim.policies import make_policy

    panda = checkpoint_embodiment(shipped_model(), None)
    t = serve(StandInPolicy(panda))
    caplog.set_level(logging.WARNING, logger="worldpolicy")
    observation = {**droid_request(np.zeros(7)), "prompt": "reach the ball"}  # what the sim env observes
    with RemotePolicy(t.url) as remote:
        assert remote.metadata()["observation_keys"] == ["prompt", "observation/image", *panda.camera_keys]
        remote.act({k: v for k, v in observation.items() if k != "prompt"}, "reach the ball")
    assert "are not read by embodiment 'panda_reach'" in caplog.text  # a client that sends them all is told
    caplog.clear()
    backend = make_policy(t.url)
    assert backend.act(observation, "reach the ball").actions.shape == (4, 10)
    assert backend.request(observation, "reach the ball").observation.keys() == set(panda.camera_keys)
    assert "not read" not in caplog.text
    backend.policy.close()


def test_the_sim_sends_a_single_camera_server_the_camera_it_reads(serve):
    """An embodiment without a composite reads one camera: its camera key, else a pre-composed `observation/image`, else
    `image` (`ObservationAdapter._single_camera`), and announces all three, so the sim, which sends a server only the
    keys it announces, still sends the camera the server reads (its state keys, which this embodiment does not read,
    stay home)."""
    from worldpolicy.models import shipped_model
    from worldpolicy.policy import checkpoint_embodiment
    from worldpolicy.sim.policies import make_policy

    spec = {**checkpoint_embodiment(shipped_model(), None).to_dict(), "composite": None,
            "camera_keys": ["observation/wrist_image_left"]}
    one_camera = embodiment_from_dict(spec)

    class Seen(StandInPolicy):  # keeps the observations the server hands it
        def _predict(self, observation, *args):
            self.seen.append(observation)
            return super()._predict(observation, *args)

    policy = Seen(one_camera)
    policy.seen = []
    t = serve(policy)
    observation = {**droid_request(np.zeros(7)), "prompt": "reach the ball"}  # what the sim env observes
    backend = make_policy(t.url)
    assert backend.policy.metadata()["observation_keys"] == [
        "prompt", "observation/image", "observation/wrist_image_left", "image"]
    assert backend.request(observation, "reach the ball").observation.keys() == {"observation/wrist_image_left"}
    assert backend.act(observation, "reach the ball").actions.shape == (4, 10)
    (seen,) = policy.seen  # the server read the wrist camera the sim sent, and only it
    assert seen.keys() == {"observation/wrist_image_left"}
    np.testing.assert_array_equal(seen["observation/wrist_image_left"], observation["observation/wrist_image_left"])
    backend.policy.close()


def test_the_sim_sends_a_server_that_announces_no_observation_keys_everything(serve, monkeypatch):
    """An older worldpolicy server (or openpi's) has no `observation_keys` in its metadata frame: the sim sends it every
    key it observes, as it did before servers announced them, for that server to pick its own."""
    from worldpolicy.models import shipped_model
    from worldpolicy.policy import checkpoint_embodiment
    from worldpolicy.sim.policies import make_policy

    t = serve(StandInPolicy(checkpoint_embodiment(shipped_model(), None)))
    announced = RemotePolicy.metadata
    monkeypatch.setattr(RemotePolicy, "metadata",
                        lambda self: {k: v for k, v in announced(self).items() if k != "observation_keys"})
    observation = {**droid_request(np.zeros(7)), "prompt": "reach the ball"}  # what the sim env observes
    backend = make_policy(t.url)
    assert backend.request(observation, "reach the ball").observation.keys() == set(observation) - {"prompt"}
    assert backend.act(observation, "reach the ball").actions.shape == (4, 10)
    backend.policy.close()


def test_a_chunk_size_announced_past_the_maximum_is_refused(serve):
    """A server's metadata is data: its chunk_size cuts the client's clip and trajectory windows (10**9 asked the
    client to read that many frames). Past what any policy accepts it is refused, naming the server; a foreign
    server's smaller chunk off the 4-frame grid is its own."""

    class Announcing(StandInPolicy):
        chunk = 10**9

        def metadata(self):
            return {**super().metadata(), "chunk_size": self.chunk}

    t = serve(Announcing())
    with RemotePolicy(t.url) as remote, pytest.raises(
            ValueError, match=rf"the server at {t.url} announces chunk_size=1000000000 is not accepted: at most 256"):
        remote.infer_actions(np.zeros((40, 16, 16, 3), np.uint8), "push")  # its clip window is cut to the chunk
    Announcing.chunk = 6
    with RemotePolicy(serve(Announcing()).url) as remote:
        assert remote.chunk_size == 6
