"""Lockstep training: every member of a group reproduces its solo run; groups resume; grids use it."""
from __future__ import annotations

import csv
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from instrec._io import InstrecError
from instrec.evaluation.evaluate import evaluate_run
from instrec.models import build_model, model_spec
from instrec.models.inference import run_model
from instrec.models.stacked import StackedModel
from instrec.pipelines.experiment import RunSpec, grid_specs, plan_tasks, run_experiment
from instrec.training.config import TrainConfig
from instrec.training.lockstep import predict_members, train_lockstep
from instrec.training.loop import train

# Different seeds, both losses, mixup and concatenation: members' batches differ in length.
MEMBERS = [dict(seed=3, loss="focal", mixup=0.2, concat=0.5), dict(seed=4, loss="bce"),
           dict(seed=5, loss="focal", concat=0.5)]


def _cfgs(data, root, model, epochs=3):
    # Two threads, as when these tolerances were set (the default is now one): at one thread
    # att's rounding noise in input_bn.bias reaches bns.0.bias by 2e-5 after 3 epochs.
    return [TrainConfig(data=str(data), out=str(root / f"m{i}"), model=model, epochs=epochs, threads=2, **kw)
            for i, kw in enumerate(MEMBERS)]


@pytest.fixture(scope="module", params=["bilstm-att", "att"])
def solo_runs(request, tiny_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"solo-{request.param}")
    for cfg in _cfgs(tiny_dataset, root, request.param):
        train(cfg, progress=False)
    return request.param, root


def _log(run_dir):
    with open(run_dir / "train_log.csv", newline="") as fh:
        return [{k: float(v) for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]


#: att members match their solo runs up to rounding, which moves the weight that the next
#: BatchNorm cancels (its gradient is rounding noise, see StackedGururaniAttention), and with
#: it that BatchNorm's running mean; every other number stays within rounding.
DRIFTING = {"bilstm-att": (), "att": ("input_bn.bias", "bns.0.running_mean")}


def _assert_same_run(a, b, atol=1e-5, drifting=()):
    """Same training log, best and last weights, Adam state and RNG states, same thresholds."""
    for ra, rb in zip(_log(a), _log(b), strict=True):
        assert ra.keys() == rb.keys()
        np.testing.assert_allclose(list(ra.values()), list(rb.values()), rtol=1e-4)
    for name in ("model.safetensors", "last.safetensors"):
        wa, wb = load_file(str(a / name)), load_file(str(b / name))
        assert wa.keys() == wb.keys()
        for k in (k for k in wa if not k.endswith(drifting)):
            np.testing.assert_allclose(wa[k], wb[k], atol=0 if k.startswith("rng.") else atol, rtol=0, err_msg=k)
    ca, cb = (json.loads((d / "config.json").read_text()) for d in (a, b))
    assert ca.keys() == cb.keys()
    np.testing.assert_allclose(ca["thresholds"], cb["thresholds"])
    assert (ca["best_epoch"], ca["epochs_run"], ca["model_config"]) == (cb["best_epoch"], cb["epochs_run"],
                                                                        cb["model_config"])
    assert (a / "validation-keys.csv").read_text() == (b / "validation-keys.csv").read_text()


def test_members_reproduce_their_solo_runs(solo_runs, tiny_dataset, tmp_path):
    model, solo_root = solo_runs
    steps: list[tuple[int, tuple[int, ...]]] = []

    def record(module, args):
        if isinstance(module, StackedModel) and module.training:
            steps.append((args[0].shape[2], tuple(args[1])))

    handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        summaries = train_lockstep(_cfgs(tiny_dataset, tmp_path, model), progress=False)
    finally:
        handle.remove()
    # The concat members' draws split steps into two length groups at least once.
    assert {n for n, _ in steps} == {10, 20} and any(len(members) < 3 for _, members in steps)
    for i, summary in enumerate(summaries):
        assert summary["train"]["seed"] == MEMBERS[i]["seed"]
        _assert_same_run(tmp_path / f"m{i}", solo_root / f"m{i}", drifting=DRIFTING[model])
        ours, theirs = evaluate_run(tmp_path / f"m{i}"), evaluate_run(solo_root / f"m{i}")
        assert ours["macro_f1"] == pytest.approx(theirs["macro_f1"], abs=1e-6)
        assert ours["mean_ap"] == pytest.approx(theirs["mean_ap"], abs=1e-5)


@pytest.mark.parametrize("solo_runs", ["bilstm-att"], indirect=True)
def test_interrupted_group_resumes_and_finished_runs_are_skipped(solo_runs, tiny_dataset, tmp_path):
    model, solo_root = solo_runs
    train_lockstep(_cfgs(tiny_dataset, tmp_path, model, epochs=2), progress=False)
    # A lockstep run's resume state is a solo run's: train() can continue it alone.
    train(_cfgs(tiny_dataset, tmp_path, model)[2], resume=True, progress=False)
    train_lockstep(_cfgs(tiny_dataset, tmp_path, model), resume=True, progress=False)
    for i in range(3):
        _assert_same_run(tmp_path / f"m{i}", solo_root / f"m{i}")
    stamp = (tmp_path / "m0" / "model.safetensors").stat().st_mtime_ns
    train_lockstep(_cfgs(tiny_dataset, tmp_path, model), resume=True, progress=False)
    assert (tmp_path / "m0" / "model.safetensors").stat().st_mtime_ns == stamp


def test_group_settings_are_checked(tiny_dataset, tmp_path):
    cfgs = _cfgs(tiny_dataset, tmp_path, "att", epochs=1)
    cfgs[1].lr = 1e-3
    with pytest.raises(InstrecError, match="must share lr"):
        train_lockstep(cfgs, progress=False)
    cfgs = _cfgs(tiny_dataset, tmp_path / "fc", "fc-t", epochs=1)
    summaries = train_lockstep(cfgs, progress=False)  # no stacked fc-t: trained solo, one by one
    assert [s["model"] for s in summaries] == ["fc-t"] * 3


@pytest.mark.parametrize("model", ["bilstm-att", "att"])
def test_validation_predictions_equal_run_model(model):
    """More clips than run_model's 1024-clip chunks, more members than one eval pass takes."""
    solos = []
    for seed in range(5):
        torch.manual_seed(seed)
        solos.append(build_model(model, n_classes=4, n_features=16))
    stacked = model_spec(model).stacked(solos).train()
    with torch.no_grad():  # BatchNorm statistics away from their initial values
        for name in stacked.buffer_names:
            if name.endswith("running_mean"):
                stacked.b(name).normal_()
                for k, solo in enumerate(solos):
                    solo.get_buffer(name).copy_(stacked.b(name)[k])
    X = torch.rand(5, 1100, 10, 16)
    probs = predict_members(stacked, X)
    assert stacked.training
    for k, solo in enumerate(solos):
        want = run_model(solo, X[k].numpy()).clip
        if model == "bilstm-att":
            np.testing.assert_array_equal(probs[k], want)
        else:  # batched over members: equal up to rounding
            np.testing.assert_allclose(probs[k], want, rtol=0, atol=1e-6)


def test_plan_groups_each_architecture_for_the_workers():
    specs = grid_specs("paper", 3)
    tasks = plan_tasks(specs, jobs=2, engine="lockstep", max_members=8)
    assert sorted(s.name for t in tasks for s in t) == sorted(s.name for s in specs)
    groups = [t for t in tasks if len(t) > 1]
    assert sorted((t[0].model, len(t)) for t in groups) == [("att", 6)] * 4 + [("bilstm-att", 6)] * 4
    assert all(len({s.model for s in t}) == 1 for t in tasks)
    assert all(len(t) == 1 for t in plan_tasks(specs, jobs=2, engine="solo"))
    with pytest.raises(InstrecError, match="unknown engine"):
        plan_tasks(specs, jobs=2, engine="gpu")


def test_experiment_engines_give_the_same_results(tiny_dataset, tmp_path):
    rows = {}
    for engine in ("lockstep", "solo"):
        with ThreadPoolExecutor(1) as pool:
            rows[engine] = run_experiment(tiny_dataset, tmp_path / engine, grid="smoke", seeds=2, epochs=2,
                                          jobs=1, progress=False, executor=pool, engine=engine)
    assert [(r["model"], r["seed"]) for r in rows["lockstep"]] == [(r["model"], r["seed"]) for r in rows["solo"]]
    for a, b in zip(rows["lockstep"], rows["solo"]):
        assert a["macro_f1"] == pytest.approx(b["macro_f1"], abs=1e-6)
        assert a["mean_ap"] == pytest.approx(b["mean_ap"], abs=1e-5)
    metrics = json.loads((tmp_path / "lockstep" / "runs" / RunSpec("att", seed=1).name / "metrics.json").read_text())
    assert metrics["train_engine"] == "lockstep" and metrics["lockstep_group_size"] == 2
    assert (tmp_path / "lockstep" / "results.csv").is_file()


def test_interrupted_experiment_run_resumes_with_its_thread_count(tiny_dataset, tmp_path):
    from instrec.pipelines import experiment as experiment_module
    from instrec.training.loop import train

    spec = RunSpec("att", "focal", "none", 0)
    out = tmp_path / "exp"
    before = torch.get_num_threads()
    try:
        # an interrupted run: one epoch of two, started by an experiment with 1 thread per worker
        cfg = experiment_module._train_config(spec, str(tiny_dataset), str(out), 1, threads=1)
        train(cfg, progress=False)
        row = experiment_module.run_one(spec, str(tiny_dataset), str(out), 2, threads=2)  # resumed with --jobs 1
    finally:
        torch.set_num_threads(before)
    config = json.loads((out / "runs" / spec.name / "config.json").read_text())
    assert config["train"]["threads"] == 1 and config["threads"] == 1 and config["epochs_run"] == 2
    assert row["model"] == "att"
