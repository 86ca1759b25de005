"""Corpus rendering speed: clips/s of `instrec synth` with 1 and 2 worker processes.

Runs ``instrec synth --out DIR --clips N --seed S --jobs J`` as a subprocess (the whole
command: start-up, composing, rendering with the SoundFont, log-mel features, writing the
OpenMIC-layout corpus) for J in 1 and 2, the two interleaved in every repeat, and reports
the median. Beside the command's own clips/s it shows what the corpus reports about itself
in ``corpus-stats.json`` (rendering time without start-up, time per stage), when present.

The default SoundFont is pretty_midi's TimGM6mb (6 MB, 18 of the 20 classes); when Debian's
FluidR3_GM (148 MB, all 20 classes) is installed it is measured too (or pass --soundfont).
A second table times the synthesiser call alone, in this process, on the same clips with
the whole SoundFont and with the SoundFont cut down to each clip's presets (what the corpus
renders with; the audio is identical).

Target: >= 20 clips/s on 2 cores (the command, --jobs 2, default SoundFont).

    python benchmarks/bench_synth.py [--quick] [--out DIR] [--clips N] [--jobs 1,2] [--repeats R]
                                     [--soundfont PATH ...]
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

NAME = "bench_synth"
FLUID = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
DEFAULT = "TimGM6mb.sf2 (default)"


def renderer_rows(fonts: list[str | None], clips: int, seed: int) -> list[dict]:
    """Milliseconds per clip of the synthesiser call with the whole font and the cut one."""
    import midirenderer

    from instrec.synth.soundfont import load_soundfont
    from instrec.synth.worker import compose_clip

    rows = []
    for font in fonts:
        sf = load_soundfont(font)
        whole, cut, cutting, saved, size = [], [], [], [], []
        for index in range(clips):
            piece, _ = compose_clip(seed, index, sf.preset_keys, 10.0)
            midi = piece.midi_bytes()
            small = sf.tables.subset(piece.presets)
            size.append(len(small))
            times: dict[str, list[float]] = {"whole": [], "cut": [], "cutting": []}
            for _ in range(3):  # interleaved; the fastest of three per clip
                times["cutting"].append(C.time_call(lambda: sf.tables.subset(piece.presets)))
                times["whole"].append(C.time_call(lambda: midirenderer.render_wave_from(sf.data, midi)))
                times["cut"].append(C.time_call(lambda: midirenderer.render_wave_from(small, midi)))
            best = {k: min(v) for k, v in times.items()}
            whole.append(best["whole"])
            cut.append(best["cut"])
            cutting.append(best["cutting"])
            saved.append(best["whole"] - best["cut"] - best["cutting"])
        rows.append({"soundfont": Path(font).name if font else DEFAULT, "font_mb": len(sf.data) / 1e6,
                     "clips": clips, "whole_ms": 1e3 * C.median(whole), "cut_ms": 1e3 * C.median(cut),
                     "cutting_ms": 1e3 * C.median(cutting), "cut_mb": C.median(size) / 1e6,
                     "saved_ms": 1e3 * C.median(saved)})
        print(f"  renderer, {rows[-1]['soundfont']}: whole font {rows[-1]['whole_ms']:.1f} ms/clip, cut "
              f"{rows[-1]['cut_ms']:.1f} + {rows[-1]['cutting_ms']:.1f} ms to cut, saved {rows[-1]['saved_ms']:.1f}",
              flush=True)
    return rows


def main() -> int:
    p = C.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=None, help="clips per corpus (default 200; --quick 40)")
    p.add_argument("--jobs", default="1,2", help="comma-separated worker counts (default 1,2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--soundfont", action="append", default=None, metavar="PATH",
                   help="SoundFont to measure (repeatable; default: TimGM6mb, plus FluidR3_GM when installed)")
    args = p.parse_args()
    fonts: list[str | None] = args.soundfont or [None, *([str(FLUID)] if FLUID.is_file() else [])]
    repeats = C.repeats_of(args)
    clips = args.clips or (40 if args.quick else 200)
    jobs_list = [int(j) for j in args.jobs.split(",") if j]
    machine = C.machine_info()
    print(f"bench_synth: {clips} clips, jobs {jobs_list}, {repeats} repeat(s), median reported"
          f"{' [QUICK MODE]' if args.quick else ''}")
    print(f"machine: {C.machine_line(machine)}", flush=True)

    runs: dict[tuple[str | None, int], list[dict]] = {(f, j): [] for f in fonts for j in jobs_list}
    command = ""
    with C.workdir(args, "instrec-bench-synth-") as work:
        for rep in range(repeats):
            print(f"repeat {rep + 1}/{repeats}", flush=True)
            for font, jobs in runs:
                out = work / f"corpus-j{jobs}"
                if out.exists():
                    shutil.rmtree(out)
                argv = C.instrec_argv("synth", "--out", str(out), "--clips", str(clips), "--seed", str(args.seed),
                                      "--jobs", str(jobs), "--quiet", *(["--soundfont", font] if font else []))
                if font is None:
                    command = C.display_command(argv).replace(str(out), "DIR")
                res = C.run_child(argv).check()
                stats_path = out / "corpus-stats.json"
                stats = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
                runs[font, jobs].append({"wall_s": res.wall_s, "rss": res.max_rss_mib, "stats": stats})
                print(f"  {Path(font).name if font else 'default font'}, --jobs {jobs}: {res.wall_s:6.2f} s, "
                      f"{clips / res.wall_s:6.1f} clips/s"
                      + (f" (corpus-stats: {stats['seconds']:.2f} s)" if "seconds" in stats else ""), flush=True)
    render = renderer_rows(fonts, 5 if args.quick else 20, args.seed)

    rows = []
    for (font, jobs), rs in runs.items():
        wall = C.median([r["wall_s"] for r in rs])
        internal = C.median([r["stats"].get("seconds", float("nan")) for r in rs])
        stages: dict[str, float] = {}
        for key in rs[0]["stats"].get("stage_seconds", {}):
            stages[key] = C.median([r["stats"].get("stage_seconds", {}).get(key, float("nan")) for r in rs])
        rows.append({"soundfont": Path(font).name if font else DEFAULT, "jobs": jobs, "clips": clips, "command_s": wall, "command_clips_per_s": clips / wall,
                     "stats_s": internal, "stats_clips_per_s": clips / internal if internal == internal else None,
                     **{f"stage_{k}_s": v for k, v in stages.items()},
                     "peak_rss_mib": C.median([r["rss"] for r in rs]), "repeats": len(rs),
                     "frontend": rs[0]["stats"].get("frontend", {}).get("name", "logmel")})
    targets = [C.target(f"`instrec synth --jobs {r['jobs']}` clips/s (whole command)", r["command_clips_per_s"],
                        ">=", 20, " clips/s") for r in rows if r["jobs"] == 2 and r["soundfont"] == DEFAULT]
    stage_cols = sorted({k for r in rows for k in r if k.startswith("stage_")})
    columns = ["soundfont", "jobs", "clips", "command_s", "command_clips_per_s", "stats_s", "stats_clips_per_s", *stage_cols,
               "peak_rss_mib"]
    headers = {"command_s": "command s", "command_clips_per_s": "command clips/s", "stats_s": "corpus-stats s",
               "stats_clips_per_s": "corpus-stats clips/s", "peak_rss_mib": "peak RSS MiB (parent)",
               **{k: "stage " + k[len("stage_"):-2] + " s" for k in stage_cols}}
    C.print_table("Corpus rendering (`instrec synth`, median of repeats)", rows, columns, headers)
    render_cols = ["soundfont", "font_mb", "clips", "whole_ms", "cut_mb", "cutting_ms", "cut_ms", "saved_ms"]
    render_headers = {"font_mb": "font MB", "whole_ms": "whole font ms/clip", "cutting_ms": "cutting ms/clip",
                      "cut_mb": "cut font MB", "cut_ms": "cut font ms/clip",
                      "saved_ms": "saved ms/clip (whole - cutting - cut)"}
    C.print_table("Synthesiser call per clip (median), whole SoundFont vs cut to the clip's presets", render,
                  render_cols, render_headers)
    C.print_targets(targets)
    notes = ["command = wall time of the whole `instrec synth` subprocess (start-up included); corpus-stats = the "
             "`seconds` the corpus reports in corpus-stats.json; stage columns are from the same file (summed over "
             "workers, so with --jobs 2 they can exceed the wall time).",
             "Logmel front end, 10 s clips. The default SoundFont is TimGM6mb (shipped with pretty_midi, no "
             "mandolin or ukulele); FluidR3_GM is Debian's fluid-soundfont-gm, the font with all 20 classes.",
             "Synthesiser call: midirenderer.render_wave_from on the first clips of the same corpus, in one process, "
             "whole and cut font interleaved, the fastest of 3 per clip, then the median over clips; cutting = "
             "building the clip's SoundFont (soundfont_subset); both fonts give byte-identical audio.",
             "Peak RSS is that of the main process only (workers are its children)."]
    if args.quick:
        notes.append("QUICK MODE: small corpus; numbers only check that the script works.")
    path = C.write_results(args.out, NAME, "Corpus rendering speed", args.quick,
                           {"clips": clips, "jobs": jobs_list, "seed": args.seed, "repeats": repeats, "soundfonts": fonts,
                            "command": command},
                           [C.table("synth", "Corpus rendering", rows, columns, headers),
                            C.table("renderer", "Synthesiser call per clip, whole SoundFont vs cut to the clip's "
                                    "presets", render, render_cols, render_headers)], machine, targets, notes)
    print(f"\nwrote {path} and {path.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
