"""The training loop: cached latents → flow-matching steps → atomic diffusers-format checkpoints, resumable.

Determinism is by construction: step s draws its batch from a per-epoch permutation and its objectives, timesteps
and noise from a generator seeded by (seed, s). A run restored from a checkpoint (weights, optimizer, LR schedule)
therefore computes exactly the losses the uninterrupted run would have. Several processes (torchrun) train
data-parallel with DDP: each rank takes its slice of the same global batch (same examples, objectives, timesteps and
noise as one process) and gradients are averaged. With `optim.data_parallel = "fsdp"` each rank holds a shard of the
weights, gradients and AdamW state instead of a copy (FSDP2); checkpoints are gathered to rank 0 a file at a time
and written in the same files.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..embodiments import (
    Embodiment,
    default_domain,
    domain_table,
    embodiment_from_spec,
    free_domain_id,
    get_embodiment,
    inline_stats_file,
    register_embodiment,
)
from ..engine.loading import (
    ADAPTER_FILE,
    BASE_FILE,
    TRAINED_FILE,
    WEIGHTS_FILE,
    base_mismatch,
    cast_like_pretrained,
    check_action_head,
    empty_transformer,
    local_transformer_config,
    resolve_device,
    save_components,
    weight_samples,
)
from ..engine.sources import adapter_base, adapter_digest
from ..extras import run_record
from ..fileio import (
    EMBODIMENT_SCHEMA,
    LOCK_FILE,
    METRICS_FILE,
    OPTIMIZER_FILE,
    STOP_PRIORITY,
    STORAGE_ERRNOS,
    TRAIN_LOG_FILE,
    TRAINER_STATE_SCHEMA,
    folder_lock,
    how_stopped,
    interruption,
    read_safetensors,
    read_trainer_state,
    safetensors_files,
    safetensors_index,
    safetensors_plan,
    saved_checkpoints,
    sigint_held,
    staged_folder,
    sweep_stagings,
    write_bytes_atomic,
    write_json_atomic,
    write_safetensors,
)
from ..hub import dataset_source
from ..logcapture import console_may_close, quiet_loading, run_log, timestamp
from ..models import SHIPPED_NAME, checkpoint_files, portable_checkpoint
from ..policy import EMBODIMENT_FILE, checkpoint_embodiment, checkpoint_spec, config_center_crop
from ..policy import TRAINER_STATE_FILE as STATE_FILE
from ..viz.plots import plural
from ..viz.report import source_metric
from .config import (
    RESUMABLE,
    SELECTION_FLAGS,
    DataConfig,
    TrainConfig,
    changed_settings,
    held_out_setting,
    own_key,
    source_name,
    source_prefix,
)
from .data import (
    SHARD_WINDOWS,
    LatentCache,
    MixtureSampler,
    WindowSpec,
    cache_folder,
    cache_may_serve,
    changed_data,
    check_encodable,
    count_windows,
    data_key,
    small_frames_warning,
    trained_frames,
    window_bytes,
    window_ram,
    window_spec,
)
from .flow import ModelExample, TimestepSampler, batch_losses, draw_noise, draw_prefix_rows
from .objectives import OBJECTIVES
from .tracking import Trackers

logger = logging.getLogger(__name__)


def _stop_urgency(caught: list[int]) -> int:
    """What a rank puts into the all-reduce (MAX) that agrees on a stop: 0 when it caught no signal, else the higher
    the more urgent its most urgent one is (`STOP_PRIORITY`)."""
    return max((len(STOP_PRIORITY) - STOP_PRIORITY.index(sig) for sig in caught), default=0)


def _urgency_stop(urgency: int) -> list[int]:
    """The signal an agreed `_stop_urgency` stands for (none for 0), as `sigint_held` lists what it caught."""
    return [STOP_PRIORITY[len(STOP_PRIORITY) - urgency]] if urgency else []


# The module types peft puts LoRA adapters on (`peft.tuners.lora.model`): a target naming another is refused by it
LORA_MODULES = (nn.Linear, nn.Embedding, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.MultiheadAttention)


class FlowMatchingLoss(nn.Module):
    """Mean loss of a batch of examples (one packed pass, `flow.batch_losses`) — one module so DDP sees one forward."""

    def __init__(self, transformer, action_loss_weight: float, num_train_timesteps: int, precision: str = "fp32",
                 recompute: bool = False, every_grad: bool = False):
        super().__init__()
        self.transformer = transformer
        self.action_loss_weight = action_loss_weight
        self.num_train_timesteps = num_train_timesteps
        self.precision = precision
        self.recompute = recompute
        self.every_grad = every_grad

    def losses(self, examples: list[ModelExample], objectives: list[str], sigmas: torch.Tensor,
               generator: torch.Generator) -> list[tuple[torch.Tensor | None, torch.Tensor | None]]:
        """(video, action) loss of each example at the run's precision: training and validation score alike."""
        device_type = next(self.transformer.parameters()).device.type
        # no cast cache: it would hold every layer's bf16 weight copy until the forward ends, checkpointed or not
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.precision == "bf16", cache_enabled=False):
            return batch_losses(self.transformer, examples, objectives, sigmas.tolist(), generator,
                                self.num_train_timesteps, recompute=self.recompute and torch.is_grad_enabled())

    def forward(self, examples: list[ModelExample], objectives: list[str], sigmas: torch.Tensor,
                generator: torch.Generator, scoring: bool = False) -> Any:
        """The batch's mean loss and its parts; `scoring` (validation): each example's (video, action) losses
        (`losses`), through the module's call, so a sharded model gathers its weights for it as for a training step."""
        if scoring:
            return self.losses(examples, objectives, sigmas, generator)
        total = 0.0
        parts: dict[str, list[float]] = {}
        for objective, (vision, action) in zip(objectives, self.losses(examples, objectives, sigmas, generator)):
            loss = 0.0
            if vision is not None:
                loss = loss + vision
                parts.setdefault("loss_video", []).append(float(vision.detach()))
                parts.setdefault(f"loss_video_{objective}", []).append(float(vision.detach()))
            if action is not None:
                loss = loss + self.action_loss_weight * action
                parts.setdefault("loss_action", []).append(float(action.detach()))
                parts.setdefault(f"loss_action_{objective}", []).append(float(action.detach()))
            total = total + loss
        if self.every_grad:
            total = total + self._others_used(total)
        return total / len(examples), {k: float(np.mean(v)) for k, v in parts.items()}

    def _others_used(self, total: torch.Tensor) -> Any:
        """0 × each weight another rank's loss reaches and this one's does not (a slice without noisy frames skips
        the time embedder, say), so it gets a zero gradient here: FSDP reduces the gradients that exist, and the
        ranks must agree on which do, as DDP's `find_unused_parameters` settles it. A weight no rank reaches keeps
        no gradient, as in one process. Only the weights gathered for the whole forward (FSDP's root group, and a
        block group some module of which never runs) can differ: the blocks run alike on every rank."""
        from torch.distributed.tensor import DTensor

        gathered = [p for p in self.transformer.parameters() if p.requires_grad and not isinstance(p, DTensor)]
        reached = _graph_leaves(total)
        mine = torch.tensor([float(id(p) in reached) for p in gathered], device=total.device)  # NCCL: on the GPU
        anywhere = mine.clone()
        torch.distributed.all_reduce(anywhere, op=torch.distributed.ReduceOp.MAX)
        return sum((0.0 * p.sum() for p, here, there in zip(gathered, mine.tolist(), anywhere.tolist())
                    if there and not here), 0.0)


@dataclass
class _PaddedBatches:
    """`policy` sampling every batch as `size` requests, the last repeated and its results dropped: a sharded run's
    ranks then run the model's towers as many times each call (`Trainer._sampled_share`)."""

    policy: Any
    size: int

    @property
    def embodiment(self) -> Embodiment:
        return self.policy.embodiment

    @property
    def chunk_size(self) -> int:
        return self.policy.chunk_size

    def act_batch(self, requests: list[Any], progress: Callable[[int, int], None] | None = None) -> list[Any]:
        padded = requests + requests[-1:] * (self.size - len(requests))
        return self.policy.act_batch(padded, progress=progress)[:len(requests)]


def _graph_leaves(tensor: torch.Tensor) -> set[int]:
    """ids of the leaf tensors `tensor`'s autograd graph reaches: those its backward gives a gradient."""
    seen: set[Any] = set()
    leaves: set[int] = set()
    stack = [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if hasattr(node, "variable"):  # AccumulateGrad
            leaves.add(id(node.variable))
        stack.extend(child for child, _ in node.next_functions)
    return leaves


def _flat_optimizer_state(state: dict[Any, dict[str, Any]], index: Callable[[Any], int]) -> dict[str, Any]:
    """AdamW state keyed as `optimizer.safetensors` holds it, `index.name` (`3.exp_avg`): `index(param)` is the
    weight's place in the trained parameters (`Trainer.params`). Ordered by that place, then name, not as the state
    was set (a step sets it in parameter order, a resume in its file's order, `10.` before `2.`): the files a save
    splits it into (`fileio.safetensors_plan`) are then the same for a resumed run as for the unbroken one."""
    flat = [(index(param), name, value) for param, kept in state.items() for name, value in kept.items()]
    return {f"{place}.{name}": value for place, name, value in sorted(flat, key=lambda entry: entry[:2])}


def _nested_optimizer_state(flat: dict[str, torch.Tensor]) -> dict[int, dict[str, torch.Tensor]]:
    """`optimizer.safetensors` read back (`_flat_optimizer_state`'s inverse): weight index -> {name: tensor}."""
    nested: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        index, name = key.split(".", 1)
        nested.setdefault(int(index), {})[name] = value
    return nested


def _layout(tensors: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The whole sizes of `tensors` (a sharded one's: its global shape) as meta tensors: what a file plan needs."""
    layout = {}
    for name, value in tensors.items():
        value = torch.as_tensor(value)
        layout[name] = torch.empty(value.shape, dtype=value.dtype, device="meta")
    return layout


def _transformer_weights(folder: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's transformer weights, every safetensors shard of its `transformer/` folder."""
    from safetensors.torch import load_file

    weights: dict[str, torch.Tensor] = {}
    for shard in sorted((folder / "transformer").glob("*.safetensors")):
        weights.update(load_file(str(shard)))
    return weights


@dataclass
class StepRecord:
    step: int
    loss: float
    lr: float
    parts: dict[str, float]
    seconds: float


def _distributed(device: str | None) -> tuple[int, int]:
    """This process's rank and the number of processes (torchrun's `WORLD_SIZE`), joining their process group: NCCL
    where the run trains on CUDA, else gloo (`device = "cpu"` on a GPU machine: NCCL takes CUDA tensors only)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if resolve_device(device).type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend)
    rank = torch.distributed.get_rank() if world > 1 else 0
    return rank, world


def _refuse_without_fsdp2() -> None:
    """`optim.data_parallel = "fsdp"` needs FSDP2, which torch 2.4 and 2.5 (accepted by the package) lack: said before
    the weights load and the latent cache is encoded, not at sharding, after them."""
    try:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard  # noqa: F401
    except ImportError:
        raise ValueError(f"optim.data_parallel='fsdp' needs FSDP2 (torch.distributed.fsdp.fully_shard, torch 2.6 and "
                         f"later); this torch is {torch.__version__}: upgrade it, or use optim.data_parallel = "
                         "\"ddp\"") from None


def _barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()


def _trim_metrics(path: Path, step: int) -> None:
    """Drop the lines a killed run wrote past its last checkpoint. A kill mid-write tears only the last line: that
    one is dropped with a warning; any other unreadable line is an error naming it."""
    lines = path.read_text().splitlines()
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    kept = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            entry_step = int(entry["step"])
        except (json.JSONDecodeError, TypeError, KeyError, ValueError) as exc:
            if i == last:
                logger.warning("%s: dropped its torn last line %r", path, line[:80])
                continue
            raise ValueError(f"{path}:{i + 1} is not a metrics line ({type(exc).__name__}: {exc}); fix or delete that "
                             "line to resume") from None
        if entry_step <= step:
            kept.append(line)
    write_bytes_atomic(path, "".join(line + "\n" for line in kept))  # a kill now leaves the old file, not half of it


def _storage_errno(exc: BaseException) -> int | None:
    """The errno of a write the file system refused (a full disk, a quota, a read-only folder), else None. Safetensors
    reports it as a `SafetensorError` whose message ends "(os error N)" rather than an `OSError`."""
    from safetensors import SafetensorError

    code = exc.errno if isinstance(exc, OSError) else None
    if code is None and isinstance(exc, SafetensorError):
        found = re.search(r"\(os error (\d+)\)", str(exc))
        code = int(found.group(1)) if found else None
    return code if code in STORAGE_ERRNOS else None


def _clock() -> float:
    """Seconds on a clock that only goes forward (`time.monotonic`), which `checkpoint_every_minutes` is counted on:
    here, so a test runs the clock as it likes."""
    return time.monotonic()


def _duration(seconds: float) -> str:
    """`1:05:09`, `2d 3:00:00`: the time a progress line says is left."""
    days, rest = divmod(round(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    clock = f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{days}d {clock}" if days else clock


def _progress_line(done: int, total: int, session_steps: int, session_s: float, loss: float) -> str:
    """A progress line for a log (stderr where `logcapture.progress_as_lines`, and the run's train.log; tqdm's 30 s
    lines would say no loss, no wall clock and no end time over days): the wall time it was written (a log read days
    later), the step, the loss and, from this session's pace (validations and evaluations included), the time left
    and when the run should end."""
    now = time.time()
    line = f"{timestamp(now)} training: step {done}/{total} ({100 * done / total:.0f}%), loss {loss:.4f}"
    if session_steps and done < total:
        pace = session_s / session_steps
        end = time.strftime("%Y-%m-%d %H:%M", time.localtime(now + pace * (total - done)))
        line += f", {pace:.3g} s/step, {_duration(pace * (total - done))} left (ends ~{end})"
    return line


# A latent cache taking more than this share of its folder's free space, or windows whose actions take this share of
# the RAM, are warned about (`Trainer._check_cache_fits`): the training holds the model, its optimizer state and
# batches beside them
CACHE_CLOSE = 0.8


@dataclass(frozen=True)
class CacheSource:
    """One dataset's latent caches as `Trainer._check_cache_fits` judges them: its training windows (`spec`, `windows`
    of them: `count_windows`), its held-out ones (`held_out`; None: none held out), the frames both are cut from
    (`trained_frames`), and whether each is built here (no finished cache serves it)."""

    spec: WindowSpec
    windows: int
    held_out: WindowSpec | None
    dataset: Any
    frames: dict[str, Any]
    building: bool
    held_out_building: bool


class Trainer:
    """Runs one `TrainConfig`. `run()` resumes from the newest checkpoint in `output_dir` when there is one."""

    def __init__(self, config: TrainConfig, *, progress: bool = True,
                 on_step: Callable[[StepRecord], None] | None = None, command: str | None = None, dataset: Any = None):
        # `data.dataset` opened once, every read of its metadata from here on (seconds, for a large dataset); `dataset`:
        # opened already by the caller's check of `config` (`TrainConfig.checked_datasets`: a list, one a mixture
        # source, `[[data.mixture]]`); `self.dataset` is the first, the one of a run on one dataset
        self.datasets = config.checked_datasets(dataset if isinstance(dataset, list) or dataset is None
                                                else [dataset])
        self.dataset = self.datasets[0]
        self.mixture: MixtureSampler | None = None  # which window each batch position trains on, with a mixture
        self._val_sources: list[int] | None = None  # a mixture's: the source of each held-out window
        # what the held-out action error samples (`_held_out_actions`), by mixture source (None: the run's one dataset)
        self._val_actions: dict[int | None, tuple[Any, dict[int, list[int]]]] = {}
        self.config = config
        # the `worldpolicy train` line that runs it, as typed, where, and the software it runs on (`extras.run_record`),
        # read once as the session starts: a checkout edited or pulled while it trains changes the files, not the code
        # running, which every checkpoint it saves records
        self.run_record = run_record(command)
        self._embodiment_defaulted = config.embodiment is None
        if config.embodiment is None:  # stored resolved: config.json names what was trained (older runs: "droid")
            # the starting checkpoint's spec, else the registered one it was trained for, else droid
            config.embodiment = self._starting_spec() or checkpoint_embodiment(config.checkpoint_source, None)
        self.progress = progress
        self.on_step = on_step
        self.rank, self.world = _distributed(config.device)
        self.out = Path(config.output_dir)
        # a mixture's: one per source
        self._resumed_data: str | list[str] | None = None
        self._resumed_data_key: str | list[str] | None = None
        # the newest checkpoint's trainer_state.json where the run resumes, read once (`_previous_run`): its settings
        # are compared, then its schedule and step restored (`_restore`) from the same record
        self._resumed_state: dict[str, Any] | None = None
        self._windows: tuple[WindowSpec, Embodiment] | None = None
        self._live_said: set[tuple[Any, ...]] = set()  # `_live_policy`'s warnings said so far
        self._resuming = False  # set by `_run`: a resume's weights come from its checkpoint, not the starting one
        self.trackers = Trackers()  # `[tracking]`'s, started by `_run` once the folder's run is checked
        self.log_file: Any = None  # the run's train.log while `run` holds the folder (rank 0): `logcapture.run_log`
        if config.optim.batch_size % self.world:
            raise ValueError(f"optim.batch_size={config.optim.batch_size} must divide by the {self.world} processes")
        self.sharded = config.optim.data_parallel == "fsdp" and self.world > 1
        if self.sharded:
            _refuse_without_fsdp2()
        if config.optim.data_parallel == "fsdp" and self.world == 1:  # one shard is the whole model: nothing to do
            logger.warning("optim.data_parallel='fsdp' with one process shards nothing: it holds the whole model, as "
                           "ddp does; launch with torchrun --nproc_per_node N to hold 1/N of it in each")

    # -- set-up ---------------------------------------------------------------------------------------------------

    def _data(self) -> tuple[WindowSpec, Embodiment]:
        """The training windows and the embodiment layout they are cut for, checked against the dataset and the
        checkpoint's action head (its `transformer/config.json`: columns, domain slot) before any weights load. What
        `[data]` leaves unset and the dataset settles is written into the config: config.json and the checkpoints
        name what was trained, and a resume compares it."""
        if self._windows is None:
            layout = self._embodiment(stats=None)
            transformer_config = local_transformer_config(self.config.checkpoint_source)
            if transformer_config is not None:  # an adapter's (its base's) is read once it loads (`_check_model_fits`)
                check_action_head(transformer_config, self.config.checkpoint_source, layout)
            self._check_data_fits(layout)
            if self.config.data.mixture:
                self._windows = self._mixture_data(layout), layout
                return self._windows
            held_out = tuple(sorted(int(i) for i in self.config.validation.episodes))  # checked with the config
            source = self._source_windows(layout, self.config.data, self.dataset, held_out, None, self._resumed_data)
            self.frames, self._checked = source.frames, source.building
            self._val_spec, self._val_checked = source.held_out, source.held_out_building
            self._check_cache_fits(layout, [source])
            self.data_key = data_key(source.spec, layout)
            self._windows = source.spec, layout
        return self._windows

    def _mixture_data(self, layout: Embodiment) -> WindowSpec:
        """`[[data.mixture]]`'s windows, as `_data` cuts one dataset's, source by source (`_source_windows`): each
        judged against the embodiment as `dataset check --embodiment` judges a dataset (`data.fit.embodiment_fit`: its
        rate, action columns, units and cameras; every problem said, naming the table), its unset settings resolved
        into its table (config.json and the checkpoints name what was read), checked before any weights load. The
        first source's spec stands for the run where one is read (`_windows`); each source's are
        `self._mixture_specs`."""
        from ..data.actions import default_action_keys
        from ..data.fit import embodiment_fit

        tables, settings = self.config.data.mixture, self.config.data.sources()
        resumed = self._resumed_data if isinstance(self._resumed_data, list) else [None] * len(tables)
        self._val_spec, self._val_checked, self._checked = None, False, True
        sources = []
        for i, (table, data, dataset) in enumerate(zip(tables, settings, self.datasets)):
            fit = embodiment_fit(dataset, layout, default_action_keys(dataset, data.action_keys), data.state_keys,
                                 data.video_keys, source=data.source_embodiment, conversion=data.action_conversion,
                                 robot=data.robot, name=table.dataset, prefix=source_prefix(i))
            if fit.problems:
                raise ValueError(f"{source_name(i, table.dataset)} does not fit embodiment {layout.key!r} "
                                 "(`worldpolicy dataset check --embodiment` says the same): " + "; ".join(fit.problems))
            held_out = tuple(sorted(int(e) for e in table.validation_episodes))  # checked with the config
            sources.append(self._source_windows(layout, data, dataset, held_out, i, resumed[i]))
        self._check_cache_fits(layout, sources)  # what the run holds and writes: every source's caches together
        # each source's windows and held-out windows (None: none), and whether each was checked here
        self._mixture_specs = [(source.spec, source.building) for source in sources]
        self._mixture_val = [(source.held_out, source.held_out_building) for source in sources]
        # what inference compares its frames with: the first source's, and each source's (`_mixture_record`)
        self.mixture_frames = [source.frames for source in sources]
        self.frames = self.mixture_frames[0]
        self.data_key = [data_key(source.spec, layout) for source in sources]
        shares = np.asarray([t.weight for t in tables]) / sum(t.weight for t in tables)
        logger.info("data.mixture: %s", "; ".join(f"{t.dataset} ({s.windows} windows, {100 * p:.1f} % of the batch "
                                                  "positions)" for t, s, p in zip(tables, sources, shares)))
        return sources[0].spec

    def _source_windows(self, layout: Embodiment, data: DataConfig, dataset: Any, held_out: tuple[int, ...],
                        source: int | None, resumed: str | None) -> CacheSource:
        """One dataset's windows, as `_data` cuts the run's and `_mixture_data` each mixture source's (`source`: its
        table's index; None: the run's one dataset): `data`'s settings (a table's over `[data]`'s) read against the
        dataset (`window_spec`), what they leave unset and the dataset settles written into `[data]` or the table; its
        frames (`trained_frames`, warned of where small: before the weights load, a run may stop and record larger
        ones); its data checked where no finished cache serves it (`check_encodable`; `resumed`: the fingerprint of a
        resumed run's cache), else the run may never read it (a resume after its videos were removed to save room),
        and the encoding then reads no episode's actions and states again (`iter_windows`: `checked`); its held-out
        windows (`held_out` episodes: cut as the training ones, cached beside them under their own key; only the
        `validation.windows` a validation scores are encoded, never augmented, but centre-cropped as inference crops
        the frames of a run that is) checked (`_check_held_out`); a batch larger than its windows warned of."""
        table = self.config.data if source is None else self.config.data.mixture[source]
        where = "" if source is None else source_name(source, table.dataset)
        prefix = source_prefix(source)  # what names its settings in a refusal
        spec = window_spec(data, layout, held_out, dataset, prefix)
        val_spec = replace(spec, episodes=held_out, windows=self.config.validation.windows, augment=None,
                           center_crop=config_center_crop(self.config.to_dict())) if held_out else None
        if self.config.augment.enabled:  # each window encoded `augment.copies` times, one draw each (`window_views`)
            spec = replace(spec, augment=self.config.augment)
        table.source_embodiment, table.action_conversion = spec.source_embodiment, spec.action_conversion
        table.action_keys = list(spec.action_keys)  # the default's LeRobot `action` (`window_spec`)
        frames = trained_frames(spec, layout, dataset)
        if self.rank == 0 and (small := small_frames_warning(frames, layout)):
            logger.warning("%s%s", f"{where}: " if where else "", small)
        checked = not cache_may_serve(self._cache_dir, spec, layout, resumed)
        if checked:
            check_encodable(spec, layout, dataset, prefix)
        val_checked = val_spec is not None and self._check_held_out(val_spec, layout, dataset, source)
        windows = count_windows(spec, dataset)
        self._warn_batch_over_windows(spec, windows, data, dataset, source)
        return CacheSource(spec, windows, val_spec, dataset, frames, checked, val_checked)

    def _mixture_record(self) -> list[dict[str, Any]]:
        """Each mixture source as a checkpoint records it (trainer_state.json's `mixture`, which the model card and the
        train report show): its dataset (`hub.dataset_source`), weight, share of the batch positions, the episodes
        and windows trained on, the window draws taken so far, and its frames (`trained_frames`: inference judges
        frames against every source's, `policy.mixture_frames`)."""
        tables = self.config.data.mixture
        total = sum(t.weight for t in tables)
        drawn = self.mixture.drawn if self.mixture is not None else [0] * len(tables)
        return [{"dataset": dataset_source(dataset.root), "weight": table.weight, "share": table.weight / total,
                 "episodes": len(spec.episodes) if spec.episodes is not None else dataset.num_episodes,
                 "dataset_episodes": dataset.num_episodes, "windows": windows, "drawn": int(count),
                 "held_out_episodes": sorted(int(e) for e in table.validation_episodes), "held_out_windows": held,
                 "frames": frames}
                for table, dataset, (spec, _), windows, count, held, frames in zip(
                    tables, self.datasets, self._mixture_specs, self.mixture_windows, drawn, self.mixture_val_windows,
                    self.mixture_frames)]

    def _check_held_out(self, spec: WindowSpec, layout: Embodiment, dataset: Any, source: int | None) -> bool:
        """The held-out episodes' windows (`validation.episodes`, or mixture source `source`'s table's
        `validation_episodes`), checked as the training ones are before anything loads, and the hold-out said: unlike
        `data.exclude_episodes`, they are taken out of training by themselves. With `validation.action_chunks`, the
        chunks their held-out action error samples are read (`_val_actions`): on rank 0, and on every rank of a
        sharded run (each samples its share). Whether their data was checked here (else a finished cache serves
        them; on rank 0 alone)."""
        validation, sampled = self.config.validation, self._samples_chunks
        if self.rank != 0:
            if sampled and self.sharded:
                self._val_actions[source] = self._held_out_actions(spec, layout, dataset)
            return False
        prefix = source_prefix(source)
        setting = held_out_setting(prefix)
        label = setting if source is None else \
            f"{source_name(source, self.config.data.mixture[source].dataset)}: validation_episodes"
        windows = count_windows(replace(spec, windows=None), dataset)
        if not windows:
            raise ValueError(f"{label}={list(spec.episodes)}: these episodes yield no window of data.chunk_size "
                             f"{spec.chunk_size}: hold out longer episodes")
        checked = sampled or not cache_may_serve(self._cache_dir, spec, layout)  # sampling reads the frames themselves
        if checked:
            check_encodable(spec, layout, dataset, prefix)
        if sampled:
            self._val_actions[source] = self._held_out_actions(spec, layout, dataset)
        chunks = sum(map(len, self._val_actions[source][1].values())) if sampled else 0
        every = validation.every
        logger.info("%s %s held out of training: %d of their %d windows scored%s %s", label, list(spec.episodes),
                    min(windows, validation.windows), windows, f" and {chunks} chunks sampled" if chunks else "",
                    f"every {every} steps" if every else "never (validation.every = 0)")
        if not every:
            logger.warning("%s=%s are held out of training but never scored (validation.every = 0): set "
                           "validation.every to log their loss, or empty %s to train on them", setting,
                           list(spec.episodes), setting)
        return checked

    @property
    def _samples_chunks(self) -> bool:
        """Whether validations sample chunks on the held-out episodes (`val/action_mae`)."""
        return bool(self.config.validation.every and self.config.validation.action_chunks)

    def _held_out_actions(self, spec: WindowSpec, layout: Embodiment, dataset: Any) -> tuple[Any, dict[int, list[int]]]:
        """What `val/action_mae` compares (`data.openloop.OpenLoopData`) and where: the held-out episodes read as
        training reads them (`[data]`'s cameras, state and action keys, source layout, conversion and robot, or a
        mixture source's: `spec`'s), and `validation.action_chunks` start frames spread evenly over them
        (`spread_starts`, as `dataset eval --chunks` would pick them). `dataset`: `spec`'s, opened."""
        from ..data.actions import recorded_actions
        from ..data.openloop import OpenLoopData, spread_starts
        from .data import camera_sources

        state_keys = list(spec.state_keys) if layout.state_history else []
        reader = recorded_actions(dataset, layout, spec.action_keys, spec.state_keys, source=spec.source_embodiment,
                                  conversion=spec.action_conversion, robot=spec.robot)
        data = OpenLoopData(dataset, camera_sources(dataset.video_keys, spec.video_keys, layout), state_keys, reader)
        lengths = {i: int(dataset.episode_lengths[i]) for i in spec.episodes}
        return data, spread_starts(lengths, spec.chunk_size, self.config.validation.action_chunks)

    @property
    def _cache_dir(self) -> str:
        return self.config.data.cache_dir or str(self.out / "cache")

    def _warn_batch_over_windows(self, spec: WindowSpec, windows: int, data: DataConfig, dataset: Any,
                                 source: int | None) -> None:
        """A batch larger than the dataset trains (its positions run on into the next epochs' orders), but each step
        then holds some windows two or more times: said before anything loads, as a typo in `batch_size` or a
        dataset smaller than meant usually is. With an episode selection, the selection is what is small: said with
        how much of the dataset it keeps, and how many windows all of it holds. `windows`: `count_windows(spec)`;
        `data`: the settings `spec` was read by, `dataset` its dataset opened (`_source_windows`'). A mixture's source
        (`source`, its table's index; None: the run's one dataset) is judged by the positions a step draws from it on
        average (the batch times its share), and said naming its table's settings."""
        size = self.config.optim.batch_size
        settings = source_prefix(source)
        if source is None:
            positions, most, held = size, windows, self.config.validation.episodes
            head, weight = f"optim.batch_size={size} is more than the", ""
        else:
            table = self.config.data.mixture[source]
            share = table.weight / sum(t.weight for t in self.config.data.mixture)
            positions, most, held = size * share, int(windows / share), table.validation_episodes
            head = (f"optim.batch_size={size} draws about {positions:.3g} positions a step from {source_name(source)} "
                    f"(weight {table.weight:g}: {100 * share:.1f} % of them), more than the")
            weight = f" (or {settings}weight)"
        if positions <= windows or self.rank != 0:
            return
        name = f"{settings}dataset" if source is None else f"the dataset of {source_name(source)}"
        shape = f"chunk_size {spec.chunk_size}, stride {spec.stride}"
        if spec.episodes is None:
            logger.warning("%s %d training windows of %s %s (%s): every step holds some windows more than once (with "
                           "other noise and σ); lower optim.batch_size to %d or less%s, or record more episodes", head,
                           windows, name, spec.dataset, shape, most, weight)
            return
        lengths = dataset.episode_lengths
        chosen = " and ".join(f"{setting}={value}" for setting, value in
                              ((f"{settings}episodes", data.episodes),
                               (f"{settings}exclude_episodes", data.exclude_episodes),
                               (f"{settings}success", repr(data.success) if data.success != "any" else None),
                               (held_out_setting(settings), held))
                              if value)
        whole = count_windows(replace(spec, episodes=None), dataset)
        if whole >= positions:
            more = f"select more episodes (all {len(lengths)} hold {whole} windows)"
        else:
            more = f"record more episodes (all {len(lengths)} hold only {whole} windows)"
        logger.warning("%s %d training windows (%s) of the episodes selected: %s keeps %d of the %d episodes of %s %s "
                       "(%d of its %d frames): every step holds some windows more than once (with other noise and σ); "
                       "lower optim.batch_size to %d or less%s, or %s", head, windows, shape, chosen,
                       len(spec.episodes), len(lengths), name, spec.dataset,
                       int(sum(lengths[i] for i in spec.episodes)), int(sum(lengths)), most, weight, more)

    def _check_cache_fits(self, layout: Embodiment, sources: list[CacheSource]) -> None:
        """The latent cache's build writes its latents to disk once (the shards it keeps as it encodes are the
        finished cache), and a run holds every window's actions and flags in RAM (the latents are read from the
        shards as batches need them: `LatentCache.load`): a cache larger than the free space of its folder, or windows
        whose actions pass the RAM, are refused before any weights load, else the run stops hours into encoding (DROID
        at data.stride 1 is 27 million windows). Estimated from the checkpoint's VAE config (a hub id's is not here yet:
        not judged) and the composed frames on the tier's canvas (`window_bytes`, `window_ram`); said when close (over
        CACHE_CLOSE of it). `sources`: the run's dataset, or a mixture's sources, judged as a whole (what the run
        holds and writes: every source's training and held-out windows), the message naming each source's part."""
        from ..engine.loading import device_memory, gib, local_vae_config

        vae_config = local_vae_config(self.config.checkpoint_source)
        if vae_config is None:
            return
        parts = []  # each source's: bytes a training window, held-out windows, bytes of its caches, written here
        shard = 0
        for source in sources:
            each = window_bytes(source.spec, layout, source.frames, vae_config)
            held_out = count_windows(source.held_out, source.dataset) if source.held_out is not None else 0
            # the held-out windows are never augmented: one encoding each
            each_held = window_bytes(source.held_out, layout, source.frames, vae_config) if held_out else 0
            # else a finished cache of this data is read: no room taken
            written = ((each * source.windows if source.building else 0)
                       + (each_held * held_out if source.held_out_building else 0))
            parts.append((each, held_out, each * source.windows + each_held * held_out, written))
            # a build also holds the latents of a shard not yet written, twice while safetensors writes it (stacked
            # into one tensor); a mixture's sources are built one after another
            if source.building:
                shard = max(shard, 2 * min(SHARD_WINDOWS, source.windows + held_out) * each)
        spec = sources[0].spec  # chunk_size, stride and augment: the run's
        windows = sum(source.windows for source in sources)
        held_out = sum(part[1] for part in parts)
        size = sum(part[2] for part in parts)
        processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # each process of a run on this machine holds its own
        # every window's actions, by each process
        ram = window_ram(spec, layout) * (windows + held_out) * processes + shard
        cache_dir = Path(self._cache_dir)
        # an interrupted build's shards are written already (any build's of this format: which is this one's is known
        # once the VAE loads, so a folder of other builds' shards is judged leniently; an older format's is never read)
        partials = cache_folder(cache_dir, "*", partial=True).name
        kept = sum(f.stat().st_size for f in cache_dir.glob(f"{partials}/*") if f.is_file())
        disk = max(sum(part[3] for part in parts) - kept, 0)
        folder = next(p for p in (cache_dir, *cache_dir.parents) if p.exists())
        free = shutil.disk_usage(folder).free
        total, available = device_memory(torch.device("cpu"))
        augmented = f", augment.copies {spec.augment.copies}" if spec.augment is not None else ""
        also = f" and {held_out} held-out" if held_out else ""
        counted = (f"{windows + held_out} windows ({windows} training{also}, data.chunk_size {spec.chunk_size}, "
                   f"data.stride {spec.stride}{augmented})")
        copy = ", each copy" if augmented else ""
        stride = "a larger data.stride (a window starts every stride frames: stride 4 keeps a quarter of them)"
        fewer_copies = ", or fewer augment.copies" if augmented else ""
        tables = self.config.data.mixture
        if tables:
            weights = sum(t.weight for t in tables)
            each_source = "; ".join(
                f"{source_name(i, t.dataset)}: {source.windows + held} windows"
                f"{f' ({held} held-out)' if held else ''}, {gib(part)} ({100 * part / size:.0f} % of the whole, "
                f"{each / 2**20:.2f} MiB a window), drawn for {100 * t.weight / weights:.1f} % of the batch positions"
                for i, (t, source, (each, held, part, _)) in enumerate(zip(tables, sources, parts)))
            largest = max(range(len(tables)), key=lambda i: parts[i][2])
            what = (f"the latent caches of the {len(tables)} data.mixture sources together, {counted}, take about "
                    f"{gib(size)} (their latents at resolution tier {layout.resolution_tier}{copy} and their actions; "
                    f"by source: {each_source})")
            fewer = (f"train on fewer windows: {stride}, fewer episodes of a source (data.mixture[i].episodes, "
                     f"exclude_episodes or success; {source_name(largest, tables[largest].dataset)} holds the "
                     f"most), or fewer sources{fewer_copies}")
            whose = "their"
        else:
            what = (f"the latent cache of {counted} takes about {gib(size)} ({parts[0][0] / 2**20:.2f} MiB a window: "
                    f"its latents at resolution tier {layout.resolution_tier}{copy} and its actions)")
            fewer = f"train on fewer windows: {stride} or fewer data.episodes{fewer_copies}"
            whose = "its"
        by = f" by each of its {processes} processes" if processes > 1 else ""
        held = (f"{whose} windows' actions and flags are held in RAM{by} (about {window_ram(spec, layout)} bytes a "
                f"window; {whose} latents are read from disk as batches need them)")
        if total is not None and ram > total:
            raise ValueError(f"{what}; {held}: {gib(ram)}, more than this machine's {gib(total)} of RAM (the system "
                             f"would kill the run, hours into encoding); {fewer}, or train on a machine with more RAM")
        if disk > free:
            raise ValueError(f"{what}, written to data.cache_dir {str(cache_dir)!r} as it is built: {gib(disk)} more, "
                             f"and {str(folder)!r} has {gib(free)} free; {fewer}, or point data.cache_dir at a disk "
                             "with the room")
        if self.rank != 0:
            return
        if total is not None and (ram > CACHE_CLOSE * total or (available is not None and ram > available)):
            logger.warning("%s; %s: %s of this machine's %s of RAM (%s available now): other programs or the "
                           "training itself may not fit beside it; %s", what, held, gib(ram), gib(total),
                           gib(available) if available is not None else "unknown", fewer)
        if disk > CACHE_CLOSE * free:
            logger.warning("%s, written to data.cache_dir %r as it is built: %s more, of the %s free in %r; %s, "
                           "or point data.cache_dir at a disk with more room", what, str(cache_dir), gib(disk),
                           gib(free), str(folder), fewer)

    def _load(self) -> None:
        from ..engine.loading import check_loadable, load_components

        cfg = self.config
        spec, layout = self._data()
        self.device = resolve_device(cfg.device)
        if self.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(self.device)  # NCCL's, and FSDP's shards' (its current device), not cuda:0
        # a sharded run: only rank 0 reads the starting weights, into its host memory (not its GPU), and only for a
        # new run (a resume takes the checkpoint's); every rank holds the structure alone until `_shard`
        reads = not self.sharded or (self.rank == 0 and not self._resuming)
        # the weights the run started from, by content (`models.checkpoint_files`): `checkpoint` names a folder or
        # `shipped`, which a save or a reinstall may change; each checkpoint's trainer_state.json records it
        self.base_checkpoint = checkpoint_files(cfg.checkpoint_source)
        where = self.device if not self.sharded else torch.device("cpu")  # rank 0's host memory, sharded
        if reads:  # it loads in fp32, whatever optim.precision: a laptop's RAM is refused here, not by the system
            fix = ("Fine-tune it on a machine with the memory (training holds the weights in float32, their "
                   "gradients and AdamW state besides: docs/training.md)")
            check_loadable(cfg.checkpoint_source, where, torch.float32, fix=fix)
        with quiet_loading(not self.progress):  # `--no-progress`: diffusers' loading bar too
            parts = load_components(cfg.checkpoint_source, where, torch.float32, checked=reads,
                                    transformer_weights=reads)  # checked above
        self._starting_weights: dict[str, torch.Tensor] = {}
        if self.sharded:
            parts["vae"].to(self.device)
            if reads:
                self._starting_weights = parts["transformer"].state_dict()
                parts["transformer"] = empty_transformer(parts["transformer"].config)
        self.transformer, self.vae = parts["transformer"], parts["vae"]
        self.tokenizer, self.scheduler = parts["tokenizer"], parts["scheduler"]
        self.pipeline_flags = {k: parts[k] for k in ("use_native_flow_schedule", "default_use_system_prompt")}
        self.vae.requires_grad_(False)
        self._check_model_fits(layout)  # before the latent cache: encoding it can take long

        cache_dir = self._cache_dir
        use_system_prompt = self.pipeline_flags["default_use_system_prompt"]

        def build_or_load(windows: WindowSpec, progress: bool, expect: str | None, what: str = "windows",
                          checked: bool = False, dataset: Any = None, source: int | None = None) -> LatentCache:
            try:
                return LatentCache.build_or_load(windows, layout, self.vae, self.tokenizer, cache_dir,
                                                 progress=progress, use_system_prompt=use_system_prompt, expect=expect,
                                                 what=what, dataset=self.dataset if dataset is None else dataset,
                                                 checked=checked, prefix=source_prefix(source))
            except Exception as exc:  # a full disk hours into the encoding: say what is kept, not a traceback
                if (code := _storage_errno(exc)) is None:
                    raise
                full = code in (errno.ENOSPC, errno.EDQUOT)
                fix = ("there is room (or data.cache_dir names a disk with room)" if full
                       else "it is writable (or data.cache_dir names a folder that is)")
                raise OSError(code, f"writing the latent cache in {cache_dir!r} failed ({os.strerror(code)}): the "
                                    f"windows encoded so far are kept there, and the same command continues from them "
                                    f"once {fix}") from exc

        if self.config.data.mixture:
            cache, held_out = self._mixture_cache(build_or_load)
        else:
            held_out = None
            if self.rank == 0:
                cache = build_or_load(spec, self.progress, self._resumed_data, checked=self._checked)
                if self._val_spec is not None:  # scored on rank 0 (`_validate`); encoded before the others wait
                    # the data itself: checked just above; its bar named, as it follows the training windows' bar
                    held_out = build_or_load(self._val_spec, self.progress, None, "held-out windows",
                                             self._val_checked)
            _barrier(self.world)
            if self.rank != 0:
                cache = build_or_load(spec, False, self._resumed_data)
                if self._val_spec is not None and self.sharded:  # every rank scores a sharded model's share
                    held_out = build_or_load(self._val_spec, False, None, "held-out windows")
            self.data_fingerprint = cache.meta.get("fingerprint")
        trained = self._trained_spec()
        # a new embodiment's stats are the training windows' alone: nothing of the held-out episodes reaches the model
        self.embodiment = self._embodiment(stats=cache.action_stats(layout)) if isinstance(trained, dict) else layout
        self.examples = cache.model_examples(self.embodiment)
        self.captions = cache.captions
        # each window's augmented copies, one drawn per step (`_augmented`); None: one encoding each
        self.latent_copies = cache.latents if cache.latent_copies > 1 else None
        self.val_examples = held_out.model_examples(self.embodiment) if held_out is not None else []

    def _mixture_cache(self, build_or_load: Callable[..., LatentCache]) -> tuple[LatentCache, LatentCache | None]:
        """Each mixture source's latent cache (its own fingerprint, as a run on that dataset alone would cache it:
        encoded by rank 0, read by the others), joined in order (`LatentCache.joined`: the mixture's normalisation
        stats too), and the sampler that picks from them by weight (`MixtureSampler`); and the sources' held-out
        windows joined (None: none held out), on rank 0 (every rank of a sharded run), as `_load` reads one
        dataset's."""
        resumed = self._resumed_data if isinstance(self._resumed_data, list) else [None] * len(self._mixture_specs)

        def every_source(progress: bool, first: bool) -> tuple[list[LatentCache], list[LatentCache | None]]:
            caches, held = [], []
            for i, ((spec, checked), (val_spec, val_checked), dataset) in enumerate(
                    zip(self._mixture_specs, self._mixture_val, self.datasets)):
                caches.append(build_or_load(spec, progress, resumed[i], f"windows of {source_name(i)}",
                                            checked and first, dataset, i))
                scores = val_spec is not None and (self.rank == 0 or self.sharded)
                held.append(build_or_load(val_spec, progress, None, f"held-out windows of {source_name(i)}",
                                          val_checked and first, dataset) if scores else None)
            return caches, held

        caches, held = every_source(self.progress, True) if self.rank == 0 else ([], [])
        _barrier(self.world)
        if self.rank != 0:
            caches, held = every_source(False, False)
        self.data_fingerprint = [cache.meta.get("fingerprint") for cache in caches]
        self.mixture_windows = [len(cache) for cache in caches]
        self.mixture_val_windows = [len(cache) if cache is not None else 0 for cache in held]
        self._val_sources = np.repeat(np.arange(len(held)), self.mixture_val_windows).tolist()
        self.mixture = MixtureSampler([t.weight for t in self.config.data.mixture], self.mixture_windows,
                                      self.config.seed, self.config.optim.batch_size)
        scored = [cache for cache in held if cache is not None]
        return LatentCache.joined(caches), LatentCache.joined(scored) if scored else None

    def _check_model_fits(self, emb: Embodiment) -> None:
        """What needs the loaded transformer: the LoRA target modules (its config.json names none), and the action
        head for a hub id (a local checkpoint's config.json was read before the weights loaded, in `_data`)."""
        check_action_head(self.transformer.config, self.config.checkpoint_source, emb)
        if self.config.finetune.mode == "lora":
            modules = dict(self.transformer.named_modules())
            linear = ", ".join(sorted({name.rsplit(".", 1)[-1] for name, module in modules.items()
                                       if isinstance(module, torch.nn.Linear)}))
            # peft's matching: a target is a module's name or the end of its dotted path ("self_attn.add_q_proj")
            matches = {t: [m for name, m in modules.items() if name == t or name.endswith(f".{t}")]
                       for t in self.config.finetune.lora_targets}
            unknown = [t for t, found in matches.items() if not found]
            if unknown:
                raise ValueError(f"finetune.lora_targets {unknown} name no module of this transformer; its linear "
                                 f"layers: {linear}")
            for target, found in matches.items():  # peft refuses them only once the latent cache is encoded
                kinds = sorted({type(m).__name__ for m in found if not isinstance(m, LORA_MODULES)})
                if kinds:
                    raise ValueError(f"finetune.lora_targets: {target!r} names {', '.join(kinds)} modules, which LoRA "
                                     f"cannot adapt (linear, embedding and convolution layers); its linear layers: "
                                     f"{linear}")

    def _trained_spec(self) -> str | dict[str, Any]:
        """What the run trains: a registered name, or a spec. Unset (or the starting checkpoint's own name), it is the
        checkpoint's `embodiment.json`, stats included, as `predict`/`serve`/`sim` use it; a table re-describing that
        embodiment without stats keeps its stats and slot: the action space the checkpoint learned."""
        spec = self.config.embodiment
        own = self._starting_spec()
        if own is None:
            return spec
        if isinstance(spec, str) and spec.lower() == own_key(own).lower():
            return own
        if isinstance(spec, dict) and spec.get("stats") is None and spec.get("name") == own.get("name"):
            kept = {k: own[k] for k in ("normalization", "stats", "domain", "domain_id") if own.get(k) is not None}
            return {**spec, **kept}
        return spec

    def _starting_spec(self) -> dict[str, Any] | None:
        """The starting checkpoint's `embodiment.json` standing alone: a `stats_file` an older version kept there is
        read now, from the checkpoint's folder as `Policy` reads it, so this run trains on those stats and its own
        checkpoints hold them (not a path, which then named the cwd's file or broke once the start moved)."""
        own = checkpoint_spec(self.config.checkpoint_source)
        return None if own is None else inline_stats_file(own)

    def _embodiment(self, stats: dict[str, list[float]] | None) -> Embodiment:
        """The trained embodiment: a registered one, or a spec (free domain slot, data stats unless it has its own)."""
        spec = self._trained_spec()
        if isinstance(spec, str):
            return get_embodiment(spec)
        spec = dict(spec)
        spec.setdefault("chunk_size", self.config.data.chunk_size)
        if "resolution_tier" not in spec:
            spec["resolution_tier"] = self._tier(spec.get("name"))
        spec.setdefault("domain", default_domain(spec))
        if "domain_id" not in spec:
            spec["domain_id"] = self._domain_id(spec["domain"])
        elif stats is None:  # the first (layout) pass, before any weights load
            self._check_slot(spec)
        if stats is None:  # the layout, for the data checks and the latent cache (which keeps physical actions)
            if spec.get("stats") is not None:  # the table's own stats: refused now, not after the weights and latents
                embodiment_from_spec(spec)
            spec["normalization"], spec["stats"] = "none", None
        elif spec.get("stats") is None:
            spec.setdefault("normalization", "quantile")
            if spec["normalization"] != "none":  # a robot trained on raw actions keeps none
                spec["stats"] = stats
        built = register_embodiment(spec, overwrite=True)
        self.embodiment_spec = built.to_spec()  # resolved: what this run trains, whatever later defaults become
        return built

    def _check_data_fits(self, emb: Embodiment) -> None:
        """The embodiment is what the checkpoint predicts with: chunks of its chunk_size at its fps, so the training
        windows must be exactly that (the rate: `data.fit.check_training_rate`, which `dataset check --embodiment`
        reports too)."""
        from ..data.fit import check_training_rate

        data = self.config.data
        if emb.chunk_size != data.chunk_size:
            raise ValueError(f"embodiment {emb.key!r} has chunk_size={emb.chunk_size} but data.chunk_size="
                             f"{data.chunk_size}: the checkpoint would predict chunks it never trained on; set one to "
                             "the other" + (" (droid is the default when the checkpoint names no embodiment: set "
                                            "`embodiment` to the robot's)" if self._embodiment_defaulted
                                           and self.config.embodiment == "droid" else ""))
        if not data.mixture:  # a mixture's sources: each judged whole (`_mixture_data`)
            check_training_rate(self.dataset, emb, data.dataset)

    def _tier(self, name: str | None) -> int:
        """A spec's resolution tier left out: the one this run trained at (its newest checkpoint's `embodiment.json`:
        a resume keeps it), else the starting checkpoint's (its `embodiment.json`, else the registered embodiment it was
        trained for, else droid's), whose weights learned that canvas; said once, as the tier is fixed once."""
        if not hasattr(self, "_tier_used"):
            saved, newest = self._newest_spec()
            if newest is not None and newest.get("resolution_tier") is not None:
                self._tier_used = int(newest["resolution_tier"])
                whose = f"the tier this run trained at ({saved.name})"
            else:
                start = checkpoint_embodiment(self.config.checkpoint_source, None)
                start = start if isinstance(start, Embodiment) else get_embodiment(start)
                self._tier_used = start.resolution_tier
                whose = f"the starting checkpoint's ({self.config.checkpoint}, embodiment {start.key!r})"
            if self.rank == 0:
                logger.info("embodiment %r leaves resolution_tier out: it trains at %d, %s; set resolution_tier in "
                            "the spec to train at another", name, self._tier_used, whose)
        return self._tier_used

    def _domain_id(self, domain: str) -> int:
        """A new embodiment's action-head slot, fixed once per run and the same in every process (ranks, resumes):
        the newest checkpoint's, else its domain's slot (built in, or the starting checkpoint's own), else the lowest
        slot that holds no head yet (`_held_slots`; set `domain_id` in the spec to choose another)."""
        if not hasattr(self, "_slot"):
            newest = self._newest_spec()[1]
            held = self._held_slots()
            mine = [slot for slot, domains in held.items() if domain in domains]  # built in, or the checkpoint's
            if newest is not None:
                self._slot = int(newest["domain_id"])
            elif mine:
                self._slot = mine[0]
            else:
                self._slot = free_domain_id(set(held), include_user=False)
        return self._slot

    def _held_slots(self) -> dict[int, dict[str, str]]:
        """Action-head slot -> {domain: whose head it is} for the heads the starting weights hold: the built-in
        domains (registry.json: what Cosmos3 learned) and the starting checkpoint's own embodiment (`embodiment.json`)."""
        held: dict[int, dict[str, str]] = {}
        for name, domain in domain_table(include_user=False).items():
            held.setdefault(int(domain["id"]), {})[name] = "built in, registry.json"
        own = checkpoint_spec(self.config.checkpoint_source)
        if own is not None and own.get("domain_id") is not None:
            held.setdefault(int(own["domain_id"]), {})[own["domain"]] = f"the starting checkpoint's {own['name']!r}"
        return held

    def _check_slot(self, spec: dict[str, Any]) -> None:
        """A spec's `domain_id` must not take over a head the starting weights hold for another domain: training
        overwrites it, and the checkpoint drives this robot with a head learned for another. A spec takes such a slot
        by naming its domain. A run that already trained there (older versions allowed it) resumes, warned."""
        slot, domain = int(spec["domain_id"]), spec["domain"]
        holders = self._held_slots().get(slot, {})
        if not holders or domain in holders:
            return
        newest = self._newest_spec()[1]
        named = " and ".join(f"{name!r} ({origin})" for name, origin in holders.items())
        problem = (f"embodiment {spec.get('name')!r}: domain_id={slot} is the action-head slot of domain {named}, "
                   f"which training domain {domain!r} there would overwrite")
        if newest is not None and (newest.get("domain"), newest.get("domain_id")) == (domain, slot):
            logger.warning("%s; this run has trained there from its start, so it resumes", problem)
            return
        raise ValueError(f"{problem}: leave domain_id out (a free slot: "
                         f"{free_domain_id(set(self._held_slots()), include_user=False)}), or set domain = "
                         f"{next(iter(holders))!r} to train that head on purpose")

    def _model(self) -> None:
        cfg = self.config
        self.transformer.train()
        if cfg.finetune.mode == "lora":
            from peft import LoraConfig

            self.transformer.requires_grad_(False)
            self.base_samples = weight_samples(self.transformer)  # as loaded (fp32), before any bf16 cast
            self.base_digest = adapter_digest(cfg.checkpoint_source)
            # a checkpoint inside a run's checkpoints/ (a merged folder carries the run's record too, but stays)
            base = Path(cfg.checkpoint_source)
            in_run = base.parent.name == "checkpoints" and (base / STATE_FILE).is_file()
            if cfg.finetune.lora_save == "adapter" and in_run:
                logger.warning("finetune.lora_save='adapter': the base %s is a training run's checkpoint, which that "
                               "run deletes when it saves newer ones (keep_checkpoints), and these adapter checkpoints "
                               "load onto it: copy it out of the run (or `worldpolicy merge-adapter` it) and point "
                               "`checkpoint` there", cfg.checkpoint_source)
            with torch.random.fork_rng():  # lora_A starts random: from the config's seed, not the global RNG state
                torch.manual_seed(cfg.seed)
                self.transformer.add_adapter(LoraConfig(
                    r=cfg.finetune.lora_rank, lora_alpha=cfg.finetune.lora_alpha,
                    target_modules=list(cfg.finetune.lora_targets), init_lora_weights=True,
                ))
            # a new embodiment's action head is new weights: train it fully alongside the adapters
            for module in (self.transformer.action_proj_in, self.transformer.action_proj_out):
                module.requires_grad_(True)
            if cfg.optim.precision == "bf16":  # frozen weights need no fp32 master copy: half their memory
                cast_like_pretrained(self.transformer, torch.bfloat16, frozen_only=True)
        else:
            # every weight trains: one loaded from a LoRA adapter checkpoint comes frozen (peft froze the base to apply
            # the adapter), which left the optimizer nothing to train
            self.transformer.requires_grad_(True)
        self.loss_module = FlowMatchingLoss(self.transformer, cfg.objectives.action_loss_weight,
                                            int(self.scheduler.config.num_train_timesteps), cfg.optim.precision,
                                            cfg.optim.gradient_checkpointing, every_grad=self.sharded)
        self.model = self.loss_module
        if self.sharded:
            self._shard()
        elif self.world > 1:
            self.model = nn.parallel.DistributedDataParallel(self.loss_module, find_unused_parameters=True)
        self.params = [p for p in self.transformer.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        warm, total, floor = cfg.optim.warmup_steps, cfg.optim.steps, cfg.optim.min_lr_ratio

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            progress = (step - warm) / max(1, total - warm)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)
        if warm > total and self.rank == 0:  # e.g. a short try with the default warmup: silently a tiny LR
            logger.warning("optim.warmup_steps=%d is more than optim.steps=%d: the LR rises for the whole run and "
                           "reaches %.3g, %d %% of optim.lr=%g; lower warmup_steps to train at optim.lr", warm, total,
                           cfg.optim.lr * factor(total - 1), round(100 * factor(total - 1)), cfg.optim.lr)
        self.timesteps = TimestepSampler(**vars(cfg.timesteps))
        weights = cfg.objectives.weights()
        self.objective_names = [o for o in OBJECTIVES if weights[o] > 0]
        self.objective_probs = torch.tensor([weights[o] for o in self.objective_names], dtype=torch.float64)
        self.objective_probs /= self.objective_probs.sum()

    def _shard(self) -> None:
        """FSDP2 over the processes: each transformer block's two towers are a group each (`engine.forward.
        tower_modules`: the split forward calls their modules, never the block), the rest (embeddings, heads) the
        root's. Each process keeps 1/N of every fp32 weight, its gradient and AdamW state; a group is gathered while
        it runs (in bf16 under `optim.precision = "bf16"`, gradients reduced in fp32) and freed after. Inputs are not
        cast: the forward runs under the trainer's autocast as a DDP run does."""
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        from ..engine.forward import tower_modules

        bf16 = self.config.optim.precision == "bf16"
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if bf16 else None, reduce_dtype=torch.float32,
                                      cast_forward_inputs=False)
        for layer in self.transformer.layers:
            for modules in tower_modules(layer):
                fully_shard(modules, mp_policy=policy)
        fully_shard(self.loss_module, mp_policy=policy)
        # the shards are allocated now, on this rank's device (the weights were on the meta device: `_load`); the
        # buffers `__init__` computed (the rotary table: in no weights file) are kept, as to_empty leaves them unset
        buffers = {name: buffer.clone() for name, buffer in self.loss_module.named_buffers()}
        self.loss_module.to_empty(device=self.device)
        with torch.no_grad():
            for name, buffer in self.loss_module.named_buffers():
                buffer.copy_(buffers[name])
        if not self._resuming:  # a resume takes the checkpoint's weights (`_restore_sharded`)
            self._take_weights(self._starting_weights)
        self._starting_weights = {}

    def _take_weights(self, weights: dict[str, torch.Tensor], strict: bool = True) -> None:
        """Every process's shard of the whole weights `weights` (keyed as the transformer's state dict) that rank 0
        holds and the others do not (empty there): sent tensor by tensor (`broadcast_from_rank0`), so only rank 0
        ever reads a weights file and host memory holds one copy of the model, not one per process. `strict=False`:
        `weights` may be some of them (a resume's, a file at a time), the others kept."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=strict)
        set_model_state_dict(self.loss_module, {f"transformer.{k}": v for k, v in weights.items()}, options=options)

    def _saved_tensors(self) -> list[tuple[str, dict[str, Any], dict[str, str] | None]]:
        """The safetensors files of a checkpoint that hold what trains, in the order a save writes them: the
        transformer's weights (`WEIGHTS_FILE`, in its folder, with diffusers' metadata), then the AdamW state
        (`OPTIMIZER_FILE`, keyed `index.name`: `_flat_optimizer_state`), each as (name, this process's tensors (a
        sharded run's: its shards), metadata). Every process computes the same list: a sharded run's gather the same
        tensors in the same order (`_gathered`)."""
        position = {param: i for i, param in enumerate(self.params)}
        optimizer = _flat_optimizer_state(self.optimizer.state, position.__getitem__)
        return [(WEIGHTS_FILE, self.transformer.state_dict(), {"format": "pt"}), (OPTIMIZER_FILE, optimizer, None)]

    def _write_saved(self, folder: Path, file_name: str) -> None:
        """`_saved_tensors`' file `file_name` written into `folder` (`fileio.write_safetensors`: one file's tensors
        gathered and held at a time)."""
        name, tensors, metadata = next(saved for saved in self._saved_tensors() if saved[0] == file_name)
        write_safetensors(folder, name, _layout(tensors), lambda names: self._gathered(tensors, names), metadata)

    def _take_part_in_save(self) -> None:
        """A sharded run's process other than rank 0, while rank 0 saves: its part in each gather, in the order rank 0
        writes the files (`_saved_tensors`, `fileio.safetensors_plan`)."""
        for name, tensors, _ in self._saved_tensors():
            for names in safetensors_plan(_layout(tensors), name).values():
                self._gathered(tensors, names)

    def _gathered(self, tensors: dict[str, Any], names: list[str]) -> dict[str, torch.Tensor]:
        """`names` of `tensors`, whole, on rank 0's CPU (nothing elsewhere). A sharded tensor is all-gathered one at a
        time, every process taking part: a GPU holds one whole tensor beside its shards, rank 0's host one file's."""
        from torch.distributed.tensor import DTensor

        whole: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for name in names:
                value = tensors[name]
                value = value.full_tensor() if isinstance(value, DTensor) else torch.as_tensor(value)
                if self.rank == 0:
                    whole[name] = value.detach().cpu()
        return whole

    # -- deterministic batches ------------------------------------------------------------------------------------

    def _batch(self, step: int) -> tuple[list[ModelExample], list[str], torch.Tensor, torch.Generator]:
        """This rank's slice of step `step`'s global batch: examples, objectives, σ and the noise generator.

        Every rank replays the global batch's draws (objectives and σ for all of it, then the noise of the slices
        before its own), so N processes compute exactly the examples, noise and losses of one process (in fp32;
        bf16 rounds each rank's gradients before they are averaged). A policy example's action prefix
        (`_prefixed`) is drawn from (seed, position) alone, as its caption's phrasing.
        """
        cfg = self.config
        n = len(self.examples)
        size = cfg.optim.batch_size
        local = size // self.world
        orders: dict[int, np.ndarray] = {}  # one permutation per epoch the batch touches, not one per position
        picks = self.mixture.picks(step) if self.mixture is not None else []  # a mixture: sources drawn by weight
        for position in range(step * size, (step + 1) * size) if self.mixture is None else ():
            epoch, offset = divmod(position, n)
            if epoch not in orders:
                orders[epoch] = np.random.default_rng([cfg.seed, epoch]).permutation(n)
            picks.append(int(orders[epoch][offset]))
        # (seed, step, 0): the stream one process has always drawn from, now shared by every rank
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence([cfg.seed, step, 0]).generate_state(1)[0]))
        choice = torch.multinomial(self.objective_probs, size, replacement=True, generator=generator)
        objectives = [self.objective_names[i] for i in choice.tolist()]
        sigmas = self.timesteps.sample(size, generator)
        first = self.rank * local
        for i in picks[:first]:  # the earlier ranks' noise
            draw_noise(self.examples[i], self.transformer.config.action_dim, generator)
        keep = slice(first, first + local)
        positions = range(step * size + first, step * size + first + local)
        examples = [self._prefixed(self._augmented(self._captioned(i, position), i, position), objective,
                                   (self.config.seed, position, 3))
                    for i, position, objective in zip(picks[keep], positions, objectives[keep])]
        return examples, objectives[keep], sigmas[keep], generator

    def _captioned(self, window: int, position: int) -> ModelExample:
        """Window `window`'s example with the phrasing of its caption drawn for batch position `position` (from
        (seed, position) alone: the same on every rank and on resume, and no draw is taken from the noise stream)."""
        example, captions = self.examples[window], self.captions[window]
        if len(captions) == 1:
            return example
        choice = int(np.random.default_rng([self.config.seed, position, 1]).integers(len(captions)))
        return replace(example, token_ids=list(captions[choice]))

    def _augmented(self, example: ModelExample, window: int, position: int) -> ModelExample:
        """`example` holding the latents of the augmented copy of window `window` drawn for batch position `position`
        (from (seed, position) alone, as its caption's phrasing); itself where the cache holds one encoding a window."""
        if self.latent_copies is None:
            return example
        encoded = self.latent_copies[window]
        choice = int(np.random.default_rng([self.config.seed, position, 4]).integers(len(encoded)))
        return replace(example, latents=encoded[choice])

    def _prefixed(self, example: ModelExample, objective: str, key: tuple[int, ...]) -> ModelExample:
        """`example` with the clean action prefix `objectives.action_prefix_*` draws for it under `objective` (policy
        only), from the generator seeded by `key` (`flow.draw_prefix_rows`; the noise stream is untouched)."""
        if objective != "policy":
            return example
        objectives = self.config.objectives
        rows = draw_prefix_rows(objectives.action_prefix_probability, objectives.action_prefix_max_rows, key)
        return replace(example, prefix_rows=rows) if rows else example

    # -- checkpoints ----------------------------------------------------------------------------------------------

    @property
    def last_checkpoint(self) -> Path | None:
        """The newest checkpoint the run in `output_dir` saved (`fileio.saved_checkpoints`), the folder `load_policy`
        and `worldpolicy sim --policy` take; read from the folder, so a finished run's is found too (its `run()`
        trains nothing and returns no records). None before the first save."""
        saved = saved_checkpoints(self.out)
        return saved[-1][1] if saved else None

    def _checkpoints(self) -> list[Path]:
        """This run's saved checkpoints (`fileio.saved_checkpoints`) that hold a trainer state, oldest first."""
        return [folder for _, folder in saved_checkpoints(self.out) if (folder / STATE_FILE).is_file()]

    def _newest_spec(self) -> tuple[Path | None, dict[str, Any] | None]:
        """This run's newest checkpoint and its `embodiment.json`, what a resume keeps (tier, action-head slot);
        (None, None) before the first is saved."""
        checkpoints = self._checkpoints()
        return (checkpoints[-1], checkpoint_spec(checkpoints[-1])) if checkpoints else (None, None)

    def export_pipeline(self, target: Path) -> None:
        """Write a diffusers-format Cosmos3 folder (LoRA merged) plus the embodiment it was trained for. A sharded
        run's weights are gathered a file at a time onto rank 0, which writes them (`_write_saved`), as every other
        process takes part (`_take_part_in_save`): the same files as an unsharded run's."""
        from diffusers import Cosmos3OmniTransformer

        transformer, weights = self.transformer, None
        if self.sharded:
            transformer = empty_transformer(self.transformer.config)  # its config: the weights are written apart

            def weights(folder: Path) -> None:
                self._write_saved(folder, WEIGHTS_FILE)
        elif self.config.finetune.mode == "lora":
            merged = Cosmos3OmniTransformer.from_config(transformer.config)
            # fuse → unfuse is not exact in floating point: keep the frozen base weights bit-identical across saves;
            # merge in fp32 (bf16 runs keep the base in bf16, where the small LoRA update would round away)
            frozen = {n: p.detach().clone() for n, p in transformer.named_parameters() if ".base_layer." in n}
            for name, param in transformer.named_parameters():
                if name in frozen:
                    param.data = param.data.float()
            self.transformer.fuse_lora()
            try:
                state = {k.replace(".base_layer", ""): v for k, v in transformer.state_dict().items() if "lora_" not in k}
                merged.load_state_dict(state)  # into fp32 parameters: a checkpoint is fp32 whatever the run's precision
            finally:
                self.transformer.unfuse_lora()
                for name, param in transformer.named_parameters():
                    if name in frozen:
                        param.data = frozen[name]
            transformer = merged
        save_components(target, transformer, self.vae, self.tokenizer, self.scheduler, **self.pipeline_flags,
                        transformer_weights=weights)
        self._write_embodiment(target)

    def export_adapter(self, target: Path) -> None:
        """Write a LoRA adapter checkpoint: the adapters (diffusers' format), the weights trained fully (fp32) and the
        base's name with samples of its weights; `Policy.from_pretrained(target)` loads the base and fuses them."""
        from safetensors.torch import save_file

        trained = {name: param.detach().float().cpu().contiguous()
                   for name, param in self.transformer.named_parameters() if param.requires_grad and "lora_" not in name}
        save_file(trained, str(target / TRAINED_FILE))
        # `shipped` keeps that name: the checkpoint may move to another install; a hub id names the commit the run
        # started from (`models.portable_checkpoint`), not the branch, which may move on to weights it does not fit
        base = str(portable_checkpoint(self.config.checkpoint_source))
        if base != SHIPPED_NAME and Path(base).expanduser().exists():  # a local base is named absolutely: it may move
            base = os.path.abspath(Path(base).expanduser())
        samples = {name: values for name, values in self.base_samples.items() if name not in trained}
        info = {"base_model_name_or_path": base, "weight_samples": samples}
        if self.base_digest is not None:
            info["base_adapter_sha256"] = self.base_digest
        write_json_atomic(target / BASE_FILE, info)
        self._write_embodiment(target)

    def _write_embodiment(self, target: Path) -> None:
        """A spec's embodiment.json, every field resolved (`Embodiment.to_spec`): the checkpoint runs with the
        captions, canvas and chunking it trained on even where a later version's defaults differ. A registered entry
        has none: the checkpoint's trainer_state.json names it (`policy.trained_embodiment`), one record, not a copy of
        the registry's entry beside it."""
        if hasattr(self, "embodiment_spec"):  # its format version first (`embodiments.spec_document` reads it)
            write_json_atomic(target / EMBODIMENT_FILE, {"schema": EMBODIMENT_SCHEMA, **self.embodiment_spec})

    def _save(self, step: int, history: list[dict[str, Any]]) -> Path:
        """Write checkpoint `step` (rank 0; in a sharded run with every process taking part: `_take_part_in_save`)."""
        from .model_card import write_model_card

        final = self.out / "checkpoints" / f"step-{step:07d}"
        try:
            # a kill during the save leaves the older checkpoints, no half one; durable: written to the disk before
            # the rotation below deletes the older ones (a node that goes down loses neither)
            with staged_folder(final, durable=True) as tmp:
                if self.config.finetune.lora_save == "adapter":
                    self.export_adapter(tmp)
                else:
                    self.export_pipeline(tmp)
                names = {id(p): n for n, p in self.transformer.named_parameters()}
                if self.config.finetune.mode == "lora":  # diffusers' format: its LoRA config (rank, alpha) in metadata
                    # it calls `.to(dtype=None)`, which casts nothing but warns that a cast to a dtype can break the
                    # float32 modules: at every checkpoint, read as a problem with the weights
                    modeling = logging.getLogger("diffusers.models.modeling_utils")
                    level = modeling.level
                    modeling.setLevel(logging.ERROR)
                    try:
                        self.transformer.save_lora_adapter(tmp, weight_name=ADAPTER_FILE, safe_serialization=True)
                    finally:
                        modeling.setLevel(level)
                self._write_saved(tmp, OPTIMIZER_FILE)
                state = {  # its format version first (`fileio.read_trainer_state` reads it)
                    "schema": TRAINER_STATE_SCHEMA, "step": step, "config": self.config.to_dict(),
                    "lr_schedule": self.lr_schedule.state_dict(),
                    # the mix trained, resolved: `config.objectives` keeps the preset beside fields it overrides
                    "objective_weights": self.config.objectives.weights(),
                    "params": [names[id(p)] for p in self.params], "history": history[-50:],
                    "data_fingerprint": self.data_fingerprint, "data_key": self.data_key, "frames": self.frames,
                    "elapsed_s": self._elapsed(),
                    # what a reader reproducing the checkpoint needs beside the config: the versions it was trained
                    # on and the command line (of the session that saved it: `self.run_record`), the weights it
                    # started from and the dataset read (`hub.dataset_source`: a hub one's commit pinned)
                    **self.run_record, "base_checkpoint": self.base_checkpoint,
                    "dataset": dataset_source(self.dataset.root),
                }
                if self.mixture is not None:  # every source, and the sampler's state, which a resume continues from
                    state["dataset"] = [dataset_source(dataset.root) for dataset in self.datasets]
                    state["mixture"] = self._mixture_record()
                    state["mixture_sampler"] = self.mixture.state_dict()
                (tmp / STATE_FILE).write_text(json.dumps(state, indent=1, default=str))
                # from the records above and the run's log: part of the checkpoint
                write_model_card(tmp, final, self.out)
        except Exception as exc:
            if (code := _storage_errno(exc)) is None:
                raise
            raise OSError(code, self._save_failed(step, code)) from exc
        rotated, best = self._checkpoints()[: -self.config.keep_checkpoints], self._best_checkpoint()
        for old in rotated:
            if old != best:
                shutil.rmtree(old, ignore_errors=True)
        if best is not None and rotated and best == rotated[-1]:  # said once, as it leaves the newest
            logger.info("kept %s beside the %d newest: the lowest held-out loss of the checkpoints saved "
                        "(validation.keep_best)", best.name, self.config.keep_checkpoints)
        return final

    def _best_checkpoint(self) -> Path | None:
        """With `validation.keep_best`, the saved checkpoint whose step's held-out loss (`val/loss`, logged before
        its save) is the lowest, the earliest of equals; None without, or with no saved step scored."""
        from ..viz.train_report import metrics_lines

        if not self.config.validation.keep_best:
            return None
        saved = {int(p.name.removeprefix("step-")): p for p in self._checkpoints()}
        scored = [(line["val/loss"], line["step"]) for line in metrics_lines(self.out)
                  if line.get("step") in saved and isinstance(line.get("val/loss"), (int, float))
                  and math.isfinite(line["val/loss"])]
        return saved[min(scored)[1]] if scored else None

    def _save_failed(self, step: int, code: int) -> str:
        """What a save the file system refused leaves, and how to go on from it."""
        newest = self._checkpoints()
        kept = f"the newest checkpoint, {newest[-1]}, is intact" if newest else "no checkpoint was saved before"
        fix = "free space there (or lower keep_checkpoints)" if code in (errno.ENOSPC, errno.EDQUOT) \
            else "make it writable"
        return (f"saving step {step} in {str(self.out)!r} failed ({os.strerror(code)}); nothing of it was kept and "
                f"{kept}: {fix} and run the same command to resume")

    def _restore(self, folder: Path, state: dict[str, Any]) -> int:
        """The weights, optimizer state and schedule of checkpoint `folder`, whose trainer_state.json is `state` (read
        by `_previous_run`); its step."""
        from safetensors.torch import load_file

        if self.sharded:
            self._restore_sharded(folder, state)
            return self._restore_schedule(state)
        weights = {}
        if (folder / TRAINED_FILE).is_file():  # an adapter checkpoint: on this run's base, if it is still the same
            weights = load_file(str(folder / TRAINED_FILE))
            mismatch = base_mismatch(self.transformer, adapter_base(folder), set(weights))
            if mismatch:
                raise ValueError(f"checkpoint {folder}: the base {self.config.checkpoint!r} is not the one the run saved "
                                 f"it on ({mismatch}): put that base back")
        weights.update(_transformer_weights(folder))
        if self.config.finetune.mode == "lora":
            from peft.utils import set_peft_model_state_dict

            set_peft_model_state_dict(self.transformer, load_file(str(folder / ADAPTER_FILE)))
            # modules trained fully next to the adapters (the action head) are saved in the merged weights
            with torch.no_grad():
                for name, param in self.transformer.named_parameters():
                    if param.requires_grad and "lora_" not in name:
                        param.copy_(weights[name])
        else:
            self.transformer.load_state_dict(weights)
        self._check_params(folder, state)
        opt_state = self.optimizer.state_dict()
        opt_state["state"] = _nested_optimizer_state(read_safetensors(folder, OPTIMIZER_FILE))
        self.optimizer.load_state_dict(opt_state)
        return self._restore_schedule(state)

    def _check_params(self, folder: Path, state: dict[str, Any]) -> None:
        """The checkpoint trained these weights (a finetune mode or LoRA targets changed would train others)."""
        names = [n for n, _ in self.transformer.named_parameters() if _.requires_grad]
        if names != state["params"]:
            raise ValueError(f"checkpoint {folder} was trained with other trainable parameters (finetune mode?)")

    def _restore_sharded(self, folder: Path, state: dict[str, Any]) -> None:
        """A sharded run resumes from the same files, a file at a time: rank 0 reads one (at most
        `fileio.MAX_SHARD_SIZE` of tensors) and every process takes its shard of each tensor in it, the weights
        (`_take_weights`), then the AdamW state. Host memory holds one file, not the whole state nor one per process."""
        from torch.distributed.tensor import DTensor, distribute_tensor

        self._check_params(folder, state)
        for weights in self._saved_files(folder / "transformer", WEIGHTS_FILE, set(self.transformer.state_dict())):
            self._take_weights(weights, strict=False)  # a file's: together they hold every weight (checked)
        # AdamW state is set as a step sets it, and only for the weights it is saved for: one no step has given a
        # gradient yet (the last block's unused text-tower tail) keeps none, so its first update is bias-corrected
        # as a first, as in the unbroken run
        for saved in self._saved_files(folder, OPTIMIZER_FILE):
            keys = [[(key, tuple(value.shape), value.dtype) for key, value in saved.items()]]
            torch.distributed.broadcast_object_list(keys, 0, device=self.device)
            for key, shape, dtype in keys[0]:
                index, name = key.split(".", 1)
                param = self.params[int(index)]
                value = saved.pop(key).to(self.device) if self.rank == 0 else \
                    torch.empty(shape, dtype=dtype, device=self.device)
                if isinstance(param, DTensor) and value.dim():  # the moments: sharded as their weight, from rank 0
                    value = distribute_tensor(value, param.device_mesh, param.placements, src_data_rank=0)
                else:
                    torch.distributed.broadcast(value, 0)
                self.optimizer.state[param][name] = value.cpu() if name == "step" else value  # AdamW's step: CPU

    def _saved_files(self, folder: Path, file_name: str,
                     expected: set[str] | None = None) -> Iterator[dict[str, torch.Tensor]]:
        """The files `fileio.write_safetensors` wrote as `file_name` in `folder` (one, or the shards of its index),
        read one at a time on rank 0 (as many empty ones on the others): what a resume hands out a file at a time.
        Every file's header is read before any file is, and what is wrong said on every process (the others would
        wait for their shards of a file rank 0 cannot read): no file, an unreadable index or file (a truncated copy),
        and with `expected` (the names they must hold together) a mismatch."""
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        files: list[Path] = []
        problem = None
        if self.rank == 0:
            held: set[str] = set()
            reading = safetensors_index(file_name)
            try:
                files = [folder / name for name in safetensors_files(folder, file_name) if name != reading]
                for file in files:
                    reading = file.name
                    with safe_open(str(file), framework="pt") as header:
                        held.update(header.keys())
            except (OSError, ValueError, KeyError, TypeError, AttributeError, SafetensorError) as exc:
                problem = f"checkpoint {folder}: {reading} is unreadable ({exc.__class__.__name__}: {exc})"
            else:
                if not files:
                    problem = f"checkpoint {folder}: {file_name} is missing (nor is there a sharded " \
                              f"{safetensors_index(file_name)})"
                elif expected is not None and held != expected:
                    problem = (f"checkpoint {folder}: {file_name} does not hold this model's weights (missing "
                               f"{sorted(expected - held)[:5]}, unknown {sorted(held - expected)[:5]})")
        shared = [len(files), problem]
        torch.distributed.broadcast_object_list(shared, 0, device=self.device)
        if shared[1] is not None:
            raise ValueError(shared[1])
        for i in range(shared[0]):
            yield load_file(str(files[i])) if self.rank == 0 else {}

    def _restore_schedule(self, state: dict[str, Any]) -> int:
        """The LR schedule and elapsed time a checkpoint holds, and a mixture's sampler state; its step."""
        if self.mixture is not None and "mixture_sampler" in state:  # else replayed from the start (`picks`)
            self.mixture.load_state_dict(state["mixture_sampler"])
        self.lr_schedule.load_state_dict(state["lr_schedule"])
        # the state holds the step count and the LR the saved run computed for the next step, not the optimizer's LR:
        # recompute that LR with this run's schedule (a resume with more optim.steps stretches the decay from the
        # first resumed step on; the same steps give the same value) and set it, or the first resumed step would
        # train at the LR of step 0
        self.lr_schedule.last_epoch -= 1
        self.lr_schedule.step()
        self._elapsed_before = float(state.get("elapsed_s", 0.0))  # a checkpoint of an older version: not recorded
        return int(state["step"])

    def _elapsed(self) -> float:
        """Seconds of training so far, over every session of the run: `elapsed_s` went back to 0 at each resume, so
        the log's curve of it fell mid-run."""
        return self._elapsed_before + time.perf_counter() - self._started

    # -- the loop -------------------------------------------------------------------------------------------------

    def run(self, stop_after: int | None = None, *, load_finished: bool = False) -> list[StepRecord]:
        """Train to `optim.steps` (or stop after `stop_after` steps, as a kill would); return this run's records. The
        output folder is held (`folder_lock`, by rank 0, for the whole run) before it is read or any weights load:
        another training there, or a resume of this one, is refused rather than mixing its checkpoints and log with
        these. A run already at `optim.steps` whose log holds its last step's evaluations is said finished and left
        as it is, nothing loaded, unless `load_finished` (a caller that uses the trained weights after: a recipe's
        `export_pipeline`).

        Rank 0 keeps the session's lines in the folder's `TRAIN_LOG_FILE` (`logcapture.run_log`: what the command
        shows, timed, and a progress line every `log_every` steps), between a line saying who started the session and
        one saying how it ended, from when the folder is found to hold this run (`_run`): a session refused before
        (another run's folder, other settings, a run finished) writes nothing there, and a first session that failed
        before it wrote anything else leaves neither file nor folder. A console found gone (`| head` had its lines, a
        killed `| tee`, a closed ssh session) is no longer written and the run goes on (`logcapture.console_may_close`:
        said once, in the log file), its checkpoints and log as they would be."""
        if self.rank != 0:
            with console_may_close():
                return self._logged_run(stop_after, load_finished)
        with folder_lock(self.out, "--out / output_dir"):
            path = self.out / TRAIN_LOG_FILE
            fresh = not path.exists()
            try:
                with run_log(path, held=True) as self.log_file, console_may_close():
                    return self._logged_run(stop_after, load_finished)
            except BaseException:
                left = {p.name for p in self.out.iterdir()} if self.out.is_dir() else set()
                if fresh and left <= {TRAIN_LOG_FILE, LOCK_FILE}:  # nothing else written: no folder left, as before
                    path.unlink(missing_ok=True)
                raise
            finally:
                self.log_file = None

    def _logged_run(self, stop_after: int | None, load_finished: bool) -> list[StepRecord]:
        """`_run`, its trackers closed after it, and its session's first and last lines in the log file."""
        if self.log_file is not None:
            self.log_file.session_started(self.run_record["command"] or "Trainer.run() from Python",
                                          self.run_record["software"].get("worldpolicy"))
        try:
            records = self._run(stop_after, load_finished)
        except BaseException as stop:  # Ctrl-C, a cluster's SIGTERM/SIGUSR1 (what was saved is said before), a failure
            self.trackers.close(failed=True)
            if self.log_file is not None:
                self.log_file.session_stopped(stop)
            raise
        self.trackers.close(failed=False)
        self._log_line(f"session ended at step {records[-1].step} of {self.config.optim.steps}" if records else
                       "session ended: no step to train")
        return records

    def _say_what_it_trains(self, done: int) -> None:
        """What this session trains from step `done` on, said as it starts (before the latent cache is encoded and the
        weights load), on the console and in the log: its steps, the fine-tuning, batch, LR and precision, the
        objectives' mix, and whether image augmentation is on (`[augment]`: its draws, each encoded into the cache,
        which takes `copies` times the encoding) or off. Nothing for a run at its last step (its due evaluations)."""
        from ..viz.train_report import augmentation  # the words its page and model card say it in

        cfg = self.config
        if done >= cfg.optim.steps:
            return
        tune = cfg.finetune
        how = f"LoRA rank {tune.lora_rank} (alpha {tune.lora_alpha:g}, saved {tune.lora_save})" \
            if tune.mode == "lora" else "full fine-tuning"
        processes = f" over {self.world} processes" if self.world > 1 else ""
        mix = ", ".join(f"{name} {weight:g}" for name, weight in cfg.objectives.weights().items() if weight)
        logger.info("this session trains steps %d-%d of %d: %s, batch %d%s, lr %g, precision %s; objectives %s",
                    done + 1, cfg.optim.steps, cfg.optim.steps, how, cfg.optim.batch_size, processes, cfg.optim.lr,
                    cfg.optim.precision, mix)
        logger.info("image augmentation: %s", augmentation(cfg.to_dict()["augment"]) or "off")

    def _say_now(self, text: str) -> None:
        """`text` on stderr, and in the log file (`_log_line`): what a signal's notice says (`fileio.sigint_held`),
        which the log keeps with its time, as when the run was told to stop."""
        print(text, file=sys.stderr, flush=True)
        self._log_line(text)

    def _log_line(self, text: str) -> None:
        """One line of the session's own (its start, its end, its progress) in the log file, timed; nothing where
        there is none (ranks other than 0)."""
        if self.log_file is not None:
            self.log_file.said(text)

    def _log(self, metrics_path: Path, line: dict[str, Any]) -> None:
        """One line of `metrics.jsonl`, sent on to the trackers under the same names."""
        with open(metrics_path, "a") as f:
            f.write(json.dumps(line) + "\n")
        self.trackers.log(line)

    def _run(self, stop_after: int | None, load_finished: bool) -> list[StepRecord]:
        from ..logcapture import progress_as_lines, progress_bar

        cfg = self.config
        checkpoints = self._checkpoints()
        previous = self._previous_run(checkpoints)
        if previous is not None:  # unset data settings resume as the run resolved them (an older version's defaults)
            for name in ("source_embodiment", "action_conversion"):
                if getattr(cfg.data, name) is None and isinstance(previous[0].get("data", {}).get(name), str):
                    setattr(cfg.data, name, previous[0]["data"][name])
        self._data()  # before the comparison with a stored run: it stores what unset data settings resolve to
        self._check_previous_run(previous)
        if checkpoints and previous[2] == cfg.optim.steps:  # finished: said before anything heavy loads
            unlogged = self._unlogged_evaluations(previous[2])
            if unlogged:
                logger.info("the run in %r is at step %d of %d: running the %s due there, which its log lacks",
                            str(self.out), previous[2], cfg.optim.steps, " and the ".join(unlogged))
            elif not load_finished:
                logger.warning("the run in %r is finished: its newest checkpoint, %s, is at step %d, optim.steps=%d "
                               "(the config's, or --steps); nothing trained or loaded. Raise --steps (or optim.steps) "
                               "to train on", str(self.out), checkpoints[-1].name, previous[2], cfg.optim.steps)
                return []
        if self.log_file is not None:  # the folder holds this run (or none yet), which trains: its log from here on
            self.log_file.start()
        if self.rank == 0:  # before the weights load: what it trains, a tracker that cannot start (W&B not logged in)
            self._say_what_it_trains(previous[2] if checkpoints else 0)
            # the step of the first line logged: 0 from the start (its validation), else the one after the checkpoint
            first_step = previous[2] + 1 if checkpoints else 0
            self.trackers = Trackers.start(cfg.tracking, self.out, first_step, cfg.to_dict())
            sweep_stagings(self.out / "checkpoints", "step-*")  # a save a kill interrupted
        self._resuming = bool(checkpoints)
        self._load()
        self._model()
        self._elapsed_before = 0.0
        start = 0
        if checkpoints:
            start = self._restore(checkpoints[-1], self._resumed_state)
            logger.info("resumed from %s (step %d)", checkpoints[-1], start)
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.out / "config.json", cfg.to_dict())
        metrics_path = self.out / METRICS_FILE
        if self.rank == 0 and metrics_path.exists():
            # a run from its start (no checkpoint yet) logs its step-0 validation again: the one before goes too
            _trim_metrics(metrics_path, start if start else -1)
        unlogged = self._unlogged_evaluations(start) if checkpoints and self.rank == 0 else []
        if checkpoints and self.sharded:  # every rank takes part in a sharded validation: rank 0's log decides
            shared = [unlogged]
            torch.distributed.broadcast_object_list(shared, 0, device=self.device)
            unlogged = shared[0]
        records: list[StepRecord] = []
        history: list[dict[str, Any]] = []
        lines = self.progress and self.rank == 0 and progress_as_lines()  # a log file: a line per log_every steps
        bar = progress_bar(total=cfg.optim.steps, initial=start, desc="training", unit="step",
                           disable=not self.progress or self.rank != 0 or lines)
        self._started = time.perf_counter()
        last_save = _clock()  # `checkpoint_every_minutes` counts from the session's start (the restored checkpoint)
        # several processes (torchrun): a signal is held for the whole run, each rank its own, and the ranks agree
        # after each step whether one came (`_agreed_interruption`), so every rank saves that step and stops together;
        # one that stopped where the signal found it left the others waiting in a collective, and nothing saved
        ranks_hold = contextlib.ExitStack()
        caught_here = ranks_hold.enter_context(sigint_held(
            "finishing the step every rank is in, then saving it" if self.rank == 0 else None, say=self._say_now)) \
            if self.world > 1 else []
        try:  # closed on any error too (a NaN, a full disk, out of memory): its message then starts a line
            if start == 0 and self._validation_due(0):  # the starting weights' held-out loss: the curve's first point
                self._validate(0, metrics_path)
            if unlogged:  # the checkpoint's step's, where its session stopped before them or this resume turned them on
                if "held-out validation" in unlogged:
                    self._validate(start, metrics_path)
                if self.rank == 0:
                    self._evaluate_saved(start, metrics_path, checkpoints[-1], history, bar,
                                         sim="sim evaluation" in unlogged)
            for step in range(start, cfg.optim.steps):
                if stop_after is not None and step - start >= stop_after:
                    break
                # Ctrl-C, SIGTERM or SIGUSR1 (one process) waits for the step to finish, which is then saved: a step cut
                # short would leave the weights half updated, and dropping every step since the last save can be
                # hours of work.
                # the step's held-out validation is part of it (logged before the save): said, as it can take longer
                validating = " and its held-out validation" if self._validation_due(step + 1) else ""
                notice = f"finishing step {step + 1}{validating}, then saving it"
                with sigint_held(notice, say=self._say_now) if self.world == 1 else contextlib.nullcontext([]) \
                        as interrupted:
                    tick = time.perf_counter()
                    examples, objectives, sigmas, generator = self._batch(step)
                    loss, parts = self.model(examples, objectives, sigmas, generator)
                    value = float(loss.detach())
                    if self.world > 1:
                        reduced = torch.tensor([value], device=self.device)  # NCCL reduces GPU tensors only
                        torch.distributed.all_reduce(reduced)
                        value = float(reduced) / self.world
                    self._refuse_non_finite(step + 1, "loss", value)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    # grad_clip 0 clips nothing (a factor of exactly 1), but the norm is still checked: a NaN
                    # gradient under a finite loss would otherwise reach the weights, and a save at this step rotate
                    # the good checkpoints away
                    max_norm = cfg.optim.grad_clip or math.inf
                    norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)
                    if self.sharded:  # a DTensor: the norm of the whole gradient, on every rank
                        norm = norm.full_tensor()
                    parts["grad_norm"] = float(norm)
                    self._refuse_non_finite(step + 1, "gradient norm", parts["grad_norm"])
                    self.optimizer.step()
                    lr = self.lr_schedule.get_last_lr()[0]
                    self.lr_schedule.step()
                    record = StepRecord(step + 1, value, lr, parts, time.perf_counter() - tick)
                    records.append(record)
                    if self.on_step is not None:
                        self.on_step(record)
                    # the loss first, drawn by the update with the step it goes with: counted first, each redraw
                    # of the count said the step before's loss ("3/6 ... loss=<step 2's>")
                    bar.set_postfix(loss=f"{value:.4f}", refresh=False)
                    bar.update(1)
                    done = step + 1
                    if self.rank == 0 and (done % cfg.log_every == 0 or done == cfg.optim.steps):
                        line = {"step": done, "loss": value, "lr": lr, **parts, "world_size": self.world,
                                "step_s": record.seconds, "elapsed_s": self._elapsed()}
                        history.append(line)
                        self._log(metrics_path, line)
                        progress = _progress_line(done, cfg.optim.steps, done - start,
                                                  time.perf_counter() - self._started, value)
                        if lines:
                            print(progress, file=sys.stderr, flush=True)
                        if self.log_file is not None:  # the log's record, whatever the console shows
                            self.log_file.line(progress)
                    if self._validation_due(done):  # before the save: a kill during either drops both on resume
                        self._validate(done, metrics_path)
                minutes = (_clock() - last_save) / 60
                timed = bool(cfg.checkpoint_every_minutes) and minutes >= cfg.checkpoint_every_minutes
                if self.world > 1:  # one rank's clock past the mark saves on every rank: a save is a collective
                    interrupted, timed = self._agreed_interruption(caught_here, timed)
                saved = None
                due = done % cfg.save_every == 0 or done == cfg.optim.steps or bool(interrupted)
                if timed and not due and self.rank == 0:  # a save the wall clock alone asks for: said why
                    logger.info("step %d: saving it, %.0f min after the session's last save or start "
                                "(checkpoint_every_minutes=%g)", done, minutes, cfg.checkpoint_every_minutes)
                if due or timed:
                    # a periodic save (minutes, for a large model) holds a first Ctrl-C and stops once it is written:
                    # cut short, it lost every step since the last one. A second Ctrl-C here stops the save (atomic:
                    # the older checkpoints stay).
                    notice = f"finishing the save of step {done}, then stopping (again: stop the save)"
                    held = sigint_held(notice, second_stops=True, say=self._say_now) \
                        if self.world == 1 and not interrupted \
                        else contextlib.nullcontext([])
                    with held as during_save:
                        if self.rank == 0:
                            saved = self._save(done, history)
                        elif self.sharded:  # rank 0 writes what every process gathers with it, a file at a time
                            self._take_part_in_save()
                    interrupted = interrupted or during_save
                    _barrier(self.world)
                    last_save = _clock()
                if interrupted:
                    bar.close()
                    self._stop_interrupted(done, saved, interruption(interrupted))
                # after the save: a failure keeps it
                if self._due(cfg.eval.every, done) and self.rank == 0:
                    self._evaluate_saved(done, metrics_path, saved, history, bar)
        finally:
            bar.close()
            ranks_hold.close()
        return records

    def _agreed_interruption(self, caught: list[int], timed: bool) -> tuple[list[int], bool]:
        """The signal one of the ranks caught (`caught`: this rank's), the same on every rank, and whether a save is
        due by the wall clock on any rank (`timed`: this rank's, `checkpoint_every_minutes`): a collective each
        step, of two numbers. The most urgent signal (`STOP_PRIORITY`), where ranks caught different ones."""
        code = torch.tensor([_stop_urgency(caught), int(timed)], device=self.device)
        torch.distributed.all_reduce(code, op=torch.distributed.ReduceOp.MAX)
        return _urgency_stop(int(code[0])), bool(code[1])

    def _due(self, every: int, step: int) -> bool:
        """Whether what runs every `every` steps (0: never; `[eval]`, `[validation]`) runs at step `step`: at its
        multiples and at the last step, so the final checkpoint is scored whatever the step count."""
        return bool(every) and (step % every == 0 or step == self.config.optim.steps)

    def _evaluate_saved(self, step: int, metrics_path: Path, saved: Path | None, history: list[dict[str, Any]],
                        bar: Any, sim: bool = True) -> None:
        """The sim evaluation of step `step` (`sim`; a resume may have only a validation to catch up), after its save
        (an evaluation that fails keeps the checkpoint); the card of the checkpoint saved at that step is written
        again, so its figures are that checkpoint's. Ctrl-C stops it, the step saved: the resume runs it
        (`_unlogged_evaluations`)."""
        from .model_card import write_model_card

        try:
            if sim:
                self._evaluate(step, metrics_path)
        except KeyboardInterrupt as stop:  # the weights are the step's (evaluation changes none): keep it
            bar.close()
            if self.world > 1:
                raise
            self._stop_interrupted(step, saved or self._save(step, history), stop)
        if saved is not None:
            write_model_card(saved, saved, self.out)

    def _unlogged_evaluations(self, step: int) -> list[str]:
        """The held-out validation and sim evaluation due at checkpoint step `step` that the run's log lacks: its
        session stopped after the save (Ctrl-C, a kill during the evaluation), or this session turned one on
        (`validation.every` and `[eval]` may change on resume). The run does them before it trains on, or stops."""
        from ..viz.train_report import metrics_lines

        logged = {key for line in metrics_lines(self.out) if line.get("step") == step for key in line}
        due = (("held-out validation", "val/loss", self.config.validation.every),
               ("sim evaluation", "eval_success_rate", self.config.eval.every))
        return [name for name, key, every in due if self._due(every, step) and key not in logged]

    @staticmethod
    def _stop_interrupted(step: int, saved: Path | None, stop: KeyboardInterrupt) -> None:
        if saved is not None:  # by rank 0, which saved it
            logger.warning("%s after step %d: saved %s; the same `worldpolicy train` command resumes from it",
                           how_stopped(stop), step, saved)
        raise stop

    def _previous_run(self, checkpoints: list[Path]) -> tuple[dict[str, Any], Path, int] | None:
        """The settings of the run `output_dir` already holds, where they were read and its step; None for a new run."""
        config_file, metrics = self.out / "config.json", self.out / METRICS_FILE
        # the fingerprint of the data the resumed run trained on, and its `data_key` (older runs: not stored)
        self._resumed_data = self._resumed_data_key = self._resumed_state = None
        if checkpoints:
            self._resumed_state = state = read_trainer_state(checkpoints[-1])
            self._resumed_data, self._resumed_data_key = state.get("data_fingerprint"), state.get("data_key")
            return state["config"], checkpoints[-1], int(state["step"])
        if config_file.is_file():
            return json.loads(config_file.read_text()), config_file, 0
        if metrics.exists():
            raise ValueError(f"output_dir {str(self.out)!r} holds a {METRICS_FILE} but no config.json or checkpoint "
                             "(another run's log?): choose a new --out / output_dir, or move the file away")
        return None

    def _check_previous_run(self, previous: tuple[dict[str, Any], Path, int] | None) -> None:
        """One folder holds one run: continue it only with the settings it was trained with (a changed LR would be
        overridden by the restored schedule, a changed seed or chunk would not be the run its log describes), and never
        write over another run's config.json or metrics.jsonl."""
        if previous is None:
            return
        saved, where, step = previous
        changes = changed_settings(saved, self.config.to_dict())
        if changes:
            flags = [f"{flag} sets {name}" for name, flag in SELECTION_FLAGS.items()
                     if any(change.startswith(f"{name}:") for change in changes)]
            given = f" ({', '.join(flags)} on the command line)" if flags else ""
            raise ValueError(f"output_dir {str(self.out)!r} holds a run ({where}, step {step}) with other settings: "
                             f"{'; '.join(changes)}. Put them back to resume it{given}, or choose a new --out / "
                             f"output_dir (a resume may change only {', '.join(RESUMABLE)})")
        if self._resumed_data_key not in (None, self.data_key):  # re-recorded: found now, not once the weights load
            if isinstance(self.data_key, list) and isinstance(self._resumed_data_key, list):  # a mixture's sources
                i = next((i for i, (old, new) in enumerate(zip(self._resumed_data_key, self.data_key)) if old != new),
                         0)
                raise changed_data(self.config.data.mixture[i].dataset, source_prefix(i))
            raise changed_data(self.config.data.dataset)
        if self.config.optim.steps < step:
            raise ValueError(f"optim.steps={self.config.optim.steps} (the config's, or --steps) is below step {step}, "
                             f"where the run in {str(self.out)!r} already is: pass --steps {step} or more (or set "
                             f"optim.steps), or choose a new --out / output_dir")

    def _refuse_non_finite(self, step: int, what: str, value: float) -> None:
        """Stop before a NaN/inf reaches the weights: saving it would rotate the good checkpoints away."""
        if not math.isfinite(value):
            newest = self._checkpoints()
            kept = f"the newest checkpoint, {newest[-1]}, is from before" if newest else "no checkpoint was saved"
            raise ValueError(f"step {step}: the {what} is {value}; stopped without saving ({kept}). The run is "
                             "deterministic, so resuming it reaches this step again: check the data, or start a new "
                             "run (another --out / output_dir) with a lower optim.lr or an optim.grad_clip")

    # -- validation -----------------------------------------------------------------------------------------------

    def _validation_due(self, step: int) -> bool:
        """Whether step `step` scores the held-out windows: every `validation.every` steps from 0 (the starting
        weights) and at the last step, on rank 0 (the others train on; the loss is one process's, as `[eval]`'s), or
        on every rank of a sharded run, each scoring its share (`_validate`)."""
        return (self.rank == 0 or self.sharded) and self._due(self.config.validation.every, step)

    def _validation_pairs(self) -> list[tuple[int, str]]:
        """(held-out window, objective) scored at each validation: every held-out window encoded, the
        `validation.windows` spread evenly over the held-out episodes' (`WindowSpec.windows`; all where they hold
        fewer), each under every objective the run trains."""
        return [(w, objective) for w in range(len(self.val_examples)) for objective in self.objective_names]

    def _validate(self, step: int, metrics_path: Path) -> dict[str, Any]:
        """The held-out loss of the live weights, logged as `val/...` fields of one metrics line. Every call scores
        the same windows under the same objectives, σ and noise (drawn from a generator seeded by (seed, 0, 2), a
        stream no training draw takes) and action prefixes (`_prefixed`), without gradients and in eval mode
        (restored after), so two calls on the same weights log the same numbers and the curve moves only with the
        weights. `val/loss` is the training loss's expectation on held-out data: each objective's mean loss weighted
        by its share of the mix; the parts are means over the examples that have them, as the training line's are.
        With `validation.action_chunks`, the line holds the held-out action error too (`_action_error`).

        A sharded run scores on every rank: each round of `optim.batch_size` pairs is split as a training step's
        batch is, each rank skipping the noise of the pairs before and after its own (so every pair gets the draws
        one process gives it), and the sums are all-reduced; rank 0 logs. A rank with no pair in the last round
        scores the round's first and drops it: FSDP gathers a group only with every rank taking part."""
        cfg = self.config
        tick = time.perf_counter()
        pairs = self._validation_pairs()
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence([cfg.seed, 0, 2]).generate_state(1)[0]))
        # σ of every pair, then the noise pair by pair in this order: the draws do not depend on how pairs are batched
        sigmas = self.timesteps.sample(len(pairs), generator)
        size = cfg.optim.batch_size // self.world  # what one process holds in a training step
        ranks, rank = (self.world, self.rank) if self.sharded else (1, 0)
        # the sum and count of each part (over every objective, then per objective) and of each objective's total
        keys = [f"loss_{term}{suffix}" for term in ("video", "action")
                for suffix in ("", *(f"_{o}" for o in self.objective_names))] + self.objective_names
        sources = sorted(set(self._val_sources or []))  # a mixture's: each objective's total per source too
        keys += [f"{o}@{j}" for j in sources for o in self.objective_names]
        sums = torch.zeros(2, len(keys), dtype=torch.float64)
        column = {key: i for i, key in enumerate(keys)}

        def add(key: str, value: float) -> None:
            sums[0, column[key]] += value
            sums[1, column[key]] += 1

        def skip(first: int, stop: int) -> None:  # the noise of pairs another rank scores
            for w, _ in pairs[first:stop]:
                draw_noise(self.val_examples[w], self.transformer.config.action_dim, generator)

        self.transformer.eval()
        try:
            with torch.no_grad():
                for start in range(0, len(pairs), size * ranks):
                    stop = min(start + size * ranks, len(pairs))
                    first, last = min(start + rank * size, stop), min(start + (rank + 1) * size, stop)
                    skip(start, first)
                    mine = range(first, last) if last > first else range(start, start + 1)
                    # prefixes as training draws them, from (seed, pair, 4): a stream no training draw takes
                    examples = [self._prefixed(self.val_examples[pairs[i][0]], pairs[i][1], (cfg.seed, i, 4))
                                for i in mine]
                    losses = self.loss_module(examples, [pairs[i][1] for i in mine], sigmas[mine.start:mine.stop],
                                              generator, scoring=True)
                    for i, (vision, action) in zip(range(first, last), losses):
                        objective, total = pairs[i][1], 0.0
                        for term, loss, weight in (("video", vision, 1.0),
                                                   ("action", action, cfg.objectives.action_loss_weight)):
                            if loss is not None:
                                add(f"loss_{term}", float(loss))
                                add(f"loss_{term}_{objective}", float(loss))
                                total += weight * float(loss)
                        add(objective, total)
                        if self._val_sources is not None:
                            add(f"{objective}@{self._val_sources[pairs[i][0]]}", total)
                    skip(last, stop)
        finally:
            self.transformer.train()
        if self.sharded:
            reduced = sums.to(self.device)  # NCCL reduces GPU tensors only
            torch.distributed.all_reduce(reduced)
            sums = reduced.cpu()
        means = {key: float(total / count) for key, (total, count) in zip(keys, sums.T.tolist()) if count}
        share = dict(zip(self.objective_names, self.objective_probs.tolist()))
        loss = sum(share[objective] * means[objective] for objective in self.objective_names if objective in means)
        line = {"step": step, "val/loss": loss,
                **{f"val/{key}": value for key, value in means.items() if key.startswith("loss_")},
                "val/windows": len(pairs) // len(self.objective_names)}
        for j in sources:  # each mixture source's held-out loss, as `val/loss` of its windows alone
            line[source_metric("val/loss", j)] = sum(share[o] * means[f"{o}@{j}"] for o in self.objective_names
                                                     if f"{o}@{j}" in means)
        if self._val_actions:  # on every rank of a sharded run, each sampling its share
            line.update(self._action_error(step))
        if self.rank != 0:
            return line
        sampled = ""
        if "val/action_chunks" in line:
            normalized = line["val/action_mae"]
            sampled = (f", action MAE {normalized:.4g} (normalised)" if normalized is not None else ", action MAE") + \
                f" over {line['val/action_chunks']} sampled chunks"
        self._log(metrics_path, line)

        def source_mae(j: int) -> str:
            mae = line.get(source_metric("val/action_mae", j))
            return f", action MAE {mae:.4g}" if mae is not None else ""

        # the setting that held them out: `validation.episodes`, or each mixture table's own `validation_episodes`
        held = f"validation.episodes {cfg.validation.episodes}" if not cfg.data.mixture else "; ".join(
            f"{held_out_setting(source_prefix(j))} {cfg.data.mixture[j].validation_episodes}: "
            f"{line[source_metric('val/loss', j)]:.4g}{source_mae(j)}" for j in sources)
        logger.info("step %d: held-out loss %.4g%s (%s, %d windows, %.1f s)", step, loss, sampled, held,
                    line["val/windows"], time.perf_counter() - tick)
        return line

    def _action_error(self, step: int) -> dict[str, Any]:
        """The open-loop action error of the live weights on the held-out episodes, the number Cosmos Policy runs are
        watched by (an action L1 of sampled chunks): `validation.action_chunks` chunks sampled at the same frames with
        the same seeds (the run's `seed`, episode i's `seed + i`) and `validation.action_steps` denoising steps every
        time, compared with the recorded actions by `data.openloop.compare_open_loop`, the computation `dataset eval`
        runs on a checkpoint. `val/action_mae` is the MAE on the model's normalised action scale (the embodiment's
        stats), mean over the columns (`OpenLoopResult.normalized_mae`, `dataset eval`'s `mae_normalized`: unit-free,
        Cosmos Policy's action L1; None where the stats hold every column constant), `val/action_mae/<column>` each
        column's MAE in its physical units. A sharded run samples on every rank, each its share (`_sampled_share`).

        A mixture samples `validation.action_chunks` chunks on each source holding episodes out (its table's
        `validation_episodes`, read as its table reads its dataset): `val/action_mae/source_<i>` is source i's
        normalised MAE, and `val/action_mae` and `val/action_mae/<column>` the means of the sources' weighted by their
        tables' weights (as the training batches draw them), `val/action_chunks` every source's chunks."""
        from ..data.openloop import compare_open_loop

        size = self.config.optim.batch_size // self.world
        scored: dict[int | None, tuple[Any, int]] = {}
        with self._live_policy(self.config.validation.action_steps, f"step-{step}") as policy:
            for source, (data, starts) in self._val_actions.items():
                if self.sharded:
                    result, mae, chunks = self._sampled_share(policy, data, starts, size)
                    scored[source] = replace(result, mae=mae), chunks
                else:
                    result = compare_open_loop(policy, data, starts, seed=self.config.seed, batch_size=size)
                    scored[source] = result, result.chunks
        if None in scored:  # one dataset
            result, chunks = scored[None]
            return {"val/action_mae": result.normalized_mae(),
                    **{f"val/action_mae/{column}": float(mae) for column, mae in zip(result.columns, result.mae)},
                    "val/action_chunks": chunks}
        weights = {j: self.config.data.mixture[j].weight for j in scored}
        total = sum(weights.values())
        # one scale for every source (the model's stats, `normalized_mae`): each None, or none is
        normalized = {j: result.normalized_mae() for j, (result, _) in scored.items()}
        columns = next(iter(scored.values()))[0].columns
        mae = sum(weights[j] * result.mae for j, (result, _) in scored.items()) / total
        return {"val/action_mae": None if None in normalized.values() else
                sum(weights[j] * normalized[j] for j in scored) / total,
                **{f"val/action_mae/{column}": float(m) for column, m in zip(columns, mae)},
                **{source_metric("val/action_mae", j): normalized[j] for j in scored},
                "val/action_chunks": sum(chunks for _, chunks in scored.values())}

    def _sampled_share(self, policy: Any, data: Any, starts: dict[int, list[int]],
                       size: int) -> tuple[Any, np.ndarray, int]:
        """A sharded run's held-out action error: the batches one process samples (`size` chunks of one episode)
        dealt out to the ranks in turn, sampled in lockstep, as FSDP gathers a block's weights only with every rank
        taking part: each round every rank samples one batch of exactly `size` requests (`_PaddedBatches`), a rank out
        of batches the first one again, its result dropped. The absolute errors' sums, the steps and the chunks are
        all-reduced. Returns one of this rank's results (its columns and scales: every rank's), the MAE of each column
        over every rank's chunks, and their count."""
        from ..data.openloop import compare_open_loop

        batches = [(episode, frames[first:first + size]) for episode, frames in starts.items()
                   for first in range(0, len(frames), size)]
        mine = batches[self.rank::self.world]
        padded = _PaddedBatches(policy, size)
        sums = np.zeros(len(policy.embodiment.columns) + 2)  # each column's absolute errors, the steps, the chunks
        for turn in range(-(-len(batches) // self.world)):
            episode, frames = mine[turn] if turn < len(mine) else batches[0]
            result = compare_open_loop(padded, data, {episode: frames}, seed=self.config.seed, batch_size=size)
            if turn < len(mine):
                sums += [*(result.mae * result.steps), result.steps, result.chunks]
        reduced = torch.from_numpy(sums).to(self.device)  # NCCL reduces GPU tensors only
        torch.distributed.all_reduce(reduced)
        sums = reduced.cpu().numpy()
        return result, sums[:-2] / max(sums[-2], 1), int(sums[-1])

    @contextlib.contextmanager
    def _live_policy(self, steps: int | None, source: str):
        """The live weights as a `Policy` sampling with `steps` denoising steps (None: the embodiment's preset's), for
        the block: no copy, so a LoRA run samples with its adapters, and under the autocast a bf16 run trains with
        (its weights mix bf16 and fp32); in eval mode, training mode restored after. A fresh `Engine` each time: its
        caches hold nothing of earlier weights.

        A sharded run's root group (embeddings, heads, time embedder: gathered by FSDP only inside the loss module's
        call) is gathered for the block, the blocks' towers as they run, on every rank at once: the ranks must then
        run the towers alike (`_sampled_share`). The engine caches no caption's text K/V: each request runs the text
        tower, so ranks sampling other captions run it as many times."""
        from ..engine import Engine, SamplingConfig
        from ..policy import Policy

        self.transformer.eval()
        if self.sharded:  # after a forward of the loss module (the held-out loss's), which FSDP takes as its root
            self.loss_module.unshard()
        try:
            engine = Engine(self.transformer, self.vae, self.tokenizer, self.scheduler,
                            use_native_flow_schedule=self.pipeline_flags["use_native_flow_schedule"],
                            default_use_system_prompt=self.pipeline_flags["default_use_system_prompt"],
                            **({"text_cache_size": 0} if self.sharded else {}))
            preset = self.embodiment.sampling_preset
            sampling = SamplingConfig.from_preset(preset) if preset else SamplingConfig()
            # what it warns of once (a held-out state outside the training range) is said once a run, not each time
            # the crop of this run's frames, not what `source` (its start) recorded
            policy = Policy(engine, self.embodiment, sampling.updated(steps=steps), source=source, said=self._live_said,
                            center_crop=config_center_crop(self.config.to_dict()) or False)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.optim.precision == "bf16"):
                yield policy
        finally:
            if self.sharded:
                self.loss_module.reshard()
            self.transformer.train()

    def _evaluate(self, step: int, metrics_path: Path) -> dict[str, Any]:
        """The periodic sim evaluation: the live weights as a `Policy` on `eval.task`, success rate to the log."""
        from ..sim.env import TabletopEnv
        from ..sim.evaluate import evaluate
        from ..sim.policies import control_hz_for, policy_fps, wrap_policy

        cfg = self.config.eval
        with self._live_policy(cfg.steps, f"step-{step}") as policy:
            # at its own rate, as `worldpolicy sim` runs a checkpoint: a 10 fps embodiment's ran 1.5 times too fast
            env = TabletopEnv(cfg.task, control_hz=control_hz_for(policy_fps(policy)), perturb=cfg.perturb)
            try:
                report = evaluate(env, wrap_policy(policy, seed=cfg.seed), policy_name=f"step-{step}",
                                  episodes=cfg.episodes, seed=cfg.seed, progress=self.progress)
            finally:
                env.close()
        perturb = env.perturbation.spec or None  # canonical, as a sim report.json records it
        line = {"step": step, "eval_task": cfg.task, "eval_success_rate": report.success_rate,
                "eval_episodes": cfg.episodes, "eval_perturb": perturb}
        self._log(metrics_path, line)
        logger.info("step %d: %s success %.1f %% over %s%s", step, cfg.task, 100 * report.success_rate,
                    plural(cfg.episodes, "episode"), f" perturbed {perturb}" if perturb else "")
        return line
