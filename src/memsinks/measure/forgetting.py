"""Forgetting between repetitions, read off the learning curves.

Each repeated document's repetitions are evenly spaced with its own offset, so at any
evaluation the documents of R sit at every distance from their last repetition. Pooling the
evaluations of the later part of training, a document's excess over the held-out loss,
L(H)(t) - L(doc)(t), as a function of the steps since the document was last trained on shows
how fast each part of the model forgets it.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .stats import mean_se


def _panel(metrics: dict, mode: str, start_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(documents x evaluations) arrays of steps since last seen and excess L(H) − L(doc) over
    the evaluations of the later part of training, NaN where a cell does not count.

    A cell counts when the document was seen before the evaluation and at most 1.5 of its own
    spacings ago: between two of its repetitions, or as long after its last one. With every
    document spread over the whole run that is every cell after its first occurrence; with
    repetitions packed into windows (``data.repeat_window``) it leaves out the evaluations
    before a document's window and long after it. Documents without a counted cell are dropped.
    """
    curve, occurrences = metrics["curve"], metrics["r_occurrences"]
    points = [p for p in curve if p["step"] >= start_fraction * curve[-1]["step"]]
    since = np.full((len(occurrences), len(points)), np.nan)
    excess = np.full_like(since, np.nan)
    gaps = [np.diff(o).mean() if len(o) > 1 else np.inf for o in occurrences]
    for j, point in enumerate(points):
        values = point[mode]
        for doc, loss in enumerate(values["R_docs"]):
            seen = [s for s in occurrences[doc] if s < point["step"]]
            if seen and point["step"] - 1 - seen[-1] <= 1.5 * gaps[doc]:
                since[doc, j] = point["step"] - 1 - seen[-1]
                excess[doc, j] = values["L_H"] - loss
    counted = ~np.isnan(since).all(axis=1)
    return since[counted], excess[counted]


def _demean(a: np.ndarray, within: bool) -> np.ndarray:
    """``a`` less its evaluation (column) means, and its document (row) means too when
    ``within``, over the counted (non-NaN) cells: alternating projections, exact in one pass
    for a complete panel."""
    out = a - np.nanmean(a, axis=0, keepdims=True)
    if not within:
        return out
    complete = not np.isnan(a).any()
    for _ in range(1 if complete else 200):
        out = out - np.nanmean(out, axis=1, keepdims=True)
        if complete:
            break
        column = np.nanmean(out, axis=0, keepdims=True)
        if np.nanmax(np.abs(column)) < 1e-12:
            break
        out = out - column
    return out


def _slope(since: np.ndarray, excess: np.ndarray, within: bool = True) -> float:
    """Slope of excess on steps-since with evaluation effects removed, and document effects too
    when ``within`` (else the documents' own levels stay in the residual, as noise)."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns in a resample
        x, y = _demean(since, within), _demean(excess, within)
    x, y = np.nan_to_num(x), np.nan_to_num(y)
    denominator = float((x * x).sum())
    return float((x * y).sum() / denominator) if denominator > 1e-9 * x.size else float("nan")


def forgetting_rate(metrics: dict, start_fraction: float = 0.5, resamples: int = 500,
                    seed: int = 0, bins: int = 6) -> dict[str, dict]:
    """Per mode: how much of its excess a repeated document loses between two repetitions.

    A document's excess over the held-out loss, L(H) − L(doc), is regressed on the steps since
    it was last trained on, over the evaluations of the later part of training, with
    per-document effects (some documents are easier) and per-evaluation effects (all of R
    moves together as training goes on) removed. ``lost`` = −slope × spacing: the excess lost
    from just after one repetition to just before the next (nats/token; positive =
    forgetting); ``share`` divides it by the mean excess. Errors: bootstrap over documents.

    When the evaluations are a multiple of the spacing apart, every document sits at the same
    distance from its last repetition at every evaluation, and nothing varies within a
    document. The slope is then read *between* documents, with only the evaluation effects
    removed (``estimator``: ``between documents``): unbiased, since each document's offset is
    drawn independently of how easy it is, but noisier, since the documents' own levels stay
    in the residual. For a figure, ``since``/``excess``/``excess_se`` bin the same adjusted
    excess (each document's mean moved to the overall mean excess) by steps since last seen.
    """
    curve, occurrences = metrics.get("curve", []), metrics.get("r_occurrences")
    if not curve or not occurrences or "R_docs" not in curve[-1].get(
            next(iter(metrics.get("modes", {})), ""), {}):
        return {}
    gaps = [np.diff(o).mean() for o in occurrences if len(o) > 1]
    if not gaps:
        return {}
    spacing = float(np.median(gaps))
    rng = np.random.default_rng(seed)
    out = {}
    for mode in metrics["modes"]:
        if mode not in curve[-1]:
            continue
        since, excess = _panel(metrics, mode, start_fraction)
        if len(since) < 3 or since.shape[1] < 2:
            continue
        within = bool((np.nanmax(since, axis=1) > np.nanmin(since, axis=1)).any())
        slope = _slope(since, excess, within)
        if not math.isfinite(slope):
            continue
        boot = []
        for _ in range(resamples):
            pick = rng.integers(0, len(since), len(since))
            boot.append(_slope(since[pick], excess[pick], within))
        boot_arr = np.array([b for b in boot if math.isfinite(b)])
        mean_excess = float(np.nanmean(excess))
        lost, lost_se = -slope * spacing, float(boot_arr.std(ddof=1)) * spacing
        adjusted = excess - np.nanmean(excess, axis=0, keepdims=True) + mean_excess
        if within:  # each document's mean moved to the overall mean excess
            adjusted = adjusted - np.nanmean(excess, axis=1, keepdims=True) + mean_excess
        edges = np.linspace(0, max(spacing, 1), bins + 1)
        centers, binned, binned_se = [], [], []
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            chosen = adjusted[(since >= lo) & (since < hi)]
            if len(chosen) > 1:
                centers.append(float((lo + hi) / 2))
                mean, se = mean_se(chosen)
                binned.append(mean)
                binned_se.append(se)
        out[mode] = {"since": centers, "excess": binned, "excess_se": binned_se,
                     "lost": lost, "lost_se": lost_se, "spacing": spacing,
                     "estimator": "within documents" if within else "between documents",
                     "mean_excess": mean_excess,
                     "share": lost / mean_excess if mean_excess > 0 else float("nan"),
                     "share_se": lost_se / mean_excess if mean_excess > 0 else float("nan")}
    return out
