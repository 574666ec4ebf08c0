"""MinHash libraries for ``memsinks annotate --key minhash``: rensa against datasketch.

    python benchmarks/minhash.py [--docs 20000] [--threshold 0.8]
    python benchmarks/minhash.py --smoke      # a few seconds

A planted corpus: base documents of 100-300 words drawn from a Zipf vocabulary, and for a third
of them 1-4 copies with a share of their words replaced (0.5% to 8%, at least one word) or a
short header added. Both libraries get the same word shingles and the same banding and
threshold as the annotation (memsinks.data.annotate), so they differ only in how a signature is
drawn. For each: signatures per second (the shingles are made beforehand, the same for both),
the mean absolute error of the estimated Jaccard on the planted pairs, and pair precision and
recall at the threshold, where a true pair is one whose exact shingle Jaccard is at least the
threshold. Last, the whole annotation (rensa, DuckDB) on the corpus written as JSON lines,
scored on pairs in the same cluster against the components of the true pairs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from memsinks.data.annotate import annotate
from memsinks.data.near_duplicates import MinHashParams, band_hashes, word_shingles


def planted(docs: int, seed: int = 0) -> tuple[list[str], list[int]]:
    """``docs`` texts and each one's family (copies share their original's family)."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(20000)])
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** 1.1
    weights /= weights.sum()
    texts: list[str] = []
    family: list[int] = []
    base = 0
    while len(texts) < docs:
        words = rng.choice(vocab, size=int(rng.integers(100, 301)), p=weights)
        texts.append(" ".join(words))
        family.append(base)
        if rng.random() < 1 / 3:
            for _ in range(int(rng.integers(1, 5))):
                copy = words.copy()
                if rng.random() < 0.2:  # reposted with a header
                    copy = np.concatenate([rng.choice(vocab, size=10, p=weights), copy])
                else:
                    share = rng.choice([0.005, 0.01, 0.02, 0.04, 0.08])
                    spots = rng.choice(len(copy), size=max(1, int(share * len(copy))),
                                       replace=False)
                    copy[spots] = rng.choice(vocab, size=len(spots), p=weights)
                texts.append(" ".join(copy))
                family.append(base)
        base += 1
    order = rng.permutation(docs)  # copies spread over the stream, not next to their original
    return [texts[i] for i in order], [family[i] for i in order]


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b)


def sign_rensa(shingles: list[list[str]], params: MinHashParams) -> np.ndarray:
    import rensa

    matrix = rensa.RMinHash.digest_matrix_from_token_sets(shingles, params.num_perm, params.seed)
    return np.array(matrix.to_rows(), dtype=np.uint32)


def sign_datasketch(shingles: list[list[str]], params: MinHashParams) -> np.ndarray:
    import datasketch

    encoded = [[s.encode() for s in doc] for doc in shingles]
    sketches = datasketch.MinHash.bulk(encoded, num_perm=params.num_perm, seed=params.seed)
    return np.array([m.hashvalues for m in sketches], dtype=np.uint32)


def found_pairs(sig: np.ndarray, params: MinHashParams) -> tuple[set[tuple[int, int]], int]:
    """Pairs sharing a band whose signatures agree on ``threshold`` of their values."""
    bands = band_hashes(sig, params)
    candidates: set[tuple[int, int]] = set()
    for b in range(params.bands):
        order = np.argsort(bands[:, b], kind="stable")
        values = bands[order, b]
        for group in np.split(order, np.nonzero(np.diff(values))[0] + 1):
            if len(group) > 1:
                candidates.update(itertools.combinations(sorted(group.tolist()), 2))
    need = params.threshold * params.num_perm - 1e-9
    kept = {(i, j) for i, j in candidates if (sig[i] == sig[j]).sum() >= need}
    return kept, len(candidates)


def score(found: set[tuple[int, int]], truth: set[tuple[int, int]]) -> tuple[float, float]:
    hits = len(found & truth)
    return hits / max(1, len(found)), hits / max(1, len(truth))


def components(pairs: set[tuple[int, int]], n: int) -> set[tuple[int, int]]:
    """Every pair in the same connected component of ``pairs``."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        parent[max(root(i), root(j))] = min(root(i), root(j))
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return {p for g in groups.values() for p in itertools.combinations(g, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--threshold", type=float, default=MinHashParams().threshold)
    parser.add_argument("--smoke", action="store_true", help="1500 documents, a few seconds")
    args = parser.parse_args(argv)
    docs = 1500 if args.smoke else args.docs
    params = MinHashParams(threshold=args.threshold)
    texts, family = planted(docs)
    start = time.perf_counter()
    shingles = [word_shingles(t, params.shingle) for t in texts]
    shingle_s = time.perf_counter() - start
    sets = [set(s) for s in shingles]
    members: dict[int, list[int]] = {}
    for i, f in enumerate(family):
        members.setdefault(f, []).append(i)
    planted_pairs = [p for g in members.values() for p in itertools.combinations(g, 2)]
    exact = {p: jaccard(sets[p[0]], sets[p[1]]) for p in planted_pairs}
    truth = {p for p, j in exact.items() if j >= params.threshold}
    print(f"{docs} documents, {len(planted_pairs)} planted pairs, {len(truth)} at Jaccard >= "
          f"{params.threshold}; shingles (5 words): {docs / shingle_s:,.0f} docs/s; "
          f"num_perm {params.num_perm}, bands {params.bands}, rows {params.rows}")
    print(f"{'library':<22} {'signatures/s':>13} {'Jaccard MAE':>12} {'candidates':>11} "
          f"{'precision':>10} {'recall':>8}")
    for name, sign in (("rensa 0.5", sign_rensa), ("datasketch 2", sign_datasketch)):
        try:
            start = time.perf_counter()
            sig = sign(shingles, params)
            rate = docs / (time.perf_counter() - start)
        except ImportError:
            print(f"{name:<22} not installed (pip install {name.split()[0]})")
            continue
        estimate = {p: float((sig[p[0]] == sig[p[1]]).mean()) for p in planted_pairs}
        mae = float(np.mean([abs(estimate[p] - exact[p]) for p in planted_pairs]))
        found, candidates = found_pairs(sig, params)
        # a found pair across families is a false positive unless it truly is similar
        truth_here = truth | {p for p in found - truth
                              if jaccard(sets[p[0]], sets[p[1]]) >= params.threshold}
        precision, recall = score(found, truth_here)
        print(f"{name:<22} {rate:>13,.0f} {mae:>12.4f} {candidates:>11} {precision:>10.3f} "
              f"{recall:>8.3f}")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "planted.jsonl"
        source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        start = time.perf_counter()
        table = annotate(str(source), "minhash", Path(tmp) / "out", threshold=params.threshold,
                         progress=False, memory_limit="256MB")
        seconds = time.perf_counter() - start
        import pyarrow.parquet as pq

        roots = pq.read_table(table, columns=["first_position"]).column(0).to_pylist()
    clusters: dict[int, list[int]] = {}
    for i, r in enumerate(roots):
        clusters.setdefault(r, []).append(i)
    same = {p for g in clusters.values() for p in itertools.combinations(g, 2)}
    precision, recall = score(same, components(truth, docs))
    print(f"{'annotate (rensa+DuckDB)':<22} {docs / seconds:>13,.0f} {'':>12} {'':>11} "
          f"{precision:>10.3f} {recall:>8.3f}   (whole pipeline, docs/s; cluster pairs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
