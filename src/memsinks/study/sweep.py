"""A grid over any config keys x seeds: one study per point, one table and plots for all.

Every point is an ordinary study under ``<out_dir>/<sweep name>/<point>/seed<s>``; a method
finished under the same configuration anywhere in the sweep is reused, so an interrupted sweep
resumes and the methods a key does not affect (say standard training when sweeping a sink
setting) are trained once per seed, even across sweeps sharing an ``out_dir``.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import config as config_io
from ..files import atomic_write
from ..measure.forgetting import forgetting_rate
from ..measure.stats import heldout_floor, over_seeds
from ..methods import METHODS
from .run import run_study


@dataclass
class Grid:
    keys: list[str]
    values: list[list]

    @classmethod
    def parse(cls, specs: list[str]) -> Grid:
        """``key=v1,v2,...`` strings (values read as YAML)."""
        keys, values = [], []
        for spec in specs:
            if "=" not in spec:
                raise ValueError(f"grid {spec!r} is not of the form key=v1,v2 "
                                 "(for example data.repetitions=8,32,128)")
            key, raw = spec.split("=", 1)
            items = [yaml.safe_load(v) for v in _split_values(raw)]
            if not items:
                raise ValueError(f"grid {spec!r} has no values")
            keys.append(key.strip())
            values.append(items)
        return cls(keys, values)

    def points(self) -> list[dict]:
        return [dict(zip(self.keys, combo, strict=True))
                for combo in itertools.product(*self.values)]


def _split_values(raw: str) -> list[str]:
    # commas inside [...] belong to a list value, e.g. methods=[standard,memsinks],[memsinks]
    parts, depth, current = [], 0, ""
    for char in raw:
        depth += char == "["
        depth -= char == "]"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current:
        parts.append(current)
    return [p for p in (p.strip() for p in parts) if p]


def point_name(point: dict) -> str:
    if not point:
        return "base"
    text = ",".join(f"{k}={v}" for k, v in point.items())
    return text.replace("/", "_").replace(" ", "")


def run_sweep(config_path: str | None, grid: Grid, seeds: list[int], overrides: list[str],
              name: str | None = None, progress: bool = True, jobs: int = 1) -> dict:
    """Run every (point, seed) study not finished yet; write sweep.json, sweep.md and plots."""
    base = config_io.load(config_path, overrides)
    sweep_name = name or f"sweep-{base.name}"
    root = Path(base.out_dir) / sweep_name
    rows = []
    points = grid.points()
    for point in points:
        for seed in seeds:
            extra = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
                     for k, v in point.items()]
            extra += [f"data.seed={seed}", f"train.seed={seed}",
                      f"out_dir={root / point_name(point)}", f"name=seed{seed}"]
            config = config_io.load(config_path, overrides + extra)
            if progress:
                print(f"== {point_name(point)} seed {seed}")
            # any finished method with the same configuration under out_dir is reused
            results = run_study(config, progress=progress, reuse_root=Path(base.out_dir),
                                jobs=jobs)
            rows.append({"point": point, "seed": seed, **flatten(results)})
    summary = {"name": sweep_name, "keys": grid.keys, "seeds": seeds, "overrides": overrides,
               "config": config_path, "rows": rows,
               "aggregate": aggregate(rows, points, grid.keys)}
    root.mkdir(parents=True, exist_ok=True)
    atomic_write(root / "sweep.json", json.dumps(summary, indent=1))
    write_sweep_report(root, summary)
    if progress:
        print(f"wrote {root / 'sweep.md'}")
    return summary


def flatten(results: dict) -> dict:
    """The figures a sweep tabulates, as name -> [value, standard error over documents]."""
    out = {}
    floor = heldout_floor(results)
    for method, metrics in results["methods"].items():
        for mode, values in metrics["modes"].items():
            for key in ("L_R", "L_H", "L_V", "gap"):
                out[f"{method}/{mode}/{key}"] = list(values[key])
            if floor is not None:  # how much of a loss is an unlearned domain
                for key in ("L_R", "L_H"):
                    out[f"{method}/{mode}/{key}_above_floor"] = [values[key][0] - floor,
                                                                  values[key][1]]
    for method, comparison in results["comparisons"].items():
        for key, value in comparison.items():
            out[f"{method}/{key}"] = list(value)
    for method, metrics in results["methods"].items():
        if "sink_documents" in metrics and METHODS[method].sinks:
            # distinct sink IDs trained (documents, clusters or sources): no error over documents
            out[f"{method}/sink_ids"] = [float(metrics["sink_documents"]), 0.0]
        for mode, values in metrics.get("assessment", {}).get("modes", {}).items():
            mia = values["mia"].get("loss")
            if mia is not None:  # membership inference of R against H, the LOSS attack
                out[f"{method}/{mode}/auroc_loss"] = [mia["auroc"], mia["auroc_se"]]
            extraction = values["extraction"]["R"]
            k = "32" if "32" in extraction else max(extraction, key=int)
            out[f"{method}/{mode}/extractable"] = list(extraction[k]["rate"])
        for mode, f in forgetting_rate(metrics).items():
            if math.isfinite(f["share"]):
                out[f"{method}/{mode}/forgetting"] = [f["share"], f["share_se"]]
    return out


def aggregate(rows: list[dict], points: list[dict], keys: list[str]) -> list[dict]:
    """Mean and standard error of every figure per point: over seeds when there are several,
    else the single run's error over documents."""
    out = []
    for point in points:
        mine = [r for r in rows if r["point"] == point]
        figures = sorted({k for r in mine for k in r if k not in ("point", "seed")})
        entry = {"point": point, "n_seeds": len(mine)}
        for figure in figures:
            entry[figure] = over_seeds([r[figure] for r in mine if figure in r])
        out.append(entry)
    return out


def write_sweep_report(root: Path, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    aggregate_rows = summary["aggregate"]
    sink_methods = sorted({k.split("/")[0] for row in aggregate_rows for k in row
                           if k.endswith("/closure_vs_standard")})
    refs = [r for r in ("standard", "dedup", "standard-narrow")
            if any(k.endswith(f"/dLV_rel_vs_{r}") for row in aggregate_rows for k in row)]
    lines = [f"# Sweep `{summary['name']}`", "",
             f"Config `{summary['config']}`, overrides `{' '.join(summary['overrides'])}`, "
             f"seeds {summary['seeds']}. Mean ± standard error over seeds (with one seed: the "
             "run's standard error over documents). Forgetting: the share of a repeated "
             "document's excess L(H) − L(doc) lost between two of its repetitions "
             "(`memsinks.measure.forgetting.forgetting_rate`; standard training, and the sink "
             "model with sinks dropped). L(H): held-out documents of R's domain. AUROC: membership "
             "inference of R against H by loss; extractable: share of R reproduced greedily "
             "(32 tokens from a 32-token prefix).", "",
             "| point | method | gap standard | gap dropped | closure vs standard | "
             "closure within | " + " | ".join(f"L(V) dropped − {r} (rel.)" for r in refs)
             + " | " + " | ".join(f"L(H) dropped − {r} (rel.)" for r in refs)
             + " | AUROC LOSS dropped | extractable dropped "
             "| forgetting standard | forgetting dropped |",
             "|---|---|---|---|---|---|" + "---|" * (2 * len(refs)) + "---|---|---|---|"]

    def fmt(row, key, pct=False):
        if key not in row:
            return "—"
        mean, se = row[key]
        return f"{100 * mean:+.1f}% ± {100 * se:.1f}" if pct else f"{mean:.4f} ± {se:.4f}"

    for row in aggregate_rows:
        for method in sink_methods:
            lines.append(
                f"| {point_name(row['point'])} | {method} | {fmt(row, 'standard/off/gap')} | "
                f"{fmt(row, f'{method}/drop/gap')} | "
                f"{fmt(row, f'{method}/closure_vs_standard', True)} | "
                f"{fmt(row, f'{method}/closure_within', True)} | "
                + " | ".join(fmt(row, f"{method}/dLV_rel_vs_{r}", True) for r in refs)
                + " | " + " | ".join(fmt(row, f"{method}/dLH_rel_vs_{r}", True) for r in refs)
                + f" | {fmt(row, f'{method}/drop/auroc_loss')} | "
                f"{fmt(row, f'{method}/drop/extractable', True)}"
                + f" | {fmt(row, 'standard/off/forgetting', True)} | "
                f"{fmt(row, f'{method}/drop/forgetting', True)} |")
    keys = summary["keys"]
    if len(keys) >= 1 and sink_methods:
        key = keys[0]
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        for method in sink_methods:
            for ax, figure in zip(axes, ("closure_vs_standard", "dLV_rel_vs_standard"),
                                  strict=True):
                xs, ys, es = [], [], []
                for i, row in enumerate(aggregate_rows):
                    name = f"{method}/{figure}"
                    if name in row:
                        value = row["point"].get(key)
                        xs.append(value if isinstance(value, (int, float)) else i)
                        ys.append(100 * row[name][0])
                        es.append(100 * row[name][1])
                ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=method)
        axes[0].set_ylabel("gap closed vs standard (%)")
        axes[1].set_ylabel("L(V) dropped vs standard (%)")
        for ax in axes:
            ax.set_xlabel(key)
            ax.axhline(0, color="black", lw=0.6)
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(root / "sweep.png", dpi=110)
        plt.close(fig)
        lines += ["", "![sweep](sweep.png)", ""]
    (root / "sweep.md").write_text("\n".join(lines) + "\n")
