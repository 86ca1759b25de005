"""Tagging audio files: ``predict`` (the :class:`~instrec.tagging.predict.Tagger` of a run or of
the default model in ``default/``, ``predict()`` over files and folders), ``formats`` (CSV and
JSON), ``jams_output`` (JAMS, optional ``jams`` package) and ``plot`` (a PNG per file)."""
