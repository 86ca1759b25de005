"""``instrec train`` and ``instrec evaluate``: one run."""
from __future__ import annotations

import argparse
import dataclasses

from instrec.cli.args import COUNT, FINITE, TRAIN_FIELD_TYPES, add_device_option, examples
from instrec.training.config import TrainConfig


def _train(args: argparse.Namespace) -> int:
    from instrec.training.loop import train

    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in train_fields()})
    summary = train(cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    print(f"{args.out}: best validation macro F1 {summary['best_val_macro_f1']:.4f} "
          f"at epoch {summary['best_epoch']}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from instrec.evaluation.evaluate import evaluate_run

    m = evaluate_run(args.run_dir, data=args.data, split=args.split, out=args.out, localization=args.localization,
                     overwrite=args.overwrite, allow_unfinished=args.allow_unfinished, device=args.device)
    print(f"{args.run_dir} on {m['split']} ({m['n_clips']} clips): macro F1 {m['macro_f1']:.4f}, "
          f"micro F1 {m['micro_f1']:.4f}, 2-class macro F1 {m['macro_f1_2class']:.4f}, mAP {m['mean_ap']:.4f}")
    loc = m.get("localization")
    if loc and loc.get("frame_level"):
        print(f"  localization (1 s segments): F1 {loc['frame_level']['f1']:.4f}, ER {loc['frame_level']['er']:.4f}"
              f" vs frame-agnostic F1 {loc['frame_agnostic']['f1']:.4f}, ER {loc['frame_agnostic']['er']:.4f}")
    return 0


def train_fields() -> list[dataclasses.Field]:
    """The TrainConfig fields that are ``instrec train`` options."""
    return [f for f in dataclasses.fields(TrainConfig) if f.metadata.get("cli", True)]


def _field_type(f: dataclasses.Field):
    """The argparse type of a TrainConfig field: a checked one where the range matters."""
    if f.name in TRAIN_FIELD_TYPES:
        return TRAIN_FIELD_TYPES[f.name]
    kind = type(f.default)
    return COUNT if kind is int else FINITE if kind is float else kind


def _add_train_options(sp: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field, with its default, type, choices and help."""
    for f in train_fields():
        flag = "--" + f.name.replace("_", "-")
        meta = f.metadata
        if f.default is dataclasses.MISSING:
            sp.add_argument(flag, required=True, help=meta["help"])
            continue
        sp.add_argument(flag, type=_field_type(f), default=f.default, choices=meta.get("choices"),
                        metavar=meta.get("metavar"), help=meta["help"])


def add_commands(command) -> None:
    """Register ``train`` and ``evaluate`` with ``command(name, handler, help, epilog)``."""
    sp = command("train", _train, "train a model (defaults: the paper's settings)",
                 examples("instrec train --data corpus --out runs/bilstm            # the paper's model and loss",
                          "instrec train --data corpus --out runs/att --model att --loss bce --epochs 80",
                          "instrec train --data corpus --out runs/mix --mixup 0.2 --mixup-labels known",
                          "instrec train --data corpus --out runs/bilstm --resume   # continue after an interrupt"))
    _add_train_options(sp)
    sp.add_argument("--resume", action="store_true", help="continue an interrupted run")
    sp.add_argument("--overwrite", action="store_true", help="replace an existing run directory")

    sp = command("evaluate", _evaluate, "score a run: metrics.json, per_class.csv, predictions.npz",
                 examples("instrec evaluate runs/bilstm                       # the test split of its dataset",
                          "instrec evaluate runs/bilstm --localization        # also per-second scores",
                          "instrec evaluate runs/bilstm --data other --out scores/other"))
    sp.add_argument("run_dir", help="a run directory written by instrec train")
    sp.add_argument("--data", help="dataset folder (default: the one the run was trained on)")
    sp.add_argument("--split", default="test", choices=["test", "train", "validation"], help="partition scored")
    sp.add_argument("--out", help="folder for the outputs (default: RUN_DIR)")
    sp.add_argument("--localization", action="store_true", help="score per-second outputs against strong labels")
    sp.add_argument("--overwrite", action="store_true", help="replace the results of an earlier evaluation on "
                    "this split (other splits write metrics-SPLIT.json, ...)")
    sp.add_argument("--allow-unfinished", action="store_true", help="score a run whose training did not finish "
                    "(killed, a full disk), with a warning")
    add_device_option(sp)
