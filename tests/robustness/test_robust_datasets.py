"""Datasets and their side files as a crash or a person may leave them: each is refused
with one line naming the file (exit 2) before anything is trained or written."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from conftest import make_tiny_dataset
from robust_helpers import assert_one_line_error, cli, tone

from instrec._io import InstrecError
from instrec.data.featurize import featurize
from instrec.data.openmic import load_openmic, load_split


def _train(data, out, *extra):
    return cli("train", "--data", str(data), "--out", str(out), "--model", "fc", "--epochs", "1", "--threads", "1",
               "-q", *extra)


@pytest.fixture
def small(tmp_path):
    return make_tiny_dataset(tmp_path / "data", n=24)


def _rewrite_npz(data, **arrays):
    with np.load(data / "openmic-2018.npz") as npz:
        current = {k: npz[k] for k in npz.files}
    np.savez(data / "openmic-2018.npz", **{**current, **arrays})


@pytest.mark.parametrize("content", [b"{oops", b"\xff\xfe", b"[]", b'{"name": 3}'])
def test_frontend_json_not_a_record(small, tmp_path, content):
    (small / "frontend.json").write_bytes(content)
    assert_one_line_error(*_train(small, tmp_path / "run"), "frontend.json")
    assert not (tmp_path / "run").exists()


def test_sample_keys_that_are_not_utf8(small, tmp_path):
    keys = np.array([f"clip{i:04d}".encode() for i in range(24)])
    keys[3] = b"\xff\xfebad"
    _rewrite_npz(small, sample_key=keys)
    assert_one_line_error(*_train(small, tmp_path / "run"), "openmic-2018.npz", "sample_key", "UTF-8")


def test_feature_dimension_zero(small, tmp_path):
    _rewrite_npz(small, X=np.zeros((24, 10, 0), np.uint8))
    assert_one_line_error(*_train(small, tmp_path / "run"), "openmic-2018.npz", "0 features")


def test_npy_header_claiming_a_huge_array_is_refused_without_allocating(small, tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (10**6, 10**6, 128)})
    with np.load(small / "openmic-2018.npz") as npz:
        others = {k: npz[k] for k in npz.files if k != "X"}
    with zipfile.ZipFile(small / "openmic-2018.npz", "w") as zf:
        zf.writestr("X.npy", header.getvalue() + b"\0" * 64)  # 128 TB claimed, 64 bytes held
        for name, arr in others.items():
            buf = io.BytesIO()
            np.save(buf, arr)
            zf.writestr(f"{name}.npy", buf.getvalue())
    assert_one_line_error(*_train(small, tmp_path / "run"), "openmic-2018.npz", "X.npy", "header claims")


def test_missing_dataset_folder_is_named_as_such(tmp_path):
    line = assert_one_line_error(*_train(tmp_path / "nowhere", tmp_path / "run"), "nowhere: dataset folder not found")
    assert "partition" not in line


def test_partition_file_not_utf8(small, tmp_path):
    (small / "partitions" / "split01_train.csv").write_bytes(b"clip0001\n\xff\xfe\n")
    assert_one_line_error(*_train(small, tmp_path / "run"), "split01_train.csv", "UTF-8")


@pytest.mark.parametrize("change, needles", [
    ({"Y_mask": np.zeros((24, 4), bool)}, ["split01_train.csv", "no labelled entry"]),
    ({"X": np.zeros((24, 10, 16), np.uint8)}, ["split01_train.csv", "every feature value is zero"]),
])
def test_degenerate_training_data_is_refused(small, tmp_path, change, needles):
    _rewrite_npz(small, **change)
    assert_one_line_error(*_train(small, tmp_path / "run"), *needles)


def test_one_clip_cannot_hold_out_a_validation_clip(small, tmp_path):
    (small / "partitions" / "split01_train.csv").write_text("clip0010\n")
    assert_one_line_error(*_train(small, tmp_path / "run"), "split01_train.csv", "at least 2")



def test_featurize_refuses_names_its_loader_could_not_read_back(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    for name in ("plain.wav", "other.wav", "two\nlines.wav", " leading.wav", "tab\there.wav"):
        tone(audio / name, 1.5)
    report = featurize([audio], tmp_path / "ds", frontend="logmel", test_fraction=0.5, progress=False, threads=1)
    assert sorted(p.rsplit("/", 1)[-1] for p, _ in report.failures) == [" leading.wav", "tab\there.wav",
                                                                         "two\nlines.wav"]
    assert all("cannot be a sample key" in m for _, m in report.failures)
    keys = set(load_openmic(tmp_path / "ds").sample_key.tolist())
    assert keys == {"plain", "other"}
    parts = set(load_split(tmp_path / "ds", "train").sample_key) | set(load_split(tmp_path / "ds", "test").sample_key)
    assert parts == keys


@pytest.mark.parametrize("fraction", [2.0, -0.1, 1.0, float("nan")])
def test_featurize_test_fraction_out_of_range(tmp_path, fraction):
    tone(tmp_path / "a.wav", 1.5)
    with pytest.raises(InstrecError, match="test fraction must be in"):
        featurize([tmp_path / "a.wav"], tmp_path / "ds", frontend="logmel", test_fraction=fraction, progress=False)
    assert not (tmp_path / "ds").exists() or not any((tmp_path / "ds").iterdir())


def test_featurize_keeps_a_training_clip(tmp_path):
    for name in "abc":
        tone(tmp_path / f"{name}.wav", 1.5)
    featurize([tmp_path], tmp_path / "ds", frontend="logmel", test_fraction=0.99, progress=False, threads=1)
    assert len(load_split(tmp_path / "ds", "train")) == 1 and len(load_split(tmp_path / "ds", "test")) == 2
    assert json.loads((tmp_path / "ds" / "frontend.json").read_text())["name"] == "logmel"


@pytest.mark.parametrize("change, message", [
    ({"lr": float("inf")}, "lr must be a finite number"), ({"seed": -1}, "seed must be >= 0"),
    ({"threads": -1}, "threads must be >= 0"), ({"mixup": float("nan")}, "mixup must be a finite number"),
    ({"epochs": 2.5}, "epochs must be an integer"), ({"focal_alpha": 3.0}, "focal alpha must be in"),
    ({"batch_size": True}, "batch size must be an integer"), ({"model_kwargs": [1]}, "model_kwargs must be a dict"),
])
def test_training_settings_are_checked_by_the_library(small, tmp_path, change, message):
    from instrec.training.config import TrainConfig
    from instrec.training.loop import train

    cfg = TrainConfig(**{"data": str(small), "out": str(tmp_path / "run"), "epochs": 1, **change})
    with pytest.raises(InstrecError, match=message):
        train(cfg, progress=False)
    assert not (tmp_path / "run").exists()


def test_side_files_that_are_not_utf8(small, tmp_path):
    from instrec.data.layout import read_strong_labels

    labels = tmp_path / "labels.csv"
    labels.write_bytes(b"sample_key,instrument,relevance\n\xff\xfe,piano,1\n")
    tone(tmp_path / "a.wav", 1.5)
    with pytest.raises(InstrecError, match=r"labels\.csv: not UTF-8"):
        featurize([tmp_path / "a.wav"], tmp_path / "ds", frontend="logmel", labels=labels, progress=False)
    (small / "strong-labels.csv").write_bytes(b"sample_key,instrument,onset,offset\n\xff,alpha,0,1\n")
    with pytest.raises(InstrecError, match=r"strong-labels\.csv: not UTF-8"):
        read_strong_labels(small, ["alpha"])
