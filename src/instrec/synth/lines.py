"""Played pitch ranges and the solo lines of the realistic recipe.

:data:`PLAYED_RANGE` is the range (MIDI notes, inclusive) an instrument is really played
in, wider than the conservative ranges of :mod:`~instrec.synth.gm` that the ensemble
recipe writes in: a corpus should hear a clarinet's chalumeau and its altissimo, a violin
on the G string and in seventh position. Each clip plays in a *register window* drawn
inside that range (:func:`register`), so that one clip sounds like one player and the
corpus covers the whole range. :func:`solo_line` writes a phrase-based line: scale runs,
arpeggios, leaps, held notes, with breaths between phrases.
"""
from __future__ import annotations

import numpy as np

from instrec.synth.gm import Voice
from instrec.synth.harmony import Harmony, nearest_pitch, pitches_in_range
from instrec.synth.parts import NoteEvent, velocity

#: Played range per class (MIDI notes), as written for a professional player.
PLAYED_RANGE: dict[str, tuple[int, int]] = {
    "accordion": (41, 93), "banjo": (48, 84), "bass": (28, 67), "cello": (36, 84), "clarinet": (50, 94),
    "flute": (60, 98), "guitar": (40, 88), "mallet_percussion": (45, 100), "mandolin": (55, 91),
    "organ": (36, 96), "piano": (24, 103), "saxophone": (44, 88), "synthesizer": (36, 96),
    "trombone": (40, 77), "trumpet": (54, 86), "ukulele": (60, 84), "violin": (55, 100), "voice": (40, 84),
}
#: Voices whose range differs from their class's.
VOICE_RANGE: dict[str, tuple[int, int]] = {
    "Piccolo": (74, 105), "Soprano Sax": (56, 91), "Alto Sax": (49, 85), "Tenor Sax": (44, 80),
    "Baritone Sax": (36, 72), "Glockenspiel": (79, 108), "Xylophone": (65, 108), "Vibraphone": (53, 89),
    "Marimba": (45, 96), "Celesta": (60, 108), "Muted Trumpet": (54, 82), "Muted Guitar": (40, 76),
    "Synth Bass 1": (24, 60), "Synth Bass 2": (24, 60),
}
#: Singer ranges: a voice part is sung by one of these (bass, baritone, tenor, alto, mezzo, soprano).
SINGERS: tuple[tuple[int, int], ...] = ((40, 64), (43, 67), (48, 72), (53, 77), (57, 81), (60, 84))

#: Figures of a solo phrase and their weights per density.
_FIGURES = ("step", "run", "arp", "leap", "long")
_FIGURE_P = {"lyrical": (0.40, 0.08, 0.12, 0.15, 0.25), "medium": (0.38, 0.17, 0.18, 0.12, 0.15),
             "virtuosic": (0.22, 0.35, 0.28, 0.10, 0.05)}
DENSITIES = tuple(_FIGURE_P)


def played_range(cls: str, voice: Voice) -> tuple[int, int]:
    """The played range of ``voice`` of class ``cls`` (MIDI, inclusive)."""
    return VOICE_RANGE.get(voice.name, PLAYED_RANGE.get(cls, (voice.low, voice.high)))


def register(rng: np.random.Generator, cls: str, voice: Voice, role: str) -> tuple[int, int]:
    """A register window ``(low, high)`` for one part: a singer's range for voices, a 1.5-2.5
    octave window anywhere in the played range for lines, the lower part for bass roles."""
    lo, hi = played_range(cls, voice)
    if cls == "voice":
        lo, hi = SINGERS[int(rng.integers(len(SINGERS)))]
        return lo, hi
    if role == "bass" and cls != "bass":
        return lo, min(hi, lo + 24)
    if role == "chords":  # chords below C2-E2 are mud: keep keyboard and mallet chords higher
        lo = max(lo, 40)
    width = int(rng.integers(18, 31)) if role in ("solo", "melody") else int(rng.integers(14, 25))
    if hi - lo <= width:
        return lo, hi
    start = int(rng.integers(lo, hi - width + 1))
    return start, start + width


def _place(scale: list[int], pitch: int) -> int:
    """Index of the scale pitch nearest to ``pitch``."""
    return int(np.argmin(np.abs(np.asarray(scale) - pitch)))


def solo_line(rng: np.random.Generator, h: Harmony, low: int, high: int, duration: float, density: str,
              base_vel: float) -> list[NoteEvent]:
    """A solo line over ``[h.origin, duration)`` s in ``[low, high]``: phrases of 1-3 bars built
    from figures (stepwise motion, sixteenth runs, chord arpeggios, leaps, held notes), with
    a breath of 0.5-2 beats between phrases. Returns notes in time order."""
    scale = pitches_in_range(h.scale, low, high)
    if len(scale) < 3:
        return []
    p = np.array(_FIGURE_P[density])
    notes: list[NoteEvent] = []
    idx = int(rng.integers(len(scale) // 4, max(len(scale) // 4 + 1, 3 * len(scale) // 4)))
    t = h.origin
    beat = h.beat
    while t < duration:
        phrase_end = t + h.bar * int(rng.integers(1, 4))
        while t < phrase_end and t < duration:
            figure = _FIGURES[int(rng.choice(len(_FIGURES), p=p))]
            chord = h.chord_at(t + 1e-6)
            if figure == "run":  # four sixteenths (or a triplet) up or down the scale
                k = 3 if rng.random() < 0.3 else 4
                direction = 1 if idx < len(scale) // 2 or rng.random() < 0.4 else -1
                for j in range(k):
                    idx = int(np.clip(idx + direction, 0, len(scale) - 1))
                    on = t + j * beat / k
                    notes.append(NoteEvent(scale[idx], on, on + beat / k, velocity(rng, base_vel, 4 if j == 0 else 0)))
                t += beat
            elif figure == "arp":  # chord tones in eighths, one direction
                direction = 1 if rng.random() < 0.5 else -1
                tones = pitches_in_range(chord.pcs, low, high)
                if not tones:
                    t += beat
                    continue
                j0 = int(np.argmin(np.abs(np.asarray(tones) - scale[idx])))
                for j in range(4):
                    tone = tones[int(np.clip(j0 + direction * j, 0, len(tones) - 1))]
                    on = t + j * beat / 2
                    notes.append(NoteEvent(tone, on, on + beat / 2, velocity(rng, base_vel, 3 if j == 0 else 0)))
                idx = _place(scale, notes[-1].pitch)
                t += 2 * beat
            elif figure == "leap":  # a leap to a chord tone, held
                jump = int(rng.integers(4, 9)) * (1 if rng.random() < 0.5 else -1)
                target = scale[int(np.clip(idx + jump, 0, len(scale) - 1))]
                pitch = nearest_pitch(chord.pcs, target, low, high)
                length = beat * float(rng.choice([1.0, 1.5, 2.0]))
                notes.append(NoteEvent(pitch, t, t + length, velocity(rng, base_vel, 8)))
                idx = _place(scale, pitch)
                t += length
            elif figure == "long":
                pitch = nearest_pitch(chord.pcs, scale[idx], low, high)
                length = beat * float(rng.choice([2.0, 3.0, 4.0]))
                notes.append(NoteEvent(pitch, t, t + length, velocity(rng, base_vel, 2)))
                idx = _place(scale, pitch)
                t += length
            else:  # step: one or two notes moving by a second or a third
                for length in ((beat,) if rng.random() < 0.5 else (beat / 2, beat / 2)):
                    idx = int(np.clip(idx + int(rng.choice([-2, -1, -1, 1, 1, 2])), 0, len(scale) - 1))
                    notes.append(NoteEvent(scale[idx], t, t + length, velocity(rng, base_vel)))
                    t += length
        t += beat * float(rng.choice([0.5, 1.0, 1.0, 2.0]))  # breath
    return [n for n in notes if n.start < duration]
