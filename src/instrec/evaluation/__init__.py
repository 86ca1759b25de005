"""Evaluation: ``metrics`` (pure functions on labelled entries only, then one ``evaluate``),
``localization`` (segment-based scores of per-frame outputs), ``evaluate`` (a run directory
on a split: ``evaluate_run``) and ``report`` (tables and the paper's figures)."""
