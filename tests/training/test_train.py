"""Training: outputs, determinism, resume, the paper's options, and input errors."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

from instrec._io import InstrecError
from instrec.training.config import TrainConfig
from instrec.training.loop import train


def _cfg(data, out, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), epochs=3, seed=7)
    base.update(kw)
    return TrainConfig(**base)


def test_run_directory_contents(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    summary = train(_cfg(tiny_dataset, out), progress=False)
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "bilstm-att" and config["seed"] == 7
    assert config["train"]["lr"] == 5e-4 and config["train"]["batch_size"] == 32
    assert config["train"]["loss"] == "focal" and config["train"]["focal_alpha"] == 0.75
    assert "torch" in config["versions"] and config["frontend"]["name"] == "logmel"
    assert len(config["thresholds"]) == 4 and config["epochs_run"] == 3
    rows = list(csv.DictReader(open(out / "train_log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert {"train_loss", "val_loss", "val_macro_f1", "val_micro_f1"} <= set(rows[0])
    best = max(float(r["val_macro_f1"]) for r in rows)
    assert summary["best_val_macro_f1"] == pytest.approx(best, abs=1e-5)
    n_train = 180  # 240 clips, 60 in the test partition
    val_keys = (out / "validation-keys.csv").read_text().split()
    assert len(val_keys) == round(0.15 * n_train)
    test_keys = set((tiny_dataset / "partitions" / "split01_test.csv").read_text().split())
    assert not set(val_keys) & test_keys
    weights = load_file(str(out / "model.safetensors"))
    assert any("lstm" in k or "rnn" in k for k in weights)


def test_same_seed_same_weights_and_other_seed_differs(tiny_dataset, tmp_path):
    a = train(_cfg(tiny_dataset, tmp_path / "a", mixup=0.2, concat=0.5, epochs=2), progress=False)
    b = train(_cfg(tiny_dataset, tmp_path / "b", mixup=0.2, concat=0.5, epochs=2), progress=False)
    train(_cfg(tiny_dataset, tmp_path / "c", mixup=0.2, concat=0.5, epochs=2, seed=8), progress=False)
    wa, wb, wc = (load_file(str(tmp_path / n / "last.safetensors")) for n in "abc")
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    assert not all(np.array_equal(wa[k], wc[k]) for k in wa if k.startswith("model."))
    assert a["best_val_macro_f1"] == b["best_val_macro_f1"]


def test_resume_reaches_the_same_weights(tiny_dataset, tmp_path):
    kw = dict(mixup=0.2, concat=0.5, epochs=4)
    train(_cfg(tiny_dataset, tmp_path / "straight", **kw), progress=False)
    train(_cfg(tiny_dataset, tmp_path / "split", **{**kw, "epochs": 2}), progress=False)
    train(_cfg(tiny_dataset, tmp_path / "split", **kw), resume=True, progress=False)
    a = load_file(str(tmp_path / "straight" / "last.safetensors"))
    b = load_file(str(tmp_path / "split" / "last.safetensors"))
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    rows = list(csv.DictReader(open(tmp_path / "split" / "train_log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    # The dropout stream went on where it stopped (it lives in last.json, not in the weights).
    streams = [json.loads((tmp_path / d / "last.json").read_text())["mask_rngs"] for d in ("straight", "split")]
    assert streams[0] == streams[1] and streams[0][0]["bit_generator"] == "PCG64"


def test_resume_state_without_dropout_streams_is_refused(tiny_dataset, tmp_path):
    train(_cfg(tiny_dataset, tmp_path / "old", epochs=1), progress=False)
    path = tmp_path / "old" / "last.json"
    state = json.loads(path.read_text())
    del state["mask_rngs"]  # as written before dropout streams existed
    path.write_text(json.dumps(state))
    with pytest.raises(InstrecError, match=r"last.json: no dropout stream states \(written by an older instrec\)"):
        train(_cfg(tiny_dataset, tmp_path / "old", epochs=2), resume=True, progress=False)


def test_resume_with_other_settings_is_refused(tiny_dataset, tmp_path):
    train(_cfg(tiny_dataset, tmp_path / "r", epochs=1), progress=False)
    with pytest.raises(InstrecError, match=r"cannot resume with different settings \(lr\)"):
        train(_cfg(tiny_dataset, tmp_path / "r", epochs=2, lr=1e-3), resume=True, progress=False)


def test_bilstm_attention_learns_the_tiny_task(tiny_dataset, tmp_path):
    summary = train(_cfg(tiny_dataset, tmp_path / "learn", epochs=25, lr=3e-3), progress=False)
    assert summary["best_val_macro_f1"] > 0.8


@pytest.mark.parametrize("model", ["att", "fc", "fc-t", "rnn"])
def test_baselines_train(tiny_dataset, tmp_path, model):
    summary = train(_cfg(tiny_dataset, tmp_path / model, model=model, epochs=2), progress=False)
    assert 0.0 <= summary["best_val_macro_f1"] <= 1.0
    assert (tmp_path / model / "model.safetensors").is_file()


def test_random_forest_baseline(tiny_dataset, tmp_path):
    summary = train(_cfg(tiny_dataset, tmp_path / "rf", model="rf", rf_trees=20), progress=False)
    assert summary["model_config"] == {"n_estimators": 20, "max_depth": 8}
    assert summary["best_val_macro_f1"] > 0.6


def test_bad_settings_give_clear_errors(tiny_dataset, tmp_path):
    with pytest.raises(InstrecError, match="needs clips of exactly 10 frames"):
        train(_cfg(tiny_dataset, tmp_path / "fc", model="fc", concat=0.5), progress=False)
    with pytest.raises(InstrecError, match="unknown model 'lstm'"):
        train(_cfg(tiny_dataset, tmp_path / "x", model="lstm"), progress=False)
    with pytest.raises(InstrecError, match="unknown loss"):
        train(_cfg(tiny_dataset, tmp_path / "x", loss="hinge"), progress=False)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(InstrecError, match="not empty; pass --overwrite"):
        train(_cfg(tiny_dataset, tmp_path / "busy"), progress=False)
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"


def test_threads_zero_means_one_thread_and_none_keeps_the_count():
    """The policy: one intra-op thread per process, one inter-op thread, the BLAS alike."""
    import torch
    from threadpoolctl import threadpool_info

    from instrec.runinfo import AUTO_THREADS, set_threads

    before = torch.get_num_threads()
    try:
        assert AUTO_THREADS == 1
        assert set_threads(2) == 2 and set_threads(None) == 2
        assert set_threads(0) == 1 and torch.get_num_interop_threads() == 1
        blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        assert blas and set(blas) == {1}
    finally:
        set_threads(before)


def test_threads_zero_is_resolved_and_recorded(tiny_dataset, tmp_path, monkeypatch):
    import torch

    from instrec import runinfo

    before = torch.get_num_threads()
    monkeypatch.setattr(runinfo, "usable_cores", lambda: 1)
    try:
        train(_cfg(tiny_dataset, tmp_path / "auto", epochs=1, threads=0), progress=False)
        assert torch.get_num_threads() == 1
        config = json.loads((tmp_path / "auto" / "config.json").read_text())
        assert config["train"]["threads"] == 0 and config["threads"] == 1
        train(_cfg(tiny_dataset, tmp_path / "two", epochs=1, threads=2), progress=False)
        assert json.loads((tmp_path / "two" / "config.json").read_text())["threads"] == 2
    finally:
        torch.set_num_threads(before)


def test_a_run_from_before_a_setting_existed_resumes_as_that_settings_default(tiny_dataset, tmp_path):
    import json

    run = tmp_path / "old"
    train(_cfg(tiny_dataset, run, epochs=1), progress=False)
    config = json.loads((run / "config.json").read_text())
    for key in ("mixup_labels", "mixup_prob"):  # an instrec older than these options wrote neither
        del config["train"][key]
    (run / "config.json").write_text(json.dumps(config))
    summary = train(_cfg(tiny_dataset, run, epochs=2), resume=True, progress=False)
    assert summary["epochs_run"] == 2
    with pytest.raises(InstrecError, match=r"cannot resume with different settings \(mixup_prob\)"):
        train(_cfg(tiny_dataset, run, epochs=3, mixup_prob=0.5), resume=True, progress=False)


def test_set_threads_limits_numpys_blas_alike():
    """The logmel front end's matrix products run in numpy's BLAS: it must follow the torch count."""
    code = ("from threadpoolctl import threadpool_info\nfrom instrec.runinfo import set_threads\n"
            "set_threads(1)\n"
            "print(sorted({p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"})
    assert result.stdout.strip() == "[1]"


def test_the_paper_model_trains_to_the_same_weights_on_one_thread_and_two(tiny_dataset, tmp_path):
    # Its recurrent kernel starts orthogonal, a QR decomposition whose rounding followed the thread
    # count: --threads 2 gave other weights than --threads 1 from the first step on.
    import torch

    before = torch.get_num_threads()
    weights = []
    try:
        for n in (1, 2):
            train(_cfg(tiny_dataset, tmp_path / f"t{n}", epochs=2, threads=n), progress=False)
            weights.append(load_file(str(tmp_path / f"t{n}" / "model.safetensors")))
    finally:
        torch.set_num_threads(before)
    assert weights[0].keys() == weights[1].keys()
    assert all(np.array_equal(weights[0][k], weights[1][k]) for k in weights[0])
