"""Sink keys computed by many tasks, counted on one machine: each task of a distributed job
(a datatrove pipeline, for one: ``memsinks.integrations.datatrove``) writes the part of its
documents to ``SHARDS/parts/RANK.parquet`` with :class:`ShardWriter`, positions counted from 0
inside the task; :func:`merge_shards` then numbers the documents in task order and counts
them with the same DuckDB SQL as ``memsinks annotate``, so the table is byte-identical to the
one-machine path on the same documents in the same order.

A task's part is written under a temporary name, fsynced and renamed, and only then marked
done (``RANK.done``, with the task's document count and the identity of its keys), so a task
killed mid-shard leaves no part; rerunning the job redoes it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...files import atomic_write, replacing
from ...locking import exclusive
from ..keys import TABLE
from .counting import memory_limit_text
from .documents import text_chunk
from .parts import part_table
from .pipeline import (
    CHUNK,
    FORMAT,
    SUMMARY,
    WORK,
    finish,
    parse_annotation_key,
    prepare,
    require,
    summary_of,
    table_matches,
)

PARTS = "parts"


def shard_identity(key: str, tokenizer: Any = None, max_tokens: int | None = None,
                   source: Any = None, **minhash: Any) -> dict[str, Any]:
    """What the tasks' parts must agree on: the key, its minhash parameters, what is hashed,
    and the source (whatever the job records of it)."""
    parsed, params = parse_annotation_key(key, **minhash)
    fingerprint = getattr(tokenizer, "fingerprint", None)
    return {"format": FORMAT, "key": str(parsed), "minhash": asdict(params) if params else None,
            "hashed": "document_id of tokens" if tokenizer is not None else "text_id of text",
            "tokenizer": fingerprint if fingerprint is not None else tokenizer,
            "max_tokens": max_tokens, "source": source}


class ShardWriter:
    """One task's part: documents added in order, written in chunks of ``chunk`` rows to a
    temporary file that :meth:`close` renames into place and marks done.

    ``tokenizer``: a ``TextTokenizer`` (or a name or path, loaded here) to hash token ids as
    training does; ``max_tokens``: hash the first ids only. ``key`` and the minhash options
    as ``memsinks annotate``. ``inputs``: the files the task reads, as :func:`file_stats`
    gives them before reading, recorded in the marker so that a merge refuses a part whose
    files changed since.
    """

    def __init__(self, shards: str | Path, rank: int, tasks: int, key: str = "hash", *,
                 tokenizer: Any = None, max_tokens: int | None = None, source: Any = None,
                 chunk: int = CHUNK, inputs: list[list[Any]] | None = None, **minhash: Any):
        import pyarrow.parquet as pq

        from ..sources import load_tokenizer

        if not 0 <= rank < tasks:
            raise ValueError(f"task rank {rank} is outside 0..{tasks - 1}; the job has {tasks} "
                             "tasks")
        if chunk < 1:
            raise ValueError(f"chunk = {chunk} must be at least 1")
        if isinstance(tokenizer, str):
            tokenizer = load_tokenizer(tokenizer)
        self.key, self.params = parse_annotation_key(key, **minhash)
        self.tokenizer, self.max_tokens, self.chunk = tokenizer, max_tokens, chunk
        self.identity = shard_identity(key, tokenizer, max_tokens, source, **minhash)
        self.rank, self.tasks, self.inputs = rank, tasks, inputs
        self.parts = Path(shards).expanduser() / PARTS
        self.parts.mkdir(parents=True, exist_ok=True)
        self._replacing = replacing(self.parts / f"{rank:06d}.parquet", durable=True)
        self._file = open(self._replacing.__enter__(), "wb")
        self._writer: pq.ParquetWriter | None = None
        self._texts: list[str] = []
        self._values: list[Any] | None = [] if self.key.kind == "field" else None
        self.documents = self.keyed = 0

    def add(self, text: str, value: Any = None) -> bool:
        """Add a document (``value``: its field for ``field:NAME`` keys). Text is stripped; an
        empty one is skipped, as ``memsinks annotate`` skips it. Returns whether it was added."""
        text = text.strip()
        if not text:
            return False
        self._texts.append(text)
        if self._values is not None:
            self._values.append(value)
        if len(self._texts) >= self.chunk:
            self._flush()
        return True

    def _flush(self) -> None:
        import pyarrow.parquet as pq

        if not self._texts:
            return
        batch = text_chunk(self._texts, self._values, self.key, self.tokenizer, self.max_tokens)
        table, keyed = part_table(self.documents, batch, self.key, self.params)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._file, table.schema, compression="zstd")
        self._writer.write_table(table)
        self.documents += table.num_rows
        self.keyed += keyed
        self._texts = []
        self._values = [] if self._values is not None else None

    def close(self) -> dict[str, Any]:
        """Write the rest, rename the part into place, mark it done; returns the marker."""
        import pyarrow.parquet as pq

        self._flush()
        if self._writer is None:  # a task without documents: an empty part of the same schema
            empty = part_table(0, text_chunk([], [] if self._values is not None else None,
                                             self.key, None, None), self.key, self.params)[0]
            self._writer = pq.ParquetWriter(self._file, empty.schema, compression="zstd")
            self._writer.write_table(empty)
        self._writer.close()
        self._file.close()
        self._replacing.__exit__(None, None, None)
        marker = {"documents": self.documents, "keyed": self.keyed, "rank": self.rank,
                  "tasks": self.tasks, "identity": self.identity, "inputs": self.inputs}
        atomic_write(self.parts / f"{self.rank:06d}.done", json.dumps(marker, indent=1) + "\n",
                     durable=True)
        return marker


def file_stats(paths: list[str]) -> list[list[Any]]:
    """[path, size, mtime in ns] of each file; a missing one has size and mtime None."""
    stats = []
    for path in paths:
        try:
            stat = Path(path).stat()
            stats.append([str(path), stat.st_size, stat.st_mtime_ns])
        except FileNotFoundError:
            stats.append([str(path), None, None])
    return stats


def stale(shards: Path, rank: int, tasks: int, identity: dict[str, Any]) -> bool:
    """Whether task ``rank``'s part must be made again for a job of ``tasks`` tasks and this
    identity: it is missing or unmarked, or made by another job or from changed files."""
    parts = Path(shards) / PARTS
    try:
        marker = json.loads((parts / f"{rank:06d}.done").read_text())
    except (FileNotFoundError, ValueError):
        return True
    return (not (parts / f"{rank:06d}.parquet").is_file() or marker.get("tasks") != tasks
            or marker.get("identity") != identity or inputs_changed(marker))


def inputs_changed(marker: dict[str, Any]) -> bool:
    """Whether a task's input files (recorded in its marker) changed or went since it read
    them; a task without recorded inputs never counts as changed."""
    inputs = marker.get("inputs")
    return bool(inputs) and file_stats([path for path, _, _ in inputs]) != inputs


def read_markers(shards: Path, redo_hint: str = "") -> list[dict[str, Any]]:
    """Every task's marker, in rank order, checked: all tasks present and agreeing."""
    parts = shards / PARTS
    found = sorted(parts.glob("*.done")) if parts.is_dir() else []
    if not found:
        raise ValueError(f"{str(shards)!r} holds no finished shard parts ({PARTS}/*.done); run "
                         "the annotation job that writes them first")
    markers: dict[int, dict[str, Any]] = {}
    for path in found:
        try:
            marker = json.loads(path.read_text())
            markers[int(marker["rank"])] = marker
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"shard marker {str(path)!r} is unreadable ({error}); delete it and "
                             f"its part and rerun the job{redo_hint}") from None
    first = markers[min(markers)]
    tasks = int(first["tasks"])
    for rank, marker in markers.items():
        if marker["tasks"] != tasks or marker["identity"] != first["identity"]:
            raise ValueError(f"shard {rank} was written by another job than shard {min(markers)} "
                             "(a different task count, key, tokenizer or source); write every "
                             "shard of one job into its own directory")
    missing = [rank for rank in range(tasks) if rank not in markers]
    if missing:
        shown = ", ".join(map(str, missing[:8])) + (" ..." if len(missing) > 8 else "")
        raise ValueError(f"{len(missing)} of {tasks} shard parts are missing (tasks {shown} have "
                         f"not finished); rerun the job, which runs the unfinished tasks"
                         f"{redo_hint}, then merge again")
    for rank in range(tasks):
        if inputs_changed(markers[rank]):
            first_input = markers[rank]["inputs"][0][0]
            raise ValueError(f"shard {rank} was made from input files that have changed or gone "
                             f"since (one of {first_input!r} ...); delete {rank:06d}.parquet and "
                             f"{rank:06d}.done and rerun the job{redo_hint}")
        if not (parts / f"{rank:06d}.parquet").is_file():
            raise ValueError(f"shard part {rank:06d}.parquet is missing though its task is marked "
                             f"done; delete {rank:06d}.done and rerun the job{redo_hint}")
    return [markers[rank] for rank in range(tasks)]


def merge_shards(shards: str | Path, out_dir: str | Path, *, memory_limit: str = "1GB",
                 threads: int | None = None, duckdb_settings: dict[str, Any] | None = None,
                 progress: bool = True, redo_hint: str = "") -> Path:
    """The table of a finished distributed annotation: the tasks' parts numbered in task
    order and counted as ``memsinks annotate`` counts; returns the table's path.

    ``redo_hint``: appended to the sentences that ask to rerun tasks (how this job reruns one).
    """
    shards, out = Path(shards).expanduser(), Path(out_dir).expanduser()
    limit = memory_limit_text(memory_limit)
    if threads is not None and threads < 1:
        raise ValueError(f"threads = {threads} must be at least 1")
    require("duckdb", "annotation")
    markers = read_markers(shards, redo_hint)
    shard_id = markers[0]["identity"]
    key, params = parse_annotation_key(shard_id["key"], **(shard_id["minhash"] or {}))
    stats = [(shards / PARTS / f"{r:06d}.parquet").stat() for r in range(len(markers))]
    files = [[m["documents"], st.st_size, st.st_mtime_ns] for m, st in zip(markers, stats,
                                                                             strict=True)]
    identity = {"format": FORMAT, "key": shard_id["key"],
                "source": {"shards": str(shards.resolve()), "tasks": len(markers),
                           "parts": files, "hashed": shard_id["hashed"],
                           "tokenizer": shard_id["tokenizer"],
                           "max_tokens": shard_id["max_tokens"], "job": shard_id["source"]},
                "minhash": shard_id["minhash"]}
    out.mkdir(parents=True, exist_ok=True)
    with exclusive(out / ".annotate.lock", f"annotation directory {out}", wait=False):
        done = summary_of(out)
        if done.get("identity") == identity and table_matches(out, done):
            return out / TABLE
        (out / SUMMARY).unlink(missing_ok=True)
        work = out / WORK
        prepare(work, {**identity, "merge": True})
        if key.kind == "field" and sum(m["keyed"] for m in markers) == 0:
            raise ValueError(f"no document of the shards in {str(shards)!r} has a value in field "
                             f"{key.argument!r}; check the field name (it is case-sensitive)")
        _number(shards / PARTS, work / "parts", markers, redo_hint)
        finish(work, out, identity, key, params,
               {"memory_limit": limit, "threads": threads, "chunk": None,
                "duckdb_settings": duckdb_settings or {}}, progress)
    return out / TABLE


def _number(shard_parts: Path, parts: Path, markers: list[dict[str, Any]],
            redo_hint: str) -> None:
    """The annotation's parts: each task's part with its positions moved by the documents of
    the tasks before it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    offset = 0
    for rank, marker in enumerate(markers):
        target = parts / f"{rank:06d}.parquet"
        if not (parts / f"{rank:06d}.done").is_file():
            source = shard_parts / f"{rank:06d}.parquet"
            # a row group at a time: a task's part may hold millions of signatures
            rows = 0
            try:
                with (open(source, "rb") as f, replacing(target, durable=True) as tmp,
                      open(tmp, "wb") as out):
                    part = pq.ParquetFile(f)
                    with pq.ParquetWriter(out, part.schema_arrow, compression="zstd") as writer:
                        for group in range(part.num_row_groups):
                            table = part.read_row_group(group)
                            position = table.column("position").to_numpy() + offset
                            writer.write_table(table.set_column(
                                0, "position", pa.array(position, pa.int64())))
                            rows += table.num_rows
                    if rows != marker["documents"]:
                        raise ValueError(f"shard part {str(source)!r} has {rows} rows, its marker "
                                         f"says {marker['documents']}; delete both and rerun the "
                                         f"job{redo_hint}")
            except (OSError, pa.ArrowException) as error:
                raise ValueError(f"shard part {str(source)!r} is not readable parquet "
                                 f"({brief(error)}); delete it and {rank:06d}.done and rerun "
                                 f"the job{redo_hint}") from None
            atomic_write(parts / f"{rank:06d}.done",
                         json.dumps({"documents": rows}) + "\n", durable=True)
        offset += marker["documents"]
    if offset == 0:
        raise ValueError("the shards hold no documents; check the job's input")
    atomic_write(parts.parent / "parts.complete", json.dumps({"parts": len(markers)}) + "\n",
                 durable=True)



def brief(error: BaseException) -> str:
    """An error's first clause, for a sentence of ours (library messages run to several)."""
    return str(error).strip().splitlines()[0].split(". ")[0].rstrip(".") if str(error) else \
        type(error).__name__
