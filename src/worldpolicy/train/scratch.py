"""A small Cosmos3 policy from nothing, on CPU: expert sim data → tiny VAE → tiny transformer → sim evaluation.

`worldpolicy train reach-from-scratch` runs every stage of a recipe (a TOML file whose `[scratch]` table says how to
make the data and the base model; the rest is an ordinary `TrainConfig`). The shipped model
(`worldpolicy.models`) is the output of exactly this command.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
import tomllib
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..fileio import (
    MODEL_INDEX_FILE,
    TRAINER_STATE_FILE,
    TRAINER_STATE_SCHEMA,
    TRAINING_SUMMARY_FILE,
    folder_lock,
    output_folder,
    read_trainer_state,
    saved_checkpoints,
    staged_folder,
    write_json_atomic,
)
from ..models import checkpoint_name
from .model_card import write_model_card

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

RECIPES = {"reach-from-scratch": "reach_from_scratch.toml"}


@dataclass
class ScratchConfig:
    """How the data and the untrained base model of a from-scratch recipe are made."""

    task: str = "reach"
    task_options: dict[str, Any] = field(default_factory=dict)  # for the training data only, e.g. reach's upper_share
    episodes: int = 240
    seed: int = 0
    start_jitter: float = 0.5
    settle_steps: int = 4
    action_noise: float = 0.0
    workers: int = 2
    cameras: list[str] = field(
        default_factory=lambda: ["observation/exterior_image_1_left", "observation/exterior_image_2_left"]
    )
    # transformer
    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 32
    intermediate_size: int = 384
    rope_axes_dim: list[int] = field(default_factory=lambda: [8, 4, 4])
    action_dim: int = 16
    vocab_size: int = 512
    # VAE
    latent_channel: int = 8
    vae_base_dim: int = 8
    vae_dim_mult: list[int] = field(default_factory=lambda: [1, 2, 4, 4])
    vae_steps: int = 300
    vae_batch_size: int = 2
    vae_lr: float = 1e-3
    vae_kl_weight: float = 1e-6
    vae_clips: int = 160
    vae_saliency_weight: float = 200.0
    # final evaluation
    eval_episodes: int = 100
    eval_seed: int = 100_000


def recipe_path(name_or_path: str) -> Path:
    if name_or_path in RECIPES:
        return Path(str(resources.files(__package__).joinpath("recipes", RECIPES[name_or_path])))
    path = Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"config {name_or_path!r}: not a file and not a recipe name ({', '.join(RECIPES)})")
    return path


def recipe_label(path: Path) -> str:
    """How a summary names its recipe: a shipped recipe by its name, since the path of the installed package is one
    machine's (and a summary ships with the model); any other file by the path it was given as."""
    for name in RECIPES:
        if path.resolve() == recipe_path(name).resolve():
            return name
    return str(path)


def corpus_for(prompts: list[str]) -> list[str]:
    """Sentences a tiny tokenizer is trained on: the task prompts and every caption sentence the model will see."""
    from ..embodiments import view_point_sentences

    extra = [
        "The video is 0.0 seconds long and is of 15 FPS. This video is of 256x256 resolution.",
        "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ .,:;!?-_/()[]{}\"'",
    ]
    return sorted(set(prompts)) + list(view_point_sentences().values()) + extra


def make_dataset(cfg: ScratchConfig, root: Path) -> dict[str, Any]:
    from ..data import LeRobotDataset
    from ..data.from_sim import check_recording, sim_to_dataset

    options = dict(seed=cfg.seed, task_options=cfg.task_options, cameras=cfg.cameras, start_jitter=cfg.start_jitter,
                   settle_steps=cfg.settle_steps, action_noise=cfg.action_noise)
    if (root / "meta" / "info.json").is_file():
        held = LeRobotDataset.open(root)
        if held.num_episodes == cfg.episodes:
            # reused only if this worldpolicy's task and expert, with these settings, recorded it
            check_recording(held, cfg.task, **options)
            return {"reused": str(root)}
        logger.info("%s holds %d of the recipe's %d episodes (an interrupted recording): recording them again", root,
                    held.num_episodes, cfg.episodes)
    result = sim_to_dataset(root, cfg.task, cfg.episodes, workers=cfg.workers, overwrite=True, **options)
    return {"episodes": len(result.seeds), "failed_seeds": result.failed_seeds, "wall_s": result.wall_s}


def _clips(spec, embodiment, count: int, seed: int) -> torch.Tensor:
    """`count` random windows as VAE canvases [N, 3, chunk+1, H, W] (fp16 to keep memory small).

    Drawn uniformly (reservoir sampling) from the windows of `count` random episodes: only those episodes are
    decoded, so the cost does not grow with the dataset, and only the kept canvases are held.
    """
    import torch

    from ..data import LeRobotDataset
    from ..processing.observations import prepare_canvas
    from .data import iter_windows

    rng = np.random.default_rng(seed)
    episodes = spec.episodes or range(LeRobotDataset.open(spec.dataset).num_episodes)  # `data.episodes`' choice
    chosen = tuple(sorted(rng.choice(episodes, size=min(count, len(episodes)), replace=False).tolist()))
    clips: list[torch.Tensor] = []
    for seen, window in enumerate(iter_windows(replace(spec, episodes=chosen), embodiment)):
        slot = seen if seen < count else int(rng.integers(seen + 1))
        if slot < count:
            canvas, _ = prepare_canvas(window.frames, embodiment.resolution_tier, spec.chunk_size + 1,
                                       embodiment.snap_to_16)
            if slot == len(clips):
                clips.append(canvas[0].half())
            else:
                clips[slot] = canvas[0].half()
    return torch.stack(clips)


def _saturated(x: torch.Tensor) -> torch.Tensor:
    """1 where a pixel of a [-1, 1] clip [B, 3, T, H, W] has a strong colour (saturation > 0.6, not dark), else 0."""
    rgb = (x + 1) / 2
    hi, lo = rgb.max(dim=1, keepdim=True).values, rgb.min(dim=1, keepdim=True).values
    return (((hi - lo) / hi.clamp_min(1e-3) > 0.6) & (hi > 0.25)).float()


def train_vae(cfg: ScratchConfig, spec, embodiment, progress: bool = True):
    """A tiny `AutoencoderKLWan` trained on short clips of the task; latent mean/std set from the data.

    The reconstruction loss is weighted towards what carries the task: pixels that differ from the median frame
    (the arm, moved objects) and, `vae_saliency_weight` times more, strongly coloured pixels (the scene's objects:
    the target ball is a few pixels wide, and an unweighted loss lets a 16x-compressing VAE average it away).
    """
    import torch
    from diffusers import AutoencoderKLWan

    from ..logcapture import progress_bar

    torch.manual_seed(cfg.seed)
    clips = _clips(spec, embodiment, cfg.vae_clips, cfg.seed)
    median = clips.float().median(dim=0).values.median(dim=1, keepdim=True).values  # [3, 1, H, W]
    vae = AutoencoderKLWan(
        base_dim=cfg.vae_base_dim, decoder_base_dim=cfg.vae_base_dim, z_dim=cfg.latent_channel,
        dim_mult=list(cfg.vae_dim_mult), num_res_blocks=1, temperal_downsample=[False, True, True],
        is_residual=True, in_channels=12, out_channels=12, patch_size=2, scale_factor_temporal=4,
        scale_factor_spatial=16, latents_mean=[0.0] * cfg.latent_channel, latents_std=[1.0] * cfg.latent_channel,
    )
    vae.train()
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(cfg.seed)
    bar = progress_bar(range(cfg.vae_steps), desc="training VAE", unit="step", disable=not progress)
    losses = []
    for step in bar:
        lr = cfg.vae_lr * min(1.0, (step + 1) / 20) * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * step / cfg.vae_steps)))
        for group in opt.param_groups:
            group["lr"] = lr
        x = clips[torch.randint(len(clips), (cfg.vae_batch_size,), generator=gen)].float()
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=gen)).sample
        weight = 1.0 + 20.0 * (x - median).abs().mean(dim=1, keepdim=True) + cfg.vae_saliency_weight * _saturated(x)
        rec = (weight * (recon - x).abs()).mean() + (weight * (recon - x).pow(2)).mean()
        loss = rec + cfg.vae_kl_weight * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        losses.append(rec.item())
        bar.set_postfix(recon=f"{losses[-1]:.4f}")
    vae.eval()
    with torch.no_grad():
        z = torch.cat([vae.encode(clips[i : i + 8].float()).latent_dist.mode() for i in range(0, len(clips), 8)])
        mean = z.mean(dim=(0, 2, 3, 4))
        std = z.std(dim=(0, 2, 3, 4)).clamp_min(1e-3)
    vae.register_to_config(latents_mean=mean.tolist(), latents_std=std.tolist())
    return vae, {"recon_first": float(np.mean(losses[:10])), "recon_last": float(np.mean(losses[-10:]))}


def init_action_heads(transformer) -> None:
    """Initialise the per-domain action projections like `nn.Linear` (uniform ±1/√fan_in, zero bias).

    diffusers keeps each domain's action weights in an `nn.Embedding` table, whose default init is N(0, 1): fine for
    loading a checkpoint, but in a model trained from scratch it makes both projections ~√fan_in times too large (an
    initial action loss near 70), and the heads never got past predicting the mean action.
    """
    import torch

    with torch.no_grad():
        for projection in (transformer.action_proj_in, transformer.action_proj_out):
            bound = 1.0 / math.sqrt(projection.input_size)
            projection.fc.weight.uniform_(-bound, bound)
            projection.bias.weight.zero_()


def base_transformer(cfg: ScratchConfig, vocab_size: int):
    """The recipe's untrained Cosmos3 transformer: diffusers' init (seeded), action heads re-initialised."""
    import torch
    from diffusers import Cosmos3OmniTransformer

    torch.manual_seed(cfg.seed)
    transformer = Cosmos3OmniTransformer(
        hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads, head_dim=cfg.head_dim, rope_axes_dim=list(cfg.rope_axes_dim),
        latent_channel=cfg.latent_channel, latent_patch_size=2, patch_latent_dim=4 * cfg.latent_channel,
        qk_norm_for_text=True, action_gen=True, action_dim=cfg.action_dim, num_embodiment_domains=32,
        vocab_size=vocab_size,
    )
    init_action_heads(transformer)
    return transformer


def base_pipeline(cfg: ScratchConfig, vae, prompts: list[str], target: Path) -> Path:
    """An untrained Cosmos3 transformer (diffusers' init, action heads re-initialised), the trained VAE and a tokenizer
    trained in code."""
    from diffusers import Cosmos3OmniPipeline, UniPCMultistepScheduler

    from ..testing import build_tokenizer

    tokenizer = build_tokenizer(cfg.vocab_size, corpus=corpus_for(prompts))
    transformer = base_transformer(cfg, max(cfg.vocab_size, len(tokenizer)))
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0,
                                        use_karras_sigmas=False, solver_order=2)
    pipe = Cosmos3OmniPipeline(transformer=transformer, text_tokenizer=tokenizer, vae=vae, scheduler=scheduler,
                               safety_checker=None, enable_safety_checker=False, default_use_system_prompt=False)
    pipe.save_pretrained(target, safe_serialization=True)
    return target


def evaluate_checkpoint(checkpoint: Path, task: str, episodes: int, seed: int, out: Path, steps: int | None = None,
                        progress: bool = True) -> dict[str, Any]:
    from ..sim.env import TabletopEnv
    from ..sim.evaluate import evaluate, keep_report, write_report
    from ..sim.policies import make_policy
    from ..viz.report import write_report as write_page

    env = TabletopEnv(task)
    policy = make_policy(str(checkpoint), env=env, seed=seed, **({"steps": steps} if steps else {}))
    try:  # an interruption, a failure: report.json of every episode kept, as `worldpolicy sim` writes it
        with keep_report(out) as keeper:
            report = evaluate(env, policy, policy_name=checkpoint_name(str(checkpoint)), episodes=episodes, seed=seed,
                              video_dir=out / "videos", videos=2, progress=progress, on_episode=keeper)
    finally:
        env.close()
    write_report(report, out)
    write_page(out)  # its index.html, as `worldpolicy sim` writes one: outcome, episodes and their videos
    return {"task": task, "episodes": episodes, "seed": seed, "strategy": report.strategy,
            "success_rate": report.success_rate, "successes": report.successes}


MODEL_RECORD_KEYS = ("step", "objective_weights", "frames")


def model_record(run: str | Path) -> dict[str, Any]:
    """What the recipe's model keeps of training run `run`'s record (its last checkpoint's trainer_state.json): the
    step, the objectives and the frames it was trained on, the parts loading reads (`policy.trained_frames`: a policy
    warns of frames of another size, a server announces them and warms up with them;
    `policy.recorded_untrained_modes`). Not the rest: the run's config names this machine's folders (the summary says
    how a model made from nothing was made), its history and schedule are the run's. The shipped model's
    trainer_state.json is this record."""
    saved = saved_checkpoints(run)
    if not saved:
        raise ValueError(f"run={str(run)!r} holds no saved checkpoint (checkpoints/step-*); the model's record is "
                         "its last checkpoint's trainer_state.json")
    _, last = saved[-1]
    state = read_trainer_state(last)
    return {"schema": TRAINER_STATE_SCHEMA, **{key: state[key] for key in MODEL_RECORD_KEYS}}


def install_model(model: Path, summary: dict[str, Any], name: str = "panda_reach") -> Path:
    """Copy a trained pipeline into `worldpolicy/models/<name>` with the run's summary beside it, whole or not at all
    (`staged_folder`, which first removes the staging a killed install left, never a running install's: it could
    ship with the package; and settles an aside of a killed replacement, `.NAME.replaced-*`, the earlier model)."""
    target = _models_folder() / name
    with staged_folder(target) as staging:
        shutil.copytree(model, staging, dirs_exist_ok=True)
        write_json_atomic(staging / TRAINING_SUMMARY_FILE, summary)
        write_model_card(staging, target)  # the run's card, now with its summary: the stages and the evaluation
    return target


def _models_folder() -> Path:
    """Where `--install` puts a model: the installed package's `worldpolicy/models`."""
    from .. import models

    return Path(str(resources.files(models)))


def run_recipe(path: str | Path, output_dir: str | Path | None = None, *, install: bool = False,
               progress: bool = True, command: str | None = None) -> tuple[dict[str, Any], Path]:
    """Every stage of a from-scratch recipe; returns its summary (also written to `summary.json`: each stage's wall
    time and results) and the model folder it exported (OUT/model).
    `command`: the command line that ran it, recorded in its training run's record as `worldpolicy train CONFIG`
    records its own (`Trainer`'s; None from Python)."""
    from ..embodiments import default_domain, free_domain_id, register_embodiment
    from .config import read_config
    from .data import window_spec
    from .trainer import Trainer

    path = recipe_path(str(path))
    raw = tomllib.loads(path.read_text())
    scratch = ScratchConfig(**raw.pop("scratch", {}))
    out = Path(output_dir or raw.get("output_dir", "runs/reach_from_scratch")).resolve()
    raw["output_dir"] = str(out / "train")
    if install and not os.access(_models_folder(), os.W_OK):  # found out now, not after an hour of training
        raise PermissionError(f"--install: {str(_models_folder())!r} is not writable (an installed package's folder); "
                              "run without --install and load OUT/model with --checkpoint, or install worldpolicy "
                              "from a checkout you can write to (pip install -e .)")
    output_folder(out, "--out / output_dir", writer="recipe")  # never a checkpoint, dataset or another command's run
    # held for every stage (Trainer.run holds only train/): a second recipe on this --out re-recorded the dataset
    # the first was recording, and replaced its base/, before its training was refused
    with folder_lock(out, "--out / output_dir"):
        summary: dict[str, Any] = {"recipe": recipe_label(path), "scratch": asdict(scratch), "stages": {}}
        started = time.perf_counter()

        def stage(name: str, tick: float, **info: Any) -> None:
            summary["stages"][name] = {"wall_s": round(time.perf_counter() - tick, 1), **info}
            write_json_atomic(out / "summary.json", summary)
            logger.info("stage %s done in %.0f s", name, time.perf_counter() - tick)

        tick = time.perf_counter()
        dataset = out / "dataset"
        stage("dataset", tick, **make_dataset(scratch, dataset))

        raw.setdefault("data", {})["dataset"] = str(dataset)
        raw["checkpoint"] = str(out / "base")
        config = read_config(raw)
        opened = config.checked_dataset()  # read from here on, by the trainer too
        # the cameras/composite/canvas the VAE is trained on; the trainer registers the final spec (with stats) itself
        layout = register_embodiment({"domain": default_domain(config.embodiment),
                                      "domain_id": free_domain_id(include_user=False), **config.embodiment,
                                      "normalization": "none", "stats": None, "chunk_size": config.data.chunk_size},
                                     overwrite=True)
        spec = replace(window_spec(config.data, layout, dataset=opened), stride=1)  # the VAE draws from every window
        if not (out / "base" / MODEL_INDEX_FILE).is_file():
            tick = time.perf_counter()
            vae, vae_info = train_vae(scratch, spec, layout, progress=progress)
            prompts = opened.tasks
            base_pipeline(scratch, vae, prompts, out / "base")
            stage("base_model", tick, **vae_info)

        tick = time.perf_counter()
        trainer = Trainer(config, progress=progress, command=command, dataset=opened)
        records = trainer.run(load_finished=True)  # a rerun of a finished recipe still exports its weights (model/)
        final = out / "model"
        with staged_folder(final) as staging:  # an interrupted export used to leave a half model/ (no model_index.json)
            trainer.export_pipeline(staging)
            write_json_atomic(staging / TRAINER_STATE_FILE, model_record(config.output_dir))
            write_model_card(staging, final, config.output_dir)
        stage("transformer", tick, steps=config.optim.steps, steps_run=len(records),
              last_loss=records[-1].loss if records else None)

        tick = time.perf_counter()
        result = evaluate_checkpoint(final, scratch.task, scratch.eval_episodes, scratch.eval_seed, out / "eval",
                                     progress=progress)
        stage("evaluation", tick, **result)
        summary["train_wall_s"] = round(sum(s["wall_s"] for k, s in summary["stages"].items() if k != "evaluation"), 1)
        summary["total_wall_s"] = round(time.perf_counter() - started, 1)
        if install:
            summary["installed"] = str(install_model(final, summary))
        write_json_atomic(out / "summary.json", summary)
        return summary, final
