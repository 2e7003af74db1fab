"""The openpi wire's msgpack-numpy convention, bounded and without pickle (facts: wire-protocol.md §3).

An array travels as a msgpack map with the bin keys `__ndarray__`, `data` (C-order bytes), `dtype` (`dtype.str`) and
`shape`; a numpy scalar as `__npgeneric__`, `data` (native value), `dtype`. Decoding checks every size before it
allocates: message bytes, bin/str/array/map lengths, the number of decoded values in all, nesting depth, and that
`data` holds exactly `shape × itemsize` bytes. Decoded arrays alias the decoded bin payload (read-only, no further
copy): copy before writing in place.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..extras import extra_imports

with extra_imports():
    import msgpack

__all__ = ["ACCEPTED_DTYPE_KINDS", "CodecError", "Limits", "packb", "unpackb"]

# bool, signed/unsigned int, float, unicode, bytes. Object ("O"), void/structured ("V") and complex ("c") are refused
# like openpi does; datetimes are refused too because nothing on the wire needs them.
ACCEPTED_DTYPE_KINDS = "biufUS"
_KIND_NAMES = "bool, int, uint, float, unicode str, bytes"
_MAX_NDIM = 32
_MAX_DTYPE_CHARS = 32


class CodecError(ValueError):
    """A message that is not valid msgpack-numpy, or that breaks a size limit."""


@dataclass(frozen=True)
class Limits:
    """Upper bounds applied while decoding one message (defaults fit a 1080p three-camera request with room to spare)."""

    max_message_bytes: int = 64 * 2**20
    max_array_bytes: int = 64 * 2**20
    max_str_bytes: int = 2**20
    max_items: int = 2**16  # entries of one map or list
    max_objects: int = 2**17  # maps, lists and their entries in all: a small frame of nested empty lists cannot
    # expand into gigabytes of Python objects (arrays travel as one bin each, so real requests hold a few dozen)
    max_depth: int = 32

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Limits.{name}={value!r} is invalid; accepted: an int >= 1")


DEFAULT_LIMITS = Limits()


_ACCEPTED_DTYPES: dict[str, np.dtype] = {}  # dtype strings already checked: a lookup instead of numpy's parser
_MAX_CACHED_DTYPES = 256  # bounded: a client may send any number of distinct spellings


def _checked_dtype(spec: Any) -> np.dtype:
    if type(spec) is str and (dtype := _ACCEPTED_DTYPES.get(spec)) is not None:
        return dtype
    if not isinstance(spec, str) or len(spec) > _MAX_DTYPE_CHARS:
        raise CodecError(f"array dtype must be a numpy dtype string such as '<f4', got {spec!r:.60}")
    try:
        dtype = np.dtype(spec)
    except (TypeError, ValueError, SyntaxError) as exc:  # numpy parses comma specs with ast: ',' raises SyntaxError
        raise CodecError(f"array dtype {spec!r} is not a numpy dtype") from exc
    if dtype.kind not in ACCEPTED_DTYPE_KINDS or dtype.itemsize == 0:
        raise CodecError(f"unsupported dtype {spec!r} (kind {dtype.kind!r}); accepted: {_KIND_NAMES}")
    if len(_ACCEPTED_DTYPES) < _MAX_CACHED_DTYPES:
        _ACCEPTED_DTYPES[spec] = dtype
    return dtype


def _encode(obj: Any) -> Any:
    if isinstance(obj, (np.ndarray, np.generic)):
        if obj.dtype.kind not in ACCEPTED_DTYPE_KINDS:
            raise CodecError(f"Unsupported dtype: {obj.dtype} (accepted: {_KIND_NAMES})")
        if isinstance(obj, np.ndarray):
            return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": obj.shape}
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot encode {type(obj).__name__} on the wire (accepted: numpy arrays/scalars and msgpack types)")


_packers = threading.local()  # one msgpack Packer per thread (a Packer is not thread-safe)
_KEEP_PACKER_BYTES = 8 * 2**20  # a Packer keeps its buffer at the largest message it packed: drop it after bigger ones


def packb(obj: Any) -> bytes:
    """Encode `obj` (dicts, lists, str, numbers, bool, None, bytes, numpy arrays and scalars) byte-compatibly with
    openpi.

    Reuses the thread's Packer, as openpi does: a fresh one per message regrows its buffer from scratch, which costs
    more than packing (98 vs 40 us for a three-camera DROID request, docs/serving.md)."""
    packer = getattr(_packers, "packer", None)
    if packer is None:
        packer = _packers.packer = msgpack.Packer(default=_encode, use_bin_type=True, datetime=False)
    try:
        data = packer.pack(obj)
    except Exception as exc:
        _packers.packer = None  # never reuse a Packer that failed half-way
        if isinstance(exc, CodecError):
            raise
        if isinstance(exc, (TypeError, ValueError, OverflowError)):
            raise CodecError(f"cannot encode message: {exc}") from exc
        raise
    if len(data) > _KEEP_PACKER_BYTES:
        _packers.packer = None
    return data


def _decode_other_map(obj: dict) -> Any:
    """A numpy scalar, or a plain map as it is (arrays, the common case, go straight to `_decode_array`)."""
    if b"__npgeneric__" in obj:
        dtype = _checked_dtype(obj.get(b"dtype"))
        data = obj.get(b"data")
        if not isinstance(data, (bool, int, float, str, bytes)):
            raise CodecError(f"numpy scalar data must be a bool, number, str or bytes, got {type(data).__name__}")
        try:
            return dtype.type(data)
        except (TypeError, ValueError, OverflowError) as exc:
            raise CodecError(f"numpy scalar {data!r:.60} does not fit dtype {dtype.str!r}: {exc}") from exc
    return obj


def _decode_array(obj: dict, max_array_bytes: int) -> np.ndarray:
    try:
        data, spec, shape = obj[b"data"], obj[b"dtype"], obj[b"shape"]
    except KeyError:
        missing = sorted(k.decode() for k in {b"data", b"dtype", b"shape"} - obj.keys())
        raise CodecError(f"array map lacks {missing} (needs data, dtype, shape)") from None
    dtype = _checked_dtype(spec)
    if type(data) is not bytes:
        raise CodecError(f"array data must be msgpack bin, got {type(data).__name__}")
    if type(shape) is not list or len(shape) > _MAX_NDIM or not all(type(n) is int and n >= 0 for n in shape):
        raise CodecError(f"array shape must be a list of at most {_MAX_NDIM} non-negative ints, got {shape!r:.80}")
    expected = math.prod(shape) * dtype.itemsize  # `type(n) is int` above also refuses bools
    # data that matches a shape is within the limit (`max_bin_len`), unless a zero dimension makes no bytes of any
    # other: [0, 2**62] matched its empty data, and numpy then refused it as "array is too big" (said as a malformed
    # message): the other dimensions must fit the limit too. Checked only off the common path (a non-empty match)
    if expected != len(data) or not expected:
        if (spanned := math.prod(float(n or 1) for n in shape) * dtype.itemsize) > max_array_bytes:
            raise CodecError(f"array shape {tuple(shape)!r:.80} of dtype {dtype.str!r} spans {spanned:g} bytes (a 0 "
                             f"dimension counted as 1); max_array_bytes={max_array_bytes}")
        if expected != len(data):
            raise CodecError(
                f"array data has {len(data)} bytes but shape {tuple(shape)} of dtype {dtype.str!r} needs {expected}"
            )
    if dtype.kind == "U" and data:  # numpy stores str as UTF-32 code points; beyond U+10FFFF breaks str()
        code_points = np.frombuffer(data, np.dtype("u4").newbyteorder(dtype.byteorder))
        if code_points.max() > 0x10FFFF:
            raise CodecError(f"unicode array of dtype {dtype.str!r} holds values beyond U+10FFFF")
    # aliases the bin's bytes object: no copy, read-only, aligned (CPython bytes payloads start 16-byte aligned)
    return np.ndarray(shape, dtype, data)


def _over_budget(limits: Limits) -> CodecError:
    return CodecError(f"message holds more than max_objects={limits.max_objects} values (send arrays as numpy)")


def _check_depth(root: Any, max_depth: int) -> None:
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise CodecError(f"message nests deeper than max_depth={max_depth}")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, (dict, list)))


def unpackb(data: bytes | bytearray | memoryview, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Decode one message, refusing anything malformed, oversized, too deep, extension-typed or of a refused dtype."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"message must be bytes, got {type(data).__name__}")
    size = memoryview(data).nbytes
    if size > limits.max_message_bytes:
        raise CodecError(f"message is {size} bytes; max_message_bytes={limits.max_message_bytes}")
    budget = limits.max_objects
    containers = 0  # maps and lists decoded, arrays' own included: no message nests deeper than it has containers

    # the budget is spent inline, not through a shared helper: the hooks run for every map and list of every request
    def counted_list(items: list) -> list:
        nonlocal budget, containers
        budget -= len(items) + 1
        containers += 1
        if budget < 0:
            raise _over_budget(limits)
        return items

    def counted_map(obj: dict) -> Any:
        nonlocal budget, containers
        budget -= len(obj) + 1
        containers += 1
        if budget < 0:
            raise _over_budget(limits)
        return _decode_array(obj, limits.max_array_bytes) if b"__ndarray__" in obj else _decode_other_map(obj)

    try:
        obj = msgpack.unpackb(
            data,
            object_hook=counted_map,
            list_hook=counted_list,
            raw=False,
            strict_map_key=True,
            max_bin_len=limits.max_array_bytes,
            max_str_len=limits.max_str_bytes,
            max_array_len=limits.max_items,
            max_map_len=limits.max_items,
            max_ext_len=0,
        )
    except CodecError:
        raise
    except msgpack.ExtraData as exc:
        raise CodecError("message has trailing bytes after one msgpack object") from exc
    except msgpack.exceptions.StackError as exc:
        raise CodecError(f"message nests deeper than max_depth={limits.max_depth}") from exc
    except (ValueError, TypeError, UnicodeDecodeError, msgpack.exceptions.FormatError) as exc:
        detail = str(exc) or type(exc).__name__
        raise CodecError(f"malformed msgpack message ({size} bytes): {detail}") from exc
    if containers > limits.max_depth:  # else it cannot nest too deep: a DROID request (11 containers) skips the walk
        _check_depth(obj, limits.max_depth)
    return obj
