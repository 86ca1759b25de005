"""The default model that ships with instrec, rebuilt from scratch by one command.

``make default-model`` (``instrec default-model --out WORK``) renders the realistic corpus
with the ``musicnn`` front end (:data:`CORPUS`), trains :data:`TRAIN` on it with one
thread (so the same machine gives the same weights bit for bit), and exports the run into
the package (``instrec/tagging/default``: ``config.json`` + ``model.safetensors``), where
``instrec predict`` finds it when no run is given. musicnn's own tags are added to the
probabilities of the classes they name (noisy-OR), and the thresholds tuned again for that.
The recipe, the model and this rule were chosen on the real recordings of the development
set (``benchmarks/bench_realaudio.py``); no other real recordings were available to confirm
the choice on unseen ones.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from instrec._io import atomic_write_bytes, atomic_write_json
from instrec.data.layout import NPZ_FILE
from instrec.data.openmic import load_split
from instrec.evaluation.metrics import tune_thresholds
from instrec.features.musicnn_frontend import with_tag_prior
from instrec.models.inference import run_model
from instrec.run import CONFIG_FILE, MODEL_FILE, load_model, read_validation_keys, write_run_integrity
from instrec.synth import build_corpus
from instrec.tagging.predict import DEFAULT_DIR, default_model_dir
from instrec.training.config import TrainConfig
from instrec.training.loop import train

#: ``build_corpus`` settings of the training corpus: fully labelled, hard labels.
CORPUS: dict[str, Any] = {"n_clips": 2000, "seed": 0, "recipe": "realistic", "frontend": "musicnn",
                          "labels_per_clip": 20.0, "disagreement": False}
#: ``TrainConfig`` settings of the default model (data and out are filled in).
TRAIN: dict[str, Any] = {"model": "att", "loss": "bce", "epochs": 80, "seed": 0, "threads": 1, "compile": "off"}
#: How musicnn's own tags join the model's probabilities of the classes they name
#: (:func:`instrec.features.musicnn_frontend.with_tag_prior`).
TAG_PRIOR = {"rule": "noisy-or"}


def export_run(run_dir: str | Path, dest: str | Path, data_dir: str | Path) -> Path:
    """Copy a run's weights and config into ``dest`` as the default model: musicnn's tags join its
    probabilities (:data:`TAG_PRIOR`), the per-class thresholds are tuned again for that on the
    run's validation clips of ``data_dir``, and the machine-specific paths of the config are
    replaced by what produced them (the result stays loadable as a run by ``instrec predict``)."""
    run_dir, dest = Path(run_dir), Path(dest)
    model, config = load_model(run_dir)
    data = load_split(data_dir, "train", config["train"].get("split", "split01"))
    index = {k: i for i, k in enumerate(data.sample_key)}
    val = data.subset(np.array([index[k] for k in read_validation_keys(run_dir)]))
    probs = run_model(model, val.X).clip
    rows = np.rint(val.X * 255.0).astype(np.uint8)  # the front end's uint8 rows, as the loader read them
    fused = np.stack([with_tag_prior(r, list(config["classes"]), p)[0] for r, p in zip(rows, probs)])
    config["thresholds"] = [float(t) for t in tune_thresholds(val.Y_true, val.Y_mask, fused)]
    config["tag_prior"] = dict(TAG_PRIOR)
    config["train"] = {**config["train"], "data": "instrec default-model corpus", "out": DEFAULT_DIR}
    config["default_model"] = {"corpus": dict(CORPUS), "train": dict(TRAIN), "rebuild": "make default-model",
                               "thresholds": "tuned on the validation clips with the tag prior"}
    dest.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dest / MODEL_FILE, (run_dir / MODEL_FILE).read_bytes())
    atomic_write_json(dest / CONFIG_FILE, config)
    write_run_integrity(dest)  # last: the sha256 of both files, checked whenever the model loads
    return dest


def build_default_model(work: str | Path, dest: str | Path | None = None, jobs: int = 2,
                        progress: bool = True) -> dict[str, Any]:
    """Render the corpus (reused when ``work/corpus`` holds it), train, export; return the run config."""
    work = Path(work)
    corpus = work / "corpus"
    if not (corpus / NPZ_FILE).is_file():
        build_corpus(corpus, jobs=jobs, overwrite=True, progress=progress, **CORPUS)
    cfg = TrainConfig(data=str(corpus), out=str(work / "run"), **TRAIN)
    summary = train(cfg, overwrite=True, progress=progress)
    export_run(work / "run", dest if dest is not None else default_model_dir(), corpus)
    if progress:
        print(json.dumps({k: summary[k] for k in ("best_epoch", "best_val_macro_f1")}))
    return summary
