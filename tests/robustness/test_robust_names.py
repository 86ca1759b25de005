"""Odd file names, outputs and signals: every name survives the round trip through the tables,
derived names (pictures, JAMS) never collide and never grow too long, --plot follows --out's
rules, Ctrl-C keeps what was finished (marked partial), a full or closed standard output is one
line; audio that cannot be read is named with the real reason."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from robust_helpers import SRC, assert_one_line_error, cli
from robust_helpers import tone as _tone

from instrec.tagging import predict as P
from instrec.tagging.formats import CSV_HEADER_LINES, output_names, parse_csv
from instrec.tagging.results import FileTags, TagResults

ODD = ["#take1.wav", "take #2.wav", "new\nline.wav", "tab\there.wav", "cr\rhere.wav", "comma, \"quoted\".wav"]
NOT_UTF8 = os.fsdecode(b"caf\xe9.wav")



@pytest.fixture
def odd_folder(tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    for name in [*ODD, NOT_UTF8]:
        _tone(folder / name)
    return folder


def _expected(folder) -> list[str]:
    return sorted(str(folder / n) for n in [*ODD, NOT_UTF8])


def test_every_name_survives_the_csv_round_trip(finished_run, odd_folder, tmp_path):
    out = tmp_path / "tags.csv"
    code, err = cli("predict", str(odd_folder), "--run", str(finished_run), "--out", str(out), "--jobs", "1", "-q")
    assert code == 0, err
    text = out.read_bytes().decode("utf-8", "surrogateescape")
    comments, rows = parse_csv(text)
    assert len(comments) == CSV_HEADER_LINES and comments[-1] == "status: complete, 7 file(s) tagged, 0 failed"
    assert [r["file"] for r in rows] == _expected(odd_folder)
    odd = next(r for r in rows if os.fsencode(r["file"]).endswith(b"caf\xe9.wav"))  # the raw bytes, losslessly
    assert "not valid UTF-8" in odd["notes"] and sum("UTF-8" in r["notes"] for r in rows) == 1
    # What the documentation tells pandas users: a fixed number of header lines, no comment="#".
    pd = pytest.importorskip("pandas")
    frame = pd.read_csv(out, skiprows=CSV_HEADER_LINES, keep_default_na=False, encoding_errors="surrogateescape",
                        dtype={"file": object})
    assert frame["file"].tolist() == _expected(odd_folder)


def test_every_name_survives_the_json_round_trip(finished_run, odd_folder, tmp_path):
    out = tmp_path / "tags.json"
    assert cli("predict", str(odd_folder), "--run", str(finished_run), "--out", str(out), "--format", "json",
               "-q")[0] == 0
    doc = json.loads(out.read_text())
    assert [f["file"] for f in doc["files"]] == _expected(odd_folder) and doc["status"].startswith("complete")


def test_a_name_with_a_newline_keeps_a_failure_on_one_line(finished_run, tmp_path):
    bad = tmp_path / "bad\nname.wav"
    bad.write_bytes(b"RIFF....WAVEnot audio")
    code, err = cli("predict", str(bad), str(_tone(tmp_path / "ok.wav")), "--run", str(finished_run), "-q")
    failed = [ln for ln in err.splitlines() if ln.startswith("instrec: failed:")]
    assert code == 1 and len(failed) == 1 and "bad\\nname.wav" in failed[0], err


def _tags(*paths):
    return TagResults(["a"], [FileTags(p, np.zeros(1), np.zeros(1, bool), 1, 1, "single window") for p in paths],
                        [])


def test_derived_names_are_short_distinct_and_stable():
    long = "x" * 250 + ".wav"
    names = output_names(_tags("a/song.wav", "b/song.wav", f"c/{long}", "d/other.mp3"), ".png")
    assert names[0] != names[1] and names[0].startswith("song-") and names[3] == "other.png"
    assert all(len(os.fsencode(n)) <= 255 for n in names) and names[2].startswith("x" * 100)
    # The same file gets the same name whatever comes with it, in whatever order.
    again = output_names(_tags("b/song.wav", "z/song.flac", "a/song.wav"), ".png")
    assert again[0] == names[1] and again[2] == names[0]


def test_a_250_byte_name_gets_its_picture_and_jams(finished_run, tmp_path):
    pytest.importorskip("jams")
    clip = _tone(tmp_path / ("y" * 246 + ".wav"))
    pics, out = tmp_path / "pics", tmp_path / "jams"
    code, err = cli("predict", str(clip), "--run", str(finished_run), "--plot", str(pics), "--format", "jams",
                    "--out", str(out), "-q")
    assert code == 0, err
    assert len(list(pics.glob("*.png"))) == 1 and len(list(out.glob("*.jams"))) == 1


def test_plot_never_overwrites_and_prints_the_folder_once(finished_run, tmp_path, capsys):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first, second = _tone(tmp_path / "a" / "song.wav"), _tone(tmp_path / "b" / "song.wav", seconds=3.0)
    pics = tmp_path / "pics"
    code, err = cli("predict", str(first), str(second), "--run", str(finished_run), "--plot", f"{pics}/", "-q")
    assert code == 0 and f"2 picture(s) -> {pics}/\n" in err and "//" not in err, err
    assert len(list(pics.glob("song-*.png"))) == 2
    before = {p.name: p.read_bytes() for p in pics.iterdir()}
    # A second run into the same folder: refused before the work, nothing replaced.
    assert_one_line_error(*cli("predict", str(second), "--run", str(finished_run), "--plot", str(pics), "-q"),
                          str(pics), "not empty", "--overwrite")
    assert {p.name: p.read_bytes() for p in pics.iterdir()} == before
    assert cli("predict", str(second), "--run", str(finished_run), "--plot", str(pics), "--overwrite", "-q")[0] == 0


def test_plot_folder_is_locked(finished_run, tmp_path):
    from robust_helpers import python

    pics = tmp_path / "pics"
    holder = python(f"""
        from instrec._io import OutputLock
        import time
        with OutputLock({str(pics)!r}):
            print("locked", flush=True)
            time.sleep(60)
    """)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert_one_line_error(*cli("predict", str(_tone(tmp_path / "a.wav")), "--run", str(finished_run), "--plot",
                                   str(pics), "-q"), str(pics), f"being written by another instrec process (pid {holder.pid})")
    finally:
        holder.kill()
        holder.wait()


def test_ctrl_c_without_workers_keeps_the_finished_files_marked_partial(finished_run, tmp_path, monkeypatch):
    folder = tmp_path / "clips"
    folder.mkdir()
    for i in range(5):
        _tone(folder / f"c{i}.wav")
    real = P.Tagger.tag_file

    def third_is_interrupted(self, path):
        if Path(path).name == "c2.wav":
            raise KeyboardInterrupt
        return real(self, path)

    monkeypatch.setattr(P.Tagger, "tag_file", third_is_interrupted)
    out = tmp_path / "tags.csv"
    code, err = cli("predict", str(folder), "--run", str(finished_run), "--out", str(out), "--jobs", "1", "-q")
    assert code == 130 and err.strip().splitlines()[-1].startswith("instrec: interrupted after 2 of 5 file(s)"), err
    comments, rows = parse_csv(out.read_text())
    assert comments[-1].startswith("status: PARTIAL, interrupted after 2 of 5") and \
        [Path(r["file"]).name for r in rows] == ["c0.wav", "c1.wav"]


def _run_instrec(shell_tail: str, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    cmd = " ".join(f"'{a}'" for a in [sys.executable, "-m", "instrec.cli", *argv])
    return subprocess.run(["sh", "-c", f"exec {cmd} {shell_tail}"], env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("tail, needle", [("> /dev/full", "No space left on device"), (">&-", "standard output")])
def test_a_full_or_closed_stdout_is_one_line(finished_run, tmp_path, tail, needle):
    if tail == "> /dev/full" and not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    clip = _tone(tmp_path / "a.wav")
    done = _run_instrec(tail, "predict", str(clip), "--run", str(finished_run), "-q")
    assert_one_line_error(done.returncode, done.stderr, "standard output", needle)


# --- audio -------------------------------------------------------------------------------

def test_a_truncated_aiff_is_refused(tmp_path):
    from instrec._io import InstrecError
    from instrec.features.audio import load_audio

    whole = _tone(tmp_path / "a.aiff", seconds=5.0, format="AIFF", subtype="PCM_16")
    cut = tmp_path / "cut.aiff"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert len(load_audio(whole, 16000)) == 80000
    with pytest.raises(InstrecError, match="cut.aiff: audio file is truncated"):
        load_audio(cut, 16000)


def _without_root_privileges(*argv: str) -> subprocess.CompletedProcess:
    """``instrec ARGV`` as a process that file permissions apply to (root without its DAC override)."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root reads every file; setpriv is needed to drop that privilege")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    return subprocess.run([*prefix, sys.executable, "-m", "instrec.cli", *argv], env=env, capture_output=True,
                          text=True, timeout=300)


def test_unreadable_files_and_folders_are_named_with_the_real_reason(finished_run, tmp_path):
    folder = tmp_path / "music"
    (folder / "locked").mkdir(parents=True)
    _tone(folder / "ok.wav")
    _tone(folder / "locked" / "hidden.wav")
    _tone(folder / "secret.wav").chmod(0o000)
    (folder / "locked").chmod(0o000)
    try:
        done = _without_root_privileges("predict", str(folder), "--run", str(finished_run), "--jobs", "1", "-q",
                                        "--out", str(tmp_path / "tags.csv"))
    finally:
        (folder / "locked").chmod(0o755)
    failed = sorted(ln for ln in done.stderr.splitlines() if ln.startswith("instrec: failed:"))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert failed == [f"instrec: failed: {folder / 'locked'}: folder cannot be searched (Permission denied); the "
                      "audio files in it were not tagged",
                      f"instrec: failed: {folder / 'secret.wav'}: cannot read (Permission denied)"], done.stderr
    rows = parse_csv((tmp_path / "tags.csv").read_text())[1]
    assert [r["file"] for r in rows] == [str(folder / "ok.wav")]


def test_csv_rows_with_a_carriage_return_are_quoted(finished_run, tmp_path):
    clip = _tone(tmp_path / "cr\rname.wav")
    out = tmp_path / "t.csv"
    assert cli("predict", str(clip), "--run", str(finished_run), "--out", str(out), "-q")[0] == 0
    with open(out, newline="") as fh:
        rows = list(csv.reader(fh))[CSV_HEADER_LINES + 1:]
    assert [r[0] for r in rows] == [str(clip)]


def test_a_catalogue_job_carries_every_name(finished_run, odd_folder, tmp_path):
    """Parquet text must be UTF-8: a name that is not gets its bad bytes as \\xNN (and a note);
    the manifest keeps it exactly, so a rerun finds every file done."""
    pytest.importorskip("pyarrow")
    from concurrent.futures import ThreadPoolExecutor

    from instrec.tagging.catalogue import read_catalogue, tag_catalogue

    out = tmp_path / "tags"
    for expect_tagged in (7, 0):
        with ThreadPoolExecutor(1) as pool:
            report = tag_catalogue(finished_run, [odd_folder], out, executor=pool, batch_files=3)
        assert (report.files_tagged, report.failed) == (expect_tagged, [])
    clips = read_catalogue(out)["clips"].to_pylist()
    shown = [str(odd_folder / n) for n in ODD] + [str(odd_folder / "caf\\xe9.wav")]
    assert sorted(c["file"] for c in clips) == sorted(shown)
    assert [c["notes"] for c in clips if c["file"].endswith("caf\\xe9.wav")][0][-1].startswith(
        "the file name is not valid UTF-8")


def test_a_relative_name_starting_with_a_hash_is_a_row(finished_run, tmp_path, monkeypatch):
    """Tagged from its own folder, ``#take1.wav`` starts its CSV line: a row, not a comment."""
    _tone(tmp_path / "#take1.wav")
    _tone(tmp_path / "take #2.wav")
    monkeypatch.chdir(tmp_path)
    assert cli("predict", "#take1.wav", "take #2.wav", "--run", str(finished_run), "--out", "t.csv", "-q")[0] == 0
    assert [r["file"] for r in parse_csv((tmp_path / "t.csv").read_text())[1]] == ["#take1.wav", "take #2.wav"]


def test_the_readable_answer_keeps_one_line_per_file(finished_run, tmp_path, capsys):
    from instrec.cli import main

    clip = _tone(tmp_path / "two\nlines.wav")
    assert main(["predict", str(clip), "--run", str(finished_run), "--print", "-q"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith(str(tmp_path / "two\\nlines.wav") + " (2.0 s): ")
