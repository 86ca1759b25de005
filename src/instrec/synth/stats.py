"""Statistics of a synthetic corpus (:class:`CorpusStats`), also written to ``corpus-stats.json``."""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np


@dataclass
class CorpusStats:
    """What a corpus holds and how it was made.

    Label statistics count *labelled pairs* (clip, class) with ``Y_mask`` True; a pair is
    positive when ``Y_true >= 0.5``. ``per_class[c]`` has ``labelled``/``positive`` pairs,
    ``present`` (clips where c sounds >= ``min_seconds``), ``sounding`` (clips with any note
    of c) and ``brief`` (sounding but below the threshold). Times are wall seconds;
    ``stage_seconds`` sums worker time per stage over all clips. ``recipe`` and its
    ``recipe_settings``; ``soundfonts``: every font (path, sha256, renderable classes);
    ``textures`` (realistic recipe): see :func:`recipe_statistics`.
    """

    out_dir: str
    n_clips: int
    seed: int
    soundfont: str
    soundfont_sha256: str
    frontend: dict[str, Any]
    classes: list[str]
    renderable_classes: list[str]
    n_train: int
    n_test: int
    labels_per_clip_requested: float
    positive_fraction_requested: float
    p_positive: float
    disagreement: bool
    min_seconds: float
    labelled_pairs: int
    labelled_per_clip: float
    positive_pairs: int
    positive_fraction: float
    doubted_pairs: int
    present_per_clip: float
    sounding_per_clip: float
    per_class: dict[str, dict[str, int]]
    ensembles: dict[str, int]
    jobs: int
    executor: str | None
    seconds: float
    clips_per_second: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    recipe: str = "ensemble"
    recipe_settings: dict[str, Any] = field(default_factory=dict)
    soundfonts: list[dict[str, Any]] = field(default_factory=list)
    textures: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (the content of ``corpus-stats.json``)."""
        return asdict(self)

    def summary(self) -> str:
        """A short human-readable report (several lines)."""
        lines = [
            f"synthetic corpus: {self.n_clips} clips in {self.out_dir} ({self.n_train} train / {self.n_test} test), "
            f"seed {self.seed}, front end {self.frontend.get('name')}",
            (f"  SoundFont {self.soundfont}" if len(self.soundfonts) <= 1 else
             f"  {len(self.soundfonts)} SoundFonts ({', '.join(Path(f['path']).name for f in self.soundfonts)})")
            + f": {len(self.renderable_classes)}/{len(self.classes)} classes renderable"
            + (f" (never labelled: {', '.join(c for c in self.classes if c not in self.renderable_classes)})"
               if len(self.renderable_classes) < len(self.classes) else ""),
            f"  labelled pairs: {self.labelled_pairs} ({self.labelled_per_clip:.2f}/clip, requested "
            f"{self.labels_per_clip_requested:g}); positive {self.positive_pairs} = {self.positive_fraction:.3f} "
            f"(requested {self.positive_fraction_requested:g}); {self.doubted_pairs} with annotator disagreement",
            f"  classes per clip: {self.sounding_per_clip:.2f} sounding, {self.present_per_clip:.2f} present "
            f"(>= {self.min_seconds:g} s)",
            "  per class (labelled / positive / present clips): " + ", ".join(
                f"{c} {v['labelled']}/{v['positive']}/{v['present']}" for c, v in self.per_class.items()
                if c in self.renderable_classes),
            *self._texture_lines(),
            f"  {self.seconds:.1f} s with {self.executor or f'{self.jobs} job(s)'}: "
            f"{self.clips_per_second:.1f} clips/s",
        ]
        return "\n".join(lines)

    def _texture_lines(self) -> list[str]:
        """The realistic recipe's texture line (none for the ensemble recipe)."""
        t = self.textures
        if not t:
            return []
        by_count = ", ".join(f"{k}{'+' if k == '4' else ''}: {v}" for k, v in t["present_classes"].items())
        return [f"  recipe {self.recipe}: " + ", ".join(f"{k} {v}" for k, v in t["textures"].items())
                + f"; clips by present classes {by_count}; drums present in {t['drum_share']:.0%}"]


def label_statistics(y_true: np.ndarray, y_mask: np.ndarray, present: np.ndarray, sounding: np.ndarray,
                     classes: Sequence[str]) -> dict[str, Any]:
    """Label counts from (N, C) ``y_true``/``y_mask``/``present``/``sounding`` arrays."""
    n = max(int(y_mask.shape[0]), 1)
    pos = y_mask & (y_true >= 0.5)
    doubted = y_mask & (y_true != 0.0) & (y_true != 1.0)
    labelled = int(y_mask.sum())
    per_class = {c: {"labelled": int(y_mask[:, j].sum()), "positive": int(pos[:, j].sum()),
                     "present": int(present[:, j].sum()), "sounding": int(sounding[:, j].sum()),
                     "brief": int((sounding[:, j] & ~present[:, j]).sum())} for j, c in enumerate(classes)}
    return {"labelled_pairs": labelled, "labelled_per_clip": labelled / n, "positive_pairs": int(pos.sum()),
            "positive_fraction": float(pos.sum() / labelled) if labelled else 0.0, "doubted_pairs": int(doubted.sum()),
            "present_per_clip": float(present.sum() / n), "sounding_per_clip": float(sounding.sum() / n),
            "per_class": per_class}


def count(values: Sequence[str]) -> Mapping[str, int]:
    """Occurrences of each value, most common first."""
    return dict(Counter(values).most_common())


def recipe_statistics(recipe: str, settings: Any, fonts: list[dict[str, Any]], info: Sequence[Mapping[str, Any]],
                      present: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """The recipe fields of :class:`CorpusStats`: ``recipe``, ``recipe_settings``, ``soundfonts``
    and, from the realistic clips' ``info``, ``textures``: clips per texture, clips by number
    of present classes (``"1"`` = solo as heard), ``solo_share``, ``drum_share`` (drums
    present), parts per font, pitch range played per class (MIDI), tempo range (bpm) and
    how often each augmentation effect ran."""
    out: dict[str, Any] = {"recipe": recipe, "recipe_settings": settings.describe() if settings is not None else {},
                           "soundfonts": fonts}
    if not info:
        return out
    n = len(info)
    n_present = present.sum(axis=1)
    ranges: dict[str, list[int]] = {}
    for clip in info:
        for part in clip["parts"]:
            if part["class"] not in ("drums", "cymbals"):
                r = ranges.setdefault(part["class"], [128, -1])
                r[0], r[1] = min(r[0], part["low"]), max(r[1], part["high"])
    bpm = np.array([clip["bpm"] for clip in info])
    out["textures"] = {
        "textures": dict(count([clip["texture"] for clip in info])),
        "present_classes": {str(k): int((np.minimum(n_present, 4) == k).sum()) for k in range(5)},
        "solo_share": round(float((n_present == 1).sum() / n), 4),
        "drum_share": round(float(present[:, list(classes).index("drums")].sum() / n), 4),
        "parts_per_font": dict(count([p["font"] for clip in info for p in clip["parts"]])),
        "pitch_range": {c: ranges[c] for c in classes if c in ranges},
        "bpm": [float(bpm.min()), float(np.median(bpm)), float(bpm.max())],
        "effects": dict(count([e for clip in info for e in clip["effects"]])),
    }
    return out
