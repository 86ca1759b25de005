"""The ``musicnn`` front end: what the pretrained musicnn network hears, per 0.96-s frame.

Each OpenMIC frame (0.96 s = 60 musicnn spectrogram frames of 16 ms) gets 803 values:

* columns 0-49: the 50 MagnaTagATune tag probabilities of the 3-s musicnn patch that covers
  the frame (x 255, rounded): what musicnn learned from real music about instruments,
  voices and genres;
* columns 50-802: the maximum over the frame's 60 spectrogram frames of each of the 753
  frame-level channels of musicnn (timbral and temporal front end, then the three mid-end
  layers), log-compressed to 0..255 by ``255 * log1p(max(x, 0)) / log1p(100)`` (the
  channels are mostly >= 0 with a long tail up to about 100; 5 % of values are below 0.1).

Patches of 187 spectrogram frames (2.99 s, the network's input) start every 180 frames
(three OpenMIC frames), so patch k covers frames 3k, 3k+1 and 3k+2 and sees 7 frames of the
next. The choice of tags + max-pooled channels was made on the real recordings of the
development set (benchmarks/bench_realaudio.py): with a linear classifier on rendered solos,
tags + max scored best among the tags, penultimate, mean- and max-pooled features.
Audio goes in peak-normalised at 16 kHz, as for the other front ends; a row group shorter than
a patch is zero-padded.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from instrec.device import is_accelerator
from instrec.features import logmel as lm
from instrec.features import musicnn as mn
from instrec.features.frontend import FrontEnd
from instrec.features.musicnn_weights import DEFAULT_MODEL, load_musicnn, weight_files
from instrec.fetch import sha256_file

FRAMES_PER_ROW = int(round(lm.PATCH_SECONDS * mn.SAMPLE_RATE / mn.HOP))  # 60 spectrogram frames per 0.96 s
ROWS_PER_PATCH = 3
N_TAGS = len(mn.MTT_TAGS)
DIM = N_TAGS + mn.N_FEATURES  # 803
PATCH_HOP = ROWS_PER_PATCH * FRAMES_PER_ROW  # spectrogram frames between patch starts (180)
LOG_CEILING = 100.0  # channel value mapped to 255
#: On a GPU: row groups per network call (8 x 11 patches, about 4 minutes of audio) and
#: patches per call; on the CPU each group goes alone, 16 patches at most per call.
GPU_GROUPS = 8
GPU_BATCH = 88
#: OpenMIC class <- the MagnaTagATune tags of musicnn that name it (the others have none:
#: musicnn cannot tell clarinet, saxophone, trumpet, organ, ... apart by tag).
OPENMIC_TAGS: dict[str, tuple[str, ...]] = {
    "cello": ("cello",), "drums": ("drums",), "flute": ("flute",), "guitar": ("guitar",), "piano": ("piano",),
    "synthesizer": ("synth",), "violin": ("violin",),
    "voice": ("vocal", "vocals", "voice", "singing", "female", "male", "woman", "man", "male vocal",
              "female vocal", "male voice", "female voice", "choir", "choral", "opera"),
}


def tag_prior(rows: np.ndarray, classes: list[str]) -> np.ndarray:
    """(T, C) what musicnn's own tags say of each class per row of ``rows`` (T, 803) uint8 features:
    the largest of the class's tag probabilities (:data:`OPENMIC_TAGS`), NaN for classes without tags."""
    tags = rows[:, :N_TAGS].astype(np.float32) / 255.0
    out = np.full((len(rows), len(classes)), np.nan, np.float32)
    for c, name in enumerate(classes):
        if name in OPENMIC_TAGS:
            out[:, c] = tags[:, [mn.MTT_TAGS.index(t) for t in OPENMIC_TAGS[name]]].max(axis=1)
    return out


def quantise_channels(x: np.ndarray) -> np.ndarray:
    """Frame-level musicnn channel values -> uint8 by ``255 * log1p(max(x, 0)) / log1p(100)``."""
    scaled = np.log1p(np.maximum(x, 0.0)) * (255.0 / np.log1p(LOG_CEILING))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


class MusicnnFrontEnd(FrontEnd):
    """musicnn tags and max-pooled frame-level channels, 803 uint8 values per 0.96-s frame."""

    name = "musicnn"
    dim = DIM

    def __init__(self, weights_dir: str | os.PathLike | None = None, batch_size: int = 16,
                 model: str = DEFAULT_MODEL) -> None:
        # ``model``: MTT_musicnn (the front end's) or MSD_musicnn (same network shape, trained on the
        # Million Song Dataset; its 50 tags take columns 0-49), for front-end comparisons.
        self.model_name = model
        self.model = load_musicnn(model, weights_dir)
        self._weights = weight_files(model, weights_dir)[0]
        self._sha: str | None = None
        self.batch_size = batch_size  # patches per network call

    def to(self, device: str) -> MusicnnFrontEnd:
        """The network on ``device``; on a GPU :data:`GPU_GROUPS` row groups (about 4 minutes of
        audio, :data:`GPU_BATCH` patches) go through it per call."""
        self.model.to(device)
        self.device = device
        if is_accelerator(device):
            self.groups_per_call, self.batch_size = GPU_GROUPS, GPU_BATCH
        return self

    def _prepare(self, signal: np.ndarray, count: int) -> tuple[np.ndarray, int]:
        """The group's log-mel spectrogram (frames, 96) float32 and its row count."""
        n_patches = -(-count // ROWS_PER_PATCH)
        needed = (n_patches - 1) * PATCH_HOP + mn.PATCH_FRAMES
        # Frames past the signal's end see zeros (log_mel pads outside the signal).
        padded = signal if mn.n_frames(len(signal)) >= needed else \
            np.pad(signal, (0, (needed - 1) * mn.HOP - len(signal) + 1))
        return mn.log_mel(padded, 0, needed), count

    def _finish(self, prepared: list[tuple[np.ndarray, int]]) -> list[np.ndarray]:
        # Every group's patches (views of its spectrogram), cut into calls of batch_size patches;
        # a call within one group gets the view itself, as the CPU path always does.
        patches = [torch.from_numpy(mel).unfold(0, mn.PATCH_FRAMES, PATCH_HOP).transpose(1, 2) for mel, _ in prepared]
        rows_tags, rows_max = [], []
        with torch.inference_mode():
            for call in _calls([len(p) for p in patches], self.batch_size):
                parts = [patches[g][p0:p1] for g, p0, p1 in call]
                batch = parts[0] if len(parts) == 1 else torch.cat(parts)
                out = self.model(batch.to(self.device, non_blocking=True))
                frames = out["features"][:, :PATCH_HOP].reshape(len(batch), ROWS_PER_PATCH, FRAMES_PER_ROW, -1)
                rows_max.append(frames.amax(dim=2).reshape(-1, mn.N_FEATURES).cpu().numpy())
                rows_tags.append(out["taggram"].repeat_interleave(ROWS_PER_PATCH, dim=0).cpu().numpy())
        all_tags, all_max = np.concatenate(rows_tags), np.concatenate(rows_max)
        features, first = [], 0
        for (_, count), p in zip(prepared, patches):
            tags = np.clip(np.rint(all_tags[first:first + count] * 255.0), 0, 255).astype(np.uint8)
            features.append(np.concatenate([tags, quantise_channels(all_max[first:first + count])], axis=1))
            first += len(p) * ROWS_PER_PATCH
        return features

    def describe(self) -> dict[str, Any]:
        if self._sha is None:
            self._sha = sha256_file(self._weights)
        return {"name": self.name, "version": 1, "sample_rate": self.sample_rate, "resampler": "soxr HQ",
                "mono": "channel mean", "normalisation": "peak (16 kHz signal)", "model": self.model_name,
                "n_fft": mn.N_FFT, "hop_samples": mn.HOP, "n_mels": mn.N_MELS, "mel_scale": "slaney",
                "log": "log10(10000 x + 1)", "patch_frames": mn.PATCH_FRAMES,
                "patch_hop_frames": PATCH_HOP, "patch_seconds": self.patch_seconds,
                "dim": DIM, "dtype": "uint8", "columns": f"0-{N_TAGS - 1} tags x 255, {N_TAGS}-{DIM - 1} "
                "max over the row of each frame-level channel, 255 log1p(max(x, 0)) / log1p(100)",
                "weights_sha256": {self._weights.name: self._sha}}


def _calls(sizes: list[int], size: int) -> list[list[tuple[int, int, int]]]:
    """Groups of ``sizes`` patches packed in order into calls of at most ``size`` patches,
    each call a list of (group, first patch, stop patch)."""
    calls: list[list[tuple[int, int, int]]] = []
    filled = size
    for g, n in enumerate(sizes):
        p0 = 0
        while p0 < n:
            if filled == size:
                calls.append([])
                filled = 0
            take = min(n - p0, size - filled)
            calls[-1].append((g, p0, p0 + take))
            p0, filled = p0 + take, filled + take
    return calls


def with_tag_prior(rows: np.ndarray, classes: list[str], clip: np.ndarray,
                   frame: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Clip (C,) and frame (T, C) probabilities with musicnn's tags of ``rows`` (T, 803) added to the
    classes they name by noisy-OR, ``1 - (1 - p) (1 - tags)``; the clip takes the tags' mean over rows."""
    prior = tag_prior(rows, classes)
    named = ~np.isnan(prior[0])
    clip = clip.copy()
    clip[named] = _noisy_or(clip[named], prior[:, named].mean(axis=0))
    if frame is not None:
        frame = frame.copy()
        frame[:, named] = _noisy_or(frame[:, named], prior[:, named])
    return clip, frame


def with_window_tag_prior(rows: np.ndarray, classes: list[str], clips: np.ndarray,
                          spans: list[tuple[int, int]]) -> np.ndarray:
    """:func:`with_tag_prior`'s clip rule for many windows of one file at once (the same numbers
    as one call per window): ``clips`` (W, C) the model's clip probabilities of the windows
    ``spans``, (start, stop) rows of ``rows`` (T, 803), whose tags are read once."""
    prior = tag_prior(rows, classes)
    named = ~np.isnan(prior[0])
    tags = prior[:, named]
    out = np.array(clips, dtype=np.float32)
    out[:, named] = _noisy_or(out[:, named], np.stack([tags[a:b].mean(axis=0) for a, b in spans]))
    return out


def _noisy_or(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Probability that either of two independent events happens: ``1 - (1 - p) (1 - q)``."""
    return 1 - (1 - p) * (1 - q)
