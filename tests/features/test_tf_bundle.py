"""The tensor-bundle reader on bundles written here by a minimal, independent writer."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from instrec._io import InstrecError
from instrec.features import tf_bundle

TF_DTYPES = {np.dtype("float32"): 1, np.dtype("float64"): 2, np.dtype("int32"): 3, np.dtype("uint8"): 4,
             np.dtype("int64"): 9, np.dtype("bool"): 10, np.dtype("float16"): 19}


def crc32c_bitwise(data: bytes) -> int:
    """Reference CRC-32C, one bit at a time (independent of the module's table/lanes)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(data: bytes) -> int:
    crc = crc32c_bitwise(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def field_bytes(number: int, value: bytes) -> bytes:
    return varint((number << 3) | 2) + varint(len(value)) + value


def entry_proto(dtype: int, shape: tuple[int, ...], offset: int, size: int, crc: int | None) -> bytes:
    dims = b"".join(field_bytes(2, field_varint(1, d)) for d in shape)
    out = field_varint(1, dtype) + field_bytes(2, dims) + field_varint(4, offset) + field_varint(5, size)
    if crc is not None:
        out += varint((6 << 3) | 5) + struct.pack("<I", crc)
    return out


def block(entries: list[tuple[bytes, bytes]], restart_every: int = 3) -> bytes:
    """A table block with prefix-compressed keys and a restart point every few entries."""
    out, restarts, prev = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % restart_every == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(key), len(prev)) and key[shared] == prev[shared]:
                shared += 1
        out += varint(shared) + varint(len(key) - shared) + varint(len(value)) + key[shared:] + value
        prev = key
    restarts = restarts or [0]
    return bytes(out) + b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))


def write_bundle(prefix: Path | str, arrays: dict[str, np.ndarray], per_block: int = 4,
                 entry_override: dict[str, bytes] | None = None) -> None:
    """``prefix.index`` (several data blocks, an index block, an empty metaindex, the footer) and
    ``prefix.data-00000-of-00001``."""
    data, entries = bytearray(), []
    for name in sorted(arrays):
        arr = np.asarray(arrays[name])  # (ascontiguousarray would turn a scalar into shape (1,))
        raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes(order="C")
        value = entry_proto(TF_DTYPES[arr.dtype], arr.shape, len(data), len(raw), masked(raw))
        entries.append((name.encode(), (entry_override or {}).get(name, value)))
        data += raw
    header = field_varint(1, 1) + field_bytes(3, field_varint(1, 1))  # num_shards 1, version {producer 1}
    entries.insert(0, (b"", header))
    table, index_entries = bytearray(), []

    def put(contents: bytes) -> bytes:
        handle = varint(len(table)) + varint(len(contents))
        table.extend(contents + b"\x00" + struct.pack("<I", masked(contents + b"\x00")))
        return handle

    for i in range(0, len(entries), per_block):
        chunk = entries[i:i + per_block]
        index_entries.append((chunk[-1][0], put(block(chunk))))
    meta_handle = put(block([]))
    index_handle = put(block(index_entries, restart_every=1))
    footer = (meta_handle + index_handle).ljust(40, b"\x00") + struct.pack("<Q", tf_bundle.TABLE_MAGIC)
    Path(f"{prefix}.index").write_bytes(bytes(table) + footer)
    Path(f"{prefix}.data-00000-of-00001").write_bytes(bytes(data))


def sample_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    arrays = {
        "scalar": np.array(3.5, dtype=np.float32),
        "layer/kernel": rng.standard_normal((7, 38, 1, 4)).astype(np.float32),
        "layer/bias": rng.standard_normal(4).astype(np.float32),
        "layer/bias/Adam": rng.standard_normal(4).astype(np.float32),
        "layer_1/kernel": rng.standard_normal((2, 3)).astype(np.float64),
        "empty": np.zeros((0, 5), dtype=np.float32),
        "global_step": np.array(123456789012, dtype=np.int64),
        "counts": rng.integers(-2**40, 2**40, size=(3, 4)).astype(np.int64),
        "idx": rng.integers(-9, 9, size=6).astype(np.int32),
        "mask": np.array([True, False, True]),
        "bytes": np.arange(10, dtype=np.uint8),
        "half": rng.standard_normal((2, 2)).astype(np.float16),
    }
    for i in range(12):  # many keys sharing prefixes, across several blocks
        arrays[f"batch_normalization_{i}/moving_mean"] = rng.standard_normal(i + 1).astype(np.float32)
    return arrays


@pytest.fixture
def bundle(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    arrays = sample_arrays()
    prefix = tmp_path / "ckpt" / "model"
    prefix.parent.mkdir()
    write_bundle(prefix, arrays)
    return prefix, arrays


def test_crc32c_matches_reference():
    assert tf_bundle.crc32c(b"123456789") == 0xE3069283  # the standard check value
    rng = np.random.default_rng(0)
    for n in (0, 1, 3, 4, 5, 1000, 65536, 70001):  # small (table) and large (numpy lanes) paths
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert tf_bundle.crc32c(data) == crc32c_bitwise(data), n


def test_round_trip(bundle):
    prefix, arrays = bundle
    got = tf_bundle.read_bundle(prefix)
    assert sorted(got) == sorted(arrays)
    for name, arr in arrays.items():
        assert got[name].dtype == arr.dtype and got[name].shape == arr.shape, name
        np.testing.assert_array_equal(got[name], arr)
        assert got[name].flags.writeable
    subset = tf_bundle.read_bundle(str(prefix), names=["layer/bias", "global_step"])
    assert sorted(subset) == ["global_step", "layer/bias"] and int(subset["global_step"]) == 123456789012


def test_directory_style_prefix(tmp_path):
    """musicnn's checkpoints are saved under the prefix ``MODEL/``: files ``MODEL/.index`` etc."""
    (tmp_path / "MTT").mkdir()
    write_bundle(str(tmp_path / "MTT") + "/", {"w": np.ones((2, 2), np.float32)})
    assert (tmp_path / "MTT" / ".index").is_file()
    np.testing.assert_array_equal(tf_bundle.read_bundle(str(tmp_path / "MTT") + "/")["w"], np.ones((2, 2)))


def _expect_error(prefix: Path, file_suffix: str, *words: str, **kwargs) -> str:
    with pytest.raises(InstrecError) as info:
        tf_bundle.read_bundle(prefix, **kwargs)
    message = str(info.value)
    assert f"{prefix}{file_suffix}" in message and "\n" not in message, message
    for word in words:
        assert word in message, message
    return message


def test_truncated_index(bundle):
    prefix, _ = bundle
    index = Path(f"{prefix}.index")
    full = index.read_bytes()
    index.write_bytes(full[:30])
    _expect_error(prefix, ".index", "truncated")
    index.write_bytes(full[:-10])
    _expect_error(prefix, ".index", "magic")
    index.write_bytes(full[:len(full) // 2] + full[-48:])  # footer intact, blocks missing
    _expect_error(prefix, ".index", "truncated")


def test_bad_magic(bundle):
    prefix, _ = bundle
    index = Path(f"{prefix}.index")
    data = bytearray(index.read_bytes())
    data[-1] ^= 0xFF
    index.write_bytes(bytes(data))
    _expect_error(prefix, ".index", "bad magic")


def test_corrupt_index_block_checksum(bundle):
    prefix, _ = bundle
    index = Path(f"{prefix}.index")
    data = bytearray(index.read_bytes())
    data[5] ^= 0x01
    index.write_bytes(bytes(data))
    _expect_error(prefix, ".index", "checksum")


def test_truncated_data(bundle):
    prefix, _ = bundle
    data_file = Path(f"{prefix}.data-00000-of-00001")
    data_file.write_bytes(data_file.read_bytes()[:-7])
    _expect_error(prefix, ".data-00000-of-00001", "beyond the end of the data file")


def test_corrupt_data_checksum(bundle):
    prefix, _ = bundle
    data_file = Path(f"{prefix}.data-00000-of-00001")
    data = bytearray(data_file.read_bytes())
    data[40] ^= 0x10
    data_file.write_bytes(bytes(data))
    _expect_error(prefix, ".data-00000-of-00001", "checksum mismatch")
    assert tf_bundle.read_bundle(prefix, verify_crc=False)  # readable when asked not to verify


def test_offset_beyond_data_file(tmp_path):
    prefix = tmp_path / "m"
    arrays = {"a": np.ones(4, np.float32), "b": np.zeros(3, np.float32)}
    write_bundle(prefix, arrays, entry_override={"b": entry_proto(1, (3,), 10_000, 12, None)})
    _expect_error(prefix, ".data-00000-of-00001", "'b'", "beyond the end")
    np.testing.assert_array_equal(tf_bundle.read_bundle(prefix, names=["a"])["a"], np.ones(4))


def test_size_shape_mismatch_and_unsupported_dtype(tmp_path):
    prefix = tmp_path / "m"
    write_bundle(prefix, {"a": np.ones(4, np.float32)}, entry_override={"a": entry_proto(1, (5,), 0, 16, None)})
    _expect_error(prefix, ".data-00000-of-00001", "shape (5,)")
    write_bundle(prefix, {"a": np.ones(4, np.float32)}, entry_override={"a": entry_proto(7, (4,), 0, 16, None)})
    _expect_error(prefix, ".index", "unsupported dtype string")
    write_bundle(prefix, {"a": np.ones(4, np.float32)}, entry_override={"a": entry_proto(14, (4,), 0, 8, None)})
    _expect_error(prefix, ".index", "bfloat16")


def test_missing_files(tmp_path, bundle):
    _expect_error(tmp_path / "nothing", ".index", "cannot read")
    prefix, _ = bundle
    Path(f"{prefix}.data-00000-of-00001").unlink()
    _expect_error(prefix, ".data-00000-of-00001", "cannot read")
    with pytest.raises(InstrecError, match="no tensor named 'nope'"):
        tf_bundle.read_bundle(prefix, names=["nope"])


def test_any_truncation_or_bit_flip_is_a_clean_error(bundle):
    """Whatever the damage, the reader either succeeds or raises InstrecError (never IndexError,
    struct.error, TypeError ...), with checksums verified or not."""
    prefix, _ = bundle
    index = Path(f"{prefix}.index")
    full = index.read_bytes()
    rng = np.random.default_rng(3)
    variants = [full[:n] for n in range(0, len(full), 7)]
    for _ in range(150):
        damaged = bytearray(full)
        damaged[int(rng.integers(len(full)))] ^= 1 << int(rng.integers(8))
        variants.append(bytes(damaged))
    for variant in variants:
        index.write_bytes(variant)
        for verify in (True, False):
            try:
                tf_bundle.read_bundle(prefix, verify_crc=verify)
            except InstrecError as exc:
                assert str(prefix) in str(exc) and "\n" not in str(exc)
