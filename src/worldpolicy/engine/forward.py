"""Cosmos3 transformer forward, split the way the math allows — over diffusers' own modules and weights.

The understanding (text) tower is causal over text only and never sees generated tokens, so its per-layer keys and
values are fixed for a prompt: `encode_text` computes them once. Each denoising step then runs only the generation
tower (`generate`), for any number of sequences at once (CFG branches and separate requests): token-wise layers run on
all sequences' tokens together, attention runs per sequence against that sequence's cached text K/V. Operation order
matches `Cosmos3OmniTransformer.forward`, so results agree with the pipeline to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.utils.checkpoint
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.pipelines.cosmos.pipeline_cosmos3_omni import get_3d_mrope_ids_text_tokens, get_3d_mrope_ids_vae_tokens


@dataclass
class TextCache:
    """Per-layer (roped K as seen by the gen tower, V) of one prompt; `length` = und_len."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]
    length: int


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos + _rotate_half(x) * sin


def rotary(transformer, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """[3, N] mRoPE ids → (cos, sin) [N, 1, head_dim] ready to broadcast over heads."""
    cos, sin = transformer.rotary_emb(position_ids=position_ids.unsqueeze(1), device=position_ids.device, dtype=dtype)
    return cos.squeeze(0).unsqueeze(1), sin.squeeze(0).unsqueeze(1)


def _attend(attn, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
    out = dispatch_attention_fn(
        q.unsqueeze(0),
        k.unsqueeze(0),
        v.unsqueeze(0),
        is_causal=causal,
        enable_gqa=True,
        backend=attn.processor._attention_backend,
        parallel_config=attn.processor._parallel_config,
    )
    return out.squeeze(0).flatten(-2, -1)


@torch.no_grad()
def encode_text(transformer, input_ids: torch.Tensor) -> TextCache:
    """Run the understanding tower once and keep each layer's K/V for the generation tower."""
    return text_kv(transformer, input_ids)


def text_kv(transformer, input_ids: torch.Tensor, recompute: bool = False) -> TextCache:
    """`encode_text` with autograd: training shares one text pass among the examples of a batch with one caption.
    `recompute` (gradient checkpointing) keeps each layer's input and its K/V, and recomputes the rest in backward."""
    cfg = transformer.config
    length = int(input_ids.shape[0])
    hidden = transformer.embed_tokens(input_ids)
    positions, _ = get_3d_mrope_ids_text_tokens(length, 0, use_float_positions=cfg.enable_fps_modulation)
    cos, sin = rotary(transformer, positions.to(input_ids.device), hidden.dtype)
    kv = []
    last = len(transformer.layers) - 1
    for index, layer in enumerate(transformer.layers):
        if recompute and torch.is_grad_enabled():
            k, v, hidden = torch.utils.checkpoint.checkpoint(_text_layer, layer, hidden, cos, sin, index == last,
                                                             use_reentrant=False)
        else:
            k, v, hidden = _text_layer(layer, hidden, cos, sin, index == last)
        kv.append((k, v))
    return TextCache(kv=kv, length=length)


def _text_layer(layer, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, last: bool):
    """One understanding layer: (roped K as the gen tower sees it, V, the next hidden state; the last layer's output
    is never read, so it is not computed)."""
    attn = layer.self_attn
    x = layer.input_layernorm(hidden)
    q = attn.norm_q(attn.to_q(x).view(-1, attn.num_attention_heads, attn.head_dim))
    k = attn.norm_k(attn.to_k(x).view(-1, attn.num_key_value_heads, attn.head_dim))
    v = attn.to_v(x).view(-1, attn.num_key_value_heads, attn.head_dim)
    k_for_gen = attn.k_norm_und_for_gen(k) if attn.k_norm_und_for_gen is not None else k
    k_for_gen = _rope(k_for_gen, cos, sin)
    if last:
        return k_for_gen, v, hidden
    q, k = _rope(q, cos, sin), _rope(k, cos, sin)
    hidden = hidden + attn.to_out(_attend(attn, q, k, v, causal=True))
    return k_for_gen, v, hidden + layer.mlp(layer.post_attention_layernorm(hidden))


def generate(
    transformer,
    hidden: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    spans: list[tuple[int, int]],
    texts: list[TextCache],
    recompute: bool = False,
) -> torch.Tensor:
    """Generation tower over packed sequences. `hidden` [N_total, D]; `spans[i]` = rows of sequence i; returns the
    final-normed hidden states [N_total, D]. `recompute` (training) keeps only each layer's input for the backward
    pass and recomputes the rest: the same gradients for a fraction of the activation memory."""
    for index, layer in enumerate(transformer.layers):
        if recompute and torch.is_grad_enabled():
            hidden = torch.utils.checkpoint.checkpoint(_gen_layer, layer, index, hidden, cos, sin, spans, texts,
                                                       use_reentrant=False)
        else:
            hidden = _gen_layer(layer, index, hidden, cos, sin, spans, texts)
    return transformer.norm_moe_gen(hidden)


def _gen_layer(layer, index: int, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
               spans: list[tuple[int, int]], texts: list[TextCache]) -> torch.Tensor:
    attn = layer.self_attn
    x = layer.input_layernorm_moe_gen(hidden)
    q = attn.norm_added_q(attn.add_q_proj(x).view(-1, attn.num_attention_heads, attn.head_dim))
    k = attn.norm_added_k(attn.add_k_proj(x).view(-1, attn.num_key_value_heads, attn.head_dim))
    v = attn.add_v_proj(x).view(-1, attn.num_key_value_heads, attn.head_dim)
    q, k = _rope(q, cos, sin), _rope(k, cos, sin)
    outs = []
    for (start, end), text in zip(spans, texts):
        k_text, v_text = text.kv[index]
        all_k = torch.cat([k_text, k[start:end]], dim=0)
        all_v = torch.cat([v_text, v[start:end]], dim=0)
        outs.append(_attend(attn, q[start:end], all_k, all_v, causal=False))
    hidden = hidden + attn.to_add_out(torch.cat(outs, dim=0) if len(outs) > 1 else outs[0])
    return hidden + layer.mlp_moe_gen(layer.post_attention_layernorm_moe_gen(hidden))


def tower_modules(layer) -> tuple[list[torch.nn.Module], list[torch.nn.Module]]:
    """The modules of one layer that `_text_layer` and `_gen_layer` call (the understanding tower's, the generation
    tower's): neither calls the layer itself, so a wrapper acting on module calls (FSDP's per-block sharding: one
    group per tower, gathered when its first module runs) is given these. Keep in step with the two functions."""
    attn = layer.self_attn
    text = [layer.input_layernorm, attn.norm_q, attn.to_q, attn.norm_k, attn.to_k, attn.to_v, attn.to_out,
            layer.mlp, layer.post_attention_layernorm]
    if attn.k_norm_und_for_gen is not None:
        text.append(attn.k_norm_und_for_gen)
    gen = [layer.input_layernorm_moe_gen, attn.norm_added_q, attn.add_q_proj, attn.norm_added_k, attn.add_k_proj,
           attn.add_v_proj, attn.to_add_out, layer.mlp_moe_gen, layer.post_attention_layernorm_moe_gen]
    return text, gen


def generation_positions(
    config, text_len: int, token_grid: tuple[int, int, int], action_rows: int, history: int, fps: float | None
) -> torch.Tensor:
    """mRoPE ids [3, N] of the generated part of a sequence — vision grid, then action rows — laid out as the
    pipeline lays them (actions start one latent frame in, or at the state frame when a state row leads)."""
    offset = text_len + config.unified_3d_mrope_temporal_modality_margin
    fps = fps if config.enable_fps_modulation else None
    common = dict(
        temporal_offset=offset, reset_spatial_indices=config.unified_3d_mrope_reset_spatial_ids, fps=fps,
        base_fps=float(config.base_fps),
    )
    vision, _ = get_3d_mrope_ids_vae_tokens(
        grid_t=token_grid[0], grid_h=token_grid[1], grid_w=token_grid[2], temporal_compression_factor=4, **common
    )
    action, _ = get_3d_mrope_ids_vae_tokens(
        grid_t=action_rows, grid_h=1, grid_w=1, temporal_compression_factor=1, base_temporal_compression_factor=4,
        start_frame_offset=1 - history, **common,
    )
    return torch.cat([vision.float(), action.float()], dim=1)


def timestep_embedding(transformer, timestep: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The per-token time embedding added to noisy tokens ([1, D]); clean tokens get none."""
    t = torch.full((1,), float(timestep), device=device) * transformer.config.timestep_scale
    te_dtype = next(transformer.time_embedder.parameters()).dtype
    return transformer.time_embedder(transformer.time_proj(t).to(te_dtype)).to(dtype)


def gen_tokens(
    transformer,
    latents: torch.Tensor,
    noisy_frames: torch.Tensor,
    actions: torch.Tensor,
    noisy_rows: torch.Tensor,
    domain_id: int,
    timestep: float,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Gen-tower input of one sequence: projected vision patches of `latents` [1, C, T, h, w], then the action rows
    [rows, action_dim], with the time embedding of `timestep` on the noisy frames and rows only. `dtype`: the
    transformer's (`transformer.dtype`), read once by the caller: diffusers' `dtype` walks every module (1028 at
    Nano's geometry), and this runs per sequence per step."""
    device = latents.device
    packed, _ = transformer._patchify_and_pack_latents([latents.to(dtype)])
    vision = transformer.proj_in(packed)
    embed = None
    if noisy_frames.numel() or noisy_rows.numel():
        embed = timestep_embedding(transformer, float(timestep), dtype, device)
    if noisy_frames.numel():
        vision = vision.view(latents.shape[2], -1, vision.shape[-1])
        vision[noisy_frames] = vision[noisy_frames] + embed.to(vision.dtype)  # (autocast computes vision in bf16)
        vision = vision.view(-1, vision.shape[-1])
    domain = torch.full((actions.shape[0],), domain_id, dtype=torch.long, device=device)
    rows = transformer.action_proj_in(actions.to(dtype), domain) + transformer.action_modality_embed
    if noisy_rows.numel():
        rows[noisy_rows] = rows[noisy_rows] + embed.to(rows.dtype)
    return torch.cat([vision, rows], dim=0)


def read_velocities(
    transformer,
    hidden: torch.Tensor,
    token_grid: tuple[int, int, int],
    latent_shape: tuple[int, int, int],
    noisy_frames: torch.Tensor,
    noisy_rows: torch.Tensor,
    rows: int,
    domain_id: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One sequence's gen output → fp32 velocities: vision [1, C, T, h, w] and actions [rows, action_dim], zero at the
    clean frames and rows (as `Cosmos3OmniTransformer.forward` returns them)."""
    t, gh, gw = token_grid
    n_vision = t * gh * gw
    noisy_vision = hidden[:n_vision].view(t, gh * gw, -1)[noisy_frames].reshape(-1, hidden.shape[-1])
    vision = transformer._unpatchify_and_unpack_latents(
        transformer.proj_out(noisy_vision), [token_grid], [noisy_frames], [latent_shape]
    )[0].float()
    actions = hidden.new_zeros((rows, transformer.config.action_dim), dtype=torch.float32)
    if noisy_rows.numel():
        domain = torch.full((noisy_rows.numel(),), domain_id, dtype=torch.long, device=hidden.device)
        predicted = transformer.action_proj_out(hidden[n_vision:][noisy_rows], domain).float()
        actions = actions.index_put((noisy_rows,), predicted)
    return vision, actions
