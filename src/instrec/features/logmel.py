"""The VGGish / AudioSet log-mel spectrogram, as in the release's ``mel_features.py``.

Source of the definition: tensorflow/models ``research/audioset/vggish`` (copied
unchanged into cosmir/openmic-2018 as ``openmic/vggish``), re-implemented here:

* 16 kHz mono input; frames of 400 samples (25 ms) every 160 samples (10 ms), no
  centring or padding (a frame exists only where all 400 samples exist);
* periodic Hann window, ``|rfft|`` with 512 points (next power of two) -> 257 bins;
* 64 mel bands from 125 to 7500 Hz on the HTK mel scale ``1127 ln(1 + f/700)``,
  triangles linear *in mel* (not in Hz, unlike librosa's filter bank), the DC bin
  given weight 0, no area normalisation;
* ``log(mel + 0.01)``;
* examples are non-overlapping patches of 96 frames (0.96 s).

Computed in float64 like the reference; patches are returned as float32 (what the
network consumes).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16000  # Hz
WINDOW_SAMPLES = 400  # 25 ms
HOP_SAMPLES = 160  # 10 ms
FFT_SIZE = 512
N_BINS = FFT_SIZE // 2 + 1  # 257
N_MELS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
PATCH_FRAMES = 96
PATCH_SECONDS = PATCH_FRAMES * HOP_SAMPLES / SAMPLE_RATE  # 0.96
PATCH_SAMPLES = PATCH_FRAMES * HOP_SAMPLES  # 15360: patch-to-patch step in samples
PATCH_TAIL = WINDOW_SAMPLES - HOP_SAMPLES  # 240: samples the last frame of a patch reads past the step

_MEL_BREAK_HZ = 700.0
_MEL_HIGH_Q = 1127.0


def hertz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: ``1127 * ln(1 + hz / 700)``."""
    return _MEL_HIGH_Q * np.log(1.0 + np.asarray(hz, dtype=np.float64) / _MEL_BREAK_HZ)


def periodic_hann(length: int) -> np.ndarray:
    """Hann window of period ``length`` (Matlab's "periodic"): ``0.5 - 0.5 cos(2 pi n / length)``."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi / length * np.arange(length))


@lru_cache(maxsize=4)
def mel_matrix(sample_rate: int = SAMPLE_RATE, n_bins: int = N_BINS, n_mels: int = N_MELS,
               fmin: float = MEL_MIN_HZ, fmax: float = MEL_MAX_HZ) -> np.ndarray:
    """(n_bins, n_mels) float64 matrix M with ``mel = |STFT| @ M`` (read-only, cached).

    Band i spans mel edges ``e[i] .. e[i+2]`` with its peak at ``e[i+1]``, the 66
    edges evenly spaced in mel between ``fmin`` and ``fmax``.
    """
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= nyquist, got {fmin}, {fmax}")
    bins_mel = hertz_to_mel(np.linspace(0.0, sample_rate / 2.0, n_bins))
    edges = np.linspace(hertz_to_mel(fmin), hertz_to_mel(fmax), n_mels + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (centre - lower)
    falling = (upper - bins_mel[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0  # HTK leaves out the DC bin
    weights.setflags(write=False)
    return weights


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    w = periodic_hann(WINDOW_SAMPLES)
    w.setflags(write=False)
    return w


def n_frames(n_samples: int) -> int:
    """Number of complete 400-sample frames, hop 160, in ``n_samples`` samples."""
    return 0 if n_samples < WINDOW_SAMPLES else 1 + (n_samples - WINDOW_SAMPLES) // HOP_SAMPLES


def stft_magnitude(signal: np.ndarray) -> np.ndarray:
    """(n,) 16 kHz samples -> (frames, 257) float64 ``|rfft(periodic_hann * frame, 512)|``."""
    x = np.asarray(signal, dtype=np.float64)
    count = n_frames(len(x))
    if count == 0:
        return np.zeros((0, N_BINS), dtype=np.float64)
    frames = np.lib.stride_tricks.sliding_window_view(x, WINDOW_SAMPLES)[::HOP_SAMPLES][:count]
    return np.abs(np.fft.rfft(frames * _window(), FFT_SIZE, axis=1))


def log_mel_spectrogram(signal: np.ndarray) -> np.ndarray:
    """(n,) 16 kHz samples -> (frames, 64) float64 ``log(|STFT| @ mel_matrix + 0.01)``."""
    return np.log(stft_magnitude(signal) @ mel_matrix() + LOG_OFFSET)


def n_patches(n_samples: int) -> int:
    """Patches for ``n_samples`` at 16 kHz: ``floor(duration / 0.96 s)``, never less than 1.

    The reference's framing alone gives ``floor((n - 240) / 15360)``; the signal is
    zero-padded by 240 samples at the end so that a clip of exactly k * 0.96 s gets
    k patches. The padding only reaches frames that belong to that extra patch, so
    every patch the reference produces is unchanged.
    """
    return max(1, n_samples // PATCH_SAMPLES)


def patch_signal(signal: np.ndarray, count: int) -> np.ndarray:
    """Crop or zero-pad 16 kHz ``signal`` to the ``count * 15360 + 240`` samples ``count`` patches read."""
    need = count * PATCH_SAMPLES + PATCH_TAIL
    x = np.asarray(signal, dtype=np.float32)
    if len(x) >= need:
        return x[:need]
    return np.concatenate([x, np.zeros(need - len(x), dtype=np.float32)])


def log_mel_patches(signal: np.ndarray, count: int | None = None) -> np.ndarray:
    """(n,) 16 kHz samples -> (count, 96, 64) float32 log-mel patches.

    ``count`` defaults to :func:`n_patches` (len(signal)); the signal is cropped or
    zero-padded (see :func:`patch_signal`) so exactly ``count`` patches come out.
    """
    count = n_patches(len(signal)) if count is None else count
    lm = log_mel_spectrogram(patch_signal(signal, count))
    assert lm.shape[0] == count * PATCH_FRAMES, lm.shape
    return lm.reshape(count, PATCH_FRAMES, N_MELS).astype(np.float32)
