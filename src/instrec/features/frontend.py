"""The front-end interface: audio -> (T, dim) features on the 0-255 scale, one row per 0.96 s.

Every front end shares the OpenMIC-2018 input path (cosmir/openmic-2018,
``openmic/vggish/inputs.py::soundfile_to_examples``): mono mix (channel mean), peak
normalisation (divide by max |sample|, left alone when the audio is silent), then 16 kHz.
A file gives ``floor(duration / 0.96 s)`` rows, at least 1 (shorter clips are zero-padded,
with an :class:`AudioWarning`).

``features_from_file`` streams: pass 1 decodes the file and finds the peak and the
length; pass 2 computes the features from pass 1's 16 kHz blocks, kept by
:class:`~instrec.features.audio.DecodedBlocks` (in memory for files up to
``cache_seconds``, beyond that in a temporary file; only if that cannot be written does
pass 2 decode again). Rows are computed in groups of ``GROUP_PATCHES`` at fixed
positions from the start of the signal, so the in-memory and the streamed paths
perform the same arithmetic on the same samples and agree bit for bit.

A group's work has a CPU part (:meth:`FrontEnd._prepare`: spectrograms) and, for the
front ends with a network, a network part (:meth:`FrontEnd._finish`), which runs on the
front end's device (:meth:`FrontEnd.to`). On a GPU ``groups_per_call`` groups share each
network call (the groups stay where they are, so the features are those of the CPU up to
float rounding), and :meth:`FrontEnd.prepare_file` lets worker processes decode and do the
CPU part while the GPU does the rest (:mod:`instrec.features.feed`).
"""
from __future__ import annotations

import os
import warnings
from abc import ABC, abstractmethod
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from instrec._io import InstrecError
from instrec.features import logmel as lm
from instrec.features.audio import AudioWarning, DecodedBlocks, resample, stream_audio, to_mono

GROUP_PATCHES = 32  # rows computed per batch (about 30 s of audio)
_TINY = float(np.finfo(np.float32).tiny)


class FrontEnd(ABC):
    """Turns audio into (T, dim) uint8 features, one row per 0.96 s patch."""

    name: str = ""
    dim: int = 128  # values per row
    sample_rate: int = lm.SAMPLE_RATE
    patch_seconds: float = lm.PATCH_SECONDS
    cache_seconds: float = 600.0  # pass 1 keeps files up to this long in memory
    spill: bool = True  # longer files go to a temporary file (False: decode them twice)
    device: str = "cpu"  # where the network part runs (resolved, see instrec.device)
    #: Row groups whose network part runs in one call: 1 on the CPU (each group alone, the
    #: arithmetic of the streamed and in-memory paths); more on a GPU (see :meth:`to`).
    groups_per_call: int = 1

    def to(self, device: str) -> FrontEnd:
        """Run the network part on the resolved ``device``; returns the front end. Front ends
        without a network compute everything on the CPU whatever the device."""
        return self

    def _patch_features(self, signal: np.ndarray, count: int) -> np.ndarray:
        """(count * 15360 + 240,) normalised 16 kHz samples -> (count, dim) uint8. Front ends
        without a network implement this; the others :meth:`_prepare` and :meth:`_finish`."""
        return self._finish([self._prepare(signal, count)])[0]

    def _prepare(self, signal: np.ndarray, count: int) -> Any:
        """The CPU part of one row group (arguments as :meth:`_patch_features`), picklable;
        without a network: the group's features."""
        return self._patch_features(signal, count)

    def _finish(self, prepared: list[Any]) -> list[np.ndarray]:
        """The network part of several row groups: (count, dim) uint8 features each."""
        return list(prepared)

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Name and every parameter that changes the features (JSON-serialisable)."""

    def features(self, audio: np.ndarray, sr: int, source: str = "<array>") -> np.ndarray:
        """(n,) or (n, channels) samples at ``sr`` Hz -> (T, dim) uint8, T = max(1, floor(n / sr / 0.96))."""
        x = resample(to_mono(audio, source), int(sr), self.sample_rate)
        if x.size == 0:
            raise InstrecError(f"{source}: audio contains no samples")
        if not np.isfinite(x).all():
            raise InstrecError(f"{source}: audio contains NaN or Inf samples")
        return self._run([x], len(x), float(np.max(np.abs(x))), source)

    def features_from_file(self, path: str | os.PathLike, block_seconds: float = 60.0) -> np.ndarray:
        """Features of an audio file, decoded in blocks; equal to
        ``features(load_audio(path, self.sample_rate), self.sample_rate)``."""
        return self._decoded(path, block_seconds, self._run)

    def prepare_file(self, path: str | os.PathLike, block_seconds: float = 60.0) -> list[Any]:
        """The CPU part of :meth:`features_from_file` (decoding, resampling, each row group's
        :meth:`_prepare`), for a worker process; :meth:`finish_prepared` of the result gives the
        features. Holds the whole file's prepared groups: meant for files up to ``cache_seconds``."""
        return self._decoded(path, block_seconds, lambda *args: [self._prepare(g, c) for g, c in self._groups(*args)])

    def _decoded(self, path: str | os.PathLike, block_seconds: float,
                 consume: Callable[[Iterable[np.ndarray], int, float, str], Any]) -> Any:
        """``consume(blocks, total, peak, source)`` of the file's normalised 16 kHz blocks."""
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
            return consume(blocks, total, peak, source)

    def finish_prepared(self, prepared: list[Any]) -> np.ndarray:
        """(T, dim) uint8 features from :meth:`prepare_file`'s row groups."""
        return np.concatenate(self.finish_groups(prepared), axis=0)

    def finish_groups(self, groups: list[Any]) -> list[np.ndarray]:
        """Each prepared row group's (rows, dim) uint8 features (the groups may come from
        several files), ``groups_per_call`` groups per network call."""
        out: list[np.ndarray] = []
        for i in range(0, len(groups), self.groups_per_call):
            out.extend(self._finish(groups[i:i + self.groups_per_call]))
        return out

    def _run(self, blocks: Iterable[np.ndarray], total: int, peak: float, source: str) -> np.ndarray:
        out: list[np.ndarray] = []
        pending: list[Any] = []
        for group, count in self._groups(blocks, total, peak, source):
            pending.append(self._prepare(group, count))
            if len(pending) >= self.groups_per_call:
                out.extend(self._finish(pending))
                pending = []
        if pending:
            out.extend(self._finish(pending))
        return np.concatenate(out, axis=0)

    def _groups(self, blocks: Iterable[np.ndarray], total: int, peak: float,
                source: str) -> Iterator[tuple[np.ndarray, int]]:
        """The row groups of a signal given as ``blocks`` (``total`` samples, peak ``peak``):
        (normalised samples, rows) at fixed positions from the start of the signal."""
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
        buf = np.zeros(0, dtype=np.float32)
        done = seen = 0
        for block in blocks:
            seen += len(block)
            scaled = block / divisor
            buf = np.concatenate([buf, scaled]) if buf.size else scaled
            while count - done >= GROUP_PATCHES and len(buf) >= need:
                yield buf[:need], GROUP_PATCHES
                buf = buf[step:]
                done += GROUP_PATCHES
        if seen != total:
            raise InstrecError(f"{source}: file changed while being read ({seen} samples, expected {total})")
        while count - done > 0:
            group = min(GROUP_PATCHES, count - done)
            yield lm.patch_signal(buf, group), group
            buf = buf[group * lm.PATCH_SAMPLES:]
            done += group
