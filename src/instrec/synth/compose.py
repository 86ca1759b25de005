"""Compose one multi-instrument piece (a :class:`Piece`) and write it as MIDI bytes.

A piece lasts ``duration`` seconds (10 s by default). It has a tempo, key and chord
progression (:mod:`~instrec.synth.harmony`), 1-6 instrument parts drawn from an
ensemble template (:mod:`~instrec.synth.ensembles`), and each part plays only inside
its active span: most parts play the whole clip, some enter late, leave early or play a
middle section, and some play for well under a second (notes exist but the class is
weakly "absent"). Note times are quantised to MIDI ticks, so the written file holds
exactly the notes of the :class:`Piece`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pretty_midi

from instrec.synth import drums as drum_gen
from instrec.synth import parts as gen
from instrec.synth.ensembles import PartPlan, plan_parts
from instrec.synth.gm import Voice, available_voices, renderable_classes
from instrec.synth.harmony import Harmony, make_harmony, nearest_pitch
from instrec.synth.parts import NoteEvent
from instrec.synth.smf import write_smf

#: MIDI resolution (ticks per quarter note) of written files.
RESOLUTION = 480
_BASE_VELOCITY = {"melody": (85, 110), "counter": (65, 90), "chords": (55, 85), "bass": (80, 105),
                  "kit": (75, 105), "cymbals": (70, 100)}


@dataclass(frozen=True)
class Part:
    """One MIDI instrument of a piece: its OpenMIC class, role, GM voice, active span
    ``(start, end)`` in seconds and notes (seconds, tick-quantised)."""

    cls: str
    role: str
    voice: Voice
    is_drum: bool
    span: tuple[float, float]
    notes: tuple[NoteEvent, ...]

    @property
    def name(self) -> str:
        """MIDI track name, ``"<class>:<role>"``; the class is what labels are read from."""
        return f"{self.cls}:{self.role}"


@dataclass(frozen=True)
class Piece:
    """A composed clip: ensemble name, style, harmony, parts and ``duration`` in seconds."""

    ensemble: str
    style: str
    harmony: Harmony
    parts: tuple[Part, ...]
    duration: float

    def to_pretty_midi(self) -> pretty_midi.PrettyMIDI:
        """The piece as a PrettyMIDI object (one instrument per part, drums on channel 10)."""
        pm = pretty_midi.PrettyMIDI(resolution=RESOLUTION, initial_tempo=self.harmony.bpm)
        for part in self.parts:
            inst = pretty_midi.Instrument(program=part.voice.program, is_drum=part.is_drum, name=part.name)
            inst.notes = [pretty_midi.Note(velocity=n.velocity, pitch=n.pitch, start=n.start, end=n.end)
                          for n in part.notes]
            pm.instruments.append(inst)
        return pm

    @property
    def presets(self) -> frozenset[tuple[int, int]]:
        """The ``(bank, program)`` SoundFont presets the piece plays (kits: bank 128)."""
        return frozenset((p.voice.bank, p.voice.program) for p in self.parts)

    def midi_bytes(self) -> bytes:
        """Standard MIDI file bytes: bank select (CC 0) before each non-zero-bank program
        change, and every track ending at ``duration`` so renderings last exactly that."""
        ticks_per_second = self.harmony.bpm / 60.0 * RESOLUTION

        def tick(t: float) -> int:
            return int(round(t * ticks_per_second))

        parts = [(p.name, p.voice.bank, p.voice.program, p.is_drum,
                  [(n.pitch, tick(n.start), tick(n.end), n.velocity) for n in p.notes]) for p in self.parts]
        return write_smf(self.harmony.bpm, self.harmony.beats_per_bar, RESOLUTION, tick(self.duration), parts)


def _pick_voice(rng: np.random.Generator, plan: PartPlan, presets: frozenset[tuple[int, int]]) -> Voice:
    voices = available_voices(plan.cls, presets)
    preferred = [v for v in voices if v.name in plan.voices]
    pool = preferred or list(voices)
    w = np.array([v.weight for v in pool])
    return pool[int(rng.choice(len(pool), p=w / w.sum()))]


def _draw_span(rng: np.random.Generator, h: Harmony, duration: float) -> tuple[float, float]:
    """Active span of a part (seconds): whole clip, late entry, early exit, middle or brief."""
    def q(t: float) -> float:
        return float(np.clip(h.origin + round((t - h.origin) / h.beat) * h.beat, 0.0, duration))

    u = rng.random()
    if u < 0.55:
        return 0.0, duration
    if u < 0.70:
        return q(rng.uniform(1.0, 7.5)), duration
    if u < 0.82:
        return 0.0, max(q(rng.uniform(2.5, 9.0)), 1.0)
    if u < 0.92:
        s = q(rng.uniform(0.5, 5.0))
        return s, min(duration, s + rng.uniform(1.5, 5.0))
    s = q(rng.uniform(0.0, duration - 1.0))
    return s, s + rng.uniform(0.2, 0.7)  # brief: sounds for less than the 1 s weak-label threshold


def _generate(rng: np.random.Generator, plan: PartPlan, voice: Voice, h: Harmony, style: str,
              duration: float) -> list[tuple[str, list[NoteEvent]]]:
    """Notes over the whole timeline for one planned part, as ``(class, notes)`` pairs."""
    lo, hi = _BASE_VELOCITY.get(plan.role, (70, 100))
    base = rng.uniform(lo, hi)
    if plan.role == "kit":
        drum_notes, cymbal_notes = drum_gen.drum_part(rng, h, duration, style, base)
        return [("drums", drum_notes), ("cymbals", cymbal_notes)]
    if plan.role == "cymbals":
        return [("cymbals", drum_gen.cymbal_part(rng, h, duration, base))]
    if plan.role == "bass":
        notes = gen.bass_line(rng, h, voice.low, voice.high, duration, plan.option or "root5", base)
    elif plan.role == "chords":
        notes = gen.chord_part(rng, h, voice.low, voice.high, duration, plan.option or "block", base)
    elif plan.role == "counter":
        notes = gen.counter_line(rng, h, voice.low, voice.high, duration, base)
    else:
        notes = gen.melody(rng, h, voice.low, voice.high, duration, plan.option or "medium", base)
    return [(plan.cls, notes)]


def _crop(rng: np.random.Generator, notes: list[NoteEvent], span: tuple[float, float], duration: float,
          tick: float, jitter: float, ring_out: bool = False) -> list[NoteEvent]:
    """Notes starting inside ``span``, humanised by ``jitter`` s, tick-quantised, without
    same-pitch overlaps. Notes are cut at the span's end unless ``ring_out`` (percussion:
    a hit keeps decaying after the part stops, and its note length is that decay)."""
    s, e = span
    e = min(e, duration - tick)
    out = []
    for n in notes:
        start = n.start + (rng.normal(0.0, jitter) if jitter else 0.0)
        if start < s and not (s == 0.0 and n.end > 0.05):
            continue
        start = max(start, s)
        end = min(n.end, duration - tick if ring_out else e)
        if start >= e or end - start < 0.03:
            continue
        out.append(NoteEvent(n.pitch, round(start / tick) * tick, round(end / tick) * tick, n.velocity))
    out.sort(key=lambda n: (n.pitch, n.start))
    for i in range(len(out) - 1):  # a repeated pitch cuts the previous note off
        a, b = out[i], out[i + 1]
        if a.pitch == b.pitch and a.end > b.start:
            out[i] = a._replace(end=b.start)
    out = [n for n in out if n.end - n.start >= tick]
    out.sort(key=lambda n: (n.start, n.pitch))
    return out


def compose_piece(rng: np.random.Generator, presets: frozenset[tuple[int, int]], duration: float = 10.0,
                  max_parts: int = 6) -> Piece:
    """Compose a piece using only the SoundFont ``presets`` (``(bank, program)`` pairs)."""
    renderable = renderable_classes(presets)
    if not renderable:
        raise ValueError("the SoundFont has no preset for any instrument class")
    for _ in range(20):  # a plan whose parts all fell silent is redrawn (rare)
        piece = _compose_once(rng, presets, renderable, duration, max_parts)
        if piece.parts:
            return piece
    raise RuntimeError("could not compose a piece with sounding parts")  # pragma: no cover


def _compose_once(rng: np.random.Generator, presets: frozenset[tuple[int, int]], renderable: tuple[str, ...],
                  duration: float, max_parts: int) -> Piece:
    ensemble, style, plans = plan_parts(rng, renderable, max_parts)
    h = make_harmony(rng, style, duration)
    tick = 60.0 / (h.bpm * RESOLUTION)
    jitter = 0.0 if style == "electronic" else 0.008
    spans = [_draw_span(rng, h, duration) for _ in plans]
    if not any(e - s >= 4.0 for s, e in spans):
        spans[0] = (0.0, duration)
    parts: list[Part] = []
    for plan, span in zip(plans, spans):
        voice = _pick_voice(rng, plan, presets)
        is_drum = plan.role in ("kit", "cymbals")
        for cls, notes in _generate(rng, plan, voice, h, style, duration):
            kept = _crop(rng, notes, span, duration, tick, jitter, ring_out=is_drum)
            if not kept and span[1] - span[0] < 1.0 and cls != "cymbals":
                kept = _crop(rng, [_filler_note(h, voice, cls, span)], span, duration, tick, 0.0, ring_out=is_drum)
            if kept:
                parts.append(Part(cls, plan.role, voice, is_drum, span, tuple(kept)))
    return Piece(ensemble=ensemble, style=style, harmony=h, parts=tuple(parts), duration=duration)


def _filler_note(h: Harmony, voice: Voice, cls: str, span: tuple[float, float]) -> NoteEvent:
    """A single note over a brief span that happened to fall on a rest."""
    if cls == "drums":
        return NoteEvent(38, span[0], span[0] + 0.2, 90)
    pitch = nearest_pitch(h.chord_at(span[0]).pcs, (voice.low + voice.high) / 2, voice.low, voice.high)
    return NoteEvent(pitch, span[0], span[1], 80)
