"""Expressive performance of the realistic recipe: dynamics, articulation, rubato, vibrato.

Everything here turns a written part into a played one, all in seconds and MIDI units:

* :func:`shape_notes`: a dynamics curve over the clip (flat, crescendo, diminuendo or a
  hairpin) plus accents on velocities; articulation (legato, normal, staccato or mixed)
  on note lengths.
* :class:`Rubato`: one smooth, monotone time warp per piece (all parts breathe together)
  with an optional ritardando.
* :func:`controls`: MIDI controller curves of a part: a tuning offset and vibrato or
  scoops as pitch bend (default bend range: +-2 semitones = +-8192), and a swell of
  expression (CC 11) inside long notes of sustaining instruments.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from instrec.synth.parts import NoteEvent

#: Classes that play with vibrato, with their depth range in cents.
VIBRATO_CENTS: dict[str, tuple[float, float]] = {
    "violin": (12, 35), "cello": (12, 30), "voice": (15, 45), "flute": (8, 22), "clarinet": (0, 8),
    "saxophone": (10, 28), "trumpet": (6, 18), "trombone": (6, 18), "synthesizer": (0, 15), "guitar": (0, 12),
    "accordion": (0, 6), "mandolin": (0, 6),
}
#: Classes that sometimes scoop into a note from below.
SCOOPS = frozenset({"saxophone", "trombone", "voice", "guitar", "trumpet"})
#: Classes whose sound is sustained by breath, bow or bellows (expression swells inside notes).
SUSTAINED = frozenset({"violin", "cello", "voice", "flute", "clarinet", "saxophone", "trumpet", "trombone",
                       "accordion", "organ", "synthesizer"})
BEND_PER_CENT = 8192 / 200.0
CONTROL_STEP = 0.02  # seconds between two points of a controller curve

Control = tuple[float, int, int]  # (time in s, controller: -1 = pitch bend or a CC number, value)
PITCH_BEND = -1


def _dynamics(rng: np.random.Generator, duration: float) -> tuple[str, float, float, float]:
    """A dynamics shape: ``(name, depth in velocity units, start s, end s)``."""
    shape = str(rng.choice(["flat", "crescendo", "diminuendo", "hairpin", "hairpin"]))
    a = float(rng.uniform(8, 28))
    s = float(rng.uniform(0.0, 0.4 * duration))
    return shape, a, s, float(rng.uniform(max(s + 2.0, 0.6 * duration), duration))


def _curve(shape: tuple[str, float, float, float], t: float) -> float:
    name, a, s, e = shape
    x = float(np.clip((t - s) / max(e - s, 1e-3), 0.0, 1.0))
    if name == "crescendo":
        return a * (x - 0.5)
    if name == "diminuendo":
        return a * (0.5 - x)
    if name == "hairpin":
        return a * (0.5 - abs(2 * x - 1.0))
    return 0.0


def shape_notes(rng: np.random.Generator, notes: list[NoteEvent], duration: float, percussive: bool,
                chordal: bool) -> tuple[list[NoteEvent], str]:
    """Dynamics, accents and articulation of one part; returns ``(notes, articulation)``.

    Percussive parts (drums, cymbals) keep their lengths (they are the measured decay).
    Chordal parts get gentler articulation (a pianist pedals, a guitarist lets ring)."""
    shape = _dynamics(rng, duration)
    art = "normal" if percussive else str(rng.choice(["legato", "normal", "staccato", "mixed"],
                                                     p=[0.35, 0.35, 0.1, 0.2] if not chordal else [0.4, 0.5, 0.05, 0.05]))
    onsets = sorted({n.start for n in notes})
    out = []
    for n in notes:
        gap_before = n.start - max((o for o in onsets if o < n.start - 1e-6), default=-10.0)
        accent = float(rng.uniform(8, 20)) if rng.random() < 0.1 else (5.0 if gap_before > 0.6 else 0.0)
        vel = int(np.clip(round(n.velocity + _curve(shape, n.start) + accent), 15, 127))
        end = n.end
        if not percussive:
            mode = str(rng.choice(["legato", "normal", "staccato"])) if art == "mixed" else art
            length = n.end - n.start
            nxt = next((o for o in onsets if o > n.start + 1e-6), None)
            if mode == "legato" and nxt is not None and nxt - n.end < 0.3:
                end = nxt + 0.02  # touch the next note
            elif mode == "staccato":
                end = n.start + max(0.06, length * float(rng.uniform(0.3, 0.5)))
            else:
                end = n.start + max(0.06, length * float(rng.uniform(0.8, 0.95)))
        out.append(NoteEvent(n.pitch, n.start, end, vel))
    return out, art


@dataclass(frozen=True)
class Rubato:
    """A monotone time warp ``t -> t + a sin(2 pi t / period + phase) - a sin(phase) + rit t^2 / 2d``
    (seconds); ``a <= 0.12`` s and ``period >= 3`` s keep the local tempo within about +-25%."""

    a: float
    period: float
    phase: float
    rit: float
    duration: float

    @classmethod
    def draw(cls, rng: np.random.Generator, duration: float, amount: float) -> Rubato:
        """A rubato; ``amount`` in [0, 1] scales its depth (0: none)."""
        return cls(float(rng.uniform(0.0, 0.12)) * amount, float(rng.uniform(3.0, 8.0)),
                   float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0.0, 0.1)) * amount * (rng.random() < 0.4),
                   duration)

    def __call__(self, t: float) -> float:
        warp = self.a * (np.sin(2 * np.pi * t / self.period + self.phase) - np.sin(self.phase))
        return float(t + warp + self.rit * max(t, 0.0) ** 2 / (2 * self.duration))

    def notes(self, notes: list[NoteEvent]) -> list[NoteEvent]:
        """The notes with warped start and end times."""
        return [n._replace(start=self(n.start), end=self(n.end)) for n in notes]


def controls(rng: np.random.Generator, cls: str, notes: tuple[NoteEvent, ...], detune_cents: float,
             chordal: bool) -> list[Control]:
    """Controller events of one melodic part: pitch bend (``detune_cents`` offset, vibrato on
    notes of >= 0.35 s, scoops) and CC 11 swells on long notes; sorted by time."""
    out: list[Control] = []
    base = detune_cents * BEND_PER_CENT
    lo, hi = VIBRATO_CENTS.get(cls, (0.0, 0.0))
    depth = float(rng.uniform(lo, hi)) if not chordal else 0.0
    rate = float(rng.uniform(4.5, 7.0))
    scoop_p = 0.25 if (cls in SCOOPS and not chordal) else 0.0
    swell = cls in SUSTAINED and rng.random() < 0.6
    out.append((0.0, PITCH_BEND, int(round(base))))
    if swell:
        out.append((0.0, 11, 110))
    for i, n in enumerate(notes):
        length = n.end - n.start
        nxt = notes[i + 1].start if i + 1 < len(notes) else n.end + 0.3
        stop = min(nxt, n.end + 0.2)
        points: list[tuple[float, float]] = []
        scoop = float(rng.uniform(30, 100)) if rng.random() < scoop_p and length > 0.25 else 0.0
        glide = float(rng.uniform(0.05, 0.12))
        delay = float(rng.uniform(0.12, 0.3))
        vib = depth > 0.5 and length >= 0.35
        if scoop or vib:
            for t in np.arange(n.start, stop, CONTROL_STEP):
                dt = t - n.start
                cents = -scoop * max(0.0, 1.0 - dt / glide)
                if vib and dt > delay:
                    ramp = min(1.0, (dt - delay) / 0.25)
                    cents += depth * ramp * np.sin(2 * np.pi * rate * (dt - delay))
                points.append((float(t), cents))
            points.append((stop, 0.0))
        out += [(t, PITCH_BEND, int(np.clip(round(base + c * BEND_PER_CENT), -8192, 8191))) for t, c in points]
        if swell and length >= 0.6:  # messa di voce: a rise to a peak and a fall
            peak = n.start + length * float(rng.uniform(0.3, 0.7))
            for t in np.arange(n.start, n.end, 4 * CONTROL_STEP):
                x = (t - n.start) / max(peak - n.start, 1e-3) if t < peak else (n.end - t) / max(n.end - peak, 1e-3)
                out.append((float(t), 11, int(round(95 + 32 * np.clip(x, 0.0, 1.0)))))
            out.append((n.end, 11, 110))
    out.sort(key=lambda c: c[0])
    return _dedupe(out)


def _dedupe(events: list[Control]) -> list[Control]:
    """Drop controller events that repeat the controller's current value."""
    last: dict[int, int] = {}
    kept = []
    for t, c, v in events:
        if last.get(c) != v:
            kept.append((t, c, v))
            last[c] = v
    return kept
