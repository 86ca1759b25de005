"""The command line: every command documents itself with examples, numbers are checked once at parse time."""
from __future__ import annotations

import argparse

import pytest

from instrec.cli import build_parser, main
from instrec.cli.args import SEED_MAX, integer, number


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(_subparsers()))
def test_every_command_has_examples_and_every_option_a_help(name):
    sp = _subparsers()[name]
    text = sp.format_help()
    examples = text.split("examples:\n", 1)[1].splitlines()
    commands = [line.strip() for line in examples if line.strip().startswith("instrec ")]
    assert len(commands) >= 2 and all(c.split()[1] == name for c in commands)
    undocumented = [a.dest for a in sp._actions if not a.help]
    assert undocumented == []


def test_help_shows_real_defaults_but_not_empty_ones():
    text = " ".join(_subparsers()["synth"].format_help().split())
    assert "number of 10-s clips to render (default: 2000, or the preset's)" in text
    assert "(default: 0)" in text  # the seed: a zero default is still a default
    assert "(default: None)" not in text and "(default: False)" not in text


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "d", "--out", "o", "--lr", "inf"], "argument --lr: inf is out of range: must be a finite"),
    (["train", "--data", "d", "--out", "o", "--lr", "0"], "argument --lr: 0 is out of range"),
    (["train", "--data", "d", "--out", "o", "--seed", "-1"], "argument --seed: -1 is out of range: a seed"),
    (["train", "--data", "d", "--out", "o", "--epochs", "0"], "argument --epochs: 0 is out of range: must be >= 1"),
    (["train", "--data", "d", "--out", "o", "--focal-alpha", "1.5"], "argument --focal-alpha: 1.5 is out of range"),
    (["train", "--data", "d", "--out", "o", "--val-fraction", "1"], "argument --val-fraction: 1 is out of range"),
    (["train", "--data", "d", "--out", "o", "--mixup", "nan"], "argument --mixup: nan is out of range"),
    (["predict", "x.wav", "--threads", "-1"], "argument --threads: -1 is out of range: threads must be in [0, 256]"),
    (["synth", "--out", "o", "--clips", "many"], "argument --clips: 'many' is not an integer"),
    (["synth", "--out", "o", "--labels-per-clip", "0.5"], "argument --labels-per-clip: 0.5 is out of range"),
    (["synth", "--out", "o", "--preset", "huge"], "argument --preset: invalid choice: 'huge'"),
    (["train", "--data", "d", "--out", "o", "--pseudo-precision", "0.5"], "argument --pseudo-precision: 0.5 is out"),
    (["train", "--data", "d", "--out", "o", "--label-balance", "2"], "argument --label-balance: 2 is out of range"),
    (["featurize", "a.wav", "--out", "o", "--test-fraction", "2"], "argument --test-fraction: 2 is out of range"),
    (["experiment", "--data", "d", "--out", "o", "--seeds", "0"], "argument --seeds: 0 is out of range"),
    (["demo", "--jobs", "-2"], "argument --jobs: -2 is out of range"),
])
def test_bad_numbers_are_refused_before_any_work(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0]


def test_number_types_accept_their_bounds():
    assert integer(0, SEED_MAX)(str(SEED_MAX)) == SEED_MAX
    assert number(0, 1)("1") == 1.0 and number(0, 1)("0") == 0.0
    with pytest.raises(argparse.ArgumentTypeError, match="out of range"):
        number(0, 1, hi_open=True)("1")
    with pytest.raises(argparse.ArgumentTypeError, match="out of range"):
        integer(0, SEED_MAX)(str(SEED_MAX + 1))


def test_train_options_keep_the_config_defaults():
    args = build_parser().parse_args(["train", "--data", "d", "--out", "o"])
    assert (args.lr, args.epochs, args.batch_size, args.focal_alpha, args.seed) == (5e-4, 200, 32, 0.75, 0)


def test_synth_preset_names_match_the_library():
    from instrec.cli.data import PRESET_NAMES
    from instrec.synth.presets import PRESETS

    assert PRESET_NAMES == tuple(PRESETS)


def test_synth_preset_sets_what_the_command_line_leaves_open(monkeypatch, tmp_path):
    import instrec.synth
    from instrec.synth import presets

    calls = []
    monkeypatch.setattr(instrec.synth, "build_corpus", lambda *a, **kw: calls.append((a, kw)))
    monkeypatch.setattr(presets, "full_font", lambda candidates=(): tmp_path / "full.sf2")
    main(["synth", "--out", str(tmp_path / "c"), "--preset", "openmic", "--test-fraction", "0.5", "-q"])
    main(["synth", "--out", str(tmp_path / "d"), "-q"])
    (args_p, kw_p), (args_d, kw_d) = calls
    assert args_p[1] == 20_000 and kw_p["soundfonts"] == [str(tmp_path / "full.sf2")]
    assert (kw_p["labels_per_clip"], kw_p["test_fraction"], kw_p["recipe"]) == (2.0, 0.5, "ensemble")
    assert args_d[1] == 2000 and kw_d["soundfonts"] is None and kw_d["test_fraction"] == 0.25
