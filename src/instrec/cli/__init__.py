"""The ``instrec`` command: a thin shell over the library.

One module per group of commands (``data``: download, synth, featurize; ``train``: train,
evaluate; ``tag``: predict; ``pipelines``: experiment, demo, default-model). Heavy modules are
imported inside each command so that ``instrec --help`` answers at once.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from instrec._io import InstrecError, one_line
from instrec._version import __version__
from instrec.cli import data, pipelines, tag, train
from instrec.cli.args import CommandParser, HelpFormatter, TopParser
from instrec.cli.report import stdout_failed

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    p = TopParser(prog="instrec", formatter_class=HelpFormatter,
                                description="Musical instrument recognition from weak and partial labels "
                                "(OpenMIC-2018): train, evaluate, tag audio.",
                                epilog="examples:\n  instrec predict song.mp3            # tag with the default model\n"
                                "  instrec demo                        # the quick start, offline\n"
                                "  instrec COMMAND --help              # options and examples of a command")
    p.add_argument("--version", action="version", version=f"instrec {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=CommandParser)

    def command(name: str, fn: Handler, help: str, epilog: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help, epilog=epilog, formatter_class=HelpFormatter)
        sp.set_defaults(fn=fn)
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress output: errors and the result only")
        return sp

    for group in (data, train, tag, pipelines):
        group.add_commands(command)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.fn(args)
    except InstrecError as exc:
        print(f"instrec: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("instrec: interrupted", file=sys.stderr)
        return 130
    try:  # here, so that a full or closed standard output is one line, not an error at exit
        if sys.stdout is not None:
            sys.stdout.flush()
    except OSError as exc:
        print(f"instrec: error: {stdout_failed(exc)}", file=sys.stderr)
        return 2
    return code
