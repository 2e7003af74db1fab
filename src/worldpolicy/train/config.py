"""Training configuration as data: a TOML or JSON file → `TrainConfig`, checked before anything heavy runs."""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data.actions import ACTION_CONVERSIONS, DEFAULT_ROBOT
from ..data.checks import check_once
from ..data.layout import ACTION_KEYS, STATE_KEYS, SUCCESS_WRITERS
from ..errors import brief_list, close_match, is_integer
from ..fileio import flat_settings
from ..hub import HUB_DATASET_EXAMPLE, check_hub_id, hub_id_shaped, shown_value
from ..models import portable_checkpoint
from ..processing.observations import CROP_AREA
from .objectives import COSMOS_POLICY_MIX, OBJECTIVES, check_timesteps
from .tracking import TrackingConfig

if TYPE_CHECKING:
    from ..data import LeRobotDataset

# The episode settings and the `worldpolicy train` flags that override them
EPISODE_FLAGS = {"data.episodes": "--episodes", "data.exclude_episodes": "--exclude-episodes",
                 "validation.episodes": "--val-episodes"}
# ... with the one choosing them by outcome: every selection setting and its flag
SELECTION_FLAGS = {**EPISODE_FLAGS, "data.success": "--success"}
# `data.success`: every episode, or only those meta/episodes' success column flags as succeeded
SUCCESS_CHOICES = ("any", "only")


# The `[data]` settings a `[[data.mixture]]` table may set for its own dataset (unset there: `[data]`'s); the others
# (chunk_size, stride, cache_dir) are the run's, one for every source: its windows are the trained embodiment's chunks
MIXTURE_OWN = ("source_embodiment", "action_keys", "state_keys", "video_keys", "action_conversion", "robot", "episodes",
               "exclude_episodes", "success")


@dataclass
class MixtureSource:
    """One `[[data.mixture]]` table: a dataset trained on beside the others, each batch position drawn from it with
    probability `weight` / (the sum of the tables' weights) (`train.data.MixtureSampler`), read with `[data]`'s
    settings except those it sets itself (`MIXTURE_OWN`: the layout, cameras, conversion and episodes of its own
    recording)."""

    dataset: str = ""
    weight: float = 0.0
    source_embodiment: str | None = None
    action_keys: list[str] | None = None
    state_keys: list[str] | None = None
    video_keys: list[str] | None = None
    action_conversion: str | None = None
    robot: str | None = None
    episodes: list[int] | None = None
    exclude_episodes: list[int] | None = None
    success: str | None = None
    # this dataset's episodes held out of training and scored as `[validation]` says (its `every`, `windows`): the
    # mixture's `validation.episodes`, whose indices are each dataset's own
    validation_episodes: list[int] = field(default_factory=list)


@dataclass
class DataConfig:
    dataset: str = ""
    chunk_size: int = 16
    # the dataset's action layout and its conversion to the trained embodiment's; unset: read from the dataset where
    # that is unambiguous (`data.window_spec`), and stored resolved
    source_embodiment: str | None = None
    action_keys: list[str] = field(default_factory=lambda: list(ACTION_KEYS))
    state_keys: list[str] = field(default_factory=lambda: list(STATE_KEYS))
    # unset: the videos named as the embodiment's cameras (`data.observations.camera_sources`)
    video_keys: list[str] | None = None
    action_conversion: str | None = None
    robot: str = DEFAULT_ROBOT
    stride: int = 1
    # which episodes (indices from 0, as `LeRobotDataset(repo_id, episodes=[...])` takes them) to train on: unset, all
    # of them; `exclude_episodes` then leaves some out (a broken recording, a held-out set) without listing the rest
    episodes: list[int] | None = None
    exclude_episodes: list[int] = field(default_factory=list)
    # "only": of those, the episodes meta/episodes' success column flags as succeeded (a `dataset from-sim
    # --keep-failures` recording, the expert's or a policy's: filtered behaviour cloning); "any": every one. Held-out
    # episodes too must have succeeded (`ValidationConfig.held_out`)
    success: str = "any"
    cache_dir: str | None = None  # default: <output_dir>/cache
    # several datasets trained on at once instead of `dataset` (`[[data.mixture]]` tables: `MixtureSource`); empty: one
    mixture: list[MixtureSource] = field(default_factory=list)

    def sources(self) -> list[DataConfig]:
        """Each dataset trained on, as the `[data]` settings that read it: this one, or each `[[data.mixture]]`
        table's (its own settings over `[data]`'s, `MIXTURE_OWN`)."""
        if not self.mixture:
            return [self]
        return [replace(self, dataset=source.dataset, mixture=[],
                        **{name: getattr(source, name) for name in MIXTURE_OWN if getattr(source, name) is not None})
                for source in self.mixture]

    def failed_episodes(self, succeeded: Sequence[bool] | None, prefix: str = "data.") -> list[int]:
        """The episodes `success` leaves out, ascending, of a dataset whose success column is `succeeded`
        (`LeRobotDataset.episode_success`): with "only" those that failed, else none. Filtering a dataset that has no
        such column is refused, naming the setting (after `prefix`: a mixture table's `data.mixture[i].`) and the
        dataset."""
        if self.success == "any":
            return []
        if succeeded is None:
            raise ValueError(f"{prefix}success={self.success!r} keeps the episodes that succeeded, but {prefix}dataset "
                             f"{self.dataset!r} does not say which did (no success column in meta/episodes; "
                             f"{SUCCESS_WRITERS}): train on every episode ({prefix}success any), or give a dataset "
                             "with the column")
        return [i for i, ok in enumerate(succeeded) if not ok]

    def selected_episodes(self, num_episodes: int, held_out: Sequence[int] = (),
                          succeeded: Sequence[bool] | None = None, prefix: str = "data.") -> tuple[int, ...] | None:
        """The episodes trained on, in ascending order, of a dataset of `num_episodes`; None for all of them (so a run
        that selects nothing keeps the latent cache and resume fingerprint of one from before the setting). Each
        index is checked against the dataset here, naming the setting (after `prefix`: a mixture table's
        `data.mixture[i].`), the indices given and the range accepted. `held_out` (`validation.episodes`, a table's
        `validation_episodes`: `held_out_setting`, checked by `ValidationConfig.held_out`) is never trained on: taken
        out of "all episodes"; an explicit `episodes` list naming one of them is refused there. `succeeded` is the
        dataset's success column, which `success` filters on (`failed_episodes`)."""
        failed = self.failed_episodes(succeeded, prefix)
        for name, given in (("episodes", self.episodes), ("exclude_episodes", self.exclude_episodes)):
            if given is not None:
                check_episode_list(f"{prefix}{name}", given, num_episodes, f"{prefix}dataset")
        if self.episodes == []:
            raise ValueError(f"{prefix}episodes=[]: no episode to train on; name some, or leave it unset for all of "
                             "them")
        chosen = range(num_episodes) if self.episodes is None else self.episodes
        # numpy's ints: as in a file
        kept = tuple(sorted(int(i) for i in set(chosen) - set(self.exclude_episodes) - set(held_out) - set(failed)))
        if not kept:
            among = f"every episode of {prefix}dataset" if self.episodes is None else \
                f"{prefix}episodes={self.episodes}"
            leaving = [f"{name}={list(value)}" for name, value in ((f"{prefix}exclude_episodes", self.exclude_episodes),
                                                                   (held_out_setting(prefix), held_out)) if value]
            if failed:
                leaving.append(f"{prefix}success={self.success!r} (episodes {failed} failed)")
            left = " and ".join(leaving) + (" leave" if len(leaving) > 1 else " leaves")
            raise ValueError(f"{left} out {among}: nothing to train on")
        return None if len(kept) == num_episodes else kept


def source_prefix(source: int | None) -> str:
    """What names a dataset's `[data]` settings in a refusal or a note: `data.` for the run's one dataset (`source`
    None), `data.mixture[i].` for `[[data.mixture]]` table i's."""
    return "data." if source is None else f"data.mixture[{source}]."


def source_name(source: int, dataset: str = "") -> str:
    """What names `[[data.mixture]]` table `source` in a message: `data.mixture[i]` (`source_prefix`'s, no dot), its
    dataset after it where given (`data.mixture[1] (lerobot/aloha)`)."""
    return source_prefix(source).removesuffix(".") + (f" ({dataset})" if dataset else "")


def held_out_setting(prefix: str) -> str:
    """The setting holding episodes out of training for validation, of the `[data]` settings after `prefix`:
    `validation.episodes` for `data.`, a mixture table's own `validation_episodes` for `data.mixture[i].`."""
    return "validation.episodes" if prefix == "data." else f"{prefix}validation_episodes"


def check_episode_list(setting: str, given: Any, num_episodes: int, dataset: str = "data.dataset") -> None:
    """A list of episode indices of a dataset of `num_episodes`, each named once; else an error naming `setting`, the
    indices given and the range accepted."""
    if isinstance(given, str) or not isinstance(given, Sequence) or not all(is_integer(i) for i in given):
        raise ValueError(f"{setting}={given!r}: expected a list of integers (episode indices)")  # built in Python
    outside = [i for i in given if not 0 <= i < num_episodes]
    if outside:
        raise ValueError(f"{setting}={brief_list(given)}: {brief_list(outside)} not episodes of {dataset}, which "
                         f"has {num_episodes} (accepted: indices 0 to {num_episodes - 1})")
    check_once(setting, given)


@dataclass
class ObjectiveConfig:
    """Objective weights (policy / forward_dynamics / inverse_dynamics) or `preset = "cosmos_policy"`."""

    preset: str | None = None
    policy: float = 1.0
    forward_dynamics: float = 0.0
    inverse_dynamics: float = 0.0
    action_loss_weight: float = 1.0
    # real-time chunking: the share of policy examples given a clean prefix of their target actions, d rows drawn
    # uniformly in 1..action_prefix_max_rows (no noise, no loss there), so the model learns to continue the actions
    # still executing while it computes (`Policy.act(action_prefix=...)`); 0: never (as before the setting)
    action_prefix_probability: float = 0.0
    action_prefix_max_rows: int | None = None

    def weights(self) -> dict[str, float]:
        if self.preset == "cosmos_policy":
            return dict(COSMOS_POLICY_MIX)
        return {name: float(getattr(self, name)) for name in OBJECTIVES}


@dataclass
class TimestepConfig:
    kind: str = "logit_normal"
    mean: float = 0.0
    std: float = 1.0
    shift: float = 5.0


PRECISIONS = ("fp32", "bf16")
LORA_SAVES = ("merged", "adapter")
DATA_PARALLEL = ("ddp", "fsdp")


@dataclass
class OptimConfig:
    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-4
    # torch's AdamW default; Cosmos Policy's 0.1 is for 40K-step full fine-tunes of other backbones (docs/training.md)
    weight_decay: float = 0.01
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    # bf16: the forward runs under bf16 autocast (weights, gradients and AdamW state stay fp32), as the Cosmos Policy
    # recipe trains; fp32 is exact against the reference forward and the default
    precision: str = "fp32"
    # recompute each layer (both towers) in the backward pass instead of keeping its activations (same gradients)
    gradient_checkpointing: bool = False
    # how torchrun processes share the model: "ddp" = each holds all of it (weights, gradients, AdamW state);
    # "fsdp" = each holds 1/N of them (PyTorch FSDP2, per transformer block), gathered block by block as it runs
    data_parallel: str = "ddp"


@dataclass
class FinetuneConfig:
    mode: str = "full"  # full | lora
    # LoRA checkpoints: "merged" = a complete pipeline folder; "adapter" = the adapters, the fully trained weights and
    # the base's name (megabytes instead of the model's size; loaded onto the base)
    lora_save: str = "merged"
    lora_rank: int = 16
    lora_alpha: float = 16.0
    lora_targets: list[str] = field(
        default_factory=lambda: ["add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"]
    )


@dataclass
class EvalConfig:
    every: int = 0  # steps, and the last step; 0 = never
    task: str = "reach"
    episodes: int = 10
    seed: int = 10_000
    steps: int | None = None  # denoising steps
    # shifts on top of every scene, as `worldpolicy sim --perturb` takes them ("light=0.5", "camera=0.03,table=random"
    # or a list of such: `sim.perturb`); unset: the scenes as drawn
    perturb: str | list[str] | None = None


@dataclass
class ValidationConfig:
    """The held-out loss and action error (docs/training.md, "Validation"): episodes never trained on, scored every
    `every` steps on the same windows with the same σ and noise, and the same chunks sampled with the same seeds, each
    time, so the curves move only with the weights."""

    episodes: list[int] = field(default_factory=list)  # held out of training; none: no validation
    every: int = 0  # steps; 0 = never
    windows: int = 32  # held-out windows scored (spread evenly over them; all where they hold fewer)
    # chunks sampled from held-out frames at each validation, compared with the recorded actions (val/action_mae, as
    # `dataset eval` compares them); 0: none
    action_chunks: int = 8
    action_steps: int | None = None  # their denoising steps; unset: the embodiment's sampling preset's
    # the checkpoint of the lowest val/loss is kept beside the `keep_checkpoints` newest (rotation passes it by)
    keep_best: bool = False

    def held_out(self, num_episodes: int, data: DataConfig, succeeded: Sequence[bool] | None = None,
                 prefix: str = "data.") -> tuple[int, ...]:
        """The held-out episodes, ascending, checked against the dataset and against `data.episodes`: an episode
        listed for training and for validation would score the model on what it learned. With `data.success`
        filtering, a failed one (`succeeded`: the dataset's success column) is refused: its loss would score imitating
        the failures the run does not train on. `prefix`: `data`'s settings' (a mixture table's, `data.mixture[i].`,
        whose `validation_episodes` these are: `held_out_setting`)."""
        setting = held_out_setting(prefix)
        check_episode_list(setting, self.episodes, num_episodes, f"{prefix}dataset")
        if self.episodes and (failed := sorted(set(data.failed_episodes(succeeded, prefix)) & set(self.episodes))):
            raise ValueError(f"{setting}={self.episodes} names {failed}, which failed ({prefix}dataset's success "
                             f"column), but {prefix}success={data.success!r} trains on episodes that succeeded: hold "
                             f"out episodes that succeeded, or train on every episode ({prefix}success any)")
        if data.episodes is not None and (both := sorted(set(data.episodes) & set(self.episodes))):
            raise ValueError(f"{setting}={self.episodes} overlaps {prefix}episodes={data.episodes} (both name "
                             f"{both}): a held-out episode must not be trained on; remove it from {prefix}episodes, "
                             f"or leave {prefix}episodes unset (every episode except the held-out ones)")
        return tuple(sorted(int(i) for i in self.episodes))


@dataclass
class AugmentConfig:
    """Image augmentation of the training frames (docs/training.md, "Image augmentation"): the Cosmos Policy recipe's,
    one draw per window for all its frames (`train.augment.augment_frames`). The latent cache holds `copies` draws of
    each window, one picked per step; a checkpoint records the setting, and inference crops the centre `crop_area` of
    its frames as it reads the record (`policy.trained_center_crop`)."""

    enabled: bool = False
    copies: int = 4  # augmented encodings of each window in the latent cache (its size and encoding time times this)
    crop_area: float = CROP_AREA  # the share of the frame's area cropped (aspect ratio kept), resized back; 1: none
    rotation: float = 5.0  # degrees, either way; 0: none
    # factors drawn uniformly in [low, high]; [1, 1]: none
    brightness: list[float] = field(default_factory=lambda: [0.7, 1.3])
    contrast: list[float] = field(default_factory=lambda: [0.6, 1.4])
    saturation: list[float] = field(default_factory=lambda: [0.5, 1.5])
    hue: float = 0.05  # a share of the colour wheel, either way (at most 0.5); 0: none

    def check(self) -> None:
        """Every setting in its range, named with what is accepted; set while `enabled` is false: refused (they
        would do nothing)."""
        if not self.enabled:
            defaults = AugmentConfig()
            changed = [f"augment.{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                       if getattr(self, f.name) != getattr(defaults, f.name)]
            if changed:
                raise ValueError(f"{', '.join(changed)} set, but augment.enabled is false, so no frame is augmented: "
                                 "set augment.enabled = true, or remove them")
            return
        if not isinstance(self.copies, int) or isinstance(self.copies, bool) or self.copies < 1:
            raise ValueError(f"augment.copies={self.copies!r}: must be an integer >= 1 (augmented encodings of each "
                             "window in the latent cache)")
        for name, value, low, high, what in (
                ("crop_area", self.crop_area, 0.0, 1.0, "the share of the frame's area kept; 1: no crop"),
                ("rotation", self.rotation, 0.0, 180.0, "degrees either way; 0: no rotation"),
                ("hue", self.hue, 0.0, 0.5, "a share of the colour wheel either way; 0: no hue shift")):
            if not (low <= value <= high) or (name == "crop_area" and value == 0):
                bounds = f"in (0, {high:g}]" if name == "crop_area" else f"in [{low:g}, {high:g}]"
                raise ValueError(f"augment.{name}={value!r}: must be {bounds} ({what})")
        for name in ("brightness", "contrast", "saturation"):
            pair = getattr(self, name)
            if len(pair) != 2 or not all(math.isfinite(v) for v in pair) or not 0 <= pair[0] <= pair[1]:
                raise ValueError(f"augment.{name}={pair!r}: must be [low, high] with 0 <= low <= high (factors "
                                 f"drawn uniformly between them; [1, 1]: no {name} change)")


@dataclass
class TrainConfig:
    output_dir: str = "runs/train"
    checkpoint: str = ""  # shipped, a diffusers-format Cosmos3 folder, LoRA adapter checkpoint or hub id
    # a registered name, a new embodiment spec (stats from the data), or unset: the checkpoint's own, else droid
    embodiment: str | dict[str, Any] | None = None
    seed: int = 0
    log_every: int = 10
    save_every: int = 500
    # also save once this many minutes of wall clock have passed since the session's start or its last save (0: never)
    checkpoint_every_minutes: float = 0.0
    keep_checkpoints: int = 2
    device: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    objectives: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    timesteps: TimestepConfig = field(default_factory=TimestepConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict[str, Any]:
        settings = asdict(self)
        if not self.data.mixture:  # one dataset: stored as before mixtures were (config.json, trainer_state.json)
            del settings["data"]["mixture"]
        return settings

    @property
    def checkpoint_source(self) -> str:
        """The folder or hub id `checkpoint` names here and now: `shipped` is this install's shipped model. The
        setting keeps the name (config.json, trainer_state.json), so a run moved to another machine or environment
        still names the model and not the folder it had in the old one. A hub id is its snapshot's folder holding its
        configs (`hub.model_metadata`, a few KB, fetched as the run starts: the trainer's first use): the embodiment it
        was trained for and its action head are read before anything else, as a local checkpoint's; its weights
        follow as the run loads it (`hub.complete_snapshot`)."""
        from ..models import resolve_checkpoint

        return str(resolve_checkpoint(self.checkpoint))

    def _check_embodiment_name(self) -> None:
        """A named embodiment is a registered one or the starting checkpoint's own (`own_key`), said now, not after
        torch and diffusers import; a hub checkpoint's own is read as the run starts, so there the trainer judges."""
        from ..embodiments import get_embodiment
        from ..models import resolve_checkpoint
        from ..policy import checkpoint_spec

        try:
            get_embodiment(self.embodiment)
        except KeyError:
            start = Path(str(resolve_checkpoint(self.checkpoint, fetch=False)))
            if not start.is_dir():  # a hub id: the trainer judges once its spec is fetched
                return
            own = checkpoint_spec(start)
            if own is None or own_key(own).lower() != self.embodiment.lower():
                raise

    def training_episodes(self, num_episodes: int, succeeded: Sequence[bool] | None = None
                          ) -> tuple[int, ...] | None:
        """`data`'s selection less the held-out `validation.episodes` (`DataConfig.selected_episodes`), every index
        checked against a dataset of `num_episodes` whose success column is `succeeded`."""
        held_out = self.validation.held_out(num_episodes, self.data, succeeded)
        return self.data.selected_episodes(num_episodes, held_out, succeeded)

    def check(self) -> TrainConfig:
        """Every field that can be wrong, named, before any weights or data load."""
        self.checked_datasets()
        return self

    def checked_dataset(self, dataset: LeRobotDataset | None = None) -> LeRobotDataset:
        """`checked_datasets` of a run on one dataset: `data.dataset` opened (`dataset`: opened already)."""
        return self.checked_datasets(None if dataset is None else [dataset])[0]

    def checked_datasets(self, opened: Sequence[LeRobotDataset] | None = None) -> list[LeRobotDataset]:
        """`check`, returning each dataset trained on opened (`data.dataset`, or each `[[data.mixture]]` table's, in
        order): the ones read from then on (`Trainer`), as opening a large dataset's metadata takes seconds. `opened`:
        those opened already (by a caller that checked this config: `worldpolicy train`), read instead of opening them
        again."""
        if not self.checkpoint:
            raise ValueError("checkpoint: required (shipped, a diffusers-format Cosmos3 folder, a LoRA adapter "
                             "checkpoint or a hub id to start from)")
        from ..engine.sources import check_checkpoint_source
        from ..models import resolve_checkpoint

        self.checkpoint = str(portable_checkpoint(self.checkpoint))  # an older version's stored folder: `shipped`
        # before the embodiment and data checks that read it; a run's folder is named with how that run continues; a
        # hub id by its shape (its configs are fetched as the run starts: `checkpoint_source`)
        check_checkpoint_source(resolve_checkpoint(self.checkpoint, fetch=False),
                                run_hint=" (to continue that run itself, give its folder as --out / output_dir "
                                "with its own config)")
        if not self.data.dataset and not self.data.mixture:
            raise ValueError("data.dataset: required (a LeRobot v3 dataset folder or hub id), or [[data.mixture]] "
                             "tables to train on several datasets")
        from ..embodiments import SPEC_FILE_SUFFIX, check_chunk_size, inline_stats_file, read_spec_file
        from ..fileio import file_in_the_way, refuse_foreign_folder

        if isinstance(self.embodiment, str) and self.embodiment.endswith(SPEC_FILE_SUFFIX):
            # the spec itself (its stats inlined), so the checkpoints' embodiment.json names the robot trained; a path
            # left as the setting wrote none, and the checkpoint loaded as droid
            try:
                self.embodiment = inline_stats_file(read_spec_file(Path(self.embodiment).expanduser()))
            except (OSError, ValueError) as exc:
                raise ValueError(f"embodiment={self.embodiment!r}: cannot read the spec file ({exc})") from None
        elif isinstance(self.embodiment, str):
            self._check_embodiment_name()

        folders = (("--out / output_dir", self.output_dir), ("data.cache_dir", self.data.cache_dir))
        for setting, folder in folders:  # now, not after the model loads
            if folder and (blocking := file_in_the_way(folder)) is not None:
                raise ValueError(f"{setting}={folder!r}: {str(blocking)!r} is a file, not a folder; give {setting} a "
                                 "folder (new, or one it wrote before)")
        # a checkpoint, a dataset, another command's run, or a folder of runs (`--out runs` for `runs/new`)
        refuse_foreign_folder(self.output_dir, "--out / output_dir", "train", not_over_runs=True)
        if self.data.cache_dir:  # its latents in a dataset folder travel with it (a push to the hub uploads them)
            refuse_foreign_folder(self.data.cache_dir, "data.cache_dir", "train")
        for setting, folder in folders:
            _refuse_unwritable(setting, folder)  # found now, not when the first latents or checkpoint are written
        if self.data.success not in SUCCESS_CHOICES:
            raise ValueError(f"data.success={self.data.success!r}; accepted: {', '.join(SUCCESS_CHOICES)} (every "
                             "episode, or only those the dataset's success column flags as succeeded)")
        if self.data.mixture:
            datasets = self._checked_mixture(opened)
        else:
            dataset = self._open_dataset() if opened is None else opened[0]
            # the selection checked against its episode count (and success column)
            if (self.data.episodes is not None or self.data.exclude_episodes or self.validation.episodes
                    or self.data.success != "any"):
                self.training_episodes(dataset.num_episodes, dataset.episode_success)
            datasets = [dataset]
        try:
            check_chunk_size(self.data.chunk_size)
        except ValueError as exc:
            raise ValueError(f"data.{exc}") from None
        if self.data.action_conversion not in (None, *ACTION_CONVERSIONS):
            raise ValueError(f"data.action_conversion={self.data.action_conversion!r}; accepted: "
                             f"{', '.join(ACTION_CONVERSIONS)} (or unset: read from the dataset)")
        for name, value in (("optim.steps", self.optim.steps), ("optim.batch_size", self.optim.batch_size),
                            ("data.stride", self.data.stride), ("save_every", self.save_every),
                            ("log_every", self.log_every), ("keep_checkpoints", self.keep_checkpoints)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}={value!r}: must be an integer >= 1")
        minutes = self.checkpoint_every_minutes
        if not isinstance(minutes, (int, float)) or isinstance(minutes, bool) or not (
                math.isfinite(minutes) and minutes >= 0):
            raise ValueError(f"checkpoint_every_minutes={minutes!r}: must be a number of minutes >= 0 and finite (0: "
                             "save every save_every steps only)")
        if not (math.isfinite(self.optim.lr) and self.optim.lr > 0):
            raise ValueError(f"optim.lr={self.optim.lr!r}: must be > 0")
        for name, value, low, high in (("optim.min_lr_ratio", self.optim.min_lr_ratio, 0.0, 1.0),
                                       ("optim.weight_decay", self.optim.weight_decay, 0.0, math.inf),
                                       ("optim.grad_clip", self.optim.grad_clip, 0.0, math.inf),
                                       ("optim.warmup_steps", self.optim.warmup_steps, 0, math.inf),
                                       ("objectives.action_loss_weight", self.objectives.action_loss_weight, 0.0,
                                        math.inf)):
            if not low <= value <= high or not math.isfinite(value):
                raise ValueError(f"{name}={value!r}: must be in [{low}, {high}]" if high < math.inf
                                 else f"{name}={value!r}: must be >= {low} and finite")
        if self.optim.precision not in PRECISIONS:
            raise ValueError(f"optim.precision={self.optim.precision!r}; accepted: {', '.join(PRECISIONS)}")
        if self.optim.data_parallel not in DATA_PARALLEL:
            raise ValueError(f"optim.data_parallel={self.optim.data_parallel!r}; accepted: {', '.join(DATA_PARALLEL)}")
        if self.optim.data_parallel == "fsdp" and self.finetune.mode == "lora":
            raise ValueError("optim.data_parallel='fsdp' with finetune.mode='lora': not supported (a LoRA run trains "
                             "a few adapters, whose gradients and AdamW state every process holds whole; its frozen "
                             "weights are what take the memory): use optim.data_parallel = \"ddp\"")
        if self.optim.data_parallel == "fsdp":
            self._refuse_sharded_sim_evaluation()
        if self.finetune.mode not in ("full", "lora"):
            raise ValueError(f"finetune.mode={self.finetune.mode!r}; accepted: full, lora")
        if self.finetune.lora_save not in LORA_SAVES:
            raise ValueError(f"finetune.lora_save={self.finetune.lora_save!r}; accepted: {', '.join(LORA_SAVES)}")
        if self.finetune.lora_save == "adapter" and self.finetune.mode != "lora":
            raise ValueError(f"finetune.lora_save='adapter' saves LoRA adapters, but finetune.mode="
                             f"{self.finetune.mode!r}: set finetune.mode = 'lora', or drop lora_save")
        if self.finetune.mode == "full" and (lora_set := _lora_only_settings(self.finetune)):
            raise ValueError(f"finetune.mode='full' trains every weight and adds no adapters, but LoRA settings are set "
                             f"({', '.join(lora_set)}): set finetune.mode = 'lora' to train adapters, or remove them")
        if self.finetune.mode == "lora":
            if self.finetune.lora_rank < 1:
                raise ValueError(f"finetune.lora_rank={self.finetune.lora_rank!r}: must be an int >= 1")
            if not self.finetune.lora_alpha > 0:
                raise ValueError(f"finetune.lora_alpha={self.finetune.lora_alpha!r}: must be > 0")
            if not self.finetune.lora_targets:
                raise ValueError("finetune.lora_targets is empty: name the transformer modules to adapt")
        # flow.TimestepSampler's checks now, not once the latent cache is encoded
        check_timesteps(**vars(self.timesteps))
        if self.objectives.preset not in (None, "cosmos_policy"):
            raise ValueError(f"objectives.preset={self.objectives.preset!r}; accepted: cosmos_policy (or unset)")
        if self.objectives.preset is not None:
            defaults = ObjectiveConfig()
            for name, weight in COSMOS_POLICY_MIX.items():
                value = getattr(self.objectives, name)
                if value not in (getattr(defaults, name), weight):  # a default could be the file's, not the user's
                    mix = ", ".join(f"{k} = {v}" for k, v in COSMOS_POLICY_MIX.items())
                    raise ValueError(
                        f"objectives.{name}={value!r} contradicts objectives.preset={self.objectives.preset!r} "
                        f"(which sets {mix}): remove the preset to choose the weights, or remove the weights"
                    )
        weights = self.objectives.weights()
        for name, weight in weights.items():
            if not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f"objectives.{name}={weight!r}: must be >= 0 and finite (a share of the batch)")
        if sum(weights.values()) <= 0:
            raise ValueError(f"objectives: every weight is 0 ({', '.join(f'{k} = {v}' for k, v in weights.items())}): "
                             f"give at least one of {', '.join(OBJECTIVES)} a weight > 0, or set preset = "
                             "'cosmos_policy'")
        self._check_action_prefix(weights["policy"])
        self.augment.check()
        for name, value, low, zero in (("eval.every", self.eval.every, 0, "never"),
                                       ("validation.every", self.validation.every, 0, "never"),
                                       ("validation.windows", self.validation.windows, 1, ""),
                                       ("validation.action_chunks", self.validation.action_chunks, 0,
                                        "no action error")):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name}={value!r}: must be an integer >= {low}" + (f" (0: {zero})" if zero else ""))
        if self.validation.every and not self.validation.episodes and not any(
                t.validation_episodes for t in self.data.mixture):
            where = ("no [[data.mixture]] table sets validation_episodes" if self.data.mixture
                     else "validation.episodes is empty")
            raise ValueError(f"validation.every={self.validation.every} scores held-out episodes, but {where}: name "
                             "the episodes to hold out of training (e.g. episodes = [0]), or set validation.every = 0")
        if self.validation.keep_best and not self.validation.every:
            raise ValueError("validation.keep_best=true keeps the checkpoint of the lowest held-out loss, but "
                             "validation.every is 0 (no held-out loss is scored): set validation.episodes and every "
                             "(a divisor of save_every, so the saved steps are scored), or keep_best = false")
        if self.eval.episodes < 1:
            raise ValueError(f"eval.episodes={self.eval.episodes!r}: must be an integer >= 1")
        # used at the first batch and the first evaluation: checked now, not after the latent cache is encoded
        from ..engine import SamplingConfig
        from ..policy import check_seed

        check_seed(self.seed)
        for name, check in (("eval.seed", lambda: check_seed(self.eval.seed)),
                            ("eval.steps", lambda: SamplingConfig().updated(steps=self.eval.steps)),
                            ("validation.action_steps",
                             lambda: SamplingConfig().updated(steps=self.validation.action_steps))):
            try:
                check()
            except ValueError as exc:  # its message names `seed=` / `steps=`: say which of the settings
                raise ValueError(f"{name}: {exc}") from None
        from ..sim.tasks import list_tasks

        if self.eval.task not in list_tasks():
            raise ValueError(f"eval.task={self.eval.task!r}; accepted: {', '.join(list_tasks())}")
        from ..sim.perturb import parse_perturbations

        parse_perturbations(self.eval.perturb, "eval.perturb")
        self.tracking.check()  # a missing tracker package named with its extra before the model loads
        if self.eval.every:  # before the model loads, not at the first evaluation
            from ..extras import extra_imports

            with extra_imports(f"eval.every={self.eval.every} evaluates in the simulator (0: never)"):
                from ..sim import env  # noqa: F401
        return datasets

    def _checked_mixture(self, opened: Sequence[LeRobotDataset] | None) -> list[LeRobotDataset]:
        """Each `[[data.mixture]]` table checked, naming it (`data.mixture[i].key`), and its dataset opened: a weight
        > 0, a dataset that exists, its episode selection and settings as `[data]`'s are checked. Episode indices are
        a dataset's own, so `[data]` names none, nor `validation.episodes` (a table's `validation_episodes` instead)."""
        for name, value in (("dataset", self.data.dataset or None), ("episodes", self.data.episodes),
                            ("exclude_episodes", self.data.exclude_episodes or None),
                            ("success", None if self.data.success == "any" else self.data.success)):
            if value is not None:
                where = ("each table's dataset" if name == "dataset"
                         else f"{name} in the [[data.mixture]] table of the dataset they are episodes of")
                raise ValueError(f"data.{name}={value!r} is set beside [[data.mixture]], which names the datasets "
                                 f"trained on and their episodes: set {where}, and leave data.{name} unset")
        if self.validation.episodes:
            raise ValueError(f"validation.episodes={self.validation.episodes} with [[data.mixture]]: episode indices "
                             "are each dataset's own; hold episodes out with validation_episodes in the table of the "
                             "dataset they are episodes of, and leave validation.episodes empty")
        datasets = []
        for i, (source, data) in enumerate(zip(self.data.mixture, self.data.sources())):
            where = source_name(i)
            if not source.dataset:
                raise ValueError(f"{where}.dataset: required (a LeRobot v3 dataset folder or hub id)")
            if isinstance(source.weight, bool) or not isinstance(source.weight, (int, float)) or not (
                    math.isfinite(source.weight) and source.weight > 0):
                raise ValueError(f"{where}.weight={source.weight!r}: must be a number > 0 and finite (the table's "
                                 "share of the batch positions is its weight over the sum of the tables' weights)")
            if data.success not in SUCCESS_CHOICES:
                raise ValueError(f"{where}.success={data.success!r}; accepted: {', '.join(SUCCESS_CHOICES)}")
            if data.action_conversion not in (None, *ACTION_CONVERSIONS):
                raise ValueError(f"{where}.action_conversion={data.action_conversion!r}; accepted: "
                                 f"{', '.join(ACTION_CONVERSIONS)} (or unset: read from the dataset)")
            dataset = self._open_dataset(f"{where}.dataset", source.dataset) if opened is None else opened[i]
            held = replace(self.validation, episodes=source.validation_episodes).held_out(
                dataset.num_episodes, data, dataset.episode_success, source_prefix(i))
            data.selected_episodes(dataset.num_episodes, held, dataset.episode_success, source_prefix(i))
            datasets.append(dataset)
        return datasets

    def _open_dataset(self, setting: str = "data.dataset", value: str | None = None) -> LeRobotDataset:
        """`data.dataset` (or the dataset `setting` names: `value`) found (a hub id's fetched now, before any weights
        load) and its metadata read (a v2.1 dataset, a damaged one), not after torch and diffusers import."""
        from ..data import LeRobotDataset
        from ..data.lerobot import dataset_folder

        value = self.data.dataset if value is None else value
        try:
            dataset = dataset_folder(value)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{setting.removesuffix('dataset')}{exc}") from None
        if not dataset.exists():
            raise FileNotFoundError(f"{setting}={value!r} does not exist (expected a LeRobot v3 dataset "
                                    f"folder: `worldpolicy dataset check FOLDER`, or a hub id like "
                                    f"{HUB_DATASET_EXAMPLE!r})")
        if not (dataset / "meta" / "info.json").is_file():
            raise FileNotFoundError(f"{setting}={value!r} has no meta/info.json (not a LeRobot v3 "
                                    f"dataset){_datasets_near(dataset)}")
        return LeRobotDataset.open(dataset)

    def _refuse_sharded_sim_evaluation(self) -> None:
        """The sim evaluation runs on one rank with the whole model, which a sharded run holds 1/N of on each; the
        held-out loss and action error can (every rank scores and samples its share: `Trainer._validate`)."""
        if self.eval.every:
            raise ValueError(f"optim.data_parallel='fsdp' with eval.every={self.eval.every}: not supported (the sim "
                             "evaluation needs the whole model on one rank, which holds 1/N of a sharded one); set it "
                             "to 0 (the held-out loss and action error, `[validation]`, are still logged; score a "
                             "saved checkpoint with `worldpolicy sim`), or use optim.data_parallel = \"ddp\"")

    def _check_action_prefix(self, policy_weight: float) -> None:
        """`objectives.action_prefix_*`: a probability, and a row count that leaves the chunk at least one generated
        row; set together, and only where the policy objective (the one they condition) is trained."""
        probability, max_rows = self.objectives.action_prefix_probability, self.objectives.action_prefix_max_rows
        chunk = self.data.chunk_size
        if not 0.0 <= probability <= 1.0:  # NaN too
            raise ValueError(f"objectives.action_prefix_probability={probability!r}: must be in [0, 1] (the share of "
                             "policy examples given a clean action prefix; 0: none)")
        if max_rows is not None and not 1 <= max_rows <= chunk - 1:
            raise ValueError(f"objectives.action_prefix_max_rows={max_rows!r}: must be an integer from 1 to "
                             f"data.chunk_size - 1 = {chunk - 1} (at least one row of the chunk is generated)")
        if probability and max_rows is None:
            raise ValueError(f"objectives.action_prefix_probability={probability!r} gives policy examples a clean "
                             "prefix of 1 to action_prefix_max_rows actions, but action_prefix_max_rows is unset: set "
                             f"it (1 to {chunk - 1}) to the longest prefix the controller passes (the ticks from a "
                             "request's observation to the hand-over)")
        if not probability and max_rows is not None:
            raise ValueError(f"objectives.action_prefix_max_rows={max_rows!r} is set, but action_prefix_probability "
                             "is 0, so no example is given a prefix: set a probability in (0, 1], or remove "
                             "action_prefix_max_rows")
        if probability and policy_weight <= 0:
            raise ValueError(f"objectives.action_prefix_probability={probability!r} conditions the policy objective, "
                             f"but objectives.policy is 0 (forward and inverse dynamics take no action prefix): give "
                             "the policy a weight > 0, or set action_prefix_probability = 0")


def _datasets_near(folder: Path) -> str:
    """What `data.dataset`'s folder holds instead (a checkpoint: `data.layout.held_instead`, as the dataset commands
    say it) and where the dataset is when it names a folder inside one or above some (`data.layout.datasets_near`),
    said naming what to set; how to make one when it names an HDF5 file of demonstrations (`data.layout.hdf5_hint`)."""
    from ..data.layout import datasets_near, hdf5_hint, held_instead

    if hint := hdf5_hint(folder):
        return hint
    held = held_instead(folder)
    inside, below = datasets_near(folder)
    if inside is not None:
        return f"{held}; it is inside the dataset {str(inside)!r}: set data.dataset to that folder"
    if not below:
        return held
    named = ", ".join(repr(p.relative_to(folder).as_posix()) for p in below[:3])
    more = f" and {len(below) - 3} more" if len(below) > 3 else ""
    subfolders = f"its subfolders {named}{more} are datasets" if len(below) > 1 else f"its subfolder {named} is one"
    return f"{held}; {subfolders}: set data.dataset to the one to train on"


def _refuse_unwritable(setting: str, folder: str | None) -> None:
    """A run writes its latent cache, checkpoints and log into these folders; one on a read-only disk or without write
    permission was found only once the model had loaded and the windows were encoded. The folder itself, or the
    nearest parent that exists (where it will be made), must be writable."""
    if not folder:
        return
    path = Path(os.path.abspath(Path(folder).expanduser()))
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        made = "" if existing == path else ", where the folder would be made,"
        raise ValueError(f"{setting}={folder!r}: {str(existing)!r}{made} is not writable (a read-only disk, or no "
                         f"write permission); give {setting} a folder this user can write")


# What a resumed run may change: how far it trains, where and how often it logs, evaluates, validates, saves and keeps
# checkpoints, whether activations are recomputed (the same gradients: a run resumed on a smaller GPU may need it), how
# processes share the model (ddp or fsdp: the same checkpoints, and in fp32 the same steps) and
# how LoRA checkpoints are written (merged or adapter-only: the same weights) and which trackers get the metrics.
# Everything else (model, data, chunk, seed, LR and its schedule, objectives, finetune mode, the held-out episodes,
# the augmentation...)
# shapes the weights; `validation.windows`, `action_chunks` and `action_steps` do not, but another count scores other
# windows or chunks: one run's held-out curves are one set of inputs from their first point to their last.
RESUMABLE = ("optim.steps", "output_dir", "device", "log_every", "save_every", "checkpoint_every_minutes",
             "keep_checkpoints", "data.cache_dir",
             "eval.*", "optim.gradient_checkpointing", "optim.data_parallel", "finetune.lora_save", "validation.every",
             "validation.keep_best",
             "tracking.*")


# Settings only a LoRA run reads: a full fine-tune that sets them is refused (`check`), and they are not compared
# when resuming a full run (they never shaped its weights; older versions accepted them silently).
LORA_ONLY = ("lora_rank", "lora_alpha", "lora_targets")


def _lora_only_settings(finetune: FinetuneConfig) -> list[str]:
    """`finetune.NAME=value` for each LoRA-only setting that is not its default (a default may be a stored config's,
    not the user's: config.json lists every setting)."""
    defaults = FinetuneConfig()
    return [f"finetune.{name}={getattr(finetune, name)!r}" for name in LORA_ONLY
            if getattr(finetune, name) != getattr(defaults, name)]


# Settings added after runs were first stored, with the behaviour those runs had: compared as if stored.
IMPLIED_BEFORE = {"optim.precision": "fp32", "data.episodes": None, "data.exclude_episodes": [],
                  "data.success": "any", "validation.episodes": [], "objectives.action_prefix_probability": 0.0,
                  "objectives.action_prefix_max_rows": None, "augment.enabled": False}

# What older versions stored as written and `load_config` now replaces by what it names: an embodiment's `stats_file`
# (and its feature) is now the stats that file holds (`embodiments.inline_stats_file`). A run stored with the file's
# name is not compared on them: its stats were the file's, as the resumed run's are.
INLINED_SINCE = ("embodiment.stats_file", "embodiment.stats_feature")


def changed_settings(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """`name: old -> new` for each setting of `saved` (a run's stored config) that `current` changes and a resume may
    not (`RESUMABLE`). Settings a run from an older version did not store are not compared, except those whose old
    behaviour is known (`IMPLIED_BEFORE`); nor are a full run's LoRA-only settings (`LORA_ONLY`), nor a stats file
    now stored as its stats (`INLINED_SINCE`). A folder stored by its own name (a checkpoint pushed to the hub with its
    training state: `hub.shared_state`) is the folder of that name now given."""
    old, new = flat_settings(saved), flat_settings(json.loads(json.dumps(current, default=str)))
    old = {**IMPLIED_BEFORE, **old}
    unused = {f"finetune.{n}" for n in LORA_ONLY} if old.get("finetune.mode") == new.get("finetune.mode") == "full" \
        else set()
    changes = []
    for name, value in old.items():
        if name in unused or any(name == r or (r.endswith(".*") and name.startswith(r[:-1])) for r in RESUMABLE):
            continue
        if name not in new:
            if name in INLINED_SINCE:
                continue
            filled = {key: now for key, now in new.items() if key.startswith(f"{name}.")}  # a table stored empty
            changes.append(f"{name}: {value!r} -> {filled if filled else 'unset'}")
        elif name in PATH_SETTINGS and _same_folder(value, new[name]):
            continue
        elif name == "data.mixture" and isinstance(value, list) and isinstance(new[name], list) and \
                len(value) == len(new[name]):
            changes += _changed_tables(value, new[name])
        elif name == "checkpoint" and isinstance(value, str) and portable_checkpoint(value) == new[name]:
            continue  # the shipped model, stored by an older version as its folder
        elif new[name] != value:
            changes.append(f"{name}: {value!r} -> {new[name]!r}")
    return changes


def _same_folder(stored: Any, given: Any) -> bool:
    """Whether a stored path setting names the folder `given` now: the same folder spelled from another working
    directory or as an absolute path, or a pushed checkpoint's record naming a folder by its own name
    (`hub.shared_state`): resumed there."""
    return isinstance(stored, str) and (_absolute(stored) == _absolute(given) or
                                        bool(stored) and stored == shown_value(given))


def _changed_tables(saved: list[Any], current: list[Any]) -> list[str]:
    """`changed_settings` of `[[data.mixture]]` tables, as many stored as given: table by table, each key named
    (`data.mixture[1].weight: 3.0 -> 1.0`), a table's `dataset` compared as a path setting is (`_same_folder`: a pushed
    checkpoint's record names each source by its own name). A key a table stored that the given one lacks is a change;
    one the stored table lacks (an older version's) is not compared."""
    changes = []
    for i, (old, new) in enumerate(zip(saved, current)):
        if not isinstance(old, dict) or not isinstance(new, dict):
            if old != new:
                changes.append(f"{source_name(i)}: {old!r} -> {new!r}")
            continue
        for key, value in old.items():
            if key not in new:
                changes.append(f"{source_prefix(i)}{key}: {value!r} -> unset")
            elif new[key] != value and not (key == "dataset" and _same_folder(value, new[key])):
                changes.append(f"{source_prefix(i)}{key}: {value!r} -> {new[key]!r}")
    return changes


# Settings that name files or folders: resolved against the config file (or the working directory, for command-line
# values) and stored absolute; compared as folders on resume.
PATH_SETTINGS = ("output_dir", "checkpoint", "data.dataset", "data.cache_dir")


def _absolute(path: Any) -> Any:
    return os.path.abspath(Path(path).expanduser()) if isinstance(path, str) and path else path


TABLES = {"data": DataConfig, "objectives": ObjectiveConfig, "timesteps": TimestepConfig, "optim": OptimConfig,
          "finetune": FinetuneConfig, "eval": EvalConfig, "validation": ValidationConfig, "tracking": TrackingConfig,
          "augment": AugmentConfig}


def _build(cls, raw: dict[str, Any], where: str):
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; accepted: {sorted(known)}{_misplaced(unknown, where)}")
    kwargs = {}
    for name, value in raw.items():
        sub = TABLES.get(name) if cls is TrainConfig else None
        if cls is DataConfig and name == "mixture":  # `[[data.mixture]]`: a list of tables
            if not isinstance(value, list) or not all(isinstance(table, dict) for table in value):
                raise ValueError(f"{where}.mixture: expected a list of tables ([[data.mixture]], each with dataset "
                                 f"and weight), got {value!r}")
            value = [_build(MixtureSource, table, f"{where}.mixture[{i}]") for i, table in enumerate(value)]
        elif sub is not None:
            if not isinstance(value, dict):
                raise ValueError(f"{where}.{name}: expected a table, got {type(value).__name__}")
            value = _build(sub, value, f"{where}.{name}" if where != "config" else name)
        else:
            value = _typed(value, typing.get_type_hints(cls)[name], name if where == "config" else f"{where}.{name}")
        kwargs[name] = value
    return cls(**kwargs)


def own_key(spec: dict[str, Any]) -> str:
    """A checkpoint's own embodiment spec named as a setting names it (`Embodiment.key`: `name`, or `name/variant`)."""
    return spec["name"] if spec.get("variant", "default") == "default" else f"{spec['name']}/{spec['variant']}"


def _misplaced(unknown: list[str], where: str) -> str:
    """Where each unknown key of table `where` belongs when it is a key of another table (`steps = 10` above
    `[optim]`, `batch_size` under `[data]`), else the accepted key it is a typo of: said, since a key that is right
    but in the wrong place reads as right."""
    tables = {"config": TrainConfig, **TABLES}
    here = MixtureSource if where.startswith("data.mixture[") else tables.get(where, TrainConfig)
    hints = []
    for key in unknown:
        homes = [name for name, cls in tables.items() if cls is not here and key in {f.name for f in fields(cls)}]
        if homes:
            hints.append(f"{key} is a key of " + " or ".join("the top level (above every [table])" if h == "config"
                                                             else f"[{h}]" for h in homes))
        elif close := close_match(key, [f.name for f in fields(here)]):
            hints.append(f"{key}: did you mean {close}?")
    return f" ({'; '.join(hints)})" if hints else ""


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
_LIST_ITEMS = {str: "strings", int: "integers", float: "numbers"}


def _typed(value: Any, hint: Any, name: str) -> Any:
    """`value` as the field's type takes it (an integer where a number goes, one string where a list of strings goes),
    else an error naming the setting, what was given and what is accepted."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if option is float and type(value) in (int, float):
            return float(value)
        if option in _TYPE_NAMES and type(value) is option:
            return value
        if typing.get_args(option) == (str,) and (isinstance(value, str) or (
                isinstance(value, list) and all(isinstance(item, str) for item in value))):
            return [value] if isinstance(value, str) else value
        if typing.get_args(option) == (int,) and isinstance(value, list) and all(
                type(item) is int for item in value):  # one integer is no list: `episodes = 3` could mean the first 3
            return value
        if typing.get_args(option) == (float,) and isinstance(value, list) and all(
                type(item) in (int, float) for item in value):
            return [float(item) for item in value]
        if typing.get_origin(option) is dict and isinstance(value, dict):
            return value
    accepted = " or ".join(_TYPE_NAMES.get(o) or ("a table" if typing.get_origin(o) is dict else
                                                  f"a list of {_LIST_ITEMS[typing.get_args(o)[0]]}")
                           for o in options)
    raise ValueError(f"{name}={value!r}: expected {accepted}, got {type(value).__name__}")


def load_config(source: str | Path | dict[str, Any], **overrides: Any) -> TrainConfig:
    """A TOML/JSON file or dict → checked `TrainConfig` (`read_config`, then `TrainConfig.check`)."""
    return read_config(source, **overrides).check()


def read_config(source: str | Path | dict[str, Any], **overrides: Any) -> TrainConfig:
    """A TOML/JSON file or dict → `TrainConfig`, its paths resolved but not yet checked (`TrainConfig.check`, or
    `checked_dataset` for a caller that goes on to read the dataset). Relative paths in a file resolve against its
    folder, those in `overrides` (command-line values) against the working directory, as a shell user means them. An
    override named `table.field` (`**{"data.episodes": [0, 3]}`) sets that field of the table, keeping the table's
    others."""
    if isinstance(source, dict):
        raw, base = dict(source), Path.cwd()
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"config {str(path)!r} does not exist")
        text = path.read_text()
        try:
            raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"config {str(path)!r} is not valid {path.suffix[1:].upper() or 'JSON'}: {exc}"
                             f"{_quoted_line(text, exc)}") from None
        base = path.parent
        if isinstance(raw, dict) and isinstance(raw.get("config"), dict) and "step" in raw:  # trainer_state.json
            run_config = path.parent.parent.parent / "config.json"  # <run>/checkpoints/step-N/trainer_state.json
            where = f" ({str(run_config)!r})" if run_config.is_file() else ""
            raise ValueError(f"config {str(path)!r} is a checkpoint's training state, not a TrainConfig: the run's "
                             f"settings are its config.json{where}: give that to resume the run, or with --out to "
                             "train a new run with the same settings")
    given = {k: v for k, v in overrides.items() if v is not None}
    for setting, value in given.items():
        section, _, name = setting.rpartition(".")
        if section and not isinstance(raw.get(section, {}), dict):  # `data = 3` in the file: `_build` names it
            continue
        if section:
            raw[section] = {**raw.get(section, {}), name: value}  # a copy: a dict given in Python stays as it was
        else:
            raw[name] = value
    config = _build(TrainConfig, raw, "config")
    for setting in PATH_SETTINGS:
        section, _, name = setting.rpartition(".")
        holder = getattr(config, section) if section else config
        value = getattr(holder, name)
        if not value:
            continue
        root = Path.cwd() if setting in given else base
        local = root / Path(value).expanduser()  # stored absolute, so a resume from elsewhere names the same folder
        if setting in INPUT_SETTINGS and not local.exists():
            _refuse_misplaced(setting, value, root, source)
            if hub_id_shaped(value):  # a malformed `@REV` refused here, named by its setting
                check_hub_id(value, setting)
            if name == "checkpoint" or hub_id_shaped(value):
                continue  # `shipped` or a hub id (`check` names a missing folder)
        setattr(holder, name, os.path.abspath(local))
    for i, table in enumerate(config.data.mixture):  # as data.dataset: against the config's folder, else a hub id
        local = base / Path(table.dataset).expanduser()
        if table.dataset and hub_id_shaped(table.dataset) and not local.exists():
            check_hub_id(table.dataset, f"{source_prefix(i)}dataset")
        elif table.dataset:
            table.dataset = os.path.abspath(local)
    from ..embodiments import SPEC_FILE_SUFFIX, inline_stats_file

    if isinstance(config.embodiment, str) and config.embodiment.endswith(SPEC_FILE_SUFFIX):  # e.g. embodiment.json
        # from the config's folder unless given on the command line; `check` reads it
        config.embodiment = str((Path.cwd() if "embodiment" in given else base) / Path(config.embodiment).expanduser())
    elif isinstance(config.embodiment, dict) and config.embodiment.get("stats_file"):  # a table: from the config's folder
        try:
            # the stats themselves, so the checkpoints' embodiment.json stands alone
            config.embodiment = inline_stats_file(config.embodiment, base)
        except (OSError, ValueError) as exc:
            raise ValueError(f"embodiment.stats_file={config.embodiment['stats_file']!r}: {exc}") from None
    return config


def _quoted_line(text: str, exc: ValueError) -> str:
    """The line a parse error points at, quoted (`lr = 1e-4x`: a typo in a value is seen at once, where "Expected
    newline or end of document after a statement (at line 11, column 10)" sent the reader counting lines)."""
    found = re.search(r"line (\d+)", str(exc))
    lines = text.splitlines()
    if found is None or not 1 <= int(found.group(1)) <= len(lines):
        return ""
    line = lines[int(found.group(1)) - 1].strip()
    return f": {line!r}" if len(line) <= 120 else ""  # a whole JSON document on one line says nothing more


# Path settings that name inputs (they must exist, or the checkpoint be `shipped` or a hub id).
INPUT_SETTINGS = ("checkpoint", "data.dataset")


def _refuse_misplaced(setting: str, value: str, root: Path, source: Any) -> None:
    """A config file's relative path that does not exist from the file's folder but does from the working directory
    was written from the shell's point of view: say so, rather than report a missing dataset or (for a checkpoint
    shaped like a hub id) read the working directory's folder now and a hub id on a resume from elsewhere. A
    checkpoint `runs/x` whose `runs` is a folder beside the config is a missing path there, not a hub id."""
    here = Path(value).expanduser()
    if here.is_absolute() or root.resolve() == Path.cwd().resolve():
        return
    first = value.split("/")[0]
    if not here.exists() and hub_id_shaped(value) and (root / first).is_dir():
        raise FileNotFoundError(f"{setting}={value!r} does not exist: {str(root / first)!r} (relative paths in "
                                f"{str(source)!r} resolve against its folder) holds no {value.split('/')[1]!r}")
    if not here.exists():
        return
    raise FileNotFoundError(
        f"{setting}={value!r}: relative paths in a config file resolve against its folder, and "
        f"{str(root / here)!r} does not exist; {value!r} exists from the working directory, which {str(source)!r} "
        f"does not use: write {os.path.relpath(here.absolute(), root.absolute())!r} or an absolute path")
