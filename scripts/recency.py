"""Closure by how long ago each repeated document was last trained on, from a finished study.

    python scripts/recency.py runs/spacing-a/data.repeat_window=0.125/seed0 \
        --out docs/data/learnable/spacing/recency-w0.125.json

Packing a document's repetitions into a window (``data.repeat_window``) changes two things at
once: the spacing between its occurrences, and how long before the end of training it was last
seen (a document whose window closed early has had the rest of the run to be forgotten). This
separates them. For every document of R it reads the final per-document losses (each method's
``nll.npz``) and the step of its last occurrence, bins the documents by steps since then, and
per bin gives standard training's gap L(H) − L(R_bin) and, for each sink method with its sinks
dropped, the gap and closure 1 − gap_drop / gap_standard (H is the whole held-out set in every
bin). Errors: standard error over the bin's documents (the gaps), and for closure a bootstrap
over them (H held fixed, so smaller than a study's paired error, which resamples H too). With
every document in one bin the closure is the study's own.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from memsinks.config import load, mixture_of
from memsinks.methods import METHODS

EDGES = (0, 128, 256, 512, 1024, 2048, 1 << 30)


def recency(study: Path, resamples: int = 1000, seed: int = 0) -> dict:
    config = load(str(study / "config.yaml"))
    mixture = mixture_of(config)
    counts = {"R": mixture.repeated.predicted_tokens, "H": mixture.heldout.predicted_tokens}
    stream = mixture.stream(False)
    rows = np.nonzero(stream < 0)[0]
    codes = stream[rows]
    last = np.array([rows[codes == -(i + 1)].max() // config.train.batch_size
                     for i in range(len(mixture.repeated))])
    since = config.train.steps - 1 - last

    def losses(method: str, mode: str) -> tuple[np.ndarray, float]:
        with np.load(study / method / "nll.npz") as nll:
            per_doc = nll[f"{mode}/R"] / counts["R"]
            heldout = float(nll[f"{mode}/H"].sum() / counts["H"].sum())
        return per_doc, heldout

    standard_r, standard_h = losses("standard", "off")
    sinks = [m for m in config.methods if METHODS[m].removable
             and (study / m / "nll.npz").is_file()]
    dropped = {m: losses(m, "drop") for m in sinks}
    rng = np.random.default_rng(seed)
    bins = []
    for lo, hi in zip(EDGES[:-1], EDGES[1:], strict=True):
        docs = np.nonzero((since >= lo) & (since < hi))[0]
        if len(docs) < 2:
            continue

        def mean(values: np.ndarray, pick: np.ndarray = docs) -> float:
            return float(np.average(values[pick], weights=counts["R"][pick]))

        gap = standard_h - mean(standard_r)
        row = {"since": [lo, hi if hi < EDGES[-1] else None], "documents": int(len(docs)),
               "standard_gap": [gap, float(np.std(standard_h - standard_r[docs], ddof=1)
                                           / np.sqrt(len(docs)))]}
        for method, (r, h) in dropped.items():
            drop_gap = h - mean(r)
            boot = []
            for _ in range(resamples):
                pick = rng.choice(docs, len(docs))
                boot.append(1 - (h - mean(r, pick)) / (standard_h - mean(standard_r, pick)))
            row[method] = {"gap": drop_gap, "closure": [1 - drop_gap / gap,
                                                        float(np.std(boot, ddof=1))]}
        bins.append(row)
    return {"study": str(study), "repeat_window": config.data.repeat_window,
            "spacing_steps": config.data.repeat_window * config.data.repeat_span
            * config.train.steps / config.data.repetitions,
            "mean_since": float(since.mean()), "bins": bins}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    results = [recency(study) for study in args.studies]
    for result in results:
        print(f"{result['study']}: window {result['repeat_window']}, spacing "
              f"{result['spacing_steps']:.0f} steps, mean steps since last seen "
              f"{result['mean_since']:.0f}")
        for row in result["bins"]:
            hi = row["since"][1]
            parts = [f"  since [{row['since'][0]}, {hi if hi else 'end'}): "
                     f"{row['documents']:4d} docs, standard gap {row['standard_gap'][0]:.3f}"]
            for key, value in row.items():
                if isinstance(value, dict):
                    parts.append(f"{key} closure {100 * value['closure'][0]:.1f}% ± "
                                 f"{100 * value['closure'][1]:.1f}%")
            print("; ".join(parts))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results if len(results) > 1 else results[0], indent=1))


if __name__ == "__main__":
    main()
