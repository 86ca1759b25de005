"""The demo reuses its corpus only when it was rendered with the settings asked for."""
from __future__ import annotations

import json

import pytest

from instrec.data.layout import CORPUS_STATS_FILE, NPZ_FILE
from instrec.pipelines import demo


class _Stop(Exception):
    pass


@pytest.mark.parametrize("stats, renders", [
    ({"n_clips": 40, "seed": 0, "recipe": "ensemble"}, False),   # the same: reused
    ({"n_clips": 300, "seed": 0, "recipe": "ensemble"}, True),   # other size: rendered again
    ({"n_clips": 40, "seed": 7, "recipe": "ensemble"}, True),    # other seed
    ({"n_clips": 40, "seed": 0, "recipe": "realistic"}, True),   # other recipe
    (None, True),                                                # no stats at all
])
def test_demo_renders_again_unless_the_corpus_matches(tmp_path, monkeypatch, stats, renders):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / NPZ_FILE).write_bytes(b"")
    if stats is not None:
        (corpus / CORPUS_STATS_FILE).write_text(json.dumps(stats))
    calls = []
    monkeypatch.setattr(demo, "build_corpus", lambda *a, **k: calls.append((a, k)))

    def stop(*a, **k):
        raise _Stop

    monkeypatch.setattr(demo, "run_experiment", stop)
    with pytest.raises(_Stop):
        demo.run_demo(tmp_path, clips=40, epochs=1, jobs=1, real=None, progress=False)
    assert bool(calls) == renders
    if renders:
        assert calls[0][0][1:3] == (40, 0)
