"""``--jobs``: featurising and tagging across forked worker processes gives what one process gives."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from instrec.cli import main
from instrec.parallel import fork_available, inherited_map
from instrec.runinfo import MIN_FILES_PER_JOB, auto_jobs, plan_file_workers
from instrec.tagging.formats import parse_csv

needs_fork = pytest.mark.skipif(not fork_available(), reason="worker processes are forked on Linux only")


def _tone(path, seconds: float, freq: float, sr: int = 16000):
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)
    return path


@pytest.fixture
def folder(tmp_path):
    """Nine clips of different lengths and pitches, and an undecodable file in the middle."""
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(9):
        _tone(audio / f"clip{i}.wav", 3.0 + 2.5 * (i % 4), 180.0 + 70 * i)
    (audio / "clip4b.wav").write_bytes(b"RIFF....WAVE not audio")
    return audio


def test_auto_jobs_is_one_worker_per_core_with_enough_files_each(monkeypatch):
    monkeypatch.setattr("instrec.runinfo.usable_cores", lambda: 4)
    assert [auto_jobs(n) for n in (0, 1, 7, 8, 12, 15, 16, 1000)] == [1, 1, 1, 2, 3, 3, 4, 4]
    assert MIN_FILES_PER_JOB == 4 and auto_jobs(1000, fork_ok=False) == 1


def test_file_worker_plan_resolves_jobs_and_threads(monkeypatch):
    monkeypatch.setattr("instrec.runinfo.usable_cores", lambda: 4)
    assert plan_file_workers(20, 0, 0, True) == (4, 1)  # auto: processes, one thread each
    assert plan_file_workers(20, 0, 3, True) == (4, 3)  # threads given: kept
    assert plan_file_workers(20, 2, None, True) == (2, 1)  # workers never keep torch's default count
    assert plan_file_workers(5, 0, 0, True) == (1, 0)  # too few files: one process
    assert plan_file_workers(2, 8, None, True) == (2, 1)  # never more workers than files
    assert plan_file_workers(20, 1, None, True) == (1, None)
    with pytest.warns(UserWarning, match="--jobs 3: worker processes are forked, which is safe only on Linux"):
        assert plan_file_workers(20, 3, 0, False) == (1, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto asks for no worker where fork is unsafe: nothing to warn about
        assert plan_file_workers(20, 0, 0, False) == (1, 0)


@needs_fork
def test_workers_inherit_an_unpicklable_function_and_keep_input_order():
    lock = threading.Lock()  # not picklable: a pickled function could not carry it

    def work(x: int) -> tuple[int, int]:
        with lock:
            return x * x, os.getpid()

    out = list(inherited_map(work, range(25), jobs=2))
    assert [sq for sq, _ in out] == [x * x for x in range(25)]
    pids = {pid for _, pid in out}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert [pid for _, pid in inherited_map(work, range(3), jobs=1)] == [os.getpid()] * 3


def _tags_table(res):
    return [(f.path, f.n_frames, f.duration, f.notes, f.probabilities.tolist(), f.present.tolist(),
             None if f.frame_probabilities is None else f.frame_probabilities.tolist()) for f in res.files]


@needs_fork
def test_predict_with_workers_equals_one_process(finished_run, folder):
    from instrec.tagging.predict import predict

    one = predict(finished_run, [folder], threads=1, jobs=1)
    two = predict(finished_run, [folder], threads=1, jobs=3)
    assert _tags_table(two) == _tags_table(one) and len(one.files) == 9
    assert two.failures == one.failures and len(one.failures) == 1 and "clip4b.wav" in one.failures[0][0]
    assert [f.path for f in two.files] == sorted(str(p) for p in folder.glob("clip?.wav"))


@needs_fork
def test_featurize_with_workers_writes_the_same_bytes(folder, tmp_path):
    from instrec.data.featurize import featurize

    dup = tmp_path / "more"
    dup.mkdir()
    _tone(dup / "clip2.wav", 4.0, 300.0)  # sample key clip2 taken: refused, in input order
    reports = {}
    for jobs in (1, 2):
        reports[jobs] = featurize([folder, dup], tmp_path / f"ds{jobs}", frontend="logmel", progress=False,
                                  threads=1, jobs=jobs)
    assert reports[1].n_clips == reports[2].n_clips == 9
    assert reports[1].failures == reports[2].failures
    assert [os.path.basename(p) for p, _ in reports[2].failures] == ["clip4b.wav", "clip2.wav"]
    assert "already used by another file" in reports[2].failures[1][1]
    names = sorted(str(p.relative_to(tmp_path / "ds1")) for p in (tmp_path / "ds1").rglob("*") if p.is_file())
    assert "openmic-2018.npz" in names and "featurize-notes.csv" in names
    for name in names:
        assert (tmp_path / "ds1" / name).read_bytes() == (tmp_path / "ds2" / name).read_bytes(), name


def test_jobs_are_checked_when_parsed_and_not_mixed_with_dask(finished_run, folder, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(folder), "--run", str(finished_run), "--jobs", "-1"])
    assert exc.value.code == 2 and "jobs must be in [0, 256] (0 = auto)" in capsys.readouterr().err
    code = main(["predict", str(folder), "--run", str(finished_run), "--engine", "dask", "--jobs", "2",
                 "--out", str(folder.parent / "tags")])
    assert code == 2 and "--jobs 2 (use --workers): not with --engine dask" in capsys.readouterr().err


@needs_fork
def test_predict_cli_with_jobs_writes_what_one_process_writes(finished_run, folder, tmp_path):
    outs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"tags{jobs}.csv"
        assert main(["predict", str(folder), "--run", str(finished_run), "--out", str(out), "--jobs", jobs,
                     "--threads", "1", "-q"]) == 1  # one bad file
        outs.append(out.read_text())
    assert outs[0] == outs[1]
    assert [os.path.basename(r["file"]) for r in parse_csv(outs[1])[1]] == [f"clip{i}.wav" for i in range(9)]


@needs_fork
@pytest.mark.slow
def test_workers_with_two_threads_each_finish_and_match_one_process(tmp_path, folder):
    """Loading a model runs torch work big enough for an OpenMP pool; were that pool started
    with two threads before the fork, a worker with two threads would hang in it for ever."""
    from conftest import make_tiny_dataset

    from instrec.training.config import TrainConfig
    from instrec.training.loop import train

    data = make_tiny_dataset(tmp_path / "data", n_features=128, n=64)
    run = tmp_path / "run"
    train(TrainConfig(data=str(data), out=str(run), model="bilstm-att", epochs=1, seed=0, threads=1), progress=False)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[2] / "src"),
                                                                    os.environ.get("PYTHONPATH")]))}
    outs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"tags{jobs}.csv"
        proc = subprocess.run([sys.executable, "-m", "instrec.cli", "predict", str(folder), "--run", str(run),
                               "--out", str(out), "--threads", "2", "--jobs", jobs, "-q"],
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1 and "clip4b.wav" in proc.stderr, proc.stderr  # the one bad file
        outs.append(out.read_text())
    assert outs[0] == outs[1]
