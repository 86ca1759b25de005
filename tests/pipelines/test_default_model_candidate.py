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
    with pytest.raises(InstrecError, match=r"unknown default-model candidate 'bands' \(known: songs, samples, samples2000\)"):
        dm.build_default_model(tmp_path / "work", candidate="bands")
    assert not (tmp_path / "work").exists()


@pytest.mark.skipif(not (PACK / "SOURCES.csv").is_file(), reason=f"the sample pack is not at {PACK}")
def test_the_songs_corpus_plays_the_pack_in_song_textures(tmp_path):
    opts = dm.songs_corpus_options(PACK)
    assert opts["n_clips"] == dm.SONGS["n_clips"] and opts["soundfonts"][0] is None
    assert len(opts["soundfonts"]) > 20 and all(Path(p).suffix == ".sf2" for p in opts["soundfonts"][1:])
    assert opts["realistic"].bus and opts["realistic"].textures == dm.SONGS["textures"]
    assert dm.CORPUS["n_clips"] == 2000  # the shipped recipe is untouched
