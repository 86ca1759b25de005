"""SoundFonts built from recorded instrument samples, so the corpus plays real timbres.

A sample pack (``../shared/samplepack``: ``<class>/<set>/samples/*`` plus ``mapping.json``
with each sample's ``root_midi``; its README and SOURCES.csv give the sources, each at a
commit) is turned into one SoundFont 2 file per instrument set, with one preset at the
General MIDI ``(bank, program)`` of :data:`SET_VOICES` (a kit at bank 128 for the drum and
cymbal sets). The corpus then draws these fonts beside the GM fonts
(:class:`~instrec.synth.fonts.FontSet`), and the SoundFont synthesiser plays them: every
note uses the sample with the nearest root, pitched by the synthesiser. Labels stay exact
because the stems are labelled off their own audio (:mod:`~instrec.synth.mixdown`).

Choices: one sample per root (the first the mapping lists), key ranges split half-way
between roots, full velocity range for pitched sets (the pack keeps one dynamic layer of
most sets); sounding root = ``root_midi`` + the mapping's ``suggested_root_offset_semitones``
(sets whose file names are an octave off); no loops (a note longer than its sample falls
silent, and is not labelled there); samples mixed to mono, cut to :data:`MAX_SECONDS` with a
fade, at most 48 kHz, 16-bit. Kits: the microphones of one hit summed (close + overheads),
velocity layers stacked. Fonts are cached by the hash of their inputs and this recipe.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from instrec._io import InstrecError, atomic_write_bytes
from instrec.synth.gm import PERCUSSION_BANK
from instrec.synth.soundfont_subset import _DTYPES, _GUARD, _chunk, _list

#: Version of the font recipe (part of the cache key).
RECIPE_VERSION = 1
MAX_SECONDS = 5.0
MAX_RATE = 48000
FADE_SECONDS = 0.05
#: Release after note-off (s): pitched sets, and kits (a drum hit rings through its sample).
RELEASE_SECONDS, KIT_RELEASE_SECONDS = 0.25, 3.0
#: Instrument set -> GM ``(bank, program)`` it plays as (see :data:`instrec.synth.gm.MELODIC_VOICES`).
SET_VOICES: dict[str, tuple[int, int]] = {
    "hammondman_accordion_estuary": (0, 21), "sx_guitar_banjo_ganjo": (0, 105),
    "fretless_bass_cleary": (0, 35), "karoryfer_electric_bass_tonejs": (0, 33),
    "karoryfer_meatbass_pizz": (0, 32), "vsco2_contrabass_tonejs": (0, 32),
    "ethan_winer_cello": (0, 42), "flcellogrl_cello_tonejs": (0, 42), "trevor_exter_cello_bowed": (0, 42),
    "vsco2_clarinet_tonejs": (0, 71), "vsco2_flute_tonejs": (0, 73),
    "iowa_acoustic_guitar_tonejs": (0, 25), "karoryfer_electric_guitar_tonejs": (0, 27),
    "karoryfer_emilyguitar": (0, 27), "quartertone_nylon_guitar_tonejs": (0, 24),
    "ethan_winer_glockenspiel": (0, 9), "vsco2_xylophone_tonejs": (0, 13),
    "harmonium_tonejs": (0, 20), "unitra_b11_transistor_organ_caveman": (0, 16), "vsco2_organ_tonejs": (0, 19),
    "akai_splendid_grand_piano": (0, 0), "salamander_grand_piano_v10_ogg": (0, 0),
    "karoryfer_weresax_alto": (0, 65), "mtg_baritone_sax": (0, 67), "mtg_soprano_sax": (0, 64),
    "mtg_tenor_sax": (0, 66), "vsco2_trombone_tonejs": (0, 57), "vsco2_trumpet_tonejs": (0, 56),
    "ortega_lizard_ukulele_thgrund": (8, 24), "vsco2_violin_tonejs": (0, 40),
}
#: Drum kits: font name -> the drum set and the cymbal set (sharing a kit in the pack).
KITS: dict[str, tuple[str, str]] = {
    "muldjord_kit": ("drums/muldjord_kit_drums", "cymbals/muldjord_kit_cymbals"),
    "tictacshutup_practice_kit": ("drums/tictacshutup_practice_kit_drums", "cymbals/tictacshutup_practice_kit_cymbals"),
}
#: Kit piece (``piece`` in the mapping) -> the GM percussion keys it plays.
KIT_KEYS: dict[str, tuple[int, ...]] = {
    "KdrumL": (35, 36), "Snare": (38, 40, 37, 39), "Tom1": (50,), "Tom2": (47, 48), "Tom3": (45,),
    "Tom4": (41, 43), "HihatClosed": (42, 44), "HihatOpen": (46,), "CrashL": (49, 55), "CrashR": (57,),
    "China": (52,), "RideL": (51,), "RideR": (59,), "RideLBell": (53,), "RideRBell": (53,),
    "kick": (36,), "kick-light": (35,), "snare": (38, 39), "snare-rimshot": (40,), "sidestick": (37,),
    "tom": (41, 43, 45), "tom-light": (47, 48, 50), "hihat": (42, 44), "hihat-open": (46,),
    "ride": (51, 59), "ride-bell": (53,),
}
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "instrec" / "samplefonts"


def _read(path: Path) -> tuple[np.ndarray, int]:
    """(n,) float32 mono (channel mean) at <= :data:`MAX_RATE` Hz, cut to :data:`MAX_SECONDS` with a fade."""
    import soundfile
    import soxr

    try:
        audio, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError) as exc:
        raise InstrecError(f"{path}: cannot read sample ({exc})") from None
    x = audio.mean(axis=1, dtype=np.float32)
    if sr > MAX_RATE:
        x, sr = soxr.resample(x, sr, MAX_RATE, quality="HQ").astype(np.float32), MAX_RATE
    n = int(MAX_SECONDS * sr)
    if len(x) > n:
        x = x[:n].copy()
        fade = int(FADE_SECONDS * sr)
        x[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return x, int(sr)


def _timecents(seconds: float) -> int:
    return int(round(1200 * np.log2(seconds))) & 0xFFFF


def _zone(key_lo: int, key_hi: int, sample: int, release: float, vel: tuple[int, int] = (0, 127),
          root: int | None = None) -> list[tuple[int, int]]:
    """Generators of one instrument zone (keyRange and velRange first, sampleID last, as 2.04 says)."""
    gens = [(43, key_lo | key_hi << 8), (44, vel[0] | vel[1] << 8), (38, _timecents(release)), (54, 0)]
    if root is not None:
        gens.append((58, root))  # overridingRootKey: a drum hit plays at its own pitch on every key
    return gens + [(53, sample)]


def write_sf2(name: str, bank: int, program: int, samples: Sequence[tuple[np.ndarray, int, int, int]],
              zones: Sequence[list[tuple[int, int]]]) -> bytes:
    """SoundFont 2.04 bytes with one preset ``(bank, program)`` of one instrument.

    ``samples``: ``(audio (n,) float32 in [-1, 1], rate Hz, root MIDI key, correction cents)``;
    ``zones``: generator lists ``[(oper, amount), ...]`` naming samples by index (53)."""
    pcm, headers, pos = [], [], 0
    for i, (x, sr, root, cents) in enumerate(samples):
        data = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
        pcm += [data.tobytes(), bytes(2 * _GUARD)]
        end = pos + len(data)
        headers.append((f"s{i}".encode(), pos, end, pos, max(pos, end - 1), sr, root, cents, 0, 1))
        pos = end + _GUARD
    headers.append((b"EOS", 0, 0, 0, 0, 0, 0, 0, 0, 0))
    gens = [g for z in zones for g in z]
    bag_starts = np.cumsum([0] + [len(z) for z in zones])
    tables = {
        b"phdr": [(name.encode()[:19], program, bank, 0, 0, 0, 0), (b"EOP", 0, 0, 1, 0, 0, 0)],
        b"pbag": [(0, 0), (1, 0)], b"pmod": [(0, 0, 0, 0, 0)], b"pgen": [(41, 0), (0, 0)],
        b"inst": [(name.encode()[:19], 0), (b"EOI", len(zones))],
        b"ibag": [(int(s), 0) for s in bag_starts], b"imod": [(0, 0, 0, 0, 0)],
        b"igen": gens + [(0, 0)], b"shdr": headers,
    }
    pdta = [_chunk(cid, np.array(tables[cid], dtype=_DTYPES[cid]).tobytes()) for cid in _DTYPES]
    title = name.encode()[:250] + b"\0"
    info = [_chunk(b"ifil", struct.pack("<HH", 2, 4)), _chunk(b"isng", b"EMU8000\0"),
            _chunk(b"INAM", title + b"\0" * (len(title) % 2))]  # strings of even length (2.04, 5.1)
    body = _list(b"INFO", info) + _list(b"sdta", [_chunk(b"smpl", *pcm)]) + _list(b"pdta", pdta)
    return b"".join(_chunk(b"RIFF", b"sfbk", *body))


def _mapping(set_dir: Path) -> dict[str, Any]:
    path = set_dir / "mapping.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InstrecError(f"{path}: cannot read the sample mapping ({exc})") from None


def pitched_font(set_dir: Path) -> bytes:
    """The SoundFont of a pitched instrument set (see the module docstring)."""
    m = _mapping(set_dir)
    bank, program = SET_VOICES[set_dir.name]
    offset = int(m.get("suggested_root_offset_semitones") or 0)
    by_root: dict[int, dict] = {}
    for s in m["samples"]:
        root = s.get("root_midi")
        if root is None and len(m["samples"]) == 1 and s.get("f0_estimate_midi") is not None:
            root = int(round(s["f0_estimate_midi"])) - offset  # a lone sample without a stated pitch
        if root is not None:
            by_root.setdefault(int(root) + offset, s)
    if not by_root:
        raise InstrecError(f"{set_dir}: no sample with a root key")
    roots = sorted(by_root)
    samples, zones = [], []
    for i, root in enumerate(roots):
        lo = 0 if i == 0 else (roots[i - 1] + root) // 2 + 1
        hi = 127 if i == len(roots) - 1 else (root + roots[i + 1]) // 2
        x, sr = _read(set_dir / by_root[root]["file"])
        samples.append((x, sr, root, int(float(by_root[root].get("tune_cents") or 0))))
        zones.append(_zone(lo, hi, i, RELEASE_SECONDS))
    return write_sf2(set_dir.name, bank, program, samples, zones)


def kit_font(pack: Path, name: str) -> bytes:
    """The SoundFont of a drum kit: its drum and cymbal sets on the GM percussion keys."""
    hits: dict[tuple[str, int], list[np.ndarray]] = {}
    rate = 0
    for rel in KITS[name]:
        for s in _mapping(pack / rel)["samples"]:
            if s.get("piece") not in KIT_KEYS:
                continue
            x, sr = _read(pack / rel / s["file"])
            if rate and sr != rate:
                x = _resample(x, sr, rate)
            rate = rate or sr
            layers = hits.setdefault((s["piece"], int(s.get("velocity_layer") or 0)), [])
            layers.append(x)
    # A hit = its microphones summed; pieces without velocity layers (0) stack their takes as layers.
    pieces: dict[str, list[np.ndarray]] = {}
    for (piece, layer), takes in sorted(hits.items()):
        if layer:
            n = max(len(t) for t in takes)
            pieces.setdefault(piece, []).append(sum(np.pad(t, (0, n - len(t))) for t in takes))
        else:
            pieces.setdefault(piece, []).extend(takes)
    peak = max(float(np.max(np.abs(h))) for hs in pieces.values() for h in hs) or 1.0
    samples, zones = [], []
    for piece, layers in pieces.items():
        layers = sorted(layers, key=lambda h: float(np.sqrt(np.mean(h * h))))  # soft to loud
        for j, h in enumerate(layers):
            idx = len(samples)
            samples.append((h * np.float32(0.9 / peak), rate, 60, 0))
            vel = (j * 128 // len(layers), (j + 1) * 128 // len(layers) - 1)
            zones += [_zone(k, k, idx, KIT_RELEASE_SECONDS, vel, root=k) for k in KIT_KEYS[piece]]
    zones.sort(key=lambda z: z[0][1])
    return write_sf2(name, PERCUSSION_BANK, 0, samples, zones)


def _resample(x: np.ndarray, sr: int, to: int) -> np.ndarray:
    import soxr

    return soxr.resample(x, sr, to, quality="HQ").astype(np.float32)


def _key(files: Sequence[Path]) -> str:
    h = hashlib.sha256(f"instrec samplefont {RECIPE_VERSION}".encode())
    for f in sorted(files):
        h.update(str(f.name).encode())
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:16]


def sample_fonts(pack: str | os.PathLike, cache: str | os.PathLike | None = None) -> list[Path]:
    """Build (or reuse from ``cache``) one SoundFont per instrument set and kit of the sample
    ``pack``; return their paths, sorted by name. Sets not in :data:`SET_VOICES` are skipped."""
    pack = Path(pack).expanduser().resolve()
    if not pack.is_dir():
        raise InstrecError(f"{pack}: sample pack not found")
    cache = Path(cache) if cache is not None else DEFAULT_CACHE
    jobs: list[tuple[str, list[Path], Any]] = []
    for mapping in sorted(pack.glob("*/*/mapping.json")):
        if mapping.parent.name in SET_VOICES:
            d = mapping.parent
            jobs.append((d.name, [mapping, *sorted((d / "samples").iterdir())], lambda d=d: pitched_font(d)))
    for name, rels in KITS.items():
        if all((pack / r / "mapping.json").is_file() for r in rels):
            files = [f for r in rels for f in [pack / r / "mapping.json", *sorted((pack / r / "samples").iterdir())]]
            jobs.append((name, files, lambda n=name: kit_font(pack, n)))
    out = []
    for name, files, build in sorted(jobs, key=lambda j: j[0]):
        path = cache / f"{name}-{_key(files)}.sf2"
        if not path.is_file():
            atomic_write_bytes(path, build())
        out.append(path)
    return out
