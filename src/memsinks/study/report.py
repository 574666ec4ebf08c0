"""results.json -> report.md with a table, learning curves and a bar chart of the gap."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..measure.forgetting import forgetting_rate  # noqa: E402
from ..methods import METHODS  # noqa: E402

MODE_NAMES = {"off": "full model", "keep": "sinks kept (x p_active)", "drop": "sinks dropped",
              "own": "own training mask"}


def _pm(pair: list[float], digits: int = 4) -> str:
    return f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"


def _pct(pair: list[float]) -> str:
    return f"{100 * pair[0]:+.1f}% ± {100 * pair[1]:.1f}%"


def plot_curves(results: dict, path: Path) -> None:
    methods = results["methods"]
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 3.4), sharey=True,
                             squeeze=False)
    floor = results["entropy_floor"]["H"]
    late = [p[mode][key] for m in methods.values() for p in m["curve"][1:]
            for mode in m["modes"] if mode != "keep" for key in ("L_R", "L_H")]
    for ax, (name, metrics) in zip(axes[0], methods.items(), strict=True):
        curve = metrics["curve"]
        steps = [p["step"] for p in curve]
        for mode in metrics["modes"]:
            if mode == "keep":  # "own" shows the model as trained, "drop" what is left
                continue
            style = "--" if mode == "drop" else "-"
            for key, color in (("L_R", "tab:red"), ("L_H", "tab:blue")):
                ax.plot(steps, [p[mode][key] for p in curve], style, color=color,
                        label=f"{key[2]} ({MODE_NAMES[mode]})")
        ax.axhline(floor, color="gray", lw=0.8, ls=":", label="entropy floor (H)")
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    if late:  # the first evaluation is far above the rest; keep the interesting range
        axes[0][0].set_ylim(min(min(late), floor) - 0.05, max(late) * 1.1)
    axes[0][0].set_ylabel("NLL per token (nats)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_gap(results: dict, path: Path) -> None:
    labels, values, errors = [], [], []
    for name, metrics in results["methods"].items():
        for mode, m in metrics["modes"].items():
            labels.append(name if mode == "off" else f"{name}\n{mode}")
            values.append(m["gap"][0])
            errors.append(m["gap"][1])
    fig, ax = plt.subplots(figsize=(1.1 * len(labels) + 1.5, 3.4))
    ax.bar(range(len(labels)), values, yerr=errors, capsize=3,
           color=["tab:gray" if "\n" not in lab else "tab:green" for lab in labels])
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel("gap L(H) - L(R) (nats/token)")
    ax.set_title("memorization gap (error bars: 1 s.e.)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _mode_name(method: str, mode: str) -> str:
    if method == "gradient-mask" and mode == "drop":
        return "masked pool zeroed"
    return MODE_NAMES.get(mode, mode)


def _rate(pair: list[float]) -> str:
    mean, se = pair
    return f"{100 * mean:.1f}% ± {100 * se:.1f}" if mean == mean else "—"


def memorization_table(results: dict) -> list[str]:
    """Extraction, membership inference, exposure, relearning and cost per method and mode."""
    rows = [(name, m) for name, m in results["methods"].items() if m.get("assessment")]
    if not rows:
        return []
    canary = results["config"]["data"]["repeated_kind"] == "canary"
    base = results["methods"].get("standard", {}).get("train_seconds")
    head = ("| method | mode | extractable R (k=32) | extractable H | ROUGE-L R | "
            "AUROC LOSS | AUROC zlib | AUROC Min-K% | AUROC Min-K%++ | TPR@1%FPR (LOSS) | "
            + ("exposure (bits) | " if canary else "") + "relearn steps (own level / standard's) | "
            "cost vs standard |")
    lines = ["", "## Memorization beyond loss", "", head,
             "|---|---|" + "---|" * (head.count("|") - 3)]
    for name, m in rows:
        a = m["assessment"]
        relearn = a.get("relearn")

        def count(result: dict | None) -> str:
            if result is None:
                return "—"
            return (str(result["steps"]) if result["steps"] is not None
                    else f"> {result['max_steps']}")

        steps = count(relearn)
        if a.get("relearn_standard") is not None:
            steps += f" / {count(a['relearn_standard'])}"
        cost = f"{m['train_seconds'] / base:.2f}×" if base and "train_seconds" in m else "—"
        for mode, v in a["modes"].items():
            r, h = v["extraction"]["R"], v["extraction"]["H"]
            k = "32" if "32" in r else max(r, key=int)
            mia = v["mia"]
            cells = [_rate(r[k]["rate"]), _rate(h[k]["rate"]), f"{r[k]['rouge_l'][0]:.3f}"]
            cells += [f"{mia[s]['auroc']:.3f} ± {mia[s]['auroc_se']:.3f}" if s in mia else "—"
                      for s in ("loss", "zlib", "min_k", "min_k_plus_plus")]
            cells.append(f"{100 * mia['loss']['tpr_at_fpr']:.1f}%")
            if canary:
                e = v.get("exposure")
                cells.append(f"{e['extrapolated_mean']:.1f} ± {e['extrapolated_se']:.1f}"
                             if e else "—")
            removed = mode == "drop" or (relearn is not None and mode == "off"
                                         and name == "dedup")
            cells += [steps if removed else "", cost]
            lines.append(f"| {name} | {_mode_name(name, mode)} | " + " | ".join(cells) + " |")
    lines += ["", "Extraction: greedy decoding from BOS + a document's first 32 tokens reproduces "
              "its next 32 exactly (H, never trained on, is the floor). Membership inference "
              "scores R (members) against H (non-members); AUROC ± bootstrap s.e.; with "
              f"{results['config']['data']['n_repeated']} non-members TPR at 1% FPR is TPR at "
              "the highest non-member score. Relearning: fine-tuning steps on R until L(R) is "
              "back at its level before removal (the model as trained: each document with its "
              "own sinks; standard training's for dedup), and, after the slash, until it is "
              "back at standard training's L(R), the yardstick of dedup and post-hoc methods. "
              "Cost: training time relative to standard (the same steps of the same batch "
              "size; Goldfish's dropped tokens still cost their forward and backward pass)."]
    return lines


def _verdict(pair: list[float], holds) -> str:
    """'yes' / 'no' on the mean, and whether two standard errors could change the answer."""
    mean, se = pair
    answer, sure = holds(mean), holds(mean - 2 * se) == holds(mean + 2 * se)
    return ("yes" if answer else "no") + ("" if sure else " (within 2 s.e.)")


def claims_table(comparisons: dict) -> list[str]:
    """The paper's three claims for each method in ``comparisons`` (the sink methods; a
    zeroed gradient-masking pool makes R harder than H, a "closure" above 100% that answers
    nothing)."""
    rows = []
    for name, c in comparisons.items():
        if "closure_vs_standard" not in c:
            continue
        cells = [f"{_pct(c['closure_vs_standard'])}: "
                 + _verdict(c["closure_vs_standard"], lambda x: x >= 0.5)]
        for key in ("V", "H"):
            rel = f"dL{key}_rel_vs_standard"
            cells.append(f"{_pct(c[rel])}: " + _verdict(c[rel], lambda x: x <= 0.01)
                         if rel in c else "—")
            rel = f"dL{key}_rel_vs_dedup"
            cells.append(f"{_pct(c[rel])}: " + _verdict(c[rel], lambda x: x < 0)
                         if rel in c else "— (dedup not in this study)")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return ["## The paper's three claims, in this study", "",
            "| method (memorization removed) | 1. gap closed vs standard ≥ 50% | "
            "2. L(V) vs standard ≤ +1% | 3. L(V) vs dedup < 0 | "
            "2'. L(H) vs standard ≤ +1% | 3'. L(H) vs dedup < 0 |",
            "|---|---|---|---|---|---|", *rows, "",
            "Sink methods with their sinks dropped; ± one standard error over documents "
            "(paired). V is the general validation set; H holds held-out documents of R's "
            "domain (the paper validates on held-out documents of the repeated domain, which "
            "is the stream's only source of it in its setting). \"within 2 s.e.\": the answer "
            "could change within two standard errors. Details below.", ""]


def render(results: dict) -> str:
    cfg = results["config"]
    data, train = cfg["data"], cfg["train"]
    floor = results["entropy_floor"]
    if data.get("general_source"):
        source = (f"`{data.get('repeated_source') or data['general_source']}`", "`"
                  + data["general_source"] + "`")
    else:
        source = (f"`{data['repeated_domain']}`", ", ".join(data["general_domains"]))
    lines = [
        f"# Study `{results['name']}`",
        "",
        f"{data['n_repeated']} {data['repeated_kind']} documents from {source[0]}"
        f" repeated {data['repetitions']} times in a stream of {results['stream']['documents']:,}"
        f" documents ({100 * results['stream']['repeated_share']:.1f}% repeats); general data "
        f"from {source[1]}. Model preset `{cfg['model']['preset']}`, "
        f"{train['steps']} steps of {train['batch_size']} documents, lr {train['lr']}, seed "
        f"{train['seed']}; sinks p_shared {cfg['sinks']['p_shared']}, p_active "
        f"{cfg['sinks']['p_active']}, drop rescale `{cfg['sinks']['drop_rescale']}`.",
        "",
        (f"Entropy floor (the generator's exact NLL per token): H {floor['H']:.4f}, "
         f"R {floor['R']:.4f}, V {floor['V']:.4f}. " if floor["H"] == floor["H"] else "")
        + "Losses are nats per token ± one standard error over documents.",
        "",
    ]
    start = cfg["model"].get("init_from")
    if start:
        base = results.get("base")
        origin = (f"a base pretrained by this study ({base['steps']} steps on general documents "
                  f"only; L(R) {_pm(base['L_R'])}, L(H) {_pm(base['L_H'])}, L(V) "
                  f"{_pm(base['L_V'])})" if base else f"`{start}`")
        lines += [f"Every method fine-tunes {origin}; sink methods widen its MLPs by a sink "
                  "pool whose output columns start at zero.", ""]
    lines += claims_table({name: c for name, c in results.get("comparisons", {}).items()
                           if METHODS[name].sinks})
    lines += [
        "| method | mode | L(R) | L(H) | L(V) | gap L(H)-L(R) | tokens/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in results["methods"].items():
        for mode, v in m["modes"].items():
            lines.append(f"| {name} | {_mode_name(name, mode)} | {_pm(v['L_R'])} | "
                         f"{_pm(v['L_H'])} | {_pm(v['L_V'])} | {_pm(v['gap'])} | "
                         f"{m['tokens_per_s']:.0f} |")
    comparisons = results.get("comparisons", {})
    if comparisons:
        refs = [r for r in ("standard", "dedup", "standard-narrow")
                if any(f"dLV_vs_{r}" in c for c in comparisons.values())]
        lines += ["", "## Does dropping the sinks remove the memorization?", "",
                  "| method | gap closed vs standard | gap closed within model (keep→drop) | "
                  + " | ".join(f"L(V) dropped − {r}" for r in refs) + " |",
                  "|---|---|---|" + "---|" * len(refs)]
        for name, c in comparisons.items():
            closure = _pct(c["closure_vs_standard"]) if "closure_vs_standard" in c else "—"
            cells = [f"{_pm(c[f'dLV_vs_{r}'])} ({_pct(c[f'dLV_rel_vs_{r}'])})"
                     if f"dLV_vs_{r}" in c else "—" for r in refs]
            lines.append(f"| {name} | {closure} | {_pct(c['closure_within'])} | "
                         + " | ".join(cells) + " |")
        lines += ["", "Closure = (Gap_standard − Gap_dropped) / Gap_standard, error from a "
                  "paired bootstrap over documents; L(V) differences are paired over the same "
                  "validation documents (negative = the dropped model is better)."]
    lines += memorization_table(results)
    lines += ["", "## Learning curves", "", "![learning curves](curves.png)", "",
              "L(R) and L(H) on evaluation subsets during training: the memorization gap opening "
              "over training; for sink models, solid lines use each document's own training "
              "mask (the model as trained) and dashed lines drop the sinks.", "",
              "## Memorization gap", "", "![gap](gap.png)", ""]
    table = forgetting_table(results)
    if table:
        lines += ["## Forgetting between repetitions", "", "![forgetting](forgetting.png)", "",
                  "Each repeated document's excess over the held-out loss, L(H) − L(doc), "
                  "against the steps since it was last trained on, pooled over the evaluations "
                  "of the second half of training, with each document's and each evaluation's "
                  "mean removed (± 1 s.e.; the levels are the gaps above). A falling line is "
                  "forgetting.", "", *table]
    return "\n".join(lines)


def forgetting_table(results: dict) -> list[str]:
    """How much of its excess a repeated document loses between two repetitions."""
    rows, spacing = [], None
    for name, metrics in results["methods"].items():
        for mode, f in forgetting_rate(metrics).items():
            spacing = f["spacing"]
            if mode == "keep":
                continue
            share = (f"{100 * f['share']:+.1f}% ± {100 * f['share_se']:.1f}%"
                     if math.isfinite(f["share"]) else "—")
            rows.append(f"| {name} | {MODE_NAMES[mode]} | {f['mean_excess']:.4f} | "
                        f"{f['lost']:+.4f} ± {f['lost_se']:.4f} | {share} |")
    if not rows:
        return []
    return ["| method | mode | mean excess L(H) − L(doc) | excess lost between repetitions "
            "| share of the excess |", "|---|---|---|---|---|", *rows, "",
            "The same evaluations, as a regression of a document's excess on the steps since it "
            "was last trained on, with per-document and per-evaluation effects removed; "
            "\"lost\" is minus the slope times the spacing between repetitions"
            + (f" ({spacing:.0f} steps)" if spacing else "") + ": positive means the document is "
            "forgotten between its repetitions. Errors: bootstrap over documents.", ""]


def plot_forgetting(results: dict, path: Path) -> bool:
    series = {name: forgetting_rate(m, resamples=2) for name, m in results["methods"].items()}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for name, per_mode in series.items():
        for mode, f in per_mode.items():
            if name == "dedup" or mode == "keep":
                continue
            centred = np.array(f["excess"]) - f["mean_excess"]
            ax.errorbar(f["since"], centred, yerr=f["excess_se"], marker="o", ms=3, capsize=2,
                        label=f"{name} ({MODE_NAMES[mode]})",
                        ls="--" if mode == "drop" else "-")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("steps since the document was last trained on")
    ax.set_ylabel("L(H) − L(doc), minus its mean")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(run_dir: Path, results: dict | None = None) -> Path:
    """Write report.md, curves.png and gap.png next to results.json."""
    run_dir = Path(run_dir)
    if results is None:
        path = run_dir / "results.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist; run `memsinks run` first")
        results = json.loads(path.read_text())
    plot_curves(results, run_dir / "curves.png")
    plot_gap(results, run_dir / "gap.png")
    plot_forgetting(results, run_dir / "forgetting.png")
    out = run_dir / "report.md"
    out.write_text(render(results))
    return out
