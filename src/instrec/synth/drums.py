"""Drum-kit parts on the GM percussion channel.

A kit part produces two note lists: ``drums`` (kick, snare, toms, hi-hats) and ``cymbals``
(crash, ride, splash, china), because the two are separate OpenMIC classes (hi-hats count
as drums, see :mod:`instrec.synth.gm`). Patterns are written on a sixteenth-note grid
per bar (16 steps in 4/4, 12 in 3/4); times are seconds, note lengths follow the typical
decay of each piece of the kit so that strong labels follow the sound.
"""
from __future__ import annotations

import numpy as np

from instrec.synth.gm import CYMBAL_NOTES, DRUM_NOTES
from instrec.synth.harmony import Harmony
from instrec.synth.parts import NoteEvent, velocity

#: Groove per style: kit piece -> sixteenth steps within a 4/4 bar.
GROOVES: dict[str, dict[str, tuple[int, ...]]] = {
    "rock": {"kick": (0, 8, 10), "snare": (4, 12), "hh_closed": (0, 2, 4, 6, 8, 10, 12, 14)},
    "ballad": {"kick": (0, 7, 8), "rim": (4, 12), "hh_closed": (0, 4, 8, 12)},
    "jazz": {"ride": (0, 4, 6, 8, 12, 14), "hh_pedal": (4, 12), "kick": (0,), "snare": ()},
    "electronic": {"kick": (0, 4, 8, 12), "clap": (4, 12), "hh_open": (2, 6, 10, 14),
                   "hh_closed": (0, 1, 3, 4, 5, 7, 8, 9, 11, 12, 13, 15)},
    "latin": {"kick": (0, 3, 8, 11), "rim": (0, 3, 6, 10, 12), "hh_closed": (0, 2, 4, 6, 8, 10, 12, 14)},
    "folk": {"kick": (0, 8), "snare": (4, 12), "hh_closed": (0, 4, 8, 12)},
    "reggae": {"kick": (8,), "rim": (8,), "hh_closed": (0, 2, 4, 6, 8, 10, 12, 14)},
}
#: 3/4 groove (12 steps).
WALTZ = {"kick": (0,), "snare": (4, 8), "hh_closed": (0, 4, 8)}

_STYLE_GROOVE = {"classical": "rock", "hymn": "ballad", "free": "rock", "waltz": "rock"}
_RIDE_PROB = {"rock": 0.25, "ballad": 0.2, "latin": 0.4, "folk": 0.1, "jazz": 1.0, "reggae": 0.1, "electronic": 0.0}
_CRASH_START_PROB = {"jazz": 0.2, "electronic": 0.4, "reggae": 0.2}


def _step_time(h: Harmony, bar_start: float, step: int) -> float:
    t = bar_start + step * h.beat / 4.0
    if h.swing and step % 4 == 2:  # swung eighth: on the last triplet of the beat
        t += h.beat / 6.0
    return t


#: Velocity boost of cymbal hits: the GM cymbal samples are quiet next to the drums.
CYMBAL_BOOST = 15.0


def _hit(rng: np.random.Generator, table: dict, piece: str, t: float, base_vel: float,
         accent: float = 0.0) -> NoteEvent:
    pitch, length = table[piece]
    boost = CYMBAL_BOOST if table is CYMBAL_NOTES else 0.0
    return NoteEvent(pitch, float(t), float(t + length), velocity(rng, base_vel, accent + boost))


def drum_part(rng: np.random.Generator, h: Harmony, duration: float, style: str,
              base_vel: float) -> tuple[list[NoteEvent], list[NoteEvent]]:
    """A kit part over ``[h.origin, duration)`` s for ``style``: returns ``(drums, cymbals)`` notes."""
    groove_name = _STYLE_GROOVE.get(style, style)
    groove = dict(WALTZ if h.beats_per_bar == 3 else GROOVES.get(groove_name, GROOVES["rock"]))
    use_ride = rng.random() < _RIDE_PROB.get(groove_name, 0.2)
    if use_ride and "hh_closed" in groove:  # ride on the beats (a ride rings for seconds)
        groove.pop("hh_closed")
        groove["ride"] = tuple(range(0, 4 * h.beats_per_bar, 4))
    crash_every = int(rng.choice([2, 4, 8]))
    fill_prob = 0.0 if groove_name == "electronic" else 0.25
    drums: list[NoteEvent] = []
    cymbals: list[NoteEvent] = []
    n_steps = 4 * h.beats_per_bar
    bar_starts = h.origin + h.bar * np.arange(int(np.ceil((duration - h.origin) / h.bar)))
    for b, bar_start in enumerate(bar_starts):
        fill = b > 0 and rng.random() < fill_prob
        fill_from = n_steps - 4 if fill else n_steps
        for piece, steps in groove.items():
            table = CYMBAL_NOTES if piece in CYMBAL_NOTES else DRUM_NOTES
            target = cymbals if table is CYMBAL_NOTES else drums
            for s in steps:
                if s >= fill_from:
                    continue
                accent = 6 if s % 4 == 0 else -6
                target.append(_hit(rng, table, piece, _step_time(h, bar_start, s), base_vel, accent))
        if groove_name == "jazz":  # ghost-note comping on the snare
            for s in range(2, fill_from, 2):
                if rng.random() < 0.15:
                    drums.append(_hit(rng, DRUM_NOTES, "snare", _step_time(h, bar_start, s), base_vel, -25))
        if fill:
            toms = ("snare", "tom_high", "tom_mid", "tom_low", "tom_floor")
            for k, s in enumerate(range(fill_from, n_steps)):
                piece = toms[min(k + int(rng.integers(0, 2)), len(toms) - 1)]
                drums.append(_hit(rng, DRUM_NOTES, piece, _step_time(h, bar_start, s), base_vel, 4))
        downbeat = float(bar_start)
        if (b == 0 and rng.random() < _CRASH_START_PROB.get(groove_name, 0.5)) or \
                (b > 0 and (b % crash_every == 0 or fill) and rng.random() < 0.6):
            piece = str(rng.choice(["crash", "crash", "crash2", "splash", "china"]))
            cymbals.append(_hit(rng, CYMBAL_NOTES, piece, downbeat, base_vel, 10))
            drums.append(_hit(rng, DRUM_NOTES, "kick", downbeat, base_vel, 10))
    drums = [n for n in drums if n.start < duration]
    cymbals = [n for n in cymbals if n.start < duration]
    return drums, cymbals


def cymbal_part(rng: np.random.Generator, h: Harmony, duration: float, base_vel: float) -> list[NoteEvent]:
    """Cymbals alone (orchestral style): a few crashes/swells on bar lines, or a ride pattern."""
    notes: list[NoteEvent] = []
    if rng.random() < 0.5:
        for t in h.beat_times(duration, 1):
            notes.append(_hit(rng, CYMBAL_NOTES, "ride", t, base_vel, 0))
    else:
        for k, t in enumerate(t for t in h.beat_times(duration, 1)[:: h.beats_per_bar] if t >= 0.0):
            if k == 0 or rng.random() < 0.6:
                notes.append(_hit(rng, CYMBAL_NOTES, str(rng.choice(["crash", "crash2", "splash"])), t, base_vel, 8))
    return notes


#: Strokes per second of a cymbal roll (soft sticks or mallets on a suspended cymbal).
ROLL_RATE = (10.0, 16.0)


def orchestral_cymbals(rng: np.random.Generator, duration: float, base_vel: float) -> list[NoteEvent]:
    """Cymbals as an orchestra plays them, with no kit around them: a roll that swells and fades
    (a suspended cymbal under soft mallets), clashes left to ring (two crash cymbals struck
    together, a few per clip with silence between), or a roll swelling into a clash. Free
    time: an orchestral roll or clash follows the conductor, not the beat grid."""
    kind = str(rng.choice(["roll", "clashes", "swell"]))
    notes: list[NoteEvent] = []
    if kind in ("roll", "swell"):
        start = float(rng.uniform(0.0, 2.0))
        end = min(duration, start + float(rng.uniform(3.0, 8.0)))
        piece = str(rng.choice(["ride", "ride2", "crash", "crash2"]))
        rate = float(rng.uniform(*ROLL_RATE))
        t = start
        while t < end:
            x = (t - start) / max(end - start, 1e-6)  # 0 -> 1 over the roll
            swell = x if kind == "swell" else np.sin(np.pi * x)  # cresc. only, or cresc.-decresc.
            notes.append(_hit(rng, CYMBAL_NOTES, piece, t, base_vel - 45.0 + 50.0 * float(swell), -CYMBAL_BOOST))
            t += float(rng.uniform(0.85, 1.15)) / rate
        if kind == "swell" and end < duration:
            notes += [_hit(rng, CYMBAL_NOTES, "crash", end, base_vel, 10), _hit(rng, CYMBAL_NOTES, "crash2", end, base_vel, 10)]
        return notes
    t = float(rng.uniform(0.0, 2.0))
    while t < duration:
        notes += [_hit(rng, CYMBAL_NOTES, "crash", t, base_vel, 10), _hit(rng, CYMBAL_NOTES, "crash2", t, base_vel, 10)]
        t += float(rng.uniform(2.0, 5.0))  # let it ring, then silence
    return notes
