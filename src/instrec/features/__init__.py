"""Features: audio decoding (``audio``), the VGGish log-mel patches (``logmel``), the
front ends that turn audio into one feature row per frame (``frontends``), and the
VGGish network and its weights (``vggish``, ``vggish_weights``).

``FRAME_SECONDS`` (0.96 s) is the hop and length of one feature frame, as in OpenMIC-2018:
96 log-mel frames of 10 ms. Every per-frame time in instrec is a multiple of it.
"""
from __future__ import annotations

from instrec.features.logmel import PATCH_SECONDS as FRAME_SECONDS

#: The front ends :func:`instrec.features.frontends.get_frontend` builds.
FRONTEND_NAMES: tuple[str, ...] = ("logmel", "vggish", "musicnn")

__all__ = ["FRAME_SECONDS", "FRONTEND_NAMES"]
