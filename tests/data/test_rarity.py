"""Rare tokens for token-gated sinks (sinks.tokens = rare): n-gram document frequency over a
stream (where the sinks then switch on: test_recipes.py; in a study: study/test_recipe_of.py)."""

import numpy as np
import pytest

from memsinks.data.config import DataConfig
from memsinks.data.rarity import NgramIndex, ngram_hashes
from memsinks.data.stream import Mixture


def _brute_rare(docs, tokens, n, min_docs):
    def grams(t):
        return [tuple(t[max(0, i - n + 1): i + 1]) for i in range(len(t))]

    holders: dict[tuple, set] = {}
    for d, t in enumerate(docs):
        for g in grams(list(t)):
            holders.setdefault(g, set()).add(d)
    return np.array([len(holders.get(g, ())) < min_docs for g in grams(list(tokens))])


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_rare_tokens_match_a_brute_force_count(n):
    rng = np.random.default_rng(n)
    docs = [rng.integers(0, 6, size=rng.integers(1, 30)) for _ in range(40)]
    index = NgramIndex(docs, n)
    for min_docs in (2, 3, 8):
        for t in docs[:10] + [rng.integers(0, 9, size=25)]:  # members and an outsider
            assert np.array_equal(index.rare(t, min_docs), _brute_rare(docs, t, n, min_docs))


def test_ngram_hashes_depend_on_the_window_not_the_place():
    a, b = np.array([4, 1, 2, 3]), np.array([9, 9, 1, 2, 3])
    ha, hb = ngram_hashes(a, 3), ngram_hashes(b, 3)
    assert ha[-1] == hb[-1] and ha[-2] != hb[-2]  # (1, 2, 3) in both; (4, 1, 2) vs (9, 1, 2)
    assert ngram_hashes(np.array([1]), 3)[0] != ngram_hashes(np.array([0, 1]), 3)[1]
    with pytest.raises(ValueError, match="n >= 1"):
        ngram_hashes(a, 0)
    with pytest.raises(ValueError, match="rare_docs"):
        NgramIndex([a], 2).rare(a, 1)


def test_mixture_counts_rarity_over_its_own_stream():
    mix = Mixture(DataConfig(n_repeated=6, repetitions=3, n_validation=4), steps=8, batch_size=8)
    stream = mix.stream(False)
    codes = np.unique(stream)
    index = NgramIndex([mix.tokens_of(int(c)) for c in codes], 3)
    r = mix.tokens_of(-1)
    assert np.array_equal(mix.rare_tokens(False, r, 3, 2), index.rare(r, 2))
    assert mix.rare_tokens(False, r, 3, 2).any()
