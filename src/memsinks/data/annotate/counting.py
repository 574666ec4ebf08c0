"""Counting a corpus's sink keys with DuckDB over the annotation's parts, under a memory limit,
spilling to disk what does not fit; then the table, in position order."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

from ..keys import TABLE, SinkKey
from ..near_duplicates import MinHashParams
from .clusters import cluster, sql_path
from .parts import part_keys, rewrite

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*", re.IGNORECASE)


def memory_limit_text(limit: str) -> str:
    """``limit`` checked as a size DuckDB understands (``512MB``, ``4GB``, ``1.5GiB``)."""
    match = _SIZE.fullmatch(str(limit))
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"memory limit {limit!r} is not a size; write a number and a unit, "
                         "such as 512MB or 4GB")
    return f"{match.group(1)}{match.group(2)}"


def write_table(work: Path, out: Path, key: SinkKey, params: MinHashParams | None, limit: str,
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
        con.execute(f"SET temp_directory = '{sql_path(work / 'tmp')}'")
        con.execute("SET preserve_insertion_order = false")  # ORDER BY still orders the table
        con.execute(f"SET enable_progress_bar = {str(progress).lower()}")
        if threads is not None:
            con.execute(f"SET threads = {int(threads)}")
        for name, value in settings.items():
            con.execute(f"SET {name} = ?", [value])
        parts = f"read_parquet('{sql_path(work / 'parts')}/*.parquet')"
        stage(progress, f"counting keys with DuckDB (memory limit {limit})")
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
            stage(progress, "clustering: candidate pairs by band, checked against the threshold")
            counts.update(cluster(con, parts, work, params))
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
        con.execute(f"COPY ({query}) TO '{sql_path(sorted_path)}' (FORMAT parquet)")
        row = con.execute(f"""
            SELECT count(*), count(*) FILTER (WHERE sink_id <> 0),
                   count(DISTINCT sink_id) FILTER (WHERE sink_id <> 0),
                   count(*) FILTER (WHERE repeated),
                   count(DISTINCT sink_id) FILTER (WHERE repeated), coalesce(max(count), 0)
            FROM read_parquet('{sql_path(sorted_path)}')""").fetchone()
    except duckdb.OutOfMemoryException as error:
        raise ValueError(f"DuckDB ran out of memory under memory limit {limit} (threads = "
                         f"{threads or 'all'}): raise --memory-limit, lower --threads, or free "
                         "disk for its temporary files") from error
    finally:
        con.close()
    names = ("documents", "keyed_documents", "sinks", "repeated_documents", "repeated_sinks",
             "largest_group")
    counts = {**dict(zip(names, map(int, row), strict=True)), **counts}
    stage(progress, f"writing {out / TABLE}")
    keys = part_keys(work / "parts") if key.kind == "field" else None
    rewrite(sorted_path, out / TABLE, counts["documents"], keys)
    return counts


def stage(progress: bool, message: str) -> None:
    """A line on stderr that says what the annotation is doing."""
    if progress:
        print(f"memsinks annotate: {message}", file=sys.stderr, flush=True)
