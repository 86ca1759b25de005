"""What tagging returns: the tags of one file (:class:`FileTags`) and of a batch (:class:`TagResults`)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from instrec.features import FRAME_SECONDS


@dataclass
class FileTags:
    """Tags of one file. Shapes: ``probabilities``/``present`` (C,), ``frame_probabilities``,
    ``frame_present`` and ``attention`` (T, C) or None; ``frame_seconds`` is the hop between
    frames. Probabilities (and attention) of instruments the run never learned are NaN."""

    path: str
    probabilities: np.ndarray
    present: np.ndarray
    n_frames: int
    n_windows: int
    aggregation: str
    frame_probabilities: np.ndarray | None = None
    attention: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    frame_seconds: float = FRAME_SECONDS
    duration: float | None = None  # seconds of audio, where the file was decoded
    frame_present: np.ndarray | None = None  # (T, C) bool under the frame policy (gated by ``present``'s thresholds)
    long_file: bool = False  # longer than one window: ``present`` comes from the per-second decisions

    @property
    def seconds(self) -> float:
        """The file's length in seconds (its frames' span when it was not decoded here)."""
        return self.duration if self.duration is not None else self.n_frames * self.frame_seconds


@dataclass
class TagResults:
    """Everything ``predict`` returns: tags of the good files, errors of the bad ones."""

    classes: list[str]
    files: list[FileTags]
    failures: list[tuple[str, str]]
    thresholds: np.ndarray | None = None  # (C,) decision thresholds of the present flags
    trained: np.ndarray | None = None  # (C,) bool: instruments the model learned (others NaN, never present)
    threshold: str = "0.5"  # the policy's name: "tuned" or a number
    threshold_description: str = "0.5 for every instrument"  # one sentence for the outputs
    interrupted: tuple[int, int] | None = None  # (files done, files given) when Ctrl-C stopped the run
    frame_policy: str | None = None  # the per-second policy's sentence (models with frame outputs)

    @property
    def untrained(self) -> list[str]:
        """Names of the instruments the run never learned (they carry no probability)."""
        return [] if self.trained is None else [c for c, t in zip(self.classes, self.trained) if not t]

    @property
    def present_instruments(self) -> list[list[str]]:
        """Per tagged file (in the order of ``files``), the names of the instruments present,
        most probable first."""
        return [[self.classes[c] for c in sorted(np.flatnonzero(f.present), key=lambda c: -f.probabilities[c])]
                for f in self.files]

    @property
    def probabilities(self) -> np.ndarray:
        """(N, C) clip-level probabilities of the successfully tagged files."""
        return np.stack([f.probabilities for f in self.files]) if self.files else np.zeros((0, len(self.classes)))

    def to_dataframe(self):
        """One row per file, one probability column per instrument (needs pandas: ``pip install instrec[pandas]``)."""
        import pandas as pd  # optional dependency, only for this method

        frame = pd.DataFrame(self.probabilities, columns=self.classes)
        frame.insert(0, "file", [f.path for f in self.files])
        return frame
