"""RIFF containers (SoundFont 2 files, WAV files): splitting a byte range into chunks."""
from __future__ import annotations

import struct
from pathlib import Path

from instrec._io import InstrecError


def riff_chunks(buf: bytes, start: int, end: int, path: Path | str,
                truncated_ok: bool = False) -> list[tuple[bytes, int, int]]:
    """Split ``buf[start:end]`` into RIFF sub-chunks: ``(id, data_start, data_end)`` triples.

    A chunk running past ``end`` is an InstrecError naming ``path``, or, with
    ``truncated_ok``, is cut at ``end`` (some writers give a data chunk a few bytes more
    than they write)."""
    out: list[tuple[bytes, int, int]] = []
    pos = start
    while pos + 8 <= end:
        cid = buf[pos:pos + 4]
        (size,) = struct.unpack_from("<I", buf, pos + 4)
        data_start, data_end = pos + 8, pos + 8 + size
        if data_end > end:
            if not truncated_ok:
                raise InstrecError(f"{path}: corrupt SoundFont: chunk {cid!r} runs past the end of its parent")
            data_end = end
        out.append((cid, data_start, data_end))
        pos = data_end + (size & 1)  # chunks are padded to even sizes
    return out
