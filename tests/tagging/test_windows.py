"""Windows of long files: the clip windows by hand, and the short gate windows against a
window-by-window computation of the same model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from instrec._io import InstrecError
from instrec.models.inference import run_model
from instrec.models.registry import build_model
from instrec.tagging.segments import resolve_frame_policy
from instrec.tagging.windows import clip_windows, gate_probabilities, spread_max, stitch


def test_clip_windows_cover_the_file_and_keep_the_training_length():
    assert clip_windows(7, 10) == [(0, 7)]
    assert clip_windows(10, 10) == [(0, 10)]
    assert clip_windows(25, 10) == [(0, 10), (10, 20), (15, 25)]  # the last moved back to end at frame 25
    assert clip_windows(30, 10) == [(0, 10), (10, 20), (20, 30)]


def test_spread_max_and_stitch_by_hand():
    spans = [(0, 3), (2, 5)]
    per_window = np.array([[0.2, 0.9], [0.6, 0.1]], np.float32)
    gate = spread_max(per_window, spans, 6)
    assert gate[:, 0].tolist() == pytest.approx([0.2, 0.2, 0.6, 0.6, 0.6, -np.inf])
    assert gate[:, 1].tolist() == pytest.approx([0.9, 0.9, 0.9, 0.1, 0.1, -np.inf])
    frames = np.arange(12, dtype=np.float32).reshape(2, 3, 2)  # window 0: 0..5, window 1: 6..11
    out = stitch(frames, spans, 5)
    assert out[:, 0].tolist() == [0, 2, 4, 8, 10]  # frame 2 keeps the first window's value


def test_gate_probabilities_equal_the_window_by_window_maximum():
    torch.manual_seed(0)
    model = build_model("att", n_classes=3, n_features=8, n_frames=10).eval()
    x = np.random.default_rng(1).random((23, 8), dtype=np.float32)
    w = 5
    expected = np.full((23, 3), -np.inf)
    for s in range(23 - w + 1):
        clip = run_model(model, x[None, s:s + w]).clip[0]
        expected[s:s + w] = np.maximum(expected[s:s + w], clip)
    assert np.allclose(gate_probabilities(model, x, w), expected, atol=1e-6)
    # A rule on the windows' clips (the tag prior) sees each window's own span.
    seen = []
    gate = gate_probabilities(model, x, w, lambda p, spans: seen.extend(spans) or
                              np.array([[s[0] / 100] * 3 for s in spans]))
    assert seen == [(s, s + w) for s in range(19)]
    assert np.allclose(gate[:, 0], [min(t, 18) / 100 for t in range(23)])


def test_gate_frames_is_checked_and_stated():
    config = {"classes": ["a", "b"], "frame_policy": {"frame_thresholds": [0.5, None], "median_frames": 1,
                                                      "fill_gap_frames": 0, "min_event_frames": 1, "tuned_on": "x"}}
    assert "window around it" not in resolve_frame_policy(config, np.full(2, 0.5))["description"]
    config["frame_policy"]["gate_frames"] = 5
    assert "any 5-frame window around it" in resolve_frame_policy(config, np.full(2, 0.5))["description"]
    for bad in (0, 2.5, "5", True):
        config["frame_policy"]["gate_frames"] = bad
        with pytest.raises(InstrecError, match="gate_frames in the run's config: give a whole number of frames"):
            resolve_frame_policy(config, np.full(2, 0.5))


def test_a_long_file_is_gated_by_the_short_windows_and_a_clip_long_one_is_not(tiny_dataset, tmp_path):
    from instrec.run import read_config, write_config
    from instrec.tagging.predict import Tagger
    from instrec.tagging.segments import decide
    from instrec.training.config import TrainConfig
    from instrec.training.loop import train

    run = tmp_path / "run"
    train(TrainConfig(data=str(tiny_dataset), out=str(run), model="att", epochs=1, seed=0, threads=1), progress=False)
    config = read_config(run)
    n_classes = len(config["classes"])
    config["frame_policy"] = {"frame_thresholds": [None] * n_classes, "median_frames": 1, "fill_gap_frames": 0,
                              "min_event_frames": 1, "min_seconds": 0.0, "tuned_on": "test", "gate_frames": 3}
    write_config(run, config)
    tagger = Tagger(run, allow_unfinished=True)
    feats = np.random.default_rng(2).integers(40, 90, size=(25, 16)).astype(np.uint8)
    long = tagger.tag_features(feats)
    assert "gated by windows of 3 frames" in long.aggregation
    x = feats.astype(np.float32) / 255.0
    gate = gate_probabilities(tagger.model, x, 3)
    _, expected = decide(long.frame_probabilities, gate, tagger.thresholds, tagger.frame_policy, True, long.present, 0.96)
    assert np.array_equal(long.frame_present, expected)
    short = tagger.tag_features(feats[:10])  # one clip: its own clip answer gates it, as before
    assert "gated by" not in short.aggregation
    assert np.array_equal(short.frame_present, np.repeat(short.present[None], 10, axis=0))
