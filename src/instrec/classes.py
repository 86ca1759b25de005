"""The 20 OpenMIC-2018 instrument classes, in the order of the release's ``class-map.json``."""
from __future__ import annotations

OPENMIC_CLASSES: tuple[str, ...] = (
    "accordion", "banjo", "bass", "cello", "clarinet", "cymbals", "drums", "flute",
    "guitar", "mallet_percussion", "mandolin", "organ", "piano", "saxophone",
    "synthesizer", "trombone", "trumpet", "ukulele", "violin", "voice",
)

#: ``class-map.json`` of the release: instrument name -> column index.
OPENMIC_CLASS_MAP: dict[str, int] = {name: i for i, name in enumerate(OPENMIC_CLASSES)}
