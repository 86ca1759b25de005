"""Audio that lost data or never was audio: the file is named and reported as failed (the
batch goes on, exit 1), never tagged as a shorter clip; no audio at all is an error."""
from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import soundfile as sf
from robust_helpers import assert_one_line_error, cli

from instrec._io import InstrecError
from instrec.features.audio import load_audio

SR = 22050


def _write(path, fmt):
    t = np.arange(SR * 5) / SR
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR, format=fmt)
    return path


def _truncate(path, fraction):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


@pytest.mark.parametrize("fmt, fraction", [("OGG", 0.5), ("OGG", 0.9), ("OGG", 0.99), ("MP3", 0.9), ("MP3", 0.99),
                                           ("FLAC", 0.9), ("WAV", 0.9)])
def test_truncated_audio_is_an_error_naming_the_file(tmp_path, fmt, fraction):
    path = _write(tmp_path / f"clip.{fmt.lower()}", fmt)
    assert len(load_audio(path, 16000)) == 5 * 16000  # the whole file decodes to its 5 s
    _truncate(path, fraction)
    with pytest.raises(InstrecError, match=r"clip\.\w+: .*(truncated|corrupt)") as err:
        load_audio(path, 16000)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("content", [os.urandom(6000), b"ID3" + os.urandom(6000), b"\xff\xfb" + os.urandom(6000)])
def test_bytes_that_are_not_audio(tmp_path, content):
    path = tmp_path / "song.mp3"
    path.write_bytes(content)
    with pytest.raises(InstrecError, match=r"song\.mp3: (not decodable audio|.*truncated or corrupt)") as err:
        load_audio(path, 16000)
    assert "possibly a pipe" not in str(err.value)


def test_a_batch_reports_the_bad_files_and_tags_the_good(finished_run, tmp_path):
    good = _write(tmp_path / "good.wav", "WAV")
    bad = _truncate(_write(tmp_path / "cut.ogg", "OGG"), 0.9)
    (tmp_path / "noise.mp3").write_bytes(os.urandom(3000))
    out = tmp_path / "tags.csv"
    code, err = cli("predict", str(tmp_path), "--run", str(finished_run), "--out", str(out), "-q")
    assert code == 1 and "Traceback" not in err
    failed = [ln for ln in err.splitlines() if ln.startswith("instrec: failed: ")]
    assert len(failed) == 2 and any(str(bad) in ln and "truncated" in ln for ln in failed)
    assert any("noise.mp3: not decodable audio" in ln for ln in failed)
    with open(out, newline="") as fh:
        assert [r["file"] for r in csv.DictReader(ln for ln in fh if not ln.startswith("#"))] == [str(good)]


def test_inputs_without_audio_are_an_error(finished_run, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no audio here")
    assert_one_line_error(*cli("predict", str(tmp_path / "empty"), "--run", str(finished_run), "-q"),
                          "empty", "no audio files found")
