"""Reading ``.npz`` files without trusting them.

A member's npy header is checked against the bytes that hold it before anything is
allocated (a header may claim terabytes), and object arrays (the OpenMIC release pickles
its ``sample_key``) go through an unpickler that can only rebuild numpy arrays, so a
crafted file cannot run code.
"""
from __future__ import annotations

import importlib
import math
import pickle
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from instrec._io import InstrecError

# (module, name) pairs the sample-key unpickler may resolve: numpy's array and scalar
# reconstruction (under numpy 1.x and 2.x module names), ndarray and dtype; nothing else.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): ("multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): ("multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"): ("multiarray", "scalar"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy array/scalar reconstruction globals."""

    def __init__(self, fh: Any, source: Path, member: str) -> None:
        super().__init__(fh, encoding="latin1")
        self._where = f"{source}: {member}"

    def find_class(self, module: str, name: str) -> Any:
        target = _ALLOWED_GLOBALS.get((module, name))
        if target is None:
            raise InstrecError(f"{self._where} pickle references forbidden global {module}.{name}")
        where, attr = target
        if where == "numpy":
            return getattr(np, attr)
        try:
            multiarray = importlib.import_module("numpy._core.multiarray")
        except ImportError:  # numpy < 2
            multiarray = importlib.import_module("numpy.core.multiarray")
        return getattr(multiarray, attr)


def _read_member(zf: zipfile.ZipFile, member: str, source: Path) -> np.ndarray:
    """Read one ``.npy`` member; object arrays go through the restricted unpickler."""
    fmt = np.lib.format
    with zf.open(member) as fh:
        try:
            version = fmt.read_magic(fh)
        except ValueError as exc:
            raise InstrecError(f"{source}: {member} is not an .npy array ({exc})") from None
        if version in ((1, 0), (2, 0)):
            reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            try:
                shape, _fortran, dtype = reader(fh)
            except ValueError as exc:
                raise InstrecError(f"{source}: {member} has a damaged header ({exc})") from None
            # The header's shape must fit in the member: never allocate what the file cannot hold.
            size = zf.getinfo(member).file_size
            if not dtype.hasobject and math.prod(shape) * dtype.itemsize > size:
                raise InstrecError(f"{source}: {member} header claims shape {tuple(shape)} of {dtype} "
                                   f"({math.prod(shape) * dtype.itemsize} bytes) but holds {size} bytes")
            if dtype.hasobject:
                arr = _ArrayOnlyUnpickler(fh, source, member).load()
                if not isinstance(arr, np.ndarray) or arr.shape != tuple(shape):
                    raise InstrecError(f"{source}: {member} does not hold an array of shape {tuple(shape)}")
                return arr
    with zf.open(member) as fh:
        try:
            return fmt.read_array(fh, allow_pickle=False)
        except ValueError as exc:
            raise InstrecError(f"{source}: cannot read {member}: {exc}") from None


def read_npz_safely(path: str | Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Arrays ``names`` of the npz at ``path``, without executing arbitrary pickles."""
    path = Path(path)
    if not path.is_file():
        raise InstrecError(f"{path}: file not found")
    try:
        with zipfile.ZipFile(path) as zf:
            members = set(zf.namelist())
            missing = [n for n in names if f"{n}.npy" not in members]
            if missing:
                raise InstrecError(f"{path}: missing array(s) {', '.join(missing)}")
            return {n: _read_member(zf, f"{n}.npy", path) for n in names}
    except zipfile.BadZipFile:
        raise InstrecError(f"{path}: not a valid .npz file") from None
    except (pickle.UnpicklingError, EOFError) as exc:
        raise InstrecError(f"{path}: corrupt pickled array ({exc})") from None
