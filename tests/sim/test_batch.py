"""`worldpolicy sim --num-envs N` / `evaluate(num_envs=N)`: episodes stepped in lockstep, one batched call per step."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from ports import open_connections

pytest.importorskip("mink")
pytest.importorskip("gymnasium")

from worldpolicy.cli import main
from worldpolicy.robot.control import ChunkStrategy
from worldpolicy.sim.env import TabletopEnv
from worldpolicy.sim.evaluate import evaluate


def _seeded_policy(calls: list[list[int]]):
    """A `Policy` without weights whose chunk is drawn from each request's seed (so every episode differs, and the
    same request gives the same chunk however it is batched); `calls` gets each act_batch's request seeds."""
    from worldpolicy import get_embodiment
    from worldpolicy.engine import SamplingConfig
    from worldpolicy.policy import Policy
    from worldpolicy.processing.actions import to_model
    from worldpolicy.results import Prediction

    class Seeded(Policy):
        def __init__(self):
            self.embodiment = get_embodiment("droid")
            self.source, self.sampling, self.chunk_size, self.resolution_tier = "", SamplingConfig(), 4, 480
            self.engine = SimpleNamespace(device="cpu", dtype="float32")
            self._trained_frames = None  # a checkpoint with no record of its frames: its metadata announces none
            self.center_crop = None  # trained without `[augment]`: frames whole

        def act_batch(self, requests, progress=None):
            calls.append([r.seed for r in requests])
            e = self.embodiment
            out = []
            for r in requests:
                rng = np.random.default_rng(r.seed)
                chunk = np.tile(np.append(HOME, 0.0), (4, 1)) + np.append(rng.normal(0, 0.05, 7), 0.0)
                out.append(Prediction("policy", e.key, list(e.columns), list(e.units), chunk, to_model(e, chunk),
                                      e.fps))
            return out

    return Seeded()


HOME = TabletopEnv("reach", image_size=None).robot.home


CAMERAS = (24, 32)  # what a served policy's requests carry: a server refuses a request without the cameras


def _rows(report):
    """What a report's episodes measured, timings left out (a batched call's seconds are shared)."""
    return [{k: v for k, v in e.to_json().items() if k not in ("policy_s", "wall_s")} for e in report.episodes]


@pytest.mark.parametrize("strategy, latency_ms", [(ChunkStrategy("execute", 2), 0.0),
                                                  (ChunkStrategy("ensemble", 2), 140.0)])
def test_a_batched_run_is_the_sequential_run_with_one_call_per_step(strategy, latency_ms):
    """5 episodes, 2 at a time (the last alone): the same episodes, row for row in seed order, as one at a time, each
    request sent with the seed it had there, and the requests of a step in one call."""
    runs = {}
    for n in (1, 2):
        calls, kept = [], []
        report = evaluate(TabletopEnv("reach", image_size=None, max_steps=6), _seeded_policy(calls),
                          policy_name="seeded", episodes=5, seed=40, strategy=strategy, progress=False,
                          latency_ms=latency_ms, num_envs=n,
                          on_episode=lambda r, kept=kept: kept.append(len(r.episodes)))
        runs[n] = (report, calls, kept)
    (one, one_calls, one_kept), (two, two_calls, two_kept) = runs[1], runs[2]
    assert _rows(two) == _rows(one) and [e.seed for e in two.episodes] == [40, 41, 42, 43, 44]
    assert len({e.final_distance_m for e in one.episodes}) == 5  # the episodes differ: a mix-up would show
    assert sorted(s for c in two_calls for s in c) == sorted(s for c in one_calls for s in c)
    assert {len(c) for c in one_calls} == {1} and max(len(c) for c in two_calls) == 2
    assert len(two_calls) < len(one_calls)
    assert one_kept == two_kept == [1, 2, 3, 4, 5]
    assert two.strategy["execute_steps"] == one.strategy["execute_steps"] == 2
    assert all(e.policy_s >= 0 for e in two.episodes)


def _prefixed(policy, prefixes: list):
    """`policy` whose act_batch also records, per call, which requests carried an action prefix (rtc)."""
    act_batch = policy.act_batch

    def recording(requests, progress=None):
        prefixes.append([r.action_prefix is not None for r in requests])
        return act_batch(requests, progress)

    policy.act_batch = recording
    return policy


@pytest.mark.parametrize("latency_ms, rtc", [(0.0, False), (140.0, True)])
def test_a_batched_async_run_is_the_sequential_run(latency_ms, rtc):
    """async (and rtc): each background request, sent from a step, is answered by the next step's batched call with
    the seed (and the running chunk's prefix) it had one at a time; rows equal the sequential run's, row for row."""
    runs = {}
    for n in (1, 2):
        calls, prefixes = [], []
        report = evaluate(TabletopEnv("reach", image_size=None, max_steps=9), _prefixed(_seeded_policy(calls),
                                                                                        prefixes),
                          policy_name="seeded", episodes=5, seed=40, strategy=ChunkStrategy("async", 2),
                          progress=False, latency_ms=latency_ms, rtc=rtc, num_envs=n)
        runs[n] = report, calls, prefixes
    (one, one_calls, one_prefixes), (two, two_calls, two_prefixes) = runs[1], runs[2]
    assert _rows(two) == _rows(one) and len({e.final_distance_m for e in one.episodes}) == 5
    assert all(e.chunks > 2 for e in one.episodes)  # hand-overs ran, not only the first blocking chunk
    assert sorted(s for c in two_calls for s in c) == sorted(s for c in one_calls for s in c)
    assert max(len(c) for c in two_calls) == 2 and len(two_calls) < len(one_calls)
    carried = sum(p for c in two_prefixes for p in c)
    assert carried == sum(p for c in one_prefixes for p in c) and (carried > 0) == rtc
    assert (two.to_json()["num_envs"], one.to_json()["num_envs"]) == (2, 1)
    assert "2 episodes in flight (`--num-envs`)" in two.markdown() and "in flight" not in one.markdown()


def test_a_ctrl_c_in_a_batched_async_run_keeps_the_episodes_before_it(ends_at):
    """A Ctrl-C while background requests are held for the next step's call: the run stops (their futures cancelled,
    none waited for), keeping the episodes that ended before the first one still running."""
    ends, raise_at = ends_at
    ends.update({40: 3})
    raise_at.append((42, 4))
    kept = []
    with pytest.raises(KeyboardInterrupt):
        evaluate(TabletopEnv("reach", image_size=None, max_steps=9), _seeded_policy([]), policy_name="s",
                 episodes=4, seed=40, strategy=ChunkStrategy("async", 2), progress=False, num_envs=2,
                 on_episode=lambda r: kept.append([e.seed for e in r.episodes]))
    assert kept == [[40]]


@pytest.mark.timeout(60)  # a background request left unanswerable and uncancellable would hang the run's closing
def test_a_ctrl_c_in_the_batched_call_answering_held_requests_stops_the_run():
    """A Ctrl-C inside the model call that answers the background requests held since the last step: the run stops
    at once, closing its episodes waits on none of those requests, and nothing ran ends up reported."""
    calls = []
    policy = _seeded_policy(calls)
    act_batch = policy.act_batch

    def interrupted(requests, progress=None):
        if calls:  # the second call: the background requests the first chunks' hand-over sent
            raise KeyboardInterrupt
        return act_batch(requests, progress)

    policy.act_batch = interrupted
    kept = []
    with pytest.raises(KeyboardInterrupt):
        evaluate(TabletopEnv("reach", image_size=None, max_steps=9), policy, policy_name="s", episodes=3, seed=40,
                 strategy=ChunkStrategy("async", 2), progress=False, num_envs=2,
                 on_episode=lambda r: kept.append(len(r.episodes)))
    assert len(calls) == 1 and kept == []


def test_an_env_whose_episode_ends_starts_the_next_seed(ends_at):
    """Refill: seed 20 runs 12 steps, the others 2; with 2 envs, the second env runs 21..25 while the first runs
    20, so every step's call carries 2 requests until 20 ends (in groups of 2, 20's group would ask alone for 5
    steps, then 22/23 and 24/25 in groups of their own: 8 calls). Rows equal the sequential run's, in seed order."""
    from worldpolicy.sim.compare import settings_differences

    ends, _ = ends_at
    ends.update({20: 12, 21: 2, 22: 2, 23: 2, 24: 2, 25: 2})
    runs = {}
    for n in (1, 2):
        calls, kept = [], []
        report = evaluate(TabletopEnv("reach", image_size=None, max_steps=12), _seeded_policy(calls),
                          policy_name="seeded", episodes=6, seed=20, strategy=ChunkStrategy("execute", 2),
                          progress=False, num_envs=n, on_episode=lambda r, kept=kept: kept.append(len(r.episodes)))
        runs[n] = report, calls, kept
    (one, one_calls, _), (two, two_calls, two_kept) = runs[1], runs[2]
    assert _rows(two) == _rows(one) and [(e.seed, e.steps) for e in two.episodes] == [(20, 12)] + [
        (s, 2) for s in range(21, 26)]
    assert [len(c) for c in two_calls] == [2, 2, 2, 2, 2, 1]
    assert sorted(s for c in two_calls for s in c) == sorted(s for c in one_calls for s in c)
    assert two_kept == [1, 2, 3, 4, 5, 6]  # seed 20 ended last: the rows after it joined once it had, in seed order
    assert settings_differences([one, two]) == []  # no setting of the results: compare lists none


@pytest.fixture
def ends_at(monkeypatch):
    """Episode seed s of the reach task succeeds at step `ends[s]` (the task's own success otherwise), so episodes of
    a group end out of order; `raise_at` (seed, step): Ctrl-C there."""
    ends, raise_at = {}, []
    reset = TabletopEnv.reset

    def seeded_reset(self, *, seed=None, options=None):
        self.test_seed = seed
        return reset(self, seed=seed, options=options)

    def success(self):
        if raise_at and (self.test_seed, self.steps) == raise_at[0]:
            raise KeyboardInterrupt
        return self.steps >= ends.get(self.test_seed, 10**6)

    monkeypatch.setattr(TabletopEnv, "reset", seeded_reset)
    monkeypatch.setattr(TabletopEnv, "success", success)
    return ends, raise_at


def test_episodes_ending_out_of_order_join_the_report_in_seed_order(ends_at, tmp_path):
    """Seed 10 ends last of its group: the report gains rows only in seed order, each episode's video is written as
    it ends, and a Ctrl-C in the second group keeps the first group's episodes."""
    ends, raise_at = ends_at
    ends.update({10: 5, 11: 2, 12: 3})
    kept = []
    report = evaluate(TabletopEnv("reach", image_size=(36, 64), max_steps=6), _seeded_policy([]), policy_name="s",
                      episodes=3, seed=10, strategy=ChunkStrategy("execute", 2), progress=False, num_envs=3,
                      video_dir=tmp_path / "videos", videos=3,
                      on_episode=lambda r: kept.append([e.seed for e in r.episodes]))
    assert [(e.seed, e.success_step) for e in report.episodes] == [(10, 5), (11, 2), (12, 3)]
    assert kept == [[10], [10, 11], [10, 11, 12]]
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == [f"episode_00{s}.mp4" for s in (10, 11, 12)]

    kept.clear()
    ends.clear()
    raise_at.append((13, 3))
    with pytest.raises(KeyboardInterrupt):
        evaluate(TabletopEnv("reach", image_size=None, max_steps=6), _seeded_policy([]), policy_name="s",
                 episodes=4, seed=10, strategy=ChunkStrategy("execute", 2), progress=False, num_envs=2,
                 on_episode=lambda r: kept.append([e.seed for e in r.episodes]))
    assert kept[-1] == [10, 11]


def test_a_resumed_batched_run_runs_only_the_episodes_left():
    """A stored run of 3 continued to 5 with num_envs=4: the last 2, in one group, and the rows of an uninterrupted
    run."""
    env = TabletopEnv("reach", image_size=None, max_steps=4)
    first = evaluate(env, _seeded_policy([]), policy_name="s", episodes=3, seed=0,
                     strategy=ChunkStrategy("execute", 2), progress=False)
    calls = []
    resumed = evaluate(env, _seeded_policy(calls), policy_name="s", episodes=5, seed=0,
                       strategy=ChunkStrategy("execute", 2), progress=False, resume=first, num_envs=4)
    whole = evaluate(env, _seeded_policy([]), policy_name="s", episodes=5, seed=0,
                     strategy=ChunkStrategy("execute", 2), progress=False)
    assert _rows(resumed) == _rows(whole) and {len(c) for c in calls} == {2}


@pytest.mark.parametrize("num_envs, policy, strategy, said", [
    (0, "seeded", "execute", "num_envs: expected an int >= 1 .* got 0"),
    (True, "seeded", "execute", "num_envs: expected an int >= 1 .* got True"),
    (2.0, "seeded", "execute", "num_envs: expected an int >= 1 .* got 2.0"),
    (2, "scripted", "execute", "num_envs: 2 batches a model's forward passes; policy=scripted makes none"),
    (2, "random", "execute", "policy=random makes none.*accepted with policy=random: 1"),
    (2, "own", "execute", ("num_envs: 2 batches a local checkpoint's or a ws:// server's requests .*Own is "
                           "neither; accepted with it: 1")),
])
def test_num_envs_it_cannot_run_is_refused_before_any_episode(num_envs, policy, strategy, said):
    from worldpolicy.sim.policies import make_policy

    env = TabletopEnv("reach", image_size=None, max_steps=4)
    calls = []
    if policy == "own":  # a backend of one's own: an act, no act_batch to gather the requests into
        class Own:
            embodiment = _seeded_policy(calls).embodiment

            def act(self, observation, prompt):
                pytest.fail("an episode ran")

        backend = Own()
    else:
        backend = _seeded_policy(calls) if policy == "seeded" else make_policy(policy, env=env)
    with pytest.raises(ValueError, match=said):
        evaluate(env, backend, policy_name=policy, episodes=2, strategy=ChunkStrategy(strategy, 2), progress=False,
                 num_envs=num_envs)
    assert calls == []


@pytest.mark.parametrize("argv, said", [
    (["--policy", "scripted", "--num-envs", "2"], "--num-envs: 2 batches a model's forward passes; --policy=scripted"),
    (["--policy", "random", "--num-envs", "2"],
     "--num-envs: 2 batches a model's forward passes; --policy=random"),
    (["--num-envs", "0"], "--num-envs: expected an int >= 1"),
])
def test_sim_cli_refuses_num_envs_before_anything_loads(tmp_path, capsys, monkeypatch, argv, said):
    from worldpolicy.policy import Policy
    from worldpolicy.sim import commands

    monkeypatch.setattr(Policy, "from_pretrained", lambda *a, **k: pytest.fail("the weights loaded"))
    monkeypatch.setattr(commands, "_open_env", lambda *a, **k: pytest.fail("the env was built"))
    assert main(["sim", *argv, "--out", str(tmp_path / "run")]) == 2
    assert said in capsys.readouterr().err


@pytest.fixture
def served():
    """The seeded stand-in behind a real server on a free loopback port (and its key): (the server, its act_batch
    calls' request seeds). Its batches wait up to 1 s for the other open connections' requests (a batch still runs as
    soon as every open connection has sent one), so a step's requests are fused however slowly this machine starts
    the client's threads."""
    pytest.importorskip("websockets")
    from worldpolicy.serving import PolicyServer, ServerConfig, ServerThread

    calls = []
    config = ServerConfig(host="127.0.0.1", port=0, max_wait_ms=1000, api_key="s3cret-key-123")
    with ServerThread(PolicyServer(_seeded_policy(calls), config, warmup_requests=0)) as server:
        yield server, calls


def test_a_served_policy_batched_runs_the_sequential_episodes(served):
    """A ws:// server, 5 episodes 2 at a time: the rows and request seeds of one at a time, the step's requests fused
    by the server into one act_batch, and the connections opened for it closed when the run ends (the client's own
    stays open: its caller's, closed with it)."""
    from worldpolicy.sim.policies import make_policy

    server, calls = served
    runs = {}
    for n in (1, 2):
        calls.clear()
        policy = make_policy(server.url, api_key="s3cret-key-123")
        try:
            report = evaluate(TabletopEnv("reach", image_size=CAMERAS, max_steps=6), policy, policy_name="served",
                              episodes=5, seed=40, strategy=ChunkStrategy("execute", 2), progress=False, num_envs=n)
            assert open_connections(server, 1) == 1
        finally:
            policy.close()
        assert open_connections(server, 0) == 0
        runs[n] = report, list(calls)
    (one, one_calls), (two, two_calls) = runs[1], runs[2]
    assert _rows(two) == _rows(one) and len({e.final_distance_m for e in one.episodes}) == 5
    assert two.policy_settings == one.policy_settings and two.policy_settings["kind"] == "server"
    assert sorted(s for c in two_calls for s in c) == sorted(s for c in one_calls for s in c)
    assert {len(c) for c in one_calls} == {1} and max(len(c) for c in two_calls) == 2


def test_a_batched_run_against_a_server_that_goes_away_fails_as_a_sequential_one(served):
    """The server stopped after the second episode: the batched run raises the sequential run's error (the one
    `worldpolicy sim` reports, keeping the episodes before it), having kept those episodes."""
    from worldpolicy.serving import PolicyServer, RemotePolicyError, ServerThread
    from worldpolicy.sim.policies import make_policy

    config = served[0].server.config  # the fixture's settings, a server of each run's own (stopped in it)
    errors = []
    for n in (1, 2):
        server = ServerThread(PolicyServer(_seeded_policy([]), config, warmup_requests=0)).start()
        policy = make_policy(server.url, api_key="s3cret-key-123")
        kept = []

        def stop_after_two(report, kept=kept, server=server):
            kept.append(len(report.episodes))
            if len(report.episodes) == 2:
                server.stop()

        try:
            with pytest.raises(RemotePolicyError) as raised:
                evaluate(TabletopEnv("reach", image_size=CAMERAS, max_steps=6), policy, policy_name="served",
                         episodes=4, seed=40, strategy=ChunkStrategy("execute", 2), progress=False, num_envs=n,
                         on_episode=stop_after_two)
        finally:
            policy.close()
            server.stop()
        assert kept == [1, 2]
        errors.append((type(raised.value), str(raised.value).replace(server.url, "URL")))
    assert errors[0] == errors[1] and "cannot connect to" in errors[0][1]


def test_a_ctrl_c_in_a_served_batched_run_closes_its_connections(served, ends_at):
    """A Ctrl-C while a group's envs step: the connections opened for the group are closed as the run stops."""
    from worldpolicy.sim.policies import make_policy

    server, calls = served
    _, raise_at = ends_at
    raise_at.append((41, 3))
    policy = make_policy(server.url, api_key="s3cret-key-123")
    try:
        with pytest.raises(KeyboardInterrupt):
            evaluate(TabletopEnv("reach", image_size=CAMERAS, max_steps=6), policy, policy_name="served", episodes=3,
                     seed=40, strategy=ChunkStrategy("execute", 2), progress=False, num_envs=3)
        assert max(len(c) for c in calls) == 3 and open_connections(server, 1) == 1
    finally:
        policy.close()
    assert open_connections(server, 0) == 0


def test_sim_cli_batches_a_servers_requests_with_its_key(served, tmp_path, capsys):
    """`worldpolicy sim --policy ws://... --api-key K --num-envs 3`: every connection sends the key (one without it
    would be refused), the report is the sequential run's."""
    server, calls = served
    rows = {}
    for n in (1, 3):
        calls.clear()
        out = tmp_path / f"n{n}"
        assert main(["sim", "--policy", server.url, "--api-key", "s3cret-key-123", "--task", "reach", "--episodes", "3",
                     "--max-steps", "6", "--execute-steps", "2", "--image-size", "24x32", "--videos", "0", "--no-plots",
                     "--no-progress", "--num-envs", str(n), "--out", str(out)]) == 0
        report = json.loads((out / "report.json").read_text())
        rows[n] = [{k: v for k, v in e.items() if k not in ("policy_s", "wall_s")} for e in report["episodes"]]
        assert max(len(c) for c in calls) == min(n, 3)
    assert rows[3] == rows[1]
    assert open_connections(server, 0) == 0


def test_sim_cli_batches_a_servers_async_requests(served, tmp_path):
    """`worldpolicy sim --policy ws://... --strategy async --num-envs 2`: the background requests of a step reach the
    server together, and report.json is the sequential run's but for its recorded `num_envs`."""
    server, calls = served
    docs = {}
    for n in (1, 2):
        calls.clear()
        out = tmp_path / f"n{n}"
        assert main(["sim", "--policy", server.url, "--api-key", "s3cret-key-123", "--task", "reach", "--episodes", "3",
                     "--max-steps", "7", "--strategy", "async", "--execute-steps", "2", "--image-size", "24x32",
                     "--videos", "0", "--no-plots", "--no-progress", "--num-envs", str(n), "--out", str(out)]) == 0
        doc = json.loads((out / "report.json").read_text())
        assert doc.pop("num_envs") == n and max(len(c) for c in calls) == n
        command = doc.pop("command")  # the run's own --out and --num-envs; never the server's key
        assert command.endswith(f"--out {out} --no-plots --no-progress") and "s3cret" not in command
        docs[n] = {k: v for k, v in doc.items() if "policy_s" not in k}
        docs[n]["episodes"] = [{k: v for k, v in e.items() if k not in ("policy_s", "wall_s")} for e in doc["episodes"]]
    assert docs[2] == docs[1] and all(e["chunks"] > 2 for e in docs[1]["episodes"])


@pytest.mark.slow
def test_the_shipped_model_batched_runs_the_sequential_episodes():
    """The shipped model, 3 short episodes, one at a time and 2 at a time: the same success and steps, and final
    distances within batched-float rounding."""
    from worldpolicy.sim.policies import make_policy

    env = TabletopEnv("reach", max_steps=4)
    policy = make_policy("shipped", env=env, seed=10000)
    try:
        one, two = (evaluate(env, policy, policy_name="shipped", episodes=3, seed=10000, progress=False, num_envs=n)
                    for n in (1, 2))
    finally:
        policy.close()
    assert [(e.success, e.steps, e.chunks) for e in two.episodes] == [(e.success, e.steps, e.chunks)
                                                                      for e in one.episodes]
    np.testing.assert_allclose([e.final_distance_m for e in two.episodes], [e.final_distance_m for e in one.episodes],
                               atol=1e-3)


def test_a_served_run_is_labelled_by_the_model_its_server_announces_and_knows_its_training_scenes(tmp_path, capsys):
    """A ws:// run was titled by the address alone (`reach · ws://127.0.0.1:49481`, which says nothing later) and
    could not say whether its scenes were held out. Its server announces the checkpoint's name and training scenes
    (the dataset by its name, not the server's path): the run is labelled `<model> @ <address>` (stdout, report.md,
    report.json) and warns of and records its training scenes as a run of the checkpoint itself does. A resume on the
    same server continues; the same model served at another address is another policy to it (its name does not tell
    its weights); a report labelled by the address alone, from before, resumes and is compared under the new label."""
    from worldpolicy.data import write_episodes
    from worldpolicy.serving import PolicyServer, ServerConfig, ServerThread
    from worldpolicy.sim.evaluate import policy_label, read_report

    episode = {"frames": {"action": np.zeros((3, 2), np.float32)}, "task": "reach"}
    dataset = write_episodes(tmp_path / "data", [episode], fps=15,
                             provenance={"task": "reach", "seeds": [0, 1, 2, 4]}).root
    ckpt = tmp_path / "step-0000010"
    ckpt.mkdir()
    (ckpt / "trainer_state.json").write_text(json.dumps({"step": 10, "config": {"data": {"dataset": str(dataset)}}}))
    policy = _seeded_policy([])
    policy.source = str(ckpt)  # what a loaded checkpoint's policy holds
    run = tmp_path / "run"

    def sim(url: str, episodes: int, *more: str) -> int:
        return main(["sim", "--policy", url, "--task", "reach", "--seed", "2", "--episodes", str(episodes),
                     "--max-steps", "2", "--image-size", "24x32", "--videos", "0", "--no-plots", "--no-progress",
                     "--out", str(run), *more])

    config = ServerConfig(host="127.0.0.1", port=0)
    with ServerThread(PolicyServer(policy, config, warmup_requests=0)) as server:
        label = f"step-0000010 @ {server.url}"
        assert sim(server.url, 2) == 0
        out, err = capsys.readouterr()
        assert out.startswith(f"reach · {label}: success ")
        assert (f"--seed 2: 1 of the 2 episodes (seed 2) are reach scenes {label} was trained on (its dataset data "
                "recorded seeds 0..4)") in err
        doc = json.loads((run / "report.json").read_text())
        assert doc["policy"] == label
        assert doc["training_scenes"] == {"task": "reach", "source": "its dataset data", "recorded_seeds": [0, 4],
                                          "seeds": [2]}
        assert (run / "report.md").read_text().startswith(f"# reach · {label}\n")
        assert sim(server.url, 3, "--resume") == 0
        assert json.loads((run / "report.json").read_text())["training_scenes"]["seeds"] == [2, 4]

        with ServerThread(PolicyServer(policy, config, warmup_requests=0)) as moved:  # the same model, another port
            stored = (run / "report.json").read_bytes()
            assert sim(moved.url, 4, "--resume") == 2
            assert (f"old -> new: --policy: {label!r} -> 'step-0000010 @ {moved.url}'. Pass the old values"
                    in capsys.readouterr().err)
            assert (run / "report.json").read_bytes() == stored

        older = json.loads(stored)
        older["policy"] = server.url  # as a run of a server was labelled before
        (run / "report.json").write_text(json.dumps(older))
        assert policy_label(read_report(run)) == label  # `sim compare`'s table and legends
        assert sim(server.url, 4, "--resume") == 0
        assert json.loads((run / "report.json").read_text())["policy"] == label
