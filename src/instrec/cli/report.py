"""What every command prints at the end about the files that failed."""
from __future__ import annotations

import sys
from collections.abc import Sequence


def report_failures(failures: Sequence[tuple[str, str]]) -> int:
    """Print each failure on one line and a count; the exit status: 1 when any failed, else 0."""
    for _, message in failures:
        print(f"instrec: failed: {message}", file=sys.stderr)
    if failures:
        print(f"instrec: {len(failures)} file(s) failed", file=sys.stderr)
    return 1 if failures else 0
