"""Datasets in the OpenMIC-2018 layout: ``layout`` (every file name of a dataset folder and
the readers of its side files), ``openmic`` (load and write; no pickle execution),
``download`` (the release from Zenodo), ``featurize`` (a dataset from your audio files)
and ``augment`` (mixup and concatenation aware of unknown labels)."""
