"""What a run records beside its results: package versions, host, seed, threads."""
from __future__ import annotations

import platform
import sys
from importlib import metadata


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


def set_threads(n: int | None) -> int:
    """Set torch's intra-op thread count (``None`` keeps the current one); return it.

    The small recurrent models here run fastest on one thread, and the thread count can
    change float rounding, so it is part of a run's recorded configuration."""
    import torch

    if n is not None and n > 0:
        torch.set_num_threads(n)
    return torch.get_num_threads()
