"""Strong, weak and partial labels of the synthetic corpus.

* **Strong**: per class, the time intervals (seconds) where it sounds: the union of its
  note intervals, each extended by the class's release (:func:`release_of`: the time a
  note takes to fall by about 20 dB after its note-off; percussion notes are already as
  long as their decay), with gaps shorter than ``merge_gap`` merged, clipped to the clip.
* **Weak truth**: a class is present when it sounds for at least ``min_seconds`` in total.
* **Partial labels** (OpenMIC-style annotation): each clip gets ``1 + Poisson(mean - 1)``
  labelled classes among the renderable ones. Each labelled slot asks for a present class
  with probability ``p`` (an absent one otherwise; the other kind when one runs out), with
  ``p`` calibrated over the whole corpus so that the expected share of positive labelled
  pairs equals ``positive_fraction``. Unlabelled entries are unknown (mask False, value 0).
  With ``disagreement``, relevance carries annotator disagreement: positives are 1.0 or
  sometimes 0.6-0.9, negatives 0.0 or sometimes 0.1-0.4 (never crossing 0.5).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Mapping, Sequence

import numpy as np

MELODIC_RELEASE = 0.2  # seconds a melodic note keeps sounding after its note-off (-20 dB)
MALLET_RELEASE = 0.4   # mallets ring longer
MERGE_GAP = 0.25   # seconds: shorter silences inside a class are bridged
MIN_SECONDS = 1.0  # seconds of sound for a class to be weakly present
POS_DISAGREE = (0.15, 0.6, 0.9)  # probability, low, high of a doubted positive
NEG_DISAGREE = (0.10, 0.1, 0.4)  # probability, low, high of a doubted negative

Interval = tuple[float, float]


def release_of(cls: str, is_drum: bool) -> float:
    """Seconds added after the note-off of a note of ``cls`` (0 for percussion-channel notes)."""
    if is_drum:
        return 0.0
    return MALLET_RELEASE if cls == "mallet_percussion" else MELODIC_RELEASE


def merge_intervals(intervals: Iterable[Interval], duration: float, release: float = 0.0,
                    merge_gap: float = MERGE_GAP) -> list[Interval]:
    """Union of note intervals ``(start, end)`` (s), each end + ``release``, gaps < ``merge_gap``
    bridged, clipped to ``[0, duration]``; sorted, rounded to milliseconds."""
    spans = sorted((max(0.0, s), min(duration, e + release)) for s, e in intervals)
    out: list[list[float]] = []
    for s, e in spans:
        if e <= s:
            continue
        if out and s - out[-1][1] < merge_gap - 1e-6:  # margin: gaps of exactly merge_gap stay
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(round(s, 3), round(e, 3)) for s, e in out]


def strong_labels(notes_by_class: Mapping[str, Iterable[Interval]], duration: float,
                  release: float = 0.0, merge_gap: float = MERGE_GAP) -> dict[str, list[Interval]]:
    """Class -> merged sounding intervals, for classes with at least one note (``notes_by_class``
    output already includes each class's release, hence ``release=0`` by default)."""
    out = {}
    for cls, notes in notes_by_class.items():
        merged = merge_intervals(notes, duration, release, merge_gap)
        if merged:
            out[cls] = merged
    return out


def notes_by_class(instruments: Iterable) -> dict[str, list[Interval]]:
    """Sounding intervals ``(start, end + release)`` of every note, grouped by class.

    ``instruments``: objects with ``name`` (``"<class>:<role>"``), ``is_drum`` and ``notes``
    (with ``start``/``end`` in seconds): pretty_midi instruments read from a written MIDI
    file, or the parts of a composed piece."""
    out: dict[str, list[Interval]] = {}
    for inst in instruments:
        cls = inst.name.split(":", 1)[0]
        rel = release_of(cls, bool(inst.is_drum))
        out.setdefault(cls, []).extend((float(n.start), float(n.end) + rel) for n in inst.notes)
    return out


def sounding_seconds(intervals: Sequence[Interval]) -> float:
    """Total length (s) of disjoint intervals."""
    return float(sum(e - s for s, e in intervals))


def weak_truth(strong: Mapping[str, Sequence[Interval]], classes: Sequence[str],
               min_seconds: float = MIN_SECONDS) -> np.ndarray:
    """(C,) bool: class sounds for at least ``min_seconds`` in total."""
    return np.array([sounding_seconds(strong.get(c, ())) >= min_seconds - 1e-9 for c in classes], dtype=bool)


def draw_slots(rng: np.random.Generator, mean: float, n_available: int) -> int:
    """Number of labelled classes of a clip: ``1 + Poisson(mean - 1)``, at most ``n_available``."""
    return int(min(1 + rng.poisson(max(mean - 1.0, 0.0)), n_available))


@lru_cache(maxsize=1 << 16)
def _expected_positives(n_pos: int, n_neg: int, slots: int, p: float) -> float:
    """Expected positive picks when ``slots`` slots draw from pools of sizes ``n_pos``/``n_neg``."""
    if slots == 0 or n_pos + n_neg == 0:
        return 0.0
    if n_pos == 0:
        return 0.0
    if n_neg == 0:
        return float(min(slots, n_pos))
    return (p * (1.0 + _expected_positives(n_pos - 1, n_neg, slots - 1, p))
            + (1.0 - p) * _expected_positives(n_pos, n_neg - 1, slots - 1, p))


def calibrate_positive_prob(pools: Sequence[tuple[int, int, int]], target: float) -> float:
    """Per-slot probability of asking for a present class such that the expected fraction of
    positive labelled pairs over ``pools`` (``(n_present, n_absent, slots)`` per clip) equals
    ``target``; clipped to [0, 1] when the target cannot be reached."""
    total = sum(s for _, _, s in pools)
    if total == 0:
        return float(target)
    counts: dict[tuple[int, int, int], int] = {}
    for key in pools:
        counts[key] = counts.get(key, 0) + 1

    def frac(p: float) -> float:
        return sum(c * _expected_positives(a, b, s, p) for (a, b, s), c in counts.items()) / total

    lo, hi = 0.0, 1.0
    if frac(hi) <= target:
        return hi
    if frac(lo) >= target:
        return lo
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if frac(mid) < target else (lo, mid)
    return round(0.5 * (lo + hi), 6)


def partial_labels(rng: np.random.Generator, present: np.ndarray, candidates: np.ndarray, slots: int,
                   p_positive: float, disagreement: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Labels of one clip: ``(y_true, y_mask)``, (C,) float32 and (C,) bool.

    ``present``: (C,) bool weak truth; ``candidates``: (C,) bool classes that may be labelled;
    ``slots``: how many to label; ``p_positive``: probability a slot asks for a present class.
    """
    pos = [int(i) for i in np.flatnonzero(present & candidates)]
    neg = [int(i) for i in np.flatnonzero(~present & candidates)]
    y_true = np.zeros(len(present), dtype=np.float32)
    y_mask = np.zeros(len(present), dtype=bool)
    for _ in range(slots):
        if not pos and not neg:
            break
        take_pos = bool(pos) and (not neg or rng.random() < p_positive)
        pool = pos if take_pos else neg
        c = pool.pop(int(rng.integers(len(pool))))
        y_mask[c] = True
        y_true[c] = 1.0 if take_pos else 0.0
        prob, low, high = POS_DISAGREE if take_pos else NEG_DISAGREE
        doubt, value = rng.random(), rng.uniform(low, high)  # drawn either way: same mask
        if disagreement and doubt < prob:
            y_true[c] = round(float(value), 2)
    return y_true, y_mask


def label_corpus(strong: Sequence[Mapping[str, Sequence[Interval]]], classes: Sequence[str], candidates: np.ndarray,
                 rngs: Sequence[np.random.Generator], labels_per_clip: float, positive_fraction: float,
                 disagreement: bool = True, min_seconds: float = MIN_SECONDS) -> dict[str, np.ndarray | float]:
    """Weak truth and partial labels of a whole corpus.

    ``strong``: per clip, class -> sounding intervals; ``candidates``: (C,) bool classes that
    may be labelled (the renderable ones); ``rngs``: one generator per clip (its label stream).
    Returns ``present``/``sounding``/``y_mask`` (N, C) bool, ``y_true`` (N, C) float32 and the
    calibrated per-slot probability ``p_positive``.
    """
    present = np.stack([weak_truth(s, classes, min_seconds) for s in strong]) & candidates
    sounding = np.array([[c in s for c in classes] for s in strong], dtype=bool).reshape(len(strong), len(classes))
    n_cand = int(candidates.sum())
    slots = [draw_slots(r, labels_per_clip, n_cand) for r in rngs]
    pools = [(int(a), n_cand - int(a), s) for a, s in zip(present.sum(axis=1), slots)]
    p = calibrate_positive_prob(pools, positive_fraction)
    labelled = [partial_labels(r, present[i], candidates, slots[i], p, disagreement) for i, r in enumerate(rngs)]
    return {"present": present, "sounding": sounding, "y_true": np.stack([y for y, _ in labelled]),
            "y_mask": np.stack([m for _, m in labelled]), "p_positive": p}
