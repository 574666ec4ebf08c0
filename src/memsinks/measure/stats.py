"""Statistics of measurements: means with standard errors (over documents, or over seeds),
token-weighted losses, the memorization gap, paired differences and closure by bootstrap."""

from __future__ import annotations

import math

import numpy as np


def mean_se(values) -> tuple[float, float]:
    """Mean and standard error of the finite values (NaN for what fewer values cannot give)."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    if len(values) < 2:
        return float(values.mean()), float("nan")
    return float(values.mean()), _standard_error(values)


def over_seeds(pairs: list) -> list[float]:
    """[mean, standard error] of (value, error) pairs: the error over seeds when there are
    several, else the single run's own error."""
    pairs = np.asarray(pairs, dtype=float)
    values = pairs[:, 0]
    if len(values) > 1:
        return [float(values.mean()), _standard_error(values)]
    return [float(values[0]), float(pairs[0, 1])]


def heldout_floor(results: dict) -> float | None:
    """The entropy floor of H that a study's results record, or None where there is none: the
    built-in corpus's exact NLL; a text corpus's study records NaN, an older one nothing."""
    floor = results.get("entropy_floor", {}).get("H")
    return floor if floor is not None and math.isfinite(floor) else None


def _standard_error(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / math.sqrt(len(values)))


def mean_nll(sums: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """Token-weighted mean NLL (every predicted token counted once) and its standard error.

    The error is the ratio estimator's, from per-document residuals.
    """
    sums, counts = np.asarray(sums, float), np.asarray(counts, float)
    mean = sums.sum() / counts.sum()
    m = len(sums)
    if m < 2:
        return float(mean), float("nan")
    residual = sums - mean * counts
    se = math.sqrt((residual**2).sum() / (m * (m - 1))) / counts.mean()
    return float(mean), float(se)


def gap(h_sums, h_counts, r_sums, r_counts) -> tuple[float, float]:
    """L(H) - L(R) with the error of independent sets."""
    lh, se_h = mean_nll(h_sums, h_counts)
    lr, se_r = mean_nll(r_sums, r_counts)
    return lh - lr, math.sqrt(se_h**2 + se_r**2)


def bootstrap_closure(std: dict, other: dict, counts: dict, rounds: int = 2000,
                      seed: int = 0) -> tuple[float, float]:
    """closure = (Gap_a - Gap_b) / Gap_a with a paired bootstrap over R and H documents.

    ``std`` and ``other`` map "R" and "H" to per-document NLL sums on the same documents, so
    resampling a document resamples it in both models.
    """
    def closure(idx_r, idx_h):
        def g(sums):
            lh = sums["H"][idx_h].sum() / counts["H"][idx_h].sum()
            lr = sums["R"][idx_r].sum() / counts["R"][idx_r].sum()
            return lh - lr
        base = g(std)
        return (base - g(other)) / base

    n_r, n_h = len(counts["R"]), len(counts["H"])
    point = closure(np.arange(n_r), np.arange(n_h))
    rng = np.random.default_rng(seed)
    draws = [closure(rng.integers(0, n_r, n_r), rng.integers(0, n_h, n_h))
             for _ in range(rounds)]
    return float(point), float(np.std(draws, ddof=1))


def paired_difference(a: np.ndarray, b: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """L_a - L_b on the same documents, with the paired error."""
    return mean_nll(np.asarray(a) - np.asarray(b), counts)
