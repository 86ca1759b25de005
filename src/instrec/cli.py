"""The ``instrec`` command: a thin shell over the library. Heavy modules are imported inside
each command so that ``instrec --help`` answers at once."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Callable, Sequence

from instrec._io import InstrecError
from instrec._version import __version__
from instrec.features import FRONTEND_NAMES
from instrec.training.config import COMPILE_HELP, COMPILE_MODES, TrainConfig

THREADS_HELP = ("torch intra-op threads; 0 = auto: 1 with the logmel front end, the usable cores (at most 2) "
                "with vggish and musicnn (see instrec.runinfo)")


def _download(args: argparse.Namespace) -> int:
    if args.what == "openmic":
        if not args.root:
            raise InstrecError("download openmic needs --root DIR (about 2.6 GB)")
        from instrec.data.download import download_openmic

        print(download_openmic(args.root, progress=not args.quiet))
    elif args.what == "musicnn":
        from instrec.features.musicnn_weights import download_musicnn

        print(download_musicnn(args.root, force=args.force, progress=not args.quiet, wheel=args.wheel))
    else:
        from instrec.features.vggish_weights import download_vggish

        for path in download_vggish(args.root, source=args.source, progress=not args.quiet, force=args.force):
            print(path)
    return 0


def _synth(args: argparse.Namespace) -> int:
    from instrec.runinfo import set_threads
    from instrec.synth import build_corpus
    from instrec.synth.real_worker import RealisticSettings

    set_threads(args.threads, frontend=args.frontend)  # this process; worker processes use one thread

    build_corpus(args.out, args.clips, args.seed, soundfonts=args.soundfont, frontend=args.frontend,
                 jobs=args.jobs, keep_audio=args.keep_audio, overwrite=args.overwrite,
                 labels_per_clip=args.labels_per_clip, disagreement=not args.no_disagreement,
                 progress=not args.quiet, recipe=args.recipe,
                 realistic=RealisticSettings(augment=not args.no_augment) if args.recipe == "realistic" else None)
    return 0


def _featurize(args: argparse.Namespace) -> int:
    from instrec.data.featurize import featurize

    report = featurize(args.inputs, args.out, frontend=args.frontend, labels=args.labels,
                       weights_dir=args.weights, test_fraction=args.test_fraction, seed=args.seed,
                       overwrite=args.overwrite, progress=not args.quiet, threads=args.threads)
    return _report_failures(report.failures)


def _train(args: argparse.Namespace) -> int:
    from instrec.training.loop import train

    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in _train_fields()})
    summary = train(cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    print(f"{args.out}: best validation macro F1 {summary['best_val_macro_f1']:.4f} "
          f"at epoch {summary['best_epoch']}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from instrec.evaluation.evaluate import evaluate_run

    m = evaluate_run(args.run_dir, data=args.data, split=args.split, out=args.out, localization=args.localization)
    print(f"{args.run_dir} on {m['split']} ({m['n_clips']} clips): macro F1 {m['macro_f1']:.4f}, "
          f"micro F1 {m['micro_f1']:.4f}, 2-class macro F1 {m['macro_f1_2class']:.4f}, mAP {m['mean_ap']:.4f}")
    loc = m.get("localization")
    if loc and loc.get("frame_level"):
        print(f"  localization (1 s segments): F1 {loc['frame_level']['f1']:.4f}, ER {loc['frame_level']['er']:.4f}"
              f" vs frame-agnostic F1 {loc['frame_agnostic']['f1']:.4f}, ER {loc['frame_agnostic']['er']:.4f}")
    return 0


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
    return _report_failures(results.failures)


def _experiment(args: argparse.Namespace) -> int:
    from instrec.pipelines.experiment import run_experiment

    run_experiment(args.data, args.out, grid=args.grid, seeds=args.seeds, epochs=args.epochs, jobs=args.jobs,
                   overwrite=args.overwrite, progress=not args.quiet, engine=args.engine,
                   compile=args.compile)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from instrec.pipelines.demo import run_demo

    run_demo(args.out, clips=args.clips, epochs=args.epochs, jobs=args.jobs, overwrite=args.overwrite,
             real=None if args.no_real else args.real)
    return 0


def _default_model(args: argparse.Namespace) -> int:
    from instrec.pipelines.default_model import build_default_model

    build_default_model(args.work, dest=args.dest, jobs=args.jobs, progress=not args.quiet)
    return 0


def _report_failures(failures: Sequence[tuple[str, str]]) -> int:
    for _, message in failures:
        print(f"instrec: failed: {message}", file=sys.stderr)
    if failures:
        print(f"instrec: {len(failures)} file(s) failed", file=sys.stderr)
    return 1 if failures else 0


def _train_fields() -> list[dataclasses.Field]:
    """The TrainConfig fields that are ``instrec train`` options."""
    return [f for f in dataclasses.fields(TrainConfig) if f.metadata.get("cli", True)]


def _add_train_options(sp: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field, with its default, type, choices and help."""
    for f in _train_fields():
        flag = "--" + f.name.replace("_", "-")
        meta = f.metadata
        if f.default is dataclasses.MISSING:
            sp.add_argument(flag, required=True, help=meta["help"])
            continue
        sp.add_argument(flag, type=type(f.default), default=f.default, choices=meta.get("choices"),
                        metavar=meta.get("metavar"), help=f"{meta['help']} (default: {f.default})")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="instrec", description="Musical instrument recognition from weak and "
                                "partial labels (OpenMIC-2018): train, evaluate, tag audio.")
    p.add_argument("--version", action="version", version=f"instrec {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=fn)
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
        return sp

    sp = command("download", _download, "download OpenMIC-2018, the VGGish weights or the musicnn weights "
                 "(checksum-verified)")
    sp.add_argument("what", choices=["openmic", "vggish", "musicnn"],
                    help="musicnn: the musicnn==0.1.0 wheel from the package index (pip, sha256-checked), "
                         "its TensorFlow checkpoints converted once to safetensors")
    sp.add_argument("--root", help="folder to download into (vggish, musicnn default: $INSTREC_WEIGHTS_DIR or "
                    "~/.cache/instrec/weights)")
    sp.add_argument("--wheel", help="musicnn: use this local musicnn-0.1.0 wheel instead of pip download")
    sp.add_argument("--source", default="auto", choices=["auto", "tensorflow", "torchvggish"],
                    help="vggish: the official TF checkpoint (needs tensorflow to convert) or the torchvggish files")
    sp.add_argument("--force", action="store_true", help="vggish, musicnn: convert again")

    sp = command("synth", _synth, "render the offline multi-instrument corpus (OpenMIC layout + strong labels)")
    sp.add_argument("--out", required=True)
    sp.add_argument("--clips", type=int, default=2000)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--recipe", default="ensemble", choices=["ensemble", "realistic"],
                    help="ensemble: dense multi-instrument pieces, one font, clean audio; realistic: mostly solos, "
                         "duos and sparse textures, a font per part, expressive playing, recording-chain augmentation")
    sp.add_argument("--soundfont", action="append", metavar="SF2",
                    help="a .sf2 file, or 'auto' for every installed General MIDI font; repeatable with --recipe "
                         "realistic (default: TimGM6mb shipped with pretty_midi; realistic: auto)")
    sp.add_argument("--no-augment", action="store_true", help="realistic: skip the recording-chain augmentation")
    sp.add_argument("--frontend", default="logmel", choices=FRONTEND_NAMES)
    sp.add_argument("--jobs", type=int, default=2)
    sp.add_argument("--threads", type=int, default=0, help=THREADS_HELP + "; worker processes (--jobs > 1) "
                    "always use one")
    sp.add_argument("--keep-audio", action="store_true")
    sp.add_argument("--labels-per-clip", type=float, default=2.0)
    sp.add_argument("--no-disagreement", action="store_true", help="relevance exactly 0/1")
    sp.add_argument("--overwrite", action="store_true")

    sp = command("featurize", _featurize, "build an OpenMIC-layout dataset from your audio files")
    sp.add_argument("inputs", nargs="+", help="audio files or folders")
    sp.add_argument("--out", required=True)
    sp.add_argument("--frontend", default="vggish", choices=FRONTEND_NAMES)
    sp.add_argument("--labels", help="CSV sample_key,instrument,relevance (OpenMIC's aggregated-labels format)")
    sp.add_argument("--weights", help="VGGish weights folder (default: the download location)")
    sp.add_argument("--test-fraction", type=float, default=0.25)
    sp.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--overwrite", action="store_true")

    sp = command("train", _train, "train a model (defaults: the paper's settings)")
    _add_train_options(sp)
    sp.add_argument("--resume", action="store_true", help="continue an interrupted run")
    sp.add_argument("--overwrite", action="store_true")

    sp = command("evaluate", _evaluate, "score a run: metrics.json, per_class.csv, predictions.npz")
    sp.add_argument("run_dir")
    sp.add_argument("--data", help="dataset folder (default: the one the run was trained on)")
    sp.add_argument("--split", default="test", choices=["test", "train", "validation"])
    sp.add_argument("--out", help="folder for the outputs (default: RUN_DIR)")
    sp.add_argument("--localization", action="store_true", help="score per-second outputs against strong labels")

    sp = command("predict", _predict, "tag audio files with the default model or a trained run")
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
    sp.add_argument("--frontend", choices=FRONTEND_NAMES, help="must match the run's front end")
    sp.add_argument("--weights", help="folder of the converted pretrained weights (VGGish, musicnn)")
    sp.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    sp.add_argument("--overwrite", action="store_true")

    sp = command("experiment", _experiment, "the paper's comparison and ablations over seeds, with figures")
    sp.add_argument("--data", required=True)
    sp.add_argument("--grid", default="paper", choices=["paper", "demo", "baselines", "smoke"])
    sp.add_argument("--seeds", type=int, default=3)
    sp.add_argument("--epochs", type=int, default=200)
    sp.add_argument("--jobs", type=int, default=2, help="runs trained in parallel (one per core)")
    sp.add_argument("--engine", default="solo", choices=["solo", "lockstep"],
                    help="lockstep: train runs of one architecture together with stacked weights "
                         "(the same results up to float rounding; not faster on 2 CPU cores)")
    sp.add_argument("--compile", default="auto", choices=COMPILE_MODES, help="solo engine: " + COMPILE_HELP)
    sp.add_argument("--out", required=True)
    sp.add_argument("--overwrite", action="store_true")

    sp = command("demo", _demo, "the quick start: synth corpus -> train -> evaluate -> figures -> tag a clip")
    sp.add_argument("--out", default="demo-output")
    sp.add_argument("--clips", type=int, default=2000)
    sp.add_argument("--epochs", type=int, default=200)
    sp.add_argument("--jobs", type=int, default=2)
    sp.add_argument("--overwrite", action="store_true")
    sp.add_argument("--real", default="examples/real", help="folder of real recordings tagged at the end with the "
                    "default model (default: examples/real)")
    sp.add_argument("--no-real", action="store_true", help="skip tagging the real recordings")

    sp = command("default-model", _default_model, "rebuild the default model that ships with instrec: realistic "
                 "corpus with the musicnn front end, training, export into the package")
    sp.add_argument("--work", required=True, help="folder for the corpus and the run (a corpus there is reused)")
    sp.add_argument("--dest", help="where to export the model (default: inside the installed package)")
    sp.add_argument("--jobs", type=int, default=2, help="rendering processes")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except InstrecError as exc:
        print(f"instrec: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("instrec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
