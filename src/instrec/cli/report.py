"""What every command prints at the end about the files that failed, and writing to standard output."""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from instrec._io import InstrecError, one_line


def write_stdout(text: str) -> None:
    """Write ``text`` to standard output and flush it: a name that is not valid UTF-8 goes out as
    its raw bytes; a closed or full standard output is a one-line InstrecError."""
    if sys.stdout is None:
        raise InstrecError("standard output is closed; give an output file with --out")
    try:
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:  # replaced by a text stream (tests, notebooks)
            sys.stdout.write(text)
        else:
            sys.stdout.flush()
            buffer.write(text.encode(sys.stdout.encoding or "utf-8", "surrogateescape"))
        sys.stdout.flush()
    except OSError as exc:
        raise stdout_failed(exc) from None


def stdout_failed(exc: OSError) -> InstrecError:
    """The one-line error of a failed write to standard output; what is still buffered for it
    is sent to the null device, so that Python's exit does not fail on it a second time."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, AttributeError, ValueError):
        pass
    return InstrecError(f"standard output: cannot write ({exc.strerror or exc}); give an output file with --out")


def report_failures(failures: Sequence[tuple[str, str]]) -> int:
    """Print each failure on one line and a count; the exit status: 1 when any failed, else 0."""
    for _, message in failures:
        print(f"instrec: failed: {one_line(message)}", file=sys.stderr)
    if failures:
        print(f"instrec: {len(failures)} file(s) failed", file=sys.stderr)
    return 1 if failures else 0
