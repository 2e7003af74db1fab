"""`ChunkController` with a stand-in policy and no sim: when it asks, what each tick sends, how chunks hand over."""

from __future__ import annotations

import logging
import re
import time
from concurrent.futures import Executor, Future

import numpy as np
import pytest

pytest.importorskip("mink")

from worldpolicy.embodiments import get_embodiment
from worldpolicy.errors import MissingKeyError
from worldpolicy.results import Prediction
from worldpolicy.robot.control import REPLIES_KEPT, ChunkController, ChunkStrategy, JointTarget
from worldpolicy.robot.decode import ActionDecoder

EMB = get_embodiment("droid")  # joint_position: 7 absolute joint angles + gripper


@pytest.fixture(scope="module")
def decoder():
    return ActionDecoder("droid", "panda")  # every safety check on, as on a real arm


def _home(decoder) -> np.ndarray:
    return np.array(decoder.robot.home)


class Chunks:
    """Request c returns a chunk whose row i is `home + (c + 1) / 100 + i / 1000` on joint 1 (slow enough for the
    speed check), gripper `c / 10`, so a target names the request and the row it came from. It records which tick's
    observation each request was made from."""

    def __init__(self, decoder, chunk: int = 8, offsets=None):
        self.home, self.chunk, self.offsets = _home(decoder), chunk, offsets
        self.observed_ticks: list[int] = []

    def row(self, c: int, i: int) -> np.ndarray:
        q = self.home.copy()
        q[0] += (c + 1) / 100 + i / 1000 if self.offsets is None else self.offsets[c][i]
        return q

    def act(self, observation, prompt):
        assert prompt == "stack the cups"
        c = len(self.observed_ticks)
        self.observed_ticks.append(observation["tick"])
        actions = np.stack([np.append(self.row(c, i), c / 10) for i in range(self.chunk)])
        return Prediction(mode="policy", embodiment=EMB.key, columns=list(EMB.columns), units=list(EMB.units),
                          actions=actions, actions_normalized=actions, fps=EMB.fps)


class ByHand(Executor):
    """Runs a submitted request only when the test says it lands: timing without sleeping."""

    def __init__(self):
        self.waiting: list[tuple[Future, object, tuple, dict]] = []

    def submit(self, fn, /, *args, **kwargs):
        future = Future()
        self.waiting.append((future, fn, args, kwargs))
        return future

    def land(self) -> None:
        future, fn, args, kwargs = self.waiting.pop(0)
        future.set_result(fn(*args, **kwargs))


def _request_of(target) -> int:
    """Which request the chunk a target came from answered (`Chunks` puts it in the gripper column)."""
    return round(target.prediction.actions[0, -1] * 10)


def _run(control, ticks: int, home: np.ndarray, start: int = 0):
    return [control.step(lambda t=t: {"tick": t}, home) for t in range(start, start + ticks)]


def test_execute_asks_every_k_ticks_and_sends_the_rows_in_order(decoder):
    policy = Chunks(decoder)
    control = ChunkController(policy, decoder, ChunkStrategy("execute", 3), prompt="stack the cups")
    asked, targets = [], []
    for t in range(8):  # `asks` says beforehand which ticks send a request (what `sim --num-envs` batches)
        asked.append(control.asks)
        targets += _run(control, 1, policy.home, start=t)
    assert policy.observed_ticks == [0, 3, 6] and asked == [t % 3 == 0 for t in range(8)]
    assert control.execute_steps == 3 and control.chunks == 3
    for t, target in enumerate(targets):
        c, i = divmod(t, 3)
        np.testing.assert_array_equal(target.qpos, policy.row(c, i))
        assert target.gripper == pytest.approx(c / 10) and target.index == i and not target.held
        assert _request_of(target) == c


def test_ensemble_blends_every_covering_chunk_with_exponential_weights_oldest_first(decoder):
    policy = Chunks(decoder, chunk=6)
    control = ChunkController(policy, decoder, ChunkStrategy("ensemble", 2, ensemble_decay=0.5),
                              prompt="stack the cups")
    target = _run(control, 5, policy.home)[4]
    # tick 4 is covered by chunk 0 (asked at 0, row 4), chunk 1 (asked at 2, row 2) and chunk 2 (asked at 4, row 0)
    rows = [policy.row(0, 4)[0], policy.row(1, 2)[0], policy.row(2, 0)[0]]  # joint 1: 0.014, 0.022, 0.030 past home
    weights = [1.0, np.exp(-0.5), np.exp(-1.0)]
    expected = sum(w * r for w, r in zip(weights, rows)) / sum(weights)
    assert target.qpos[0] == pytest.approx(expected, abs=1e-12)
    assert expected != pytest.approx(np.mean(rows))  # the weights matter: a plain mean would fail here
    assert target.gripper == pytest.approx((0 * 1.0 + 0.1 * weights[1] + 0.2 * weights[2]) / sum(weights))
    assert target.index == 0 and _request_of(target) == 2  # the newest chunk's row


def test_ensemble_checks_the_blend_against_the_measured_joints(decoder):
    """Each chunk passed the speed check from the joints measured when it was decoded; a blend of an old chunk's
    target with a new one can still be a jump from where the arm is now."""
    home = _home(decoder)
    policy = Chunks(decoder, chunk=4, offsets=[[0.0] * 4, [0.3] * 4])
    control = ChunkController(policy, decoder, ChunkStrategy("ensemble", 1, ensemble_decay=0.1),
                              prompt="stack the cups")
    control.step({"tick": 0}, home)
    moved = home.copy()
    moved[0] += 0.3  # chunk 1 holds here, chunk 0 holds at home: the blend sits 0.16 rad back, 2.4 rad/s at 15 fps
    with pytest.raises(ValueError, match=r"faster than robot 'panda' allows; first from the measured joints"):
        control.step({"tick": 1}, moved)


def test_async_takes_the_next_chunk_exactly_k_ticks_on_skipping_the_elapsed_actions(decoder):
    policy = Chunks(decoder, chunk=8)
    with ChunkController(policy, decoder, ChunkStrategy("async", 3), prompt="stack the cups") as control:
        targets = _run(control, 7, policy.home)
    assert policy.observed_ticks[:3] == [0, 0, 3]  # chunk 1 from tick 0's observation, taken at 3
    assert [(_request_of(t), t.index) for t in targets] == [(0, 0), (0, 1), (0, 2), (1, 3), (1, 4), (1, 5), (2, 3)]


@pytest.mark.parametrize("strategy, realtime, asking", [
    (ChunkStrategy("execute", 3), False, [0, 3, 6]),
    (ChunkStrategy("ensemble", 2), False, [0, 2, 4, 6]),
    (ChunkStrategy("async", 3), False, [0, 3, 6]),
    (ChunkStrategy("async", 3), True, [0, 3, 6]),
])
def test_each_tick_that_asks_observes_once(decoder, strategy, realtime, asking):
    """async's first tick asks twice (the chunk it runs, and the next one in the background) and called the
    observation function for each: a second camera capture or render, of the same tick."""
    policy = Chunks(decoder, chunk=8)
    observed: list[int] = []

    def observe(t):
        observed.append(t)
        return {"tick": t}

    with ChunkController(policy, decoder, strategy, prompt="stack the cups", realtime=realtime,
                         executor=_Now() if realtime else None) as control:
        for t in range(8):
            control.step(lambda t=t: observe(t), policy.home)
    assert observed == asking
    if strategy.kind == "async":
        assert policy.observed_ticks[:3] == [0, 0, 3]  # the first tick's two requests, from its one observation


class _Now(Executor):
    """Lands every request as it is sent: realtime async then hands over exactly k ticks on."""

    def submit(self, fn, /, *args, **kwargs):
        future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def test_realtime_async_takes_a_reply_when_it_lands_and_skips_the_actions_whose_ticks_passed(decoder):
    policy, requests = Chunks(decoder, chunk=6), ByHand()
    control = ChunkController(policy, decoder, ChunkStrategy("async", 2), prompt="stack the cups", realtime=True,
                              executor=requests)
    home = policy.home
    first = _run(control, 3, home)  # chunk 1 (asked at tick 0) has not landed: chunk 0 runs on past k
    assert [t.index for t in first] == [0, 1, 2] and policy.observed_ticks == [0]
    requests.land()
    taken = control.step({"tick": 3}, home)  # landed 3 ticks after its observation: its rows 0-2 are past
    assert policy.observed_ticks == [0, 0] and taken.index == 3
    np.testing.assert_array_equal(taken.qpos, policy.row(1, 3))
    on = _run(control, 2, home, start=4)  # chunk 2, asked at tick 3, has not landed
    assert [t.index for t in on] == [4, 5]
    held = control.step({"tick": 6}, home)  # chunk 1 ran out: the arm holds its last target
    assert held.held and held.clipped == 0
    np.testing.assert_array_equal(held.qpos, on[-1].qpos)
    requests.land()
    assert policy.observed_ticks == [0, 0, 3]
    late = control.step({"tick": 7}, home)
    assert (late.index, _request_of(late), late.held) == (4, 2, False)
    assert control.chunks == 3


def test_realtime_async_waits_k_ticks_for_a_reply_that_lands_early(decoder):
    policy, requests = Chunks(decoder, chunk=6), ByHand()
    control = ChunkController(policy, decoder, ChunkStrategy("async", 2), prompt="stack the cups", realtime=True,
                              executor=requests)
    control.step({"tick": 0}, policy.home)
    requests.land()
    assert control.step({"tick": 1}, policy.home).index == 1  # landed, but k = 2 actions of chunk 0 run first
    taken = control.step({"tick": 2}, policy.home)
    assert (taken.index, _request_of(taken)) == (2, 1)


def test_a_reply_past_its_whole_chunk_is_dropped_and_asked_again(decoder, caplog):
    policy, requests = Chunks(decoder, chunk=2), ByHand()
    control = ChunkController(policy, decoder, ChunkStrategy("async", 1), prompt="stack the cups", realtime=True,
                              executor=requests)
    _run(control, 2, policy.home)
    assert control.step({"tick": 2}, policy.home).held
    requests.land()
    with caplog.at_level(logging.WARNING, logger="worldpolicy.robot.control"):
        assert control.step({"tick": 3}, policy.home).held  # 3 ticks late for a 2-action chunk
    assert "past its 2-action chunk; dropped" in caplog.text
    assert "runs with realtime=False, each hand-over waiting for its reply" in caplog.text  # what to change
    assert len(requests.waiting) == 1 and control.chunks == 1


def test_the_horizon_bounds_requests_and_ticks(decoder):
    policy = Chunks(decoder, chunk=4)
    with ChunkController(policy, decoder, ChunkStrategy("async", 2), prompt="stack the cups") as control:
        control.reset(horizon=4)
        _run(control, 4, policy.home)
        assert policy.observed_ticks == [0, 0]  # none asked at tick 2: it would start at the horizon
        with pytest.raises(ValueError, match=r"step: tick 4 is at or past the horizon of 4 ticks"):
            control.step({"tick": 4}, policy.home)
        control.reset()
        assert control.step({"tick": 0}, policy.home).index == 0 and control.tick == 1


def test_prompt_from_the_observation_when_none_is_given(decoder):
    policy = Chunks(decoder)
    control = ChunkController(policy, decoder, ChunkStrategy("execute", 2))
    control.step({"tick": 0, "prompt": "stack the cups"}, policy.home)
    with pytest.raises(ValueError, match=r"prompt: none given to ChunkController"):
        ChunkController(policy, decoder).step({"tick": 0}, policy.home)


@pytest.mark.parametrize("q_arm, match", [
    (np.zeros(6), r"q_arm: expected the 7 measured arm joint angles \(rad\) as a finite vector, got shape \(6,\): "),
    (np.zeros((1, 7)), r"q_arm: expected the 7 .* got shape \(1, 7\): "),
    ([0.0] * 6 + [np.nan], r"q_arm: expected the 7 .* got NaN/inf at index 6: \[0.0, "),
    ("home", r"q_arm: expected the 7 .* finite vector, got 'home'$"),
])
def test_bad_measured_joints_are_refused_on_every_tick(decoder, q_arm, match):
    policy = Chunks(decoder)
    control = ChunkController(policy, decoder, ChunkStrategy("execute", 4), prompt="stack the cups")
    control.step({"tick": 0}, policy.home)
    with pytest.raises(ValueError, match=match):
        control.step({"tick": 1}, q_arm)  # a tick that asks nothing: no decode would have seen them


@pytest.mark.parametrize("decay", [float("inf"), float("nan"), -0.1, "0.1", True, None])
def test_an_ensemble_decay_that_is_no_finite_number_is_refused_naming_it(decay):
    # inf ran: the newest chunk's weight exp(-inf * 0) is NaN, and every blended target the arm was sent was NaN
    expected = rf"ensemble_decay: expected a finite number >= 0, got {re.escape(repr(decay))}"
    with pytest.raises(ValueError, match=expected):
        ChunkStrategy("ensemble", ensemble_decay=decay)


def test_bad_settings_are_refused_naming_them(decoder):
    policy = Chunks(decoder, chunk=8)
    with pytest.raises(ValueError, match=r"execute_steps: 9 exceeds what a 8-step chunk allows for 'execute' \(8\)"):
        ChunkController(policy, decoder, ChunkStrategy("execute", 9), prompt="stack the cups").step(
            {"tick": 0}, policy.home)
    with pytest.raises(ValueError, match=r"execute_steps: 5 exceeds what a 8-step chunk allows for 'async' \(4\)"):
        ChunkController(policy, decoder, ChunkStrategy("async", 5), prompt="stack the cups").step(
            {"tick": 0}, policy.home)
    with pytest.raises(ValueError, match=r"realtime: only the 'async' strategy"):
        ChunkController(policy, decoder, ChunkStrategy("ensemble"), realtime=True)
    # the kind alone, or a robot's name for the decoder, as ActionDecoder and get_robot take them: each names its fix
    with pytest.raises(TypeError, match=r"strategy: expected a ChunkStrategy, got str 'async'; the kind alone is "
                                        r"ChunkStrategy\('async'\)"):
        ChunkController(policy, decoder, "async")
    with pytest.raises(TypeError, match=r"decoder: expected an ActionDecoder .*, got str 'panda'; for a robot by name, "
                                        r"ActionDecoder\(policy.embodiment, 'panda'\)"):
        ChunkController(policy, "panda")
    # an embodiment key is no robot: the hint named it as one (ActionDecoder(policy.embodiment, 'droid/joint_pos'))
    with pytest.raises(TypeError, match=r"got str 'droid/joint_pos'; one for the robot: ActionDecoder\(policy."
                                        r"embodiment, robot\), robot one of \['fr3', 'menagerie_panda', 'panda'\]"):
        ChunkController(policy, "droid/joint_pos")
    with pytest.raises(TypeError, match=r"policy: expected an object with act"):
        ChunkController(object(), decoder)
    with pytest.raises(ValueError, match=r"horizon: expected an int >= 1 or None, got 0"):
        ChunkController(policy, decoder).reset(horizon=0)
    other = ActionDecoder("droid/relative_pose", "panda")
    with pytest.raises(ValueError, match=r"decoder: decodes embodiment 'droid/relative_pose', but the policy returned "
                                         r"a chunk of 'droid/joint_pos'"):
        ChunkController(policy, other, prompt="stack the cups").step({"tick": 0}, policy.home)
    asked = len(policy.observed_ticks)
    policy.chunk_size = policy.chunk  # a Policy and a RemotePolicy say their chunk and embodiment before any request
    policy.embodiment = EMB  # one that says its embodiment (a Policy, a RemotePolicy) is refused before any request
    with pytest.raises(ValueError, match=r"decoder: decodes embodiment 'droid/relative_pose', but the policy's is "
                                         r"'droid/joint_pos'; make it ActionDecoder\(policy.embodiment, robot\)"):
        ChunkController(policy, other, prompt="stack the cups")
    assert len(policy.observed_ticks) == asked
    with pytest.raises(ValueError, match=r"execute_steps: 5 exceeds what a 8-step chunk allows for 'async' \(4\)"):
        ChunkController(policy, decoder, ChunkStrategy("async", 5), prompt="stack the cups")  # its chunk_size says
    assert len(policy.observed_ticks) == asked


def test_the_decoders_checks_stay_on(decoder):
    """A chunk the decoder refuses (here a joint target past the limits) raises from `step`: nothing is sent."""
    policy = Chunks(decoder, chunk=4, offsets=[[5.0] * 4])
    control = ChunkController(policy, decoder, prompt="stack the cups")
    with pytest.raises(ValueError, match=r"joint targets more than 0.2 rad past the joint limits"):
        control.step({"tick": 0}, policy.home)


def test_a_joint_target_that_is_no_number_is_refused_before_the_arm(decoder):
    """The last gate before a command: NaN compares as within every speed limit, so the step check must name it."""
    target = _home(decoder)[None].copy()
    target[0, 2] = np.nan
    with pytest.raises(ValueError, match=r"joint target 0 holds NaN or inf .*refusing to command the robot"):
        decoder.check_joint_steps(target, _home(decoder))


def test_the_docs_control_loop_keeps_its_rate_after_a_tick_that_overran(decoder, monkeypatch):
    """docs/robot.md's loop, run as written against a stand-in server and arm on a fake clock: the first request
    takes a second (15 periods); the ticks after it are sent a period apart, not in a burst that catches up (`next_tick
    += period` alone sent 15 targets at once, faster than the rate the speed check assumes). That first request, which
    waits whatever the strategy, is taken before the loop's clock starts (it was read before, the wait an overrun)."""
    import re
    import time
    from pathlib import Path

    import worldpolicy.serving

    docs = (Path(__file__).parents[2] / "docs" / "robot.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", docs, re.DOTALL) if "ChunkController(" in b)
    clock, read = [0.0], []
    monkeypatch.setattr(time, "monotonic", lambda: read.append(clock[0]) or clock[0])
    monkeypatch.setattr(time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))

    class Server(Chunks):
        embodiment, calls = EMB, 0

        def act(self, observation, prompt):
            Server.calls += 1
            if Server.calls == 1:
                clock[0] += 1.0  # the first reply is slow
            return super().act({"tick": 0}, "stack the cups")

    server = Server(decoder)
    monkeypatch.setattr(worldpolicy.serving, "RemotePolicy", lambda url, api_key=None, timeout_s=None: server)
    sent, q = [], [_home(decoder)]
    env = {"key": None, "read_cameras": lambda: {"tick": 0}, "arm_joints": lambda: q[-1],
           "send": lambda qpos, gripper: (sent.append(clock[0]), q.append(qpos))}
    exec(block.replace("range(1, 300)", "range(1, 40)"), env)  # noqa: S102 - the documented snippet itself
    gaps = np.diff(sent)
    assert len(sent) == 40 and gaps[0] == pytest.approx(1.0 / 15)  # tick 1 one period after tick 0
    assert sent[0] == read[0] == 1.0  # tick 0 sent once its reply came, then the clock read: the loop's start
    assert gaps.min() >= 1.0 / 15 - 1e-9, gaps


# With a latency d the reply to each request lands d ticks after it (module docstring): the tables below say, tick by
# tick, which request's row each target is, or None where the arm holds.

def _sent(targets) -> list:
    return [None if t.held else (_request_of(t), t.index) for t in targets]


@pytest.mark.parametrize("latency", [0, 2, 4])  # none, d < k, d > k
def test_execute_holds_d_ticks_after_each_request_then_runs_the_chunk_from_its_first_action(decoder, latency):
    """A blocking request: the arm stands where it was observed until the reply lands, so the chunk's first action
    is still the next step (none is skipped); the k actions run, then the next request blocks again."""
    policy, k, d = Chunks(decoder), 3, latency
    control = ChunkController(policy, decoder, ChunkStrategy("execute", k), prompt="stack the cups", latency=d)
    targets = _run(control, 15, policy.home)
    expected = [None if r < d else (c, r - d) for c, r in (divmod(t, k + d) for t in range(15))]
    assert _sent(targets) == expected
    assert policy.observed_ticks == list(range(0, 15, k + d))  # each request from the tick that asked
    for t, target in enumerate(targets):
        if target.held:  # before the first reply: the joints measured; later: the last action again
            c = t // (k + d)
            want = policy.home if c == 0 else policy.row(c - 1, k - 1)
            np.testing.assert_array_equal(target.qpos, want)
            assert target.clipped == 0 and target.tracking_mm == ()
            assert (target.prediction is None) == (c == 0)


@pytest.mark.parametrize("realtime", [False, True])
@pytest.mark.parametrize("latency, expected, observed", [
    # d = 0: today's hand-over, k ticks on, skipping the k elapsed rows
    (0, [(0, 0), (0, 1), (0, 2), (1, 3), (1, 4), (1, 5), (2, 3), (2, 4), (2, 5), (3, 3)], [0, 0, 3, 6]),
    # d = 2 <= k: the first request blocks 2 ticks; then the same hand-over, k ticks on
    (2, [None, None, (0, 0), (0, 1), (0, 2), (1, 3), (1, 4), (1, 5), (2, 3), (2, 4)], [0, 0, 5]),
    # d = 5 > k: the chunk runs on until the reply lands 5 ticks on, skipping 5 rows; an 8-row chunk then runs out
    # 3 ticks later and the arm holds until the next one lands
    (5, [None] * 5 + [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 5), (1, 6), (1, 7), None, None, (2, 5)],
     [0, 0, 10]),
])
def test_async_hands_over_when_the_reply_lands_at_least_k_ticks_on(decoder, latency, expected, observed, realtime):
    """The deterministic hand-over and realtime's (requests landing as sent) are one rule: the reply is taken at the
    first tick at least max(k, d) ticks after the observation it was asked with."""
    policy = Chunks(decoder, chunk=8)
    with ChunkController(policy, decoder, ChunkStrategy("async", 3), prompt="stack the cups", latency=latency,
                         realtime=realtime, executor=_Now() if realtime else None) as control:
        targets = _run(control, len(expected), policy.home)
    assert _sent(targets) == expected
    # the first reply's follow-up asked with its observation, then each from its hand-over's tick (the request the
    # last hand-over sent may be dropped unasked when the controller closes)
    assert policy.observed_ticks[:len(observed)] == observed
    held = [t for t in targets if t.held]
    assert all(t.clipped == 0 for t in held)
    if latency == 5:  # the chunk ran out: its last row again
        np.testing.assert_array_equal(targets[13].qpos, policy.row(1, 7))


@pytest.mark.parametrize("realtime", [False, True])
def test_async_with_a_latency_of_a_whole_chunk_asks_each_next_chunk_as_its_first(decoder, realtime, caplog):
    """d >= T: a background reply would land past its whole chunk, be dropped, and the arm hold for the rest of the
    episode; instead none is asked, and once a chunk has run out the next request blocks, its reply starting where it
    lands (the arm stood still meanwhile)."""
    policy, d = Chunks(decoder, chunk=8), 9
    with caplog.at_level(logging.WARNING, logger="worldpolicy.robot.control"), \
            ChunkController(policy, decoder, ChunkStrategy("async", 2), prompt="stack the cups", latency=d,
                            realtime=realtime, executor=_Now()) as control:
        targets = _run(control, 40, policy.home)
    cycle = d + 8  # held d ticks, then the chunk's 8 rows
    assert _sent(targets) == [None if r < d else (c, r - d) for c, r in (divmod(t, cycle) for t in range(40))]
    assert policy.observed_ticks == [0, 17, 34]
    assert "dropped" not in caplog.text


@pytest.mark.parametrize("latency", [0, 1, 3])  # none, d < k, d > k
def test_an_ensemble_chunk_asked_at_t_covers_t_plus_d_on(decoder, latency):
    """Asked every k ticks whatever the latency; the first d rows of each chunk are stale and dropped, the rest
    blended with the chunks still covering those ticks, oldest first."""
    policy, k, d, decay = Chunks(decoder, chunk=6), 2, latency, 0.5
    control = ChunkController(policy, decoder, ChunkStrategy("ensemble", k, ensemble_decay=decay),
                              prompt="stack the cups", latency=d)
    targets = _run(control, 10, policy.home)
    assert policy.observed_ticks == [0, 2, 4, 6, 8]
    for t, target in enumerate(targets):
        covering = [(c, t - k * c) for c in range(5) if k * c + d <= t < k * c + 6]
        if not covering:  # nothing landed yet
            assert t < d and target.held and target.prediction is None
            np.testing.assert_array_equal(target.qpos, policy.home)
            continue
        weights = np.exp(-decay * np.arange(len(covering)))
        expected = sum(w * policy.row(c, i)[0] for w, (c, i) in zip(weights, covering)) / weights.sum()
        assert target.qpos[0] == pytest.approx(expected, abs=1e-12)
        assert (_request_of(target), target.index) == covering[-1]  # the newest, d rows in when it lands


@pytest.mark.parametrize("announced", [True, False])
def test_ensemble_with_a_latency_of_a_whole_chunk_is_refused_as_the_arm_would_never_move(decoder, announced):
    """Every ensemble reply would land past its whole chunk and be dropped: refused where the chunk is known (a policy
    that announces it, when the controller is made; else its first reply); T - 1 runs the last row of each chunk."""
    policy = Chunks(decoder, chunk=6)
    if announced:
        policy.chunk_size = 6
    said = (r"latency: 6 ticks is at or past the policy's 6-step chunk: with the 'ensemble' strategy every reply "
            r"lands past its whole chunk and is dropped, so the arm never moves; accepted: 0 to 5 ticks, or the "
            r"'execute' or 'async' strategy")
    with pytest.raises(ValueError, match=said):
        control = ChunkController(policy, decoder, ChunkStrategy("ensemble", 2), prompt="stack the cups", latency=6)
        _run(control, 1, policy.home)
    assert policy.observed_ticks == ([] if announced else [0])
    control = ChunkController(Chunks(decoder, chunk=6), decoder, ChunkStrategy("ensemble", 1), prompt="stack the cups",
                              latency=5)
    targets = _run(control, 8, policy.home)
    assert [(_request_of(t), t.index) for t in targets[5:]] == [(0, 5), (1, 5), (2, 5)]
    for strategy in (ChunkStrategy("execute"), ChunkStrategy("async")):  # their late request blocks: the arm moves
        control = ChunkController(policy, decoder, strategy, prompt="stack the cups", latency=6)
        assert not _run(control, 8, policy.home)[-1].held


def test_a_latency_asks_for_no_reply_that_would_land_at_the_horizon(decoder):
    policy = Chunks(decoder)
    control = ChunkController(policy, decoder, ChunkStrategy("execute", 3), prompt="stack the cups", latency=2)
    control.reset(horizon=7)
    targets = _run(control, 7, policy.home)
    assert policy.observed_ticks == [0]  # at tick 5 the next would land at 7
    assert _sent(targets) == [None, None, (0, 0), (0, 1), (0, 2), None, None]
    with pytest.raises(ValueError, match=r"latency: 7 ticks is at or past the horizon of 7 ticks: no reply would "
                                         r"land before it; accepted: 0 to 6"):
        ChunkController(policy, decoder, latency=7).reset(horizon=7)
    # a huge one is said shortened, not as its 301 digits
    with pytest.raises(ValueError, match=r"^latency: 100000000000000000\.\.\.0000000000000000000 ticks is at or past "
                                         r"the horizon"):
        ChunkController(policy, decoder, latency=10**300).reset(horizon=7)


@pytest.mark.parametrize("latency", [-1, 1.5, True, "2", None])
def test_a_latency_that_is_no_whole_number_of_ticks_is_refused_naming_it(decoder, latency):
    with pytest.raises(ValueError, match=rf"latency: expected a whole number of control ticks >= 0 \(0: none\), "
                                         rf"got {re.escape(repr(latency))}"):
        ChunkController(Chunks(decoder), decoder, latency=latency)


# Real-time chunking: each background request of async carries the running chunk's rows for the ticks it is in
# flight (`action_prefix`), row i of the new chunk being tick t + i, t the tick it is sent.

class Prefixed(Chunks):
    """`Chunks` whose `act` takes `action_prefix`, as a `Policy` and a `RemotePolicy` do: it records each one given."""

    def __init__(self, decoder, chunk: int = 8):
        super().__init__(decoder, chunk)
        self.prefixes: list[np.ndarray | None] = []

    def act(self, observation, prompt, *, action_prefix=None):
        self.prefixes.append(None if action_prefix is None else np.array(action_prefix))
        return super().act(observation, prompt)

    def rows(self, c: int, first: int, last: int) -> np.ndarray:
        """Rows first..last of request c's chunk, as its Prediction.actions hold them."""
        return np.stack([np.append(self.row(c, i), c / 10) for i in range(first, last + 1)])


@pytest.mark.parametrize("k, latency, chunk, realtime, ticks, prefixes", [
    # d = k, no latency: chunk 0 taken at tick 0 runs rows 0-2 before request 1's reply takes over at 3; chunk 1,
    # taken at 3 skipping its 3 elapsed rows, runs rows 3-5 while request 2 is in flight
    (3, 0, 8, False, 7, [None, (0, 0, 2), (1, 3, 5), (2, 3, 5)]),
    (3, 0, 8, True, 7, [None, (0, 0, 2), (1, 3, 5), (2, 3, 5)]),
    # d = latency 5 > k: the first request blocks until tick 5; chunk 0 runs rows 0-4 until request 1 lands at 10,
    # which skips 5 rows: its 8-row chunk holds only rows 5-7 for request 2's 5 ticks in flight
    (3, 5, 8, False, 11, [None, (0, 0, 4), (1, 5, 7)]),
    # realtime: at least until the latency tick (3 > k = 2)
    (2, 3, 8, True, 4, [None, (0, 0, 2)]),
    # d = T - 1 = 7 ticks in flight, the longest prefix: chunk 0's rows 0-6; chunk 1, taken 7 rows in, has only row 7
    # left to run while request 2 is in flight
    (2, 7, 8, False, 15, [None, (0, 0, 6), (1, 7, 7)]),
    # d = 9 >= T: no background request (its reply would land past its whole chunk); the next one blocks, as the first
    (2, 9, 8, False, 19, [None, None]),
])
def test_rtc_passes_the_running_chunks_rows_for_the_ticks_in_flight(decoder, k, latency, chunk, realtime, ticks,
                                                                     prefixes):
    policy = Prefixed(decoder, chunk)
    with ChunkController(policy, decoder, ChunkStrategy("async", k), prompt="stack the cups", latency=latency,
                         realtime=realtime, rtc=True, executor=_Now()) as control:  # each request asked as sent
        _run(control, ticks, policy.home)
    assert len(policy.prefixes) == len(prefixes)
    for got, want in zip(policy.prefixes, prefixes):
        if want is None:
            assert got is None
        else:
            np.testing.assert_array_equal(got, policy.rows(*want))


def test_rtc_in_realtime_stops_at_the_hand_over_not_at_the_chunks_end(decoder):
    """Realtime plans the whole rest of a chunk (it runs on until a reply lands), but the request after a late one
    gets only the k rows it is known to run in flight."""
    policy, requests = Prefixed(decoder, chunk=8), ByHand()
    control = ChunkController(policy, decoder, ChunkStrategy("async", 2), prompt="stack the cups", realtime=True,
                              rtc=True, executor=requests)
    _run(control, 4, policy.home)  # chunk 0 runs rows 0-3, request 1 (asked at 0) not landed
    requests.land()
    control.step({"tick": 4}, policy.home)  # request 1 taken at tick 4, its rows 0-3 past: request 2 sent
    requests.land()
    assert len(policy.prefixes) == 3 and policy.prefixes[0] is None
    np.testing.assert_array_equal(policy.prefixes[1], policy.rows(0, 0, 1))
    np.testing.assert_array_equal(policy.prefixes[2], policy.rows(1, 4, 5))


def test_rtc_asks_again_after_a_failed_request_with_the_rows_that_run_while_it_is_in_flight(decoder):
    """The request sent again after a failure is a background one like any: row i of its chunk is meant for tick
    t + i, t the tick it is sent, so the running chunk's rows for its k ticks in flight go with it."""
    policy, requests = Prefixed(decoder, chunk=8), ByHand()
    control = ChunkController(policy, decoder, ChunkStrategy("async", 2), prompt="stack the cups", realtime=True,
                              rtc=True, executor=requests)
    _run(control, 3, policy.home)
    requests.waiting.pop(0)[0].set_exception(TimeoutError("server silent past read_timeout_s"))
    with pytest.raises(TimeoutError, match="silent"):
        control.step({"tick": 3}, policy.home)
    control.step({"tick": 3}, policy.home)
    requests.land()
    assert len(policy.prefixes) == 2 and policy.prefixes[0] is None
    np.testing.assert_array_equal(policy.prefixes[1], policy.rows(0, 3, 4))


def test_without_rtc_no_prefix_is_passed(decoder):
    policy = Prefixed(decoder)
    with ChunkController(policy, decoder, ChunkStrategy("async", 3), prompt="stack the cups",
                         executor=_Now()) as control:
        _run(control, 7, policy.home)
    assert policy.prefixes == [None] * 4


@pytest.mark.parametrize("strategy", [ChunkStrategy("execute", 3), ChunkStrategy("ensemble", 2), ChunkStrategy()])
def test_rtc_with_another_strategy_is_refused_naming_it(decoder, strategy):
    with pytest.raises(ValueError, match=rf"rtc: conditions each chunk on the actions that run while it is computed, "
                                         rf"which only the 'async' strategy does; got '{strategy.kind}'; accepted: "
                                         rf"'async'"):
        ChunkController(Prefixed(decoder), decoder, strategy, rtc=True)


def test_rtc_with_a_policy_that_takes_no_prefix_is_refused(decoder):
    with pytest.raises(ValueError, match=r"rtc: policy Chunks's act takes no action_prefix, so it cannot continue "
                                         r"the running chunk"):
        ChunkController(Chunks(decoder), decoder, ChunkStrategy("async"), rtc=True)
    with pytest.raises(ValueError, match=r"rtc: expected True or False, got 'yes'"):
        ChunkController(Prefixed(decoder), decoder, ChunkStrategy("async"), rtc="yes")


def test_the_decoder_its_ik_and_the_controller_print_what_they_drive_and_how(decoder):
    """Printed in a REPL they named only their class and address; now their robot, embodiment and settings, and the
    controller where its episode is (a decoder function by its name)."""
    assert repr(decoder) == ("ActionDecoder(embodiment='droid/joint_pos', robot='panda', fps=15, reanchor=True, "
                             "check_velocity=True, check_limits=True)")
    assert repr(decoder.ik).startswith("IKSolver(robot='panda', fps=15.0, solver=")
    control = ChunkController(Chunks(decoder), decoder, ChunkStrategy("execute", execute_steps=4),
                              prompt="stack the cups", latency=2)
    _run(control, 3, _home(decoder))
    assert repr(control) == (f"ChunkController(policy=Chunks, decoder={decoder!r}, strategy=ChunkStrategy("
                             "kind='execute', execute_steps=4, ensemble_decay=0.1), realtime=False, latency=2, "
                             "rtc=False, on_policy_error='raise', tick=3, chunks=1)")

    def droid_decoder(key):
        return decoder

    assert "decoder=test_the_decoder_its_ik_and_the_controller_print_what_they_drive_and_how.<locals>.droid_decoder," \
        in repr(ChunkController(Chunks(decoder), droid_decoder))


class Stated(Chunks):
    """`Chunks` whose `act` takes `state=`, as a `Policy` and a `RemotePolicy` do: it records each one given, with the
    tick of the observation it came with."""

    def __init__(self, decoder, chunk: int = 8):
        super().__init__(decoder, chunk)
        self.states: list[tuple[int, list[float] | None]] = []

    def act(self, observation, prompt, *, state=None):
        self.states.append((observation["tick"], None if state is None else list(state)))
        return super().act(observation, prompt)


@pytest.mark.parametrize("strategy", [ChunkStrategy("execute", 3), ChunkStrategy("ensemble", 2),
                                      ChunkStrategy("async", 3)])
def test_step_passes_the_state_row_read_with_each_requests_observation(decoder, strategy):
    """A state-conditioned embodiment whose observation does not carry the state (no `state_keys`) needs `state=` on
    every request: the controller passed none, so such a policy refused each one. A function is read when the
    observation is, and an async background request carries the state of the observation it was asked with, even
    when it lands ticks later."""
    policy, requests = Stated(decoder), ByHand()
    read: list[int] = []
    observed: list[int] = []

    def state(t):
        read.append(t)
        return [t / 100] * 8

    def observe(t):
        observed.append(t)
        return {"tick": t}

    control = ChunkController(policy, decoder, strategy, prompt="stack the cups", executor=requests)
    for t in range(7):
        if strategy.kind == "async" and t in (3, 6):
            requests.land()
        control.step(lambda t=t: observe(t), policy.home, state=lambda t=t: state(t))
    assert policy.states and all(got == [tick / 100] * 8 for tick, got in policy.states)
    assert [tick for tick, _ in policy.states] == policy.observed_ticks
    assert read == observed and len(read) < 7  # read with the observation, on the ticks that ask only
    # a row as it is (not a function), and none: the keyword left out, as a policy without it is asked
    control.reset()
    control.step({"tick": 0}, policy.home, state=np.full(8, 0.5))
    assert policy.states[-1] == (0, [0.5] * 8)
    control.reset()
    control.step({"tick": 0}, policy.home)
    assert policy.states[-1] == (0, None)
    control.close()


def test_replies_say_each_requests_ticks_in_flight_seconds_skipped_rows_and_drop(decoder):
    """What a real-time loop reads its latency from: the tick each request was sent and its reply taken or dropped,
    including the dropped ones a realtime arm never runs (before, only `policy_s`, a sum, and a warning said once)."""
    policy, requests = Chunks(decoder, chunk=6), ByHand()
    control = ChunkController(policy, decoder, ChunkStrategy("async", 2), prompt="stack the cups", realtime=True,
                              executor=requests)
    _run(control, 3, policy.home)
    requests.land()  # chunk 1, sent at tick 0, taken at tick 3: rows 0-2 past
    _run(control, 6, policy.home, start=3)  # chunk 2, sent at tick 3, not landed by tick 8
    requests.land()
    assert control.step({"tick": 9}, policy.home).held  # 6 ticks late for a 6-action chunk: dropped, asked again
    assert [r[:2] + r[3:] for r in control.replies] == [(0, 0, 0, False), (0, 3, 3, False), (3, 9, 6, True)]
    assert all(isinstance(r.seconds, float) and r.seconds >= 0 for r in control.replies)
    assert control.chunks == 2 and len(requests.waiting) == 1  # the dropped reply ran nothing; the next is in flight
    assert control.replies.maxlen == REPLIES_KEPT  # a loop that runs for hours keeps the latest, not every one
    control.reset()
    assert not control.replies


def test_replies_count_a_latencys_ticks_in_flight_for_a_blocking_request(decoder):
    control = ChunkController(Chunks(decoder, chunk=4), decoder, ChunkStrategy("execute", 2), prompt="stack the cups",
                              latency=2)
    _run(control, 8, _home(decoder))  # each cycle: 2 ticks held, then 2 actions from the chunk's first
    assert [r[:2] + r[3:] for r in control.replies] == [(0, 2, 0, False), (4, 6, 0, False)]


def test_a_background_request_that_fails_raises_once_and_the_next_step_asks_again_in_the_background(decoder):
    """docs/robot.md: a failed request (a RemotePolicy's ServerTimeoutError) raises from the step that takes its reply,
    which runs no tick; the next step asks again at once, in the background, while the arm runs on the current chunk
    (it asked only once that chunk ran out, blocking the loop); the failure is no `Reply`."""
    policy, requests = Chunks(decoder, chunk=6), ByHand()
    control = ChunkController(policy, decoder, ChunkStrategy("async", 2), prompt="stack the cups", realtime=True,
                              executor=requests)
    _run(control, 3, policy.home)
    requests.waiting.pop(0)[0].set_exception(TimeoutError("server silent past read_timeout_s"))
    with pytest.raises(TimeoutError, match="silent"):
        control.step({"tick": 3}, policy.home)
    assert not requests.waiting and control.tick == 3  # nothing sent by the step that raised, no tick run
    observed: list[int] = []

    def observe(t):
        observed.append(t)
        return {"tick": t}

    after = [control.step(lambda: observe(3), policy.home)]  # tick 3 again: asks in the background, runs row 3
    assert observed == [3] and len(requests.waiting) == 1 and policy.observed_ticks == [0]
    after += [control.step(lambda: observe(4), policy.home)]  # not landed: chunk 0 runs on, nothing raised again
    requests.land()
    after += _run(control, 2, policy.home, start=5)  # landed: taken at its hand-over, k = 2 ticks after it was sent
    assert [(_request_of(t), t.index) for t in after] == [(0, 3), (0, 4), (1, 2), (1, 3)]
    assert observed == [3] and policy.observed_ticks == [0, 3]  # asked with tick 3's observation, read once
    assert not any(t.held for t in after)
    assert [r[:2] for r in control.replies] == [(0, 0), (3, 5)]


def test_a_background_request_that_fails_after_the_chunk_ran_out_asks_again_blocking(decoder):
    """With no action left to run the arm stands still: the next request blocks, as the episode's first, and its
    chunk runs from its first action (a background one would skip actions whose ticks passed with the arm held)."""
    policy, requests = Chunks(decoder, chunk=6), ByHand()
    control = ChunkController(policy, decoder, ChunkStrategy("async", 3), prompt="stack the cups", realtime=True,
                              executor=requests)
    assert _run(control, 7, policy.home)[-1].held  # chunk 0's 6 rows ran, tick 6 held
    requests.waiting.pop(0)[0].set_exception(TimeoutError("server gone"))
    with pytest.raises(TimeoutError, match="gone"):
        control.step({"tick": 7}, policy.home)
    target = control.step({"tick": 7}, policy.home)
    assert (_request_of(target), target.index, target.held) == (1, 0, False) and policy.observed_ticks == [0, 7]
    assert len(requests.waiting) == 1  # and its follow-up in the background, as after the first


def test_a_deterministic_hand_over_that_fails_asks_again_blocking(decoder):
    """Without realtime only the k actions before the hand-over are planned: none is left to run, so the request
    after a failed one blocks, as before."""
    policy, requests = Chunks(decoder, chunk=6), ByHand()
    control = ChunkController(policy, decoder, ChunkStrategy("async", 2), prompt="stack the cups", executor=requests)
    _run(control, 2, policy.home)
    requests.waiting.pop(0)[0].set_exception(TimeoutError("server silent past read_timeout_s"))
    with pytest.raises(TimeoutError, match="silent"):
        control.step({"tick": 2}, policy.home)
    target = control.step({"tick": 2}, policy.home)
    assert (_request_of(target), target.index) == (1, 0) and policy.observed_ticks == [0, 2]


class _Running(Future):
    """A request the policy is still answering: `exception()` is what waiting for it calls."""

    def __init__(self):
        super().__init__()
        self.set_running_or_notify_cancel()
        self.waited = False

    def exception(self, timeout=None):
        self.waited = True


def test_leaving_the_with_block_on_an_error_does_not_wait_for_the_request_in_flight(decoder):
    """The handler that stops the arm runs at once, not after the policy answers (a silent server: read_timeout_s);
    the request left running is waited for by the next reset, so the policy is free for the next episode."""
    running = []

    class Now(Executor):
        def submit(self, fn, /, *args, **kwargs):
            running.append(_Running())
            return running[-1]

    policy = Chunks(decoder, chunk=6)
    control = ChunkController(policy, decoder, ChunkStrategy("async", 2), prompt="stack the cups", realtime=True,
                              executor=Now())
    with pytest.raises(ValueError, match="arm fault"), control:
        _run(control, 1, policy.home)
        raise ValueError("arm fault")
    assert len(running) == 1 and not running[0].waited
    control.reset()
    assert running[0].waited
    with ChunkController(policy, decoder, ChunkStrategy("async", 2), prompt="stack the cups", realtime=True,
                         executor=Now()) as control:
        _run(control, 1, policy.home)
    assert running[1].waited  # left without an error: waited for, as before
    with pytest.raises(ValueError, match=r"wait: expected True or False, got 'no'"):
        control.close(wait="no")  # a truthy string read as True waited where the caller asked not to


def test_the_next_episodes_controller_waits_for_the_request_an_error_left_running_on_its_policy(decoder):
    """A loop that makes a controller per episode: the request the erroring one left running (`close(wait=False)`)
    is waited for before the next controller's first request asks the same policy (a local Policy's pipeline takes
    one call at a time), as its own reset would; another policy's is not waited for."""
    policy, other = Chunks(decoder, chunk=6), Chunks(decoder, chunk=6)
    asked_when_waited = []

    class Left(_Running):
        def exception(self, timeout=None):
            asked_when_waited.append(len(policy.observed_ticks))
            self.set_result(None)  # it finishes: no longer left running

    class Now(Executor):
        def submit(self, fn, /, *args, **kwargs):
            return Left()

    with pytest.raises(ValueError, match="arm fault"), \
            ChunkController(policy, decoder, ChunkStrategy("async", 2), prompt="stack the cups", realtime=True,
                            executor=Now()) as control:
        _run(control, 1, policy.home)  # asks once, blocking; the background request left running
        raise ValueError("arm fault")
    assert asked_when_waited == []
    with ChunkController(other, decoder, ChunkStrategy("execute", 2), prompt="stack the cups") as control:
        _run(control, 1, other.home)
    assert asked_when_waited == []  # another policy's controller does not wait for it
    with ChunkController(policy, decoder, ChunkStrategy("execute", 2), prompt="stack the cups") as control:
        _run(control, 1, policy.home)
    assert asked_when_waited == [1] and len(policy.observed_ticks) == 2  # waited for before the second request
    with ChunkController(policy, decoder, ChunkStrategy("execute", 2), prompt="stack the cups") as control:
        _run(control, 1, policy.home)
    assert asked_when_waited == [1]  # finished: not waited for again


def test_ctrl_c_while_waiting_for_a_hand_over_leaves_the_request_to_be_waited_for(decoder):
    """Interrupted waiting for a background reply (Ctrl-C in a deterministic hand-over), the request was forgotten:
    the next request to the policy raced it. It is left running (`close(wait=False)`'s), so the next reset waits."""
    waited = []

    class Interrupted(_Running):
        def result(self, timeout=None):
            raise KeyboardInterrupt

        def exception(self, timeout=None):
            waited.append(True)
            self.set_result(None)  # it finishes: no longer left running

    class Now(Executor):
        def submit(self, fn, /, *args, **kwargs):
            return Interrupted()

    policy = Chunks(decoder, chunk=6)
    control = ChunkController(policy, decoder, ChunkStrategy("async", 2), prompt="stack the cups", executor=Now())
    with pytest.raises(KeyboardInterrupt), control:
        _run(control, 3, policy.home)
    assert not waited
    control.reset()
    assert waited


def test_each_target_says_its_episode_tick_stamp_and_how_old_its_plan_is(decoder):
    """A command passed on to another thread or process (a servo loop) is told stale or fresh by its own fields: the
    (episode, tick) it is for, the clock reading when it was made, and the tick its chunk was observed at; a held
    tick's target is a new command (its own tick and stamp) of the same plan."""
    policy, requests = Chunks(decoder, chunk=6), ByHand()
    readings = iter(range(100, 200))
    control = ChunkController(policy, decoder, ChunkStrategy("async", 2), prompt="stack the cups", realtime=True,
                              executor=requests, clock=lambda: float(next(readings)))
    home = policy.home
    control.reset()  # before any step: the same episode
    targets = _run(control, 3, home)  # chunk 0, observed at tick 0; chunk 1 asked in the background at tick 0
    requests.land()
    targets += _run(control, 2, home, start=3)  # chunk 1 takes over at tick 3 (asked with tick 0's observation)
    requests.land()
    targets += _run(control, 5, home, start=5)  # chunk 2, asked at tick 3: rows 2-5 for ticks 5-8, then held
    assert [t.tick for t in targets] == list(range(10)) and {t.episode for t in targets} == {0}
    assert [t.stamp for t in targets] == [float(s) for s in range(100, 110)]  # one reading per step, when made
    assert [t.observed for t in targets] == [0, 0, 0, 0, 0, 3, 3, 3, 3, 3]
    assert [t.held for t in targets] == [False] * 9 + [True]
    control.reset()
    after = control.step({"tick": 0}, home)
    assert (after.episode, after.tick, after.observed, after.stamp) == (1, 0, 0, 110.0)


def _target(episode: int, tick: int, stamp: float) -> JointTarget:
    return JointTarget(np.zeros(7), None, 0, (), None, None, tick=tick, episode=episode, stamp=stamp, observed=None)


def test_a_receiver_runs_a_target_only_if_it_is_newer_and_young_enough():
    """`JointTarget.fresh`, as a servo thread or driver process checks what it receives: the first target runs; one not
    newer by (episode, tick) than the last run (a repeat, an older one, a late one of the episode before) is stale,
    however young; one made more than max_age_s ago by the same clock is stale, however new."""
    target = _target(1, 5, stamp=100.0)
    assert target.fresh(None, max_age_s=0.1, now=100.05)  # the first target
    assert target.fresh((1, 4), max_age_s=0.1, now=100.1)  # the next tick, exactly max_age_s old
    assert target.fresh((0, 40), max_age_s=0.1, now=100.0)  # a new episode's tick 5 after the last one's tick 40
    for newest in ((1, 5), (1, 6), (2, 0)):  # stale by its tick: run already, or an older command than the last
        assert not target.fresh(newest, max_age_s=0.1, now=100.0), newest
    assert not target.fresh((1, 4), max_age_s=0.1, now=100.2)  # stale by its age
    assert not target.fresh(None, max_age_s=0.1, now=100.2)  # a first target too
    now = _target(0, 0, stamp=time.monotonic())  # the controller's clock by default: made just now
    assert now.fresh(None, max_age_s=60.0) and not _target(0, 0, stamp=time.monotonic() - 60.0).fresh(None, 1.0)
    # numpy's numbers, as a driver reading a shared array has them, are taken as the chunk settings take them; inf
    # ages nothing out
    assert target.fresh((np.int64(1), np.int64(4)), max_age_s=np.float32(0.1), now=100.05)
    assert not target.fresh((1, 4), max_age_s=np.int64(1), now=102.0)
    assert target.fresh((1, 4), max_age_s=float("inf"), now=1e9)


@pytest.mark.parametrize(("newest", "max_age_s", "message"), [
    (5, 0.1, r"newest: expected the \(episode, tick\) of the last command run, or None before any; got 5"),
    ((1, 2, 3), 0.1, r"newest: .* got \(1, 2, 3\)"),
    ((1.0, 2), 0.1, r"newest: .* got \(1.0, 2\)"),
    ((True, 2), 0.1, r"newest: .* got \(True, 2\)"),  # a bool is no episode, as everywhere else
    ((1, 2), 0.0, r"max_age_s: expected seconds > 0 \(a command older than that is stale\), got 0.0"),
    ((1, 2), float("nan"), r"max_age_s: .* got nan"),
    ((1, 2), "0.1", r"max_age_s: .* got '0.1'"),
])
def test_a_freshness_check_with_bad_arguments_is_refused_naming_them(newest, max_age_s, message):
    with pytest.raises(ValueError, match=message):
        _target(1, 5, stamp=100.0).fresh(newest, max_age_s, now=100.0)


def test_a_target_held_before_the_first_reply_was_observed_at_no_tick(decoder):
    policy = Chunks(decoder)
    control = ChunkController(policy, decoder, ChunkStrategy("execute", 4), prompt="stack the cups", latency=2)
    targets = _run(control, 3, policy.home)
    assert [(t.held, t.observed, t.tick) for t in targets] == [(True, None, 0), (True, None, 1), (False, 0, 2)]


def test_a_clock_that_is_no_function_is_refused_naming_it(decoder):
    with pytest.raises(TypeError, match=r"clock: expected a function returning seconds \(time.monotonic, the "
                                        r"default\), got float 0.0"):
        ChunkController(Chunks(decoder), decoder, prompt="stack the cups", clock=0.0)


class Failing(Chunks):
    """`Chunks` whose calls numbered in `fail` (0 first, every call counted) raise, as a RemotePolicy's do when its
    server is gone (`error`: what they raise, from the call's number), and those in `nan` return a chunk with NaN (the
    decoder refuses it); `calls` records the tick of each call's observation, failed ones included (`observed_ticks`:
    the answered ones, which `Chunks` numbers)."""

    def __init__(self, decoder, fail=(), nan=(), chunk: int = 8, offsets=None, error=None):
        super().__init__(decoder, chunk, offsets)
        self.fail, self.nan = set(fail), set(nan)
        self.error = error or (lambda call: TimeoutError(f"server silent (call {call})"))
        self.calls: list[int] = []

    def act(self, observation, prompt):
        self.calls.append(observation["tick"])
        call = len(self.calls) - 1
        if "all" in self.fail or call in self.fail:
            raise self.error(call)
        pred = super().act(observation, prompt)
        if call in self.nan:
            actions = pred.actions.copy()
            actions[0, 0] = np.nan
            pred = Prediction(mode="policy", embodiment=EMB.key, columns=list(EMB.columns), units=list(EMB.units),
                              actions=actions, actions_normalized=actions, fps=EMB.fps)
        return pred


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "worldpolicy.robot.control" and r.levelno == logging.WARNING]


def test_hold_execute_holds_the_last_target_through_failed_requests_and_asks_again_with_a_back_off(decoder, caplog):
    """docs/robot.md, "Holding the arm when the policy fails": the tick whose request failed holds the last target
    sent (the arm stood still, so nothing of the old chunk is replayed), the failure is on the target and counted, one
    warning per streak; the next request goes 1 tick on, then 2, and its chunk runs from its first action."""
    policy = Failing(decoder, fail={1, 2})
    control = ChunkController(policy, decoder, ChunkStrategy("execute", 3), prompt="stack the cups",
                              on_policy_error="hold")
    with caplog.at_level(logging.INFO, logger="worldpolicy.robot.control"):
        targets = _run(control, 10, policy.home)
    assert policy.calls == [0, 3, 4, 6, 9]  # failed at 3 (retry 1 tick on) and at 4 (2 ticks on): asked at 6
    for t in (3, 4, 5):
        assert targets[t].held and targets[t].prediction is targets[2].prediction
        np.testing.assert_array_equal(targets[t].qpos, targets[2].qpos)  # the last target sent, not a later row
        assert targets[t].gripper == targets[2].gripper and targets[t].tick == t
    assert [type(t.policy_error).__name__ if t.policy_error else None for t in targets] == \
        [None] * 3 + ["TimeoutError"] * 2 + [None] * 5
    assert "call 2" in str(targets[4].policy_error)
    assert [(_request_of(t), t.index, t.observed) for t in targets[6:9]] == [(1, 0, 6), (1, 1, 6), (1, 2, 6)]
    assert control.policy_errors == 2 and control.policy_error_streak == 0 and control.chunks == 3
    warned = _warnings(caplog)
    assert len(warned) == 1 and warned[0].startswith("tick 3: the policy request failed (TimeoutError: server silent")
    assert "max_policy_errors=10" in warned[0]
    assert any("answered again after 2 failed requests" in r.getMessage() for r in caplog.records)
    control.reset()
    assert control.policy_errors == 0  # per episode


def test_hold_each_streak_warns_once_and_a_failure_before_the_first_reply_holds_where_the_arm_is(decoder, caplog):
    policy = Failing(decoder, fail={0, 2, 3, 4})
    control = ChunkController(policy, decoder, ChunkStrategy("execute", 2), prompt="stack the cups",
                              on_policy_error="hold")
    with caplog.at_level(logging.WARNING, logger="worldpolicy.robot.control"):
        targets = _run(control, 14, policy.home)
    first = targets[0]
    assert first.held and first.prediction is None and first.observed is None and first.policy_error is not None
    np.testing.assert_array_equal(first.qpos, policy.home)
    # 0 failed, 1 answered; 3 failed, 4 failed, 6 failed (4 ticks on: 10), 10 answered
    assert policy.calls == [0, 1, 3, 4, 6, 10, 12]
    assert [t.tick for t in targets if t.held] == [0, 3, 4, 5, 6, 7, 8, 9]
    assert len(_warnings(caplog)) == 2 and control.policy_errors == 4  # one per streak, not one per failure or tick


def test_hold_back_off_doubles_up_to_its_cap_and_the_streak_limit_raises_the_last_error_naming_the_setting(
        decoder, caplog):
    policy = Failing(decoder, fail={"all"})
    control = ChunkController(policy, decoder, ChunkStrategy("execute", 2), prompt="stack the cups",
                              on_policy_error="hold", max_policy_errors=9)
    asked = []
    with caplog.at_level(logging.WARNING, logger="worldpolicy.robot.control"):
        for t in range(200):
            asked.append(control.asks)
            try:
                target = control.step({"tick": t}, policy.home)
            except TimeoutError as error:
                raised = error
                break
            assert target.held and np.array_equal(target.qpos, policy.home)
    assert policy.calls == [0, 1, 3, 7, 15, 31, 47, 63, 79]  # 1, 2, 4, 8, 16 ticks apart, then 16 (RETRY_TICKS_MOST)
    assert [t for t, a in enumerate(asked) if a] == policy.calls  # `asks` says beforehand which ticks ask
    assert str(raised) == "server silent (call 8)" and control.tick == 79  # the 9th: no tick run
    assert raised.__notes__ == [("on_policy_error='hold': 9 policy requests in a row failed, the last at tick 79 (this "
                                 "error), reaching max_policy_errors=9; the step raised and commanded nothing, the arm "
                                 "still holds the last target sent: stop it, or raise max_policy_errors")]
    assert len(_warnings(caplog)) == 1 and control.policy_errors == 9


def test_hold_a_chunk_the_decoder_refuses_is_a_failed_request(decoder):
    policy = Failing(decoder, nan={1})
    control = ChunkController(policy, decoder, ChunkStrategy("execute", 2), prompt="stack the cups",
                              on_policy_error="hold")
    targets = _run(control, 5, policy.home)
    assert isinstance(targets[2].policy_error, ValueError) and "NaN" in str(targets[2].policy_error)
    assert targets[2].held and np.array_equal(targets[2].qpos, targets[1].qpos)
    assert policy.calls == [0, 2, 3] and (_request_of(targets[3]), targets[3].index) == (2, 0)
    assert control.policy_errors == 1 and control.chunks == 2


def test_hold_ensemble_runs_the_chunks_covering_the_tick_and_asks_again_on_the_next(decoder):
    """The chunks asked before still cover the tick whose request failed: it runs their blend, as it would while a
    reply is in flight; the next tick asks again, off the every-k schedule, which then goes on."""
    policy = Failing(decoder, fail={1}, chunk=6)
    control = ChunkController(policy, decoder, ChunkStrategy("ensemble", 2), prompt="stack the cups",
                              on_policy_error="hold")
    targets = _run(control, 6, policy.home)
    assert policy.calls == [0, 2, 3, 4]
    assert targets[2].policy_error is not None and not targets[2].held
    np.testing.assert_array_equal(targets[2].qpos, policy.row(0, 2))  # chunk 0's row for tick 2 alone
    assert (_request_of(targets[3]), targets[3].index) == (1, 0) and targets[3].policy_error is None


def test_hold_realtime_async_runs_the_running_chunk_on_through_a_failed_background_request(decoder):
    """A background reply that failed: the running chunk's actions meant for the ticks ahead run (none whose tick
    has passed), the next tick asks again in the background; once the running chunk runs out with the request still
    failing, the arm holds its last target."""
    policy, requests = Failing(decoder, chunk=6), ByHand()
    control = ChunkController(policy, decoder, ChunkStrategy("async", 2), prompt="stack the cups", realtime=True,
                              executor=requests, on_policy_error="hold")
    targets = _run(control, 3, policy.home)
    requests.waiting.pop(0)[0].set_exception(TimeoutError("server silent"))
    targets += _run(control, 1, policy.home, start=3)  # the failure taken: row 3 of chunk 0 runs
    assert targets[3].policy_error is not None and (targets[3].index, targets[3].held) == (3, False)
    assert not requests.waiting  # nothing asked on the tick that failed
    targets += _run(control, 1, policy.home, start=4)  # asked again in the background, from tick 4's observation
    assert len(requests.waiting) == 1
    requests.waiting.pop(0)[0].set_exception(TimeoutError("server silent"))
    # it lands at its hand-over, tick 6, past chunk 0's last row (5): held there, and at 7 (a back-off of 2 ticks)
    targets += _run(control, 4, policy.home, start=5)
    assert [(t.index, t.held, t.policy_error is not None) for t in targets[4:8]] == \
        [(4, False, False), (5, False, False), (5, True, True), (5, True, False)]
    np.testing.assert_array_equal(targets[7].qpos, targets[5].qpos)
    # tick 8: the back-off over and no action left, so the request blocks, as the first: its chunk from row 0
    assert policy.calls == [0, 8] and (_request_of(targets[8]), targets[8].index, targets[8].held) == (1, 0, False)
    assert control.policy_error_streak == 0 and control.policy_errors == 2


def test_hold_deterministic_async_holds_at_a_failed_hand_over_and_asks_blocking_on_the_next_tick(decoder):
    policy, requests = Failing(decoder, chunk=6), ByHand()
    control = ChunkController(policy, decoder, ChunkStrategy("async", 2), prompt="stack the cups", executor=requests,
                              on_policy_error="hold")
    targets = _run(control, 2, policy.home)
    requests.waiting.pop(0)[0].set_exception(TimeoutError("server silent"))
    targets += _run(control, 2, policy.home, start=2)
    assert targets[2].held and targets[2].policy_error is not None
    np.testing.assert_array_equal(targets[2].qpos, targets[1].qpos)
    assert (_request_of(targets[3]), targets[3].index, targets[3].observed) == (1, 0, 3)
    assert policy.calls == [0, 3] and len(requests.waiting) == 1  # and its follow-up in the background


def test_hold_does_not_hold_through_the_callers_own_errors(decoder):
    """A missing prompt, bad joints or an interrupt are no failed request: raised at once, whatever the mode."""
    control = ChunkController(Failing(decoder), decoder, ChunkStrategy("execute", 2), on_policy_error="hold")
    with pytest.raises(ValueError, match=r"prompt: none given to ChunkController"):
        control.step({"tick": 0}, _home(decoder))
    with pytest.raises(ValueError, match=r"q_arm: expected the 7 measured arm joint angles"):
        control.step({"tick": 0, "prompt": "stack the cups"}, [np.nan])

    class Interrupted(Chunks):
        def act(self, observation, prompt):
            raise KeyboardInterrupt

    control = ChunkController(Interrupted(decoder), decoder, ChunkStrategy("execute", 2), prompt="stack the cups",
                              on_policy_error="hold")
    with pytest.raises(KeyboardInterrupt):
        control.step({"tick": 0}, _home(decoder))
    assert control.policy_errors == 0 and control.tick == 0


@pytest.mark.parametrize("error", [
    ValueError("observation: image 'observation/exterior_image_1_left' has shape (10,), expected [H, W, 3]"),
    MissingKeyError("observation is missing camera keys ['observation/wrist_image_left']"),
    TypeError("state: expected an array, got str"),
])
@pytest.mark.parametrize("background", [False, True])
def test_hold_raises_the_requests_own_errors_at_once(decoder, error, background):
    """An `act` that refuses what it was asked (`REQUEST_ERRORS`: the library's input checks' ValueError, KeyError,
    TypeError, a server's BadRequestError) would refuse it again: no failure to hold through for 6 s, whether the
    request blocked or ran in the background (raised at its hand-over)."""
    if background:
        policy, requests = Chunks(decoder, chunk=6), ByHand()
        control = ChunkController(policy, decoder, ChunkStrategy("async", 2), prompt="stack the cups",
                                  executor=requests, on_policy_error="hold")
        _run(control, 2, policy.home)
        requests.waiting.pop(0)[0].set_exception(error)
    else:
        policy = Failing(decoder, fail={1}, error=lambda call: error)
        control = ChunkController(policy, decoder, ChunkStrategy("execute", 2), prompt="stack the cups",
                                  on_policy_error="hold")
        _run(control, 2, policy.home)
    with pytest.raises(type(error)) as raised:
        control.step({"tick": 2}, policy.home)
    assert raised.value is error and control.tick == 2
    assert control.policy_errors == 0 and control.policy_error_streak == 0


def test_hold_raises_at_once_where_the_caller_closed_its_remote_policy(decoder):
    """A `RemotePolicy.close()` from an e-stop handler cuts the call with `ClientClosedError`: held through, the next
    request would reconnect and the arm move on."""
    pytest.importorskip("websockets")
    from worldpolicy.serving.client import BadRequestError, ClientClosedError, ServerError

    for error in (ClientClosedError("close() was called while this call waited on ws://gpu:8000: ..."),
                  BadRequestError("error from ws://gpu:8000: observation: ...")):
        policy = Failing(decoder, fail={0}, error=lambda call, error=error: error)
        control = ChunkController(policy, decoder, ChunkStrategy("execute", 2), prompt="stack the cups",
                                  on_policy_error="hold")
        with pytest.raises(type(error)):
            control.step({"tick": 0}, policy.home)
        assert control.policy_errors == 0
    # the server's own fault is a failure held through
    policy = Failing(decoder, fail={0}, error=lambda call: ServerError("error from ws://gpu:8000: CUDA out of memory"))
    control = ChunkController(policy, decoder, ChunkStrategy("execute", 2), prompt="stack the cups",
                              on_policy_error="hold")
    assert isinstance(control.step({"tick": 0}, policy.home).policy_error, ServerError)


def test_hold_raises_measured_joints_past_the_limits_at_once_never_holding_them(decoder):
    """Joints in degrees are a finite vector of the arm's joints, refused only where a chunk is decoded from them: the
    caller's error, raised at once. Held as a refused chunk, the tick's target was those joints, degrees sent as
    radians."""
    policy = Failing(decoder)
    control = ChunkController(policy, decoder, ChunkStrategy("execute", 2), prompt="stack the cups",
                              on_policy_error="hold")
    with pytest.raises(ValueError, match=r"q_arm: .* outside robot 'panda''s joint limits"):
        control.step({"tick": 0}, np.degrees(policy.home))
    assert control.policy_errors == 0 and control.tick == 0


def test_hold_ensemble_still_refuses_a_blend_too_fast_from_the_measured_joints_on_a_failed_tick(decoder):
    """The tick whose request failed runs the earlier chunks' blend, checked from the joints measured now as on any
    tick: far from it (the arm pushed, or lagging), it raises. Holding the last target instead would command the same
    jump; that is no failed request to ask again about."""
    home = _home(decoder)
    policy = Failing(decoder, fail={2}, chunk=4, offsets=[[0.0] * 4, [0.2] * 4])
    control = ChunkController(policy, decoder, ChunkStrategy("ensemble", 1, ensemble_decay=0.1),
                              prompt="stack the cups", on_policy_error="hold")
    control.step({"tick": 0}, home)
    near, far = home.copy(), home.copy()
    near[0] += 0.1  # chunk 1 is 0.1 rad on, the blend (0.095) 0.005 back: both within 0.145 rad a step
    far[0] += 0.3  # tick 2: the blend of chunks 0 and 1 (0.095) is 0.205 rad back
    control.step({"tick": 1}, near)
    with pytest.raises(ValueError, match=r"faster than robot 'panda' allows; first from the measured joints"):
        control.step({"tick": 2}, far)
    assert policy.calls == [0, 1, 2] and control.policy_errors == 1 and control.tick == 2


@pytest.mark.parametrize("kwargs, match", [
    ({"on_policy_error": "retry"}, r"on_policy_error: expected one of \['raise', 'hold'\], got 'retry'"),
    ({"on_policy_error": None}, r"on_policy_error: expected one of \['raise', 'hold'\], got None"),
    ({"max_policy_errors": 3}, (r"max_policy_errors: 3 counts the failed requests on_policy_error='hold' holds the "
                                r"arm through; with 'raise' the first one raises")),
    ({"on_policy_error": "hold", "max_policy_errors": 0}, r"max_policy_errors: expected a whole number >= 1 .*got 0"),
    ({"on_policy_error": "hold", "max_policy_errors": True}, r"max_policy_errors: .*got True"),
    ({"on_policy_error": "hold", "max_policy_errors": 2.5}, r"max_policy_errors: .*got 2.5"),
])
def test_bad_policy_error_settings_are_refused_naming_them(decoder, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ChunkController(Chunks(decoder), decoder, ChunkStrategy("execute", 2), **kwargs)


def test_hold_settings_show_in_the_repr(decoder):
    control = ChunkController(Chunks(decoder), decoder, ChunkStrategy("execute", 2), on_policy_error="hold")
    assert "on_policy_error='hold', max_policy_errors=10, tick=0" in repr(control)
