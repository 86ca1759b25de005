"""Cut a SoundFont down to the presets one piece plays.

The renderer parses the whole SoundFont on every call: for FluidR3_GM (148 MB, the font that
has all 20 classes) that was half or more of a clip's synthesis time (benchmarks/bench_synth.py
measures it). A clip plays at most a handful of presets, so the corpus renders each clip
with a SoundFont holding only those presets, their instruments and their samples. Nothing
the synthesiser reads for those presets changes (generators, modulators, sample data and
loop points are copied, only the indices between the tables are renumbered), so the audio
is the same, sample for sample, as with the whole font; the tests check that on rendered
clips.

Layout (SoundFont 2.04, section 7): ``phdr -> pbag -> pgen/pmod``; a preset generator 41
names an instrument, ``inst -> ibag -> igen/imod``; an instrument generator 53 names a
sample header in ``shdr``, whose offsets point into ``sdta/smpl`` (and ``sm24``, if any).
"""
from __future__ import annotations

import struct
from functools import cached_property
from pathlib import Path

import numpy as np

from instrec._io import InstrecError
from instrec.synth.riff import riff_chunks

_U16 = "<u2"
#: numpy record types of the hydra tables; field names follow the specification.
_DTYPES = {
    b"phdr": np.dtype([("name", "S20"), ("preset", _U16), ("bank", _U16), ("bag", _U16),
                       ("library", "<u4"), ("genre", "<u4"), ("morphology", "<u4")]),
    b"pbag": np.dtype([("gen", _U16), ("mod", _U16)]),
    b"pmod": np.dtype([("src", _U16), ("dest", _U16), ("amount", "<i2"), ("amt_src", _U16), ("trans", _U16)]),
    b"pgen": np.dtype([("oper", _U16), ("amount", _U16)]),
    b"inst": np.dtype([("name", "S20"), ("bag", _U16)]),
    b"ibag": np.dtype([("gen", _U16), ("mod", _U16)]),
    b"imod": np.dtype([("src", _U16), ("dest", _U16), ("amount", "<i2"), ("amt_src", _U16), ("trans", _U16)]),
    b"igen": np.dtype([("oper", _U16), ("amount", _U16)]),
    b"shdr": np.dtype([("name", "S20"), ("start", "<u4"), ("end", "<u4"), ("loop_start", "<u4"),
                       ("loop_end", "<u4"), ("rate", "<u4"), ("pitch", "u1"), ("correction", "i1"),
                       ("link", _U16), ("type", _U16)]),
}
_INSTRUMENT, _SAMPLE_ID = 41, 53
#: The two levels of zones, by the generator that names the level below: preset zones name
#: instruments (41), instrument zones name samples (53). Tables: header, bag, generator, modulator.
_LEVELS = {_INSTRUMENT: (b"phdr", b"pbag", b"pgen", b"pmod"), _SAMPLE_ID: (b"inst", b"ibag", b"igen", b"imod")}
#: Zero sample points the specification requires after every sample (copied from the source).
_GUARD = 46
#: Sample types that name a stereo partner in ``link`` (right, left, linked).
_LINKED_TYPES = (2, 4, 8)
#: Sample-type flag of Ogg Vorbis samples (SF3), whose offsets count bytes, not points.
_COMPRESSED = 0x10


def _chunk(cid: bytes, *parts: bytes | memoryview) -> list[bytes | memoryview]:
    """A RIFF chunk as a list of pieces (joined once at the end: sample data is not recopied)."""
    size = sum(len(p) for p in parts)
    return [cid + struct.pack("<I", size), *parts, b"\0" if size % 2 else b""]


def _list(kind: bytes, chunks: list[list[bytes | memoryview]]) -> list[bytes | memoryview]:
    return _chunk(b"LIST", kind, *(p for c in chunks for p in c))


def _ranges(first: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(first[i], stop[i])`` over i (int64)."""
    lengths = (stop - first).astype(np.int64)
    if lengths.sum() == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(first.astype(np.int64) - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return offsets + np.arange(lengths.sum())


def _renumber(size: int, kept: np.ndarray) -> np.ndarray:
    """(size,) uint16 map of old index -> new index for the sorted ``kept`` indices."""
    new = np.zeros(size, dtype=np.uint16)
    new[kept] = np.arange(len(kept))
    return new


def _starts(counts: np.ndarray) -> np.ndarray:
    """Start index of each group plus the terminal index: ``[0, c0, c0 + c1, ...]`` (uint16)."""
    return np.concatenate(([0], np.cumsum(counts))).astype(np.uint16)


class SoundFontTables:
    """The parsed hydra of a SoundFont (``buf``: the whole file; ``path`` names it in errors)."""

    def __init__(self, buf: bytes, path: Path | str):
        self.buf, self.path = buf, path
        lists = {buf[s:s + 4]: (s + 4, e) for cid, s, e in riff_chunks(buf, 12, len(buf), path, truncated_ok=True)
                 if cid == b"LIST"}
        if b"sdta" not in lists or b"pdta" not in lists:
            raise InstrecError(f"{path}: corrupt SoundFont: no 'sdta' or 'pdta' list")
        info = riff_chunks(buf, *lists[b"INFO"], path) if b"INFO" in lists else []
        self.info = [_chunk(cid, buf[s:e]) for cid, s, e in info] or [_chunk(b"ifil", b"\2\0\4\0")]
        self.samples = {cid: (s, e) for cid, s, e in riff_chunks(buf, *lists[b"sdta"], path)}
        if b"smpl" not in self.samples:
            raise InstrecError(f"{path}: corrupt SoundFont: no 'smpl' sample data")
        self.tables: dict[bytes, np.ndarray] = {}
        for cid, s, e in riff_chunks(buf, *lists[b"pdta"], path):
            dtype = _DTYPES.get(cid)
            if dtype is not None:
                if (e - s) % dtype.itemsize or e - s < dtype.itemsize:
                    raise InstrecError(f"{path}: corrupt SoundFont: '{cid.decode()}' chunk of {e - s} bytes")
                self.tables[cid] = np.frombuffer(buf, dtype=dtype, count=(e - s) // dtype.itemsize, offset=s)
        missing = [k.decode() for k in _DTYPES if k not in self.tables]
        if missing:
            raise InstrecError(f"{self.path}: corrupt SoundFont: no {', '.join(missing)} table")
        if (self.tables[b"shdr"]["type"][:-1] & _COMPRESSED).any():
            raise InstrecError(f"{self.path}: compressed (SF3) samples cannot be cut")

    @cached_property
    def preset_index(self) -> dict[tuple[int, int], list[int]]:
        """``(bank, program)`` -> its rows in ``phdr``. A font may repeat a preset; all copies
        are kept, in order, so the synthesiser picks the same one as from the whole font."""
        index: dict[tuple[int, int], list[int]] = {}
        phdr = self.tables[b"phdr"]
        for i in range(len(phdr) - 1):
            index.setdefault((int(phdr["bank"][i]), int(phdr["preset"][i])), []).append(i)
        return index

    def _zones(self, target: int, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """Bags, generators and modulators of ``rows`` of the header table of the level whose
        generators of kind ``target`` name the next level, and the indices they name."""
        head, bag, gen, _ = (self.tables[cid] for cid in _LEVELS[target])
        bags = _ranges(head["bag"][rows], head["bag"][rows + 1])
        gens = _ranges(bag["gen"][bags], bag["gen"][bags + 1])
        mods = _ranges(bag["mod"][bags], bag["mod"][bags + 1])
        named = gen["amount"][gens][gen["oper"][gens] == target].astype(np.int64)
        referenced = self.tables[b"inst" if target == _INSTRUMENT else b"shdr"]
        bad = named >= len(referenced) - 1
        if bad.any():
            raise InstrecError(f"{self.path}: corrupt SoundFont: a zone names a missing "
                               f"{'instrument' if target == _INSTRUMENT else 'sample'} ({int(named[bad][0])})")
        return bags, gens, mods, named

    def _rebuild(self, target: int, rows: np.ndarray, bags: np.ndarray, gens: np.ndarray, mods: np.ndarray,
                 remap: np.ndarray) -> dict[bytes, np.ndarray]:
        """The header, bag, generator and modulator tables of ``rows`` (see :meth:`_zones`),
        with their terminal records, renumbered; amounts of kind ``target`` go through ``remap``."""
        head, bag, gen, mod = (self.tables[cid] for cid in _LEVELS[target])
        new_head = np.concatenate((head[rows], head[-1:]))
        new_head["bag"] = _starts(head["bag"][rows + 1] - head["bag"][rows])
        new_bag = np.concatenate((bag[bags], bag[-1:]))
        new_bag["gen"] = _starts(bag["gen"][bags + 1] - bag["gen"][bags])
        new_bag["mod"] = _starts(bag["mod"][bags + 1] - bag["mod"][bags])
        new_gen = np.concatenate((gen[gens], gen[-1:]))
        hit = new_gen["oper"][:-1] == target
        new_gen["amount"][:-1][hit] = remap[new_gen["amount"][:-1][hit]]
        return dict(zip(_LEVELS[target], (new_head, new_bag, new_gen, np.concatenate((mod[mods], mod[-1:])))))

    def subset(self, keys: set[tuple[int, int]] | frozenset[tuple[int, int]]) -> bytes:
        """A SoundFont file (bytes) holding only the presets ``keys`` = ``(bank, program)``.

        Raises:
            InstrecError: a key is not in the font (the synthesiser would fall back to
                another preset, which the subset might not hold).
        """
        if not keys:
            raise ValueError("a SoundFont subset needs at least one preset")
        absent = sorted(k for k in keys if k not in self.preset_index)
        if absent:
            raise InstrecError(f"{self.path}: no preset (bank, program) {absent[0]} to keep")
        presets = np.array(sorted(i for k in keys for i in self.preset_index[k]), dtype=np.int64)
        try:
            return self._cut(presets)
        except (IndexError, ValueError) as exc:  # indices out of range or running backwards
            raise InstrecError(f"{self.path}: corrupt SoundFont: its tables point outside each other "
                               f"({str(exc).splitlines()[0]})") from None

    def _cut(self, presets: np.ndarray) -> bytes:
        """:meth:`subset` of the ``phdr`` rows ``presets`` (sorted)."""
        *preset_zones, insts = self._zones(_INSTRUMENT, presets)
        insts = np.unique(insts)
        *inst_zones, samples = self._zones(_SAMPLE_ID, insts)
        shdr = self.tables[b"shdr"]
        samples = np.unique(samples)
        partners = shdr["link"][samples][np.isin(shdr["type"][samples], _LINKED_TYPES)].astype(np.int64)
        samples = np.union1d(samples, partners[partners < len(shdr) - 1])
        sample_map = _renumber(len(shdr), samples)
        out = {**self._rebuild(_INSTRUMENT, presets, *preset_zones, _renumber(len(self.tables[b"inst"]), insts)),
               **self._rebuild(_SAMPLE_ID, insts, *inst_zones, sample_map)}
        out[b"shdr"], sdta = self._samples(samples, sample_map)
        pdta = [_chunk(cid, out[cid].tobytes()) for cid in _DTYPES]
        lists = _list(b"INFO", self.info) + _list(b"sdta", sdta) + _list(b"pdta", pdta)
        return b"".join(_chunk(b"RIFF", b"sfbk", *lists))

    def _samples(self, samples: np.ndarray, sample_map: np.ndarray) -> tuple[np.ndarray, list[list[bytes | memoryview]]]:
        """New sample headers (with the terminal record) and ``sdta`` body for ``samples``;
        ``sample_map``: old sample index -> new one (for stereo partners)."""
        shdr = self.tables[b"shdr"]
        new = np.concatenate((shdr[samples], shdr[-1:]))
        s_start, s_end = self.samples[b"smpl"]
        n_points = (s_end - s_start) // 2
        first = shdr["start"][samples].astype(np.int64)
        stop = np.minimum(np.maximum(shdr["end"][samples].astype(np.int64), first) + _GUARD, n_points)
        if (first > n_points).any():
            raise InstrecError(f"{self.path}: corrupt SoundFont: a sample starts past the sample data")
        shift = np.concatenate(([0], np.cumsum(stop - first)[:-1])) - first
        for field in ("start", "end", "loop_start", "loop_end"):
            new[field][:-1] = (new[field][:-1].astype(np.int64) + shift).astype(np.uint32)
        new["link"][:-1] = np.where(np.isin(new["type"][:-1], _LINKED_TYPES),
                                    sample_map[new["link"][:-1]], new["link"][:-1])
        view = memoryview(self.buf)
        spans = list(zip(first.tolist(), stop.tolist()))
        sdta = [_chunk(b"smpl", *(view[s_start + 2 * a:s_start + 2 * b] for a, b in spans))]
        if b"sm24" in self.samples:
            lo = self.samples[b"sm24"][0]
            sdta.append(_chunk(b"sm24", *(view[lo + a:lo + b] for a, b in spans)))
        return new, sdta
