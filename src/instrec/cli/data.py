"""``instrec download``, ``instrec synth`` and ``instrec featurize``: getting data."""
from __future__ import annotations

import argparse

from instrec._io import InstrecError
from instrec.cli.args import (
    COUNT,
    FILE_JOBS_HELP,
    JOBS,
    SEED,
    THREADS,
    THREADS_HELP,
    add_device_option,
    examples,
    number,
)
from instrec.cli.report import report_failures
from instrec.features import FRONTEND_NAMES

#: The keys of instrec.synth.presets.PRESETS (not imported here: the synth package is slow to
#: import and the command line starts fast; a test keeps the two equal).
PRESET_NAMES = ("openmic",)


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

    set_threads(args.threads)  # this process; worker processes use one thread

    clips, soundfonts, labels_per_clip, test_fraction, recipe = (args.clips, args.soundfont, args.labels_per_clip,
                                                                 args.test_fraction, args.recipe)
    if args.preset:
        from instrec.synth.presets import preset_options

        preset = preset_options(args.preset)  # options given on the command line win
        clips = preset["n_clips"] if clips is None else clips
        soundfonts = soundfonts or [preset["soundfont"]]
        labels_per_clip = preset["labels_per_clip"] if labels_per_clip is None else labels_per_clip
        test_fraction = preset["test_fraction"] if test_fraction is None else test_fraction
        recipe = recipe or preset["recipe"]
    build_corpus(args.out, 2000 if clips is None else clips, args.seed, soundfonts=soundfonts,
                 frontend=args.frontend, jobs=args.jobs, keep_audio=args.keep_audio, overwrite=args.overwrite,
                 labels_per_clip=2.0 if labels_per_clip is None else labels_per_clip,
                 test_fraction=0.25 if test_fraction is None else test_fraction,
                 disagreement=not args.no_disagreement, progress=not args.quiet, recipe=recipe or "ensemble",
                 realistic=RealisticSettings(augment=not args.no_augment) if recipe == "realistic" else None)
    return 0


def _featurize(args: argparse.Namespace) -> int:
    from instrec.data.featurize import featurize

    report = featurize(args.inputs, args.out, frontend=args.frontend, labels=args.labels,
                       weights_dir=args.weights, test_fraction=args.test_fraction, seed=args.seed,
                       overwrite=args.overwrite, progress=not args.quiet, threads=args.threads, jobs=args.jobs,
                       device=args.device)
    return report_failures(report.failures)


def add_commands(command) -> None:
    """Register the data commands with ``command(name, handler, help, epilog)``."""
    sp = command("download", _download, "download OpenMIC-2018, the VGGish weights or the musicnn weights "
                 "(checksum-verified)",
                 examples("instrec download musicnn                 # weights of the default model's front end",
                          "instrec download openmic --root ~/data    # 2.6 GB from Zenodo, md5-checked",
                          "instrec download vggish --source torchvggish"))
    sp.add_argument("what", choices=["openmic", "vggish", "musicnn"],
                    help="openmic: the dataset; vggish: the OpenMIC front end's weights; musicnn: the "
                         "musicnn==0.1.0 wheel from the package index (pip, sha256-checked), its TensorFlow "
                         "checkpoints converted once to safetensors")
    sp.add_argument("--root", help="folder to download into (vggish, musicnn default: $INSTREC_WEIGHTS_DIR or "
                    "~/.cache/instrec/weights)")
    sp.add_argument("--wheel", help="musicnn: use this local musicnn-0.1.0 wheel instead of pip download")
    sp.add_argument("--source", default="auto", choices=["auto", "tensorflow", "torchvggish"],
                    help="vggish: the official TF checkpoint (needs tensorflow to convert) or the torchvggish files")
    sp.add_argument("--force", action="store_true", help="vggish, musicnn: convert again")

    sp = command("synth", _synth, "render the offline multi-instrument corpus (OpenMIC layout + strong labels)",
                 examples("instrec synth --out corpus                       # 2,000 clips, logmel features",
                          "instrec synth --out real --recipe realistic --frontend musicnn --clips 500",
                          "instrec synth --out small --clips 200 --keep-audio --jobs 1",
                          "instrec synth --out openmic --preset openmic          # 20,000 clips, all 20 classes"))
    sp.add_argument("--out", required=True, help="dataset folder to create (OpenMIC layout)")
    sp.add_argument("--preset", choices=PRESET_NAMES, help="openmic: the OpenMIC-2018 release's size (20,000 clips, "
                    "a quarter for test), every class rendered (the first installed font with all 20), about 2 "
                    "labelled instruments per clip; options given as well override the preset's")
    sp.add_argument("--clips", type=COUNT, default=None, help="number of 10-s clips to render (default: 2000, or the preset's)")
    sp.add_argument("--seed", type=SEED, default=0, help="seed of the scores, fonts, mixes and labels")
    sp.add_argument("--recipe", default=None, choices=["ensemble", "realistic"],
                    help="(default: ensemble, or the preset's) ensemble: dense multi-instrument pieces, one font, clean audio; realistic: mostly solos, "
                         "duos and sparse textures, a font per part, expressive playing, recording-chain augmentation")
    sp.add_argument("--soundfont", action="append", metavar="SF2",
                    help="a .sf2 file, or 'auto' for every installed General MIDI font; repeatable with --recipe "
                         "realistic (default: TimGM6mb shipped with pretty_midi; realistic: auto)")
    sp.add_argument("--no-augment", action="store_true", help="realistic: skip the recording-chain augmentation")
    sp.add_argument("--frontend", default="logmel", choices=FRONTEND_NAMES, help="features stored as X")
    sp.add_argument("--jobs", type=COUNT, default=2, help="rendering processes")
    sp.add_argument("--threads", type=THREADS, default=0, help=THREADS_HELP + "; worker processes (--jobs > 1) "
                    "always use one")
    sp.add_argument("--keep-audio", action="store_true", help="also keep the rendered audio (FLAC) and MIDI")
    sp.add_argument("--labels-per-clip", type=number(1, 20, what="must be in [1, 20]"), default=None,
                    help="mean number of instruments labelled per clip (the rest are unknown, as in OpenMIC; "
                    "default: 2, or the preset's)")
    sp.add_argument("--test-fraction", type=number(0, 1, hi_open=True, what="must be in [0, 1)"), default=None,
                    help="share of the clips in the test partition (default: 0.25, or the preset's)")
    sp.add_argument("--no-disagreement", action="store_true", help="relevance exactly 0/1 (no annotator noise)")
    sp.add_argument("--overwrite", action="store_true", help="replace an existing --out")

    sp = command("featurize", _featurize, "build an OpenMIC-layout dataset from your audio files",
                 examples("instrec featurize music/ --out mydata --labels labels.csv",
                          "instrec featurize a.wav b.flac --out mydata --frontend logmel --test-fraction 0.2"))
    sp.add_argument("inputs", nargs="+", help="audio files or folders (searched recursively)")
    sp.add_argument("--out", required=True, help="dataset folder to create")
    sp.add_argument("--frontend", default="vggish", choices=FRONTEND_NAMES, help="features stored as X")
    sp.add_argument("--labels", help="CSV sample_key,instrument,relevance (OpenMIC's aggregated-labels format)")
    sp.add_argument("--weights", help="VGGish or musicnn weights folder (default: the download location)")
    sp.add_argument("--test-fraction", type=number(0, 1, hi_open=True, what="must be in [0, 1)"), default=0.25,
                    help="share of the clips in the test partition")
    sp.add_argument("--jobs", type=JOBS, default=0, help=FILE_JOBS_HELP)
    sp.add_argument("--threads", type=THREADS, default=0, help=THREADS_HELP)
    sp.add_argument("--seed", type=SEED, default=0, help="seed of the train/test partition")
    sp.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    add_device_option(sp, "; with a GPU, --jobs processes decode and the GPU runs the front end's network")

