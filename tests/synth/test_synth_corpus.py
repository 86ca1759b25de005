"""The whole corpus: layout, round trip through load_openmic, determinism, bad input."""
from __future__ import annotations

import csv
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile

from instrec._io import InstrecError
from instrec.classes import OPENMIC_CLASSES
from instrec.data.openmic import load_openmic, load_split
from instrec.synth import build_corpus
from instrec.synth import corpus as corpus_mod
from instrec.synth.labels import notes_by_class, strong_labels, weak_truth
from instrec.synth.soundfont import default_soundfont_path

N = 8


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    stats = build_corpus(root / "c1", N, 3, jobs=1, progress=False)
    return root, stats


def _strong_rows(path: Path) -> dict[str, dict[str, list[tuple[float, float]]]]:
    out: dict[str, dict[str, list]] = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["sample_key", "instrument", "onset", "offset"]
        for r in reader:
            out.setdefault(r["sample_key"], {}).setdefault(r["instrument"], []).append(
                (float(r["onset"]), float(r["offset"])))
    return out


def test_layout_and_round_trip(built):
    root, stats = built
    out = root / "c1"
    assert sorted(os.listdir(out)) == ["class-map.json", "corpus-stats.json", "frontend.json", "midi",
                                       "openmic-2018.npz", "partitions", "strong-labels.csv"]
    assert not [p for p in os.listdir(root) if p.startswith(".")]  # no staging left behind
    data = load_openmic(out)
    assert data.classes == OPENMIC_CLASSES
    assert data.X.shape == (N, 10, 128)
    keys = [f"synth_3_{i:06d}" for i in range(N)]
    assert data.sample_key.tolist() == keys
    assert sorted(os.listdir(out / "midi")) == [f"{k}.mid" for k in keys]
    train, test = load_split(out, "train", data=data), load_split(out, "test", data=data)
    assert sorted(train.sample_key.tolist() + test.sample_key.tolist()) == keys and len(test) == 2
    for cls in ("mandolin", "ukulele"):
        assert not data.Y_mask[:, OPENMIC_CLASSES.index(cls)].any()
    assert (data.Y_mask.sum(axis=1) >= 1).all() and (data.Y_true[~data.Y_mask] == 0).all()
    saved = json.loads((out / "corpus-stats.json").read_text())
    assert saved["soundfont"] == str(default_soundfont_path().resolve())
    assert saved["soundfont_sha256"] == stats.soundfont_sha256 and saved["seed"] == 3 and saved["n_clips"] == N
    assert "mandolin" not in saved["renderable_classes"] and len(saved["renderable_classes"]) == 18
    assert saved["frontend"]["name"] == "logmel"
    assert json.loads((out / "frontend.json").read_text()) == saved["frontend"]
    assert saved["labelled_pairs"] == int(data.Y_mask.sum())


def test_strong_and_weak_labels_agree_with_the_midi_files(built):
    root, _ = built
    out = root / "c1"
    data = load_openmic(out)
    rows = _strong_rows(out / "strong-labels.csv")
    for i, key in enumerate(data.sample_key):
        pm = pretty_midi.PrettyMIDI(str(out / "midi" / f"{key}.mid"))
        again = strong_labels(notes_by_class(pm.instruments), 10.0)
        assert set(again) == set(rows[key])
        for cls, intervals in again.items():
            assert np.allclose(rows[key][cls], intervals, atol=0.0015)
        present = weak_truth(rows[key], list(OPENMIC_CLASSES))
        labelled = data.Y_mask[i]
        assert np.array_equal(data.Y_true[i][labelled] >= 0.5, present[labelled])


def test_same_seed_is_byte_identical_for_any_jobs_or_executor(built, tmp_path):
    root, _ = built
    ref = (root / "c1" / "openmic-2018.npz").read_bytes()
    build_corpus(tmp_path / "c2", N, 3, jobs=2, keep_audio=True, progress=False)
    with ThreadPoolExecutor(2) as pool:
        build_corpus(tmp_path / "c3", N, 3, executor=pool, progress=False)
    for name in ("c2", "c3"):
        assert (tmp_path / name / "openmic-2018.npz").read_bytes() == ref
        assert (tmp_path / name / "strong-labels.csv").read_bytes() == (root / "c1" / "strong-labels.csv").read_bytes()
        key = f"synth_3_{N - 1:06d}.mid"
        assert (tmp_path / name / "midi" / key).read_bytes() == (root / "c1" / "midi" / key).read_bytes()
    audio, sr = soundfile.read(tmp_path / "c2" / "audio" / f"synth_3_{0:06d}.wav")
    assert sr == 48000 and audio.shape == (480000,) and 0.8 < np.abs(audio).max() <= 0.9
    assert len(os.listdir(tmp_path / "c2" / "audio")) == N
    other = build_corpus(tmp_path / "c4", 2, 4, progress=False)
    assert other.n_clips == 2 and (tmp_path / "c4" / "openmic-2018.npz").read_bytes() != ref


def test_overwrite_rules(built, tmp_path):
    root, _ = built
    target = tmp_path / "c"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(InstrecError, match="not empty"):
        build_corpus(target, 1, 0, progress=False)
    with pytest.raises(InstrecError, match="not a synthetic corpus"):
        build_corpus(target, 1, 0, overwrite=True, progress=False)
    assert (target / "notes.txt").read_text() == "mine"
    (target / "notes.txt").unlink()
    build_corpus(target, 1, 0, progress=False)  # an empty folder is fine
    build_corpus(target, 2, 1, overwrite=True, progress=False)
    assert load_openmic(target).sample_key.tolist() == ["synth_1_000000", "synth_1_000001"]
    assert sorted(os.listdir(tmp_path)) == ["c"]


@pytest.mark.parametrize("kwargs, message", [
    ({"n_clips": 0}, "number of clips must be >= 1"),
    ({"n_clips": 2, "seed": -1}, "seed must be"),
    ({"n_clips": 2, "jobs": 0}, "jobs must be"),
    ({"n_clips": 2, "labels_per_clip": 0.5}, "labels per clip"),
    ({"n_clips": 2, "positive_fraction": 1.0}, "positive fraction"),
    ({"n_clips": 2, "frontend": "mfcc"}, "unknown front end"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    kwargs.setdefault("seed", 0)
    with pytest.raises(InstrecError, match=message) as err:
        build_corpus(tmp_path / "out", progress=False, **kwargs)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_bad_soundfonts_and_unwritable_output(tmp_path):
    with pytest.raises(InstrecError, match="SoundFont not found") as err:
        build_corpus(tmp_path / "out", 1, 0, soundfont=tmp_path / "none.sf2", progress=False)
    assert str(tmp_path / "none.sf2") in str(err.value)
    bad = tmp_path / "bad.sf2"
    bad.write_bytes(os.urandom(1000))
    with pytest.raises(InstrecError, match="not a SoundFont 2"):
        build_corpus(tmp_path / "out", 1, 0, soundfont=bad, progress=False)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InstrecError, match="cannot create the output folder"):
        build_corpus(blocker / "out", 1, 0, progress=False)
    with pytest.raises(InstrecError, match="not a folder"):
        build_corpus(blocker, 1, 0, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["bad.sf2", "file"]


def test_failure_midway_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def broken(task):
        calls.append(task.index)
        if task.index == 2:
            raise RuntimeError("boom")
        return real(task)

    real = corpus_mod.make_clip
    monkeypatch.setattr(corpus_mod, "make_clip", broken)
    with pytest.raises(RuntimeError, match="boom"):
        build_corpus(tmp_path / "out", 4, 0, progress=False)
    assert calls == [0, 1, 2] and os.listdir(tmp_path) == []


def test_summary_is_printed(tmp_path, capsys):
    stats = build_corpus(tmp_path / "out", 2, 0, progress=True)
    printed = capsys.readouterr().out
    assert "2 clips" in printed and "positive" in printed and "never labelled: mandolin, ukulele" in printed
    assert stats.labelled_per_clip >= 1 and stats.clips_per_second > 0
    assert set(stats.stage_seconds) == {"compose", "render", "features"}
