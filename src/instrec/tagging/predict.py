"""Tagging audio files with a trained run or the default model: the module behind ``instrec predict``.

Files are featurised with the run's front end, cut into consecutive windows of the
training clip length (``n_frames`` frames of 0.96 s), and every window goes through the
model. The file's clip-level probability of an instrument is the maximum over windows
and per-frame outputs come from the window that covers the frame.

Per-second decisions follow the run's frame policy (:mod:`instrec.tagging.segments`): a frame
can be active only where its window is tagged present. A file longer than one window is
present for an instrument when those decisions hold it for ``min_seconds`` (the file-level
answer is built from the same evidence as the per-second rows); a shorter file keeps the
clip answer.

"Present" follows a threshold policy (:mod:`instrec.tagging.thresholds`: per-instrument
tuned thresholds by default, or one number for all), for the file and for every frame.
Instruments the run never learned get NaN probabilities and are never present.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from instrec._io import InstrecError
from instrec.device import resolve_device
from instrec.features import FRAME_SECONDS
from instrec.features.audio import AUDIO_SUFFIXES, audio_info, expand_inputs
from instrec.features.frontends import FrontEnd, check_frontend, get_frontend
from instrec.features.musicnn_frontend import with_tag_prior, with_window_tag_prior
from instrec.models import FRAME_MODELS, model_spec
from instrec.models.inference import run_model, to_device
from instrec.parallel import fork_available
from instrec.run import CONFIG_FILE, load_model
from instrec.runinfo import plan_file_workers, threads_for_workers
from instrec.tagging.batch import Interrupted, tag_paths
from instrec.tagging.results import FileTags, TagResults
from instrec.tagging.segments import decide, resolve_frame_policy
from instrec.tagging.thresholds import DEFAULT_THRESHOLD, ThresholdPolicy, learned_classes, resolve_threshold
from instrec.tagging.windows import clip_windows, gate_probabilities, spread_max, stitch

#: Folder of the packaged default model, beside this module.
DEFAULT_DIR = "default"
#: How to get a good default model back when its files fail their integrity check.
DEFAULT_REPAIR = "reinstall instrec, or rebuild the default model with 'make default-model'"


class Tagger:
    """A trained model plus its front end and decision thresholds, loaded once.

    ``threshold``: the policy of the present flags, ``"tuned"`` or a number (see
    :mod:`instrec.tagging.thresholds`). ``device``: where the model and the front end's
    network run (:mod:`instrec.device`; ``self.device`` is the resolved one)."""

    def __init__(self, run_dir: str | Path | None = None, frontend: str | None = None,
                 weights_dir: str | Path | None = None, threshold: str | float = DEFAULT_THRESHOLD,
                 allow_unfinished: bool = False, device: str = "auto", min_seconds: float | None = None):
        self.device = resolve_device(device)
        self.run_dir = Path(run_dir) if run_dir is not None else default_run_dir()
        shipped = self.run_dir.resolve() == default_model_dir().resolve()  # its integrity record must be there
        self.model, self.config = load_model(self.run_dir, allow_unfinished=allow_unfinished, require_integrity=shipped,
                                             repair=DEFAULT_REPAIR if shipped else None)
        to_device(self.model, self.device)
        self.classes: list[str] = list(self.config["classes"])
        self.n_frames: int = int(self.config["n_frames"])
        trained_on = self.config.get("frontend", {}).get("name", "vggish")
        if frontend is not None and frontend != trained_on:
            raise InstrecError(f"{self.run_dir}: the model was trained on {trained_on!r} features; "
                               f"predicting with front end {frontend!r} would give meaningless tags")
        self.frontend_name = trained_on
        self.weights_dir = weights_dir
        self._frontend = None
        self.policy: ThresholdPolicy = resolve_threshold(threshold, self.config)
        self.thresholds = self.policy.values
        # Per-second decisions and the duration rule of long files (frame models only).
        self.frame_policy = (resolve_frame_policy(self.config, self.thresholds, min_seconds)
                             if self.config["model"] in FRAME_MODELS else None)
        # Instruments the training data never labelled positive: the model cannot know them.
        self.trained, self.trained_note = learned_classes(self.config)
        self.tag_prior = self.config.get("tag_prior") is not None
        if self.tag_prior and (trained_on != "musicnn" or self.config["tag_prior"].get("rule") != "noisy-or"):
            raise InstrecError(f"{self.run_dir / CONFIG_FILE}: tag_prior needs the musicnn front end and rule "
                               f"'noisy-or', got {trained_on!r} and {self.config['tag_prior']!r}")

    @property
    def frontend(self) -> FrontEnd:
        """The run's front end, loaded on first use (pretrained weights are fetched then if missing)."""
        if self._frontend is None:
            frontend = get_frontend(self.frontend_name, weights_dir=self.weights_dir, fetch=True, device=self.device)
            check_frontend(self.config.get("frontend", {}), frontend.describe(), self.run_dir / CONFIG_FILE)
            self._frontend = frontend
        return self._frontend

    def windows(self, n: int) -> list[tuple[int, int]]:
        """(start, stop) frame ranges of the run's clip length covering ``n`` frames
        (:func:`instrec.tagging.windows.clip_windows`)."""
        return clip_windows(n, self.n_frames)

    def tag_features(self, features: np.ndarray, path: str = "<features>") -> FileTags:
        """Tag ``features`` (T, F) on the 0-255 scale (uint8 from a front end)."""
        x = np.asarray(features, dtype=np.float32) / 255.0
        n = len(x)
        spans = self.windows(n)
        notes: list[str] = []
        if n < self.n_frames and not model_spec(self.config["model"]).variable_length:
            reps = -(-self.n_frames // n)
            x = np.tile(x, (reps, 1))[: self.n_frames]
            notes.append(f"{n} frames padded to {self.n_frames} by repetition for model {self.config['model']!r}")
            spans = [(0, self.n_frames)]
        batch = np.stack([x[a:b] for a, b in spans])
        preds = run_model(self.model, batch)
        clip = preds.clip.max(axis=0)
        window_clip = preds.clip
        frame = stitch(preds.frame, spans, len(x)) if preds.frame is not None else None
        att = stitch(preds.attention, spans, len(x)) if preds.attention is not None else None
        if frame is not None and len(frame) > n:
            frame, att = frame[:n], (att[:n] if att is not None else None)
        aggregation = "single window" if len(spans) == 1 else f"max over {len(spans)} windows of {self.n_frames} frames"
        if self.tag_prior:
            # musicnn's own tags (learned from real music) join the classes they name by noisy-OR.
            clip, frame = with_tag_prior(np.asarray(features)[:n], self.classes, clip, frame)
            window_clip = with_window_tag_prior(np.asarray(features)[:n], self.classes, preds.clip,
                                                [(a, min(b, n)) for a, b in spans])
            aggregation += "; musicnn tags added by noisy-OR"
        if self.trained_note:
            notes.append(self.trained_note)
        if not self.trained.all():
            notes.append("not learned, no probability: " + ", ".join(
                c for c, t in zip(self.classes, self.trained) if not t) + " (no labelled positive in the training data)")
            untrained = ~self.trained
            clip = np.where(untrained, np.nan, clip)
            frame = np.where(untrained, np.nan, frame) if frame is not None else None
            att = np.where(untrained, np.nan, att) if att is not None else None
        # NaN > t is False: an instrument without a probability is never present.
        present = clip > self.thresholds
        frame_present, long_file = None, n > self.n_frames
        if frame is not None and self.frame_policy is not None:
            # A frame's gate: the clip answer of the windows that cover it (the most confident one,
            # where the last window overlaps the one before), or for a long file with the policy's
            # shorter gate windows, of those (instrec.tagging.windows).
            gate_frames = self.frame_policy.get("gate_frames")
            if long_file and gate_frames and gate_frames < self.n_frames and \
                    model_spec(self.config["model"]).variable_length:
                per_frame = gate_probabilities(self.model, x[:n], gate_frames, self._gate_rule(features))
                aggregation += f"; gated by windows of {gate_frames} frames"
            else:
                per_frame = spread_max(window_clip, spans, len(x))[:n]
            present, frame_present = decide(frame, np.where(self.trained, per_frame, np.nan), self.thresholds,
                                            self.frame_policy, long_file, present, FRAME_SECONDS)
            if long_file:
                aggregation += f"; present: held >= {self.frame_policy['min_seconds']:g} s per second"
        return FileTags(path, clip, present, n, len(spans), aggregation, frame, att, notes,
                        frame_present=frame_present, long_file=long_file and frame_present is not None)

    def _gate_rule(self, features: np.ndarray) -> Callable[[np.ndarray, list[tuple[int, int]]], np.ndarray] | None:
        """The gate windows' clip probabilities under the run's tag prior (None: the model's own)."""
        if not self.tag_prior:
            return None
        feats = np.asarray(features)
        return lambda probs, spans: with_window_tag_prior(feats, self.classes, probs, spans)

    def tag_file(self, path: str | Path) -> FileTags:
        """Featurise and tag one audio file; warnings from decoding become notes."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            feats = self.frontend.features_from_file(path)
        return self.tag_file_features(path, feats, [str(w.message) for w in caught])

    def tag_file_features(self, path: str | Path, features: np.ndarray, notes: list[str]) -> FileTags:
        """Tag the features (T, F) of the audio file ``path``; ``notes``: its decoding warnings."""
        tags = self.tag_features(features, str(path))
        tags.notes = notes + tags.notes
        if not _utf8(str(path)):
            tags.notes.append("the file name is not valid UTF-8: written as its raw bytes (surrogateescape)")
        tags.duration = audio_info(path).duration
        return tags


def _utf8(text: str) -> bool:
    """Whether ``text`` is valid Unicode (a name that was not UTF-8 holds lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def default_model_dir() -> Path:
    """Where the default model lives in the installed package (``instrec/tagging/default``)."""
    return Path(__file__).resolve().parent / DEFAULT_DIR


def default_run_dir() -> Path:
    """The default model that ships inside the package: the run directory of ``make
    default-model`` (see :mod:`instrec.pipelines.default_model`); a clear error if missing."""
    path = default_model_dir()
    if not (path / CONFIG_FILE).is_file():
        raise InstrecError(f"{path}: the default model is missing from this installation; pass a run "
                           "directory with --run, or rebuild it with 'make default-model'")
    return path


def predict(run_dir: str | Path | None, inputs: Iterable[str | Path], per_second: bool = False,
            frontend: str | None = None, weights_dir: str | Path | None = None, progress: bool = False,
            threshold: str | float = DEFAULT_THRESHOLD, threads: int | None = None,
            allow_unfinished: bool = False, jobs: int = 1, device: str = "auto",
            keep_partial: bool = False, min_seconds: float | None = None) -> TagResults:
    """Tag audio files (or folders of them) with the model in ``run_dir`` (None: the default model).

    ``threshold``: ``"tuned"`` (default: the run's per-instrument thresholds), ``"0.5"`` or
    any number in [0, 1) for every instrument; it decides the present flags of the files
    and of their frames, and the outputs state it.

    Bad files do not stop the batch: they are listed in ``failures`` as (path, message).
    With ``per_second`` the model must have frame-level outputs. ``threads``: torch
    intra-op threads of each process, 0 for the policy of :mod:`instrec.runinfo` (1), None
    to keep the current count (with one process). ``jobs``: worker processes across files, 0
    for one per usable core (:func:`instrec.runinfo.plan_file_workers`); the tags are the
    same whatever the count, as long as the threads per process are; workers with more than
    one thread need a process that has not run multi-threaded torch work before (see
    :func:`instrec.parallel.inherited_map`). ``allow_unfinished``:
    tag with a run whose training did not finish (with a warning). ``device``: where the
    networks run (:mod:`instrec.device`); on a GPU the worker processes decode and the GPU
    runs the front end's network and the model. ``keep_partial``: Ctrl-C while tagging returns
    the files finished so far, with ``interrupted`` set (else it raises KeyboardInterrupt). ``min_seconds``: a file longer
    than one window holds an instrument when its per-second decisions add up to this many
    seconds (None: the run's policy, :data:`instrec.evaluation.frame_policy.MIN_SECONDS`)."""
    device = resolve_device(device)  # a missing GPU is an error before any file is read
    inputs = list(inputs)
    paths = expand_inputs(inputs)
    if not paths:
        raise InstrecError(f"{', '.join(map(str, inputs)) or 'no inputs'}: no audio files found "
                           f"(looked for {', '.join(AUDIO_SUFFIXES)})")
    # Threads before the model loads: loading runs torch work, which must not start an OpenMP
    # pool with more than one thread before workers fork (see threads_for_workers).
    jobs, threads = plan_file_workers(len(paths), jobs, threads, fork_available())
    setup = threads_for_workers(jobs, threads)
    tagger = Tagger(run_dir, frontend=frontend, weights_dir=weights_dir, threshold=threshold,
                    allow_unfinished=allow_unfinished, device=device, min_seconds=min_seconds)
    if per_second:
        require_frame_outputs(tagger)
    tagger.frontend  # noqa: B018 - loads and checks it now: a mismatch is one error, not one per file
    interrupted = None
    try:
        files, failures = tag_paths(tagger, paths, progress, jobs=jobs, worker_setup=setup)
    except Interrupted as stop:
        if not keep_partial:
            raise
        files, failures = stop.files, stop.failures
        interrupted = (len(files) + len(failures), stop.total)
    return TagResults(tagger.classes, files, failures, tagger.thresholds, tagger.trained, tagger.policy.name,
                      tagger.policy.description, interrupted,
                      tagger.frame_policy["description"] if tagger.frame_policy is not None else None)


def require_frame_outputs(tagger: Tagger) -> None:
    """Per-second tags need a model with frame-level outputs; a clear error otherwise."""
    if tagger.config["model"] not in FRAME_MODELS:
        raise InstrecError(f"{tagger.run_dir}: model {tagger.config['model']!r} has no per-frame output; "
                           f"use a run of {', '.join(FRAME_MODELS)} for per-second tags")
