"""Masked scores on labelled recordings, against values worked out by hand."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from instrec._io import InstrecError
from instrec.evaluation.recordings import read_recording_labels, read_recordings, score_groups, score_recordings

CLASSES = ["flute", "piano", "voice"]


def test_scores_match_hand_computed_values():
    truth = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1], [1, 0, 0]], bool)
    probs = np.array([[0.9, 0.2, 0.1],   # top flute: right
                      [0.7, 0.6, 0.0],   # top flute: wrong
                      [0.1, 0.3, 0.8],   # top voice: right (voice sounds)
                      [0.4, 0.5, 0.2]])  # top piano: wrong
    present = probs > 0.45
    s = score_recordings(truth, probs, present, CLASSES)
    assert s["top1"] == pytest.approx(0.5)
    # flute: positives rows 0, 3; scores 0.9 (pos), 0.7 (neg), 0.4 (pos), 0.1 -> AP = (1/1 + 2/3) / 2
    # piano: positives rows 1, 2; scores 0.6 (pos), 0.5 (neg), 0.3 (pos), 0.2 -> AP = (1 + 2/3) / 2
    # voice: positive row 2 with the top score -> AP = 1
    aps = {r["instrument"]: r["ap"] for r in s["per_class"]}
    assert aps == pytest.approx({"flute": (1 + 2 / 3) / 2, "piano": (1 + 2 / 3) / 2, "voice": 1.0})
    assert s["mean_ap"] == pytest.approx(np.mean([(1 + 2 / 3) / 2, (1 + 2 / 3) / 2, 1.0]))
    # present: row 0 flute; row 1 flute, piano; row 2 voice; row 3 piano -> wrong: (1, flute), (3, piano)
    assert s["added_per_file"] == pytest.approx(2 / 4)
    assert s["recall"] == pytest.approx(3 / 5)
    flute = s["per_class"][0]
    assert (flute["precision"], flute["recall"]) == pytest.approx((0.5, 0.5))


def test_unknown_pairs_are_masked_out_of_every_score():
    truth = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 1, 0]], bool)
    known = np.array([[1, 1, 1],   # solo flute: complete
                      [0, 0, 1],   # a song: only the voice documented
                      [1, 0, 1],   # accompaniment: flute and voice documented absent, piano unknown
                      [1, 1, 0]], bool)  # piano present, flute absent, voice unknown
    probs = np.array([[0.3, 0.9, 0.2],   # top known: piano (wrong)
                      [0.8, 0.9, 0.6],   # unknown flute and piano cannot win: top voice (right)
                      [0.7, 0.9, 0.1],   # no present instrument: out of top-1
                      [0.2, 0.6, 0.99]])  # unknown voice cannot win: top piano (right)
    present = probs > 0.5
    s = score_recordings(truth, probs, present, CLASSES, known)
    assert s["top1"] == pytest.approx(2 / 3)
    # flute: known rows 0 (pos 0.3), 2 (neg 0.7), 3 (neg 0.2) -> ranking 0.7 neg, 0.3 pos -> AP = 1/2
    # piano: known rows 0 (neg 0.9), 3 (pos 0.6) -> AP = 1/2; voice: rows 0 (neg 0.2), 1 (pos 0.6), 2 (neg 0.1) -> 1
    aps = {r["instrument"]: r["ap"] for r in s["per_class"]}
    assert aps == pytest.approx({"flute": 0.5, "piano": 0.5, "voice": 1.0})
    assert s["mean_ap"] == pytest.approx(2 / 3)
    # wrongly added, known-absent pairs only: (0, piano), (2, flute); (1, flute), (1, piano), (2, piano), (3, voice)
    # are tagged but unknown
    assert s["added_per_file"] == pytest.approx(2 / 4)
    assert s["recall"] == pytest.approx(2 / 3)  # flute in row 0 missed; voice row 1 and piano row 3 found
    piano = next(r for r in s["per_class"] if r["instrument"] == "piano")
    assert (piano["present_files"], piano["absent_files"], piano["precision"]) == (1, 1, pytest.approx(0.5))


def test_instruments_never_present_or_never_absent_have_no_ap():
    truth = np.array([[1, 0, 0], [1, 0, 0]], bool)
    probs = np.array([[0.2, 0.9, 0.0], [0.8, 0.1, 0.0]])
    s = score_recordings(truth, probs, probs > 0.5, CLASSES)
    assert [r["instrument"] for r in s["per_class"]] == ["flute"]
    assert np.isnan(s["per_class"][0]["ap"]) and np.isnan(s["mean_ap"])  # flute is never absent
    assert s["top1"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="must all be"):
        score_recordings(truth, probs[:1], probs[:1] > 0.5, CLASSES)


LABELS = """path,seconds,openmic_present,openmic_absent,notes
medley_solos_db/a.flac,3,flute,,
solo/b.wav,4,piano,"flute,voice",
solo/c.wav,4,piano,flute,
philharmonia_oramics/d.mp3,4,voice,flute,
other/e.wav,2,flute,"piano,voice",single note
song/f.ogg,9,"piano,voice",,
stem/g.mp3,9,,voice,accompaniment
"""


def test_labels_are_parsed_into_known_pairs_and_groups(tmp_path):
    (tmp_path / "labels.csv").write_text(LABELS)
    rec = read_recordings(tmp_path / "labels.csv", CLASSES)
    assert rec.files[0] == tmp_path / "medley_solos_db" / "a.flac"
    assert rec.groups == ["solos", "solos", "mixtures", "notes", "notes", "mixtures", "mixtures"]
    assert rec.sources == ["medley_solos_db", "solo", "solo", "philharmonia_oramics", "other", "song", "stem"]
    assert rec.known.astype(int).tolist() == [[1, 1, 1], [1, 1, 1], [1, 1, 0], [1, 0, 1], [1, 1, 1], [0, 1, 1],
                                              [0, 0, 1]]
    assert rec.present.astype(int).tolist()[6] == [0, 0, 0]
    probs = np.tile([0.9, 0.1, 0.2], (7, 1))
    s = score_groups(rec, probs, probs > 0.5, CLASSES)
    assert list(s) == ["solos", "notes", "mixtures", "all"]
    assert (s["solos"]["n_files"], s["notes"]["n_files"], s["mixtures"]["n_files"], s["all"]["n_files"]) == (2, 2, 3, 7)
    assert s["solos"]["top1"] == pytest.approx(0.5)  # flute right in a, wrong in b
    assert s["mixtures"]["added_per_file"] == pytest.approx(1 / 3)  # flute tagged in c, where it is absent
    files, truth = read_recording_labels(tmp_path / "labels.csv", CLASSES)
    assert files == rec.files and truth.tolist() == rec.present.tolist()


@pytest.mark.parametrize("text, message", [
    ("path,openmic_present\na.flac,tuba\n", r"bad.csv: line 2: unknown instrument \['tuba'\]"),
    ("path,openmic_present,openmic_absent\na.flac,flute,flute\n", r"bad.csv: line 2: present and absent at once"),
    ("path,openmic_present,openmic_absent\na.flac,,\n", r"bad.csv: line 2: no instrument labelled"),
    ("file,openmic_present\na.flac,flute\n", r"bad.csv: needs the columns path and openmic_present"),
])
def test_bad_labels_are_refused_with_the_file_and_line(tmp_path, text, message):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(InstrecError, match=message):
        read_recordings(tmp_path / "bad.csv", CLASSES)


def test_leave_one_source_out_scores_each_source_with_the_choice_made_on_the_others():
    from instrec.evaluation.recordings import Recordings, choice_score, leave_one_source_out

    present = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]], bool)
    rec = Recordings([Path(f"{s}/{i}.wav") for i, s in enumerate("aabb")], present, np.ones_like(present),
                     ["solos"] * 4, ["a", "a", "b", "b"])
    right = np.where(present, 0.9, 0.1)
    wrong = np.where(present, 0.1, 0.9)
    outputs = {"good on a": (np.r_[right[:2], wrong[2:]], np.r_[right[:2], wrong[2:]] > 0.5),
               "good on b": (np.r_[wrong[:2], right[2:]], np.r_[wrong[:2], right[2:]] > 0.5)}
    # on a alone: flute and piano each ranked right -> mAP 1 for "good on a"; 0.5 for the other
    on_a = rec.subset(np.array([1, 1, 0, 0], bool))
    assert choice_score(on_a, *(x[:2] for x in outputs["good on a"]), CLASSES) == 1.0
    probs, tags, rows = leave_one_source_out(rec, outputs, CLASSES)
    assert [(r["source"], r["chosen"]) for r in rows] == [("a", "good on b"), ("b", "good on a")]
    assert np.array_equal(probs, wrong) and np.array_equal(tags, wrong > 0.5)  # held out, each choice is wrong
    assert rows[0]["score[good on b]"] == 1.0 and rows[0]["score[good on a]"] == pytest.approx(0.5)
