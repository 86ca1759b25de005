"""Models: the registry (:mod:`instrec.models.registry`) covers every model, ``rf`` included.

Every neural model maps (B, T, F) feature batches to a
:class:`~instrec.models.output.ModelOutput` of probabilities, has a class attribute
``variable_length`` (False: only the training clip length is accepted) and a
JSON-serialisable ``config`` dict such that ``build_model(name, **model.config)`` rebuilds
the same architecture. The random-forest baseline
(:class:`instrec.models.forest.RandomForestBaseline`) is fitted, not built.
:func:`~instrec.models.inference.run_model` runs any of them over feature arrays.
"""
from __future__ import annotations

from instrec.models.registry import (
                                     FRAME_MODELS,
                                     MODEL_NAMES,
                                     MODELS,
                                     NEURAL_MODELS,
                                     STACKABLE_MODELS,
                                     ModelSpec,
                                     build_model,
                                     model_from_tensors,
                                     model_spec,
                                     model_tensors,
)

__all__ = ["FRAME_MODELS", "MODEL_NAMES", "MODELS", "NEURAL_MODELS", "STACKABLE_MODELS", "ModelSpec",
           "build_model", "model_from_tensors", "model_spec", "model_tensors"]
