"""Parquet tables of catalogue tagging and the manifest, with hand-made tags."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from instrec.tagging import tables
from instrec.tagging.manifest import Manifest, part_name, sweep
from instrec.tagging.results import FileTags

pytest.importorskip("pyarrow")

CLASSES = ["piano", "voice"]


def _tags(path, frames, attention=True, notes=(), flags=True):
    probs = np.array([[0.1 * t, 1 - 0.1 * t] for t in range(frames)], np.float32)
    att = np.full((frames, 2), 1.0 / frames, np.float32) if attention else None
    return FileTags(path, probs.max(axis=0), np.array([True, False]), frames, 1, "single window", probs, att,
                    list(notes), duration=frames * 0.96, frame_present=probs > 0.85 if flags else None)


def test_clip_and_seconds_tables_round_trip_through_parquet(tmp_path):
    files = [_tags("/a.wav", 3, notes=["resampled"]), _tags("/b.wav", 2, attention=False, flags=False)]
    clip = tables.clip_table(files, CLASSES)
    tables.write_parquet(tmp_path / "clips.parquet", clip)
    back = tables.read_parquet(tmp_path / "clips.parquet", tables.clip_schema(CLASSES)).to_pydict()
    assert back["file"] == ["/a.wav", "/b.wav"] and back["notes"] == [["resampled"], []]
    assert back["piano"] == pytest.approx([0.2, 0.1]) and back["voice"] == pytest.approx([1.0, 1.0])
    assert back["piano_present"] == [True, True] and back["voice_present"] == [False, False]
    assert back["duration"] == pytest.approx([2.88, 1.92])
    sec = tables.seconds_table(files, CLASSES)
    tables.write_parquet(tmp_path / "sec.parquet", sec)
    rows = tables.read_parquet(tmp_path / "sec.parquet", tables.seconds_schema()).to_pylist()
    assert len(rows) == (3 + 2) * 2
    assert rows[3] == pytest.approx({"file": "/a.wav", "frame": 1, "start_s": 0.96, "end_s": 1.92,
                                     "instrument": "voice", "probability": 0.9, "present": True, "attention": 1 / 3})
    assert [r["present"] for r in rows[:6]] == [False, True, False, True, False, False]  # the tagger's frame flags
    assert rows[-1]["attention"] is None and rows[-1]["instrument"] == "voice"  # no attention: null, not NaN
    assert rows[-1]["present"] is None  # tags without frame flags: null, not a made-up threshold


def test_an_instrument_the_run_never_learned_has_null_probabilities(tmp_path):
    tags = _tags("/a.wav", 2)
    tags.probabilities = np.array([np.nan, 0.7], np.float32)
    tags.frame_probabilities[:, 0] = np.nan
    clip = tables.clip_table([tags], CLASSES).to_pydict()
    assert clip["piano"] == [None] and clip["voice"] == [pytest.approx(0.7)]
    sec = tables.seconds_table([tags], CLASSES).to_pydict()
    assert sec["probability"][0] is None and sec["probability"][1] == pytest.approx(1.0)


def test_parts_respect_the_umask_and_empty_reads_have_the_schema(tmp_path):
    old = os.umask(0o027)
    try:
        path = tables.write_parquet(tmp_path / "f.parquet", tables.failures_table([("/x.wav", "/x.wav: bad")]))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640
    assert [f.name for f in tmp_path.iterdir()] == ["f.parquet"]  # no temp file left
    empty = tables.read_parts(tmp_path, tables.clip_schema(CLASSES), [])
    assert empty.num_rows == 0 and empty.schema.names[-2:] == ["voice_present", "segments"]


def test_manifest_drops_a_torn_line_and_sweep_keeps_listed_parts(tmp_path):
    m = Manifest(tmp_path / "manifest.jsonl")
    first = {"part": part_name(["/a", "/b"]), "files": ["/a", "/b"], "failed": [], "audio_seconds": 2.0}
    m.append(first)
    with open(m.path, "a") as fh:
        fh.write('{"part": "part-x", "fil')
    assert m.load() == [first]
    assert m.path.read_text() == json.dumps(first) + "\n"  # rewritten without the torn line
    assert part_name(["/a", "/b"]) == first["part"] != part_name(["/b", "/a"])
    (tmp_path / "clips").mkdir()
    for name in (first["part"] + ".parquet", "part-orphan.parquet", ".part-y.parquet.abc.tmp"):
        (tmp_path / "clips" / name).write_bytes(b"x")
    sweep([tmp_path / "clips", tmp_path / "seconds"], m.load())
    assert [p.name for p in (tmp_path / "clips").iterdir()] == [first["part"] + ".parquet"]
