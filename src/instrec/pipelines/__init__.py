"""Pipelines over the other packages: ``experiment`` (grids of runs over seeds, results,
figures, report) and ``demo`` (the quick start, end to end)."""
