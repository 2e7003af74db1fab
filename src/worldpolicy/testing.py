"""Tiny random Cosmos3 checkpoints built fully offline (tokenizer trained in code), for tests, demos and benchmarks.

The result is a real diffusers-format folder (`model_index.json`, `transformer/`, `vae/`, `text_tokenizer/`,
`scheduler/`) that `Cosmos3OmniPipeline.from_pretrained` and `worldpolicy.load_policy` both load. Weights are random:
outputs exercise every code path but mean nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from .fileio import MODEL_INDEX_FILE, staged_folder

_CORPUS = [
    "Pick up the banana and place it in the bowl.",
    "Push the red cube to the green target.",
    "Reach the target with the gripper.",
    "Open the drawer and put the cup inside.",
    "This video is captured from a first-person perspective looking at the scene.",
    "This video is captured from a third-person perspective looking towards the agent from the front.",
    "This video is captured from a wrist-mounted camera.",
    "This video contains concatenated views from multiple camera perspectives.",
    "The top row is from the wrist-mounted camera. The bottom row contains two horizontally concatenated views.",
    "The video is 2.0 seconds long and is of 15 FPS. This video is of 544x736 resolution.",
    (
        '{"cinematography": {"framing": "x"}, "actions": [{"time": "0:00-0:01", "description": "d"}], '
        '"duration": "1s", "fps": 15.0, "resolution": {"H": 480, "W": 832}, "aspect_ratio": "16,9"}'
    ),
    "You are a helpful assistant who will generate videos from a give prompt.",
    "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ .,:;!?-_/()[]{}\"'",
]
_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>"]
_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class TinySizes:
    """Shape knobs of a tiny checkpoint. `rope_axes_dim` must sum to head_dim // 2."""

    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 1
    head_dim: int = 16
    intermediate_size: int = 192
    rope_axes_dim: tuple[int, int, int] = (4, 2, 2)
    latent_channel: int = 8
    action_dim: int = 64
    hidden_act: str = "silu"
    vae_base_dim: int = 8
    vae_decoder_base_dim: int | None = None  # None: vae_base_dim
    vae_dim_mult: tuple[int, ...] = (1, 1, 1, 1)
    vae_res_blocks: int = 1
    vocab_size: int = 1024
    flow_shift: float = 5.0


WIDE = TinySizes(
    hidden_size=512, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2, head_dim=64,
    intermediate_size=1536, rope_axes_dim=(12, 10, 10),
)

# Cosmos3-Nano's compute geometry (fact sheet §2, §5) with random weights, for GPU benchmarks: the transformer's 36
# layers at hidden 4096 and the Wan2.2 VAE. The embedding table has the tiny tokenizer's 1024 rows (a lookup, no compute)
# so captions tokenise to the ~130 tokens a real one has.
NANO = TinySizes(
    hidden_size=4096, num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
    intermediate_size=12288, rope_axes_dim=(24, 20, 20), latent_channel=48, vae_base_dim=160, vae_decoder_base_dim=256,
    vae_dim_mult=(1, 2, 4, 4), vae_res_blocks=2,
)


def build_tokenizer(vocab_size: int = 1024, corpus: list[str] | None = None):
    """Byte-level BPE with Qwen-style special tokens and a ChatML template, trained on a few sentences
    (`corpus`, default: a built-in set covering the captions the tests use)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(_SPECIAL),
        special_tokens=_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus or _CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|vision_start|>", "<|vision_end|>"],
    )
    fast.chat_template = _CHAT_TEMPLATE
    return fast


def build_components(sizes: TinySizes = TinySizes(), seed: int = 0, device: str | None = None, dtype: str | None = None):
    """Random transformer, VAE, tokenizer and scheduler (in memory), built on `device` (NANO needs a GPU's memory) and
    cast to `dtype` as `from_pretrained(dtype=...)` casts: the transformer's time embedder stays fp32."""
    import torch
    from diffusers import UniPCMultistepScheduler

    from .engine.loading import cast_like_pretrained

    if sum(sizes.rope_axes_dim) != sizes.head_dim // 2:
        raise ValueError(f"rope_axes_dim={sizes.rope_axes_dim} must sum to head_dim // 2 = {sizes.head_dim // 2}")
    tokenizer = build_tokenizer(sizes.vocab_size)
    torch.manual_seed(seed)
    with torch.device(device or "cpu"):
        transformer, vae = _random_modules(sizes, len(tokenizer))
    if dtype is not None:
        for module in (transformer, vae):
            cast_like_pretrained(module, getattr(torch, dtype))
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=sizes.flow_shift,
        use_karras_sigmas=False,
        solver_order=2,
    )
    return transformer.eval(), vae.eval(), tokenizer, scheduler


def _random_modules(sizes: TinySizes, tokenizer_size: int):
    import torch
    from diffusers import AutoencoderKLWan, Cosmos3OmniTransformer

    transformer = Cosmos3OmniTransformer(
        hidden_size=sizes.hidden_size,
        intermediate_size=sizes.intermediate_size,
        num_hidden_layers=sizes.num_hidden_layers,
        num_attention_heads=sizes.num_attention_heads,
        num_key_value_heads=sizes.num_key_value_heads,
        head_dim=sizes.head_dim,
        rope_axes_dim=list(sizes.rope_axes_dim),
        latent_channel=sizes.latent_channel,
        latent_patch_size=2,
        patch_latent_dim=4 * sizes.latent_channel,
        hidden_act=sizes.hidden_act,
        qk_norm_for_text=True,
        action_gen=True,
        action_dim=sizes.action_dim,
        num_embodiment_domains=32,
        vocab_size=max(sizes.vocab_size, tokenizer_size),
    )
    # Random init leaves action_modality_embed and norms at trivial values; perturb everything so parity tests
    # exercise every weight (a zero vector would hide a wrong add).
    with torch.no_grad():
        for name, param in transformer.named_parameters():
            if param.dim() == 1:
                param.add_(0.05 * torch.randn_like(param))
    vae = AutoencoderKLWan(
        base_dim=sizes.vae_base_dim,
        decoder_base_dim=sizes.vae_decoder_base_dim or sizes.vae_base_dim,
        z_dim=sizes.latent_channel,
        dim_mult=list(sizes.vae_dim_mult),
        num_res_blocks=sizes.vae_res_blocks,
        temperal_downsample=[False, True, True],
        is_residual=True,
        in_channels=12,
        out_channels=12,
        patch_size=2,
        scale_factor_temporal=4,
        scale_factor_spatial=16,
        latents_mean=[0.1 * i for i in range(sizes.latent_channel)],
        latents_std=[1.0 + 0.1 * i for i in range(sizes.latent_channel)],
    )
    return transformer, vae


def make_tiny_checkpoint(path: str | Path, sizes: TinySizes | None = None, seed: int = 0, **overrides) -> Path:
    """Write a tiny random diffusers-format Cosmos3 checkpoint to `path` (atomically) and return it.

    `overrides` are `TinySizes` fields, e.g. `make_tiny_checkpoint(d, hidden_size=128, num_hidden_layers=3)`.
    """
    from diffusers import Cosmos3OmniPipeline

    sizes = TinySizes(**{**asdict(sizes or TinySizes()), **overrides})
    transformer, vae, tokenizer, scheduler = build_components(sizes, seed=seed)
    pipe = Cosmos3OmniPipeline(
        transformer=transformer,
        text_tokenizer=tokenizer,
        vae=vae,
        scheduler=scheduler,
        safety_checker=None,
        enable_safety_checker=False,
        default_use_system_prompt=False,
    )
    path = Path(path)
    if path.exists() and not (path.is_dir() and (not any(path.iterdir()) or (path / MODEL_INDEX_FILE).is_file())):
        raise FileExistsError(f"path={str(path)!r} holds something other than a checkpoint; it is replaced only when "
                              "empty or a diffusers-format folder (model_index.json): choose another path")
    with staged_folder(path) as staging:  # whole or not at all, as every checkpoint is written
        pipe.save_pretrained(staging, safe_serialization=True)
    return path
