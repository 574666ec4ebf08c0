"""Forgetting between repetitions, read off learning curves."""

import numpy as np
import pytest

from memsinks.measure.forgetting import forgetting_rate


def _forgetting_panel(rate: float, noise: float, seed: int = 0) -> dict:
    """32 documents repeated every 20 steps with their own offsets; a document's excess is its
    own level, plus a level all documents share that grows with training, minus ``rate`` per
    step since it was last seen, plus noise."""
    rng = np.random.default_rng(seed)
    occurrences = [list(range(offset, 400, 20)) for offset in rng.integers(0, 20, 32)]
    level = rng.normal(0.3, 0.1, 32)
    curve = []
    for step in range(200, 401, 17):
        docs = []
        for doc, occ in enumerate(occurrences):
            since = step - 1 - max(s for s in occ if s < step)
            excess = level[doc] + 0.001 * step - rate * since + rng.normal(0, noise)
            docs.append(2.0 - excess)
        curve.append({"step": step, "off": {"L_H": 2.0, "R_docs": docs}})
    return {"curve": curve, "r_occurrences": occurrences, "modes": {"off": {}}}


def test_forgetting_rate_recovers_the_loss_between_repetitions():
    # without noise the regression is exact: 0.002 per step x 20 steps between repetitions
    exact = forgetting_rate(_forgetting_panel(0.002, 0.0), resamples=20)["off"]
    assert exact["spacing"] == 20 and exact["lost"] == pytest.approx(0.04)
    assert exact["lost_se"] == pytest.approx(0.0, abs=1e-9)
    # the figure's bins fall by the same rate: bin centres 10/6 apart, 0.002 per step
    assert np.diff(exact["excess"]) == pytest.approx(-0.002 * np.diff(exact["since"]), abs=2e-3)
    # document levels and the shared trend do not leak into the slope; noise widens the error
    noisy = forgetting_rate(_forgetting_panel(0.002, 0.02), resamples=200)["off"]
    assert abs(noisy["lost"] - 0.04) < 3 * noisy["lost_se"] and noisy["lost_se"] > 0.001
    none = forgetting_rate(_forgetting_panel(0.0, 0.02, seed=1), resamples=200)["off"]
    assert abs(none["lost"]) < 3 * none["lost_se"]
    assert forgetting_rate({"curve": [], "modes": {"off": {}}}) == {}


def test_evaluations_a_multiple_of_the_spacing_apart_read_the_slope_between_documents():
    """Evaluations every 40 steps with repetitions every 20: each document is always as far
    from its last repetition, so its own level and its distance cannot be told apart inside
    it; across documents (offsets drawn independently of their levels) they can."""
    rng = np.random.default_rng(3)
    occurrences = [list(range(offset, 1000, 20)) for offset in rng.integers(0, 20, 400)]
    level = rng.normal(0.3, 0.05, 400)
    curve = []
    for step in range(500, 1001, 40):
        docs = [2.0 - (level[d] + 0.001 * step - 0.002 * (step - 1 - max(s for s in o
                                                                       if s < step)))
                for d, o in enumerate(occurrences)]
        curve.append({"step": step, "off": {"L_H": 2.0, "R_docs": docs}})
    panel = {"curve": curve, "r_occurrences": occurrences, "modes": {"off": {}}}
    result = forgetting_rate(panel, resamples=100)["off"]
    assert result["estimator"] == "between documents"
    assert abs(result["lost"] - 0.04) < 3 * result["lost_se"] and result["lost_se"] < 0.02
    # the within-document estimate is used wherever the panel allows it
    assert forgetting_rate(_forgetting_panel(0.002, 0.0), resamples=5)["off"]["estimator"] == (
        "within documents")


def test_repetitions_packed_in_windows_count_only_the_evaluations_between_them():
    """Each document's 6 repetitions 20 steps apart in a window placed at random: before its
    window it is unseen and long after it forgetting has run its course (the excess stops
    falling after 30 steps). Only cells within 1.5 spacings of a repetition count, and the
    rate between repetitions is recovered."""
    rng = np.random.default_rng(5)
    starts = rng.integers(0, 900, 300)
    occurrences = [list(range(start, start + 120, 20)) for start in starts]
    level = rng.normal(0.3, 0.05, 300)
    curve = []
    for step in range(500, 1001, 13):
        docs = []
        for d, occ in enumerate(occurrences):
            seen = [s for s in occ if s < step]
            since = step - 1 - seen[-1] if seen else 0
            excess = level[d] - 0.002 * min(since, 30) if seen else -1.0
            docs.append(2.0 - excess - 0.0005 * step + rng.normal(0, 0.005))
        curve.append({"step": step, "off": {"L_H": 2.0 - 0.0005 * step, "R_docs": docs}})
    panel = {"curve": curve, "r_occurrences": occurrences, "modes": {"off": {}}}
    result = forgetting_rate(panel, resamples=100)["off"]
    assert result["spacing"] == 20 and result["estimator"] == "within documents"
    assert abs(result["lost"] - 0.04) < 3 * result["lost_se"] and result["lost_se"] < 0.01
    assert max(result["since"]) <= 30  # the binned curve too stays within 1.5 spacings
