"""Result tables, the paper's figures and a markdown report for an experiment.

* :func:`summarise` turns one results row per run into one row per configuration
  (mean and standard deviation over seeds);
* :func:`write_results_csv`, :func:`write_summary_markdown`, :func:`write_report` write
  the tables and ``report.md``;
* :func:`plot_macro_f1` (paper Fig. 2) and :func:`plot_per_class_f1` (paper Fig. 3)
  draw PNG figures with matplotlib's Agg renderer, imported only when plotting and
  without touching pyplot's global state.

Every file is written atomically (``instrec._io``). Standard deviations use
``ddof=1`` (sample std) with two or more seeds, and are 0 for a single seed; a
configuration run with one seed is shown as its one value, never as "± 0.000", and its
figures draw no error bars.
"""
from __future__ import annotations

import csv
import io
import json
import math
import numbers
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from instrec._io import atomic_write_bytes, atomic_write_text

__all__ = ["summarise", "mean_std", "mean_std_by_instrument", "write_results_csv", "read_results_csv",
           "format_summary_markdown", "write_summary_markdown", "plot_macro_f1", "plot_per_class_f1",
           "write_report"]

REPORT_FILE = "report.md"


# --------------------------------------------------------------------------- tables
def _is_metric_value(value: Any) -> bool:
    """Real numbers (including NaN and numpy scalars) are metrics; bools are not."""
    return isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(value, (bool, np.bool_))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """``(mean, std)`` of a non-empty sequence; std has ``ddof=1`` for n > 1 and is 0 for n = 1."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("mean_std needs at least one value")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def summarise(rows: Sequence[Mapping[str, Any]], seed_key: str = "seed") -> list[dict[str, Any]]:
    """Group runs by configuration and aggregate their metrics over seeds.

    A key whose values are numbers (int/float, not bool) is a *metric*; every other
    scalar key except ``seed_key`` (str, bool, None) is a *configuration* field; lists
    and dicts are ignored. Groups keep the order in which they first appear.

    Returns one dict per configuration: the configuration fields, ``n`` (number of
    runs), then ``<metric>_mean`` and ``<metric>_std`` for each metric. Raises
    ``ValueError`` when a row lacks a metric the others have.
    """
    if not rows:
        raise ValueError("summarise needs at least one results row")
    config_keys: list[str] = []
    metric_keys: list[str] = []
    for row in rows:
        for key, value in row.items():
            if key == seed_key or key in config_keys or key in metric_keys or isinstance(value, (list, dict, tuple)):
                continue
            (metric_keys if _is_metric_value(value) else config_keys).append(key)
    clash = [k for k in metric_keys if any(k in r and not _is_metric_value(r[k]) for r in rows)]
    if clash:
        raise ValueError(f"fields {clash} mix numbers and non-numbers across rows")
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for i, row in enumerate(rows):
        missing = [k for k in metric_keys if k not in row]
        if missing:
            raise ValueError(f"results row {i} lacks metric(s) {missing}")
        groups.setdefault(tuple(row.get(k) for k in config_keys), []).append(row)
    summary = []
    for config, members in groups.items():
        out: dict[str, Any] = dict(zip(config_keys, config))
        out["n"] = len(members)
        for key in metric_keys:
            out[f"{key}_mean"], out[f"{key}_std"] = mean_std([float(r[key]) for r in members])
        summary.append(out)
    return summary


def mean_std_by_instrument(values: Mapping[str, Mapping[str, Sequence[float]]]
                           ) -> dict[str, dict[str, tuple[float, float]]]:
    """``{label: {instrument: [f1 per seed]}}`` -> ``{label: {instrument: (mean, std)}}``."""
    return {label: {inst: mean_std(v) for inst, v in by_inst.items()} for label, by_inst in values.items()}


def _summary_layout(summary: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """Configuration keys (those before ``n``) and metric names of a :func:`summarise` output."""
    if not summary:
        raise ValueError("the summary is empty")
    keys = list(summary[0])
    if "n" not in keys:
        raise ValueError("not a summarise() output: no 'n' column")
    config = keys[: keys.index("n")]
    metrics = [k[:-5] for k in keys if k.endswith("_mean") and f"{k[:-5]}_std" in keys]
    return config, metrics


def _csv_cell(value: Any) -> Any:
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value, default=float)
    return "" if value is None else value


def write_results_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> Path:
    """One CSV row per run; columns are the union of keys in first-seen order (missing
    cells are empty, lists and dicts are JSON-encoded, floats keep full precision)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row.get(k)) for k in columns])
    return atomic_write_text(path, buf.getvalue())


def _parse_cell(text: str) -> Any:
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_results_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a :func:`write_results_csv` file back; numbers become int/float, empty cells None."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: _parse_cell(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _fmt(value: float, digits: int) -> str:
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def seeds_phrase(summary: Sequence[Mapping[str, Any]]) -> str:
    """How the numbers of a :func:`summarise` output aggregate seeds, for headings and axis labels."""
    counts = sorted({int(r["n"]) for r in summary})
    if counts == [1]:
        return "one seed"
    return f"mean ± std over {counts[0]} seeds" if len(counts) == 1 else "mean ± std over seeds"


def format_summary_markdown(summary: Sequence[Mapping[str, Any]], metrics: Sequence[str] | None = None,
                            digits: int = 3) -> str:
    """A markdown table: configuration columns, ``n`` and one column per metric, "mean ± std"
    where a configuration has two or more seeds and the plain value where it has one."""
    config, available = _summary_layout(summary)
    metrics = list(available if metrics is None else metrics)
    unknown = [m for m in metrics if m not in available]
    if unknown:
        raise ValueError(f"metric(s) {unknown} are not in the summary")
    header = [*config, "n", *metrics]
    align = ["---"] * len(config) + ["--:"] * (1 + len(metrics))
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for row in summary:
        cells = [str(row.get(k, "")) for k in config] + [str(row["n"])]
        if row["n"] > 1:
            cells += [f"{_fmt(row[f'{m}_mean'], digits)} ± {_fmt(row[f'{m}_std'], digits)}" for m in metrics]
        else:
            cells += [_fmt(row[f"{m}_mean"], digits) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary_markdown(path: str | os.PathLike, summary: Sequence[Mapping[str, Any]],
                           metrics: Sequence[str] | None = None, digits: int = 3) -> Path:
    """Write :func:`format_summary_markdown` to ``path``."""
    return atomic_write_text(path, format_summary_markdown(summary, metrics, digits))


# --------------------------------------------------------------------------- figures
def _new_figure(width: float, height: float):
    return Figure(figsize=(width, height), layout="constrained")


def _save_png(fig, path: str | os.PathLike, dpi: int) -> Path:
    """Render with Agg into memory, then write the bytes atomically."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def _pretty(metric: str) -> str:
    """``macro_f1`` -> ``macro F1`` for axis labels."""
    return " ".join({"f1": "F1", "ap": "AP"}.get(w, w) for w in metric.split("_"))


def _colours(names: Sequence[str]) -> dict[str, Any]:
    cmap = colormaps["tab20" if len(names) > 10 else "tab10"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def plot_macro_f1(summary: Sequence[Mapping[str, Any]], path: str | os.PathLike, metric: str = "macro_f1",
                  group_key: str = "model", dpi: int = 120, reference: tuple[str, float] | None = None) -> Path:
    """Paper Fig. 2: one bar per configuration (coloured by ``group_key``), height the
    mean of ``metric`` over seeds and error bars its std (no error bars with one seed per
    configuration: there is no spread to show); ``reference``: (label, value) drawn as a
    dashed line, e.g. what calling every instrument present scores. Returns the PNG path."""
    config, metrics = _summary_layout(summary)
    if metric not in metrics:
        raise ValueError(f"metric {metric!r} is not in the summary")
    others = [k for k in config if k != group_key]
    labels = [" / ".join(str(r.get(k)) for k in ([group_key] if group_key in config else []) + others)
              for r in summary]
    groups = list(dict.fromkeys(str(r.get(group_key)) for r in summary))
    colours = _colours(groups)
    means = [r[f"{metric}_mean"] for r in summary]
    one_seed = all(int(r["n"]) == 1 for r in summary)
    stds = [0.0 if int(r["n"]) == 1 else r[f"{metric}_std"] for r in summary]
    fig = _new_figure(max(5.0, 0.55 * len(summary) + 1.5), 4.5)
    ax = fig.add_subplot()
    x = np.arange(len(summary))
    ax.bar(x, means, yerr=None if one_seed else stds, capsize=3, color=[colours[str(r.get(group_key))] for r in summary],
           edgecolor="black", linewidth=0.5)
    ax.set_xticks(x, labels, rotation=45 if len(summary) > 3 else 0, ha="right" if len(summary) > 3 else "center",
                  fontsize=8)
    ax.set_ylabel(f"{_pretty(metric)} ({seeds_phrase(summary)})")
    top = np.nanmax(np.asarray(means, float) + np.asarray(stds, float)) if len(summary) else 1.0
    ax.set_ylim(0.0, max(1.0, float(top) * 1.05) if np.isfinite(top) else 1.0)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("Macro-averaged F1 per architecture" if metric == "macro_f1" else _pretty(metric))
    handles = [Patch(color=colours[g], label=g) for g in groups] if len(groups) > 1 else []
    if reference is not None:
        ax.axhline(reference[1], color="black", linestyle="--", linewidth=1.0)
        handles.append(Line2D([], [], color="black", linestyle="--", label=f"{reference[0]}: {reference[1]:.3f}"))
    if handles:
        # Outside the axes, right of the bars, so it can never hide one.
        ax.legend(handles=handles, fontsize=8, title=group_key if len(groups) > 1 else None,
                  loc="upper left", bbox_to_anchor=(1.005, 1.0), borderaxespad=0.0)
    return _save_png(fig, path, dpi)


def best_per_group(summary: Sequence[Mapping[str, Any]], group_key: str = "model",
                   metric: str = "macro_f1") -> list[int]:
    """Indices into ``summary`` of the configuration with the highest mean ``metric`` within
    each ``group_key`` value (first of equals), in order of first appearance; configurations
    whose mean is NaN are chosen only when their group has nothing else."""
    best: dict[Any, int] = {}
    for i, row in enumerate(summary):
        key = row.get(group_key)
        value = float(row.get(f"{metric}_mean", float("nan")))
        if key not in best:
            best[key] = i
            continue
        current = float(summary[best[key]].get(f"{metric}_mean", float("nan")))
        if np.isfinite(value) and (not np.isfinite(current) or value > current):
            best[key] = i
    return list(best.values())


#: Why an instrument can have no F1 at all (metrics.py: no labelled entry of it in the split).
NO_F1_NOTE = "n/a: no F1, because no test clip has a label (present or absent) for this instrument"


def plot_per_class_f1(per_class_by_model: Mapping[str, Mapping[str, tuple[float, float]]],
                      path: str | os.PathLike, dpi: int = 120, title: str = "Instrument-level F1",
                      n_seeds: int | None = None, blank_note: str = NO_F1_NOTE) -> Path:
    """Paper Fig. 3: grouped bars of per-instrument F1, one bar per model in each group.

    ``per_class_by_model``: ``{model: {instrument: (mean, std)}}``; instruments appear in
    first-seen order. An instrument no model has a number for (NaN or missing) is marked
    "n/a" and ``blank_note`` says why under the axes. ``n_seeds``: seeds behind each mean
    (1: no error bars and no "mean ± std" label; None: unknown). Returns the PNG path.
    """
    if not per_class_by_model:
        raise ValueError("per_class_by_model is empty")
    models = list(per_class_by_model)
    instruments = list(dict.fromkeys(i for by_inst in per_class_by_model.values() for i in by_inst))
    colours = _colours(models)
    width = 0.8 / len(models)
    fig = _new_figure(min(30.0, max(8.0, len(instruments) * (0.12 * len(models) + 0.35) + 2.0)), 4.8)
    ax = fig.add_subplot()
    x = np.arange(len(instruments))
    for k, model in enumerate(models):
        stats = [per_class_by_model[model].get(i, (float("nan"), float("nan"))) for i in instruments]
        ax.bar(x - 0.4 + width * (k + 0.5), [s[0] for s in stats], width,
               yerr=None if n_seeds == 1 else [s[1] for s in stats],
               capsize=1.5, color=colours[model], label=model, error_kw={"linewidth": 0.6})
        # A bar of height 0 is invisible: say "0" so it is not read as missing.
        for j, (mean, _) in enumerate(stats):
            if mean == 0.0:
                ax.text(x[j] - 0.4 + width * (k + 0.5), 0.005, "0", ha="center", va="bottom", fontsize=6,
                        color=colours[model])
    blank = [j for j, inst in enumerate(instruments)
             if all(not np.isfinite(per_class_by_model[m].get(inst, (float("nan"),))[0]) for m in models)]
    for j in blank:
        ax.text(x[j], 0.02, "n/a", ha="center", va="bottom", fontsize=8, color="dimgray", rotation=90)
    ax.set_xticks(x, instruments, rotation=45, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(instruments) - 0.4)
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("F1" if n_seeds == 1 else "F1 (mean ± std over seeds)")
    ax.set_title(title + (f"\n{blank_note}: " + ", ".join(instruments[j] for j in blank) if blank else ""),
                 fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncols=min(len(models), 4), loc="upper left", bbox_to_anchor=(0.0, -0.25))
    return _save_png(fig, path, dpi)


# --------------------------------------------------------------------------- report
def write_report(out_dir: str | os.PathLike, summary: Sequence[Mapping[str, Any]],
                 figures: Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike] = (),
                 extra_sections: Mapping[str, str] | None = None, title: str = "instrec experiment report",
                 metrics: Sequence[str] | None = None, table: bool = True) -> Path:
    """Write ``out_dir/report.md``: the extra sections (``{heading: markdown}``), the
    summary table (unless ``table`` is False: another file shows it) and the figures (``{caption: png path}`` or a list of paths), linked
    relative to ``out_dir``. Returns the report path."""
    out_dir = Path(out_dir)
    parts = [f"# {title}\n"]
    for heading, body in (extra_sections or {}).items():
        parts.append(f"## {heading}\n\n{body.strip()}\n")
    if table:
        parts.append(f"## Results ({seeds_phrase(summary)})\n\n" + format_summary_markdown(summary, metrics))
    items = figures.items() if isinstance(figures, Mapping) else ((Path(p).stem, p) for p in figures)
    figure_parts = []
    for caption, png in items:
        link = Path(os.path.relpath(Path(png).resolve(), out_dir.resolve())).as_posix()
        figure_parts.append(f"![{caption}]({link})\n\n*{caption}*\n")
    if figure_parts:
        parts.append("## Figures\n\n" + "\n".join(figure_parts))
    return atomic_write_text(out_dir / REPORT_FILE, "\n".join(parts))
