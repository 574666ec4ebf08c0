"""data.repeat_window: the spacing of a repeated document's occurrences at a fixed stream."""

import numpy as np
import pytest

from memsinks.config import StudyConfig
from memsinks.data.config import DataConfig
from memsinks.data.stream import Mixture
from memsinks.study.fingerprint import method_fingerprint

STEPS, BATCH, N, REPS = 160, 16, 40, 8


def _stream(window: float, seed: int = 3) -> np.ndarray:
    data = DataConfig(seed=seed, n_repeated=N, repetitions=REPS, n_validation=10,
                      repeat_window=window)
    return Mixture(data, steps=STEPS, batch_size=BATCH).stream()


def _gaps(stream: np.ndarray) -> np.ndarray:
    """Steps between consecutive occurrences of each repeated document, one row a document."""
    return np.stack([np.diff(np.nonzero(stream == -(i + 1))[0] // BATCH) for i in range(N)])


def test_the_window_sets_the_spacing_and_keeps_everything_else():
    full = _stream(1.0)
    for window in (1.0, 0.5, 0.25):
        stream = _stream(window)
        assert len(stream) == len(full) and sorted(stream) == sorted(full)  # same documents
        gaps = _gaps(stream)
        expected = window * STEPS / REPS  # 20, 10, 5 steps
        assert abs(gaps.mean() - expected) <= 0.1 * expected + 0.5
        assert gaps.max() <= expected + 2  # evenly spaced within the window
    # the windows are spread over training: R is present early and late, not in a burst
    quarter = _stream(0.25)
    where = np.nonzero(quarter < 0)[0] / len(quarter)
    assert where.min() < 0.1 and where.max() > 0.9
    firsts = [np.nonzero(quarter == -(i + 1))[0][0] / len(quarter) for i in range(N)]
    assert np.std(firsts) > 0.15  # documents start at different times


def test_a_full_window_is_today_s_stream_and_enters_no_fingerprint():
    data = DataConfig(seed=3, n_repeated=N, repetitions=REPS, n_validation=10)
    assert np.array_equal(_stream(1.0), Mixture(data, steps=STEPS, batch_size=BATCH).stream())
    plain, narrow = StudyConfig(), StudyConfig()
    narrow.data.repeat_window = 0.25
    assert method_fingerprint(plain, "memsinks") != method_fingerprint(narrow, "memsinks")
    plain.data.repeat_window = 1.0
    assert method_fingerprint(plain, "memsinks") == method_fingerprint(StudyConfig(), "memsinks")


@pytest.mark.parametrize("bad", [0.0, 1.5, -0.2])
def test_a_window_outside_the_unit_interval_is_refused_in_one_sentence(bad):
    with pytest.raises(ValueError, match=f"data.repeat_window = {bad} is not in"):
        DataConfig(repeat_window=bad).validate()
