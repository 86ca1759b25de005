"""Small things a newcomer meets first: which option is wrong and whose usage to show, a
missing file named before any model loads, the present instruments by name."""
from __future__ import annotations

import numpy as np
import pytest

from instrec.cli import main
from instrec.tagging.results import FileTags, TagResults


def _usage_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


def test_an_unknown_option_before_the_command_is_named(capsys):
    err = _usage_error(["--bogus"], capsys)
    assert "unrecognized arguments: --bogus" in err and "required: COMMAND" not in err
    assert err.startswith("usage: instrec [-h]")


def test_an_unknown_option_after_the_command_shows_that_commands_usage(capsys):
    err = _usage_error(["predict", "song.wav", "--formt", "json"], capsys)
    assert err.startswith("usage: instrec predict")
    assert "instrec predict: error: unrecognized arguments: --formt json (did you mean --format?)" in err


def test_top_level_options_and_their_prefixes_still_work(capsys):
    for argv in (["--version"], ["--vers"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0 and capsys.readouterr().out.startswith("instrec ")


def test_a_missing_input_is_reported_before_the_model_loads(tmp_path, monkeypatch, capsys):
    import instrec.tagging.predict as P

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded for a file that does not exist")

    monkeypatch.setattr(P, "load_model", no_model)
    assert main(["predict", str(tmp_path / "nope.wav")]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [f"instrec: failed: {tmp_path / 'nope.wav'}: no such file or folder",
                                "instrec: 1 file(s) failed"]


def test_with_other_inputs_the_missing_one_is_named_before_tagging_starts(tmp_path, monkeypatch, capsys):
    import instrec.tagging.predict as P

    seen = []

    def fake_predict(run_dir, inputs, **kwargs):
        seen.append(capsys.readouterr().err)  # what was printed before the model would load
        return TagResults(["a"], [], [(str(tmp_path / "nope.wav"), "nope.wav: audio file not found")])

    monkeypatch.setattr(P, "predict", fake_predict)
    (tmp_path / "here.wav").write_bytes(b"")
    assert main(["predict", str(tmp_path / "nope.wav"), str(tmp_path / "here.wav"), "--out",
                 str(tmp_path / "t.csv")]) == 1
    assert seen == [f"instrec: {tmp_path / 'nope.wav'}: no such file or folder; tagging the other inputs\n"]


def test_present_instruments_by_name_most_probable_first():
    f1 = FileTags("x.wav", np.array([0.2, 0.7, 0.9, np.nan]), np.array([False, True, True, False]), 10, 1, "att")
    f2 = FileTags("y.wav", np.array([0.6, 0.1, 0.3, np.nan]), np.array([False, False, False, False]), 10, 1, "att")
    tags = TagResults(["cello", "drums", "flute", "organ"], [f1, f2], [])
    assert tags.present_instruments == [["flute", "drums"], []]
