"""``instrec predict``: tag audio files with the default model or a trained run."""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from instrec._io import InstrecError, OutputLock, check_output_dir, check_output_file
from instrec.cli.args import (
    COUNT,
    FILE_JOBS_HELP,
    JOBS,
    THREADS,
    THREADS_HELP,
    THRESHOLD,
    THRESHOLD_HELP,
    add_device_option,
    examples,
)
from instrec.cli.report import report_failures, write_stdout
from instrec.features import FRONTEND_NAMES


def _predict(args: argparse.Namespace) -> int:
    from instrec.run import CONFIG_FILE

    run_dir, inputs = args.run, list(args.inputs)
    if run_dir is None and len(inputs) > 1 and (Path(inputs[0]) / CONFIG_FILE).is_file():
        run_dir, inputs = inputs[0], inputs[1:]  # the older form: instrec predict RUN_DIR FILES...
    dask_only = [f"--{k}" for k in ("scheduler", "workers", "batch") if getattr(args, k) is not None]
    if dask_only and args.engine != "dask":
        raise InstrecError(f"{', '.join(dask_only)}: only with --engine dask")
    if args.engine == "dask":
        return _predict_dask(args, run_dir, inputs)
    missing = [i for i in inputs if not Path(i).exists()]
    if missing and len(missing) == len(inputs):  # nothing to tag: say so before loading a model
        return report_failures([(i, f"{i}: no such file or folder") for i in missing])
    for i in missing:  # reported now, and with the other failures at the end
        print(f"instrec: {i}: no such file or folder; tagging the other inputs", file=sys.stderr)
    out = Path(args.out) if args.out else None
    if args.format == "jams" and out is None:
        raise InstrecError("--format jams writes one .jams file per audio file: give the folder with --out DIR")
    plot = Path(args.plot) if args.plot else None
    if plot is not None and plot.exists() and not plot.is_dir():
        raise InstrecError(f"{plot}: --plot needs a folder, and this is a file")
    # The locks first, then the collision checks, then the work: a second writer of the same
    # --out or --plot folder is refused, and nothing is found taken only after all the files
    # were tagged. The pictures follow --out's rule: a folder that holds some needs --overwrite.
    with contextlib.ExitStack() as locks:
        if out is not None:
            locks.enter_context(OutputLock(out))
            if args.format == "jams":
                check_output_dir(out, args.overwrite)
            else:
                check_output_file(out, args.overwrite)
        if plot is not None and (out is None or plot.resolve() != out.resolve()):  # one lock per folder
            locks.enter_context(OutputLock(plot))
            check_output_dir(plot, args.overwrite)
        return _tag(args, run_dir, inputs, out)


def _tag(args: argparse.Namespace, run_dir: str | None, inputs: list[str], out: Path | None) -> int:
    from instrec._io import atomic_write_bytes
    from instrec.tagging.formats import format_results, readable
    from instrec.tagging.plot import write_plots
    from instrec.tagging.predict import predict

    results = predict(run_dir, inputs, per_second=args.per_second, frontend=args.frontend,
                      weights_dir=args.weights, progress=not args.quiet, threads=args.threads,
                      threshold=args.threshold, allow_unfinished=args.allow_unfinished, jobs=args.jobs,
                      device=args.device, keep_partial=True, min_seconds=args.min_seconds)
    to_terminal = out is None and (args.print or (sys.stdout is not None and sys.stdout.isatty()))
    if args.format == "jams":
        try:
            from instrec.tagging.jams_output import write_jams
        except ImportError:
            raise InstrecError("--format jams needs the jams package: pip install 'instrec[jams]'") from None
        written = write_jams(results, out)
        print(f"tagged {len(written)} file(s) -> {out}/ (JAMS)", file=sys.stderr)
    elif to_terminal:
        write_stdout(readable(results, per_second=args.per_second))  # a person reads the terminal
    elif out is None:
        write_stdout(format_results(results, args.format, args.per_second))
    elif results.files:
        # surrogateescape: a file name that is not valid UTF-8 is written as its raw bytes
        atomic_write_bytes(out, format_results(results, args.format, args.per_second).encode("utf-8", "surrogateescape"))
        print(f"tagged {len(results.files)} file(s) -> {out}", file=sys.stderr)
    if args.print and out is not None:
        write_stdout(readable(results, per_second=args.per_second))
    if args.plot and results.files and results.interrupted is None:
        pictures = write_plots(results, args.plot)
        print(f"{len(pictures)} picture(s) -> {Path(args.plot)}/", file=sys.stderr)
    code = report_failures(results.failures)
    if results.interrupted is not None:
        done, total = results.interrupted
        kept = "" if out is None or not results.files else (
            f"; {out}/ holds their .jams files" if args.format == "jams"
            else f"; {out} holds those (its status says PARTIAL)")
        print(f"instrec: interrupted after {done} of {total} file(s){kept}", file=sys.stderr)
        return 130
    return code


def _predict_dask(args: argparse.Namespace, run_dir: str | None, inputs: list[str]) -> int:
    """``--engine dask``: Parquet tables in the folder ``--out``, resumable (instrec.tagging.catalogue)."""
    from instrec.tagging.catalogue import JOB_FILE, tag_catalogue

    if not args.out:
        raise InstrecError("--engine dask writes Parquet tables into a folder: give it with --out DIR")
    unsupported = [name for name, used in (("--format " + args.format, args.format != "csv"), ("--plot", args.plot),
                                           ("--print", args.print),
                                           (f"--jobs {args.jobs} (use --workers)", args.jobs)) if used]
    if unsupported:
        raise InstrecError(f"{', '.join(unsupported)}: not with --engine dask, which writes Parquet tables")
    out = Path(args.out)
    if out.exists() and not (out / JOB_FILE).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise InstrecError(f"{out}: exists and is not the output folder of an earlier --engine dask job")
    report = tag_catalogue(run_dir, inputs, out, per_second=args.per_second, scheduler=args.scheduler,
                           workers=args.workers, batch_files=args.batch, threads=args.threads or 1,
                           progress=not args.quiet, frontend=args.frontend, weights_dir=args.weights,
                           threshold=args.threshold, device=args.device,
                           **({} if args.min_seconds is None else {"min_seconds": args.min_seconds}))
    print(f"tagged {report.files_tagged} file(s), {report.files_skipped} already done -> {out}/ (Parquet) in "
          f"{report.wall_seconds:.1f} s", file=sys.stderr)
    return report_failures(report.failed)


def _seconds(text: str) -> float:
    """``--min-seconds``: a finite number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds, 0 or more")
    return value


def add_commands(command) -> None:
    """Register ``predict`` with ``command(name, handler, help, epilog)``."""
    sp = command("predict", _predict, "tag audio files with the default model or a trained run",
                 examples("instrec predict song.mp3                      # instruments heard, printed",
                          "instrec predict music/ --out tags.csv         # a folder, one CSV row per file",
                          "instrec predict song.wav --per-second --format json --out song.json",
                          "instrec predict song.wav --threshold 0.5      # one threshold for every instrument",
                          "instrec predict album/ --print --min-seconds 5  # when each instrument plays",
                          "instrec predict --run runs/bilstm clips/ --out tags.csv --plot pictures/",
                          "instrec predict catalogue/ --engine dask --out tags/   # Parquet; again after an "
                          "interrupt: only what is missing",
                          "instrec predict catalogue/ --engine dask --scheduler tcp://10.0.0.5:8786 --out /shared/tags"))
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
    sp.add_argument("--per-second", action="store_true", help="per-frame (0.96 s) probabilities, present flags "
                    "and attention; with --print, when each instrument plays")
    sp.add_argument("--min-seconds", type=_seconds, metavar="S", help="a file longer than one clip holds an "
                    "instrument when its per-second decisions add up to S seconds (default: the model's, 4)")
    sp.add_argument("--threshold", type=THRESHOLD, default="tuned", metavar="tuned|0.5|FLOAT", help=THRESHOLD_HELP)
    sp.add_argument("--frontend", choices=FRONTEND_NAMES, help="must match the run's front end (default: the run's)")
    sp.add_argument("--weights", help="folder of the converted pretrained weights (VGGish, musicnn)")
    sp.add_argument("--threads", type=THREADS, default=0, help=THREADS_HELP + "; with --engine dask, per task, "
                    "and 0 means 1")
    sp.add_argument("--jobs", type=JOBS, default=0, help=FILE_JOBS_HELP + "; --engine dask: see --workers")
    sp.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    sp.add_argument("--allow-unfinished", action="store_true", help="tag with a run whose training did not finish "
                    "(killed, a full disk), with a warning")
    sp.add_argument("--engine", default="local", choices=["local", "dask"],
                    help="local: this process; dask: batches of files as tasks of a Dask cluster, Parquet tables "
                         "in the folder --out (clips/, seconds/ with --per-second, failures.parquet), resumable: "
                         "the same command again tags only the files not yet done (needs instrec[scale])")
    sp.add_argument("--scheduler", metavar="ADDRESS", help="--engine dask: the scheduler of an existing cluster "
                    "(e.g. tcp://10.0.0.5:8786); without it a local cluster is started")
    sp.add_argument("--workers", type=COUNT, help="--engine dask without --scheduler: worker processes of the local "
                    "cluster, one thread each (default: the usable cores)")
    sp.add_argument("--batch", type=COUNT, help="--engine dask: files per task (default: 16)")
    add_device_option(sp, "; with a GPU, --jobs processes decode and the GPU runs the networks; --engine dask: "
                      "each worker resolves it (auto: its own GPU if it has one)")
