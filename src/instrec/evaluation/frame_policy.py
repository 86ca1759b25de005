"""The per-second decision policy: when a frame says "this instrument plays", and when a long file does.

A weakly trained model's frame probabilities are not calibrated frame by frame, so thresholding
them at 0.5 localises worse than saying nothing (error rate above 1). The policy here turns them
into decisions the way sound-event detection does, with every number chosen by measurement on
clips with strong labels (:func:`tune_frame_policy`):

1. **gate**: an instrument can be active in a frame only where the window (training-clip-long
   stretch of audio) that produced the frame is tagged present by the clip threshold policy, so
   the clip answer and the per-second rows never contradict each other;
2. **median filter** of the frame probabilities over ``median_frames`` frames (odd; 1 = none);
3. per-instrument **frame threshold** (``frame_thresholds``; ``-inf`` = the gate alone, i.e. the
   clip answer spread over the window);
4. **gap filling**: inactive runs of at most ``fill_gap_frames`` frames between two active frames
   become active;
5. **minimum event length**: active runs shorter than ``min_event_frames`` frames are dropped;
   a file shorter than that (a 2-s note against a 3-frame minimum) needs its event to fill it,
   since no event in it can be longer than the file.

In a file longer than one training clip, the gate of step 1 may come from shorter windows, one
starting at every frame (``gate_frames``; absent = the clip length; see
:mod:`instrec.tagging.windows`).

For a file longer than one training clip the file-level answer comes from the same decisions
(:func:`file_presence`): an instrument is present when its active frames add up to at least
``min_seconds`` seconds; the frames of an instrument that is not present are cleared, so the file
answer, the per-second rows, the time ranges and the picture agree.

The policy is a plain dict (JSON in a run's ``config.json`` under ``frame_policy``). Shapes:
frame probabilities ``(..., T, C)``; activity ``(..., T, C)`` bool; T frames of 0.96 s.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.ndimage import median_filter

from instrec.evaluation.localization import _span, n_segments_for, strong_to_roll
from instrec.features import FRAME_SECONDS

#: Config key of the policy in a run's ``config.json``.
POLICY_KEY = "frame_policy"
#: Seconds a long file's per-second decisions must hold an instrument for it to be present
#: (the default of ``--min-seconds``; chosen on the development recordings, see bench_localisation).
MIN_SECONDS = 4.0
#: Frame thresholds tried per instrument (-inf: the gate alone).
FRAME_THRESHOLDS: tuple[float, ...] = (-math.inf, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Smoothing tried, simplest first (ties go to the simpler): (median frames, fill gap frames, min event frames).
SMOOTHINGS: tuple[tuple[int, int, int], ...] = tuple(
    (m, g, e) for m in (1, 3, 5) for g in (0, 1, 2) for e in (1, 2, 3))


def median_smooth(frame_probs: np.ndarray, width: int) -> np.ndarray:
    """Median over ``width`` neighbouring frames (odd, >= 1; edges repeat the end frames)."""
    if width < 1 or width % 2 == 0:
        raise ValueError(f"median width must be an odd number >= 1, got {width}")
    frame_probs = np.asarray(frame_probs)
    if width == 1:
        return frame_probs
    return median_filter(frame_probs, size=(1, width, 1), mode="nearest")


def _runs(active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per position of ``active`` (..., T, C) bool: how many equal values precede it in its run
    (itself included) and how many follow (itself included); run length = sum - 1."""
    n = active.shape[-2]
    fwd = np.zeros(active.shape, dtype=np.int32)
    bwd = np.zeros(active.shape, dtype=np.int32)
    fwd[..., 0, :] = 1
    bwd[..., n - 1, :] = 1
    for t in range(1, n):
        same = active[..., t, :] == active[..., t - 1, :]
        fwd[..., t, :] = np.where(same, fwd[..., t - 1, :] + 1, 1)
    for t in range(n - 2, -1, -1):
        same = active[..., t, :] == active[..., t + 1, :]
        bwd[..., t, :] = np.where(same, bwd[..., t + 1, :] + 1, 1)
    return fwd, bwd


def fill_gaps(active: np.ndarray, max_gap: int) -> np.ndarray:
    """``active`` (..., T, C) with every inactive run of at most ``max_gap`` frames that has an
    active frame on both sides made active (0: unchanged)."""
    active = np.asarray(active, dtype=bool)
    if max_gap <= 0 or active.shape[-2] < 3:
        return active
    fwd, bwd = _runs(active)
    t = np.arange(active.shape[-2])[:, None]
    interior = (t - fwd >= 0) & (t + bwd <= active.shape[-2] - 1)
    return active | (~active & interior & (fwd + bwd - 1 <= max_gap))


def drop_short(active: np.ndarray, min_frames: int) -> np.ndarray:
    """``active`` (..., T, C) without the active runs shorter than ``min_frames`` frames."""
    active = np.asarray(active, dtype=bool)
    if min_frames <= 1:
        return active
    fwd, bwd = _runs(active)
    return active & (fwd + bwd - 1 >= min_frames)


def decide_frames(frame_probs: np.ndarray, gate: np.ndarray, frame_thresholds: Sequence[float],
                  median_frames: int = 1, fill_gap_frames: int = 0, min_event_frames: int = 1) -> np.ndarray:
    """Steps 1-5 of the module docstring: (..., T, C) bool activity of ``frame_probs`` (..., T, C)
    under ``gate`` (broadcastable to it, bool) and per-instrument ``frame_thresholds`` (C,).
    NaN probabilities (instruments a run never learned) are never active."""
    probs = np.asarray(frame_probs, dtype=np.float64)
    squeeze = probs.ndim == 2
    if squeeze:
        probs = probs[None]
    smoothed = median_smooth(probs, median_frames)
    thresholds = np.asarray(frame_thresholds, dtype=np.float64)
    gate = np.asarray(gate, dtype=bool)
    active = (smoothed > thresholds) & (gate[None] if squeeze and gate.ndim == 2 else gate)
    active &= ~np.isnan(smoothed)
    # Capped by the file's length: otherwise a file shorter than the minimum is never active.
    active = drop_short(fill_gaps(active, fill_gap_frames), min(min_event_frames, active.shape[-2]))
    return active[0] if squeeze else active


def file_presence(active: np.ndarray, min_seconds: float, hop: float = FRAME_SECONDS) -> np.ndarray:
    """(C,) bool: instruments whose active frames of ``active`` (T, C) add up to at least
    ``min_seconds`` seconds (each frame counts ``hop`` seconds)."""
    seconds = np.asarray(active, dtype=bool).sum(axis=0) * hop
    return seconds >= min_seconds - 1e-9


def apply_policy(frame_probs: np.ndarray, gate: np.ndarray, policy: Mapping[str, Any]) -> np.ndarray:
    """:func:`decide_frames` with the settings of ``policy`` (a ``frame_policy`` dict)."""
    return decide_frames(frame_probs, gate, policy["frame_thresholds"], int(policy["median_frames"]),
                         int(policy["fill_gap_frames"]), int(policy["min_event_frames"]))


def describe_policy(policy: Mapping[str, Any], min_seconds: float | None = None) -> str:
    """One sentence stating a policy for the outputs (``min_seconds`` overrides the policy's)."""
    secs = float(policy.get("min_seconds", MIN_SECONDS) if min_seconds is None else min_seconds)
    gate = policy.get("gate_frames")
    gate_text = f" (in a file longer than one clip, any {gate}-frame window around it)" if gate else ""
    return (f"per second: active where the window is tagged present{gate_text} and the {policy['median_frames']}-frame "
            f"median of the frame probability exceeds the instrument's frame threshold "
            f"({policy.get('tuned_on', 'untuned')}); gaps up to {policy['fill_gap_frames']} frame(s) filled, "
            f"events shorter than {policy['min_event_frames']} frame(s) dropped; a file longer than one clip "
            f"holds an instrument when its active frames add up to at least {secs:g} s")


def untuned_policy(thresholds: Sequence[float], min_seconds: float = MIN_SECONDS) -> dict[str, Any]:
    """The policy of a run without a tuned one: each frame threshold is the instrument's clip
    threshold ``thresholds`` (C,), no smoothing."""
    return {"frame_thresholds": [float(t) for t in thresholds], "median_frames": 1, "fill_gap_frames": 0,
            "min_event_frames": 1, "min_seconds": float(min_seconds),
            "tuned_on": "not tuned: frame thresholds = the clip thresholds"}


def overlap_matrix(n_frames: int, n_segments: int, hop: float = FRAME_SECONDS, segment: float = 1.0) -> np.ndarray:
    """(S, T) bool: frame t overlaps segment s for a positive length (as
    :func:`instrec.evaluation.localization.frame_probs_to_roll` maps frames to segments)."""
    m = np.zeros((n_segments, n_frames), dtype=bool)
    for t in range(n_frames):
        m[_span(hop * t, hop * (t + 1), segment, n_segments), t] = True
    return m


def _class_counts(ref: np.ndarray, active: np.ndarray, m: np.ndarray) -> np.ndarray:
    """(C, 3) TP, FP, FN of activity (N, T, C) mapped to segments by ``m`` (S, T) against ``ref`` (N, S, C)."""
    est = np.einsum("st,ntc->nsc", m.astype(np.int32), active.astype(np.int32)) > 0
    return np.stack([(ref & est).sum(axis=(0, 1)), (~ref & est).sum(axis=(0, 1)),
                     (ref & ~est).sum(axis=(0, 1))], axis=1)


def _pooled_f1(counts: np.ndarray) -> float:
    tp, fp, fn = counts.sum(axis=0)
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def tune_frame_policy(strong: Mapping[str, Sequence[tuple[str, float, float]]], keys: Sequence[str],
                      frame_probs: np.ndarray, gate: np.ndarray, classes: Sequence[str], clip_seconds: float = 10.0,
                      eval_classes: Sequence[str] | None = None, thresholds: Sequence[float] = FRAME_THRESHOLDS,
                      smoothings: Sequence[tuple[int, int, int]] = SMOOTHINGS, tuned_on: str = "tuned",
                      min_seconds: float = MIN_SECONDS, passes: int = 3) -> dict[str, Any]:
    """The policy of best pooled segment F1 (1-s segments) on clips ``keys`` with strong labels.

    ``frame_probs`` (N, T, C) and ``gate`` (N, T, C) bool (the clip answer of each clip, spread)
    are row-aligned with ``keys``. For every smoothing, each instrument's frame threshold is picked
    by coordinate ascent on the pooled F1 (``passes`` rounds, from the best common threshold);
    the smoothing of best F1 wins, ties to the simpler. Instruments outside ``eval_classes`` keep
    the best common threshold. Returns the policy dict, with ``validation_f1`` and ``n_clips``.
    """
    frame_probs, gate = np.asarray(frame_probs, dtype=np.float64), np.asarray(gate, dtype=bool)
    n_seg = n_segments_for(clip_seconds)
    ref = np.stack([strong_to_roll(strong.get(k, []), n_seg, classes) for k in keys])
    m = overlap_matrix(frame_probs.shape[1], n_seg)
    mask = np.ones(len(classes), bool) if eval_classes is None else np.isin(list(classes), list(eval_classes))
    best: dict[str, Any] = {"validation_f1": -1.0}
    for median, gap, min_len in smoothings:
        if median > frame_probs.shape[1]:
            continue
        counts = np.stack([_class_counts(ref, decide_frames(frame_probs, gate, np.full(len(classes), thr), median,
                                                            gap, min_len), m)
                           for thr in thresholds])  # (K, C, 3)
        counts[:, ~mask] = 0
        common = int(np.argmax([_pooled_f1(c) for c in counts]))
        pick = np.full(len(classes), common)
        for _ in range(passes):
            changed = False
            for c in np.flatnonzero(mask):
                others = counts[pick, np.arange(len(classes))].sum(axis=0) - counts[pick[c], c]
                scores = [_pooled_f1(np.stack([others, counts[k, c]])) for k in range(len(thresholds))]
                k = int(np.argmax(scores))
                if scores[k] > scores[pick[c]] + 1e-12:
                    pick[c], changed = k, True
            if not changed:
                break
        f1 = _pooled_f1(counts[pick, np.arange(len(classes))])
        if f1 > best["validation_f1"] + 1e-12:
            best = {"frame_thresholds": [float(thresholds[k]) for k in pick], "median_frames": median,
                    "fill_gap_frames": gap, "min_event_frames": min_len, "validation_f1": float(f1)}
    best.update(min_seconds=float(min_seconds), tuned_on=tuned_on, n_clips=len(keys))
    return best


def policy_to_json(policy: Mapping[str, Any]) -> dict[str, Any]:
    """The policy with ``-inf`` thresholds written as None (JSON has no infinity)."""
    return {**policy, "frame_thresholds": [None if not math.isfinite(t) else t for t in policy["frame_thresholds"]]}


def policy_from_json(policy: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`policy_to_json`: None thresholds back to ``-inf``."""
    return {**policy, "frame_thresholds": [-math.inf if t is None else float(t) for t in policy["frame_thresholds"]]}
