"""What the integrity checks add to every model load: the sha256 of the shipped default model
(config.json + model.safetensors) and of the converted musicnn weights, checked whenever
``instrec predict`` loads them, against the whole ``Tagger`` start-up they are part of.

    python benchmarks/bench_integrity.py [--quick] [--repeats N]
"""
from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

from instrec.features.musicnn_weights import check_cache, weight_files  # noqa: E402
from instrec.run import CHECKED_FILES, check_run_integrity  # noqa: E402
from instrec.tagging.predict import Tagger, default_model_dir  # noqa: E402

NAME = "bench_integrity"


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * C.median(times)


def main() -> int:
    args = C.base_parser(__doc__.splitlines()[0], default_repeats=20).parse_args()
    repeats = C.repeats_of(args, 20)
    rows = []
    model = default_model_dir()
    size = sum((model / n).stat().st_size for n in CHECKED_FILES) / 2**20
    rows.append({"check": "default model (config.json + model.safetensors)", "mib": round(size, 2),
                 "median_ms": round(_median_ms(lambda: check_run_integrity(model, required=True), repeats), 2)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a cache without records would not be checked: not a measurement
        try:
            check_cache()
            files = weight_files()
            rows.append({"check": "musicnn MTT weights (.safetensors + .json)",
                         "mib": round(sum(f.stat().st_size for f in files) / 2**20, 2),
                         "median_ms": round(_median_ms(check_cache, repeats), 2)})
        except Exception as exc:  # noqa: BLE001 - no converted cache here: say so in the notes
            print(f"musicnn cache not measured: {exc}", file=sys.stderr)
    tagger_ms = _median_ms(lambda: Tagger(), max(2, repeats // 5))
    rows.append({"check": "whole Tagger() start-up (default model load, checks included)", "mib": None,
                 "median_ms": round(tagger_ms, 2)})
    for row in rows:
        print(f"{row['check']}: {row['median_ms']} ms", flush=True)
    C.write_results(args.out, NAME, "Integrity checks: cost per model load", args.quick, {"repeats": repeats},
                    [{"name": "checks", "title": "sha256 checks at load (median)",
                      "columns": ["check", "mib", "median_ms"], "rows": rows}], C.machine_info(),
                    notes=["The musicnn front end itself is loaded on first use, after Tagger(); its check runs then."])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
