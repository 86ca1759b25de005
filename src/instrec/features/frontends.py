"""Feature front ends: audio -> (T, 128) uint8, one row per non-overlapping 0.96 s patch.

Both front ends share the OpenMIC-2018 input path (cosmir/openmic-2018,
``openmic/vggish/inputs.py::soundfile_to_examples``): mono mix (channel mean), peak
normalisation (divide by max |sample|, left alone when the audio is silent), then
16 kHz and the VGGish log-mel patches of :mod:`instrec.features.logmel`.
Deviations, both tiny: OpenMIC resampled with resampy and took the peak before
resampling; here soxr HQ resamples first and the peak is that of the 16 kHz
signal (so streamed files and in-memory arrays give identical features). The
patch count is ``floor(duration / 0.96 s)``, at least 1 (shorter clips are
zero-padded, with an :class:`AudioWarning`).

* ``vggish``: the VGGish network and the release's PCA + 8-bit quantisation, i.e.
  the features shipped with OpenMIC-2018. Needs converted weights
  (``instrec download vggish``).
* ``logmel``: weight-free. Per patch, the mean and the standard deviation over the
  96 frames of each of the 64 log-mel bands, mapped affinely to 0..255. Much weaker
  than VGGish (no learned representation, no temporal structure inside a patch);
  it exists so that everything runs without downloads and for quick experiments.

``features_from_file`` streams: pass 1 decodes the file and finds the peak and the
length; pass 2 computes the features from pass 1's 16 kHz blocks, kept by
:class:`~instrec.features.audio.DecodedBlocks` (in memory for files up to
``cache_seconds``, beyond that in a temporary file; only if that cannot be written does
pass 2 decode again). Patches are computed in groups of ``GROUP_PATCHES`` at fixed
positions from the start of the signal, so the in-memory and the streamed paths
perform the same arithmetic on the same samples and agree bit for bit.
"""
from __future__ import annotations

import os
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from instrec._io import InstrecError
from instrec.features import FRONTEND_NAMES
from instrec.features import logmel as lm
from instrec.features.audio import (
    AudioWarning,
    DecodedBlocks,
    resample,
    stream_audio,
    to_mono,
)
from instrec.features.vggish import (
    PCA_EIGEN_VECTORS,
    PCA_MEANS,
    load_vggish,
    pca_quantise,
    weight_paths,
)
from instrec.fetch import sha256_file

FEATURE_DIM = 128
GROUP_PATCHES = 32  # patches computed per batch (about 30 s of audio)
_TINY = float(np.finfo(np.float32).tiny)


class FrontEnd(ABC):
    """Turns audio into (T, 128) uint8 features, one row per 0.96 s patch."""

    name: str = ""
    sample_rate: int = lm.SAMPLE_RATE
    patch_seconds: float = lm.PATCH_SECONDS
    cache_seconds: float = 600.0  # pass 1 keeps files up to this long in memory
    spill: bool = True  # longer files go to a temporary file (False: decode them twice)

    @abstractmethod
    def _patch_features(self, signal: np.ndarray, count: int) -> np.ndarray:
        """(count * 15360 + 240,) normalised 16 kHz samples -> (count, 128) uint8."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Name and every parameter that changes the features (JSON-serialisable)."""

    def features(self, audio: np.ndarray, sr: int, source: str = "<array>") -> np.ndarray:
        """(n,) or (n, channels) samples at ``sr`` Hz -> (T, 128) uint8, T = max(1, floor(n / sr / 0.96))."""
        x = resample(to_mono(audio, source), int(sr), self.sample_rate)
        if x.size == 0:
            raise InstrecError(f"{source}: audio contains no samples")
        if not np.isfinite(x).all():
            raise InstrecError(f"{source}: audio contains NaN or Inf samples")
        return self._run([x], len(x), float(np.max(np.abs(x))), source)

    def features_from_file(self, path: str | os.PathLike, block_seconds: float = 60.0) -> np.ndarray:
        """Features of an audio file, decoded in blocks; equal to
        ``features(load_audio(path, self.sample_rate), self.sample_rate)``."""
        source = os.fspath(path)
        peak, total = 0.0, 0
        with DecodedBlocks(int(self.cache_seconds * self.sample_rate), self.spill) as decoded:
            for block in stream_audio(path, self.sample_rate, block_seconds):
                peak = max(peak, float(np.max(np.abs(block))))
                total += len(block)
                decoded.add(block)
            if total == 0:
                raise InstrecError(f"{source}: audio too short to resample to {self.sample_rate} Hz")
            blocks = decoded.replay(max(1, int(block_seconds * self.sample_rate)))
            if blocks is None:
                blocks = stream_audio(path, self.sample_rate, block_seconds)
            return self._run(blocks, total, peak, source)

    def _run(self, blocks: Iterable[np.ndarray], total: int, peak: float, source: str) -> np.ndarray:
        count = lm.n_patches(total)
        if total < lm.PATCH_SAMPLES:
            warnings.warn(f"{source}: audio is {total / self.sample_rate:.3f} s, shorter than one "
                          f"{self.patch_seconds} s patch; zero-padded to one patch", AudioWarning, stacklevel=3)
        divisor = np.float32(1.0)
        if peak < _TINY:
            warnings.warn(f"{source}: audio is silent (all samples zero); features describe silence",
                          AudioWarning, stacklevel=3)
        else:
            divisor = np.float32(peak)
        step = GROUP_PATCHES * lm.PATCH_SAMPLES
        need = step + lm.PATCH_TAIL
        out: list[np.ndarray] = []
        buf = np.zeros(0, dtype=np.float32)
        done = seen = 0
        for block in blocks:
            seen += len(block)
            scaled = block / divisor
            buf = np.concatenate([buf, scaled]) if buf.size else scaled
            while count - done >= GROUP_PATCHES and len(buf) >= need:
                out.append(self._patch_features(buf[:need], GROUP_PATCHES))
                buf = buf[step:]
                done += GROUP_PATCHES
        if seen != total:
            raise InstrecError(f"{source}: file changed while being read ({seen} samples, expected {total})")
        while count - done > 0:
            group = min(GROUP_PATCHES, count - done)
            out.append(self._patch_features(lm.patch_signal(buf, group), group))
            buf = buf[group * lm.PATCH_SAMPLES:]
            done += group
        return np.concatenate(out, axis=0)

    def _mel_params(self) -> dict[str, Any]:
        return {
            "sample_rate": self.sample_rate, "resampler": "soxr HQ", "mono": "channel mean",
            "normalisation": "peak (16 kHz signal)", "window_samples": lm.WINDOW_SAMPLES,
            "hop_samples": lm.HOP_SAMPLES, "fft_size": lm.FFT_SIZE, "window": "periodic hann",
            "n_mels": lm.N_MELS, "mel_min_hz": lm.MEL_MIN_HZ, "mel_max_hz": lm.MEL_MAX_HZ,
            "mel_scale": "htk", "log_offset": lm.LOG_OFFSET, "patch_frames": lm.PATCH_FRAMES,
            "patch_seconds": self.patch_seconds, "dim": FEATURE_DIM, "dtype": "uint8",
        }


class LogMelFrontEnd(FrontEnd):
    """Weight-free front end: per-band mean and std of the log-mel patch, quantised.

    Clearly weaker than VGGish (a summary of the spectrum, nothing learned); use it
    when the VGGish weights are unavailable or for quick experiments.

    Row layout: columns 0-63 the band means, 64-127 the band standard deviations
    (over the 96 frames). Calibration (log-mel units, after peak normalisation):
    ``log(0.01) = -4.61`` is the floor (silence) and a full-scale sine peaks near
    ``log(100) = 4.6``; means map from [-4.75, 5.25] and stds from [0, 4] onto
    0..255 (round to nearest, clip). Silence lands at 4 (mean) and 0 (std).
    """

    name = "logmel"
    MEAN_RANGE = (-4.75, 5.25)
    STD_RANGE = (0.0, 4.0)

    def _patch_features(self, signal: np.ndarray, count: int) -> np.ndarray:
        patches = lm.log_mel_patches(signal, count).astype(np.float64)
        mean, std = patches.mean(axis=1), patches.std(axis=1)
        out = np.empty((count, FEATURE_DIM), dtype=np.float64)
        out[:, : lm.N_MELS] = (mean - self.MEAN_RANGE[0]) * (255.0 / (self.MEAN_RANGE[1] - self.MEAN_RANGE[0]))
        out[:, lm.N_MELS:] = (std - self.STD_RANGE[0]) * (255.0 / (self.STD_RANGE[1] - self.STD_RANGE[0]))
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": 1, **self._mel_params(), "statistics": ["mean", "std"],
                "mean_range": list(self.MEAN_RANGE), "std_range": list(self.STD_RANGE), "quantisation": "round"}


class VGGishFrontEnd(FrontEnd):
    """VGGish embeddings + PCA + 8-bit quantisation: the OpenMIC-2018 / AudioSet features."""

    name = "vggish"

    def __init__(self, weights_dir: str | os.PathLike | None = None) -> None:
        self.model, self.pca = load_vggish(weights_dir)
        self._paths = weight_paths(weights_dir)
        self._hashes: dict[str, str] | None = None

    def embeddings(self, patches: np.ndarray) -> np.ndarray:
        """(N, 96, 64) float32 log-mel patches -> (N, 128) float32 raw embeddings."""
        with torch.inference_mode():
            return self.model(torch.from_numpy(np.ascontiguousarray(patches, dtype=np.float32))).numpy()

    def _patch_features(self, signal: np.ndarray, count: int) -> np.ndarray:
        emb = self.embeddings(lm.log_mel_patches(signal, count))
        return pca_quantise(emb, self.pca[PCA_EIGEN_VECTORS], self.pca[PCA_MEANS])

    def describe(self) -> dict[str, Any]:
        if self._hashes is None:
            self._hashes = {p.name: sha256_file(p) for p in self._paths}
        return {"name": self.name, "version": 1, **self._mel_params(), "pca": True,
                "quantisation": "clip [-2, 2], truncate (z + 2) * 255 / 4", "weights_sha256": dict(self._hashes)}


def get_frontend(name: str, weights_dir: str | os.PathLike | None = None) -> FrontEnd:
    """The front end called ``name`` (one of :data:`FRONTEND_NAMES`).

    ``weights_dir`` is where ``vggish`` finds its converted weights (default
    ``$INSTREC_WEIGHTS_DIR`` or ``~/.cache/instrec/weights``); ``logmel`` ignores it.
    """
    if name == "logmel":
        return LogMelFrontEnd()
    if name == "vggish":
        return VGGishFrontEnd(weights_dir)
    raise InstrecError(f"unknown front end {name!r}; choose one of {', '.join(FRONTEND_NAMES)}")


def describe_mismatch(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable differences between two ``describe()`` dicts (keys present in both).

    An empty list means the features are compatible; a different ``name`` is
    always reported. Keys only one side has (older records) are not compared.
    """
    problems = []
    if recorded.get("name") != current.get("name"):
        problems.append(f"front end {recorded.get('name')!r} != {current.get('name')!r}")
    for key in recorded:
        if key != "name" and key in current and _norm(recorded[key]) != _norm(current[key]):
            problems.append(f"{key}: {recorded[key]!r} != {current[key]!r}")
    return problems


def _norm(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value
