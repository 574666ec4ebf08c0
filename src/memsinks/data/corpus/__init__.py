"""Procedurally generated English documents with exact log-probabilities.

Documents come from probabilistic template grammars (see :mod:`.grammar`) built so that
every token sequence has exactly one derivation; ``Document.logprob`` is therefore the
exact natural-log probability of the tokens under the generator (the entropy floor a
model could reach), with an implicit end-of-document token of probability 1.

Every document is a pure function of ``(domain, seed, index)``: its random generator is
seeded from a stable hash of the three, so any document can be regenerated on its own.

Domains (see their modules): ``stories`` (children's stories), ``facts`` (encyclopedic
entries) and ``diary`` (a child's diary entries and letters: the stories' words without
their plots). ``diary`` was added last and emits no word the first two do not, so the
vocabulary, and with it every token id, is the same as before it existed.
"""

from __future__ import annotations

import hashlib
import math
import operator
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import diary, facts, stories
from .grammar import Grammar, GrammarError, render

if TYPE_CHECKING:
    import tokenizers

__all__ = [
    "DOMAINS",
    "SPECIAL_TOKENS",
    "Document",
    "Grammar",
    "GrammarError",
    "build_tokenizer",
    "canary",
    "generate",
    "generate_many",
    "get_grammar",
    "render",
    "score",
    "vocabulary",
]

DOMAINS: tuple[str, ...] = ("stories", "facts", "diary")
SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<unk>")
_GRAMMARS = {"stories": stories.grammar, "facts": facts.grammar, "diary": diary.grammar}


@dataclass(frozen=True)
class Document:
    """A generated document: its tokens and their exact log-probability."""

    tokens: tuple[str, ...]  # words and punctuation marks
    logprob: float  # exact natural-log probability of `tokens` under the generator
    domain: str


def get_grammar(domain: str) -> Grammar:
    """The compiled grammar of a domain; ValueError naming the valid ones if unknown."""
    try:
        return _GRAMMARS[domain]()
    except KeyError:
        raise ValueError(
            f"unknown corpus domain {domain!r}; valid domains: {', '.join(DOMAINS)}"
        ) from None


def _rng(domain: str, seed: int, index: int) -> random.Random:
    """A generator seeded from a stable hash (never Python's salted ``hash``)."""
    key = f"{domain}\x00{operator.index(seed)}\x00{operator.index(index)}".encode()
    digest = hashlib.blake2b(key, digest_size=16).digest()
    return random.Random(int.from_bytes(digest, "little"))


def generate(domain: str, seed: int, index: int) -> Document:
    """Document number ``index`` of ``domain`` under ``seed`` (a pure function)."""
    tokens, logprob = get_grammar(domain).sample(_rng(domain, seed, index))
    return Document(tokens, logprob, domain)


def generate_many(domain: str, seed: int, start: int, count: int) -> list[Document]:
    """Documents ``start, ..., start + count - 1``; same as calling :func:`generate`."""
    g = get_grammar(domain)
    out = []
    for index in range(start, start + count):
        tokens, logprob = g.sample(_rng(domain, seed, index))
        out.append(Document(tokens, logprob, domain))
    return out


def score(domain: str, tokens: Sequence[str]) -> float:
    """Exact log-probability of any token sequence under ``domain``'s generator, by
    parsing; ``-inf`` if the generator cannot produce it."""
    try:
        return get_grammar(domain).logprob(tokens)
    except ValueError:
        if domain not in _GRAMMARS:
            raise
        return -math.inf


def canary(seed: int, index: int, length: int, vocabulary: Sequence[str]) -> Document:
    """``length`` tokens drawn uniformly and independently from ``vocabulary``.

    A pure function of ``(seed, index)`` for a given vocabulary; a shorter canary is a
    prefix of a longer one with the same seed and index.
    """
    n = len(vocabulary)
    if n == 0 or length < 0:
        raise ValueError("canary needs a non-empty vocabulary and a length >= 0")
    if len(set(vocabulary)) != n:
        raise ValueError("canary vocabulary has duplicate words; logprob would be wrong")
    rng = _rng("canary", seed, index)
    tokens = tuple(vocabulary[rng.randrange(n)] for _ in range(length))
    return Document(tokens, -length * math.log(n), "canary")


def vocabulary(domains: Sequence[str] = DOMAINS) -> list[str]:
    """Every token the given domains can emit, sorted."""
    if isinstance(domains, str):
        domains = (domains,)
    words: set[str] = set()
    for d in domains:
        words |= get_grammar(d).vocabulary
    return sorted(words)


def build_tokenizer(words: Sequence[str]) -> tokenizers.Tokenizer:
    """A word-level tokenizer: ``<pad>``=0, ``<bos>``=1, ``<eos>``=2, ``<unk>``=3, then
    ``words`` in order. Its pre-tokenizer splits :func:`render` output back into the
    generator's tokens (split on whitespace, then isolate each punctuation mark). It
    adds no BOS/EOS; decoding joins tokens with spaces (use :func:`render` for text).
    """
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for w in words:
        if w in vocab:
            raise ValueError(f"duplicate or reserved word {w!r}")
        vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation("isolated")]
    )
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return tok
