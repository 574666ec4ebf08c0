"""Near-duplicate clusters of a corpus, out of core in DuckDB: band buckets, candidate pairs
checked against the threshold, and connected components by label propagation (the union-find
of docs/annotation.md), each step one statement over parquet files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..near_duplicates import MinHashParams


def sql_path(path: Path) -> str:
    """``path`` inside a quoted SQL string."""
    return str(path).replace("'", "''")


def cluster(con: Any, parts: str, work: Path, params: MinHashParams) -> dict[str, int]:
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
                    TO '{sql_path(pairs)}' (FORMAT parquet)""")
    candidates, kept = _verify(pairs, edges, params)
    con.execute(f"CREATE TABLE edges AS SELECT u, v FROM read_parquet('{sql_path(edges)}')")
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


def _sig_matrix(column: Any, num_perm: int) -> np.ndarray:
    import pyarrow as pa

    fixed = column.cast(pa.binary(4 * num_perm))
    if isinstance(fixed, pa.ChunkedArray):
        fixed = fixed.combine_chunks()
    data = np.frombuffer(fixed.buffers()[1], dtype="<u4")
    start = fixed.offset * num_perm
    return data[start:start + len(fixed) * num_perm].reshape(len(fixed), num_perm)
