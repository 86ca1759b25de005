"""``instrec experiment``, ``instrec demo`` and ``instrec default-model``: many runs at once."""
from __future__ import annotations

import argparse

from instrec.cli.args import COUNT, add_device_option, examples
from instrec.pipelines.grids import DEMO_EPOCHS, GRIDS
from instrec.training.config import COMPILE_HELP, COMPILE_MODES

GRID_HELP = ("paper: ATT and BiLSTM-ATT x {cross-entropy, focal} x {no augmentation, mixup, concatenation, both}, "
             "plus the baselines with focal loss; demo: ATT and BiLSTM-ATT, focal, without and with both "
             "augmentations (mixup with the 'known' label rule); baselines: every model, focal, no augmentation; "
             "smoke: three tiny runs, to check an installation; rules: the paper's configuration, its claims, the "
             "mixup label rules, --label-balance and pseudo-labels from a teacher (benchmarks/bench_rules_grid.py)")


def _experiment(args: argparse.Namespace) -> int:
    from instrec.pipelines.experiment import run_experiment

    run_experiment(args.data, args.out, grid=args.grid, seeds=args.seeds, epochs=args.epochs, jobs=args.jobs,
                   overwrite=args.overwrite, progress=not args.quiet, engine=args.engine,
                   compile=args.compile, scheduler=args.scheduler, device=args.device)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from instrec.pipelines.demo import run_demo

    run_demo(args.out, clips=args.clips, epochs=args.epochs, jobs=args.jobs, overwrite=args.overwrite,
             real=None if args.no_real else args.real, progress=not args.quiet)
    return 0


def _default_model(args: argparse.Namespace) -> int:
    from instrec.pipelines.default_model import build_default_model

    build_default_model(args.work, dest=args.dest, jobs=args.jobs, progress=not args.quiet)
    return 0


def add_commands(command) -> None:
    """Register the many-run commands with ``command(name, handler, help, epilog)``."""
    sp = command("experiment", _experiment, "the paper's comparison and ablations over seeds, with figures",
                 examples("instrec experiment --data corpus --out exp                 # the paper grid, 3 seeds",
                          "instrec experiment --data corpus --out exp --grid baselines --seeds 5 --epochs 80",
                          "instrec experiment --data corpus --out exp   # again after an interrupt: finished "
                          "runs are kept",
                          "instrec experiment --data corpus --out exp --engine dask --scheduler tcp://10.0.0.5:8786"))
    sp.add_argument("--data", required=True, help="OpenMIC-layout dataset folder")
    sp.add_argument("--grid", default="paper", choices=GRIDS, help=GRID_HELP)
    sp.add_argument("--seeds", type=COUNT, default=3, help="seeds per configuration (0, 1, ...)")
    sp.add_argument("--epochs", type=COUNT, default=200, help="training epochs of every run")
    sp.add_argument("--jobs", type=COUNT, default=2, help="runs trained in parallel (one per core)")
    sp.add_argument("--engine", default="solo", choices=["solo", "lockstep", "dask"],
                    help="solo: each run its own task in a local process pool; lockstep: train runs of one "
                         "architecture together with stacked weights (the same results up to float rounding; not "
                         "faster on 2 CPU cores); dask: each run a task of a Dask cluster, one torch thread each "
                         "(the results of solo; a local cluster of --jobs processes, or the one at --scheduler; "
                         "needs instrec[scale])")
    sp.add_argument("--scheduler", metavar="ADDRESS", help="--engine dask: the scheduler of an existing cluster "
                    "(e.g. tcp://10.0.0.5:8786)")
    sp.add_argument("--compile", default="auto", choices=COMPILE_MODES, help="solo engine: " + COMPILE_HELP)
    sp.add_argument("--out", required=True, help="experiment folder: runs/, results.csv, report.md, figures")
    add_device_option(sp, "; every run's (--jobs runs share one GPU); --engine dask: each worker resolves it")
    sp.add_argument("--overwrite", action="store_true", help="replace an existing --out")

    sp = command("demo", _demo, "the quick start: synth corpus -> train -> evaluate -> figures -> tag a clip",
                 examples("instrec demo                                  # the quick start (times: README)",
                          "instrec demo --out quick --clips 500 --epochs 20 --no-real"))
    sp.add_argument("--out", default="demo-output", help="folder for the corpus, the runs, the report and figures")
    sp.add_argument("--clips", type=COUNT, default=2000, help="clips rendered for the corpus")
    sp.add_argument("--epochs", type=COUNT, default=DEMO_EPOCHS, help="training epochs of every run (the paper: 200)")
    sp.add_argument("--jobs", type=COUNT, default=2, help="processes for rendering and training")
    sp.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    sp.add_argument("--real", default="examples/real", help="folder of real recordings tagged at the end with the "
                    "default model")
    sp.add_argument("--no-real", action="store_true", help="skip tagging the real recordings")

    sp = command("default-model", _default_model, "rebuild the default model that ships with instrec: realistic "
                 "corpus with the musicnn front end, training, export into the package",
                 examples("instrec default-model --work default-model-work",
                          "instrec default-model --work w --dest mymodel   # export elsewhere"))
    sp.add_argument("--work", required=True, help="folder for the corpus and the run (a corpus there is reused)")
    sp.add_argument("--dest", help="where to export the model (default: inside the installed package)")
    sp.add_argument("--jobs", type=COUNT, default=2, help="rendering processes")
