"""Note generators for the melodic roles of a piece (bass, chords, melody, counter-line).

Every generator writes over the whole timeline ``[harmony.origin, duration)`` in seconds and
returns :class:`NoteEvent` tuples; :mod:`instrec.synth.compose` later keeps only the
notes inside the part's active span. Pitches stay in the voice's ``[low, high]`` range.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from instrec.synth.harmony import Chord, Harmony, nearest_pitch, pitches_in_range

BASS_PATTERNS = ("sustain", "root5", "walking", "eighths", "syncopated")
CHORD_PATTERNS = ("pad", "block", "strum", "offbeat", "arpeggio", "comp")


class NoteEvent(NamedTuple):
    """One note: MIDI ``pitch``, ``start``/``end`` in seconds, MIDI ``velocity`` 1-127."""

    pitch: int
    start: float
    end: float
    velocity: int


def velocity(rng: np.random.Generator, base: float, accent: float = 0.0) -> int:
    """A humanised MIDI velocity around ``base`` (+ ``accent``), clipped to 1-127."""
    return int(np.clip(round(base + accent + rng.normal(0.0, 6.0)), 1, 127))


def _grid(h: Harmony, start: float, end: float, step_beats: float) -> np.ndarray:
    """Grid times in ``[start, end)`` every ``step_beats`` beats, aligned to bar lines."""
    step = h.beat * step_beats
    k0 = int(np.ceil((start - h.origin) / step - 1e-9))
    k1 = int(np.ceil((end - h.origin) / step - 1e-9))
    return h.origin + step * np.arange(k0, k1)


def _is_downbeat(h: Harmony, t: float) -> bool:
    return abs(((t - h.origin) / h.bar) - round((t - h.origin) / h.bar)) < 1e-6


def voicing(chord: Chord, center: float, low: int, high: int, n: int) -> list[int]:
    """A close-position voicing of ``n`` notes of ``chord`` around ``center`` (MIDI), ascending."""
    cands = pitches_in_range(chord.pcs, low, high)
    if not cands:
        return [int(np.clip(round(center), low, high))]
    start = min(range(len(cands)), key=lambda i: abs(cands[i] - (center - 4)))
    start = max(0, min(start, len(cands) - n))
    return cands[start:start + n]


def bass_line(rng: np.random.Generator, h: Harmony, low: int, high: int, duration: float,
              pattern: str, base_vel: float) -> list[NoteEvent]:
    """A bass part following the chord roots; ``pattern`` is one of :data:`BASS_PATTERNS`."""
    center = low + 0.35 * (high - low)
    notes: list[NoteEvent] = []
    for ci, chord in enumerate(h.chords):
        if chord.start >= duration:
            break
        root = nearest_pitch([chord.root], center, low, high)
        fifth = nearest_pitch([(chord.root + 7) % 12], root + 7, low, high)
        nxt = h.chords[ci + 1].root if ci + 1 < len(h.chords) else chord.root
        if pattern == "sustain":
            notes.append(NoteEvent(root, chord.start, chord.end - 0.05, velocity(rng, base_vel, 6)))
            continue
        step = {"root5": 2.0, "walking": 1.0, "eighths": 0.5, "syncopated": 0.5}[pattern]
        times = _grid(h, chord.start, chord.end, step)
        for k, t in enumerate(times):
            last = k == len(times) - 1
            if pattern == "root5":
                p = root if k % 2 == 0 else fifth
            elif pattern == "walking":
                if k == 0:
                    p = root
                elif last:  # chromatic approach to the next root
                    target = nearest_pitch([nxt], root, low, high)
                    p = int(np.clip(target + (1 if rng.random() < 0.5 else -1), low, high))
                else:
                    p = nearest_pitch(h.scale, root + rng.integers(-2, 8), low, high)
            elif pattern == "eighths":
                p = root + 12 if (k % 4 == 3 and rng.random() < 0.3 and root + 12 <= high) else root
            else:  # syncopated: sparse hits on the eighth grid, root on the downbeat
                if k > 0 and rng.random() < 0.45:
                    continue
                p = root if k == 0 or rng.random() < 0.6 else fifth
            length = h.beat * step * (0.9 if pattern != "eighths" else 0.7)
            accent = 8 if _is_downbeat(h, t) else 0
            notes.append(NoteEvent(int(p), float(t), float(t + length), velocity(rng, base_vel, accent)))
    return notes


def chord_part(rng: np.random.Generator, h: Harmony, low: int, high: int, duration: float,
               pattern: str, base_vel: float) -> list[NoteEvent]:
    """An accompaniment part; ``pattern`` is one of :data:`CHORD_PATTERNS`."""
    center = low + 0.45 * (high - low)
    n_notes = 5 if pattern == "strum" else (4 if len(h.chords[0].pcs) > 3 or rng.random() < 0.4 else 3)
    notes: list[NoteEvent] = []
    strum_pattern = [(0, 1.0), (1, 0.5), (1.5, 0.5), (2.5, 0.5), (3, 1.0)][: max(2, h.beats_per_bar + 1)]
    for chord in h.chords:
        if chord.start >= duration:
            break
        voiced = voicing(chord, center, low, high, n_notes)
        if pattern == "pad":
            v = velocity(rng, base_vel)
            notes += [NoteEvent(p, chord.start, chord.end - 0.03, v) for p in voiced]
        elif pattern in ("block", "offbeat"):
            offset = 0.5 if pattern == "offbeat" else 0.0
            for t in _grid(h, chord.start, chord.end, 1.0):
                if pattern == "block" and h.beats_per_bar == 4 and not _is_downbeat(h, t) and rng.random() < 0.3:
                    continue
                on = t + offset * h.beat
                length = h.beat * (0.35 if pattern == "offbeat" else 0.9)
                v = velocity(rng, base_vel, 6 if _is_downbeat(h, t) else 0)
                notes += [NoteEvent(p, on, on + length, v) for p in voiced]
        elif pattern == "strum":
            for bar_start in _grid(h, chord.start, chord.end, h.beats_per_bar):
                for beat_pos, length_beats in strum_pattern:
                    on = bar_start + beat_pos * h.beat
                    if on >= chord.end:
                        break
                    up = beat_pos % 1 != 0
                    order = voiced[::-1] if up else voiced
                    v = velocity(rng, base_vel, -8 if up else 4)
                    for i, p in enumerate(order):
                        s = on + i * 0.012
                        notes.append(NoteEvent(p, s, on + length_beats * h.beat * 0.95, v))
        elif pattern == "arpeggio":
            seq = voiced + voiced[-2:0:-1] if len(voiced) > 2 else voiced
            for k, t in enumerate(_grid(h, chord.start, chord.end, 0.5)):
                p = seq[k % len(seq)]
                v = velocity(rng, base_vel, 5 if k == 0 else 0)
                notes.append(NoteEvent(p, float(t), float(t + h.beat * 0.9), v))
        else:  # comp: a few syncopated hits per bar
            for t in _grid(h, chord.start, chord.end, 0.5):
                if rng.random() < 0.3:
                    length = h.beat * rng.choice([0.4, 0.8, 1.5])
                    v = velocity(rng, base_vel)
                    notes += [NoteEvent(p, float(t), float(t + length), v) for p in voiced]
    return notes


#: Rhythm cells (in beats) for melodies, by density.
_CELLS = {
    "high": ((0.5, 0.5), (0.25, 0.25, 0.5), (0.5, 0.25, 0.25), (1.0,), (0.75, 0.25), (0.5, 1.0, 0.5)),
    "medium": ((1.0,), (0.5, 0.5), (1.5, 0.5), (2.0,), (1.0, 0.5, 0.5), (0.5, 0.5, 1.0)),
    "low": ((2.0,), (1.0, 1.0), (3.0, 1.0), (4.0,), (1.5, 0.5, 2.0)),
}


def melody(rng: np.random.Generator, h: Harmony, low: int, high: int, duration: float,
           density: str, base_vel: float) -> list[NoteEvent]:
    """A melodic line: stepwise motion on the scale, chord tones on strong beats, phrase rests."""
    scale_pitches = pitches_in_range(h.scale, low, high)
    if not scale_pitches:
        return []
    lo_i, hi_i = 0, len(scale_pitches) - 1
    idx = int(rng.integers(len(scale_pitches) // 3, max(len(scale_pitches) // 3 + 1, 2 * len(scale_pitches) // 3)))
    legato = rng.uniform(0.75, 1.0)
    notes: list[NoteEvent] = []
    t = h.origin
    phrase_len = 2 * h.bar
    steps = np.array([-3, -2, -1, 0, 1, 2, 3, 4, -4])
    step_p = np.array([0.05, 0.16, 0.24, 0.07, 0.24, 0.14, 0.05, 0.03, 0.02])
    while t < duration:
        if ((t - h.origin) % phrase_len) > phrase_len - 1e-6 - h.beat and rng.random() < 0.5:
            t += h.beat  # breathe at phrase ends
            continue
        for length_beats in _CELLS[density][int(rng.integers(len(_CELLS[density])))]:
            dur = length_beats * h.beat
            if rng.random() >= 0.1:  # otherwise a rest
                idx = idx + int(rng.choice(steps, p=step_p))
                if idx < lo_i or idx > hi_i:  # reflect at the range edges
                    idx = lo_i + abs(idx - lo_i) if idx < lo_i else hi_i - (idx - hi_i)
                    idx = int(np.clip(idx, lo_i, hi_i))
                pitch = scale_pitches[idx]
                on_beat = abs(((t - h.origin) / h.beat) - round((t - h.origin) / h.beat)) < 1e-6
                if on_beat:
                    pitch = nearest_pitch(h.chord_at(t + 1e-6).pcs, pitch, low, high)
                    idx = min(range(len(scale_pitches)), key=lambda i: abs(scale_pitches[i] - pitch))
                accent = 8 if _is_downbeat(h, t) else (3 if on_beat else 0)
                notes.append(NoteEvent(int(pitch), float(t), float(t + dur * legato), velocity(rng, base_vel, accent)))
            t += dur
    return notes


def counter_line(rng: np.random.Generator, h: Harmony, low: int, high: int, duration: float,
                 base_vel: float) -> list[NoteEvent]:
    """A slow counter-line on chord thirds/fifths/sevenths with smooth voice leading."""
    prev = low + 0.5 * (high - low)
    notes: list[NoteEvent] = []
    for chord in h.chords:
        if chord.start >= duration:
            break
        t = chord.start
        while t < chord.end - 1e-6:
            length = min(chord.end - t, h.beat * float(rng.choice([1.0, 2.0, 2.0, 3.0, 4.0])))
            pcs = chord.pcs[1:] if rng.random() < 0.8 else chord.pcs
            pitch = nearest_pitch(pcs, prev + rng.normal(0, 2.0), low, high)
            notes.append(NoteEvent(pitch, float(t), float(t + length * 0.95), velocity(rng, base_vel)))
            prev = pitch
            t += length
    return notes
