"""Front ends: the log-mel stage against librosa, patch counting, warnings, peak normalisation,
streamed == in-memory features (block boundaries), both front ends' output contract, speed."""
from __future__ import annotations

import json
import warnings

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file as save_torch

from instrec._io import InstrecError
from instrec.features import FRONTEND_NAMES
from instrec.features import logmel as lm
from instrec.features.audio import AudioWarning, load_audio, stream_audio
from instrec.features.frontend import GROUP_PATCHES
from instrec.features.frontends import LogMelFrontEnd, describe_mismatch, get_frontend
from instrec.features.vggish import PARAM_SHAPES, pca_quantise


def _music_like(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """Decaying harmonic notes plus a little noise, float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.02 * rng.standard_normal(len(t))
    for k, f0 in enumerate((220.0, 330.0, 262.0, 392.0)):
        env = np.exp(-4.0 * ((t - 0.3 * k) % 1.2))
        x += sum(0.3 / h * np.sin(2 * np.pi * f0 * h * t) for h in range(1, 5)) * env
    return x.astype(np.float32)


# ---------------------------------------------------------------- log-mel stage vs librosa
def test_stft_magnitude_matches_librosa():
    x = _music_like(2.0)
    # librosa centres the 400-sample window in its 512-sample frame: 56 leading zeros align
    # frame i with ours (only the phase differs, the magnitude is identical).
    padded = np.concatenate([np.zeros(56), x.astype(np.float64), np.zeros(56)])
    ref = np.abs(librosa.stft(padded, n_fft=512, hop_length=160, win_length=400, window="hann",
                              center=False)).T
    ours = lm.stft_magnitude(x)
    assert ours.shape == ref.shape == (lm.n_frames(len(x)), 257)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6 * ref.max())


def test_mel_matrix_is_htk_mel_domain_triangles():
    ours = lm.mel_matrix()
    # same bands built from librosa's HTK conversions, triangles linear in mel (the VGGish rule)
    bins_mel = librosa.hz_to_mel(np.linspace(0, 8000, 257), htk=True)
    edges = librosa.hz_to_mel(librosa.mel_frequencies(66, fmin=125, fmax=7500, htk=True), htk=True)
    rising = (bins_mel[:, None] - edges[:-2]) / (edges[1:-1] - edges[:-2])
    falling = (edges[2:] - bins_mel[:, None]) / (edges[2:] - edges[1:-1])
    ref = np.maximum(0, np.minimum(rising, falling))
    ref[0] = 0
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-10)
    # librosa's own filter bank (triangles linear in Hz) has the same support and peaks, close weights
    hz = librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=125, fmax=7500, htk=True, norm=None).T
    assert ((hz > 0) == (ours > 0)).all()
    assert (hz.argmax(axis=0) == ours.argmax(axis=0)).all()
    assert np.abs(hz - ours).max() < 0.01


def test_log_mel_spectrogram_matches_librosa_pipeline():
    x = _music_like(3.0, seed=4)
    padded = np.concatenate([np.zeros(56), x.astype(np.float64), np.zeros(56)])
    mag = np.abs(librosa.stft(padded, n_fft=512, hop_length=160, win_length=400, window="hann", center=False)).T
    ref = np.log(mag @ lm.mel_matrix() + 0.01)
    np.testing.assert_allclose(lm.log_mel_spectrogram(x), ref, rtol=1e-4, atol=1e-6)
    hz = librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=125, fmax=7500, htk=True, norm=None)
    np.testing.assert_allclose(lm.log_mel_spectrogram(x), np.log(mag @ hz.T + 0.01), atol=0.05)


def test_patch_counts_follow_duration():
    for seconds, want in [(10.0, 10), (9.99, 10), (0.96 * 5, 5), (0.96 * 5 - 0.001, 4), (0.5, 1), (1.0, 1)]:
        n = int(round(seconds * 16000))
        assert lm.n_patches(n) == want, seconds
        assert lm.log_mel_patches(np.zeros(n, np.float32)).shape == (want, 96, 64)
    # zero-padding the 240-sample tail leaves the reference's own patches untouched
    x = _music_like(2.0)
    n_ref = (len(x) - lm.PATCH_TAIL) // lm.PATCH_SAMPLES
    ref = lm.log_mel_spectrogram(x)[: n_ref * 96].reshape(n_ref, 96, 64).astype(np.float32)
    np.testing.assert_array_equal(lm.log_mel_patches(x)[:n_ref], ref)


# ---------------------------------------------------------------- shared front-end behaviour
@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    """Random He-scaled VGGish weights and an orthogonal PCA, in the converted format."""
    root = tmp_path_factory.mktemp("weights")
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in PARAM_SHAPES.items():
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        scale = np.sqrt(2.0 / fan_in) if key.endswith("weight") else 0.01
        state[key] = torch.randn(shape, generator=gen) * scale
    save_torch(state, str(root / "vggish.safetensors"))
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((128, 128)))
    save_numpy({"pca_eigen_vectors": q * 0.7, "pca_means": np.full(128, 1.5)}, str(root / "vggish_pca.safetensors"))
    return root


@pytest.fixture(scope="module")
def vggish(weights_dir):
    return get_frontend("vggish", weights_dir=weights_dir)


def test_registry():
    assert FRONTEND_NAMES == ("logmel", "vggish", "musicnn")
    assert get_frontend("logmel").name == "logmel"
    with pytest.raises(InstrecError, match="unknown front end 'mfcc'"):
        get_frontend("mfcc")


def test_logmel_contract_and_determinism():
    fe = get_frontend("logmel")
    x = _music_like(10.0, sr=22050)
    a = fe.features(x, 22050)
    assert a.shape == (10, 128) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, fe.features(x.copy(), 22050))
    assert 0 < a.min() and a.max() < 255  # music-like input lands inside the calibrated range
    # stereo input is mixed to mono (mean of channels)
    np.testing.assert_array_equal(fe.features(np.stack([x, x], axis=1), 22050), a)


def test_logmel_row_layout_and_calibration():
    fe = LogMelFrontEnd()
    t = np.arange(16000 * 2) / 16000
    feats = fe.features(np.sin(2 * np.pi * 1000 * t).astype(np.float32), 16000)
    band = np.argmax(lm.mel_matrix()[int(1000 / 8000 * 256)])  # mel band peaking at 1 kHz
    assert np.argmax(feats[0, :64]) == band
    assert feats[0, 64:].max() <= 2  # steady sine: near-zero std in every band
    # silence: every mean at the log(0.01) floor, std 0
    with pytest.warns(AudioWarning, match="silent"):
        silent = fe.features(np.zeros(16000 * 3, np.float32), 16000)
    floor = int(np.rint((np.log(0.01) + 4.75) * 25.5))
    assert silent.shape == (3, 128) and (silent[:, :64] == floor).all() and (silent[:, 64:] == 0).all()


@pytest.mark.parametrize("name", FRONTEND_NAMES)
def test_peak_normalisation_makes_gain_irrelevant(name, vggish, musicnn_weights_dir):
    fe = vggish if name == "vggish" else get_frontend(name, weights_dir=musicnn_weights_dir)
    x = _music_like(3.0)
    np.testing.assert_array_equal(fe.features(x, 16000), fe.features(x * np.float32(0.125), 16000))


@pytest.mark.parametrize("name", FRONTEND_NAMES)
def test_short_clip_is_padded_with_warning(name, vggish, musicnn_weights_dir):
    fe = vggish if name == "vggish" else get_frontend(name, weights_dir=musicnn_weights_dir)
    x = _music_like(0.4)
    with pytest.warns(AudioWarning, match="zero-padded to one patch"):
        short = fe.features(x, 16000)
    assert short.shape == (1, fe.dim) and short.dtype == np.uint8
    padded = np.concatenate([x, np.zeros(16000 - len(x), np.float32)])
    np.testing.assert_array_equal(short, fe.features(padded, 16000))


def test_bad_arrays_raise():
    fe = LogMelFrontEnd()
    with pytest.raises(InstrecError, match="no samples"):
        fe.features(np.zeros(0, np.float32), 16000)
    with pytest.raises(InstrecError, match="NaN or Inf"):
        fe.features(np.array([0.0, np.nan] * 8000, np.float32), 16000)


def test_vggish_features_compose_model_and_pca(vggish):
    x = _music_like(5.0, sr=44100)
    feats = vggish.features(x, 44100)
    assert feats.shape == (5, 128) and feats.dtype == np.uint8
    assert np.ptp(feats.astype(int)) > 20  # random weights still give varied codes
    from instrec.features.audio import resample

    y = resample(x, 44100, 16000)
    patches = lm.log_mel_patches(y / np.float32(np.abs(y).max()))
    want = pca_quantise(vggish.embeddings(patches), vggish.pca["pca_eigen_vectors"], vggish.pca["pca_means"])
    np.testing.assert_array_equal(feats, want)


# ---------------------------------------------------------------- streaming == in memory
@pytest.mark.parametrize("cache_seconds, spill, decodes", [
    (600.0, True, 1),  # pass 1's blocks kept in memory
    (0.0, True, 1),    # kept in a temporary file
    (0.0, False, 2),   # not kept: decoded twice
])
def test_logmel_streaming_three_minutes(tmp_path, monkeypatch, cache_seconds, spill, decodes):
    from instrec.features import frontend

    sr = 22050
    x = np.tile(_music_like(9.0, sr=sr, seed=2), 21)[: int(180.5 * sr)]
    path = tmp_path / "long.flac"
    sf.write(str(path), np.stack([x, -0.5 * x], 1), sr, subtype="PCM_24")
    fe = LogMelFrontEnd()
    fe.cache_seconds, fe.spill = cache_seconds, spill
    whole = fe.features(load_audio(path, 16000), 16000)
    calls = []
    monkeypatch.setattr(frontend, "stream_audio", lambda *a: calls.append(a) or stream_audio(*a))
    streamed = fe.features_from_file(path, block_seconds=1.37)  # blocks straddle patch and group bounds
    assert whole.shape == (int(180.5 / 0.96), 128)
    np.testing.assert_array_equal(streamed, whole)
    assert len(calls) == decodes


def _full_disk(*args, **kwargs):
    raise OSError(28, "No space left on device")


def test_a_temporary_file_that_cannot_be_written_means_decoding_again(tmp_path, monkeypatch):
    from instrec.features import audio, frontend

    x = _music_like(20.0, sr=16000, seed=3)
    path = tmp_path / "a.wav"
    sf.write(str(path), x, 16000, subtype="FLOAT")
    fe = LogMelFrontEnd()
    fe.cache_seconds = 5.0
    kept = audio.DecodedBlocks(16000 * 5)
    monkeypatch.setattr(audio.tempfile, "TemporaryFile", _full_disk)
    for block in stream_audio(path, 16000, 2.0):
        kept.add(block)
    assert kept.replay(32000) is None and kept.file is None
    calls = []
    monkeypatch.setattr(frontend, "stream_audio", lambda *a: calls.append(a) or stream_audio(*a))
    np.testing.assert_array_equal(fe.features_from_file(path, block_seconds=2.0), fe.features(x, 16000))
    assert len(calls) == 2


def test_spilled_blocks_read_back_equal_and_the_file_is_closed():
    from instrec.features.audio import DecodedBlocks

    rng = np.random.default_rng(0)
    blocks = [rng.standard_normal(n).astype(np.float32) for n in (700, 300, 1234, 5)]
    with DecodedBlocks(limit=1000) as kept:  # the first two fit in memory, the third does not
        for b in blocks:
            kept.add(b)
        spill = kept.file
        assert spill is not None and kept.blocks == []
        read = list(kept.replay(1000))
    assert [len(b) for b in read] == [1000, 1000, 239] and spill.closed and kept.file is None
    np.testing.assert_array_equal(np.concatenate(read), np.concatenate(blocks))


def test_vggish_streaming_matches_in_memory(tmp_path, vggish):
    n_patches = GROUP_PATCHES + 3  # one full group plus a partial one
    x = _music_like(n_patches * 0.96 + 0.5, sr=16000, seed=5)
    path = tmp_path / "clip.wav"
    sf.write(str(path), x, 16000, subtype="FLOAT")
    vggish.cache_seconds = 0.0
    try:
        streamed = vggish.features_from_file(path, block_seconds=2.9)
    finally:
        vggish.cache_seconds = 600.0
    whole = vggish.features(load_audio(path, 16000), 16000)
    assert streamed.shape == (n_patches, 128)
    np.testing.assert_array_equal(streamed, whole)


def test_file_errors_and_warnings_name_the_file(tmp_path):
    fe = LogMelFrontEnd()
    with pytest.raises(InstrecError, match="missing.wav"):
        fe.features_from_file(tmp_path / "missing.wav")
    path = tmp_path / "quiet.wav"
    sf.write(str(path), np.zeros(8000, np.float32), 16000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        feats = fe.features_from_file(path)
    messages = [str(w.message) for w in caught if issubclass(w.category, AudioWarning)]
    assert feats.shape == (1, 128) and len(messages) == 2 and all("quiet.wav" in m for m in messages)


# ---------------------------------------------------------------- describe, speed
def test_describe_records_parameters_and_weight_hashes(vggish, weights_dir):
    d_log = get_frontend("logmel").describe()
    d_vgg = vggish.describe()
    json.dumps(d_log), json.dumps(d_vgg)  # serialisable
    assert d_log["name"] == "logmel" and d_log["n_mels"] == 64 and d_log["mean_range"] == [-4.75, 5.25]
    from instrec.fetch import sha256_file

    assert d_vgg["weights_sha256"]["vggish.safetensors"] == sha256_file(weights_dir / "vggish.safetensors")
    assert describe_mismatch(d_vgg, vggish.describe()) == []
    changed = dict(d_vgg, weights_sha256={"vggish.safetensors": "0" * 64})
    assert any("weights_sha256" in p for p in describe_mismatch(changed, d_vgg))
    assert describe_mismatch({"name": "vggish", "source": "OpenMIC"}, d_log)[0].startswith("front end")
