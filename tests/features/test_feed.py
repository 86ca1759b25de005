"""The GPU code paths, run on the CPU: front ends batching row groups per network call, and
worker processes that only decode while this process runs the networks (instrec.features.feed)."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from instrec.features.frontends import VGGishFrontEnd, get_frontend
from instrec.features.musicnn_frontend import _calls
from instrec.features.vggish import EMBEDDING_SIZE, PCA_EIGEN_VECTORS, PCA_MEANS, VGGish
from instrec.parallel import fork_available

needs_fork = pytest.mark.skipif(not fork_available(), reason="worker processes are forked on Linux only")


def _signal(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.4 * np.sin(2 * np.pi * 260 * t) * (1 + np.sin(2 * np.pi * 0.3 * t)) / 2
            + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def test_patches_are_packed_in_order_into_calls_of_at_most_the_batch_size():
    # groups of 11, 11 and 5 patches, 16 per call: by hand
    assert _calls([11, 11, 5], 16) == [[(0, 0, 11), (1, 0, 5)], [(1, 5, 11), (2, 0, 5)]]
    assert _calls([11], 16) == [[(0, 0, 11)]]  # the CPU path: a group alone, one call
    assert _calls([3, 3], 2) == [[(0, 0, 2)], [(0, 2, 3), (1, 0, 1)], [(1, 1, 3)]]


def test_musicnn_groups_batched_per_call_give_the_features_of_one_group_per_call(musicnn_weights_dir):
    fe = get_frontend("musicnn", weights_dir=musicnn_weights_dir)
    assert (fe.groups_per_call, fe.batch_size) == (1, 16)
    audio = _signal(130.0)  # 135 rows: five groups, the last one short
    alone = fe.features(audio, 16000)
    fe.groups_per_call, fe.batch_size = 3, 20  # calls that cross groups, as on a GPU
    together = fe.features(audio, 16000)
    assert together.shape == alone.shape == (135, 803)
    diff = np.abs(together.astype(int) - alone.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # float rounding of another batch, quantised


def _vggish_with_random_weights() -> VGGishFrontEnd:
    torch.manual_seed(0)
    fe = VGGishFrontEnd.__new__(VGGishFrontEnd)  # no weight files: a seeded random network
    fe.model, fe.batch_size = VGGish().eval(), None
    rng = np.random.default_rng(0)
    fe.pca = {PCA_EIGEN_VECTORS: rng.standard_normal((EMBEDDING_SIZE, EMBEDDING_SIZE)) * 0.05,
              PCA_MEANS: np.zeros(EMBEDDING_SIZE)}
    return fe


def test_vggish_groups_batched_per_call_give_the_features_of_one_group_per_call():
    fe = _vggish_with_random_weights()
    audio = _signal(70.0, seed=2)  # 72 rows: groups of 32, 32 and 8
    alone = fe.features(audio, 16000)
    fe.groups_per_call, fe.batch_size = 3, 24
    together = fe.features(audio, 16000)
    assert together.shape == alone.shape == (72, 128)
    assert np.abs(together.astype(int) - alone.astype(int)).max() <= 1


def test_prepared_files_finish_to_the_features_of_the_file(tmp_path):
    fe = get_frontend("logmel")
    sf.write(tmp_path / "a.flac", _signal(50.0), 16000)
    groups = fe.prepare_file(tmp_path / "a.flac")
    assert len(groups) == 2 and [len(g) for g in groups] == [32, 20]  # 52 rows
    assert np.array_equal(fe.finish_prepared(groups), fe.features_from_file(tmp_path / "a.flac"))


@pytest.fixture
def folder(tmp_path):
    """Seven tones of different lengths (one of 40 s), and an undecodable file."""
    audio = tmp_path / "audio"
    audio.mkdir()
    for i, secs in enumerate([3.0, 12.5, 0.5, 40.0, 7.0, 10.0, 22.0]):
        t = np.arange(int(secs * 16000)) / 16000
        sf.write(audio / f"t{i}.wav", (0.3 * np.sin(2 * np.pi * (150 + 90 * i) * t)).astype(np.float32), 16000)
    (audio / "t3b.wav").write_bytes(b"RIFF....WAVE not audio")
    return audio


@needs_fork
# cache_seconds 20: the 22-s and 40-s files are streamed here; 3 groups per call: files share calls
@pytest.mark.parametrize("cache_seconds, groups_per_call", [(600.0, 1), (20.0, 1), (600.0, 3), (20.0, 3)])
def test_fed_tagging_gives_the_tags_of_workers_that_tag_whole_files(finished_run, folder, cache_seconds,
                                                                    groups_per_call):
    from instrec.tagging.batch import tag_paths
    from instrec.tagging.predict import Tagger

    tagger = Tagger(finished_run, device="cpu")
    tagger.frontend.cache_seconds, tagger.frontend.groups_per_call = cache_seconds, groups_per_call
    paths = sorted(folder.iterdir())
    whole, whole_failed = tag_paths(tagger, paths, jobs=2, feed=False)
    fed, fed_failed = tag_paths(tagger, paths, jobs=2, feed=True)
    assert [f.path for f in fed] == [f.path for f in whole] and len(fed) == 7
    for a, b in zip(fed, whole):
        assert np.array_equal(a.probabilities, b.probabilities) and a.notes == b.notes and a.duration == b.duration
    assert fed_failed == whole_failed and "t3b.wav" in fed_failed[0][0]
    assert any("shorter than one" in n for n in fed[2].notes)  # the 0.5-s clip's warning, from a worker


@needs_fork
def test_featurize_through_the_gpu_path_writes_the_same_bytes(folder, tmp_path, monkeypatch):
    from instrec.data import featurize as fz

    fz.featurize([folder], tmp_path / "cpu", frontend="logmel", progress=False, threads=1, jobs=2, device="cpu")
    monkeypatch.setattr(fz, "is_accelerator", lambda device: True)  # the GPU's code path, on the CPU
    report = fz.featurize([folder], tmp_path / "fed", frontend="logmel", progress=False, threads=1, jobs=2,
                          device="cpu")
    assert report.n_clips == 7 and len(report.failures) == 1
    for name in ("openmic-2018.npz", "featurize-notes.csv", "frontend.json"):
        assert (tmp_path / "cpu" / name).read_bytes() == (tmp_path / "fed" / name).read_bytes(), name
