"""Tagging many files with one :class:`~instrec.tagging.predict.Tagger`: worker processes
across files (or, on a GPU, decoding workers feeding this process), bad files reported
without stopping the batch, and Ctrl-C returning what was finished."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

import numpy as np

from instrec._io import InstrecError
from instrec.device import is_accelerator
from instrec.features.feed import fed_features
from instrec.parallel import inherited_map
from instrec.tagging.results import FileTags


class FileTagger(Protocol):
    """What a batch needs of :class:`instrec.tagging.predict.Tagger` (whose module imports this one)."""

    device: str

    @property
    def frontend(self) -> Any: ...

    def tag_file(self, path: str | Path) -> FileTags: ...

    def tag_file_features(self, path: str | Path, features: np.ndarray, notes: list[str]) -> FileTags: ...


def tag_paths(tagger: FileTagger, paths: Iterable[str | Path], progress: bool = False, jobs: int = 1,
              worker_setup: Callable[[], Any] | None = None,
              feed: bool | None = None) -> tuple[list[FileTags], list[tuple[str, str]]]:
    """Tag each file with ``tagger``: the tags of the good files and (path, message) of the
    bad ones, in input order. A bad file (an :class:`InstrecError`) does not stop the batch.
    ``jobs`` > 1: that many forked worker processes (:func:`instrec.parallel.inherited_map`,
    which says what ``worker_setup`` is for). ``feed`` (default: when the tagger's device is
    a GPU): the workers only decode and prepare, this process runs the networks
    (:mod:`instrec.features.feed`); else each worker tags its files whole."""
    files, failures = [], []
    paths = list(paths)
    if is_accelerator(tagger.device) if feed is None else feed:
        results = _fed_tags(tagger, fed_features(tagger.frontend, paths, jobs, worker_setup, progress=progress,
                                                 desc="tagging"))
    else:
        results = inherited_map(functools.partial(_tag_or_fail, tagger), paths, jobs, worker_setup,
                                progress=progress, desc="tagging", total=len(paths))
    try:
        for path, tags, message in results:
            if message is not None:
                failures.append((path, message))
            else:
                files.append(tags)
    except KeyboardInterrupt:
        raise Interrupted(files, failures, len(paths)) from None
    finally:
        results.close()  # stops the workers now, not when the generator is collected
    return files, failures


def _fed_tags(tagger: FileTagger, fed: Iterator[tuple[str, np.ndarray | None, list[str], str | None]]
              ) -> Iterator[tuple[str, FileTags | None, str | None]]:
    """What :func:`_tag_or_fail` gives per file, from features decoded elsewhere
    (:func:`instrec.features.feed.fed_features`); closing it stops the decoding workers."""
    try:
        for path, feats, notes, message in fed:
            tags = None
            if message is None:
                try:
                    tags = tagger.tag_file_features(path, feats, notes)
                except InstrecError as exc:
                    message = str(exc)
            yield path, tags, message
    finally:
        fed.close()


class Interrupted(KeyboardInterrupt):
    """Ctrl-C while :func:`tag_paths` ran: what was finished before it, in input order
    (``files`` tagged, ``failures``), of ``total`` files."""

    def __init__(self, files: list[FileTags], failures: list[tuple[str, str]], total: int) -> None:
        super().__init__()
        self.files, self.failures, self.total = files, failures, total


def _tag_or_fail(tagger: FileTagger, path: str | Path) -> tuple[str, FileTags | None, str | None]:
    """(path, tags, None) or, for a bad file, (path, None, the one-line problem)."""
    try:
        return str(path), tagger.tag_file(path), None
    except InstrecError as exc:
        return str(path), None, str(exc)
