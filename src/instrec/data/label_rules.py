"""The names of the label rules for mixed clips (implemented in :mod:`instrec.data.augment`).

Kept free of torch: the command line offers them as choices and must start fast."""
from __future__ import annotations

#: ``both``, ``known``, ``presence``, ``naive``: see :func:`instrec.data.augment.mixup_labels`.
MIXUP_LABEL_RULES: tuple[str, ...] = ("both", "known", "presence", "naive")
