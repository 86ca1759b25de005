"""Tags as JAMS (one ``.jams`` per audio file, ``tag_open`` annotations), for the MIR tool chain.

Per instrument the run learned: a ``tag_open`` annotation of its per-frame confidences and,
where the model has per-frame outputs, a second one of the time ranges in which it plays under
the frame policy (``sandbox.kind == "segments"``), so the JAMS says what ``--print`` says.

Needs the optional ``jams`` package: ``pip install 'instrec[jams]'``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import jams
import numpy as np

from instrec._io import atomic_write_text
from instrec._version import __version__
from instrec.tagging.formats import output_names
from instrec.tagging.results import FileTags, TagResults
from instrec.tagging.segments import frame_ranges


def to_jams(tags: FileTags, classes: Sequence[str], source: str = "instrec", thresholds: Sequence[float] | None = None,
            threshold: str = "0.5", threshold_description: str = "0.5 for every instrument",
            frame_policy: str | None = None) -> jams.JAMS:
    """One JAMS document for one file: a ``tag_open`` annotation per instrument the run learned.

    With per-frame outputs every 0.96-s frame is an observation (time, duration,
    value = the instrument, confidence = its frame probability); without them, one
    observation spans the file with the clip-level probability. Each annotation's sandbox
    holds the clip-level probability, its ``threshold``, the ``present`` flag and, per
    frame, ``frame_present`` (0/1) under the same threshold. The document's sandbox states
    the ``threshold_policy`` (name and description) and the instruments left out because
    the run never learned them (``not_learned``) and, with per-frame decisions, the
    ``frame_policy`` sentence; each instrument then also gets an annotation of its time ranges
    (:func:`instrec.tagging.segments.frame_ranges`; confidence: the mean frame probability of
    the range; empty when it never plays)."""
    jam = jams.JAMS()
    jam.file_metadata.duration = float(tags.seconds)
    jam.file_metadata.title = Path(tags.path).name
    thresholds = [0.5] * len(classes) if thresholds is None else [float(t) for t in thresholds]
    # NaN probability: an instrument the run never learned gets no annotation at all.
    learned = [c for c in range(len(classes)) if not np.isnan(tags.probabilities[c])]
    jam.sandbox.update(threshold_policy=threshold, threshold_description=threshold_description,
                       not_learned=[classes[c] for c in range(len(classes)) if c not in learned])
    if tags.frame_present is not None:
        jam.sandbox.update(frame_policy=frame_policy or "")
    for c in learned:
        name = classes[c]
        ann = jams.Annotation(namespace="tag_open", time=0, duration=float(tags.seconds))
        ann.annotation_metadata.data_source = source
        ann.annotation_metadata.annotation_tools = f"instrec {__version__}"
        ann.sandbox.update(instrument=name, clip_probability=float(tags.probabilities[c]),
                           threshold=thresholds[c], present=bool(tags.present[c]))
        if tags.frame_present is not None:
            ann.sandbox.update(frame_present=tags.frame_present[:, c].astype(int).tolist())
        if tags.frame_probabilities is None:
            ann.append(time=0.0, duration=float(tags.seconds), value=name, confidence=float(tags.probabilities[c]))
        else:
            for t, prob in enumerate(tags.frame_probabilities[:, c]):
                start = t * tags.frame_seconds
                ann.append(time=start, duration=float(min(tags.frame_seconds, max(0.0, tags.seconds - start))),
                           value=name, confidence=float(prob))
        jam.annotations.append(ann)
        if tags.frame_present is not None:
            jam.annotations.append(_segments(tags, c, name, source))
    return jam


def _segments(tags: FileTags, c: int, name: str, source: str) -> jams.Annotation:
    """The time ranges in which instrument ``c`` plays, as one ``tag_open`` annotation."""
    ann = jams.Annotation(namespace="tag_open", time=0, duration=float(tags.seconds))
    ann.annotation_metadata.data_source = source
    ann.annotation_metadata.annotation_tools = f"instrec {__version__}"
    ann.sandbox.update(instrument=name, kind="segments", present=bool(tags.present[c]))
    for start, end in frame_ranges(tags.frame_present[:, c], tags.frame_seconds, tags.seconds):
        a, b = int(round(start / tags.frame_seconds)), int(np.ceil(end / tags.frame_seconds - 1e-9))
        ann.append(time=start, duration=end - start, value=name,
                   confidence=float(np.nanmean(tags.frame_probabilities[a:b, c])))
    return ann


def write_jams(results: TagResults, out_dir: str | Path, source: str = "instrec") -> list[Path]:
    """Write one validated ``.jams`` file per tagged file into ``out_dir`` (atomically each)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for f, name in zip(results.files, output_names(results, ".jams")):
        jam = to_jams(f, results.classes, source, results.thresholds, results.threshold,
                      results.threshold_description, results.frame_policy)
        jam.validate()
        paths.append(atomic_write_text(out / name, jam.dumps(indent=1) + "\n"))
    return paths
