"""SoundFont 2 (``.sf2``) preset discovery.

Only the RIFF skeleton and the ``pdta/phdr`` preset headers are parsed: that is enough to
know which ``(bank, program)`` presets a SoundFont really contains. The synthesiser used for
rendering silently falls back to bank 0 when a bank-``b`` preset is missing, so a class whose
presets are absent must be recognised *before* rendering and never be labelled.
"""
from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pretty_midi

from instrec._io import InstrecError
from instrec.synth.riff import riff_chunks
from instrec.synth.soundfont_subset import SoundFontTables

#: Size in bytes of one ``phdr`` record (20-byte name + 3 x u16 + 3 x u32).
_PHDR_SIZE = 38


@dataclass(frozen=True)
class Preset:
    """One preset header: ``name`` (as stored), ``bank`` (0-127 melodic, 128 percussion), ``program`` (0-127)."""

    name: str
    bank: int
    program: int


@dataclass(frozen=True)
class SoundFont:
    """A SoundFont file loaded into memory.

    Attributes:
        path: absolute path of the file.
        data: the whole file as bytes (what the renderer consumes).
        presets: preset headers in file order, terminal ``EOP`` record excluded.
        sha256: hex digest of ``data``.
    """

    path: Path
    data: bytes = field(repr=False)
    presets: tuple[Preset, ...]
    sha256: str

    @cached_property
    def preset_keys(self) -> frozenset[tuple[int, int]]:
        """The set of ``(bank, program)`` pairs present in the file."""
        return frozenset((p.bank, p.program) for p in self.presets)

    def has_preset(self, bank: int, program: int) -> bool:
        """True when the exact ``(bank, program)`` preset exists (no bank-0 fallback)."""
        return (bank, program) in self.preset_keys

    @cached_property
    def tables(self) -> SoundFontTables:
        """The parsed preset, instrument and sample tables (to cut subsets from)."""
        return SoundFontTables(self.data, self.path)


def default_soundfont_path() -> Path:
    """Path of ``TimGM6mb.sf2``, the small General MIDI SoundFont bundled with pretty_midi."""
    return Path(os.path.dirname(pretty_midi.__file__)) / "TimGM6mb.sf2"


def parse_presets(buf: bytes, path: Path) -> tuple[Preset, ...]:
    """Return the preset headers of the SoundFont bytes ``buf``; ``path`` only names the file in errors."""
    if len(buf) < 12 or buf[:4] != b"RIFF" or buf[8:12] != b"sfbk":
        raise InstrecError(f"{path}: not a SoundFont 2 file (no RIFF 'sfbk' header)")
    (riff_size,) = struct.unpack_from("<I", buf, 4)
    end = min(len(buf), 8 + riff_size)
    pdta = None
    for cid, s, e in riff_chunks(buf, 12, end, path):
        if cid == b"LIST" and buf[s:s + 4] == b"pdta":
            pdta = (s + 4, e)
    if pdta is None:
        raise InstrecError(f"{path}: corrupt SoundFont: no 'pdta' list")
    phdr = next(((s, e) for cid, s, e in riff_chunks(buf, *pdta, path) if cid == b"phdr"), None)
    if phdr is None:
        raise InstrecError(f"{path}: corrupt SoundFont: no 'phdr' preset headers")
    s, e = phdr
    n = (e - s) // _PHDR_SIZE
    if (e - s) % _PHDR_SIZE or n < 2:
        raise InstrecError(f"{path}: corrupt SoundFont: 'phdr' chunk of {e - s} bytes is not a list of presets")
    presets = []
    for i in range(n - 1):  # the last record is the terminal 'EOP'
        raw_name, program, bank = struct.unpack_from("<20sHH", buf, s + i * _PHDR_SIZE)
        name = raw_name.split(b"\0", 1)[0].decode("latin-1").strip()
        presets.append(Preset(name=name, bank=int(bank), program=int(program)))
    return tuple(presets)


def load_soundfont(path: str | os.PathLike | None = None) -> SoundFont:
    """Read and parse a SoundFont; ``None`` means pretty_midi's bundled ``TimGM6mb.sf2``.

    Raises:
        InstrecError: the file is missing, unreadable, or not a valid SoundFont 2.
    """
    p = Path(path) if path is not None else default_soundfont_path()
    p = p.expanduser().resolve()
    if not p.is_file():
        raise InstrecError(f"{p}: SoundFont not found")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InstrecError(f"{p}: cannot read SoundFont ({exc.strerror or exc})") from None
    presets = parse_presets(data, p)
    if not presets:
        raise InstrecError(f"{p}: SoundFont contains no presets")
    return SoundFont(path=p, data=data, presets=presets, sha256=hashlib.sha256(data).hexdigest())
