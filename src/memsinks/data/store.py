"""Token stores: a text source tokenized once into flat files, any document read in O(1).

A store lives in ``<cache>/stores/<key>/``; the cache is ``$MEMSINKS_CACHE`` (default
``~/.cache/memsinks``) and the key a hash of the source spec, the size and modification time of
each of its local files, the tokenizer fingerprint, the cut settings and the fields, so a changed
file or setting gets a store of its own. Document ``i`` of a store is the ``i``-th non-empty
document of its source, in :func:`memsinks.data.sources.read_documents` order.

On-disk format, version 1 (every number little-endian):

- ``tokens.bin``: the kept token ids of every document, concatenated, no header: ``uint16``
  when every id of the tokenizer fits, else ``uint32`` (``dtype`` in meta.json). A document
  keeps its first ``max_tokens`` ids, cut exactly as ``TextTokenizer.encode_batch`` cuts; a
  document with fewer than ``min_tokens`` ids keeps its slot but no ids.
- ``offsets.npy``: numpy ``.npy``, int64, ``n_docs + 1`` entries from 0: document ``i`` is
  ``tokens[offsets[i]:offsets[i + 1]]``.
- ``hashes.npy``: numpy ``.npy``, int64, ``n_docs`` entries: ``memsinks.sinks.document_id`` of
  each document's kept ids, 0 for a document without ids (no document ID is 0).
- ``fields.jsonl`` (only when built with ``fields``): line ``i`` is a JSON object with those
  fields of document ``i``'s record (null where the record lacks one).
- ``meta.json``: ``format`` (1), ``source`` (the spec), ``files`` ([path, size, mtime_ns] per
  local file), ``tokenizer`` (its fingerprint), ``max_tokens`` (null: no cut), ``min_tokens``,
  ``fields``, ``dtype``, ``n_docs``, ``n_tokens``, ``fields_bytes`` and ``complete``.
- ``lock``: ``fcntl.flock``-ed by the process that builds or extends the store; holds its pid.

meta.json is the commit record: its counts say how much of each file is committed. A build
appends a chunk of documents to the data files, rewrites the ``.npy`` headers in place (numpy
pads them, so their length never changes), fsyncs the files, and only then replaces meta.json
atomically. Bytes past the committed counts, left by an interrupted build, are never read; the
next build cuts them off and resumes after the last committed document. ``complete`` is true
once the whole source is stored; until then (a build under way, interrupted, or stopped at a
document ``limit``) the committed documents are readable, and a build asking for more continues
from them.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.lib import format as npy
from tqdm import tqdm

from ..files import atomic_write
from ..ids import document_id
from ..locking import exclusive
from .sources import TextTokenizer, read_records, source_files

FORMAT = 1
_INT64 = np.dtype("<i8")


def cache_root() -> Path:
    """``$MEMSINKS_CACHE``, default ``~/.cache/memsinks`` (shared with the tokenizer cache)."""
    return Path(os.environ.get("MEMSINKS_CACHE", "~/.cache/memsinks")).expanduser()


@dataclass
class StoreBuilder:
    """One source's token store: where it lives and how it is tokenized; :meth:`build` makes it."""

    source: str
    tokenizer: TextTokenizer
    max_tokens: int | None = None
    min_tokens: int = 0
    fields: tuple[str, ...] = ()
    cache_dir: str | Path | None = None  # None: cache_root()
    chunk: int = 256  # documents per encode_batch call
    commit_every: int = 8192  # documents between commits: what an interruption can lose
    progress: bool = True

    def __post_init__(self) -> None:
        self.fields = tuple(self.fields)
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"StoreBuilder.max_tokens = {self.max_tokens} must be at least 1, "
                             "or None for no cut")
        for name in ("chunk", "commit_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"StoreBuilder.{name} = {getattr(self, name)} must be at least 1")
        if self.min_tokens < 0:
            raise ValueError(f"StoreBuilder.min_tokens = {self.min_tokens} must not be negative")

    @cached_property
    def identity(self) -> dict[str, Any]:
        """What the store's contents depend on; its hash is the directory name."""
        files = [[str(p.resolve()), s.st_size, s.st_mtime_ns]
                 for p in source_files(self.source) for s in [p.stat()]]
        return {"format": FORMAT, "source": self.source, "files": files,
                "tokenizer": self.tokenizer.fingerprint, "max_tokens": self.max_tokens,
                "min_tokens": self.min_tokens, "fields": list(self.fields)}

    @cached_property
    def path(self) -> Path:
        key = hashlib.sha256(json.dumps(self.identity, sort_keys=True).encode()).hexdigest()
        root = Path(self.cache_dir).expanduser() if self.cache_dir is not None else cache_root()
        return root / "stores" / key[:24]

    def open(self) -> TokenStore | None:
        """The documents committed so far, or None when there are none yet."""
        if not (self.path / "meta.json").is_file():
            return None
        return TokenStore(self.path, self.tokenizer)

    def build(self, limit: int | None = None) -> TokenStore:
        """The store holding at least the first ``limit`` documents (all when None or fewer).

        Only documents not yet committed are read and tokenized; another process building the
        same store is waited for.
        """
        if limit is not None and limit < 0:
            raise ValueError(f"StoreBuilder.build(limit={limit}): the limit must not be negative")
        store = self.open()
        if store is not None and store.covers(limit):
            return store
        self.path.mkdir(parents=True, exist_ok=True)
        with exclusive(self.path / "lock", f"the token store {self.path}", wait=True):
            store = self.open()  # another process may have built it while this one waited
            if store is None or not store.covers(limit):
                self._append(store.meta if store is not None else None, limit)
        return TokenStore(self.path, self.tokenizer)

    def _append(self, meta: dict[str, Any] | None, limit: int | None) -> None:
        if meta is None:
            wide = self.tokenizer.vocab_size > 1 << 16
            meta = {**self.identity, "dtype": "uint32" if wide else "uint16", "n_docs": 0,
                    "n_tokens": 0, "fields_bytes": 0, "complete": False}
        done = meta["n_docs"]
        want = None if limit is None else limit - done
        records = read_records(self.source, self.fields, limit=want, skip=done)
        read = 0
        with (_Writer(self.path, meta) as writer,
              tqdm(total=limit, initial=done, unit="doc", desc=f"tokenizing {self.source}",
                   leave=False, dynamic_ncols=True, mininterval=1.0, delay=2.0,
                   disable=not self.progress) as bar):
            pending = _Pending()
            while chunk := list(itertools.islice(records, self.chunk)):
                ids = self.tokenizer.encode_batch([text for text, _ in chunk],
                                                  max_tokens=self.max_tokens)
                pending.add(ids, [extras for _, extras in chunk], self.min_tokens)
                read += len(chunk)
                bar.update(len(chunk))
                if len(pending.ids) >= self.commit_every:
                    writer.commit(pending, complete=False)
                    pending = _Pending()
            writer.commit(pending, complete=want is None or read < want)


@dataclass
class _Pending:
    """Documents tokenized since the last commit."""

    ids: list[np.ndarray] = field(default_factory=list)
    hashes: list[int] = field(default_factory=list)
    extras: list[tuple[Any, ...]] = field(default_factory=list)

    def add(self, ids: list[np.ndarray], extras: list[tuple[Any, ...]], min_tokens: int) -> None:
        for tokens in ids:
            kept = len(tokens) >= min_tokens
            self.ids.append(tokens if kept else tokens[:0])
            self.hashes.append(document_id(tokens) if kept else 0)
        self.extras.extend(extras)


class _Writer:
    """A store's data files opened for appending, cut back to what meta.json commits."""

    def __init__(self, path: Path, meta: dict[str, Any]):
        self.path, self.meta = path, meta
        self.dtype = np.dtype(meta["dtype"]).newbyteorder("<")
        self.files: dict[str, IO[bytes]] = {}
        names = ["tokens.bin", "offsets.npy", "hashes.npy"]
        names += ["fields.jsonl"] if meta["fields"] else []
        n = meta["n_docs"]
        if n == 0:
            for name in names:
                self.files[name] = open(path / name, "w+b")
            self.files["offsets.npy"].write(_header(1) + np.zeros(1, _INT64).tobytes())
            self.files["hashes.npy"].write(_header(0))
            return
        for name in names:
            try:
                self.files[name] = open(path / name, "r+b")
            except FileNotFoundError:
                self.close()
                raise ValueError(f"token store file {path / name} is missing; delete {path} "
                                 "and rebuild it") from None
        header = len(_header(0))
        committed = {"tokens.bin": meta["n_tokens"] * self.dtype.itemsize,
                     "offsets.npy": header + (n + 1) * _INT64.itemsize,
                     "hashes.npy": header + n * _INT64.itemsize,
                     "fields.jsonl": meta["fields_bytes"]}
        for name, handle in self.files.items():
            size = os.fstat(handle.fileno()).st_size
            if size < committed[name]:
                self.close()
                raise ValueError(f"token store file {path / name} is shorter than meta.json "
                                 f"says ({size} < {committed[name]} bytes); delete {path} and "
                                 "rebuild it")
            handle.truncate(committed[name])  # drop an interrupted build's uncommitted tail
            handle.seek(0, os.SEEK_END)

    def commit(self, pending: _Pending, complete: bool) -> None:
        """Append ``pending``, make it durable, then record it in meta.json."""
        meta, files = self.meta, self.files
        lengths = np.array([len(t) for t in pending.ids], dtype=_INT64)
        if len(lengths):
            files["tokens.bin"].write(np.concatenate(pending.ids).astype(self.dtype).tobytes())
            ends = meta["n_tokens"] + np.cumsum(lengths)
            files["offsets.npy"].write(ends.tobytes())
            files["hashes.npy"].write(np.array(pending.hashes, dtype=_INT64).tobytes())
        added = 0
        if "fields.jsonl" in files:
            lines = "".join(json.dumps(dict(zip(meta["fields"], extras, strict=True)),
                                       default=str) + "\n" for extras in pending.extras)
            added = files["fields.jsonl"].write(lines.encode())
        n = meta["n_docs"] + len(lengths)
        _write_header(files["offsets.npy"], n + 1)
        _write_header(files["hashes.npy"], n)
        for handle in files.values():
            handle.flush()
            os.fsync(handle.fileno())
        self.meta = {**meta, "n_docs": n, "n_tokens": meta["n_tokens"] + int(lengths.sum()),
                     "fields_bytes": meta["fields_bytes"] + added, "complete": complete}
        atomic_write(self.path / "meta.json", json.dumps(self.meta, indent=1), durable=True,
                     unique=True)

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TokenStore:
    """The committed documents of a token store, memory-mapped; any one read in O(1)."""

    def __init__(self, path: str | Path, tokenizer: TextTokenizer | None = None):
        """``tokenizer``: when given, it must be the one the store was built with."""
        self.path = Path(path)
        self.meta = _read_meta(self.path)
        if tokenizer is not None and self.meta["tokenizer"] != tokenizer.fingerprint:
            raise ValueError(f"token store {self.path} was built with another tokenizer than "
                             f"{tokenizer.name!r}; delete that directory to rebuild it, or pass "
                             "the tokenizer it was built with")
        n, total = self.meta["n_docs"], self.meta["n_tokens"]
        dtype = np.dtype(self.meta["dtype"]).newbyteorder("<")
        exact = self.complete  # a complete store has no uncommitted tail
        self._offsets = _map_npy(self.path / "offsets.npy", n + 1, exact)
        self._hashes = _map_npy(self.path / "hashes.npy", n, exact)
        if int(self._offsets[0]) != 0 or int(self._offsets[-1]) != total:
            raise ValueError(f"token store file {self.path / 'offsets.npy'} does not match "
                             f"meta.json ({int(self._offsets[-1])} tokens, not {total}); delete "
                             f"{self.path} and rebuild it")
        self._tokens = _map(self.path / "tokens.bin", dtype, total, 0, exact,
                            f"tokens, but offsets.npy says {total}")

    def __len__(self) -> int:
        return int(self.meta["n_docs"])

    def __repr__(self) -> str:
        return (f"TokenStore({str(self.path)!r}, {len(self)} documents, {self.n_tokens} tokens"
                f"{'' if self.complete else ', partial'})")

    @property
    def n_tokens(self) -> int:
        return int(self.meta["n_tokens"])

    @property
    def complete(self) -> bool:
        """Whether the whole source is stored (else only its first ``len(self)`` documents)."""
        return bool(self.meta["complete"])

    def covers(self, limit: int | None) -> bool:
        """Whether the store holds the first ``limit`` documents (None: all) or the whole source."""
        return self.complete or (limit is not None and len(self) >= limit)

    def tokens(self, index: int) -> np.ndarray:
        """The kept ids of document ``index``, as a new int32 array."""
        self._check(index)
        return np.array(self._tokens[self._offsets[index]:self._offsets[index + 1]], np.int32)

    def hash(self, index: int) -> int:
        """``document_id`` of document ``index``'s kept ids (0: it has none)."""
        self._check(index)
        return int(self._hashes[index])

    @property
    def hashes(self) -> np.ndarray:
        """Every document's hash (read-only int64)."""
        return np.asarray(self._hashes)

    @property
    def lengths(self) -> np.ndarray:
        """Every document's number of kept ids (int64)."""
        return np.diff(np.asarray(self._offsets))

    def fields(self, index: int) -> dict[str, Any]:
        """The record fields the store was built with, of document ``index``."""
        self._check(index)
        if not self.meta["fields"]:
            raise ValueError(f"token store {self.path} was built without fields; build it with "
                             "StoreBuilder(..., fields=(...))")
        return self._fields[index]

    @cached_property
    def _fields(self) -> list[dict[str, Any]]:
        with open(self.path / "fields.jsonl", "rb") as f:
            data = f.read(self.meta["fields_bytes"])
        return [json.loads(line) for line in data.splitlines()[:len(self)]]

    def _check(self, index: int) -> None:
        if not 0 <= index < len(self):
            raise IndexError(f"document {index} is outside token store {self.path} "
                             f"({len(self)} documents)")


# -- files ---------------------------------------------------------------------------------------
def _read_meta(path: Path) -> dict[str, Any]:
    meta_path = path / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is not a token store (it has no meta.json); build one "
                                "with StoreBuilder(source, tokenizer).build()") from None
    except json.JSONDecodeError:
        raise ValueError(f"token store file {meta_path} is not valid JSON; delete {path} and "
                         "rebuild it") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"token store {path} has format {meta.get('format')!r}, not {FORMAT}; "
                         "delete it and rebuild it with this version of memsinks")
    return meta


def _map(path: Path, dtype: np.dtype, count: int, offset: int, exact: bool,
         what: str) -> np.ndarray:
    """``count`` entries of ``path`` from byte ``offset``, memory-mapped read-only."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ValueError(f"token store file {path} is missing; delete {path.parent} and "
                         "rebuild it") from None
    held = (size - offset) // dtype.itemsize
    if held < count or (exact and size != offset + count * dtype.itemsize):
        raise ValueError(f"token store file {path} is truncated or corrupt: it holds {held} "
                         f"{what}; delete {path.parent} and rebuild it")
    if count == 0:  # mmap cannot map zero bytes
        return np.zeros(0, dtype)
    # map only the committed entries: a later build may cut an uncommitted tail off the file
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(count,))


def _map_npy(path: Path, count: int, exact: bool) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            version = npy.read_magic(f)
            read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            shape, _, dtype = read(f)
            offset = f.tell()
    except FileNotFoundError:
        raise ValueError(f"token store file {path} is missing; delete {path.parent} and "
                         "rebuild it") from None
    except ValueError:
        raise ValueError(f"token store file {path} is not a .npy file; delete {path.parent} and "
                         "rebuild it") from None
    if dtype != _INT64 or len(shape) != 1 or shape[0] < count or (exact and shape[0] != count):
        raise ValueError(f"token store file {path} holds {dtype}{list(shape)}, not the {count} "
                         f"int64 entries meta.json commits; delete {path.parent} and rebuild it")
    return _map(path, _INT64, count, offset, exact, f"entries, not {count}")


def _header(count: int) -> bytes:
    out = io.BytesIO()
    npy.write_array_header_1_0(out, {"descr": _INT64.str, "fortran_order": False,
                                     "shape": (count,)})
    return out.getvalue()


def _write_header(handle: IO[bytes], count: int) -> None:
    """Set the length in a 1-d int64 .npy header, in place; the file stays at its end."""
    header = _header(count)
    if len(header) != len(_header(0)):  # numpy pads headers for growth since 1.23
        raise RuntimeError(f"numpy {np.__version__} writes .npy headers of varying length; "
                           "upgrade numpy to 1.24 or later")
    handle.seek(0)
    handle.write(header)
    handle.seek(0, os.SEEK_END)
