"""Real-time chunking: `act(action_prefix=)` conditions a chunk's first d rows clean (the engine's per-row clean
mask, as forward dynamics and the RoboLab state row use it), returns them as given, and leaves a call without one
exactly as it was. Every bad prefix is refused naming `action_prefix` before any model work."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import worldpolicy
from worldpolicy.policy import PolicyRequest
from worldpolicy.processing.actions import to_model, to_physical

TASK = "Pick up the banana and place it in the bowl"


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).random((64, 80, 3)).astype(np.float32)


@pytest.fixture
def fresh_policy(tiny_checkpoint):
    """A policy of its own: range warnings are said once per policy."""
    return worldpolicy.load_policy(tiny_checkpoint, embodiment="droid/relative_pose", chunk_size=16,
                                   resolution_tier=256)


def in_range(policy, rows: int, seed: int = 0) -> np.ndarray:
    """Physical rows well inside the training range (the tiny model's own chunks are far outside it)."""
    e = policy.embodiment
    return to_physical(e, np.random.default_rng(seed).uniform(-0.8, 0.8, (rows, e.action_dim)))


def test_no_prefix_is_the_chunk_it_always_was(tiny_policy, image):
    """None, absent, and the engine run without the field give the same bits; the settings say nothing of a prefix."""
    plain = tiny_policy.act(image, TASK, seed=5)
    none = tiny_policy.act(image, TASK, seed=5, action_prefix=None)
    assert np.array_equal(plain.actions, none.actions)
    assert np.array_equal(plain.actions_normalized, none.actions_normalized)
    assert "action_prefix_rows" not in none.settings
    engine_request, _ = tiny_policy._prepare(PolicyRequest(image, TASK, seed=5))
    assert engine_request.action_prefix is None
    item = tiny_policy.engine._prepare(engine_request)
    assert item.noisy_rows.tolist() == list(range(16))  # every row generated, as before
    out = tiny_policy.engine.run([engine_request])[0]
    assert np.array_equal(out.actions, plain.actions_normalized)


@pytest.mark.parametrize("d", [1, 5, 15])
def test_the_prefix_rows_are_given_and_the_rest_continue_them(tiny_policy, image, d):
    plain = tiny_policy.act(image, TASK, seed=5)
    prefix = in_range(tiny_policy, d)
    pred = tiny_policy.act(image, TASK, seed=5, action_prefix=prefix)
    assert pred.actions.shape == plain.actions.shape == (16, 10)
    assert np.array_equal(pred.actions[:d], prefix)  # as given, not round-tripped through model space
    assert np.array_equal(pred.actions_normalized[:d], to_model(tiny_policy.embodiment, prefix, clip=True))
    assert pred.settings["action_prefix_rows"] == d
    # the generated rows saw the prefix: same seed, same noise, another chunk
    assert np.abs(pred.actions_normalized[d:] - plain.actions_normalized[d:]).max() > 1e-4
    again = tiny_policy.act(image, TASK, seed=5, action_prefix=prefix)
    assert np.array_equal(again.actions, pred.actions)


def test_a_torch_prefix_is_read_as_its_numbers(tiny_policy, image):
    prefix = in_range(tiny_policy, 2)
    by_numpy = tiny_policy.act(image, TASK, seed=5, action_prefix=prefix)
    by_torch = tiny_policy.act(image, TASK, seed=5, action_prefix=torch.tensor(prefix))
    by_list = tiny_policy.act(image, TASK, seed=5, action_prefix=prefix.tolist())
    assert np.array_equal(by_numpy.actions, by_torch.actions) and np.array_equal(by_numpy.actions, by_list.actions)


def test_the_engine_marks_exactly_the_prefix_rows_clean(tiny_policy, image, monkeypatch):
    """Rows 0..d-1 start as the normalised prefix, get no time embedding (not in `noisy_rows`) and a zero velocity at
    every step, so they stay; rows d.. start from the noise they draw without a prefix."""
    d = 3
    prefix = in_range(tiny_policy, d)
    model = to_model(tiny_policy.embodiment, prefix, clip=True)
    engine = tiny_policy.engine
    with_prefix, _ = tiny_policy._prepare(PolicyRequest(image, TASK, seed=5, action_prefix=prefix))
    without, _ = tiny_policy._prepare(PolicyRequest(image, TASK, seed=5))
    np.testing.assert_array_equal(with_prefix.action_prefix, model)
    item, plain = engine._prepare(with_prefix), engine._prepare(without)
    assert item.noisy_rows.tolist() == list(range(d, 16))
    assert torch.equal(item.actions[:d, :10], torch.as_tensor(model, dtype=torch.float32))
    assert torch.equal(item.actions[d:], plain.actions[d:])  # noise drawn for every row first, in the same order
    assert torch.equal(item.latents, plain.latents)

    velocities = []
    original = engine._velocities

    def spy(it, hidden):
        vision, actions = original(it, hidden)
        velocities.append(actions.clone())
        return vision, actions

    monkeypatch.setattr(engine, "_velocities", spy)
    out = engine.run([with_prefix])[0]
    assert velocities and all(torch.all(v[:d] == 0) and torch.any(v[d:, :10] != 0) for v in velocities)
    np.testing.assert_allclose(out.actions[:d], model, atol=1e-6)  # the sampler kept the clean rows


def test_act_batch_with_mixed_prefixes_gives_each_request_what_act_gives(tiny_policy, image):
    prefixes = [None, in_range(tiny_policy, 1, seed=1), in_range(tiny_policy, 3, seed=2)]
    requests = [PolicyRequest(image, TASK, seed=10 + i, action_prefix=p) for i, p in enumerate(prefixes)]
    batched = tiny_policy.act_batch(requests)
    for i, (prefix, got) in enumerate(zip(prefixes, batched)):
        alone = tiny_policy.act(image, TASK, seed=10 + i, action_prefix=prefix)
        # the packed batch sums in another order than one sequence: the parity tests' tolerance
        np.testing.assert_allclose(got.actions_normalized, alone.actions_normalized, rtol=0, atol=1e-5)
        if prefix is not None:
            assert np.array_equal(got.actions[: len(prefix)], prefix)
            assert got.settings["action_prefix_rows"] == len(prefix)
        else:
            assert "action_prefix_rows" not in got.settings


def test_the_state_row_variant_puts_the_prefix_after_its_clean_state_row(tiny_checkpoint):
    """RoboLab DROID conditions a clean state row 0 ahead of the chunk: the prefix is rows 1..d of the sequence."""
    from test_core_droid_native import droid_obs

    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid", chunk_size=8)
    obs = droid_obs(np.random.default_rng(0))
    prefix = np.c_[np.tile(obs["observation/joint_position"], (2, 1)) + 0.01 * np.arange(2)[:, None], [0.2, 0.3]]
    engine_request, _ = policy._prepare(PolicyRequest(obs, TASK, seed=3, action_prefix=prefix))
    item = policy.engine._prepare(engine_request)
    assert item.noisy_rows.tolist() == list(range(3, 9))  # row 0 the state, rows 1-2 the prefix
    assert torch.equal(item.actions[0, :8], torch.as_tensor(engine_request.state_row, dtype=torch.float32))
    model = to_model(policy.embodiment, prefix, clip=True)  # the gripper flipped, as the model holds it
    assert torch.equal(item.actions[1:3, :8], torch.as_tensor(model, dtype=torch.float32))
    pred = policy.act(obs, TASK, seed=3, action_prefix=prefix)
    plain = policy.act(obs, TASK, seed=3)
    assert pred.actions.shape == (8, 8) and np.array_equal(pred.actions[:2], prefix)
    assert pred.settings["action_prefix_rows"] == 2
    assert not np.allclose(pred.actions[2:], plain.actions[2:])


def test_a_prefix_outside_the_training_range_is_said_once_and_clamped(fresh_policy, image, caplog):
    """Judged as forward-dynamics actions are (a warning naming the input), and held at the range's bounds in model
    space, as training holds its rows; the result still returns the rows given."""
    e = fresh_policy.embodiment
    far = to_physical(e, np.full((2, e.action_dim), 5.0))
    with caplog.at_level(logging.WARNING, logger="worldpolicy"):
        pred = fresh_policy.act(image, TASK, seed=1, action_prefix=far)
        fresh_policy.act(image, TASK, seed=2, action_prefix=far)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("action_prefix:")]
    assert len(said) == 1 and "far outside what embodiment 'droid/relative_pose' was trained on" in said[0]
    assert np.array_equal(pred.actions[:2], far)
    np.testing.assert_array_equal(pred.actions_normalized[:2], np.ones((2, e.action_dim)))


def _refuses(policy, call, error, match, monkeypatch):
    """`call(policy)` raises `error` matching `match`, before the VAE or the transformer runs."""
    def no_model_work(*args, **kwargs):
        raise AssertionError("the model ran before the input was refused")

    monkeypatch.setattr(policy.engine, "run", no_model_work)
    monkeypatch.setattr(policy.engine, "encode_video", no_model_work)
    with pytest.raises(error, match=match):
        call(policy)


ROW = "rows \\[d, 10\\] \\(tx, ty, tz, r0, r1, r2, r3, r4, r5, grasp\\) with 1 <= d <= chunk_size - 1 = 15"
BAD_PREFIX = {
    "wrong width": (np.zeros((2, 9)), ValueError, rf"action_prefix has shape \(2, 9\); accepted: {ROW}"),
    "one row as a vector": (np.zeros(10), ValueError, rf"action_prefix has shape \(10,\); accepted: {ROW}"),
    "three axes": (np.zeros((1, 2, 10)), ValueError, r"action_prefix has shape \(1, 2, 10\); accepted"),
    "no rows": (np.zeros((0, 10)), ValueError, (rf"action_prefix holds no rows \(shape \(0, 10\)\); accepted: {ROW}, "
                                               "or None for no prefix")),
    "the whole chunk": (np.zeros((16, 10)), ValueError, rf"action_prefix has 16 rows; accepted: {ROW}"),
    "longer than the chunk": (np.zeros((20, 10)), ValueError, "action_prefix has 20 rows; accepted"),
    "NaN": (np.where(np.eye(2, 10, 1) > 0, np.nan, 0.0), ValueError,
            "action_prefix holds nan at row 0, column 'ty'; accepted: finite numbers"),
    "inf": (np.where(np.eye(2, 10, 9) > 0, -np.inf, 0.0), ValueError,
            "action_prefix holds -inf at row 0, column 'grasp'; accepted: finite numbers"),
    "strings": ([["0.1"] * 10], ValueError, r"action_prefix\[0\]\[0\] is '0.1', not a number \(and 9 more items\)"),
    "Nones": ([[None] * 10], ValueError, r"action_prefix\[0\]\[0\] is None, not a number"),
    "a string": ("hold", ValueError, "action_prefix='hold' must be a list or array of numbers"),
    "complex": (np.zeros((1, 10), complex), ValueError, "must be a list or array of numbers"),
    "ragged": ([[0.0] * 10, [0.0] * 9], ValueError, "must be a list or array of numbers"),
}


@pytest.mark.parametrize("case", BAD_PREFIX)
def test_a_bad_prefix_is_refused_naming_it_before_any_model_work(fresh_policy, image, monkeypatch, case):
    prefix, error, match = BAD_PREFIX[case]
    _refuses(fresh_policy, lambda p: p.act(image, TASK, action_prefix=prefix), error, match, monkeypatch)


def test_a_prefix_for_another_mode_is_refused(fresh_policy, image, monkeypatch):
    prefix = np.zeros((1, 10))
    for method, call in [("imagine", lambda p: p.imagine(image, np.zeros((16, 10)), TASK, action_prefix=prefix)),
                         ("infer_actions", lambda p: p.infer_actions(np.stack([image] * 3), TASK,
                                                                    action_prefix=prefix))]:
        _refuses(fresh_policy, call, TypeError, rf"^{method}\(\) takes no action_prefix: it conditions the chunk a "
                 r"policy generates \(act\(\), mode='policy'\).*; accepted: (?!.*action_prefix)", monkeypatch)
    request = PolicyRequest(image, TASK, mode="forward_dynamics", actions=np.zeros((16, 10)), action_prefix=prefix)
    _refuses(fresh_policy, lambda p: p.act_batch([request]), ValueError,
             "action_prefix was given with mode='forward_dynamics'; accepted: mode='policy' alone", monkeypatch)


def test_a_refused_prefix_in_a_batch_draws_no_seed(tiny_checkpoint, image):
    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid/relative_pose", chunk_size=16,
                                     resolution_tier=256, seed=100)
    good = PolicyRequest(image, TASK)
    with pytest.raises(ValueError, match=r"action_prefix has 16 rows") as error:
        policy.act_batch([good, PolicyRequest(image, TASK, action_prefix=np.zeros((16, 10)))])
    assert "(in requests[1] of the batch)" in error.value.__notes__
    assert policy.act(image, TASK).settings["seed"] == 100
