"""Evaluation outputs, tagging audio files, and featurising a user's collection."""
from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest
import soundfile as sf
from conftest import TINY_CLASSES, make_tiny_dataset

from instrec._io import InstrecError
from instrec.cli import main
from instrec.evaluation.metrics import evaluate
from instrec.run import write_run_integrity
from instrec.tagging.formats import parse_csv
from instrec.training.config import TrainConfig
from instrec.training.loop import train

SR = 22050


@pytest.fixture(scope="module")
def run128(tmp_path_factory):
    """A bilstm-att run on 128-feature tiny data, labelled as coming from the logmel front end."""
    root = tmp_path_factory.mktemp("run128")
    data = make_tiny_dataset(root / "data", n_features=128, n=160)
    train(TrainConfig(data=str(data), out=str(root / "run"), epochs=3, seed=1), progress=False)
    return root / "run"


def _tone(path, seconds, freq=440.0, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)
    return path


def test_evaluate_writes_consistent_outputs(run128):
    from instrec.data.openmic import load_split
    from instrec.evaluation.evaluate import evaluate_run

    m = evaluate_run(run128)
    saved = json.loads((run128 / "metrics.json").read_text())
    assert saved["macro_f1"] == pytest.approx(m["macro_f1"]) and saved["split"] == "test"
    with np.load(run128 / "predictions.npz", allow_pickle=False) as z:
        keys, probs = z["sample_key"], z["probabilities"]
        assert z["frame_probabilities"].shape == (40, 10, 4) and z["attention"].shape == (40, 10, 4)
        np.testing.assert_allclose(z["attention"].sum(axis=1), 1.0, atol=1e-5)
    test = load_split(json.loads((run128 / "config.json").read_text())["train"]["data"], "test")
    assert keys.tolist() == test.sample_key.tolist()
    again = evaluate(test.Y_true, test.Y_mask, probs, TINY_CLASSES)
    assert again["macro_f1"] == pytest.approx(m["macro_f1"]) and again["mean_ap"] == pytest.approx(m["mean_ap"], nan_ok=True)
    rows = list(csv.DictReader(open(run128 / "per_class.csv")))
    assert [r["instrument"] for r in rows] == TINY_CLASSES
    assert float(rows[0]["f1"]) == pytest.approx(m["per_class"][0]["f1"], abs=1e-5)
    assert "tuned_threshold" in rows[0] and m["tuned_thresholds"]["macro_f1"] >= 0


def test_evaluate_validation_split_uses_the_runs_keys(run128):
    from instrec.evaluation.evaluate import evaluate_run

    m = evaluate_run(run128, split="validation", out=run128 / "val")
    assert m["n_clips"] == len((run128 / "validation-keys.csv").read_text().split())


def test_predict_tags_files_and_reports_bad_ones(run128, tmp_path):
    from instrec.tagging.predict import predict

    good = _tone(tmp_path / "a.wav", 10.0)
    long = _tone(tmp_path / "long.flac", 25.0, 220.0)
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEnot really")
    res = predict(run128, [good, long, bad], per_second=True)
    assert [f.path for f in res.files] == [str(good), str(long)]
    assert len(res.failures) == 1 and "broken.wav" in res.failures[0][1]
    a, b = res.files
    assert a.n_frames == 10 and a.n_windows == 1 and a.aggregation == "single window"
    assert b.n_frames == 26 and b.n_windows == 3 and "max over 3 windows" in b.aggregation
    assert b.frame_probabilities.shape == (26, 4) and not np.isnan(b.frame_probabilities).any()
    assert res.probabilities.shape == (2, 4)
    # the file-level probability is the max over the windows' clip-level probabilities
    from instrec.features.frontends import get_frontend
    from instrec.models.inference import run_model
    from instrec.run import load_model

    model, _ = load_model(run128)
    x = get_frontend("logmel").features_from_file(long).astype(np.float32) / 255
    windows = np.stack([x[0:10], x[10:20], x[16:26]])
    np.testing.assert_allclose(b.probabilities, run_model(model, windows).clip.max(axis=0), rtol=1e-5)


def test_predict_cli_outputs_and_no_silent_overwrite(run128, tmp_path, capsys):
    clip = _tone(tmp_path / "c.wav", 10.0)
    out = tmp_path / "tags.csv"
    assert main(["predict", str(run128), str(tmp_path), "--out", str(out), "-q"]) == 0
    comments, rows = parse_csv(out.read_text())
    assert comments[0] == "threshold: tuned: one threshold per instrument, chosen for its best F1 on the run's " \
        "validation clips"
    assert len(rows) == 1 and rows[0]["file"] == str(clip)
    assert set(TINY_CLASSES) <= set(rows[0]) and rows[0]["alpha_present"] in ("0", "1")
    before = out.read_text()
    assert main(["predict", str(run128), str(clip), "--out", str(out), "-q"]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err and out.read_text() == before
    js = tmp_path / "tags.json"
    assert main(["predict", str(run128), str(clip), "--out", str(js), "--format", "json", "--per-second", "-q"]) == 0
    doc = json.loads(js.read_text())
    assert np.array(doc["files"][0]["frame_probabilities"]).shape == (10, 4)
    assert np.allclose(np.array(doc["files"][0]["attention"]).sum(axis=0), 1.0, atol=1e-3)
    (tmp_path / "bad.wav").write_bytes(b"")
    code = main(["predict", str(run128), str(tmp_path), "--out", str(tmp_path / "t2.csv"), "-q"])
    assert code == 1 and len(parse_csv((tmp_path / "t2.csv").read_text())[1]) == 1


def test_predict_refuses_a_mismatched_front_end(run128, tmp_path):
    from instrec.tagging.predict import predict

    with pytest.raises(InstrecError, match="trained on 'logmel' features; predicting with front end 'vggish'"):
        predict(run128, [_tone(tmp_path / "a.wav", 2.0)], frontend="vggish")


def test_featurize_builds_a_loadable_dataset(tmp_path):
    from instrec.data.featurize import featurize
    from instrec.data.openmic import load_openmic

    audio = tmp_path / "audio"
    audio.mkdir()
    for i, secs in enumerate([10.0, 12.0, 3.0, 10.0]):
        _tone(audio / f"song{i}.wav", secs, 200 + 100 * i)
    (audio / "junk.wav").write_bytes(b"xx")
    labels = tmp_path / "labels.csv"
    labels.write_text("sample_key,instrument,relevance\nsong0,piano,1.0\nsong1,voice,0.2\nsong3,piano,0.75\n")
    rep = featurize([audio], tmp_path / "ds", frontend="logmel", labels=labels, progress=False, test_fraction=0.25)
    assert rep.n_clips == 4 and len(rep.failures) == 1 and "junk.wav" in rep.failures[0][0]
    ds = load_openmic(tmp_path / "ds")
    assert ds.X.shape == (4, 10, 128) and ds.classes[12] == "piano" and len(ds.classes) == 20
    row = {k: i for i, k in enumerate(ds.sample_key)}
    assert ds.Y_mask.sum() == 3 and ds.Y_true[row["song3"], 12] == pytest.approx(0.75)
    assert json.loads((tmp_path / "ds" / "frontend.json").read_text())["name"] == "logmel"
    notes = {r["sample_key"]: r["note"] for r in csv.DictReader(open(tmp_path / "ds" / "featurize-notes.csv"))}
    assert "padded from 3 to 10 frames" in notes["song2"] and "cut from 12 to 10" in notes["song1"]
    with pytest.raises(InstrecError, match="not empty"):
        featurize([audio], tmp_path / "ds", frontend="logmel", progress=False)


def test_instruments_never_labelled_positive_are_never_tagged(tmp_path):
    from instrec.tagging.predict import predict

    data = make_tiny_dataset(tmp_path / "data", n_features=128, n=80)
    with np.load(data / "openmic-2018.npz") as z:
        arrays = dict(z)
    arrays["Y_true"][:, 3] = 0.0  # "delta" only ever labelled absent
    np.savez(data / "openmic-2018.npz", **arrays)
    run = tmp_path / "run"
    cfg = train(TrainConfig(data=str(data), out=str(run), epochs=1), progress=False)
    assert cfg["untrained_classes"] == ["delta"]
    config = json.loads((run / "config.json").read_text())
    config["thresholds"] = [0.0] * 4  # every trained instrument would be tagged present
    (run / "config.json").write_text(json.dumps(config))
    write_run_integrity(run)  # as if the run had finished so
    tags = predict(run, [_tone(tmp_path / "a.wav", 10.0)]).files[0]
    assert tags.present.tolist() == [True, True, True, False]
    assert np.isnan(tags.probabilities[3]) and not np.isnan(tags.probabilities[:3]).any()
    assert any("not learned, no probability: delta" in n for n in tags.notes)


def test_jams_output_parses_back_with_one_annotation_per_instrument(run128, tmp_path):
    import jams

    (tmp_path / "in").mkdir()
    clip = _tone(tmp_path / "in" / "c.wav", 10.0)
    _tone(tmp_path / "in" / "d.wav", 3.0)
    out = tmp_path / "jams"
    assert main(["predict", str(tmp_path / "in"), "--run", str(run128), "--format", "jams", "--out", str(out),
                 "-q", "--per-second"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["c.jams", "d.jams"]
    from instrec.tagging.predict import predict

    tags = predict(run128, [clip], per_second=True).files[0]
    jam = jams.load(str(out / "c.jams"))
    assert jam.file_metadata.duration == pytest.approx(10.0)
    frames = [a for a in jam.annotations if getattr(a.sandbox, "kind", None) != "segments"]
    segments = [a for a in jam.annotations if getattr(a.sandbox, "kind", None) == "segments"]
    assert [a.sandbox.instrument for a in frames] == [a.sandbox.instrument for a in segments] == TINY_CLASSES
    for c, ann in enumerate(segments):  # the time ranges of the frames tagged present, back from JAMS
        spans = [(o.time, o.time + o.duration) for o in ann.data]
        active = [any(a - 1e-6 <= 0.96 * t and 0.96 * (t + 1) <= b + 1e-6 for a, b in spans) for t in range(10)]
        assert active == tags.frame_present[:, c].tolist()
    for c, ann in enumerate(frames):
        assert ann.namespace == "tag_open"
        obs = ann.data
        assert len(obs) == tags.n_frames == 10
        assert [o.time for o in obs] == pytest.approx([0.96 * t for t in range(10)])
        assert [o.confidence for o in obs] == pytest.approx(tags.frame_probabilities[:, c].tolist(), abs=1e-6)
        assert ann.sandbox.present == bool(tags.present[c])
    assert main(["predict", str(clip), "--run", str(run128), "--format", "jams", "-q"]) == 2  # needs --out DIR


def test_plots_are_written_and_readable(run128, tmp_path):
    import matplotlib.image as mpimg

    clip = _tone(tmp_path / "c.wav", 10.0)
    assert main(["predict", str(clip), "--run", str(run128), "--out", str(tmp_path / "t.csv"),
                 "--plot", str(tmp_path / "pics"), "-q"]) == 0
    image = mpimg.imread(tmp_path / "pics" / "c.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 400
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_output_names_never_collide():
    from instrec.tagging.formats import output_names
    from instrec.tagging.results import FileTags, TagResults

    def tags(path):
        return FileTags(path, np.zeros(2), np.zeros(2, bool), 1, 1, "single window")

    results = TagResults(["a", "b"], [tags("x/song.wav"), tags("y/song.flac"), tags("z/other.mp3")], [])
    x, y, other = output_names(results, ".jams")
    # Same stems: each gets 8 hex digits of its path's sha256 (the same whatever the other inputs).
    assert (x, y, other) == (f"song-{hashlib.sha256(b'x/song.wav').hexdigest()[:8]}.jams",
                             f"song-{hashlib.sha256(b'y/song.flac').hexdigest()[:8]}.jams", "other.jams")


def test_readable_answer_lists_what_was_heard_with_thresholds(run128, tmp_path, capsys):
    from instrec.tagging.formats import readable
    from instrec.tagging.results import FileTags, TagResults

    heard = FileTags("a.wav", np.array([0.2, 0.9, 0.7, 0.1]), np.array([False, True, True, False]), 10, 1, "x")
    quiet = FileTags("b.wav", np.array([0.3, 0.1, 0.45, 0.2]), np.zeros(4, bool), 5, 1, "x")
    results = TagResults(TINY_CLASSES, [heard, quiet], [], np.array([0.5, 0.6, 0.65, 0.5]),
                         np.array([True, True, True, False]))
    assert readable(results, top=2).splitlines() == [
        "threshold: 0.5 for every instrument",
        "not learned (no labelled positive in the training data; no probability, never present): delta",
        "a.wav (9.6 s): beta 0.90 (threshold 0.60), gamma 0.70 (threshold 0.65)",
        "b.wav (4.8 s): nothing above its threshold; most probable: gamma 0.45 (threshold 0.65), "
        "alpha 0.30 (threshold 0.50)"]
    clip = _tone(tmp_path / "c.wav", 10.0)
    assert main(["predict", str(clip), "--run", str(run128), "--print", "-q"]) == 0
    head, policy, line = capsys.readouterr().out.strip().splitlines()
    assert head.startswith("threshold: tuned: ") and policy.startswith("per second: ")  # a frame model
    assert line.startswith(f"{clip} (10.0 s): ") and "file,n_frames" not in line


def test_localization_writes_a_per_instrument_segment_table(run128, tmp_path):
    from instrec.evaluation.evaluate import evaluate_run, localize_run

    data = run128.parent / "data"
    keys = (data / "partitions" / "split01_test.csv").read_text().split()
    (data / "strong-labels.csv").write_text("sample_key,instrument,onset,offset\n" + "".join(
        f"{k},alpha,0.0,3.0\n{k},beta,5.0,5.5\n" for k in keys))
    try:
        m = evaluate_run(run128, out=tmp_path / "eval", localization=True)
        before = (run128 / "metrics.json").read_text() if (run128 / "metrics.json").exists() else None
        scores = localize_run(run128, out=tmp_path / "loc")
    finally:
        (data / "strong-labels.csv").unlink()
    clip_table = (tmp_path / "eval" / "per_class.csv").read_text()
    seg_table = (tmp_path / "eval" / "localization" / "per_class.csv").read_text()
    assert seg_table != clip_table
    rows = list(csv.DictReader(seg_table.splitlines()))
    assert [(r["method"], r["instrument"]) for r in rows] == [
        (method, c) for method in ("frame_level", "frame_agnostic") for c in TINY_CLASSES]
    # Reference segments per instrument, counted from the labels written above: 3 and 1 per clip.
    n_ref = {r["instrument"]: int(r["n_ref"]) for r in rows if r["method"] == "frame_level"}
    assert n_ref == {"alpha": 3 * len(keys), "beta": len(keys), "gamma": 0, "delta": 0}
    for r, want in zip(rows[:4], m["localization"]["frame_level"]["per_class"]):
        assert float(r["f1"]) == pytest.approx(want["f1"], abs=1e-5) and int(r["tp"]) == want["tp"]
    saved = json.loads((tmp_path / "eval" / "localization" / "metrics.json").read_text())
    assert saved["frame_level"]["f1"] == pytest.approx(m["localization"]["frame_level"]["f1"])
    # localize_run gives the same scores and leaves the evaluation's own files alone.
    assert scores["frame_level"]["f1"] == pytest.approx(m["localization"]["frame_level"]["f1"])
    assert sorted(p.name for p in (tmp_path / "loc").iterdir()) == ["localization"]
    assert ((run128 / "metrics.json").read_text() if (run128 / "metrics.json").exists() else None) == before


def test_per_second_print_says_when_each_instrument_plays(run128, tmp_path, capsys):
    from instrec.tagging.segments import parse_ranges

    clip = _tone(tmp_path / "c.wav", 10.0)
    song = _tone(tmp_path / "song.wav", 25.0)
    # --per-second --print used to print the clip answer only; now every file gets its time ranges.
    assert main(["predict", str(clip), "--run", str(run128), "--per-second", "--print", "-q"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith(f"{clip} (10.0 s): ")
    indented = lines[3:]
    assert indented and all(line.startswith("  ") for line in indented)
    for line in indented:
        name, ranges = line.strip().split(" ", 1)
        if name != "per":
            assert name in TINY_CLASSES and parse_ranges(ranges)
    # A file longer than one clip lists its ranges without --per-second, and --min-seconds is stated.
    assert main(["predict", str(song), "--run", str(run128), "--print", "-q", "--min-seconds", "7"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "at least 7 s" in lines[1] and lines[2].startswith(f"{song} (25.0 s): ")
    assert all(line.startswith("  ") for line in lines[3:]) and len(lines) > 3
    with pytest.raises(SystemExit):
        main(["predict", str(song), "--run", str(run128), "--min-seconds", "-1"])
