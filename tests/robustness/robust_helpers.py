"""Shared by the robustness suite (imported by its test modules): a finished tiny run to
tamper with, and helpers that assert the outcome class of a command (a result, or one line
naming the file with exit code 2; never a traceback)."""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import make_tiny_dataset

from instrec.cli import main
from instrec.training.config import TrainConfig
from instrec.training.loop import train

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="session")
def data128(tmp_path_factory) -> Path:
    """A tiny dataset with 128 features per frame, labelled as logmel features."""
    return make_tiny_dataset(tmp_path_factory.mktemp("robust-data") / "data", n=80, n_features=128)


@pytest.fixture(scope="session")
def finished_run(data128, tmp_path_factory) -> Path:
    """A finished 2-epoch ``fc-t`` run on :func:`data128` (it can tag logmel audio)."""
    out = tmp_path_factory.mktemp("robust") / "run"
    train(TrainConfig(data=str(data128), out=str(out), model="fc-t", epochs=2, seed=1, threads=1,
                      model_kwargs={"hidden": [16]}), progress=False)
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    """A private copy of :func:`finished_run` that a test may damage."""
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


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
