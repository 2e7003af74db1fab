"""msgpack-numpy codec: byte compatibility with the openpi wire, refusals, bounds, and a hypothesis fuzz."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from worldpolicy.serving.codec import CodecError, Limits, packb, unpackb


def test_bytes_match_the_documented_example():
    # wire-protocol.md §3: {"x": arange(6, f4).reshape(2,3)} and np.int64(3)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    expected = (
        b"\x81\xa1x\x84\xc4\x0b__ndarray__\xc3\xc4\x04data\xc4\x18" + x.tobytes()
        + b"\xc4\x05dtype\xa3<f4\xc4\x05shape\x92\x02\x03"
    )
    assert packb({"x": x}) == expected
    assert packb(np.int64(3)) == b"\x83\xc4\x0d__npgeneric__\xc3\xc4\x04data\x03\xc4\x05dtype\xa3<i8"
    assert packb(np.float64(2.5)) == msgpack.packb(2.5)  # a Python float subclass: plain float64


def test_bytes_match_openpi_client():
    openpi = pytest.importorskip("openpi_client.msgpack_numpy")
    obj = {
        "img": np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3),
        "strided": np.arange(12.0)[::3],  # non-contiguous: copied to C order
        "s": np.int32(-7), "b": np.bool_(True), "f": np.float64(1.5), "u": np.array(["ab", "c"]),
        "nested": [{"k": np.zeros((0, 3), np.float16)}, None, "txt", 3],
    }
    assert packb(obj) == openpi.packb(obj)
    ours, theirs = unpackb(openpi.packb(obj)), openpi.unpackb(packb(obj))
    for decoded in (ours, theirs):
        np.testing.assert_array_equal(decoded["img"], obj["img"])
        np.testing.assert_array_equal(decoded["strided"], obj["strided"])
        assert decoded["s"] == -7 and decoded["s"].dtype == np.int32 and decoded["b"] is np.True_
        assert decoded["nested"][0]["k"].shape == (0, 3)


def test_decoded_arrays_alias_the_message_read_only():
    arr = unpackb(memoryview(packb({"a": np.arange(1000, dtype=np.float64)})))["a"]
    assert not arr.flags.writeable and not arr.flags.owndata and arr.flags.aligned
    with pytest.raises(ValueError):
        arr[0] = 1.0


def test_key_order_inside_the_array_map_does_not_matter():
    x = np.arange(4, dtype="<i2")
    reordered = msgpack.packb({b"shape": [2, 2], b"dtype": "<i2", b"data": x.tobytes(), b"__ndarray__": True})
    np.testing.assert_array_equal(unpackb(reordered), x.reshape(2, 2))


@pytest.mark.parametrize("bad", [np.zeros(2, complex), np.array([object()]), np.zeros(2, "i4,f4"), np.zeros(2, "M8[s]")])
def test_refused_dtypes_on_encode(bad):
    with pytest.raises(CodecError, match="Unsupported dtype"):
        packb({"a": bad})


def test_a_failed_encode_leaves_no_partial_bytes_behind():
    # packb reuses one Packer per thread: a message that fails half-way must not leak into the next one
    x = {"a": np.arange(3.0), "b": 1}
    with pytest.raises(CodecError, match="Unsupported dtype"):
        packb({"ok": np.ones(4), "bad": np.zeros(2, complex)})
    with pytest.raises(CodecError, match="cannot encode"):
        packb({"big": 2**70})
    assert packb(x) == packb(x) == msgpack.packb(
        {"a": {b"__ndarray__": True, b"data": x["a"].tobytes(), b"dtype": "<f8", b"shape": [3]}, "b": 1}
    )
    big = {"v": np.zeros(9 * 2**20, np.uint8)}  # over the size after which the Packer's buffer is dropped
    assert unpackb(packb(big), Limits(max_message_bytes=2**24, max_array_bytes=2**24))["v"].size == 9 * 2**20
    assert unpackb(packb(x))["b"] == 1


def _array_map(data: bytes, dtype, shape) -> bytes:
    return msgpack.packb({b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape})


@pytest.mark.parametrize(
    "message, match",
    [
        (_array_map(b"\0" * 16, "<c8", [2]), "unsupported dtype"),
        (_array_map(b"\0" * 8, "|O", [1]), "unsupported dtype"),
        (_array_map(b"\0" * 8, "V8", [1]), "unsupported dtype"),
        (_array_map(b"\0" * 8, "i4,i4", [1]), "unsupported dtype"),
        (_array_map(b"", "<U0", [10**12]), "unsupported dtype"),
        (_array_map(b"\0" * 8, "not-a-dtype", [2]), "not a numpy dtype"),
        (_array_map(b"\0" * 8, 5, [2]), "dtype string"),
        (_array_map(b"\0" * 8, "<f4", [3]), "needs 12"),  # too short
        (_array_map(b"\0" * 16, "<f4", [3]), "needs 12"),  # too long (openpi would accept this silently)
        (_array_map(b"\0" * 8, "<f4", [-2]), "non-negative"),
        (_array_map(b"\xff" * 4, "<U1", [1]), "beyond U\\+10FFFF"),  # str() of it would fail later, anywhere
        (_array_map(b"\0" * 8, "<f4", "2"), "shape"),
        (_array_map("text", "<f4", [1]), "bin"),
        (msgpack.packb({b"__ndarray__": True, b"data": b""}), "lacks"),
        (msgpack.packb({b"__npgeneric__": True, b"data": 300, b"dtype": "|u1"}), "does not fit"),
        (msgpack.packb({b"__npgeneric__": True, b"data": [1], b"dtype": "<i4"}), "scalar data"),
        (msgpack.packb({b"__npgeneric__": True, b"data": 1, b"dtype": "<c16"}), "unsupported dtype"),
        (msgpack.packb({"a": msgpack.ExtType(5, b"xyz")}), "malformed"),
        (msgpack.packb({1: 2}), "malformed"),  # non-str map key
        (b"\xc1", "malformed"),
        (b"\x92\x01", "malformed"),  # truncated
        (packb({"a": 1}) + b"\x00", "trailing"),
    ],
)
def test_refused_messages(message, match):
    with pytest.raises(CodecError, match=match):
        unpackb(message)


def test_limits():
    big = packb({"a": np.zeros(1000, np.uint8)})
    with pytest.raises(CodecError, match="max_message_bytes"):
        unpackb(big, Limits(max_message_bytes=500))
    with pytest.raises(CodecError, match="malformed"):
        unpackb(big, Limits(max_array_bytes=999))
    with pytest.raises(CodecError, match="max_depth"):
        unpackb(packb([[[[1]]]]), Limits(max_depth=3))
    assert unpackb(packb([[[1]]]), Limits(max_depth=3)) == [[[1]]]
    with pytest.raises(CodecError, match="max_depth"):  # more containers than max_depth: the walk finds the deep one
        unpackb(packb([[1], [2], [[[3]]]]), Limits(max_depth=3))
    assert unpackb(packb([[1], [2], [[3]]]), Limits(max_depth=3)) == [[1], [2], [[3]]]  # many containers, shallow
    assert unpackb(packb({"a": np.zeros(3)}), Limits(max_depth=1))["a"].shape == (3,)  # arrays are leaves
    with pytest.raises(CodecError, match="max_depth"):
        unpackb(b"\x91" * 5000 + b"\x00")  # beyond msgpack's own stack: still a CodecError
    with pytest.raises(CodecError, match="malformed"):
        unpackb(packb(list(range(100))), Limits(max_items=99))
    with pytest.raises(CodecError, match="more than max_objects=100 values"):  # in all, across containers
        unpackb(packb([[0] * 40] * 3), Limits(max_objects=100))
    assert unpackb(packb([[0] * 40] * 2), Limits(max_objects=100)) == [[0] * 40] * 2
    with pytest.raises(CodecError, match="malformed"):
        unpackb(packb("x" * 100), Limits(max_str_bytes=99))
    with pytest.raises(ValueError, match="max_depth"):
        Limits(max_depth=0)


# ------------------------------------------------------------------------------------------------------ fuzz
_dtypes = st.sampled_from(["|u1", "<i2", "<i4", "<i8", "<u4", "<f2", "<f4", "<f8", "|b1", ">f4", "<U3", "|S2"])
_arrays = _dtypes.flatmap(lambda d: hnp.arrays(np.dtype(d), hnp.array_shapes(min_dims=0, max_dims=4, max_side=5)))
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.text(max_size=8))
_values = st.recursive(
    st.one_of(_scalars, _arrays),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)),
    max_leaves=12,
)


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, float) and np.isnan(a):
        return isinstance(b, float) and np.isnan(b)
    return a == b and type(a) is type(b)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_values)
def test_fuzz_roundtrip(value):
    assert _same(value, unpackb(packb(value)))


@settings(max_examples=300, deadline=None)
@given(_values, st.data())
def test_fuzz_corrupted_messages_fail_only_with_codec_error(value, data):
    message = bytearray(packb({"obs": value}))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
        pos = data.draw(st.integers(0, max(len(message) - 1, 0)))
        if op == "flip" and message:
            message[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "truncate":
            del message[pos:]
        else:
            message[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
    try:
        unpackb(bytes(message), Limits(max_message_bytes=2**20, max_array_bytes=2**16))
    except CodecError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=256))
def test_fuzz_random_bytes_fail_only_with_codec_error(blob):
    try:
        unpackb(blob)
    except CodecError:
        pass


@pytest.mark.parametrize("shape", [[0, 2**62], [2**64 - 1] * 8])
def test_an_empty_array_of_absurd_dimensions_names_the_limit(shape):
    """[0, 2**62] matched its empty data, and numpy refused it as "malformed msgpack message: array is too big"."""
    message = msgpack.packb({"state": {b"__ndarray__": True, b"data": b"", b"dtype": "<f4", b"shape": shape}})
    with pytest.raises(CodecError, match=r"^array shape \(.* of dtype '<f4' spans .* bytes \(a 0 dimension counted as "
                                         r"1\); max_array_bytes=67108864$"):
        unpackb(message)
    assert unpackb(msgpack.packb({"s": {b"__ndarray__": True, b"data": b"", b"dtype": "<f4", b"shape": [0, 8]}}))[
        "s"].shape == (0, 8)
