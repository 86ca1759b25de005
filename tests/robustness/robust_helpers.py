"""Shared by the robustness suite (imported by its test modules): helpers that run a command
and assert its outcome class (a result, or one line naming the file with exit code 2; never
a traceback). Its fixtures (a finished tiny run to tamper with) are in tests/conftest.py."""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import soundfile as sf

from instrec.cli import main

SRC = Path(__file__).resolve().parents[2] / "src"


def cli(*argv: str) -> tuple[int, str]:
    """Run ``instrec ARGV`` in this process; (exit code, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse
            code = exc.code
    return code, err.getvalue()


def assert_one_line_error(code: int, stderr: str, *needles: str) -> str:
    """The outcome class 'bad input': exit 2 and one line ``instrec: error: ...`` that holds
    every needle (a file name, a field); never a traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith(("warning", "  warnings.warn"))]
    errors = [ln for ln in lines if ln.startswith("instrec: error: ")]
    assert code == 2 and len(errors) == 1, (code, stderr)
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def python(code: str, **kw) -> subprocess.Popen:
    """Start ``python -c CODE`` with this source tree on the path (stdout/stderr piped)."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def tone(path, seconds: float = 2.0, sr: int = 16000, **kw) -> Path:
    """A 440-Hz sine of ``seconds`` at ``sr`` written to ``path`` (str, bytes or Path; ``kw``:
    ``soundfile.write`` options such as ``format``): the audio every robustness test tags."""
    t = np.arange(int(seconds * sr)) / sr
    sf.write(os.fsencode(path), (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr, **kw)
    return Path(os.fsdecode(path))
