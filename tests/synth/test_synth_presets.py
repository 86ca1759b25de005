"""Corpus presets (instrec.synth.presets)."""
from __future__ import annotations

from pathlib import Path

import pytest

from instrec._io import InstrecError
from instrec.synth.fonts import KNOWN_FONTS
from instrec.synth.presets import PRESETS, class_imbalance, full_font, preset_options


def test_class_imbalance_by_hand():
    per_class = {"a": {"present": 40}, "b": {"present": 10}, "c": {"present": 5}, "d": {"present": 5}}
    got = class_imbalance(per_class)
    assert got == {"max": 40.0, "min": 5.0, "max_over_min": 8.0, "top_quarter_share": 40 / 60}
    assert class_imbalance({"a": {"present": 3}, "b": {"present": 0}})["max_over_min"] == float("inf")
    with pytest.raises(ValueError, match="empty"):
        class_imbalance({})


def test_unknown_preset_and_missing_fonts(tmp_path):
    with pytest.raises(InstrecError, match="unknown corpus preset 'nope'; choose one of openmic"):
        preset_options("nope")
    with pytest.raises(InstrecError, match="no installed SoundFont renders all 20 classes"):
        full_font((str(tmp_path / "missing.sf2"),))


@pytest.mark.skipif(not Path(KNOWN_FONTS[0]).is_file(), reason="Debian's FluidR3_GM is not installed")
def test_openmic_preset_renders_every_class_at_openmic_size():
    opts = preset_options("openmic")
    assert opts["soundfont"] == KNOWN_FONTS[0]  # the first font with all 20 classes
    assert opts["n_clips"] == 20_000 and opts["labels_per_clip"] == 2.0 and opts["test_fraction"] == 0.25
    assert PRESETS["openmic"]["n_clips"] == 20_000  # the returned options are a copy
