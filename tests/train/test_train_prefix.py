"""A run with `objectives.action_prefix_*` (real-time chunking) trains, validates, resumes exactly, and records and
shows the setting; probability 0 trains what a run without the setting trains."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow  # five tiny training runs: ~25 s on the 2-core dev machine

PREFIX = {"preset": "cosmos_policy", "action_prefix_probability": 1.0, "action_prefix_max_rows": 3}


@pytest.fixture(scope="module")
def prefix_runs(tmp_path_factory, train_config):
    """A: 4 steps with every policy example given a prefix, held-out episode 1 scored; B: the same, stopped after
    step 3 (last checkpoint: step 2) and resumed; C: 4 steps with probability 0 set; D: 4 steps without the setting."""
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    root = tmp_path_factory.mktemp("prefix")

    def run(name, objectives, stop_after=None):
        raw = train_config(root / name, objectives=objectives, optim={"steps": 4},
                           validation={"episodes": [1], "every": 2, "windows": 2, "action_chunks": 0})
        return Trainer(load_config(raw), progress=False).run(stop_after=stop_after)

    out = {"root": root, "a": run("a", PREFIX)}
    out["killed"] = run("b", PREFIX, stop_after=3)
    out["resumed"] = run("b", PREFIX)
    out["zero"] = run("c", {"preset": "cosmos_policy", "action_prefix_probability": 0.0})
    out["plain"] = run("d", {"preset": "cosmos_policy"})
    return out


def test_a_run_with_action_prefixes_trains_validates_and_resumes_exactly(prefix_runs):
    a, killed, resumed = prefix_runs["a"], prefix_runs["killed"], prefix_runs["resumed"]
    assert [r.step for r in a] == [1, 2, 3, 4] and [r.step for r in resumed] == [3, 4]
    assert [r.loss for r in killed] == [r.loss for r in a[:3]]
    assert [r.loss for r in resumed] == [r.loss for r in a[2:]]
    assert "loss_action_policy" in set().union(*(r.parts for r in a))
    # the prefixes change what is trained: not the losses of the run without them
    assert [r.loss for r in a] != [r.loss for r in prefix_runs["plain"]]
    lines = [json.loads(line) for line in (prefix_runs["root"] / "a" / "metrics.jsonl").read_text().splitlines()]
    validated = [line for line in lines if "val/loss" in line]
    assert [line["step"] for line in validated] == [0, 2, 4] and all(line["val/loss"] > 0 for line in validated)


def test_probability_zero_trains_exactly_what_a_run_without_the_setting_trains(prefix_runs):
    zero, plain = prefix_runs["zero"], prefix_runs["plain"]
    assert [(r.loss, r.parts) for r in zero] == [(r.loss, r.parts) for r in plain]


def test_the_checkpoint_records_the_setting_and_the_runs_page_shows_it(prefix_runs):
    from worldpolicy.viz.report import write_report

    root = prefix_runs["root"]
    state = json.loads((root / "a" / "checkpoints" / "step-0000004" / "trainer_state.json").read_text())
    assert {k: state["config"]["objectives"][k] for k in PREFIX} == PREFIX
    text = write_report(root / "a").read_text()
    assert "100% of policy examples, a clean prefix of 1 to 3 actions (real-time chunking)" in text
    assert "real-time chunking" not in write_report(root / "d").read_text()
