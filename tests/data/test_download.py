"""Offline tests of resumable downloads and safe tar extraction (instrec.data.download).

A loopback HTTP server (127.0.0.1, any free port) serves the test files and honours
``Range: bytes=N-`` unless told otherwise; it records every request's Range header.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from instrec._io import InstrecError
from instrec.data.download import download_openmic
from instrec.data.openmic import load_openmic, write_openmic
from instrec.fetch import fetch_file, safe_extract_tar

PAYLOAD = bytes(range(256)) * 40 + b"tail"  # 10244 bytes


class _Handler(BaseHTTPRequestHandler):
    """GET of ``server.files``; 206/416 for ranges unless ``server.ignore_range``;
    ``server.truncate_at`` cuts full answers short (a dropped connection)."""

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        srv = self.server
        rng = self.headers.get("Range")
        srv.ranges.append(rng)
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        match = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if match and not srv.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            body = data[start:]
        else:
            self.send_response(200)
            body = data
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:srv.truncate_at] if srv.truncate_at is not None else body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.ranges, srv.ignore_range, srv.truncate_at = {"/f.bin": PAYLOAD}, [], False, None
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


MD5 = hashlib.md5(PAYLOAD).hexdigest()


def test_full_download(server, tmp_path):
    dest = fetch_file(server.url + "/f.bin", tmp_path / "sub" / "f.bin", md5=MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD and server.ranges == [None]
    assert not (tmp_path / "sub" / "f.bin.part").exists()
    fetch_file(server.url + "/f.bin", dest, md5=MD5, progress=False)  # already there: no request
    assert server.ranges == [None]


def test_resume_from_part(server, tmp_path):
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:3000])
    fetch_file(server.url + "/f.bin", dest, md5=MD5, progress=False)
    assert server.ranges == ["bytes=3000-"] and dest.read_bytes() == PAYLOAD


def test_interrupted_then_resumed(server, tmp_path):
    dest, part = tmp_path / "f.bin", tmp_path / "f.bin.part"
    server.truncate_at = 4000
    with pytest.raises(InstrecError, match=r"/f\.bin: download interrupted .*4000.*rerun to resume"):
        fetch_file(server.url + "/f.bin", dest, md5=MD5, progress=False)
    assert part.read_bytes() == PAYLOAD[:4000] and not dest.exists()
    server.truncate_at = None
    fetch_file(server.url + "/f.bin", dest, md5=MD5, progress=False)
    assert server.ranges == [None, "bytes=4000-"] and dest.read_bytes() == PAYLOAD


def test_wrong_md5_leaves_nothing(server, tmp_path):
    dest = tmp_path / "f.bin"
    with pytest.raises(InstrecError, match=rf"/f\.bin: md5 mismatch for .*f\.bin: expected 0{{32}}, got {MD5}"):
        fetch_file(server.url + "/f.bin", dest, md5="0" * 32, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_server_ignoring_range_restarts(server, tmp_path):
    server.ignore_range = True
    (tmp_path / "f.bin.part").write_bytes(b"\xff" * 5000)  # wrong bytes: must be discarded
    dest = fetch_file(server.url + "/f.bin", tmp_path / "f.bin", md5=MD5, progress=False)
    assert server.ranges == ["bytes=5000-"] and dest.read_bytes() == PAYLOAD


def test_416_complete_part_and_stale_part(server, tmp_path):
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD)  # complete: the server has nothing more
    assert fetch_file(server.url + "/f.bin", tmp_path / "f.bin", md5=MD5, progress=False).read_bytes() == PAYLOAD
    assert server.ranges == [f"bytes={len(PAYLOAD)}-"]
    (tmp_path / "g.bin.part").write_bytes(PAYLOAD + b"junk")  # longer than the file: start over
    assert fetch_file(server.url + "/f.bin", tmp_path / "g.bin", md5=MD5, progress=False).read_bytes() == PAYLOAD
    assert server.ranges[1:] == [f"bytes={len(PAYLOAD) + 4}-", None]
    (tmp_path / "h.bin.part").write_bytes(PAYLOAD + b"junk")  # same without md5: the size tells
    assert fetch_file(server.url + "/f.bin", tmp_path / "h.bin", progress=False).read_bytes() == PAYLOAD


def test_corrupt_part_prefix_restarts_once(server, tmp_path):
    (tmp_path / "f.bin.part").write_bytes(b"\x00" * 2000)  # resumable size, wrong bytes
    dest = fetch_file(server.url + "/f.bin", tmp_path / "f.bin", md5=MD5, progress=False)
    assert server.ranges == ["bytes=2000-", None] and dest.read_bytes() == PAYLOAD


def test_http_error(server, tmp_path):
    with pytest.raises(InstrecError, match=r"/missing: HTTP error 404"):
        fetch_file(server.url + "/missing", tmp_path / "m", progress=False)


def test_file_url_and_resume(tmp_path, capsys):
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    dest = fetch_file(src.as_uri(), tmp_path / "a.bin", md5=MD5, progress=True)
    assert dest.read_bytes() == PAYLOAD and "a.bin" in capsys.readouterr().err
    (tmp_path / "b.bin.part").write_bytes(PAYLOAD[:777])
    assert fetch_file(src.as_uri(), tmp_path / "b.bin", md5=MD5, progress=False).read_bytes() == PAYLOAD
    with pytest.raises(InstrecError, match=r"nope\.bin: cannot open"):
        fetch_file((tmp_path / "nope.bin").as_uri(), tmp_path / "c.bin", progress=False)


def _tar(path: Path, entries: list[tuple[str, bytes | str, str]]) -> Path:
    """Write a tar.gz of (name, content, kind) entries; kind is file/dir/sym/hard/chr/fifo
    and content is the link target for links."""
    kinds = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
             "hard": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}
    with tarfile.open(path, "w:gz") as tf:
        for name, content, kind in entries:
            info = tarfile.TarInfo(name)
            info.type, info.mode = kinds[kind], 0o755 if kind == "dir" else 0o644
            if kind in ("sym", "hard"):
                info.linkname = str(content)
            if kind == "file":
                info.size = len(content)
                tf.addfile(info, io.BytesIO(content))
            else:
                tf.addfile(info)
    return path


def test_safe_extract_ok(tmp_path):
    archive = _tar(tmp_path / "ok.tgz", [("d", "", "dir"), ("d/a.txt", b"hello", "file"),
                                         ("d/link", "a.txt", "sym"), ("d/hard", "d/a.txt", "hard")])
    out = safe_extract_tar(archive, tmp_path / "out")
    root = (tmp_path / "out").resolve()
    assert out == [root / "d", root / "d/a.txt", root / "d/link", root / "d/hard"]
    assert (root / "d/link").read_bytes() == b"hello" and (root / "d/hard").read_bytes() == b"hello"


@pytest.mark.parametrize("entries,message", [
    ([("good.txt", b"x", "file"), ("../evil", b"x", "file")], r"member '\.\./evil' points outside"),
    ([("good.txt", b"x", "file"), ("/tmp/abs_evil", b"x", "file")], r"member '/tmp/abs_evil' has an absolute path"),
    ([("good.txt", b"x", "file"), ("link", "../../outside", "sym")], r"member 'link' points outside"),
    ([("link", "/etc/passwd", "sym")], r"link 'link' points to the absolute path '/etc/passwd'"),
    ([("x/a", "..", "sym"), ("x/a/b", "../..", "sym")], r"member 'x/a/b' goes through the link 'x/a'"),
    ([("l", ".", "sym"), ("l/f", b"x", "file")], r"member 'l/f' goes through the link 'l'"),
    ([("h", "../x", "hard")], r"member 'h' points outside"),
    ([("dev", "", "chr")], r"member 'dev' is a device, fifo or other special file"),
    ([("pipe", "", "fifo")], r"member 'pipe' is a device, fifo or other special file"),
])
def test_safe_extract_refuses(tmp_path, entries, message):
    archive = _tar(tmp_path / "bad.tgz", entries)
    with pytest.raises(InstrecError, match=r"bad\.tgz: " + message):
        safe_extract_tar(archive, tmp_path / "out" / "inner")
    assert list((tmp_path / "out" / "inner").iterdir()) == []  # nothing half-extracted
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tgz", "out"]


def test_safe_extract_refuses_existing_symlink_out(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "door").symlink_to(tmp_path / "elsewhere")
    archive = _tar(tmp_path / "bad.tgz", [("door/f", b"x", "file")])
    with pytest.raises(InstrecError, match=r"member 'door/f' resolves outside the destination"):
        safe_extract_tar(archive, tmp_path / "out")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def _openmic_archive(tmp_path: Path) -> Path:
    keys = ["a_1", "b_2", "c_3", "d_4"]
    X = np.arange(4 * 3 * 2, dtype=np.uint8).reshape(4, 3, 2) * 10
    write_openmic(tmp_path / "build" / "openmic-2018", X, np.full((4, 2), 0.75), np.ones((4, 2), bool), keys,
                  ["piano", "voice"], partitions={"train": keys[:3], "test": keys[3:]})
    archive = tmp_path / "openmic-test.tgz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tmp_path / "build" / "openmic-2018", arcname="openmic-2018")
    return archive


def test_download_openmic_end_to_end(server, tmp_path):
    archive = _openmic_archive(tmp_path)
    server.files["/openmic.tgz"] = archive.read_bytes()
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    root = tmp_path / "root"
    data_dir = download_openmic(root, url=server.url + "/openmic.tgz", md5=md5, progress=False)
    assert data_dir == (root / "openmic-2018").resolve()
    data = load_openmic(data_dir)
    assert data.classes == ("piano", "voice") and data.X[3, 2, 1] == pytest.approx(230 / 255)
    assert (root / "openmic.tgz").is_file() and len(server.ranges) == 1
    assert download_openmic(root, url=server.url + "/openmic.tgz", md5=md5, progress=False) == data_dir
    assert len(server.ranges) == 1  # already extracted: no second download


def test_download_openmic_without_dataset(server, tmp_path):
    archive = _tar(tmp_path / "empty.tgz", [("readme.txt", b"hi", "file")])
    server.files["/empty.tgz"] = archive.read_bytes()
    with pytest.raises(InstrecError, match=r"empty\.tgz: archive holds no openmic-2018\.npz"):
        download_openmic(tmp_path / "root", url=server.url + "/empty.tgz", md5=None, progress=False)


@pytest.mark.parametrize("keep_manifest", [False, True])
def test_an_interrupted_extraction_is_done_again(server, tmp_path, keep_manifest):
    archive = _openmic_archive(tmp_path)
    server.files["/openmic.tgz"] = archive.read_bytes()
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    root = tmp_path / "root"
    data_dir = download_openmic(root, url=server.url + "/openmic.tgz", md5=md5, progress=False)
    manifest = root / ".openmic.tgz.extracted.json"
    assert json.loads(manifest.read_text())["members"]["openmic-2018/class-map.json"] > 0
    # As a killed extraction leaves it: a member cut short, the manifest not yet written
    # (or, a damaged member beside an old manifest: its size no longer matches).
    partition = data_dir / "partitions" / "split01_train.csv"
    whole = partition.read_bytes()
    partition.write_bytes(whole[:5])
    if not keep_manifest:
        manifest.unlink()
    assert load_openmic(data_dir).X.shape[0] == 4  # the npz alone still loads: not a proof of completeness
    assert download_openmic(root, url=server.url + "/openmic.tgz", md5=md5, progress=False) == data_dir
    assert partition.read_bytes() == whole and manifest.is_file()
    assert len(server.ranges) == 1  # extracted again from the kept archive, not downloaded again
