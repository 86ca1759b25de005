"""Files instrec wrote and trusts (the converted musicnn weights, the shipped default model, a
finished run), changed afterwards: refused with one line naming the changed file and the
repair; ``instrec download musicnn`` repairs a cache that fails its check."""
from __future__ import annotations

import hashlib
import json
import shutil
import warnings

import numpy as np
import pytest
from robust_helpers import assert_one_line_error, cli, tone
from safetensors.numpy import load_file, save_file

from instrec._io import InstrecError
from instrec.features import musicnn_weights as W
from instrec.integrity import IntegrityWarning
from instrec.run import CONFIG_FILE, INTEGRITY_FILE, MODEL_FILE, load_model
from instrec.tagging import predict as P

MTT, MSD = W.weight_files("MTT_musicnn", "."), W.weight_files("MSD_musicnn", ".")


@pytest.fixture
def cache(musicnn_weights_dir, tmp_path):
    """A private copy of a freshly converted musicnn cache (with its integrity records)."""
    return shutil.copytree(musicnn_weights_dir, tmp_path / "weights")


@pytest.fixture
def clip(tmp_path):
    return tone(tmp_path / "a.wav", 3.0)


def _resave(path, change) -> None:
    """Rewrite a safetensors file with ``change(tensors)`` applied, keeping its metadata."""
    from safetensors import safe_open

    with safe_open(str(path), "np") as fh:
        meta = fh.metadata()
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path), metadata=meta)


def _nan(tensors):
    tensors["dense.weight"][0, 0] = np.nan


def _times3(tensors):
    tensors["out.weight"] *= 3


@pytest.mark.parametrize("damage", ["msd", "nan", "x3", "truncated", "tags"])
def test_changed_musicnn_weights_are_refused_with_the_repair(cache, clip, damage):
    st = cache / MTT[0].name
    if damage == "msd":  # the other model, same shapes
        shutil.copy(cache / MSD[0].name, st)
    elif damage == "nan":
        _resave(st, _nan)
    elif damage == "x3":
        _resave(st, _times3)
    elif damage == "truncated":
        st.write_bytes(st.read_bytes()[:100_000])
    else:  # the tag list reordered
        meta = cache / MTT[1].name
        doc = json.loads(meta.read_text())
        doc["tags"][0], doc["tags"][1] = doc["tags"][1], doc["tags"][0]
        meta.write_text(json.dumps(doc))
    changed = st.name if damage != "tags" else MTT[1].name
    assert_one_line_error(*cli("predict", str(clip), "--weights", str(cache), "-q"), changed,
                          "changed since instrec wrote it", "instrec download musicnn --force")


def test_other_model_weights_without_a_record_are_refused_by_their_metadata(cache):
    (cache / W.integrity_file("MTT_musicnn", ".").name).unlink()
    shutil.copy(cache / MSD[0].name, cache / MTT[0].name)
    with pytest.warns(IntegrityWarning), pytest.raises(InstrecError, match="holds the weights of 'MSD_musicnn'"):
        W.load_musicnn("MTT_musicnn", cache)


def test_a_cache_converted_before_records_is_used_with_a_warning(cache):
    (cache / W.integrity_file("MTT_musicnn", ".").name).unlink()
    with pytest.warns(IntegrityWarning, match="no integrity record.*instrec download musicnn"):
        W.load_musicnn("MTT_musicnn", cache)


@pytest.mark.parametrize("damage", ["truncated", "no record", "x3"])
def test_download_repairs_a_cache_that_fails_its_check(cache, musicnn_wheel, damage, capsys):
    st = cache / MTT[0].name
    good = load_file(str(st))
    if damage == "truncated":
        st.write_bytes(st.read_bytes()[:1000])
    elif damage == "no record":
        (cache / W.integrity_file("MTT_musicnn", ".").name).unlink()
    else:
        _resave(st, _times3)
    W.download_musicnn(cache, wheel=musicnn_wheel, progress=False)
    again = load_file(str(st))  # the same tensors (the header's metadata order may differ)
    assert again.keys() == good.keys() and all(np.array_equal(again[k], good[k]) for k in good)
    assert "converting again" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert W.check_cache("MTT_musicnn", cache, required=True)


def test_an_intact_cache_is_not_converted_again(cache, capsys):
    before = (cache / MTT[0].name).stat().st_mtime_ns
    W.download_musicnn(cache, wheel="/nonexistent.whl", progress=False)  # no wheel needed: nothing to repair
    assert (cache / MTT[0].name).stat().st_mtime_ns == before and capsys.readouterr().err == ""


# --- runs and the default model -----------------------------------------------------------

def test_a_finished_run_records_the_sha256_of_its_files(finished_run):
    record = json.loads((finished_run / INTEGRITY_FILE).read_text())
    assert record["algorithm"] == "sha256"
    assert record["files"] == {name: hashlib.sha256((finished_run / name).read_bytes()).hexdigest()
                               for name in (CONFIG_FILE, MODEL_FILE)}


def _swap_classes(run, a: int, b: int) -> None:
    config = json.loads((run / CONFIG_FILE).read_text())
    classes = config["classes"]
    classes[a], classes[b] = classes[b], classes[a]
    (run / CONFIG_FILE).write_text(json.dumps(config, indent=2))


def test_a_reordered_class_list_is_refused(run_copy, clip):
    _swap_classes(run_copy, 0, 1)
    assert_one_line_error(*cli("predict", str(clip), "--run", str(run_copy), "-q"), "config.json",
                          "changed since instrec wrote it", "train the run again")
    assert_one_line_error(*cli("evaluate", str(run_copy)), "config.json", "changed since")


def test_changed_run_weights_are_refused(run_copy, clip):
    _resave(run_copy / MODEL_FILE, lambda t: t.update({k: v * 3 for k, v in t.items()}))
    assert_one_line_error(*cli("predict", str(clip), "--run", str(run_copy), "-q"), "model.safetensors",
                          "changed since instrec wrote it")


def test_a_run_finished_before_records_is_used_with_a_warning(run_copy):
    (run_copy / INTEGRITY_FILE).unlink()
    with pytest.warns(IntegrityWarning, match="no integrity record.*older instrec"):
        load_model(run_copy)


def test_the_default_model_with_flute_and_violin_swapped_is_refused(tmp_path, clip, monkeypatch):
    model = shutil.copytree(P.default_model_dir(), tmp_path / "default")
    config = json.loads((model / CONFIG_FILE).read_text())
    _swap_classes(model, config["classes"].index("flute"), config["classes"].index("violin"))
    monkeypatch.setattr(P, "default_model_dir", lambda: model)
    with pytest.raises(InstrecError, match="config.json: changed since instrec wrote it.*make default-model"):
        P.Tagger()


def test_the_default_model_needs_its_record(tmp_path, monkeypatch):
    model = shutil.copytree(P.default_model_dir(), tmp_path / "default")
    (model / INTEGRITY_FILE).unlink()
    monkeypatch.setattr(P, "default_model_dir", lambda: model)
    with pytest.raises(InstrecError, match="integrity.json: integrity record missing.*reinstall instrec"):
        P.Tagger()


def test_the_shipped_default_model_passes_its_check():
    with warnings.catch_warnings():
        warnings.simplefilter("error", IntegrityWarning)
        assert P.Tagger().classes[0] == "accordion"
