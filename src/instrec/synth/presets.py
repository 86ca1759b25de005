"""Named corpus presets for :func:`~instrec.synth.corpus.build_corpus`.

``openmic``: a corpus the size of the OpenMIC-2018 release (20,000 ten-second clips, a
quarter in the test partition, so about 15,000 training clips, as OpenMIC's split01 has),
rendered with the ensemble recipe and the first installed SoundFont that holds a preset for
every one of the 20 classes (Debian's FluidR3_GM or MuseScore_General), about 2 labelled
instruments per clip (OpenMIC: 41,534 labels on 20,000 clips) with the default share of
positive labelled pairs. Class frequencies come from the ensemble templates, which make some
instruments (drums, bass, guitar, voice, piano) far more common than others; the resulting
per-class counts are written to ``corpus-stats.json`` (``per_class``) and summarised by
:func:`class_imbalance`.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from instrec._io import InstrecError
from instrec.classes import OPENMIC_CLASSES
from instrec.synth.fonts import KNOWN_FONTS
from instrec.synth.gm import renderable_classes
from instrec.synth.soundfont import load_soundfont

#: Preset name -> build_corpus keyword arguments (``soundfont`` is resolved at call time).
PRESETS: dict[str, dict[str, Any]] = {
    "openmic": {"n_clips": 20_000, "labels_per_clip": 2.0, "test_fraction": 0.25, "recipe": "ensemble"},
}


def full_font(candidates: tuple[str, ...] = KNOWN_FONTS) -> Path:
    """The first installed font among ``candidates`` with a preset for all 20 classes."""
    for path in candidates:
        if Path(path).is_file() and len(renderable_classes(load_soundfont(path).preset_keys)) == len(OPENMIC_CLASSES):
            return Path(path)
    raise InstrecError("no installed SoundFont renders all 20 classes (looked for: " + ", ".join(candidates) +
                       "); install fluid-soundfont-gm")


def preset_options(name: str, candidates: tuple[str, ...] = KNOWN_FONTS) -> dict[str, Any]:
    """build_corpus keyword arguments of preset ``name`` (a copy, with the SoundFont resolved)."""
    if name not in PRESETS:
        raise InstrecError(f"unknown corpus preset {name!r}; choose one of {', '.join(PRESETS)}")
    return {**PRESETS[name], "soundfont": str(full_font(candidates))}


def class_imbalance(per_class: Mapping[str, Mapping[str, int]], key: str = "present") -> dict[str, float]:
    """Summary of how unequal class frequencies are, from corpus-stats ``per_class`` counts.

    Returns the most and least frequent class's count of ``key`` and their ratio (inf when a
    class never occurs), and the share of the total held by the most frequent quarter of classes."""
    counts = sorted((int(v[key]) for v in per_class.values()), reverse=True)
    if not counts:
        raise ValueError("per_class is empty")
    top = counts[:max(1, len(counts) // 4)]
    total = sum(counts)
    return {"max": float(counts[0]), "min": float(counts[-1]),
            "max_over_min": counts[0] / counts[-1] if counts[-1] else float("inf"),
            "top_quarter_share": sum(top) / total if total else float("nan")}
