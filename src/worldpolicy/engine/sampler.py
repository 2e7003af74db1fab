"""The sampling loop for policy, forward and inverse dynamics — batched, cached, and faithful to the pipeline.

Per request it does only what the mode needs: VAE-encode frame 0 alone for policy/forward dynamics (exact: the Wan
VAE is causal in time), run the text tower once per prompt, run CFG's two branches and all requests of a batch in one
generation-tower pass, and decode video only when asked. Noise is drawn in the pipeline's order (vision, then actions)
from a per-request CPU generator, and the sampler state stays fp32, so a seed gives the pipeline's result.
"""

from __future__ import annotations

import copy
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor

from .forward import (
    TextCache,
    encode_text,
    gen_tokens,
    generate,
    generation_positions,
    read_velocities,
    rotary,
)
from .loading import check_compile_options
from .schedules import SamplingConfig, make_scheduler


@dataclass
class EngineRequest:
    """One fully processed request (model space, token ids, canvas) — what the engine needs and nothing else.

    `canvas` holds only the frames to encode: 1 for policy / forward dynamics, chunk+1 for inverse dynamics.
    `state_row` (model space) is conditioned clean ahead of the chunk (the RoboLab DROID variant); `clean_actions`
    (model space, [chunk, raw_dim]) condition forward dynamics; `action_prefix` (model space, [d, raw_dim], d <
    chunk) conditions a policy chunk's first d rows clean (real-time chunking: the actions that run while it is
    computed), the rest generated.
    """

    mode: str
    canvas: torch.Tensor
    latent_hw: tuple[int, int]
    cond_ids: list[int]
    uncond_ids: list[int]
    domain_id: int
    raw_dim: int
    chunk_size: int
    fps: float
    sampling: SamplingConfig
    seed: int
    clean_actions: np.ndarray | None = None
    state_row: np.ndarray | None = None
    action_prefix: np.ndarray | None = None
    decode_video: bool = False


@dataclass
class EngineOutput:
    actions: np.ndarray | None
    video: np.ndarray | None
    latents: torch.Tensor
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Item:
    request: EngineRequest
    latents: torch.Tensor
    actions: torch.Tensor
    noisy_frames: torch.Tensor
    noisy_rows: torch.Tensor
    vision_scheduler: Any
    action_scheduler: Any
    texts: list[TextCache]
    token_grid: tuple[int, int, int]
    timings: dict[str, float]


def _latent_stats(vae, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The VAE's per-channel latent mean and 1/std in `dtype` (the VAE's: diffusers' `vae.dtype` walks every module,
    so each caller reads it once), shaped to broadcast over [B, C, T, H, W]."""
    mean = torch.tensor(vae.config.latents_mean, dtype=dtype, device=device).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, dtype=dtype, device=device).view(1, -1, 1, 1, 1)
    return mean, 1.0 / std


@torch.no_grad()
def encode_latents(vae, canvas: torch.Tensor) -> torch.Tensor:
    """[B,3,T,H,W] in [-1,1] → normalised fp32 latents: the posterior mode, (z - mean) / std (the pipeline's
    `_encode_video`). Shared by sampling and the trainer's latent cache."""
    device, dtype = next(vae.parameters()).device, vae.dtype
    raw = vae.encode(canvas.to(device=device, dtype=dtype)).latent_dist.mode()
    mean, inv_std = _latent_stats(vae, dtype, raw.device)
    return ((raw - mean) * inv_std).float().contiguous()


@torch.no_grad()
def decode_latents(vae, latents: torch.Tensor) -> torch.Tensor:
    """Normalised latents → decoded video [B,3,T,H,W] in about [-1,1]."""
    dtype = vae.dtype
    mean, inv_std = _latent_stats(vae, dtype, latents.device)
    return vae.decode(latents.to(dtype) / inv_std + mean).sample.to(torch.float32)


class Engine:
    """Holds diffusers' Cosmos3 components and runs batches of `EngineRequest`s."""

    def __init__(
        self,
        transformer,
        vae,
        tokenizer,
        scheduler,
        *,
        use_native_flow_schedule: bool = False,
        default_use_system_prompt: bool = False,
        compile: bool = False,
        cuda_graphs: bool = False,
        text_cache_size: int = 32,
    ):
        self.transformer = transformer
        self.vae = vae
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        self.use_native_flow_schedule = bool(use_native_flow_schedule)
        self.default_use_system_prompt = bool(default_use_system_prompt)
        self.device = next(transformer.parameters()).device
        self.dtype = transformer.dtype
        check_compile_options(self.device, compile, cuda_graphs)
        self._generate = generate
        self._cuda_graphs = bool(cuda_graphs)
        if compile or cuda_graphs:
            mode = "reduce-overhead" if cuda_graphs else "max-autotune-no-cudagraphs"
            self._generate = torch.compile(generate, mode=mode, dynamic=False)
        self._texts: OrderedDict[tuple[int, ...], TextCache] = OrderedDict()
        self._text_cache_size = text_cache_size
        self._video_processor = VideoProcessor(vae_scale_factor=16, resample="bilinear")

    def _clock(self) -> float:
        """A timestamp after the device's queued work: CUDA and MPS run asynchronously, so an unsynchronised clock would
        time kernel launches, not the stage (per-request timings reach users and the server's metrics)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()
        return time.perf_counter()

    # -- stages ---------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def encode_video(self, canvas: torch.Tensor) -> torch.Tensor:
        """[B,3,T,H,W] in [-1,1] → normalised fp32 latents (the pipeline's `_encode_video`)."""
        return encode_latents(self.vae, canvas.to(self.device))

    @torch.no_grad()
    def decode_video(self, latents: torch.Tensor) -> np.ndarray:
        """Normalised latents → float frames [T,H,W,3] in [0,1] (the pipeline's decode + postprocess)."""
        decoded = decode_latents(self.vae, latents)
        return self._video_processor.postprocess_video(decoded, output_type="np")[0]

    def text(self, ids: list[int]) -> TextCache:
        """Text-tower K/V for a token sequence, cached (LRU) across requests with the same caption."""
        key = tuple(ids)
        cached = self._texts.get(key)
        if cached is not None:
            self._texts.move_to_end(key)
            return cached
        cache = encode_text(self.transformer, torch.tensor(ids, dtype=torch.long, device=self.device))
        self._texts[key] = cache
        while len(self._texts) > self._text_cache_size:
            self._texts.popitem(last=False)
        return cache

    # -- sampling -------------------------------------------------------------------------------------------------

    def _prepare(self, request: EngineRequest) -> _Item:
        timings: dict[str, float] = {}
        cfg = self.transformer.config
        latent_t = request.chunk_size // 4 + 1
        if request.mode == "inverse_dynamics":
            clean_frames = list(range(latent_t))
        else:
            clean_frames = [0]
        tick = self._clock()
        # policy and forward dynamics keep latent frame 0 alone: the VAE is causal in time, so encoding the canvas's
        # first frame gives it exactly (test_first_frame_encode_is_exact), without encoding the repeated frames after it
        canvas = request.canvas if request.mode == "inverse_dynamics" else request.canvas[:, :, :1]
        encoded = self.encode_video(canvas)
        h, w = request.latent_hw
        encoded = encoded[:, :, :, :h, :w].contiguous()
        timings["vae_encode"] = self._clock() - tick
        generator = torch.Generator(device="cpu").manual_seed(int(request.seed))
        shape = (1, encoded.shape[1], latent_t, h, w)
        latents = randn_tensor(shape, generator=generator, device=self.device, dtype=torch.float32)
        latents[:, :, clean_frames] = encoded[:, :, clean_frames]

        history = 0 if request.state_row is None else 1
        rows = request.chunk_size + history
        action_dim = cfg.action_dim
        x0 = torch.zeros(rows, action_dim, dtype=torch.float32)
        clean_rows: list[int] = []
        if history:
            x0[0, : request.raw_dim] = torch.as_tensor(request.state_row, dtype=torch.float32)
            clean_rows.append(0)
        if request.mode == "forward_dynamics":
            x0[history:, : request.raw_dim] = torch.as_tensor(request.clean_actions, dtype=torch.float32)
            clean_rows.extend(range(history, rows))
        if request.action_prefix is not None:  # row i of the prefix is row i of the chunk, after any state row
            end = history + len(request.action_prefix)
            x0[history:end, : request.raw_dim] = torch.as_tensor(request.action_prefix, dtype=torch.float32)
            clean_rows.extend(range(history, end))
        # noise for every row, clean ones too, then the clean rows set: the noisy rows draw what they draw without them
        actions = randn_tensor((rows, action_dim), generator=generator, device=self.device, dtype=torch.float32)
        x0 = x0.to(self.device)
        actions[clean_rows] = x0[clean_rows]
        actions[:, request.raw_dim :] = 0

        captions = [request.cond_ids, *([request.uncond_ids] if request.sampling.uses_cfg else [])]
        # the text tower's time; exactly 0 where every caption came from the cache (a dream's world model, one
        # checkpoint with its policy, finds the prompt its policy encoded): a lookup, which the report says so, and
        # not timed (no device sync)
        tick = self._clock() if any(tuple(ids) not in self._texts for ids in captions) else None
        texts = [self.text(ids) for ids in captions]
        timings["text"] = 0.0 if tick is None else self._clock() - tick

        scheduler = make_scheduler(self.scheduler, request.sampling, self.use_native_flow_schedule)
        p = cfg.latent_patch_size
        grid = (latent_t, -(-h // p), -(-w // p))
        noisy_frames = torch.tensor([f for f in range(latent_t) if f not in clean_frames], dtype=torch.long)
        noisy_rows = torch.tensor([r for r in range(rows) if r not in clean_rows], dtype=torch.long)

        return _Item(
            request=request,
            latents=latents,
            actions=actions,
            noisy_frames=noisy_frames.to(self.device),
            noisy_rows=noisy_rows.to(self.device),
            vision_scheduler=scheduler,
            action_scheduler=copy.deepcopy(scheduler),
            texts=texts,
            token_grid=grid,
            timings=timings,
        )

    def _positions(self, item: _Item, text_len: int) -> torch.Tensor:
        history = 0 if item.request.state_row is None else 1
        positions = generation_positions(
            self.transformer.config, text_len, item.token_grid, item.actions.shape[0], history, item.request.fps
        )
        return positions.to(self.device)

    def _tokens(self, item: _Item, timestep: Any) -> torch.Tensor:
        return gen_tokens(self.transformer, item.latents, item.noisy_frames, item.actions, item.noisy_rows,
                          item.request.domain_id, float(timestep), self.dtype)

    def _velocities(self, item: _Item, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode one sequence's gen output into fp32 velocities, zero at clean positions and padded columns."""
        vision, actions = read_velocities(self.transformer, hidden, item.token_grid, tuple(item.latents.shape[2:]),
                                          item.noisy_frames, item.noisy_rows, item.actions.shape[0],
                                          item.request.domain_id)
        actions[:, item.request.raw_dim :] = 0
        return vision, actions

    @torch.no_grad()
    def run(self, requests: list[EngineRequest], progress: Any = None) -> list[EngineOutput]:
        """Sample a batch. Requests must share a step count (the server groups them); anything else may differ."""
        if not requests:
            return []
        steps = {r.sampling.steps for r in requests}
        if len(steps) != 1:
            raise ValueError(f"requests in one batch must share steps, got {sorted(steps)}; group them first")
        items = [self._prepare(r) for r in requests]
        spans: list[tuple[int, int]] = []
        texts: list[TextCache] = []
        cos_parts, sin_parts = [], []
        start = 0
        for item in items:
            n = item.token_grid[0] * item.token_grid[1] * item.token_grid[2] + item.actions.shape[0]
            for text in item.texts:
                cos, sin = rotary(self.transformer, self._positions(item, text.length), self.dtype)
                cos_parts.append(cos)
                sin_parts.append(sin)
                spans.append((start, start + n))
                texts.append(text)
                start += n
        cos, sin = torch.cat(cos_parts), torch.cat(sin_parts)

        tick = self._clock()
        n_steps = steps.pop()
        for step in range(n_steps):
            inputs = []
            for item in items:
                tokens = self._tokens(item, item.vision_scheduler.timesteps[step])
                inputs.extend([tokens] * len(item.texts))
            if self._cuda_graphs:  # the previous step's graph outputs are consumed: their buffers may be reused
                torch.compiler.cudagraph_mark_step_begin()
            hidden = self._generate(self.transformer, torch.cat(inputs), cos, sin, spans, texts)
            cursor = 0
            for item in items:
                outs = []
                for _ in item.texts:
                    s, e = spans[cursor]
                    outs.append(self._velocities(item, hidden[s:e]))
                    cursor += 1
                self._step(item, step, outs)
            if progress is not None:
                progress(step + 1, n_steps)
        denoise = self._clock() - tick

        outputs = []
        for item in items:
            item.timings["denoise"] = denoise
            req = item.request
            actions = None
            if req.mode != "forward_dynamics":
                history = 0 if req.state_row is None else 1
                actions = item.actions[history:, : req.raw_dim].detach().cpu().numpy().astype(np.float64)
            video = None
            if req.decode_video:
                tick = self._clock()
                video = self.decode_video(item.latents)
                item.timings["vae_decode"] = self._clock() - tick
            outputs.append(EngineOutput(actions=actions, video=video, latents=item.latents, timings=item.timings))
        return outputs

    def _step(self, item: _Item, step: int, outs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        guidance = item.request.sampling.guidance
        (cv, ca), *rest = outs
        if rest:
            (uv, ua) = rest[0]
            cv = uv + guidance * (cv - uv)
            ca = ua + guidance * (ca - ua)
        t = item.vision_scheduler.timesteps[step]
        item.latents = item.vision_scheduler.step(cv.unsqueeze(0), t, item.latents.unsqueeze(0),
                                                  return_dict=False)[0].squeeze(0)
        if item.noisy_rows.numel():
            item.actions = item.action_scheduler.step(ca.unsqueeze(0), t, item.actions.unsqueeze(0),
                                                      return_dict=False)[0].squeeze(0)
            item.actions[:, item.request.raw_dim :] = 0
