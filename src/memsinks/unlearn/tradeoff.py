"""The strength sweep of every post-hoc baseline on one or two studies (natural R, canary R):
memorization left on R (gap = L(H) - L(R)) against general ability (L(V)), one curve per
method, with the standard model, MemSinks with its sinks dropped and deduplication as points.

Writes tradeoff.json, tradeoff.md and tradeoff.png; every unlearned model's result file
stays under RUN_DIR/standard/unlearn/, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from .. import config as config_io
from ..files import atomic_write
from . import METHODS, get
from .runner import load_target, unlearn

# (label, method in results.json, mode, marker, colour)
REFERENCES = (
    ("standard", "standard", "off", "*", "black"),
    ("MemSinks, sinks dropped", "memsinks", "drop", "D", "tab:red"),
    ("MemSinks-repeated (extension), sinks dropped", "memsinks-repeated", "drop", "P",
     "tab:purple"),
    ("deduplication", "dedup", "off", "s", "tab:blue"),
)
PANEL_ORDER = ("natural", "canary")


def parse_values(text: str) -> list[float]:
    values = [v for v in text.split(",") if v.strip()]
    try:
        return [float(v) for v in values]
    except ValueError:
        raise ValueError(f"strengths {text!r} are not numbers; write them as 0.01,0.1 or "
                         "5,10,20") from None


def strength_grids(items: list[str] | None, methods: list[str]) -> dict[str, list[float]]:
    """Each method's grid: its default, unless an item ``METHOD=v1,v2`` names it."""
    grids = {name: list(get(name).default_grid) for name in methods}
    for item in items or []:
        if item == "default":
            continue
        if "=" not in item:
            raise ValueError(f"--strengths {item!r} is neither 'default' nor METHOD=v1,v2 "
                             "(for example npo=5,10)")
        name, values = item.split("=", 1)
        get(name)
        if name not in grids:
            raise ValueError(f"--strengths names {name}, which is not among --methods; add it "
                             "there or drop its strengths")
        grids[name] = parse_values(values)
        for value in grids[name]:
            get(name).check_strength(value)
    return grids


def method_params(items: list[str] | None) -> dict[str, dict[str, str]]:
    """``METHOD.key=value`` items grouped by method."""
    out: dict[str, dict[str, str]] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        name, dot, field = key.partition(".")
        if not sep or not dot:
            raise ValueError(f"--param {item!r} is not of the form METHOD.key=value "
                             "(for example npo.lr=3e-4)")
        get(name)
        out.setdefault(name, {})[field] = value
    return out


def reference_points(run_dir: Path) -> dict[str, dict]:
    """The standard, MemSinks-dropped and dedup points of a study's results.json."""
    path = run_dir / "results.json"
    if not path.is_file():
        return {}
    methods = json.loads(path.read_text()).get("methods", {})
    out = {}
    for label, name, mode, _, _ in REFERENCES:
        values = methods.get(name, {}).get("modes", {}).get(mode)
        if values is not None:
            out[label] = {k: values[k] for k in ("gap", "L_R", "L_H", "L_V")}
            assessed = (methods[name].get("assessment") or {}).get("modes", {}).get(mode)
            if assessed is not None:
                rates = assessed["extraction"]["R"]
                k = "32" if "32" in rates else max(rates, key=int)
                out[label]["extraction"] = {"rate": rates[k]["rate"]}
            assessment = methods[name].get("assessment") or {}
            # the post-hoc methods' yardstick: back to standard training's L(R)
            relearn = assessment.get("relearn_standard") or assessment.get("relearn")
            if relearn is not None and (mode != "off" or name == "dedup"):
                out[label]["relearn"] = relearn
    return out


RELEARN_BUDGET = 1.10  # relearning is measured at the strongest point within +10% of L(V)


def relearn_choice(points: list[dict], before: dict | None) -> dict | None:
    """The strongest point whose L(V) is within RELEARN_BUDGET of the trained model's."""
    if before is None or not points:
        return None
    budget = RELEARN_BUDGET * before["L_V"][0]
    inside = [p for p in points if p["L_V"][0] <= budget]
    return max(inside, key=lambda p: p["strength"]) if inside else min(
        points, key=lambda p: p["strength"])


def sweep_seconds(name: str, points: list[dict], kind: str = "") -> float:
    """What a whole grid costs, in wall (kind "") or CPU (kind "cpu_") seconds: methods whose
    strengths share one computation (one scoring, one fine-tuning run) pay for the largest,
    the rest for every strength; every strength pays for its evaluation."""
    own = [p[f"{kind or 'wall_'}seconds"] for p in points]
    total = max(own, default=0.0) if get(name).sweep_shares_work else sum(own)
    return total + sum(p[f"eval_{kind}seconds"] for p in points)


def run_tradeoff(run_dirs: list[Path], methods: list[str] | None = None,
                 strengths: list[str] | None = None, params: list[str] | None = None,
                 out: Path | None = None, progress: bool = True) -> dict:
    """Sweep every method on each study's standard model; write the JSON, table and figure."""
    if not 1 <= len(run_dirs) <= 2:
        raise ValueError(f"tradeoff takes one or two study directories (natural and canary R), "
                         f"not {len(run_dirs)}")
    methods = list(methods or METHODS)
    for name in methods:
        get(name)
    grids = strength_grids(strengths, methods)
    overrides = method_params(params)
    panels: dict[str, dict] = {}
    for run_dir in map(Path, run_dirs):
        config_path = run_dir / "config.yaml"
        if not config_path.is_file():
            raise FileNotFoundError(f"{config_path} does not exist; pass a study directory "
                                    "written by `memsinks run`, such as runs/default")
        kind = config_io.load(config_path).data.repeated_kind
        if kind in panels:
            raise ValueError(f"{run_dir} and {panels[kind]['run_dir']} both have {kind} R; pass "
                             "one natural and one canary study")
        target = load_target(run_dir / "standard")
        per_method = {}
        for name in methods:
            started = time.perf_counter()
            results = unlearn(target, name, grids[name], overrides.get(name), progress=progress)
            points = [{k: r.get(k, float("nan")) for k in (
                "strength", "gap", "L_R", "L_H", "L_V", "extraction", "wall_seconds",
                "cpu_seconds", "eval_seconds", "eval_cpu_seconds")} for r in results]
            chosen = relearn_choice(points, target.before)
            if chosen is not None:
                again = unlearn(target, name, [chosen["strength"]], overrides.get(name),
                                progress=progress, relearn=True)[0]
                chosen["relearn"] = again.get("relearn")
            per_method[name] = {
                "strength_name": get(name).strength_name,
                "params": results[0]["params"] if results else {},
                "points": points,
                "sweep_seconds": sweep_seconds(name, points),
                "sweep_cpu_seconds": sweep_seconds(name, points, "cpu_"),
                "elapsed_seconds_this_call": time.perf_counter() - started,
            }
        panels[kind] = {"run_dir": str(run_dir), "references": reference_points(run_dir),
                        "methods": per_method}
    result = {"panels": {k: panels[k] for k in PANEL_ORDER if k in panels},
              "threads": torch.get_num_threads()}
    out = Path(out) if out is not None else Path(run_dirs[0])
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "tradeoff.json", json.dumps(result, indent=1))
    atomic_write(out / "tradeoff.md", render(result))
    plot(result, out / "tradeoff.png")
    if progress:
        print(f"wrote {out / 'tradeoff.json'}, {out / 'tradeoff.md'} and {out / 'tradeoff.png'}")
    return result


def _pm(pair: list[float]) -> str:
    return f"{pair[0]:.4f} ± {pair[1]:.4f}"


def _extracted(point: dict) -> str:
    value = point.get("extraction")
    if not isinstance(value, dict):
        return "—"
    mean, se = value["rate"]
    return f"{100 * mean:.1f}% ± {100 * se:.1f}"


def _relearned(point: dict) -> str:
    relearn = point.get("relearn")
    if not relearn:
        return ""
    return str(relearn["steps"]) if relearn["steps"] is not None else f"> {relearn['max_steps']}"


def render(result: dict) -> str:
    lines = ["# Post-hoc baselines: memorization left against general ability", "",
             "gap = L(H) - L(R) on the repeated set R (memorization left; lower is better), "
             "L(V) = validation loss (general ability; lower is better), nats per token, "
             "± one standard error over documents. Seconds: producing the unlearned model "
             "from the trained one (evaluation excluded), wall clock and CPU (all threads; "
             "robust to other load on the machine); a sweep's seconds include its "
             "evaluations and count shared work (one scoring, one fine-tuning run) once. "
             "Extractable R: greedy continuation of 32 tokens from BOS + the first 32 "
             "reproduces a document exactly. Relearn steps: fine-tuning on R (lr 1e-3, 16 "
             "documents a step) until L(R) is back at the trained model's, measured for each "
             "method at its strongest point within +10% of the trained model's L(V); for the "
             "reference models, until L(R) is back at standard training's.", ""]
    for kind, panel in result["panels"].items():
        lines += [f"## {kind} R (`{panel['run_dir']}`)", "",
                  "| model | gap | L(V) | L(R) | extractable R | relearn steps |",
                  "|---|---|---|---|---|---|"]
        for label, ref in panel["references"].items():
            lines.append(f"| {label} | {_pm(ref['gap'])} | {_pm(ref['L_V'])} | "
                         f"{ref['L_R'][0]:.4f} | {_extracted(ref)} | {_relearned(ref)} |")
        missing = [label for label, *_ in REFERENCES if label not in panel["references"]]
        if missing:
            lines += ["", f"Not in this study's results.json: {', '.join(missing)}."]
        lines += ["", "| method | strength | gap | L(V) | L(R) | extractable R | relearn steps "
                  "| seconds | CPU seconds |", "|---|---|---|---|---|---|---|---|---|"]
        for name, entry in panel["methods"].items():
            for p in entry["points"]:
                lines.append(f"| {name} | {p['strength']:g} | {_pm(p['gap'])} | "
                             f"{_pm(p['L_V'])} | {p['L_R'][0]:.4f} | {_extracted(p)} | "
                             f"{_relearned(p)} | {p['wall_seconds']:.1f} | "
                             f"{p['cpu_seconds']:.1f} |")
        lines += ["", "| method | strength is | sweep seconds | sweep CPU seconds |",
                  "|---|---|---|---|"]
        for name, entry in panel["methods"].items():
            lines.append(f"| {name} | {entry['strength_name']} | {entry['sweep_seconds']:.1f} | "
                         f"{entry['sweep_cpu_seconds']:.1f} |")
        lines.append(f"| all | | {sum(e['sweep_seconds'] for e in panel['methods'].values()):.1f} "
                     f"| {sum(e['sweep_cpu_seconds'] for e in panel['methods'].values()):.1f} |")
        lines.append("")
    lines.append(f"Torch threads: {result['threads']}.")
    return "\n".join(lines) + "\n"


METRICS = (("gap", "gap L(H) - L(R): memorization left"),
           ("extraction", "extractable R (k=32): memorization left"))


def _value(point: dict, metric: str) -> tuple[float, float] | None:
    if metric == "gap":
        return tuple(point["gap"])
    value = point.get("extraction")
    return tuple(value["rate"]) if isinstance(value, dict) else None


def plot(result: dict, path: Path) -> None:
    """Rows: gap and extraction rate against L(V); columns: natural and canary R."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = result["panels"]
    fig, axes = plt.subplots(len(METRICS), len(panels), figsize=(6.0 * len(panels), 9.4),
                             squeeze=False)
    colours = plt.get_cmap("Dark2")  # apart from the references' black, red and blue
    for row, (metric, ylabel) in enumerate(METRICS):
        for ax, (kind, panel) in zip(axes[row], panels.items(), strict=True):
            refs = panel["references"]
            ref_lv = [r["L_V"][0] for r in refs.values()]
            all_lv = [p["L_V"][0] for e in panel["methods"].values() for p in e["points"]]
            low = min(all_lv + ref_lv)
            # ascent can drive L(V) far off; keep the axes on the interesting range
            high = max(ref_lv) + 0.5 if ref_lv else max(all_lv)
            shown_values: list[float] = []
            clipped = 0
            for index, (name, entry) in enumerate(panel["methods"].items()):
                points = sorted(entry["points"], key=lambda p: p["strength"])
                shown = [p for p in points
                         if p["L_V"][0] <= high and _value(p, metric) is not None]
                clipped += len(points) - len(shown)
                values = [_value(p, metric) for p in shown]
                shown_values += [v[0] for v in values]
                ax.errorbar([p["L_V"][0] for p in shown], [v[0] for v in values],
                            yerr=[v[1] for v in values], marker="o", ms=4, lw=1.2,
                            capsize=2, color=colours(index % 8), label=name)
            for label, _, _, marker, colour in REFERENCES:
                ref = refs.get(label)
                value = _value(ref, metric) if ref is not None else None
                if value is None:
                    continue
                shown_values.append(value[0])
                ax.errorbar([ref["L_V"][0]], [value[0]], xerr=[ref["L_V"][1]],
                            yerr=[value[1]], marker=marker, ms=11, color=colour,
                            ls="none", label=label, zorder=5)
            ax.axhline(0, color="gray", lw=0.8, ls=":")
            ax.set_xlim(low - 0.02 * (high - low + 1e-3), high)
            bottom, top = min([0.0, *shown_values]), max([0.0, *shown_values])
            margin = 0.08 * (top - bottom + 1e-3)
            ax.set_ylim(bottom - margin, top + margin)
            title = f"{kind} R"
            if clipped:
                plural = "s" * (clipped > 1)
                title += f" ({clipped} point{plural} not shown; see tradeoff.md)"
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("L(V): validation loss (nats/token)")
            ax.set_ylabel(ylabel)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes.flat[1:]:  # a reference missing from the first panel still gets its entry
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
