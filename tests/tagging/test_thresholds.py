"""Threshold policies and instruments a run never learned, in every output of ``predict``."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf
from conftest import TINY_CLASSES, make_tiny_dataset

from instrec._io import InstrecError
from instrec.features.frontends import get_frontend
from instrec.models.inference import run_model
from instrec.run import load_model, write_run_integrity
from instrec.tagging.formats import format_results, parse_csv, readable
from instrec.tagging.predict import predict
from instrec.tagging.thresholds import learned_classes, parse_threshold
from instrec.training.config import TrainConfig
from instrec.training.loop import train

SR = 22050


def _tone(path, seconds, freq=440.0):
    t = np.arange(int(seconds * SR)) / SR
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)
    return path


@pytest.fixture(scope="module")
def delta_run(tmp_path_factory):
    """A bilstm-att run whose training data never labels "delta" present, a 10-s tone, and
    the model's own (independently computed) clip and frame probabilities for the tone."""
    root = tmp_path_factory.mktemp("delta")
    data = make_tiny_dataset(root / "data", n_features=128, n=80)
    with np.load(data / "openmic-2018.npz") as z:
        arrays = dict(z)
    arrays["Y_true"][:, 3] = 0.0
    np.savez(data / "openmic-2018.npz", **arrays)
    run = root / "run"
    train(TrainConfig(data=str(data), out=str(run), epochs=1, seed=2), progress=False)
    clip = _tone(root / "tone.wav", 10.0)
    model, _ = load_model(run)
    x = get_frontend("logmel").features_from_file(clip).astype(np.float32)[None] / 255
    preds = run_model(model, x)
    return run, clip, preds.clip[0], preds.frame[0]


def _set_thresholds(run, values):
    config = json.loads((run / "config.json").read_text())
    config["thresholds"] = [float(v) for v in values]
    (run / "config.json").write_text(json.dumps(config))
    write_run_integrity(run)  # as if the run had finished so


def test_parse_threshold_accepts_tuned_and_probabilities_only():
    assert parse_threshold("tuned") == "tuned" and parse_threshold("TUNED") == "tuned"
    assert parse_threshold("0.5") == 0.5 and parse_threshold(0.25) == 0.25 and parse_threshold("0") == 0.0
    for bad in ("1", "1.5", "-0.1", "half", "nan"):
        with pytest.raises(InstrecError, match=f"threshold '{re.escape(bad)}'"):
            parse_threshold(bad)


@pytest.mark.parametrize("policy", ["0.5", "tuned", 0.3])
def test_each_policy_gives_the_hand_computed_present_flags(delta_run, policy):
    run, clip, probs, frames = delta_run
    # Tuned thresholds straddling the model's own probabilities: alpha and gamma just below
    # (present), beta just above (absent), delta 0 (would be present, but never learned).
    tuned = np.array([probs[0] - 0.01, probs[1] + 0.01, probs[2] - 0.01, 0.0])
    _set_thresholds(run, tuned)
    thresholds = {"0.5": np.full(4, 0.5), "tuned": tuned, 0.3: np.full(4, 0.3)}[policy]
    res = predict(run, [clip], per_second=True, threshold=policy)
    tags = res.files[0]
    learned = np.array([True, True, True, False])
    np.testing.assert_allclose(res.thresholds, thresholds)
    np.testing.assert_allclose(tags.probabilities[:3], probs[:3], rtol=1e-5)
    assert np.isnan(tags.probabilities[3]) and np.isnan(tags.frame_probabilities[:, 3]).all()
    assert tags.present.tolist() == ((probs > thresholds) & learned).tolist()
    if policy == "tuned":
        assert tags.present.tolist() == [True, False, True, False]
    expected_frames = (frames > thresholds) & learned
    assert tags.frame_present.tolist() == expected_frames.tolist()

    # CSV, clip level: the header states the policy and every threshold; delta has empty cells.
    comments, rows = parse_csv(format_results(res, "csv"))
    assert comments[0].startswith(f"threshold: {res.threshold_description}")
    assert res.threshold == ("tuned" if policy == "tuned" else f"{float(policy):g}")
    listed = dict(item.split("=") for item in comments[1].removeprefix("thresholds: ").split(", "))
    assert {c: float(v) for c, v in listed.items()} == pytest.approx(dict(zip(TINY_CLASSES[:3], thresholds)),
                                                                     abs=0.006)  # delta: not learned, no threshold
    assert comments[2].endswith(": delta")
    row = rows[0]
    assert row["delta"] == "" and row["delta_present"] == ""
    assert [int(row[f"{c}_present"]) for c in TINY_CLASSES[:3]] == expected_present(probs, thresholds)[:3]

    # CSV per second: a present flag per frame under the same thresholds.
    _, frame_rows = parse_csv(format_results(res, "csv", per_second=True))
    assert len(frame_rows) == 10 * 4
    for r in frame_rows:
        t, c = int(r["frame"]), TINY_CLASSES.index(r["instrument"])
        if c == 3:
            assert r["probability"] == "" and r["present"] == ""
        else:
            assert int(r["present"]) == int(expected_frames[t, c])
            assert float(r["probability"]) == pytest.approx(frames[t, c], abs=1e-5)

    # JSON: the policy with its values, delta null, frame present flags.
    doc = json.loads(format_results(res, "json", per_second=True))
    assert doc["threshold"]["policy"] == res.threshold and doc["not_learned"] == ["delta"]
    assert list(doc["threshold"]["values"].values()) == pytest.approx(thresholds.tolist())
    item = doc["files"][0]
    assert item["probabilities"]["delta"] is None and "delta" not in item["present"]
    assert item["present"] == [c for c, p in zip(TINY_CLASSES, tags.present) if p]
    assert np.array(item["frame_present"]).tolist() == expected_frames.astype(int).tolist()
    assert all(row[3] is None for row in item["frame_probabilities"])

    # The readable answer: the policy, then only learned instruments with their thresholds.
    text = readable(res)
    assert text.splitlines()[0] == f"threshold: {res.threshold_description}"
    answer = text.splitlines()[-1].split(" s): ", 1)[1]
    assert "delta" not in answer
    named = re.findall(r"(\w+) ([0-9.]+) \(threshold ([0-9.]+)\)", answer)
    assert named, answer
    for name, p, t in named:
        c = TINY_CLASSES.index(name)
        assert float(p) == pytest.approx(probs[c], abs=0.006) and float(t) == pytest.approx(thresholds[c], abs=0.006)
    if tags.present.any():
        assert {n for n, _, _ in named} == {c for c, p in zip(TINY_CLASSES, tags.present) if p}


def expected_present(probs, thresholds):
    return [int(p > t) for p, t in zip(probs, thresholds)]


def test_jams_states_the_policy_and_leaves_out_what_was_not_learned(delta_run, tmp_path):
    import jams

    from instrec.tagging.jams_output import write_jams

    run, clip, probs, frames = delta_run
    res = predict(run, [clip], per_second=True, threshold=0.4)
    (path,) = write_jams(res, tmp_path)
    jam = jams.load(str(path))
    assert jam.sandbox.threshold_policy == "0.4" and jam.sandbox.not_learned == ["delta"]
    frame_anns = [a for a in jam.annotations if getattr(a.sandbox, "kind", None) != "segments"]
    assert [a.sandbox.instrument for a in frame_anns] == TINY_CLASSES[:3]
    assert jam.sandbox.frame_policy == res.frame_policy and res.frame_policy.startswith("per second: ")
    for c, ann in enumerate(frame_anns):
        assert ann.sandbox.threshold == 0.4 and ann.sandbox.present == bool(probs[c] > 0.4)
        # Untuned run: frame threshold = the clip threshold, gated by the clip answer.
        assert ann.sandbox.frame_present == ((frames[:, c] > 0.4) & (probs[c] > 0.4)).astype(int).tolist()


def test_a_run_without_tuned_thresholds_says_it_falls_back(delta_run):
    run, clip, _, _ = delta_run
    config = json.loads((run / "config.json").read_text())
    saved = config.pop("thresholds")
    (run / "config.json").write_text(json.dumps(config))
    write_run_integrity(run)  # as if the run had finished so
    try:
        res = predict(run, [clip])
    finally:
        _set_thresholds(run, saved)
    assert res.thresholds.tolist() == [0.5] * 4 and "no tuned thresholds" in res.threshold_description


def test_learned_classes_of_an_older_run_come_from_its_training_partition(delta_run):
    run, *_ = delta_run
    config = json.loads((run / "config.json").read_text())
    assert learned_classes(config) == (pytest.approx([True, True, True, False]), None)
    del config["untrained_classes"]
    learned, note = learned_classes(config)
    assert learned.tolist() == [True, True, True, False] and "training partition" in note
    config["train"]["data"] = str(run / "nowhere")
    learned, note = learned_classes(config)
    assert learned.all() and "cannot be read" in note


def test_cli_threshold_option_reaches_every_output(delta_run, tmp_path, capsys):
    from instrec.cli import main

    run, clip, probs, _ = delta_run
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(clip), "--run", str(run), "--threshold", "1.2"])
    assert exit_info.value.code == 2
    assert "argument --threshold: threshold '1.2': must be at least 0 and below 1" in capsys.readouterr().err
    out = tmp_path / "t.csv"
    assert main(["predict", str(clip), "--run", str(run), "--threshold", "0.45", "--out", str(out), "-q",
                 "--print"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "threshold: 0.45 for every instrument"
    comments, rows = parse_csv(out.read_text())
    assert comments[0] == "threshold: 0.45 for every instrument"
    assert [int(rows[0][f"{c}_present"]) for c in TINY_CLASSES[:3]] == [int(p > 0.45) for p in probs[:3]]
