"""When each instrument plays: the frame policy of a run, its decisions on a file, and time ranges.

The decisions themselves are :mod:`instrec.evaluation.frame_policy`'s; this module resolves a
run's policy (its tuned ``frame_policy`` in ``config.json``, or the untuned fallback), applies it
to one file's frames, and turns active frames into time ranges, written ``m:ss-m:ss``
(``violin 0:12-0:31, 1:05-1:40``) and read back by :func:`parse_ranges`.
"""
from __future__ import annotations

import math
import re
from typing import Any, Sequence

import numpy as np

from instrec._io import InstrecError
from instrec.evaluation.frame_policy import (
    MIN_SECONDS,
    POLICY_KEY,
    apply_policy,
    describe_policy,
    file_presence,
    policy_from_json,
    untuned_policy,
)


def resolve_frame_policy(config: dict[str, Any], thresholds: np.ndarray,
                         min_seconds: float | None = None) -> dict[str, Any]:
    """A run's frame policy (module docstring) with ``min_seconds`` overriding its duration rule,
    and ``description``: the sentence the outputs state."""
    stored = config.get(POLICY_KEY)
    policy = policy_from_json(stored) if stored else untuned_policy(thresholds)
    if len(policy["frame_thresholds"]) != len(config["classes"]):
        raise InstrecError(f"{POLICY_KEY} in the run's config has {len(policy['frame_thresholds'])} thresholds for "
                           f"{len(config['classes'])} classes")
    if min_seconds is not None:
        if not (math.isfinite(min_seconds) and min_seconds >= 0):
            raise InstrecError(f"--min-seconds {min_seconds}: give a number of seconds, 0 or more")
        policy["min_seconds"] = float(min_seconds)
    policy.setdefault("min_seconds", MIN_SECONDS)
    gate = policy.get("gate_frames")
    if gate is not None and not (isinstance(gate, int) and not isinstance(gate, bool) and gate >= 1):
        raise InstrecError(f"{POLICY_KEY}.gate_frames in the run's config: give a whole number of frames, 1 or more, "
                           f"got {gate!r}")
    policy["description"] = describe_policy(policy)
    return policy


def decide(frame: np.ndarray, window_clip: np.ndarray, thresholds: np.ndarray, policy: dict[str, Any],
           long_file: bool, clip_present: np.ndarray, hop: float) -> tuple[np.ndarray, np.ndarray]:
    """(present (C,), frame_present (T, C)) of one file: frames under ``policy``, gated by the
    clip answer of the window that produced each frame (``window_clip`` (T, C) > ``thresholds``).
    A file longer than one clip (``long_file``) holds an instrument when its frames add up to the
    policy's ``min_seconds``, and frames of an instrument not held are cleared; a shorter file
    keeps its clip answer ``clip_present`` (an instrument of it may have no active frame)."""
    with np.errstate(invalid="ignore"):
        gate = window_clip > thresholds
    active = apply_policy(frame, gate, policy)
    present = file_presence(active, policy["min_seconds"], hop) if long_file else np.asarray(clip_present, bool)
    return present, active & present


def frame_ranges(active: np.ndarray, hop: float, seconds: float | None = None) -> list[tuple[float, float]]:
    """(start_s, end_s) of each run of consecutive active frames of ``active`` (T,) bool; frame t
    spans ``[hop t, hop (t + 1))``, the last end clipped to ``seconds`` when given."""
    active = np.asarray(active, dtype=bool)
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    out = []
    for a, b in zip(starts, stops):
        end = b * hop if seconds is None else min(b * hop, seconds)
        out.append((float(a * hop), float(max(end, a * hop))))
    return out


def _clock(seconds: float) -> str:
    whole = int(seconds)
    if whole >= 3600:
        return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    return f"{whole // 60}:{whole % 60:02d}"


def format_ranges(ranges: Sequence[tuple[float, float]]) -> str:
    """``0:12-0:31, 1:05-1:40``: starts rounded down and ends up to the second (so a range
    printed always covers the frames it came from); ``h:mm:ss`` past an hour."""
    return ", ".join(f"{_clock(math.floor(a + 1e-6))}-{_clock(math.ceil(b - 1e-6))}" for a, b in ranges)


_CLOCK = r"(?:\d+:)?\d+:\d\d"


def _seconds(clock: str) -> int:
    total = 0
    for part in clock.split(":"):
        total = total * 60 + int(part)
    return total


def parse_ranges(text: str) -> list[tuple[int, int]]:
    """Read :func:`format_ranges` text back as (start_s, end_s) whole seconds; a clear error otherwise."""
    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(f"({_CLOCK})-({_CLOCK})", item)
        if not match:
            raise InstrecError(f"time range {item!r}: expected m:ss-m:ss")
        out.append((_seconds(match[1]), _seconds(match[2])))
    return out


def file_segments(active: np.ndarray, classes: Sequence[str], hop: float,
                  seconds: float | None = None) -> dict[str, list[tuple[float, float]]]:
    """Instrument -> its time ranges, for the instruments with at least one active frame of ``active`` (T, C)."""
    return {name: frame_ranges(active[:, c], hop, seconds) for c, name in enumerate(classes) if active[:, c].any()}
