"""State files instrec reads back (a run's config and resume state, a dataset's side files, a
catalogue job's job.json and manifest.jsonl), damaged or crafted: one line naming the file and
the field, never a traceback, never a huge allocation; and one catalogue job per output folder."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from robust_helpers import assert_one_line_error, cli, tone, python

from instrec._io import InstrecError
from instrec._jsonread import MAX_BYTES, parse_json, read_json
from instrec.data.layout import read_frontend
from instrec.data.openmic import read_class_map
from instrec.run import CONFIG_FILE, RESUME_STATE
from instrec.training.config import TrainConfig
from instrec.training.loop import train

DEEP = "[" * 100_000 + "]" * 100_000


def _set(path, key, value) -> None:
    doc = json.loads(path.read_text())
    if value is KeyError:
        doc.pop(key)
    else:
        doc[key] = value
    path.write_text(json.dumps(doc))


@pytest.fixture
def clip(tmp_path):
    return tone(tmp_path / "a.wav", 2.0)


@pytest.mark.parametrize("key, value, needles", [
    ("tag_prior", "noisy-or", ("'tag_prior'", "must be null or an object")),
    ("n_frames", KeyError, ("'n_frames'",)),
    ("n_frames", 10**9, ("'n_frames'", "at most 10000")),
    ("n_frames", "10", ("'n_frames'",)),
    ("epochs_run", 10**9, ("'epochs_run'",)),
])
def test_a_damaged_run_config_is_one_line(run_copy, clip, key, value, needles):
    _set(run_copy / CONFIG_FILE, key, value)
    assert_one_line_error(*cli("predict", str(clip), "--run", str(run_copy), "-q"), "config.json", *needles)


def test_a_deeply_nested_run_config_is_one_line(run_copy, clip):
    text = (run_copy / CONFIG_FILE).read_text()
    (run_copy / CONFIG_FILE).write_text(text[:-2] + f', "extra": {DEEP}}}')
    assert_one_line_error(*cli("predict", str(clip), "--run", str(run_copy), "-q"), "config.json",
                          "nested deeper than")


def test_a_huge_state_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "job.json"
    with open(path, "wb") as fh:
        fh.truncate(MAX_BYTES + 1)  # sparse: no disk used
    with pytest.raises(InstrecError, match="job.json: .* bytes, more than"):
        read_json(path)


@pytest.mark.parametrize("text, needle", [
    ('{"a": NaN}', "NaN is not JSON"), (b'{"a": "\xff"}', "not UTF-8"), ('{"a": 1', "not valid JSON"),
    ('"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["', None),  # brackets inside a string are not nesting
])
def test_the_reader_names_the_problem(text, needle):
    if needle is None:
        assert parse_json(text, "f.json").startswith("[[[")
    else:
        with pytest.raises(InstrecError, match=f"^f.json: .*{needle}"):
            parse_json(text, "f.json")


def test_the_default_model_config_is_read_defensively(tmp_path, clip):
    import shutil

    from instrec.tagging.predict import default_model_dir

    model = shutil.copytree(default_model_dir(), tmp_path / "default")
    _set(model / CONFIG_FILE, "tag_prior", "noisy-or")
    assert_one_line_error(*cli("predict", str(clip), "--run", str(model), "-q"), "config.json", "'tag_prior'")


@pytest.mark.parametrize("value", [10**9, -3, "7", 2.5])
def test_a_resume_state_with_an_absurd_epoch_is_refused(data128, tmp_path, value):
    out = tmp_path / "run"
    cfg = dict(data=str(data128), out=str(out), model="fc-t", seed=1, threads=1, model_kwargs={"hidden": [16]})
    train(TrainConfig(epochs=1, **cfg), progress=False)
    _set(out / RESUME_STATE, "epoch", value)
    with pytest.raises(InstrecError, match=r"last.json: damaged \(field 'epoch' must be an integer"):
        train(TrainConfig(epochs=3, **cfg), resume=True, progress=False)


@pytest.mark.parametrize("name, text, needle", [
    ("class-map.json", DEEP, "nested deeper"),
    ("class-map.json", '{"a": 0, "b": 1.0}', "class map must be an object"),
    ("frontend.json", '{"name": 5}', "front-end 'name'"),
    ("frontend.json", DEEP, "nested deeper"),
])
def test_dataset_side_files_are_read_defensively(tmp_path, name, text, needle):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InstrecError, match=f"{name}: .*{needle}"):
        read_class_map(path) if name == "class-map.json" else read_frontend(tmp_path)


@pytest.mark.parametrize("name", ["", "  "])
def test_featurize_refuses_an_empty_instrument_name(tmp_path, clip, name):
    from instrec.data.featurize import featurize

    labels = tmp_path / "labels.csv"
    labels.write_text(f"sample_key,instrument,relevance\na,piano,1\na,{name},1\n")
    with pytest.raises(InstrecError, match="labels.csv: line 3: the instrument name is empty"):
        featurize([clip], tmp_path / "ds", frontend="logmel", labels=labels, progress=False, threads=1)
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("value", [1e30, -1e30, 3e6])
def test_float_features_far_outside_the_scale_are_refused(tmp_path, value):
    from conftest import make_tiny_dataset

    from instrec.data.openmic import load_openmic

    data = make_tiny_dataset(tmp_path / "data", n=24)
    with np.load(data / "openmic-2018.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    X = arrays["X"].astype(np.float32)
    X[3, 2, 1] = value
    np.savez(data / "openmic-2018.npz", **{**arrays, "X": X})
    with pytest.raises(InstrecError, match="openmic-2018.npz: float X values .* far outside the 0-255 scale"):
        load_openmic(data)
    X[3, 2, 1] = 300.0  # a little outside: still a warning only
    np.savez(data / "openmic-2018.npz", **{**arrays, "X": X})
    with pytest.warns(UserWarning, match="outside the 0-255 scale"):
        load_openmic(data)


# --- the catalogue's state files ----------------------------------------------------------

pytest.importorskip("pyarrow")


@pytest.fixture
def catalogue(finished_run, tmp_path, clip):
    """A finished catalogue job (two files, in-process threads) and its output folder."""
    from instrec.tagging.catalogue import tag_catalogue

    second = tmp_path / "b.wav"
    second.write_bytes(clip.read_bytes())
    out = tmp_path / "tags"
    with ThreadPoolExecutor(1) as pool:
        report = tag_catalogue(finished_run, [clip, second], out, executor=pool, batch_files=1)
    assert report.files_tagged == 2
    return out


def _again(finished_run, out, clip):
    from instrec.tagging.catalogue import tag_catalogue

    with ThreadPoolExecutor(1) as pool:
        return tag_catalogue(finished_run, [clip], out, executor=pool)


@pytest.mark.parametrize("line, needle", [
    (b"{}", "field 'part' is missing"), (b"null", "must be a JSON object"), (b"[1, 2]", "must be a JSON object"),
    (b'{"part": "p\xff"}', "not UTF-8"), (DEEP.encode(), "nested deeper"),
    (b'{"part": "../../etc/x", "files": [], "failed": [], "audio_seconds": 0}', "not a part name"),
    (b'{"part": null, "files": [3], "failed": [], "audio_seconds": 0}', r"field 'files\[0\]' must be text"),
])
def test_a_damaged_manifest_line_is_one_error(catalogue, finished_run, clip, line, needle):
    from instrec.tagging.catalogue import read_catalogue

    manifest = catalogue / "manifest.jsonl"
    lines = manifest.read_bytes().splitlines(keepends=True)
    manifest.write_bytes(lines[0] + line + b"\n")
    with pytest.raises(InstrecError, match=f"manifest.jsonl line 2: .*{needle}"):
        _again(finished_run, catalogue, clip)
    with pytest.raises(InstrecError, match="manifest.jsonl line 2"):
        read_catalogue(catalogue)


def test_a_torn_last_manifest_line_is_still_dropped(catalogue, finished_run, clip):
    manifest = catalogue / "manifest.jsonl"
    lines = manifest.read_bytes().splitlines(keepends=True)
    manifest.write_bytes(lines[0] + lines[1][:15])
    report = _again(finished_run, catalogue, clip)
    assert report.files_skipped == 1 and report.files_tagged == 0


@pytest.mark.parametrize("text, needle", [
    ("garbage", "not valid JSON"), ("[]", "must be a JSON object"), ('{"classes": "abc"}', "field 'run_dir' is missing"),
    (None, "field 'classes' must be a list"),
])
def test_a_garbage_job_file_is_one_error(catalogue, finished_run, clip, text, needle):
    from instrec.tagging.catalogue import read_catalogue

    job = catalogue / "job.json"
    if text is None:
        _set(job, "classes", "alpha")
    else:
        job.write_text(text)
    with pytest.raises(InstrecError, match=f"job.json: .*{needle}"):
        _again(finished_run, catalogue, clip)
    with pytest.raises(InstrecError, match=f"job.json: .*{needle}"):
        read_catalogue(catalogue)


def test_a_second_catalogue_job_on_one_folder_is_refused(catalogue, finished_run, clip):
    holder = python(f"""
        from instrec._io import OutputLock
        import time
        with OutputLock({str(catalogue)!r}):
            print("locked", flush=True)
            time.sleep(60)
    """)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(InstrecError, match=f"being written by another instrec process \\(pid {holder.pid}\\)"):
            _again(finished_run, catalogue, clip)
    finally:
        holder.kill()
        holder.wait()
    assert _again(finished_run, catalogue, clip).files_skipped == 1
