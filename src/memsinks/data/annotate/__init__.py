"""Sink keys for a whole corpus as one parquet table (``memsinks annotate``; see
docs/annotation.md)."""

from .pipeline import annotate

__all__ = ["annotate"]
