"""Tagging audio files: ``predict`` (the :class:`~instrec.tagging.predict.Tagger` of a run,
``predict()`` over files and folders) and ``formats`` (CSV and JSON output)."""
