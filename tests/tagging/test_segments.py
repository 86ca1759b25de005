"""Time ranges: the duration rule of long files by hand, the printed ranges parsed back, and
the same segments in JSON, CSV and Parquet."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from instrec._io import InstrecError
from instrec.evaluation.frame_policy import MIN_SECONDS
from instrec.tagging.formats import format_results, parse_csv, readable
from instrec.tagging.results import FileTags, TagResults
from instrec.tagging.segments import decide, format_ranges, frame_ranges, parse_ranges, resolve_frame_policy

HOP = 0.96
CLASSES = ["cello", "piano", "violin"]


def _policy(min_seconds=3.0, **kw):
    config = {"classes": CLASSES, "frame_policy": {"frame_thresholds": [0.5, 0.5, None], "median_frames": 1,
                                                   "fill_gap_frames": 0, "min_event_frames": 1, "tuned_on": "x", **kw}}
    return resolve_frame_policy(config, np.full(3, 0.5), min_seconds)


def test_long_file_presence_comes_from_the_held_seconds_and_clears_the_rest():
    t = 30
    frame = np.zeros((t, 3))
    frame[2:6, 0] = 0.9     # cello: 4 frames = 3.84 s
    frame[10:12, 1] = 0.9   # piano: 2 frames = 1.92 s (a burst)
    frame[:, 2] = 0.2       # violin: threshold None = -inf, the gate alone
    window_clip = np.full((t, 3), 0.9)
    window_clip[:, 2] = np.where(np.arange(t) < 10, 0.9, 0.1)  # violin's window tagged present in frames 0-9 only
    present, active = decide(frame, window_clip, np.full(3, 0.5), _policy(3.0), True, np.ones(3, bool), HOP)
    assert present.tolist() == [True, False, True]  # 3.84 s, 1.92 s, 9.6 s against 3 s
    assert np.flatnonzero(active[:, 0]).tolist() == [2, 3, 4, 5]
    assert not active[:, 1].any()                    # not held long enough: no frame left either
    assert np.flatnonzero(active[:, 2]).tolist() == list(range(10))
    # A shorter file keeps its clip answer; its frames are still gated by it.
    present, active = decide(frame[:10], window_clip[:10], np.full(3, 0.5), _policy(3.0), False,
                             np.array([False, True, True]), HOP)
    assert present.tolist() == [False, True, True] and not active[:, 0].any() and active[:, 1].any() is np.False_


def test_min_seconds_is_checked_and_stated():
    assert _policy(5.0)["min_seconds"] == 5.0 and "at least 5 s" in _policy(5.0)["description"]
    assert _policy(None)["min_seconds"] == MIN_SECONDS  # no duration in the stored policy: the default
    assert _policy(None)["frame_thresholds"][2] == -math.inf
    with pytest.raises(InstrecError, match="--min-seconds"):
        _policy(float("nan"))


def test_ranges_format_and_parse_back():
    active = np.zeros(80, bool)
    active[13:33] = True      # 12.48-31.68 s
    active[68:] = True        # 65.28-76.8 s, clipped to the file's 75.0 s
    ranges = frame_ranges(active, HOP, 75.0)
    assert np.allclose(ranges, [(12.48, 31.68), (65.28, 75.0)])
    text = format_ranges(ranges)
    assert text == "0:12-0:32, 1:05-1:15"
    assert parse_ranges(text) == [(12, 32), (65, 75)]
    assert format_ranges([(3599.5, 3725.0)]) == "59:59-1:02:05" and parse_ranges("59:59-1:02:05") == [(3599, 3725)]
    with pytest.raises(InstrecError, match="m:ss-m:ss"):
        parse_ranges("0:12 to 0:31")


def _results():
    t = 45
    probs = np.zeros((t, 3), np.float32)
    fp = np.zeros((t, 3), bool)
    fp[3:9, 0] = fp[20:25, 0] = True
    fp[30:44, 2] = True
    long = FileTags("long.wav", np.array([0.8, 0.1, 0.9]), np.array([True, False, True]), t, 5, "max", probs,
                    frame_present=fp, duration=43.0, long_file=True)
    short_fp = np.zeros((10, 3), bool)
    short_fp[2:5, 1] = True
    short = FileTags("short.wav", np.array([0.1, 0.7, 0.2]), np.array([False, True, False]), 10, 1, "single window",
                     np.zeros((10, 3), np.float32), frame_present=short_fp, duration=9.6)
    return TagResults(CLASSES, [long, short], [], np.full(3, 0.5), np.ones(3, bool), frame_policy="per second: x"), fp


def test_printed_ranges_parse_back_to_the_frames_tagged_present():
    results, fp = _results()
    lines = readable(results).splitlines()
    assert lines[:2] == ["threshold: 0.5 for every instrument", "per second: x"]
    assert lines[2].startswith("long.wav (43.0 s): violin 0.90 (held 13 s), cello 0.80 (held 11 s)")
    printed = {line.split()[0]: parse_ranges(line.strip().split(" ", 1)[1]) for line in lines[3:5]}
    # Frames 3-8 (2.88-8.64 s) and 20-24 (19.2-24.0 s); 30-43 (28.8-42.24 s): starts down, ends up to the second.
    assert printed == {"cello": [(2, 9), (19, 24)], "violin": [(28, 43)]}
    for name, ranges in printed.items():  # every frame tagged present lies in a printed range, no other does
        inside = [t for t in range(45) if any(a <= HOP * t and HOP * (t + 1) <= b for a, b in ranges)]
        assert inside == np.flatnonzero(fp[:, CLASSES.index(name)]).tolist()
    assert lines[5].startswith("short.wav (9.6 s): piano 0.70") and len(lines) == 6  # short: no ranges unless asked
    per_second = readable(results, per_second=True).splitlines()
    assert per_second[-1] == "  piano 0:01-0:05"   # frames 2-4: 1.92-4.8 s


def test_a_short_file_says_which_instruments_it_names_without_a_second():
    results, _ = _results()
    short = results.files[1]
    short.present[0] = True                   # cello tagged present, no frame of it passes
    short.probabilities[0] = 0.6
    lines = readable(results, per_second=True).splitlines()
    assert lines[-3].startswith("short.wav (9.6 s): piano 0.70 (threshold 0.50), cello 0.60")
    assert lines[-2:] == ["  piano 0:01-0:05", "  cello: tagged present, but no second passes the frame threshold"]
    short.frame_present[:] = False
    short.present[:] = False
    assert readable(results, per_second=True).splitlines()[-1] == "  per second: no instrument active in any frame"


def test_json_and_csv_carry_the_same_segments():
    results, fp = _results()
    doc = json.loads(format_results(results, "json"))
    assert doc["frame_policy"] == "per second: x" and doc["files"][0]["long_file"] is True
    assert doc["files"][0]["segments"]["cello"] == [[2.88, 8.64], [19.2, 24.0]]
    assert doc["files"][0]["segments"]["violin"] == [[28.8, 42.24]]
    comments, rows = parse_csv(format_results(results, "csv"))
    assert "per second: x" in comments
    assert rows[0]["segments"] == "cello 0:02-0:09, 0:19-0:24; violin 0:28-0:43"
    pytest.importorskip("pyarrow")
    from instrec.tagging.tables import clip_table

    table = clip_table(results.files, CLASSES).to_pylist()
    assert [s["instrument"] for s in table[0]["segments"]] == ["cello", "cello", "violin"]
    assert np.allclose([(s["start_s"], s["end_s"]) for s in table[0]["segments"]],
                       [(2.88, 8.64), (19.2, 24.0), (28.8, 42.24)])
    assert [s["instrument"] for s in table[1]["segments"]] == ["piano"]
