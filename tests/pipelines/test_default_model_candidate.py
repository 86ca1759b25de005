"""The "songs" candidate of the default-model pipeline: its corpus options and its errors."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from instrec._io import InstrecError
from instrec.pipelines import default_model as dm

PACK = Path(os.environ.get("INSTREC_SAMPLEPACK", Path(__file__).resolve().parents[3] / "shared" / "samplepack"))


def test_a_missing_sample_pack_or_an_unknown_candidate_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("INSTREC_SAMPLEPACK", str(tmp_path / "nowhere"))
    with pytest.raises(InstrecError, match=r"nowhere: no sample pack there \(SOURCES.csv missing\)"):
        dm.songs_corpus_options()
    with pytest.raises(InstrecError, match=r"unknown default-model candidate 'bands' \(known: songs, samples, samples2000, gm6000, cymbals\)"):
        dm.build_default_model(tmp_path / "work", candidate="bands")
    assert not (tmp_path / "work").exists()


@pytest.mark.skipif(not (PACK / "SOURCES.csv").is_file(), reason=f"the sample pack is not at {PACK}")
def test_the_songs_corpus_plays_the_pack_in_song_textures(tmp_path):
    opts = dm.songs_corpus_options(PACK)
    assert opts["n_clips"] == dm.SONGS["n_clips"] and opts["soundfonts"][0] is None
    assert len(opts["soundfonts"]) > 20 and all(Path(p).suffix == ".sf2" for p in opts["soundfonts"][1:])
    assert opts["realistic"].bus and opts["realistic"].textures == dm.SONGS["textures"]
    assert dm.CORPUS["n_clips"] == 2000  # the shipped recipe is untouched


def test_the_gm6000_candidate_is_the_shipped_recipe_with_more_clips(tmp_path, monkeypatch):
    seen = {}

    def fake_build(out, **kw):  # stops the build once the corpus options are known
        seen.update(kw)
        raise InstrecError("stop")

    monkeypatch.setattr(dm, "build_corpus", fake_build)
    monkeypatch.setenv("INSTREC_SAMPLEPACK", str(tmp_path / "nowhere"))  # needs no sample pack
    with pytest.raises(InstrecError, match="stop"):
        dm.build_default_model(tmp_path / "work", candidate="gm6000")
    assert seen["n_clips"] == 6000 and "soundfonts" not in seen and "realistic" not in seen
    assert {k: v for k, v in seen.items() if k in dm.CORPUS and k != "n_clips"} == \
        {k: v for k, v in dm.CORPUS.items() if k != "n_clips"}


def test_the_cymbals_candidate_is_the_shipped_recipe_with_orchestral_cymbals(tmp_path, monkeypatch):
    seen = {}

    def fake_build(out, **kw):
        seen.update(kw)
        raise InstrecError("stop")

    monkeypatch.setattr(dm, "build_corpus", fake_build)
    with pytest.raises(InstrecError, match="stop"):
        dm.build_default_model(tmp_path / "work", candidate="cymbals")
    assert seen["n_clips"] == 2000 and "soundfonts" not in seen
    assert seen["realistic"].cymbal_prob == dm.CANDIDATES["cymbals"]["cymbal_prob"]
    assert seen["realistic"].textures == type(seen["realistic"])().textures  # otherwise the shipped recipe
