"""The training stream: general data, a repeated set R spread over training, held-out twins H,
validation V, and the deduplicated variant. Data order is a pure function of (seed, step)."""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..files import replacing
from ..sinks import document_id
from . import corpus
from .config import DataConfig
from .keys import key_ids, parse_key

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
SINK_ASSIGNMENTS = ("all", "repeated", "seen-before")
PAD, BOS, EOS = 0, 1, 2


def derive_seed(seed: int, name: str) -> int:
    """An independent seed per named stream, so R, H, V and general data never share draws."""
    digest = hashlib.blake2b(f"{seed}/{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 33


@dataclass
class DocSet:
    """Documents as token-id arrays (no BOS/EOS), with their exact generator log-probs."""

    name: str
    tokens: list[np.ndarray]
    logprob: np.ndarray  # NaN for real text
    ids: np.ndarray  # document IDs from the token hash
    specials: tuple[int, int, int] = (PAD, BOS, EOS)  # the tokenizer's pad, BOS and EOS ids
    # the sink ID each document trained with, where it is not its hash (a near-duplicate
    # cluster's or a source's key; see data.sink_key); None = ids
    sink_ids: np.ndarray | None = None

    @property
    def own_ids(self) -> np.ndarray:
        """The IDs whose sinks are each document's own (``own`` mode, deletion)."""
        return self.ids if self.sink_ids is None else self.sink_ids

    def __len__(self) -> int:
        return len(self.tokens)

    def subset(self, count: int) -> DocSet:
        return replace(self, tokens=self.tokens[:count], logprob=self.logprob[:count],
                       ids=self.ids[:count],
                       sink_ids=None if self.sink_ids is None else self.sink_ids[:count])

    @property
    def predicted_tokens(self) -> np.ndarray:
        """Tokens each document is scored on: its tokens and the end token."""
        return np.array([len(t) + 1 for t in self.tokens])

    @property
    def entropy_floor(self) -> float:
        """The generator's exact mean NLL per predicted token (the end token has probability 1)."""
        return float(-self.logprob.sum() / self.predicted_tokens.sum())


class Vocabulary:
    """Word-level vocabulary of the built-in corpus: special tokens first, then every word."""

    def __init__(self, domains: list[str]):
        self.words = list(SPECIALS) + corpus.vocabulary(tuple(domains))
        self.index = {w: i for i, w in enumerate(self.words)}
        self.corpus_words = self.words[len(SPECIALS):]

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, tokens: tuple[str, ...]) -> np.ndarray:
        return np.fromiter((self.index[t] for t in tokens), dtype=np.int32, count=len(tokens))

    def tokenizer(self):
        return corpus.build_tokenizer(self.corpus_words)


class Mixture:
    """Everything a run reads: the ordered stream and the evaluation sets, from one seed."""

    def __init__(self, data: DataConfig, steps: int, batch_size: int,
                 max_tokens: int | None = None, whole_documents: bool = False):
        """``max_tokens``: longest document kept from text sources (the model context - 2).

        ``whole_documents``: general training documents of text sources are not cut at
        ``max_tokens`` (only at ``data.max_tokens`` if set), for packed training, which splits
        them into row-sized pieces; R, H and V are cut either way.
        """
        data.validate()
        self.data, self.steps, self.batch_size = data, steps, batch_size
        self._stream_cache: dict[bool, np.ndarray] = {}
        self.text = None
        if data.general_source:
            self._init_text(max_tokens, whole_documents)
            return
        self.tokenizer = None
        self.specials = (PAD, BOS, EOS)
        domains = sorted(set(data.general_domains) | {data.repeated_domain})
        for name in domains:
            if name not in corpus.DOMAINS:
                raise ValueError(f"corpus domain {name!r} is unknown; built-in domains: "
                                 f"{', '.join(corpus.DOMAINS)}")
        self.vocab = Vocabulary(list(corpus.DOMAINS))
        self._general_seed = derive_seed(data.seed, "general")
        self._general: dict[int, np.ndarray] = {}
        n = data.n_repeated
        self.repeated = self._twin_set("repeated", n)
        self.heldout = self._twin_set("heldout", data.n_heldout or n)
        self.validation = self._general_set("validation", data.n_validation)
        self._keyed()

    def _keyed(self) -> None:
        # R's documents trained with other IDs than their hashes: give evaluation those
        self._perturbed: dict[tuple[int, int], np.ndarray] = {}
        self._keys_cache: dict[bool, np.ndarray] = {}  # row_keys per stream (dedup or not)
        self._rare_cache: dict[tuple, object] = {}  # n-gram indexes per (stream, n)
        self._pool: np.ndarray | None = None  # R's tokens, what perturbations draw from
        if self.data.sink_key != "hash" or self.data.perturb:
            self.repeated = replace(self.repeated, sink_ids=self.repeated_keys())

    def _init_text(self, max_tokens: int | None, whole_documents: bool) -> None:
        """R, H and V from text files or the hub, through :mod:`memsinks.data.text`."""
        from .text import TextCorpus

        data = self.data
        if not max_tokens:
            raise ValueError("a text corpus needs the model context to cut documents to; build "
                             "the mixture with max_tokens = model.max_seq_len - 2")
        if data.max_tokens:
            max_tokens = min(max_tokens, data.max_tokens)
        repeated_source = data.repeated_source or data.general_source
        self.tokenizer = load_text_tokenizer(data)
        tok = self.tokenizer
        self.specials = (tok.pad_id, tok.bos_id, tok.eos_id)
        general_cut = (data.max_tokens or None) if whole_documents else max_tokens
        kind, name = parse_key(data.sink_key)
        self.text = TextCorpus(data.general_source, repeated_source, tok, data.n_repeated,
                               data.n_validation, max_tokens, min_tokens=data.min_tokens,
                               general_max_tokens=general_cut,
                               fields=(name,) if kind == "field" else ())

        def docset(name, text_set) -> DocSet:
            return DocSet(name, list(text_set.tokens), np.asarray(text_set.logprob),
                          np.asarray(text_set.ids, dtype=np.int64), self.specials)

        self.repeated = docset("repeated", self.text.repeated)
        self.heldout = docset("heldout", self.text.heldout)
        self.validation = docset("validation", self.text.validation)
        self._texts = {"repeated": self.text.repeated.texts, "heldout": self.text.heldout.texts,
                       "validation": self.text.validation.texts}
        if data.repeated_kind == "canary":
            vocab = self.canary_vocabulary()
            for name in ("repeated", "heldout"):
                rng = np.random.default_rng(derive_seed(data.seed, f"canary/{name}"))
                natural = getattr(self, name)
                tokens = [vocab[rng.integers(0, len(vocab), len(t))].astype(np.int32)
                          for t in natural.tokens]
                ids = np.array([document_id(t) for t in tokens], dtype=np.int64)
                logprob = np.array([-len(t) * np.log(len(vocab)) for t in tokens])
                setattr(self, name, DocSet(name, tokens, logprob, ids, self.specials))
                self._texts[name] = [tok.decode(t) for t in tokens]
        self._keyed()

    # -- what the rest of the package reads ---------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size if self.tokenizer is not None else len(self.vocab)

    def texts(self, docs: DocSet) -> list[str]:
        """The documents as text (for zlib scores and manifests)."""
        if self.tokenizer is not None:
            known = self._texts.get(docs.name)
            if known is not None and len(known) >= len(docs):
                return known[:len(docs)]
            return [self.tokenizer.decode(t) for t in docs.tokens]
        return [corpus.render([self.vocab.words[t] for t in tokens]) for tokens in docs.tokens]

    def canary_vocabulary(self) -> np.ndarray:
        """Token ids a canary is drawn from: every non-special token."""
        if self.tokenizer is not None:
            special = set(self.specials) | set(getattr(self.tokenizer.hf, "all_special_ids", []))
            return np.array([i for i in range(self.tokenizer.vocab_size) if i not in special])
        return np.arange(len(SPECIALS), len(self.vocab))

    def save_tokenizer(self, run_dir: Path) -> None:
        """The tokenizer next to a run: tokenizer.json (built-in) or tokenizer/ (text corpora)."""
        if self.tokenizer is not None:
            self.tokenizer.save(Path(run_dir) / "tokenizer")
        else:
            self.vocab.tokenizer().save(str(Path(run_dir) / "tokenizer.json"))

    # -- documents ----------------------------------------------------------------------------
    def _docset(self, name: str, docs: list[corpus.Document]) -> DocSet:
        tokens = [self.vocab.encode(d.tokens) for d in docs]
        return DocSet(name, tokens, np.array([d.logprob for d in docs]),
                      np.array([document_id(t) for t in tokens], dtype=np.int64))

    def _twin_set(self, name: str, count: int) -> DocSet:
        seed = derive_seed(self.data.seed, name)
        docs = corpus.generate_many(self.data.repeated_domain, seed, 0, count)
        if self.data.repeated_kind == "canary":
            # random token strings as long as the natural documents they replace
            docs = [corpus.canary(seed, i, len(d.tokens), self.vocab.corpus_words)
                    for i, d in enumerate(docs)]
        return self._docset(name, docs)

    def _general_doc(self, seed: int, index: int) -> corpus.Document:
        data = self.data
        share = data.in_domain_share
        if share is None:
            domains = data.general_domains
            return corpus.generate(domains[index % len(domains)], seed, index // len(domains))
        # document i is in-domain iff floor((i+1)s) > floor(i s): exactly the share s of every
        # prefix (up to one document), and each domain's own index is known in O(1)
        in_before = math.floor(index * share)
        if math.floor((index + 1) * share) > in_before:
            return corpus.generate(data.repeated_domain, seed, in_before)
        others = [d for d in data.general_domains if d != data.repeated_domain]
        out_index = index - in_before
        return corpus.generate(others[out_index % len(others)], seed, out_index // len(others))

    def _general_set(self, name: str, count: int) -> DocSet:
        seed = derive_seed(self.data.seed, name)
        return self._docset(name, [self._general_doc(seed, i) for i in range(count)])

    def general(self, index: int) -> np.ndarray:
        if self.text is not None:
            return self.text.general(index)
        tokens = self._general.get(index)
        if tokens is None:
            doc = self._general_doc(self._general_seed, index)
            tokens = self._general[index] = self.vocab.encode(doc.tokens)
        return tokens

    @property
    def max_doc_len(self) -> int:
        """Longest evaluation document; general documents come from the same generators."""
        sets = (self.repeated, self.heldout, self.validation)
        return max(len(t) for s in sets for t in s.tokens)

    # -- the stream ---------------------------------------------------------------------------
    def stream(self, dedup: bool = False) -> np.ndarray:
        """Document codes in training order: i >= 0 is general document i, -(i+1) is R[i].

        R[i]'s k-th occurrence sits at fraction (k + u_i) / r of the repeat span, u_i a fixed
        per-document offset, or with ``data.repeat_window`` w < 1 at s_i (1 - w) + w (k + u_i)
        / r, s_i the document's window start; general documents fill the rest evenly. Dedup
        keeps one occurrence of each R document (the first, or with ``data.dedup_keep =
        random`` one drawn per document) and fills the freed rows with further general
        documents.
        """
        if dedup in self._stream_cache:
            return self._stream_cache[dedup]
        data = self.data
        total = self.steps * self.batch_size
        reps = 1 if dedup else data.repetitions
        rng = np.random.default_rng(derive_seed(data.seed, "schedule"))
        offsets = rng.random(data.n_repeated)
        k = np.arange(reps)[None, :]
        if dedup and data.dedup_keep == "random":  # one of each document's slots, drawn per doc
            k = np.random.default_rng(derive_seed(data.seed, "dedup-keep")).integers(
                data.repetitions, size=(data.n_repeated, 1))
        position = (k + offsets[:, None]) / data.repetitions
        if data.repeat_window < 1:  # each document's repetitions in a window placed at random
            starts = np.random.default_rng(derive_seed(data.seed, "repeat-window")).random(
                (data.n_repeated, 1))
            position = starts * (1 - data.repeat_window) + position * data.repeat_window
        r_keys = (position * data.repeat_span).ravel()
        r_codes = -(np.repeat(np.arange(data.n_repeated), reps) + 1)
        n_general = total - len(r_codes)
        if n_general < 0:
            raise ValueError(f"the repeated set needs {len(r_codes)} rows but the stream has "
                             f"{total}; lower data.n_repeated or data.repetitions")
        g_keys = (np.arange(n_general) + 0.5) / n_general
        keys = np.concatenate([r_keys, g_keys])
        codes = np.concatenate([r_codes, np.arange(n_general)])
        order = np.argsort(keys, kind="stable")
        self._stream_cache[dedup] = codes[order]
        return self._stream_cache[dedup]

    def tokens_of(self, code: int) -> np.ndarray:
        """A document as evaluated: R's unperturbed (see :meth:`row_tokens` for training)."""
        return self.general(int(code)) if code >= 0 else self.repeated.tokens[-int(code) - 1]

    def occurrences(self, dedup: bool = False) -> np.ndarray:
        """Per stream position, how many times its document occurred before (0 = first)."""
        stream = self.stream(dedup)
        order = np.argsort(stream, kind="stable")
        sorted_codes = stream[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
        rank = np.arange(len(stream)) - np.repeat(starts, np.diff(np.r_[starts, len(stream)]))
        out = np.empty(len(stream), dtype=np.int64)
        out[order] = rank
        return out

    def row_tokens(self, code: int, occurrence: int) -> np.ndarray:
        """A document as trained at its ``occurrence``-th appearance: with ``data.perturb``,
        R's occurrences each have that share of tokens replaced, by draws from R's tokens."""
        code = int(code)
        if code >= 0 or not self.data.perturb:
            return self.tokens_of(code)
        index = -code - 1
        key = (index, int(occurrence))
        tokens = self._perturbed.get(key)
        if tokens is None:
            original = self.repeated.tokens[index]
            rng = np.random.default_rng(derive_seed(self.data.seed,
                                                    f"perturb/{index}/{occurrence}"))
            count = int(round(self.data.perturb * len(original)))
            where = rng.choice(len(original), size=count, replace=False)
            pool = self._perturb_pool()
            tokens = original.copy()
            tokens[where] = pool[rng.integers(0, len(pool), size=count)]
            self._perturbed[key] = tokens
        return tokens

    def _perturb_pool(self) -> np.ndarray:
        if self._pool is None:
            self._pool = np.concatenate(self.repeated.tokens)
        return self._pool

    def batch(self, step: int, dedup: bool = False) -> list[tuple[int, np.ndarray]]:
        """The (code, tokens) of every row at ``step``: a pure function of (seed, step)."""
        span = slice(step * self.batch_size, (step + 1) * self.batch_size)
        codes = self.stream(dedup)[span]
        if not self.data.perturb:
            return [(int(c), self.tokens_of(int(c))) for c in codes]
        seen = self.occurrences(dedup)[span]
        return [(int(c), self.row_tokens(int(c), int(k))) for c, k in zip(codes, seen,
                                                                          strict=True)]

    def fields_of(self, code: int) -> dict:
        """A document's metadata fields (built-in: ``source`` for R's documents; text: the
        field ``data.sink_key`` names, from its source records)."""
        code = int(code)
        if self.text is not None:  # the stores were built with the key's field
            return (self.text.general_fields(code) if code >= 0
                    else self.text.repeated_fields(-code - 1))
        if code < 0 and self.data.sources:
            return {"source": (-code - 1) % self.data.sources}
        return {}

    def row_keys(self, dedup: bool = False) -> np.ndarray:
        """The sink key of every stream position (``data.sink_key``; 0 = no key)."""
        if dedup not in self._keys_cache:  # a minhash clustering of the stream is not free
            self._keys_cache[dedup] = self._row_keys(dedup)
        return self._keys_cache[dedup]

    def _row_keys(self, dedup: bool) -> np.ndarray:
        stream = self.stream(dedup)
        key = self.data.sink_key
        kind, _ = parse_key(key)
        if kind == "hash" and not self.data.perturb:  # one hash per distinct document
            codes, inverse = np.unique(stream, return_inverse=True)
            code_ids = np.array([document_id(self.tokens_of(int(c))) for c in codes],
                                dtype=np.int64)
            return code_ids[inverse]
        if kind == "field":
            codes, inverse = np.unique(stream, return_inverse=True)
            return key_ids(key, [np.empty(0)] * len(codes),
                           [self.fields_of(int(c)) for c in codes])[inverse]
        # rows as trained: with perturbation each of R's occurrences is its own text
        seen = self.occurrences(dedup) if self.data.perturb else np.zeros(len(stream), np.int64)
        rows = np.where(stream < 0, seen, 0)
        pairs, inverse = np.unique(np.stack([stream, rows], axis=1), axis=0,
                                   return_inverse=True)
        # in stream order, so a cluster's representative is its earliest member
        first = np.full(len(pairs), len(stream))
        np.minimum.at(first, inverse.ravel(), np.arange(len(stream)))
        order = np.argsort(first)
        docs = [self.row_tokens(int(pairs[i, 0]), int(pairs[i, 1])) for i in order]
        keys = np.empty(len(pairs), dtype=np.int64)
        keys[order] = key_ids(key, docs)
        return keys[inverse.ravel()]

    def repeated_keys(self) -> np.ndarray:
        """The sink key each R document trained with most often (0 = none): its cluster's or
        source's; with exact keys of perturbed copies, each its own, its first copy's."""
        stream, keys = self.stream(False), self.row_keys(False)
        out = np.zeros(len(self.repeated), dtype=np.int64)
        for i in range(len(self.repeated)):
            mine = keys[(stream == -(i + 1)) & (keys != 0)]  # in stream order
            if len(mine):
                values, first, counts = np.unique(mine, return_index=True, return_counts=True)
                # the most frequent key, ties to the earliest
                best = np.lexsort((first, -counts))[0]
                out[i] = values[best]
        return out

    def sink_ids(self, dedup: bool, which: str) -> np.ndarray:
        """The sink ID of every stream position (0 = no sinks).

        ``all``: every document its key (``data.sink_key``: by default its hash).
        ``repeated``: only documents whose key occurs more than once in the stream (a counting
        pass, as exact dedup does). ``seen-before``: the online version, a document gets its
        ID from its second occurrence on (a set of keys seen so far; a Bloom filter at scale).
        """
        if which not in SINK_ASSIGNMENTS:
            raise ValueError(f"sink_ids = {which!r}; use one of {', '.join(SINK_ASSIGNMENTS)}")
        ids = self.row_keys(dedup).copy()  # the cache stays as computed
        if which == "repeated":
            hashes, counts = np.unique(ids, return_counts=True)
            repeated = hashes[counts > 1]
            ids = np.where(np.isin(ids, repeated), ids, 0)
        elif which == "seen-before":
            seen: set[int] = set()
            online = np.zeros_like(ids)
            for position, doc in enumerate(ids.tolist()):
                if doc in seen:
                    online[position] = doc
                seen.add(doc)
            ids = online
        return ids

    def rare_tokens(self, dedup: bool, tokens: np.ndarray, n: int = 3, min_docs: int = 2
                    ) -> np.ndarray:
        """Per token of ``tokens``: True where fewer than ``min_docs`` distinct documents of the
        stream hold the n-gram ending at it (:mod:`memsinks.data.rarity`)."""
        from .rarity import NgramIndex

        key = (dedup, n)
        if key not in self._rare_cache:
            codes = np.unique(self.stream(dedup))
            self._rare_cache[key] = NgramIndex((self.tokens_of(int(c)) for c in codes), n)
        return self._rare_cache[key].rare(tokens, min_docs)

    def manifest(self) -> dict:
        """Every R document with its ID, content hash, repeat count and text."""
        stream = self.stream(False)
        positions = {i: (np.nonzero(stream == -(i + 1))[0] // self.batch_size).tolist()
                     for i in range(len(self.repeated))}
        total = len(stream)
        return {
            "stream_documents": int(total),
            "repeated_share": len(self.repeated) * self.data.repetitions / total,
            "repeated": [
                {
                    "index": i,
                    "id": int(self.repeated.ids[i]),
                    "sha256": hashlib.sha256(tokens.astype("<i4").tobytes()).hexdigest(),
                    "repeats": len(positions[i]),
                    "steps": positions[i],
                    "tokens": int(len(tokens)),
                    "text": text,
                }
                for i, (tokens, text) in enumerate(zip(self.repeated.tokens,
                                                       self.texts(self.repeated), strict=True))
            ],
        }


def load_text_tokenizer(data: DataConfig):
    """The tokenizer of a text corpus; ``train:bpe`` is trained once and cached on disk."""
    from .sources import TextTokenizer, load_tokenizer, read_documents

    if not data.tokenizer.startswith("train:"):
        return load_tokenizer(data.tokenizer)
    sources = [data.general_source] + ([data.repeated_source] if data.repeated_source else [])
    key = hashlib.sha256(repr((data.tokenizer, sources, data.vocab_size,
                               data.tokenizer_docs)).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("MEMSINKS_CACHE", "~/.cache/memsinks")).expanduser()
    path = cache / "tokenizers" / key
    if (path / "tokenizer.json").is_file():
        return TextTokenizer.from_saved(path)
    per_source = max(1, data.tokenizer_docs // len(sources))
    texts = [t for spec in sources for t in read_documents(spec, limit=per_source)]
    tokenizer = load_tokenizer(data.tokenizer, train_texts=texts, vocab_size=data.vocab_size)
    with replacing(path, unique=True, keep=True) as tmp:  # keep: another process cached it first
        tokenizer.save(tmp)
    return TextTokenizer.from_saved(path)
