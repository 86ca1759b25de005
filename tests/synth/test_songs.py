"""Song textures (band, section) and the record bus: who plays, and labels read off the stems."""
from __future__ import annotations

import numpy as np
import pytest

from instrec.synth.fonts import FontSet
from instrec.synth.mixdown import ACTIVITY_DB, frame_rms, mix_and_label, render_stems
from instrec.synth.real_worker import RealClipTask, RealisticSettings, font_names, make_real_audio
from instrec.synth.songs import COMPING, GAIN_DB, LEADS, SECTION_LOW, draw_bus, plan_band, plan_section
from instrec.synth.soundfont import default_soundfont_path
from instrec.synth.textures import plan_texture

pytest.importorskip("pedalboard", reason="the record bus needs pedalboard")

ALL = ("bass", "cello", "clarinet", "cymbals", "drums", "flute", "guitar", "organ", "piano", "saxophone",
       "synthesizer", "trombone", "trumpet", "violin", "voice")


def test_a_band_has_a_lead_a_kit_a_bass_and_comping():
    rng = np.random.default_rng(0)
    counts = {"kit": 0, "bass": 0}
    for _ in range(200):
        _, parts = plan_band(rng, ALL)
        assert parts[0][3] and parts[0][0] in LEADS and not any(p[3] for p in parts[1:])  # one lead, first
        roles = [p[1] for p in parts]
        assert sum(r == "chords" and p[0] in COMPING for r, p in zip(roles, parts)) >= 1
        counts["kit"] += "kit" in roles
        counts["bass"] += any(p[:2] == ("bass", "bass") for p in parts)
    assert counts["kit"] >= 160 and counts["bass"] >= 160  # 90 % each
    _, parts = plan_band(rng, ("piano", "voice"))  # only what the fonts can play
    assert {p[0] for p in parts} <= {"piano", "voice"}


def test_a_section_has_a_lead_and_a_low_line():
    rng = np.random.default_rng(1)
    for _ in range(100):
        _, parts = plan_section(rng, ALL)
        assert parts[0][3] and any(p[1] == "bass" and p[0] in SECTION_LOW for p in parts)
    texture, name, _, plans = plan_texture(rng, ALL, {"section": 1.0})
    assert (texture, name) == ("section", "section") and plans[0].lead


def test_the_bus_is_a_reverb_and_a_compressor_ending_at_minus_1_dbfs():
    rng = np.random.default_rng(2)
    chains = [draw_bus(rng) for _ in range(200)]
    assert all(c[-1] == ("level", {"peak_db": -1.0}) for c in chains)
    share = {k: np.mean([any(n == k for n, _ in c) for c in chains]) for k in ("reverb", "compressor")}
    assert 0.7 <= share["reverb"] <= 0.9 and 0.75 <= share["compressor"] <= 0.95


def test_band_labels_are_read_off_the_dry_stems():
    """The labels of a bussed band clip are those of its dry stems: each labelled class's own
    stems sound above the activity threshold for most of its labelled time, and a part whose
    stem is silenced loses its label. The bus changes the audio, not the labels."""
    fs = FontSet.load([str(default_soundfont_path())])
    bussed, dry = (RealisticSettings(textures={"band": 1.0}, augment=False, bus=b) for b in (True, False))
    checked = 0
    for i in range(4):
        piece, audio, sr, strong, chain = make_real_audio(RealClipTask(i, 3, fs.paths, "logmel", bussed))
        assert piece.texture == "band" and [n for n, _ in chain][-1] == "level"
        _, dry_audio, _, dry_strong, _ = make_real_audio(RealClipTask(i, 3, fs.paths, "logmel", dry))
        assert strong == dry_strong and not np.allclose(audio, dry_audio)
        gains = {rp.part.role: rp.gain_db for rp in piece.parts}
        assert all(GAIN_DB["other"][0] <= g <= 0.0 for g in gains.values())
        stems, _ = render_stems(fs.fonts, piece, font_names(fs.paths))
        assert mix_and_label(stems, sr, piece)[1] == strong
        threshold = frame_rms(np.sum(stems, axis=0), sr).max() * 10 ** (ACTIVITY_DB / 20)
        for cls, intervals in strong.items():
            level = np.max([frame_rms(s, sr) for s, rp in zip(stems, piece.parts) if rp.part.cls == cls], axis=0)
            labelled = np.zeros(len(level), bool)
            for s, e in intervals:
                labelled[int(s / 0.02):int(np.ceil(e / 0.02))] = True
            assert (level[labelled] >= threshold).mean() > 0.5, (i, cls)
            checked += 1
        classes = [rp.part.cls for rp in piece.parts]
        lone = [j for j, c in enumerate(classes) if classes.count(c) == 1 and c in strong]
        j = lone[0]
        muted = [np.zeros_like(s) if k == j else s for k, s in enumerate(stems)]
        assert classes[j] not in mix_and_label(muted, sr, piece)[1]
    assert checked >= 8
