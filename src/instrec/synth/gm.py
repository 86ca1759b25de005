"""General MIDI realisation of the 20 OpenMIC-2018 classes.

Each melodic class maps to one or more :class:`Voice` (a ``(bank, program)`` preset plus
the pitch range it is written in). Banks other than 0 are the variation banks of
FluidR3_GM (bank 8: ukulele, Italian accordion, ...; bank 16: mandolin); they are only
used when the SoundFont really holds that exact preset, because the renderer silently
falls back to the bank-0 program otherwise (a "mandolin" would sound like a steel guitar).

``drums`` and ``cymbals`` are not programs but notes on the GM percussion channel (MIDI
channel 10), played through a drum kit (program on the percussion channel = kit, bank 128
in the SoundFont). **Hi-hats count as drums**: they are the time-keeping part of every kit
pattern, and counting them as cymbals would make ``cymbals`` co-occur with nearly every
``drums`` label. ``cymbals`` means crash, ride, ride bell, splash and china cymbals.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from instrec.classes import OPENMIC_CLASSES

#: SoundFont bank that holds percussion kits.
PERCUSSION_BANK = 128


@dataclass(frozen=True)
class Voice:
    """One GM sound realising a class.

    Attributes:
        name: human-readable GM name.
        bank: bank-select MSB (0 = General MIDI; 8/16 = variation banks).
        program: GM program number 0-127 (for kits: the kit number).
        low, high: MIDI pitch range the part is written in (inclusive).
        weight: relative probability of choosing this voice within its class.
    """

    name: str
    bank: int
    program: int
    low: int
    high: int
    weight: float = 1.0


def _v(name: str, program: int, low: int, high: int, weight: float = 1.0, bank: int = 0) -> Voice:
    return Voice(name=name, bank=bank, program=program, low=low, high=high, weight=weight)


#: Melodic classes -> candidate voices.
MELODIC_VOICES: Mapping[str, tuple[Voice, ...]] = {
    "accordion": (_v("Accordion", 21, 53, 84, 2.0), _v("Tango Accordion", 23, 53, 84),
                  _v("Italian Accordion", 21, 53, 84, 1.0, bank=8)),
    "banjo": (_v("Banjo", 105, 48, 79),),
    "bass": (_v("Acoustic Bass", 32, 28, 52, 2.0), _v("Fingered Bass", 33, 28, 55, 3.0),
             _v("Picked Bass", 34, 28, 55), _v("Fretless Bass", 35, 28, 55),
             _v("Slap Bass 1", 36, 28, 55, 0.5), _v("Slap Bass 2", 37, 28, 55, 0.5),
             _v("Synth Bass 1", 38, 28, 55, 0.7), _v("Synth Bass 2", 39, 28, 55, 0.7)),
    "cello": (_v("Cello", 42, 36, 69),),
    "clarinet": (_v("Clarinet", 71, 52, 86),),
    "flute": (_v("Flute", 73, 60, 93, 4.0), _v("Piccolo", 72, 74, 100)),
    "guitar": (_v("Nylon Guitar", 24, 40, 79, 2.0), _v("Steel Guitar", 25, 40, 79, 2.0),
               _v("Jazz Guitar", 26, 40, 79), _v("Clean Guitar", 27, 40, 79, 1.5),
               _v("Muted Guitar", 28, 40, 72, 0.7), _v("Overdriven Guitar", 29, 40, 79),
               _v("Distortion Guitar", 30, 40, 79), _v("12-String Guitar", 25, 40, 76, 0.7, bank=8),
               _v("Funk Guitar", 28, 40, 72, 0.5, bank=8)),
    "mallet_percussion": (_v("Celesta", 8, 60, 96), _v("Glockenspiel", 9, 72, 100),
                          _v("Vibraphone", 11, 53, 89, 2.0), _v("Marimba", 12, 45, 89, 2.0),
                          _v("Xylophone", 13, 65, 100)),
    "mandolin": (_v("Mandolin", 25, 55, 88, 1.0, bank=16),),
    "organ": (_v("Drawbar Organ", 16, 36, 88, 2.0), _v("Percussive Organ", 17, 36, 88),
              _v("Rock Organ", 18, 36, 88, 1.5), _v("Church Organ", 19, 36, 88, 1.5),
              _v("Reed Organ", 20, 36, 84, 0.7), _v("Detuned Organ", 16, 36, 88, 0.5, bank=8),
              _v("Church Organ 2", 19, 36, 88, 0.5, bank=8)),
    "piano": (_v("Acoustic Grand", 0, 33, 96, 4.0), _v("Bright Piano", 1, 33, 96, 1.5),
              _v("Electric Grand", 2, 33, 96), _v("Honky-tonk Piano", 3, 36, 90, 0.5),
              _v("Electric Piano 1", 4, 36, 90), _v("Electric Piano 2", 5, 36, 90, 0.7)),
    "saxophone": (_v("Soprano Sax", 64, 56, 87), _v("Alto Sax", 65, 49, 81, 2.0),
                  _v("Tenor Sax", 66, 44, 76, 2.0), _v("Baritone Sax", 67, 36, 69)),
    "synthesizer": (_v("Square Lead", 80, 48, 88), _v("Saw Lead", 81, 48, 88, 1.5),
                    _v("Chiff Lead", 83, 48, 88, 0.5), _v("Charang", 84, 48, 84, 0.5),
                    _v("Fifths Lead", 86, 48, 84, 0.5), _v("Bass + Lead", 87, 40, 76, 0.5),
                    _v("New Age Pad", 88, 48, 84), _v("Warm Pad", 89, 48, 84, 1.5),
                    _v("Polysynth", 90, 48, 84, 1.5), _v("Bowed Pad", 92, 48, 84, 0.5),
                    _v("Metallic Pad", 93, 48, 84, 0.5), _v("Sweep Pad", 95, 48, 84, 0.7),
                    _v("Sine Wave", 80, 48, 88, 0.5, bank=8)),
    "trombone": (_v("Trombone", 57, 40, 72),),
    "trumpet": (_v("Trumpet", 56, 55, 82, 3.0), _v("Muted Trumpet", 59, 55, 82)),
    "ukulele": (_v("Ukulele", 24, 60, 81, 1.0, bank=8),),
    "violin": (_v("Violin", 40, 55, 93, 4.0), _v("Slow Violin", 40, 55, 93, 1.0, bank=8)),
    "voice": (_v("Choir Aahs", 52, 48, 79, 2.0), _v("Voice Oohs", 53, 48, 79)),
}

#: Drum kits (program on the percussion channel), with relative weights.
KITS: tuple[Voice, ...] = (
    _v("Standard Kit", 0, 27, 87, 4.0, bank=PERCUSSION_BANK), _v("Room Kit", 8, 27, 87, 1.0, bank=PERCUSSION_BANK),
    _v("Power Kit", 16, 27, 87, 1.0, bank=PERCUSSION_BANK), _v("Electronic Kit", 24, 27, 87, 1.0, bank=PERCUSSION_BANK),
    _v("TR-808 Kit", 25, 27, 87, 1.0, bank=PERCUSSION_BANK), _v("Jazz Kit", 32, 27, 87, 1.0, bank=PERCUSSION_BANK),
    _v("Brush Kit", 40, 27, 87, 1.0, bank=PERCUSSION_BANK),
)

#: Percussion-channel notes (GM key numbers) of the drums class, with the time in seconds
#: each hit takes to decay by 20 dB (measured on TimGM6mb's standard kit). Drum samples
#: ring through their own release whatever the note-off, so this decay is used as the MIDI
#: note length and the strong labels follow the sound.
DRUM_NOTES: Mapping[str, tuple[int, float]] = {
    "kick": (36, 0.12), "kick2": (35, 0.12), "snare": (38, 0.15), "snare2": (40, 0.16),
    "rim": (37, 0.08), "clap": (39, 0.16), "hh_closed": (42, 0.08), "hh_pedal": (44, 0.1),
    "hh_open": (46, 0.8), "tom_low": (45, 0.4), "tom_mid": (47, 0.35), "tom_high": (50, 0.32),
    "tom_floor": (41, 0.4),
}

#: Percussion-channel notes of the cymbals class (hi-hats excluded, see module docstring),
#: with their -20 dB decay times in seconds, as for :data:`DRUM_NOTES`.
CYMBAL_NOTES: Mapping[str, tuple[int, float]] = {
    "crash": (49, 1.2), "crash2": (57, 1.1), "ride": (51, 1.0), "ride2": (59, 0.9),
    "ride_bell": (53, 1.4), "splash": (55, 0.6), "china": (52, 0.9),
}

PERCUSSION_CLASSES: tuple[str, ...] = ("cymbals", "drums")


def class_voices(cls: str) -> tuple[Voice, ...]:
    """All candidate voices of an OpenMIC class (kits for ``drums``/``cymbals``)."""
    if cls in PERCUSSION_CLASSES:
        return KITS
    try:
        return MELODIC_VOICES[cls]
    except KeyError:
        raise ValueError(f"unknown instrument class {cls!r}") from None


def available_voices(cls: str, presets: frozenset[tuple[int, int]]) -> tuple[Voice, ...]:
    """Voices of ``cls`` whose exact ``(bank, program)`` preset is in ``presets``."""
    return tuple(v for v in class_voices(cls) if (v.bank, v.program) in presets)


def renderable_classes(presets: frozenset[tuple[int, int]]) -> tuple[str, ...]:
    """OpenMIC classes (in OpenMIC order) with at least one voice in ``presets``."""
    return tuple(c for c in OPENMIC_CLASSES if available_voices(c, presets))

