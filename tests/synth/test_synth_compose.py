"""Composition: plausible, varied, reproducible pieces and the MIDI files written from them."""
from __future__ import annotations

import io
from collections import Counter

import mido
import numpy as np
import pretty_midi
import pytest

from instrec.synth import gm
from instrec.synth.harmony import make_harmony
from instrec.synth.labels import sounding_seconds
from instrec.synth.soundfont import load_soundfont
from instrec.synth.worker import compose_clip

N_PIECES = 150


@pytest.fixture(scope="module")
def presets() -> frozenset:
    return load_soundfont(None).preset_keys


@pytest.fixture(scope="module")
def pieces(presets):
    return [compose_clip(7, i, presets) for i in range(N_PIECES)]


def test_clip_depends_only_on_seed_and_index(presets):
    a, _ = compose_clip(7, 3, presets)
    b, _ = compose_clip(7, 3, presets)
    assert a.midi_bytes() == b.midi_bytes()
    assert compose_clip(7, 4, presets)[0].midi_bytes() != a.midi_bytes()
    assert compose_clip(8, 3, presets)[0].midi_bytes() != a.midi_bytes()


def test_pieces_respect_instrument_count_ranges_and_soundfont(pieces, presets):
    renderable = set(gm.renderable_classes(presets))
    for piece, _ in pieces:
        # a drum kit is one instrument even though drums and cymbals are two classes
        instruments = [p for p in piece.parts if not (p.cls == "cymbals" and p.role == "kit")]
        assert 1 <= len(instruments) <= 6
        for part in piece.parts:
            assert part.cls in renderable and (part.voice.bank, part.voice.program) in presets
            assert part.is_drum == (part.cls in gm.PERCUSSION_CLASSES)
            assert part.notes, part.name
            for n in part.notes:
                assert 0.0 <= n.start < n.end <= piece.duration and 1 <= n.velocity <= 127
                tick = 60.0 / (piece.harmony.bpm * 480)  # times are rounded to MIDI ticks
                assert part.span[0] - tick <= n.start < part.span[1] + tick
                if not part.is_drum:  # hits ring out after a kit stops; melodic notes are cut
                    assert n.end <= part.span[1] + tick
                if not part.is_drum:
                    assert part.voice.low <= n.pitch <= part.voice.high
            if part.cls == "cymbals":
                assert {n.pitch for n in part.notes} <= {k for k, _ in gm.CYMBAL_NOTES.values()}
            if part.cls == "drums":
                assert {n.pitch for n in part.notes} <= {k for k, _ in gm.DRUM_NOTES.values()}


def test_corpus_is_varied(pieces, presets):
    ensembles = Counter(p.ensemble for p, _ in pieces)
    assert len(ensembles) >= 12
    classes = Counter(c for _, strong in pieces for c in strong)
    assert set(classes) == set(gm.renderable_classes(presets))
    spans = [part.span for p, _ in pieces for part in p.parts]
    assert sum(s == (0.0, 10.0) for s in spans) > 0.4 * len(spans)
    assert sum(s[0] > 0.5 for s in spans) > 0.1 * len(spans)        # late entries
    assert sum(s[1] < 9.5 for s in spans) > 0.1 * len(spans)        # early exits
    brief = [c for _, strong in pieces for c, iv in strong.items() if sounding_seconds(iv) < 1.0]
    assert len(brief) >= 5   # notes exist but the class is weakly absent
    sizes = Counter(len({q.cls for q in p.parts}) for p, _ in pieces)
    assert sizes[1] > 0 and max(sizes) >= 5
    tempi = [p.harmony.bpm for p, _ in pieces]
    assert min(tempi) < 80 and max(tempi) > 140
    assert len({p.harmony.tonic for p, _ in pieces}) == 12
    voices = {part.voice.name for p, _ in pieces for part in p.parts}
    assert len(voices) >= 45 and {"Acoustic Grand", "Violin", "Choir Aahs", "Fingered Bass"} <= voices


def test_parts_follow_the_harmony(pieces):
    in_key = total = 0
    for piece, _ in pieces:
        scale = set(piece.harmony.scale)
        for part in piece.parts:
            if part.is_drum or part.role != "melody":
                continue
            for n in part.notes:
                total += 1
                in_key += n.pitch % 12 in scale | {(piece.harmony.tonic + 11) % 12}  # raised leading tone
    assert total > 500 and in_key / total > 0.97


def test_harmony_timeline_covers_the_clip():
    for seed in range(20):
        h = make_harmony(np.random.default_rng(seed), "jazz")
        assert h.origin <= 0.0 and h.chords[0].start == h.origin and h.chords[-1].end >= 10.0
        assert all(a.end == pytest.approx(b.start) for a, b in zip(h.chords, h.chords[1:]))
        assert h.chord_at(5.0).start <= 5.0 < h.chord_at(5.0).end


def test_midi_file_has_bank_select_names_and_a_10_second_end():
    piece, strong = compose_clip(0, 1, frozenset({(8, 24), (0, 0), (128, 0)}))
    assert {p.cls for p in piece.parts} <= {"ukulele", "piano", "drums", "cymbals"}
    midi = mido.MidiFile(file=io.BytesIO(piece.midi_bytes()))
    assert midi.length == pytest.approx(10.0, abs=1e-3)
    for part, track in zip(piece.parts, midi.tracks[1:]):
        msgs = [m for m in track if not m.is_meta]
        program = next(i for i, m in enumerate(msgs) if m.type == "program_change")
        banks = [m.value for m in msgs[:program] if m.type == "control_change" and m.control == 0]
        assert banks == ([8] if part.cls == "ukulele" else [])
        assert msgs[program].program == part.voice.program
        assert next(m for m in track if m.type == "track_name").name == part.name
    pm = pretty_midi.PrettyMIDI(io.BytesIO(piece.midi_bytes()))
    assert [i.name for i in pm.instruments] == [p.name for p in piece.parts]
    assert [len(i.notes) for i in pm.instruments] == [len(p.notes) for p in piece.parts]
