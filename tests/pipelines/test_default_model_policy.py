"""The default-model pipeline tunes the exported model's per-second policy and records its
integrity again (the policy lives in the config.json the record covers)."""
from __future__ import annotations

import json
import shutil

import pytest

from instrec.data.openmic import load_split
from instrec.evaluation.frame_policy import policy_to_json
from instrec.pipelines import default_model as dm
from instrec.run import CONFIG_FILE, FINISHED_KEY, check_run_integrity, read_config, write_run_integrity
from instrec.synth import build_corpus
from instrec.tagging.calibrate import tune_run_policy
from instrec.tagging.predict import Tagger
from instrec.training.config import TrainConfig
from instrec.training.loop import train


@pytest.mark.slow  # renders 24 clips and trains a small run, about half a minute
def test_the_exported_model_gets_a_tuned_policy_and_a_valid_integrity_record(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    build_corpus(corpus, 24, 3, frontend="logmel", jobs=1, progress=False)
    train(TrainConfig(data=str(corpus), out=str(tmp_path / "run"), model="att", epochs=2, seed=0, threads=1,
                      compile="off"), progress=False)
    dest = tmp_path / "default"
    shutil.copytree(tmp_path / "run", dest)
    config = json.loads((dest / CONFIG_FILE).read_text())
    config.pop(FINISHED_KEY)  # an exported default model carries no finished stamp
    (dest / CONFIG_FILE).write_text(json.dumps(config))
    write_run_integrity(dest)  # as export_run leaves it
    monkeypatch.setattr(dm, "POLICY_CORPUS", {"n_clips": 24, "seed": 4, "frontend": "logmel"})

    dm.tune_default_policy(tmp_path / "policy-corpus", dest, jobs=1, progress=False)

    policy = read_config(dest)["frame_policy"]
    assert len(policy["frame_thresholds"]) == len(config["classes"])
    assert policy["tuned_on"].startswith("tuned on 18 clips") and policy["n_clips"] == 18  # the training partition
    assert check_run_integrity(dest, required=True)  # raises on a changed file or a missing record
    assert Tagger(dest).frame_policy["tuned_on"] == policy["tuned_on"]
    assert policy["gate_frames"] == dm.GATE_FRAMES
    # Tuned again without naming a gate (as bench_localisation --write-default does): the gate stays.
    again = tune_run_policy(dest, tmp_path / "policy-corpus", keys=[str(k) for k in load_split(
        tmp_path / "policy-corpus", "train").sample_key], write=False)
    assert again["gate_frames"] == dm.GATE_FRAMES and policy_to_json(again) == policy
