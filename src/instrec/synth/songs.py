"""Textures like songs for the realistic recipe, and the mix of a record.

Two textures beside :mod:`~instrec.synth.textures`' thin ones:

* ``band``: a full band as records have it: a drum kit, a bass line, one or two comping
  instruments, a lead line on top and sometimes a pad, the drums and the lead mixed loud;
* ``section``: chamber and orchestral writing: strings with a cello or bass line under a
  violin, wind or brass lead, inner lines from other sections, sometimes a keyboard.

A clip of these textures (and of the dense ``ensemble`` one) goes through a record's bus
(:func:`draw_bus`): a shared reverb and a bus compressor on the summed stems, drawn from the
clip's own random stream, before the recording-chain augmentation. Labels are read off the
dry stems before the bus (:mod:`~instrec.synth.mixdown`), so the bus changes no label; the
audio is mono (the front ends average the channels), so the mix sets levels, not panning.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


#: The textures of this module.
SONG_TEXTURES = ("band", "section")
#: Textures whose clips go through the record bus.
BUS_TEXTURES = ("band", "section", "ensemble")
#: Band members: class weights of the comping, lead and pad slots, with their style.
COMPING = {"piano": 3.0, "guitar": 3.0, "organ": 1.5, "accordion": 0.5, "ukulele": 0.5, "banjo": 0.5,
           "mandolin": 0.3, "mallet_percussion": 0.7, "synthesizer": 1.0}
LEADS = {"voice": 4.0, "saxophone": 1.5, "trumpet": 1.2, "guitar": 1.5, "synthesizer": 0.8, "violin": 0.8,
         "flute": 0.6, "clarinet": 0.5, "trombone": 0.5, "mallet_percussion": 0.5, "piano": 0.8, "organ": 0.4,
         "accordion": 0.3, "banjo": 0.3, "mandolin": 0.3, "cello": 0.3}
PADS = {"organ": 1.0, "synthesizer": 1.0, "violin": 0.6, "cello": 0.3, "accordion": 0.2}
BAND_STYLES = ("rock", "jazz", "latin", "ballad", "folk", "reggae", "electronic")
#: Chamber / orchestral sections: lead candidates, inner-line candidates and low lines.
SECTION_LEADS = {"violin": 3.0, "flute": 1.5, "clarinet": 1.0, "trumpet": 1.0, "cello": 0.8, "saxophone": 0.4,
                 "trombone": 0.4}
SECTION_INNER = {"violin": 2.0, "cello": 1.5, "clarinet": 1.0, "flute": 1.0, "trombone": 0.8, "trumpet": 0.6}
SECTION_LOW = {"cello": 2.0, "bass": 1.0, "trombone": 0.5}
CHORD_OPTIONS = {"piano": ("block", "arpeggio", "comp"), "guitar": ("strum", "comp", "arpeggio"),
                 "organ": ("pad", "block"), "synthesizer": ("pad", "offbeat", "arpeggio"),
                 "accordion": ("block", "offbeat"), "ukulele": ("strum",), "banjo": ("arpeggio",),
                 "mandolin": ("arpeggio", "strum"), "mallet_percussion": ("arpeggio", "block")}


def _draw(rng: np.random.Generator, weights: dict[str, float], allowed: Sequence[str],
          exclude: Sequence[str] = ()) -> str | None:
    names = [c for c in weights if c in allowed and c not in exclude]
    if not names:
        return None
    w = np.array([weights[c] for c in names])
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def plan_band(rng: np.random.Generator, renderable: Sequence[str]) -> tuple[str, list[tuple]]:
    """A band's style and parts as ``(cls, role, option, lead)`` tuples: kit, bass, comping
    (one or two), a lead and sometimes a pad; members whose class cannot be rendered are left out."""
    style = str(BAND_STYLES[int(rng.integers(len(BAND_STYLES)))])
    parts: list[tuple] = []
    lead = _draw(rng, LEADS, renderable)
    if lead is not None:
        parts.append((lead, "melody", str(rng.choice(("medium", "high", "low"))), True))
    if "drums" in renderable and rng.random() < 0.9:
        parts.append(("drums", "kit", "", False))
    if "bass" in renderable and rng.random() < 0.9:
        parts.append(("bass", "bass", str(rng.choice(("eighths", "root5", "walking", "syncopated", "sustain"))),
                      False))
    used = [p[0] for p in parts]
    for k in range(2):
        if k == 1 and rng.random() >= 0.4:
            break
        comp = _draw(rng, COMPING, renderable, exclude=used[:1] if k == 0 else used)
        if comp is not None:
            parts.append((comp, "chords", str(rng.choice(CHORD_OPTIONS[comp])), False))
            used.append(comp)
    if rng.random() < 0.45:
        pad = _draw(rng, PADS, renderable, exclude=used)
        if pad is not None:
            chordal = pad in CHORD_OPTIONS
            parts.append((pad, "chords" if chordal else "counter", "pad" if chordal else "", False))
    return style, parts


def plan_section(rng: np.random.Generator, renderable: Sequence[str]) -> tuple[str, list[tuple]]:
    """A chamber or orchestral section's style and parts (see :func:`plan_band`): a lead, one
    to three inner lines, a low line, sometimes a keyboard or a cymbal."""
    style = str(rng.choice(("classical", "waltz", "free", "hymn")))
    parts: list[tuple] = []
    lead = _draw(rng, SECTION_LEADS, renderable)
    if lead is not None:
        parts.append((lead, "melody", str(rng.choice(("medium", "high", "low"))), True))
    for _ in range(int(rng.integers(1, 4))):
        inner = _draw(rng, SECTION_INNER, renderable)
        if inner is not None:
            parts.append((inner, "counter", "", False))
    low = _draw(rng, SECTION_LOW, renderable)
    if low is not None:
        parts.append((low, "bass", "sustain" if low != "bass" else str(rng.choice(("sustain", "root5"))), False))
    if rng.random() < 0.25:
        keys = _draw(rng, {"piano": 2.0, "organ": 1.0, "mallet_percussion": 0.5}, renderable)
        if keys is not None:
            parts.append((keys, "chords", str(rng.choice(CHORD_OPTIONS[keys])), False))
    if "cymbals" in renderable and rng.random() < 0.1:
        parts.append(("cymbals", "cymbals", "", False))
    return style, parts


def draw_bus(rng: np.random.Generator) -> list[tuple[str, dict]]:
    """A record's bus as a :func:`~instrec.synth.augment.apply_chain` chain: a shared reverb
    (most clips) and a bus compressor (most clips), then the level back to -1 dBFS peak."""
    chain: list[tuple[str, dict]] = []
    if rng.random() < 0.8:
        chain.append(("reverb", {"room_size": round(float(rng.uniform(0.15, 0.8)), 4),
                                 "damping": round(float(rng.uniform(0.2, 0.8)), 4),
                                 "wet_level": round(float(rng.uniform(0.04, 0.25)), 4), "dry_level": 0.9}))
    if rng.random() < 0.85:
        chain.append(("compressor", {"threshold_db": round(float(rng.uniform(-26.0, -10.0)), 4),
                                     "ratio": round(float(rng.uniform(2.0, 6.0)), 4),
                                     "attack_ms": round(float(rng.uniform(3.0, 30.0)), 4),
                                     "release_ms": round(float(rng.uniform(50.0, 250.0)), 4)}))
    chain.append(("level", {"peak_db": -1.0}))
    return chain


#: Mix gain ranges (dB) of the members of the song textures: drums and lead up front.
GAIN_DB = {"lead": (0.0, 0.0), "kit": (-4.0, 0.0), "bass": (-7.0, -2.0), "other": (-10.0, -3.0)}


def song_gain(rng: np.random.Generator, role: str, lead: bool) -> float:
    """The mix gain (dB) of a part of a song texture (:data:`GAIN_DB`)."""
    lo, hi = GAIN_DB["lead" if lead else role if role in ("kit", "bass") else "other"]
    return float(rng.uniform(lo, hi)) if hi > lo else lo
