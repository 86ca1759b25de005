"""Cutting a SoundFont down to a piece's presets: the tables by hand, the audio by rendering."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from instrec._io import InstrecError
from instrec.synth.render import render_midi
from instrec.synth.riff import riff_chunks
from instrec.synth.soundfont import load_soundfont, parse_presets
from instrec.synth.soundfont_subset import SoundFontTables
from instrec.synth.worker import compose_clip

FLUID = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
GEN_INSTRUMENT, GEN_SAMPLE, GEN_PAN = 41, 53, 17
MOD = (0x0502, 48, 960, 0, 0)  # one modulator record (source, destination, amount, ...)


def _chunk(cid: bytes, data: bytes) -> bytes:
    return cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def build_sf2(presets, instruments, samples, sm24: bool = True) -> bytes:
    """A SoundFont from plain lists (written with struct, independently of the code under test).

    presets: ``(name, bank, program, zones)``; instruments: ``(name, zones)``; a zone is a
    list of ``(generator, amount)``; every zone gets the modulator MOD. samples: ``(name,
    int16 points, loop start, loop end, link, type)``, loops relative to the sample's start.
    """
    def hydra(headers, pack_header):
        hdr, bag, gen, mod = b"", b"", b"", b""
        n_bag = n_gen = n_mod = 0
        for h in headers:
            hdr += pack_header(h, n_bag)
            for zone in h[-1]:
                bag += struct.pack("<HH", n_gen, n_mod)
                n_bag += 1
                for oper, amount in zone:
                    gen += struct.pack("<HH", oper, amount)
                    n_gen += 1
                mod += struct.pack("<HHhHH", *MOD)
                n_mod += 1
        return hdr, bag + struct.pack("<HH", n_gen, n_mod), gen + b"\0" * 4, mod + b"\0" * 10, n_bag

    phdr, pbag, pgen, pmod, n = hydra(presets, lambda p, b: struct.pack("<20sHHHIII", p[0].encode(), p[2], p[1], b, 0, 0, 0))
    phdr += struct.pack("<20sHHHIII", b"EOP", 0, 0, n, 0, 0, 0)
    inst, ibag, igen, imod, n = hydra(instruments, lambda i, b: struct.pack("<20sH", i[0].encode(), b))
    inst += struct.pack("<20sH", b"EOI", n)
    smpl, lsb, shdr, pos = b"", b"", b"", 0
    for k, (name, points, loop_a, loop_b, link, kind) in enumerate(samples):
        smpl += points.astype("<i2").tobytes() + b"\0" * 92
        lsb += bytes((k * 7 + i) % 256 for i in range(len(points))) + b"\0" * 46
        shdr += struct.pack("<20sIIIIIBbHH", name.encode(), pos, pos + len(points), pos + loop_a, pos + loop_b,
                            22050, 60, 0, link, kind)
        pos += len(points) + 46
    shdr += struct.pack("<20sIIIIIBbHH", b"EOS", 0, 0, 0, 0, 0, 0, 0, 0, 0)
    sdta = b"sdta" + _chunk(b"smpl", smpl) + (_chunk(b"sm24", lsb) if sm24 else b"")
    pdta = b"pdta" + b"".join(_chunk(c, d) for c, d in [(b"phdr", phdr), (b"pbag", pbag), (b"pmod", pmod),
                                                        (b"pgen", pgen), (b"inst", inst), (b"ibag", ibag),
                                                        (b"imod", imod), (b"igen", igen), (b"shdr", shdr)])
    info = b"INFO" + _chunk(b"ifil", b"\2\0\4\0") + _chunk(b"INAM", b"handmade\0\0")
    return _chunk(b"RIFF", b"sfbk" + _chunk(b"LIST", info) + _chunk(b"LIST", sdta) + _chunk(b"LIST", pdta))


def read_sf2(buf: bytes) -> dict[bytes, bytes]:
    """Every leaf chunk of a SoundFont, by id."""
    out = {}
    for cid, s, e in riff_chunks(buf, 12, len(buf), "<sf2>"):
        assert cid == b"LIST"
        for sub, a, b in riff_chunks(buf, s + 4, e, "<sf2>"):
            out[sub] = buf[a:b]
    return out


def records(data: bytes, fmt: str) -> list[tuple]:
    return list(struct.iter_unpack(fmt, data))


@pytest.fixture(scope="module")
def handmade() -> bytes:
    rng = np.random.default_rng(0)
    samples = [("mono", rng.integers(-3000, 3000, 40), 5, 30, 0, 1),
               ("kit", rng.integers(-3000, 3000, 25), 0, 25, 0, 1),
               ("left", rng.integers(-3000, 3000, 33), 3, 20, 3, 4),
               ("right", rng.integers(-3000, 3000, 33), 3, 20, 2, 2)]
    instruments = [("Inst mono", [[(GEN_PAN, 100), (GEN_SAMPLE, 0)]]),
                   ("Inst kit", [[(GEN_SAMPLE, 1)]]),
                   ("Inst stereo", [[(GEN_PAN, 500)], [(GEN_SAMPLE, 2)]])]  # a global zone first
    presets = [("Piano", 0, 0, [[(GEN_INSTRUMENT, 0)]]),
               ("Pad", 0, 5, [[(GEN_PAN, 7)], [(GEN_INSTRUMENT, 2)], [(GEN_INSTRUMENT, 0)]]),
               ("Kit", 128, 0, [[(GEN_INSTRUMENT, 1)]])]
    return build_sf2(presets, instruments, samples)


def test_handmade_subset_keeps_one_preset_with_its_instruments_samples_and_stereo_partner(handmade):
    original = read_sf2(handmade)
    cut = SoundFontTables(handmade, "hand.sf2").subset({(0, 5)})
    assert [(p.name, p.bank, p.program) for p in parse_presets(cut, Path("cut.sf2"))] == [("Pad", 0, 5)]
    chunks = read_sf2(cut)
    assert chunks[b"INAM"] == b"handmade\0\0"
    # preset: its three zones, in order, the instruments renumbered (2 -> 1, 0 -> 0)
    assert records(chunks[b"pbag"], "<HH") == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert records(chunks[b"pgen"], "<HH") == [(GEN_PAN, 7), (GEN_INSTRUMENT, 1), (GEN_INSTRUMENT, 0), (0, 0)]
    assert records(chunks[b"pmod"], "<HHhHH") == [MOD] * 3 + [(0, 0, 0, 0, 0)]
    assert [n.rstrip(b"\0") for n, _ in records(chunks[b"inst"], "<20sH")] == [b"Inst mono", b"Inst stereo", b"EOI"]
    assert [b for _, b in records(chunks[b"inst"], "<20sH")] == [0, 1, 3]
    # instrument zones: mono's sample 0 stays 0, stereo's sample 2 becomes 1; the kit is gone
    assert records(chunks[b"igen"], "<HH") == [(GEN_PAN, 100), (GEN_SAMPLE, 0), (GEN_PAN, 500), (GEN_SAMPLE, 1), (0, 0)]
    assert records(chunks[b"imod"], "<HHhHH") == [MOD] * 3 + [(0, 0, 0, 0, 0)]
    # samples: mono, left and (brought in by the link) right, packed; each keeps its data,
    # loop points relative to its start, and the pair links to each other's new index
    old = {r[0].rstrip(b"\0"): r for r in records(original[b"shdr"], "<20sIIIIIBbHH")}
    new = records(chunks[b"shdr"], "<20sIIIIIBbHH")
    assert [r[0].rstrip(b"\0") for r in new] == [b"mono", b"left", b"right", b"EOS"]
    assert [(r[8], r[9]) for r in new[:3]] == [(0, 1), (2, 4), (1, 2)]
    for r in new[:3]:
        o = old[r[0].rstrip(b"\0")]
        assert r[2] - r[1] == o[2] - o[1] and r[3] - r[1] == o[3] - o[1] and r[4] - r[1] == o[4] - o[1]
        assert chunks[b"smpl"][2 * r[1]:2 * r[2]] == original[b"smpl"][2 * o[1]:2 * o[2]]
        assert chunks[b"sm24"][r[1]:r[2]] == original[b"sm24"][o[1]:o[2]]
        assert chunks[b"smpl"][2 * r[2]:2 * r[2] + 92] == bytes(92)  # the 46 guard points follow
    assert len(chunks[b"smpl"]) == 2 * len(chunks[b"sm24"]) == 2 * (40 + 33 + 33 + 3 * 46)


def test_a_subset_of_a_subset_is_the_same_file(handmade):
    once = SoundFontTables(handmade, "hand.sf2").subset({(0, 5), (128, 0)})
    assert SoundFontTables(once, "once.sf2").subset({(0, 5), (128, 0)}) == once
    assert [p.name for p in parse_presets(once, Path("once.sf2"))] == ["Pad", "Kit"]
    whole = SoundFontTables(handmade, "hand.sf2").subset({(0, 0), (0, 5), (128, 0)})
    assert read_sf2(whole)[b"smpl"] == read_sf2(handmade)[b"smpl"]  # everything kept, nothing moved


def test_missing_presets_and_broken_references_are_named(handmade):
    tables = SoundFontTables(handmade, "hand.sf2")
    with pytest.raises(InstrecError, match=r"^hand\.sf2: no preset \(bank, program\) \(8, 24\) to keep$"):
        tables.subset({(0, 0), (8, 24)})
    with pytest.raises(ValueError, match="at least one preset"):
        tables.subset(set())
    pgen = handmade.index(struct.pack("<HH", GEN_INSTRUMENT, 2), handmade.index(b"pgen"))
    broken = handmade[:pgen] + struct.pack("<HH", GEN_INSTRUMENT, 9) + handmade[pgen + 4:]
    with pytest.raises(InstrecError, match=r"^bad\.sf2: corrupt SoundFont: a zone names a missing instrument \(9\)$"):
        SoundFontTables(broken, "bad.sf2").subset({(0, 5)})
    pbag = handmade.index(b"pbag") + 8
    past = handmade[:pbag + 4] + struct.pack("<HH", 999, 1) + handmade[pbag + 8:]  # zone 1 starts at gen 999
    with pytest.raises(InstrecError, match=r"^bad\.sf2: corrupt SoundFont: its tables point outside each other"):
        SoundFontTables(past, "bad.sf2").subset({(0, 5)})
    sf3 = build_sf2([("P", 0, 0, [[(GEN_INSTRUMENT, 0)]])], [("I", [[(GEN_SAMPLE, 0)]])],
                    [("ogg", np.zeros(8), 0, 8, 0, 0x11)], sm24=False)
    with pytest.raises(InstrecError, match=r"^x\.sf3: compressed \(SF3\) samples cannot be cut$"):
        SoundFontTables(sf3, "x.sf3")
    no_samples = build_sf2([], [], [], sm24=False).replace(b"smpl", b"smpX")
    with pytest.raises(InstrecError, match=r"^empty\.sf2: corrupt SoundFont: no 'smpl' sample data$"):
        SoundFontTables(no_samples, "empty.sf2")


def _cut_font_problems(sf, seeds: range) -> list[str]:
    """For clips ``seeds`` of ``sf``: where the font cut to a clip's presets is not smaller
    than the whole font, or renders that clip differently (empty: none)."""
    import midirenderer

    problems = []
    for index in seeds:
        piece, _ = compose_clip(7, index, sf.preset_keys, 10.0)
        midi = piece.midi_bytes()
        cut = sf.tables.subset(piece.presets)
        if len(cut) >= len(sf.data):
            problems.append(f"clip {index}: cut font not smaller ({len(cut)} >= {len(sf.data)} bytes)")
        if midirenderer.render_wave_from(cut, midi) != midirenderer.render_wave_from(sf.data, midi):
            problems.append(f"clip {index}: rendered differently")
    return problems


def test_clips_rendered_with_the_cut_font_are_identical_to_the_whole_font():
    assert _cut_font_problems(load_soundfont(None), range(8)) == []


@pytest.mark.skipif(not FLUID.is_file(), reason="FluidR3_GM.sf2 not installed (Debian package fluid-soundfont-gm)")
def test_fluidr3_clips_rendered_with_the_cut_font_are_identical():
    sf = load_soundfont(FLUID)
    assert _cut_font_problems(sf, range(3)) == []
    assert len(sf.tables.subset({(16, 25), (8, 24)})) < len(sf.data) // 20  # mandolin + ukulele


def test_render_midi_cuts_the_font_only_when_told_the_presets_and_falls_back_on_a_bad_cut():
    sf = load_soundfont(None)
    piece, _ = compose_clip(3, 1, sf.preset_keys, 4.0)
    whole, sr = render_midi(sf, piece.midi_bytes(), 4.0)
    cut, _ = render_midi(sf, piece.midi_bytes(), 4.0, presets=piece.presets)
    assert sr == 48000 and whole.shape == (192000,) and np.array_equal(cut, whole)
    # a preset the font lacks cannot be cut: the whole font renders (bank-0 fallback inside)
    fallback, _ = render_midi(sf, piece.midi_bytes(), 4.0, presets=piece.presets | {(8, 24)})
    assert np.array_equal(fallback, whole)


def test_a_repeated_preset_keeps_every_copy_so_the_synthesiser_picks_the_same_one():
    import midirenderer

    from instrec.synth.smf import write_smf

    rng = np.random.default_rng(1)
    samples = [(f"s{k}", rng.integers(-8000, 8000, 400), 10, 390, 0, 1) for k in range(3)]
    instruments = [(f"Inst {k}", [[(GEN_SAMPLE, k)]]) for k in range(3)]
    presets = [("Other", 0, 1, [[(GEN_INSTRUMENT, 0)]]), ("Pad A", 0, 5, [[(GEN_INSTRUMENT, 1)]]),
               ("Pad B", 0, 5, [[(GEN_INSTRUMENT, 2)]])]
    font = build_sf2(presets, instruments, samples, sm24=False)
    cut = SoundFontTables(font, "dup.sf2").subset({(0, 5)})
    assert [p.name for p in parse_presets(cut, Path("cut.sf2"))] == ["Pad A", "Pad B"]
    midi = write_smf(120, 4, 480, 960, [("pad", 0, 5, False, [(60, 0, 480, 100), (67, 240, 900, 90)])])
    whole = midirenderer.render_wave_from(font, midi)
    assert midirenderer.render_wave_from(cut, midi) == whole
    # the copies sound different, so keeping only one of them could have changed the audio
    only_a, only_b = (midirenderer.render_wave_from(build_sf2([presets[0], p], instruments, samples, sm24=False), midi)
                      for p in presets[1:])
    assert only_a != only_b and whole in (only_a, only_b)
