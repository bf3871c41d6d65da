"""Importing this module registers every stage, in pipeline order (data → index → …)."""

from gream_pipeline.data import stage as _data  # noqa: F401
from gream_pipeline.index import stage as _index  # noqa: F401
