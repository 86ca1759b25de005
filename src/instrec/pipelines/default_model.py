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

``candidate="songs"`` rebuilds instead a candidate measured against it (:data:`CANDIDATES`):
parts played by pretty_midi's GM SoundFont or by SoundFonts built from the recorded sample
pack (:mod:`instrec.synth.samplefont`; the pack is read from ``$INSTREC_SAMPLEPACK``, default
``../shared/samplepack``; its SOURCES.csv names every source at a commit), in textures from
solos to full bands and sections (:mod:`instrec.synth.songs`) mixed through a record bus.
Left out by leave-one-source-out on the development set (it lost to the shipped model on every
source there: ``benchmarks/results/bench_realaudio.json``), it is not what ships.
``candidate="samples"``: the sample-pack fonts in the shipped textures, without the bus.
``candidate="gm6000"``: the shipped recipe with 6,000 clips instead of 2,000 (no sample pack);
also left out by the same choice. ``candidate="cymbals"``: the shipped recipe with orchestral
cymbals (no kit, drawn from a random stream of their own) in some thin textures; it hears the
development set's cymbals, and is left out by the same choice.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from instrec._io import InstrecError, atomic_write_bytes, atomic_write_json
from instrec.data.layout import NPZ_FILE
from instrec.data.openmic import load_split
from instrec.evaluation.metrics import tune_thresholds
from instrec.features.musicnn_frontend import with_tag_prior
from instrec.models.inference import run_model
from instrec.run import CONFIG_FILE, MODEL_FILE, load_model, read_validation_keys, write_run_integrity
from instrec.synth import build_corpus
from instrec.tagging.calibrate import tune_run_policy
from instrec.tagging.predict import DEFAULT_DIR, default_model_dir
from instrec.training.config import TrainConfig
from instrec.training.loop import train

#: ``build_corpus`` settings of the training corpus: fully labelled, hard labels.
CORPUS: dict[str, Any] = {"n_clips": 2000, "seed": 0, "recipe": "realistic", "frontend": "musicnn",
                          "labels_per_clip": 20.0, "disagreement": False}
#: The "songs" candidate: its corpus size, fonts (pretty_midi's TimGM6mb, then one SoundFont per
#: instrument set of the sample pack), texture weights and record bus (measured, not shipped).
SONGS: dict[str, Any] = {"n_clips": 800, "soundfonts": ["TimGM6mb (pretty_midi)", "samplepack"],
                         "textures": {"solo": 0.30, "duo": 0.15, "sparse": 0.10, "ensemble": 0.10,
                                      "band": 0.20, "section": 0.15},
                         "bus": True}
#: Measured candidates by name: "songs", and "samples" (the pack's fonts in the shipped textures).
CANDIDATES: dict[str, dict[str, Any]] = {
    "songs": SONGS,
    "samples": {**SONGS, "textures": {"solo": 0.40, "duo": 0.25, "sparse": 0.20, "ensemble": 0.15}, "bus": False}}
CANDIDATES["samples2000"] = {**CANDIDATES["samples"], "n_clips": 2000}  # the shipped corpus size
#: The shipped recipe (General MIDI fonts only) with three times the clips: no sample pack.
CANDIDATES["gm6000"] = {"n_clips": 6000}
#: The shipped recipe plus orchestral cymbals without a kit (rolls, clashes left to ring): alone in
#: a few solos, joining some duos and sparse textures; every other clip is the shipped corpus's.
#: The shipped corpus holds cymbals without drums in 8 of its 1,500 training clips and never
#: alone (the rates are set by hand, not tuned).
CANDIDATES["cymbals"] = {"n_clips": 2000, "cymbal_prob": {"solo": 0.05, "duo": 0.05, "sparse": 0.15}}
#: Where the sample pack is looked for when ``$INSTREC_SAMPLEPACK`` is not set.
#: ``build_corpus`` settings of the corpus the per-second policy is tuned on (every clip of its
#: training partition; strong labels): a second realistic corpus, so the policy is not tuned on
#: the clips whose validation part already chose the clip thresholds.
POLICY_CORPUS: dict[str, Any] = {**CORPUS, "n_clips": 600, "seed": 1}
#: Frames of the windows that gate the per-second decisions of files longer than one clip
#: (instrec.tagging.windows); chosen on the development recordings by bench_localisation --real.
GATE_FRAMES = 5
SAMPLEPACK = Path("..") / "shared" / "samplepack"
#: ``TrainConfig`` settings of the default model (data and out are filled in).
TRAIN: dict[str, Any] = {"model": "att", "loss": "bce", "epochs": 80, "seed": 0, "threads": 1, "compile": "off"}
#: How musicnn's own tags join the model's probabilities of the classes they name
#: (:func:`instrec.features.musicnn_frontend.with_tag_prior`).
TAG_PRIOR = {"rule": "noisy-or"}


def export_run(run_dir: str | Path, dest: str | Path, data_dir: str | Path,
               candidate: str | None = None) -> Path:
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
    if candidate in CANDIDATES:
        sounds = CANDIDATES[candidate]
        config["default_model"].update(corpus={**CORPUS, "n_clips": sounds["n_clips"]}, sounds=dict(sounds),
                                       rebuild=f"build_default_model(work, dest, candidate={candidate!r})")
    dest.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dest / MODEL_FILE, (run_dir / MODEL_FILE).read_bytes())
    atomic_write_json(dest / CONFIG_FILE, config)
    write_run_integrity(dest)  # last: the sha256 of both files, checked whenever the model loads
    return dest


def build_default_model(work: str | Path, dest: str | Path | None = None, jobs: int = 2,
                        progress: bool = True, candidate: str | None = None) -> dict[str, Any]:
    """Render the corpus (reused when ``work/corpus`` holds it), train, export; return the run config.
    ``candidate``: None (the shipped recipe) or a name of :data:`CANDIDATES` (those with
    ``soundfonts`` need the sample pack)."""
    if candidate is not None and candidate not in CANDIDATES:
        raise InstrecError(f"unknown default-model candidate {candidate!r} (known: {', '.join(CANDIDATES)})")
    work = Path(work)
    corpus = work / "corpus"
    if not (corpus / NPZ_FILE).is_file():
        extra = {} if candidate is None else candidate_corpus_options(candidate)
        build_corpus(corpus, jobs=jobs, overwrite=True, progress=progress, **{**CORPUS, **extra})
    cfg = TrainConfig(data=str(corpus), out=str(work / "run"), **TRAIN)
    summary = train(cfg, overwrite=True, progress=progress)
    dest = Path(dest) if dest is not None else default_model_dir()
    export_run(work / "run", dest, corpus, candidate)
    tune_default_policy(work / "policy-corpus", dest, jobs=jobs, progress=progress)
    if progress:
        print(json.dumps({k: summary[k] for k in ("best_epoch", "best_val_macro_f1")}))
    return summary


def tune_default_policy(corpus: str | Path, dest: str | Path, jobs: int = 2, progress: bool = True) -> None:
    """Render :data:`POLICY_CORPUS` into ``corpus`` (reused when there), tune the exported model's
    per-second policy on its training partition (:func:`instrec.tagging.calibrate.tune_run_policy`)
    and record the model's integrity again (the policy lives in its ``config.json``)."""
    corpus = Path(corpus)
    if not (corpus / NPZ_FILE).is_file():
        build_corpus(corpus, jobs=jobs, overwrite=True, progress=progress, **POLICY_CORPUS)
    tune_run_policy(dest, corpus, keys=[str(k) for k in load_split(corpus, "train").sample_key],
                    gate_frames=GATE_FRAMES)
    write_run_integrity(dest)


def candidate_corpus_options(candidate: str) -> dict[str, Any]:
    """``build_corpus`` arguments of a candidate of :data:`CANDIDATES` beside :data:`CORPUS`."""
    sounds = dict(CANDIDATES[candidate])
    if "soundfonts" in sounds:
        return songs_corpus_options(candidate=candidate)
    if "cymbal_prob" in sounds:
        from instrec.synth.real_worker import RealisticSettings

        return {"n_clips": sounds["n_clips"], "realistic": RealisticSettings(cymbal_prob=dict(sounds["cymbal_prob"]))}
    return sounds


def samplepack_dir() -> Path:
    """The sample pack: ``$INSTREC_SAMPLEPACK`` or :data:`SAMPLEPACK`; InstrecError when absent."""
    pack = Path(os.environ.get("INSTREC_SAMPLEPACK") or SAMPLEPACK).expanduser()
    if not (pack / "SOURCES.csv").is_file():
        raise InstrecError(f"{pack}: no sample pack there (SOURCES.csv missing); set INSTREC_SAMPLEPACK to the "
                           "pack assembled from the sources its SOURCES.csv names")
    return pack


def songs_corpus_options(samplepack: str | Path | None = None, candidate: str = "songs") -> dict[str, Any]:
    """``build_corpus`` arguments of a candidate of :data:`CANDIDATES` beside :data:`CORPUS`."""
    sounds = CANDIDATES[candidate]
    from instrec.synth.real_worker import RealisticSettings
    from instrec.synth.samplefont import sample_fonts

    fonts = sample_fonts(samplepack if samplepack is not None else samplepack_dir())
    return {"n_clips": sounds["n_clips"], "soundfonts": [None, *map(str, fonts)],
            "realistic": RealisticSettings(textures=dict(sounds["textures"]), bus=bool(sounds["bus"]))}
