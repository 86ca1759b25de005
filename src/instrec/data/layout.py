"""The files of a dataset folder: every name in one place, and the readers of the side files.

A dataset folder in the OpenMIC-2018 layout (see :mod:`instrec.data.openmic`) holds the
release's ``openmic-2018.npz``, ``class-map.json`` and ``partitions/``. Folders that
instrec writes add side files:

* ``frontend.json``: the front end the features came from (``featurize``, ``synth``);
* ``featurize-notes.csv``: decoder notes per featurised file (``featurize``);
* ``strong-labels.csv``: ``sample_key,instrument,onset,offset`` (seconds) events (``synth``);
* ``corpus-stats.json``: statistics of a rendered corpus (``synth``);
* ``midi/<key>.mid``: the score of each rendered clip, ``audio/<key>.wav`` its audio
  where kept (``synth``).
"""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any, Sequence

from instrec._io import InstrecError
from instrec._jsonread import read_json

NPZ_FILE = "openmic-2018.npz"
CLASS_MAP_FILE = "class-map.json"
PARTITIONS_DIR = "partitions"
FRONTEND_FILE = "frontend.json"
FEATURIZE_NOTES_FILE = "featurize-notes.csv"
STRONG_LABELS_FILE = "strong-labels.csv"
CORPUS_STATS_FILE = "corpus-stats.json"
MIDI_DIR = "midi"
AUDIO_DIR = "audio"
STRONG_LABELS_HEADER = ["sample_key", "instrument", "onset", "offset"]

#: What ``frontend.json`` is taken to say when a dataset has none: the OpenMIC release.
RELEASE_FRONTEND = {"name": "vggish", "source": "assumed: OpenMIC-2018 release features (no frontend.json)"}


def partition_path(data_dir: str | Path, split: str, split_name: str = "split01") -> Path:
    """``DIR/partitions/<split_name>_<split>.csv``."""
    return Path(data_dir) / PARTITIONS_DIR / f"{split_name}_{split}.csv"


def midi_path(data_dir: str | Path, key: str) -> Path:
    """``DIR/midi/<key>.mid``: the score a rendered clip was made from."""
    return Path(data_dir) / MIDI_DIR / f"{key}.mid"


def audio_path(data_dir: str | Path, key: str) -> Path:
    """``DIR/audio/<key>.wav``: a rendered clip's audio (``synth --keep-audio``)."""
    return Path(data_dir) / AUDIO_DIR / f"{key}.wav"


def _read_json(path: Path) -> Any:
    return read_json(path)


def read_frontend(data_dir: str | Path) -> dict[str, Any]:
    """The front end a dataset's features came from (``frontend.json``); the OpenMIC
    release carries none, and its features are the official VGGish ones."""
    path = Path(data_dir) / FRONTEND_FILE
    if not path.is_file():
        return dict(RELEASE_FRONTEND)
    record = _read_json(path)
    if not isinstance(record, dict) or not isinstance(record.get("name"), str):
        raise InstrecError(f"{path}: must be a JSON object with a front-end 'name'")
    return record


def read_corpus_stats(data_dir: str | Path) -> dict[str, Any] | None:
    """``corpus-stats.json`` of a rendered corpus, or None for other datasets."""
    path = Path(data_dir) / CORPUS_STATS_FILE
    if not path.is_file():
        return None
    stats = _read_json(path)
    if not isinstance(stats, dict) or not isinstance(stats.get("renderable_classes", []), list):
        raise InstrecError(f"{path}: must be a JSON object (field 'renderable_classes': a list of class names)")
    return stats


def read_strong_labels(data_dir: str | Path, classes: Sequence[str]) -> dict[str, list[tuple[str, float, float]]]:
    """Events of ``strong-labels.csv``: {sample_key: [(instrument, onset_s, offset_s), ...]}."""
    path = Path(data_dir) / STRONG_LABELS_FILE
    if not path.is_file():
        raise InstrecError(f"{path}: not found; strong labels come with a dataset written by 'instrec synth'")
    try:
        return _strong_events(path, classes)
    except UnicodeDecodeError as exc:
        raise InstrecError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _strong_events(path: Path, classes: Sequence[str]) -> dict[str, list[tuple[str, float, float]]]:
    events: dict[str, list[tuple[str, float, float]]] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames != STRONG_LABELS_HEADER:
            raise InstrecError(f"{path}: header must be {','.join(STRONG_LABELS_HEADER)}")
        for line, row in enumerate(reader, start=2):
            try:
                onset, offset = float(row["onset"]), float(row["offset"])
            except (TypeError, ValueError):
                raise InstrecError(f"{path}: line {line}: onset/offset are not numbers") from None
            if row["instrument"] not in classes or not 0 <= onset <= offset:
                raise InstrecError(f"{path}: line {line}: unknown instrument or bad interval")
            events.setdefault(row["sample_key"], []).append((row["instrument"], onset, offset))
    return events


def dataset_fingerprint(data_dir: str | Path, split_name: str = "split01") -> str:
    """sha256 over the files a training run reads (the npz, the class map, the training
    partition): a run records it, so a run trained on other data is recognised whatever
    the folder is called. Missing files count as empty."""
    digest = hashlib.sha256()
    for path in (Path(data_dir) / NPZ_FILE, Path(data_dir) / CLASS_MAP_FILE,
                 Path(data_dir) / PARTITIONS_DIR / f"{split_name}_train.csv"):
        digest.update(path.name.encode() + b"\0")
        try:
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError:
            pass
    return digest.hexdigest()
