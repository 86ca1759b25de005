"""Experiment grids on a Dask cluster: the numbers of the local engine, finished runs kept."""
from __future__ import annotations

import csv
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from instrec._io import InstrecError
from instrec.pipelines.experiment import RESULTS_FILE, RunSpec, run_experiment, run_path

pytest.importorskip("distributed")

NUMBERS = ("macro_f1", "micro_f1", "mean_ap", "tuned_macro_f1")


def _rows(out):
    return list(csv.DictReader(open(out / RESULTS_FILE)))


@pytest.mark.slow  # end to end: two grids and two local clusters, about 30 s
def test_dask_grid_matches_the_local_engine_and_skips_finished_runs(tiny_dataset, tmp_path):
    with ThreadPoolExecutor(1) as pool:  # the solo engine in this process, one torch thread (as its workers)
        local = run_experiment(tiny_dataset, tmp_path / "local", grid="smoke", seeds=1, epochs=2, jobs=2,
                               progress=False, executor=pool)
    on_dask = run_experiment(tiny_dataset, tmp_path / "dask", grid="smoke", seeds=1, epochs=2, jobs=2,
                             progress=False, engine="dask")
    assert [(r["model"], r["augment"]) for r in on_dask] == [(r["model"], r["augment"]) for r in local]
    for a, b in zip(local, on_dask):
        assert [a[k] for k in NUMBERS] == [b[k] for k in NUMBERS]  # bit for bit: same seeds, one thread
        assert a["per_class_f1"] == b["per_class_f1"]
    assert [r["macro_f1"] for r in _rows(tmp_path / "dask")] == [r["macro_f1"] for r in _rows(tmp_path / "local")]
    # A restart: one run lost its metrics (interrupted before evaluation); only it is redone.
    specs = [RunSpec(r["model"], r["loss"], r["augment"], r["seed"]) for r in on_dask]
    stamps = {s.name: (run_path(tmp_path / "dask", s) / "metrics.json").stat().st_mtime_ns for s in specs}
    (run_path(tmp_path / "dask", specs[0]) / "metrics.json").unlink()
    again = run_experiment(tiny_dataset, tmp_path / "dask", grid="smoke", seeds=1, epochs=2, jobs=2,
                           progress=False, engine="dask", overwrite=True)
    assert [r["macro_f1"] for r in again] == [r["macro_f1"] for r in on_dask]
    for s in specs[1:]:
        assert (run_path(tmp_path / "dask", s) / "metrics.json").stat().st_mtime_ns == stamps[s.name]
    redone = json.loads((run_path(tmp_path / "dask", specs[0]) / "metrics.json").read_text())
    assert redone["train_engine"] == "solo"


def test_a_scheduler_needs_the_dask_engine(tiny_dataset, tmp_path):
    with pytest.raises(InstrecError, match="needs the dask engine, not 'solo'"):
        run_experiment(tiny_dataset, tmp_path / "x", grid="smoke", seeds=1, epochs=1, scheduler="tcp://h:8786",
                       progress=False)
    with pytest.raises(InstrecError, match="unknown engine 'spark'; choose solo, lockstep, dask"):
        run_experiment(tiny_dataset, tmp_path / "x", grid="smoke", seeds=1, epochs=1, engine="spark",
                       progress=False)


def test_experiment_scheduler_option_needs_the_dask_engine(tiny_dataset, tmp_path, capsys):
    from instrec.cli import main

    assert main(["experiment", "--data", str(tiny_dataset), "--out", str(tmp_path / "e"), "--grid", "smoke",
                 "--scheduler", "tcp://h:8786", "-q"]) == 2
    assert "needs the dask engine, not 'solo'" in capsys.readouterr().err
