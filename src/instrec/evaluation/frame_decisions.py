"""Per-frame decisions that earn their place against the clip-level decision repeated over time.

Thresholding a weakly trained model's frame probabilities at 0.5 localises worse than claiming
every second of a clip tagged present (the frame-agnostic baseline of
:mod:`instrec.evaluation.localization`): frame probabilities are not calibrated per frame, only
their attention-weighted sum is. The *clip-gated* decision here nests that baseline:

* an instrument can be active in a frame only where the clip is tagged present
  (clip probability ``> clip_threshold``), and then
* where its (optionally median-smoothed over ``width`` frames) frame probability is
  ``> frame_threshold``; ``frame_threshold = -inf`` is exactly the frame-agnostic baseline.

:func:`tune_gate` picks ``frame_threshold`` and ``width`` on clips that are not scored (the
validation clips of the run), so on the validation clips the tuned decision is never worse than
the baseline, and on the test clips it is a fair comparison.

The decision itself is :func:`instrec.evaluation.frame_policy.decide_frames` with one frame
threshold for every instrument and no gap filling or minimum length (the per-second policy
generalises this search).

Shapes: frame probabilities ``(N, T, C)``, clip probabilities ``(N, C)``; activity ``(N, T, C)`` bool.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from instrec.evaluation.frame_policy import decide_frames
from instrec.evaluation.localization import evaluate_localization

#: Frame thresholds tried by :func:`tune_gate` (-inf: the clip decision alone).
FRAME_THRESHOLDS: tuple[float, ...] = (-np.inf, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Clip thresholds tried by :func:`tune_clip_threshold` (the fair clip-level baseline).
CLIP_THRESHOLDS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
#: Median-filter widths (frames) tried by :func:`tune_gate`; 1 = no smoothing.
WIDTHS: tuple[int, ...] = (1, 3)


def gated_activity(frame_probs: np.ndarray, clip_probs: np.ndarray, frame_threshold: float,
                   width: int = 1, clip_threshold: float = 0.5) -> np.ndarray:
    """(N, T, C) bool: clip tagged present (``> clip_threshold``) and smoothed frame ``> frame_threshold``."""
    frame_probs, clip_probs = np.asarray(frame_probs), np.asarray(clip_probs)
    if frame_probs.ndim != 3 or clip_probs.shape != (frame_probs.shape[0], frame_probs.shape[2]):
        raise ValueError(f"frame_probs (N, T, C) and clip_probs (N, C) do not match: {frame_probs.shape}, "
                         f"{clip_probs.shape}")
    gate = (clip_probs > clip_threshold)[:, None, :]
    return decide_frames(frame_probs, gate, np.full(frame_probs.shape[2], frame_threshold), median_frames=width)


def score_gate(strong: Mapping[str, Sequence[tuple[str, float, float]]], keys: Sequence[str],
               frame_probs: np.ndarray, clip_probs: np.ndarray, classes: Sequence[str], frame_threshold: float,
               width: int = 1, clip_seconds: float = 10.0, eval_classes: Sequence[str] | None = None,
               clip_threshold: float = 0.5) -> dict:
    """Segment scores (:func:`evaluate_localization`) of the gated decision on clips ``keys``."""
    active = gated_activity(frame_probs, clip_probs, frame_threshold, width, clip_threshold)
    return dict(evaluate_localization({k: strong.get(k, []) for k in keys}, dict(zip(keys, active)), classes,
                                      clip_seconds=clip_seconds, eval_classes=eval_classes))


def tune_gate(strong: Mapping[str, Sequence[tuple[str, float, float]]], keys: Sequence[str],
              frame_probs: np.ndarray, clip_probs: np.ndarray, classes: Sequence[str], clip_seconds: float = 10.0,
              eval_classes: Sequence[str] | None = None, thresholds: Sequence[float] = FRAME_THRESHOLDS,
              widths: Sequence[int] = WIDTHS,
              clip_thresholds: Sequence[float] = (0.5,)) -> tuple[float, int, float, float]:
    """(frame threshold, width, clip threshold, segment F1) of the best gated decision on clips
    ``keys``; ties go to the earlier candidate, so the clip decision alone wins unless frames do
    better. With ``clip_thresholds`` = CLIP_THRESHOLDS the search includes the tuned clip decision
    repeated (frame threshold -inf), so on ``keys`` it never scores below that baseline."""
    best = (-np.inf, 1, 0.5, -1.0)
    for clip_thr in clip_thresholds:
        for width in widths:
            for thr in thresholds:
                f1 = score_gate(strong, keys, frame_probs, clip_probs, classes, thr, width, clip_seconds,
                                eval_classes, clip_threshold=clip_thr)["f1"]
                if f1 > best[3]:
                    best = (float(thr), int(width), float(clip_thr), float(f1))
    return best


def tune_clip_threshold(strong: Mapping[str, Sequence[tuple[str, float, float]]], keys: Sequence[str],
                        clip_probs: np.ndarray, classes: Sequence[str], n_frames: int, clip_seconds: float = 10.0,
                        eval_classes: Sequence[str] | None = None,
                        thresholds: Sequence[float] = CLIP_THRESHOLDS) -> tuple[float, float]:
    """(clip threshold, segment F1) of the best clip decision repeated over time on clips ``keys``:
    the baseline the frame outputs must beat once the clip threshold is tuned as well."""
    frames = np.repeat(np.asarray(clip_probs)[:, None, :], n_frames, axis=1)
    best = (0.5, -1.0)
    for thr in thresholds:
        f1 = score_gate(strong, keys, frames, clip_probs, classes, -np.inf, 1, clip_seconds, eval_classes,
                        clip_threshold=thr)["f1"]
        if f1 > best[1]:
            best = (float(thr), float(f1))
    return best
