"""Fetch and convert VGGish weights once into ``vggish.safetensors`` + ``vggish_pca.safetensors``.

Two sources are understood:

* the official AudioSet release: ``vggish_model.ckpt`` (a TensorFlow checkpoint;
  reading it needs TensorFlow, imported only here and only for the conversion)
  and ``vggish_pca_params.npz``;
* the widely used PyTorch port, harritaylor/torchvggish: ``vggish-10086976.pth``
  and ``vggish_pca_params-970ea276.pth``, read with ``torch.load(weights_only=True)``
  (numpy arrays allowed through torch's allow-list, never a full unpickle).

TensorFlow names map to this package's (torchvggish's) state-dict names; conv
kernels go from HWIO to OIHW and dense kernels from (in, out) to (out, in). The
model flattens channels last like TensorFlow, so fc1's input order needs no
permutation.
"""
from __future__ import annotations

import importlib.util
import os
import pickle
import zipfile
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save as save_numpy
from safetensors.torch import load_file as load_torch
from safetensors.torch import save as save_torch

from instrec._io import InstrecError, atomic_write_bytes
from instrec.features.vggish import (
    PCA_EIGEN_VECTORS,
    PCA_MEANS,
    check_pca,
    check_state_dict,
    weight_paths,
)
from instrec.fetch import default_weights_dir, fetch_file, sha256_file

TF_CKPT_URL = "https://storage.googleapis.com/audioset/vggish_model.ckpt"
TF_CKPT_MD5 = "d1c7011e6366aa34176bb05c705e31a8"
TF_PCA_URL = "https://storage.googleapis.com/audioset/vggish_pca_params.npz"
TF_PCA_MD5 = "c80cae691033abe7c7ecd11ea39fc834"
TORCHVGGISH_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"
TORCHVGGISH_PCA_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish_pca_params-970ea276.pth"
SOURCES = ("auto", "tensorflow", "torchvggish")

#: TensorFlow scope -> state-dict prefix, and whether the layer is a convolution.
TF_LAYERS: tuple[tuple[str, str, bool], ...] = (
    ("vggish/conv1", "features.0", True),
    ("vggish/conv2", "features.3", True),
    ("vggish/conv3/conv3_1", "features.6", True),
    ("vggish/conv3/conv3_2", "features.8", True),
    ("vggish/conv4/conv4_1", "features.11", True),
    ("vggish/conv4/conv4_2", "features.13", True),
    ("vggish/fc1/fc1_1", "embeddings.0", False),
    ("vggish/fc1/fc1_2", "embeddings.2", False),
    ("vggish/fc2", "embeddings.4", False),
)

_TF_MISSING = ("reading the official TensorFlow checkpoint needs TensorFlow once: `pip install tensorflow` and "
               "re-run, or use the PyTorch conversion (source 'torchvggish': vggish-10086976.pth and "
               "vggish_pca_params-970ea276.pth)")


def tf_to_state_dict(get_tensor: Callable[[str], np.ndarray], source: str = "<checkpoint>") -> dict[str, torch.Tensor]:
    """State dict from TensorFlow variables (``get_tensor("vggish/conv1/weights")`` etc.)."""
    state: dict[str, torch.Tensor] = {}
    for scope, prefix, is_conv in TF_LAYERS:
        try:
            kernel = np.asarray(get_tensor(f"{scope}/weights"))
            bias = np.asarray(get_tensor(f"{scope}/biases"))
        except KeyError as exc:
            raise InstrecError(f"{source}: variable {scope} missing ({exc})") from None
        kernel = np.transpose(kernel, (3, 2, 0, 1)) if is_conv else kernel.T  # HWIO->OIHW, (in,out)->(out,in)
        state[f"{prefix}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel, dtype=np.float32))
        state[f"{prefix}.bias"] = torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32))
    return check_state_dict(state, source)


def read_tf_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """State dict from the official ``vggish_model.ckpt`` (needs TensorFlow, imported here only)."""
    try:
        import tensorflow as tf  # noqa: PLC0415 - optional, conversion only
    except ImportError:
        raise InstrecError(f"{path}: {_TF_MISSING}") from None
    try:
        reader = tf.train.load_checkpoint(os.fspath(path))
    except Exception as exc:  # noqa: BLE001 - tf's error types vary between versions
        raise InstrecError(f"{path}: not a readable TensorFlow checkpoint ({str(exc).splitlines()[0]})") from None

    def get(name: str) -> np.ndarray:
        if not reader.has_tensor(name):
            raise KeyError(name)
        return reader.get_tensor(name)

    return tf_to_state_dict(get, os.fspath(path))


def _numpy_allow_list() -> list:
    from numpy._core.multiarray import _reconstruct

    dtypes = [getattr(np.dtypes, n) for n in ("Float64DType", "Float32DType", "Int64DType") if hasattr(np.dtypes, n)]
    # Files written by numpy 1.x name the reconstructor numpy.core.multiarray._reconstruct.
    return [_reconstruct, (_reconstruct, "numpy.core.multiarray._reconstruct"), np.ndarray, np.dtype, *dtypes]


def read_torch_file(path: str | os.PathLike) -> Mapping[str, object]:
    """A dict from a ``.pth`` file, loaded with ``weights_only=True`` (tensors and plain numpy arrays only)."""
    path = Path(path)
    if not path.is_file():
        raise InstrecError(f"{path}: file not found")
    try:
        with torch.serialization.safe_globals(_numpy_allow_list()):
            obj = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as exc:
        raise InstrecError(f"{path}: not a loadable weights-only PyTorch file ({str(exc).splitlines()[0]})") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise InstrecError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    return obj


def read_model_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """State dict from a TF checkpoint, a torchvggish ``.pth`` or an instrec ``.safetensors``."""
    path = Path(path)
    if path.suffix in (".pth", ".pt"):
        return check_state_dict(dict(read_torch_file(path)), os.fspath(path))  # type: ignore[arg-type]
    if path.suffix == ".safetensors":
        return check_state_dict(load_torch(os.fspath(path)), os.fspath(path))
    return read_tf_checkpoint(path)


def read_pca_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """PCA arrays from the official ``.npz``, torchvggish's ``.pth`` or an instrec ``.safetensors``."""
    path = Path(path)
    if not path.is_file():
        raise InstrecError(f"{path}: file not found")
    if path.suffix in (".pth", ".pt"):
        raw = {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in read_torch_file(path).items()}
    elif path.suffix == ".safetensors":
        raw = load_numpy(os.fspath(path))
    else:
        try:
            with np.load(os.fspath(path), allow_pickle=False) as npz:
                raw = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise InstrecError(f"{path}: not a readable .npz file ({exc})") from None
    if PCA_EIGEN_VECTORS not in raw or PCA_MEANS not in raw:
        raise InstrecError(f"{path}: no {PCA_EIGEN_VECTORS} / {PCA_MEANS} arrays")
    return check_pca(raw[PCA_EIGEN_VECTORS], raw[PCA_MEANS], os.fspath(path))  # type: ignore[arg-type]


def convert_vggish(model_src: str | os.PathLike, pca_src: str | os.PathLike,
                   weights_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Convert source weight files to ``weights_dir/vggish.safetensors`` and ``vggish_pca.safetensors``.

    Both files are written atomically, with the source file name and sha256 in the
    safetensors metadata. Returns (model path, PCA path).
    """
    state = read_model_file(model_src)
    pca = read_pca_file(pca_src)
    model_path, pca_path = weight_paths(weights_dir)
    meta_model = {"source": Path(model_src).name, "source_sha256": sha256_file(model_src)}
    meta_pca = {"source": Path(pca_src).name, "source_sha256": sha256_file(pca_src)}
    atomic_write_bytes(model_path, save_torch(state, metadata=meta_model))
    atomic_write_bytes(pca_path, save_numpy(pca, metadata=meta_pca))
    return model_path, pca_path


def _resolve_source(source: str) -> str:
    if source not in SOURCES:
        raise InstrecError(f"unknown VGGish weight source {source!r}; choose one of {', '.join(SOURCES)}")
    if source == "auto":
        return "tensorflow" if importlib.util.find_spec("tensorflow") is not None else "torchvggish"
    return source


def download_vggish(weights_dir: str | os.PathLike | None = None, source: str = "auto",
                    progress: bool = True, force: bool = False) -> tuple[Path, Path]:
    """Fetch VGGish weights and convert them once; returns (model path, PCA path).

    ``source``: "tensorflow" (official AudioSet files, md5-checked; needs TensorFlow
    for the one-off conversion), "torchvggish" (the PyTorch port, checked against
    the sha256 prefix in its file names), or "auto" (tensorflow when it is
    installed, else torchvggish). Already converted weights are kept unless
    ``force``. The downloaded originals are deleted after a successful conversion.
    """
    root = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    model_path, pca_path = weight_paths(root)
    if not force and model_path.is_file() and pca_path.is_file():
        return model_path, pca_path
    source = _resolve_source(source)
    if source == "tensorflow" and importlib.util.find_spec("tensorflow") is None:
        raise InstrecError(f"{TF_CKPT_URL}: {_TF_MISSING}")
    tmp = root / "_download"
    tmp.mkdir(parents=True, exist_ok=True)
    if source == "tensorflow":
        model_src = Path(fetch_file(TF_CKPT_URL, tmp / "vggish_model.ckpt", md5=TF_CKPT_MD5, progress=progress))
        pca_src = Path(fetch_file(TF_PCA_URL, tmp / "vggish_pca_params.npz", md5=TF_PCA_MD5, progress=progress))
    else:
        srcs = []
        for url in (TORCHVGGISH_URL, TORCHVGGISH_PCA_URL):
            dest = tmp / url.rsplit("/", 1)[1]
            got = Path(fetch_file(url, dest, md5=None, progress=progress))
            prefix = dest.stem.rsplit("-", 1)[1]
            if not sha256_file(got).startswith(prefix):
                got.unlink(missing_ok=True)
                raise InstrecError(f"{url}: download does not match the sha256 prefix {prefix} in its name")
            srcs.append(got)
        model_src, pca_src = srcs
    out = convert_vggish(model_src, pca_src, root)
    for path in (model_src, pca_src):
        path.unlink(missing_ok=True)
    try:
        tmp.rmdir()
    except OSError:
        pass
    return out
