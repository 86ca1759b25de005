"""Integrity records: the sha256 digest of every file instrec wrote and later trusts.

A record is a small JSON file beside the files it covers: ``{"algorithm": "sha256", "files":
{name: hex digest}}``. It is written last, once the files are final: by a run when it
finishes (``integrity.json`` in the run folder: ``config.json`` and ``model.safetensors``),
by the default-model export (the same, in the package), and by ``instrec download musicnn``
(``musicnn-<model>.integrity.json``: the weights and their tag list). Loading checks it, so a
weight file replaced by another of the same shapes, a NaN or a scaled tensor, a truncated
file or a reordered class list is one error naming the changed file and the repair, instead
of tags that quietly name the wrong instruments.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path

from instrec._io import InstrecError, atomic_write_json
from instrec._jsonread import Obj, Str, check, read_json
from instrec.fetch import sha256_file

ALGORITHM = "sha256"
_SCHEMA = Obj({"algorithm": Str(True), "files": dict}, ("algorithm", "files"))


class IntegrityWarning(UserWarning):
    """Files instrec trusts but cannot check: written before integrity records existed."""


def write_integrity(record: str | os.PathLike, files: Iterable[str | os.PathLike]) -> Path:
    """Write ``record`` (atomically): the sha256 of each of ``files``, which must lie in the
    record's folder. Call it after the files are final."""
    record = Path(record)
    digests = {}
    for f in map(Path, files):
        if f.parent.resolve() != record.parent.resolve():
            raise ValueError(f"{f}: not in the folder of {record}")
        digests[f.name] = sha256_file(f)
    return atomic_write_json(record, {"algorithm": ALGORITHM, "files": digests})


def check_integrity(record: str | os.PathLike, expected: Iterable[str], repair: str,
                    required: bool = False, legacy_note: str = "") -> bool:
    """Check the files a record covers against their digests; True when checked.

    ``expected``: names the record must cover. ``repair``: the sentence that says how to get
    good files back (it ends every error). Without a record: an error if ``required``, else
    an :class:`IntegrityWarning` (``legacy_note`` says why it may be missing) and False."""
    record = Path(record)
    if not record.is_file():
        if required:
            raise InstrecError(f"{record}: integrity record missing, so the files beside it cannot be trusted; "
                               f"{repair}")
        warnings.warn(f"{record.parent}: no integrity record ({record.name}){legacy_note}; its files are used "
                      "unchecked", IntegrityWarning, stacklevel=3)
        return False
    doc = read_json(record, _SCHEMA)
    if doc["algorithm"] != ALGORITHM:
        raise InstrecError(f"{record}: field 'algorithm' must be {ALGORITHM!r}, got {doc['algorithm'][:20]!r}")
    files = doc["files"]
    for name in expected:
        if name not in files:
            raise InstrecError(f"{record}: does not cover {name}; {repair}")
    for name, digest in files.items():
        check(digest, Str(True), str(record), f"files.{name}")
        if name in ("", ".", "..") or "/" in name or "\\" in name:
            raise InstrecError(f"{record}: field 'files' names {name[:40]!r}, which is not a file beside it")
        path = record.parent / name
        if not path.is_file():
            raise InstrecError(f"{path}: missing (listed in {record.name}); {repair}")
        if sha256_file(path) != digest:
            raise InstrecError(f"{path}: changed since instrec wrote it (its sha256 differs from the one in "
                               f"{record.name}); {repair}")
    return True
