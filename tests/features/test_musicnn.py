"""musicnn: log-mel input, the PyTorch network against the original TensorFlow code's outputs
(``data/musicnn_golden.npz``, made by ``data/make_musicnn_golden.py``), and weight conversion.

The golden tests need the real weights: the musicnn 0.1.0 wheel is fetched once per session
with pip (or taken from ``$INSTREC_MUSICNN_WHEEL``) and converted into a temporary cache;
they are skipped only when pip cannot download it.
"""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from instrec._io import InstrecError
from instrec.features import musicnn as M
from instrec.features import musicnn_weights as W
from instrec.fetch import sha256_file

DATA = Path(__file__).parent / "data"
GOLDEN = np.load(DATA / "musicnn_golden.npz")


def flac_audio() -> np.ndarray:
    audio, sr = sf.read(DATA / "musicnn_input.flac", dtype="float32")
    assert sr == M.SAMPLE_RATE and audio.ndim == 1
    return audio


# --------------------------------------------------------------------------- log-mel input

def test_mel_filterbank_matches_librosa():
    librosa = pytest.importorskip("librosa")
    ref = librosa.filters.mel(sr=16000, n_fft=512, n_mels=96)
    np.testing.assert_allclose(M.mel_filterbank(), ref, rtol=0, atol=1e-7)


@pytest.mark.parametrize("n_samples", [48000, 48000 + 1, 16000 * 4 + 255, 1000])
def test_log_mel_matches_librosa(n_samples):
    librosa = pytest.importorskip("librosa")
    audio = (np.random.default_rng(n_samples).standard_normal(n_samples) * 0.3).astype(np.float32)
    mel = librosa.feature.melspectrogram(y=audio, sr=16000, n_fft=512, hop_length=256, n_mels=96).T
    ref = np.log10(10000 * mel.astype(np.float32) + 1)
    got = M.log_mel(audio)
    assert got.shape == ref.shape == (M.n_frames(n_samples), 96) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)


def test_log_mel_matches_golden():
    """The original's batch_data spectrogram (librosa + log10(10000 x + 1)); measured max |diff| 4.8e-7."""
    got = M.log_mel(flac_audio())
    assert got.shape == GOLDEN["logmel"].shape == (563, 96)
    np.testing.assert_allclose(got, GOLDEN["logmel"], rtol=0, atol=1e-5)


def test_log_mel_pieces_equal_whole():
    audio = np.random.default_rng(1).uniform(-1, 1, 16000 * 5).astype(np.float32)
    whole = M.log_mel(audio)
    for first, count in ((0, 1), (0, 187), (1, 50), (150, 163), (312, 1), (0, len(whole))):
        np.testing.assert_allclose(M.log_mel(audio, first, count), whole[first:first + count], rtol=0, atol=1e-6)
    with pytest.raises(ValueError):
        M.log_mel(audio, 300, 100)


def test_patching_follows_the_original():
    assert (M.PATCH_FRAMES, M.PATCH_HOP) == (187, 187)
    assert [M.n_patches(n) for n in (0, 186, 187, 373, 374, 563)] == [0, 0, 1, 1, 2, 3]
    mel = np.arange(563 * 96, dtype=np.float32).reshape(563, 96)
    patches = M.make_patches(mel)
    assert patches.shape == (3, 187, 96)
    np.testing.assert_array_equal(patches[2], mel[374:561])
    assert M.make_patches(mel[:100]).shape == (0, 187, 96)
    with pytest.raises(InstrecError, match="too short"):
        M.extract(np.zeros(16000 * 2, np.float32), model=M.Musicnn())


# --------------------------------------------------------------------------- network layout

def random_network(seed: int = 0) -> M.Musicnn:
    """Random weights, batch-norm scales of both signs (the fast path takes min where scale < 0)."""
    gen = torch.Generator().manual_seed(seed)
    net = M.Musicnn()
    state = {}
    for name, value in net.state_dict().items():
        if name.endswith("running_var"):
            state[name] = torch.rand(value.shape, generator=gen) + 0.5
        elif name.endswith("bn.weight"):
            state[name] = torch.randn(value.shape, generator=gen)
        else:
            fan_in = value[0].numel() if value.ndim > 1 else 4
            state[name] = torch.randn(value.shape, generator=gen) / fan_in ** 0.5
    net.load_state_dict(state)
    return net.eval()


def reference_forward(net: M.Musicnn, patches: torch.Tensor) -> dict[str, torch.Tensor]:
    """A direct transcription of the original graph with stock PyTorch ops, channels first:
    conv2d, ReLU, batch norm, max over frequency, in that order."""
    sd = net.state_dict()

    def bn(x: torch.Tensor, prefix: str, dim: int = 1) -> torch.Tensor:
        shape = [1] * x.ndim
        shape[dim] = -1
        p = {k: sd[f"{prefix}.{k}"].view(shape) for k in ("weight", "bias", "running_mean", "running_var")}
        return (x - p["running_mean"]) / torch.sqrt(p["running_var"] + 1e-3) * p["weight"] + p["bias"]

    x = bn(patches[:, None], "input_bn")  # (N, 1, T, 96)
    front = []
    for i in range(2):
        z = F.conv2d(F.pad(x, (0, 0, 3, 3)), sd[f"timbral.{i}.weight"], sd[f"timbral.{i}.bias"])
        front.append(bn(torch.relu(z), f"timbral.{i}.bn").amax(dim=3))
    for i, k in enumerate((128, 64, 32)):
        z = F.conv2d(F.pad(x, (0, 0, (k - 1) // 2, k // 2)), sd[f"temporal.{i}.weight"], sd[f"temporal.{i}.bias"])
        front.append(bn(torch.relu(z), f"temporal.{i}.bn").amax(dim=3))
    h = [torch.cat(front, dim=1)]  # (N, 561, T)
    for i in range(3):
        z = bn(torch.relu(F.conv1d(F.pad(h[-1], (3, 3)), sd[f"midend.{i}.weight"], sd[f"midend.{i}.bias"])),
               f"midend.{i}.bn")
        h.append(z if i == 0 else z + h[-1])
    feats = torch.cat(h, dim=1)
    max_pool, mean_pool = feats.amax(dim=2), feats.mean(dim=2)
    flat = torch.stack([max_pool, mean_pool], dim=2).reshape(len(patches), -1)
    pen = bn(torch.relu(F.linear(bn(flat, "pool_bn"), sd["dense.weight"], sd["dense.bias"])), "dense_bn")
    logits = F.linear(pen, sd["out.weight"], sd["out.bias"])
    return {"taggram": torch.sigmoid(logits), "penultimate": pen, "max_pool": max_pool, "mean_pool": mean_pool,
            "features": feats.transpose(1, 2)}


@pytest.mark.parametrize("n_time", [187, 40])
def test_fast_layout_equals_direct_transcription(n_time):
    net = random_network()
    assert any((m.bn.scale_shift()[0] < 0).any() for m in net.timbral)
    x = torch.from_numpy(np.random.default_rng(2).uniform(0, 4, (3, n_time, 96)).astype(np.float32))
    with torch.no_grad():
        got, ref = net(x), reference_forward(net, x)
    for key in ref:
        assert got[key].shape == ref[key].shape, key
        torch.testing.assert_close(got[key], ref[key], rtol=1e-4, atol=1e-4, msg=key)


# --------------------------------------------------------------------------- real weights

# Tolerances against TensorFlow, absolute (measured max |diff| in brackets). Against a float64
# evaluation of the same weights this port is the closer of the two in every tensor. The mid-end
# values span +-53 and its float32 rounding reaches a few 1e-4 (~7e-6 of that range) on any
# element, small ones included, hence its looser bound; the front-end is 10x tighter.
TOLERANCES = {  # key: (rtol, atol)
    "taggram": (0, 2e-5),  # [1.5e-6]
    "penultimate": (0, 5e-5),  # [8.0e-6]
    "mean_pool": (0, 1e-4),  # [2.0e-5]
    "max_pool": (0, 1e-3),  # [3.8e-4, in the mid-end channels; front-end channels 1.1e-5]
    "cnn3": (0, 1e-3),  # [3.8e-4; 68 of 35904 elements above 1e-4]
    "frontend_rows": (0, 1e-4),  # [1.4e-5]
}


def check_against_golden(out: dict[str, np.ndarray]) -> None:
    got = {k: out[k] for k in ("taggram", "penultimate", "mean_pool", "max_pool")}
    got["cnn3"] = out["features"][..., 689:]
    got["frontend_rows"] = out["features"][:, GOLDEN["frontend_frames"], :561]
    for key, (rtol, atol) in TOLERANCES.items():
        assert got[key].shape == GOLDEN[key].shape, key
        np.testing.assert_allclose(got[key], GOLDEN[key], rtol=rtol, atol=atol, err_msg=key)


def test_network_matches_tensorflow_on_golden_mel(net):
    patches = torch.from_numpy(M.make_patches(GOLDEN["logmel"]))
    with torch.no_grad():
        out = {k: v.numpy() for k, v in net(patches).items()}
    assert out["features"].shape == (3, 187, M.N_FEATURES)
    check_against_golden(out)


def test_extract_matches_tensorflow_end_to_end(net):
    out = M.extract(flac_audio(), net)
    check_against_golden(out)
    np.testing.assert_allclose(out["patch_start_s"], [0, 2.992, 5.984], atol=1e-6)
    assert list(M.MTT_TAGS) == list(GOLDEN["tags"])
    top = [M.MTT_TAGS[i] for i in np.argsort(-out["taggram"].mean(0))[:3]]
    assert top == ["guitar", "slow", "female"]


def test_extract_batching_and_options(net):
    audio = flac_audio()
    whole = M.extract(audio, net, batch_size=16)
    single = M.extract(audio, net, batch_size=1, frames=False)
    assert "features" not in single
    for key in ("taggram", "penultimate", "max_pool", "mean_pool"):
        np.testing.assert_allclose(single[key], whole[key], rtol=1e-5, atol=1e-5)
    batches = list(M.iter_extract(audio, net, batch_size=2))
    assert [int(b["first_patch"]) for b in batches] == [0, 2] and batches[1]["features"].shape == (1, 187, 753)
    np.testing.assert_array_equal(np.concatenate([b["features"] for b in batches]), M.extract(audio, net, 2)["features"])
    overlapped = M.extract(audio, net, patch_hop=17, frames=False)  # 187 = 11 x 17
    assert overlapped["taggram"].shape == (23, 50)
    np.testing.assert_allclose(overlapped["taggram"][[0, 11, 22]], whole["taggram"], atol=1e-5)
    np.testing.assert_allclose(overlapped["patch_start_s"][11], 187 * 256 / 16000)


def test_converted_files(musicnn_weights_dir, musicnn_wheel):
    st, meta_path = W.weight_files("MTT_musicnn", musicnn_weights_dir)
    meta = json.loads(meta_path.read_text())
    assert meta["wheel_sha256"] == W.WHEEL_SHA256 == sha256_file(musicnn_wheel)
    assert meta["model"] == "MTT_musicnn" and meta["tags"] == list(M.MTT_TAGS)
    assert W.musicnn_tags("MSD_musicnn", musicnn_weights_dir) == list(W.MSD_TAGS)
    msd = W.load_musicnn("MSD_musicnn", musicnn_weights_dir)
    assert msd.out.weight.shape == (50, 200)
    # already converted: nothing is fetched or read (the wheel path is not even looked at) ...
    assert W.download_musicnn(musicnn_weights_dir, wheel=musicnn_weights_dir / "absent.whl") == st
    # ... unless forced
    with pytest.raises(InstrecError, match="absent.whl: musicnn wheel not found"):
        W.download_musicnn(musicnn_weights_dir, wheel=musicnn_weights_dir / "absent.whl", force=True)


def test_tampered_wheel_is_refused(musicnn_wheel, tmp_path):
    tampered = tmp_path / W.WHEEL_NAME
    shutil.copyfile(musicnn_wheel, tampered)
    with open(tampered, "r+b") as fh:
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(InstrecError, match="sha256") as info:
        W.download_musicnn(tmp_path / "cache", wheel=tampered, progress=False)
    assert str(tampered) in str(info.value)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


# --------------------------------------------------------------------------- weight errors (no download)

def test_missing_wheel_and_weights(tmp_path):
    with pytest.raises(InstrecError, match="not found") as info:
        W.download_musicnn(tmp_path, wheel=tmp_path / "nope.whl", progress=False)
    assert str(tmp_path / "nope.whl") in str(info.value)
    with pytest.raises(InstrecError, match="instrec download musicnn") as info:
        W.load_musicnn(weights_dir=tmp_path)
    assert "musicnn-MTT_musicnn.safetensors" in str(info.value)
    (tmp_path / "musicnn-MTT_musicnn.safetensors").write_bytes(b"garbage")
    with pytest.raises(InstrecError, match="cannot read musicnn weights"):
        W.load_musicnn(weights_dir=tmp_path)
    with pytest.raises(InstrecError, match="unknown model"):
        W.load_musicnn("MTT_vgg", weights_dir=tmp_path)


def test_wheel_contents_are_checked(tmp_path, monkeypatch):
    """A file with the right hash (patched here) but the wrong contents fails cleanly."""
    not_zip = tmp_path / "a.whl"
    not_zip.write_bytes(b"not a zip at all")
    monkeypatch.setattr(W, "WHEEL_SHA256", sha256_file(not_zip))
    with pytest.raises(InstrecError, match="not a readable wheel"):
        W.convert_wheel(not_zip, tmp_path / "out", progress=False)
    empty = tmp_path / "b.whl"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("musicnn/__init__.py", "")
    monkeypatch.setattr(W, "WHEEL_SHA256", sha256_file(empty))
    with pytest.raises(InstrecError, match=r"no musicnn/MTT_musicnn/\.index in the wheel"):
        W.convert_wheel(empty, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
