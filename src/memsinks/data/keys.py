"""Sink keys: what a training document's sink ID is computed from (``data.sink_key``).

- ``hash``: the document's tokens (the paper's exact hash: every copy that differs in one
  token is a new document);
- ``minhash``: the document's near-duplicate cluster (MinHash with LSH over token shingles;
  the cluster's key is the hash of its earliest member in the stream), so copies that differ
  in a few words share sinks;
- ``field:NAME``: a metadata field, such as an author or a site, so that deleting one value's
  sinks deletes everything keyed on it. A document without the field gets no sinks (ID 0):
  it trains the shared neurons only, as the extension's unrepeated documents do.

A key is a 63-bit non-zero integer, and the sink ID of a document is its key: equal keys share
sinks. Which documents then get sinks (all, those whose key repeats, those seen before) is the
method's choice (``Method.sink_ids``), applied to keys exactly as to hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..sinks import document_id

KINDS = ("hash", "minhash", "field:NAME")


def parse_key(key: str) -> tuple[str, str]:
    """``(kind, argument)`` of a ``data.sink_key`` value, or one sentence naming the fix."""
    if key in ("hash", "minhash"):
        return key, ""
    if key.startswith("field:") and key[len("field:"):].strip():
        return "field", key[len("field:"):].strip()
    raise ValueError(f"data.sink_key = {key!r} is not one of hash, minhash or field:NAME (for "
                     "example field:source)")


def value_id(name: str, value: Any) -> int:
    """The key of a field value: a 63-bit non-zero hash of ``name=value``."""
    digest = hashlib.blake2b(f"{name}={value}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "little") >> 1) or 1


def key_ids(key: str, docs: Sequence[np.ndarray], fields: Sequence[dict] | None = None,
            **minhash: Any) -> np.ndarray:
    """The key of every document, in order (int64; 0 = no sinks).

    ``docs`` are token arrays in stream order (the earliest member of a minhash cluster is its
    representative, so the order matters); ``fields`` their metadata, for field keys;
    ``minhash`` the clustering's parameters (:func:`memsinks.data.annotate.minhash_clusters`).
    """
    kind, name = parse_key(key)
    if kind == "hash":
        return np.array([document_id(t) for t in docs], dtype=np.int64)
    if kind == "field":
        if fields is None:
            raise ValueError(f"data.sink_key = {key!r} needs documents with metadata fields; "
                             "this corpus has none (use hash or minhash)")
        return np.array([value_id(name, f[name]) if f.get(name) is not None else 0
                         for f in fields], dtype=np.int64)
    from .annotate import minhash_clusters

    hashes = np.array([document_id(t) for t in docs], dtype=np.int64)
    representative = minhash_clusters([np.asarray(t) for t in docs], **minhash)
    return hashes[np.asarray(representative, dtype=np.int64)]
