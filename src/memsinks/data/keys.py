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
``memsinks annotate --key`` reads the same grammar (hash, minhash and field:NAME) and writes
the same keys (:func:`key_id`; :func:`text_id` for raw text).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..ids import document_id, hash63
from .near_duplicates import MinHashParams, minhash_clusters

TABLE = "annotations.parquet"  # what memsinks annotate writes
MINHASH_OPTIONS = {"shingle": int, "num_perm": int, "bands": int, "threshold": float,
                   "seed": int}
KINDS = ("hash", "minhash", "field", "table")
_FORMS = {"hash": "hash", "minhash": "minhash", "field": "field:NAME",
          "table": "an annotation table"}
_EXAMPLES = {"field": "field:source", "minhash": "minhash?shingle=3&threshold=0.4&bands=32",
             "table": "runs/ann/annotations.parquet"}  # in the order the message lists them


class SinkKey(NamedTuple):
    """A parsed sink key: its kind and argument (the field name, the table's path, or the
    minhash options after ``?``); it unpacks as ``(kind, argument)``."""

    kind: str
    argument: str = ""

    def __str__(self) -> str:
        if self.kind == "field":
            return f"field:{self.argument}"
        if self.kind == "minhash":
            return f"minhash?{self.argument}" if self.argument else "minhash"
        return self.argument if self.kind == "table" else self.kind


def parse_key(key: str, setting: str = "data.sink_key", kinds: tuple[str, ...] = KINDS
              ) -> SinkKey:
    """The one grammar of sink keys, for ``data.sink_key`` and ``memsinks annotate --key``
    (which takes the ``kinds`` hash, minhash and field): the parsed key, or one sentence that
    names ``setting`` and the fix."""
    if key == "hash" and "hash" in kinds:
        return SinkKey("hash")
    if (key == "minhash" or key.startswith("minhash?")) and "minhash" in kinds:
        minhash_options(key, setting)
        return SinkKey("minhash", key.partition("?")[2])
    if key.startswith("field:") and "field" in kinds:
        name = key[len("field:"):].strip()
        if not name:
            raise ValueError(f"{setting} = {key!r} names no field; write field:NAME, such as "
                             "field:source")
        return SinkKey("field", name)
    if "table" in kinds and (key.endswith(".parquet")
                             or (Path(key).is_dir() and (Path(key) / TABLE).is_file())):
        table = Path(key) if key.endswith(".parquet") else Path(key) / TABLE
        if not table.is_file():
            raise FileNotFoundError(f"{setting} = {key!r}: the annotation table does not "
                                    "exist; write it with memsinks annotate SOURCE --key KEY "
                                    "--out DIR and pass DIR")
        return SinkKey("table", str(table))
    forms = [_FORMS[kind] for kind in kinds]
    examples = [_EXAMPLES[kind] for kind in _EXAMPLES if kind in kinds]
    raise ValueError(f"{setting} = {key!r} is not one of {', '.join(forms[:-1])} or "
                     f"{forms[-1]} (for example {', '.join(examples[:-1])}"
                     f"{',' if len(examples) > 2 else ''} or {examples[-1]})")


def minhash_options(key: str, setting: str = "data.sink_key") -> dict[str, Any]:
    """The MinHash parameters of ``minhash?name=value&...`` (see ``MinHashParams``)."""
    options: dict[str, Any] = {}
    query = key.partition("?")[2]
    for item in filter(None, query.split("&")):
        name, _, raw = item.partition("=")
        kind = MINHASH_OPTIONS.get(name)
        if kind is None:
            raise ValueError(f"{setting} option {name!r} is unknown; minhash takes "
                             f"{', '.join(MINHASH_OPTIONS)}")
        try:
            options[name] = kind(raw)
        except ValueError:
            raise ValueError(f"{setting} option {name}={raw!r} is not a valid "
                             f"{kind.__name__}") from None
    if options:
        MinHashParams(**options).check()
    return options


def text_id(text: str) -> int:
    """The hash of a raw-text document: 63-bit BLAKE2b of its UTF-8 bytes, never 0."""
    return hash63(text.encode("utf-8", "surrogatepass"))


def key_text(value: Any) -> str | None:
    """A field value as key text: strings as they are, other values as JSON; None if empty."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str)


def key_id(field: str, text: str) -> int:
    """The sink ID of field value ``text``: 63-bit BLAKE2b of the name, NUL and the text."""
    return hash63(f"{field}\0{text}".encode("utf-8", "surrogatepass"))


def value_id(name: str, value: Any) -> int:
    """The key of a field value (0 for a missing or empty one), as ``memsinks annotate``
    writes it, so a trained model's sinks and an annotation table name the same IDs."""
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
