"""How a file longer than one training clip is cut into windows, and the gate of its frames.

A run sees a file through windows of its training-clip length (``n_frames`` frames of 0.96 s):
consecutive ones, the last moved back to end at the last frame (:func:`clip_windows`). The
file's clip probability is the maximum over them, and each frame's outputs come from the
first window that covers it (:func:`stitch`).

The per-second decisions of a long file are gated by a clip answer too (a frame can be active
only where some window around it is tagged present). With the policy's ``gate_frames`` shorter
than the clip, that answer comes from windows of ``gate_frames`` frames starting at every frame
(:func:`gate_probabilities`): an instrument that plays for five seconds of a minute fills half
of a 5-frame window but only a quarter of a 10-frame one, and attention pooling over the longer
window lets the others drown it. The value was chosen on the development recordings
(``benchmarks/bench_localisation.py --real``); without it the gate uses the clip windows.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from instrec.models.inference import run_model

#: Windows of the short gate per model call (bounds memory on hour-long files).
GATE_BATCH = 512


def clip_windows(n: int, w: int) -> list[tuple[int, int]]:
    """(start, stop) frame ranges of ``w`` frames covering ``n`` frames: consecutive, the last
    moved back to end at the last frame, so every window has ``w`` frames when ``n >= w``."""
    if n <= w:
        return [(0, n)]
    starts = list(range(0, n - w + 1, w))
    if starts[-1] + w < n:
        starts.append(n - w)
    return [(s, s + w) for s in starts]


def stitch(per_window: np.ndarray, spans: Sequence[tuple[int, int]], n: int) -> np.ndarray:
    """Per-frame values (n, C) from (W, w, C) window outputs; a frame seen by two windows
    keeps the value of the first."""
    out = np.full((n, per_window.shape[-1]), np.nan, dtype=np.float32)
    for values, (a, b) in zip(per_window, spans):
        fresh = np.isnan(out[a:b, 0])
        out[a:b][fresh] = values[: b - a][fresh]
    return out


def spread_max(window_values: np.ndarray, spans: Sequence[tuple[int, int]], n: int) -> np.ndarray:
    """(n, C): for each frame the maximum of ``window_values`` (W, C) over the windows ``spans``
    that cover it (-inf where none does)."""
    out = np.full((n, window_values.shape[-1]), -np.inf, dtype=np.float32)
    for p, (a, b) in zip(np.asarray(window_values, np.float32), spans):
        out[a:b] = np.fmax(out[a:b], p)
    return out


def gate_probabilities(model: Any, x: np.ndarray, gate_frames: int,
                       clip_of: Callable[[np.ndarray, list[tuple[int, int]]], np.ndarray] | None = None
                       ) -> np.ndarray:
    """(n, C) gate probability of each frame of ``x`` (n, F) features scaled to [0, 1]: the maximum
    clip probability of the windows of ``gate_frames`` frames (one starting at every frame) that
    cover it. ``clip_of(probs (W, C), spans)``: the windows' clip probabilities after any rule the
    run adds (musicnn's tag prior); default: the model's."""
    n = len(x)
    w = min(int(gate_frames), n)
    spans = [(s, s + w) for s in range(n - w + 1)]
    clips = []
    for start in range(0, len(spans), GATE_BATCH):
        part = spans[start:start + GATE_BATCH]
        clips.append(run_model(model, np.stack([x[a:b] for a, b in part])).clip)
    probs = np.concatenate(clips)
    if clip_of is not None:
        probs = clip_of(probs, spans)
    return spread_max(probs, spans, n)
