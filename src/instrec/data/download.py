"""OpenMIC-2018 from Zenodo (record 1432913): download, verify, extract, find the dataset folder."""
from __future__ import annotations

import posixpath
import urllib.parse
from pathlib import Path

from instrec._io import InstrecError
from instrec.data.layout import NPZ_FILE
from instrec.data.openmic import load_openmic
from instrec.fetch import extraction_complete, fetch_file, safe_extract_tar

OPENMIC_URL = "https://zenodo.org/records/1432913/files/openmic-2018-v1.0.0.tgz"
ZENODO_URL = OPENMIC_URL
OPENMIC_MD5 = "e4ccf187e2bb5ab2e115416e8aafe7f4"


def find_dataset_dir(root: str | Path, max_depth: int = 2) -> Path | None:
    """The shallowest folder at most ``max_depth`` below ``root`` holding openmic-2018.npz."""

    root = Path(root)
    for depth in range(max_depth + 1):
        hits = sorted(root.glob("/".join(["*"] * depth + [NPZ_FILE])))
        if hits:
            return hits[0].parent
    return None


def _loads(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds a dataset that loads."""
    try:
        load_openmic(data_dir)
    except InstrecError:
        return False
    return True


def _archive_name(url: str) -> str:
    return posixpath.basename(urllib.parse.urlparse(url).path) or "openmic-2018.tgz"


def download_openmic(root: str | Path, url: str = OPENMIC_URL, md5: str | None = OPENMIC_MD5,
                     progress: bool = True) -> Path:
    """Download and extract OpenMIC-2018 into ``root``; return the dataset folder.

    A dataset already extracted under ``root`` to the end (its extraction manifest matches,
    see :func:`instrec.fetch.extraction_complete`) that loads is returned without downloading;
    an interrupted extraction is done again. The archive is kept in ``root`` (a rerun then
    skips the download).
    """
    root = Path(root).resolve()
    name = _archive_name(url)
    found = find_dataset_dir(root)
    if found is not None and extraction_complete(root / name, root) and _loads(found):
        return found  # already downloaded and extracted to the end; otherwise extract again
    archive = fetch_file(url, root / name, md5=md5, progress=progress)
    extracted = safe_extract_tar(archive, root)
    candidates = sorted((p.parent for p in extracted if p.name == NPZ_FILE), key=lambda p: len(p.parts))
    if not candidates:
        raise InstrecError(f"{archive}: archive holds no {NPZ_FILE}")
    load_openmic(candidates[0])
    return candidates[0]
