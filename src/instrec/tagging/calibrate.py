"""Tune a run's per-second policy on clips with strong labels, and store it in its ``config.json``.

:func:`tune_run_policy` runs the model exactly as ``instrec predict`` does (front-end rows on the
0-255 scale, musicnn's tag prior where the run uses it, NaN for instruments never learned) over
clips of a corpus written by ``instrec synth`` (which has ``strong-labels.csv``), and picks the
frame thresholds and smoothing of :func:`instrec.evaluation.frame_policy.tune_frame_policy`,
gated by the run's clip thresholds. The default-model export and the benchmarks call it, so a
new model gets its policy from the same function.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from instrec.data.layout import read_corpus_stats, read_strong_labels
from instrec.data.openmic import load_split
from instrec.evaluation.frame_policy import MIN_SECONDS, POLICY_KEY, policy_to_json, tune_frame_policy
from instrec.features import FRAME_SECONDS
from instrec.run import read_config, read_validation_keys, write_config
from instrec.tagging.predict import Tagger


def clip_outputs(tagger: Tagger, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(clip (N, C), frame (N, T, C)) probabilities of clips ``X`` (N, T, F), features scaled to
    [0, 1] as the dataset loader gives them, through the tagger's own path."""
    rows = np.rint(np.asarray(X) * 255.0).astype(np.uint8)
    tags = [tagger.tag_features(r) for r in rows]
    return np.stack([t.probabilities for t in tags]), np.stack([t.frame_probabilities for t in tags])


def corpus_clips(data_dir: str | Path, split: str, keys: Sequence[str] | None = None):
    """The clips of partition ``split`` of ``data_dir`` (only ``keys`` when given, in that order)."""
    data = load_split(data_dir, split)
    if keys is None:
        return data
    index = {k: i for i, k in enumerate(data.sample_key)}
    missing = [k for k in keys if k not in index]
    if missing:
        raise ValueError(f"{data_dir}: {len(missing)} clip(s) not in partition {split}, e.g. {missing[0]}")
    return data.subset(np.array([index[k] for k in keys]))


def tune_run_policy(run_dir: str | Path, data_dir: str | Path, keys: Sequence[str] | None = None,
                    split: str = "train", write: bool = True, min_seconds: float = MIN_SECONDS,
                    tagger: Tagger | None = None, gate_frames: int | None = None) -> dict[str, Any]:
    """Tune the frame policy of ``run_dir`` on clips of ``data_dir`` (their strong labels) and,
    with ``write``, store it as ``frame_policy`` in the run's config. ``keys``: the clips (None:
    the run's validation clips, which must lie in ``split``). Scored over the instruments the
    corpus renders. ``min_seconds`` and ``gate_frames`` (long files only, so not tuned on clips)
    are stored as given; ``gate_frames=None`` keeps the run's current one, so a policy tuned again
    keeps the gate chosen on long files. Returns the policy (thresholds ``-inf`` as a float)."""
    run_dir = Path(run_dir)
    tagger = tagger or Tagger(run_dir, threshold="tuned")
    keys = list(read_validation_keys(run_dir) if keys is None else keys)
    data = corpus_clips(data_dir, split, keys)
    clip, frame = clip_outputs(tagger, data.X)
    with np.errstate(invalid="ignore"):
        gate = np.repeat((clip > tagger.thresholds)[:, None, :], frame.shape[1], axis=1)
    stats = read_corpus_stats(data_dir) or {}
    strong = read_strong_labels(data_dir, tagger.classes)
    policy = tune_frame_policy(strong, keys, frame, gate, tagger.classes,
                               clip_seconds=round(frame.shape[1] * FRAME_SECONDS + 0.4),
                               eval_classes=stats.get("renderable_classes", tagger.classes),
                               tuned_on=f"tuned on {len(keys)} clips with strong labels of a "
                                        f"{stats.get('recipe', 'synthetic')} corpus, seed {stats.get('seed', '?')}",
                               min_seconds=min_seconds)
    if gate_frames is None:
        gate_frames = (tagger.config.get(POLICY_KEY) or {}).get("gate_frames")
    if gate_frames is not None:
        policy["gate_frames"] = int(gate_frames)
    if write:
        config = read_config(run_dir)
        config[POLICY_KEY] = policy_to_json(policy)
        write_config(run_dir, config)
    return policy


def score_run_policy(run_dir: str | Path, data_dir: str | Path, split: str = "test", keys: Sequence[str] | None = None,
                     tune_keys: Sequence[str] | None = None, tune_split: str = "train", write: bool = True,
                     with_psds: bool = True) -> dict[str, Any]:
    """Tune the run's frame policy on ``tune_keys`` of ``tune_split`` (None: its validation clips),
    then score it on the clips of ``split`` (``keys``: a subset, in order) beside the baselines of
    :func:`instrec.evaluation.sed_scores.compare_decisions`; ``policy`` holds the policy used."""
    from instrec.evaluation.sed_scores import compare_decisions

    tagger = Tagger(run_dir, threshold="tuned")
    policy = tune_run_policy(run_dir, data_dir, tune_keys, tune_split, write=write, tagger=tagger)
    data = corpus_clips(data_dir, split, keys)
    clip, frame = clip_outputs(tagger, data.X)
    stats = read_corpus_stats(data_dir) or {}
    keys = [str(k) for k in data.sample_key]
    scores = compare_decisions(read_strong_labels(data_dir, tagger.classes), keys, frame, clip, tagger.thresholds,
                               policy, tagger.classes, clip_seconds=round(frame.shape[1] * FRAME_SECONDS + 0.4),
                               eval_classes=stats.get("renderable_classes", tagger.classes), with_psds=with_psds)
    scores["policy"]["frame_policy"] = policy
    return scores
