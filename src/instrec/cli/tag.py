"""``instrec predict``: tag audio files with the default model or a trained run."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from instrec._io import InstrecError
from instrec.cli.args import THREADS, THREADS_HELP, examples
from instrec.cli.report import report_failures
from instrec.features import FRONTEND_NAMES


def _predict(args: argparse.Namespace) -> int:
    from instrec._io import atomic_write_text
    from instrec.run import CONFIG_FILE
    from instrec.tagging.formats import format_results, readable
    from instrec.tagging.plot import write_plots
    from instrec.tagging.predict import predict

    run_dir, inputs = args.run, list(args.inputs)
    if run_dir is None and len(inputs) > 1 and (Path(inputs[0]) / CONFIG_FILE).is_file():
        run_dir, inputs = inputs[0], inputs[1:]  # the older form: instrec predict RUN_DIR FILES...
    out = Path(args.out) if args.out else None
    if args.format == "jams" and out is None:
        raise InstrecError("--format jams writes one .jams file per audio file: give the folder with --out DIR")
    empty_folder = out is not None and out.is_dir() and not any(out.iterdir())
    if out is not None and out.exists() and not args.overwrite and not (args.format == "jams" and empty_folder):
        raise InstrecError(f"{out}: exists; pass --overwrite to replace it")
    results = predict(run_dir, inputs, per_second=args.per_second, frontend=args.frontend,
                      weights_dir=args.weights, progress=not args.quiet, threads=args.threads)
    if args.format == "jams":
        try:
            from instrec.tagging.jams_output import write_jams
        except ImportError:
            raise InstrecError("--format jams needs the jams package: pip install 'instrec[jams]'") from None
        written = write_jams(results, out)
        print(f"tagged {len(written)} file(s) -> {out}/ (JAMS)", file=sys.stderr)
    elif out is None and (args.print or sys.stdout.isatty()):
        sys.stdout.write(readable(results))  # a person reads the terminal
    elif out is None:
        sys.stdout.write(format_results(results, args.format, args.per_second))
    elif results.files:
        atomic_write_text(out, format_results(results, args.format, args.per_second))
        print(f"tagged {len(results.files)} file(s) -> {out}", file=sys.stderr)
    if args.print and out is not None:
        sys.stdout.write(readable(results))
    if args.plot and results.files:
        pictures = write_plots(results, args.plot)
        print(f"{len(pictures)} picture(s) -> {args.plot}/", file=sys.stderr)
    return report_failures(results.failures)


def add_commands(command) -> None:
    """Register ``predict`` with ``command(name, handler, help, epilog)``."""
    sp = command("predict", _predict, "tag audio files with the default model or a trained run",
                 examples("instrec predict song.mp3                      # instruments heard, printed",
                          "instrec predict music/ --out tags.csv         # a folder, one CSV row per file",
                          "instrec predict song.wav --per-second --format json --out song.json",
                          "instrec predict --run runs/bilstm clips/ --out tags.csv --plot pictures/"))
    sp.add_argument("inputs", nargs="+", help="audio files or folders (searched recursively); a run directory "
                    "first is taken as --run")
    sp.add_argument("--run", help="run directory to tag with (default: the model that ships with instrec)")
    sp.add_argument("--out", help="output file (default: standard output); with --format jams, a folder")
    sp.add_argument("--format", default="csv", choices=["csv", "json", "jams"],
                    help="csv (one row per file, or per frame with --per-second), json, or jams (one .jams per "
                         "file: a tag_open annotation per instrument, per-second confidences)")
    sp.add_argument("--plot", metavar="DIR", help="also write per file a PNG: instruments over time and the "
                    "clip-level tags")
    sp.add_argument("--print", action="store_true", help="print per file the instruments heard, with probabilities "
                    "and thresholds (the default on a terminal without --out)")
    sp.add_argument("--per-second", action="store_true", help="per-frame (0.96 s) probabilities and attention")
    sp.add_argument("--frontend", choices=FRONTEND_NAMES, help="must match the run's front end (default: the run's)")
    sp.add_argument("--weights", help="folder of the converted pretrained weights (VGGish, musicnn)")
    sp.add_argument("--threads", type=THREADS, default=0, help=THREADS_HELP)
    sp.add_argument("--overwrite", action="store_true", help="replace an existing --out")
