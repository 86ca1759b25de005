"""What a run records beside its results: package versions, host, seed, threads."""
from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

import torch

_PACKAGES = ("instrec", "numpy", "torch", "scikit-learn", "soundfile", "soxr", "safetensors",
             "midirenderer", "pretty_midi", "matplotlib")


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages that can change instrec's numbers."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def auto_threads(jobs: int = 1) -> int:
    """Intra-op threads for one of ``jobs`` concurrent training processes: the cores each
    gets, at most 2. The models' big products are batched over the BiLSTM's two directions,
    which two threads split evenly (about 1.2x a single thread); more threads only add
    synchronisation to ops this small."""
    return max(1, min(2, usable_cores() // max(1, jobs)))


def set_threads(n: int | None) -> int:
    """Set torch's intra-op thread count and return it: ``n`` > 0 as given, 0 for
    :func:`auto_threads`, ``None`` to keep the current one.

    The thread count can change float rounding, so the resolved count is part of a run's
    recorded configuration."""
    if n == 0:
        n = auto_threads()
    if n is not None and n > 0:
        torch.set_num_threads(n)
    return torch.get_num_threads()
