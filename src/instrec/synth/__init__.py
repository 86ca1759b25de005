"""Offline synthetic multi-instrument corpus in the OpenMIC-2018 layout, with strong labels.

Musically plausible 10-second pieces (:mod:`.compose`) are rendered from MIDI with a
SoundFont (:mod:`.render`, :mod:`.soundfont`, class -> General MIDI map in :mod:`.gm`),
featurised with an instrec front end, and labelled the way OpenMIC was: weak, partial
labels per clip, plus the strong (onset/offset) labels OpenMIC lacks (:mod:`.labels`).
:func:`build_corpus` (:mod:`.corpus`) writes the whole corpus.
"""
from __future__ import annotations

from instrec.synth.corpus import build_corpus
from instrec.synth.stats import CorpusStats

__all__ = ["build_corpus", "CorpusStats"]
