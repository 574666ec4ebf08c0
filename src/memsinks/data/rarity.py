"""Which tokens of a document only that document teaches: n-gram document frequency.

A token is *rare* when the n-gram that ends at it (the token and up to n - 1 tokens before it,
within its document) occurs in fewer than ``min_docs`` distinct documents of the training
stream. Every other token is *common*: at least ``min_docs`` documents teach the same
continuation of the same context, so predicting it is knowledge of the domain rather than of
one document. ``sinks.tokens = rare`` switches a document's sinks on only where the next
token is rare (see :mod:`memsinks.sinks` and docs/results.md section 8).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constants: a polynomial hash mod 2^64
_LENGTH = np.uint64(0xC2B2AE3D27D4EB4F)


def ngram_hashes(tokens: np.ndarray, n: int) -> np.ndarray:
    """uint64 hash of the n-gram ending at every position (shorter at the document's start).

    Windows of different lengths hash apart (the length enters the hash), so a document's
    first token and an interior unigram never collide by construction.
    """
    if n < 1:
        raise ValueError(f"an n-gram needs n >= 1, got {n}")
    t = np.asarray(tokens, dtype=np.int64).astype(np.uint64) + np.uint64(1)
    out = np.zeros(len(t), dtype=np.uint64)
    width = np.zeros(len(t), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for back in range(n):  # out[i] = sum_j t[i-j] * MULT^(j+1), j < min(n, i+1)
            if back >= len(t):
                break
            out[back:] = (out[back:] + t[: len(t) - back]) * _MULT
            width[back:] += np.uint64(1)
        return out ^ (width * _LENGTH)


def document_frequency(documents: Iterable[np.ndarray], n: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct n-gram hashes, how many of the documents contain each)."""
    per_doc = [np.unique(ngram_hashes(d, n)) for d in documents]
    if not per_doc:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    keys, counts = np.unique(np.concatenate(per_doc), return_counts=True)
    return keys, counts


class NgramIndex:
    """Document frequency of every n-gram over a population of documents."""

    def __init__(self, documents: Iterable[np.ndarray], n: int = 3):
        self.n = n
        self.keys, self.counts = document_frequency(documents, n)

    def frequency(self, tokens: np.ndarray) -> np.ndarray:
        """Per token: how many documents of the population hold the n-gram ending at it."""
        hashes = ngram_hashes(tokens, self.n)
        if not len(self.keys):
            return np.zeros(len(hashes), dtype=np.int64)
        at = np.minimum(np.searchsorted(self.keys, hashes), len(self.keys) - 1)
        return np.where(self.keys[at] == hashes, self.counts[at], 0)

    def rare(self, tokens: np.ndarray, min_docs: int = 2) -> np.ndarray:
        """Per token: True where fewer than ``min_docs`` documents hold its n-gram."""
        if min_docs < 2:
            raise ValueError(f"sinks.rare_docs = {min_docs} would call nothing rare; a token is "
                             "rare when fewer than rare_docs documents hold its n-gram, so use 2 "
                             "or more")
        return self.frequency(tokens) < min_docs
