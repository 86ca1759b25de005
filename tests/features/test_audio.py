"""Decoding, mono mixing, resampling, streaming and input errors of instrec.features.audio."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from instrec._io import InstrecError
from instrec.features.audio import audio_info, load_audio, resample, stream_audio, to_mono

SR = 44100


def _stereo(seconds: float = 2.0, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    left = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([left, 0.5 * left], axis=1).astype(np.float32)  # mono mix = 0.375 sin


def _write(path, data, fmt, subtype, sr=SR):
    sf.write(str(path), data, sr, format=fmt, subtype=subtype)
    return path


FORMATS = [("WAV", "wav", "FLOAT"), ("FLAC", "flac", "PCM_24"), ("OGG", "ogg", "VORBIS"),
           ("MP3", "mp3", "MPEG_LAYER_III")]


@pytest.mark.parametrize("fmt,ext,subtype", FORMATS)
def test_formats_decode_to_mono_16k(tmp_path, fmt, ext, subtype):
    path = _write(tmp_path / f"a.{ext}", _stereo(), fmt, subtype)
    y = load_audio(path, 16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 32000) <= (0 if fmt in ("WAV", "FLAC") else 1200)
    # dominant frequency and level of the channel mean survive (lossy codecs approximately)
    segment = y[4000:20000]
    peak_hz = np.argmax(np.abs(np.fft.rfft(segment))) * 16000 / len(segment)
    assert abs(peak_hz - 440) <= 2
    rms = np.sqrt(np.mean(y[4000:28000] ** 2))
    assert rms == pytest.approx(0.375 / np.sqrt(2), rel=0.05)


def test_lossless_matches_direct_mean_and_soxr(tmp_path):
    data = _stereo(1.3)
    path = _write(tmp_path / "a.wav", data, "WAV", "FLOAT")
    expected = soxr.resample(data.mean(axis=1, dtype=np.float32), SR, 16000, quality="HQ")
    np.testing.assert_array_equal(load_audio(path, 16000), expected)
    np.testing.assert_array_equal(load_audio(path, SR), data.mean(axis=1, dtype=np.float32))


@pytest.mark.parametrize("block_seconds", [0.05, 0.37, 1000.0])
def test_stream_blocks_concatenate_to_load(tmp_path, block_seconds):
    rng = np.random.default_rng(1)
    data = (0.1 * rng.standard_normal((int(3.3 * SR), 2))).astype(np.float32)
    path = _write(tmp_path / "n.flac", data, "FLAC", "PCM_16")
    blocks = list(stream_audio(path, 16000, block_seconds=block_seconds))
    if block_seconds < 1:
        assert len(blocks) > 3
        assert max(len(b) for b in blocks) <= block_seconds * 16000 + 600  # bounded per block
    np.testing.assert_array_equal(np.concatenate(blocks), load_audio(path, 16000, block_seconds=60))


def test_audio_info(tmp_path):
    path = _write(tmp_path / "a.flac", _stereo(1.5), "FLAC", "PCM_16")
    info = audio_info(path)
    assert (info.samplerate, info.channels, info.frames, info.format) == (SR, 2, int(1.5 * SR), "FLAC")
    assert info.duration == pytest.approx(1.5)


def test_to_mono_and_resample_helpers():
    stereo = np.array([[1.0, 0.0], [0.5, 0.5]], dtype=np.float64)
    np.testing.assert_array_equal(to_mono(stereo), np.array([0.5, 0.5], dtype=np.float32))
    assert to_mono(np.zeros(3, dtype=np.int16)).dtype == np.float32
    with pytest.raises(InstrecError, match="shape"):
        to_mono(np.zeros((2, 2, 2)))
    with pytest.raises(InstrecError, match="no channels"):
        to_mono(np.zeros((5, 0), dtype=np.float32))
    with pytest.raises(InstrecError, match="numbers"):
        to_mono(np.array(["a", "b"]))
    x = np.ones(16000, dtype=np.float32)
    assert resample(x, 16000, 16000) is x
    assert len(resample(x, 16000, 8000)) == 8000


def _assert_one_line_error(path, match):
    with pytest.raises(InstrecError) as info:
        load_audio(path, 16000)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    assert match in msg, msg
    return msg


def test_missing_and_empty_files(tmp_path):
    _assert_one_line_error(tmp_path / "nope.wav", "not found")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    _assert_one_line_error(empty, "empty (0 bytes)")
    zero = tmp_path / "zero.wav"
    sf.write(str(zero), np.zeros((0, 1), dtype=np.float32), 16000)
    _assert_one_line_error(zero, "no samples")


def test_non_audio_file(tmp_path):
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"this is a text file, not audio\n" * 50)
    _assert_one_line_error(junk, "not decodable audio")
    with pytest.raises(InstrecError, match="not decodable audio"):
        audio_info(junk)


@pytest.mark.parametrize("fmt,ext,subtype", FORMATS)
def test_truncated_files(tmp_path, fmt, ext, subtype):
    full = _write(tmp_path / f"full.{ext}", _stereo(3.0), fmt, subtype)
    cut = tmp_path / f"cut.{ext}"
    raw = full.read_bytes()
    cut.write_bytes(raw[: len(raw) // 2])
    _assert_one_line_error(cut, "truncated")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf_samples(tmp_path, bad):
    data = np.zeros(1000, dtype=np.float32)
    data[500] = bad
    path = _write(tmp_path / "bad.wav", data, "WAV", "FLOAT", sr=16000)
    _assert_one_line_error(path, "NaN or Inf")


def test_bad_arguments(tmp_path):
    path = _write(tmp_path / "a.wav", _stereo(0.1), "WAV", "PCM_16")
    with pytest.raises(ValueError):
        next(stream_audio(path, 0))
    with pytest.raises(ValueError):
        next(stream_audio(path, 16000, block_seconds=0))
