"""Tests of the OpenMIC-layout loader and writer (instrec.data.openmic)."""
from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from instrec._io import InstrecError
from instrec.data.openmic import OpenMICData, load_openmic, load_split, read_partition, validation_split, write_openmic

CLASSES = ["bass", "drums", "voice"]


def _arrays(n: int = 6, t: int = 4, f: int = 5):
    """A small dataset (n <= 6): X[i] == 51 * i everywhere, key i is f"k{i}"."""
    X = np.broadcast_to((np.arange(n) * 51).astype(np.uint8)[:, None, None], (n, t, f)).copy()
    Y_true = np.tile(np.array([[0.9, 0.2, 0.5]]), (n, 1))
    Y_mask = np.tile(np.array([[True, True, False]]), (n, 1))
    keys = [f"k{i}" for i in range(n)]
    return X, Y_true, Y_mask, keys


def _write(tmp_path: Path, n: int = 6, t: int = 4, f: int = 5) -> Path:
    X, Y_true, Y_mask, keys = _arrays(n, t, f)
    return write_openmic(tmp_path / "ds", X, Y_true, Y_mask, keys, CLASSES,
                         partitions={"train": keys[:4], "test": keys[4:]})


def _raw_dataset(tmp_path: Path, **arrays) -> Path:
    """Write openmic-2018.npz with np.savez (object arrays allowed) plus class map and partitions."""
    d = tmp_path / "raw"
    (d / "partitions").mkdir(parents=True)
    np.savez(d / "openmic-2018.npz", **arrays)
    n_classes = np.asarray(arrays.get("Y_true", np.zeros((0, 3)))).shape[-1]
    (d / "class-map.json").write_text(json.dumps({f"c{i}": i for i in range(n_classes)}))
    keys = [str(k) for k in arrays.get("sample_key", [])]
    (d / "partitions" / "split01_train.csv").write_text("".join(k + "\n" for k in keys))
    return d


def _good(n: int = 3) -> dict[str, np.ndarray]:
    return {"X": np.full((n, 2, 4), 255, dtype=np.uint8), "Y_true": np.full((n, 3), 0.5),
            "Y_mask": np.ones((n, 3), dtype=bool), "sample_key": np.array([f"s{i}" for i in range(n)], dtype=object)}


def test_round_trip_values_and_targets(tmp_path):
    d = _write(tmp_path)
    data = load_openmic(d)
    assert isinstance(data, OpenMICData) and len(data) == 6
    assert data.X.dtype == np.float32 and data.X.shape == (6, 4, 5)
    assert data.X[1, 0, 0] == pytest.approx(51 / 255) and data.X[5, 3, 4] == pytest.approx(1.0)
    assert data.classes == tuple(CLASSES)
    assert data.sample_key.tolist() == [f"k{i}" for i in range(6)]
    # 0.9 labelled -> 1; 0.2 labelled -> 0; 0.5 unlabelled -> 0 with mask False (unknown)
    assert data.targets[0].tolist() == [1.0, 0.0, 0.0] and data.Y_mask[0].tolist() == [True, True, False]
    assert data.Y_true[0, 0] == pytest.approx(0.9)
    with zipfile.ZipFile(d / "openmic-2018.npz") as zf:
        with zf.open("X.npy") as fh:
            assert np.lib.format.read_array(fh).dtype == np.uint8
        with zf.open("sample_key.npy") as fh:
            assert np.lib.format.read_array(fh).dtype.kind == "U"
    assert json.loads((d / "class-map.json").read_text()) == {"bass": 0, "drums": 1, "voice": 2}
    assert (d / "partitions" / "split01_test.csv").read_text() == "k4\nk5\n"


def test_load_split_order_and_subset(tmp_path):
    d = _write(tmp_path)
    (d / "partitions" / "split01_test.csv").write_text("k5\n\nk4\n")
    test = load_split(d, "test")
    assert test.sample_key.tolist() == ["k5", "k4"]
    assert test.X[0, 0, 0] == pytest.approx(1.0)
    assert len(load_split(d, "train")) == 4
    # Converting only the partition's clips gives what subsetting the whole release gives,
    # float32 and the same bits; an already loaded release is subset as it is.
    full = load_openmic(d)
    assert test.X.dtype == np.float32 and np.array_equal(test.X, full.subset([5, 4]).X)
    np.testing.assert_array_equal(load_split(d, "test", data=full).X, test.X)
    assert read_partition(d / "partitions" / "split01_train.csv") == ["k0", "k1", "k2", "k3"]


def test_write_positional_train_test(tmp_path):
    X, Y_true, Y_mask, keys = _arrays()
    d = write_openmic(tmp_path / "d", X, Y_true, Y_mask, np.array(keys), CLASSES, keys[1:], keys[:1])
    assert (d / "partitions" / "split01_test.csv").read_text() == "k0\n"
    assert load_split(d, "train").sample_key.tolist() == keys[1:]
    with pytest.raises(InstrecError, match=r"split01_train\.csv: keys given twice"):
        write_openmic(tmp_path / "e", X, Y_true, Y_mask, keys, CLASSES, keys, partitions={"train": keys})


def test_any_classes_frames_features(tmp_path):
    X = np.arange(2 * 7 * 3, dtype=np.int64).reshape(2, 7, 3)
    d = write_openmic(tmp_path / "d", X, np.ones((2, 1)), np.ones((2, 1), bool), ["a", "b"], ["only"],
                      partitions={"train": ["a", "b"]})
    data = load_split(d, "train")
    assert data.X.shape == (2, 7, 3) and data.classes == ("only",)
    assert data.X[1, 6, 2] == pytest.approx(41 / 255)


def test_object_sample_keys_load(tmp_path):
    arrays = _good()
    arrays["sample_key"] = np.array(["s0", np.str_("s1"), "s2"], dtype=object)
    data = load_openmic(_raw_dataset(tmp_path, **arrays))
    assert data.sample_key.tolist() == ["s0", "s1", "s2"] and data.sample_key.dtype.kind == "U"


def test_numpy1_pickled_keys_load(tmp_path):
    """The 2018 release was pickled by numpy 1.x: globals live in numpy.core.multiarray."""
    d = _raw_dataset(tmp_path, **_good())
    keys = np.array(["s0", "s1", "s2"], dtype=object)
    payload = pickle.dumps(keys, protocol=3).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray\n_reconstruct" in payload
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, {"descr": "|O", "fortran_order": False, "shape": (3,)})
    with zipfile.ZipFile(d / "openmic-2018.npz", "w") as zf:
        for name, arr in _good().items():
            if name != "sample_key":
                buf = io.BytesIO()
                np.save(buf, arr)
                zf.writestr(f"{name}.npy", buf.getvalue())
        zf.writestr("sample_key.npy", npy.getvalue() + payload)
    assert load_openmic(d).sample_key.tolist() == ["s0", "s1", "s2"]


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_malicious_pickle_refused_and_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    arrays = _good(2)
    arrays["sample_key"] = np.array([_Evil(), "x"], dtype=object)
    d = _raw_dataset(tmp_path, **{k: v for k, v in arrays.items() if k != "sample_key"},
                     sample_key=arrays["sample_key"])
    with pytest.raises(InstrecError, match=r"openmic-2018\.npz: sample_key\.npy pickle references forbidden global (posix|os|nt)\.system"):
        load_openmic(d)
    assert not (tmp_path / "pwned.txt").exists()


def test_object_x_refused(tmp_path):
    arrays = _good(1)
    arrays["X"] = np.zeros((1, 2, 4), dtype=object)
    with pytest.raises(InstrecError, match=r"openmic-2018\.npz: X must be integer or float, got dtype object"):
        load_openmic(_raw_dataset(tmp_path, **arrays))


def test_non_string_keys_refused(tmp_path):
    arrays = _good(2)
    arrays["sample_key"] = np.array([1, "x"], dtype=object)
    with pytest.raises(InstrecError, match="sample_key elements must be strings, found int"):
        load_openmic(_raw_dataset(tmp_path, **arrays))


@pytest.mark.parametrize("dtype,value,expected", [(np.int16, 102, 0.4), (np.float64, 25.5, 0.1), (np.uint16, 0, 0.0)])
def test_x_dtypes_on_255_scale(tmp_path, dtype, value, expected):
    arrays = _good(1)
    arrays["X"] = np.full((1, 2, 4), value, dtype=dtype)
    d = _raw_dataset(tmp_path, **arrays)
    assert load_openmic(d).X[0, 1, 3] == pytest.approx(expected)
    train = load_split(d, "train")
    assert train.X.dtype == np.float32 and train.X[0, 1, 3] == pytest.approx(expected)


def test_x_range_errors_and_warning(tmp_path):
    arrays = _good(1)
    arrays["X"] = np.full((1, 2, 4), 300, dtype=np.int32)
    with pytest.raises(InstrecError, match=r"openmic-2018\.npz: integer X values must lie in 0-255, found 300"):
        load_openmic(_raw_dataset(tmp_path / "a", **arrays))
    arrays["X"] = np.array([[[0.0, np.nan, 1, 2], [0, 0, 0, 0]]])
    with pytest.raises(InstrecError, match=r"openmic-2018\.npz: X contains NaN or Inf"):
        load_openmic(_raw_dataset(tmp_path / "b", **arrays))
    arrays["X"] = np.full((1, 2, 4), 510.0)
    with pytest.warns(UserWarning, match="outside the 0-255 scale"):
        assert load_openmic(_raw_dataset(tmp_path / "c", **arrays)).X.max() == pytest.approx(2.0)


@pytest.mark.parametrize("change,message", [
    ({"Y_true": np.full((2, 3), 0.5)}, r"arrays disagree on the number of clips: X 3, Y_true 2, Y_mask 3"),
    ({"Y_mask": np.ones((3, 2), bool)}, r"Y_true shape \(3, 3\) differs from Y_mask shape \(3, 2\)"),
    ({"Y_true": np.full((3, 3), 1.5)}, r"Y_true values must lie in \[0, 1\], found 1.5\.\.1.5"),
    ({"Y_true": np.full((3, 3), np.nan)}, r"Y_true contains NaN"),
    ({"sample_key": np.array(["a", "b", "a"])}, r"duplicate sample keys, e.g. a"),
])
def test_bad_arrays(tmp_path, change, message):
    arrays = {**_good(), **change}
    d = _raw_dataset(tmp_path, **arrays)
    with pytest.raises(InstrecError, match=r"openmic-2018\.npz: " + message):
        load_openmic(d)


def test_missing_files_and_arrays(tmp_path):
    with pytest.raises(InstrecError, match=r"nowhere: dataset folder not found"):
        load_openmic(tmp_path / "nowhere")
    arrays = _good()
    del arrays["Y_mask"]
    with pytest.raises(InstrecError, match=r"openmic-2018\.npz: missing array\(s\) Y_mask"):
        load_openmic(_raw_dataset(tmp_path / "a", **arrays))
    d = _raw_dataset(tmp_path / "b", **_good())
    with pytest.raises(InstrecError, match=r"split01_test\.csv: partition file not found"):
        load_split(d, "test")
    (d / "class-map.json").unlink()
    with pytest.raises(InstrecError, match=r"class-map\.json: class map not found"):
        load_openmic(d)
    (d / "openmic-2018.npz").write_bytes(b"not a zip")
    with pytest.raises(InstrecError, match=r"openmic-2018\.npz: not a valid \.npz file"):
        load_openmic(d)


@pytest.mark.parametrize("mapping,message", [
    ({"a": 0, "b": 1}, "class map has 2 classes but Y_true has 3 columns"),
    ({"a": 0, "b": 1, "c": 1}, r"class indices must be unique and cover 0\.\.2"),
    ({"a": 0, "b": 1, "c": "2"}, "class map must be an object"),
])
def test_bad_class_map(tmp_path, mapping, message):
    d = _raw_dataset(tmp_path, **_good())
    (d / "class-map.json").write_text(json.dumps(mapping))
    with pytest.raises(InstrecError, match=r"class-map\.json: " + message):
        load_openmic(d)


def test_class_names_sorted_by_index(tmp_path):
    d = _raw_dataset(tmp_path, **_good())
    (d / "class-map.json").write_text(json.dumps({"zeta": 0, "alpha": 2, "mid": 1}))
    assert load_openmic(d).classes == ("zeta", "mid", "alpha")


def test_partition_keys_missing(tmp_path):
    d = _write(tmp_path)
    (d / "partitions" / "split01_test.csv").write_text("k1\nghost1\nghost2\n")
    with pytest.raises(InstrecError, match=r"split01_test\.csv: 2 key\(s\) not in .*e\.g\. ghost1, ghost2"):
        load_split(d, "test")
    (d / "partitions" / "split01_test.csv").write_text("k1\nk1\n")
    with pytest.raises(InstrecError, match=r"split01_test\.csv: sample key 'k1' listed twice"):
        load_split(d, "test")


def test_validation_split():
    tr, va = validation_split(20, 0.15, seed=3)
    assert len(va) == 3 and len(tr) == 17
    assert np.array_equal(np.sort(np.concatenate([tr, va])), np.arange(20))
    assert list(va) == sorted(va) and list(tr) == sorted(tr)
    tr2, va2 = validation_split(20, 0.15, seed=3)
    assert np.array_equal(va, va2) and np.array_equal(tr, tr2)
    assert any(not np.array_equal(validation_split(20, 0.15, seed=s)[1], va) for s in range(4, 8))
    assert len(validation_split(2, 0.01, seed=0)[1]) == 1 and len(validation_split(2, 0.99, seed=0)[0]) == 1
    assert len(validation_split(1, 0.5, seed=0)[1]) == 0
    with pytest.raises(InstrecError, match=r"validation fraction must be in \(0, 1\), got 1.5"):
        validation_split(10, 1.5)


def test_write_validation(tmp_path):
    X, Y_true, Y_mask, keys = _arrays()
    with pytest.raises(InstrecError, match=r"X to write must hold integers 0-255, got dtype float"):
        write_openmic(tmp_path / "a", X + 0.5, Y_true, Y_mask, keys, CLASSES)
    with pytest.raises(InstrecError, match=r"integer X values must lie in 0-255, found -1"):
        write_openmic(tmp_path / "a", X.astype(int) - 1, Y_true, Y_mask, keys, CLASSES)
    with pytest.raises(InstrecError, match=r"split01_test\.csv: keys not in the dataset, e\.g\. nope"):
        write_openmic(tmp_path / "a", X, Y_true, Y_mask, keys, CLASSES, partitions={"test": ["nope"]})
    with pytest.raises(InstrecError, match=r"need 3 unique class names, got 2"):
        write_openmic(tmp_path / "a", X, Y_true, Y_mask, keys, CLASSES[:2])
    assert not (tmp_path / "a").exists()


def test_no_pickle_loading_text_in_sources():
    src = Path(__file__).resolve().parents[2] / "src" / "instrec" / "data"
    for name in ("openmic.py", "download.py"):
        text = (src / name).read_text()
        for banned in ("pickle.load(", "pickle.loads(", "allow_pickle=" + "True"):
            assert banned not in text, (name, banned)
