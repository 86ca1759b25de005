"""A minimal Standard MIDI File (type 1) writer.

Writing the bytes directly is several times faster than building a PrettyMIDI/mido object
and serialising it, and it fixes every detail the renderer cares about: bank select
(CC 0) before the program change, note-offs before note-ons on the same tick (a repeated
pitch restarts instead of being cut), and every track ending at the same tick.
"""
from __future__ import annotations

import struct
from typing import Sequence

PERCUSSION_CHANNEL = 9  # MIDI channel 10


def _varlen(value: int) -> bytes:
    """MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _meta(kind: int, data: bytes) -> bytes:
    return bytes((0xFF, kind)) + _varlen(len(data)) + data


def _track(events: list[tuple[int, int, bytes]], end_tick: int) -> bytes:
    """Track chunk from ``(tick, order, message)`` events (sorted here) plus end of track."""
    body = bytearray()
    now = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        body += _varlen(tick - now) + msg
        now = tick
    body += _varlen(max(0, end_tick - now)) + _meta(0x2F, b"")
    return b"MTrk" + struct.pack(">I", len(body)) + bytes(body)


def _control(ch: int, controller: int, value: int) -> bytes:
    """A pitch bend (``controller`` -1, ``value`` -8192..8191) or control change message."""
    if controller < 0:
        v = int(value) + 8192
        return bytes((0xE0 | ch, v & 0x7F, (v >> 7) & 0x7F))
    return bytes((0xB0 | ch, controller, int(value)))


def write_smf(bpm: float, beats_per_bar: int, resolution: int, end_tick: int,
              parts: Sequence[tuple[str, int, int, bool, Sequence[tuple[int, int, int, int]]]],
              extras: Sequence[tuple[str, Sequence[tuple[int, int, int]]]] | None = None) -> bytes:
    """SMF bytes: a tempo/metre track, then one track per part.

    ``parts``: ``(name, bank, program, is_drum, notes)`` with notes as ``(pitch, start_tick,
    end_tick, velocity)``. Drum parts play on the percussion channel, the others on channels
    0, 1, ... skipping it (at most 15 melodic parts). ``end_tick`` is where all tracks end.
    ``extras`` (optional, one per part): ``(instrument name, controls)``: a non-empty name is
    written as the track's instrument-name meta event (the realistic recipe records the
    SoundFont there), controls are ``(tick, controller, value)`` with controller -1 for
    pitch bend; on a shared tick they come before the notes.
    """
    tempo = int(round(60_000_000 / bpm))
    meta = [(0, 0, _meta(0x51, tempo.to_bytes(3, "big"))),
            (0, 1, _meta(0x58, bytes((beats_per_bar, 2, 24, 8))))]
    chunks = [_track(meta, end_tick)]
    channels = [c for c in range(16) if c != PERCUSSION_CHANNEL]
    melodic = 0
    for name, bank, program, is_drum, notes in parts:
        if is_drum:
            ch = PERCUSSION_CHANNEL
        else:
            if melodic >= len(channels):
                raise ValueError("more than 15 melodic parts do not fit on the MIDI channels")
            ch, melodic = channels[melodic], melodic + 1
        events = [(0, 0, _meta(0x03, name.encode("latin-1", "replace")))]
        if bank and not is_drum:
            events.append((0, 1, bytes((0xB0 | ch, 0, bank))))
        events.append((0, 2, bytes((0xC0 | ch, program))))
        if extras is not None:
            label, ctrl = extras[len(chunks) - 1]
            if label:
                events.insert(1, (0, 0, _meta(0x04, label.encode("latin-1", "replace"))))
            events += [(tick, 2, _control(ch, c, v)) for tick, c, v in ctrl]
        for pitch, on, off, velocity in notes:
            events.append((off, 3, bytes((0x80 | ch, pitch, 0))))   # offs first on a shared tick
            events.append((on, 4, bytes((0x90 | ch, pitch, velocity))))
        chunks.append(_track(events, end_tick))
    header = b"MThd" + struct.pack(">IHHH", 6, 1, len(chunks), resolution)
    return header + b"".join(chunks)
