"""Run folders that a crash, a full disk or a person damaged: every case is refused with one
line naming the file and the field (exit 2), or works; an unfinished run is used only when
asked, with a warning."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
from robust_helpers import assert_one_line_error, cli
from safetensors.numpy import load_file, save_file

from instrec._io import InstrecError
from instrec.evaluation.evaluate import evaluate_run
from instrec.run import CONFIG_FILE, FINISHED_KEY, MODEL_FILE, load_model, write_run_integrity


def _edit(run, **changes) -> None:
    path = run / CONFIG_FILE
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path.write_text(json.dumps(config))
    write_run_integrity(run)  # the record matches: the run's own checks must answer


def _unfinish(run) -> None:
    """What config.json holds while training runs (written before the first epoch)."""
    _edit(run, **{FINISHED_KEY: None, "thresholds": None, "epochs_run": None, "best_epoch": None})


def test_a_finished_run_records_when_it_finished(finished_run):
    config = json.loads((finished_run / CONFIG_FILE).read_text())
    assert list(config)[-1] == FINISHED_KEY and config[FINISHED_KEY].endswith("Z")
    assert len(config["thresholds"]) == len(config["classes"])


def test_unfinished_run_is_refused_by_evaluate_and_predict(run_copy, tmp_path):
    _unfinish(run_copy)
    assert_one_line_error(*cli("evaluate", str(run_copy)), "config.json", "did not finish", "--allow-unfinished")
    clip = tmp_path / "a.wav"
    sf.write(clip, np.zeros(16000, np.float32), 16000)
    assert_one_line_error(*cli("predict", str(clip), "--run", str(run_copy), "-q"), "did not finish")
    assert not (run_copy / "metrics.json").exists()


def test_unfinished_run_is_used_only_when_allowed_and_with_a_warning(run_copy):
    _unfinish(run_copy)
    with pytest.raises(InstrecError, match="did not finish"):
        load_model(run_copy)
    with pytest.warns(UserWarning, match="did not finish.*allow_unfinished"):
        metrics = evaluate_run(run_copy, allow_unfinished=True)
    assert metrics["n_clips"] == 20 and (run_copy / "metrics.json").is_file()


@pytest.mark.parametrize("changes, needles", [
    ({"model": "transformer-xl"}, ["config.json", "'model'", "unknown model"]),
    ({"model": 7}, ["config.json", "'model'"]),
    ({"n_frames": 0}, ["config.json", "'n_frames'", ">= 1"]),
    ({"n_features": "many"}, ["config.json", "'n_features'"]),
    ({"thresholds": [0.5, 0.5]}, ["config.json", "'thresholds'", "4 numbers"]),
    ({"thresholds": [0.5, 0.5, 0.5, 2.0]}, ["config.json", "'thresholds'"]),
    ({"classes": ["a", "a", "b", "c"]}, ["config.json", "'classes'"]),
    ({"classes": None}, ["config.json", "missing key 'classes'"]),
    ({"untrained_classes": ["cello"]}, ["config.json", "'untrained_classes'"]),
    ({"frontend": "logmel"}, ["config.json", "'frontend'"]),
    ({"train": {"data": 5}}, ["config.json", "'train'"]),
    ({"train": None}, ["run does not record its dataset", "--data"]),
    ({"classes": ["a", "b", "c"], "thresholds": None, "untrained_classes": None},
     ["config.json", "'model_config.n_classes'", "but the run has 3"]),
])
def test_edited_config_is_one_line_naming_the_field(run_copy, changes, needles):
    _edit(run_copy, **changes)
    assert_one_line_error(*cli("evaluate", str(run_copy)), *needles)


def test_absurd_model_size_is_refused_before_any_allocation(run_copy):
    config = json.loads((run_copy / CONFIG_FILE).read_text())
    _edit(run_copy, model_config={**config["model_config"], "hidden": [10**6, 10**6]})
    # 10^12 weights would ask for 4 TB; the meta-device check compares with the saved shapes first.
    assert_one_line_error(*cli("evaluate", str(run_copy)), MODEL_FILE, "model_config")


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00", b"[1, 2]", b""])
def test_damaged_config_file(run_copy, content):
    (run_copy / CONFIG_FILE).write_bytes(content)
    assert_one_line_error(*cli("evaluate", str(run_copy)), "config.json")


def test_nan_weights_are_refused(run_copy):
    tensors = load_file(str(run_copy / MODEL_FILE))
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].copy()
    tensors[name].flat[0] = math.nan
    save_file(tensors, str(run_copy / MODEL_FILE))
    write_run_integrity(run_copy)  # even with a matching record
    assert_one_line_error(*cli("evaluate", str(run_copy)), MODEL_FILE, name, "NaN")


def test_truncated_weights_are_refused(run_copy):
    data = (run_copy / MODEL_FILE).read_bytes()
    (run_copy / MODEL_FILE).write_bytes(data[: len(data) // 2])
    assert_one_line_error(*cli("evaluate", str(run_copy)), MODEL_FILE)


def test_evaluate_keeps_earlier_results(run_copy):
    assert cli("evaluate", str(run_copy))[0] == 0
    before = (run_copy / "metrics.json").read_bytes()
    assert_one_line_error(*cli("evaluate", str(run_copy)), "metrics.json", "exists", "--overwrite")
    # Another split writes its own files and leaves the test split's alone.
    assert cli("evaluate", str(run_copy), "--split", "validation")[0] == 0
    assert json.loads((run_copy / "metrics-validation.json").read_text())["split"] == "validation"
    assert (run_copy / "metrics.json").read_bytes() == before
    assert evaluate_run(run_copy, overwrite=True)["split"] == "test"


def test_a_run_from_another_front_end_version_is_refused(run_copy, data128):
    config = json.loads((run_copy / CONFIG_FILE).read_text())
    _edit(run_copy, frontend={**config["frontend"], "name": "logmel", "sample_rate": 22050, "n_mels": 64})
    clip = run_copy / "a.wav"
    sf.write(clip, np.zeros(16000, np.float32), 16000)
    assert_one_line_error(*cli("predict", str(clip), "--run", str(run_copy), "-q"), "config.json", "frontend",
                          "sample_rate")


def test_damaged_resume_state_is_one_line(run_copy, data128):
    from instrec.training.config import TrainConfig
    from instrec.training.loop import train

    (run_copy / "last.json").write_text("{truncated")
    cfg = TrainConfig(data=str(data128), out=str(run_copy), model="fc-t", epochs=3, seed=1, threads=1,
                      model_kwargs={"hidden": [16]})  # the settings of finished_run, one epoch more
    with pytest.raises(InstrecError, match=r"last\.json: damaged .*--overwrite") as err:
        train(cfg, resume=True, progress=False)
    assert "\n" not in str(err.value)


def test_run_folder_that_is_a_file(tmp_path, data128):
    (tmp_path / "run").write_text("x")
    assert_one_line_error(*cli("train", "--data", str(data128), "--out", str(tmp_path / "run"), "--epochs", "1",
                               "-q"), "run: exists and is not a folder")
    assert_one_line_error(*cli("evaluate", str(tmp_path / "run")), "run: exists and is not a folder")
