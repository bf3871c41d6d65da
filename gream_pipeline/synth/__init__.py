"""Glue between the pipeline and :mod:`data_synth` (stages ``enrich`` and ``synth``)."""
