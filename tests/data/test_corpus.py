"""Tests for the procedural corpus: exact log-probabilities, grammar checks, determinism,
tokenizer round trips, speed and canaries."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import pytest

import memsinks.data.corpus as corpus
from memsinks.data.corpus.grammar import Grammar, GrammarError, Value, Variable, render

# --- a tiny grammar, enumerated exhaustively -------------------------------------------

NAMES = [
    Value("Ann", {"he": "she"}, weight=1),
    Value("Bob", {"he": "he"}, weight=2),
    Value("Cy", {"he": "he"}, weight=3),
]
TINY_VARS = {
    "x": Variable("x", NAMES, pool="kids"),
    "y": Variable("y", NAMES, pool="kids"),  # never equal to x
    "z": Variable("z", ["red", "blue"]),
}
TINY_RULES: dict[str, list[tuple[int, str]]] = {
    # "{x} saw" is shared by two alternatives (left-factored by the engine); x is used
    # again later, also through a pronoun form; alternative 3 may never draw x at all.
    "s": [
        (2, "{x} saw <obj> . {x.he} <feel> . <end>"),
        (1, "{x} saw {y} . <end>"),
        (3, "the <obj> ran to {y} . <end>"),
    ],
    "obj": [(1, "{z} cat"), (2, "dog"), (1, "{z} {z} dog")],
    "feel": [(1, "smiled"), (4, "cried")],
    "end": [(1, "bye {x} !"), (2, "{y} waved ."), (1, "ok .")],
}


def tiny_grammar() -> Grammar:
    return Grammar(TINY_RULES, list(TINY_VARS.values()), start="s")


def _derivations(symbols: tuple[str, ...], bound: dict[str, Value]) -> Iterator:
    """Every complete derivation of ``symbols``: (tokens, probability). Written
    independently of the engine: templates are split on spaces, nothing is factored."""
    if not symbols:
        yield (), 1.0
        return
    head, rest = symbols[0], symbols[1:]
    if head.startswith("<"):
        alts = TINY_RULES[head[1:-1]]
        total = sum(w for w, _ in alts)
        for w, template in alts:
            for toks, p in _derivations(tuple(template.split()) + rest, bound):
                yield toks, w / total * p
    elif head.startswith("{"):
        name, _, form = head[1:-1].partition(".")

        def text(v: Value) -> tuple[str, ...]:
            return tuple((v.forms[form] if form else v.text).split())

        if name in bound:
            for toks, p in _derivations(rest, bound):
                yield text(bound[name]) + toks, p
            return
        var = TINY_VARS[name]
        taken = [
            bound[o]
            for o, ov in TINY_VARS.items()
            if o != name and o in bound and var.pool and ov.pool == var.pool
        ]
        choices = [v for v in var.values if v not in taken]
        total = sum(v.weight for v in choices)
        for v in choices:
            for toks, p in _derivations(rest, {**bound, name: v}):
                yield text(v) + toks, v.weight / total * p
    else:
        for toks, p in _derivations(rest, bound):
            yield (head, *toks), p


def true_distribution() -> dict[tuple[str, ...], float]:
    dist: Counter[tuple[str, ...]] = Counter()
    for toks, p in _derivations(("<s>",), {}):
        dist[toks] += p
    return dict(dist)


def test_tiny_grammar_logprob_matches_exhaustive_enumeration() -> None:
    g = tiny_grammar()
    dist = true_distribution()
    assert math.isclose(sum(dist.values()), 1.0, abs_tol=1e-12)
    assert len(dist) > 100
    # Parsing recovers the exact probability of every sequence in the support.
    for toks, p in dist.items():
        assert abs(g.logprob(toks) - math.log(p)) < 1e-12
    # Sampled documents report the exact probability of their token sequence.
    rng = random.Random(7)
    for _ in range(2000):
        toks, lp = g.sample(rng)
        assert toks in dist
        assert abs(lp - math.log(dist[toks])) < 1e-12


def test_tiny_grammar_sample_frequencies_match_probabilities() -> None:
    g = tiny_grammar()
    dist = true_distribution()
    n = 60_000
    rng = random.Random(2024)
    counts = Counter(g.sample(rng)[0] for _ in range(n))
    assert set(counts) <= set(dist)
    chi2 = sum((counts[t] - n * p) ** 2 / (n * p) for t, p in dist.items())
    dof = len(dist) - 1
    assert chi2 < dof + 6 * math.sqrt(2 * dof), (chi2, dof)  # far out in the tail if wrong


def test_vocabulary_of_tiny_grammar() -> None:
    words = {t for toks in true_distribution() for t in toks}
    assert words <= tiny_grammar().vocabulary


def _grammar(rules: dict, variables: list[Variable] | None = None) -> Grammar:
    return Grammar(rules, variables or [], start="s")


def test_ll1_check_rejects_overlapping_first_sets() -> None:
    with pytest.raises(GrammarError, match="LL\\(1\\)"):
        _grammar({"s": ["<a> x", "<b> y"], "a": ["p q"], "b": ["p r"]})
    names = Variable("x", ["Bob", "Ann"])
    with pytest.raises(GrammarError, match="LL\\(1\\)"):
        _grammar({"s": ["{x} came .", "Bob left ."]}, [names])
    # a recursive rule whose alternatives share FIRST through the recursion
    with pytest.raises(GrammarError, match="LL\\(1\\)"):
        _grammar({"s": ["<s> a", "b"]})


def test_grammar_rejects_prefix_empty_and_unbound_forms() -> None:
    with pytest.raises(GrammarError, match="prefix"):
        _grammar({"s": ["a b", "a b c"]})  # the end of "a b" would need lookahead
    with pytest.raises(GrammarError, match="empty"):
        _grammar({"s": ["a", ""]})
    with pytest.raises(GrammarError, match="undefined"):
        _grammar({"s": ["a <t>"]})
    with pytest.raises(GrammarError, match="unreachable"):
        _grammar({"s": ["a"], "t": ["b"]})
    with pytest.raises(GrammarError, match="never finish"):
        _grammar({"s": ["a <t>"], "t": ["b <t>"]})
    kids = [Value("Ann", {"he": "she"}), Value("Bob", {"he": "he"}), Value("Eve", {"he": "she"})]
    kid = Variable("k", kids)
    with pytest.raises(GrammarError, match="bound"):  # "she" does not say who
        _grammar({"s": ["{k.he} ran , {k} said ."]}, [kid])
    _grammar({"s": ["{k} ran , {k.he} said ."]}, [kid])  # bound first: fine
    with pytest.raises(GrammarError, match="bound"):  # <t> is also reached unbound
        _grammar({"s": ["{k} a <t>", "b <t>"], "t": ["{k.he} ."]}, [kid])
    with pytest.raises(GrammarError, match="bound"):  # <u> binds k on one branch only
        _grammar({"s": ["<u> {k.he} ."], "u": ["{k} x", "y"]}, [kid])
    _grammar({"s": ["<u> {k.he} ."], "u": ["{k} x", "y {k}"]}, [kid])
    with pytest.raises(GrammarError, match="invalid character"):
        _grammar({"s": ["it's"]})


def test_left_factoring_keeps_probabilities() -> None:
    g = _grammar({"s": [(1, "a b ."), (2, "a c ."), (3, "a c d ."), (4, "e .")]})
    for toks, p in [("a b .", 0.1), ("a c .", 0.2), ("a c d .", 0.3), ("e .", 0.4)]:
        assert math.isclose(g.logprob(toks.split()), math.log(p), abs_tol=1e-12)


# --- the real domains ---------------------------------------------------------------------


@pytest.mark.parametrize("domain", corpus.DOMAINS)
def test_determinism(domain: str) -> None:
    a = corpus.generate(domain, 3, 17)
    assert a == corpus.generate(domain, 3, 17)
    assert corpus.generate_many(domain, 3, 15, 5)[2] == a
    seed3 = [corpus.generate(domain, 3, i).tokens for i in range(20)]
    seed4 = [corpus.generate(domain, 4, i).tokens for i in range(20)]
    assert seed3 != seed4
    assert len(set(seed3)) == 20


def test_generation_does_not_depend_on_hash_seed() -> None:
    code = (
        "import memsinks.data.corpus as c;"
        "print([c.generate(d, 5, i).logprob for d in c.DOMAINS for i in range(3)])"
    )
    outs = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True)
        assert res.returncode == 0, res.stderr
        outs.add(res.stdout)
    assert len(outs) == 1


def test_unknown_domain() -> None:
    with pytest.raises(ValueError, match="stories"):
        corpus.generate("poems", 0, 0)
    with pytest.raises(ValueError, match="facts"):
        corpus.vocabulary(["poems"])


@pytest.mark.parametrize("domain", corpus.DOMAINS)
def test_logprob_is_exact_and_end_is_determined(domain: str) -> None:
    docs = corpus.generate_many(domain, 0, 0, 300)
    for doc in docs:
        assert doc.domain == domain
        assert math.isfinite(doc.logprob) and doc.logprob < 0
        # an independent recomputation: deterministic parsing of the tokens alone
        assert corpus.score(domain, doc.tokens) == doc.logprob
    for doc in docs[:50]:
        assert corpus.score(domain, doc.tokens[:-1]) == -math.inf
        assert corpus.score(domain, doc.tokens + ("the",)) == -math.inf


@pytest.mark.parametrize("domain", corpus.DOMAINS)
def test_length_and_duplicates(domain: str) -> None:
    docs = corpus.generate_many(domain, 1, 0, 20_000)
    lengths = [len(d.tokens) for d in docs]
    assert 70 <= sum(lengths) / len(lengths) <= 90
    assert min(lengths) >= 30 and max(lengths) <= 130
    assert len(docs) - len({d.tokens for d in docs}) <= 2


def test_vocabulary_and_tokenizer_round_trip() -> None:
    words = corpus.vocabulary()
    assert words == sorted(set(words))
    assert len(words) >= 1000
    per_domain = [set(corpus.vocabulary([d])) for d in corpus.DOMAINS]
    assert set(words) == set.union(*per_domain)
    tok = corpus.build_tokenizer(words)
    assert [tok.token_to_id(s) for s in ("<pad>", "<bos>", "<eos>", "<unk>")] == [0, 1, 2, 3]
    assert tok.token_to_id(words[0]) == 4
    assert tok.get_vocab_size() == len(words) + 4
    for domain in corpus.DOMAINS:
        for doc in corpus.generate_many(domain, 2, 0, 300):
            text = corpus.render(doc.tokens)
            enc = tok.encode(text)
            assert enc.tokens == list(doc.tokens), text
            assert 3 not in enc.ids
            assert set(doc.tokens) <= set(words)


def test_render() -> None:
    toks = 'Mia said , " Hi ! " " Go , " said Tom . " Why ? " she asked .'.split()
    assert render(toks) == 'Mia said, "Hi!" "Go," said Tom. "Why?" she asked.'
    assert render(['"', "Yes", '"', "."]) == '"Yes".'
    assert render([]) == ""


@pytest.mark.parametrize("domain", corpus.DOMAINS)
def test_speed(domain: str) -> None:
    corpus.generate(domain, 0, 0)  # build the grammar outside the timing
    best = math.inf
    for attempt in range(3):
        start = time.perf_counter()
        corpus.generate_many(domain, 9, attempt * 5000, 5000)
        best = min(best, time.perf_counter() - start)
    assert 5000 / best >= 5000, f"{5000 / best:.0f} docs/s"


def test_canary() -> None:
    words = corpus.vocabulary()
    c = corpus.canary(1, 2, 25, words)
    assert c.domain == "canary"
    assert len(c.tokens) == 25 and set(c.tokens) <= set(words)
    assert c.logprob == pytest.approx(-25 * math.log(len(words)), rel=1e-15)
    assert c == corpus.canary(1, 2, 25, words)
    assert c != corpus.canary(1, 3, 25, words)
    assert corpus.canary(1, 2, 10, words).tokens == c.tokens[:10]
    with pytest.raises(ValueError):
        corpus.canary(0, 0, 5, ["a", "a"])
    # uniform: every word of a small vocabulary shows up about equally often
    counts = Counter(corpus.canary(0, 0, 40_000, ["a", "b", "c", "d"]).tokens)
    assert all(abs(n - 10_000) < 500 for n in counts.values())


# --- the diary domain: the stories' language without their plots ---------------------------


def test_diary_is_registered_last() -> None:
    assert corpus.DOMAINS[:2] == ("stories", "facts")
    assert corpus.DOMAINS[-1] == "diary"


def test_diary_leaves_the_vocabulary_unchanged() -> None:
    # token ids of every earlier result depend on this list: adding diary must not move it
    before = corpus.vocabulary(("stories", "facts"))
    assert corpus.vocabulary(corpus.DOMAINS) == before
    assert corpus.vocabulary() == before
    assert set(corpus.vocabulary(["diary"])) <= set(before)


def test_diary_shares_the_stories_language() -> None:
    story_words = set(corpus.vocabulary(["stories"]))
    diary = Counter(t for d in corpus.generate_many("diary", 0, 0, 500) for t in d.tokens)
    stories = Counter(t for d in corpus.generate_many("stories", 0, 0, 500) for t in d.tokens)
    # nearly every diary token is a story word ...
    in_stories = sum(n for t, n in diary.items() if t in story_words) / diary.total()
    assert in_stories >= 0.95
    # ... and the diary uses the words that make up most of the stories' text
    covered = sum(n for t, n in stories.items() if t in diary) / stories.total()
    assert covered >= 0.9
    # but it is not a story: none of the stories' openings, and stories cannot produce it
    docs = corpus.generate_many("diary", 0, 0, 500)
    openings = {("Once", "upon"), ("There", "was", "once"), ("Long", "ago"), ("Not", "far")}
    assert not any(d.tokens[: len(o)] == o for d in docs for o in openings)
    assert all(corpus.score("stories", d.tokens) == -math.inf for d in docs[:100])


def test_diary_determinism_exactness_and_length() -> None:
    a = corpus.generate("diary", 11, 5)
    assert a == corpus.generate("diary", 11, 5)
    assert corpus.generate_many("diary", 11, 3, 4)[2] == a
    docs = corpus.generate_many("diary", 12, 0, 2000)
    for doc in docs[:300]:
        assert corpus.score("diary", doc.tokens) == doc.logprob  # unique derivation
        assert abs(corpus.score("diary", doc.tokens) - doc.logprob) < 1e-9
    lengths = [len(d.tokens) for d in docs]
    assert 70 <= sum(lengths) / len(lengths) <= 90
    assert min(lengths) >= 40 and max(lengths) <= 130
    words = [sum(t.isalnum() for t in d.tokens) for d in docs]
    assert 60 <= sum(words) / len(words) <= 75
    # every sentence starts with a capital letter (no "mom said" at a sentence start)
    for doc in docs:
        for prev, tok in zip((".", *doc.tokens), doc.tokens, strict=False):
            assert not (prev in ".!?" and tok[0].islower()), render(doc.tokens)
