"""Ensemble templates: which instruments play together, in which role and style.

A template lists members with an inclusion probability; roles are

* ``kit``: drum kit (drums + cymbals on the percussion channel); ``cymbals``: cymbals alone;
* ``bass``, ``chords``, ``melody``, ``counter``: melodic roles, with ``options`` naming
  the bass/chord pattern or the melody density (one is drawn per piece);
* ``voices`` (optional) restricts the GM voices by name, e.g. a jazz combo's acoustic bass.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Member:
    """One instrument slot of an ensemble: class ``cls``, ``role``, pattern ``options``,
    inclusion probability ``p`` and optional allowed GM voice names."""

    cls: str
    role: str
    options: tuple[str, ...] = ()
    p: float = 1.0
    voices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ensemble:
    """A template: ``name``, musical ``style`` (drives tempo and grooves), sampling ``weight``."""

    name: str
    style: str
    weight: float
    members: tuple[Member, ...]


M = Member
_ROCK_GTR = ("Overdriven Guitar", "Distortion Guitar", "Clean Guitar", "Steel Guitar", "12-String Guitar")
_ACOUSTIC = ("Nylon Guitar", "Steel Guitar", "12-String Guitar")
_ROCK_KITS = ("Standard Kit", "Room Kit", "Power Kit")
_JAZZ_KITS = ("Jazz Kit", "Brush Kit", "Standard Kit", "Room Kit")
_SOFT_KITS = ("Standard Kit", "Room Kit", "Brush Kit")

ENSEMBLES: tuple[Ensemble, ...] = (
    Ensemble("rock band", "rock", 3.0, (
        M("drums", "kit", voices=_ROCK_KITS),
        M("bass", "bass", ("eighths", "root5"), voices=("Fingered Bass", "Picked Bass")),
        M("guitar", "chords", ("strum", "block"), voices=_ROCK_GTR),
        M("guitar", "melody", ("medium", "high"), 0.4, ("Overdriven Guitar", "Distortion Guitar")),
        M("voice", "melody", ("medium",), 0.35),
        M("organ", "chords", ("pad", "block"), 0.25, ("Rock Organ", "Drawbar Organ")),
        M("piano", "chords", ("block",), 0.15))),
    Ensemble("jazz combo", "jazz", 2.5, (
        M("drums", "kit", p=0.9, voices=_JAZZ_KITS), M("bass", "bass", ("walking",), voices=("Acoustic Bass",)),
        M("piano", "chords", ("comp",), 0.8), M("saxophone", "melody", ("high", "medium"), 0.7),
        M("trumpet", "melody", ("medium",), 0.45), M("trombone", "counter", p=0.3),
        M("guitar", "chords", ("comp",), 0.3, ("Jazz Guitar",)),
        M("mallet_percussion", "melody", ("medium",), 0.25, ("Vibraphone",)))),
    Ensemble("string quartet", "classical", 2.0, (
        M("violin", "melody", ("medium", "high")), M("violin", "counter", p=0.85),
        M("cello", "bass", ("sustain", "root5")), M("cello", "counter", p=0.3))),
    Ensemble("brass section", "rock", 1.5, (
        M("trumpet", "melody", ("medium", "high")), M("trumpet", "counter", p=0.5),
        M("trombone", "counter", p=0.8), M("saxophone", "counter", p=0.5),
        M("drums", "kit", p=0.5, voices=_ROCK_KITS), M("bass", "bass", ("root5", "syncopated"), 0.5))),
    Ensemble("folk band", "folk", 2.5, (
        M("guitar", "chords", ("strum", "arpeggio"), voices=_ACOUSTIC),
        M("banjo", "chords", ("arpeggio",), 0.45), M("mandolin", "melody", ("high", "medium"), 0.4),
        M("ukulele", "chords", ("strum",), 0.3), M("accordion", "melody", ("medium",), 0.35),
        M("violin", "melody", ("high", "medium"), 0.45, ("Violin",)), M("voice", "melody", ("medium",), 0.35),
        M("bass", "bass", ("root5",), 0.4, ("Acoustic Bass",)), M("drums", "kit", p=0.2, voices=_SOFT_KITS))),
    Ensemble("electronic", "electronic", 2.5, (
        M("drums", "kit", voices=("Electronic Kit", "TR-808 Kit", "Standard Kit")),
        M("bass", "bass", ("eighths", "syncopated"), 0.9, ("Synth Bass 1", "Synth Bass 2", "Fingered Bass")),
        M("synthesizer", "chords", ("pad", "offbeat", "arpeggio"), 0.8),
        M("synthesizer", "melody", ("high", "medium"), 0.6),
        M("piano", "chords", ("block",), 0.2, ("Electric Piano 1", "Electric Piano 2")),
        M("voice", "melody", ("low", "medium"), 0.2))),
    Ensemble("piano trio", "jazz", 1.5, (
        M("piano", "chords", ("comp", "block")), M("piano", "melody", ("medium", "high"), 0.7),
        M("bass", "bass", ("walking", "sustain"), voices=("Acoustic Bass", "Fretless Bass")),
        M("drums", "kit", voices=_JAZZ_KITS))),
    Ensemble("choir with organ", "hymn", 1.5, (
        M("voice", "chords", ("pad",)), M("voice", "melody", ("low", "medium"), 0.6),
        M("organ", "chords", ("pad", "block"), voices=("Church Organ", "Church Organ 2", "Reed Organ")),
        M("organ", "bass", ("sustain",), 0.5, ("Church Organ", "Church Organ 2")))),
    Ensemble("wind ensemble", "classical", 1.2, (
        M("flute", "melody", ("medium", "high")), M("clarinet", "counter", p=0.8),
        M("piano", "chords", ("arpeggio", "block"), 0.5), M("cello", "bass", ("sustain",), 0.4),
        M("saxophone", "counter", p=0.2))),
    Ensemble("pop ballad", "ballad", 2.0, (
        M("piano", "chords", ("arpeggio", "block", "pad")), M("voice", "melody", ("medium", "low"), 0.75),
        M("bass", "bass", ("sustain", "root5"), 0.7), M("drums", "kit", p=0.6, voices=_SOFT_KITS),
        M("violin", "counter", p=0.35), M("synthesizer", "chords", ("pad",), 0.3),
        M("guitar", "chords", ("arpeggio",), 0.3, _ACOUSTIC))),
    Ensemble("latin", "latin", 1.2, (
        M("mallet_percussion", "melody", ("high", "medium"), 0.7, ("Marimba", "Vibraphone", "Xylophone")),
        M("guitar", "chords", ("comp", "arpeggio"), 0.8, ("Nylon Guitar",)), M("bass", "bass", ("syncopated",), 0.8),
        M("drums", "kit", p=0.8, voices=_SOFT_KITS), M("trumpet", "melody", ("medium",), 0.35),
        M("piano", "chords", ("comp",), 0.3),
        M("flute", "melody", ("high",), 0.3))),
    Ensemble("island", "reggae", 1.0, (
        M("ukulele", "chords", ("strum", "offbeat"), 0.6), M("guitar", "chords", ("offbeat",), 0.5),
        M("bass", "bass", ("syncopated", "root5")), M("drums", "kit", p=0.9, voices=_ROCK_KITS),
        M("organ", "chords", ("offbeat",), 0.5, ("Drawbar Organ", "Percussive Organ")),
        M("voice", "melody", ("medium",), 0.4),
        M("mallet_percussion", "melody", ("medium",), 0.2, ("Glockenspiel", "Celesta")))),
    Ensemble("musette", "waltz", 1.0, (
        M("accordion", "melody", ("high", "medium")), M("violin", "counter", p=0.5),
        M("piano", "chords", ("block",), 0.6), M("bass", "bass", ("root5",), 0.6, ("Acoustic Bass",)),
        M("guitar", "chords", ("block",), 0.3, ("Nylon Guitar",)), M("mandolin", "chords", ("arpeggio",), 0.3),
        M("clarinet", "counter", p=0.2))),
    Ensemble("duo", "free", 1.5, (M("*", "melody", ("medium", "high")),
                                  M("*", "chords", ("arpeggio", "block", "pad", "strum")))),
    Ensemble("solo", "free", 1.5, (M("*", "solo"),)),
    Ensemble("random mix", "free", 3.0, ()),
)

#: Default role of a class in solos and random mixes.
DEFAULT_ROLE: dict[str, tuple[str, tuple[str, ...]]] = {
    "drums": ("kit", ()), "cymbals": ("cymbals", ()), "bass": ("bass", ("root5", "walking", "eighths", "sustain")),
    "piano": ("chords", ("arpeggio", "block", "comp")), "organ": ("chords", ("pad", "block")),
    "guitar": ("chords", ("strum", "arpeggio", "block")), "ukulele": ("chords", ("strum",)),
    "banjo": ("chords", ("arpeggio",)), "voice": ("melody", ("low", "medium")),
    "synthesizer": ("chords", ("pad", "arpeggio")),
}


@dataclass(frozen=True)
class PartPlan:
    """A chosen part: class, role, the drawn pattern/density option, and allowed voice names."""

    cls: str
    role: str
    option: str
    voices: tuple[str, ...]


def _default_member(rng: np.random.Generator, cls: str) -> PartPlan:
    """The default part of ``cls`` (melodic classes sometimes play a counter-line instead)."""
    role, options = DEFAULT_ROLE.get(cls, ("melody", ("medium", "high", "low")))
    if role == "melody" and rng.random() < 0.25:
        role, options = "counter", ()
    return PartPlan(cls, role, str(rng.choice(options)) if options else "", ())


def plan_parts(rng: np.random.Generator, renderable: tuple[str, ...],
               max_parts: int = 6) -> tuple[str, str, list[PartPlan]]:
    """Draw an ensemble and its parts among the ``renderable`` classes.

    Returns ``(ensemble name, style, parts)`` with 1 to ``max_parts`` parts; members whose
    class is not renderable are dropped (a template left empty falls back to a random mix).
    """
    weights = np.array([e.weight for e in ENSEMBLES])
    ens = ENSEMBLES[int(rng.choice(len(ENSEMBLES), p=weights / weights.sum()))]
    melodic = [c for c in renderable if c not in ("drums", "cymbals")]
    parts: list[PartPlan] = []
    if ens.name == "solo":
        parts.append(_default_member(rng, str(rng.choice(renderable))))
    elif ens.name == "random mix":
        k = int(rng.integers(1, min(max_parts, len(renderable)) + 1))
        for cls in rng.choice(renderable, size=k, replace=False):
            parts.append(_default_member(rng, str(cls)))
    else:
        for m in ens.members:
            if rng.random() >= m.p:
                continue
            cls = m.cls
            if cls == "*":
                if not melodic:
                    continue
                cls = str(rng.choice(melodic))
            if cls not in renderable:
                continue
            option = str(rng.choice(m.options)) if m.options else ""
            parts.append(PartPlan(cls, m.role, option, m.voices))
    if not parts:
        return plan_parts_fallback(rng, renderable, max_parts)
    if len(parts) > max_parts:  # keep the first (core) members, drop random extras
        keep = sorted(rng.choice(np.arange(1, len(parts)), size=max_parts - 1, replace=False).tolist())
        parts = [parts[0]] + [parts[i] for i in keep]
    return ens.name, ens.style, parts


def plan_parts_fallback(rng: np.random.Generator, renderable: tuple[str, ...],
                        max_parts: int) -> tuple[str, str, list[PartPlan]]:
    """A one- or two-part random mix, used when a template has no renderable member left."""
    k = int(rng.integers(1, min(2, max_parts, len(renderable)) + 1))
    return "random mix", "free", [_default_member(rng, str(c)) for c in rng.choice(renderable, size=k, replace=False)]

