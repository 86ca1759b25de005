"""Option types and help layout shared by every command.

Numbers are checked here, once, when the command line is parsed: a value out of range is an
argparse error (usage line, one ``error:`` line, exit 2) before any work starts. The library
repeats the checks that matter for its own callers (``TrainConfig.validate``, ``build_corpus``).
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from instrec.device import DEVICE_HELP, DEVICE_METAVAR, check_device_name

SEED_MAX = 2**32 - 1  # numpy's SeedSequence and torch.manual_seed both accept [0, 2**32 - 1]
THREADS_MAX = 256

THREADS_HELP = ("torch intra-op threads per process; 0 = auto: 1, which is fastest on a busy machine "
                "(see instrec.runinfo)")


FILE_JOBS_HELP = ("worker processes across files, one thread each; 0 = auto: one per usable core, at least 4 "
                  "files each (Linux; see instrec.runinfo)")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples in the epilog kept as written; each option's default after its help, unless the
    default is nothing (None, False), in which case the help says what happens without it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or any(action.default is v for v in (None, False, argparse.SUPPRESS)) or "%(default)" in text:
            return text
        return text + " (default: %(default)s)"


def _unknown(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    """'unrecognized arguments: ...', with the closest option of ``parser`` for a mistyped one."""
    import difflib

    message = "unrecognized arguments: " + " ".join(extras)
    known = [o for o in parser._option_string_actions if o.startswith("--")]
    close = [m for x in extras if x.startswith("--")
             for m in difflib.get_close_matches(x.split("=", 1)[0], known, n=1)]
    return message + (f" (did you mean {' or '.join(close)}?)" if close else "")


class CommandParser(argparse.ArgumentParser):
    """The parser of one command: an unknown argument is this command's error, with its usage,
    not the top-level one (argparse otherwise hands the leftovers back to ``instrec``)."""

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(_unknown(self, extras))
        return namespace, extras


class TopParser(argparse.ArgumentParser):
    """``instrec`` itself: an unknown option before the command is named as such, rather than
    'the following arguments are required: COMMAND'."""

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        import sys

        argv = list(sys.argv[1:] if args is None else args)
        for token in argv:
            if not token.startswith("-") or token == "--":
                break  # the command: what follows is its business
            name = token.split("=", 1)[0]
            if not any(o.startswith(name) for o in self._option_string_actions):
                self.error(_unknown(self, [token]) + "; options of a command go after it: instrec COMMAND --help")
        return super().parse_known_args(argv, namespace)


def integer(lo: int | None = None, hi: int | None = None, what: str = "an integer") -> Callable[[str], int]:
    """An argparse type: an integer in [lo, hi] (either bound may be None)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{value} is out of range: {what}")
        return value
    parse.__name__ = "integer"  # argparse names the type in its messages
    return parse


def number(lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False,
           what: str = "a finite number") -> Callable[[str], float]:
    """An argparse type: a finite float in the interval given; ``*_open`` excludes that bound."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        too_low = lo is not None and (value <= lo if lo_open else value < lo)
        too_high = hi is not None and (value >= hi if hi_open else value > hi)
        if not math.isfinite(value) or too_low or too_high:
            raise argparse.ArgumentTypeError(f"{text} is out of range: {what}")
        return value
    parse.__name__ = "number"
    return parse


COUNT = integer(1, what="must be >= 1")
SEED = integer(0, SEED_MAX, what=f"a seed is an integer in [0, {SEED_MAX}]")
THREADS = integer(0, THREADS_MAX, what=f"threads must be in [0, {THREADS_MAX}] (0 = auto)")
JOBS = integer(0, THREADS_MAX, what=f"jobs must be in [0, {THREADS_MAX}] (0 = auto)")
FINITE = number()
NON_NEGATIVE = number(0, what="must be a finite number >= 0")
PROBABILITY = number(0, 1, what="must be in [0, 1]")



def device(text: str) -> str:
    """An argparse type: a ``--device`` name (whether the device is there is checked before
    the work starts, see :func:`instrec.device.resolve_device`)."""
    from instrec._io import InstrecError

    try:
        check_device_name(text)
    except InstrecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_device_option(sp: argparse.ArgumentParser, extra_help: str = "") -> None:
    """The ``--device`` option of a command (default ``auto``)."""
    sp.add_argument("--device", type=device, default="auto", metavar=DEVICE_METAVAR, help=DEVICE_HELP + extra_help)


#: Types for the TrainConfig fields that need more than ``int``/``float`` (the others get COUNT or FINITE).
TRAIN_FIELD_TYPES: dict[str, Callable[[str], object]] = {
    "seed": SEED, "threads": THREADS, "device": device,
    "lr": number(0, lo_open=True, what="must be a finite number > 0"),
    "focal_alpha": PROBABILITY, "focal_gamma": NON_NEGATIVE, "mixup": NON_NEGATIVE, "mixup_prob": PROBABILITY,
    "concat": PROBABILITY, "val_fraction": number(0, 1, lo_open=True, hi_open=True, what="must be in (0, 1)"),
    "label_balance": PROBABILITY, "pseudo_precision": number(0.5, 1, lo_open=True, what="must be in (0.5, 1]"),
}



def threshold_policy(text: str) -> str | float:
    """An argparse type: ``tuned`` or a probability threshold in [0, 1) (see instrec.tagging.thresholds)."""
    from instrec._io import InstrecError
    from instrec.tagging.thresholds import parse_threshold

    try:
        return parse_threshold(text)
    except InstrecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


THRESHOLD = threshold_policy
THRESHOLD_HELP = ("when an instrument counts as present: 'tuned' = one threshold per instrument, tuned on the "
                  "run's validation clips; a number in [0, 1) = that threshold for every instrument (e.g. 0.5). "
                  "Every output states it")


def examples(*lines: str) -> str:
    """An epilog listing example command lines."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)
