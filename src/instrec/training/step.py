"""The loss of one training batch, eager or compiled with ``torch.compile``.

In eager PyTorch a training step of the paper's small models (batch 32, 10 frames, 64-unit
LSTM) is dominated by per-operation overhead, not arithmetic: the matrix products are a
quarter to a third of it (benchmarks/bench_lstm_kernel.py). ``torch.compile`` (Inductor,
which writes and builds C++ kernels with the machine's C++ compiler) fuses the elementwise
work of forward and backward into a few kernels; on 2 cores it trains ``bilstm-att`` and
``att`` about 1.3-1.5x faster (see benchmarks/bench_train.py), after a one-off compilation
of 10-40 s that Inductor caches on disk for later runs.

Dropout masks come from each model's numpy stream (:mod:`instrec.models.dropout`), so they
are drawn eagerly, in the same order as an eager step draws them, and passed into the
compiled function: a compiled run sees the same masks as an eager one, and its numbers
differ from the eager run's only by float rounding (the compiler reorders arithmetic).
Only full batches are compiled: one graph per clip length (the training length, and twice
that for concatenated clips); a last, smaller batch runs eagerly rather than trigger a
compilation of its own.

``mode``: ``"off"`` never compiles, ``"on"`` compiles or fails with a clear error,
``"auto"`` compiles when the model supports it, a C++ compiler is found and the run is long
enough (``AUTO_MIN_STEPS`` training steps) to repay the compilation, and otherwise, or if
compilation fails, trains eagerly and says why in ``reason``.
"""
from __future__ import annotations

import os
import shutil
import sys
from typing import Any, Callable

import torch

from instrec._io import InstrecError
from instrec.models.dropout import on_device_of
from instrec.training.config import check_compile_mode

#: ``auto`` compiles runs of at least this many training steps: a compilation costs
#: 10-40 s and saves about 1.5 ms per step on 2 cores.
AUTO_MIN_STEPS = 20_000

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def find_cxx() -> str | None:
    """Path of the C++ compiler Inductor will call (``$CXX``, else g++, or clang++ on macOS,
    as in ``torch._inductor.config.cpp.cxx``), or None when it is not installed."""
    default = "clang++" if sys.platform == "darwin" else "g++"
    return shutil.which(os.environ.get("CXX") or default)


class TrainingStep:
    """``step(x, y, m)`` returns the loss of a training batch (the model in training mode).

    x (B, T, F) features, y (B, C) targets, m (B, C) label mask. ``engine`` is
    ``"compiled"`` or ``"eager"``; ``reason`` says why a run is eager.
    """

    def __init__(self, model: torch.nn.Module, loss_fn: LossFn, mode: str = "auto", batch_size: int = 32,
                 total_steps: int | None = None) -> None:
        check_compile_mode(mode)
        self.model, self.loss_fn, self.mode = model, loss_fn, mode
        self.batch_size = batch_size
        self.reason = self._why_not(total_steps)
        self._compiled: Any = None
        if self.reason is None:
            try:
                self._compiled = torch.compile(self._masked_loss, dynamic=False, fullgraph=True)
            except Exception as exc:  # e.g. a Python version torch.compile does not support yet
                self._fail(exc)

    @property
    def engine(self) -> str:
        return "eager" if self._compiled is None else "compiled"

    def _why_not(self, total_steps: int | None) -> str | None:
        """None if the step should be compiled, else why not (``mode="on"``: raise instead)."""
        name = type(self.model).__name__
        if self.mode == "off":
            return "compile mode off"
        if not hasattr(self.model, "draw_masks"):
            problem = f"model {name} does not support compilation"
        elif find_cxx() is None:
            problem = "no C++ compiler found (install g++ or set CXX)"
        elif self.mode == "auto" and total_steps is not None and total_steps < AUTO_MIN_STEPS:
            return f"run too short to repay compilation ({total_steps} < {AUTO_MIN_STEPS} steps)"
        else:
            return None
        if self.mode == "on":
            raise InstrecError(f"cannot compile the training step: {problem}")
        return problem

    def _masked_loss(self, x: torch.Tensor, masks: tuple[torch.Tensor | None, ...], y: torch.Tensor,
                     m: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(self.model(x, masks).clip, y, m)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        if self._compiled is None or len(x) != self.batch_size:
            return self.loss_fn(self.model(x).clip, y, m)  # any model; it draws its own masks
        masks = tuple(on_device_of(mask, x) for mask in self.model.draw_masks(*x.shape[:2]))
        try:
            return self._compiled(x, masks, y, m)
        except Exception as exc:  # a compiler failure; the run goes on eagerly, same masks
            self._fail(exc)
            return self._masked_loss(x, masks, y, m)

    def _fail(self, exc: Exception) -> None:
        """``mode="on"``: raise; ``"auto"``: switch to eager for the rest of the run and say so."""
        reason = f"torch.compile failed: {_one_line(exc)}"
        if self.mode == "on":
            raise InstrecError(reason) from exc
        self._compiled, self.reason = None, reason
        print(f"instrec: {reason}; training eagerly", file=sys.stderr)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
