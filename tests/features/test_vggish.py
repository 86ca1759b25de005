"""VGGish: architecture and flatten order against a TF-semantics reference, weight conversion
(TF names, torchvggish .pth, PCA npz/pth), safe loading, PCA + quantisation, missing weights."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file as load_numpy

from instrec._io import InstrecError
from instrec.features import vggish_weights as vw
from instrec.features.vggish import PARAM_SHAPES, VGGish, flatten_channels_last, load_vggish, pca_quantise

# TF scope -> (kernel shape HWIO or (in, out), is_conv)
TF_SHAPES = {
    "vggish/conv1": (3, 3, 1, 64), "vggish/conv2": (3, 3, 64, 128),
    "vggish/conv3/conv3_1": (3, 3, 128, 256), "vggish/conv3/conv3_2": (3, 3, 256, 256),
    "vggish/conv4/conv4_1": (3, 3, 256, 512), "vggish/conv4/conv4_2": (3, 3, 512, 512),
    "vggish/fc1/fc1_1": (12288, 4096), "vggish/fc1/fc1_2": (4096, 4096), "vggish/fc2": (4096, 128),
}


@pytest.fixture(scope="module")
def tf_vars() -> dict[str, np.ndarray]:
    """Random TF-layout VGGish variables, He-scaled so activations stay O(1)."""
    rng = np.random.default_rng(0)
    out = {}
    for scope, shape in TF_SHAPES.items():
        fan_in = int(np.prod(shape[:-1]))
        out[f"{scope}/weights"] = rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))
        out[f"{scope}/biases"] = 0.01 * rng.standard_normal(shape[-1], dtype=np.float32)
    return out


@pytest.fixture(scope="module")
def pca_params() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((128, 128)))
    return {"pca_eigen_vectors": q * 0.5, "pca_means": rng.standard_normal(128)}


def _tf_reference(patches: np.ndarray, v: dict[str, np.ndarray]) -> np.ndarray:
    """VGGish forward with TensorFlow semantics, in float64 NHWC numpy."""
    x = patches[..., None].astype(np.float64)

    def conv(x, scope):
        k, b = v[f"{scope}/weights"].astype(np.float64), v[f"{scope}/biases"]
        n, h, w, _ = x.shape
        xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))  # SAME padding for 3x3, stride 1
        y = sum(np.tensordot(xp[:, i:i + h, j:j + w, :], k[i, j], axes=([3], [0]))
                for i in range(3) for j in range(3))
        return np.maximum(y + b, 0.0)

    def pool(x):
        n, h, w, c = x.shape
        return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))

    x = pool(conv(x, "vggish/conv1"))
    x = pool(conv(x, "vggish/conv2"))
    x = pool(conv(conv(x, "vggish/conv3/conv3_1"), "vggish/conv3/conv3_2"))
    x = pool(conv(conv(x, "vggish/conv4/conv4_1"), "vggish/conv4/conv4_2"))
    x = x.reshape(len(x), -1)  # tf.flatten of NHWC
    for scope in ("vggish/fc1/fc1_1", "vggish/fc1/fc1_2", "vggish/fc2"):
        x = np.maximum(x @ v[f"{scope}/weights"] + v[f"{scope}/biases"], 0.0)
    return x


def test_flatten_is_tensorflow_channels_last():
    # NCHW tensor (1 sample, C=2, H=2, W=3) whose value encodes (c, h, w) as c*100 + h*10 + w
    c, h, w = np.meshgrid(np.arange(2), np.arange(2), np.arange(3), indexing="ij")
    x = torch.tensor((c * 100 + h * 10 + w)[None], dtype=torch.float32)
    flat = flatten_channels_last(x)[0].tolist()
    # TF NHWC flatten: h slowest, then w, then c fastest
    assert flat == [0, 100, 1, 101, 2, 102, 10, 110, 11, 111, 12, 112]


def test_tf_conversion_exact_and_forward_matches_reference(tf_vars):
    state = vw.tf_to_state_dict(tf_vars.__getitem__)
    np.testing.assert_array_equal(state["features.0.weight"].numpy(),
                                  tf_vars["vggish/conv1/weights"].transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(state["features.13.bias"].numpy(), tf_vars["vggish/conv4/conv4_2/biases"])
    np.testing.assert_array_equal(state["embeddings.0.weight"].numpy(), tf_vars["vggish/fc1/fc1_1/weights"].T)
    np.testing.assert_array_equal(state["embeddings.4.weight"].numpy(), tf_vars["vggish/fc2/weights"].T)
    assert {k: tuple(v.shape) for k, v in state.items()} == PARAM_SHAPES

    model = VGGish().eval()
    model.load_state_dict(state)
    patches = np.random.default_rng(2).standard_normal((1, 96, 64)).astype(np.float32)
    with torch.inference_mode():
        got = model(torch.from_numpy(patches)).numpy()
    want = _tf_reference(patches, tf_vars)
    assert got.shape == (1, 128) and want.max() > 0.1  # non-trivial activations
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())


def test_tf_conversion_reports_missing_variable(tf_vars):
    partial = {k: v for k, v in tf_vars.items() if not k.startswith("vggish/fc2")}
    with pytest.raises(InstrecError, match="vggish/fc2"):
        vw.tf_to_state_dict(partial.__getitem__, "x.ckpt")


def test_tf_checkpoint_without_tensorflow_explains(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import now raises ImportError
    with pytest.raises(InstrecError, match="pip install tensorflow") as info:
        vw.read_tf_checkpoint(tmp_path / "vggish_model.ckpt")
    assert "torchvggish" in str(info.value) and "\n" not in str(info.value)


def test_torchvggish_files_convert_exactly(tmp_path, tf_vars, pca_params):
    state = vw.tf_to_state_dict(tf_vars.__getitem__)
    pth = tmp_path / "vggish-10086976.pth"
    torch.save(state, pth)
    # torchvggish's PCA file holds plain numpy arrays (means as a flat vector)
    pca_pth = tmp_path / "vggish_pca_params-970ea276.pth"
    torch.save(dict(pca_params), pca_pth)
    npz = tmp_path / "vggish_pca_params.npz"
    np.savez(npz, pca_eigen_vectors=pca_params["pca_eigen_vectors"], pca_means=pca_params["pca_means"][:, None])

    from_pth = vw.read_pca_file(pca_pth)
    from_npz = vw.read_pca_file(npz)
    for key in ("pca_eigen_vectors", "pca_means"):
        np.testing.assert_array_equal(from_pth[key], from_npz[key])
    np.testing.assert_array_equal(from_npz["pca_means"], pca_params["pca_means"])

    out_dir = tmp_path / "weights"
    model_path, pca_path = vw.convert_vggish(pth, npz, out_dir)
    model, pca = load_vggish(out_dir)
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[key]), key
    np.testing.assert_array_equal(pca["pca_eigen_vectors"], pca_params["pca_eigen_vectors"])
    from safetensors import safe_open

    with safe_open(os.fspath(model_path), "pt") as fh:
        assert fh.metadata()["source"] == pth.name
    assert set(load_numpy(os.fspath(pca_path))) == {"pca_eigen_vectors", "pca_means"}
    assert not model.training


def test_pickle_payload_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"features.0.weight": Evil()}, path)
    with pytest.raises(InstrecError, match="weights-only"):
        vw.read_torch_file(path)
    assert not marker.exists()


def test_pca_quantise_hand_computed():
    eig = np.eye(128)
    means = np.zeros(128)
    x = np.zeros((1, 128))
    x[0, :6] = [-3.0, -2.0, 0.0, 0.01, 2.0, 5.0]
    q = pca_quantise(x, eig, means)
    assert q.dtype == np.uint8 and q.shape == (1, 128)
    # (z + 2) * 255 / 4 truncated: -2 -> 0, 0 -> 127 (127.5), 0.01 -> 128 (128.14), 2 -> 255; clipped outside
    assert q[0, :6].tolist() == [0, 0, 127, 128, 255, 255]
    # a non-trivial matrix: z = E @ (x - m), here by explicit sums
    rng = np.random.default_rng(3)
    eig, means, x = rng.standard_normal((128, 128)) * 0.1, rng.standard_normal(128), rng.standard_normal((2, 128))
    q = pca_quantise(x, eig, means)
    for n in range(2):
        for i in (0, 17, 127):
            z = sum(eig[i, j] * (x[n, j] - means[j]) for j in range(128))
            assert q[n, i] == int((min(max(z, -2.0), 2.0) + 2.0) * 63.75)


def test_missing_weights_tell_the_command(tmp_path):
    with pytest.raises(InstrecError, match="instrec download vggish") as info:
        load_vggish(tmp_path)
    assert "vggish.safetensors" in str(info.value)
    from instrec.features.frontends import get_frontend

    with pytest.raises(InstrecError, match="instrec download vggish"):
        get_frontend("vggish", weights_dir=tmp_path)


def test_damaged_weights_name_the_file(tmp_path, pca_params):
    (tmp_path / "vggish.safetensors").write_bytes(b"garbage")
    np.savez(tmp_path / "p.npz", **pca_params)
    from safetensors.numpy import save_file

    save_file(vw.read_pca_file(tmp_path / "p.npz"), os.fspath(tmp_path / "vggish_pca.safetensors"))
    with pytest.raises(InstrecError, match="vggish.safetensors"):
        load_vggish(tmp_path)
    bad = tmp_path / "bad_shape.pth"
    torch.save({k: torch.zeros(1) for k in PARAM_SHAPES}, bad)
    with pytest.raises(InstrecError, match="has shape"):
        vw.read_model_file(bad)


def _fake_download_module(monkeypatch, files: dict[str, bytes], calls: list[str]):
    def fetch_file(url, dest, md5=None, progress=True):
        calls.append(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(files[url])
        return dest

    monkeypatch.setattr(vw, "fetch_file", fetch_file)


def test_download_torchvggish_checks_hash_and_converts(tmp_path, monkeypatch):
    blobs = {"m": b"model bytes", "p": b"pca bytes"}
    digests = {k: __import__("hashlib").sha256(v).hexdigest()[:8] for k, v in blobs.items()}
    good_model = f"https://x/vggish-{digests['m']}.pth"
    good_pca = f"https://x/vggish_pca_params-{digests['p']}.pth"
    calls: list[str] = []
    _fake_download_module(monkeypatch, {good_model: blobs["m"], good_pca: blobs["p"],
                                        vw.TORCHVGGISH_URL: blobs["m"]}, calls)
    converted: list[tuple[bytes, bytes]] = []

    def fake_convert(model_src, pca_src, weights_dir):  # conversion itself is tested above
        converted.append((model_src.read_bytes(), pca_src.read_bytes()))
        paths = vw.weight_paths(weights_dir)
        for p in paths:
            p.write_bytes(b"converted")
        return paths

    monkeypatch.setattr(vw, "convert_vggish", fake_convert)
    # the real URL's sha256 prefix does not match these bytes: refused, nothing converted
    with pytest.raises(InstrecError, match="sha256"):
        vw.download_vggish(tmp_path / "w0", source="torchvggish")
    assert converted == []
    monkeypatch.setattr(vw, "TORCHVGGISH_URL", good_model)
    monkeypatch.setattr(vw, "TORCHVGGISH_PCA_URL", good_pca)
    out = tmp_path / "w1"
    paths = vw.download_vggish(out, source="torchvggish")
    assert converted == [(blobs["m"], blobs["p"])]
    assert all(p.is_file() for p in paths) and not (out / "_download").exists()
    n_calls = len(calls)
    vw.download_vggish(out, source="torchvggish")  # already converted: nothing fetched
    assert len(calls) == n_calls


def test_download_tensorflow_source_without_tf_fails_before_fetching(tmp_path, monkeypatch):
    calls: list[str] = []
    _fake_download_module(monkeypatch, {}, calls)
    monkeypatch.setattr(vw.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InstrecError, match="pip install tensorflow"):
        vw.download_vggish(tmp_path, source="tensorflow")
    assert calls == []
    with pytest.raises(InstrecError, match="unknown VGGish weight source"):
        vw.download_vggish(tmp_path, source="keras")
