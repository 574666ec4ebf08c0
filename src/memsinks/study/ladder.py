"""The scale ladder: closure, in-domain loss and membership inference against model size and
training tokens.

Reads finished studies (each a ``results.json`` with a standard model and sink methods), counts
each one's non-embedding parameters from its standard model's saved config and its training
tokens from standard training's record, groups the studies by (parameters, training
documents) (the seeds of one rung), and writes ``ladder.json``, ``ladder.png`` and a table:
mean ± standard error over seeds where a rung has several, the run's own error over documents
where it has one. Each rung also gives standard training's L(H) and L(R) above the entropy
floor of H, so that a reader sees how much of the gap is an unlearned domain and how much is
memorization.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..measure.stats import heldout_floor, over_seeds

METRICS = (("closure_vs_standard", "closure"), ("dLH_rel_vs_standard", "L(H) vs standard"),
           ("dLV_rel_vs_standard", "L(V) vs standard"))


def non_embedding_parameters(study_dir: Path, results: dict | None = None) -> int:
    """The non-embedding parameter count of a study's standard model, from its config.json,
    or, for a study kept without its models (a summary under docs/data), from the model
    section of its results.json (a model built from scratch: shapes only)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ..model import ModelConfig, build_model, count_non_embedding

    config_path = Path(study_dir) / "standard" / "model" / "config.json"
    model_config = (results or {}).get("config", {}).get("model")
    with torch.device("meta"):  # shapes only, no memory or initialisation
        if config_path.is_file():
            model = AutoModelForCausalLM.from_config(
                AutoConfig.from_pretrained(config_path.parent))
        elif model_config and not model_config.get("init_from"):
            # the embeddings are not counted, so any vocabulary gives the same count
            model = build_model(ModelConfig(**model_config), vocab_size=256, seed=0)
        else:
            raise FileNotFoundError(f"{config_path} does not exist; pass finished study "
                                    "directories with a standard model, such as "
                                    "runs/ladder/model.preset=small/seed0")
    return count_non_embedding(model)


def study_row(study_dir: Path) -> dict:
    """One study's figures: its size, standard's gap and L(H), each sink method's comparison."""
    study_dir = Path(study_dir)
    if not (study_dir / "results.json").is_file():
        raise FileNotFoundError(f"{study_dir} has no results.json; pass finished study "
                                "directories, such as runs/ladder/model.preset=small/seed0")
    results = json.loads((study_dir / "results.json").read_text())
    standard = results["methods"]["standard"]["modes"]["off"]
    floor = heldout_floor(results)
    figures = {"gap": standard["gap"], "L_H": standard["L_H"]}
    if floor is not None:  # a text corpus has none
        figures |= {"L_H_above_floor": [standard["L_H"][0] - floor, standard["L_H"][1]],
                    "L_R_above_floor": [standard["L_R"][0] - floor, standard["L_R"][1]]}
    row = {"dir": str(study_dir), "params": non_embedding_parameters(study_dir, results),
           "tokens": int(results["methods"]["standard"]["tokens"]),
           "documents": _documents(results),
           "standard": figures, "methods": {}}
    for name, comparison in results["comparisons"].items():
        figures = {key: comparison[key] for key, _ in METRICS if key in comparison}
        mia = (results["methods"][name].get("assessment", {}).get("modes", {}).get("drop", {})
               .get("mia", {}).get("loss"))
        if mia:
            figures["auroc_drop"] = [mia["auroc"], mia["auroc_se"]]
        row["methods"][name] = figures
    return row


def _documents(results: dict) -> int:
    """Standard training's budget in documents (steps x batch size); the token count when the
    config does not say (an older summary)."""
    train = results.get("config", {}).get("train", {})
    if "steps" in train and "batch_size" in train:
        return int(train["steps"]) * int(train["batch_size"])
    return int(results["methods"]["standard"]["tokens"])


def ladder(study_dirs: list[Path]) -> list[dict]:
    """Rungs sorted by size, then training tokens, each with its seeds' figures combined."""
    rows = [study_row(d) for d in study_dirs]
    rungs = []
    # a rung is a size and a training budget in documents: each seed's stream tokenizes to a
    # slightly different token count, so tokens are the seeds' mean
    for params, documents in sorted({(r["params"], r["documents"]) for r in rows}):
        mine = [r for r in rows if (r["params"], r["documents"]) == (params, documents)]
        methods = sorted({m for r in mine for m in r["methods"]})
        shared = set.intersection(*(set(r["standard"]) for r in mine))
        tokens = sum(r["tokens"] for r in mine) / len(mine)
        rungs.append({
            "params": params, "documents": documents, "tokens": tokens,
            "tokens_per_param": tokens / params,
            "seeds": len(mine), "dirs": [r["dir"] for r in mine],
            "standard": {k: over_seeds([r["standard"][k] for r in mine]) for k in sorted(shared)},
            "methods": {m: {k: over_seeds([r["methods"][m][k] for r in mine
                                         if k in r["methods"].get(m, {})])
                            for k in {k for r in mine for k in r["methods"].get(m, {})}}
                        for m in methods}})
    return rungs


def budget_groups(rungs: list[dict], tolerance: float = 0.1) -> dict[int, float]:
    """Rungs at a matched ratio of tokens to parameters: each rung's index to its group's
    ratio (the group's mean). Two sizes trained at "the same" ratio differ a little (each
    stream tokenizes to its own count), so ratios within ``tolerance`` of a group's smallest
    one share it."""
    order = sorted(range(len(rungs)), key=lambda i: rungs[i]["tokens_per_param"])
    groups: list[list[int]] = []
    for i in order:
        ratio = rungs[i]["tokens_per_param"]
        if groups and ratio <= rungs[groups[-1][0]]["tokens_per_param"] * (1 + tolerance):
            groups[-1].append(i)
        else:
            groups.append([i])
    return {i: sum(rungs[j]["tokens_per_param"] for j in group) / len(group)
            for group in groups for i in group}


def table(rungs: list[dict]) -> str:
    lines = ["| non-embedding params | tokens per param | seeds | standard gap | standard L(H) "
             "− floor | standard L(R) − floor | method | closure | L(H) vs standard "
             "| L(V) vs standard | MIA AUROC dropped |", "|---" * 11 + "|"]

    def pct(v):
        return f"{100 * v[0]:+.1f}% ± {100 * v[1]:.1f}%" if v else "—"

    def nats(v):
        return f"{v[0]:.2f} ± {v[1]:.2f}" if v else "—"

    for rung in rungs:
        std = rung["standard"]
        for name, figures in rung["methods"].items():
            auroc = figures.get("auroc_drop")
            lines.append(f"| {rung['params'] / 1e6:.2f} M | {rung['tokens_per_param']:.2f} | "
                         f"{rung['seeds']} | {nats(std['gap'])} | "
                         f"{nats(std.get('L_H_above_floor'))} | "
                         f"{nats(std.get('L_R_above_floor'))} | "
                         f"{name} | {pct(figures.get('closure_vs_standard'))} | "
                         f"{pct(figures.get('dLH_rel_vs_standard'))} | "
                         f"{pct(figures.get('dLV_rel_vs_standard'))} | "
                         + (f"{auroc[0]:.2f} ± {auroc[1]:.2f}" if auroc else "—") + " |")
    return "\n".join(lines)


def plot(rungs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    methods = sorted({m for r in rungs for m in r["methods"]})
    matched = budget_groups(rungs)
    ratio_of = {id(r): matched[i] for i, r in enumerate(rungs)}
    # left: against size, one line per method and matched budget (tokens per parameter);
    # right: against tokens per parameter, one line per method and size
    axis_of = (("params", "non-embedding parameters",
                lambda r: f"{ratio_of[id(r)]:.2g} tok/param"),
               ("tokens_per_param", "training tokens per non-embedding parameter",
                lambda r: f"{r['params'] / 1e6:.2g} M"))
    for row, (key, label) in enumerate(METRICS[:2]):
        for col, (x_key, x_label, group_of) in enumerate(axis_of):
            ax = axes[row][col]
            for name in methods:
                groups: dict[str, list] = {}
                for r in rungs:
                    if key in r["methods"].get(name, {}):
                        groups.setdefault(group_of(r), []).append(r)
                for group, members in groups.items():
                    members.sort(key=lambda r: r[x_key])
                    values = [r["methods"][name][key] for r in members]
                    ax.errorbar([r[x_key] for r in members], [100 * v[0] for v in values],
                                yerr=[100 * v[1] for v in values], marker="o", capsize=3,
                                label=f"{name}, {group}")
            ax.set_xscale("log")
            ax.set_xlabel(x_label)
            ax.set_ylabel(f"{label}, sinks dropped (%)")
            ax.axhline(0, color="black", lw=0.6)
            ax.legend(fontsize=6)
    for ax in axes[0]:
        ax.axhline(90, color="gray", lw=0.6, ls=":")
    fig.suptitle("the scale ladder: closure and in-domain held-out loss against model size "
                 "and training tokens", fontsize=9)
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
