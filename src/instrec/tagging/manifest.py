"""The manifest of a catalogue job: which batches are finished, and the parts they own.

``manifest.jsonl`` holds one JSON line per finished batch: ``{"part": name or null (every
file failed), "files": [...], "failed": [[file, error], ...], "audio_seconds": s}``. The client
appends a line only after the worker's parts are on disk, so the manifest is the record of
what is done; a part it does not list is not a result (see :func:`sweep`).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from instrec._io import InstrecError, atomic_write_text
from instrec._jsonread import ListOf, Nullable, Num, Obj, Str, read_jsonl

PART_SUFFIX = ".parquet"
#: What :func:`part_name` makes: nothing else may name a file in the output folder.
_PART_NAME = re.compile(r"part-[0-9a-f]{20}")
#: One manifest line (:class:`Manifest`), as the defensive reader checks it.
ENTRY_SCHEMA = Obj({"part": Nullable(Str(True)), "files": ListOf(str), "failed": ListOf(ListOf(str, 2, 2)),
                    "audio_seconds": Num(0)}, ("part", "files", "failed", "audio_seconds"))


def part_name(paths: list[str]) -> str:
    """``part-<hash>``: the same for the same batch, so a retried task overwrites its own part."""
    # fsencode: a name that is not valid UTF-8 hashes as its bytes (the same as before for the others)
    return "part-" + hashlib.sha256(b"\n".join(os.fsencode(p) for p in paths)).hexdigest()[:20]


class Manifest:
    """``manifest.jsonl``: one JSON line per finished batch, appended and flushed to disk."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> list[dict[str, Any]]:
        """The finished batches. A torn last line (the client died while writing it) is
        dropped and the file rewritten without it; any other bad line is an error naming the
        file, the line and the field (the folder was changed by something else than instrec)."""
        if not self.path.is_file():
            return []
        entries, torn = read_jsonl(self.path, ENTRY_SCHEMA)
        for number, entry in enumerate(entries, 1):
            if entry["part"] is not None and not _PART_NAME.fullmatch(entry["part"]):
                raise InstrecError(f"{self.path} line {number}: field 'part' is not a part name "
                                   f"(part-<20 hex digits>), got {entry['part'][:40]!r}")
        if torn:
            atomic_write_text(self.path, "".join(json.dumps(e) + "\n" for e in entries))
        return entries

    def append(self, entry: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def sweep(folders: list[Path], entries: list[dict[str, Any]]) -> None:
    """Delete from ``folders`` every file that is not a part the manifest ``entries`` list:
    parts of batches never recorded, temp files of unfinished writes."""
    keep = {e["part"] + PART_SUFFIX for e in entries if e.get("part")}
    for folder in folders:
        if folder.is_dir():
            for p in folder.iterdir():
                if p.is_file() and p.name not in keep:
                    p.unlink()
