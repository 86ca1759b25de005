"""Catalogue tagging on a real two-process Dask cluster: the same numbers as ``predict``,
every file exactly once after a killed worker or an interrupted client."""
from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import soundfile as sf
from conftest import TINY_CLASSES, make_tiny_dataset

from instrec._io import InstrecError
from instrec.tagging import catalogue as cat
from instrec.tagging.predict import predict
from instrec.training.config import TrainConfig
from instrec.training.loop import train

distributed = pytest.importorskip("distributed")
pytest.importorskip("pyarrow")

SR = 22050
SECONDS = [10.0, 25.0, 3.0, 12.0, 10.0, 31.0, 5.0, 10.0, 20.0, 10.0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A bilstm-att run (frame outputs and attention) on 128-feature tiny data, logmel front end."""
    root = tmp_path_factory.mktemp("catalogue-run")
    data = make_tiny_dataset(root / "data", n_features=128, n=80)
    train(TrainConfig(data=str(data), out=str(root / "run"), epochs=1, seed=3), progress=False)
    return root / "run"


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    """A folder of tones (one in a subfolder) and two bad files."""
    folder = tmp_path_factory.mktemp("catalogue-audio")
    (folder / "sub").mkdir()
    for i, secs in enumerate(SECONDS):
        t = np.arange(int(secs * SR)) / SR
        where = folder / "sub" if i == 3 else folder
        sf.write(where / f"tone{i:02d}.wav", (0.3 * np.sin(2 * np.pi * (110 + 60 * i) * t)).astype(np.float32), SR)
    (folder / "broken.wav").write_bytes(b"RIFF....WAVEnot really")
    (folder / "empty.flac").write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def client():
    """Two worker processes with one thread each, started inside the test module."""
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def _good(audio) -> list[str]:
    return sorted(str(p) for p in audio.rglob("tone*.wav"))


def _manifest_files(out) -> list[str]:
    return [p for line in (out / cat.MANIFEST_FILE).read_text().splitlines() for p in json.loads(line)["files"]]


def test_catalogue_gives_the_numbers_of_predict(run_dir, audio, client, tmp_path):
    out = tmp_path / "tags"
    rep = cat.tag_catalogue(run_dir, [audio], out, per_second=True, executor=client.get_executor(pure=False),
                            batch_files=3)
    assert (rep.files_total, rep.files_skipped, rep.files_tagged) == (12, 0, 10) and rep.exit_code == 1
    assert rep.audio_seconds == pytest.approx(sum(SECONDS), abs=0.01)
    tables = cat.read_catalogue(out)
    clips = tables["clips"].to_pydict()
    local = predict(run_dir, [audio], per_second=True)
    assert sorted(clips["file"]) == _good(audio) == sorted(f.path for f in local.files)
    row = {f: i for i, f in enumerate(clips["file"])}
    for tags in local.files:
        i = row[tags.path]
        np.testing.assert_allclose([clips[c][i] for c in TINY_CLASSES], tags.probabilities, rtol=1e-6)
        assert [clips[f"{c}_present"][i] for c in TINY_CLASSES] == tags.present.tolist()
        assert (clips["n_frames"][i], clips["n_windows"][i]) == (tags.n_frames, tags.n_windows)
        assert clips["duration"][i] == pytest.approx(tags.duration)
    # the long table: one row per file, frame and instrument, values as predict's frame outputs
    sec = tables["seconds"].to_pydict()
    assert len(sec["file"]) == sum(t.n_frames for t in local.files) * len(TINY_CLASSES)
    by_path = {t.path: t for t in local.files}
    for k in range(0, len(sec["file"]), 37):
        tags = by_path[sec["file"][k]]
        t, c = sec["frame"][k], TINY_CLASSES.index(sec["instrument"][k])
        assert sec["probability"][k] == pytest.approx(tags.frame_probabilities[t, c], rel=1e-6)
        assert sec["attention"][k] == pytest.approx(tags.attention[t, c], rel=1e-6)
        assert sec["present"][k] == bool(tags.frame_present[t, c])
        assert (sec["start_s"][k], sec["end_s"][k]) == pytest.approx((0.96 * t, 0.96 * (t + 1)))
    job = json.loads((out / cat.JOB_FILE).read_text())  # the outputs state the threshold policy
    assert job["threshold"] == local.threshold_description
    assert list(job["thresholds"].values()) == pytest.approx(local.thresholds.tolist())
    assert job["frame_policy"] == local.frame_policy and local.frame_policy.startswith("per second: ")
    failures = tables["failures"].to_pydict()
    assert sorted(os.path.basename(f) for f in failures["file"]) == ["broken.wav", "empty.flac"]
    assert all(os.path.basename(f) in e for f, e in zip(failures["file"], failures["error"]))
    # a second run finds everything done and leaves the tables as they were
    again = cat.tag_catalogue(run_dir, [audio], out, per_second=True, executor=client.get_executor(pure=False),
                              batch_files=3)
    assert (again.files_skipped, again.files_tagged, len(again.failed), again.exit_code) == (12, 0, 2, 1)
    assert cat.read_catalogue(out)["clips"].equals(tables["clips"])


def test_a_rerun_with_another_model_setting_is_refused(run_dir, audio, client, tmp_path):
    out = tmp_path / "tags"
    cat.tag_catalogue(run_dir, [audio / "tone00.wav"], out, executor=client.get_executor(pure=False))
    with pytest.raises(InstrecError, match="holds the output of another job \\(per_second differ\\)"):
        cat.tag_catalogue(run_dir, [audio / "tone00.wav"], out, per_second=True,
                          executor=client.get_executor(pure=False))


def test_an_interrupted_client_resumes_and_tags_nothing_twice(run_dir, audio, client, tmp_path):
    out = tmp_path / "tags"
    seen = []

    def stop_after_two(entry):
        seen.append(entry)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cat.tag_catalogue(run_dir, [audio], out, executor=client.get_executor(pure=False), batch_files=2,
                          max_in_flight=2, on_batch=stop_after_two)
    first = _manifest_files(out)
    assert len(first) == 4 and len(set(first)) == 4
    # What a client killed at a bad moment leaves: a part no manifest line lists (a worker
    # finished it, the client never recorded it) and a torn last manifest line.
    clips = out / cat.CLIPS_DIR
    part = next(clips.glob("part-*.parquet"))
    (clips / "part-orphan.parquet").write_bytes(part.read_bytes())
    with open(out / cat.MANIFEST_FILE, "a") as fh:
        fh.write('{"part": "part-torn", "files": ["x')
    rep = cat.tag_catalogue(run_dir, [audio], out, executor=client.get_executor(pure=False), batch_files=2)
    good_before = len([f for f in first if os.path.basename(f).startswith("tone")])
    assert (rep.files_skipped, rep.files_tagged, len(rep.failed)) == (4, 10 - good_before, 2)
    assert not (clips / "part-orphan.parquet").exists()
    files = cat.read_catalogue(out)["clips"].column("file").to_pylist()
    assert sorted(files) == _good(audio)  # each good file exactly once
    assert sorted(_manifest_files(out)) == sorted(map(str, [*audio.rglob("tone*.wav"), audio / "broken.wav",
                                                            audio / "empty.flac"]))
    listed = [json.loads(line)["part"] for line in (out / cat.MANIFEST_FILE).read_text().splitlines()]
    assert sorted(p.stem for p in clips.iterdir()) == sorted(p for p in listed if p)  # no stray part left


def test_a_worker_killed_mid_job_loses_nothing(run_dir, audio, client, tmp_path):
    out = tmp_path / "tags"
    killed = []

    def kill_a_busy_worker(entry):
        if killed:
            return
        busy = [w for w, keys in client.processing().items() if keys]
        if busy:
            pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    rep = cat.tag_catalogue(run_dir, [audio], out, executor=client.get_executor(pure=False), batch_files=1,
                            max_in_flight=4, on_batch=kill_a_busy_worker)
    assert killed, "no worker was busy when the first batch finished"
    assert rep.files_tagged == 10 and len(rep.failed) == 2
    files = cat.read_catalogue(out)["clips"].column("file").to_pylist()
    assert sorted(files) == _good(audio)
    manifest = _manifest_files(out)
    assert len(manifest) == len(set(manifest)) == 12
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it


def test_predict_engine_dask_on_the_command_line(run_dir, audio, tmp_path, capsys):
    from instrec.cli import main

    out = tmp_path / "tags"
    argv = ["predict", str(audio), "--run", str(run_dir), "--engine", "dask", "--workers", "2", "--batch", "4",
            "--threshold", "0.3", "--out", str(out), "-q"]
    assert main(argv) == 1  # two bad files
    clips = cat.read_catalogue(out)["clips"].to_pydict()
    assert all(flag == (p > 0.3) for c in TINY_CLASSES for p, flag in zip(clips[c], clips[f"{c}_present"]))
    err = capsys.readouterr().err
    assert "tagged 10 file(s), 0 already done" in err and "2 file(s) failed" in err and "broken.wav" in err
    assert sorted(cat.read_catalogue(out)["clips"].column("file").to_pylist()) == _good(audio)
    assert main(argv) == 1  # the same command again: nothing left to tag, the failures still reported
    assert "tagged 0 file(s), 12 already done" in capsys.readouterr().err
    assert main(["predict", str(audio), "--run", str(run_dir), "--scheduler", "tcp://h:8786", "-q"]) == 2
    assert "--scheduler: only with --engine dask" in capsys.readouterr().err
    assert main([*argv[:-3], "--out", str(tmp_path / "x"), "--format", "json"]) == 2
    assert "--format json: not with --engine dask" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    assert main([*argv[:-3], "--out", str(tmp_path / "other")]) == 2
    assert "is not the output folder of an earlier --engine dask job" in capsys.readouterr().err


def test_an_output_folder_a_worker_cannot_write_is_a_one_line_error(run_dir, audio, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    out = tmp_path / "tags"
    out.mkdir()
    (out / cat.CLIPS_DIR).write_text("a file where the parts folder should be")
    with ThreadPoolExecutor(1) as pool, pytest.raises(InstrecError, match="cannot write its part there .*the output "
                                                      "folder must be on a file system every worker shares"):
        cat.tag_catalogue(run_dir, [audio / "tone00.wav"], out, executor=pool)
    with pytest.raises(InstrecError, match="pass an executor or a scheduler address"):
        cat.tag_catalogue(run_dir, [audio / "tone00.wav"], out, executor=pool, scheduler="tcp://h:1")


@pytest.mark.slow  # two local clusters in a killed subprocess and a rerun, about 20 s
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_a_client_stopped_mid_job_by_a_signal_resumes_without_tagging_twice(run_dir, audio, tmp_path, sig):
    import shutil
    import subprocess
    import sys
    import time
    from pathlib import Path

    from instrec.cli import main

    folder = tmp_path / "many"
    folder.mkdir()
    tones = sorted(audio.glob("tone*.wav"))
    for i in range(40):
        shutil.copyfile(tones[i % len(tones)], folder / f"t{i:02d}.wav")
    (folder / "bad.wav").write_bytes(b"RIFF")
    out = tmp_path / "tags"
    argv = ["predict", str(folder), "--run", str(run_dir), "--engine", "dask", "--workers", "2", "--batch", "1",
            "--out", str(out), "-q"]
    src = str(Path(cat.__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "instrec.cli", *argv], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    manifest = out / cat.MANIFEST_FILE
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.is_file() and len(manifest.read_text().splitlines()) >= 3:
            break
        time.sleep(0.01)
    if sig == signal.SIGKILL:
        os.killpg(proc.pid, sig)  # the client and its local cluster, without any chance to clean up
    else:
        os.kill(proc.pid, sig)
    err = proc.communicate(timeout=60)[1].decode()
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "instrec: interrupted" in err
    before = [p for line in manifest.read_text().splitlines() for p in json.loads(line)["files"]]
    assert 3 <= len(before) < 41, "the job was not stopped midway"
    assert main(argv) == 1  # bad.wav
    files = cat.read_catalogue(out)["clips"].column("file").to_pylist()
    assert sorted(files) == sorted(str(p) for p in folder.glob("t*.wav"))  # each exactly once
    after = [p for line in manifest.read_text().splitlines() for p in json.loads(line)["files"]]
    assert len(after) == len(set(after)) == 41 and after[:len(before)] == before
    listed = {json.loads(line)["part"] for line in manifest.read_text().splitlines()} - {None}
    assert {p.stem for p in (out / cat.CLIPS_DIR).iterdir()} == listed


def test_a_batch_that_keeps_killing_workers_is_split_and_only_the_culprit_fails(run_dir, audio, tmp_path):
    from concurrent.futures import Future, ThreadPoolExecutor

    culprit = str(audio / "tone02.wav")
    submitted = []

    class Crashing(ThreadPoolExecutor):
        """Dask's verdict on a task whose workers died (KilledWorker) wherever the culprit is in the batch."""

        def submit(self, fn, paths):
            submitted.append(list(paths))
            if culprit in paths:
                fut = Future()
                fut.set_exception(distributed.KilledWorker("task", "tcp://w:1", 3))
                return fut
            return super().submit(fn, paths)

    out = tmp_path / "tags"
    with Crashing(1) as pool:
        rep = cat.tag_catalogue(run_dir, sorted(audio.glob("tone0[0-5].wav")), out, executor=pool,
                                batch_files=3)  # tone00-02 and tone04-05 (tone03 is in sub/)
    assert submitted[0] == [str(audio / f"tone0{i}.wav") for i in range(3)]
    assert [culprit] in submitted and [str(audio / "tone00.wav")] in submitted  # the batch again, file by file
    assert rep.files_tagged == 4
    assert rep.failed == [(culprit, f"{culprit}: the worker process died while tagging this file")]
    files = cat.read_catalogue(out)["clips"].column("file").to_pylist()
    assert sorted(files) == sorted(str(audio / f"tone0{i}.wav") for i in (0, 1, 4, 5))
