"""Sink keys for a whole corpus: ``memsinks annotate SOURCE --key KEY --out DIR``.

Streams a corpus (any source spec of :mod:`memsinks.data.sources`, or a token store directory)
and writes ``DIR/annotations.parquet``, one row per document in stream order:

- ``position`` (int64): the document's index in the stream, the i-th non-empty document of
  ``read_documents(SOURCE)``, which is also its index in a token store of that source.
- ``hash`` (int64): the document hash. A token store, or a text source annotated with
  ``tokenizer``, gives ``memsinks.sinks.document_id`` of the (cut) token ids: the ID training
  uses. A text source without a tokenizer gives :func:`text_id`, a 63-bit BLAKE2b of the
  stripped text's UTF-8 bytes: equal texts share it, but it is not the token hash. 0 only for a
  store document without tokens.
- ``key`` (string): what the sink ID derives from: the hash in decimal (``hash``), the field
  value (``field:NAME``; JSON for values that are not strings), the representative's hash in
  decimal (``minhash``); null for a document without a key.
- ``sink_id`` (int64): the document's sink ID; 0 means no sinks and no real key gets it.
- ``count`` (int64): documents sharing this sink ID (occurrences for exact keys, cluster size
  for ``minhash``); 0 for a document without a key.
- ``first_position`` (int64, null without a key): position of the first document with this
  sink ID (for ``minhash``: the cluster's representative); a document with
  ``position > first_position`` has been seen before, as the online variant needs.
- ``repeated`` (bool): ``count > 1``, the documents this project's extension gives sinks.

``DIR/annotation.json`` records the source (files with size and mtime), the key, the parameters,
counts and library versions.

Keys:

- ``hash``: exact; the sink ID is the hash itself, as training assigns it today.
- ``field:NAME``: a metadata field of a .jsonl or .parquet source (or of a token store built with
  that field); the sink ID is a 63-bit BLAKE2b of ``NAME``, a NUL byte and the value text
  (:func:`key_id`). A document whose field is missing, null or empty gets no key: sink ID 0, no
  sinks. A source in which no document has the field is an error (a typo, not data).
- ``minhash``: near-duplicate clusters. A text document's shingles are its runs of ``shingle``
  consecutive words (``\\w+`` of the lower-cased text; fewer words: one shingle of all of
  them); a token store document's are runs of ``shingle`` token ids. MinHash signatures of
  ``num_perm`` 32-bit values (seed ``seed``) are cut into ``bands`` bands of
  ``rows = num_perm / bands`` values; documents that agree on a whole band are candidates, and a
  candidate pair is kept when its signatures agree on at least ``threshold`` of the values
  (estimated Jaccard similarity of the shingle sets). Each document is compared with the
  earliest document of every band bucket it falls in; clusters are the connected components of
  the kept pairs; the representative is the cluster's earliest document, so the result does
  not depend on the order of any computation; the sink ID is the representative's hash.
  Defaults: shingle 5, num_perm 128, bands 16 (rows 8), threshold 0.8, seed 0. With these a
  pair at Jaccard 0.8 shares a band with probability 0.947, at 0.85 with 0.994, at 0.7 with
  0.61, at 0.6 with 0.24 (``1 - (1 - J**rows)**bands``).

MinHash library: rensa (``RMinHash``, Rust). ``benchmarks/minhash.py`` measured it against
datasketch on a planted near-duplicate corpus (20,000 documents) with the same shingles,
banding and threshold: about the same pair recall and precision (0.956 and 0.975 against 0.949
and 0.972), a slightly smaller Jaccard estimation error (0.021 against 0.027), and 10 to 18
times the speed (docs/annotation.md; docs/data/bench/minhash.txt).
datatrove's MinHash stages were not chosen: they are a pipeline framework with their own file
layout, and would not share this module's counting, resume and table. Signatures depend on
rensa's algorithm version (``RMinHash.ALGORITHM_VERSION``, recorded in annotation.json), so the
extra pins its minor version.

Memory. Documents are read in chunks of ``chunk`` documents; each chunk's hashes, keys (and
signatures) become one parquet part file. DuckDB then counts, clusters and joins those parts
back under ``SET memory_limit`` with a temporary directory and an on-disk database inside the
work directory, spilling what does not fit: the counting never holds the corpus in memory.
Python holds one chunk at a time. DuckDB needs some tens of MB per thread to run at all; with a
small ``memory_limit`` use fewer ``threads``.

Resume and determinism. Part ``i`` covers documents ``[i * chunk, (i + 1) * chunk)``; it is
written to a temporary name, made durable, renamed, and only then marked done, so a rerun after
a crash redoes only the chunks after the last marked one. The table is written last, under a
temporary name and renamed into place. Rows are in position order, row groups hold 131072 rows,
columns are zstd level 3, and no key-value metadata is written (the footer's ``created_by`` names
the pyarrow version, as parquet requires): the same source annotated twice gives a
byte-identical table. A rerun with the same source files and parameters finds the table up to
date and returns at once.

Past one machine. Nothing here is distributed, and no multi-machine mode is provided. The
annotation is two steps that existing engines run: a per-document map (hash, key, signature),
independent across documents, and a reduction keyed by sink ID (one ``GROUP BY`` and one join
back on position, or for ``minhash`` a ``GROUP BY`` on band hashes, a join and connected
components). A distributed run would write parquet shards with the part schema above from any
batch job (a datatrove pipeline on its Slurm or Ray executor, for one), then run this module's
SQL in an engine that runs SQL over parquet (DuckDB on one large machine, Spark SQL on a
cluster). datatrove's own MinHash stages (signature, buckets, cluster, filter) do not verify
candidates against a threshold, run their cluster stage as a single task that holds the
union-find of all duplicate pairs in memory, and number clusters instead of naming them by a
document hash; their clusters are usable as ``field:`` keys (``minhash_cluster`` in each
document's metadata, with ``load_cluster_ids``), not as this module's ``minhash`` IDs.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..locking import exclusive
from .near_duplicates import (
    MinHashParams,
    band_hashes,
    signatures,
)

TABLE = "annotations.parquet"
SUMMARY = "annotation.json"
WORK = ".annotate-work"  # parts, markers and DuckDB's files; removed once the table is written
FORMAT = 1
CHUNK = 1 << 16  # documents per part file
ROW_GROUP = 1 << 17  # rows per row group of the table: fixed, so the bytes are reproducible
COLUMNS = ("position", "hash", "key", "sink_id", "count", "first_position", "repeated")
_INSTALL = "pip install 'memsinks[annotate]'"
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*", re.IGNORECASE)


# -- keys ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Key:
    """A parsed ``--key``: ``hash``, ``minhash`` or ``field:NAME``."""

    kind: str
    field: str | None = None

    @classmethod
    def parse(cls, text: str) -> Key:
        if text in ("hash", "minhash"):
            return cls(text)
        if text.startswith("field:"):
            name = text[len("field:"):]
            if not name:
                raise ValueError("key 'field:' names no field; write field:NAME, such as "
                                 "field:author")
            return cls("field", name)
        raise ValueError(f"key {text!r} is unknown; use hash, minhash or field:NAME (a metadata "
                         "field of a .jsonl or .parquet source)")

    def __str__(self) -> str:
        return f"field:{self.field}" if self.kind == "field" else self.kind


def _hash63(data: bytes) -> int:
    value = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1
    return value or 1


def text_id(text: str) -> int:
    """The hash of a raw-text document: 63-bit BLAKE2b of its UTF-8 bytes, never 0."""
    return _hash63(text.encode("utf-8", "surrogatepass"))


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
    return _hash63(f"{field}\0{text}".encode("utf-8", "surrogatepass"))


def memory_limit_text(limit: str) -> str:
    """``limit`` checked as a size DuckDB understands (``512MB``, ``4GB``, ``1.5GiB``)."""
    match = _SIZE.fullmatch(str(limit))
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"memory limit {limit!r} is not a size; write a number and a unit, "
                         "such as 512MB or 4GB")
    return f"{match.group(1)}{match.group(2)}"


# -- documents -----------------------------------------------------------------------------------
@dataclass
class _Chunk:
    """Consecutive documents: their hashes, field values, and text or token ids for minhash."""

    hashes: np.ndarray
    values: list[Any] | None = None
    texts: list[str] | None = None
    tokens: list[np.ndarray] | None = None


class _TextDocs:
    """Documents of a source spec, in ``read_records`` order."""

    def __init__(self, spec: str, key: Key, tokenizer: Any, max_tokens: int | None):
        from .sources import load_tokenizer, read_records, source_files

        if isinstance(tokenizer, str):
            if tokenizer.startswith("train:"):
                raise ValueError(f"tokenizer {tokenizer!r} is trained by a run; pass the "
                                 "directory it was saved to, or annotate the run's token store")
            tokenizer = load_tokenizer(tokenizer)
        if max_tokens is not None and (tokenizer is None or max_tokens < 1):
            raise ValueError(f"max_tokens = {max_tokens} needs a tokenizer and must be at least "
                             "1; pass --tokenizer, or drop --max-tokens")
        self.spec, self.key, self.tokenizer, self.max_tokens = spec, key, tokenizer, max_tokens
        self._fields = (key.field,) if key.kind == "field" else ()
        # checks the spec now (files exist, options known, fields readable from this format)
        self._read = read_records
        read_records(spec, self._fields, limit=0)
        files = [[str(p.resolve()), s.st_size, s.st_mtime_ns]
                 for p in source_files(spec) for s in [p.stat()]]
        self.identity = {"source": spec, "files": files,
                         "hashed": "document_id of tokens" if tokenizer else "text_id of text",
                         "tokenizer": tokenizer.fingerprint if tokenizer else None,
                         "tokenizer_name": tokenizer.name if tokenizer else None,
                         "max_tokens": max_tokens}
        self.total: int | None = None

    def chunks(self, start: int, size: int) -> Iterator[_Chunk]:
        records = self._read(self.spec, self._fields, skip=start)
        while batch := list(itertools.islice(records, size)):
            texts = [text for text, _ in batch]
            if self.tokenizer is not None:
                from ..sinks import document_id

                ids = self.tokenizer.encode_batch(texts, max_tokens=self.max_tokens)
                hashes = [document_id(t) for t in ids]
            else:
                hashes = [text_id(t) for t in texts]
            yield _Chunk(np.array(hashes, dtype=np.int64),
                         values=[extras[0] for _, extras in batch] if self._fields else None,
                         texts=texts if self.key.kind == "minhash" else None)


class _StoreDocs:
    """Documents of a token store directory, by index."""

    def __init__(self, path: Path, key: Key, tokenizer: Any, max_tokens: int | None):
        from .store import TokenStore

        if tokenizer is not None or max_tokens is not None:
            raise ValueError(f"{str(path)!r} is a token store, tokenized and cut when it was "
                             "built; drop --tokenizer and --max-tokens")
        self.store, self.key, self.path = TokenStore(path), key, path
        meta = self.store.meta
        if len(self.store) == 0:
            raise ValueError(f"token store {str(path)!r} holds no documents; build it first")
        if key.kind == "field" and key.field not in meta["fields"]:
            raise ValueError(f"token store {str(path)!r} was built without field "
                             f"{key.field!r} (it has {meta['fields'] or 'none'}); build it with "
                             f"fields=({key.field!r},) or annotate its source instead")
        self.identity = {"store": str(path.resolve()), "source": meta["source"],
                         "files": meta["files"], "hashed": "document_id of tokens",
                         "tokenizer": meta["tokenizer"], "max_tokens": meta["max_tokens"],
                         "min_tokens": meta["min_tokens"], "n_docs": meta["n_docs"],
                         "complete": meta["complete"]}
        self.total = len(self.store)

    def chunks(self, start: int, size: int) -> Iterator[_Chunk]:
        store, n = self.store, len(self.store)
        values = self._values(start) if self.key.kind == "field" else None
        for lo in range(start, n, size):
            hi = min(lo + size, n)
            some = None if values is None else list(itertools.islice(values, hi - lo))
            tokens = ([store.tokens(i) for i in range(lo, hi)] if self.key.kind == "minhash"
                      else None)
            yield _Chunk(np.array(store.hashes[lo:hi], dtype=np.int64), values=some,
                         tokens=tokens)

    def _values(self, start: int) -> Iterator[Any]:
        # streamed line by line: TokenStore.fields would hold every record in memory
        with open(self.path / "fields.jsonl", "rb") as f:
            for line in itertools.islice(f, start, len(self.store)):
                yield json.loads(line).get(self.key.field)


def _is_store(source: str) -> bool:
    path = Path(source).expanduser()
    return path.is_dir() and (path / "meta.json").is_file() and (path / "hashes.npy").is_file()


def _sig_matrix(column: Any, num_perm: int) -> np.ndarray:
    import pyarrow as pa

    fixed = column.cast(pa.binary(4 * num_perm))
    if isinstance(fixed, pa.ChunkedArray):
        fixed = fixed.combine_chunks()
    data = np.frombuffer(fixed.buffers()[1], dtype="<u4")
    start = fixed.offset * num_perm
    return data[start:start + len(fixed) * num_perm].reshape(len(fixed), num_perm)


# -- the annotation ------------------------------------------------------------------------------
def annotate(source: str, key: str, out_dir: str | Path, *, memory_limit: str = "1GB",
             tokenizer: Any = None, max_tokens: int | None = None,
             threshold: float | None = None, shingle: int | None = None,
             num_perm: int | None = None, bands: int | None = None, seed: int | None = None,
             threads: int | None = None, duckdb_settings: dict[str, Any] | None = None,
             chunk: int = CHUNK, progress: bool = True) -> Path:
    """Annotate ``source`` with sink keys ``key``; returns the path of ``annotations.parquet``.

    ``tokenizer`` (a name, a path or a ``TextTokenizer``) and ``max_tokens``: hash a text
    source's token ids as training does, instead of its text. ``threshold``, ``shingle``,
    ``num_perm``, ``bands``, ``seed``: the ``minhash`` parameters (defaults in
    :class:`MinHashParams`). ``memory_limit`` and ``threads``: DuckDB's caps;
    ``duckdb_settings``: more DuckDB settings (``{"max_temp_directory_size": "200GB"}``).
    ``chunk``: documents per part file, the unit of resumption.
    """
    parsed = Key.parse(key)
    limit = memory_limit_text(memory_limit)
    given = {name: value for name, value in (("threshold", threshold), ("shingle", shingle),
                                             ("num_perm", num_perm), ("bands", bands),
                                             ("seed", seed)) if value is not None}
    params = None
    if parsed.kind == "minhash":
        params = MinHashParams(**given)
        params.check()
        _import("rensa", "minhash keys")
    elif given:
        raise ValueError(f"the minhash options ({', '.join(given)}) do not apply to key "
                         f"{str(parsed)!r}; drop them or use --key minhash")
    if chunk < 1 or (threads is not None and threads < 1):
        raise ValueError(f"chunk = {chunk} and threads = {threads} must be at least 1")
    _import("duckdb", "annotation")
    docs: _TextDocs | _StoreDocs
    if _is_store(source):
        docs = _StoreDocs(Path(source).expanduser(), parsed, tokenizer, max_tokens)
    else:
        docs = _TextDocs(source, parsed, tokenizer, max_tokens)
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    identity = {"format": FORMAT, "key": str(parsed), "source": docs.identity,
                "minhash": asdict(params) if params else None}
    with exclusive(out / ".annotate.lock", f"annotation directory {out}", wait=False):
        done = _summary(out)
        if done.get("identity") == identity and _table_matches(out, done):
            return out / TABLE
        (out / SUMMARY).unlink(missing_ok=True)  # a table without its summary is unfinished
        work = out / WORK
        _prepare(work, {**identity, "chunk": chunk})
        read = _write_parts(docs, parsed, params, work, chunk, progress)
        if parsed.kind == "field" and read["keyed"] == 0:
            raise ValueError(f"no document of {source!r} has a value in field {parsed.field!r}; "
                             "check the field name (keys and columns are case-sensitive)")
        counts = _finish(work, out, parsed, params, limit, threads, duckdb_settings or {},
                         progress)
        summary = {"identity": identity,
                   "parameters": {"memory_limit": limit, "threads": threads, "chunk": chunk,
                                  "duckdb_settings": duckdb_settings or {}},
                   "counts": counts, "columns": list(COLUMNS), "versions": _versions(parsed),
                   "table_bytes": (out / TABLE).stat().st_size,
                   "table_sha256": _sha256(out / TABLE)}
        _write_json(out / SUMMARY, summary)
        shutil.rmtree(work)
    return out / TABLE


def _import(name: str, what: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        raise ImportError(f"{what} needs the {name} package; {_INSTALL}") from None


def _summary(out: Path) -> dict[str, Any]:
    try:
        return json.loads((out / SUMMARY).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _table_matches(out: Path, summary: dict[str, Any]) -> bool:
    table = out / TABLE
    return table.is_file() and table.stat().st_size == summary.get("table_bytes")


def _prepare(work: Path, identity: dict[str, Any]) -> None:
    """A work directory for this identity: kept from an interrupted run, else made afresh."""
    marker = work / "identity.json"
    try:
        same = json.loads(marker.read_text()) == identity
    except (FileNotFoundError, json.JSONDecodeError):
        same = False
    if not same:
        shutil.rmtree(work, ignore_errors=True)
        (work / "parts").mkdir(parents=True)
        _write_json(marker, identity)


def _write_parts(docs: _TextDocs | _StoreDocs, key: Key, params: MinHashParams | None,
                 work: Path, chunk: int, progress: bool) -> dict[str, Any]:
    """Part files for every chunk not marked done; returns counts summed over all parts."""
    from tqdm import tqdm

    parts = work / "parts"
    done = 0
    while (parts / f"{done:06d}.done").is_file():
        done += 1
    for stale in parts.iterdir():  # parts after the first unmarked one are redone
        if stale.name[:6].isdigit() and int(stale.name[:6]) >= done:
            stale.unlink()
    markers = [json.loads((parts / f"{i:06d}.done").read_text()) for i in range(done)]
    if not (work / "parts.complete").is_file():
        start = sum(m["documents"] for m in markers)
        with tqdm(total=docs.total, initial=start, unit="doc", desc="annotating", leave=False,
                  dynamic_ncols=True, mininterval=1.0, delay=2.0, disable=not progress) as bar:
            for index, batch in enumerate(docs.chunks(start, chunk), start=done):
                markers.append(_write_part(parts, index, start, batch, key, params))
                start += len(batch.hashes)
                bar.update(len(batch.hashes))
        if not markers:
            raise ValueError(f"{docs.identity['source']!r} holds no documents; check the source")
        _write_json(work / "parts.complete", {"parts": len(markers)})
    return {"documents": sum(m["documents"] for m in markers),
            "keyed": sum(m["keyed"] for m in markers)}


def _write_part(parts: Path, index: int, start: int, batch: _Chunk, key: Key,
                params: MinHashParams | None) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = len(batch.hashes)
    columns: dict[str, Any] = {"position": np.arange(start, start + n, dtype=np.int64),
                               "hash": batch.hashes}
    if key.kind == "field":
        assert batch.values is not None
        texts = [key_text(v) for v in batch.values]
        columns["sink"] = np.array([0 if t is None else key_id(key.field or "", t)
                                    for t in texts], dtype=np.int64)
        columns["key"] = pa.array(texts, pa.string())
        keyed = sum(t is not None for t in texts)
    else:
        columns["sink"] = batch.hashes
        columns["key"] = pa.nulls(n, pa.string())
        keyed = int(np.count_nonzero(batch.hashes))
    if params is not None:
        sig = signatures(params, texts=batch.texts, tokens=batch.tokens)
        columns["sig"] = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(4 * params.num_perm), n, [None, pa.py_buffer(sig.astype("<u4").tobytes())])
        flat = band_hashes(sig, params).reshape(-1)
        columns["bands"] = pa.ListArray.from_arrays(
            pa.array(np.arange(0, n * params.bands + 1, params.bands, dtype=np.int32)),
            pa.array(flat))
    path = parts / f"{index:06d}.parquet"
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:  # a file object: pyarrow would read a ':' in a path as a URI
        pq.write_table(pa.table(columns), f, compression="zstd")
    _fsync(tmp)
    os.replace(tmp, path)
    marker = {"documents": n, "keyed": keyed}
    _write_json(parts / f"{index:06d}.done", marker)
    return marker


def _finish(work: Path, out: Path, key: Key, params: MinHashParams | None, limit: str,
            threads: int | None, settings: dict[str, Any], progress: bool) -> dict[str, Any]:
    """Count (or cluster) with DuckDB over the parts, then write the table; returns counts."""
    import duckdb

    db = work / "duck.db"
    for stale in (db, work / "duck.db.wal", work / "sorted.parquet"):  # a crashed finish's
        stale.unlink(missing_ok=True)
    shutil.rmtree(work / "tmp", ignore_errors=True)
    con = duckdb.connect(str(db))  # on disk: tables spill to it instead of living in memory
    counts: dict[str, Any] = {}
    try:
        con.execute(f"SET memory_limit = '{limit}'")
        con.execute(f"SET temp_directory = '{_sql_path(work / 'tmp')}'")
        con.execute("SET preserve_insertion_order = false")  # ORDER BY still orders the table
        con.execute(f"SET enable_progress_bar = {str(progress).lower()}")
        if threads is not None:
            con.execute(f"SET threads = {int(threads)}")
        for name, value in settings.items():
            con.execute(f"SET {name} = ?", [value])
        parts = f"read_parquet('{_sql_path(work / 'parts')}/*.parquet')"
        _stage(progress, f"counting keys with DuckDB (memory limit {limit})")
        # the sort carries integers only: DuckDB sorts long strings in large blocks that a
        # small memory limit cannot hold, and the parts already have the keys in position order
        if params is None:
            query = f"""
                WITH g AS (SELECT sink, count(*) AS n, min(position) AS f FROM {parts}
                           WHERE sink <> 0 GROUP BY sink)
                SELECT p.position, p.hash, p.sink AS sink_id,
                       coalesce(g.n, 0) AS count, g.f AS first_position,
                       coalesce(g.n, 0) > 1 AS repeated
                FROM {parts} p LEFT JOIN g USING (sink) ORDER BY p.position"""
        else:
            counts.update(_cluster(con, parts, work, params, progress))
            query = f"""
                WITH comp AS (
                    SELECT d.position, d.hash,
                           CASE WHEN d.hash <> 0 THEN coalesce(l.label, d.position) END AS root
                    FROM {parts} d LEFT JOIN labels l ON l.node = d.position),
                sizes AS (SELECT root, count(*) AS n FROM comp WHERE root IS NOT NULL
                          GROUP BY root),
                heads AS (SELECT position AS root, hash AS head FROM comp WHERE root = position)
                SELECT c.position, c.hash, coalesce(h.head, 0) AS sink_id,
                       coalesce(s.n, 0) AS count, c.root AS first_position,
                       coalesce(s.n, 0) > 1 AS repeated
                FROM comp c LEFT JOIN sizes s USING (root) LEFT JOIN heads h USING (root)
                ORDER BY c.position"""
        sorted_path = work / "sorted.parquet"
        con.execute(f"COPY ({query}) TO '{_sql_path(sorted_path)}' (FORMAT parquet)")
        row = con.execute(f"""
            SELECT count(*), count(*) FILTER (WHERE sink_id <> 0),
                   count(DISTINCT sink_id) FILTER (WHERE sink_id <> 0),
                   count(*) FILTER (WHERE repeated),
                   count(DISTINCT sink_id) FILTER (WHERE repeated), coalesce(max(count), 0)
            FROM read_parquet('{_sql_path(sorted_path)}')""").fetchone()
    except duckdb.OutOfMemoryException as error:
        raise ValueError(f"DuckDB ran out of memory under memory limit {limit} (threads = "
                         f"{threads or 'all'}): raise --memory-limit, lower --threads, or free "
                         "disk for its temporary files") from error
    finally:
        con.close()
    names = ("documents", "keyed_documents", "sinks", "repeated_documents", "repeated_sinks",
             "largest_group")
    counts = {**dict(zip(names, map(int, row), strict=True)), **counts}
    _stage(progress, f"writing {out / TABLE}")
    keys = _part_keys(work / "parts") if key.kind == "field" else None
    _rewrite(sorted_path, out / TABLE, counts["documents"], keys)
    return counts


def _part_keys(parts: Path) -> Iterator[Any]:
    """The parts' key columns, in position order."""
    import pyarrow.parquet as pq

    index = 0
    while (path := parts / f"{index:06d}.parquet").is_file():
        with open(path, "rb") as f:
            yield pq.read_table(f, columns=["key"]).column("key").combine_chunks()
        index += 1


def _cluster(con: Any, parts: str, work: Path, params: MinHashParams,
             progress: bool) -> dict[str, int]:
    """Table ``labels(node, label)``: each document in a cluster of two or more, with the
    cluster's earliest position. Out of core: band buckets by GROUP BY, components by label
    propagation with pointer jumping, each step one DuckDB statement."""
    banded = (f"SELECT position, generate_subscripts(bands, 1) AS band, unnest(bands) AS bh "
              f"FROM {parts} WHERE hash <> 0")
    con.execute(f"""CREATE TABLE roots AS SELECT band, bh, min(position) AS root
                    FROM ({banded}) GROUP BY band, bh HAVING count(*) > 1""")
    con.execute(f"""CREATE TABLE candidates AS SELECT DISTINCT b.position AS u, r.root AS v
                    FROM ({banded}) b JOIN roots r USING (band, bh) WHERE b.position > r.root""")
    pairs, edges = work / "pairs.parquet", work / "edges.parquet"
    con.execute(f"""COPY (SELECT c.u, c.v, pu.sig AS su, pv.sig AS sv FROM candidates c
                          JOIN {parts} pu ON pu.position = c.u
                          JOIN {parts} pv ON pv.position = c.v)
                    TO '{_sql_path(pairs)}' (FORMAT parquet)""")
    _stage(progress, "checking candidate pairs")
    candidates, kept = _verify(pairs, edges, params)
    con.execute(f"CREATE TABLE edges AS SELECT u, v FROM read_parquet('{_sql_path(edges)}')")
    rounds = components(con)
    for table in ("roots", "candidates", "edges"):
        con.execute(f"DROP TABLE {table}")
    return {"candidate_pairs": candidates, "similar_pairs": kept, "cluster_rounds": rounds}


def components(con: Any) -> int:
    """From DuckDB table ``edges(u, v)``, table ``labels(node, label)``: every node of an edge
    with the smallest node of its connected component. Returns the rounds it took.

    Label propagation with pointer jumping, each round a few out-of-core joins: a node takes the
    smallest label among itself and its neighbours, then its label's label.
    """
    con.execute("""CREATE OR REPLACE TABLE labels AS SELECT node, min(other) AS label FROM
                   (SELECT u AS node, least(u, v) AS other FROM edges
                    UNION ALL SELECT v, least(u, v) FROM edges) GROUP BY node""")
    rounds = 0
    while True:
        rounds += 1
        con.execute("""CREATE OR REPLACE TABLE spread AS SELECT node, min(label) AS label FROM
                       (SELECT node, label FROM labels
                        UNION ALL SELECT e.u, l.label FROM edges e JOIN labels l ON l.node = e.v
                        UNION ALL SELECT e.v, l.label FROM edges e JOIN labels l ON l.node = e.u)
                       GROUP BY node""")
        con.execute("""CREATE OR REPLACE TABLE jumped AS
                       SELECT a.node, least(a.label, b.label) AS label
                       FROM spread a JOIN spread b ON b.node = a.label""")
        changed = con.execute("""SELECT count(*) FROM jumped j JOIN labels l USING (node)
                                 WHERE j.label <> l.label""").fetchone()[0]
        con.execute("DROP TABLE labels")
        con.execute("DROP TABLE spread")
        con.execute("ALTER TABLE jumped RENAME TO labels")
        if changed == 0:
            return rounds


def _verify(pairs: Path, edges: Path, params: MinHashParams) -> tuple[int, int]:
    """Keep the candidate pairs whose signatures agree on ``threshold`` of their values."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    need = params.threshold * params.num_perm - 1e-9
    seen = kept = 0
    schema = pa.schema([("u", pa.int64()), ("v", pa.int64())])
    with (open(edges, "wb") as out, pq.ParquetWriter(out, schema) as writer,
          open(pairs, "rb") as source):
        for batch in pq.ParquetFile(source).iter_batches(batch_size=1 << 15):
            su = _sig_matrix(batch.column("su"), params.num_perm)
            sv = _sig_matrix(batch.column("sv"), params.num_perm)
            similar = (su == sv).sum(axis=1) >= need
            seen += len(similar)
            kept += int(similar.sum())
            u = batch.column("u").to_numpy()[similar]
            v = batch.column("v").to_numpy()[similar]
            writer.write_table(pa.table({"u": u, "v": v}, schema=schema))
    return seen, kept


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema([pa.field("position", pa.int64(), nullable=False),
                      pa.field("hash", pa.int64(), nullable=False),
                      pa.field("key", pa.string()),
                      pa.field("sink_id", pa.int64(), nullable=False),
                      pa.field("count", pa.int64(), nullable=False),
                      pa.field("first_position", pa.int64()),
                      pa.field("repeated", pa.bool_(), nullable=False)])


def _rewrite(source: Path, target: Path, total: int, keys: Iterator[Any] | None) -> None:
    """DuckDB's sorted output, with its key column, re-encoded with fixed row groups and
    settings, and renamed into place. ``keys``: field values in position order (None: the key
    is the sink ID in decimal)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    schema = _schema()
    tmp = target.with_name(target.name + ".tmp")
    expected = 0
    pending: list[Any] = []
    held = 0
    spare: list[Any] = []  # field values read but not yet used

    def take_keys(count: int) -> Any:
        nonlocal spare
        have = sum(len(a) for a in spare)
        while have < count:
            assert keys is not None
            spare.append(next(keys))
            have += len(spare[-1])
        joined = pa.concat_arrays(spare) if len(spare) > 1 else spare[0]
        spare = [joined.slice(count)]
        return joined.slice(0, count)

    with (open(tmp, "wb") as out, open(source, "rb") as sorted_file,
          pq.ParquetWriter(out, schema, compression="zstd", compression_level=3,
                           store_schema=False, write_statistics=True) as writer):
        for batch in pq.ParquetFile(sorted_file).iter_batches(batch_size=ROW_GROUP):
            positions = batch.column("position").to_numpy()
            if not np.array_equal(positions, np.arange(expected, expected + len(positions))):
                raise RuntimeError("DuckDB returned the annotation out of position order; "
                                   "report this with the DuckDB version")
            expected += len(positions)
            sink = batch.column("sink_id")
            if keys is None:
                key = pc.if_else(pc.equal(sink, 0), pa.scalar(None, pa.string()),
                                 pc.cast(sink, pa.string()))
            else:
                key = take_keys(len(positions))
            columns = {name: key if name == "key" else batch.column(name) for name in COLUMNS}
            pending.append(pa.table(columns).cast(schema))
            held += len(positions)
            if held >= ROW_GROUP:
                table = pa.concat_tables(pending)
                while table.num_rows >= ROW_GROUP:
                    writer.write_table(table.slice(0, ROW_GROUP), row_group_size=ROW_GROUP)
                    table = table.slice(ROW_GROUP)
                pending, held = [table], table.num_rows
        if held:
            writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP)
    if expected != total:
        raise RuntimeError(f"the annotation has {expected} rows, not {total}")
    _fsync(tmp)
    os.replace(tmp, target)


# -- files and small helpers ---------------------------------------------------------------------
def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _stage(progress: bool, message: str) -> None:
    if progress:
        print(f"memsinks annotate: {message}", file=sys.stderr, flush=True)


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _versions(key: Key) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    names = ["memsinks", "duckdb", "pyarrow", "numpy"] + (["rensa"] if key.kind == "minhash"
                                                           else [])
    out: dict[str, Any] = {"python": sys.version.split()[0]}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    if key.kind == "minhash":
        import rensa

        out["rensa_algorithm"] = rensa.RMinHash.ALGORITHM_VERSION
    return out


# -- command line --------------------------------------------------------------------------------
def register(sub: Any) -> None:
    """Add ``annotate`` to memsinks' subcommands (``sub``: argparse subparsers)."""
    defaults = MinHashParams()
    parser = sub.add_parser(
        "annotate", help="write a corpus's sink keys as one parquet table",
        description="Per document of SOURCE (a source spec or a token store directory): "
                    "position, hash, sink key, sink ID, count and a repeated flag, in "
                    "OUT/annotations.parquet. Resumes after an interruption.")
    parser.add_argument("source", help="a source spec (file, directory, glob, with ?options) or "
                                       "a token store directory")
    parser.add_argument("--key", required=True, help="hash | field:NAME | minhash")
    parser.add_argument("--out", required=True, help="directory for annotations.parquet")
    parser.add_argument("--memory-limit", default="1GB",
                        help="DuckDB's memory cap, e.g. 512MB or 8GB (default 1GB)")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all)")
    parser.add_argument("--tokenizer", default=None,
                        help="hash token ids with this tokenizer (name or path), as training "
                             "does, instead of the text")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="with --tokenizer: hash only each document's first ids")
    parser.add_argument("--threshold", type=float, default=None,
                        help=f"minhash: estimated Jaccard to join a cluster "
                             f"(default {defaults.threshold})")
    parser.add_argument("--shingle", type=int, default=None,
                        help=f"minhash: words (or tokens) per shingle (default {defaults.shingle})")
    parser.add_argument("--num-perm", type=int, default=None,
                        help=f"minhash: signature length (default {defaults.num_perm})")
    parser.add_argument("--bands", type=int, default=None,
                        help=f"minhash: LSH bands, dividing --num-perm (default {defaults.bands})")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> None:
    table = annotate(args.source, args.key, args.out, memory_limit=args.memory_limit,
                     tokenizer=args.tokenizer, max_tokens=args.max_tokens,
                     threshold=args.threshold, shingle=args.shingle, num_perm=args.num_perm,
                     bands=args.bands, threads=args.threads, progress=not args.quiet)
    counts = _summary(table.parent)["counts"]
    print(f"{table}: {counts['documents']} documents, {counts['sinks']} sink IDs, "
          f"{counts['repeated_documents']} documents in repeated groups")
