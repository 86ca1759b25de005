"""SoundFont preset parsing, the class -> General MIDI map and bank handling of the renderer."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from instrec._io import InstrecError
from instrec.classes import OPENMIC_CLASSES
from instrec.synth import gm
from instrec.synth.soundfont import default_soundfont_path, load_soundfont, parse_presets

FLUID = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


def _chunk(cid: bytes, data: bytes) -> bytes:
    return cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def make_sf2(presets: list[tuple[str, int, int]]) -> bytes:
    """A structurally valid (sample-less) SoundFont holding only the given preset headers."""
    records = b"".join(struct.pack("<20sHHHIII", n.encode(), prog, bank, 0, 0, 0, 0) for n, bank, prog in presets)
    records += struct.pack("<20sHHHIII", b"EOP", 0, 0, 0, 0, 0, 0)
    pdta = b"pdta" + _chunk(b"phdr", records)
    body = b"sfbk" + _chunk(b"LIST", b"INFO" + _chunk(b"ifil", b"\2\0\1\0")) + _chunk(b"LIST", pdta)
    return _chunk(b"RIFF", body)


def test_timgm6mb_presets_and_missing_variation_banks():
    sf = load_soundfont(None)
    assert sf.path == default_soundfont_path().resolve()
    keys = sf.preset_keys
    assert {(0, p) for p in range(128)} <= keys
    assert (128, 0) in keys and (128, 25) in keys  # standard and TR-808 kits
    assert not sf.has_preset(16, 25) and not sf.has_preset(8, 24)  # no mandolin, no ukulele
    assert {b for b, _ in keys} == {0, 128}
    assert len(sf.sha256) == 64
    assert gm.renderable_classes(keys) == tuple(c for c in OPENMIC_CLASSES if c not in ("mandolin", "ukulele"))


def test_every_class_has_voices_and_ranges_are_sane():
    assert set(gm.MELODIC_VOICES) | set(gm.PERCUSSION_CLASSES) == set(OPENMIC_CLASSES)
    for cls in OPENMIC_CLASSES:
        voices = gm.class_voices(cls)
        assert voices, cls
        for v in voices:
            assert 0 <= v.program <= 127 and 0 <= v.low < v.high <= 127 and v.weight > 0
    # the drum classes share percussion-channel notes but never the same key; hi-hats are drums
    cymbal_keys = {k for k, _ in gm.CYMBAL_NOTES.values()}
    drum_keys = {k for k, _ in gm.DRUM_NOTES.values()}
    assert not cymbal_keys & drum_keys and {42, 44, 46} <= drum_keys
    with pytest.raises(ValueError, match="unknown instrument class"):
        gm.class_voices("kazoo")


def test_handmade_soundfont_decides_which_classes_exist(tmp_path):
    path = tmp_path / "tiny.sf2"
    path.write_bytes(make_sf2([("Ukulele", 8, 24), ("Nylon", 0, 24), ("Std", 128, 0)]))
    sf = load_soundfont(path)
    assert [(p.name, p.bank, p.program) for p in sf.presets] == [("Ukulele", 8, 24), ("Nylon", 0, 24), ("Std", 128, 0)]
    assert gm.renderable_classes(sf.preset_keys) == ("cymbals", "drums", "guitar", "ukulele")
    assert [v.name for v in gm.available_voices("guitar", sf.preset_keys)] == ["Nylon Guitar"]


@pytest.mark.parametrize("content, message", [
    (b"", "not a SoundFont 2"),
    (b"RIFF\x04\x00\x00\x00WAVE", "not a SoundFont 2"),
    (make_sf2([("A", 0, 0)])[:-10], "runs past the end"),
    (make_sf2([("A", 0, 0)]).replace(b"phdr", b"xxxx"), "no 'phdr'"),
    (make_sf2([("A", 0, 0)]).replace(b"pdta", b"qdta"), "no 'pdta'"),
])
def test_corrupt_soundfont_is_a_one_line_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.sf2"
    path.write_bytes(content)
    with pytest.raises(InstrecError, match=message) as err:
        load_soundfont(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_soundfont(tmp_path):
    with pytest.raises(InstrecError, match="SoundFont not found"):
        load_soundfont(tmp_path / "nope.sf2")
    with pytest.raises(InstrecError, match="not a SoundFont"):
        parse_presets(b"RIFX", tmp_path / "x.sf2")


def _render_note(sf, bank: int, program: int) -> np.ndarray:
    from instrec.synth.compose import Part, Piece
    from instrec.synth.harmony import Chord, Harmony
    from instrec.synth.parts import NoteEvent
    from instrec.synth.render import render_midi

    h = Harmony(0, "major", 120.0, 4, 0.0, (Chord(0.0, 1.0, 0, (0, 4, 7)),))
    part = Part("guitar", "melody", gm.Voice("x", bank, program, 40, 80), False, (0.0, 1.0),
                (NoteEvent(64, 0.0, 0.5, 100),))
    audio, sr = render_midi(sf, Piece("test", "free", h, (part,), 1.0).midi_bytes(), 1.0)
    assert sr == 48000 and audio.shape == (48000,)
    return audio


def test_missing_bank_falls_back_to_bank_0_which_is_why_such_classes_are_never_used():
    sf = load_soundfont(None)
    assert np.array_equal(_render_note(sf, 8, 24), _render_note(sf, 0, 24))


@pytest.mark.skipif(not FLUID.is_file(), reason="FluidR3_GM.sf2 not installed (apt-get install fluid-soundfont-gm)")
def test_fluidr3_has_mandolin_and_ukulele_and_bank_select_is_honoured():
    sf = load_soundfont(FLUID)
    assert set(gm.renderable_classes(sf.preset_keys)) == set(OPENMIC_CLASSES)
    ukulele, nylon = _render_note(sf, 8, 24), _render_note(sf, 0, 24)
    assert np.abs(ukulele).max() > 0.1 and not np.allclose(ukulele, nylon, atol=1e-3)



def test_render_midi_file_writes_a_10_second_mono_wav_and_names_bad_midi(tmp_path):
    import soundfile

    from instrec.synth.render import render_midi_file
    from instrec.synth.worker import compose_clip

    piece, _ = compose_clip(0, 0, load_soundfont(None).preset_keys)
    midi = tmp_path / "a.mid"
    midi.write_bytes(piece.midi_bytes())
    wav = render_midi_file(midi, tmp_path / "a.wav")
    audio, sr = soundfile.read(wav)
    assert sr == 48000 and audio.shape == (480000,) and 0.85 < np.abs(audio).max() < 0.9
    (tmp_path / "bad.mid").write_bytes(b"MThd garbage")
    with pytest.raises(InstrecError, match="not a valid MIDI file") as err:
        render_midi_file(tmp_path / "bad.mid", tmp_path / "b.wav")
    assert str(tmp_path / "bad.mid") in str(err.value)
    with pytest.raises(InstrecError, match="cannot render") as err:
        render_midi_file(tmp_path / "bad.mid", tmp_path / "b.wav", duration=1.0)
    assert str(tmp_path / "bad.mid") in str(err.value)
    with pytest.raises(InstrecError, match="MIDI file not found"):
        render_midi_file(tmp_path / "none.mid", tmp_path / "c.wav")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mid", "a.wav", "bad.mid"]


def _wav(pcm: np.ndarray, sr: int, bits: int = 16, extra: bytes = b"") -> bytes:
    """A RIFF/WAVE file written by hand: ``extra`` chunks go between 'fmt ' and 'data'."""
    channels = pcm.shape[1]
    fmt = struct.pack("<HHIIHH", 1, channels, sr, sr * channels * bits // 8, channels * bits // 8, bits)
    body = b"WAVE" + _chunk(b"fmt ", fmt) + extra + _chunk(b"data", pcm.astype("<i2").tobytes())
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("channels", [1, 2])
def test_pcm16_wav_decoding_equals_libsndfile_bit_for_bit(channels):
    import io

    import soundfile

    from instrec.synth.render import pcm16_wav_to_mono

    pcm = np.random.default_rng(channels).integers(-32768, 32768, (4001, channels))
    pcm[:3] = [[-32768] * channels, [32767] * channels, [1] * channels]  # the extremes and the smallest step
    wav = _wav(pcm, 22050, extra=_chunk(b"LIST", b"INFOodd"))  # an odd-sized chunk is padded
    audio, sr = pcm16_wav_to_mono(wav)
    reference = soundfile.read(io.BytesIO(wav), dtype="float32", always_2d=True)[0].mean(axis=1, dtype=np.float32)
    assert sr == 22050 and audio.dtype == np.float32 and np.array_equal(audio, reference)
    assert audio[0] == -1.0 and audio[1] == pytest.approx(32767 / 32768, abs=0)


def test_other_wav_layouts_are_left_to_libsndfile():
    from instrec.synth.render import pcm16_wav_to_mono

    pcm = np.zeros((10, 2), dtype=np.int16)
    assert pcm16_wav_to_mono(b"RIFX" + _wav(pcm, 8000)[4:]) is None  # big-endian RIFF
    assert pcm16_wav_to_mono(_wav(np.zeros((10, 3)), 8000)) is None  # three channels
    float_wav = bytearray(_wav(pcm, 8000))
    float_wav[20:22] = struct.pack("<H", 3)  # IEEE-float format tag
    assert pcm16_wav_to_mono(bytes(float_wav)) is None
    assert pcm16_wav_to_mono(_wav(pcm, 8000)[:36]) is None  # cut before the data chunk
