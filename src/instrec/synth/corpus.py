"""Write the whole synthetic corpus in the OpenMIC-2018 layout, plus strong labels.

Layout of ``DIR``: ``openmic-2018.npz``, ``partitions/split01_{train,test}.csv``,
``class-map.json`` (the 20 OpenMIC classes, OpenMIC order), ``strong-labels.csv``
(``sample_key,instrument,onset,offset`` in seconds), ``midi/KEY.mid``, ``audio/KEY.wav``
(only with ``keep_audio``) and ``corpus-stats.json``. Two recipes: ``ensemble`` (the
original: dense multi-instrument pieces, one SoundFont, clean signal) and ``realistic``
(:mod:`~instrec.synth.real_worker`: mostly solos, duos and sparse textures, a font drawn
per part, an expressive performance and a recording-chain augmentation). Everything is written into a
staging folder next to ``DIR`` and renamed into place at the end, so a failure or an
interruption leaves no half-written corpus behind.
"""
from __future__ import annotations

import os
import secrets
import shutil
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from instrec._io import InstrecError, OutputLock, atomic_write_json
from instrec.classes import OPENMIC_CLASSES
from instrec.data.layout import (
    AUDIO_DIR,
    CORPUS_STATS_FILE,
    FRONTEND_FILE,
    MIDI_DIR,
    NPZ_FILE,
    STRONG_LABELS_FILE,
    audio_path,
    midi_path,
)
from instrec.data.openmic import write_openmic
from instrec.features.frontends import get_frontend
from instrec.parallel import ordered_map, sigterm_as_interrupt
from instrec.synth.augment import require_pedalboard
from instrec.synth.fonts import AUTO, FontSet, FontSpec
from instrec.synth.gm import renderable_classes
from instrec.synth.labels import label_corpus
from instrec.synth.real_worker import RealClipTask, RealisticSettings, make_real_clip
from instrec.synth.stats import CorpusStats, count, label_statistics, recipe_statistics
from instrec.synth.worker import (
    STREAM_LABELS,
    ClipResult,
    ClipTask,
    clip_rng,
    make_clip,
    single_thread_math,
    worker_cache,
)

#: Entropy word of the train/test split stream (clip streams use the clip index there).
_SPLIT_STREAM = 1 << 40
_CORPUS_MARKERS = (CORPUS_STATS_FILE, NPZ_FILE)
RECIPES = ("ensemble", "realistic")


def _check_args(out: Path, n_clips: int, seed: int, jobs: int, labels_per_clip: float,
                positive_fraction: float, test_fraction: float, min_seconds: float) -> None:
    checks = [
        (isinstance(n_clips, (int, np.integer)) and n_clips >= 1, f"number of clips must be >= 1, got {n_clips}"),
        (isinstance(seed, (int, np.integer)) and seed >= 0, f"seed must be an integer >= 0, got {seed}"),
        (isinstance(jobs, (int, np.integer)) and jobs >= 1, f"jobs must be >= 1, got {jobs}"),
        (1.0 <= labels_per_clip <= len(OPENMIC_CLASSES), f"labels per clip must be in [1, 20], got {labels_per_clip}"),
        (0.0 < positive_fraction < 1.0, f"positive fraction must be in (0, 1), got {positive_fraction}"),
        (0.0 <= test_fraction < 1.0, f"test fraction must be in [0, 1), got {test_fraction}"),
        (min_seconds > 0.0, f"min_seconds must be > 0, got {min_seconds}"),
    ]
    for ok, message in checks:
        if not ok:
            raise InstrecError(f"{out}: {message}")


def _prepare(out: Path, overwrite: bool) -> Path:
    """Check the target folder and create a staging folder beside it; return the staging path."""
    if out.exists() and not out.is_dir():
        raise InstrecError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise InstrecError(f"{out}: output folder is not empty (use --overwrite to replace it)")
        if not any((out / m).exists() for m in _CORPUS_MARKERS):
            raise InstrecError(f"{out}: not empty and not a synthetic corpus; refusing to replace it")
    staging = out.parent / f".{out.name}.staging-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
        (staging / MIDI_DIR).mkdir()
    except OSError as exc:
        raise InstrecError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from None
    return staging


def _remove_stale(out: Path) -> list[Path]:
    """Remove the staging and backup folders of ``out`` that earlier, killed writers left
    (call with ``out``'s lock held: no live writer can own one); return them."""
    stale = [p for pattern in (f".{out.name}.staging-*", f".{out.name}.old-*") for p in out.parent.glob(pattern)
             if p.is_dir()]
    for path in stale:
        if ".old-" in path.name and not out.exists():
            os.rename(path, out)  # killed between the two renames of _publish: the old corpus comes back
        else:
            shutil.rmtree(path, ignore_errors=True)
    return stale


def _publish(staging: Path, out: Path) -> None:
    """Move the finished staging folder to ``out``, replacing an existing one."""
    backup = None
    if out.exists():
        backup = out.parent / f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
        os.rename(out, backup)
    try:
        os.rename(staging, out)
    except BaseException:
        if backup is not None:
            os.rename(backup, out)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def _split(n: int, seed: int, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, test) clip indices, each sorted; the test part has ``round(n * f)``
    clips, at least 1 and at most n-1 when n >= 2 and f > 0."""
    n_test = int(round(n * test_fraction))
    if n >= 2 and test_fraction > 0:
        n_test = min(max(n_test, 1), n - 1)
    order = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_STREAM, 0])).permutation(n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _strong_csv(results: list[tuple[str, dict]]) -> str:
    rows = ["sample_key,instrument,onset,offset"]
    for key, strong in results:
        for cls in OPENMIC_CLASSES:
            rows += [f"{key},{cls},{on:.3f},{off:.3f}" for on, off in strong.get(cls, ())]
    return "\n".join(rows) + "\n"


@dataclass(frozen=True)
class _Settings:
    """The validated arguments of :func:`build_corpus`."""

    n_clips: int
    seed: int
    frontend: str
    jobs: int
    keep_audio: bool
    labels_per_clip: float
    positive_fraction: float
    disagreement: bool
    test_fraction: float
    min_seconds: float
    recipe: str = "ensemble"
    realistic: RealisticSettings | None = None


def _fonts(recipe: str, soundfont: FontSpec, soundfonts: Sequence[FontSpec] | None) -> FontSet:
    """The corpus's fonts: ``soundfonts`` or ``[soundfont]``; the realistic recipe's default
    is ``auto`` (every installed GM font), the ensemble recipe takes exactly one font."""
    if recipe not in RECIPES:
        raise InstrecError(f"--recipe: unknown recipe {recipe!r} (choose from {', '.join(RECIPES)})")
    if soundfont is not None and soundfonts:
        raise InstrecError("--soundfont: give soundfont or soundfonts, not both")
    specs = list(soundfonts) if soundfonts else [soundfont if soundfont is not None or recipe == "ensemble" else AUTO]
    fonts = FontSet.load(specs)
    if recipe == "ensemble" and len(fonts.fonts) != 1:
        raise InstrecError(f"--soundfont: the ensemble recipe renders with one SoundFont, got {len(fonts.fonts)} "
                           "(use --recipe realistic for several)")
    return fonts


def build_corpus(out_dir: str | os.PathLike, n_clips: int, seed: int, soundfont: str | os.PathLike | None = None,
                 frontend: str = "logmel", jobs: int = 1, keep_audio: bool = False, overwrite: bool = False,
                 labels_per_clip: float = 2.0, positive_fraction: float = 0.43, disagreement: bool = True,
                 test_fraction: float = 0.25, progress: bool = True, executor: Executor | None = None,
                 min_seconds: float = 1.0, recipe: str = "ensemble", soundfonts: Sequence[FontSpec] | None = None,
                 realistic: RealisticSettings | None = None) -> CorpusStats:
    """Render ``n_clips`` 10-second clips into ``out_dir`` (layout in the module docstring).

    ``recipe``: ``ensemble`` (default; byte-identical to earlier versions for a seed) or
    ``realistic``, with its ``realistic`` settings (default :class:`RealisticSettings`;
    its augmentation needs the ``pedalboard`` package).
    ``soundfont``: a ``.sf2`` path (default pretty_midi's TimGM6mb.sf2); classes without a
    preset in it are never rendered nor labelled. ``soundfonts``: several paths (or
    ``"auto"``: every installed GM font, the realistic recipe's default); the realistic
    recipe draws a font per part. ``frontend``: ``logmel`` or ``vggish``.
    ``jobs``: worker processes (or pass any ``executor``); the output does not depend on it.
    ``labels_per_clip``: mean labelled classes per clip (>= 1); ``positive_fraction``: target
    share of positive labelled pairs; ``disagreement``: soft relevance values;
    ``test_fraction``: share of clips in ``split01_test``; ``min_seconds``: sounding time for
    a class to be weakly present. ``overwrite`` replaces an existing corpus folder.
    Prints a summary when ``progress``. Raises :class:`InstrecError` on bad input.
    """
    started = time.perf_counter()
    out = Path(out_dir).expanduser().resolve()
    _check_args(out, n_clips, seed, jobs, labels_per_clip, positive_fraction, test_fraction, min_seconds)
    if recipe == "realistic":
        realistic = realistic or RealisticSettings()
        if realistic.augment:
            require_pedalboard()
    cfg = _Settings(int(n_clips), int(seed), frontend, int(jobs), bool(keep_audio), float(labels_per_clip),
                    float(positive_fraction), bool(disagreement), float(test_fraction), float(min_seconds),
                    recipe, realistic if recipe == "realistic" else None)
    fonts = _fonts(recipe, soundfont, soundfonts)
    sf = fonts.fonts[0]

    front = get_frontend(frontend)
    described = front.describe()
    for font in fonts.fonts:
        worker_cache(font, frontend, front)  # reused in-process and by forked workers
    renderable = renderable_classes(sf.preset_keys) if recipe == "ensemble" else fonts.renderable
    if not renderable:
        raise InstrecError(f"{sf.path}: SoundFont has no preset for any of the 20 instrument classes")
    # Locked: a second synth into the same folder is refused, and every staging folder of
    # ``out`` found now belongs to a writer that is gone (it held this lock), so is removed.
    # SIGTERM unwinds like Ctrl-C so that the staging folder goes too; workers die with us.
    with OutputLock(out), sigterm_as_interrupt():
        _remove_stale(out)
        staging = _prepare(out, overwrite)
        try:
            clips = _render_all(staging, fonts, cfg, executor, progress)
            stats = _write(staging, out, fonts, renderable, described, cfg, clips, executor, started)
            _publish(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    if progress:
        print(stats.summary(), flush=True)
    return stats


@dataclass
class _Clips:
    """Per-clip outputs in clip order: (T, 128) uint8 ``features``, sample ``keys``, ``strong``
    labels (class -> intervals in s), ensemble names; ``stage``: summed worker seconds."""

    features: list[np.ndarray] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    strong: list[dict] = field(default_factory=list)
    ensembles: list[str] = field(default_factory=list)
    stage: dict[str, float] = field(default_factory=lambda: {"compose": 0.0, "render": 0.0, "features": 0.0})
    info: list[dict] = field(default_factory=list)


def _render_all(staging: Path, fonts: FontSet, cfg: _Settings, executor: Executor | None, progress: bool) -> _Clips:
    """Make every clip (in parallel), writing MIDI/WAV files into ``staging`` as they arrive."""
    tasks: Iterator[ClipTask | RealClipTask]
    if cfg.recipe == "ensemble":
        fn = make_clip
        tasks = (ClipTask(i, cfg.seed, fonts.paths[0], cfg.frontend, cfg.keep_audio) for i in range(cfg.n_clips))
    else:
        assert cfg.realistic is not None
        fn = make_real_clip
        tasks = (RealClipTask(i, cfg.seed, fonts.paths, cfg.frontend, cfg.realistic, cfg.keep_audio)
                 for i in range(cfg.n_clips))
    clips = _Clips()
    if cfg.keep_audio:
        (staging / AUDIO_DIR).mkdir()
    res: ClipResult
    with single_thread_math():
        for res in ordered_map(fn, tasks, jobs=cfg.jobs, executor=executor, progress=progress,
                               desc="synth", total=cfg.n_clips):
            midi_path(staging, res.key).write_bytes(res.midi)
            if res.wav is not None:
                audio_path(staging, res.key).write_bytes(res.wav)
            clips.features.append(res.features)
            clips.keys.append(res.key)
            clips.strong.append(res.strong)
            clips.ensembles.append(res.ensemble)
            for k, v in res.seconds.items():
                clips.stage[k] = clips.stage.get(k, 0.0) + v
            if res.info is not None:
                clips.info.append(res.info)
    return clips


def _write(staging: Path, out: Path, fonts: FontSet, renderable: tuple[str, ...], described: dict, cfg: _Settings,
           clips: _Clips, executor: Executor | None, started: float) -> CorpusStats:
    """Label the clips and write the dataset files and statistics into ``staging``."""
    classes = list(OPENMIC_CLASSES)
    candidates = np.array([c in renderable for c in classes])
    rngs = [clip_rng(cfg.seed, i, STREAM_LABELS) for i in range(cfg.n_clips)]
    lab = label_corpus(clips.strong, classes, candidates, rngs, cfg.labels_per_clip, cfg.positive_fraction,
                       cfg.disagreement, cfg.min_seconds)
    keys = clips.keys
    train, test = _split(cfg.n_clips, cfg.seed, cfg.test_fraction)
    write_openmic(staging, np.stack(clips.features), lab["y_true"], lab["y_mask"], keys, classes,
                  partitions={"train": [keys[i] for i in train], "test": [keys[i] for i in test]})
    (staging / STRONG_LABELS_FILE).write_text(_strong_csv(list(zip(keys, clips.strong))), encoding="utf-8")
    seconds = time.perf_counter() - started
    sf = fonts.fonts[0]
    stats = CorpusStats(
        out_dir=str(out), n_clips=cfg.n_clips, seed=cfg.seed, soundfont=str(sf.path), soundfont_sha256=sf.sha256,
        frontend=described, classes=classes, renderable_classes=list(renderable), n_train=len(train),
        n_test=len(test), labels_per_clip_requested=cfg.labels_per_clip,
        positive_fraction_requested=cfg.positive_fraction, p_positive=float(lab["p_positive"]),
        disagreement=cfg.disagreement, min_seconds=cfg.min_seconds,
        **label_statistics(lab["y_true"], lab["y_mask"], lab["present"], lab["sounding"], classes),
        ensembles=dict(count(clips.ensembles)), jobs=cfg.jobs,
        executor=type(executor).__name__ if executor is not None else None, seconds=round(seconds, 3),
        clips_per_second=round(cfg.n_clips / seconds, 2),
        stage_seconds={k: round(v, 3) for k, v in clips.stage.items()},
        **recipe_statistics(cfg.recipe, cfg.realistic, fonts.describe(), clips.info, lab["present"], classes))
    atomic_write_json(staging / CORPUS_STATS_FILE, stats.to_json())
    # The dataset-level record every OpenMIC-layout folder of instrec carries (see featurize).
    atomic_write_json(staging / FRONTEND_FILE, described)
    return stats
