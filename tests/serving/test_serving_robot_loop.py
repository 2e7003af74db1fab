"""A robot's control loop (`ChunkController` over a `RemotePolicy`) while its server restarts: what the loop sees
(docs/robot.md, "When the server goes away")."""

from __future__ import annotations

import numpy as np
import pytest
from serving_standins import StandInPolicy, droid_request

pytest.importorskip("mink")

from worldpolicy.robot.control import ChunkController, ChunkStrategy
from worldpolicy.robot.decode import ActionDecoder
from worldpolicy.serving import RemotePolicy, ServerRefusedError


def test_a_robot_loop_goes_on_after_its_server_restarts(serve):
    """While the server is down each step that asks raises at once (nothing listening) and runs no tick, so the loop
    holds the arm itself; once a server is back on the port, the next step reconnects and runs a new chunk, observed
    at that tick, the tick count going on from where it stopped."""
    decoder = ActionDecoder("droid", "panda")
    home = np.array(decoder.robot.home)
    first = serve(StandInPolicy())
    port = first.server.port
    observation = droid_request(home[:7])
    with RemotePolicy(first.url) as policy, \
            ChunkController(policy, decoder, ChunkStrategy("execute", 4), prompt="stack the cups") as control:
        before = [control.step(observation, home) for _ in range(4)]
        assert [(t.tick, t.observed) for t in before] == [(0, 0), (1, 0), (2, 0), (3, 0)]
        first.stop()  # drains: the idle connection closes (1001)
        for _ in range(2):  # tick 4 asks: the request is sent again on a new connection, which is refused
            with pytest.raises(ServerRefusedError, match="cannot connect to"):
                control.step(observation, home)
            assert control.tick == 4
        serve(StandInPolicy(), port=port)
        after = control.step(observation, home)
        assert (after.tick, after.observed, after.index, after.held) == (4, 4, 0, False)
        assert control.chunks == 2


def test_a_robot_loop_holding_through_a_restart_never_raises_and_runs_the_new_chunk_from_its_first_action(serve):
    """`on_policy_error="hold"` (docs/robot.md, "Holding the arm when the policy fails"): while the server is down
    each step runs its tick, holding the last target sent, the refusals on the targets, backed off (not one per tick);
    once a server is back, the next request gets a chunk observed then, run from its first action."""
    decoder = ActionDecoder("droid", "panda")
    home = np.array(decoder.robot.home)
    first = serve(StandInPolicy())
    port = first.server.port
    observation = droid_request(home[:7])
    with RemotePolicy(first.url) as policy, \
            ChunkController(policy, decoder, ChunkStrategy("execute", 4), prompt="stack the cups",
                            on_policy_error="hold", max_policy_errors=20) as control:
        before = [control.step(observation, home) for _ in range(4)]
        first.stop()
        down = [control.step(observation, home) for _ in range(12)]  # ticks 4-15: asked at 4, 5, 7 and 11
        assert all(t.held for t in down) and control.tick == 16
        for target in down:
            np.testing.assert_array_equal(target.qpos, before[-1].qpos)
        refused = [t.tick for t in down if t.policy_error is not None]
        assert refused == [4, 5, 7, 11] and all(isinstance(t.policy_error, ServerRefusedError) for t in down
                                                if t.policy_error is not None)
        serve(StandInPolicy(), port=port)
        after = [control.step(observation, home) for _ in range(7)]  # ticks 16-22: the next ask is at 19
        assert [t.held for t in after] == [True] * 3 + [False] * 4
        assert (after[3].tick, after[3].observed, after[3].index) == (19, 19, 0)
        assert control.chunks == 2 and control.policy_errors == 4 and control.policy_error_streak == 0
