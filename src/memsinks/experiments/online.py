"""The linear toy in time: SGD over a stream in which repeated items recur at a chosen spacing.

The full-batch toy (:mod:`memsinks.experiments.theory`) has no notion of order, so it cannot show
the paper's argument, which is about *forgetting between repetitions*: the shared neurons lose an
item's specifics while other data trains them between two of its occurrences, while its sinks,
written only by it (and by the few other examples that share them), keep them.

Here the same two-layer linear network y = W2 (m ⊙ (W1 x)) and the same task (teacher, general
subspace U, items with offsets δ_i; :func:`memsinks.experiments.theory.make_task`) are trained by
plain SGD on a stream. Every step holds ``batch`` fresh general examples (x = U z, targets T x plus
label noise, never seen again) and every item occurs ``repetitions`` times, once every ``spacing``
steps (item i first at step ⌊i · spacing / n_items⌋), so the stream is repetitions × spacing steps
long. At fixed repetitions, a larger spacing means more fresh data between two occurrences of an
item and a longer stream.

Three models start from the same weights and see the same stream:

- ``standard``: every neuron on for every example;
- ``paper``: shared neurons plus a pool of sinks; each item has its own fixed random subset of
  sinks, and so does each fresh general example (the paper: every document has an ID);
- ``extension``: as ``paper``, but general examples use the shared neurons only.

The sinks are dropped at the end (no rescaling).

Measured per spacing: memorization (the share of the offsets reproduced, as in the full-batch toy)
of the standard model, of each sink model with each item's own sinks and with the sinks dropped;
closure = 1 − memorization dropped / memorization of standard; the general loss change of the
dropped model against standard; and **forgetting per gap**: the share of an item's memorization (its
own term of the memorization sum) lost between right after one of its occurrences and right before
the next, averaged over items and gaps, for standard training, for the sink models' own-mask model
and for their drop model.

    memsinks theory --online --out runs/theory-online [online.KEY=value ...] [key=value ...]
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..measure.stats import mean_se
from .theory import DTYPE, TheoryConfig, format_mean_se, general_loss, make_task

ONLINE_VARIANTS = ("standard", "paper", "extension")


@dataclass
class OnlineConfig:
    """The online toy's stream and SGD; the task's sizes and sink split come from TheoryConfig."""

    spacings: tuple[int, ...] = (4, 8, 16, 32, 64, 128)
    """Steps between two occurrences of an item; one stream per value."""
    repetitions: int = 16
    """Occurrences of each item; the stream is repetitions x spacing steps long."""
    batch: int = 8
    """Fresh general examples per step."""
    lr: float = 0.05
    """SGD step size on the weighted mean of ½‖f(x) − y‖² over the step's examples."""
    init_scale: float = 1.0
    """Initial weights are init_scale / sqrt(fan-in) times N(0, 1): every neuron starts alive,
    as in a transformer, so a sink that few examples train can still learn."""
    item_weight: float = 4.0
    """Loss weight of an item's occurrence relative to one general example."""
    warmup: int = 256
    """Steps of general data before the first item occurs (the rule is learned first)."""

    def validate(self) -> None:
        if not self.spacings or min(self.spacings) < 1:
            raise ValueError("spacings must be a non-empty list of steps >= 1, e.g. 8,32,128")
        if self.repetitions < 2:
            raise ValueError(f"repetitions = {self.repetitions} must be at least 2 (forgetting "
                             "is measured between occurrences)")
        if self.batch < 1 or self.lr <= 0 or self.init_scale <= 0 or self.warmup < 0:
            raise ValueError("batch must be >= 1, lr and init_scale positive, warmup >= 0")


def item_memorization(offsets: torch.Tensor, excess: torch.Tensor) -> torch.Tensor:
    """Each item's share of its own offset reproduced: ⟨f(x_i) − T x_i, δ_i⟩ / ‖δ_i‖²."""
    return (excess * offsets).sum(1) / offsets.pow(2).sum(1)


def run_stream(task_config: TheoryConfig, online: OnlineConfig, spacing: int,
               seed: int) -> dict:
    """Train the three models on one stream; the memorization and forgetting of each."""
    task = make_task(task_config, "natural", seed)
    n_items, hidden = task_config.n_items, task_config.hidden
    n_shared, pool = task_config.n_shared, hidden - task_config.n_shared
    active = max(1, int(round(task_config.p_active * pool)))
    gen = torch.Generator().manual_seed(30_000 + seed)
    steps = online.warmup + online.repetitions * spacing
    first = online.warmup + (torch.arange(n_items) * spacing) // n_items
    occurs = {}  # step -> items occurring then
    for i in range(n_items):
        for k in range(online.repetitions):
            occurs.setdefault(int(first[i]) + k * spacing, []).append(i)

    def sink_mask(count: int) -> torch.Tensor:
        masks = torch.zeros(count, hidden, dtype=DTYPE)
        masks[:, :n_shared] = 1.0
        for row in masks:
            row[n_shared + torch.randperm(pool, generator=gen)[:active]] = 1.0
        return masks

    item_masks = sink_mask(n_items)
    shared = torch.zeros(hidden, dtype=DTYPE)
    shared[:n_shared] = 1.0
    init = torch.Generator().manual_seed(10_000 + seed)
    w1 = online.init_scale * torch.randn(hidden, task_config.input_dim, generator=init,
                                         dtype=DTYPE) / math.sqrt(task_config.input_dim)
    w2 = online.init_scale * torch.randn(task_config.outputs, hidden, generator=init,
                                         dtype=DTYPE) / math.sqrt(hidden)
    weights = {v: [w1.clone(), w2.clone()] for v in ONLINE_VARIANTS}
    k, c = task_config.general_dim, task_config.outputs
    rule = task.x_items @ task.teacher.T

    def memo(variant: str, mode: str) -> torch.Tensor:
        a, b = weights[variant]
        if mode == "full":
            out = task.x_items @ (b @ a).T
        elif mode == "drop":
            out = task.x_items @ (b @ (shared[:, None] * a)).T
        else:  # own: each item with its training mask
            out = torch.einsum("oh,nh,hd,nd->no", b, item_masks, a, task.x_items)
        return item_memorization(task.offsets, out - rule)

    tracked = (("standard", "full"), ("paper", "own"), ("paper", "drop"),
               ("extension", "own"), ("extension", "drop"))
    after = {key: torch.full((n_items,), math.nan, dtype=DTYPE) for key in tracked}
    forgotten: dict = {key: [] for key in tracked}
    for step in range(steps):
        z = torch.randn(online.batch, k, generator=gen, dtype=DTYPE)
        x = z @ task.basis.T
        y = x @ task.teacher.T + task_config.label_noise * torch.randn(
            online.batch, c, generator=gen, dtype=DTYPE)
        items = occurs.get(step, [])
        general = sink_mask(online.batch)  # fresh examples, fresh IDs (paper variant)
        w = torch.ones(online.batch + len(items), dtype=DTYPE)
        if items:
            x = torch.cat([x, task.x_items[items]])
            y = torch.cat([y, task.y_items[items]])
            w[online.batch:] = online.item_weight
            # a gap closes: what is left of each item's memorization since its last occurrence
            for key in tracked:
                before = memo(*key)
                for i in items:
                    if float(after[key][i]) > 0:
                        forgotten[key].append(1.0 - float(before[i] / after[key][i]))
        w = w / w.sum()
        for variant, (a, b) in weights.items():
            if variant == "standard":
                masks = None
            else:
                lead = general if variant == "paper" else shared.expand(online.batch, hidden)
                masks = torch.cat([lead, item_masks[items]]) if items else lead
            act = x @ a.T if masks is None else (x @ a.T) * masks
            residual = w[:, None] * (act @ b.T - y)
            back = residual @ b if masks is None else (residual @ b) * masks
            b -= online.lr * residual.T @ act
            a -= online.lr * back.T @ x
        for key in tracked if items else ():
            now = memo(*key)
            after[key][items] = now[items]
    if not all(torch.isfinite(t).all() for pair in weights.values() for t in pair):
        raise FloatingPointError("SGD diverged; lower lr")
    std_mem = float(memo("standard", "full").mean())
    a, b = weights["standard"]
    out: dict = {"spacing": spacing, "steps": steps,
                 "standard": {"memorization": std_mem,
                              "general_loss": general_loss(task, b @ a),
                              "forgetting": _mean(forgotten["standard", "full"])}}
    for variant in ("paper", "extension"):
        a, b = weights[variant]
        dropped = b @ (shared[:, None] * a)
        mem_drop = float(memo(variant, "drop").mean())
        gen_drop = general_loss(task, dropped)
        out[variant] = {
            "memorization_own": float(memo(variant, "own").mean()),
            "memorization_dropped": mem_drop,
            "closure": 1.0 - mem_drop / std_mem,
            "general_loss_dropped": gen_drop,
            "general_change": gen_drop - out["standard"]["general_loss"],
            "forgetting_own": _mean(forgotten[variant, "own"]),
            "forgetting_dropped": _mean(forgotten[variant, "drop"]),
        }
    return out


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def _scalars(result: dict) -> dict[str, float]:
    """One stream's result flattened to variant_quantity keys."""
    return {f"{variant}_{key}": value for variant in ONLINE_VARIANTS
            for key, value in result[variant].items()}


def run(task_config: TheoryConfig, online: OnlineConfig) -> dict:
    """Every spacing and seed; per spacing the mean ± s.e. over seeds of every quantity."""
    task_config.validate()
    online.validate()
    started = time.perf_counter()
    per_spacing: dict = {}
    for spacing in online.spacings:
        runs = [run_stream(task_config, online, spacing, seed) for seed in task_config.seeds]
        flat = [_scalars(r) for r in runs]
        per_spacing[str(spacing)] = {
            "steps": runs[0]["steps"], "per_seed": runs,
            "summary": {key: list(mean_se([f[key] for f in flat])) for key in flat[0]}}
    return {"task": dataclasses.asdict(task_config), "online": dataclasses.asdict(online),
            "per_spacing": per_spacing, "seconds": time.perf_counter() - started}


TABLE_COLUMNS = (
    ("standard: memorization", "standard_memorization", False),
    ("standard: forgetting per gap", "standard_forgetting", True),
    ("paper: forgetting per gap, own sinks", "paper_forgetting_own", True),
    ("paper: closure", "paper_closure", True),
    ("paper: general change", "paper_general_change", False),
    ("extension: forgetting per gap, own sinks", "extension_forgetting_own", True),
    ("extension: closure", "extension_closure", True),
    ("extension: general change", "extension_general_change", False),
)


def table(results: dict) -> str:
    """A markdown table: one row per spacing, mean ± s.e. over seeds."""
    lines = ["| spacing (steps) | " + " | ".join(c[0] for c in TABLE_COLUMNS) + " |",
             "|---" * (len(TABLE_COLUMNS) + 1) + "|"]
    for spacing, row in results["per_spacing"].items():
        cells = [format_mean_se(row["summary"][key], 1 if percent else 3, percent)
                 for _, key, percent in TABLE_COLUMNS]
        lines.append(f"| {spacing} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    """Closure and forgetting per gap against spacing, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spacings = [int(s) for s in results["per_spacing"]]
    rows = list(results["per_spacing"].values())
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    panels = ((axes[0], (("paper_closure", "paper (sinks for every example)", "tab:orange"),
                         ("extension_closure", "extension (sinks for items only)", "tab:green")),
               "memorization removed by the drop vs standard (%)"),
              (axes[1], (("standard_forgetting", "standard", "tab:blue"),
                         ("paper_forgetting_own", "paper, own sinks", "tab:orange"),
                         ("extension_forgetting_own", "extension, own sinks", "tab:green")),
               "share of an item's memorization lost per gap (%)"))
    for ax, series, label in panels:
        for key, name, color in series:
            mean = np.array([100 * r["summary"][key][0] for r in rows])
            se = np.nan_to_num(np.array([100 * r["summary"][key][1] for r in rows]))
            ax.errorbar(spacings, mean, yerr=se, marker="o", color=color, label=name,
                        capsize=3)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("steps between two occurrences of an item")
        ax.set_ylabel(label)
        ax.axhline(0.0, color="gray", linewidth=0.6)
        ax.legend(fontsize=7)
    fig.suptitle(f"online linear toy, mean ± s.e. over {len(results['task']['seeds'])} seeds",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the online toy, write results.json and online.png under --out, print the table."""
    import argparse
    import json
    import sys

    from .theory import parse_overrides

    parser = argparse.ArgumentParser(prog="memsinks theory --online",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/theory-online", help="output folder")
    parser.add_argument("overrides", nargs="*",
                        help="OnlineConfig fields as online.KEY=value (online.spacings=8,32), "
                        "TheoryConfig fields as key=value (hidden=128, p_active=0.1, seeds=0,1)")
    args = parser.parse_args(argv)
    prefix = "online."
    try:
        online = parse_overrides([p[len(prefix):] for p in args.overrides
                                  if p.startswith(prefix)], OnlineConfig())
        task_config = parse_overrides([p for p in args.overrides if not p.startswith(prefix)])
        torch.set_num_threads(1)
        results = run(task_config, online)
    except (ValueError, FloatingPointError) as error:
        print(f"memsinks theory --online: error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results["command"] = " ".join(["memsinks theory --online --out", str(out), *args.overrides])
    (out / "results.json").write_text(json.dumps(results, indent=1, allow_nan=True) + "\n")
    plot(results, out / "online.png")
    print(table(results))
    print(f"\n{len(task_config.seeds)} seeds, {results['seconds']:.1f} s; "
          f"wrote {out / 'results.json'} and {out / 'online.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
