"""Localisation with the field's tools: PSDS (threshold-free) and the per-second decisions vs. both baselines.

* :func:`psds` wraps ``sed_scores_eval`` (Ebbers et al. 2022; ``pip install 'instrec[sed]'``): the
  polyphonic sound detection score (Bilen et al. 2020) of frame scores against strong labels, under
  the DCASE 2021+ scenario 1 (``dtc = gtc = 0.7``, ``alpha_st = 1``, no cross-trigger term, eFPR up to
  100 per hour) or scenario 2 (``dtc = gtc = 0.1``, ``cttc = 0.3``, ``alpha_ct = 0.5``). It needs
  no threshold: it integrates over all of them, so it scores the frame probabilities, not a policy.
* :func:`compare_decisions` scores, on the same clips and 1-s segments
  (:func:`instrec.evaluation.localization.evaluate_localization`): the frame policy's decisions,
  the clip answer spread over the clip (at 0.5 and at the run's clip thresholds), nothing at all,
  and the raw frames at 0.5.

Shapes: frame scores ``(N, T, C)`` of frames of ``hop`` seconds; clip probabilities ``(N, C)``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from instrec.evaluation.frame_policy import apply_policy
from instrec.evaluation.localization import evaluate_localization
from instrec.features import FRAME_SECONDS

#: PSDS scenarios: sed_scores_eval.intersection_based.psds keyword arguments.
SCENARIOS: dict[str, dict[str, float]] = {
    "psds1": {"dtc_threshold": 0.7, "gtc_threshold": 0.7, "alpha_ct": 0.0, "alpha_st": 1.0, "max_efpr": 100.0},
    "psds2": {"dtc_threshold": 0.1, "gtc_threshold": 0.1, "cttc_threshold": 0.3, "alpha_ct": 0.5, "alpha_st": 1.0,
              "max_efpr": 100.0},
}


def psds(strong: Mapping[str, Sequence[tuple[str, float, float]]], keys: Sequence[str], scores: np.ndarray,
         classes: Sequence[str], clip_seconds: float = 10.0, eval_classes: Sequence[str] | None = None,
         scenario: str = "psds1", hop: float = FRAME_SECONDS) -> float:
    """PSDS of frame ``scores`` (N, T, C) of clips ``keys`` against their strong labels, over
    those of ``eval_classes`` (default all) that sound in at least one clip (PSDS is undefined
    for a class without a reference event); NaN scores (instruments never learned) count as 0.
    NaN when fewer than two instruments sound."""
    try:
        import pandas as pd

        _psds = _import_psds()
    except ImportError as exc:  # optional: the [sed] extra
        raise ImportError("PSDS needs sed_scores_eval: pip install 'instrec[sed]'") from exc
    sounding = {inst for k in keys for inst, a, b in strong.get(k, []) if b > a}
    names = [c for c in (classes if eval_classes is None else eval_classes) if c in sounding]
    if len(names) < 2:
        return float("nan")
    cols = [list(classes).index(c) for c in names]
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64)[:, :, cols], nan=0.0)
    stamps = np.minimum(hop * np.arange(scores.shape[1] + 1), clip_seconds)

    def frame(s: np.ndarray):
        # One pandas block per column: sed_scores_eval 0.0.4 hands the class columns to Cython as a
        # writable buffer, and under pandas 3 (copy-on-write) only a multi-block to_numpy() copy is.
        return pd.concat([pd.DataFrame({"onset": stamps[:-1], "offset": stamps[1:]}),
                          *(pd.DataFrame({n: s[:, j].copy()}) for j, n in enumerate(names))], axis=1)

    frames = {str(k): frame(s) for k, s in zip(keys, scores)}
    truth = {str(k): [(float(a), min(float(b), clip_seconds), inst) for inst, a, b in strong.get(k, [])
                      if inst in names and b > a] for k in keys}
    value, *_ = _psds(frames, truth, {str(k): float(clip_seconds) for k in keys}, **SCENARIOS[scenario],
                      unit_of_time="hour")
    return float(value)


def psds_available() -> bool:
    """Whether sed_scores_eval (the ``[sed]`` extra) can be imported; PSDS is left out otherwise."""
    try:
        _import_psds()
    except ImportError:
        return False
    return True


def _import_psds():
    """sed_scores_eval's psds; its import chain (sed_eval, dcase_util) warns that pkg_resources is
    deprecated, which is none of the user's business: silenced."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sed_scores_eval.intersection_based import psds
    return psds


def compare_decisions(strong: Mapping[str, Sequence[tuple[str, float, float]]], keys: Sequence[str],
                      frame: np.ndarray, clip: np.ndarray, thresholds: np.ndarray, policy: Mapping[str, Any],
                      classes: Sequence[str], clip_seconds: float = 10.0,
                      eval_classes: Sequence[str] | None = None, with_psds: bool = True) -> dict[str, dict]:
    """Segment scores of each way to say when (module docstring) on clips ``keys``: method ->
    :func:`evaluate_localization` result; ``psds`` -> {frames, spread_clip: PSDS1, ...2} when asked
    and sed_scores_eval is installed.

    ``frame`` (N, T, C) and ``clip`` (N, C) are the model's outputs (as the tagger fuses them);
    ``thresholds`` (C,) the clip thresholds that gate the policy and decide the spread answer."""
    frame, clip = np.asarray(frame, np.float64), np.asarray(clip, np.float64)
    n_frames = frame.shape[1]
    spread = np.repeat(clip[:, None, :], n_frames, axis=1)
    with np.errstate(invalid="ignore"):
        gate = spread > np.asarray(thresholds)
    decisions = {
        "policy": apply_policy(frame, gate, policy),
        "spread_clip_tuned": gate,
        "spread_clip_0.5": np.nan_to_num(spread) > 0.5,
        "frames_0.5": np.nan_to_num(frame) > 0.5,
        "nothing": np.zeros_like(gate),
    }
    out: dict[str, Any] = {name: evaluate_localization({k: strong.get(k, []) for k in keys}, dict(zip(keys, active)),
                                                       classes, clip_seconds=clip_seconds, eval_classes=eval_classes)
                           for name, active in decisions.items()}
    if with_psds and psds_available():
        out["psds"] = {f"{what}_{sc}": psds(strong, keys, s, classes, clip_seconds, eval_classes, sc)
                       for what, s in (("frames", frame), ("spread_clip", spread)) for sc in SCENARIOS}
    return out
