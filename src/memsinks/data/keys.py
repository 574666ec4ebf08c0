"""Sink keys: what a training document's sink ID is computed from (``data.sink_key``).

- ``hash``: the document's tokens (the paper's exact hash: every copy that differs in one
  token is a new document);
- ``minhash``: the document's near-duplicate cluster (MinHash with LSH over token shingles;
  the cluster's key is the hash of its earliest member in the stream), so copies that differ
  in a few words share sinks; parameters as options, ``minhash?shingle=3&threshold=0.4``;
- ``field:NAME``: a metadata field, such as an author or a site, so that deleting one value's
  sinks deletes everything keyed on it. A document without the field gets no sinks (ID 0):
  it trains the shared neurons only, as the extension's unrepeated documents do;
- a path to an annotation table (``memsinks annotate``'s ``annotations.parquet``, or its
  directory): each document's ``sink_id`` there, joined on the document hash.

A key is a 63-bit non-zero integer, and the sink ID of a document is its key: equal keys share
sinks. Which documents then get sinks (all, those whose key repeats, those seen before) is the
method's choice (``Method.sink_ids``), applied to keys exactly as to hashes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..sinks import document_id

TABLE = "annotations.parquet"  # what memsinks annotate writes
MINHASH_OPTIONS = {"shingle": int, "num_perm": int, "bands": int, "threshold": float,
                   "seed": int}


def parse_key(key: str) -> tuple[str, str]:
    """``(kind, argument)`` of a ``data.sink_key`` value, or one sentence naming the fix."""
    if key == "hash":
        return key, ""
    if key == "minhash" or key.startswith("minhash?"):
        minhash_options(key)
        return "minhash", key.partition("?")[2]
    if key.startswith("field:") and key[len("field:"):].strip():
        return "field", key[len("field:"):].strip()
    if key.endswith(".parquet") or (Path(key).is_dir() and (Path(key) / TABLE).is_file()):
        table = Path(key) if key.endswith(".parquet") else Path(key) / TABLE
        if not table.is_file():
            raise FileNotFoundError(f"data.sink_key = {key!r}: the annotation table does not "
                                    "exist; write it with memsinks annotate SOURCE --key KEY "
                                    "--out DIR and pass DIR")
        return "table", str(table)
    raise ValueError(f"data.sink_key = {key!r} is not one of hash, minhash, field:NAME or an "
                     "annotation table (for example field:source, minhash?shingle=3&threshold="
                     "0.4&bands=32, or runs/ann/annotations.parquet)")


def minhash_options(key: str) -> dict[str, Any]:
    """The MinHash parameters of ``minhash?name=value&...`` (see ``MinHashParams``)."""
    options: dict[str, Any] = {}
    query = key.partition("?")[2]
    for item in filter(None, query.split("&")):
        name, _, raw = item.partition("=")
        kind = MINHASH_OPTIONS.get(name)
        if kind is None:
            raise ValueError(f"data.sink_key option {name!r} is unknown; minhash takes "
                             f"{', '.join(MINHASH_OPTIONS)}")
        try:
            options[name] = kind(raw)
        except ValueError:
            raise ValueError(f"data.sink_key option {name}={raw!r} is not a valid "
                             f"{kind.__name__}") from None
    if options:
        from .near_duplicates import MinHashParams

        MinHashParams(**options).check()
    return options


def value_id(name: str, value: Any) -> int:
    """The key of a field value (0 for a missing or empty one), as ``memsinks annotate``
    writes it, so a trained model's sinks and an annotation table name the same IDs."""
    from .annotate import key_id, key_text

    text = key_text(value)
    return 0 if text is None else key_id(name, text)


def key_ids(key: str, docs: Sequence[np.ndarray], fields: Sequence[dict] | None = None
            ) -> np.ndarray:
    """The key of every document, in order (int64; 0 = no sinks).

    ``docs`` are token arrays in stream order (the earliest member of a minhash cluster is its
    representative, so the order matters); ``fields`` their metadata, for field keys. MinHash
    parameters come with the key (``minhash?shingle=3&threshold=0.4``; defaults of
    :class:`memsinks.data.near_duplicates.MinHashParams`).
    """
    kind, name = parse_key(key)
    if kind == "hash":
        return np.array([document_id(t) for t in docs], dtype=np.int64)
    if kind == "field":
        if fields is None:
            raise ValueError(f"data.sink_key = {key!r} needs documents with metadata fields; "
                             "this corpus has none (use hash or minhash)")
        return np.array([value_id(name, f.get(name)) for f in fields], dtype=np.int64)
    if kind == "table":
        return table_ids(name, [document_id(t) for t in docs])
    from .near_duplicates import minhash_clusters

    hashes = np.array([document_id(t) for t in docs], dtype=np.int64)
    return hashes[minhash_clusters([np.asarray(t) for t in docs], **minhash_options(key))]


def table_ids(table: str | Path, hashes: Sequence[int]) -> np.ndarray:
    """Sink IDs of documents by their hash, read from an annotation table (``hash``,
    ``sink_id``); every document must be in it."""
    import pyarrow.parquet as pq

    columns = pq.read_table(table, columns=["hash", "sink_id"])
    known = columns.column("hash").to_numpy()
    ids = columns.column("sink_id").to_numpy()
    order = np.argsort(known, kind="stable")
    known, ids = known[order], ids[order]
    wanted = np.asarray(hashes, dtype=np.int64)
    at = np.clip(np.searchsorted(known, wanted), 0, max(len(known) - 1, 0))
    found = (known[at] == wanted) if len(known) else np.zeros(len(wanted), bool)
    if not found.all():
        raise ValueError(f"{int((~found).sum())} of {len(wanted)} training documents are not in "
                         f"the annotation table {table} (annotated from another source, "
                         "tokenizer or cut?); annotate the run's token store, or the source "
                         "with --tokenizer and --max-tokens as the run cuts it")
    return ids[at]
