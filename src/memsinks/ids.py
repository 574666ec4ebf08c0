"""Document IDs: 63-bit hashes of token ids, never 0 (0 means "no sinks"). Apart from
``sinks`` so that data pipelines (annotation workers) hash without importing torch."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


def document_id(token_ids: Sequence[int] | np.ndarray) -> int:
    """A 63-bit ID from a hash of the token ids: equal documents share it, and it is never 0."""
    return hash63(np.asarray(token_ids, dtype="<i8").tobytes())


def hash63(data: bytes) -> int:
    """A 63-bit BLAKE2b hash of ``data`` that is never 0 (0 means "no sinks")."""
    value = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1
    return value or 1
