"""Sink models from separate studies against one standard model: closure against the losses.

A sweep over sink settings trains its sink models in studies of their own; this reads their
per-document losses (``nll.npz``) next to a standard model trained on the same data, and answers
the question a sink setting is chosen by: how much of standard training's gap does dropping the
sinks close, and what does it cost on in-domain held-out documents (H) and on V?
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .evaluate import bootstrap_closure, mean_nll, paired_difference
from .experiment import SETS, mixture_of, sets_of, study_config_of


def _sums(method_dir: Path, mode: str | None = None) -> tuple[str, dict[str, np.ndarray]]:
    path = Path(method_dir) / "nll.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; pass finished method directories, such "
                                "as runs/default/memsinks-repeated")
    with np.load(path) as data:
        modes = {key.split("/")[0] for key in data.files}
        mode = mode or ("drop" if "drop" in modes else "off")
        if mode not in modes:
            raise ValueError(f"{method_dir} has no mode {mode!r} (it has {', '.join(modes)})")
        return mode, {k: data[f"{mode}/{k}"] for k in SETS}


def label_of(method_dir: Path, root: Path) -> str:
    """A short name: the path below ``root`` without the seed and sweep-point folders."""
    parts = Path(method_dir).resolve().relative_to(root).parts
    return "/".join(p for p in parts if p != "base" and not p.startswith("seed"))


def compare_runs(standard_dir: Path, method_dirs: list[Path]) -> dict:
    """Closure and loss differences of every method (sinks dropped) against ``standard_dir``."""
    config = study_config_of(standard_dir)
    sets = sets_of(mixture_of(config))
    counts = {k: s.predicted_tokens for k, s in sets.items()}
    _, standard = _sums(standard_dir, "off")
    base = {k: mean_nll(standard[k], counts[k])[0] for k in SETS}
    root = Path(os.path.commonpath([Path(d).resolve() for d in [standard_dir, *method_dirs]]))
    rows = []
    for method_dir in method_dirs:
        if study_config_of(method_dir).data != config.data:
            raise ValueError(f"{method_dir} was trained on other data than {standard_dir} (their "
                             "data sections differ); compare runs of the same data and seed")
        mode, sums = _sums(method_dir)
        row = {"label": label_of(method_dir, root), "dir": str(method_dir), "mode": mode,
               "closure": list(bootstrap_closure(standard, sums, counts))}
        for key in ("H", "V"):
            diff, se = paired_difference(sums[key], standard[key], counts[key])
            row[f"dL{key}_rel"] = [diff / base[key], se / base[key]]
            row[f"L_{key}"] = list(mean_nll(sums[key], counts[key]))
        rows.append(row)
    return {"standard": str(standard_dir), "standard_losses": base, "rows": rows}


def table(result: dict) -> str:
    lines = ["| model | closure vs standard | L(H) − standard | L(V) − standard |",
             "|---|---|---|---|"]
    for row in result["rows"]:
        cells = [f"{100 * row[k][0]:+.1f}% ± {100 * row[k][1]:.1f}%"
                 for k in ("closure", "dLH_rel", "dLV_rel")]
        lines.append(f"| {row['label']} ({row['mode']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in result["rows"]:
        x, y = 100 * row["closure"][0], 100 * row["dLH_rel"][0]
        ax.errorbar(x, y, xerr=100 * row["closure"][1], yerr=100 * row["dLH_rel"][1],
                    marker="o", capsize=2)
        ax.annotate(row["label"], (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.axhline(0, color="black", lw=0.6)
    ax.axvline(90, color="gray", lw=0.6, ls=":")
    ax.set_xlabel("gap closed vs standard, sinks dropped (%)")
    ax.set_ylabel("in-domain held-out loss L(H) vs standard (%)")
    ax.set_title("closure against in-domain loss (target: right of 90%, at or below 0)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_frontier(standard_dir: Path, method_dirs: list[Path], out: Path) -> dict:
    """Compare, write frontier.json and frontier.png under ``out``, print the table."""
    result = compare_runs(Path(standard_dir), [Path(d) for d in method_dirs])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "frontier.json").write_text(json.dumps(result, indent=1))
    plot(result, out / "frontier.png")
    print(table(result))
    return result
