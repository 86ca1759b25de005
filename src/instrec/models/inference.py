"""Running a trained model over feature arrays, in batches, without gradients."""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from instrec.device import module_device

#: Clips per forward pass of :func:`run_model` (validation, evaluation, tagging).
DEFAULT_BATCH = 1024


class Predictions(NamedTuple):
    """Model outputs as numpy arrays.

    clip: (N, C) clip-level probabilities.
    frame: (N, T, C) per-frame class probabilities, or None if the model has none.
    attention: (N, T, C) attention weights (sum to 1 over T), or None.
    """

    clip: np.ndarray
    frame: np.ndarray | None
    attention: np.ndarray | None


def to_device(model: Any, device: str) -> Any:
    """``model`` moved to ``device`` when it is a torch module (the random-forest baseline
    always runs on the CPU); returned for chaining."""
    if isinstance(model, torch.nn.Module):
        model.to(device)
    return model


def run_model(model: Any, X: np.ndarray, batch_size: int = DEFAULT_BATCH) -> Predictions:
    """Apply ``model`` (torch module in eval mode, or the random-forest baseline) to
    ``X`` (N, T, F) float32 features scaled to [0, 1], on the model's device."""
    if hasattr(model, "predict_proba"):
        return Predictions(np.asarray(model.predict_proba(X), dtype=np.float32), None, None)
    was_training = model.training
    model.eval()
    device = module_device(model)  # the clips go where the model is; the outputs come back
    clips, frames, atts = [], [], []
    with torch.inference_mode():
        for start in range(0, len(X), batch_size):
            out = model(torch.as_tensor(X[start:start + batch_size], dtype=torch.float32).to(device))
            clips.append(out.clip.cpu().numpy())
            if out.frame is not None:
                frames.append(out.frame.cpu().numpy())
            if out.attention is not None:
                atts.append(out.attention.cpu().numpy())
    model.train(was_training)
    n_c = model.config.get("n_classes", 0) if hasattr(model, "config") else 0
    clip = np.concatenate(clips) if clips else np.zeros((0, n_c), np.float32)
    return Predictions(clip,
                       np.concatenate(frames) if frames else None,
                       np.concatenate(atts) if atts else None)
