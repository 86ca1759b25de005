"""Keys, scales and chord progressions for the synthetic pieces.

Times are in seconds from the start of the clip; pitches are MIDI note numbers; pitch
classes are 0-11 (C = 0). A :class:`Harmony` is the shared musical frame of one piece:
tempo, metre, key and a chord timeline that every part follows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)  # natural minor; the V chord is raised below

#: Progressions as 0-based scale degrees, per mode.
PROGRESSIONS: dict[str, tuple[tuple[int, ...], ...]] = {
    "major": ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 0), (1, 4, 0, 0), (0, 3, 0, 4),
              (5, 3, 0, 4), (0, 0, 3, 3, 0, 0, 4, 4), (0, 2, 3, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 3, 6, 2), (0, 6, 5, 4), (0, 5, 3, 4),
              (3, 4, 0, 0)),
}

#: Tempo range (beats per minute) per style.
TEMPO_RANGE: dict[str, tuple[float, float]] = {
    "rock": (96, 150), "jazz": (100, 190), "classical": (66, 126), "folk": (90, 150),
    "electronic": (118, 132), "ballad": (62, 88), "latin": (96, 140), "reggae": (70, 96),
    "hymn": (60, 84), "waltz": (84, 160), "free": (70, 150),
}


@dataclass(frozen=True)
class Chord:
    """A chord sounding over ``[start, end)`` seconds: ``root`` pitch class and its ``pcs``
    (root, third, fifth and, for seventh chords, the seventh)."""

    start: float
    end: float
    root: int
    pcs: tuple[int, ...]


@dataclass(frozen=True)
class Harmony:
    """Musical frame of a piece.

    Attributes:
        tonic: pitch class of the key; mode: ``"major"`` or ``"minor"``.
        bpm: tempo in beats per minute; beats_per_bar: 3 or 4.
        origin: time in seconds (<= 0) of the first bar line, so the clip starts mid-song.
        chords: the chord timeline covering ``[origin, duration)``.
        swing: True for swung eighths (jazz).
    """

    tonic: int
    mode: str
    bpm: float
    beats_per_bar: int
    origin: float
    chords: tuple[Chord, ...]
    swing: bool = False

    @property
    def beat(self) -> float:
        """Length of one beat in seconds."""
        return 60.0 / self.bpm

    @property
    def bar(self) -> float:
        """Length of one bar in seconds."""
        return self.beat * self.beats_per_bar

    @property
    def scale(self) -> tuple[int, ...]:
        """Pitch classes of the key's scale, tonic first."""
        steps = MAJOR_SCALE if self.mode == "major" else MINOR_SCALE
        return tuple((self.tonic + s) % 12 for s in steps)

    def chord_at(self, t: float) -> Chord:
        """The chord sounding at time ``t`` seconds (the first/last chord outside the timeline)."""
        for chord in self.chords:
            if t < chord.end:
                return chord
        return self.chords[-1]

    def beat_times(self, end: float, subdivision: int = 1) -> np.ndarray:
        """Grid times (seconds) from ``origin`` up to ``end``: ``subdivision`` points per beat,
        with swung off-beats when ``swing`` and ``subdivision == 2``."""
        step = self.beat / subdivision
        times = self.origin + step * np.arange(int(np.ceil((end - self.origin) / step)) + 1)
        if self.swing and subdivision == 2:
            times[1::2] += step / 3.0
        return times[times < end]


def diatonic_chord(scale: tuple[int, ...], degree: int, mode: str, seventh: bool) -> tuple[int, ...]:
    """Pitch classes of the diatonic chord on 0-based ``degree`` (stacked thirds of ``scale``).

    In minor the dominant (degree 4) takes the raised leading tone (harmonic minor)."""
    idx = [degree, degree + 2, degree + 4] + ([degree + 6] if seventh else [])
    pcs = [scale[i % 7] for i in idx]
    if mode == "minor" and degree == 4:
        pcs[1] = (pcs[1] + 1) % 12
    return tuple(pcs)


def make_harmony(rng: np.random.Generator, style: str, duration: float = 10.0) -> Harmony:
    """Draw tempo, metre, key and a chord progression for a piece of ``style`` lasting ``duration`` s."""
    lo, hi = TEMPO_RANGE.get(style, TEMPO_RANGE["free"])
    bpm = float(np.round(rng.uniform(lo, hi)))
    beats_per_bar = 3 if style == "waltz" or (style in ("classical", "folk") and rng.random() < 0.2) else 4
    mode = "minor" if rng.random() < (0.5 if style in ("classical", "waltz", "electronic") else 0.3) else "major"
    tonic = int(rng.integers(0, 12))
    seventh = style == "jazz" or (style in ("ballad", "latin") and rng.random() < 0.5)
    prog = PROGRESSIONS[mode][int(rng.integers(len(PROGRESSIONS[mode])))]
    beat = 60.0 / bpm
    bars_per_chord = 0.5 if (style == "jazz" and rng.random() < 0.4) else (2 if bpm > 140 and rng.random() < 0.5 else 1)
    chord_len = beat * beats_per_bar * bars_per_chord
    origin = -float(rng.integers(0, beats_per_bar)) * beat
    scale = (MAJOR_SCALE if mode == "major" else MINOR_SCALE)
    scale = tuple((tonic + s) % 12 for s in scale)
    chords = []
    t, i = origin, int(rng.integers(len(prog)))  # start anywhere in the progression
    while t < duration:
        degree = prog[i % len(prog)]
        pcs = diatonic_chord(scale, degree, mode, seventh)
        chords.append(Chord(start=t, end=t + chord_len, root=pcs[0], pcs=pcs))
        t += chord_len
        i += 1
    return Harmony(tonic=tonic, mode=mode, bpm=bpm, beats_per_bar=beats_per_bar, origin=origin,
                   chords=tuple(chords), swing=style == "jazz")


def pitches_in_range(pcs: tuple[int, ...] | list[int], low: int, high: int) -> list[int]:
    """All MIDI pitches in ``[low, high]`` whose pitch class is in ``pcs``, ascending."""
    pcset = set(pcs)
    return [p for p in range(low, high + 1) if p % 12 in pcset]


def nearest_pitch(pcs: tuple[int, ...] | list[int], target: float, low: int, high: int) -> int:
    """The pitch in ``[low, high]`` with a pitch class in ``pcs`` closest to ``target``."""
    cands = pitches_in_range(pcs, low, high)
    if not cands:
        return int(np.clip(round(target), low, high))
    return min(cands, key=lambda p: (abs(p - target), p))
