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

from ..config import mixture_of, study_config_of
from ..files import atomic_write
from ..measure.losses import SETS, sets_of
from ..measure.stats import bootstrap_closure, mean_nll, over_seeds, paired_difference


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
        other = study_config_of(method_dir).data
        if other != config.data and not _same_sets(sets, sets_of(mixture_of(
                study_config_of(method_dir)))):
            raise ValueError(f"{method_dir} is evaluated on other documents than {standard_dir} "
                             "(its R, H or V differ); compare runs of the same data seed, "
                             "repeated documents and held-out sets")
        mode, sums = _sums(method_dir)
        row = {"label": label_of(method_dir, root), "dir": str(method_dir), "mode": mode,
               "closure": list(bootstrap_closure(standard, sums, counts))}
        for key in ("H", "V"):
            diff, se = paired_difference(sums[key], standard[key], counts[key])
            row[f"dL{key}_rel"] = [diff / base[key], se / base[key]]
            row[f"L_{key}"] = list(mean_nll(sums[key], counts[key]))
        rows.append(row)
    return {"standard": str(standard_dir), "standard_losses": base, "rows": rows,
            "stopped_early": stopped_early(standard_dir)}


def stopped_early(standard_dir: Path) -> list[dict]:
    """Standard training stopped at each evaluation step, read from its learning curve: the
    share of the final gap not yet opened, and L(H) and L(V) against the final model.

    A reference for any removal method: what the same training gives without its last steps.
    The curve is measured on the first ``train.eval_docs`` documents of each set, so these are
    relative to the curve's own final point, not to the full-set losses above.
    """
    curve = json.loads((Path(standard_dir) / "metrics.json").read_text()).get("curve", [])
    if not curve:
        return []
    points = [(p["step"], p["off"]) for p in curve if "off" in p]
    final = points[-1][1]
    final_gap = final["L_H"] - final["L_R"]
    return [{"step": step, "closure": 1 - (o["L_H"] - o["L_R"]) / final_gap,
             "dLH_rel": o["L_H"] / final["L_H"] - 1, "dLV_rel": o["L_V"] / final["L_V"] - 1}
            for step, o in points]


def _same_sets(a: dict, b: dict) -> bool:
    """Whether two studies score the same R, H and V documents (their streams may differ, as
    with fewer repetitions of the same documents)."""
    return all(len(a[k]) == len(b[k]) and all(np.array_equal(x, y) for x, y in
                                               zip(a[k].tokens, b[k].tokens, strict=True))
               for k in SETS)


def table(result: dict) -> str:
    seeds = result.get("seeds")
    lines = ([f"mean ± s.e. over seeds {', '.join(map(str, seeds))}; per seed: closure / L(H)",
              ""] if seeds else [])
    lines += ["| model | closure vs standard | L(H) − standard | L(V) − standard |"
              + (" per seed |" if seeds else ""), "|---|---|---|---|" + ("---|" if seeds else "")]
    for row in result["rows"]:
        cells = [f"{100 * row[k][0]:+.1f}% ± {100 * row[k][1]:.1f}%"
                 for k in ("closure", "dLH_rel", "dLV_rel")]
        if seeds:
            cells.append(", ".join(f"{100 * c:.1f} / {100 * h:+.1f}" for c, h in
                                   zip(row["closure_seeds"], row["dLH_rel_seeds"], strict=True)))
        lines.append(f"| {row['label']} ({row['mode']}) | " + " | ".join(cells) + " |")
    early = result.get("stopped_early") or []
    if early:
        lines += ["", "standard training stopped early (its learning curve, eval documents):", "",
                  "| step | closure of the final gap | L(H) − final | L(V) − final |",
                  "|---|---|---|---|"]
        lines += [f"| {p['step']} | {100 * p['closure']:+.1f}% | {100 * p['dLH_rel']:+.1f}% | "
                  f"{100 * p['dLV_rel']:+.1f}% |" for p in early]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    right = max([100 * r["closure"][0] for r in result["rows"]] + [90])
    for row in result["rows"]:
        x, y = 100 * row["closure"][0], 100 * row["dLH_rel"][0]
        # squares: models without sinks (dedup, other streams), scored as trained
        ax.errorbar(x, y, xerr=100 * row["closure"][1], yerr=100 * row["dLH_rel"][1],
                    marker="s" if row["mode"] == "off" else "o", capsize=2)
        left = x > 0.6 * right  # labels of the rightmost points go to their left
        ax.annotate(row["label"], (x, y), fontsize=6, xytext=(-3 if left else 3, 3),
                    textcoords="offset points", ha="right" if left else "left")
    early = [p for p in result.get("stopped_early") or [] if p["closure"] > 0]
    if early:
        xs, ys = [100 * p["closure"] for p in early], [100 * p["dLH_rel"] for p in early]
        ax.plot(xs, ys, color="gray", lw=0.8, ls="--", marker=".",
                label="standard stopped early (step)")
        for p, x, y in zip(early, xs, ys, strict=True):
            ax.annotate(str(p["step"]), (x, y), fontsize=5, color="gray", xytext=(2, -6),
                        textcoords="offset points")
        ax.legend(fontsize=6, loc="upper left")
    ax.axhline(0, color="black", lw=0.6)
    ax.axvline(90, color="gray", lw=0.6, ls=":")
    ax.set_xlabel("gap closed vs standard, sinks dropped (%)")
    ax.set_ylabel("in-domain held-out loss L(H) vs standard (%)")
    ax.set_title("closure against in-domain loss (target: right of 90%, at or below 0)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def combine_seeds(per_seed: list[dict]) -> dict:
    """Rows matched by label across seeds: mean ± s.e. over seeds of each figure."""
    labels = [row["label"] for row in per_seed[0]["rows"]]
    rows = []
    for i, label in enumerate(labels):
        mine = [result["rows"][i] for result in per_seed]
        row = {"label": label, "mode": mine[0]["mode"], "dirs": [r["dir"] for r in mine]}
        for key in ("closure", "dLH_rel", "dLV_rel"):
            row[key] = over_seeds([r[key] for r in mine])
            row[f"{key}_seeds"] = [r[key][0] for r in mine]
        rows.append(row)
    early = []
    curves = [result.get("stopped_early") or [] for result in per_seed]
    for i, point in enumerate(curves[0]):
        same = [c[i] for c in curves if len(c) > i and c[i]["step"] == point["step"]]
        if len(same) == len(curves):
            early.append({"step": point["step"], **{k: float(np.mean([p[k] for p in same]))
                                                     for k in ("closure", "dLH_rel", "dLV_rel")}})
    return {"standard": [r["standard"] for r in per_seed], "rows": rows,
            "stopped_early": early, "per_seed": per_seed}


def run_frontier(standard_dir: Path | str, method_dirs: list[Path | str], out: Path,
                 seeds: list[int] | None = None) -> dict:
    """Compare, write frontier.json and frontier.png under ``out``, print the table.

    With ``seeds``, every path is a pattern with ``{seed}`` in it: each seed is compared on its
    own and the rows are combined (mean ± s.e. over seeds).
    """
    if seeds:
        missing = [str(d) for d in [standard_dir, *method_dirs] if "{seed}" not in str(d)]
        if missing:
            raise ValueError(f"with --seeds every directory needs a {{seed}} placeholder, as in "
                             f"runs/x/seed{{seed}}/standard; {missing[0]} has none")
        result = combine_seeds([compare_runs(
            Path(str(standard_dir).format(seed=s)), [Path(str(d).format(seed=s))
                                                     for d in method_dirs]) for s in seeds])
        result["seeds"] = list(seeds)
    else:
        result = compare_runs(Path(standard_dir), [Path(d) for d in method_dirs])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "frontier.json", json.dumps(result, indent=1))
    plot(result, out / "frontier.png")
    print(table(result))
    return result
