"""A forward-dynamics trajectory longer than one chunk as `Policy.imagine(whole_trajectory=True)` (and
`RemotePolicy`'s) rolls it out: its options checked (`check_trajectory_options`), the embodiment's state chained
from chunk to chunk where that is honest (`check_trajectory_embodiment`), and its actions cut into consecutive chunks,
the last padded as the pipeline pads (`TrajectoryChunks`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..embodiments import Embodiment
from .actions import ACTION_SPACES, load_actions, to_physical

# chunks past which a rollout is warned about: each chunk starts from the model's own last frame, so its errors feed
# the next chunk and grow (world-model drift); a few chunks are what a chunked policy runs open loop anyway
LONG_ROLLOUT_CHUNKS = 4


def check_trajectory_options(whole_trajectory: Any, decode_video: Any) -> None:
    """`imagine`'s trajectory options, refused before any work: each chunk after the first starts from the previous
    chunk's last imagined frame, which only a decoded video holds."""
    if not isinstance(whole_trajectory, (bool, np.bool_)):
        raise ValueError(f"whole_trajectory={whole_trajectory!r}; accepted: True or False")
    if whole_trajectory and decode_video is not None and not decode_video:
        raise ValueError(f"decode_video={decode_video!r} with whole_trajectory=True: each chunk after the first is "
                         "conditioned on the previous chunk's last imagined frame, which needs the video decoded; "
                         "accepted: decode_video=None or True")


def trajectory_refusal(embodiment: Embodiment) -> tuple[str, str] | None:
    """Why a whole trajectory cannot be rolled out for `embodiment`, and what is accepted (None: it can). An embodiment
    whose model input holds a state row (`state_history`) needs the state each later chunk starts from. Absolute joint
    targets (`joint_position`) give it: the previous chunk's last action, taken as reached (what a rollout of
    commanded joints assumes). Any other layout (deltas, velocities, a generic action) says nothing of the robot's
    state after its actions, so a chained rollout would have to invent one."""
    e = embodiment
    if not e.state_history or e.layout == "joint_position":
        return None
    why = (f"embodiment {e.key!r} conditions each chunk on the robot state, and its {e.layout} actions do not say "
           "the state after a chunk, which the next chunk would start from")
    accepted = ("an embodiment whose actions are absolute joint positions (layout joint_position, e.g. "
                "droid/joint_pos: the last action is the next chunk's state) or one that takes no state (e.g. "
                "droid/relative_pose)")
    return why, accepted


def check_trajectory_embodiment(embodiment: Embodiment, option: str = "whole_trajectory=True") -> None:
    """`trajectory_refusal` as a `ValueError` starting with `option`: how the caller's user asked for a whole
    trajectory (`--whole-trajectory` on the command line)."""
    refusal = trajectory_refusal(embodiment)
    if refusal is not None:
        why, accepted = refusal
        raise ValueError(f"{option}: {why}; accepted: {accepted}")


def trajectory_actions(actions: Any, embodiment: Embodiment, space: str, warn_range: bool) -> np.ndarray:
    """A whole trajectory's actions, read once in model space [N, dim] (`load_actions`: a file, rows, an actions
    object, a `Prediction`), refused before any chunk runs: an embodiment whose state cannot be chained, a bad
    `actions_space`, an unreadable, ragged or non-finite row. `warn_range`: whether reading says the range warnings
    (`load_actions`': out of range, and the actions' rate; a local `Policy` says them itself, once)."""
    check_trajectory_embodiment(embodiment)
    if space not in ACTION_SPACES:
        raise ValueError(f"actions_space={space!r}; accepted: {', '.join(ACTION_SPACES)}")
    if actions is None:
        raise ValueError("actions are required for forward dynamics (imagine)")
    return load_actions(actions, embodiment, space, warn_range=warn_range)


def chunk_seed(seed: int, j: int) -> int:
    """Chunk j's seed in a rollout seeded `seed` (`TrajectoryChunks`, `sim.world_model.WorldModelEnv`): seed + j."""
    return (seed + j) % 2**63


def call_seed(episode_seed: int, call: int) -> int:
    """The sampling seed of request `call` (0, 1, ...) in the episode seeded `episode_seed`: a hash of the pair, so
    neighbouring episodes share none (`episode_seed + call` gave episode s's call 1 the seed of episode s+1's call 0);
    below 2**63, the range `Policy.act` and our server accept. `sim`'s episodes seed their policy's requests with it,
    and `sim.world_model.dream` its policy's chunk `call`: the pair alone, so a longer dream goes on from a shorter
    one of the same seed."""
    return int(np.random.SeedSequence([episode_seed, call]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def state_reached(embodiment: Embodiment, model_actions: np.ndarray) -> np.ndarray:
    """The physical state the next chunk starts from (`check_trajectory_embodiment`): the last of a chunk's actions
    (model space), taken as reached."""
    return to_physical(embodiment, model_actions[-1:])[0]


def long_rollout_warning(chunks: int) -> str | None:
    """What to say of a rollout of `chunks` chunks (None for a short one): errors compound, chunk by chunk."""
    if chunks <= LONG_ROLLOUT_CHUNKS:
        return None
    return (f"whole_trajectory: {chunks} chunks, each conditioned on the previous chunk's last imagined frame, so the "
            "world model's errors compound over the rollout (drift): trust its later frames less than its first "
            "chunk's")


@dataclass
class TrajectoryChunks:
    """Forward-dynamics actions [N, dim] (model space) cut into consecutive chunks of `chunk_size` rows: chunk j is
    rows j*chunk_size .. and rolls the world from frame j*chunk_size to the next chunk's, the last padded by repeating
    its last row (as the pipeline pads), its padding's frames dropped. Chunk j samples with `seed` + j (mod 2**63):
    the same noise in every chunk would stamp one pattern into each chunk's frames, and seed + j keeps every chunk
    reproducible alone (`imagine` of its conditioning frame and rows with that seed)."""

    actions: np.ndarray
    chunk_size: int
    seed: int

    @property
    def chunks(self) -> int:
        return max(1, math.ceil(len(self.actions) / self.chunk_size))

    def rows(self, j: int) -> int:
        """Chunk j's rows of the actions given (the rest of its chunk_size pads it)."""
        return min(self.chunk_size, len(self.actions) - j * self.chunk_size)

    def chunk(self, j: int) -> np.ndarray:
        """Chunk j's rows, padded to chunk_size by repeating its last."""
        rows = self.actions[j * self.chunk_size:(j + 1) * self.chunk_size]
        return np.concatenate([rows, np.repeat(rows[-1:], self.chunk_size - len(rows), axis=0)])

    def seed_of(self, j: int) -> int:
        return chunk_seed(self.seed, j)

    def state_after(self, j: int, embodiment: Embodiment) -> np.ndarray:
        """The physical state chunk j+1 starts from: chunk j's last action (`state_reached`)."""
        return state_reached(embodiment, self.actions[j * self.chunk_size:j * self.chunk_size + self.rows(j)])

    def settings(self, state_chained: bool) -> dict[str, Any]:
        """What `settings["trajectory"]` records: the rows given, and per chunk the rows it rolled out
        (`actions[a:b]`), the frames imagined from them (`video[a+1:b+1]`: frame i+1 follows action i), the frame it
        was conditioned on (`video[a]`: the observation's for chunk 0, else the previous chunk's last) and its seed;
        `state_chained`: a state-conditioned embodiment's chunk j > 0 started from action a-1."""
        chunks = []
        for j in range(self.chunks):
            start = j * self.chunk_size
            stop = start + self.rows(j)
            chunks.append({"actions": [start, stop], "frames": [start + 1, stop + 1], "conditioned_on": start,
                           "seed": self.seed_of(j)})
        return {"rows": len(self.actions), "chunks": chunks, "state_chained": state_chained}
