"""Sink-key annotation as datatrove pipeline steps (docs/annotation.md, "Past one machine").

- :class:`SinkKeys`: a step that keys every document passing through it (after any datatrove
  reader and filter) and writes its task's part to ``SHARDS/parts/``; the documents go on to
  the next step unchanged.
- :class:`SourceReader`: memsinks' own reader of a source spec as a datatrove reader, each task
  reading a contiguous block of the spec's files, so that task order is the order in which
  ``memsinks annotate`` reads the same spec.
- :func:`annotation_pipeline`: the two, for any datatrove executor (local, Slurm, Ray);
  :func:`annotate_local` runs them on a ``LocalPipelineExecutor`` and merges.

After the job, :func:`memsinks.data.annotate.shards.merge_shards` (``memsinks annotate-merge``)
counts the parts on one machine; the table is byte-identical to ``memsinks annotate`` on the
same documents in the same order.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

try:
    from datatrove.data import Document, DocumentsPipeline
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.base import PipelineStep
except ImportError:  # pragma: no cover - the message is the point
    raise ImportError("distributed annotation needs the datatrove package; "
                      "pip install 'memsinks[annotate]'") from None

from ..data.annotate.documents import is_store
from ..data.annotate.pipeline import CHUNK, parse_annotation_key
from ..data.annotate.shards import (
    PARTS,
    ShardWriter,
    brief,
    file_stats,
    merge_shards,
    shard_identity,
    stale,
)
from ..data.keys import parse_key
from ..data.sources import load_tokenizer, parse_spec, read_records, source_files

LOGS = "logs"  # the executor's logging directory inside SHARDS (completions/, stats, task logs)


class SourceReader(PipelineStep):
    """Documents of a memsinks source spec (a file, directory or glob with ``?options``): task
    ``rank`` of ``world_size`` reads files ``[rank * n // world_size, (rank + 1) * n //
    world_size)`` of the spec's ``n`` files in order, so tasks in rank order read the corpus
    in ``memsinks annotate``'s order. Texts are stripped and empty ones skipped, as there;
    ``fields`` go to each document's metadata."""

    name = "memsinks source"
    type = "📖 - READER"

    def __init__(self, source: str, fields: tuple[str, ...] = ()):
        super().__init__()
        if is_store(source):
            raise ValueError(f"{source!r} is a token store: annotate it on one machine "
                             "(memsinks annotate without --workers), or pass its text source")
        target, options = parse_spec(source)
        if target.startswith("hf:"):
            raise ValueError(f"source {source!r} is a hub dataset: it has no files to share "
                             "among tasks; use datatrove's HuggingFaceDatasetReader before "
                             "SinkKeys, or download it and pass its files")
        self.files = [str(p.resolve()) for p in source_files(source)]
        self.query = source.partition("?")[2]
        self.fields = tuple(fields)
        read_records(source, self.fields, limit=0)  # checks the options and fields now
        self.identity = {"source": source, "files": len(self.files)}

    def task_files(self, rank: int, world_size: int) -> list[str]:
        """The files task ``rank`` of ``world_size`` reads."""
        n = len(self.files)
        return self.files[rank * n // world_size:(rank + 1) * n // world_size]

    def run(self, data: DocumentsPipeline = None, rank: int = 0,
            world_size: int = 1) -> DocumentsPipeline:
        for path in self.task_files(rank, world_size):
            spec = path + (f"?{self.query}" if self.query else "")
            try:
                for row, (text, extras) in enumerate(read_records(spec, self.fields,
                                                                  require=False)):
                    self.stat_update("documents")
                    yield Document(text=text, id=f"{path}/{row}",
                                   metadata=dict(zip(self.fields, extras, strict=True)))
            except (OSError, ValueError) as error:
                if isinstance(error, ValueError) and str(error).startswith("data source"):
                    raise
                raise ValueError(f"shard {path!r} cannot be read ({type(error).__name__}: "
                                 f"{brief(error)}); replace or remove the file and rerun: finished "
                                 "tasks are kept") from None


class SinkKeys(PipelineStep):
    """Key every document passing through (``hash``, ``field:NAME`` from its metadata, or
    ``minhash``, with the options of ``memsinks annotate``) and write the task's part to
    ``shards/parts/RANK.parquet``; documents are passed on unchanged.

    ``tokenizer``: a hub name or saved directory, to hash token ids as training does;
    ``max_tokens``: hash the first ids only. ``source``: what the job records of its input
    (:class:`SourceReader` gives its spec); ``reader``: a :class:`SourceReader` whose task's
    files (path, size, mtime) go into the task's marker, so that a merge refuses a part made
    from a file that changed since, and a local rerun redoes it.
    """

    name = "memsinks sink keys"
    type = "🔑 - ANNOTATE"

    def __init__(self, shards: str | Path, key: str = "hash", *, tokenizer: str | None = None,
                 max_tokens: int | None = None, source: Any = None, chunk: int = CHUNK,
                 reader: SourceReader | None = None, **minhash: Any):
        super().__init__()
        self.shards, self.key, self.tokenizer, self.reader = str(shards), key, tokenizer, reader
        self.max_tokens, self.source, self.chunk, self.minhash = max_tokens, source, chunk, minhash
        parsed = parse_key(key, "key", kinds=("hash", "minhash", "field"))
        self.field = parsed.argument if parsed.kind == "field" else None
        parse_annotation_key(key, **minhash)  # fails here, not in every task

    def run(self, data: DocumentsPipeline = None, rank: int = 0,
            world_size: int = 1) -> DocumentsPipeline:
        inputs = (file_stats(self.reader.task_files(rank, world_size)) if self.reader
                  else None)
        writer = ShardWriter(self.shards, rank, world_size, self.key, tokenizer=self.tokenizer,
                             max_tokens=self.max_tokens, source=self.source, chunk=self.chunk,
                             inputs=inputs, **self.minhash)
        for document in data or ():
            value = document.metadata.get(self.field) if self.field else None
            if writer.add(document.text, value):
                self.stat_update("keyed")
            yield document
        writer.close()


def annotation_pipeline(source: str, key: str, shards: str | Path, *,
                        tokenizer: str | None = None, max_tokens: int | None = None,
                        chunk: int = CHUNK, **minhash: Any) -> list[PipelineStep]:
    """The steps that annotate ``source`` into ``shards``, for any datatrove executor: run
    them with at most one task per file of the source."""
    parsed = parse_key(key, "key", kinds=("hash", "minhash", "field"))
    reader = SourceReader(source, (parsed.argument,) if parsed.kind == "field" else ())
    return [reader, SinkKeys(shards, key, tokenizer=tokenizer, max_tokens=max_tokens,
                             source=reader.identity, chunk=chunk, reader=reader, **minhash)]


def annotate_local(source: str, key: str, out_dir: str | Path, *, workers: int = 2,
                   tasks: int | None = None, shards: str | Path | None = None,
                   memory_limit: str = "1GB", threads: int | None = None,
                   duckdb_settings: dict[str, Any] | None = None, tokenizer: str | None = None,
                   max_tokens: int | None = None, chunk: int = CHUNK, progress: bool = True,
                   keep_shards: bool = False, **minhash: Any) -> Path:
    """``memsinks annotate`` on datatrove's local executor: ``tasks`` (default: one per file
    of the source) run on ``workers`` processes, each writing its part to ``shards`` (default
    ``OUT/.shards``), then the parts are merged into ``OUT/annotations.parquet``. A rerun after
    a crash runs only the unfinished tasks. Returns the table's path."""
    out = Path(out_dir).expanduser()
    shards = Path(shards).expanduser() if shards else out / ".shards"
    pipeline = annotation_pipeline(source, key, shards, tokenizer=tokenizer,
                                   max_tokens=max_tokens, chunk=chunk, **minhash)
    n_files = len(pipeline[0].files)
    tasks = n_files if tasks is None else tasks
    if not 1 <= tasks <= n_files or workers < 1:
        raise ValueError(f"tasks = {tasks} and workers = {workers}: each task reads whole files, "
                         f"so tasks must be 1 to {n_files} (the source's files) and workers at "
                         "least 1")
    _forget_stale_parts(shards, tasks, pipeline[1])
    executor = LocalPipelineExecutor(pipeline, tasks=tasks, workers=min(workers, tasks),
                                     logging_dir=str(shards / LOGS))
    executor.run()
    table = merge_shards(shards, out, memory_limit=memory_limit, threads=threads,
                         duckdb_settings=duckdb_settings, progress=progress)
    if not keep_shards:
        shutil.rmtree(shards)
    return table


def _forget_stale_parts(shards: Path, tasks: int, keys: SinkKeys) -> None:
    """Tasks whose part is gone, unfinished, or made by another job or from files that changed
    since are run again: their part, marker and completion mark are removed."""
    tokenizer = (load_tokenizer(keys.tokenizer) if isinstance(keys.tokenizer, str)
                 else keys.tokenizer)
    identity = shard_identity(keys.key, tokenizer, keys.max_tokens, keys.source, **keys.minhash)
    for rank in range(tasks):
        if stale(shards, rank, tasks, identity):
            for path in (shards / PARTS / f"{rank:06d}.done",
                         shards / PARTS / f"{rank:06d}.parquet",
                         shards / LOGS / "completions" / f"{rank:05d}"):
                path.unlink(missing_ok=True)
