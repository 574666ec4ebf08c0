"""Reading a corpus for annotation in chunks: its documents' hashes, field values and, for
minhash keys, text or token ids; a source spec (:class:`TextDocs`) or a token store
(:class:`StoreDocs`)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...ids import document_id
from ..keys import SinkKey, text_id
from ..sources import load_tokenizer, read_records, source_files
from ..store import TokenStore


@dataclass
class Chunk:
    """Consecutive documents: their hashes, field values, and text or token ids for minhash."""

    hashes: np.ndarray
    values: list[Any] | None = None
    texts: list[str] | None = None
    tokens: list[np.ndarray] | None = None


class TextDocs:
    """Documents of a source spec, in ``read_records`` order."""

    def __init__(self, spec: str, key: SinkKey, tokenizer: Any, max_tokens: int | None):
        if isinstance(tokenizer, str):
            if tokenizer.startswith("train:"):
                raise ValueError(f"tokenizer {tokenizer!r} is trained by a run; pass the "
                                 "directory it was saved to, or annotate the run's token store")
            tokenizer = load_tokenizer(tokenizer)
        if max_tokens is not None and (tokenizer is None or max_tokens < 1):
            raise ValueError(f"max_tokens = {max_tokens} needs a tokenizer and must be at least "
                             "1; pass --tokenizer, or drop --max-tokens")
        self.spec, self.key, self.tokenizer, self.max_tokens = spec, key, tokenizer, max_tokens
        self._fields = (key.argument,) if key.kind == "field" else ()
        # checks the spec now (files exist, options known, fields readable from this format)
        self._read = read_records
        read_records(spec, self._fields, limit=0)
        files = [[str(p.resolve()), s.st_size, s.st_mtime_ns]
                 for p in source_files(spec) for s in [p.stat()]]
        self.identity = {"source": spec, "files": files,
                         "hashed": "document_id of tokens" if tokenizer else "text_id of text",
                         "tokenizer": tokenizer.fingerprint if tokenizer else None,
                         "tokenizer_name": tokenizer.name if tokenizer else None,
                         "max_tokens": max_tokens}
        self.total: int | None = None

    def chunks(self, start: int, size: int) -> Iterator[Chunk]:
        records = self._read(self.spec, self._fields, skip=start)
        while batch := list(itertools.islice(records, size)):
            yield text_chunk([text for text, _ in batch],
                             [extras[0] for _, extras in batch] if self._fields else None,
                             self.key, self.tokenizer, self.max_tokens)


def text_chunk(texts: list[str], values: list[Any] | None, key: SinkKey, tokenizer: Any,
               max_tokens: int | None) -> Chunk:
    """The chunk of stripped, non-empty ``texts`` (and their field ``values``): hashed as
    token ids when a tokenizer is given, else as text; the texts kept for minhash keys."""
    if tokenizer is not None:
        ids = tokenizer.encode_batch(texts, max_tokens=max_tokens)
        hashes = [document_id(t) for t in ids]
    else:
        hashes = [text_id(t) for t in texts]
    return Chunk(np.array(hashes, dtype=np.int64), values=values,
                 texts=texts if key.kind == "minhash" else None)


class StoreDocs:
    """Documents of a token store directory, by index."""

    def __init__(self, path: Path, key: SinkKey, tokenizer: Any, max_tokens: int | None):
        if tokenizer is not None or max_tokens is not None:
            raise ValueError(f"{str(path)!r} is a token store, tokenized and cut when it was "
                             "built; drop --tokenizer and --max-tokens")
        self.store, self.key, self.path = TokenStore(path), key, path
        meta = self.store.meta
        if len(self.store) == 0:
            raise ValueError(f"token store {str(path)!r} holds no documents; build it first")
        if key.kind == "field" and key.argument not in meta["fields"]:
            raise ValueError(f"token store {str(path)!r} was built without field "
                             f"{key.argument!r} (it has {meta['fields'] or 'none'}); build it with "
                             f"fields=({key.argument!r},) or annotate its source instead")
        self.identity = {"store": str(path.resolve()), "source": meta["source"],
                         "files": meta["files"], "hashed": "document_id of tokens",
                         "tokenizer": meta["tokenizer"], "max_tokens": meta["max_tokens"],
                         "min_tokens": meta["min_tokens"], "n_docs": meta["n_docs"],
                         "complete": meta["complete"]}
        self.total = len(self.store)

    def chunks(self, start: int, size: int) -> Iterator[Chunk]:
        store, n = self.store, len(self.store)
        values = self._values(start) if self.key.kind == "field" else None
        for lo in range(start, n, size):
            hi = min(lo + size, n)
            some = None if values is None else list(itertools.islice(values, hi - lo))
            tokens = ([store.tokens(i) for i in range(lo, hi)] if self.key.kind == "minhash"
                      else None)
            yield Chunk(np.array(store.hashes[lo:hi], dtype=np.int64), values=some,
                         tokens=tokens)

    def _values(self, start: int) -> Iterator[Any]:
        # streamed line by line: TokenStore.fields would hold every record in memory
        with open(self.path / "fields.jsonl", "rb") as f:
            for line in itertools.islice(f, start, len(self.store)):
                yield json.loads(line).get(self.key.argument)


def is_store(source: str) -> bool:
    path = Path(source).expanduser()
    return path.is_dir() and (path / "meta.json").is_file() and (path / "hashes.npy").is_file()
