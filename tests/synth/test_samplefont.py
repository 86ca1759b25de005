"""SoundFonts built from recorded samples: a rendered note has the sample's pitch and the note's length."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile

from instrec.synth.fonts import FontSet
from instrec.synth.render import render_raw
from instrec.synth.samplefont import RELEASE_SECONDS, sample_fonts
from instrec.synth.smf import write_smf
from instrec.synth.soundfont import load_soundfont

#: The pack beside the clone (CI: <clone>/../shared), or where INSTREC_SAMPLEPACK says.
PACK = Path(os.environ.get("INSTREC_SAMPLEPACK", Path(__file__).resolve().parents[3] / "shared" / "samplepack"))
TPS = 960  # ticks per second at 120 bpm and resolution 480
#: Sounding time after the note-off at -20 dB: the font's release plus the synthesiser's reverb (measured ~0.22 s).
TAIL = RELEASE_SECONDS + 0.1


def f0(x: np.ndarray, sr: int) -> float:
    """YIN pitch (Hz) of (n,) ``x``: the first lag whose normalised difference dips below 0.15."""
    n = int(0.05 * sr)
    d = np.array([np.sum((x[:n] - x[lag:lag + n]) ** 2) for lag in range(1, n)])
    cmnd = d * np.arange(1, n) / np.maximum(np.cumsum(d), 1e-12)
    lag = int(np.argmax(cmnd < 0.15))
    while lag + 1 < len(cmnd) and cmnd[lag + 1] < cmnd[lag]:
        lag += 1
    return sr / (lag + 1)


def note_midi(pitch: int, seconds: float, program: int = 73, bank: int = 0, drum: bool = False) -> bytes:
    return write_smf(120.0, 4, 480, int((seconds + 2.0) * TPS),
                     [("x", bank, program, drum, [(pitch, 0, int(seconds * TPS), 100)])])


def sounding_seconds(x: np.ndarray, sr: int, db: float = -20.0) -> float:
    """Seconds until the last 10-ms frame within ``db`` of the loudest."""
    frame = int(0.01 * sr)
    rms = np.sqrt(np.mean(x[: len(x) // frame * frame].reshape(-1, frame) ** 2, axis=1))
    return float((np.flatnonzero(rms >= rms.max() * 10 ** (db / 20))[-1] + 1) * 0.01)


@pytest.fixture
def tone_pack(tmp_path):
    """A pack with one flute set: two harmonic tones recorded at A3 (220 Hz) and A4 (440 Hz), 3 s each."""
    d = tmp_path / "pack" / "flute" / "vsco2_flute_tonejs"
    (d / "samples").mkdir(parents=True)
    sr = 44100
    t = np.arange(3 * sr) / sr
    for name, hz in (("A3", 220.0), ("A4", 440.0)):
        tone = sum(np.sin(2 * np.pi * hz * k * t) / k for k in (1, 2, 3)) * 0.3
        soundfile.write(d / "samples" / f"{name}.flac", tone.astype(np.float32), sr)
    (d / "mapping.json").write_text(json.dumps({"samples": [{"file": "samples/A3.flac", "root_midi": 57},
                                                            {"file": "samples/A4.flac", "root_midi": 69}]}))
    return tmp_path / "pack"


def test_a_note_of_a_built_font_has_the_sample_pitch_and_the_note_length(tone_pack, tmp_path):
    (path,) = sample_fonts(tone_pack, tmp_path / "cache")
    sf = load_soundfont(path)
    assert sf.preset_keys == {(0, 73)}
    for pitch, hz in ((57, 220.0), (69, 440.0), (62, 220.0 * 2 ** (5 / 12)), (64, 440.0 * 2 ** (-5 / 12))):
        audio, sr = render_raw(sf, note_midi(pitch, 1.5), 4.0)
        measured = f0(audio[int(0.3 * sr):], sr)
        assert 1200 * abs(np.log2(measured / hz)) < 15, (pitch, measured, hz)
        length = sounding_seconds(audio, sr)
        assert 1.5 <= length <= 1.5 + TAIL, length  # the note, then its release
    again = sample_fonts(tone_pack, tmp_path / "cache")  # cached: the same file, not rebuilt
    assert again == [path] and load_soundfont(path).sha256 == sf.sha256
    (fresh,) = sample_fonts(tone_pack, tmp_path / "other")  # rebuilt elsewhere: the same bytes
    assert fresh.read_bytes() == path.read_bytes()
    (tone_pack / "flute" / "vsco2_flute_tonejs" / "samples" / "A3.flac").write_bytes(
        (tone_pack / "flute" / "vsco2_flute_tonejs" / "samples" / "A4.flac").read_bytes())
    (changed,) = sample_fonts(tone_pack, tmp_path / "cache")  # a changed sample: a new font
    assert changed != path


def test_a_note_longer_than_its_sample_ends_with_the_sample(tone_pack, tmp_path):
    (path,) = sample_fonts(tone_pack, tmp_path / "cache")
    audio, sr = render_raw(load_soundfont(path), note_midi(57, 5.0), 7.0)
    assert 2.9 <= sounding_seconds(audio, sr) <= 3.0 + TAIL  # no loop: ends with the 3-s sample, not the 5-s note


@pytest.mark.skipif(not PACK.is_dir(), reason=f"the sample pack is not at {PACK}")
def test_pack_fonts_play_their_recorded_pitch_and_cover_the_classes(tmp_path):
    paths = sample_fonts(PACK, tmp_path / "cache")
    fonts = FontSet.load([str(p) for p in paths])
    assert {"piano", "bass", "drums", "cymbals", "violin", "saxophone"} <= set(fonts.renderable)
    mapping = json.loads((PACK / "piano" / "akai_splendid_grand_piano" / "mapping.json").read_text())
    root = next(s["root_midi"] for s in mapping["samples"] if 55 <= s["root_midi"] <= 72)
    piano = load_soundfont(next(p for p in paths if p.name.startswith("akai_splendid_grand_piano")))
    audio, sr = render_raw(piano, note_midi(root, 1.0, program=0), 3.0)
    hz = 440.0 * 2 ** ((root - 69) / 12)
    assert 1200 * abs(np.log2(f0(audio[int(0.1 * sr):], sr) / hz)) < 30
    assert 1.0 <= sounding_seconds(audio, sr) <= 1.0 + TAIL
    kit = load_soundfont(next(p for p in paths if p.name.startswith("muldjord_kit")))
    snare, _ = render_raw(kit, note_midi(38, 0.15, program=0, bank=128, drum=True), 2.0)
    assert np.abs(snare).max() > 0.05  # the kit's snare sounds on the GM snare key
