"""The realistic recipe: determinism, textures, labels read off the audio, fonts per part,
expressive controls and the recording-chain augmentation.

The fonts are pretty_midi's bundled TimGM6mb and a second, smaller font cut from it (a
different file with a few presets), so no test needs a Debian SoundFont package; the one
test about the installed fonts skips when they are absent.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import mido
import numpy as np
import pytest

from instrec._io import InstrecError
from instrec.classes import OPENMIC_CLASSES
from instrec.data.openmic import load_openmic
from instrec.synth import augment as aug
from instrec.synth import build_corpus
from instrec.synth.expression import PITCH_BEND, Rubato, controls, shape_notes
from instrec.synth.fonts import KNOWN_FONTS, FontSet, find_soundfonts, resolve_specs
from instrec.synth.lines import PLAYED_RANGE, register
from instrec.synth.mixdown import ACTIVITY_DB, frame_rms, mix_and_label, render_stems
from instrec.synth.parts import NoteEvent
from instrec.synth.real_worker import (
    STREAM_REAL_COMPOSE,
    RealClipTask,
    RealisticSettings,
    font_names,
    make_real_audio,
)
from instrec.synth.realistic import compose_realistic
from instrec.synth.soundfont import default_soundfont_path, load_soundfont
from instrec.synth.worker import clip_rng

pedalboard = pytest.importorskip("pedalboard", reason="the realistic recipe's augmentation needs pedalboard")

#: Presets of the second font: piano, violin, flute, trumpet and the standard kit.
SMALL = frozenset({(0, 0), (0, 40), (0, 73), (0, 56), (128, 0)})
N = 6


@pytest.fixture(scope="module")
def fonts(tmp_path_factory) -> list[str]:
    small = tmp_path_factory.mktemp("fonts") / "small.sf2"
    small.write_bytes(load_soundfont(None).tables.subset(SMALL))
    return [str(default_soundfont_path()), str(small)]


@pytest.fixture(scope="module")
def built(tmp_path_factory, fonts):
    root = tmp_path_factory.mktemp("real")
    build_corpus(root / "j1", N, 7, recipe="realistic", soundfonts=fonts, jobs=1, progress=False)
    build_corpus(root / "j2", N, 7, recipe="realistic", soundfonts=fonts, jobs=2, keep_audio=True, progress=False)
    return root


def test_realistic_is_deterministic_across_builds_and_jobs(built, fonts, tmp_path):
    for name in ("openmic-2018.npz", "strong-labels.csv"):
        assert (built / "j1" / name).read_bytes() == (built / "j2" / name).read_bytes()
    for key in load_openmic(built / "j1").sample_key:
        assert (built / "j1" / "midi" / f"{key}.mid").read_bytes() == (built / "j2" / "midi" / f"{key}.mid").read_bytes()
    build_corpus(tmp_path / "again", N, 7, recipe="realistic", soundfonts=fonts, jobs=1, progress=False)
    assert (tmp_path / "again" / "openmic-2018.npz").read_bytes() == (built / "j1" / "openmic-2018.npz").read_bytes()
    build_corpus(tmp_path / "other", N, 8, recipe="realistic", soundfonts=fonts, jobs=1, progress=False)
    assert (tmp_path / "other" / "openmic-2018.npz").read_bytes() != (built / "j1" / "openmic-2018.npz").read_bytes()


def test_recipe_and_fonts_are_recorded(built, fonts):
    stats = json.loads((built / "j1" / "corpus-stats.json").read_text())
    assert stats["recipe"] == "realistic"
    assert stats["recipe_settings"]["textures"]["solo"] > 0 and stats["recipe_settings"]["augment"] is True
    assert [f["path"] for f in stats["soundfonts"]] == [str(Path(f).resolve()) for f in fonts]
    assert len({f["sha256"] for f in stats["soundfonts"]}) == 2
    assert sum(stats["textures"]["textures"].values()) == N
    assert sum(stats["textures"]["present_classes"].values()) == N


def test_each_part_records_a_font_that_holds_its_preset(built, fonts):
    loaded = {Path(f).name: load_soundfont(f) for f in fonts}
    seen = set()
    for key in load_openmic(built / "j1").sample_key:
        mid = mido.MidiFile(built / "j1" / "midi" / f"{key}.mid")
        for track in mid.tracks[1:]:
            names = [m.name for m in track if m.type == "instrument_name"]
            assert len(names) == 1, key
            font, preset = names[0].split(" ")[:2]
            bank, program = (int(x) for x in preset.split(":"))
            assert loaded[font].has_preset(bank, program), (key, names[0])
            seen.add(font)
    stats = json.loads((built / "j1" / "corpus-stats.json").read_text())
    assert set(stats["textures"]["parts_per_font"]) == seen


def test_texture_mix_over_60_clips():
    """About 40% solos by design: the share of single-class clips stays in [0.25, 0.6];
    drums sound in a minority; dense clips (>= 4 classes) stay rare."""
    fs = FontSet.load([None])
    n_classes, drums, textures = [], 0, []
    for i in range(60):
        piece = compose_realistic(clip_rng(11, i, STREAM_REAL_COMPOSE), fs)
        classes = {rp.part.cls for rp in piece.parts}
        n_classes.append(len(classes))
        drums += "drums" in classes
        textures.append(piece.texture)
    n_classes = np.array(n_classes)
    assert 0.25 <= np.mean(n_classes == 1) <= 0.6
    assert 0.02 <= drums / 60 <= 0.35
    assert np.mean(n_classes >= 4) <= 0.3
    assert set(textures) == {"solo", "duo", "sparse", "ensemble"}


def test_registers_cover_the_played_range():
    rng = np.random.default_rng(0)
    fs = FontSet.load([None])
    for cls in ("clarinet", "violin", "trumpet", "saxophone", "flute", "guitar", "piano", "bass"):
        _, voice = fs.pick(rng, cls)
        windows = [register(rng, cls, voice, "solo") for _ in range(300)]
        lo, hi = PLAYED_RANGE[cls]
        assert all(lo - 12 <= a < b <= hi + 12 for a, b in windows)
        reach = (min(a for a, _ in windows), max(b for _, b in windows))
        covered = (reach[1] - reach[0]) / (voice.high - voice.low)
        assert covered >= 1.0, (cls, reach, voice)  # at least the ensemble recipe's range


def test_labels_follow_the_rendered_audio(fonts):
    """Weakly present => the class's own stems sound above the activity threshold for at
    least min_seconds; a part whose audio is silent is never labelled."""
    fs = FontSet.load(fonts)
    settings = RealisticSettings(augment=False)
    checked = 0
    for i in range(8):
        task = RealClipTask(i, 5, fs.paths, "logmel", settings)
        piece, _, sr, strong, _ = make_real_audio(task)
        stems, _ = render_stems(fs.fonts, piece, font_names(fs.paths))
        threshold = frame_rms(np.sum(stems, axis=0), sr).max() * 10 ** (ACTIVITY_DB / 20)
        for cls, intervals in strong.items():
            if sum(e - s for s, e in intervals) < 1.0:
                continue
            level = np.max([frame_rms(s, sr) for s, rp in zip(stems, piece.parts) if rp.part.cls == cls], axis=0)
            assert (level >= threshold).sum() * 0.02 >= 1.0 - 0.1, (i, cls)
            checked += 1
        classes = [rp.part.cls for rp in piece.parts]
        lone = [j for j, c in enumerate(classes) if classes.count(c) == 1]
        if lone:  # silence one part: its class must lose its labels, the others keep theirs
            j = lone[0]
            muted = [np.zeros_like(s) if k == j else s for k, s in enumerate(stems)]
            _, strong2 = mix_and_label(muted, sr, piece)
            assert classes[j] not in strong2
    assert checked >= 8


def test_expressive_controls_reach_the_midi(fonts):
    rng = np.random.default_rng(3)
    notes = [NoteEvent(60 + k, 0.5 * k, 0.5 * k + 0.9, 80) for k in range(8)]
    shaped, _ = shape_notes(rng, notes, 10.0, percussive=False, chordal=False)
    assert len(shaped) == 8 and all(n.end > n.start and 15 <= n.velocity <= 127 for n in shaped)
    assert len({n.velocity for n in shaped}) > 1
    rubato = Rubato(0.12, 3.0, 1.0, 0.1, 10.0)
    t = np.linspace(0, 10, 1001)
    assert np.all(np.diff([rubato(x) for x in t]) > 0) and rubato(0.0) == 0.0
    ctrl = controls(np.random.default_rng(1), "violin", tuple(notes), 10.0, chordal=False)
    bends = [v for _, c, v in ctrl if c == PITCH_BEND]
    assert len(bends) > 20 and all(-8192 <= v <= 8191 for v in bends) and max(bends) - min(bends) > 100
    fs = FontSet.load(fonts)
    for i in range(20):  # a clip with a vibrato part: pitch-bend messages in its MIDI file
        piece = compose_realistic(clip_rng(2, i, STREAM_REAL_COMPOSE), fs)
        if any(sum(1 for _, c, _ in rp.controls if c == PITCH_BEND) > 20 for rp in piece.parts):
            mid = mido.MidiFile(file=io.BytesIO(piece.midi_bytes(["a.sf2", "b.sf2"])))
            assert sum(m.type == "pitchwheel" for tr in mid.tracks for m in tr) > 20
            break
    else:
        pytest.fail("no clip with vibrato in 20")


def test_augmentation_changes_the_audio_within_bounds(fonts, monkeypatch):
    fs = FontSet.load(fonts)
    _, clean, sr, _, _ = make_real_audio(RealClipTask(0, 1, fs.paths, "logmel", RealisticSettings(augment=False)))
    monkeypatch.setattr(aug, "EFFECT_PROB", {k: 1.0 for k in aug.EFFECT_PROB})  # every effect at once
    for seed in range(4):
        chain = aug.draw_chain(np.random.default_rng(seed))
        assert [name for name, _ in chain][:1] == ["reverb"] and "mp3" in dict(chain)
        loud = clean * np.float32(1.0 / np.abs(clean).max())  # a full-scale input
        a, b = aug.apply_chain(loud, sr, chain), aug.apply_chain(loud, sr, chain)
        assert np.array_equal(a, b)  # pedalboard is deterministic
        assert a.shape == clean.shape and a.dtype == np.float32 and np.isfinite(a).all()
        assert np.abs(a).max() <= 1.0 and np.abs(a).max() > 1e-3
        assert not np.allclose(a, loud, atol=1e-3)
    silent = aug.apply_chain(np.zeros(sr, np.float32), sr, aug.draw_chain(np.random.default_rng(0)))
    assert np.isfinite(silent).all() and silent.shape == (sr,)


def test_augmented_clip_differs_from_the_clean_one(built, fonts, tmp_path):
    build_corpus(tmp_path / "clean", N, 7, recipe="realistic", soundfonts=fonts, jobs=1, progress=False,
                 realistic=RealisticSettings(augment=False))
    a = load_openmic(built / "j1")
    b = load_openmic(tmp_path / "clean")
    assert a.X.shape == b.X.shape and not np.array_equal(a.X, b.X)
    assert np.array_equal(a.Y_mask, b.Y_mask)  # labels do not depend on the recording chain
    import soundfile
    audio, sr = soundfile.read(built / "j2" / "audio" / f"{a.sample_key[0]}.wav")
    assert sr == 48000 and audio.shape == (480000,) and np.abs(audio).max() <= 1.0


def test_bad_recipe_arguments(tmp_path, fonts, monkeypatch):
    cases = [({"recipe": "orchestra"}, "unknown recipe"),
             ({"soundfonts": fonts}, "ensemble recipe renders with one SoundFont"),
             ({"soundfont": fonts[0], "soundfonts": fonts, "recipe": "realistic"}, "not both")]
    for kwargs, message in cases:
        with pytest.raises(InstrecError, match=message) as err:
            build_corpus(tmp_path / "out", 1, 0, progress=False, **kwargs)
        assert "\n" not in str(err.value)
    real_import = aug.importlib.import_module

    def no_pedalboard(name, *a):
        if name == "pedalboard":
            raise ImportError(name)
        return real_import(name, *a)

    monkeypatch.setattr(aug.importlib, "import_module", no_pedalboard)
    with pytest.raises(InstrecError, match="needs pedalboard") as err:
        build_corpus(tmp_path / "out", 1, 0, recipe="realistic", soundfonts=fonts, progress=False)
    assert "\n" not in str(err.value) and not (tmp_path / "out").exists()
    build_corpus(tmp_path / "out", 1, 0, recipe="realistic", soundfonts=fonts, progress=False,
                 realistic=RealisticSettings(augment=False))
    assert load_openmic(tmp_path / "out").X.shape[0] == 1


def test_font_names_are_unique():
    assert font_names(("/a/x.sf2", "/b/y.sf2")) == ["x.sf2", "y.sf2"]
    assert font_names(("/usr/sf2/T.sf2", "/site/pretty_midi/T.sf2")) == ["sf2/T.sf2", "pretty_midi/T.sf2"]


def test_auto_lists_installed_fonts_once(tmp_path):
    listed = find_soundfonts([str(tmp_path / "missing.sf2")])
    assert listed == [default_soundfont_path()]
    assert resolve_specs([None, "auto", str(default_soundfont_path())]).count(default_soundfont_path().resolve()) == 1


@pytest.mark.skipif(not all(Path(p).is_file() for p in KNOWN_FONTS[:1]), reason="Debian's FluidR3_GM is not installed")
def test_installed_fonts_play_all_classes():
    fs = FontSet.load(["auto"])
    assert len(fs.fonts) >= 2 and set(fs.renderable) == set(OPENMIC_CLASSES)
    assert len({f.sha256 for f in fs.fonts}) == len(fs.fonts)


def test_cli_realistic_with_repeated_soundfonts(tmp_path, fonts, capsys):
    from instrec.cli import main

    out = tmp_path / "cli"
    assert main(["synth", "--out", str(out), "--clips", "2", "--seed", "1", "--jobs", "1", "--recipe", "realistic",
                 "--soundfont", fonts[0], "--soundfont", fonts[1], "--no-augment", "--quiet"]) == 0
    stats = json.loads((out / "corpus-stats.json").read_text())
    assert stats["recipe"] == "realistic" and len(stats["soundfonts"]) == 2
    assert stats["recipe_settings"]["augment"] is False and stats["recipe_settings"]["augmentation"] is None


def test_orchestral_cymbals_are_rolls_and_clashes_of_cymbal_keys_only():
    from instrec.synth.drums import ROLL_RATE, orchestral_cymbals
    from instrec.synth.gm import CYMBAL_NOTES

    cymbal_keys = {key for key, _ in CYMBAL_NOTES.values()}
    kinds = set()
    for seed in range(40):
        notes = orchestral_cymbals(np.random.default_rng(seed), 10.0, 90.0)
        assert notes and {n.pitch for n in notes} <= cymbal_keys
        assert all(0.0 <= n.start < 10.0 and n.end > n.start and 1 <= n.velocity <= 127 for n in notes)
        starts = sorted(n.start for n in notes)
        if len(notes) > 12:  # a roll: strokes at 10-16 per second (+-15 %), swelling from soft
            gaps = np.diff(starts[:10])
            assert gaps.min() >= 0.85 / ROLL_RATE[1] - 1e-9 and gaps.max() <= 1.15 / ROLL_RATE[0] + 1e-9
            assert notes[0].velocity < max(n.velocity for n in notes)
            kinds.add("roll")
        else:  # clashes: two crash cymbals struck together, 2-5 s apart
            assert len(notes) % 2 == 0 and all(a == b for a, b in zip(starts[::2], starts[1::2]))
            assert np.all(np.diff(starts[::2]) >= 2.0)
            kinds.add("clashes")
    assert kinds == {"roll", "clashes"}


def test_orchestral_cymbals_come_from_their_own_stream_and_change_nothing_else():
    from instrec.synth.real_worker import STREAM_CYMBALS

    fs = FontSet.load([None])
    prob = {"solo": 0.5, "duo": 0.5, "sparse": 0.5}
    gained = {"solo": 0, "duo": 0, "sparse": 0}
    for i in range(40):
        plain = compose_realistic(clip_rng(3, i, STREAM_REAL_COMPOSE), fs)
        piece = compose_realistic(clip_rng(3, i, STREAM_REAL_COMPOSE), fs, cymbal_prob=prob,
                                  cymbal_rng=clip_rng(3, i, STREAM_CYMBALS))
        cymbal_parts = [rp for rp in piece.parts if rp.part.role == "orchestral"]
        others = tuple(rp for rp in piece.parts if rp.part.role != "orchestral")
        assert (piece.texture, piece.harmony, piece.detune) == (plain.texture, plain.harmony, plain.detune)
        if not cymbal_parts:
            assert piece == plain  # no cymbals drawn: the clip is the clip without the setting
            continue
        assert all(rp.part.cls == "cymbals" and rp.part.is_drum for rp in cymbal_parts)
        gained[piece.texture] += 1
        # a solo becomes cymbals alone; a duo or a sparse texture keeps every part it had
        assert others == (() if piece.texture == "solo" else plain.parts)
    assert all(n > 0 for n in gained.values()), gained
    # Without the setting (or without its stream) nothing is drawn.
    for i in range(5):
        plain = compose_realistic(clip_rng(3, i, STREAM_REAL_COMPOSE), fs)
        assert compose_realistic(clip_rng(3, i, STREAM_REAL_COMPOSE), fs, cymbal_prob=prob) == plain


def test_a_cymbal_solo_is_labelled_cymbals_alone(tmp_path):
    settings = RealisticSettings(textures={"solo": 1.0}, cymbal_prob={"solo": 1.0}, augment=False)
    build_corpus(tmp_path / "c", 3, 0, recipe="realistic", frontend="logmel", jobs=1, progress=False,
                 labels_per_clip=20.0, disagreement=False, realistic=settings)
    data = load_openmic(tmp_path / "c")
    present = (data.Y_true >= 0.5) & data.Y_mask
    assert present.sum(axis=1).tolist() == [1, 1, 1] and present[:, OPENMIC_CLASSES.index("cymbals")].all()
    stats = json.loads((tmp_path / "c" / "corpus-stats.json").read_text())
    assert stats["recipe_settings"]["cymbal_prob"] == {"solo": 1.0}
