"""The front ends: ``logmel`` and ``vggish`` (OpenMIC's VGGish log-mel patches), ``musicnn``.

* ``vggish``: the VGGish network and the release's PCA + 8-bit quantisation, i.e.
  the features shipped with OpenMIC-2018. Needs converted weights
  (``instrec download vggish``).
* ``logmel``: weight-free. Per patch, the mean and the standard deviation over the
  96 frames of each of the 64 log-mel bands, mapped affinely to 0..255. Much weaker
  than VGGish (no learned representation, no temporal structure inside a patch);
  it exists so that everything runs without downloads and for quick experiments.
* ``musicnn``: the pretrained musicnn network (:mod:`instrec.features.musicnn_frontend`).

OpenMIC resampled with resampy and took the peak before resampling; here soxr HQ
resamples first and the peak is that of the 16 kHz signal (so streamed files and
in-memory arrays give identical features). Streaming: :mod:`instrec.features.frontend`.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from instrec._io import InstrecError
from instrec.device import is_accelerator
from instrec.features import FRONTEND_NAMES
from instrec.features import logmel as lm
from instrec.features.frontend import FrontEnd
from instrec.features.musicnn_frontend import MusicnnFrontEnd
from instrec.features.musicnn_weights import DEFAULT_MODEL, download_musicnn, weight_files
from instrec.features.vggish import (
    EMBEDDING_SIZE,
    PCA_EIGEN_VECTORS,
    PCA_MEANS,
    load_vggish,
    pca_quantise,
    weight_paths,
)
from instrec.fetch import sha256_file


#: VGGish on a GPU: row groups per network call (16 x 32 patches, about 8 minutes of audio)
#: and patches per call.
VGGISH_GPU_GROUPS = 16
VGGISH_GPU_BATCH = 256


def _mel_params(fe: FrontEnd) -> dict[str, Any]:
    return {
        "sample_rate": fe.sample_rate, "resampler": "soxr HQ", "mono": "channel mean",
        "normalisation": "peak (16 kHz signal)", "window_samples": lm.WINDOW_SAMPLES,
        "hop_samples": lm.HOP_SAMPLES, "fft_size": lm.FFT_SIZE, "window": "periodic hann",
        "n_mels": lm.N_MELS, "mel_min_hz": lm.MEL_MIN_HZ, "mel_max_hz": lm.MEL_MAX_HZ,
        "mel_scale": "htk", "log_offset": lm.LOG_OFFSET, "patch_frames": lm.PATCH_FRAMES,
        "patch_seconds": fe.patch_seconds, "dim": fe.dim, "dtype": "uint8",
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
        out = np.empty((count, self.dim), dtype=np.float64)
        out[:, : lm.N_MELS] = (mean - self.MEAN_RANGE[0]) * (255.0 / (self.MEAN_RANGE[1] - self.MEAN_RANGE[0]))
        out[:, lm.N_MELS:] = (std - self.STD_RANGE[0]) * (255.0 / (self.STD_RANGE[1] - self.STD_RANGE[0]))
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": 1, **_mel_params(self), "statistics": ["mean", "std"],
                "mean_range": list(self.MEAN_RANGE), "std_range": list(self.STD_RANGE), "quantisation": "round"}


class VGGishFrontEnd(FrontEnd):
    """VGGish embeddings + PCA + 8-bit quantisation: the OpenMIC-2018 / AudioSet features."""

    name = "vggish"

    def __init__(self, weights_dir: str | os.PathLike | None = None) -> None:
        self.model, self.pca = load_vggish(weights_dir)
        self._paths = weight_paths(weights_dir)
        self._hashes: dict[str, str] | None = None
        self.batch_size: int | None = None  # patches per network call; None: a call's groups at once

    def to(self, device: str) -> VGGishFrontEnd:
        """The network on ``device``; on a GPU :data:`VGGISH_GPU_GROUPS` row groups per call
        (about 8 minutes of audio), :data:`VGGISH_GPU_BATCH` patches at a time."""
        self.model.to(device)
        self.device = device
        if is_accelerator(device):
            self.groups_per_call, self.batch_size = VGGISH_GPU_GROUPS, VGGISH_GPU_BATCH
        return self

    def embeddings(self, patches: np.ndarray) -> np.ndarray:
        """(N, 96, 64) float32 log-mel patches -> (N, 128) float32 raw embeddings."""
        x = torch.from_numpy(np.ascontiguousarray(patches, dtype=np.float32))
        step = self.batch_size or max(1, len(x))
        out = [np.zeros((0, EMBEDDING_SIZE), np.float32)]
        with torch.inference_mode():
            for i in range(0, len(x), step):
                out.append(self.model(x[i:i + step].to(self.device, non_blocking=True)).cpu().numpy())
        return np.concatenate(out)

    def _prepare(self, signal: np.ndarray, count: int) -> np.ndarray:
        return lm.log_mel_patches(signal, count)  # (count, 96, 64) float32

    def _finish(self, prepared: list[np.ndarray]) -> list[np.ndarray]:
        patches = prepared[0] if len(prepared) == 1 else np.concatenate(prepared)
        rows = pca_quantise(self.embeddings(patches), self.pca[PCA_EIGEN_VECTORS], self.pca[PCA_MEANS])
        return np.split(rows, np.cumsum([len(p) for p in prepared[:-1]]))

    def describe(self) -> dict[str, Any]:
        if self._hashes is None:
            self._hashes = {p.name: sha256_file(p) for p in self._paths}
        return {"name": self.name, "version": 1, **_mel_params(self), "pca": True,
                "quantisation": "clip [-2, 2], truncate (z + 2) * 255 / 4", "weights_sha256": dict(self._hashes)}


def get_frontend(name: str, weights_dir: str | os.PathLike | None = None, fetch: bool = False,
                 device: str = "cpu") -> FrontEnd:
    """The front end called ``name`` (one of :data:`FRONTEND_NAMES`), its network on the
    resolved ``device`` (:meth:`FrontEnd.to`).

    ``weights_dir`` is where ``vggish`` and ``musicnn`` find their converted weights (default
    ``$INSTREC_WEIGHTS_DIR`` or ``~/.cache/instrec/weights``); ``logmel`` ignores it. With
    ``fetch``, missing musicnn weights are downloaded and converted first (with a note on stderr).
    """
    if name == "logmel":
        return LogMelFrontEnd()
    if name == "vggish":
        return VGGishFrontEnd(weights_dir).to(device)
    if name == "musicnn":
        if fetch and not weight_files(DEFAULT_MODEL, weights_dir)[0].is_file():
            print("instrec: fetching the pretrained musicnn weights (first use; the musicnn==0.1.0 wheel from "
                  "the package index, 29 MB)", file=sys.stderr, flush=True)
            download_musicnn(weights_dir, progress=False)
        return MusicnnFrontEnd(weights_dir).to(device)
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


#: describe() keys that may differ between two front ends giving the same features.
UNCOMPARED = ("weights_sha256",)


def frontend_problems(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """:func:`describe_mismatch` less :data:`UNCOMPARED` (the weights' file hash: converting
    the same checkpoint again may give other bytes for the same numbers); an empty
    ``recorded`` (runs from before front ends were recorded) matches anything."""
    if not recorded:
        return []
    return [p for p in describe_mismatch(recorded, current) if not p.startswith(UNCOMPARED)]


def check_frontend(recorded: dict[str, Any], current: dict[str, Any], source: str | os.PathLike) -> None:
    """Refuse a front end whose parameters (sample rate, mel bands, version, weights...) differ
    from those ``source`` recorded: features from it would not be what the model learned from."""
    problems = frontend_problems(recorded, current)
    if problems:
        raise InstrecError(f"{source}: field 'frontend' differs from the installed front end "
                           f"({'; '.join(problems[:3])}); features would not match what the model learned from")


def _norm(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value
