"""Pipelines over the other packages: ``experiment`` (grids of runs over seeds, results,
figures, report), ``demo`` (the quick start, end to end) and ``default_model`` (the recipe
of the model that ships in the package)."""
