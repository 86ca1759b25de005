"""instrec: multi-instrument recognition from weak and partial labels.

Heavy modules (torch, sklearn, audio) are imported lazily so that ``import instrec``
and ``instrec --help`` stay fast.
"""
from __future__ import annotations

from instrec._version import __version__

__all__ = ["__version__", "predict"]


def __getattr__(name: str):
    if name == "predict":
        from instrec.tagging.predict import predict

        return predict
    raise AttributeError(f"module 'instrec' has no attribute {name!r}")
