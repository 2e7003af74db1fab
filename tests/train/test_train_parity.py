"""Training sees what sampling sees: the trainer's velocity for a noisy example equals the engine's velocity for the
same noisy latents, actions, timestep and caption — same sequence layout, positions, clean/noisy sets, time embedding.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from worldpolicy.train.flow import noise_example, predict_velocity
from worldpolicy.train.objectives import OBJECTIVES


def _first_window_frames(trainer):
    from worldpolicy.train.data import WindowSpec, iter_windows

    cfg = trainer.config.data
    spec = WindowSpec(dataset=cfg.dataset, chunk_size=cfg.chunk_size, video_keys=tuple(cfg.video_keys))
    return next(iter_windows(spec, trainer.embodiment)).frames


def _engine_velocity(trainer, example, objective, noisy, frames):
    """The engine's path: `_prepare` a request for the same window, put the trainer's noisy state in it, and run
    text cache → `_tokens` → `generate` → `_velocities` at timestep 1000·σ."""
    from worldpolicy.engine import Engine, EngineRequest, SamplingConfig
    from worldpolicy.engine.forward import generate, rotary
    from worldpolicy.processing.observations import prepare_canvas

    emb = trainer.embodiment
    chunk = trainer.config.data.chunk_size
    engine = Engine(trainer.transformer, trainer.vae, trainer.tokenizer, trainer.scheduler)
    if objective == "inverse_dynamics":
        canvas, info = prepare_canvas(frames, emb.resolution_tier, chunk + 1, emb.snap_to_16)
    else:
        canvas, info = prepare_canvas(frames[:1], emb.resolution_tier, 1, emb.snap_to_16)
    history = example.history
    request = EngineRequest(
        mode=objective, canvas=canvas, latent_hw=(info.latent_h, info.latent_w), cond_ids=example.token_ids,
        uncond_ids=example.token_ids, domain_id=example.domain_id, raw_dim=example.actions.shape[1], chunk_size=chunk,
        fps=example.fps, sampling=SamplingConfig(guidance=1.0), seed=0,
        clean_actions=example.actions[history:].numpy() if objective == "forward_dynamics" else None,
        state_row=example.actions[0].numpy() if history else None,
        # real-time chunking: the chunk's first rows, clean as `Policy.act(action_prefix=)` passes them
        action_prefix=example.actions[history:history + example.prefix_rows].numpy() if example.prefix_rows else None,
    )
    item = engine._prepare(request)
    # the engine's own clean/noisy split for this mode, and its encoding of the conditioning frames, match training
    assert item.noisy_frames.tolist() == noisy.noisy_frames.tolist()
    assert item.noisy_rows.tolist() == noisy.noisy_rows.tolist()
    clean = [f for f in range(noisy.x0.shape[2]) if f not in noisy.noisy_frames.tolist()]
    torch.testing.assert_close(item.latents[:, :, clean], noisy.x0[:, :, clean], rtol=1e-4, atol=1e-4)
    clean_rows = [r for r in range(noisy.at.shape[0]) if r not in noisy.noisy_rows.tolist()]
    torch.testing.assert_close(item.actions[clean_rows], noisy.a0[clean_rows], rtol=0, atol=1e-6)

    item.latents, item.actions = noisy.xt.clone(), noisy.at.clone()
    text = engine.text(example.token_ids)
    cos, sin = rotary(trainer.transformer, engine._positions(item, text.length), engine.dtype)
    tokens = engine._tokens(item, noisy.sigma * 1000)
    hidden = generate(trainer.transformer, tokens, cos, sin, [(0, tokens.shape[0])], [text])
    return engine._velocities(item, hidden)


def _close(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Max abs difference relative to the reference's scale."""
    return float((actual - expected).abs().max() / expected.abs().max().clamp_min(1e-12))


@pytest.mark.parametrize("history", [1, 0], ids=["state_row", "no_state_row"])
@pytest.mark.parametrize(("objective", "prefix"), [*((o, 0) for o in OBJECTIVES), ("policy", 3)],
                         ids=[*OBJECTIVES, "policy_action_prefix"])
def test_training_forward_equals_sampling_forward(loaded_trainer, objective, prefix, history):
    """`prefix`: a policy example's clean action prefix (`objectives.action_prefix_*`) is the engine's `action_prefix`
    (real-time chunking): the same clean rows after the state row, the same velocities on the rows after them."""
    trainer = loaded_trainer
    example = trainer.examples[0]
    chunk = trainer.config.data.chunk_size
    assert example.history == 1 and example.latents.shape[1] == chunk // 4 + 1
    if history == 0:  # the same window for an embodiment without a state row: actions start at the chunk
        example = dataclasses.replace(example, actions=example.actions[1:], action_valid=example.action_valid[1:],
                                      history=0)
    example = dataclasses.replace(example, prefix_rows=prefix)
    tf = trainer.transformer
    noisy = noise_example(example, objective, 0.63, torch.Generator().manual_seed(5), tf.config.action_dim)
    assert noisy.noisy_rows.numel() == (0 if objective == "forward_dynamics" else chunk - prefix)
    with torch.no_grad():
        train_vision, train_actions = predict_velocity(tf, example, noisy)
        engine_vision, engine_actions = _engine_velocity(trainer, example, objective, noisy,
                                                         _first_window_frames(trainer))

    frames, rows = noisy.noisy_frames, noisy.noisy_rows
    raw_dim = example.actions.shape[1]
    if frames.numel():
        tv = train_vision[:, :, frames].float()
        ev = engine_vision.reshape(train_vision.shape)[:, :, frames]
        assert tv.abs().max() > 1e-3  # a real prediction, not an all-zero tensor on both sides
        assert _close(tv, ev) < 1e-5, f"vision velocity differs: {_close(tv, ev):.2e}"
    else:
        assert objective == "inverse_dynamics"
    if rows.numel():
        ta, ea = train_actions[rows][:, :raw_dim].float(), engine_actions[rows][:, :raw_dim]
        assert ta.abs().max() > 1e-3
        assert _close(ta, ea) < 1e-5, f"action velocity differs: {_close(ta, ea):.2e}"
    else:
        assert objective == "forward_dynamics"


def test_parity_check_is_sensitive_to_the_layout(loaded_trainer):
    """The comparison above can fail: the same inputs with the action rows placed one frame off (a state row claimed
    but not present) or a different timestep give clearly different velocities."""
    trainer = loaded_trainer
    example = trainer.examples[0]
    tf = trainer.transformer
    noisy = noise_example(example, "policy", 0.63, torch.Generator().manual_seed(5), tf.config.action_dim)
    with torch.no_grad():
        _, reference = predict_velocity(tf, example, noisy)
        _, shifted = predict_velocity(tf, dataclasses.replace(example, history=0), noisy)
        _, later = predict_velocity(tf, example, dataclasses.replace(noisy, sigma=0.62))
    rows = noisy.noisy_rows
    assert _close(shifted[rows], reference[rows]) > 1e-3
    assert _close(later[rows], reference[rows]) > 1e-4


def test_packed_batch_losses_equal_one_diffusers_forward_per_example(loaded_trainer):
    """The trainer's packed pass gives each example the loss and the gradient that one `Cosmos3OmniTransformer.forward`
    per example gives: mixed objectives, σ, captions (one caption shared by two examples), padded action rows and
    policy examples with different clean action prefixes in one batch (each its own clean rows and timesteps)."""
    from worldpolicy.train.flow import batch_losses, example_loss

    trainer = loaded_trainer
    tf = trainer.transformer
    first, second = trainer.examples[0], trainer.examples[1]
    short_caption = dataclasses.replace(second, token_ids=second.token_ids[:-3])
    padded = dataclasses.replace(first, action_valid=torch.tensor([True] * (first.actions.shape[0] - 2) + [False] * 2))
    examples = [first, short_caption, padded, second, dataclasses.replace(second, prefix_rows=1),
                dataclasses.replace(first, prefix_rows=3)]
    objectives = ["policy", "forward_dynamics", "inverse_dynamics", "policy", "policy", "policy"]
    sigmas = [0.63, 0.2, 0.91, 0.45, 0.45, 0.7]

    def run(losses_of):
        tf.zero_grad(set_to_none=True)
        losses = losses_of(torch.Generator().manual_seed(3))
        total = sum(term for pair in losses for term in pair if term is not None)
        total.backward()
        return losses, {n: p.grad.clone() for n, p in tf.named_parameters() if p.grad is not None}

    reference, ref_grads = run(lambda g: [example_loss(tf, e, o, s, g) for e, o, s in zip(examples, objectives, sigmas)])
    packed, grads = run(lambda g: batch_losses(tf, examples, objectives, sigmas, g))
    assert [(v is None, a is None) for v, a in packed] == [(v is None, a is None) for v, a in reference]
    assert [a is None for _, a in packed] == [False, True, False, False, False, False]
    # a prefix is a different loss (fewer rows, other clean context), not the unprefixed example's again
    with_prefix, without = float(packed[4][1].detach()), float(packed[3][1].detach())
    assert abs(with_prefix - without) > 1e-4 * without
    for (pv, pa), (rv, ra) in zip(packed, reference):
        for p, r in ((pv, rv), (pa, ra)):
            if r is not None:
                p, r = float(p.detach()), float(r.detach())
                assert r > 1e-3 and abs(p - r) <= 1e-5 * r
    # the packed pass skips the last layer's text output, which no loss reads: its weights get no gradient at all
    assert all(float(g.abs().max()) == 0.0 for name, g in ref_grads.items() if name not in grads)
    for name, grad in grads.items():
        assert _close(grad, ref_grads[name]) < 1e-4, f"{name}: gradient differs by {_close(grad, ref_grads[name]):.2e}"
    tf.zero_grad(set_to_none=True)


def test_the_loss_ignores_the_action_prefix_rows(loaded_trainer, monkeypatch):
    """A policy example with a clean prefix of d rows: those rows hold their recorded actions (no noise, no time
    embedding) and take no loss, so changing their noise leaves the loss as it was, bit for bit; changing a generated
    row's noise changes it (and, without the prefix, changing the same prefix row's noise does too)."""
    from worldpolicy.train import flow

    trainer = loaded_trainer
    tf = trainer.transformer
    example = trainer.examples[0]
    history, rows = example.history, example.actions.shape[0]
    prefixed = dataclasses.replace(example, prefix_rows=2)
    noisy = flow.noise_example(prefixed, "policy", 0.63, torch.Generator().manual_seed(5), tf.config.action_dim)
    assert noisy.noisy_rows.tolist() == list(range(history + 2, rows))
    assert torch.equal(noisy.at[history:history + 2], noisy.a0[history:history + 2])
    torch.testing.assert_close(noisy.a0[history:history + 2, :example.actions.shape[1]],
                               example.actions[history:history + 2], rtol=0, atol=0)
    draw = flow.draw_noise

    def loss(ex, changed_row=None):
        def draw_changed(*args):
            eps_v, eps_a = draw(*args)
            if changed_row is not None:
                eps_a[changed_row] += 3.0
            return eps_v, eps_a

        monkeypatch.setattr(flow, "draw_noise", draw_changed)
        with torch.no_grad():
            vision, action = flow.example_loss(tf, ex, "policy", 0.63, torch.Generator().manual_seed(5))
            return float(vision + action)

    reference = loss(prefixed)
    assert loss(prefixed, history) == reference and loss(prefixed, history + 1) == reference
    assert abs(loss(prefixed, history + 2) - reference) > 1e-3 * reference
    assert abs(loss(example, history + 1) - loss(example)) > 1e-3 * loss(example)
