"""One clip of the realistic recipe: compose, render per part, mix, augment, featurise.

The counterpart of :func:`~instrec.synth.worker.make_clip` for ``recipe="realistic"``.
Its random streams are separate from the ensemble recipe's (:data:`STREAM_REAL_COMPOSE`,
:data:`STREAM_AUGMENT`), and, as there, a clip depends only on the corpus seed, its index,
the SoundFonts (in their order) and the settings, never on the worker that made it.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from instrec.synth.augment import EFFECT_PROB, LEVEL_DB, SNR_DB, apply_chain, draw_chain
from instrec.synth.fonts import FontSet
from instrec.synth.mixdown import ACTIVITY_DB, mix_and_label, render_stems
from instrec.synth.realistic import RealPiece, compose_realistic
from instrec.synth.render import wav_bytes
from instrec.synth.songs import BUS_TEXTURES, draw_bus
from instrec.synth.textures import DRUM_PROB, LINE_LEAD_WEIGHT, TEXTURES
from instrec.synth.worker import (
    ClipResult,
    _limit_worker_threads,
    clip_key,
    clip_rng,
    worker_frontend,
    worker_soundfont,
)

#: Random streams of a realistic clip (0 and 1 are the ensemble recipe's compose and labels).
STREAM_REAL_COMPOSE, STREAM_AUGMENT, STREAM_BUS, STREAM_CYMBALS = 2, 3, 4, 5

_FONTSETS: dict[tuple[str, ...], FontSet] = {}


@dataclass(frozen=True)
class RealisticSettings:
    """Settings of the realistic recipe (all recorded in ``corpus-stats.json``).

    ``textures``: relative weights of solo/duo/sparse/ensemble; ``drum_prob``: probability
    that drums join a thin texture; ``augment``: run the recording chain;
    ``activity_db``: level (dB re the mix's loudest frame) above which a part sounds;
    ``bus``: clips of the dense textures go through a record's bus
    (:func:`~instrec.synth.songs.draw_bus`) before the augmentation; ``cymbal_prob``: per thin
    texture, the probability of orchestral cymbals, drawn from a stream of their own
    (:func:`~instrec.synth.realistic.compose_realistic`)."""

    textures: dict[str, float] = field(default_factory=lambda: dict(TEXTURES))
    drum_prob: dict[str, float] = field(default_factory=lambda: dict(DRUM_PROB))
    augment: bool = True
    activity_db: float = ACTIVITY_DB
    bus: bool = False
    cymbal_prob: dict[str, float] = field(default_factory=dict)

    def describe(self) -> dict:
        """The settings plus the recipe's fixed constants (what ``corpus-stats.json`` records;
        ``cymbal_prob`` only when set, so a corpus without it records what it did before)."""
        settings = asdict(self)
        if not settings["cymbal_prob"]:
            del settings["cymbal_prob"]
        return {**settings, "line_lead_weight": LINE_LEAD_WEIGHT, "rendering": "one synthesiser call per part",
                "augmentation": {"effect_prob": dict(EFFECT_PROB), "snr_db": list(SNR_DB), "level_db": list(LEVEL_DB)}
                if self.augment else None}


@dataclass(frozen=True)
class RealClipTask:
    """What a worker needs to make one realistic clip (small and picklable)."""

    index: int
    seed: int
    soundfonts: tuple[str, ...]
    frontend: str
    settings: RealisticSettings
    keep_audio: bool = False
    duration: float = 10.0


def worker_fontset(paths: tuple[str, ...]) -> FontSet:
    """The FontSet of ``paths``, built once per process from the cached fonts."""
    if paths not in _FONTSETS:
        _FONTSETS[paths] = FontSet(tuple(worker_soundfont(p) for p in paths))
    return _FONTSETS[paths]


def font_names(paths: tuple[str, ...]) -> list[str]:
    """Short, unique font names recorded in the MIDI files and the statistics: the file name,
    or ``folder/file`` where two fonts share a file name (Debian's and pretty_midi's TimGM6mb)."""
    names = [Path(p).name for p in paths]
    return [f"{Path(p).parent.name}/{n}" if names.count(n) > 1 else n for p, n in zip(paths, names)]


def make_real_audio(task: RealClipTask, seconds: dict[str, float] | None = None
                    ) -> tuple[RealPiece, np.ndarray, int, dict, list]:
    """The clip's ``(piece, audio, sr, strong, chain)``: (n,) float32 audio within +-1 at
    ``sr`` Hz after the record bus and the augmentation ``chain`` (empty when off), and its strong labels.
    Wall seconds per stage (``compose``, ``render``, ``augment``) go into ``seconds``."""
    seconds = {} if seconds is None else seconds
    t0 = time.perf_counter()
    fonts = worker_fontset(task.soundfonts)
    key = clip_key(task.seed, task.index)
    st = task.settings
    piece = compose_realistic(clip_rng(task.seed, task.index, STREAM_REAL_COMPOSE), fonts, task.duration,
                              st.textures, st.drum_prob, st.cymbal_prob,
                              clip_rng(task.seed, task.index, STREAM_CYMBALS) if st.cymbal_prob else None)
    t1 = time.perf_counter()
    stems, sr = render_stems(fonts.fonts, piece, font_names(task.soundfonts), source=f"{key}.mid")
    audio, strong = mix_and_label(stems, sr, piece, st.activity_db)  # labels: off the dry stems
    t2 = time.perf_counter()
    bus = draw_bus(clip_rng(task.seed, task.index, STREAM_BUS)) if st.bus and piece.texture in BUS_TEXTURES else []
    chain = draw_chain(clip_rng(task.seed, task.index, STREAM_AUGMENT)) if st.augment else []
    if bus or chain:
        audio = apply_chain(audio, sr, bus + chain)
    seconds.update(compose=t1 - t0, render=t2 - t1, augment=time.perf_counter() - t2)
    return piece, audio, sr, strong, bus + chain


def make_real_clip(task: RealClipTask) -> ClipResult:
    """Compose, render, mix, augment and featurise one realistic clip."""
    _limit_worker_threads()
    key = clip_key(task.seed, task.index)
    seconds: dict[str, float] = {}
    piece, audio, sr, strong, chain = make_real_audio(task, seconds)
    t0 = time.perf_counter()
    features = worker_frontend(task.frontend).features(audio, sr, source=f"{key}.wav")
    seconds["features"] = time.perf_counter() - t0
    names = font_names(task.soundfonts)
    info = {"texture": piece.texture, "style": piece.style, "bpm": piece.harmony.bpm,
            "parts": [{"class": r.part.cls, "role": r.part.role, "font": names[r.font], "voice": r.part.voice.name,
                       "gain_db": round(r.gain_db, 2), "low": min(n.pitch for n in r.part.notes),
                       "high": max(n.pitch for n in r.part.notes)} for r in piece.parts],
            "effects": [name for name, _ in chain]}
    return ClipResult(index=task.index, key=key, features=np.asarray(features, dtype=np.uint8),
                      midi=piece.midi_bytes(names), strong=strong,
                      wav=wav_bytes(audio, sr) if task.keep_audio else None, ensemble=piece.name,
                      n_parts=len(piece.parts), seconds=seconds,
                      info=info)
