"""Pictures of tags: per file, instruments over time beside the clip-level answer.

Left: a heat map of the per-frame probabilities (instruments x 0.96-s frames; without
per-frame outputs, the clip-level probabilities as one column), frames tagged present
under the threshold policy outlined in white. Optionally, beside it on the same rows, the
file's strong labels (when each instrument really sounds) as bars. Right: the clip-level
probability of each instrument as a bar, with its decision threshold as a tick; bars of
instruments tagged present are drawn solid, the others pale. Instruments the model never
learned are listed under the picture, not drawn; so are the threshold policy and the per-second
policy (the white boxes are its decisions, the same frames as the per-second rows and the time
ranges; for a file longer than one clip, the solid bars are the instruments those frames hold).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from instrec._io import atomic_write_bytes
from instrec.tagging.formats import output_names
from instrec.tagging.results import FileTags, TagResults


def plot_file(tags: FileTags, classes: list[str], thresholds: np.ndarray, trained: np.ndarray,
              threshold_description: str | None = None,
              events: Sequence[tuple[str, float, float]] | None = None, frame_policy: str | None = None) -> bytes:
    """PNG bytes of one file's picture (see the module docstring). ``events``: the file's
    strong labels as ``(instrument, onset_s, offset_s)``, drawn in a panel of their own."""
    keep = np.flatnonzero(trained)
    names = [classes[i] for i in keep]
    row = {name: k for k, name in enumerate(names)}
    per_frame = tags.frame_probabilities is not None
    frames = tags.frame_probabilities if per_frame else tags.probabilities[None, :]
    seconds = len(frames) * tags.frame_seconds if per_frame else tags.seconds
    fig = Figure(figsize=(10 if events is None else 14, 0.32 * len(names) + 2.0), dpi=100)
    FigureCanvasAgg(fig)
    ratios = [4, 1] if events is None else [4, 3, 1]
    grid = fig.add_gridspec(1, len(ratios), width_ratios=ratios, wspace=0.05)
    ax = fig.add_subplot(grid[0])
    extent = (0.0, seconds, len(names) - 0.5, -0.5)
    image = ax.imshow(frames[:, keep].T, aspect="auto", vmin=0, vmax=1, cmap="magma", extent=extent,
                      interpolation="nearest")
    if per_frame and tags.frame_present is not None:
        for t, k in zip(*np.nonzero(tags.frame_present[:, keep])):
            ax.add_patch(Rectangle((t * tags.frame_seconds, k - 0.5), tags.frame_seconds, 1.0, fill=False,
                                   edgecolor="white", linewidth=1.0))
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("time (s)" if per_frame else "whole file (no per-frame output)")
    ax.set_title(Path(tags.path).name + ("  (white boxes: frames tagged present)" if per_frame else ""),
                 fontsize=10, loc="left")
    if events is not None:
        truth = fig.add_subplot(grid[1], sharey=ax)
        for inst, onset, offset in events:
            if inst in row:
                truth.broken_barh([(onset, offset - onset)], (row[inst] - 0.35, 0.7), color="#2a7ab9")
        truth.set_xlim(0, seconds)
        truth.set_xlabel("time (s)")
        truth.set_title("strong labels: when each instrument sounds", fontsize=10, loc="left")
        truth.tick_params(labelleft=False)
        truth.grid(axis="x", alpha=0.3)
    bars = fig.add_subplot(grid[-1], sharey=ax)
    probs = tags.probabilities[keep]
    present = tags.present[keep]
    bars.barh(range(len(names)), probs, color=np.where(present, "#c23b22", "#e8b4a8"))
    bars.scatter(thresholds[keep], range(len(names)), marker="|", color="black", s=80, label="threshold")
    bars.set_xlim(0, 1)
    bars.set_xlabel("clip probability")
    bars.tick_params(labelleft=False)
    bars.legend(loc="lower right", fontsize=7)
    fig.colorbar(image, ax=bars, fraction=0.25, pad=0.1, label="frame probability")
    foot = [f"threshold: {threshold_description}"] if threshold_description else []
    if frame_policy and per_frame:
        foot.append(_wrap(frame_policy))
    if not trained.all():
        foot.append("not learned, never tagged: " + ", ".join(c for c, t in zip(classes, trained) if not t))
    if foot:
        text = "\n".join(foot)
        fig.text(0.01, -0.02 - 0.02 * (text.count("\n") + 1), text, fontsize=7, va="bottom")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _wrap(text: str, width: int = 150) -> str:
    """``text`` broken into lines of at most about ``width`` characters, at spaces."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def write_plots(results: TagResults, out_dir: str | Path) -> list[Path]:
    """One ``<stem>.png`` per tagged file in ``out_dir`` (``<stem>-2.png`` on a name clash)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trained = results.trained if results.trained is not None else np.ones(len(results.classes), bool)
    thresholds = results.thresholds if results.thresholds is not None else np.full(len(results.classes), 0.5)
    return [atomic_write_bytes(out / name, plot_file(f, results.classes, thresholds, trained,
                                                     results.threshold_description,
                                                     frame_policy=results.frame_policy))
            for f, name in zip(results.files, output_names(results, ".png"))]
