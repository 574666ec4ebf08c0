"""Forgetting between repetitions, read off the learning curves.

Each repeated document's repetitions are evenly spaced with its own offset, so at any
evaluation the documents of R sit at every distance from their last repetition. Pooling the
evaluations of the later part of training, a document's excess over the held-out loss,
L(H)(t) - L(doc)(t), as a function of the steps since the document was last trained on shows
how fast each part of the model forgets it.
"""

from __future__ import annotations

import numpy as np


def forgetting(metrics: dict, start_fraction: float = 0.5, bins: int = 6) -> dict[str, dict]:
    """Per mode: bin edges (steps since last seen), mean per-document gap and its error."""
    curve, occurrences = metrics.get("curve", []), metrics.get("r_occurrences")
    modes = list(metrics.get("modes", {}))
    if not curve or not occurrences or not modes or "R_docs" not in curve[-1].get(modes[0], {}):
        return {}
    last_step = curve[-1]["step"]
    points = [p for p in curve if p["step"] >= start_fraction * last_step]
    out = {}
    for mode in modes:
        since, excess = [], []
        for point in points:
            step, values = point["step"], point[mode]
            for doc, loss in enumerate(values["R_docs"]):
                seen = [s for s in occurrences[doc] if s < step]
                if seen:
                    since.append(step - 1 - seen[-1])
                    excess.append(values["L_H"] - loss)
        if not since:
            continue
        since_arr, excess_arr = np.array(since), np.array(excess)
        spacing = np.median([np.diff(o).mean() for o in occurrences if len(o) > 1]) \
            if any(len(o) > 1 for o in occurrences) else since_arr.max() + 1
        edges = np.linspace(0, max(spacing, 1), bins + 1)
        mean, se, centers = [], [], []
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            chosen = excess_arr[(since_arr >= lo) & (since_arr < hi)]
            if len(chosen) > 1:
                centers.append(float((lo + hi) / 2))
                mean.append(float(chosen.mean()))
                se.append(float(chosen.std(ddof=1) / np.sqrt(len(chosen))))
        out[mode] = {"since": centers, "gap": mean, "se": se}
    return out
