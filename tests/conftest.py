"""Shared fixtures: a tiny, learnable OpenMIC-layout dataset written with plain numpy.

Class c is present in a clip when features [4c, 4c+4) are raised in a few consecutive
frames, so a model that attends to the right frames separates the classes easily.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from instrec._io import InstrecError
from instrec.features import musicnn as M
from instrec.features import musicnn_weights as W

torch.set_num_threads(1)

# A suite started from a background job (``make test &``, nohup) inherits SIGINT ignored, and so
# would every instrec process a test starts (exec keeps an ignored signal, as nohup intends): the
# Ctrl-C tests would then see Ctrl-C ignored. A handler here gives the children the default.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tests run with one torch thread; a test whose training picks its own thread count
    (``threads=0`` means the usable cores) must not change the next test's float rounding."""
    yield
    torch.set_num_threads(1)


TINY_CLASSES = ["alpha", "beta", "gamma", "delta"]


def make_tiny_dataset(root: Path, n: int = 240, n_frames: int = 10, n_features: int = 16, seed: int = 0,
                      label_fraction: float = 0.6) -> Path:
    rng = np.random.default_rng(seed)
    n_classes = len(TINY_CLASSES)
    X = rng.uniform(40, 90, size=(n, n_frames, n_features))
    present = rng.random((n, n_classes)) < 0.4
    for i, c in zip(*np.nonzero(present)):
        length = rng.integers(2, 6)
        start = rng.integers(0, n_frames - length + 1)
        X[i, start:start + length, 4 * c:4 * c + 4] += 120
    y_true = np.where(present, rng.choice([1.0, 1.0, 0.8], size=present.shape), rng.choice([0.0, 0.0, 0.2], size=present.shape))
    y_mask = rng.random((n, n_classes)) < label_fraction
    y_true = np.where(y_mask, y_true, 0.0)
    keys = np.array([f"clip{i:04d}" for i in range(n)])
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "openmic-2018.npz", X=np.clip(X, 0, 255).astype(np.uint8), Y_true=y_true.astype(np.float32),
             Y_mask=y_mask, sample_key=keys)
    (root / "class-map.json").write_text(json.dumps({c: i for i, c in enumerate(TINY_CLASSES)}))
    (root / "partitions").mkdir(exist_ok=True)
    n_test = n // 4
    (root / "partitions" / "split01_test.csv").write_text("".join(k + "\n" for k in keys[:n_test]))
    (root / "partitions" / "split01_train.csv").write_text("".join(k + "\n" for k in keys[n_test:]))
    (root / "frontend.json").write_text(json.dumps({"name": "logmel"}))
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "data")


# The robustness suite (tests/robustness): a finished run that its tests copy and damage.
@pytest.fixture(scope="session")
def data128(tmp_path_factory) -> Path:
    """A tiny dataset with 128 features per frame, labelled as logmel features."""
    return make_tiny_dataset(tmp_path_factory.mktemp("robust-data") / "data", n=80, n_features=128)


@pytest.fixture(scope="session")
def finished_run(data128, tmp_path_factory) -> Path:
    """A finished 2-epoch ``fc-t`` run on :func:`data128` (it can tag logmel audio)."""
    from instrec.training.config import TrainConfig
    from instrec.training.loop import train

    out = tmp_path_factory.mktemp("robust") / "run"
    train(TrainConfig(data=str(data128), out=str(out), model="fc-t", epochs=2, seed=1, threads=1,
                      model_kwargs={"hidden": [16]}), progress=False)
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    """A private copy of :func:`finished_run` that a test may damage."""
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def built_once(tmp_path_factory, name: str, build) -> Path:
    """The folder ``name`` filled by ``build(folder)`` once per test run, also when pytest-xdist
    runs the tests in several processes: the first process builds it where they all look (the
    parent of their temporary folders), under a file lock; the others wait and reuse it."""
    from filelock import FileLock  # a dependency of torch

    root = tmp_path_factory.getbasetemp()
    root = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root
    folder, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            build(folder)
            done.touch()
    return folder


# The pretrained musicnn weights, for the tests that need the real network.
@pytest.fixture(scope="session")
def musicnn_wheel(tmp_path_factory) -> Path:
    """The musicnn 0.1.0 wheel, fetched once per test run with pip (skip if the index is unreachable)."""
    local = os.environ.get("INSTREC_MUSICNN_WHEEL")
    if local:
        return Path(local)
    try:
        folder = built_once(tmp_path_factory, "musicnn-wheel", lambda d: W.fetch_wheel(d, progress=False))
    except InstrecError as exc:
        pytest.skip(f"pip cannot download {W.PACKAGE} from the package index: {exc}")
    return next(folder.glob("*.whl"))


@pytest.fixture(scope="session")
def musicnn_weights_dir(musicnn_wheel, tmp_path_factory) -> Path:
    return built_once(tmp_path_factory, "musicnn-weights",
                      lambda d: W.download_musicnn(d, wheel=musicnn_wheel, progress=False))


@pytest.fixture(scope="session")
def net(musicnn_weights_dir) -> M.Musicnn:
    return W.load_musicnn(weights_dir=musicnn_weights_dir)


def pytest_collection_modifyitems(config, items):
    """The slow tests first (stable otherwise): with pytest-xdist the long ones start at once and
    the short ones fill the other workers around them, instead of a long one running alone last."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
