"""``TrainConfig``: everything that determines a training run, with the paper's defaults.

The ``instrec train`` options are generated from these fields (their ``metadata`` holds the
help text and choices), so a default lives here and nowhere else. This module imports
no torch: the command line reads it at start-up.
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from instrec._io import InstrecError
from instrec.data.label_rules import MIXUP_LABEL_RULES
from instrec.device import DEVICE_HELP, DEVICE_METAVAR, check_device_name
from instrec.models.registry import MODEL_NAMES

LOSSES = ("focal", "bce")
COMPILE_MODES = ("auto", "on", "off")
COMPILE_HELP = ("torch.compile the training step of bilstm-att and att (needs a C++ compiler; about 1.3-1.5x "
                "faster after a one-off 10-40 s compilation): auto = when the run has >= 20,000 steps and g++ "
                "(or $CXX) is found, on = always or fail, off = never")


def _opt(default: Any, help: str, choices: tuple[str, ...] | None = None, metavar: str | None = None) -> Any:
    """A field that is also an ``instrec train`` option."""
    return field(default=default, metadata={"help": help, "choices": choices, "metavar": metavar})


@dataclass
class TrainConfig:
    """Everything that determines a training run. Defaults are the paper's settings."""

    data: str = field(metadata={"help": "OpenMIC-layout dataset folder"})
    out: str = field(metadata={"help": "run directory"})
    model: str = _opt("bilstm-att", "model to train", MODEL_NAMES)
    loss: str = _opt("focal", "masked focal loss or masked binary cross-entropy", LOSSES)
    focal_alpha: float = _opt(0.75, "focal loss: weight of positives (1 - alpha for negatives)")
    focal_gamma: float = _opt(2.0, "focal loss: focusing exponent")
    mixup: float = _opt(0.0, "mixup with lambda ~ Beta(A, A); 0 = off", metavar="A")
    mixup_labels: str = _opt("both", "how mixed entries are labelled: both = only where both clips are labelled; "
                             "known = where the answer at 0.5 is still known; presence = OR, as concatenation; "
                             "naive = unknown as negative (a contrast)", MIXUP_LABEL_RULES)
    mixup_prob: float = _opt(1.0, "share of batches that are mixed", metavar="P")
    concat: float = _opt(0.0, "probability that a batch becomes 2-clip concatenations", metavar="P")
    label_balance: float = _opt(0.0, "weight each (instrument, positive/negative) cell of the training labels by "
                                "(share it would have if all were equal / its share) ** B; 0 = off, 1 = every "
                                "cell weighs the same", metavar="B")
    teacher: str = _opt("", "pseudo-labels: a finished run directory whose model labels the unknown training "
                        "entries it is sure of (see --pseudo-precision); empty = off", metavar="RUN_DIR")
    pseudo_precision: float = _opt(0.9, "pseudo-labels: per instrument, the teacher's probability thresholds above "
                                   "(below) which its positives (negatives) on its validation clips are right with "
                                   "at least this precision", metavar="P")
    epochs: int = _opt(200, "training epochs")
    batch_size: int = _opt(32, "clips per batch")
    lr: float = _opt(5e-4, "Adam learning rate")
    val_fraction: float = _opt(0.15, "fraction of the training partition held out for validation")
    seed: int = _opt(0, "seed of weights, validation split, batch order, augmentation and dropout")
    split: str = _opt("split01", "partition name: partitions/<split>_{train,test}.csv")
    threads: int = _opt(0, "torch intra-op threads; 0 = auto: 1 (fastest on a busy machine, see instrec.runinfo)")
    compile: str = _opt("auto", COMPILE_HELP, COMPILE_MODES)
    device: str = _opt("auto", DEVICE_HELP + "; the resolved one is recorded in config.json", metavar=DEVICE_METAVAR)
    rf_trees: int = _opt(100, "rf: trees per instrument")
    rf_max_depth: int = _opt(8, "rf: maximum tree depth")
    model_kwargs: dict[str, Any] = field(default_factory=dict, metadata={"cli": False})

    def validate(self) -> None:
        """A clear error for any setting that cannot train."""
        for name, choices in (("model", MODEL_NAMES), ("loss", LOSSES), ("mixup_labels", MIXUP_LABEL_RULES)):
            value = getattr(self, name)
            if value not in choices:
                raise InstrecError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
        check_compile_mode(self.compile)
        check_device_name(self.device)
        for f in fields(self):  # types first: the range checks below compare numbers
            if f.default is MISSING and f.default_factory is not MISSING:
                continue
            value, kind = getattr(self, f.name), type(f.default) if f.default is not MISSING else str
            real = isinstance(value, numbers.Real) and not isinstance(value, bool)
            if kind is float and (not real or not math.isfinite(value)):
                raise InstrecError(f"{f.name.replace('_', ' ')} must be a finite number, got {value!r}")
            integral = isinstance(value, numbers.Integral) and not isinstance(value, bool)
            if (kind is int and not integral) or (kind is str and not isinstance(value, (str, os.PathLike))):
                raise InstrecError(f"{f.name.replace('_', ' ')} must be {'an integer' if kind is int else 'text'}, "
                                   f"got {value!r}")
        if not isinstance(self.model_kwargs, dict):
            raise InstrecError(f"model_kwargs must be a dict, got {self.model_kwargs!r}")
        checks = [(self.epochs >= 1, "epochs must be >= 1"), (self.batch_size >= 1, "batch size must be >= 1"),
                  (self.lr > 0, "learning rate must be a finite number > 0"),
                  (self.mixup >= 0, "mixup Beta parameter must be >= 0"),
                  (0 <= self.mixup_prob <= 1, "mixup probability must be in [0, 1]"),
                  (0 <= self.concat <= 1, "concat probability must be in [0, 1]"),
                  (0 < self.val_fraction < 1, "validation fraction must be in (0, 1)"),
                  (0 <= self.focal_alpha <= 1, "focal alpha must be in [0, 1]"),
                  (self.focal_gamma >= 0, "focal gamma must be >= 0"),
                  (0 <= self.label_balance <= 1, "label balance exponent must be in [0, 1]"),
                  (0.5 < self.pseudo_precision <= 1, "pseudo-label precision must be in (0.5, 1]"),
                  (self.seed >= 0, "seed must be >= 0"), (self.threads >= 0, "threads must be >= 0 (0 = auto)"),
                  (self.rf_trees >= 1, "rf trees must be >= 1"), (self.rf_max_depth >= 1, "rf max depth must be >= 1")]
        for ok, message in checks:
            if not ok:
                raise InstrecError(message)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def setting_defaults() -> dict[str, Any]:
    """The default of every setting with one (what a run recorded before a setting existed ran as)."""
    return {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}


def check_compile_mode(mode: str) -> None:
    """Raise InstrecError unless ``mode`` is one of COMPILE_MODES."""
    if mode not in COMPILE_MODES:
        raise InstrecError(f"unknown compile mode {mode!r}; choose one of {', '.join(COMPILE_MODES)}")
