"""One clip of the corpus: compose, write MIDI, render, compute features and strong labels.

:func:`make_clip` runs in worker processes; the SoundFont (bytes + presets) and the front
end are loaded once per process and cached. Every random draw of a clip comes from
``SeedSequence([seed, index, stream])``, so a clip depends only on the corpus seed, its
index and the SoundFont, never on the worker that made it or on the other clips.
"""
from __future__ import annotations

import multiprocessing
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from instrec.features.frontends import get_frontend
from instrec.synth.compose import Piece, compose_piece
from instrec.synth.labels import Interval, notes_by_class, strong_labels
from instrec.synth.render import render_midi, wav_bytes
from instrec.synth.soundfont import SoundFont, load_soundfont

#: Independent random streams of a clip.
STREAM_COMPOSE, STREAM_LABELS = 0, 1

_SOUNDFONTS: dict[str, SoundFont] = {}
_FRONTENDS: dict[str, Any] = {}


def clip_key(seed: int, index: int) -> str:
    """Sample key of clip ``index`` of the corpus with ``seed``: ``synth_{seed}_{index:06d}``."""
    return f"synth_{seed}_{index:06d}"


def clip_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """The random generator of one stream of one clip (seed and index must be >= 0)."""
    return np.random.default_rng(np.random.SeedSequence([seed, index, stream]))


def compose_clip(seed: int, index: int, presets: frozenset[tuple[int, int]],
                 duration: float = 10.0) -> tuple[Piece, dict[str, list[Interval]]]:
    """Compose clip ``index`` and compute its strong labels (class -> intervals in s)."""
    piece = compose_piece(clip_rng(seed, index, STREAM_COMPOSE), presets, duration)
    return piece, strong_labels(notes_by_class(piece.parts), duration)


@dataclass(frozen=True)
class ClipTask:
    """What a worker needs to make one clip (small and picklable)."""

    index: int
    seed: int
    soundfont: str
    frontend: str
    keep_audio: bool = False
    duration: float = 10.0


@dataclass(frozen=True)
class ClipResult:
    """A finished clip.

    Attributes:
        index, key: position in the corpus and sample key.
        features: (T, 128) uint8 front-end features.
        midi: the MIDI file bytes that were rendered.
        strong: class -> sounding intervals ``(onset, offset)`` in seconds.
        wav: mono 16-bit WAV bytes when the task kept audio, else None.
        ensemble: template name; n_parts: MIDI instruments in the piece.
        seconds: wall time per stage (``compose``, ``render``, ``features``; realistic
            clips add ``augment``).
        info: realistic recipe only: texture, style, tempo, per-part class, role, font,
            voice, gain and pitch range, and the augmentation effects (None otherwise).
    """

    index: int
    key: str
    features: np.ndarray
    midi: bytes
    strong: dict[str, list[Interval]]
    wav: bytes | None
    ensemble: str
    n_parts: int
    seconds: dict[str, float]
    info: dict | None = None


def worker_cache(sf: SoundFont, frontend: str, front: Any) -> None:
    """Put an already loaded SoundFont and front end in this process's caches (replacing
    older entries, so a SoundFont edited between two corpora is not served stale)."""
    _SOUNDFONTS[str(sf.path)] = sf
    _FRONTENDS[frontend] = front


def worker_soundfont(path: str) -> SoundFont:
    """The SoundFont at ``path``, loaded once per process."""
    if path not in _SOUNDFONTS:
        _SOUNDFONTS[path] = load_soundfont(path)
    return _SOUNDFONTS[path]


def worker_frontend(name: str) -> Any:
    """The front end called ``name``, built once per process."""
    if name not in _FRONTENDS:
        _FRONTENDS[name] = get_frontend(name)
    return _FRONTENDS[name]


def single_thread_math() -> Any:
    """Context manager limiting BLAS/OpenMP pools to one thread.

    Clips are parallel across processes; BLAS threads inside each worker only compete with
    the synthesiser of the other workers (OpenBLAS threads busy-wait between calls)."""
    return threadpool_limits(limits=1)


_LIMITED = False


def _limit_worker_threads() -> None:
    """In a worker *process*, keep BLAS and torch to one thread for the life of the process."""
    global _LIMITED

    if _LIMITED or multiprocessing.parent_process() is None:
        return
    _LIMITED = True
    single_thread_math()  # the limits stay in force: the returned context is never exited
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def make_clip(task: ClipTask) -> ClipResult:
    """Compose, render and featurise one clip."""
    _limit_worker_threads()
    sf = worker_soundfont(task.soundfont)
    key = clip_key(task.seed, task.index)
    t0 = time.perf_counter()
    piece, strong = compose_clip(task.seed, task.index, sf.preset_keys, task.duration)
    midi = piece.midi_bytes()
    t1 = time.perf_counter()
    audio, sr = render_midi(sf, midi, task.duration, source=f"{key}.mid", presets=piece.presets)
    t2 = time.perf_counter()
    features = worker_frontend(task.frontend).features(audio, sr, source=f"{key}.wav")
    t3 = time.perf_counter()
    return ClipResult(index=task.index, key=key, features=np.asarray(features, dtype=np.uint8), midi=midi,
                      strong=strong, wav=wav_bytes(audio, sr) if task.keep_audio else None,
                      ensemble=piece.ensemble, n_parts=len(piece.parts),
                      seconds={"compose": t1 - t0, "render": t2 - t1, "features": t3 - t2})
