"""Experiment grids: augmentation names with label rules, methods, the rules grid and its teachers."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from instrec._io import InstrecError
from instrec.pipelines.experiment import _train_config, run_path, run_specs
from instrec.pipelines.grids import DEMO_RULE, RULES_GRID, RunSpec, augmentation, grid_specs
from instrec.run import model_sha256


def test_augmentation_names_carry_the_label_rule():
    assert augmentation("none") == (0.0, 0.0, "both")
    assert augmentation("both") == (0.2, 0.5, "both")
    assert augmentation("both-known") == (0.2, 0.5, "known")
    assert augmentation("mixup-naive") == (0.2, 0.0, "naive")
    for bad in ("both-nope", "shuffle", "both-"):
        with pytest.raises(InstrecError, match="unknown augmentation"):
            augmentation(bad)


def test_run_names_and_teachers():
    assert RunSpec("att").name == "att_focal_none_s0"  # unchanged for the grids that existed before
    spec = RunSpec("bilstm-att", "focal", "both-known", 1, "pseudo")
    assert spec.name == "bilstm-att_focal_both-known_pseudo_s1"
    assert spec.teacher == RunSpec("bilstm-att", "focal", "both-known", 1)
    assert RunSpec("att", method="balance").teacher is None


def test_rules_grid():
    specs = grid_specs("rules", 2)
    assert len(specs) == 2 * len(RULES_GRID) and len({s.name for s in specs}) == len(specs)
    assert (specs[0].model, specs[0].loss, specs[0].augment, specs[0].method) == ("bilstm-att", "focal", "both", "none")
    names = {s.name for s in specs}
    assert all(s.teacher.name in names for s in specs if s.teacher is not None)
    assert {s.method for s in specs} == {"none", "balance", "pseudo", "alpha0.5"}
    assert {s.augment for s in grid_specs("demo", 1)} == {"none", f"both-{DEMO_RULE}"}
    with pytest.raises(InstrecError, match="unknown grid 'nope'; choose one of paper, demo, baselines, smoke, rules"):
        grid_specs("nope", 1)


def test_train_config_of_each_method(tmp_path):
    cfg = _train_config(RunSpec("bilstm-att", "focal", "both-known", 2, "pseudo"), "d", str(tmp_path), 5)
    assert cfg.teacher == str(run_path(tmp_path, RunSpec("bilstm-att", "focal", "both-known", 2)))
    assert (cfg.mixup, cfg.concat, cfg.mixup_labels, cfg.pseudo_precision) == (0.2, 0.5, "known", 0.9)
    cfg = _train_config(RunSpec("att", "focal", "both-naive", 0, "balance"), "d", str(tmp_path), 5)
    assert (cfg.label_balance, cfg.teacher, cfg.mixup_labels, cfg.concat) == (0.5, "", "naive", 0.5)
    assert _train_config(RunSpec("att", method="alpha0.5"), "d", str(tmp_path), 5).focal_alpha == 0.5
    with pytest.raises(InstrecError, match="unknown method 'nope'"):
        _train_config(RunSpec("att", method="nope"), "d", str(tmp_path), 5)


def test_students_train_after_their_teachers(tiny_dataset, tmp_path):
    student = RunSpec("att", "focal", "mixup-known", 0, "pseudo")
    with ThreadPoolExecutor(2) as pool:  # two workers: without phases the student would start at once
        rows = run_specs([student, student.teacher], tiny_dataset, tmp_path, epochs=2, executor=pool)
    assert [r["method"] for r in rows] == ["pseudo", "none"]
    config = json.loads((run_path(tmp_path, student) / "config.json").read_text())
    assert config["train"]["teacher"] == str(run_path(tmp_path, student.teacher))
    assert config["pseudo_labels"]["teacher_model_sha256"] == model_sha256(run_path(tmp_path, student.teacher))
    with pytest.raises(InstrecError, match="its teacher att_focal_none_s0 is neither in the grid nor finished"):
        run_specs([RunSpec("att", method="pseudo")], tiny_dataset, tmp_path / "other", epochs=1)


def test_lockstep_engine_trains_students_alone(tiny_dataset, tmp_path):
    student = RunSpec("att", "focal", "none", 0, "pseudo")
    specs = [student.teacher, RunSpec("att", seed=1), student]
    with ThreadPoolExecutor(1) as pool:
        rows = run_specs(specs, tiny_dataset, tmp_path, epochs=1, executor=pool, engine="lockstep", jobs=1)
    assert [r["method"] for r in rows] == ["none", "none", "pseudo"]
    metrics = json.loads((run_path(tmp_path, student) / "metrics.json").read_text())
    assert metrics["train_engine"] == "solo"
    assert json.loads((run_path(tmp_path, specs[1]) / "metrics.json").read_text())["train_engine"] == "lockstep"
