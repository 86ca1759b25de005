"""Regenerate the README's Results section from benchmarks/results/*.json (never typed by hand).

Replaces the text between ``<!-- results:start -->`` and ``<!-- results:end -->`` in
README.md with: the machine the numbers came from, the command that regenerates them,
a table of the targets, every benchmark's tables and notes, the accuracy figures, and a
clearly labelled table of published numbers that were *not* measured here. Nothing
outside the markers is touched.

    python benchmarks/make_readme_results.py [--results DIR] [--readme README.md] [--print] [--check]

``--print`` writes the section to standard output instead; ``--check`` exits with 1 when
README.md is not up to date with the results (for CI).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
START, END = "<!-- results:start -->", "<!-- results:end -->"
ORDER = ("bench_realaudio", "bench_realaudio_frontends", "bench_train", "bench_busy", "bench_busy_torch", "bench_inference", "bench_musicnn", "bench_dask", "bench_synth",
         "bench_accuracy", "bench_lstm_kernel", "bench_stacked_step", "bench_grid", "bench_label_rules", "bench_rules_grid",
         "bench_rules_grid_openmic15k", "bench_rules_grid_openmic15k-e40", "bench_frame_gate", "bench_rules_real")
REGENERATE = "python benchmarks/run_all.py && python benchmarks/make_readme_results.py"
#: Columns shown in the README where the stored table is wider (the CSV/JSON keep them all).
README_COLUMNS = {
    ("bench_train", "throughput"): ["implementation", "model", "augmentation", "threads", "epochs", "command_s",
                                    "command_clips_per_s", "loop_clips_per_s", "first_epoch_s",
                                    "later_epochs_clips_per_s", "peak_rss_mib"],
}

#: Published numbers, reproduced with their source; not measured by this project.
PUBLISHED: list[dict[str, str]] = [
    {"system": "OpenMIC-2018 baseline: binary-relevance random forest on VGGish features",
     "metric": "mean positive-class F1 (over the 20 instruments)", "value": "0.705",
     "source": "as quoted in this project's issue (OpenMIC-2018 release baseline; Humphrey, Durand & McFee, "
               "ISMIR 2018)"},
    {"system": "OpenMIC-2018 baseline: binary-relevance random forest on VGGish features",
     "metric": "mean 2-class macro F1", "value": "0.784",
     "source": "as quoted in this project's issue (OpenMIC-2018 release baseline; Humphrey, Durand & McFee, "
               "ISMIR 2018)"},
]
#: Cited without numbers: the numbers could not be checked against the paper when this was written.
CITED_WITHOUT_NUMBERS = [
    "S. Gururani, M. Sharma, A. Lerch, \"An Attention Mechanism for Musical Instrument Recognition\", "
    "ISMIR 2019 (arXiv:1907.04294; code: https://github.com/SiddGururani/AttentionMIC): the `att` model here. "
    "Its OpenMIC scores are not copied into this table because they could not be verified against the paper "
    "from the sources available when this generator was written; see the paper.",
]


# --------------------------------------------------------------------------- formatting
def md_table(rows: list[dict], columns: list[str], headers: dict[str, str] | None = None) -> str:
    headers = headers or {}
    numeric = [all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool)
                   for r in rows if r.get(c) is not None) for c in columns]
    lines = ["| " + " | ".join(headers.get(c, c) for c in columns) + " |",
             "|" + "|".join("--:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(C.cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def machine_text(m: dict[str, Any]) -> str:
    v = m.get("versions", {})
    return (f"{m.get('cpu_model')}, {m.get('usable_cores')} usable core(s), {m.get('memory_gib')} GiB RAM; "
            f"torch {v.get('torch')} ({m.get('torch_threads_default')} intra-op threads by default), "
            f"numpy {v.get('numpy')}, Python {v.get('python')}, instrec {v.get('instrec')}; {v.get('platform')}")


def _machine_key(m: dict[str, Any]) -> tuple:
    v = m.get("versions", {})
    return (m.get("cpu_model"), m.get("usable_cores"), v.get("torch"), v.get("instrec"))


# --------------------------------------------------------------------------- sections
def section(doc: dict[str, Any], readme_dir: Path, results_dir: Path) -> str:
    name = doc.get("benchmark", "?")
    # A tagged result (e.g. bench_rules_grid_openmic15k) names the script that wrote it.
    script = (doc.get("command") or "").split()[1:2] or [f"benchmarks/{name}.py"]
    parts = [f"### {doc.get('title', name)} (`{script[0]}`)\n"]
    if doc.get("quick"):
        parts.append("**Quick mode: small sizes, not representative.**\n")
    head = doc.get("headline") or {}
    if name == "bench_train" and head:
        per_rep = ", ".join(f"{x:.2f}x" for x in head.get("speedup_per_repeat", []))
        train_clips = next((r.get("train_clips") for t in doc.get("tables", []) for r in t["rows"]
                            if r.get("train_clips")), None)
        engine = head.get("instrec_engine") or next(
            (r["implementation"].split("(")[-1].rstrip(")") for t in doc.get("tables", []) for r in t["rows"]
             if r.get("model") == "bilstm-att" and r.get("augmentation") == "off"
             and str(r.get("implementation", "")).startswith("instrec train (")), None)
        how = {"compiled": "; training step compiled with torch.compile, the default on a run this long",
               "eager": ", eager PyTorch"}.get(engine, "")
        parts.append(f"The whole `instrec train --model bilstm-att` command (start-up, validation every epoch and "
                     f"recurrent dropout included{how}) took {head['instrec_command_s']:.1f} s against "
                     f"{head['plain_loop_s']:.1f} s for the loop alone of the plain PyTorch implementation "
                     f"({head['baseline']}): **{head['speedup_command_vs_plain']:.2f}x** (per repeat: {per_rep}); "
                     f"the epoch loops alone: {head['speedup_loop_vs_plain']:.2f}x. Data: "
                     f"{doc['config'].get('clips'):,} synthetic OpenMIC-shaped clips"
                     + (f" ({train_clips:,} training clips after the hold-out)" if train_clips else "")
                     + f", {doc['config'].get('epochs')} epochs for this pair.\n")
    for t in doc.get("tables", []):
        columns = doc.get("display_columns") if name == "bench_accuracy" else t["columns"]
        columns = README_COLUMNS.get((name, t["name"]), columns)
        rows = t["rows"]
        if not rows:
            continue
        columns = [c for c in columns if any(r.get(c) is not None for r in rows)]
        if len(doc.get("tables", [])) > 1:
            parts.append(f"*{t.get('title', t['name'])}*\n")
        parts.append(md_table(rows, columns, t.get("headers")))
    figures = [f for f in doc.get("figures", []) if f.endswith(".png")]
    for fig in figures:
        path = results_dir / fig
        rel = os.path.relpath(path, readme_dir).replace(os.sep, "/")
        parts.append(f"![{Path(fig).stem}]({rel})\n")
    notes = doc.get("notes") or []
    if notes:
        parts.append("\n".join(f"- {n}" for n in notes) + "\n")
    parts.append(f"<sub>Produced by `{doc.get('command', '')}` on {doc.get('created', '?')}.</sub>\n")
    return "\n".join(parts)


def build_section(results_dir: Path, readme_dir: Path) -> str:
    docs = []
    for path in sorted(results_dir.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError:
            print(f"{path}: not valid JSON; left out", file=sys.stderr)
            continue
        if isinstance(doc, dict) and "tables" in doc and "benchmark" in doc:
            docs.append(doc)
        elif path.name != "run_all.json":
            print(f"{path}: not in the benchmark results format (see benchmarks/_common.py); left out",
                  file=sys.stderr)
    docs.sort(key=lambda d: (ORDER.index(d["benchmark"]) if d["benchmark"] in ORDER else len(ORDER),
                             d["benchmark"]))
    out = ["<!-- Generated by benchmarks/make_readme_results.py from benchmarks/results/*.json; "
           "edit those scripts, not this text. -->", ""]
    if not docs:
        out += [f"No benchmark results yet. Run `{REGENERATE}`.", ""]
    else:
        machines = {_machine_key(d.get("machine", {})): d.get("machine", {}) for d in docs}
        dates = sorted(d.get("created", "") for d in docs)
        if len(machines) == 1:
            out.append(f"Measured on {machine_text(next(iter(machines.values())))}, "
                       f"{dates[0][:10]}{' to ' + dates[-1][:10] if dates[-1][:10] != dates[0][:10] else ''}.")
        else:
            out.append("Measured on more than one machine:")
            out += [f"- `{d['benchmark']}`: {machine_text(d.get('machine', {}))}" for d in docs]
        out += ["", "Regenerate everything (numbers, tables, this section) with:", "",
                f"    {REGENERATE}", ""]
        if any(d.get("quick") for d in docs):
            quick = ", ".join(f"`{d['benchmark']}`" for d in docs if d.get("quick"))
            out += [f"> **Quick-mode results** ({quick}): small sizes that only check the scripts run; "
                    "rerun without `--quick` for numbers worth quoting.", ""]
        targets = [{"benchmark": d["benchmark"], **t} for d in docs for t in d.get("targets", [])]
        if targets:
            rows = [{"benchmark": t["benchmark"], "what": t["name"],
                     "measured": f"{C.cell(t['value'])}{t.get('unit', '')}", "target": t["target"],
                     "met": "yes" if t["met"] else "**no**"} for t in targets]
            out += ["### Targets", "", md_table(rows, ["benchmark", "what", "measured", "target", "met"])]
        for d in docs:
            out.append(section(d, readme_dir, results_dir))
    out += ["### Published, not measured here", "",
            "These numbers come from the literature (real OpenMIC-2018, VGGish features) and were **not** "
            "reproduced by the benchmarks above; the measured accuracy above is on the data named there.", "",
            md_table(PUBLISHED, ["system", "metric", "value", "source"]), ""]
    out += [f"- {c}" for c in CITED_WITHOUT_NUMBERS]
    return "\n".join(out).rstrip() + "\n"


def replace_between(text: str, new: str) -> str:
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"README must contain exactly one {START} followed by one {END}")
    a = text.index(START) + len(START)
    b = text.index(END)
    return text[:a] + "\n" + new + text[b:]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(HERE / "results"), help="folder of *.json results")
    p.add_argument("--readme", default=str(REPO / "README.md"))
    p.add_argument("--print", action="store_true", help="print the section instead of editing the README")
    p.add_argument("--check", action="store_true", help="exit 1 if the README is not up to date")
    args = p.parse_args()
    readme = Path(args.readme)
    new = build_section(Path(args.results).resolve(), readme.resolve().parent)
    if args.print:
        sys.stdout.write(new)
        return 0
    if not readme.is_file():
        print(f"{readme}: not found (use --print to see the section)", file=sys.stderr)
        return 2
    text = readme.read_text(encoding="utf-8")
    try:
        updated = replace_between(text, new)
    except ValueError as exc:
        print(f"{readme}: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if updated != text:
            print(f"{readme}: Results section is out of date; run python benchmarks/make_readme_results.py",
                  file=sys.stderr)
            return 1
        return 0
    if updated != text:
        tmp = readme.with_name(readme.name + ".tmp")
        tmp.write_text(updated, encoding="utf-8")
        os.replace(tmp, readme)
        print(f"{readme}: Results section regenerated from {args.results}")
    else:
        print(f"{readme}: already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
