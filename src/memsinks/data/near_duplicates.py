"""Near-duplicate clusters by MinHash with LSH: signatures, band buckets, clusters.

The algorithm (shingles, signatures, bands, the threshold check, components, the earliest
document as representative) is documented in docs/annotation.md; :mod:`memsinks.data.annotate`
runs it out of core over a corpus, and :func:`minhash_clusters` runs the same in memory over a
training stream. Signatures come from rensa (``RMinHash``); ``benchmarks/minhash.py`` says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class MinHashParams:
    """Near-duplicate parameters of ``--key minhash`` (see the module docstring)."""

    shingle: int = 5
    num_perm: int = 128
    bands: int = 16
    threshold: float = 0.8
    seed: int = 0

    @property
    def rows(self) -> int:
        return self.num_perm // self.bands

    def check(self) -> None:
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold = {self.threshold} must lie strictly between 0 and 1; "
                             "the default is 0.8")
        if self.shingle < 1:
            raise ValueError(f"shingle = {self.shingle} must be at least 1 word (or token)")
        if self.num_perm < 1 or self.bands < 1 or self.num_perm % self.bands:
            raise ValueError(f"bands = {self.bands} must divide num_perm = {self.num_perm} "
                             "(rows = num_perm / bands), such as num_perm 128 with bands 16")


def word_shingles(text: str, size: int) -> list[str]:
    """Runs of ``size`` words of the lower-cased text (one run of all words if fewer)."""
    words = _WORD.findall(text.lower())
    if not words:  # punctuation only: the text itself is the one shingle
        return [text]
    if len(words) <= size:
        return [" ".join(words)]
    return [" ".join(words[i:i + size]) for i in range(len(words) - size + 1)]


def _mix(x: np.ndarray) -> np.ndarray:
    # splitmix64's finaliser: a bijection on uint64 that spreads every input bit
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def token_shingles(ids: np.ndarray, size: int) -> np.ndarray:
    """uint64 hashes of the runs of ``size`` token ids (one run of all ids if fewer)."""
    ids = np.asarray(ids).astype(np.uint64)
    windows = (ids[None, :] if len(ids) < size
               else np.lib.stride_tricks.sliding_window_view(ids, size))
    h = np.full(len(windows), 0x9E3779B97F4A7C15, dtype=np.uint64)
    for j in range(windows.shape[1]):
        h = _mix(h ^ windows[:, j])
    return h


def signatures(params: MinHashParams, *, texts: list[str] | None = None,
               tokens: list[np.ndarray] | None = None) -> np.ndarray:
    """MinHash signatures (documents x num_perm, uint32) of texts or of token id arrays."""
    try:
        import rensa
    except ImportError:
        raise ImportError("minhash keys need the rensa package; pip install "
                          "'memsinks[annotate]'") from None
    if texts is not None:
        sets = [word_shingles(t, params.shingle) for t in texts]
        matrix = rensa.RMinHash.digest_matrix_from_token_sets(sets, params.num_perm, params.seed)
    else:
        if tokens is None:
            raise ValueError("signatures needs texts or tokens")
        hashed = [token_shingles(t, params.shingle) if len(t) else np.zeros(0, np.uint64)
                  for t in tokens]
        offsets = np.zeros(len(hashed) + 1, dtype=np.uint64)
        np.cumsum([len(h) for h in hashed], out=offsets[1:])
        flat = np.concatenate(hashed) if hashed else np.zeros(0, np.uint64)
        matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
            flat, offsets, params.num_perm, params.seed)
    return np.array(matrix.to_rows(), dtype=np.uint32).reshape(-1, params.num_perm)


def band_hashes(sig: np.ndarray, params: MinHashParams) -> np.ndarray:
    """One int64 hash per band of each signature (documents x bands)."""
    x = sig.reshape(len(sig), params.bands, params.rows).astype(np.uint64)
    h = _mix(np.arange(1, params.bands + 1, dtype=np.uint64))[None, :].repeat(len(sig), 0)
    for j in range(params.rows):
        h = _mix(h ^ x[:, :, j])
    return h.view(np.int64)


def minhash_clusters(docs: list[np.ndarray], params: MinHashParams | None = None,
                     **overrides: Any) -> np.ndarray:
    """In memory, for a training stream: each token document's cluster representative (the
    index of the cluster's earliest document; its own index when it has no near-duplicate).

    The same signatures, buckets, verification and components as ``annotate`` with
    ``--key minhash`` on a token store of these documents, so both give the same clusters.
    """
    params = params or MinHashParams(**overrides)
    params.check()
    n = len(docs)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    sig = signatures(params, tokens=list(docs))
    bands = band_hashes(sig, params)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    empty = np.array([len(d) == 0 for d in docs])  # no tokens, no shingles: never clustered
    for band in range(params.bands):
        # each document against the earliest document of its bucket (np.unique's first index)
        _, first, inverse = np.unique(bands[:, band], return_index=True, return_inverse=True)
        root = first[inverse.ravel()]
        pairs = np.flatnonzero((root < np.arange(n)) & ~empty & ~empty[root])
        if not len(pairs):
            continue
        agree = (sig[pairs] == sig[root[pairs]]).sum(axis=1)
        for u in pairs[agree >= params.threshold * params.num_perm - 1e-9]:  # as annotate checks
            a, b = find(int(u)), find(int(root[u]))
            if a != b:
                parent[max(a, b)] = min(a, b)  # the smaller index stays the root
    return np.array([find(i) for i in range(n)], dtype=np.int64)
