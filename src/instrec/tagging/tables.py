"""Tags as Arrow tables and Parquet parts: the output format of catalogue-scale tagging.

Three tables (see :mod:`instrec.tagging.catalogue` for the folder they live in):

- clips, one row per tagged file: ``file``, ``duration`` (seconds of audio), ``n_frames``,
  ``n_windows``, ``aggregation``, ``notes`` (list of strings), then per instrument its
  probability (float32, column named after the instrument; null for an instrument the run
  never learned), ``<instrument>_present`` (bool) and ``segments`` (list of ``instrument``,
  ``start_s``, ``end_s``: when each instrument plays under the frame policy; empty without
  per-frame outputs);
- seconds (with per-second tags), one row per file, frame and instrument: ``file``, ``frame``,
  ``start_s``, ``end_s``, ``instrument``, ``probability``, ``present`` (the frame's flag under
  the job's threshold policy) and ``attention`` (null where the model has none);
- failures, one row per file that could not be tagged: ``file``, ``error``.

A part is a whole Parquet file written atomically (in memory, then temp file and rename),
so a reader never sees a half-written part. Needs pyarrow (``pip install instrec[scale]``).
"""
from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from instrec._io import InstrecError, atomic_write_bytes
from instrec.tagging.results import FileTags
from instrec.tagging.segments import file_segments


def _pa():
    try:
        import pyarrow as pa
        import pyarrow.parquet  # makes pa.parquet available
    except ImportError as exc:
        raise InstrecError("Parquet output needs pyarrow: pip install 'instrec[scale]'") from exc
    return pa


def file_text(name: str) -> str:
    """``name`` as Parquet text: a name that is not valid UTF-8 (lone surrogates from the file
    system) gets its bad bytes written as ``\\xNN`` (its row's notes say so)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return name


def clip_schema(classes: Sequence[str]):
    """The clip table's schema for the instruments ``classes``."""
    pa = _pa()
    return pa.schema([("file", pa.string()), ("duration", pa.float64()), ("n_frames", pa.int32()),
                      ("n_windows", pa.int32()), ("aggregation", pa.string()), ("notes", pa.list_(pa.string())),
                      *((c, pa.float32()) for c in classes), *((f"{c}_present", pa.bool_()) for c in classes),
                      ("segments", pa.list_(pa.struct([("instrument", pa.string()), ("start_s", pa.float64()),
                                                       ("end_s", pa.float64())])))])


def seconds_schema():
    """The per-second (long) table's schema."""
    pa = _pa()
    return pa.schema([("file", pa.string()), ("frame", pa.int32()), ("start_s", pa.float64()), ("end_s", pa.float64()),
                      ("instrument", pa.string()), ("probability", pa.float32()), ("present", pa.bool_()),
                      ("attention", pa.float32())])


def failures_schema():
    pa = _pa()
    return pa.schema([("file", pa.string()), ("error", pa.string())])


def clip_table(files: Sequence[FileTags], classes: Sequence[str]):
    """One row per file (see the module docstring)."""
    pa = _pa()
    probs = np.stack([f.probabilities for f in files]).astype(np.float32) if files else np.zeros((0, len(classes)),
                                                                                                  np.float32)
    present = np.stack([f.present for f in files]).astype(bool) if files else np.zeros((0, len(classes)), bool)
    columns = [[file_text(f.path) for f in files], [float(f.seconds) for f in files], [f.n_frames for f in files],
               [f.n_windows for f in files], [f.aggregation for f in files], [list(f.notes) for f in files],
               *(probs[:, c] for c in range(len(classes))), *(present[:, c] for c in range(len(classes))),
               [_segments(f, classes) for f in files]]
    schema = clip_schema(classes)
    # An instrument the run never learned has no probability (NaN in FileTags): null here.
    return pa.Table.from_arrays([_array(col, field.type) for col, field in zip(columns, schema)], schema=schema)


def _segments(tags: FileTags, classes: Sequence[str]) -> list[dict]:
    """The ``segments`` cell of one file: its time ranges, instrument by instrument."""
    if tags.frame_present is None:
        return []
    return [{"instrument": name, "start_s": a, "end_s": b}
            for name, ranges in file_segments(tags.frame_present, classes, tags.frame_seconds, tags.seconds).items()
            for a, b in ranges]


def _array(values, type_):
    """A pyarrow array of ``type_``; NaN in a float numpy column becomes null."""
    pa = _pa()
    nan = isinstance(values, np.ndarray) and values.dtype.kind == "f" and len(values)
    return pa.array(values, type=type_, mask=np.isnan(values) if nan else None)


def seconds_table(files: Sequence[FileTags], classes: Sequence[str]):
    """One row per file, frame and instrument, frames in time order, instruments in class order."""
    pa = _pa()
    parts = {name: [] for name in seconds_schema().names}
    n_classes = len(classes)
    no_flag: list[np.ndarray] = []
    for f in files:
        if f.frame_probabilities is None:
            raise InstrecError(f"{f.path}: no per-frame probabilities to write per second")
        n = f.n_frames
        frames = np.repeat(np.arange(n, dtype=np.int32), n_classes)
        parts["file"].append(np.full(n * n_classes, file_text(f.path), dtype=object))
        parts["frame"].append(frames)
        parts["start_s"].append(frames * f.frame_seconds)
        parts["end_s"].append((frames + 1) * f.frame_seconds)
        parts["instrument"].append(np.tile(np.asarray(classes, dtype=object), n))
        parts["probability"].append(np.asarray(f.frame_probabilities[:n], np.float32).reshape(-1))
        # Frame flags as the tagger set them; none given (tags made without a threshold policy): null.
        known = f.frame_present is not None
        parts["present"].append(np.asarray(f.frame_present[:n], bool).reshape(-1) if known
                                else np.zeros(n * n_classes, bool))
        no_flag.append(np.full(n * n_classes, not known))
        att = (np.full(n * n_classes, np.nan, np.float32) if f.attention is None
               else np.asarray(f.attention[:n], np.float32).reshape(-1))
        parts["attention"].append(att)
    schema = seconds_schema()
    arrays = []
    for field in schema:
        values = np.concatenate(parts[field.name]) if parts[field.name] else np.zeros(0, dtype=object)
        if field.name == "present" and no_flag:
            arrays.append(pa.array(values, type=field.type, mask=np.concatenate(no_flag)))
        else:  # NaN (no attention in the model, an instrument the run never learned): null
            arrays.append(_array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def failures_table(failures: Sequence[tuple[str, str]]):
    pa = _pa()
    return pa.Table.from_pylist([{"file": file_text(p), "error": file_text(e)} for p, e in failures],
                                schema=failures_schema())


def write_parquet(path: str | Path, table) -> Path:
    """Write ``table`` to ``path`` as one Parquet file, atomically."""
    pa = _pa()
    buf = io.BytesIO()
    pa.parquet.write_table(table, buf, compression="zstd")
    return atomic_write_bytes(path, buf.getvalue())


def read_parquet(path: str | Path, schema):
    """One Parquet file as a table of ``schema``; empty when the file does not exist."""
    pa = _pa()
    return pa.parquet.read_table(path, schema=schema) if Path(path).is_file() else schema.empty_table()


def read_parts(folder: str | Path, schema, names: Sequence[str]):
    """The parts ``names`` (file names) in ``folder`` that exist, as one table in that order;
    empty with ``schema`` when there is none."""
    pa = _pa()
    paths = [Path(folder) / n for n in names if (Path(folder) / n).is_file()]
    if not paths:
        return schema.empty_table()
    return pa.concat_tables([read_parquet(p, schema) for p in paths])
