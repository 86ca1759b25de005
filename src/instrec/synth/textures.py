"""Textures of the realistic recipe: who plays in a clip, in which role.

Catalogue music and solo recordings are mostly thin: a :data:`TEXTURES` draw gives a
*solo* (one instrument; a chordal one may play its own accompaniment), a *duo* (a lead and
an accompanist, or two lines), a *sparse* texture (2-3 parts entering and resting) or,
in a minority of clips, a dense *ensemble* from the templates of
:mod:`~instrec.synth.ensembles`; weights may also name the song textures *band* and
*section* of :mod:`~instrec.synth.songs`. Drums join only a minority of the thin textures.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from instrec.synth.ensembles import plan_parts
from instrec.synth.lines import DENSITIES
from instrec.synth.songs import plan_band, plan_section

#: Texture weights (relative) of the realistic recipe.
TEXTURES: dict[str, float] = {"solo": 0.40, "duo": 0.25, "sparse": 0.20, "ensemble": 0.15}
#: Probability that drums join a texture (ensembles: as their templates say).
DRUM_PROB: dict[str, float] = {"solo": 0.03, "duo": 0.06, "sparse": 0.15}
#: Relative weight of a line (non-chordal) instrument as the lead of a thin texture.
LINE_LEAD_WEIGHT = 2.0
#: Classes that can accompany (play chords) and their chord patterns.
CHORDAL: dict[str, tuple[str, ...]] = {
    "piano": ("arpeggio", "block", "comp", "pad"), "guitar": ("arpeggio", "strum", "block", "comp"),
    "organ": ("pad", "block"), "accordion": ("block", "offbeat"), "ukulele": ("strum", "arpeggio"),
    "banjo": ("arpeggio",), "mandolin": ("arpeggio", "strum"), "mallet_percussion": ("arpeggio", "block"),
    "synthesizer": ("pad", "arpeggio", "offbeat"),
}
#: Typical styles per lead class (drives the tempo range and the harmony).
STYLES: dict[str, tuple[str, ...]] = {
    "violin": ("classical", "folk", "waltz", "free"), "cello": ("classical", "ballad", "free"),
    "flute": ("classical", "latin", "free"), "clarinet": ("classical", "jazz", "waltz", "free"),
    "saxophone": ("jazz", "ballad", "latin", "free"), "trumpet": ("jazz", "latin", "classical", "free"),
    "trombone": ("jazz", "classical", "free"), "voice": ("ballad", "folk", "hymn", "free"),
    "guitar": ("folk", "ballad", "latin", "rock", "free"), "piano": ("classical", "jazz", "ballad", "free"),
    "organ": ("hymn", "classical", "rock"), "accordion": ("waltz", "folk", "latin"),
    "banjo": ("folk",), "mandolin": ("folk", "classical"), "ukulele": ("reggae", "folk", "ballad"),
    "bass": ("jazz", "rock", "free"), "synthesizer": ("electronic", "free", "ballad"),
    "mallet_percussion": ("latin", "jazz", "classical", "free"),
}


@dataclass(frozen=True)
class Plan:
    """A planned part: class, role (``solo``, ``melody``, ``counter``, ``chords``, ``bass``,
    ``kit``, ``orchestral`` cymbals), pattern option, preferred voice names, ``share`` (index of an earlier plan
    whose font and voice it reuses: a pianist's two hands) and ``lead`` (mixed on top)."""

    cls: str
    role: str
    option: str = ""
    voices: tuple[str, ...] = ()
    share: int | None = None
    lead: bool = False


def _choice(rng: np.random.Generator, items: list[str] | tuple[str, ...]) -> str:
    return str(items[int(rng.integers(len(items)))])


def _lead_plans(rng: np.random.Generator, cls: str) -> list[Plan]:
    """A lead instrument playing alone: a line, or (chordal classes) chords with an optional
    line on top in the same instrument."""
    if cls == "bass":
        return [Plan("bass", "bass", "walking", lead=True)] if rng.random() < 0.4 else \
            [Plan("bass", "solo", _choice(rng, DENSITIES), lead=True)]
    if cls in CHORDAL and rng.random() < 0.7:
        plans = [Plan(cls, "chords", _choice(rng, CHORDAL[cls]), lead=True)]
        if rng.random() < 0.5 and cls not in ("ukulele", "banjo"):
            plans.append(Plan(cls, "solo", _choice(rng, DENSITIES), share=0, lead=True))
        return plans
    return [Plan(cls, "solo", _choice(rng, DENSITIES), lead=True)]


def _accompanist(rng: np.random.Generator, lead: str, renderable: list[str]) -> Plan | None:
    """A partner for ``lead``: mostly a chordal instrument, sometimes a bass line or a second line."""
    u = rng.random()
    chordal = [c for c in CHORDAL if c in renderable and c != lead]
    if u < 0.7 and chordal:
        cls = _choice(rng, chordal)
        return Plan(cls, "chords", _choice(rng, CHORDAL[cls]))
    low = [c for c in ("bass", "cello") if c in renderable and c != lead]
    if u < 0.85 and low:
        cls = _choice(rng, low)
        return Plan(cls, "bass", _choice(rng, ("walking", "root5", "sustain")) if cls == "bass" else "sustain")
    others = [c for c in renderable if c != lead]
    return Plan(_choice(rng, others), "counter") if others else None


def plan_texture(rng: np.random.Generator, renderable: tuple[str, ...], weights: Mapping[str, float] = TEXTURES,
                 drum_prob: Mapping[str, float] = DRUM_PROB) -> tuple[str, str, str, list[Plan]]:
    """Draw a texture and its parts among the ``renderable`` classes.

    Returns ``(texture, name, style, plans)``: ``name`` is the ensemble template for the
    ``ensemble`` texture and the texture otherwise; the first plan is the lead."""
    names = list(weights)
    w = np.array([weights[n] for n in names], dtype=float)
    texture = names[int(rng.choice(len(names), p=w / w.sum()))]
    melodic = [c for c in renderable if c not in ("drums", "cymbals")]
    kit = "drums" in renderable
    if texture in ("band", "section"):  # songs and sections (:mod:`~instrec.synth.songs`)
        style, parts = (plan_band if texture == "band" else plan_section)(rng, renderable)
        if parts:
            return texture, texture, style, [Plan(c, r, o, lead=lead) for c, r, o, lead in parts]
        texture = "ensemble"
    if texture == "ensemble" or not melodic:
        name, style, parts = plan_parts(rng, renderable)
        return "ensemble", name, style, [Plan(p.cls, p.role, p.option, p.voices, lead=i == 0)
                                         for i, p in enumerate(parts)]
    # Line instruments lead twice as often as chordal ones, which also get chosen as accompanists:
    # over a corpus every class then plays in roughly as many clips.
    w_lead = np.array([1.0 if c in CHORDAL else LINE_LEAD_WEIGHT for c in melodic])
    lead = melodic[int(rng.choice(len(melodic), p=w_lead / w_lead.sum()))]
    style = _choice(rng, STYLES.get(lead, ("free",)))
    plans = _lead_plans(rng, lead)
    if texture == "duo":
        partner = _accompanist(rng, lead, melodic)
        if partner is not None:
            plans.append(partner)
    elif texture == "sparse":
        for _ in range(int(rng.integers(1, 3))):
            partner = _accompanist(rng, lead, [c for c in melodic if c not in {p.cls for p in plans}])
            if partner is not None:
                plans.append(partner)
    if kit and rng.random() < drum_prob.get(texture, 0.0):
        if texture == "solo":  # a drummer alone
            return texture, texture, _choice(rng, ("rock", "jazz", "latin", "folk")), [Plan("drums", "kit", lead=True)]
        plans.append(Plan("drums", "kit"))
    return texture, texture, style, plans
