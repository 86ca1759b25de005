"""The musicnn front end: its rows against the network run by hand, quantisation, streaming."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from instrec.features import musicnn as M
from instrec.features.frontends import get_frontend
from instrec.features.musicnn_frontend import DIM, FRAMES_PER_ROW, quantise_channels


def test_quantisation_is_the_stated_log_map():
    x = np.array([-3.0, 0.0, 0.5, 10.0, 100.0, 1e4])
    expected = np.clip(np.rint(255 * np.log1p(np.maximum(x, 0)) / np.log1p(100)), 0, 255)
    assert quantise_channels(x).tolist() == expected.astype(int).tolist() == [0, 0, 22, 132, 255, 255]


def _signal(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.4 * np.sin(2 * np.pi * 330 * t) * (1 + np.sin(2 * np.pi * 0.7 * t)) / 2
            + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def test_rows_match_the_network_run_by_hand(musicnn_weights_dir):
    fe = get_frontend("musicnn", weights_dir=musicnn_weights_dir)
    audio = _signal(7.0)
    rows = fe.features(audio, 16000)
    assert rows.shape == (7, DIM) and rows.dtype == np.uint8  # floor(7 / 0.96) = 7 rows
    x = audio / np.abs(audio).max()
    # Rows 0-2 come from the patch of spectrogram frames 0..186, rows 3-5 from 180..366.
    mel = M.log_mel(x, 0, 187 + 180)
    with torch.inference_mode():
        out = fe.model(torch.from_numpy(np.stack([mel[:187], mel[180:367]])))
    feats = out["features"].numpy()
    for row in range(6):
        patch, k = divmod(row, 3)
        tags = np.rint(out["taggram"][patch].numpy() * 255)
        assert np.abs(rows[row, :50].astype(int) - tags).max() <= 1
        chans = quantise_channels(feats[patch, k * FRAMES_PER_ROW:(k + 1) * FRAMES_PER_ROW].max(axis=0))
        assert np.abs(rows[row, 50:].astype(int) - chans.astype(int)).max() <= 1


def test_streaming_equals_in_memory_and_short_clips_are_padded(musicnn_weights_dir, tmp_path):
    fe = get_frontend("musicnn", weights_dir=musicnn_weights_dir)
    audio = _signal(40.0, seed=1)
    sf.write(tmp_path / "a.flac", audio, 16000)
    assert np.array_equal(fe.features_from_file(tmp_path / "a.flac"), fe.features(sf.read(tmp_path / "a.flac",
                                                                                          dtype="float32")[0], 16000))
    short = fe.features(_signal(1.2), 16000)  # shorter than a musicnn patch
    assert short.shape == (1, DIM) and short[:, :50].max() > 0
    assert fe.describe()["dim"] == DIM and len(fe.describe()["weights_sha256"]) == 1


def test_missing_weights_are_fetched_on_first_use_with_a_note(monkeypatch, tmp_path, capsys, musicnn_wheel):
    from instrec.features import frontends, musicnn_weights

    calls = []

    def fake_download(musicnn_weights_dir, progress=True):
        calls.append(musicnn_weights_dir)
        return musicnn_weights.download_musicnn(musicnn_weights_dir, wheel=musicnn_wheel, progress=False)

    monkeypatch.setattr(frontends, "download_musicnn", fake_download)
    fe = frontends.get_frontend("musicnn", weights_dir=tmp_path / "w", fetch=True)
    assert calls == [tmp_path / "w"] and fe.dim == DIM
    assert "fetching the pretrained musicnn weights" in capsys.readouterr().err
    with pytest.raises(Exception, match="run `instrec download musicnn` first"):
        frontends.get_frontend("musicnn", weights_dir=tmp_path / "empty")


def test_the_msd_model_can_stand_in_for_a_front_end_comparison(musicnn_weights_dir):
    from instrec.features.musicnn_frontend import MusicnnFrontEnd

    rng = np.random.default_rng(3)
    audio = (0.3 * rng.standard_normal(16000 * 4)).astype(np.float32)
    mtt = MusicnnFrontEnd(musicnn_weights_dir)
    msd = MusicnnFrontEnd(musicnn_weights_dir, model="MSD_musicnn")
    assert (mtt.describe()["model"], msd.describe()["model"]) == ("MTT_musicnn", "MSD_musicnn")
    assert list(msd.describe()["weights_sha256"]) == ["musicnn-MSD_musicnn.safetensors"]
    a, b = mtt.features(audio, 16000), msd.features(audio, 16000)
    assert a.shape == b.shape == (4, DIM) and not np.array_equal(a, b)
