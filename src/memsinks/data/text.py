"""A two-source text corpus: R, its held-out twins H, validation V and general documents.

Read through token stores (:mod:`memsinks.data.store`), so every document is tokenized once
and then read by index in constant time.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..sinks import document_id
from .sources import TextTokenizer, read_documents
from .store import StoreBuilder, TokenStore


@dataclass
class TextSet:
    """Evaluation documents from text: token ids (no BOS/EOS), provenance, NaN log-probs.

    Field for field what :class:`memsinks.data.stream.DocSet` holds, plus the decoded ``texts``
    and each document's ``positions`` among its source's non-empty documents.
    """

    name: str
    tokens: list[np.ndarray]
    logprob: np.ndarray  # NaN: real text has no exact generator probability
    ids: np.ndarray  # document IDs from the token hash
    texts: list[str]  # the kept (possibly truncated) tokens, decoded
    positions: np.ndarray  # index among the source's non-empty documents

    def __len__(self) -> int:
        return len(self.tokens)


_BATCH = 256  # documents tokenized per call
_COMMIT_EVERY = 8192  # documents between commits of a token store build
_FORMAT_VERSION = 1  # bump when the selection rules below change


@dataclass
class TextCorpus:
    """Repeated set R, held-out twins H, validation V and general documents from two sources.

    Every document is tokenized, skipped if shorter than ``min_tokens``, and cut to its first
    ``max_tokens`` ids (use the model context minus 2, for BOS and EOS); documents are then
    compared by their kept ids. From the repeated source, in order: the first ``n_repeated``
    distinct documents are R, the next ``n_repeated`` distinct ones are H. From the general
    source, in order and skipping R and H documents: the first ``n_validation`` distinct ones are
    V; every later document that is not in R, H or V is a general training document, numbered
    from 0. The two sources may be the same spec. Sets are read on first use.

    Each source is read through a token store (:mod:`memsinks.data.store`, under ``cache_dir``):
    tokenized once, only as far as the sets and the stream reach, then read in constant time.
    """

    general_source: str
    repeated_source: str
    tokenizer: TextTokenizer
    n_repeated: int
    n_validation: int
    max_tokens: int
    min_tokens: int = 16
    cache_dir: str | Path | None = None  # token stores; None: $MEMSINKS_CACHE/stores
    # general training documents are cut here instead (None: kept whole, for packed training,
    # which splits them into row-sized pieces); R, H and V are always cut at max_tokens
    general_max_tokens: int | None = -1  # -1: max_tokens
    # record fields kept per document (a jsonl or parquet source's metadata; data.sink_key
    # field:NAME reads them); a different set of fields is a different token store
    fields: tuple[str, ...] = ()
    _builders: dict[str, StoreBuilder] = field(default_factory=dict, init=False, repr=False)
    _stores: dict[str, TokenStore] = field(default_factory=dict, init=False, repr=False)
    _positions: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), init=False,
                                   repr=False)
    _scanned: int = field(default=0, init=False, repr=False)  # general store documents scanned
    # per store directory: a store only grows at its end, so an extended store (a new
    # TokenStore object) keeps the hashes already computed for its prefix
    _cut_hashes: dict[Path, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("n_repeated", "n_validation", "max_tokens", "min_tokens"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TextCorpus.{name} = {getattr(self, name)} must be at least 1")
        if self.general_max_tokens == -1:
            self.general_max_tokens = self.max_tokens
        elif self.general_max_tokens is not None and self.general_max_tokens < self.max_tokens:
            raise ValueError(f"TextCorpus.general_max_tokens = {self.general_max_tokens} is below "
                             f"max_tokens = {self.max_tokens}; use None (whole documents) or more")
        if self.min_tokens > self.max_tokens:
            raise ValueError(f"TextCorpus.min_tokens = {self.min_tokens} exceeds max_tokens = "
                             f"{self.max_tokens}; no document could pass")
        for spec in (self.general_source, self.repeated_source):
            read_documents(spec, limit=0)  # check paths and options now, read nothing

    def fingerprint(self) -> str:
        """SHA-256 of the source specs, tokenizer, counts and length limits (not file contents)."""
        data = json.dumps({
            "version": _FORMAT_VERSION, "general": self.general_source,
            "repeated": self.repeated_source, "tokenizer": self.tokenizer.fingerprint,
            "n_repeated": self.n_repeated, "n_validation": self.n_validation,
            "max_tokens": self.max_tokens, "min_tokens": self.min_tokens,
            **({} if self.general_max_tokens == self.max_tokens
               else {"general_max_tokens": self.general_max_tokens}),
        }, sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()

    # -- reading --------------------------------------------------------------------------------
    def _store(self, spec: str, at_least: int, cut: int | None) -> TokenStore:
        """The token store of ``spec`` cut at ``cut``, holding its first ``at_least`` documents."""
        key = f"{spec}\x00{cut}"
        store = self._stores.get(key)
        if store is None or not store.covers(at_least):
            builder = self._builders.get(key)
            if builder is None:  # one per spec: its key (file sizes and times) is taken once
                builder = self._builders[key] = StoreBuilder(
                    spec, self.tokenizer, cut, self.min_tokens, fields=tuple(self.fields),
                    cache_dir=self.cache_dir, chunk=_BATCH, commit_every=_COMMIT_EVERY)
            store = self._stores[key] = builder.build(limit=at_least)
        return store

    def _hashes(self, store: TokenStore) -> np.ndarray:
        """Every document's ID as the evaluation sets cut it (its first ``max_tokens`` ids), so
        a whole general document and its cut copy in R, H or V are known as the same."""
        known = self._cut_hashes.get(store.path, np.zeros(0, np.int64))
        if len(known) < len(store):
            fresh = np.array(store.hashes[len(known):], dtype=np.int64)
            lengths = store.lengths[len(known):]
            for offset in np.flatnonzero(lengths > self.max_tokens):
                cut = store.tokens(len(known) + int(offset))[:self.max_tokens]
                fresh[offset] = document_id(cut)
            known = self._cut_hashes[store.path] = np.concatenate([known, fresh])
        return known

    def _accepted(self, store: TokenStore, exclude: np.ndarray, start: int = 0) -> np.ndarray:
        """Positions from ``start`` of the documents that pass the length filter and are not in
        ``exclude``."""
        passed = store.lengths[start:] >= self.min_tokens
        passed &= ~np.isin(self._hashes(store)[start:], exclude)
        return np.flatnonzero(passed) + start

    def _distinct(self, spec: str, count: int, exclude: np.ndarray, what: str,
                  cut: int | None) -> tuple[TokenStore, np.ndarray]:
        """The positions of the first ``count`` accepted documents, each the first of its kind."""
        want = count + count // 4 + _BATCH
        while True:
            store = self._store(spec, want, cut)
            accepted = self._accepted(store, exclude)
            _, first = np.unique(self._hashes(store)[accepted], return_index=True)
            positions = accepted[np.sort(first)]
            if len(positions) >= count:
                return store, positions[:count]
            if store.complete:
                raise ValueError(f"data source {spec!r} has only {len(positions)} distinct "
                                 f"documents of at least {self.min_tokens} tokens, but {what} "
                                 f"needs {count}; lower the count or min_tokens, or use a "
                                 "larger source")
            want = _more(len(store), len(positions), count)

    def _set(self, name: str, store: TokenStore, positions: np.ndarray) -> TextSet:
        tokens = [_read_only(store.tokens(int(p))[:self.max_tokens]) for p in positions]
        return TextSet(name, tokens, np.full(len(positions), np.nan),
                       np.array(self._hashes(store)[positions], dtype=np.int64),
                       [self.tokenizer.decode(t) for t in tokens],
                       np.array(positions, dtype=np.int64))

    @cached_property
    def _twins(self) -> tuple[TextSet, TextSet]:
        n = self.n_repeated
        store, positions = self._distinct(self.repeated_source, 2 * n, np.zeros(0, np.int64),
                                          f"R and H (2 x n_repeated = {2 * n})", self.max_tokens)
        return self._set("repeated", store, positions[:n]), self._set("heldout", store,
                                                                      positions[n:])

    @property
    def repeated(self) -> TextSet:
        return self._twins[0]

    @property
    def heldout(self) -> TextSet:
        return self._twins[1]

    @cached_property
    def validation(self) -> TextSet:
        exclude = np.concatenate([self.repeated.ids, self.heldout.ids])
        store, positions = self._distinct(self.general_source, self.n_validation, exclude,
                                          f"validation (n_validation = {self.n_validation})",
                                          self.general_max_tokens)
        return self._set("validation", store, positions)

    @cached_property
    def _excluded(self) -> np.ndarray:
        return np.concatenate([s.ids for s in (self.repeated, self.heldout, self.validation)])

    def general(self, index: int) -> np.ndarray:
        """Ids of general training document ``index`` (read-only int32).

        Constant time once the general source's token store reaches ``index``; an index past
        it tokenizes further, reading ahead of it (so a stream extends the store only a few
        times; :meth:`check_capacity` does it once, before the first step).
        """
        store, position = self._general(index)
        return _read_only(store.tokens(position))

    def general_fields(self, index: int) -> dict:
        """The record fields of general training document ``index`` (``fields``)."""
        store, position = self._general(index)
        return store.fields(position)

    def repeated_fields(self, index: int) -> dict:
        """The record fields of R's document ``index`` (``fields``)."""
        store = self._stores[f"{self.repeated_source}\x00{self.max_tokens}"]
        return store.fields(int(self.repeated.positions[index]))

    def general_position(self, index: int) -> int:
        """Index of general training document ``index`` among its source's non-empty documents."""
        return self._general(index)[1]

    def check_capacity(self, needed: int) -> None:
        """Make sure general documents ``0 .. needed - 1`` exist, tokenizing what is missing now.

        ``needed``: how many general documents the stream reads (its largest general code + 1).
        """
        if needed < 0:
            raise ValueError(f"TextCorpus.check_capacity({needed}): the count must not be "
                             "negative")
        have = len(self._general_positions(needed))
        if have < needed:
            raise ValueError(f"general source {self.general_source!r} holds only {have} general "
                             f"training documents (after R, H, V and those under min_tokens = "
                             f"{self.min_tokens}), but the stream needs {needed}; use a larger "
                             "source, or fewer train.steps or a smaller train.batch_size")

    def _general(self, index: int) -> tuple[TokenStore, int]:
        if index < 0:
            raise IndexError(f"general document index {index} is negative")
        positions = self._positions
        if index >= len(positions):
            # a stream asks for the following documents next: read well ahead of this one
            positions = self._general_positions(max(index + 1, 2 * len(positions)))
        if index >= len(positions):
            raise ValueError(f"general source {self.general_source!r} has only {len(positions)} "
                             f"training documents after validation and the filters, but "
                             f"document {index} was asked for; use a larger source or fewer "
                             "steps")
        return self._general_store, int(positions[index])

    @property
    def _general_store(self) -> TokenStore:
        return self._stores[f"{self.general_source}\x00{self.general_max_tokens}"]

    def _general_positions(self, needed: int) -> np.ndarray:
        """Source positions of the general documents: at least ``needed``, or all there are."""
        exclude = self._excluded  # reads R, H and V first
        start = int(self.validation.positions[-1]) + 1  # general document 0 is read from here on
        while True:
            store = self._general_store
            if self._scanned < len(store):
                # the store only grows at its end: scan just the documents added since
                fresh = self._accepted(store, exclude, max(start, self._scanned))
                self._positions = np.concatenate([self._positions, fresh])
                self._scanned = len(store)
            if len(self._positions) >= needed or store.complete:
                return self._positions
            have = len(store) - start
            self._store(self.general_source, start + _more(have, len(self._positions), needed),
                        self.general_max_tokens)


def _more(have: int, found: int, need: int) -> int:
    """How many documents to read to find ``need`` accepted ones, ``found`` among the first
    ``have``: the rate so far with a 5% margin, and at least a sixteenth more."""
    if found == 0:
        return max(2 * have, have + _BATCH)
    estimate = math.ceil(have * need / found * 1.05) + _BATCH
    return max(estimate, have + max(have // 16, _BATCH))


def _read_only(tokens: np.ndarray) -> np.ndarray:
    tokens.flags.writeable = False  # callers share them (a DocSet, a batch): none may edit them
    return tokens
