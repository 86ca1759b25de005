"""Compose one clip of the realistic recipe (a :class:`RealPiece`).

Like :mod:`~instrec.synth.compose`, but with the textures of :mod:`~instrec.synth.textures`
(mostly solos, duos and sparse pieces), a SoundFont drawn per part from a
:class:`~instrec.synth.fonts.FontSet`, register windows in each instrument's played range
(:mod:`~instrec.synth.lines`) and a performance (:mod:`~instrec.synth.expression`):
dynamics, articulation, rubato, timing jitter, vibrato and tuning. Times are seconds;
notes end up tick-quantised, so the written MIDI holds exactly the notes of the piece.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from instrec.synth import drums as drum_gen
from instrec.synth import parts as gen
from instrec.synth.compose import RESOLUTION, Part, _crop, _draw_span, _filler_note
from instrec.synth.expression import Control, Rubato, controls, shape_notes
from instrec.synth.fonts import FontSet
from instrec.synth.gm import Voice
from instrec.synth.harmony import Harmony, make_harmony
from instrec.synth.lines import played_range, register, solo_line
from instrec.synth.parts import NoteEvent
from instrec.synth.smf import write_smf
from instrec.synth.songs import SONG_TEXTURES, song_gain
from instrec.synth.textures import DRUM_PROB, TEXTURES, Plan, plan_texture


@dataclass(frozen=True)
class RealPart:
    """A part with its SoundFont (index into the corpus's FontSet), controller events
    ``(time s, controller, value)`` and mix gain in dB."""

    part: Part
    font: int
    controls: tuple[Control, ...]
    gain_db: float


@dataclass(frozen=True)
class RealPiece:
    """A realistic clip: ``texture`` (solo/duo/sparse/ensemble), ``name`` (template or
    texture), style, harmony, parts, ``duration`` (s) and the clip's ``detune`` in cents."""

    texture: str
    name: str
    style: str
    harmony: Harmony
    parts: tuple[RealPart, ...]
    duration: float
    detune: float

    def midi_bytes(self, font_names: Sequence[str], only: int | None = None) -> bytes:
        """SMF bytes of all parts (or of part ``only``); each track names its font and preset
        in its instrument-name event (``"<font file> <bank>:<program> <voice>"``)."""
        tps = self.harmony.bpm / 60.0 * RESOLUTION

        def tick(t: float) -> int:
            return int(round(t * tps))

        chosen = self.parts if only is None else (self.parts[only],)
        parts = [(r.part.name, r.part.voice.bank, r.part.voice.program, r.part.is_drum,
                  [(n.pitch, tick(n.start), tick(n.end), n.velocity) for n in r.part.notes]) for r in chosen]
        extras = [(f"{font_names[r.font]} {r.part.voice.bank}:{r.part.voice.program} {r.part.voice.name}",
                   [(tick(t), c, v) for t, c, v in r.controls]) for r in chosen]
        return write_smf(self.harmony.bpm, self.harmony.beats_per_bar, RESOLUTION, tick(self.duration), parts, extras)


def _q(h: Harmony, t: float, duration: float) -> float:
    """``t`` rounded to the beat grid, inside the clip."""
    return float(np.clip(h.origin + round((t - h.origin) / h.beat) * h.beat, 0.0, duration))


def _span(rng: np.random.Generator, texture: str, plan: Plan, h: Harmony, duration: float) -> tuple[float, float]:
    """Active span (s): leads mostly play throughout; partners enter and leave."""
    if texture in ("ensemble", "band", "section"):
        return _draw_span(rng, h, duration)
    u = rng.random()
    whole = 0.75 if plan.lead else (0.6 if texture == "duo" else 0.35)
    if u < whole:
        return 0.0, duration
    if u < whole + (1 - whole) * 0.4:
        return _q(h, rng.uniform(0.5, 5.0), duration), duration
    if u < whole + (1 - whole) * 0.7:
        return 0.0, max(_q(h, rng.uniform(4.0, 9.5), duration), 1.0)
    if not plan.lead and texture == "sparse" and rng.random() < 0.3:
        s = _q(h, rng.uniform(0.0, duration - 1.0), duration)
        return s, s + rng.uniform(0.2, 0.7)  # brief: notes, but under the weak-label threshold
    s = _q(h, rng.uniform(0.5, 4.0), duration)
    return s, min(duration, s + rng.uniform(3.0, 8.0))


def _rests(rng: np.random.Generator, notes: list[NoteEvent], texture: str, lead: bool) -> list[NoteEvent]:
    """Sparse textures rest: drop the notes starting in one or two windows of 1-2.5 s."""
    if texture != "sparse" or lead or rng.random() < 0.4:
        return notes
    for _ in range(int(rng.integers(1, 3))):
        s = rng.uniform(0.0, 8.0)
        e = s + rng.uniform(1.0, 2.5)
        notes = [n for n in notes if not s <= n.start < e]
    return notes


def _notes(rng: np.random.Generator, plan: Plan, window: tuple[int, int], h: Harmony, style: str,
           duration: float) -> list[tuple[str, list[NoteEvent]]]:
    """Written notes of a planned part over the whole timeline, as ``(class, notes)`` pairs."""
    lo, hi = window
    base = float(rng.uniform(50, 110))
    if plan.role == "kit":
        d, c = drum_gen.drum_part(rng, h, duration, style, float(rng.uniform(70, 105)))
        return [("drums", d), ("cymbals", c)]
    if plan.role == "cymbals":
        return [("cymbals", drum_gen.cymbal_part(rng, h, duration, float(rng.uniform(70, 105))))]
    if plan.role == "orchestral":
        return [("cymbals", drum_gen.orchestral_cymbals(rng, duration, float(rng.uniform(75, 110))))]
    if plan.role == "solo":
        notes = solo_line(rng, h, lo, hi, duration, plan.option or "medium", base)
    elif plan.role == "bass":
        notes = gen.bass_line(rng, h, lo, hi, duration, plan.option or "root5", base)
    elif plan.role == "chords":
        notes = gen.chord_part(rng, h, lo, hi, duration, plan.option or "block", base * 0.85)
    elif plan.role == "counter":
        notes = gen.counter_line(rng, h, lo, hi, duration, base)
    else:
        notes = gen.melody(rng, h, lo, hi, duration, plan.option or "medium", base)
    return [(plan.cls, notes)]


def compose_realistic(rng: np.random.Generator, fonts: FontSet, duration: float = 10.0,
                      textures: dict[str, float] | None = None, drum_prob: dict[str, float] | None = None,
                      cymbal_prob: dict[str, float] | None = None,
                      cymbal_rng: np.random.Generator | None = None) -> RealPiece:
    """Compose one realistic clip with the fonts of ``fonts`` (see the module docstring).

    ``cymbal_prob``: per thin texture, the probability of orchestral cymbals with no kit
    (:func:`instrec.synth.drums.orchestral_cymbals`), drawn from ``cymbal_rng``, a stream of
    their own: a solo becomes cymbals alone, a duo or sparse texture gains a cymbal part, and
    nothing else of the clip changes."""
    for _ in range(20):  # a plan whose parts all fell silent is redrawn (rare)
        piece = _compose_once(rng, fonts, duration, textures or TEXTURES, drum_prob or DRUM_PROB, cymbal_prob,
                              cymbal_rng)
        if piece.parts:
            return piece
    raise RuntimeError("could not compose a piece with sounding parts")  # pragma: no cover


def _compose_once(rng: np.random.Generator, fonts: FontSet, duration: float, textures: dict[str, float],
                  drum_prob: dict[str, float], cymbal_prob: dict[str, float] | None = None,
                  cymbal_rng: np.random.Generator | None = None) -> RealPiece:
    texture, name, style, plans = plan_texture(rng, fonts.renderable, textures, drum_prob)
    h = make_harmony(rng, style, duration)
    tick = 60.0 / (h.bpm * RESOLUTION)
    steady = style == "electronic" or any(p.role == "kit" for p in plans)  # a drummer keeps time
    rubato = Rubato.draw(rng, duration, 0.25 if steady else 1.0)
    jitter = 0.0 if style == "electronic" else float(rng.uniform(0.004, 0.02))
    detune = float(np.clip(rng.normal(0.0, 8.0), -25.0, 25.0))  # the clip's reference pitch, cents
    spans = [_span(rng, texture, p, h, duration) for p in plans]
    if not any(e - s >= 4.0 for s, e in spans):
        spans[0] = (0.0, duration)
    chosen: list[tuple[int, Voice, tuple[int, int]]] = []
    out: list[RealPart] = []
    ctx = _Context(texture, style, h, duration, rubato, tick, jitter, detune)
    for plan, span in zip(plans, spans):
        if plan.share is not None:  # the same player: same font and voice, the line above the chords
            font, voice, (_, phi) = chosen[plan.share]
            top = played_range(plan.cls, voice)[1]
            window = (min(phi - 4, top - 12), min(top, phi + 20))
        else:
            font, voice = fonts.pick(rng, plan.cls, plan.voices)
            window = register(rng, plan.cls, voice, plan.role)
            if plan.role == "chords" and any(p.share is not None for p in plans):
                window = (window[0], min(window[1], window[0] + 20))
        chosen.append((font, voice, window))
        out += _parts(rng, ctx, plan, span, font, voice, window)
    p = (cymbal_prob or {}).get(texture, 0.0)
    if cymbal_rng is not None and p and "cymbals" in fonts.renderable and cymbal_rng.random() < p:
        # Drawn from a stream of its own, so every other clip of the corpus, and every other
        # part of this one, is what it would be without them.
        solo = texture == "solo"
        plan = Plan("cymbals", "orchestral", lead=solo)
        font, voice = fonts.pick(cymbal_rng, "cymbals")
        span = (0.0, duration) if solo else _span(cymbal_rng, texture, plan, h, duration)
        cymbals = _parts(cymbal_rng, ctx, plan, span, font, voice, (0, 127))
        if cymbals:
            out = cymbals if solo else out + cymbals
    return RealPiece(texture, name, style, h, tuple(out), duration, detune)


@dataclass(frozen=True)
class _Context:
    """What every part of one clip shares: texture, style, harmony, duration (s), rubato, MIDI
    tick (s), timing jitter (s) and the clip's detune (cents)."""

    texture: str
    style: str
    h: Harmony
    duration: float
    rubato: Rubato
    tick: float
    jitter: float
    detune: float


def _parts(rng: np.random.Generator, ctx: _Context, plan: Plan, span: tuple[float, float], font: int, voice: Voice,
           window: tuple[int, int]) -> list[RealPart]:
    """The sounding parts of one planned part: its notes shaped, rested, cropped to ``span`` and
    given controllers and a mix gain (a kit gives two parts: drums and cymbals)."""
    is_drum = plan.role in ("kit", "cymbals", "orchestral")
    chordal = plan.role == "chords"
    if ctx.texture in SONG_TEXTURES:
        gain = song_gain(rng, plan.role, plan.lead)
    else:
        gain = 0.0 if plan.lead else float(rng.uniform(-9.0, -2.0))
    out = []
    for cls, written in _notes(rng, plan, window, ctx.h, ctx.style, ctx.duration):
        played, _ = shape_notes(rng, written, ctx.duration, is_drum, chordal)
        played = _rests(rng, ctx.rubato.notes(played), ctx.texture, plan.lead)
        kept = _crop(rng, played, span, ctx.duration, ctx.tick, ctx.jitter, ring_out=is_drum)
        if not kept and span[1] - span[0] < 1.0 and cls != "cymbals":
            kept = _crop(rng, [_filler_note(ctx.h, voice, cls, span)], span, ctx.duration, ctx.tick, 0.0,
                         ring_out=is_drum)
        if not kept:
            continue
        part = Part(cls, plan.role, voice, is_drum, span, tuple(kept))
        ctrl = () if is_drum else tuple(controls(rng, cls, part.notes, ctx.detune + rng.normal(0.0, 3.0), chordal))
        out.append(RealPart(part, font, ctrl, gain))
    return out
