"""Timestep sampling, clean/noisy sets per objective, and the trainer's deterministic batches (objective mix, rank
slices)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldpolicy.train.flow import TimestepSampler, clean_sets
from worldpolicy.train.objectives import COSMOS_POLICY_MIX

N = 20_000


def _draw(sampler: TimestepSampler, seed: int = 0, n: int = N) -> np.ndarray:
    return sampler.sample(n, torch.Generator().manual_seed(seed)).numpy()


def test_logit_normal_shift_moves_mass_to_high_noise():
    plain = _draw(TimestepSampler(shift=1.0))
    shifted = _draw(TimestepSampler(shift=5.0))
    assert abs((plain > 0.5).mean() - 0.5) < 0.02  # logit-normal(0, 1) is symmetric about 0.5
    # σ' > 1/2 ⇔ σ > 1/(1+s) = 1/6 ⇔ z > logit(1/6): P = Φ(1.609) ≈ 0.946
    assert abs((shifted > 0.5).mean() - 0.946) < 0.01
    # the shift is exactly σ' = sσ / (1 + (s-1)σ) applied to the same draws
    expected = np.clip(5 * plain / (1 + 4 * plain), 1e-4, 1 - 1e-4)
    np.testing.assert_allclose(shifted, expected, rtol=1e-5)


def test_uniform_is_uniform():
    sigma = _draw(TimestepSampler(kind="uniform"))
    counts, _ = np.histogram(sigma, bins=10, range=(0, 1))
    assert np.all(np.abs(counts / N - 0.1) < 0.012)
    assert abs(sigma.mean() - 0.5) < 0.01


@pytest.mark.parametrize("sampler", [TimestepSampler(), TimestepSampler(kind="uniform"),
                                     TimestepSampler(std=20.0, shift=1.0), TimestepSampler(mean=-5.0, shift=0.2)],
                         ids=["logit_normal", "uniform", "wide", "low"])
def test_samples_are_in_the_open_interval_and_reproducible(sampler):
    a = sampler.sample(N, torch.Generator().manual_seed(7))
    assert a.dtype == torch.float32 and a.shape == (N,)
    assert float(a.min()) > 0 and float(a.max()) < 1
    assert torch.equal(a, sampler.sample(N, torch.Generator().manual_seed(7)))
    assert not torch.equal(a, sampler.sample(N, torch.Generator().manual_seed(8)))


@pytest.mark.parametrize("kwargs, field", [({"kind": "beta"}, "timesteps.kind"), ({"std": 0.0}, "timesteps.std"),
                                           ({"shift": -1.0}, "timesteps.shift"),
                                           ({"shift": float("inf")}, "timesteps.shift")])
def test_bad_sampler_settings(kwargs, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        TimestepSampler(**kwargs)


def test_clean_sets_per_objective():
    # policy: frame 0 and the state row clean; forward dynamics: actions clean too; inverse dynamics: all frames
    assert clean_sets("policy", 3, 5, 1) == ([0], [0])
    assert clean_sets("policy", 3, 4, 0) == ([0], [])
    assert clean_sets("forward_dynamics", 3, 5, 1) == ([0], [0, 1, 2, 3, 4])
    assert clean_sets("inverse_dynamics", 3, 5, 1) == ([0, 1, 2], [0])
    with pytest.raises(ValueError, match="objective='value'"):
        clean_sets("value", 3, 5, 1)


def test_clean_sets_with_an_action_prefix():
    # the policy's first generated rows join the clean state row; the frames are untouched
    assert clean_sets("policy", 3, 5, 1, prefix=2) == ([0], [0, 1, 2])
    assert clean_sets("policy", 3, 4, 0, prefix=3) == ([0], [0, 1, 2])
    assert clean_sets("policy", 3, 5, 1, prefix=0) == clean_sets("policy", 3, 5, 1)
    with pytest.raises(ValueError, match="prefix=4 with objective='policy': .* on 1 to 3 of its 4 generated rows"):
        clean_sets("policy", 3, 5, 1, prefix=4)  # nothing left to generate
    for objective in ("forward_dynamics", "inverse_dynamics"):
        with pytest.raises(ValueError, match=f"prefix=1 with objective='{objective}': .* the policy objective only"):
            clean_sets(objective, 3, 5, 1, prefix=1)


def test_prefix_rows_are_drawn_per_key_uniformly_with_the_probability():
    from worldpolicy.train.flow import draw_prefix_rows

    drawn = np.array([draw_prefix_rows(0.5, 3, (7, position, 3)) for position in range(6000)])
    assert abs((drawn == 0).mean() - 0.5) < 0.03
    counts = np.bincount(drawn[drawn > 0], minlength=4)[1:]
    assert counts.min() > 0 and np.all(np.abs(counts / counts.sum() - 1 / 3) < 0.03)
    assert drawn.tolist() == [draw_prefix_rows(0.5, 3, (7, position, 3)) for position in range(6000)]
    assert drawn.tolist() != [draw_prefix_rows(0.5, 3, (8, position, 3)) for position in range(6000)]
    assert {draw_prefix_rows(1.0, 2, (0, p, 3)) for p in range(200)} == {1, 2}
    assert {draw_prefix_rows(0.0, None, (0, p, 3)) for p in range(200)} == {0}


@pytest.fixture(scope="module")
def batching_trainer(tmp_path_factory, train_config):
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    trainer = Trainer(load_config(train_config(tmp_path_factory.mktemp("batches"), optim={"batch_size": 8})),
                      progress=False)
    trainer._load()
    trainer._model()
    return trainer


def test_objective_mix_follows_the_preset(batching_trainer):
    counts = {name: 0 for name in COSMOS_POLICY_MIX}
    sigmas = []
    for step in range(300):
        _, objectives, sigma, _ = batching_trainer._batch(step)
        for name in objectives:
            counts[name] += 1
        sigmas.append(sigma)
    total = sum(counts.values())
    for name, weight in COSMOS_POLICY_MIX.items():
        assert abs(counts[name] / total - weight) < 0.03, counts
    assert (torch.cat(sigmas) > 0.5).float().mean() > 0.9  # the configured logit-normal with shift 5


def test_batches_cover_each_epoch_and_ranks_take_slices_of_one_global_batch(batching_trainer):
    trainer = batching_trainer
    n = len(trainer.examples)
    ids = {id(e): i for i, e in enumerate(trainer.examples)}
    # consecutive steps walk a permutation: the first epoch sees every example once
    seen = [ids[id(e)] for step in range(-(-n // 8)) for e in trainer._batch(step)[0]][:n]
    assert sorted(seen) == list(range(n))
    whole = trainer._batch(5)
    halves = _on_two_ranks(trainer, 5)
    assert [id(e) for e in whole[0]] == [id(e) for h in halves for e in h[0]]
    assert whole[1] == halves[0][1] + halves[1][1]
    assert torch.equal(whole[2], torch.cat([halves[0][2], halves[1][2]]))
    # rank 1's generator stands where the one-process generator is after the first half's noise
    from worldpolicy.train.flow import draw_noise

    for example in whole[0][:4]:
        draw_noise(example, trainer.transformer.config.action_dim, whole[3])
    assert torch.equal(torch.randn(16, generator=whole[3]), torch.randn(16, generator=halves[1][3]))


def test_a_window_with_several_phrasings_gets_one_drawn_per_batch_position(batching_trainer, monkeypatch):
    """Drawn from (seed, position) only: the same on a rerun, on a resume and split across ranks, and the noise
    stream is untouched (so the objectives, sigmas and noise are those of a single phrasing)."""
    trainer = batching_trainer
    before = trainer._batch(3)
    phrasings = [[5, 6, 7], [8, 9], [10, 11, 12, 13]]
    monkeypatch.setattr(trainer, "captions", [phrasings] * len(trainer.examples))
    drawn = [tuple(e.token_ids) for step in range(4) for e in trainer._batch(step)[0]]
    assert set(drawn) == {tuple(p) for p in phrasings}
    assert drawn == [tuple(e.token_ids) for step in range(4) for e in trainer._batch(step)[0]]
    whole = trainer._batch(3)
    assert whole[1] == before[1] and torch.equal(whole[2], before[2])
    assert torch.equal(torch.randn(8, generator=whole[3]), torch.randn(8, generator=before[3]))
    assert [e.latents is b.latents for e, b in zip(whole[0], before[0])] == [True] * len(before[0])
    halves = _on_two_ranks(trainer, 3)
    assert [e.token_ids for e in whole[0]] == [e.token_ids for h in halves for e in h[0]]


def test_action_prefixes_are_drawn_for_policy_examples_without_touching_the_noise_stream(batching_trainer,
                                                                                          monkeypatch):
    """Probability 0 (the default) leaves every example as it was; with a probability, policy examples get 1..max rows
    from (seed, position) alone: objectives, σ, noise and the examples' data are those of a run without prefixes, and
    two ranks draw what one process draws."""
    trainer = batching_trainer
    plain = [trainer._batch(step) for step in range(12)]
    assert all(e.prefix_rows == 0 for batch in plain for e in batch[0])
    objectives = trainer.config.objectives
    monkeypatch.setattr(objectives, "action_prefix_probability", 0.5)
    monkeypatch.setattr(objectives, "action_prefix_max_rows", 3)
    prefixed = [trainer._batch(step) for step in range(12)]
    rows = {"policy": [], "other": []}
    for before, after in zip(plain, prefixed):
        assert after[1] == before[1] and torch.equal(after[2], before[2])
        assert torch.equal(torch.randn(8, generator=after[3]), torch.randn(8, generator=before[3]))
        for objective, b, a in zip(after[1], before[0], after[0]):
            assert a.latents is b.latents and a.token_ids == b.token_ids
            rows["policy" if objective == "policy" else "other"].append(a.prefix_rows)
    assert set(rows["other"]) == {0}
    assert set(rows["policy"]) == {0, 1, 2, 3}
    assert [e.prefix_rows for e in prefixed[5][0]] == [e.prefix_rows for h in _on_two_ranks(trainer, 5) for e in h[0]]


def _on_two_ranks(trainer, step: int) -> list:
    """Step `step`'s batch as ranks 0 and 1 of two processes draw it (the trainer is left as one process)."""
    try:
        trainer.world = 2
        halves = []
        for rank in (0, 1):
            trainer.rank = rank
            halves.append(trainer._batch(step))
    finally:
        trainer.world, trainer.rank = 1, 0
    return halves
