"""The training stream: schedule, dedup, determinism, manifest, sink assignment."""

from collections import Counter

import numpy as np
import pytest

from memsinks.data.config import DataConfig
from memsinks.data.stream import Mixture


@pytest.fixture(scope="module")
def mixture():
    data = DataConfig(seed=3, n_repeated=6, repetitions=5, n_validation=10)
    return Mixture(data, steps=40, batch_size=8)


def test_repeated_documents_appear_exactly_r_times_spread_over_training(mixture):
    stream = mixture.stream()
    assert len(stream) == 40 * 8
    counts = Counter(int(c) for c in stream if c < 0)
    assert counts == {-(i + 1): 5 for i in range(6)}
    general = stream[stream >= 0]
    assert np.array_equal(general, np.arange(len(general)))  # every general doc once, in order
    for i in range(6):
        steps = np.nonzero(stream == -(i + 1))[0] // 8
        gaps = np.diff(steps)
        # evenly spaced: one repetition per fifth of training
        assert gaps.min() >= 40 / 5 - 2 and gaps.max() <= 40 / 5 + 2


def test_dedup_keeps_first_occurrence_and_same_length(mixture):
    full, dedup = mixture.stream(), mixture.stream(dedup=True)
    assert len(dedup) == len(full)
    assert Counter(int(c) for c in dedup if c < 0) == {-(i + 1): 1 for i in range(6)}
    for i in range(6):
        first_full = np.nonzero(full == -(i + 1))[0][0] // 8
        first_dedup = np.nonzero(dedup == -(i + 1))[0][0] // 8
        assert abs(first_full - first_dedup) <= 1


def test_data_order_is_a_pure_function_of_seed_and_step(mixture):
    again = Mixture(DataConfig(seed=3, n_repeated=6, repetitions=5, n_validation=10), 40, 8)
    for step in (0, 17, 39):
        a, b = mixture.batch(step), again.batch(step)
        assert [c for c, _ in a] == [c for c, _ in b]
        assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(a, b, strict=True))
    other = Mixture(DataConfig(seed=4, n_repeated=6, repetitions=5, n_validation=10), 40, 8)
    assert not np.array_equal(other.batch(0)[0][1], mixture.batch(0)[0][1]) or \
        not np.array_equal(other.batch(1)[0][1], mixture.batch(1)[0][1])


def test_sets_are_disjoint_and_twins_match(mixture):
    repeated = {tuple(t) for t in mixture.repeated.tokens}
    heldout = {tuple(t) for t in mixture.heldout.tokens}
    validation = {tuple(t) for t in mixture.validation.tokens}
    general = {tuple(mixture.general(i)) for i in range(200)}
    assert not repeated & heldout and not repeated & validation and not heldout & general
    assert not repeated & general
    assert mixture.repeated.entropy_floor > 0 and mixture.heldout.entropy_floor > 0


def test_sink_ids_all_repeated_and_seen_before(mixture):
    stream = mixture.stream()
    every = mixture.sink_ids(dedup=False, which="all")
    assert every.shape == stream.shape and (every > 0).all()
    repeated_only = mixture.sink_ids(dedup=False, which="repeated")
    assert set(stream[repeated_only != 0].tolist()) == {-(i + 1) for i in range(6)}
    assert (repeated_only[stream == -1] == int(mixture.repeated.ids[0])).all()
    assert (repeated_only[stream >= 0] == 0).all()
    online = mixture.sink_ids(dedup=False, which="seen-before")
    for i in range(6):
        positions = np.nonzero(stream == -(i + 1))[0]
        assert online[positions[0]] == 0  # first occurrence: not known to repeat yet
        assert (online[positions[1:]] == int(mixture.repeated.ids[i])).all()
    assert (online[stream >= 0] == 0).all()
    # after dedup nothing repeats, so nothing gets sinks
    assert not mixture.sink_ids(dedup=True, which="repeated").any()
    with pytest.raises(ValueError, match="use one of"):
        mixture.sink_ids(dedup=False, which="some")


def test_manifest_lists_every_repeated_document(mixture):
    manifest = mixture.manifest()
    assert len(manifest["repeated"]) == 6
    entry = manifest["repeated"][2]
    assert entry["id"] == int(mixture.repeated.ids[2]) and entry["repeats"] == 5
    assert len(entry["steps"]) == 5 and len(entry["sha256"]) == 64 and entry["text"]
    assert manifest["repeated_share"] == pytest.approx(30 / 320)


def test_canaries_have_the_lengths_of_natural_twins():
    natural = Mixture(DataConfig(seed=1, n_repeated=4, repetitions=2, n_validation=4), 10, 4)
    canary = Mixture(DataConfig(seed=1, n_repeated=4, repetitions=2, n_validation=4,
                                repeated_kind="canary"), 10, 4)
    assert [len(t) for t in canary.repeated.tokens] == [len(t) for t in natural.repeated.tokens]
    n_words = len(canary.vocab.corpus_words)
    expected = -np.log(n_words) * np.array([len(t) for t in canary.repeated.tokens])
    assert np.allclose(canary.repeated.logprob, expected)
    # random strings are far harder than stories
    assert canary.heldout.entropy_floor > 2 * natural.heldout.entropy_floor


def test_unknown_domain_is_rejected():
    with pytest.raises(ValueError, match="corpus domain 'poems' is unknown"):
        Mixture(DataConfig(general_domains=["poems"]), 10, 4)


@pytest.mark.parametrize("share", [0.0, 0.05, 0.25, 0.5, 1.0])
def test_in_domain_share_draws_exactly_that_share_of_every_prefix(share):
    data = DataConfig(seed=1, general_domains=["facts"], repeated_domain="stories",
                      in_domain_share=share, n_repeated=4, repetitions=2, n_validation=40)
    mixture = Mixture(data, steps=10, batch_size=8)
    seed = 12345
    domains = [mixture._general_doc(seed, i).domain for i in range(400)]
    for prefix in (1, 7, 40, 400):
        in_domain = sum(d == "stories" for d in domains[:prefix])
        assert in_domain == int(np.floor(prefix * share))  # exact, not just on average
    assert set(domains) <= {"stories", "facts"}
    # each domain's documents are that domain's generator sequence, none skipped or repeated
    stories = [mixture._general_doc(seed, i) for i in range(400) if domains[i] == "stories"]
    assert len({d.tokens for d in stories}) == len(stories)
    # V follows the same share: in the paper's regime (0) it holds no stories
    if share == 0:
        assert all(d == "facts" for d in domains)


def test_share_none_keeps_the_round_robin_and_n_heldout_sizes_h():
    base = DataConfig(seed=2, n_repeated=5, repetitions=2, n_validation=6)
    again = DataConfig(seed=2, n_repeated=5, repetitions=2, n_validation=6, n_heldout=12)
    a, b = Mixture(base, steps=10, batch_size=4), Mixture(again, steps=10, batch_size=4)
    assert [a._general_doc(7, i).domain for i in range(4)] == ["stories", "facts"] * 2
    assert len(a.heldout) == 5 and len(b.heldout) == 12
    # a larger H extends the same held-out sequence: its first documents are unchanged
    assert all(np.array_equal(x, y) for x, y in zip(a.heldout.tokens, b.heldout.tokens[:5],
                                                     strict=True))
    assert all(np.array_equal(x, y) for x, y in zip(a.repeated.tokens, b.repeated.tokens,
                                                     strict=True))


@pytest.mark.parametrize("fields, message", [
    ({"in_domain_share": 1.5}, "in_domain_share = 1.5"),
    ({"in_domain_share": 0.0, "general_domains": ["stories"]}, "needs a general domain"),
    ({"n_heldout": -1}, "n_heldout"),
])
def test_bad_share_settings_are_named(fields, message):
    with pytest.raises(ValueError, match=message):
        DataConfig(**fields).validate()
