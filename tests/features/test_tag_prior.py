"""musicnn's own tags joined to a model's probabilities by noisy-OR: by hand, and the many-window
form against the one-window form."""
from __future__ import annotations

import numpy as np

from instrec.features import musicnn as mn
from instrec.features.musicnn_frontend import DIM, with_tag_prior, with_window_tag_prior

CLASSES = ["piano", "trumpet", "voice"]  # piano and voice are named by musicnn's tags, trumpet is not


def _rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, DIM)).astype(np.uint8)


def test_noisy_or_by_hand():
    rows = np.zeros((2, DIM), np.uint8)
    rows[0, mn.MTT_TAGS.index("piano")] = 51    # 0.2
    rows[1, mn.MTT_TAGS.index("piano")] = 153   # 0.6: the clip takes the mean, 0.4
    rows[:, mn.MTT_TAGS.index("female")] = 255  # voice: the largest of its tags, 1.0
    clip, frame = with_tag_prior(rows, CLASSES, np.array([0.5, 0.3, 0.1]), np.full((2, 3), 0.5))
    assert np.allclose(clip, [1 - 0.5 * 0.6, 0.3, 1.0])
    assert np.allclose(frame[:, 0], [1 - 0.5 * 0.8, 1 - 0.5 * 0.4]) and np.allclose(frame[:, 1], 0.5)


def test_the_window_form_equals_one_call_per_window():
    rows = _rows(23)
    spans = [(s, s + 5) for s in range(19)] + [(0, 23), (7, 8)]
    clips = np.random.default_rng(1).random((len(spans), 3)).astype(np.float32)
    expected = np.stack([with_tag_prior(rows[a:b], CLASSES, c)[0] for c, (a, b) in zip(clips, spans)])
    assert np.allclose(with_window_tag_prior(rows, CLASSES, clips, spans), expected, atol=1e-6)
