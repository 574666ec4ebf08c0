"""How alike perturbed copies of a repeated document are, against unrelated documents.

    python benchmarks/perturb_similarity.py [--perturb 0.05 0.15] [--shingle 2 3 5]

For the default study's stream with ``data.perturb = p``: the exact Jaccard similarity of the
token-shingle sets of copies of the same R document (its first occurrence against the next
three, for the first 10 documents), and of pairs of unrelated general stories. This is what
a MinHash threshold has to separate (``data.sink_key=minhash?shingle=..&threshold=..``).
"""

from __future__ import annotations

import argparse

import numpy as np

from memsinks import config as config_io
from memsinks.config import mixture_of
from memsinks.data.near_duplicates import token_shingles


def jaccard(a: np.ndarray, b: np.ndarray, size: int) -> float:
    left, right = set(token_shingles(a, size).tolist()), set(token_shingles(b, size).tolist())
    return len(left & right) / len(left | right)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--perturb", type=float, nargs="+", default=[0.05, 0.15])
    parser.add_argument("--shingle", type=int, nargs="+", default=[2, 3, 5])
    parser.add_argument("--config", default="configs/default.yaml")
    args = parser.parse_args()
    print(f"{'p':>5} {'shingle':>7} {'copies: mean':>13} {'min':>6} {'max':>6} "
          f"{'unrelated: max':>15} {'p99':>6}")
    for p in args.perturb:
        mixture = mixture_of(config_io.load(args.config, [f"data.perturb={p}"]))
        stream, seen = mixture.stream(False), mixture.occurrences(False)
        domains = mixture.data.general_domains
        story = domains.index(mixture.data.repeated_domain) if mixture.data.repeated_domain \
            in domains else 0
        # general document i is from domains[i % len(domains)]: take the repeated domain's
        unrelated = [mixture.general(i) for i in range(story, 200 * len(domains), len(domains))]
        for size in args.shingle:
            copies = []
            for index in range(10):
                where = np.flatnonzero(stream == -(index + 1))[:4]
                rows = [mixture.row_tokens(-(index + 1), seen[w]) for w in where]
                copies += [jaccard(rows[0], row, size) for row in rows[1:]]
            others = [jaccard(unrelated[i], unrelated[i + 1], size) for i in range(100)]
            print(f"{p:>5} {size:>7} {np.mean(copies):>13.3f} {np.min(copies):>6.3f} "
                  f"{np.max(copies):>6.3f} {np.max(others):>15.3f} "
                  f"{np.quantile(others, 0.99):>6.3f}")


if __name__ == "__main__":
    main()
