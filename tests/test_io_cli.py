"""Atomic writes, strict JSON, and a CLI whose help does not import the heavy stack."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from instrec._io import atomic_save_npz, atomic_write_json, atomic_write_text


def test_atomic_write_replaces_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert os.listdir(target.parent) == ["a.txt"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"ok": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert os.listdir(tmp_path) == ["a.json"]


def test_json_is_strict_with_null_for_non_finite(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"ap": float("nan"), "v": np.float32(0.25), "a": np.array([np.inf, 2.0])})
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"ap": None, "v": 0.25, "a": [None, 2.0]}


def test_npz_refuses_object_arrays(tmp_path):
    with pytest.raises(TypeError, match="dtype object"):
        atomic_save_npz(tmp_path / "x.npz", {"k": np.array(["a", 1], dtype=object)})
    atomic_save_npz(tmp_path / "x.npz", {"k": np.array(["a", "bb"])})
    with np.load(tmp_path / "x.npz", allow_pickle=False) as z:
        assert z["k"].tolist() == ["a", "bb"]


def test_help_does_not_import_torch():
    code = ("import sys, contextlib, io\nfrom instrec.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules, 'sklearn' in sys.modules, 'train' in out.getvalue())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False", "True"]


def test_cli_reports_user_errors_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "instrec.cli", "evaluate", str(tmp_path / "nope")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("instrec: error: ") and "nope: run directory not found" in lines[0]


@pytest.mark.parametrize("umask, mode", [(0o027, 0o640), (0o002, 0o664)])
def test_atomic_writes_respect_the_umask(tmp_path, umask, mode):
    import os

    from instrec._io import atomic_write_text

    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == mode
