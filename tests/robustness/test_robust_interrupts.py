"""Killed, interrupted and concurrent runs: no staging debris, no orphan workers, no second
writer of one output, no unfinished run used as if finished, no half-written file on a
full disk."""
from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from robust_helpers import SRC, assert_one_line_error, cli, python
from robust_helpers import tone as _tone

from instrec._io import lock_path
from instrec.synth import build_corpus
from instrec.tagging.formats import parse_csv


def _instrec(*argv: str, log: Path | None = None, new_session: bool = False) -> subprocess.Popen:
    """``instrec ARGV`` in a subprocess. With ``log``, stderr goes to that file (an orphaned
    worker holding a pipe open would block ``communicate`` forever). ``new_session``: its
    own process group, which a signal can reach as a whole, like a terminal's Ctrl-C."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    if log is not None:
        with open(log, "w") as fh:
            return subprocess.Popen([sys.executable, "-m", "instrec.cli", *argv], env=env,
                                    stdout=subprocess.DEVNULL, stderr=fh, text=True, start_new_session=new_session)
    return subprocess.Popen([sys.executable, "-m", "instrec.cli", *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=new_session)


def _kill_all(proc: subprocess.Popen, workers: list[int]) -> None:
    """Kill ``proc`` and whichever of its ``workers`` are still alive."""
    proc.kill()
    proc.wait()
    for pid in workers:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def _lock_holder(target: Path):
    """Another process holding the output lock of ``target`` (killed on exit); yields it."""
    holder = python(f"""
        from instrec._io import OutputLock
        import time
        with OutputLock({str(target)!r}):
            print("locked", flush=True)
            time.sleep(60)
    """)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.kill()
        holder.communicate()


def _wait_for(condition, timeout: float = 60.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _staging(parent: Path) -> list[Path]:
    return [p for p in parent.iterdir() if ".staging-" in p.name or ".old-" in p.name]


@pytest.fixture
def synth_run(tmp_path):
    """Start a long synth with two workers and wait until it renders: (process, worker pids,
    stderr log). Afterwards any process it left is killed, whatever the test found."""
    out, log = tmp_path / "corpus", tmp_path / "stderr.txt"
    proc = _instrec("synth", "--out", str(out), "--clips", "2000", "--jobs", "2", "--threads", "1", "-q", log=log)
    workers: list[int] = []
    try:
        _wait_for(lambda: any(p.glob("midi/*.mid") for p in _staging(tmp_path)) or proc.poll() is not None,
                  what="synth to start rendering")
        assert proc.poll() is None, log.read_text()
        _wait_for(lambda: len(_children(proc.pid)) >= 2, 20, "the second worker")
        workers = _children(proc.pid)
        yield proc, workers, log
    finally:
        _kill_all(proc, workers)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopped_synth_leaves_no_staging_and_no_workers(synth_run, tmp_path, sig):
    proc, workers, log = synth_run
    proc.send_signal(sig)
    proc.wait(timeout=60)
    err = log.read_text()
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    out = tmp_path / "corpus"
    assert not out.exists() and _staging(tmp_path) == [] and not lock_path(out).exists()
    _wait_for(lambda: not any(_alive(w) for w in workers), 10, "the workers to end")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_synth_workers_die_and_the_next_run_cleans_its_staging(synth_run, tmp_path):
    out = tmp_path / "corpus"
    proc, workers, _ = synth_run
    proc.kill()
    proc.wait()
    _wait_for(lambda: not any(_alive(w) for w in workers), 10, "the orphaned workers to die")
    assert len(_staging(tmp_path)) == 1  # nothing can clean up after SIGKILL...
    build_corpus(out, 2, 0, progress=False)  # ...the next run does: it holds the lock, so the staging is dead
    assert _staging(tmp_path) == [] and (out / "openmic-2018.npz").is_file()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_keep_the_output_locked(tmp_path):
    """A worker forked while the lock is held (and still alive after its parent was killed)
    must not block the next run: the lock dies with its owner, not with the last worker."""
    out = tmp_path / "corpus"
    owner = python(f"""
        import os, time
        from instrec._io import OutputLock
        lock = OutputLock({str(out)!r}).acquire()
        if os.fork() == 0:
            print(os.getpid(), flush=True)  # the child runs: its fork hooks have run
            time.sleep(60)
            os._exit(0)
        time.sleep(60)
    """)
    child = int(owner.stdout.readline())
    try:
        owner.kill()
        owner.wait()  # not communicate(): the child holds the pipes open
        assert _alive(child)
        from instrec._io import OutputLock
        with OutputLock(out):
            assert _alive(child)  # taken while the forked child still runs
    finally:
        os.kill(child, signal.SIGKILL)
        owner.communicate()


def test_second_synth_into_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "corpus"
    with _lock_holder(out) as holder:
        assert_one_line_error(*cli("synth", "--out", str(out), "--clips", "2", "-q"), str(out),
                              f"being written by another instrec process (pid {holder.pid})")
        assert not out.exists() and _staging(tmp_path) == []
    # A lock file left by a killed owner blocks nobody (the kernel dropped its lock).
    assert lock_path(out).exists()
    assert cli("synth", "--out", str(out), "--clips", "2", "-q")[0] == 0
    assert not lock_path(out).exists()



def test_two_predicts_writing_one_file(finished_run, tmp_path):
    clips = [str(_tone(tmp_path / f"{i}.wav")) for i in range(3)]
    out = tmp_path / "tags.csv"
    procs = [_instrec("predict", *clips, "--run", str(finished_run), "--out", str(out), "--threads", "1", "-q")
             for _ in range(2)]
    results = [(p.wait(timeout=120), p.communicate()[1]) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    code, err = next(r for r in results if r[0] == 2)
    line = assert_one_line_error(code, err, str(out))
    assert "being written by another instrec process" in line or "exists" in line
    with open(out, newline="") as fh:
        assert [r["file"] for r in csv.DictReader(ln for ln in fh if not ln.startswith("#"))] == clips
    assert not lock_path(out).exists()


def test_output_problems_are_reported_before_the_work(finished_run, tmp_path):
    clip = str(_tone(tmp_path / "a.wav"))
    (tmp_path / "folder").mkdir()
    assert_one_line_error(*cli("predict", clip, "--run", str(finished_run), "--out", str(tmp_path / "folder")),
                          "folder: is a folder")
    (tmp_path / "file").write_text("x")
    assert_one_line_error(*cli("predict", clip, "--run", str(finished_run), "--out", str(tmp_path / "file" / "t.csv")),
                          "t.csv")
    if os.geteuid() != 0:  # root writes into read-only folders
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        assert_one_line_error(*cli("predict", clip, "--run", str(finished_run), "--out", str(ro / "t.csv")),
                              "t.csv", "cannot write here")


@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB tmpfs filled to the last byte (root and a working mount only)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full disk is simulated with a small tmpfs, which needs root and mount")
    mnt = tmp_path / "full"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        try:
            with open(mnt / "filler", "wb") as fh:
                while True:
                    fh.write(b"\0" * 4096)
                    fh.flush()
        except OSError:
            pass  # full
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_full_disk_is_reported_before_the_work_and_leaves_nothing(finished_run, full_disk, tmp_path):
    before = sorted(p.name for p in full_disk.iterdir())
    clip = str(_tone(tmp_path / "a.wav"))
    assert_one_line_error(*cli("predict", clip, "--run", str(finished_run), "--out", str(full_disk / "t.csv")),
                          "t.csv", "No space left")
    run = Path(shutil.copytree(finished_run, tmp_path / "run"))
    assert_one_line_error(*cli("evaluate", str(run), "--out", str(full_disk / "scores")), "No space left")
    assert sorted(p.name for p in full_disk.iterdir() if p.name != "scores") == before
    assert not (full_disk / "scores").exists() or not any((full_disk / "scores").iterdir())


def test_training_killed_midway_is_refused_then_resumed(data128, tmp_path):
    run = tmp_path / "run"
    proc = _instrec("train", "--data", str(data128), "--out", str(run), "--model", "fc", "--epochs", "400",
                    "--threads", "1", "-q")
    _wait_for(lambda: (run / "last.json").is_file() or proc.poll() is not None, what="the first epoch")
    proc.kill()
    proc.communicate()
    assert_one_line_error(*cli("evaluate", str(run)), "config.json", "did not finish", "trained")
    assert not (run / "metrics.json").exists()
    config = json.loads((run / "config.json").read_text())
    assert "finished" not in config and "thresholds" not in config
    # Resuming finishes it (epochs may change on resume; 2 <= the epochs already run: it just finishes).
    assert cli("train", "--data", str(data128), "--out", str(run), "--model", "fc", "--epochs", "2", "--threads", "1",
               "--resume", "-q")[0] == 0
    assert json.loads((run / "config.json").read_text())["finished"]
    assert cli("evaluate", str(run))[0] == 0


@pytest.mark.parametrize("command", ["train", "evaluate", "featurize"])
def test_a_second_writer_of_any_output_is_refused(finished_run, data128, tmp_path, command):
    run = Path(shutil.copytree(finished_run, tmp_path / "run"))
    clip = _tone(tmp_path / "a.wav")
    argv, target = {
        "train": (["train", "--data", str(data128), "--out", str(tmp_path / "new"), "--epochs", "1", "-q"],
                  tmp_path / "new"),
        "evaluate": (["evaluate", str(run), "--out", str(tmp_path / "scores")], tmp_path / "scores" / "metrics.json"),
        "featurize": (["featurize", str(clip), "--frontend", "logmel", "--out", str(tmp_path / "ds"), "-q"],
                      tmp_path / "ds"),
    }[command]
    with _lock_holder(target) as holder:
        assert_one_line_error(*cli(*argv), f"being written by another instrec process (pid {holder.pid})")
    assert not target.exists() or (target.is_dir() and not any(target.iterdir()))
    assert cli(*argv)[0] == 0 and target.exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; workers are forked on Linux")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_on_predict_with_workers_stops_everything_without_a_traceback(finished_run, tmp_path, sig):
    """Ctrl-C in a terminal signals the whole process group: the parent and its forked workers."""
    clips = tmp_path / "clips"
    clips.mkdir()
    first = _tone(clips / "c0000.wav")
    for i in range(1, 1500):  # hard links: many files to tag, written in no time (names sort as numbers)
        os.link(first, clips / f"c{i:04d}.wav")
    out, log = tmp_path / "tags.csv", tmp_path / "stderr.txt"
    proc = _instrec("predict", str(clips), "--run", str(finished_run), "--out", str(out), "--jobs", "2", "-q",
                    log=log, new_session=True)
    workers: list[int] = []
    try:
        _wait_for(lambda: len(_children(proc.pid)) >= 2 or proc.poll() is not None, what="the two workers")
        assert proc.poll() is None, log.read_text()
        workers = _children(proc.pid)
        time.sleep(0.3)  # let them take tasks
        os.killpg(proc.pid, sig)
        proc.wait(timeout=60)
        err = log.read_text()
        assert "Traceback" not in err, err
        if sig == signal.SIGINT:  # what was finished is kept, marked partial (never a complete-looking file)
            last = err.strip().splitlines()[-1]
            assert proc.returncode == 130 and last.startswith("instrec: interrupted"), err
            assert not lock_path(out).exists()
            if out.exists():
                comments, rows = parse_csv(out.read_text())
                done = int(last.split("after ")[1].split(" of ")[0])
                assert len(comments) == 5 and comments[4].startswith(f"status: PARTIAL, interrupted after {done} of 1500")
                assert 0 < len(rows) == done < 1500 and [r["file"] for r in rows] == [
                    str(clips / f"c{i:04d}.wav") for i in range(done)]
            else:
                assert last == "instrec: interrupted" or "after 0 of" in last, err
        else:  # no cleanup after SIGTERM; the next writer takes over the dead process's lock
            assert proc.returncode == -signal.SIGTERM, err
            assert not out.exists()
        _wait_for(lambda: not any(_alive(w) for w in workers), 10, "the workers to end")
    finally:
        _kill_all(proc, workers)
