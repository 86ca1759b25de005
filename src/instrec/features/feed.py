"""Feeding a GPU: worker processes decode, this process runs the networks.

With the front end's network on a GPU (:meth:`FrontEnd.to`), ``predict`` and ``featurize``
split each file's work: forked worker processes (:func:`instrec.parallel.inherited_map`)
decode it, resample it and compute its spectrograms (:meth:`FrontEnd.prepare_file`, the CPU
part), and this process, which holds the GPU, runs the network over ``groups_per_call``
row groups at a time (:meth:`FrontEnd.finish_prepared`) and then the model. The GPU is not
forked into the workers: they never touch it.

Memory stays bounded: a worker hands over a file's prepared row groups only for files up to
the front end's ``cache_seconds`` (600 s: musicnn's spectrograms of 10 minutes are about
15 MB); a longer file (an hour-long recording) is streamed here instead, group by group
(:meth:`FrontEnd.features_from_file`), and at most ``4 * jobs`` files are in flight.
Front ends without a network (``logmel``) compute their features in the workers.
"""
from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from instrec._io import InstrecError
from instrec.features.audio import audio_info
from instrec.features.frontend import FrontEnd
from instrec.parallel import inherited_map


@dataclass
class Prepared:
    """A worker's share of one file: the row groups for :meth:`FrontEnd.finish_prepared`
    (None: longer than ``cache_seconds``, streamed by the parent), the warnings of decoding
    as notes, or the one-line problem."""

    path: str
    groups: list[Any] | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def prepare_or_fail(fe: FrontEnd, path: str | os.PathLike) -> Prepared:
    """:meth:`FrontEnd.prepare_file` of ``path`` in a worker; an unreadable file is a
    :class:`Prepared` with ``error`` set, not an exception."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            groups = None if audio_info(path).duration > fe.cache_seconds else fe.prepare_file(path)
    except InstrecError as exc:
        return Prepared(str(path), error=str(exc))
    return Prepared(str(path), groups, [str(w.message) for w in caught])


def fed_features(fe: FrontEnd, paths: Iterable[str | os.PathLike], jobs: int,
                 worker_setup: Callable[[], Any] | None = None, progress: bool = False,
                 desc: str = "") -> Iterator[tuple[str, np.ndarray | None, list[str], str | None]]:
    """Per file, in input order: (path, (T, dim) uint8 features, notes, None), or (path,
    None, [], the problem) for a bad file. ``jobs`` worker processes prepare (1: this
    process does everything); ``worker_setup`` runs first in each (threads). Row groups of
    consecutive files share network calls (a 30-s file is one group: alone it would leave
    a GPU idle), ``fe.groups_per_call`` groups at most per call."""
    paths = [str(p) for p in paths]
    prepared = inherited_map(functools.partial(prepare_or_fail, fe), paths, jobs, worker_setup,
                             progress=progress, desc=desc, total=len(paths))
    waiting: list[Prepared] = []  # files whose groups wait for a full call, in order
    for item in prepared:
        if item.groups is not None and item.error is None:
            waiting.append(item)
            if sum(len(w.groups) for w in waiting) >= fe.groups_per_call:
                yield from _finish_files(fe, waiting)
                waiting = []
            continue
        yield from _finish_files(fe, waiting)  # the files before this one first: input order
        waiting = []
        if item.error is not None:
            yield item.path, None, [], item.error
            continue
        try:  # longer than cache_seconds: streamed here, group by group
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                feats = fe.features_from_file(item.path)
        except InstrecError as exc:
            yield item.path, None, [], str(exc)
            continue
        yield item.path, feats, item.notes + [str(w.message) for w in caught], None
    yield from _finish_files(fe, waiting)


def _finish_files(fe: FrontEnd,
                  files: list[Prepared]) -> Iterator[tuple[str, np.ndarray | None, list[str], str | None]]:
    """The features of ``files`` (prepared), their row groups run through the network together."""
    if not files:
        return
    try:
        rows = fe.finish_groups([g for f in files for g in f.groups or []])
    except InstrecError as exc:
        for f in files:
            yield f.path, None, [], str(exc)
        return
    first = 0
    for f in files:
        n = len(f.groups or [])
        yield f.path, np.concatenate(rows[first:first + n], axis=0), f.notes, None
        first += n
