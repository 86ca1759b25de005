"""The default model that ships in the package: it loads, blends musicnn's tags as stated, tags real audio."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from instrec.classes import OPENMIC_CLASSES
from instrec.cli import main
from instrec.features.musicnn import MTT_TAGS
from instrec.features.musicnn_frontend import DIM, OPENMIC_TAGS
from instrec.models.inference import run_model
from instrec.tagging.formats import parse_csv
from instrec.tagging.predict import Tagger, default_run_dir, predict

REAL = Path(__file__).resolve().parents[2] / "examples" / "real"


def test_the_packaged_default_model_loads():
    tagger = Tagger()
    assert tagger.run_dir == default_run_dir() and tagger.frontend_name == "musicnn"
    assert tagger.classes == list(OPENMIC_CLASSES) and tagger.config["n_features"] == DIM
    assert tagger.tag_prior and tagger.config["tag_prior"] == {"rule": "noisy-or"}
    assert tagger.config["default_model"]["rebuild"] == "make default-model"


def test_tag_prior_adds_musicnn_tags_to_the_classes_they_name():
    tagger = Tagger()
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 256, size=(10, DIM)).astype(np.uint8)
    tags = tagger.tag_features(rows)
    model_clip = run_model(tagger.model, rows[None].astype(np.float32) / 255.0).clip[0]
    for c, name in enumerate(OPENMIC_CLASSES):
        if name in OPENMIC_TAGS:
            cols = [MTT_TAGS.index(t) for t in OPENMIC_TAGS[name]]
            prior = (rows[:, cols].astype(np.float32) / 255.0).max(axis=1).mean()
            assert tags.probabilities[c] == pytest.approx(1 - (1 - prior) * (1 - model_clip[c]), abs=1e-5)
        else:
            assert tags.probabilities[c] == pytest.approx(model_clip[c], abs=1e-6)
    assert "noisy-OR" in tags.aggregation


def test_predict_without_a_run_tags_real_recordings(monkeypatch, musicnn_weights_dir, tmp_path, capsys):
    monkeypatch.setenv("INSTREC_WEIGHTS_DIR", str(musicnn_weights_dir))
    files = sorted(REAL.glob("*.flac"))
    results = predict(None, files, per_second=True)
    assert not results.failures and results.probabilities.shape == (2, 20)
    piano = results.files[0]
    assert OPENMIC_CLASSES[int(np.argmax(piano.probabilities))] == "piano"
    assert piano.frame_probabilities.shape == (3, 20) and piano.seconds == pytest.approx(2.97, abs=0.01)
    out = tmp_path / "tags.csv"
    assert main(["predict", str(REAL), "--out", str(out), "-q"]) == 0
    comments, rows = parse_csv(out.read_text())
    assert len(rows) == 2 and comments[0].startswith("threshold: tuned")
