"""Atomic file writes and the project's user-facing error type.

Every file instrec writes goes through these helpers: the content is written to a
temporary file in the destination folder and renamed over the target, so a crash
or a bad input never leaves a half-written file behind.
"""
from __future__ import annotations

import io
import json
import math
import os
import re
import tempfile
import weakref
from pathlib import Path
from typing import Any, Mapping

import numpy as np


class InstrecError(Exception):
    """An error caused by user input; its message is one line naming the file and the problem."""


#: Control characters, shown escaped so that a message stays one line whatever a file's name holds.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str) -> str:
    """``text`` with newlines, tabs and other control characters written as escapes (``\\n``)."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, then rename).

    The file gets the mode a plain ``open`` would give it (0666 less the umask); ``mkstemp``
    alone would leave every output readable by its owner only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    """The process umask (reading it means setting it; set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, strict JSON (keys in insertion order) atomically.
    Non-finite floats (an undefined average precision, say) are written as ``null``."""
    return atomic_write_text(path, json_text(obj))


def json_text(obj: Any) -> str:
    """``obj`` as indented, strict JSON text ending in a newline: NaN and infinities become
    ``null`` (``json.dumps`` would write ``NaN``, which is not JSON)."""
    return json.dumps(_finite(obj), indent=2, default=_json_default, allow_nan=False) + "\n"


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.floating):
        return _finite(float(obj))
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _finite(obj.tolist())
    return obj


def atomic_save_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], compressed: bool = True) -> Path:
    """Save arrays to an ``.npz`` atomically. String arrays must be fixed-width unicode
    (dtype ``<U…``), never object arrays, so the file loads without pickle."""
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise TypeError(f"array {name!r} has dtype object; convert it to a unicode array first")
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# --- Output safety: refuse a colliding or unwritable output before the work starts ---------

def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a zombie counts as alive until reaped)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def lock_path(target: str | os.PathLike) -> Path:
    """``<parent>/.<name>.lock``: the lock file of output ``target`` (beside it, never inside)."""
    target = Path(target)
    return target.parent / f".{target.name}.lock"


class OutputLock:
    """An exclusive lock on an output being produced (a context manager).

    The lock is ``fcntl.flock`` on :func:`lock_path`, which holds the owner's pid for the
    message a second writer gets. The kernel drops the lock when its owner dies, so a lock
    file left by a killed process never blocks anyone; it is removed by the next owner.
    Taking the lock also proves the folder is writable (a read-only folder, a full disk or
    a file where a folder should be is reported here, before any work).
    """

    def __init__(self, target: str | os.PathLike) -> None:
        self.target = Path(target)
        self.path = lock_path(self.target)
        self.fd: int | None = None

    def acquire(self) -> "OutputLock":
        import fcntl  # POSIX only; imported here so that importing _io stays portable

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InstrecError(f"{self.target}: cannot create the output folder ({exc.strerror or exc})") from None
        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
            except OSError as exc:
                raise InstrecError(f"{self.target}: cannot write here ({exc.strerror or exc})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_pid(fd)
                os.close(fd)
                who = f"pid {holder}" if holder else "another process"
                raise InstrecError(f"{self.target}: being written by another instrec process ({who}); "
                                   "wait for it to finish") from None
            # The previous owner may have removed the file between our open and our lock:
            # then we hold a lock on an orphan inode and must take the new file instead.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                os.fsync(fd)
            except OSError as exc:  # a full disk shows here, before any work
                self._drop(fd)
                raise InstrecError(f"{self.target}: cannot write here ({exc.strerror or exc})") from None
            self.fd = fd
            _HELD.add(self)
            return self
        raise InstrecError(f"{self.path}: could not take the lock (it keeps being replaced)")

    def _drop(self, fd: int) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(fd)

    def release(self) -> None:
        if self.fd is not None:
            self._drop(self.fd)  # unlink while still holding: nobody can lock the old inode's name
            self.fd = None
        _HELD.discard(self)

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# The locks this process holds. A forked child (a pool worker) shares each lock's open file,
# and flock is released only when every copy is closed: a worker still dying after its
# parent was killed would keep the output locked for the next run. So a forked child closes
# its copies at once (closing a copy does not unlock the parent's) and owns none of them.
_HELD: "weakref.WeakSet[OutputLock]" = weakref.WeakSet()


def _forget_inherited_locks() -> None:
    for lock in list(_HELD):
        if lock.fd is not None:
            try:
                os.close(lock.fd)
            except OSError:
                pass
            lock.fd = None
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited_locks)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


def check_output_file(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an output *file* path that names a folder, or exists without ``overwrite``."""
    path = Path(path)
    if path.is_dir():
        raise InstrecError(f"{path}: is a folder; give a file name for this output")
    if path.exists() and not overwrite:
        raise InstrecError(f"{path}: exists; pass --overwrite to replace it")
    if path.parent.exists() and not path.parent.is_dir():
        raise InstrecError(f"{path}: {path.parent} is not a folder")
    return path


def check_output_dir(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an output *folder* that is a file, or is not empty without ``overwrite``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InstrecError(f"{path}: exists and is not a folder")
    if path.is_dir() and not overwrite and any(p.name != lock_path(path).name for p in path.iterdir()):
        raise InstrecError(f"{path}: output folder is not empty; pass --overwrite to replace it")
    return path
