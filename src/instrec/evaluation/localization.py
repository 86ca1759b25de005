"""Segment-based localisation metrics against strong (onset/offset) labels.

Beyond the paper: clips rendered with known instrument onsets and offsets let us ask
whether the per-frame outputs of a model (e.g. the attention BiLSTM's frame
predictions) say *when* an instrument plays. Scores follow Mesaros, Heittola and
Virtanen (2016), "Metrics for polyphonic sound event detection", segment-based:

* time is cut into segments of ``segment`` seconds (1 s); segment k spans
  ``[k * segment, (k + 1) * segment)``;
* an event (or model frame) makes a segment active when it overlaps it for a
  positive length; a model frame t spans ``[hop * t, hop * (t + 1))`` and is active
  iff its probability is ``> threshold`` (the convention of ``instrec.evaluation.metrics``);
* a roll is a bool ``(n_segments, C)`` array of segment activity;
* per segment, with FN/FP counted over the evaluated classes:
  ``S = min(FN, FP)``, ``D = max(0, FN - FP)``, ``I = max(0, FP - FN)``;
  overall ``ER = (sum S + sum D + sum I) / N`` with N the active reference
  (segment, class) pairs, and F1 pools TP/FP/FN over all segments and classes;
* per class, ``ER_c = (FN_c + FP_c) / N_c`` (NaN when ``N_c = 0``, skipped by the
  class-wise average); precision/recall/F1 use ``0 / 0 -> 0`` as ``instrec.evaluation.metrics``.

Rolls of all clips are concatenated (totals over clips, not a mean of clip scores).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Mapping, Sequence

import numpy as np

from instrec.features import FRAME_SECONDS

__all__ = ["strong_to_roll", "frame_probs_to_roll", "frame_agnostic_probs", "segment_metrics",
           "evaluate_localization", "evaluate_frame_agnostic", "n_segments_for", "per_class_table"]

_EPS = 1e-9  # float slack when mapping times onto segment boundaries


def n_segments_for(clip_seconds: float, segment: float = 1.0) -> int:
    """Number of segments covering a clip: ``ceil(clip_seconds / segment)``."""
    if not clip_seconds > 0 or not segment > 0:
        raise ValueError("clip_seconds and segment must be positive")
    return int(math.ceil(clip_seconds / segment - _EPS))


def _span(start: float, end: float, segment: float, n_segments: int) -> slice:
    """Segments overlapping ``[start, end)`` for a positive length, clipped to the roll."""
    first = int(math.floor(start / segment + _EPS))
    last = int(math.ceil(end / segment - _EPS))
    return slice(max(first, 0), min(last, n_segments))


def strong_to_roll(events: Sequence[tuple[str, float, float]], n_segments: int, classes: Sequence[str],
                   segment: float = 1.0) -> np.ndarray:
    """Reference activity ``(n_segments, C)`` bool from ``(instrument, onset_s, offset_s)`` events.

    An event is active in every segment it overlaps for a positive length (so an event
    ending exactly at 3.0 s does not touch segment 3); events past the end are clipped.
    Raises ``ValueError`` for an unknown instrument or an interval that is not
    ``0 <= onset <= offset``.
    """
    index = {name: c for c, name in enumerate(classes)}
    roll = np.zeros((n_segments, len(classes)), dtype=bool)
    for event in events:
        inst, onset, offset = event
        if inst not in index:
            raise ValueError(f"event instrument {inst!r} is not one of the classes")
        onset, offset = float(onset), float(offset)
        if not (math.isfinite(onset) and math.isfinite(offset) and 0.0 <= onset <= offset):
            raise ValueError(f"event {event!r}: need finite times with 0 <= onset <= offset")
        roll[_span(onset, offset, segment, n_segments), index[inst]] = True
    return roll


def frame_probs_to_roll(frame_probs, n_segments: int, hop: float = FRAME_SECONDS, segment: float = 1.0,
                        threshold: float = 0.5) -> np.ndarray:
    """Estimated activity ``(n_segments, C)`` bool from per-frame outputs ``(T, C)``.

    Frame t spans ``[hop * t, hop * (t + 1))`` and is active where its probability is
    ``> threshold`` (a bool array is taken as activity directly). A segment is active
    for a class if *any* active frame overlaps it, so a 0.96 s frame straddling a
    boundary activates both segments. Segments no frame reaches stay inactive.
    """
    frames = np.asarray(frame_probs)
    if frames.ndim != 2:
        raise ValueError(f"frame_probs must be a 2-D (T, C) array, got shape {frames.shape}")
    if not hop > 0 or not segment > 0:
        raise ValueError("hop and segment must be positive")
    if frames.dtype == bool:
        active = frames
    else:
        frames = frames.astype(np.float64)
        if not np.isfinite(frames).all():
            raise ValueError("frame_probs contains NaN or infinite values")
        active = frames > threshold
    roll = np.zeros((n_segments, frames.shape[1]), dtype=bool)
    for t in range(frames.shape[0]):
        roll[_span(hop * t, hop * (t + 1), segment, n_segments)] |= active[t]
    return roll


def frame_agnostic_probs(clip_probs, n_frames: int) -> np.ndarray:
    """Repeat clip-level probabilities ``(N, C)`` over time: ``(N, n_frames, C)``.

    The frame-agnostic baseline: a clip predicted to contain an instrument is
    claimed active for its whole length, which is all a clip-level tagger can say.
    """
    clip_probs = np.asarray(clip_probs, dtype=np.float64)
    if clip_probs.ndim != 2:
        raise ValueError(f"clip_probs must be a 2-D (N, C) array, got shape {clip_probs.shape}")
    if n_frames < 1:
        raise ValueError("n_frames must be at least 1")
    return np.repeat(clip_probs[:, None, :], n_frames, axis=1)


def _as_roll_list(rolls, name: str) -> list[np.ndarray]:
    """A single 2-D roll, a 3-D stack or a sequence of 2-D rolls -> list of bool 2-D arrays."""
    if isinstance(rolls, np.ndarray):
        rolls = [rolls] if rolls.ndim == 2 else list(rolls)
    out = []
    for i, roll in enumerate(rolls):
        roll = np.asarray(roll)
        if roll.ndim != 2:
            raise ValueError(f"{name}[{i}] must be a 2-D (n_segments, C) roll, got shape {roll.shape}")
        if roll.dtype != bool:
            if not np.isin(roll, (0, 1)).all():
                raise ValueError(f"{name}[{i}] must be boolean (or 0/1)")
            roll = roll.astype(bool)
        out.append(roll)
    return out


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else 0.0


def segment_metrics(ref_rolls, est_rolls, classes: Sequence[str], eval_mask=None) -> OrderedDict:
    """Segment-based F1 and error rate over all clips.

    ``ref_rolls`` / ``est_rolls``: one ``(n_segments, C)`` roll, a ``(clips, n_segments, C)``
    stack or a list of per-clip rolls (clip i of both must share a shape).
    ``eval_mask``: optional ``(C,)`` bool; only those classes are scored (e.g. the
    instruments a synthetic corpus can render).

    Returns an ordered dict: ``f1, precision, recall, er, substitution_rate,
    deletion_rate, insertion_rate, n_ref, n_est, tp, fp, fn, substitutions, deletions,
    insertions, n_segments, class_f1, class_er, per_class`` where ``per_class`` lists the
    evaluated classes only (``instrument, f1, precision, recall, er, deletion_rate,
    insertion_rate, n_ref, n_est, tp, fp, fn``) and ``class_f1`` / ``class_er`` are their
    means (``class_er`` skips NaN). ER is NaN when the reference has no active pair.
    """
    refs, ests = _as_roll_list(ref_rolls, "ref_rolls"), _as_roll_list(est_rolls, "est_rolls")
    if len(refs) != len(ests):
        raise ValueError(f"got {len(refs)} reference rolls but {len(ests)} estimated rolls")
    n_classes = len(classes)
    for i, (r, e) in enumerate(zip(refs, ests)):
        if r.shape != e.shape or r.shape[1] != n_classes:
            raise ValueError(f"clip {i}: reference roll {r.shape} and estimate {e.shape} must both be "
                             f"(n_segments, {n_classes})")
    mask = np.ones(n_classes, dtype=bool) if eval_mask is None else np.asarray(eval_mask)
    if mask.shape != (n_classes,) or mask.dtype != bool:
        raise ValueError(f"eval_mask must be a bool array of shape ({n_classes},)")
    ref = np.concatenate(refs)[:, mask] if refs else np.zeros((0, int(mask.sum())), bool)
    est = np.concatenate(ests)[:, mask] if ests else np.zeros((0, int(mask.sum())), bool)

    tp_c = np.sum(ref & est, axis=0)
    fp_c = np.sum(~ref & est, axis=0)
    fn_c = np.sum(ref & ~est, axis=0)
    fn_s, fp_s = np.sum(ref & ~est, axis=1), np.sum(~ref & est, axis=1)
    subs = int(np.minimum(fn_s, fp_s).sum())
    dels = int(np.maximum(0, fn_s - fp_s).sum())
    ins = int(np.maximum(0, fp_s - fn_s).sum())
    n_ref, n_est = int(ref.sum()), int(est.sum())
    tp, fp, fn = int(tp_c.sum()), int(fp_c.sum()), int(fn_c.sum())
    rate = (lambda x: x / n_ref) if n_ref else (lambda x: float("nan"))

    per_class = []
    for j, name in enumerate(np.asarray(list(classes), dtype=object)[mask]):
        n_c = int(tp_c[j] + fn_c[j])
        per_class.append(OrderedDict([
            ("instrument", str(name)), ("f1", _ratio(2 * tp_c[j], 2 * tp_c[j] + fp_c[j] + fn_c[j])),
            ("precision", _ratio(tp_c[j], tp_c[j] + fp_c[j])), ("recall", _ratio(tp_c[j], n_c)),
            ("er", float(fn_c[j] + fp_c[j]) / n_c if n_c else float("nan")),
            ("deletion_rate", float(fn_c[j]) / n_c if n_c else float("nan")),
            ("insertion_rate", float(fp_c[j]) / n_c if n_c else float("nan")),
            ("n_ref", n_c), ("n_est", int(tp_c[j] + fp_c[j])),
            ("tp", int(tp_c[j])), ("fp", int(fp_c[j])), ("fn", int(fn_c[j])),
        ]))
    class_er = [r["er"] for r in per_class if not math.isnan(r["er"])]
    return OrderedDict([
        ("f1", _ratio(2 * tp, 2 * tp + fp + fn)), ("precision", _ratio(tp, n_est)),
        ("recall", _ratio(tp, n_ref)), ("er", rate(subs + dels + ins)),
        ("substitution_rate", rate(subs)), ("deletion_rate", rate(dels)), ("insertion_rate", rate(ins)),
        ("n_ref", n_ref), ("n_est", n_est), ("tp", tp), ("fp", fp), ("fn", fn),
        ("substitutions", subs), ("deletions", dels), ("insertions", ins), ("n_segments", int(ref.shape[0])),
        ("class_f1", float(np.mean([r["f1"] for r in per_class])) if per_class else float("nan")),
        ("class_er", float(np.mean(class_er)) if class_er else float("nan")),
        ("per_class", per_class),
    ])


def _eval_mask(classes: Sequence[str], eval_classes: Sequence[str] | None) -> np.ndarray:
    if eval_classes is None:
        return np.ones(len(classes), dtype=bool)
    unknown = [c for c in eval_classes if c not in classes]
    if unknown:
        raise ValueError(f"eval_classes {unknown} are not among the classes")
    return np.array([c in set(eval_classes) for c in classes], dtype=bool)


def evaluate_localization(strong_labels: Mapping[str, Sequence[tuple[str, float, float]]],
                          frame_probs: Mapping[str, np.ndarray], classes: Sequence[str],
                          clip_seconds: float = 10.0, threshold: float = 0.5, hop: float = FRAME_SECONDS,
                          segment: float = 1.0, eval_classes: Sequence[str] | None = None) -> OrderedDict:
    """Segment-based scores of per-frame outputs against strong labels.

    ``strong_labels``: clip key -> list of ``(instrument, onset_s, offset_s)`` (an empty
    list is a clip with no instrument). ``frame_probs``: clip key -> ``(T, C)`` frame
    probabilities; every key of ``strong_labels`` must be present (extra keys are
    ignored). ``eval_classes`` limits scoring to those instrument names.
    Returns ``n_clips`` followed by the keys of :func:`segment_metrics`.
    """
    n_seg = n_segments_for(clip_seconds, segment)
    refs, ests = [], []
    for key, events in strong_labels.items():
        if key not in frame_probs:
            raise ValueError(f"no frame probabilities for clip {key!r}")
        probs = np.asarray(frame_probs[key])
        if probs.ndim != 2 or probs.shape[1] != len(classes):
            raise ValueError(f"clip {key!r}: frame probabilities must be (T, {len(classes)}), got {probs.shape}")
        refs.append(strong_to_roll(events, n_seg, classes, segment))
        ests.append(frame_probs_to_roll(probs, n_seg, hop, segment, threshold))
    result = OrderedDict([("n_clips", len(refs))])
    result.update(segment_metrics(refs, ests, classes, _eval_mask(classes, eval_classes)))
    return result


def evaluate_frame_agnostic(strong_labels: Mapping[str, Sequence[tuple[str, float, float]]],
                            clip_probs: Mapping[str, np.ndarray], classes: Sequence[str],
                            clip_seconds: float = 10.0, threshold: float = 0.5, segment: float = 1.0,
                            eval_classes: Sequence[str] | None = None) -> OrderedDict:
    """The frame-agnostic baseline: clip key -> ``(C,)`` clip probabilities; a clip predicted
    present (``> threshold``) marks every segment of the clip active for that instrument."""
    frames = {}
    for key in strong_labels:
        if key not in clip_probs:
            raise ValueError(f"no clip probabilities for clip {key!r}")
        p = np.asarray(clip_probs[key], dtype=np.float64)
        if p.shape != (len(classes),):
            raise ValueError(f"clip {key!r}: clip probabilities must have shape ({len(classes)},), got {p.shape}")
        frames[key] = p[None, :] > threshold
    # One bool "frame" as long as the clip covers every segment.
    return evaluate_localization(strong_labels, frames, classes, clip_seconds, threshold,
                                 hop=n_segments_for(clip_seconds, segment) * segment, segment=segment,
                                 eval_classes=eval_classes)


#: Columns of :func:`per_class_table` after ``method`` and ``instrument``.
PER_CLASS_COLUMNS = ("f1", "precision", "recall", "er", "deletion_rate", "insertion_rate", "n_ref", "n_est",
                     "tp", "fp", "fn")


def per_class_table(scores: Mapping[str, Mapping | None]) -> list[OrderedDict]:
    """The per-instrument segment scores of several methods as one table.

    ``scores``: method name (e.g. ``frame_level``, ``frame_agnostic``) -> the result of
    :func:`evaluate_localization` / :func:`segment_metrics` (None: the method does not
    apply and is skipped). Returns one row per method and evaluated instrument:
    ``method, instrument`` then :data:`PER_CLASS_COLUMNS`."""
    rows = []
    for method, result in scores.items():
        for row in (result or {}).get("per_class", []):
            rows.append(OrderedDict([("method", method), ("instrument", row["instrument"]),
                                     *((k, row[k]) for k in PER_CLASS_COLUMNS)]))
    return rows
