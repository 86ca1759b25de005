"""Resumable, md5-checked downloads and safe tar extraction: what every download of instrec uses.

Downloads go to ``<dest>.part`` and are renamed onto ``dest`` only once complete and
verified; rerunning after an interruption resumes with an HTTP ``Range`` request. An
extraction records, last, a manifest of its members' sizes beside them
(``.<archive>.extracted.json``): :func:`extraction_complete` is false for one that was
interrupted, and it is redone.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import posixpath
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, BinaryIO

from tqdm import tqdm

from instrec._io import InstrecError, atomic_write_json
from instrec._jsonread import Obj, read_json

TIMEOUT_S = 60.0
#: Environment variable naming the folder of converted pretrained weights.
WEIGHTS_ENV = "INSTREC_WEIGHTS_DIR"


def default_weights_dir() -> Path:
    """Where converted pretrained weights live: ``$INSTREC_WEIGHTS_DIR`` if set, else
    ``~/.cache/instrec/weights``."""
    env = os.environ.get(WEIGHTS_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "instrec" / "weights"


def file_digest(path: str | Path, algorithm: str = "md5", chunk_size: int = 1 << 20) -> str:
    """Hex digest (``hashlib`` algorithm name) of the file at ``path``, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_md5(path: str | Path) -> str:
    """Hex md5 of the file at ``path``."""
    return file_digest(path, "md5")


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of the file at ``path``."""
    return file_digest(path, "sha256")


def _open_source(url: str, offset: int) -> tuple[BinaryIO, int, int | None]:
    """Open ``url`` at byte ``offset`` if it can resume there.

    Returns (stream, start, total): ``start`` is where the stream begins (``offset`` or 0
    when the server restarts from the beginning); ``total`` the full size if known.
    """
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        path = urllib.request.url2pathname(parsed.path)
        try:
            fh = open(path, "rb")
        except OSError as exc:
            raise InstrecError(f"{url}: cannot open ({exc.strerror})") from None
        total = os.fstat(fh.fileno()).st_size
        start = offset if offset <= total else 0
        fh.seek(start)
        return fh, start, total
    if parsed.scheme not in ("http", "https"):
        raise InstrecError(f"{url}: unsupported URL scheme {parsed.scheme!r}")
    request = urllib.request.Request(url, headers={"User-Agent": "instrec"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing after offset: complete, or a stale longer .part
            size = (exc.headers.get("Content-Range") or "").rpartition("/")[2]
            exc.close()
            if size.isdigit() and int(size) != offset:
                return _open_source(url, 0)
            return _EmptyStream(), offset, None
        raise InstrecError(f"{url}: HTTP error {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InstrecError(f"{url}: cannot connect ({reason}); rerun to retry") from None
    length = response.headers.get("Content-Length")
    if response.status == 206 and offset:
        content_range = response.headers.get("Content-Range", "")
        if content_range.startswith(f"bytes {offset}-"):
            size = content_range.rpartition("/")[2]
            return response, offset, int(size) if size.isdigit() else None
        response.close()
        return _open_source(url, 0)  # unexpected range: start over
    return response, 0, int(length) if length and length.isdigit() else None


class _EmptyStream:
    """A stream with nothing to read (a 416 answer)."""

    def read(self, n: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        pass


def _progress_bar(total: int | None, initial: int, name: str, enabled: bool):
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=name, file=sys.stderr, disable=not enabled, leave=True)


def _transfer(url: str, part: Path, progress: bool, chunk_size: int) -> Any:
    """Fill ``part`` with the content of ``url`` (resuming it); return the md5 state."""
    offset = part.stat().st_size if part.exists() else 0
    source, start, total = _open_source(url, offset)
    digest = hashlib.md5()
    try:
        with open(part, "r+b" if part.exists() else "wb") as out:
            while out.tell() < start:  # resuming: hash the bytes already there
                digest.update(out.read(min(chunk_size, start - out.tell())))
            out.seek(start)
            out.truncate()
            written = start
            with _progress_bar(total, start, part.name.removesuffix(".part"), progress) as bar:
                while True:
                    try:
                        chunk = source.read(chunk_size)
                    except (OSError, http.client.HTTPException) as exc:
                        raise InstrecError(f"{url}: download interrupted after {written} bytes ({exc}); "
                                           "rerun to resume") from None
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
    finally:
        source.close()
    if total is not None and written < total:
        raise InstrecError(f"{url}: download interrupted at {written} of {total} bytes; rerun to resume")
    return digest


def fetch_file(url: str, dest: str | Path, md5: str | None = None, progress: bool = True,
               chunk_size: int = 1 << 20) -> Path:
    """Download ``url`` (http, https or file) to ``dest``, resuming ``<dest>.part``.

    If ``md5`` is given the result is verified; on mismatch nothing is left at ``dest``
    and the ``.part`` is deleted. An existing ``dest`` with the right md5 is returned as is.
    """
    dest = Path(dest)
    if dest.is_file() and (md5 is None or file_md5(dest) == md5.lower()):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    resumed = part.is_file() and part.stat().st_size > 0
    got = _transfer(url, part, progress, chunk_size).hexdigest()
    if md5 is not None and got != md5.lower() and resumed:  # the old .part may be stale: start over
        part.unlink()
        got = _transfer(url, part, progress, chunk_size).hexdigest()
    if md5 is not None and got != md5.lower():
        part.unlink(missing_ok=True)
        dest.unlink(missing_ok=True)
        raise InstrecError(f"{url}: md5 mismatch for {dest}: expected {md5.lower()}, got {got}")
    os.replace(part, dest)
    return dest


def _walk(parts: list[str], relpath: str, links: set[str], archive: Path, member: str) -> list[str]:
    """Apply ``relpath`` to the folder ``parts`` (relative to dest) without leaving dest
    or passing through a link defined in the archive."""
    out = list(parts)
    for piece in relpath.split("/"):
        if piece in ("", "."):
            continue
        if out and "/".join(out) in links:
            raise InstrecError(f"{archive}: member {member!r} goes through the link {'/'.join(out)!r}")
        if piece != "..":
            out.append(piece)
        elif not out:
            raise InstrecError(f"{archive}: member {member!r} points outside the destination")
        else:
            out.pop()
    return out


def _inside(path: Path, dest: Path) -> bool:
    """Whether ``path`` (symlinks already on disk followed) lies in ``dest``."""
    resolved = path.resolve()
    return resolved == dest or dest in resolved.parents


def _check_member(info: tarfile.TarInfo, dest: Path, links: set[str], archive: Path) -> None:
    """Refuse a member that could write or point outside ``dest``."""
    name = info.name
    if name.startswith(("/", "\\")) or os.path.isabs(name):
        raise InstrecError(f"{archive}: member {name!r} has an absolute path")
    if info.isdev() or info.isfifo() or not (info.isfile() or info.isdir() or info.issym() or info.islnk()):
        raise InstrecError(f"{archive}: member {name!r} is a device, fifo or other special file")
    where = _walk([], name, links, archive, name)
    if not where:
        if info.isdir():
            return
        raise InstrecError(f"{archive}: member {name!r} has an empty path")
    if "/".join(where) in links:
        raise InstrecError(f"{archive}: member {name!r} would overwrite a link of the archive")
    if not _inside(dest.joinpath(*where), dest):
        raise InstrecError(f"{archive}: member {name!r} resolves outside the destination")
    if info.issym() or info.islnk():
        if info.linkname.startswith("/") or os.path.isabs(info.linkname):
            raise InstrecError(f"{archive}: link {name!r} points to the absolute path {info.linkname!r}")
        base = where[:-1] if info.issym() else []
        target = _walk(base, info.linkname, links, archive, name)
        if not _inside(dest.joinpath(*target), dest):
            raise InstrecError(f"{archive}: link {name!r} points outside the destination")
        links.add("/".join(where))


def safe_extract_tar(archive: str | Path, dest: str | Path) -> list[Path]:
    """Extract the tar (optionally gzip/bz2/xz) ``archive`` into ``dest``.

    Every member is checked before anything is written: absolute paths, paths or links
    leading outside ``dest``, paths through links and device files are refused.
    Returns the extracted paths.
    """
    archive, dest = Path(archive), Path(dest)
    if not hasattr(tarfile, "data_filter"):
        raise InstrecError(f"{archive}: this Python lacks safe tar extraction filters; "
                           "use Python >= 3.10.12 / 3.11.4 / 3.12")
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    try:
        with tarfile.open(archive, "r:*") as tf:
            members = tf.getmembers()
            links: set[str] = set()
            for info in members:
                _check_member(info, dest, links, archive)
            tf.extractall(dest, members=members, filter="data")
    except tarfile.FilterError as exc:
        raise InstrecError(f"{archive}: refused member ({exc})") from None
    except (tarfile.TarError, EOFError) as exc:
        raise InstrecError(f"{archive}: not a readable tar archive ({exc})") from None
    sizes = {posixpath.normpath(m.name): m.size for m in members if m.isfile()}
    # Written last: without it (a killed extraction) the members cannot be trusted.
    atomic_write_json(manifest_path(archive, dest), {"archive": archive.name, "members": sizes})
    return [dest.joinpath(*posixpath.normpath(m.name).split("/")) for m in members
            if posixpath.normpath(m.name) != "."]


def manifest_path(archive: str | Path, dest: str | Path) -> Path:
    """``dest/.<archive name>.extracted.json``: the record of a completed extraction."""
    return Path(dest) / f".{Path(archive).name}.extracted.json"


def extraction_complete(archive: str | Path, dest: str | Path) -> bool:
    """Whether ``archive`` was extracted into ``dest`` to the end and its regular files still
    have the sizes they were extracted with."""
    try:
        members = read_json(manifest_path(archive, dest), Obj({"members": dict}, ("members",)))["members"]
        return all(Path(dest).joinpath(*name.split("/")).stat().st_size == size for name, size in members.items())
    except (InstrecError, OSError, ValueError, TypeError):
        return False
