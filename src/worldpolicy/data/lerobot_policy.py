"""A worldpolicy policy (a local checkpoint or a running `worldpolicy serve`) as a LeRobot `PreTrainedPolicy`.

    import worldpolicy.data.lerobot_policy as wl   # registers the policy type "worldpolicy" with LeRobot
    config = wl.WorldpolicyConfig(checkpoint="runs/x/final", embodiment="droid", n_action_steps=8)
    policy = wl.WorldpolicyPolicy(config)           # or WorldpolicyConfig(server="ws://host:8000", api_key_env=...)
    preprocessor, postprocessor = wl.make_worldpolicy_pre_post_processors(config)
    policy.select_action(batch)                     # [B, action_dim] float32, one step of the queued chunk

A LeRobot batch (`observation.images.<camera>` float [B, 3, H, W] in 0..1, `observation.state` [B, dim], `task`: a
string or one per item) reads as the openpi observation the policy takes: each camera under its wire key
(`processing.observations.wire_key`: `observation.images.wrist_image_left` is `observation/wrist_image_left`;
`camera_keys` renames others), the state row as `state=` (ignored, and said once, by an embodiment that does not
condition on it) and the task as the prompt. Each item of a batch is its own request, a batch's in one `act_batch`
(a local policy's share forward passes). The chunk's named columns are returned in `action_names`' order (the
dataset's `features["action"]["names"]`; None: the chunk's own columns), in the chunk's physical units;
`select_action` runs `n_action_steps` of each chunk, then asks for the next.

LeRobot knows this module's types once it is imported: in Python, import it, then LeRobot's own `make_policy`,
`make_pre_post_processors`, `lerobot_eval.rollout` and `record_loop` take it; lerobot 0.4.4's command lines
(`lerobot-record --policy.type=worldpolicy ...`) import third-party policies from installed distributions named
`lerobot_policy_*`, and `integrations/lerobot_policy_worldpolicy` is one, its module importing this one. Inference
only: training goes through `worldpolicy train`.

A served policy (`server=`) needs none of worldpolicy's model stack: the client's packages (numpy, msgpack, websockets)
beside lerobot's own; transformers is not imported here (its version is read from its metadata, and where it is not
installed there is no GR00T to stand in for), and `Policy` loads its engine (diffusers, transformers) only for a
`checkpoint=`. So a robot's LeRobot env, whose transformers < 5 (or none) worldpolicy's core cannot resolve beside,
takes worldpolicy with `pip install --no-deps` (docs/serving.md, "In LeRobot").

lerobot 0.4 (0.4.4 is the last release for Python 3.11) wants transformers < 5; beside transformers 5, worldpolicy's
floor, `lerobot.policies` does not import: its `__init__` imports the GR00T policy, whose model config is a dataclass
over transformers' `PretrainedConfig`, itself a dataclass with defaults from transformers 5 ("non-default argument
'backbone_cfg' follows default argument"). So before importing lerobot's policy modules, where that is so, this module
puts an empty package at `lerobot.policies.groot` (`_stand_in_for_groot`; its folder kept, so the GR00T config that
lerobot's factory imports loads from it; its model does not) and warns once that GR00T is unavailable in this process;
import this module before any of lerobot's policy modules.
The versions are checked rather than the import tried: a failed `import lerobot.policies` cannot be undone cleanly
(the policy configs it registered with draccus refuse to register again from a second import).
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import importlib.util
import logging
import os
import sys
import types
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldpolicy.data.observations import IMAGE_PREFIX, STATE_FEATURE
from worldpolicy.errors import is_integer
from worldpolicy.extras import extra_imports
from worldpolicy.policy import Policy, PolicyRequest
from worldpolicy.processing.observations import model_uint8, wire_key

_NEEDED_FOR = "worldpolicy's LeRobot policy adapter (docs/serving.md: installing lerobot)"
with extra_imports(_NEEDED_FOR):
    import lerobot
    import torch
    from packaging.version import Version

logger = logging.getLogger(__name__)
GROOT = "lerobot.policies.groot"


def _stand_in_for_groot() -> None:
    """An empty package at `lerobot.policies.groot`, with one warning, where lerobot's policies would not import for
    GR00T's sake (the module's docstring): `lerobot.policies` not yet imported (nor the stand-in already in place), a
    lerobot 0.4.x that has GR00T's folder, transformers 5 or later. The folder is kept as the package's path, so its
    modules that do import (`configuration_groot`, which `lerobot.policies` and its factory import) load from it."""
    if "lerobot.policies" in sys.modules or GROOT in sys.modules:
        return
    folder = Path(lerobot.__path__[0], "policies", "groot")
    transformers = _transformers_version()
    if (Version(lerobot.__version__).release[:2] != (0, 4) or transformers is None or transformers.major < 5
            or not folder.is_dir()):
        return
    package = types.ModuleType(GROOT, "lerobot's GR00T policy package, left empty (worldpolicy.data.lerobot_policy)")
    package.__spec__ = importlib.machinery.ModuleSpec(GROOT, None, is_package=True)
    package.__spec__.submodule_search_locations = package.__path__ = [str(folder)]
    sys.modules[GROOT] = package
    logger.warning("lerobot's GR00T policy is unavailable in this process: lerobot %s's GR00T model does not import "
                   "beside transformers %s (lerobot 0.4 wants transformers < 5: \"non-default argument 'backbone_cfg' "
                   "follows default argument\"), so its package is left empty for lerobot's other policies, and "
                   "worldpolicy's, to import", lerobot.__version__, transformers)


def _transformers_version() -> Version | None:
    """The installed transformers' version, read from its metadata rather than imported (a robot's LeRobot env need
    not hold it, and the adapter's remote path imports no model stack); None where it is not importable (lerobot
    imports its policies without it: the ones that need it say so when used)."""
    if importlib.util.find_spec("transformers") is None:
        return None
    return Version(importlib.metadata.version("transformers"))


_stand_in_for_groot()
with extra_imports(_NEEDED_FOR):
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.pretrained import PreTrainedPolicy
    from lerobot.processor import PolicyProcessorPipeline
    from lerobot.processor.converters import policy_action_to_transition, transition_to_policy_action

__all__ = ["POLICY_TYPE", "TRAINING_REFUSED", "WorldpolicyConfig", "WorldpolicyPolicy", "lerobot_observation",
           "make_worldpolicy_pre_post_processors"]

POLICY_TYPE = "worldpolicy"  # the name LeRobot knows the type by (a config.json's "type")
SINGLE_IMAGE = "observation.image"  # LeRobot's one-camera image feature (pusht), beside IMAGE_PREFIX + camera
TRAINING_REFUSED = ("a worldpolicy policy runs in LeRobot for inference only; train it with `worldpolicy train` "
                    "(docs/training.md)")


@PreTrainedConfig.register_subclass(POLICY_TYPE)
@dataclass
class WorldpolicyConfig(PreTrainedConfig):
    """Which worldpolicy policy LeRobot runs, as data (a config.json's fields, `--policy.<field>` on LeRobot's
    command lines). `checkpoint` (a folder, a hub id or `shipped`) or `server` (a `worldpolicy serve` URL), not both;
    `api_key_env`: the environment variable that holds the server's key (the key itself is never stored); None:
    `WORLDPOLICY_API_KEY` (`serving.API_KEY_ENV`) where set, as the command lines read it, else no key.
    `embodiment`: the checkpoint's own when None. `n_action_steps`: the steps of each chunk run before the next is
    asked for (None: the whole chunk), at most the policy's chunk_size (checked when it is opened). `camera_keys`: a
    LeRobot image key -> the embodiment's camera wire key, for cameras not named as the embodiment names them.
    `action_names`: the action columns LeRobot expects, in its order (a dataset's `features["action"]["names"]`; None:
    the chunk's columns as they come). `task`: the prompt where a batch's task is empty or missing (an env without a
    language instruction: LeRobot's rollout then sends "")."""

    checkpoint: str | None = None
    server: str | None = None
    api_key_env: str | None = None
    embodiment: str | None = None
    n_action_steps: int | None = None
    camera_keys: dict[str, str] = field(default_factory=dict)
    action_names: list[str] | None = None
    task: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.checkpoint is None) == (self.server is None):
            raise ValueError(f"checkpoint={self.checkpoint!r}, server={self.server!r}: name one of them, a worldpolicy "
                             "checkpoint (a folder, a hub id or 'shipped') or a `worldpolicy serve` URL")
        if self.api_key_env is not None and self.server is None:
            raise ValueError(f"api_key_env={self.api_key_env!r}: a key is sent to a server; this config loads "
                             f"checkpoint={self.checkpoint!r}")
        steps = self.n_action_steps
        if steps is not None and (not is_integer(steps) or steps < 1):
            raise ValueError(f"n_action_steps={steps!r}: accepted: an int >= 1 (at most the chunk's length), or None "
                             "(the whole chunk)")
        if steps is not None:
            self.n_action_steps = int(steps)  # a numpy integer as a Python one, which config.json holds
        if not isinstance(self.camera_keys, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.camera_keys.items()):
            raise ValueError(f"camera_keys={self.camera_keys!r}: accepted: a dict of LeRobot image keys "
                             "('observation.images.top') to camera wire keys ('observation/image')")
        if self.task is not None and (not isinstance(self.task, str) or not self.task.strip()):
            raise ValueError(f"task={self.task!r}: accepted: a task description, or None (the batch's own)")
        if self.action_names is not None and (isinstance(self.action_names, str) or not self.action_names or not all(
                isinstance(n, str) for n in self.action_names)):
            raise ValueError(f"action_names={self.action_names!r}: accepted: a non-empty list of the chunk's column "
                             "names, or None (its columns as they come)")

    @property
    def observation_delta_indices(self) -> None:
        return None

    @property
    def action_delta_indices(self) -> None:
        return None

    @property
    def reward_delta_indices(self) -> None:
        return None

    def get_optimizer_preset(self):
        raise NotImplementedError(TRAINING_REFUSED)

    def get_scheduler_preset(self):
        raise NotImplementedError(TRAINING_REFUSED)

    def validate_features(self) -> None:
        """Nothing to check before a batch: the embodiment says what it takes, and each call checks what it gets."""


class WorldpolicyPolicy(PreTrainedPolicy):
    """A worldpolicy `Policy` or `RemotePolicy` behind LeRobot's `PreTrainedPolicy` (see the module's docstring).
    `policy`: one already built (its embodiment as loaded); None: built from `config` (and closed by `close`).
    `dataset_meta` (LeRobot's `make_policy` passes it) gives `action_names` when the config leaves them out;
    `dataset_stats`, which it passes too, is not used: the worldpolicy policy normalises with its embodiment's."""

    config_class = WorldpolicyConfig
    name = POLICY_TYPE

    def __init__(self, config: WorldpolicyConfig, policy: Any = None, *, dataset_meta: Any = None,
                 dataset_stats: Any = None):
        super().__init__(config)
        if not isinstance(config, WorldpolicyConfig):
            raise TypeError(f"config is a {type(config).__name__}; accepted: a WorldpolicyConfig")
        self.action_names = config.action_names
        if self.action_names is None and dataset_meta is not None:
            self.action_names = list((dataset_meta.features.get("action") or {}).get("names") or []) or None
        self._owned = policy is None
        self.policy = _open(config) if policy is None else policy
        # None: a server that announces none (openpi's), whose chunks say it: `n_action_steps` is checked on the first
        self._chunk_size = self.policy.chunk_size
        try:
            _check_steps(config.n_action_steps, self._chunk_size)
        except ValueError:
            self.close()  # refused before any inference: what this adapter opened is released
            raise
        self._queue: deque[torch.Tensor] = deque()

    @classmethod
    def from_pretrained(cls, pretrained_name_or_path: str | Path, *, config: WorldpolicyConfig | None = None,
                        policy: Any = None, dataset_meta: Any = None, dataset_stats: Any = None,
                        **hub_options: Any) -> WorldpolicyPolicy:
        """A folder (or hub id) that `save_pretrained` wrote: its config.json names the checkpoint or server; there
        are no weights of LeRobot's to load (the checkpoint holds them)."""
        if config is None:
            config = PreTrainedConfig.from_pretrained(pretrained_name_or_path, **hub_options)
        return cls(config, policy, dataset_meta=dataset_meta, dataset_stats=dataset_stats)

    def _save_pretrained(self, save_directory: Path) -> None:
        self.config._save_pretrained(save_directory)  # the config alone: the checkpoint or server holds the weights

    def close(self) -> None:
        """Close the worldpolicy policy this adapter opened (one passed in is its caller's to close)."""
        if self._owned:
            self.policy.close()

    def reset(self) -> None:
        """An episode starts: the chunk queued from the last one is dropped."""
        self._queue.clear()

    def get_optim_params(self) -> dict:
        raise NotImplementedError(TRAINING_REFUSED)

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict | None]:
        raise NotImplementedError(TRAINING_REFUSED)

    def predict_action_chunk(self, batch: dict[str, Any], **kwargs: Any) -> torch.Tensor:
        """A chunk per item, [B, chunk, len(action_names)] float32 on the batch's device: each item is one request,
        the batch's in one `act_batch` (a local policy's share forward passes; a server's go out together)."""
        if kwargs.get("noise") is not None:
            raise ValueError("noise: a worldpolicy policy draws its own (seed it with the checkpoint's `seed`); "
                             "accepted: None")
        requests = []
        for i in range(_batch_size(batch)):
            observation, state, task = lerobot_observation(batch, i, self.config.camera_keys, self.config.task)
            requests.append(PolicyRequest(observation, task, state=state))
        chunks = [self._columns(p.actions, list(p.columns)) for p in self.policy.act_batch(requests)]
        device = next((v.device for v in batch.values() if isinstance(v, torch.Tensor)), torch.device("cpu"))
        return torch.from_numpy(np.stack(chunks)).to(device=device, dtype=torch.float32)

    def select_action(self, batch: dict[str, Any], **kwargs: Any) -> torch.Tensor:
        """The next action, [B, action_dim]: a new chunk is asked for when the last one's `n_action_steps` have run."""
        if not self._queue:
            chunk = self.predict_action_chunk(batch, **kwargs)
            if self._chunk_size is None:
                _check_steps(self.config.n_action_steps, chunk.shape[1])
            self._queue.extend(chunk[:, :self.config.n_action_steps].transpose(0, 1))
        return self._queue.popleft()

    def _columns(self, actions: np.ndarray, columns: list[str]) -> np.ndarray:
        if self.action_names is None:
            return actions
        missing = [n for n in self.action_names if n not in columns]
        if missing:
            raise KeyError(f"action_names {missing} are not columns of the policy's chunks, which are {columns}; "
                           "name those in action_names (the dataset's action names must match the embodiment's)")
        return actions[:, [columns.index(n) for n in self.action_names]]


def make_worldpolicy_pre_post_processors(config: WorldpolicyConfig, dataset_stats: Any = None
                                         ) -> tuple[PolicyProcessorPipeline, PolicyProcessorPipeline]:
    """The pipelines LeRobot runs around the policy, empty: the worldpolicy policy normalises and unnormalises itself
    (its embodiment's statistics), so batches reach it and actions leave it as they are; `dataset_stats` is not used.
    The name and signature LeRobot's `make_pre_post_processors` looks for."""
    return (PolicyProcessorPipeline(name=f"{POLICY_TYPE}_preprocessor"),
            PolicyProcessorPipeline(name=f"{POLICY_TYPE}_postprocessor", to_transition=policy_action_to_transition,
                                    to_output=transition_to_policy_action))


def _check_steps(steps: int | None, chunk_size: int | None) -> None:
    """`n_action_steps` against the policy's chunk_size (None: not known, nothing to check)."""
    if steps is not None and chunk_size is not None and steps > chunk_size:
        raise ValueError(f"n_action_steps={steps}: the policy's chunks hold {chunk_size} steps (its chunk_size); "
                         f"accepted: 1 to {chunk_size}, or None (the whole chunk)")


def _open(config: WorldpolicyConfig) -> Any:
    if config.server is not None:
        from worldpolicy.serving import API_KEY_ENV, RemotePolicy

        if config.api_key_env is None:
            key = os.environ.get(API_KEY_ENV) or None
        else:
            key = os.environ.get(config.api_key_env)
            if not key:
                raise ValueError(f"api_key_env={config.api_key_env!r}: that environment variable is unset or empty; "
                                 f"set it to the server's key, or leave api_key_env out ({API_KEY_ENV} is read "
                                 "then, where set; none for a server without a key)")
        return RemotePolicy(config.server, api_key=key, embodiment=config.embodiment)
    return Policy.from_pretrained(config.checkpoint, config.embodiment, device=config.device)


def _batch_size(batch: Mapping[str, Any]) -> int:
    sizes = {k: int(v.shape[0]) for k, v in batch.items()
             if isinstance(v, torch.Tensor) and (k == STATE_FEATURE or _is_image(k))}
    if not sizes:
        raise KeyError(f"batch has no {STATE_FEATURE!r} or image ({SINGLE_IMAGE!r}, {IMAGE_PREFIX}<camera>) tensors; "
                       f"got keys {sorted(batch)}")
    if len(set(sizes.values())) > 1:
        raise ValueError(f"batch's tensors disagree on the batch size: {sizes}")
    return next(iter(sizes.values()))


def _is_image(key: str) -> bool:
    return key == SINGLE_IMAGE or key.startswith(IMAGE_PREFIX)


def lerobot_observation(batch: Mapping[str, Any], index: int, camera_keys: Mapping[str, str] | None = None,
                        task: str | None = None) -> tuple[dict[str, np.ndarray], np.ndarray | None, str]:
    """Item `index` of a LeRobot batch as (observation, state, task): each image [3, H, W] (float 0..1, or uint8) as
    uint8 [H, W, 3] under its wire key (`camera_keys`, else `wire_key`), `observation.state` as a float64 row (None
    without one) and the batch's task (one string for the batch, or one per item), else `task` where it is empty or
    missing."""
    camera_keys = dict(camera_keys or {})
    unknown = [k for k in camera_keys if k not in batch]
    if unknown:
        raise KeyError(f"camera_keys names {unknown}, which the batch does not hold; its keys are {sorted(batch)}")
    observation = {}
    for key, value in batch.items():
        if not _is_image(key):
            continue
        image = value[index]
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"batch[{key!r}] item {index} has shape {tuple(image.shape)}; accepted: [3, H, W] "
                             "(LeRobot's channel-first images)")
        image = image.detach().to("cpu").permute(1, 2, 0)
        image = image.numpy() if image.dtype == torch.uint8 else model_uint8(image.float().numpy())
        observation[camera_keys.get(key, wire_key(key))] = image
    state = batch.get(STATE_FEATURE)
    state = None if state is None else state[index].detach().to("cpu").double().numpy()
    given = batch.get("task")
    if isinstance(given, Sequence) and not isinstance(given, str):
        items = _batch_size(batch)
        if len(given) != items:
            raise ValueError(f"batch['task'] has {len(given)} entries for a batch of {items} items; accepted: "
                             "one task for the batch (a string), or a list of one per item")
        given = given[index]
    if given is not None and not isinstance(given, str):
        raise ValueError(f"batch['task'] is {batch.get('task')!r:.80}; accepted: the task as a string, or a list of "
                         "one per item (LeRobot's rollout and record loop set it)")
    if not (given or "").strip():
        if task is None:
            raise ValueError(f"batch['task'] is {batch.get('task')!r:.80} and the config names no task; set "
                             "WorldpolicyConfig.task, the prompt for an env or robot without a language instruction")
        given = task
    return observation, state, given
