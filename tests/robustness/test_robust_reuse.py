"""Stale results presented as new: an experiment reuses a finished run only when it recorded
the same settings and the same dataset content; otherwise it refuses, or retrains with
--overwrite. The demo runs its experiment with overwrite, so it inherits this."""
from __future__ import annotations

import json

import pytest
from conftest import make_tiny_dataset

from instrec._io import InstrecError
from instrec.pipelines.experiment import RunSpec, run_path, run_specs

SPECS = [RunSpec("rf", "focal", "none", 0), RunSpec("fc", "focal", "none", 0)]


def _config(out, spec):
    return json.loads((run_path(out, spec) / "config.json").read_text())


def _run(data, out, epochs, overwrite=False):
    return run_specs(SPECS, data, out, epochs, jobs=1, executor=_Inline(), overwrite=overwrite)


class _Inline:
    """An executor that runs each task at once in this process (fast, no pool)."""

    def submit(self, fn, *args):
        from concurrent.futures import Future

        future = Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self, *a, **k):
        pass


def test_finished_runs_are_reused_only_with_the_same_settings_and_data(tmp_path):
    data_a = make_tiny_dataset(tmp_path / "a", n=60, seed=0)
    out = tmp_path / "exp"
    _run(data_a, out, epochs=2)
    first = {s.name: _config(out, s)["finished"] for s in SPECS}
    fc_weights = (run_path(out, SPECS[1]) / "model.safetensors").read_bytes()

    # Same settings, same data: reused (nothing retrained).
    _run(data_a, out, epochs=2)
    assert {s.name: _config(out, s)["finished"] for s in SPECS} == first
    assert (run_path(out, SPECS[1]) / "model.safetensors").read_bytes() == fc_weights

    # Other data at the same path (its content changed): refused without overwrite...
    make_tiny_dataset(tmp_path / "a", n=60, seed=5)
    with pytest.raises(InstrecError, match=r"config\.json: this run was trained with other settings "
                                           r"\(data \(its content\)\); pass --overwrite"):
        _run(data_a, out, epochs=2)
    # ...and trained again with it; the new run records the new content.
    rows = _run(data_a, out, epochs=2, overwrite=True)
    assert (run_path(out, SPECS[1]) / "model.safetensors").read_bytes() != fc_weights
    assert all(_config(out, s)["data_sha256"] == _config(out, SPECS[0])["data_sha256"] for s in SPECS)
    assert [r["model"] for r in rows] == ["rf", "fc"]


def test_fewer_epochs_than_a_run_had_are_not_reused(tmp_path):
    data = make_tiny_dataset(tmp_path / "a", n=60)
    out = tmp_path / "exp"
    _run(data, out, epochs=3)
    with pytest.raises(InstrecError, match=r"other settings \(epochs\)"):
        _run(data, out, epochs=2)
    _run(data, out, epochs=2, overwrite=True)
    assert _config(out, SPECS[1])["epochs_run"] == 2 and _config(out, SPECS[1])["train"]["epochs"] == 2
