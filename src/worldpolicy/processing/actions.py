"""Actions between user files/arrays, model space and physical units.

Model space is what the transformer's action head reads and writes (normalised; for the DROID joint preset the
gripper is flipped, g' = 1 - g). Physical space is what a robot runs, in the registry's units.
"""

from __future__ import annotations

import csv
import logging
import numbers
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..embodiments import GRIPPER_MARGIN, MODEL_SPACE_UNIT, Embodiment, gripper_unit_hint, pose_groups
from ..errors import is_real
from ..fileio import read_json, schema_matches
from ..results import ACTIONS_SCHEMA, Prediction, actions_from_json, is_string_list

logger = logging.getLogger(__name__)
ACTION_SPACES = ("physical", "normalized")


def to_physical(embodiment: Embodiment, model_actions: np.ndarray) -> np.ndarray:
    """Model-space [T, >=action_dim] → physical [T, action_dim] float64 (extra padded columns are dropped)."""
    a = np.asarray(model_actions, dtype=np.float64)[..., : embodiment.action_dim]
    return flip_gripper(embodiment, embodiment.denormalize(a))


def to_model(embodiment: Embodiment, physical: np.ndarray, clip: bool = False) -> np.ndarray:
    """Physical [T, action_dim] → model space (inverse of `to_physical`); `clip` clamps to the normalised range, as
    training does."""
    return embodiment.normalize(flip_gripper(embodiment, physical), clip=clip)


def flip_gripper(embodiment: Embodiment, actions: np.ndarray) -> np.ndarray:
    """A float64 copy of `actions` [..., action_dim] with the gripper as the model holds it, before normalisation:
    1 - g for an embodiment whose model learned it reversed (`gripper_flip`), else unchanged. Its own inverse. Training
    goes through it too (`train.data`), so a fine-tuned model keeps the convention inference reads."""
    x = np.array(actions, dtype=np.float64)
    if embodiment.gripper_flip and embodiment.gripper_index is not None:
        x[..., embodiment.gripper_index] = 1.0 - x[..., embodiment.gripper_index]
    return x


def _from_columns(values: np.ndarray, columns: Any, units: Any, embodiment: Embodiment, where: str) -> np.ndarray:
    """The file's columns reordered to the embodiment's, after checking that each row has one value per named column
    and that every declared unit is the embodiment's (a file in mm read as m would be 1000x off)."""
    for field, names in (("columns", columns), ("units", units)):
        if names is not None and not is_string_list(names):
            raise ValueError(f"{where}: '{field}' must be a list of strings, got {names!r}")
    if columns is None:  # bare rows in the embodiment's order
        columns = list(embodiment.columns)
        if values.shape[1] != len(columns):
            return values  # the width check that follows names the embodiment's columns
    elif len(columns) != values.shape[1] or len(set(columns)) != len(columns):
        raise ValueError(f"{where}: 'columns' has {len(columns)} names ({len(set(columns))} distinct) but rows have "
                         f"{values.shape[1]} values; one unique name per value")
    if sorted(columns) != sorted(embodiment.columns):
        unknown = [c for c in columns if c not in embodiment.columns]
        missing = [c for c in embodiment.columns if c not in columns]
        raise ValueError(
            f"{where}: columns {columns} do not match embodiment {embodiment.key!r} columns {list(embodiment.columns)}"
            + (f"; not its columns: {', '.join(unknown)}" if unknown else "")
            + (f"; missing: {', '.join(missing)}" if missing else "")
        )
    if units is not None:
        if len(units) != len(columns):
            raise ValueError(f"{where}: 'units' has {len(units)} names for {len(columns)} columns")
        expected = dict(zip(embodiment.columns, embodiment.units))
        wrong = [f"{c} in {u!r} (expected {expected[c]!r})" for c, u in zip(columns, units) if u != expected[c]]
        if wrong:
            raise ValueError(f"{where}: {', '.join(wrong)}; convert the values to embodiment {embodiment.key!r}'s "
                             "units, or drop the declared units if they already are")
    order = [columns.index(c) for c in embodiment.columns]
    return values[:, order]


def load_actions(source: Any, embodiment: Embodiment, space: str = "physical", warn: bool = True,
                 warn_range: bool | None = None, where: str = "actions") -> np.ndarray:
    """Read actions for forward dynamics and return them in **model space**, [T, action_dim] float64.

    Accepted: a `.npy` file; a JSON file holding either a bare nested list `[[...], ...]` or an object with
    `"actions"` (and optionally `"columns"`); a `.npz` or a `.csv` with named columns (`read_actions_file`); such an
    object or a `Prediction` in memory; a numpy/torch array or nested
    list. `space` says whether bare values are
    `physical` (default) or `normalized`. A `worldpolicy.actions/v1` file is read from its physical `actions` (what a
    user edits, and what carries over to another embodiment with the same columns), normalised with `embodiment`'s
    stats. Values far outside the range the model was trained on (wrong units?) are logged as a warning
    (`out_of_range_warning`); `warn=False` logs nothing (a check before the run, which reads the same actions again and
    says it then, once). `warn_range` (default: `warn`) decides the range warnings alone: the pair
    `policy.range_warnings` names so, out of range and the actions' rate (`actions_rate_warning`), both off with
    `warn_range=False`; a `Policy` says them itself, once, in the words `policy.input_warnings` gives front ends
    before the weights load. `where`: how messages name actions given in memory (a file's own name, where the caller
    read it with `read_actions_file`).
    """
    if space not in ACTION_SPACES:
        raise ValueError(f"actions space={space!r}; accepted: {', '.join(ACTION_SPACES)}")
    columns = units = None
    if isinstance(source, (str, Path)):
        values, where = read_actions_file(source)
        if isinstance(values, Mapping):
            values, columns, units, space = actions_object(values, space, where, embodiment, warn, warn_range)
    elif isinstance(source, Prediction):  # policy -> forward dynamics: a call's result, read as its file would be
        values, columns, units, space = actions_object(source.to_json(), space, where, embodiment, warn, warn_range)
    elif isinstance(source, Mapping):  # an actions file's object, in memory
        values, columns, units, space = actions_object(source, space, where, embodiment, warn, warn_range)
    else:
        values = from_torch(source)
    try:
        if np.iscomplexobj(values):  # numpy would drop the imaginary parts with only a warning
            raise TypeError
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: values must be a rectangular numeric [T, {embodiment.action_dim}] array, got "
                         f"{type(values).__name__}" + (f" of {values.dtype}" if hasattr(values, "dtype") else "")) from None
    if arr.size == 0:  # read as a shape mismatch, "expected shape [T, 10], got (0, 10)" hid that rows were missing
        raise ValueError(f"{where}: holds no action rows (shape {arr.shape}); accepted: at least one row of "
                         f"{embodiment.action_dim} values ({', '.join(embodiment.columns)})")
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2:
        raise ValueError(f"{where}: expected shape [T, {embodiment.action_dim}], got {arr.shape}")
    if columns is not None or units is not None:
        arr = _from_columns(arr, columns, units, embodiment, where)
    if arr.shape[1] != embodiment.action_dim:
        raise ValueError(
            f"{where}: width {arr.shape[1]} does not match embodiment {embodiment.key!r} "
            f"(action_dim {embodiment.action_dim}: {', '.join(embodiment.columns)})"
        )
    if (beyond := beyond_float32(arr, None if space == "normalized" else embodiment)).any():
        row, col = np.argwhere(beyond)[0]
        value = arr[row, col]
        normalized = "" if abs(value) > FLOAT32_MAX else " once normalized"
        what = "NaN or inf" if not np.isfinite(value) else f"{value:g}, beyond float32's range{normalized},"
        raise ValueError(f"{where}: {what} at row {row}, column {embodiment.columns[col]!r}; accepted: "
                         f"{FLOAT32_ACCEPTED if space == 'normalized' else PHYSICAL_FLOAT32_ACCEPTED}")
    model = arr if space == "normalized" else to_model(embodiment, arr)
    if warn if warn_range is None else warn_range:
        warn_out_of_range(model, embodiment, where)
    return model


def from_torch(value: Any) -> Any:
    """A torch tensor (on any device, in any dtype: numpy has no bfloat16) as a float64 numpy array, complex ones
    kept complex for the check that refuses them; anything else as given. Actions and states read alike from numpy,
    torch and lists: a bf16 or CUDA state was refused as "must be a list or array of numbers"."""
    if not type(value).__module__.startswith("torch"):
        return value
    value = value.detach().cpu()
    return value.numpy() if value.is_complex() else value.double().numpy()


def actions_where(source: Any) -> str:
    """How messages name forward-dynamics actions: their file (`actions file 'F'`, which the command line rewrites as
    its `--actions 'F'`), or `actions` when they came in memory. One label for every message about the same input."""
    return f"actions file {str(Path(source))!r}" if isinstance(source, (str, Path)) else "actions"


FLOAT32_MAX = float(np.finfo(np.float32).max)
# what a state, an action row or any float input may hold: the model computes in float32 (or narrower), where a larger
# finite float64 (1e308) is inf and its actions NaN
FLOAT32_ACCEPTED = f"finite numbers within float32's range (|x| <= {FLOAT32_MAX:.3g})"
# what a physical state or action row may hold (`beyond_float32` with its embodiment)
PHYSICAL_FLOAT32_ACCEPTED = f"{FLOAT32_ACCEPTED}, as given and once normalized by the embodiment's stats"


def beyond_float32(values: Any, embodiment: Embodiment | None = None) -> np.ndarray:
    """Per value, whether it is NaN, inf or finite beyond float32's range (`FLOAT32_ACCEPTED`). With `embodiment`,
    `values` are physical rows [..., action_dim], judged once normalized too (`to_model`, what the model is given): a
    1e38 within float32 is 2e44 in a column whose stats spread is at its floor (1e-6), inf in the model's float32, and
    its video or actions NaN. Refused rather than clamped: a clamp to float32's largest number still overflows the
    model's first layers, and one to the training range would change actions asked to be imagined as given."""
    with np.errstate(invalid="ignore", over="ignore"):
        array = np.asarray(values, dtype=np.float64)
        beyond = ~(np.abs(array) <= FLOAT32_MAX)
        if embodiment is not None:
            beyond |= ~(np.abs(to_model(embodiment, array)) <= FLOAT32_MAX)
    return beyond


def state_numbers(value: Any, name: str) -> np.ndarray:
    """A state value (numpy, torch on any device or dtype, a list) as float64, or an error naming where it came
    from. An item that is not a number (None, a string) is named as what it is: read as float64, None became NaN and
    was refused as "NaN or inf", shown as nan, and "0.5" was taken for a number."""
    try:  # complex values would lose their imaginary parts with only a warning
        values = from_torch(value)
        array = None if value is None else np.asarray(values)
    except (TypeError, ValueError):  # ragged nesting
        array = None
    if array is not None and array.ndim and array.dtype.kind in "OSU":  # items of a list; a lone string: below
        if array.dtype.kind != "O" and not isinstance(values, np.ndarray):  # numpy made every item of a list that
            array = np.asarray(values, dtype=object)  # mixes numbers and strings a string: name the string one
        items = array.reshape(-1).tolist()
        bad = [i for i, item in enumerate(items) if not isinstance(item, numbers.Real)]
        if bad:
            where = "".join(f"[{i}]" for i in np.unravel_index(bad[0], array.shape))
            more = f" (and {len(bad) - 1} more items)" if len(bad) > 1 else ""
            raise ValueError(f"{name}{where} is {items[bad[0]]!r:.40}, not a number{more}; accepted: a list or array "
                             f"of numbers (given {value!r:.80})")
    if array is None or array.size == 0 or array.dtype.kind not in "biufO":
        raise ValueError(f"{name}={value!r:.80} must be a list or array of numbers")
    return array.astype(np.float64)


PREFIX_MODE = "policy"  # the one mode an action prefix conditions: the chunk a policy generates


def check_prefix_mode(mode: str) -> None:
    """An action prefix conditions a policy's chunk alone: given with another mode, it is refused (checked by
    `action_prefix_rows`, and by `RemotePolicy` before it connects for the embodiment the rows are read by)."""
    if mode != PREFIX_MODE:
        raise ValueError(f"action_prefix was given with mode={mode!r}; accepted: mode={PREFIX_MODE!r} alone (act): "
                         "it conditions the chunk a policy generates, which the other modes take or explain instead")


def action_prefix_rows(prefix: Any, mode: str, embodiment: Embodiment | None, chunk_size: int | None) -> np.ndarray:
    """A request's `action_prefix` (real-time chunking: the rows of the new chunk that will run while it is
    computed, as the previous chunk reported them) as physical rows [d, action_dim] float64, or an error naming
    `action_prefix`, what was given and what is accepted: a mode other than policy, anything but a rectangular numeric
    [d, action_dim] array (numpy, torch, nested lists), 1 <= d <= chunk_size - 1, finite values. The one reading for
    the local `Policy`, the server's adapter and `RemotePolicy` (which may know neither the embodiment nor the chunk
    size of an older server: None leaves that check to the server). Values far outside the training range are judged
    by the caller, as forward-dynamics actions are (a warning, `out_of_range_warning`)."""
    check_prefix_mode(mode)
    dim = embodiment.action_dim if embodiment is not None else None
    rows = (f"[d, {dim}] ({', '.join(embodiment.columns)})" if embodiment is not None else "[d, action_dim]") + (
        f" with 1 <= d <= chunk_size - 1 = {chunk_size - 1}" if chunk_size is not None else " with d >= 1")
    values = from_torch(prefix)
    try:
        shape = np.shape(values)
    except (ValueError, TypeError):  # ragged nesting: named by `state_numbers` below
        shape = None
    if shape is not None and len(shape) == 2 and shape[0] == 0:  # state_numbers would call it "not numbers"
        raise ValueError(f"action_prefix holds no rows (shape {shape}); accepted: rows {rows}, or None for no prefix")
    array = state_numbers(values, "action_prefix")
    if array.ndim != 2 or (dim is not None and array.shape[1] != dim):
        raise ValueError(f"action_prefix has shape {array.shape}; accepted: rows {rows}, in the units and columns of "
                         "Prediction.actions")
    if chunk_size is not None and array.shape[0] >= chunk_size:
        raise ValueError(f"action_prefix has {array.shape[0]} rows; accepted: rows {rows}: the chunk must keep at "
                         "least one row to generate")
    if (beyond := beyond_float32(array, embodiment)).any():
        row, col = np.argwhere(beyond)[0]
        column = repr(embodiment.columns[col]) if embodiment is not None else col
        raise ValueError(f"action_prefix holds {array[row, col]:g} at row {row}, column {column}; accepted: "
                         f"{FLOAT32_ACCEPTED if embodiment is None else PHYSICAL_FLOAT32_ACCEPTED}")
    return array


ACTIONS_SUFFIXES = (".json", ".npy", ".npz", ".csv")  # what `read_actions_file` reads, as errors name them


def check_actions_file(path: Path) -> str:
    """`path` as an actions file's place, and its name for errors (`actions_where`): a missing one is named, and a
    folder too, which was said not to exist. `read_actions_file` asks it first; the command line, before any work."""
    where = actions_where(path)
    if path.is_dir():
        raise ValueError(f"{where} is a folder; accepted: an actions file ({', '.join(ACTIONS_SUFFIXES)})")
    if not path.is_file():
        raise FileNotFoundError(f"{where} does not exist")
    return where


def read_actions_file(source: str | Path) -> tuple[Any, str]:
    """An actions file's content and its name for errors: a `.json` object (an actions object: `actions_object`), the
    rows of a `.json` list or a `.npy` array, or the actions object a `.npz` (`_npz_actions`) or `.csv`
    (`_csv_actions`) holds, its columns named. One reader for `load_actions` and a client without the server's
    embodiment, which sends an actions object's rows in the order it names them."""
    path = Path(source)
    where = check_actions_file(path)
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        try:  # read as what it holds (np.load's own rule), whichever of the two suffixes it has
            loaded = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{where} is not a numeric {suffix} array ({str(exc).split('.')[0]})") from None
        return (loaded if isinstance(loaded, np.ndarray) else _npz_actions(loaded, where)), where
    if suffix == ".csv":
        return _csv_actions(path, where), where
    if suffix != ".json":
        raise ValueError(f"{where}: unsupported suffix {path.suffix!r}; accepted: {', '.join(ACTIONS_SUFFIXES)}")
    doc = read_json(path, where)
    if isinstance(doc, dict):
        return doc, where
    if isinstance(doc, list):
        return actions_from_json(doc), where
    raise ValueError(f"{where}: expected a list of rows or an object with 'actions'")


def _npz_actions(archive: Any, where: str) -> dict[str, Any]:
    """A `.npz` as an actions object: an `actions` array [T, D] with optional `columns` and `units` (string arrays),
    as `np.savez(f, actions=a, columns=names)` writes it; or one 1-D array per column, named by it
    (`np.savez(f, tx=..., ty=..., ...)`), as a recording's per-signal arrays are kept."""
    with archive:
        try:
            arrays = {name: archive[name] for name in archive.files}
        except ValueError:  # an object array (a list of str saved as dtype=object) needs pickle, never read here
            raise ValueError(f"{where}: holds an object array, which is not read (no pickle); save names as a "
                             "string array, e.g. np.array(['tx', 'ty'])") from None
    if "actions" in arrays:
        names = {key: arrays[key].tolist() for key in ("columns", "units") if key in arrays}
        extra = sorted(set(arrays) - {"actions", "columns", "units"})
        if extra:
            raise ValueError(f"{where}: unknown arrays {extra} beside 'actions'; accepted: actions, columns, units")
        return {"actions": arrays["actions"], **names}
    shapes = {name: a.shape for name, a in arrays.items()}
    if not arrays or any(len(shape) != 1 for shape in shapes.values()) or len(set(shapes.values())) != 1:
        raise ValueError(f"{where}: holds {shapes or 'no arrays'}; accepted: an 'actions' array [T, D] (with optional "
                         "'columns' and 'units' string arrays), or one 1-D array of T values per column, named by it")
    return {"actions": np.stack(list(arrays.values()), axis=1), "columns": list(arrays)}


_CSV_UNIT = re.compile(r"^(?P<column>.*?)\s*\[(?P<unit>[^\[\]]*)\]$")  # "tx [m]": column tx in metres


def _csv_actions(path: Path, where: str) -> dict[str, Any] | list[list[float]]:
    """A `.csv`'s rows: a header of column names (each optionally with its unit, `tx [m]`, checked as an actions
    object's `units`) over one row of numbers per step; a file whose first row is all numbers is bare rows in the
    embodiment's order. Spreadsheets and pandas (`df.to_csv(index=False)`) write these; values separated by commas,
    or by semicolons or tabs where the first line holds no comma (a spreadsheet's export in a decimal-comma locale
    still needs decimal points)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:  # utf-8-sig: Excel's byte-order mark
            first = f.readline()
            f.seek(0)
            delimiter = next((d for d in (",", ";", "\t") if d in first), ",")
            rows = [row for row in csv.reader(f, delimiter=delimiter) if any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{where} is not a readable CSV text file ({exc})") from None
    if not rows:
        raise ValueError(f"{where} holds no rows")

    def number(cell: str) -> float | None:
        try:
            return float(cell)
        except ValueError:
            return None

    header = None if all(number(cell) is not None for cell in rows[0]) else [cell.strip() for cell in rows[0]]
    body = rows if header is None else rows[1:]
    if not body:
        raise ValueError(f"{where} has a header ({', '.join(header or [])}) and no rows of actions under it")
    values = []
    for i, row in enumerate(body):  # rows counted from 0 under the header, as the other actions errors count them
        if header is not None and len(row) != len(header):
            raise ValueError(f"{where}: row {i} has {len(row)} values for {len(header)} header columns")
        parsed = [number(cell) for cell in row]
        if None in parsed:
            k = parsed.index(None)
            named = f"column {header[k]!r}" if header is not None else f"value {k}"
            raise ValueError(f"{where}: row {i}, {named}: {row[k]!r} is not a number")
        values.append(parsed)
    if header is None:
        return values
    parts = [_CSV_UNIT.match(cell) for cell in header]
    units = [m["unit"].strip() if m else None for m in parts]
    if any(u is not None for u in units) and None in units:
        bare = [cell for cell, u in zip(header, units) if u is None]
        raise ValueError(f"{where}: header gives units for some columns, not for {', '.join(bare)}; name a unit for "
                         "every column (`tx [m]`) or for none")
    columns = [m["column"] if m else cell for m, cell in zip(parts, header)]
    return {"actions": values, "columns": columns, **({"units": units} if units[0] is not None else {})}


def actions_object(doc: Mapping[str, Any], space: str, where: str, embodiment: Embodiment | None = None,
                   warn: bool = True, warn_rate: bool | None = None) -> tuple[Any, Any, Any, str]:
    """An actions object (a JSON file's, `Prediction.to_json()`): its rows, columns, units and space. A
    `worldpolicy.actions/v1` object is read from its physical `actions`. `embodiment`: the one it is read for, if
    known (a client without the server's reads the rows as they are named). `warn=False` logs nothing about how the
    object is read (`load_actions`'s `warn`: a check whose run reads it again and says so then); `warn_rate` (default:
    `warn`) decides `actions_rate_warning` alone."""
    warn_rate = warn if warn_rate is None else warn_rate
    if "actions" not in doc:
        raise ValueError(f"{where}: an object needs an 'actions' field; found {sorted(doc)}")
    values = actions_from_json(doc["actions"])  # null: a non-finite value, refused later by name
    if schema_matches(doc, ACTIONS_SCHEMA, where):
        if space == "normalized" and warn:
            logger.warning("%s: a %s object holds physical actions; reading them as physical, not normalized", where,
                           ACTIONS_SCHEMA)
        space = "physical"  # the object says what its `actions` are
        source_key = doc.get("embodiment")
        if warn and embodiment is not None and source_key is not None and source_key != embodiment.key:
            logger.info("%s: written for %r, read as %r by column name (physical units)", where, source_key,
                        embodiment.key)
        message = _rate_message(doc, embodiment, where) if embodiment is not None and warn_rate else None
        if message is not None:
            logger.warning("%s", message)
    elif doc.get("normalized") is True:
        space = "normalized"
    return values, doc.get("columns"), doc.get("units"), space


def _rate_message(doc: Mapping[str, Any], embodiment: Embodiment, where: str) -> str | None:
    """`actions_rate_warning` of an actions object already read."""
    rate = doc.get("fps")
    if (not str(doc.get("schema") or "").startswith("worldpolicy.actions/") or not is_real(rate, finite=False)
            or not rate > 0 or embodiment.runs_at(rate)):
        return None
    return (f"{where}: its rows are at {rate:g} Hz (its fps), but embodiment {embodiment.key!r} runs at "
            f"{embodiment.fps:g} Hz: each row is run as one {embodiment.fps:g} Hz step, so its motion takes "
            f"{rate / embodiment.fps:.3g} times as long as it was written to; resample the rows to {embodiment.fps:g} "
            "Hz to keep its timing")


def actions_rate_warning(source: Any, embodiment: Embodiment, where: str = "actions") -> str | None:
    """The warning for forward-dynamics actions whose `worldpolicy.actions/v1` object (a file, one in memory, a
    `Prediction`) names another rate (`fps`) than `embodiment` runs at: each row is run as one of its steps, so a
    30 Hz chunk imagined at 15 Hz moves at half speed. None where there is nothing to say (bare rows carry no rate,
    and a source that cannot be read is refused by its reader). One message for every place that says it: a
    `Policy` once, the command line and the agent tools before the weights load (`policy.input_warnings`). `where`:
    as `load_actions`'s."""
    if isinstance(source, (str, Path)):
        if Path(source).suffix.lower() != ".json":  # only a JSON object names a rate: a .npy, .npz or .csv (a whole
            return None  # trajectory's rows, given to every `Policy` call) is not read a second time to find none
        try:
            source, where = read_actions_file(source)
        except (OSError, ValueError):
            return None
    elif isinstance(source, Prediction):
        source = source.to_json()
    return _rate_message(source, embodiment, where) if isinstance(source, Mapping) else None


_FAR_OUT = 3.0  # model-space magnitude; the stats map the training data's 1st..99th percentiles to [-1, 1]
# The same for mean/std stats, whose [-1, 1] is one standard deviation, not the data's range: a column the data seldom
# moves (a gripper closed in a few percent of the frames) holds real values 4 to 10 std out, which a bound of 3 named
# as wrong units; wrong units land far past 10 (degrees for radians 57x, millimetres for metres 1000x).
_FAR_OUT_STD = 10.0


def _physical_gripper(embodiment: Embodiment) -> int | None:
    """The gripper column of an unnormalised embodiment that holds a physical g (droid's joints), or None: its values
    are judged as the robot bridge judges them, by `GRIPPER_MARGIN` around [0, 1], before the flip (a flipping
    embodiment's model holds 1 - g: a bound on its magnitude let g = 2 through, and a [-1, 1] convention's -1)."""
    grip = embodiment.gripper_index
    if embodiment.normalization != "none" or grip is None or embodiment.units[grip] == MODEL_SPACE_UNIT:
        return None
    return grip


def _far_bounds(embodiment: Embodiment) -> tuple[np.ndarray, str]:
    """Per column, the model-space magnitude past which a value cannot be meant, and why. Normalised embodiments have
    the training data's range (its spread, for mean/std stats); an unnormalised one (droid's raw joints) only what its
    units allow: an angle within one turn, a value in model space (umi's, whose stats are not published) the same as a
    normalised one; other columns are not bounded, nor a physical gripper by magnitude (`_physical_gripper`). Nor is a
    column the training data held constant: its stats give no scale, so a legit reading (a reach-trained gripper
    measured at 1e-4) is hundreds in model space."""
    if embodiment.normalization == "meanstd":
        why = (f"far outside what embodiment {embodiment.key!r} was trained on (model space, in standard deviations "
               "of its data)")
        return np.where(embodiment.constant_columns(), np.inf, _FAR_OUT_STD), why
    if embodiment.normalization != "none":
        why = f"far outside what embodiment {embodiment.key!r} was trained on (model space, where its data spans [-1, 1])"
        return np.where(embodiment.constant_columns(), np.inf, _FAR_OUT), why
    per_unit = {"rad": 2 * np.pi, MODEL_SPACE_UNIT: _FAR_OUT}
    bounds = np.array([per_unit.get(unit, np.inf) for unit in embodiment.units])
    grip = _physical_gripper(embodiment)
    if grip is not None:
        bounds[grip] = np.inf
    return bounds, (f"beyond what the columns of embodiment {embodiment.key!r} hold (angles in rad, the gripper within "
                    f"{GRIPPER_MARGIN:g} of [0, 1], model-space values in about [-1, 1])")


def _far_columns(model: np.ndarray, embodiment: Embodiment) -> tuple[list[tuple[str, str]], str]:
    """The columns of model-space rows that hold a value that cannot be meant, each with the value that says so (the
    peak magnitude; for a physical gripper the g furthest outside [0, 1], with what it likely is), in column order,
    and why such values cannot be meant."""
    bounds, why = _far_bounds(embodiment)
    peak = np.abs(model).max(axis=0)
    said = {int(i): f"|x| up to {peak[i]:.3g}" for i in np.flatnonzero(peak > bounds)}
    grip = _physical_gripper(embodiment)
    if grip is not None:
        g = flip_gripper(embodiment, model)[..., grip].reshape(-1)  # unnormalised: model space is g, maybe flipped
        worst = float(g[np.argmax(np.maximum(-g, g - 1))])
        if not -GRIPPER_MARGIN <= worst <= 1 + GRIPPER_MARGIN:
            said[grip] = f"g = {worst:.3g}, {gripper_unit_hint(worst)}"
    return [(embodiment.columns[i], said[i]) for i in sorted(said)], why


def out_of_range_columns(model: np.ndarray, embodiment: Embodiment) -> tuple[str, ...]:
    """The columns of model-space rows (actions, or the state a policy conditions on) that hold a value that cannot be
    meant (`_far_columns`): a run says each such set once (`Policy`), keyed by these names."""
    far, _ = _far_columns(model, embodiment)
    return tuple(column for column, _ in far)


def out_of_range_warning(model: np.ndarray, embodiment: Embodiment, where: str) -> str | None:
    """What to say of model-space rows that cannot be meant, or None: wrong units (degrees, a 0-255 gripper,
    millimetres) give meaningless results without any error, so they are named. The one wording: a run
    (`Policy`), `load_actions` and the front ends' checks before the weights load (`policy.input_warnings`) say the
    same, which is how a front end's run knows not to say it again."""
    far, why = _far_columns(model, embodiment)
    if not far:
        return None
    cols = [f"{column} ({value})" for column, value in far]
    return (f"{where}: {', '.join(cols)} {why}; check the units ("
            f"{', '.join(f'{c} [{u}]' for c, u in zip(embodiment.columns, embodiment.units))})")


def warn_out_of_range(model: np.ndarray, embodiment: Embodiment, where: str) -> None:
    """Log `out_of_range_warning`'s message, if any."""
    message = out_of_range_warning(model, embodiment, where)
    if message is not None:
        logger.warning("%s", message)


def fit_to_chunk(actions: np.ndarray, chunk_size: int, embodiment: Embodiment, where: str = "actions") -> np.ndarray:
    """Trim, or repeat the last row, to exactly `chunk_size` rows (what the pipeline does), saying so and what the
    repeated rows mean for `embodiment`'s layout (deltas keep moving where targets hold). `where` names the actions
    (`actions_where`: their file, if they came from one), so the warning says which input to edit."""
    n = actions.shape[0]
    if n == chunk_size:
        return actions
    if n > chunk_size:
        logger.warning("%s: %d rows given, using the first %d (chunk_size); imagine(..., whole_trajectory=True) "
                       "(predict --whole-trajectory) rolls out every row, chunk after chunk", where, n, chunk_size)
        return actions[:chunk_size]
    logger.warning("%s: %d rows given, repeating the last row to reach chunk_size=%d (as the diffusers pipeline "
                   "pads). %s", where, n, chunk_size, _padding_meaning(embodiment, chunk_size - n, chunk_size))
    return np.concatenate([actions, np.repeat(actions[-1:], chunk_size - n, axis=0)], axis=0)


ROT6D_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # `robot.se3.matrix_to_rot6d` of no rotation (np.eye(3))


def _padding_meaning(e: Embodiment, added: int, chunk_size: int) -> str:
    """What `added` repeats of the last row do on `e`'s robot, and how to ask for it to stop instead."""
    steps = f"{added} more step{'s' if added != 1 else ''}"
    if e.layout == "joint_position":
        return f"{e.key}'s actions are joint targets (joint_position): the arm holds the last one for {steps}"
    full = f"give all {chunk_size} rows"
    if e.layout != "relative_pose":
        return (f"{e.key}'s columns ({e.layout} layout) keep their last values for {steps}: if they are deltas or "
                f"velocities, the last motion goes on; for another ending, {full}")
    meaning = (f"{e.key}'s actions are per-step end-effector deltas (relative_pose): the last motion goes on for "
               f"{steps} rather than stopping. To stop instead, {full}")
    groups = pose_groups(e.columns)
    if e.in_model_space:
        return f"{meaning} (zero motion has no known value in this embodiment's model-space units)"
    if not groups:
        return f"{meaning} (its columns hold no tx..r5 pose to write zero motion in)"
    posed = {i for indexes in groups.values() for i in indexes}
    held = [c for i, c in enumerate(e.columns) if i not in posed]
    return (f"{meaning}, or append zero-motion rows in physical units: {', '.join(f'{p}tx..{p}r5' for p in groups)} = "
            f"{_listed([0, 0, 0, *ROT6D_IDENTITY])} (no translation, and rot6d's identity {_listed(ROT6D_IDENTITY)}: "
            "all-zero r0..r5 are no rotation at all)" + (f", {', '.join(held)} as in the last row" if held else ""))


def _listed(values: Sequence[float]) -> str:
    return f"[{', '.join(f'{v:g}' for v in values)}]"
