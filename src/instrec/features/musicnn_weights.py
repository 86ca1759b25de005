"""Fetch the pretrained musicnn weights from the ``musicnn==0.1.0`` wheel and convert them once.

The wheel (from the Python package index, ``pip download``) ships TensorFlow checkpoints as
``musicnn/<model>/.index`` + ``.data-00000-of-00001``. They are read straight out of the zip
with :mod:`instrec.features.tf_bundle` (no TensorFlow, nothing extracted), renamed to
:class:`instrec.features.musicnn.Musicnn`'s state-dict names, transposed to PyTorch layouts
and written as ``musicnn-<model>.safetensors`` with a ``musicnn-<model>.json`` beside it
(tags, model name, the wheel's sha256). The Adam slots and step counters are dropped.

Only the musicnn-architecture models are converted (``MTT_musicnn``, the default, and
``MSD_musicnn``); the wheel's VGG baselines have no PyTorch network here.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from instrec._io import InstrecError, atomic_write_bytes, atomic_write_json
from instrec._jsonread import ListOf, Obj, Str, read_json
from instrec.features.musicnn import MTT_TAGS, Musicnn
from instrec.features.tf_bundle import data_file_name, parse_index, read_tensors
from instrec.fetch import default_weights_dir, sha256_file
from instrec.integrity import check_integrity, write_integrity

PACKAGE = "musicnn==0.1.0"
WHEEL_NAME = "musicnn-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"
MSD_TAGS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock",
    "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow",
    "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock",
    "ambient", "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb",
    "indie pop", "sad", "House", "happy")
MODELS: dict[str, tuple[str, ...]] = {"MTT_musicnn": MTT_TAGS, "MSD_musicnn": MSD_TAGS}
DEFAULT_MODEL = "MTT_musicnn"

#: TensorFlow layer -> this package's module, in the order the original graph creates them.
_CONVS = (("conv2d", "timbral.0", 1), ("conv2d_1", "timbral.1", 2), ("conv2d_2", "temporal.0", 3),
          ("conv2d_3", "temporal.1", 4), ("conv2d_4", "temporal.2", 5), ("conv2d_5", "midend.0", 6),
          ("conv2d_6", "midend.1", 7), ("conv2d_7", "midend.2", 8))
_BNS = (("batch_normalization", "input_bn"), ("batch_normalization_9", "pool_bn"),
        ("batch_normalization_10", "dense_bn"))
_DENSES = (("dense", "dense"), ("dense_1", "out"))
_BN_PARAMS = (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
              ("moving_variance", "running_var"))


#: How to get good converted weights back (ends every integrity error of the cache).
REPAIR = "repair the cache with 'instrec download musicnn --force'"


def weight_files(model: str = DEFAULT_MODEL, weights_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """``(musicnn-<model>.safetensors, musicnn-<model>.json)`` in ``weights_dir`` (default: the cache)."""
    root = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    return root / f"musicnn-{model}.safetensors", root / f"musicnn-{model}.json"


def integrity_file(model: str = DEFAULT_MODEL, weights_dir: str | os.PathLike | None = None) -> Path:
    """``musicnn-<model>.integrity.json``: the sha256 of the two :func:`weight_files`, written
    last by the conversion (see :mod:`instrec.integrity`)."""
    return weight_files(model, weights_dir)[0].with_name(f"musicnn-{model}.integrity.json")


def check_cache(model: str = DEFAULT_MODEL, weights_dir: str | os.PathLike | None = None,
                required: bool = False) -> bool:
    """Check the converted files of ``model`` against their integrity record (an InstrecError
    naming the changed file and the repair); a cache converted by an older instrec, without a
    record, is used with a warning unless ``required``. True when checked."""
    st_path, json_path = weight_files(model, weights_dir)
    return check_integrity(integrity_file(model, weights_dir), (st_path.name, json_path.name), REPAIR, required,
                           " (converted by an older instrec; 'instrec download musicnn' checks it)")


def tf_to_state_dict(tensors: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """:class:`Musicnn` state dict from the checkpoint's TensorFlow variables (names as saved)."""
    state: dict[str, np.ndarray] = {}
    bns = list(_BNS)
    for tf_name, prefix, bn_index in _CONVS:
        kernel = tensors[f"{tf_name}/kernel"]  # (kt, kf, 1, out)
        if prefix.startswith("midend"):  # kf is the channel axis: -> Conv1d (out, in, 7)
            state[f"{prefix}.weight"] = kernel[:, :, 0, :].transpose(2, 1, 0)
        else:  # -> Conv2d (out, 1, kt, kf)
            state[f"{prefix}.weight"] = kernel.transpose(3, 2, 0, 1)
        state[f"{prefix}.bias"] = tensors[f"{tf_name}/bias"]
        bns.append((f"batch_normalization_{bn_index}", f"{prefix}.bn"))
    for tf_name, prefix in bns:
        for tf_param, param in _BN_PARAMS:
            state[f"{prefix}.{param}"] = tensors[f"{tf_name}/{tf_param}"]
    for tf_name, prefix in _DENSES:
        state[f"{prefix}.weight"] = tensors[f"{tf_name}/kernel"].T
        state[f"{prefix}.bias"] = tensors[f"{tf_name}/bias"]
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()}


def check_state_dict(state: dict[str, torch.Tensor], source: str, n_tags: int = 50) -> dict[str, torch.Tensor]:
    """``state`` if its names and shapes are exactly :class:`Musicnn`'s, else InstrecError."""
    expected = {k: tuple(v.shape) for k, v in Musicnn(n_tags=n_tags).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
        wrong = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])
        raise InstrecError(f"{source}: not a musicnn state dict (missing {missing[:3]}, unexpected {extra[:3]}, "
                           f"wrong shape {wrong[:3]})")
    return state


def fetch_wheel(dest_dir: str | os.PathLike, progress: bool = True) -> Path:
    """``pip download`` the musicnn 0.1.0 wheel (no dependencies, binary only) into ``dest_dir``."""
    dest = Path(dest_dir)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           PACKAGE, "-d", str(dest)]
    if progress:
        print(f"downloading {PACKAGE} (29 MB) with pip ...", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheel = dest / WHEEL_NAME
    if proc.returncode != 0 or not wheel.is_file():
        lines = [ln.strip() for ln in proc.stderr.splitlines() + proc.stdout.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR")]
        reason = (errors or lines or [f"exit status {proc.returncode}"])[-1]
        raise InstrecError(f"{wheel}: pip download {PACKAGE} failed: {reason}")
    return wheel


def _read_model(zf: zipfile.ZipFile, wheel: Path, model: str) -> dict[str, np.ndarray]:
    folder = f"musicnn/{model}/"
    names = set(zf.namelist())

    def member(name: str) -> bytes:
        if name not in names:
            raise InstrecError(f"{wheel}: no {name} in the wheel")
        try:
            return zf.read(name)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise InstrecError(f"{wheel}: cannot read {name} ({exc})") from None

    index_name = folder + ".index"
    index = member(index_name)

    def read_shard(shard: int, num_shards: int) -> tuple[bytes, str]:
        name = data_file_name(folder, shard, num_shards)
        return member(name), f"{wheel}:{name}"

    wanted = [k for k in parse_index(index, f"{wheel}:{index_name}")[1] if "Adam" not in k and "_power" not in k]
    return read_tensors(index, read_shard, f"{wheel}:{index_name}", wanted)


def convert_wheel(wheel: str | os.PathLike, weights_dir: str | os.PathLike | None = None,
                  models: Iterable[str] = tuple(MODELS), progress: bool = True) -> dict[str, Path]:
    """Check the wheel's sha256 and write ``musicnn-<model>.safetensors`` + ``.json`` for ``models``."""
    wheel = Path(wheel)
    if not wheel.is_file():
        raise InstrecError(f"{wheel}: musicnn wheel not found")
    digest = sha256_file(wheel)
    if digest != WHEEL_SHA256:
        raise InstrecError(f"{wheel}: sha256 {digest} does not match {PACKAGE}'s {WHEEL_SHA256}")
    written: dict[str, Path] = {}
    try:
        with zipfile.ZipFile(wheel) as zf:
            for model in models:
                if model not in MODELS:
                    raise InstrecError(f"{wheel}: unknown musicnn model {model!r} (known: {', '.join(MODELS)})")
                if progress:
                    print(f"converting {model} ...", file=sys.stderr, flush=True)
                source = f"{wheel}:musicnn/{model}"
                try:
                    state = tf_to_state_dict(_read_model(zf, wheel, model))
                except KeyError as exc:
                    raise InstrecError(f"{source}: variable {exc} missing") from None
                state = check_state_dict(state, source, len(MODELS[model]))
                st_path, json_path = weight_files(model, weights_dir)
                integrity_file(model, weights_dir).unlink(missing_ok=True)
                atomic_write_bytes(st_path, save(state, metadata={"model": model, "source": PACKAGE}))
                atomic_write_json(json_path, {"model": model, "source": PACKAGE, "wheel": WHEEL_NAME,
                                              "wheel_sha256": digest, "tags": list(MODELS[model])})
                write_integrity(integrity_file(model, weights_dir), (st_path, json_path))  # last
                written[model] = st_path
    except zipfile.BadZipFile as exc:
        raise InstrecError(f"{wheel}: not a readable wheel ({exc})") from None
    return written


def download_musicnn(cache_dir: str | os.PathLike | None = None, force: bool = False, progress: bool = True,
                     wheel: str | os.PathLike | None = None) -> Path:
    """Make sure ``musicnn-MTT_musicnn.safetensors`` (and MSD_musicnn) exist in ``cache_dir``; return
    the MTT_musicnn path. Without ``wheel`` the wheel is fetched with pip into a temporary folder
    (deleted afterwards); with it, that local file is used. Existing files are kept unless ``force``
    or they fail their integrity check (changed, truncated, or without a record): then they are
    converted again."""
    targets = [weight_files(m, cache_dir) for m in MODELS]
    if not force and all(p.is_file() and j.is_file() for p, j in targets):
        try:
            for m in MODELS:
                check_cache(m, cache_dir, required=True)
            return targets[0][0]
        except InstrecError as exc:
            print(f"instrec: {exc}".replace(f"; {REPAIR}", "") + "; converting again", file=sys.stderr, flush=True)
    if wheel is not None:
        return convert_wheel(wheel, cache_dir, progress=progress)[DEFAULT_MODEL]
    with tempfile.TemporaryDirectory(prefix="instrec-musicnn-") as tmp:
        return convert_wheel(fetch_wheel(tmp, progress), cache_dir, progress=progress)[DEFAULT_MODEL]


def load_musicnn(model: str = DEFAULT_MODEL, weights_dir: str | os.PathLike | None = None) -> Musicnn:
    """The converted network in eval mode; InstrecError naming the file when it is missing or broken."""
    if model not in MODELS:
        raise InstrecError(f"<musicnn>: unknown model {model!r} (known: {', '.join(MODELS)})")
    path = weight_files(model, weights_dir)[0]
    if not path.is_file():
        raise InstrecError(f"{path}: musicnn weights not found; run `instrec download musicnn` first")
    check_cache(model, weights_dir)
    try:
        state = load_file(str(path))
        with safe_open(str(path), "pt") as fh:
            stored = (fh.metadata() or {}).get("model")
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise InstrecError(f"{path}: cannot read musicnn weights ({exc}); {REPAIR}".replace("\n", " ")) from None
    if stored != model:  # the other model's weights have the same shapes
        raise InstrecError(f"{path}: holds the weights of {stored!r}, not {model!r}; {REPAIR}")
    net = Musicnn(n_tags=len(MODELS[model]))
    net.load_state_dict(check_state_dict(state, str(path), len(MODELS[model])))
    return net.eval()


def musicnn_tags(model: str = DEFAULT_MODEL, weights_dir: str | os.PathLike | None = None) -> list[str]:
    """Tag names of ``model`` (from its JSON when converted, else the built-in list)."""
    meta = weight_files(model, weights_dir)[1]
    if meta.is_file():
        n = len(MODELS.get(model, ()))
        return list(read_json(meta, Obj({"tags": ListOf(Str(True), n, n)}, ("tags",)))["tags"])
    return list(MODELS[model])
