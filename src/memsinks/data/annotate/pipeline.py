"""Sink keys for a whole corpus: ``memsinks annotate SOURCE --key KEY --out DIR`` writes
``DIR/annotations.parquet``, one row per document in stream order (position, hash, key, sink
ID, count, first position, repeated), and ``DIR/annotation.json``.

docs/annotation.md describes the table, the keys, the MinHash clustering, memory, resumption
and determinism. Here the pipeline: documents are read in chunks (documents.py), each chunk
becomes a parquet part (parts.py), DuckDB counts or clusters the parts (counting.py,
clusters.py), and the table is written last; a rerun resumes after the last finished part.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...files import atomic_write
from ...locking import exclusive
from ..keys import TABLE, SinkKey, minhash_options, parse_key
from ..near_duplicates import MinHashParams
from .counting import memory_limit_text, write_table
from .documents import StoreDocs, TextDocs, is_store
from .parts import COLUMNS, write_part

SUMMARY = "annotation.json"
WORK = ".annotate-work"  # parts, markers and DuckDB's files; removed once the table is written
FORMAT = 1
CHUNK = 1 << 16  # documents per part file
_INSTALL = "pip install 'memsinks[annotate]'"


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
    parsed, params = parse_annotation_key(key, threshold=threshold, shingle=shingle,
                                          num_perm=num_perm, bands=bands, seed=seed)
    limit = memory_limit_text(memory_limit)
    if chunk < 1 or (threads is not None and threads < 1):
        raise ValueError(f"chunk = {chunk} and threads = {threads} must be at least 1")
    require("duckdb", "annotation")
    docs: TextDocs | StoreDocs
    if is_store(source):
        docs = StoreDocs(Path(source).expanduser(), parsed, tokenizer, max_tokens)
    else:
        docs = TextDocs(source, parsed, tokenizer, max_tokens)
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    identity = {"format": FORMAT, "key": str(parsed), "source": docs.identity,
                "minhash": asdict(params) if params else None}
    with exclusive(out / ".annotate.lock", f"annotation directory {out}", wait=False):
        done = summary_of(out)
        if done.get("identity") == identity and table_matches(out, done):
            return out / TABLE
        (out / SUMMARY).unlink(missing_ok=True)  # a table without its summary is unfinished
        work = out / WORK
        prepare(work, {**identity, "chunk": chunk})
        read = _write_parts(docs, parsed, params, work, chunk, progress)
        if parsed.kind == "field" and read["keyed"] == 0:
            raise ValueError(f"no document of {source!r} has a value in field {parsed.argument!r}; "
                             "check the field name (keys and columns are case-sensitive)")
        finish(work, out, identity, parsed, params,
               {"memory_limit": limit, "threads": threads, "chunk": chunk,
                "duckdb_settings": duckdb_settings or {}}, progress)
    return out / TABLE


def parse_annotation_key(key: str, **given: Any) -> tuple[SinkKey, MinHashParams | None]:
    """``key`` (hash, field:NAME or minhash, with ``minhash?threshold=...`` options) and the
    minhash parameters given apart from it (None ones are unset), checked."""
    parsed = parse_key(key, "key", kinds=("hash", "minhash", "field"))
    given = {name: value for name, value in given.items() if value is not None}
    if parsed.kind != "minhash":
        if given:
            raise ValueError(f"the minhash options ({', '.join(given)}) do not apply to key "
                             f"{str(parsed)!r}; drop them or use --key minhash")
        return parsed, None
    # options in the key (minhash?threshold=0.9, as data.sink_key takes them), then these
    params = MinHashParams(**{**minhash_options(key, "key"), **given})
    params.check()
    require("rensa", "minhash keys")
    return SinkKey("minhash"), params  # the options are recorded as the parameters


def finish(work: Path, out: Path, identity: dict[str, Any], key: SinkKey,
           params: MinHashParams | None, parameters: dict[str, Any], progress: bool) -> None:
    """Count the finished parts of ``work`` into ``out``'s table, write annotation.json, and
    remove the work directory."""
    counts = write_table(work, out, key, params, parameters["memory_limit"],
                         parameters["threads"], parameters["duckdb_settings"], progress)
    summary = {"identity": identity, "parameters": parameters,
               "counts": counts, "columns": list(COLUMNS), "versions": _versions(key),
               "table_bytes": (out / TABLE).stat().st_size,
               "table_sha256": _sha256(out / TABLE)}
    atomic_write(out / SUMMARY, json.dumps(summary, indent=1) + "\n", durable=True)
    shutil.rmtree(work)


def require(name: str, what: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        raise ImportError(f"{what} needs the {name} package; {_INSTALL}") from None


def summary_of(out: Path) -> dict[str, Any]:
    """The annotation.json of ``out`` ({} when there is none yet)."""
    try:
        return json.loads((out / SUMMARY).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def table_matches(out: Path, summary: dict[str, Any]) -> bool:
    table = out / TABLE
    return table.is_file() and table.stat().st_size == summary.get("table_bytes")


def prepare(work: Path, identity: dict[str, Any]) -> None:
    """A work directory for this identity: kept from an interrupted run, else made afresh."""
    marker = work / "identity.json"
    try:
        same = json.loads(marker.read_text()) == identity
    except (FileNotFoundError, json.JSONDecodeError):
        same = False
    if not same:
        shutil.rmtree(work, ignore_errors=True)
        (work / "parts").mkdir(parents=True)
        atomic_write(marker, json.dumps(identity, indent=1) + "\n", durable=True)


def _write_parts(docs: TextDocs | StoreDocs, key: SinkKey, params: MinHashParams | None,
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
                markers.append(write_part(parts, index, start, batch, key, params))
                start += len(batch.hashes)
                bar.update(len(batch.hashes))
        if not markers:
            raise ValueError(f"{docs.identity['source']!r} holds no documents; check the source")
        atomic_write(work / "parts.complete", json.dumps({"parts": len(markers)}, indent=1) + "\n",
                     durable=True)
    return {"documents": sum(m["documents"] for m in markers),
            "keyed": sum(m["keyed"] for m in markers)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _versions(key: SinkKey) -> dict[str, Any]:
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
