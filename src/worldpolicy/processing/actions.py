"""Actions between user files/arrays, model space and physical units.

Model space is what the transformer's action head reads and writes (normalised; for the DROID joint preset the
gripper is flipped, g' = 1 - g). Physical space is what a robot runs, in the registry's units.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..embodiments import Embodiment

logger = logging.getLogger(__name__)
ACTION_SPACES = ("physical", "normalized")


def to_physical(embodiment: Embodiment, model_actions: np.ndarray) -> np.ndarray:
    """Model-space [T, >=action_dim] → physical [T, action_dim] float64 (extra padded columns are dropped)."""
    a = np.asarray(model_actions, dtype=np.float64)[..., : embodiment.action_dim]
    x = embodiment.denormalize(a)
    if embodiment.gripper_flip and embodiment.gripper_index is not None:
        x[..., embodiment.gripper_index] = 1.0 - x[..., embodiment.gripper_index]
    return x


def to_model(embodiment: Embodiment, physical: np.ndarray) -> np.ndarray:
    """Physical [T, action_dim] → model space (inverse of `to_physical`)."""
    x = np.array(physical, dtype=np.float64)
    if embodiment.gripper_flip and embodiment.gripper_index is not None:
        x[..., embodiment.gripper_index] = 1.0 - x[..., embodiment.gripper_index]
    return embodiment.normalize(x)


def _from_columns(values: np.ndarray, columns: Sequence[str], embodiment: Embodiment, where: str) -> np.ndarray:
    columns = list(columns)
    if sorted(columns) != sorted(embodiment.columns):
        raise ValueError(
            f"{where}: columns {columns} do not match embodiment {embodiment.key!r} columns {list(embodiment.columns)}"
        )
    order = [columns.index(c) for c in embodiment.columns]
    return values[:, order]


def load_actions(source: Any, embodiment: Embodiment, space: str = "physical", warn: bool = True) -> np.ndarray:
    """Read actions for forward dynamics and return them in **model space**, [T, action_dim] float64.

    Accepted: a `.npy` file; a JSON file holding either a bare nested list `[[...], ...]` or an object with
    `"actions"` (and optionally `"columns"`); a numpy/torch array or nested list. `space` says whether bare values are
    `physical` (default) or `normalized`. A `worldpolicy.actions/v1` file is read from its physical `actions` (what a
    user edits, and what carries over to another embodiment with the same columns), normalised with `embodiment`'s
    stats. Values far outside the range the model was trained on (wrong units?) are logged as a warning (`warn`).
    """
    if space not in ACTION_SPACES:
        raise ValueError(f"actions space={space!r}; accepted: {', '.join(ACTION_SPACES)}")
    columns = None
    where = "actions"
    if isinstance(source, (str, Path)):
        path = Path(source)
        where = f"actions file {str(path)!r}"
        if not path.is_file():
            raise FileNotFoundError(f"{where} does not exist")
        if path.suffix.lower() == ".npy":
            values = np.load(path, allow_pickle=False)
        elif path.suffix.lower() == ".json":
            try:
                doc = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where} is not valid JSON: {exc}") from None
            if isinstance(doc, dict):
                if "actions" not in doc:
                    raise ValueError(f"{where}: a JSON object needs an 'actions' field; found {sorted(doc)}")
                values = doc["actions"]
                columns = doc.get("columns")
                if str(doc.get("schema") or "").startswith("worldpolicy.actions/"):
                    space = "physical"  # the file says what its `actions` are
                    source_key = doc.get("embodiment")
                    if source_key is not None and source_key != embodiment.key:
                        logger.info("%s: written for %r, read as %r by column name (physical units)", where,
                                    source_key, embodiment.key)
                elif doc.get("normalized") is True:
                    space = "normalized"
            elif isinstance(doc, list):
                values = doc
            else:
                raise ValueError(f"{where}: expected a list of rows or an object with 'actions'")
        else:
            raise ValueError(f"{where}: unsupported suffix {path.suffix!r}; accepted: .json, .npy")
    elif type(source).__module__.startswith("torch"):
        values = source.detach().cpu().double().numpy()
    else:
        values = source
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: values must be a rectangular numeric [T, {embodiment.action_dim}] array") from None
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[0] < 1:
        raise ValueError(f"{where}: expected shape [T, {embodiment.action_dim}], got {arr.shape}")
    if columns is not None:
        arr = _from_columns(arr, columns, embodiment, where)
    if arr.shape[1] != embodiment.action_dim:
        raise ValueError(
            f"{where}: width {arr.shape[1]} does not match embodiment {embodiment.key!r} "
            f"(action_dim {embodiment.action_dim}: {', '.join(embodiment.columns)})"
        )
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{where}: NaN or inf at row {bad[0]}, column {embodiment.columns[bad[1]]!r}")
    model = arr if space == "normalized" else to_model(embodiment, arr)
    if warn:
        _warn_out_of_range(model, embodiment, where)
    return model


_FAR_OUT = 3.0  # model-space magnitude; the stats map the training data's 1st..99th percentiles to [-1, 1]


def _warn_out_of_range(model: np.ndarray, embodiment: Embodiment, where: str) -> None:
    far = np.abs(model).max(axis=0) > _FAR_OUT
    if far.any():
        cols = [f"{c} (|x| up to {v:.3g})" for c, v, f in zip(embodiment.columns, np.abs(model).max(axis=0), far) if f]
        logger.warning(
            "%s: %s far outside what embodiment %r was trained on (model space, where its data spans [-1, 1]); "
            "check the units (%s)", where, ", ".join(cols), embodiment.key,
            ", ".join(f"{c} [{u}]" for c, u in zip(embodiment.columns, embodiment.units)),
        )


def fit_to_chunk(actions: np.ndarray, chunk_size: int) -> np.ndarray:
    """Trim, or repeat the last row, to exactly `chunk_size` rows (what the pipeline does), saying so."""
    n = actions.shape[0]
    if n == chunk_size:
        return actions
    if n > chunk_size:
        logger.warning("actions: %d rows given, using the first %d (chunk_size)", n, chunk_size)
        return actions[:chunk_size]
    logger.warning("actions: %d rows given, repeating the last row to reach chunk_size=%d", n, chunk_size)
    return np.concatenate([actions, np.repeat(actions[-1:], chunk_size - n, axis=0)], axis=0)
