"""Read TensorFlow tensor-bundle checkpoints (``PREFIX.index`` + ``PREFIX.data-NNNNN-of-NNNNN``) with numpy.

This is the checkpoint format written by ``tf.train.Saver`` (V2) and ``tf.train.Checkpoint``.
No TensorFlow or protobuf package is needed:

* ``PREFIX.index`` is a LevelDB-style table ("SSTable"): data blocks of prefix-compressed
  key/value entries, an index block pointing at them, and a 48-byte footer ending in a
  magic number. Every block is followed by a compression byte and a masked CRC-32C.
* The value under the empty key is a ``BundleHeaderProto`` (number of shards, endianness);
  every other key is a tensor name whose value is a ``BundleEntryProto`` (dtype, shape,
  shard id, offset, size, masked CRC-32C of the bytes).
* ``PREFIX.data-00000-of-00001`` (one file per shard) holds the raw little-endian tensor bytes.

Anything malformed raises :class:`instrec._io.InstrecError` with a one-line message that
names the file and the problem.
"""
from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instrec._io import InstrecError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48  # two block handles padded to 40 bytes, then the 8-byte magic
BLOCK_TRAILER = 5  # compression type (1 byte) + masked crc32c (4 bytes)

#: TensorFlow DataType enum -> numpy dtype (little-endian). Strings, bfloat16, complex
#: and resource/variant types are not supported.
DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 4: np.dtype("u1"), 5: np.dtype("<i2"),
    6: np.dtype("i1"), 9: np.dtype("<i8"), 10: np.dtype("?"), 17: np.dtype("<u2"), 19: np.dtype("<f2"),
    22: np.dtype("<u4"), 23: np.dtype("<u8"),
}
DTYPE_NAMES = {7: "string", 8: "complex64", 14: "bfloat16", 18: "complex128", 20: "resource", 21: "variant"}


@dataclass(frozen=True)
class BundleEntry:
    """Where one tensor lives: dtype (TF enum), shape, shard, byte offset and size, masked CRC-32C (or None)."""
    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int | None


# --------------------------------------------------------------------------- CRC-32C

def _crc_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1).astype(np.uint32)
    return table


_CRC_TABLE = _crc_table()
_CRC_LIST = [int(v) for v in _CRC_TABLE]


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C (Castagnoli) of ``data``; large inputs are processed as parallel numpy lanes."""
    data = memoryview(data).cast("B")
    n = len(data)
    if n < 65536:
        reg, table = 0xFFFFFFFF, _CRC_LIST
        for b in data:
            reg = table[(reg ^ b) & 0xFF] ^ (reg >> 8)
        return reg ^ 0xFFFFFFFF
    # The initial register ~0 equals XOR-ing the first 4 bytes with 0xFF and starting from 0;
    # from 0, leading zero bytes change nothing, so pad in front to lanes x lane_len.
    lanes = 4096
    lane_len = -(-n // lanes)
    buf = np.zeros(lanes * lane_len, dtype=np.uint8)
    buf[-n:] = np.frombuffer(data, dtype=np.uint8)
    buf[-n:-n + 4] ^= 0xFF
    cols = np.ascontiguousarray(buf.reshape(lanes, lane_len).T)
    regs = np.zeros(lanes, dtype=np.uint32)
    for col in cols:
        regs = _CRC_TABLE[(regs ^ col) & 0xFF] ^ (regs >> 8)
    # shift(r) = register r pushed through lane_len zero bytes; linear, so tabulate it per byte of r
    basis = (np.arange(256, dtype=np.uint32)[None, :] << (8 * np.arange(4, dtype=np.uint32))[:, None]).ravel()
    for _ in range(lane_len):
        basis = _CRC_TABLE[basis & 0xFF] ^ (basis >> 8)
    s0, s1, s2, s3 = (basis[256 * i:256 * (i + 1)].tolist() for i in range(4))
    reg = 0
    for r in regs.tolist():
        reg = s0[reg & 0xFF] ^ s1[(reg >> 8) & 0xFF] ^ s2[(reg >> 16) & 0xFF] ^ s3[reg >> 24] ^ r
    return reg ^ 0xFFFFFFFF


def mask_crc(crc: int) -> int:
    """LevelDB/TensorFlow's masked CRC (rotate right by 15, add a constant)."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# --------------------------------------------------------------------------- varints and protobuf

class _Malformed(Exception):
    """Internal: a parse failure, turned into InstrecError with the file name by the caller."""


def _varint(buf: bytes, pos: int, end: int | None = None) -> tuple[int, int]:
    end = len(buf) if end is None else end
    result = shift = 0
    while True:
        if pos >= end:
            raise _Malformed("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Malformed("varint longer than 10 bytes")


def _proto_fields(buf: bytes) -> dict[int, list]:
    """Protobuf wire format -> {field number: [values]} (varints as ints, others as bytes)."""
    fields: dict[int, list] = {}
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if pos + width > end:
                raise _Malformed("truncated fixed-width protobuf field")
            value, pos = int.from_bytes(buf[pos:pos + width], "little"), pos + width
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise _Malformed("truncated protobuf field")
            value, pos = bytes(buf[pos:pos + length]), pos + length
        else:
            raise _Malformed(f"unsupported protobuf wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


def _int64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _last(fields: dict[int, list], number: int, default: int = 0) -> int:
    """The last value of an integer field (protobuf's rule for repeated scalars)."""
    value = fields[number][-1] if number in fields else default
    if not isinstance(value, int):
        raise _Malformed(f"protobuf field {number} is not an integer")
    return value


def _messages(fields: dict[int, list], number: int) -> list[bytes]:
    values = fields.get(number, [])
    if not all(isinstance(v, bytes) for v in values):
        raise _Malformed(f"protobuf field {number} is not a message")
    return values


def _parse_entry(value: bytes) -> BundleEntry:
    f = _proto_fields(value)
    if 7 in f:
        raise _Malformed("partitioned (sliced) tensors are not supported")
    shapes = _messages(f, 2)
    shape_fields = _proto_fields(shapes[-1]) if shapes else {}
    if _last(shape_fields, 3):
        raise _Malformed("tensor of unknown rank")
    shape = tuple(_int64(_last(_proto_fields(d), 1)) for d in _messages(shape_fields, 2))
    if any(d < 0 for d in shape):
        raise _Malformed(f"negative dimension in shape {shape}")
    return BundleEntry(dtype=_last(f, 1), shape=shape, shard_id=_last(f, 3), offset=_int64(_last(f, 4)),
                       size=_int64(_last(f, 5)), crc32c=_last(f, 6) if 6 in f else None)


# --------------------------------------------------------------------------- table (SSTable) blocks

def _block(buf: bytes, handle: tuple[int, int], verify_crc: bool) -> bytes:
    offset, size = handle
    if offset + size + BLOCK_TRAILER > len(buf) - FOOTER_SIZE:
        raise _Malformed(f"block at {offset}+{size} runs past the end of the file ({len(buf)} bytes); truncated?")
    contents = buf[offset:offset + size]
    kind = buf[offset + size]
    if verify_crc:
        stored = int.from_bytes(buf[offset + size + 1:offset + size + 5], "little")
        if mask_crc(crc32c(buf[offset:offset + size + 1])) != stored:
            raise _Malformed(f"checksum mismatch in block at offset {offset}")
    if kind != 0:
        raise _Malformed(f"compressed table block (type {kind}) is not supported")
    return contents


def _block_entries(block: bytes) -> Iterable[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise _Malformed("block shorter than its restart count")
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * n_restarts
    if end < 0:
        raise _Malformed("block restart array larger than the block")
    key, pos = b"", 0
    while pos < end:
        shared, pos = _varint(block, pos, end)
        non_shared, pos = _varint(block, pos, end)
        value_len, pos = _varint(block, pos, end)
        if shared > len(key) or pos + non_shared + value_len > end:
            raise _Malformed("corrupt block entry")
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        yield key, block[pos:pos + value_len]
        pos += value_len


def _table_entries(buf: bytes, verify_crc: bool) -> Iterable[tuple[bytes, bytes]]:
    if len(buf) < FOOTER_SIZE:
        raise _Malformed(f"file too short for a table footer ({len(buf)} bytes); truncated?")
    if struct.unpack_from("<Q", buf, len(buf) - 8)[0] != TABLE_MAGIC:
        raise _Malformed("bad magic number: not a TensorFlow checkpoint index (or truncated)")
    footer = buf[len(buf) - FOOTER_SIZE:len(buf) - 8]
    _, pos = _varint(footer, 0)  # metaindex offset (unused)
    _, pos = _varint(footer, pos)  # metaindex size
    index_offset, pos = _varint(footer, pos)
    index_size, pos = _varint(footer, pos)
    for _, handle in _block_entries(_block(buf, (index_offset, index_size), verify_crc)):
        offset, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        yield from _block_entries(_block(buf, (offset, size), verify_crc))


# --------------------------------------------------------------------------- public API

def parse_index(index: bytes, source: str = "<index>", verify_crc: bool = True) -> tuple[int, dict[str, BundleEntry]]:
    """``(num_shards, {tensor name: BundleEntry})`` from the bytes of a ``.index`` file."""
    try:
        header: dict[int, list] | None = None
        entries: dict[str, BundleEntry] = {}
        for key, value in _table_entries(index, verify_crc):
            if key == b"":
                header = _proto_fields(value)
                continue
            name = key.decode("utf-8", errors="replace")
            try:
                entries[name] = _parse_entry(value)
            except _Malformed as exc:
                raise _Malformed(f"tensor {name!r}: {exc}") from None
        if header is None:
            raise _Malformed("no bundle header (a V1 checkpoint or not a tensor bundle)")
        if _last(header, 2) != 0:
            raise _Malformed("big-endian bundles are not supported")
        return max(_last(header, 1), 1), entries
    except _Malformed as exc:
        raise InstrecError(f"{source}: {exc}") from None


def data_file_name(prefix: str, shard: int, num_shards: int) -> str:
    """``PREFIX.data-00000-of-00001`` for shard 0 of 1."""
    return f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"


def read_tensors(index: bytes, read_shard: Callable[[int, int], tuple[bytes, str]], source: str = "<index>",
                 names: Iterable[str] | None = None, verify_crc: bool = True) -> dict[str, np.ndarray]:
    """Tensors from the bytes of an index (all, or those in ``names``).

    ``read_shard(shard, num_shards)`` returns ``(bytes, file name)`` of a data shard; it is
    called once per shard that holds a wanted tensor.
    """
    num_shards, entries = parse_index(index, source, verify_crc)
    wanted = sorted(entries) if names is None else list(names)
    shards: dict[int, tuple[bytes, str]] = {}
    out: dict[str, np.ndarray] = {}
    for name in wanted:
        if name not in entries:
            raise InstrecError(f"{source}: no tensor named {name!r}")
        e = entries[name]
        if e.dtype not in DTYPES:
            kind = DTYPE_NAMES.get(e.dtype, f"enum {e.dtype}")
            raise InstrecError(f"{source}: tensor {name!r} has unsupported dtype {kind}")
        if not 0 <= e.shard_id < num_shards:
            raise InstrecError(f"{source}: tensor {name!r} is in shard {e.shard_id} of {num_shards}")
        if e.shard_id not in shards:
            shards[e.shard_id] = read_shard(e.shard_id, num_shards)
        data, data_name = shards[e.shard_id]
        dtype = DTYPES[e.dtype]
        count = math.prod(e.shape)
        if e.size != count * dtype.itemsize:
            raise InstrecError(f"{data_name}: tensor {name!r} is {e.size} bytes, shape {e.shape} needs "
                               f"{count * dtype.itemsize}")
        if e.offset < 0 or e.offset + e.size > len(data):
            raise InstrecError(f"{data_name}: tensor {name!r} at bytes {e.offset}..{e.offset + e.size} lies "
                               f"beyond the end of the data file ({len(data)} bytes); truncated?")
        raw = data[e.offset:e.offset + e.size]
        if verify_crc and e.crc32c is not None and mask_crc(crc32c(raw)) != e.crc32c:
            raise InstrecError(f"{data_name}: checksum mismatch in tensor {name!r} (corrupt data file)")
        out[name] = np.frombuffer(raw, dtype=dtype, count=count).reshape(e.shape).astype(dtype.newbyteorder("="))
    return out


def read_bundle(prefix: str | os.PathLike, names: Iterable[str] | None = None,
                verify_crc: bool = True) -> dict[str, np.ndarray]:
    """All tensors (or those in ``names``) of the checkpoint at ``prefix``, as native-endian numpy arrays.

    ``prefix`` is the path without the ``.index`` suffix; it is joined as a string, so the
    directory-style prefix ``model/`` reads ``model/.index``.
    """
    prefix = os.fspath(prefix)
    index_path = Path(prefix + ".index")
    try:
        index = index_path.read_bytes()
    except OSError as exc:
        raise InstrecError(f"{index_path}: cannot read checkpoint index ({exc.strerror or exc})") from None

    def read_shard(shard: int, num_shards: int) -> tuple[bytes, str]:
        path = data_file_name(prefix, shard, num_shards)
        try:
            return Path(path).read_bytes(), path
        except OSError as exc:
            raise InstrecError(f"{path}: cannot read checkpoint data ({exc.strerror or exc})") from None

    return read_tensors(index, read_shard, str(index_path), names, verify_crc)
