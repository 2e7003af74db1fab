"""The flow-matching objective on video latents and action tokens, through `Cosmos3OmniTransformer.forward`.

Same conventions as sampling (cosmos3-model.md): x_σ = (1-σ)·x0 + σ·ε, the model predicts the velocity ε - x0 at
timestep 1000·σ, clean positions (conditioning frames/rows) get no time embedding and no loss. One objective decides
what is clean (cosmos-policy.md §4): policy keeps frame 0 (and a state row) clean and generates future frames and
actions; forward dynamics also keeps the actions clean; inverse dynamics keeps every frame clean and generates actions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from diffusers.pipelines.cosmos.pipeline_cosmos3_omni import get_3d_mrope_ids_text_tokens

from ..engine.forward import generation_positions

OBJECTIVES = ("policy", "forward_dynamics", "inverse_dynamics")
# Cosmos Policy's batch split (cosmos-policy.md §4: 50 % policy, 25 % world model, 25 % value); Cosmos3 has an
# inverse-dynamics head where Cosmos Policy had a value frame.
COSMOS_POLICY_MIX = {"policy": 0.5, "forward_dynamics": 0.25, "inverse_dynamics": 0.25}
TIMESTEP_SAMPLING = ("logit_normal", "uniform")


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


@dataclass(frozen=True)
class TimestepSampler:
    """σ ∈ (0, 1): logit-normal (mean, std) then the flow shift σ' = sσ / (1 + (s-1)σ), or uniform."""

    kind: str = "logit_normal"
    mean: float = 0.0
    std: float = 1.0
    shift: float = 5.0

    def __post_init__(self) -> None:
        if self.kind not in TIMESTEP_SAMPLING:
            raise ValueError(f"timesteps.kind={self.kind!r}; accepted: {', '.join(TIMESTEP_SAMPLING)}")
        if not (math.isfinite(self.std) and self.std > 0):
            raise ValueError(f"timesteps.std={self.std!r} must be > 0")
        if not (math.isfinite(self.shift) and self.shift > 0):
            raise ValueError(f"timesteps.shift={self.shift!r} must be > 0")

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        if self.kind == "uniform":
            sigma = torch.rand(n, generator=generator, dtype=torch.float64)
        else:
            sigma = torch.sigmoid(self.mean + self.std * torch.randn(n, generator=generator, dtype=torch.float64))
            sigma = self.shift * sigma / (1 + (self.shift - 1) * sigma)
        return sigma.clamp(1e-4, 1 - 1e-4).float()


def clean_sets(objective: str, latent_t: int, rows: int, history: int) -> tuple[list[int], list[int]]:
    """Clean latent frames and clean action rows of one objective."""
    if objective == "policy":
        return [0], list(range(history))
    if objective == "forward_dynamics":
        return [0], list(range(rows))
    if objective == "inverse_dynamics":
        return list(range(latent_t)), list(range(history))
    raise ValueError(f"objective={objective!r}; accepted: {', '.join(OBJECTIVES)}")


def example_loss(
    transformer,
    example: ModelExample,
    objective: str,
    sigma: float,
    generator: torch.Generator,
    num_train_timesteps: int = 1000,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(vision MSE, action MSE) of one example under one objective; a term is None when nothing of it is noisy."""
    cfg = transformer.config
    device = next(transformer.parameters()).device
    dtype = transformer.dtype
    x0 = example.latents.to(device=device, dtype=torch.float32).unsqueeze(0)
    _, channels, latent_t, h, w = x0.shape
    rows = example.actions.shape[0]
    raw_dim = example.actions.shape[1]
    clean_frames, clean_rows = clean_sets(objective, latent_t, rows, example.history)
    noisy_frames = torch.tensor([f for f in range(latent_t) if f not in clean_frames], dtype=torch.long)
    noisy_rows = torch.tensor([r for r in range(rows) if r not in clean_rows], dtype=torch.long)

    # Noise in the sampler's order (vision, then actions), drawn on CPU so runs reproduce across devices.
    eps_v = torch.randn(x0.shape, generator=generator).to(device)
    a0 = torch.zeros(rows, cfg.action_dim, dtype=torch.float32, device=device)
    a0[:, :raw_dim] = example.actions.to(device=device, dtype=torch.float32)
    eps_a = torch.randn(a0.shape, generator=generator).to(device)
    eps_a[:, raw_dim:] = 0

    frame_mask = torch.zeros(latent_t, dtype=torch.bool, device=device)
    frame_mask[noisy_frames] = True
    row_mask = torch.zeros(rows, dtype=torch.bool, device=device)
    row_mask[noisy_rows] = True
    xt = torch.where(frame_mask.view(1, 1, -1, 1, 1), (1 - sigma) * x0 + sigma * eps_v, x0)
    at = torch.where(row_mask.view(-1, 1), (1 - sigma) * a0 + sigma * eps_a, a0)

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
    timestep = float(sigma) * num_train_timesteps
    preds_vision, _, preds_action = transformer(
        input_ids=torch.tensor(example.token_ids, dtype=torch.long, device=device),
        text_indexes=torch.arange(text_len, device=device),
        position_ids=position_ids,
        und_len=text_len,
        sequence_length=text_len + n_vision + rows,
        vision_tokens=[xt.to(dtype)],
        vision_token_shapes=[grid],
        vision_sequence_indexes=torch.arange(vision_start, action_start, device=device),
        vision_mse_loss_indexes=vision_loss_idx,
        vision_timesteps=torch.full((len(noisy_frames) * per_frame,), timestep, device=device),
        vision_noisy_frame_indexes=[noisy_frames.to(device)],
        action_tokens=[at.to(dtype)],
        action_token_shapes=[(rows, 1, 1)],
        action_sequence_indexes=torch.arange(action_start, action_start + rows, device=device),
        action_mse_loss_indexes=(action_start + noisy_rows).to(device),
        action_timesteps=torch.full((len(noisy_rows),), timestep, device=device),
        action_noisy_frame_indexes=[noisy_rows.to(device)],
        action_domain_ids=[torch.tensor(example.domain_id, device=device)],
        return_dict=False,
    )
    vision_loss = action_loss = None
    if len(noisy_frames):
        target = (eps_v - x0)[:, :, noisy_frames.to(device)]
        vision_loss = (preds_vision[0][:, :, noisy_frames.to(device)].float() - target).pow(2).mean()
    valid = example.action_valid.to(device)[noisy_rows.to(device)]
    if len(noisy_rows) and bool(valid.any()):
        target = (eps_a - a0)[noisy_rows.to(device)][:, :raw_dim]
        pred = preds_action[0][noisy_rows.to(device)][:, :raw_dim].float()
        action_loss = (pred - target).pow(2)[valid].mean()
    return vision_loss, action_loss
