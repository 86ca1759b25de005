"""Pictures of tags: per file, instruments over time beside the clip-level answer.

Left: a heat map of the per-frame probabilities (instruments x 0.96-s frames; without
per-frame outputs, the clip-level probabilities as one column). Right: the clip-level
probability of each instrument as a bar, with its decision threshold as a tick; bars of
instruments tagged present are drawn solid, the others pale. Instruments the model never
learned are listed under the picture, not drawn.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from instrec._io import atomic_write_bytes
from instrec.tagging.formats import output_names
from instrec.tagging.predict import FileTags, TagResults


def plot_file(tags: FileTags, classes: list[str], thresholds: np.ndarray, trained: np.ndarray) -> bytes:
    """PNG bytes of one file's picture (see the module docstring)."""
    keep = np.flatnonzero(trained)
    names = [classes[i] for i in keep]
    frames = tags.frame_probabilities if tags.frame_probabilities is not None else tags.probabilities[None, :]
    fig = Figure(figsize=(10, 0.32 * len(names) + 1.8), dpi=100)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1, 2, width_ratios=[4, 1], wspace=0.05)
    ax = fig.add_subplot(grid[0])
    extent = (0.0, len(frames) * tags.frame_seconds, len(names) - 0.5, -0.5)
    image = ax.imshow(frames[:, keep].T, aspect="auto", vmin=0, vmax=1, cmap="magma", extent=extent,
                      interpolation="nearest")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("time (s)" if tags.frame_probabilities is not None else "whole file (no per-frame output)")
    ax.set_title(Path(tags.path).name, fontsize=10, loc="left")
    bars = fig.add_subplot(grid[1], sharey=ax)
    probs = tags.probabilities[keep]
    present = tags.present[keep]
    bars.barh(range(len(names)), probs, color=np.where(present, "#c23b22", "#e8b4a8"))
    bars.scatter(thresholds[keep], range(len(names)), marker="|", color="black", s=80, label="threshold")
    bars.set_xlim(0, 1)
    bars.set_xlabel("clip probability")
    bars.tick_params(labelleft=False)
    bars.legend(loc="lower right", fontsize=7)
    fig.colorbar(image, ax=bars, fraction=0.25, pad=0.1, label="frame probability")
    if not trained.all():
        fig.text(0.01, 0.01, "not learned, never tagged: " + ", ".join(c for c, t in zip(classes, trained) if not t),
                 fontsize=7)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def write_plots(results: TagResults, out_dir: str | Path) -> list[Path]:
    """One ``<stem>.png`` per tagged file in ``out_dir`` (``<stem>-2.png`` on a name clash)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trained = results.trained if results.trained is not None else np.ones(len(results.classes), bool)
    thresholds = results.thresholds if results.thresholds is not None else np.full(len(results.classes), 0.5)
    return [atomic_write_bytes(out / name, plot_file(f, results.classes, thresholds, trained))
            for f, name in zip(results.files, output_names(results, ".png"))]
