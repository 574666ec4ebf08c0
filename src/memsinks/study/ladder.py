"""The scale ladder: closure, in-domain loss and membership inference against model size.

Reads finished studies (each a ``results.json`` with a standard model and sink methods), counts
each one's non-embedding parameters from its standard model's saved config, groups the studies
by that count (the seeds of one rung), and writes ``ladder.json``, ``ladder.png`` and a table:
mean ± standard error over seeds where a rung has several, the run's own error over documents
where it has one.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..measure.stats import over_seeds

METRICS = (("closure_vs_standard", "closure"), ("dLH_rel_vs_standard", "L(H) vs standard"),
           ("dLV_rel_vs_standard", "L(V) vs standard"))


def non_embedding_parameters(study_dir: Path) -> int:
    """The non-embedding parameter count of a study's standard model, from its config.json."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ..model import count_non_embedding

    config_path = Path(study_dir) / "standard" / "model" / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} does not exist; pass finished study directories "
                                "with a standard model, such as runs/ladder/model.preset=small/"
                                "seed0")
    with torch.device("meta"):  # shapes only, no memory or initialisation
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(config_path.parent))
    return count_non_embedding(model)


def study_row(study_dir: Path) -> dict:
    """One study's figures: its size, standard's gap and L(H), each sink method's comparison."""
    study_dir = Path(study_dir)
    if not (study_dir / "results.json").is_file():
        raise FileNotFoundError(f"{study_dir} has no results.json; pass finished study "
                                "directories, such as runs/ladder/model.preset=small/seed0")
    results = json.loads((study_dir / "results.json").read_text())
    standard = results["methods"]["standard"]["modes"]["off"]
    row = {"dir": str(study_dir), "params": non_embedding_parameters(study_dir),
           "standard": {"gap": standard["gap"], "L_H": standard["L_H"]}, "methods": {}}
    for name, comparison in results["comparisons"].items():
        figures = {key: comparison[key] for key, _ in METRICS if key in comparison}
        mia = (results["methods"][name].get("assessment", {}).get("modes", {}).get("drop", {})
               .get("mia", {}).get("loss"))
        if mia:
            figures["auroc_drop"] = [mia["auroc"], mia["auroc_se"]]
        row["methods"][name] = figures
    return row


def ladder(study_dirs: list[Path]) -> list[dict]:
    """Rungs sorted by size, each with its seeds' figures combined."""
    rows = [study_row(d) for d in study_dirs]
    rungs = []
    for params in sorted({r["params"] for r in rows}):
        mine = [r for r in rows if r["params"] == params]
        methods = sorted({m for r in mine for m in r["methods"]})
        rungs.append({
            "params": params, "seeds": len(mine), "dirs": [r["dir"] for r in mine],
            "standard": {k: over_seeds([r["standard"][k] for r in mine]) for k in ("gap", "L_H")},
            "methods": {m: {k: over_seeds([r["methods"][m][k] for r in mine
                                         if k in r["methods"].get(m, {})])
                            for k in {k for r in mine for k in r["methods"].get(m, {})}}
                        for m in methods}})
    return rungs


def table(rungs: list[dict]) -> str:
    lines = ["| non-embedding params | seeds | standard gap | method | closure | L(H) vs standard "
             "| L(V) vs standard | MIA AUROC dropped |", "|---|---|---|---|---|---|---|---|"]

    def pct(v):
        return f"{100 * v[0]:+.1f}% ± {100 * v[1]:.1f}%" if v else "—"

    for rung in rungs:
        gap = rung["standard"]["gap"]
        for name, figures in rung["methods"].items():
            auroc = figures.get("auroc_drop")
            lines.append(f"| {rung['params'] / 1e6:.2f} M | {rung['seeds']} | {gap[0]:.2f} ± "
                         f"{gap[1]:.2f} | {name} | {pct(figures.get('closure_vs_standard'))} | "
                         f"{pct(figures.get('dLH_rel_vs_standard'))} | "
                         f"{pct(figures.get('dLV_rel_vs_standard'))} | "
                         + (f"{auroc[0]:.2f} ± {auroc[1]:.2f}" if auroc else "—") + " |")
    return "\n".join(lines)


def plot(rungs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    methods = sorted({m for r in rungs for m in r["methods"]})
    for ax, (key, label) in zip(axes, METRICS[:2], strict=True):
        for name in methods:
            points = [(r["params"], r["methods"][name][key]) for r in rungs
                      if key in r["methods"].get(name, {})]
            if points:
                x = [p for p, _ in points]
                ax.errorbar(x, [100 * v[0] for _, v in points],
                            yerr=[100 * v[1] for _, v in points], marker="o", capsize=3,
                            label=name)
        ax.set_xscale("log")
        ax.set_xlabel("non-embedding parameters")
        ax.set_ylabel(f"{label}, sinks dropped (%)")
        ax.axhline(0, color="black", lw=0.6)
        ax.legend(fontsize=7)
    axes[0].axhline(90, color="gray", lw=0.6, ls=":")
    fig.suptitle("the scale ladder: closure and in-domain held-out loss against model size",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_ladder(study_dirs: list[Path], out: Path) -> list[dict]:
    """Write ladder.json and ladder.png under ``out`` and print the table."""
    rungs = ladder([Path(d) for d in study_dirs])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ladder.json").write_text(json.dumps(rungs, indent=1))
    plot(rungs, out / "ladder.png")
    print(table(rungs))
    return rungs
