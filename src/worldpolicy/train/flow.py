"""The flow-matching objective on video latents and action tokens, through `Cosmos3OmniTransformer.forward`.

Same conventions as sampling (cosmos3-model.md): x_σ = (1-σ)·x0 + σ·ε, the model predicts the velocity ε - x0 at
timestep 1000·σ, clean positions (conditioning frames/rows) get no time embedding and no loss. One objective decides
what is clean (cosmos-policy.md §4): policy keeps frame 0 (and a state row) clean and generates future frames and
actions; forward dynamics also keeps the actions clean; inverse dynamics keeps every frame clean and generates actions.
A policy example may also be given the first rows of its target actions clean (`ModelExample.prefix_rows`,
`objectives.action_prefix_probability`): the model learns to continue a clean action prefix, which is how a chunk is
asked for while the previous one still executes (real-time chunking, `Policy.act(action_prefix=...)`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from diffusers.pipelines.cosmos.pipeline_cosmos3_omni import get_3d_mrope_ids_text_tokens

from ..engine.forward import TextCache, gen_tokens, generate, generation_positions, read_velocities, rotary, text_kv
from .objectives import OBJECTIVES, check_timesteps


@dataclass
class ModelExample:
    """One cached training window in model space: normalised latents, normalised actions, caption token ids."""

    latents: torch.Tensor  # [C, T, h, w] (T = chunk/4 + 1)
    actions: torch.Tensor  # [history + chunk, raw_dim]
    action_valid: torch.Tensor  # bool [history + chunk]: False on rows padded past the episode end
    token_ids: list[int]
    domain_id: int
    history: int
    fps: float
    # target action rows after the history given clean for this draw (policy only; `draw_prefix_rows`), 0: none
    prefix_rows: int = 0


@dataclass(frozen=True)
class TimestepSampler:
    """σ ∈ (0, 1): logit-normal (mean, std) then the flow shift σ' = sσ / (1 + (s-1)σ), or uniform."""

    kind: str = "logit_normal"
    mean: float = 0.0
    std: float = 1.0
    shift: float = 5.0

    def __post_init__(self) -> None:
        check_timesteps(self.kind, self.mean, self.std, self.shift)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        if self.kind == "uniform":
            sigma = torch.rand(n, generator=generator, dtype=torch.float64)
        else:
            sigma = torch.sigmoid(self.mean + self.std * torch.randn(n, generator=generator, dtype=torch.float64))
            sigma = self.shift * sigma / (1 + (self.shift - 1) * sigma)
        return sigma.clamp(1e-4, 1 - 1e-4).float()


def clean_sets(objective: str, latent_t: int, rows: int, history: int, prefix: int = 0) -> tuple[list[int], list[int]]:
    """Clean latent frames and clean action rows of one objective. `prefix`: the policy's first `prefix` generated rows
    are clean too (an action prefix to continue); at least one row stays generated."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective={objective!r}; accepted: {', '.join(OBJECTIVES)}")
    if prefix and (objective != "policy" or not 0 < prefix < rows - history):
        raise ValueError(f"prefix={prefix!r} with objective={objective!r}: an action prefix conditions the policy "
                         f"objective only, on 1 to {rows - history - 1} of its {rows - history} generated rows")
    if objective == "policy":
        return [0], list(range(history + prefix))
    if objective == "forward_dynamics":
        return [0], list(range(rows))
    return list(range(latent_t)), list(range(history))


def draw_prefix_rows(probability: float, max_rows: int | None, key: Sequence[int]) -> int:
    """How many target action rows one policy example is given clean: with `probability`, d uniform in 1..max_rows,
    else 0 (`objectives.action_prefix_*`). Drawn from its own generator seeded by `key` (the run's seed and the
    example's batch position), so a rerun, a resume and every rank draw the same, and the σ and noise stream is the one
    a run without prefixes draws; probability 0 draws nothing."""
    if not probability:
        return 0
    rng = np.random.default_rng(list(key))
    if rng.random() >= probability:
        return 0
    return int(rng.integers(1, max_rows + 1))


@dataclass
class NoisyExample:
    """One example noised for one objective: the model's inputs (xt, at), the clean values and the noise."""

    x0: torch.Tensor  # [1, C, T, h, w] clean latents
    a0: torch.Tensor  # [rows, action_dim] clean actions, zero past the embodiment's columns
    eps_v: torch.Tensor
    eps_a: torch.Tensor
    xt: torch.Tensor  # noisy at `noisy_frames`, clean elsewhere
    at: torch.Tensor  # noisy at `noisy_rows`, clean elsewhere
    noisy_frames: torch.Tensor  # long [n] (CPU)
    noisy_rows: torch.Tensor  # long [m] (CPU)
    sigma: float


def draw_noise(example: ModelExample, action_dim: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """ε for the latents [1, C, T, h, w] and the action rows [rows, action_dim], in the sampler's order (vision, then
    actions), drawn on CPU so runs reproduce across devices."""
    eps_v = torch.randn((1, *example.latents.shape), generator=generator)
    eps_a = torch.randn((example.actions.shape[0], action_dim), generator=generator)
    return eps_v, eps_a


def noise_example(
    example: ModelExample, objective: str, sigma: float, generator: torch.Generator, action_dim: int,
    device: torch.device | str = "cpu",
) -> NoisyExample:
    """x_σ = (1-σ)·x0 + σ·ε on the objective's noisy frames and rows; clean positions keep x0."""
    x0 = example.latents.to(device=device, dtype=torch.float32).unsqueeze(0)
    latent_t = x0.shape[2]
    rows, raw_dim = example.actions.shape
    clean_frames, clean_rows = clean_sets(objective, latent_t, rows, example.history, example.prefix_rows)
    noisy_frames = torch.tensor([f for f in range(latent_t) if f not in clean_frames], dtype=torch.long)
    noisy_rows = torch.tensor([r for r in range(rows) if r not in clean_rows], dtype=torch.long)

    eps_v, eps_a = draw_noise(example, action_dim, generator)
    eps_v, eps_a = eps_v.to(device), eps_a.to(device)
    a0 = torch.zeros(rows, action_dim, dtype=torch.float32, device=device)
    a0[:, :raw_dim] = example.actions.to(device=device, dtype=torch.float32)
    eps_a[:, raw_dim:] = 0

    frame_mask = torch.zeros(latent_t, dtype=torch.bool, device=device)
    frame_mask[noisy_frames] = True
    row_mask = torch.zeros(rows, dtype=torch.bool, device=device)
    row_mask[noisy_rows] = True
    xt = torch.where(frame_mask.view(1, 1, -1, 1, 1), (1 - sigma) * x0 + sigma * eps_v, x0)
    at = torch.where(row_mask.view(-1, 1), (1 - sigma) * a0 + sigma * eps_a, a0)
    return NoisyExample(x0, a0, eps_v, eps_a, xt, at, noisy_frames, noisy_rows, float(sigma))


def predict_velocity(
    transformer, example: ModelExample, noisy: NoisyExample, num_train_timesteps: int = 1000
) -> tuple[torch.Tensor, torch.Tensor]:
    """One `Cosmos3OmniTransformer.forward` over [text | vision | actions] at timestep 1000·σ → predicted velocities:
    vision [1, C, T, h, w] (meaningful at the noisy frames), actions [rows, action_dim] (at the noisy rows)."""
    cfg = transformer.config
    device = noisy.xt.device
    dtype = transformer.dtype
    _, _, latent_t, h, w = noisy.xt.shape
    rows = noisy.at.shape[0]
    noisy_frames, noisy_rows = noisy.noisy_frames, noisy.noisy_rows
    p = cfg.latent_patch_size
    grid = (latent_t, -(-h // p), -(-w // p))
    per_frame = grid[1] * grid[2]
    text_len = len(example.token_ids)
    n_vision = latent_t * per_frame
    text_pos, _ = get_3d_mrope_ids_text_tokens(text_len, 0, use_float_positions=cfg.enable_fps_modulation)
    gen_pos = generation_positions(cfg, text_len, grid, rows, example.history, example.fps)
    position_ids = torch.cat([text_pos.float(), gen_pos], dim=1).to(device)
    vision_start, action_start = text_len, text_len + n_vision
    vision_loss_idx = torch.cat(
        [torch.arange(vision_start + f * per_frame, vision_start + (f + 1) * per_frame) for f in noisy_frames.tolist()]
        or [torch.zeros(0, dtype=torch.long)]
    ).to(device)
    timestep = noisy.sigma * num_train_timesteps
    preds_vision, _, preds_action = transformer(
        input_ids=torch.tensor(example.token_ids, dtype=torch.long, device=device),
        text_indexes=torch.arange(text_len, device=device),
        position_ids=position_ids,
        und_len=text_len,
        sequence_length=text_len + n_vision + rows,
        vision_tokens=[noisy.xt.to(dtype)],
        vision_token_shapes=[grid],
        vision_sequence_indexes=torch.arange(vision_start, action_start, device=device),
        vision_mse_loss_indexes=vision_loss_idx,
        vision_timesteps=torch.full((len(noisy_frames) * per_frame,), timestep, device=device),
        vision_noisy_frame_indexes=[noisy_frames.to(device)],
        action_tokens=[noisy.at.to(dtype)],
        action_token_shapes=[(rows, 1, 1)],
        action_sequence_indexes=torch.arange(action_start, action_start + rows, device=device),
        action_mse_loss_indexes=(action_start + noisy_rows).to(device),
        action_timesteps=torch.full((len(noisy_rows),), timestep, device=device),
        action_noisy_frame_indexes=[noisy_rows.to(device)],
        action_domain_ids=[torch.tensor(example.domain_id, device=device)],
        return_dict=False,
    )
    return preds_vision[0], preds_action[0]


def example_loss(
    transformer,
    example: ModelExample,
    objective: str,
    sigma: float,
    generator: torch.Generator,
    num_train_timesteps: int = 1000,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(vision MSE, action MSE) of one example under one objective; a term is None when nothing of it is noisy."""
    device = next(transformer.parameters()).device
    noisy = noise_example(example, objective, sigma, generator, transformer.config.action_dim, device)
    pred_vision, pred_action = predict_velocity(transformer, example, noisy, num_train_timesteps)
    frames, rows = noisy.noisy_frames.to(device), noisy.noisy_rows.to(device)
    return _losses(example, noisy, pred_vision, pred_action, frames, rows, device)


def batch_losses(
    transformer,
    examples: list[ModelExample],
    objectives: list[str],
    sigmas: list[float],
    generator: torch.Generator,
    num_train_timesteps: int = 1000,
    recompute: bool = False,
) -> list[tuple[torch.Tensor | None, torch.Tensor | None]]:
    """`example_loss` of every example from one packed pass (the engine's split of the forward, with autograd).

    Token-wise layers run once over all examples' tokens, attention per sequence against its caption's text K/V, and
    the text tower once per distinct caption. A tiny model is dominated by per-call overhead, so this is faster than
    one `Cosmos3OmniTransformer.forward` per example (1.75x for the shipped recipe, `benchmarks/bench_train_step.py`);
    the losses and gradients are the same (test).
    Noise is drawn example by example in batch order, as `example_loss` draws it. `recompute`: gradient
    checkpointing of both towers' layers (`engine.forward.text_kv`, `generate`).
    """
    device = next(transformer.parameters()).device
    dtype = transformer.dtype
    p = transformer.config.latent_patch_size
    noisy = [noise_example(ex, obj, sigma, generator, transformer.config.action_dim, device)
             for ex, obj, sigma in zip(examples, objectives, sigmas)]
    texts: dict[tuple[int, ...], TextCache] = {}
    tokens, cos_parts, sin_parts, spans, seq_texts, grids = [], [], [], [], [], []
    start = 0
    for example, item in zip(examples, noisy):
        key = tuple(example.token_ids)
        if key not in texts:
            texts[key] = text_kv(transformer, torch.tensor(example.token_ids, dtype=torch.long, device=device),
                                 recompute=recompute)
        _, _, latent_t, h, w = item.xt.shape
        grid = (latent_t, -(-h // p), -(-w // p))
        rows = item.at.shape[0]
        positions = generation_positions(transformer.config, len(key), grid, rows, example.history, example.fps)
        cos, sin = rotary(transformer, positions.to(device), dtype)
        seq = gen_tokens(transformer, item.xt, item.noisy_frames.to(device), item.at, item.noisy_rows.to(device),
                         example.domain_id, item.sigma * num_train_timesteps, dtype)
        tokens.append(seq)
        cos_parts.append(cos)
        sin_parts.append(sin)
        spans.append((start, start + seq.shape[0]))
        seq_texts.append(texts[key])
        grids.append(grid)
        start += seq.shape[0]
    hidden = generate(transformer, torch.cat(tokens), torch.cat(cos_parts), torch.cat(sin_parts), spans, seq_texts,
                      recompute=recompute)
    losses = []
    for example, item, grid, (s, e) in zip(examples, noisy, grids, spans):
        frames, rows = item.noisy_frames.to(device), item.noisy_rows.to(device)
        pred_vision, pred_action = read_velocities(transformer, hidden[s:e], grid, tuple(item.xt.shape[2:]), frames,
                                                   rows, item.at.shape[0], example.domain_id)
        losses.append(_losses(example, item, pred_vision, pred_action, frames, rows, device))
    return losses


def _losses(example: ModelExample, noisy: NoisyExample, pred_vision: torch.Tensor, pred_action: torch.Tensor,
            frames: torch.Tensor, rows: torch.Tensor, device) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Velocity MSE on the noisy frames, and on the noisy, valid action rows within the embodiment's columns."""
    raw_dim = example.actions.shape[1]
    vision_loss = action_loss = None
    if len(frames):
        target = (noisy.eps_v - noisy.x0)[:, :, frames]
        vision_loss = (pred_vision[:, :, frames].float() - target).pow(2).mean()
    valid = example.action_valid.to(device)[rows]
    if len(rows) and bool(valid.any()):
        target = (noisy.eps_a - noisy.a0)[rows][:, :raw_dim]
        pred = pred_action[rows][:, :raw_dim].float()
        action_loss = (pred - target).pow(2)[valid].mean()
    return vision_loss, action_loss
