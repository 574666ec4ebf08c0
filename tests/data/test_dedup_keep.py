"""data.dedup_keep: which occurrence of each repeated document the dedup stream keeps."""

from collections import Counter

import numpy as np
import pytest

from memsinks.data.config import DataConfig
from memsinks.data.stream import Mixture


def _streams(keep: str, seed: int = 3):
    data = DataConfig(seed=seed, n_repeated=40, repetitions=8, n_validation=10, dedup_keep=keep)
    mixture = Mixture(data, steps=80, batch_size=16)
    return mixture.stream(), mixture.stream(dedup=True)


def test_random_keeps_one_of_each_documents_own_slots_spread_over_training():
    full, dedup = _streams("random")
    assert len(dedup) == len(full)
    assert Counter(int(c) for c in dedup if c < 0) == {-(i + 1): 1 for i in range(40)}
    kept = []
    for i in range(40):
        step = np.nonzero(dedup == -(i + 1))[0][0] // 16
        slots = np.nonzero(full == -(i + 1))[0] // 16
        assert np.abs(slots - step).min() <= 1  # at (about) one of its own occurrences
        kept.append(int(np.argmin(np.abs(slots - step))))
    # drawn per document: both halves of training hold kept copies; first keeps slot 0 only
    positions = [np.nonzero(dedup == -(i + 1))[0][0] / len(dedup) for i in range(40)]
    assert min(positions) < 0.25 and max(positions) > 0.75
    assert len(set(kept)) > 4
    _, first = _streams("first")
    assert max(np.nonzero(first < 0)[0]) / len(first) < 0.2  # all in the first eighth


def test_random_is_a_pure_function_of_the_seed_and_leaves_the_full_stream_alone():
    full, dedup = _streams("random")
    again_full, again = _streams("random")
    assert np.array_equal(dedup, again) and np.array_equal(full, again_full)
    assert np.array_equal(full, _streams("first")[0])
    assert not np.array_equal(dedup, _streams("random", seed=4)[1])


def test_an_unknown_choice_is_refused_in_one_sentence():
    with pytest.raises(ValueError, match="data.dedup_keep = 'last'; use first or random"):
        DataConfig(dedup_keep="last").validate()


def test_only_dedup_s_fingerprint_depends_on_the_kept_occurrence():
    from memsinks.config import StudyConfig
    from memsinks.study.fingerprint import method_fingerprint

    first, random = StudyConfig(), StudyConfig()
    random.data.dedup_keep = "random"
    for method in ("standard", "memsinks", "memsinks-repeated"):
        assert method_fingerprint(first, method) == method_fingerprint(random, method)
    assert method_fingerprint(first, "dedup") != method_fingerprint(random, "dedup")
