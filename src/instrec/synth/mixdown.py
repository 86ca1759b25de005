"""Render a realistic clip part by part, mix it, and read its strong labels off the audio.

Each part is rendered alone with its own SoundFont (a font cut down to the part's one
preset), scaled by its mix gain and summed. Rendering the parts one by one costs a
synthesiser call per part, but it is what lets parts use different fonts, and it shows
where each part really sounds: a class's strong label is its note intervals (plus release,
as in the ensemble recipe) **intersected with the frames where its own audio is within**
:data:`ACTIVITY_DB` **of the mix's loudest frame**. A note the font cannot play (a key
outside the preset's sample ranges), a tail that died early or a part drowned by the
others is thus not labelled as sounding.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from instrec.synth.labels import MERGE_GAP, Interval, merge_intervals, notes_by_class, strong_labels
from instrec.synth.realistic import RealPiece
from instrec.synth.render import PEAK, render_raw
from instrec.synth.soundfont import SoundFont

#: A part sounds in a frame whose RMS is at most this many dB below the mix's loudest frame.
ACTIVITY_DB = -40.0
#: Frame length (s) of the activity measure.
FRAME = 0.02


def render_stems(fonts: Sequence[SoundFont], piece: RealPiece, font_names: Sequence[str],
                 source: str = "<clip>") -> tuple[list[np.ndarray], int]:
    """Every part rendered alone with its font and scaled by its gain: ``(stems, sr)``, each
    stem (n,) float32 of ``round(duration * sr)`` samples, and Hz. ``font_names`` are the
    names written into the parts' MIDI (:func:`~instrec.synth.real_worker.font_names`)."""
    stems, sr = [], 48000
    for i, rp in enumerate(piece.parts):
        midi = piece.midi_bytes(font_names, only=i)
        audio, sr = render_raw(fonts[rp.font], midi, piece.duration, source=f"{source} (part {i}: {rp.part.name})",
                               presets={(rp.part.voice.bank, rp.part.voice.program)})
        stems.append(audio * np.float32(10.0 ** (rp.gain_db / 20.0)))
    return stems, sr


def frame_rms(audio: np.ndarray, sr: int, frame: float = FRAME) -> np.ndarray:
    """(F,) RMS of consecutive ``frame``-second frames of (n,) ``audio`` (the tail is dropped)."""
    hop = max(1, int(round(frame * sr)))
    n = len(audio) // hop
    x = audio[: n * hop].astype(np.float64).reshape(n, hop)
    return np.sqrt(np.mean(x * x, axis=1))


def _intersect(intervals: Sequence[Interval], active: np.ndarray, frame: float) -> list[Interval]:
    """The parts of ``intervals`` (s) that fall on ``active`` (F,) bool frames."""
    out: list[Interval] = []
    for s, e in intervals:
        a, b = int(np.floor(s / frame)), min(int(np.ceil(e / frame)), len(active))
        f = a
        while f < b:
            if not active[f]:
                f += 1
                continue
            g = f
            while g < b and active[g]:
                g += 1
            out.append((max(s, f * frame), min(e, g * frame)))
            f = g
    return out


def mix_and_label(stems: Sequence[np.ndarray], sr: int, piece: RealPiece,
                  activity_db: float = ACTIVITY_DB) -> tuple[np.ndarray, dict[str, list[Interval]]]:
    """Sum the stems, peak-normalise to -1 dBFS and label: ``(mix, strong)``, (n,) float32
    and class -> sounding intervals in s (see the module docstring)."""
    mix = np.sum(np.stack(stems), axis=0, dtype=np.float32) if stems else np.zeros(0, np.float32)
    notes = strong_labels(notes_by_class([rp.part for rp in piece.parts]), piece.duration)
    levels = [frame_rms(s, sr) for s in stems]
    ref = float(frame_rms(mix, sr).max()) if mix.size else 0.0
    strong: dict[str, list[Interval]] = {}
    if ref > 0.0:
        threshold = ref * 10.0 ** (activity_db / 20.0)
        for cls, intervals in notes.items():
            active = np.zeros(len(levels[0]), dtype=bool)
            for rp, lv in zip(piece.parts, levels):
                if rp.part.cls == cls:
                    active |= lv >= threshold
            active |= np.r_[active[1:], False] | np.r_[False, active[:-1]]  # one frame of slack each side
            merged = merge_intervals(_intersect(intervals, active, FRAME), piece.duration, 0.0, MERGE_GAP)
            if merged:
                strong[cls] = merged
    peak = float(np.max(np.abs(mix))) if mix.size else 0.0
    if peak > 0.0:
        mix = mix * np.float32(PEAK / peak)
    return np.ascontiguousarray(mix, dtype=np.float32), strong
