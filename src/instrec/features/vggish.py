"""The VGGish network (AudioSet release) in PyTorch, its PCA/quantisation, and weight loading.

Architecture as in the release's ``vggish_slim.py`` (which OpenMIC-2018 used):
input (N, 96, 64) log-mel patches; 3x3 convolutions, stride 1, SAME padding, each
followed by ReLU: conv 64 - maxpool - conv 128 - maxpool - conv 256 - conv 256 -
maxpool - conv 512 - conv 512 - maxpool (2x2, stride 2), then flatten *channels
last* (TensorFlow NHWC order: height 6, width 4, channel 512) and fully connected
4096 - 4096 - 128, every one followed by ReLU (the release's ``fc2`` keeps slim's
default ReLU activation).

Post-processing as in the release's ``vggish_postprocess.py``: ``z = E @ (x - m)``
with E = ``pca_eigen_vectors`` (128, 128) and m = ``pca_means`` (128,), clip to
[-2, 2], scale by 255/4 after adding 2, and cast to uint8. The cast *truncates*
(numpy ``astype``), which the release and hence the OpenMIC features did;
torchvggish rounds instead, so its quantised output differs by one step at times.

Weights live in ``weights_dir`` as ``vggish.safetensors`` (this module's state-dict
names, which are torchvggish's) and ``vggish_pca.safetensors`` (float64 arrays);
:mod:`instrec.features.vggish_weights` writes them.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file as load_numpy
from safetensors.torch import load_file as load_torch
from torch import nn

from instrec._io import InstrecError
from instrec.fetch import WEIGHTS_ENV, default_weights_dir

MODEL_FILE = "vggish.safetensors"
PCA_FILE = "vggish_pca.safetensors"
PCA_EIGEN_VECTORS = "pca_eigen_vectors"
PCA_MEANS = "pca_means"
EMBEDDING_SIZE = 128
QUANTIZE_MIN = -2.0
QUANTIZE_MAX = 2.0

#: (state-dict name, shape) of every parameter, in order; names follow torchvggish.
_CONVS = ((0, 1, 64), (3, 64, 128), (6, 128, 256), (8, 256, 256), (11, 256, 512), (13, 512, 512))
_FCS = ((0, 512 * 6 * 4, 4096), (2, 4096, 4096), (4, 4096, EMBEDDING_SIZE))
PARAM_SHAPES: dict[str, tuple[int, ...]] = {}
for _i, _cin, _cout in _CONVS:
    PARAM_SHAPES[f"features.{_i}.weight"] = (_cout, _cin, 3, 3)
    PARAM_SHAPES[f"features.{_i}.bias"] = (_cout,)
for _i, _fin, _fout in _FCS:
    PARAM_SHAPES[f"embeddings.{_i}.weight"] = (_fout, _fin)
    PARAM_SHAPES[f"embeddings.{_i}.bias"] = (_fout,)


def flatten_channels_last(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, H*W*C) in TensorFlow's NHWC flatten order."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)


class VGGish(nn.Module):
    """VGGish embedding network: (N, 96, 64) float32 log-mel patches -> (N, 128) float32."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 1
        for spec in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
            if spec == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_ch, int(spec), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                in_ch = int(spec)
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, EMBEDDING_SIZE), nn.ReLU(inplace=True),
        )

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """(N, 96, 64) or (N, 1, 96, 64) -> (N, 128) raw (pre-PCA) embeddings."""
        if patches.dim() == 3:
            patches = patches.unsqueeze(1)
        # oneDNN's convolutions run about 1.25x faster on NHWC tensors (load_vggish also
        # stores the weights so); the channels-last flatten is then a free view.
        patches = patches.contiguous(memory_format=torch.channels_last)
        return self.embeddings(flatten_channels_last(self.features(patches)))


def pca_quantise(embeddings: np.ndarray, eigen_vectors: np.ndarray, means: np.ndarray) -> np.ndarray:
    """(N, 128) raw embeddings -> (N, 128) uint8, exactly the release's postprocessor.

    Computed in float64: ``E @ (x - m)``, clipped to [-2, 2], ``(z + 2) * 255 / 4``
    truncated to uint8.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != EMBEDDING_SIZE:
        raise ValueError(f"embeddings must have shape (N, {EMBEDDING_SIZE}), got {x.shape}")
    centred = x.T - np.asarray(means, dtype=np.float64).reshape(-1, 1)
    z = (np.asarray(eigen_vectors, dtype=np.float64) @ centred).T
    z = np.clip(z, QUANTIZE_MIN, QUANTIZE_MAX)
    return ((z - QUANTIZE_MIN) * (255.0 / (QUANTIZE_MAX - QUANTIZE_MIN))).astype(np.uint8)


def check_state_dict(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """The VGGish parameters of ``state`` as float32, or InstrecError naming what is off."""
    missing = [k for k in PARAM_SHAPES if k not in state]
    if missing:
        raise InstrecError(f"{source}: not VGGish weights (missing {', '.join(missing[:3])}"
                           f"{' …' if len(missing) > 3 else ''})")
    out = {}
    for key, shape in PARAM_SHAPES.items():
        t = torch.as_tensor(state[key])
        if tuple(t.shape) != shape:
            raise InstrecError(f"{source}: {key} has shape {tuple(t.shape)}, expected {shape}")
        out[key] = t.detach().to(torch.float32).contiguous()
    return out


def check_pca(eigen_vectors: np.ndarray, means: np.ndarray, source: str) -> dict[str, np.ndarray]:
    """Validated float64 PCA arrays: eigen vectors (128, 128), means (128,)."""
    e = np.asarray(eigen_vectors, dtype=np.float64)
    m = np.asarray(means, dtype=np.float64).reshape(-1)
    if e.shape != (EMBEDDING_SIZE, EMBEDDING_SIZE) or m.shape != (EMBEDDING_SIZE,):
        raise InstrecError(f"{source}: PCA parameters have shapes {e.shape} and {np.shape(means)}, "
                           f"expected ({EMBEDDING_SIZE}, {EMBEDDING_SIZE}) and ({EMBEDDING_SIZE}, 1)")
    if not (np.isfinite(e).all() and np.isfinite(m).all()):
        raise InstrecError(f"{source}: PCA parameters contain NaN or Inf")
    return {PCA_EIGEN_VECTORS: np.ascontiguousarray(e), PCA_MEANS: np.ascontiguousarray(m)}


def weight_paths(weights_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """(model file, PCA file) inside ``weights_dir`` (default :func:`default_weights_dir`)."""
    root = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    return root / MODEL_FILE, root / PCA_FILE


def _read(loader, path: Path, error_type: type[Exception]) -> dict:
    """``loader(path)``, with a damaged file turned into a one-line InstrecError naming it."""
    try:
        return loader(os.fspath(path))
    except (error_type, OSError, ValueError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InstrecError(f"{path}: cannot read weights ({reason}); re-run `instrec download vggish`") from None


def load_vggish(weights_dir: str | os.PathLike | None = None) -> tuple[VGGish, dict[str, np.ndarray]]:
    """The eval-mode model and its PCA arrays from converted safetensors files.

    Raises InstrecError telling the user to run ``instrec download vggish`` when a
    file is missing, or naming the file when it is damaged.
    """
    model_path, pca_path = weight_paths(weights_dir)
    for path in (model_path, pca_path):
        if not path.is_file():
            raise InstrecError(f"{path}: VGGish weights not found; run `instrec download vggish` "
                               f"(or set {WEIGHTS_ENV} to the folder holding them)")
    state = check_state_dict(_read(load_torch, model_path, SafetensorError), os.fspath(model_path))
    pca_raw = _read(load_numpy, pca_path, SafetensorError)
    if PCA_EIGEN_VECTORS not in pca_raw or PCA_MEANS not in pca_raw:
        raise InstrecError(f"{pca_path}: missing {PCA_EIGEN_VECTORS} or {PCA_MEANS}; re-run `instrec download vggish`")
    pca = check_pca(pca_raw[PCA_EIGEN_VECTORS], pca_raw[PCA_MEANS], os.fspath(pca_path))
    with torch.device("meta"):  # skip the random initialisation the weights replace anyway
        model = VGGish()
    model.load_state_dict(state, strict=True, assign=True)
    model.to(memory_format=torch.channels_last)
    model.eval()
    return model, pca
