"""The default model that ships with instrec, rebuilt from scratch by one command.

``make default-model`` (``instrec default-model --out WORK``) renders the realistic corpus
with the ``musicnn`` front end (:data:`CORPUS`), trains :data:`TRAIN` on it with one
thread (so the same machine gives the same weights bit for bit), and exports the run into
the package (``instrec/tagging/default``: ``config.json`` + ``model.safetensors``), where
``instrec predict`` finds it when no run is given. The recipe and the model were chosen on
the real recordings of the development set (``benchmarks/bench_realaudio.py``).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from instrec._io import atomic_write_json
from instrec.data.layout import NPZ_FILE
from instrec.run import CONFIG_FILE, MODEL_FILE, read_config
from instrec.synth import build_corpus
from instrec.tagging.predict import DEFAULT_DIR
from instrec.training.config import TrainConfig
from instrec.training.loop import train

#: ``build_corpus`` settings of the training corpus: fully labelled, hard labels.
CORPUS: dict[str, Any] = {"n_clips": 2000, "seed": 0, "recipe": "realistic", "frontend": "musicnn",
                          "labels_per_clip": 20.0, "disagreement": False}
#: ``TrainConfig`` settings of the default model (data and out are filled in).
TRAIN: dict[str, Any] = {"model": "att", "epochs": 80, "seed": 0, "threads": 1, "compile": "off"}
#: Weight of musicnn's own tags in the probabilities of the classes they name (see
#: :meth:`instrec.tagging.predict.Tagger._with_tag_prior`).
TAG_PRIOR_WEIGHT = 0.3


def package_dir() -> Path:
    """Where the default model lives inside the installed package."""
    return Path(__file__).resolve().parents[1] / "tagging" / DEFAULT_DIR


def export_run(run_dir: str | Path, dest: str | Path) -> Path:
    """Copy a run's weights and config into ``dest``, with the machine-specific paths of the
    config replaced by what produced them (the run stays loadable by ``instrec predict``)."""
    run_dir, dest = Path(run_dir), Path(dest)
    config = read_config(run_dir)
    config["train"] = {**config["train"], "data": "instrec default-model corpus", "out": DEFAULT_DIR}
    config["default_model"] = {"corpus": dict(CORPUS), "train": dict(TRAIN), "rebuild": "make default-model"}
    config["tag_prior"] = {"weight": TAG_PRIOR_WEIGHT}
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / (MODEL_FILE + ".tmp")
    shutil.copyfile(run_dir / MODEL_FILE, tmp)
    tmp.replace(dest / MODEL_FILE)
    atomic_write_json(dest / CONFIG_FILE, config)
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
    export_run(work / "run", dest if dest is not None else package_dir())
    if progress:
        print(json.dumps({k: summary[k] for k in ("best_epoch", "best_val_macro_f1")}))
    return summary
