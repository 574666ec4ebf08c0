"""The annotation's parquet files: a part per chunk of documents (hash, sink ID, key, and for
minhash the signature and band hashes), and the final table, re-encoded with fixed row groups
and settings so that the same source gives the same bytes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ...files import atomic_write, replacing
from ..keys import SinkKey, key_id, key_text
from ..near_duplicates import MinHashParams, band_hashes, signatures
from .documents import Chunk

ROW_GROUP = 1 << 17  # rows per row group of the table: fixed, so the bytes are reproducible
COLUMNS = ("position", "hash", "key", "sink_id", "count", "first_position", "repeated")


def write_part(parts: Path, index: int, start: int, batch: Chunk, key: SinkKey,
               params: MinHashParams | None) -> dict[str, Any]:
    """Part ``index``: the chunk's rows, written durably; then its marker, which says done."""
    import pyarrow.parquet as pq

    table, keyed = part_table(start, batch, key, params)
    # a file object: pyarrow would read a ':' in a path as a URI
    with (replacing(parts / f"{index:06d}.parquet", durable=True) as tmp,
          open(tmp, "wb") as f):
        pq.write_table(table, f, compression="zstd")
    marker = {"documents": table.num_rows, "keyed": keyed}
    atomic_write(parts / f"{index:06d}.done", json.dumps(marker, indent=1) + "\n", durable=True)
    return marker


def part_table(start: int, batch: Chunk, key: SinkKey,
               params: MinHashParams | None) -> tuple[Any, int]:
    """A chunk's rows of a part file, positions from ``start``, and how many have a key."""
    import pyarrow as pa

    n = len(batch.hashes)
    columns: dict[str, Any] = {"position": np.arange(start, start + n, dtype=np.int64),
                               "hash": batch.hashes}
    if key.kind == "field":
        assert batch.values is not None
        texts = [key_text(v) for v in batch.values]
        columns["sink"] = np.array([0 if t is None else key_id(key.argument, t)
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
    return pa.table(columns), keyed


def part_keys(parts: Path) -> Iterator[Any]:
    """The parts' key columns, in position order."""
    import pyarrow.parquet as pq

    index = 0
    while (path := parts / f"{index:06d}.parquet").is_file():
        with open(path, "rb") as f:
            yield pq.read_table(f, columns=["key"]).column("key").combine_chunks()
        index += 1


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema([pa.field("position", pa.int64(), nullable=False),
                      pa.field("hash", pa.int64(), nullable=False),
                      pa.field("key", pa.string()),
                      pa.field("sink_id", pa.int64(), nullable=False),
                      pa.field("count", pa.int64(), nullable=False),
                      pa.field("first_position", pa.int64()),
                      pa.field("repeated", pa.bool_(), nullable=False)])


def rewrite(source: Path, target: Path, total: int, keys: Iterator[Any] | None) -> None:
    """DuckDB's sorted output, with its key column, re-encoded with fixed row groups and
    settings, and renamed into place. ``keys``: field values in position order (None: the key
    is the sink ID in decimal)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    schema = _schema()
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

    with replacing(target, durable=True) as tmp:
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
