"""The theory as a runnable experiment: where a two-layer linear network stores memorized items.

A toy version of the paper's linear-network argument, in under half a minute on one CPU core.
A network y = W2 (m ⊙ (W1 x)) with hidden width ``hidden`` is trained by full-batch gradient
descent from a small initialisation on

- a general task: inputs x = U z drawn from a ``general_dim``-dimensional subspace U of
  R^``input_dim`` (z ~ N(0, I)), targets from a fixed linear rule T (the teacher) plus label
  noise;
- ``n_items`` memorized items, each repeated ``repetitions`` times (its weight in the loss), with
  targets T x_i + δ_i: a random offset δ_i the rule does not predict (the "specifics").
  *Natural* items have typical general inputs (x_i = U z_i, optionally plus a weak private
  feature); *canaries* have inputs as long, along unused directions orthogonal to U; *domain*
  items live in a second subspace V that the general data never visits, where the teacher has
  a second rule (the repeated items are the only source of that rule, as in the paper's regime
  where repeated documents are the only source of their domain).

By default the rule writes the first ``rule_outputs`` output coordinates and the offsets live in
the other ``offset_outputs``, so that the only overlap between an item and the general task is
the one the argument is about, in the inputs (``offsets_in_rule_outputs`` puts them everywhere).
The general subspace is the first coordinates; gradient descent from an isotropic Gaussian
initialisation is rotation-equivariant in input space, so a random U would give the same
statistics.

Measured (the kinds share the teacher, general data, offsets and initial weights):

- the minimum-norm least-squares solution (pinv), which gradient descent from zero reaches: how
  much deleting the items' stored offsets from it changes the general function (exactly 0 for
  canaries);
- post-hoc ablation after standard training: hidden directions (the eigenvectors of the
  memorization attribution, the k-dimensional hidden subspace whose ablation removes the most
  memorization) or the network's own neurons (ranked by their attribution), removed top-k
  first: the general loss increase against the share of memorization removed;
- sequence-tied dropout: shared neurons plus a sink pool; each item gets a fixed random subset
  of sinks; general examples get none (``extension``, this project's variant) or their own fixed
  random subset (``paper``). Sinks are dropped afterwards, without rescaling;
- the same for natural items with a private feature of each size in ``private_sweep``.

General loss is the population excess risk relative to the rule's output energy,
E‖f(x) − T x‖² / E‖T x‖² over x = U z, exact for a linear network. Memorization is the share of
the offsets the network reproduces, Σ_i ⟨f(x_i) − T x_i, δ_i⟩ / Σ_i ‖δ_i‖².

    python -m memsinks.experiments.theory --out runs/theory [key=value ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from ..coerce import coerce
from ..measure.stats import mean_se

KINDS = ("natural", "canary", "domain")
SINK_VARIANTS = ("extension", "paper", "centered")
BASES = ("directions", "neurons")
MATCHED_REMOVAL = (0.25, 0.5, 0.75)
DTYPE = torch.float64


@dataclass
class TheoryConfig:
    """The toy's sizes, training and sink split; the defaults take ~30 s on one core."""

    input_dim: int = 64
    general_dim: int = 8
    rule_outputs: int = 16
    offset_outputs: int = 16
    offsets_in_rule_outputs: bool = False  # offsets over all outputs instead of their own
    n_general: int = 256
    n_items: int = 16
    repetitions: float = 32.0  # loss weight of each item relative to one general example
    label_noise: float = 0.5  # std of the general targets' noise, every output
    offset_scale: float = 1.0  # E‖δ‖² = offset_scale² · E‖T x‖²
    private_scale: float = 0.0  # natural items' own feature: x_i = U z_i + s e_i
    domain_dim: int = 4  # "domain" items live in a second subspace V with its own rule
    hidden: int = 64
    init_scale: float = 1e-3  # std of every initial weight
    lr: float = 0.05  # lr x steps = 200 units of gradient-flow time (docs/theory.md)
    steps: int = 4000
    p_shared: float = 0.7  # share of hidden neurons that are shared; the rest is the sink pool
    p_active: float = 0.3  # share of the sink pool switched on for one example
    seeds: tuple[int, ...] = (0, 1, 2)
    private_sweep: tuple[float, ...] = (0.1, 0.3, 1.0)  # extra private_scale runs, natural items

    def validate(self) -> None:
        if not 0 < self.general_dim < self.input_dim:
            raise ValueError("general_dim must be between 0 and input_dim")
        if self.domain_dim < 1 or (self.general_dim + self.domain_dim + self.n_items
                                   > self.input_dim):
            raise ValueError("need domain_dim >= 1 and general_dim + domain_dim + n_items <= "
                             "input_dim (canaries take unused directions)")
        if self.offset_outputs < 1 and not self.offsets_in_rule_outputs:
            raise ValueError("offset_outputs must be >= 1 unless offsets_in_rule_outputs")
        if not 0 < self.p_shared < 1 or not 0 < self.p_active <= 1:
            raise ValueError("p_shared must be in (0, 1) and p_active in (0, 1]")
        if not self.seeds:
            raise ValueError("seeds must not be empty")

    @property
    def outputs(self) -> int:
        return self.rule_outputs + self.offset_outputs

    @property
    def n_shared(self) -> int:
        return int(round(self.p_shared * self.hidden))


@dataclass
class Task:
    """One draw of the toy: the rule, general training data and memorized items of one kind."""

    kind: str
    teacher: torch.Tensor  # (outputs, input_dim): t(x) = teacher @ x
    basis: torch.Tensor  # (input_dim, general_dim): U, orthonormal columns
    domain_basis: torch.Tensor  # (input_dim, domain_dim): V, where only "domain" items live
    x_general: torch.Tensor
    y_general: torch.Tensor
    x_items: torch.Tensor
    offsets: torch.Tensor  # δ_i, (n_items, outputs)
    repetitions: float

    @property
    def y_items(self) -> torch.Tensor:
        return self.x_items @ self.teacher.T + self.offsets

    def training_set(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inputs, targets and loss weights (summing to 1) of general examples then items."""
        x = torch.cat([self.x_general, self.x_items])
        y = torch.cat([self.y_general, self.y_items])
        w = torch.cat([torch.ones(len(self.x_general), dtype=DTYPE),
                       torch.full((len(self.x_items),), float(self.repetitions), dtype=DTYPE)])
        return x, y, w / w.sum()


def make_task(config: TheoryConfig, kind: str, seed: int) -> Task:
    """The task of one kind for one seed; every kind of a seed shares all but the item inputs.

    Items: *natural* x_i = U z_i (+ private_scale along an unused direction of its own);
    *canary* ‖U z_i‖ times an unused direction of its own (orthogonal to U and V); *domain*
    x_i = V z'_i with as long an input, in a subspace V the general data never visits, where
    the teacher has a second rule. Targets are always T x_i + δ_i.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    gen = torch.Generator().manual_seed(seed)
    d, k, kd, c = config.input_dim, config.general_dim, config.domain_dim, config.outputs

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=DTYPE)

    eye = torch.eye(d, dtype=DTYPE)
    basis, domain_basis = eye[:, :k], eye[:, k:k + kd]
    teacher = torch.zeros(c, d, dtype=DTYPE)
    teacher[: config.rule_outputs, :k] = normal(config.rule_outputs, k) / math.sqrt(k)
    teacher[: config.rule_outputs, k:k + kd] = normal(config.rule_outputs, kd) / math.sqrt(k)
    x_general = normal(config.n_general, k) @ basis.T
    y_general = x_general @ teacher.T + config.label_noise * normal(config.n_general, c)
    z_items = normal(config.n_items, k)
    z_domain = normal(config.n_items, kd) * math.sqrt(k / kd)
    unused = k + kd + torch.randperm(d - k - kd, generator=gen)[: config.n_items]
    signal = float((teacher @ basis).pow(2).sum())  # E‖T x‖² for x = U z
    if config.offsets_in_rule_outputs:
        offsets = normal(config.n_items, c) * math.sqrt(signal / c)
    else:
        offsets = torch.zeros(config.n_items, c, dtype=DTYPE)
        offsets[:, config.rule_outputs:] = (normal(config.n_items, config.offset_outputs)
                                            * math.sqrt(signal / config.offset_outputs))
    offsets = config.offset_scale * offsets
    rows = torch.arange(config.n_items)
    x_items = torch.zeros(config.n_items, d, dtype=DTYPE)
    if kind == "natural":
        x_items += z_items @ basis.T
        x_items[rows, unused] += config.private_scale
    elif kind == "canary":
        x_items[rows, unused] = z_items.norm(dim=1)
    else:
        x_items += z_domain @ domain_basis.T
    return Task(kind, teacher, basis, domain_basis, x_general, y_general, x_items, offsets,
                config.repetitions)


# ---------------------------------------------------------------- closed forms and training


def min_norm_solution(x: torch.Tensor, y: torch.Tensor,
                      weights: torch.Tensor | None = None) -> torch.Tensor:
    """W (outputs x inputs) minimising Σ w_i ‖W x_i − y_i‖² with the least ‖W‖_F (pinv).

    Gradient descent from W = 0 converges to it: its rows never leave the span of the inputs.
    """
    root = torch.ones(len(x), dtype=x.dtype) if weights is None else weights.sqrt()
    return (torch.linalg.pinv(root[:, None] * x) @ (root[:, None] * y)).T


def train_linear(x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None,
                 lr: float = 0.1, steps: int = 2000) -> torch.Tensor:
    """One-layer linear model trained by full-batch gradient descent from zero on ½Σ w_i‖·‖²."""
    w = torch.full((len(x),), 1.0 / len(x), dtype=x.dtype) if weights is None else weights
    weight = torch.zeros(y.shape[1], x.shape[1], dtype=x.dtype)
    for _ in range(steps):
        residual = w[:, None] * (x @ weight.T - y)
        weight -= lr * residual.T @ x
    return weight


def train_two_layer(x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, hidden: int,
                    init_scale: float, lr: float, steps: int, seed: int,
                    masks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(W1, W2) of y = W2 (m ⊙ (W1 x)) trained by full-batch gradient descent on ½Σ w_i‖·‖².

    ``masks`` (examples x hidden, 0/1) is each example's fixed mask (None: every neuron on).
    The initialisation depends only on ``seed`` and the shapes, so models trained with and
    without masks start from the same weights.
    """
    gen = torch.Generator().manual_seed(10_000 + seed)
    w1 = init_scale * torch.randn(hidden, x.shape[1], generator=gen, dtype=x.dtype)
    w2 = init_scale * torch.randn(y.shape[1], hidden, generator=gen, dtype=x.dtype)
    wcol = weights[:, None]
    for _ in range(steps):
        act = x @ w1.T
        if masks is not None:
            act = act * masks
        residual = wcol * (act @ w2.T - y)
        back = residual @ w2
        if masks is not None:
            back = back * masks
        w2 -= lr * residual.T @ act
        w1 -= lr * back.T @ x
    if not (torch.isfinite(w1).all() and torch.isfinite(w2).all()):
        raise FloatingPointError("training diverged; lower lr")
    return w1, w2


# ---------------------------------------------------------------------------- measurements


def general_loss(task: Task, weight: torch.Tensor) -> float:
    """Excess general risk of the linear map ``weight``, relative: E‖(W − T) U z‖² / E‖T U z‖²."""
    error = (weight - task.teacher) @ task.basis
    return float(error.pow(2).sum() / (task.teacher @ task.basis).pow(2).sum())


def domain_loss(task: Task, weight: torch.Tensor) -> float:
    """The same on the domain subspace V: E‖(W − T) V z‖² / E‖T V z‖² (1 = rule not learned)."""
    error = (weight - task.teacher) @ task.domain_basis
    return float(error.pow(2).sum() / (task.teacher @ task.domain_basis).pow(2).sum())


def memorization(task: Task, predictions: torch.Tensor) -> float:
    """Share of the offsets reproduced: Σ ⟨f(x_i) − T x_i, δ_i⟩ / Σ ‖δ_i‖²."""
    excess = predictions - task.x_items @ task.teacher.T
    return float((excess * task.offsets).sum() / task.offsets.pow(2).sum())


def storage_interference(task: Task) -> float:
    """General loss caused by the offsets stored in the min-norm solution, relative to E‖Tx‖².

    Min-norm least squares is linear in the targets, so the offsets' share of the solution is
    the solution for targets that are zero on general examples and δ_i on the items. Its effect
    on general inputs is exactly zero when the items' inputs are orthogonal to U.
    """
    x, _, w = task.training_set()
    targets = torch.cat([torch.zeros_like(task.y_general), task.offsets])
    stored = min_norm_solution(x, targets, w)
    return float((stored @ task.basis).pow(2).sum() / (task.teacher @ task.basis).pow(2).sum())


def attribution(task: Task, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """Symmetric (hidden x hidden) A with u^T A u = memorization removed by ablating direction u.

    Its diagonal ranks the network's own neurons; its top-k eigenvectors span the k-dimensional
    hidden subspace whose ablation removes the most memorization.
    """
    act = task.x_items @ w1.T
    form = w2.T @ task.offsets.T @ act / task.offsets.pow(2).sum()
    return 0.5 * (form + form.T)


def ablation_curve(task: Task, w1: torch.Tensor, w2: torch.Tensor, basis: str) -> dict:
    """Memorization removed and general loss added by ablating the top-k units, k = 0..hidden."""
    score = attribution(task, w1, w2)
    if basis == "directions":
        values, vectors = torch.linalg.eigh(score)
        units = vectors[:, torch.argsort(values, descending=True)]
    elif basis == "neurons":
        units = torch.eye(len(score), dtype=score.dtype)[:, torch.argsort(score.diagonal(),
                                                                       descending=True)]
    else:
        raise ValueError(f"basis must be one of {BASES}")
    full = w2 @ w1
    gen0 = general_loss(task, full)
    mem0 = memorization(task, task.x_items @ full.T)
    dom0 = domain_loss(task, full)
    removed, added, domain_added = [], [], []
    for k in range(len(score) + 1):
        keep = torch.eye(len(score), dtype=score.dtype) - units[:, :k] @ units[:, :k].T
        weight = w2 @ keep @ w1
        removed.append(1.0 - memorization(task, task.x_items @ weight.T) / mem0)
        added.append(general_loss(task, weight) - gen0)
        domain_added.append(domain_loss(task, weight) - dom0)
    return {"removed": removed, "general_added": added, "domain_added": domain_added}


def cost_at(curve: dict, level: float, key: str = "general_added") -> float:
    """Loss added (``key``) when the curve first removes ``level`` of memorization, interpolated."""
    removed, added = curve["removed"], curve[key]
    for k in range(1, len(removed)):
        if removed[k] >= level > removed[k - 1]:
            share = (level - removed[k - 1]) / (removed[k] - removed[k - 1])
            return added[k - 1] + share * (added[k] - added[k - 1])
    return math.nan


def sink_masks(config: TheoryConfig, n_general: int, n_items: int, variant: str,
               seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed per-example masks (general, items): shared neurons on, plus a random sink subset.

    Every item gets round(p_active · pool) sinks; general examples get none (``extension``) or
    their own subset of the same size (``paper``). ``centered``: as ``extension``, with each
    item's sink mask centred (its sinks x(1 - a), the rest of the pool x(-a), a the active
    share), so the items' masks average to zero and hold nothing the items share.
    """
    if variant not in SINK_VARIANTS:
        raise ValueError(f"variant must be one of {SINK_VARIANTS}")
    gen = torch.Generator().manual_seed(20_000 + seed)
    n_shared, pool = config.n_shared, config.hidden - config.n_shared
    active = max(1, int(round(config.p_active * pool)))

    def draw(count: int, with_sinks: bool) -> torch.Tensor:
        masks = torch.zeros(count, config.hidden, dtype=DTYPE)
        masks[:, :n_shared] = 1.0
        if with_sinks:
            for row in masks:
                row[n_shared + torch.randperm(pool, generator=gen)[:active]] = 1.0
        return masks

    general = draw(n_general, variant == "paper")  # first: the generator's order is the seed's
    items = draw(n_items, True)
    if variant == "centered":
        items[:, n_shared:] -= active / pool
    return general, items


def _masked(w1: torch.Tensor, w2: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return w2 @ (mask[:, None] * w1)


# ------------------------------------------------------------------------------- the study


def run_seed(config: TheoryConfig, kind: str, seed: int,
             variants: tuple[str, ...] = SINK_VARIANTS) -> dict:
    """Every measurement of one kind and seed: min-norm solution, standard training, ablation,
    and one sink model per variant (all from the same initial weights)."""
    task = make_task(config, kind, seed)
    x, y, w = task.training_set()
    train = dict(hidden=config.hidden, init_scale=config.init_scale, lr=config.lr,
                 steps=config.steps, seed=seed)
    w1, w2 = train_two_layer(x, y, w, **train)
    product = w2 @ w1
    pinv = min_norm_solution(x, y, w)
    out: dict = {
        "min_norm": {
            "storage_interference": storage_interference(task),
            "general_loss": general_loss(task, pinv),
            "memorization": memorization(task, task.x_items @ pinv.T),
            "trained_vs_min_norm": float((product - pinv).norm() / pinv.norm()),
        },
        "standard": {"general_loss": general_loss(task, product),
                     "domain_loss": domain_loss(task, product),
                     "memorization": memorization(task, task.x_items @ product.T)},
        "ablation": {},
        "sinks": {},
    }
    for basis in BASES:
        curve = ablation_curve(task, w1, w2, basis)
        curve["cost_at"] = {str(level): cost_at(curve, level) for level in MATCHED_REMOVAL}
        curve["domain_cost_at"] = {str(level): cost_at(curve, level, "domain_added")
                                   for level in MATCHED_REMOVAL}
        out["ablation"][basis] = curve
    shared = torch.zeros(config.hidden, dtype=DTYPE)
    shared[: config.n_shared] = 1.0
    for variant in variants:
        general_masks, item_masks = sink_masks(config, len(task.x_general), len(task.x_items),
                                               variant, seed)
        s1, s2 = train_two_layer(x, y, w, masks=torch.cat([general_masks, item_masks]), **train)
        own = torch.stack([_masked(s1, s2, m) @ xi for m, xi in zip(item_masks, task.x_items,
                                                                    strict=True)])
        # what general inputs saw in training: shared only, or sinks at their mean p_active
        general_mask = shared if variant == "extension" else general_masks.mean(0)
        dropped = _masked(s1, s2, shared)
        mem_drop = memorization(task, task.x_items @ dropped.T)
        gen_drop = general_loss(task, dropped)
        dom_drop = domain_loss(task, dropped)
        out["sinks"][variant] = {
            "memorization_own": memorization(task, own),
            "memorization_dropped": mem_drop,
            "general_loss_trained": general_loss(task, _masked(s1, s2, general_mask)),
            "general_loss_dropped": gen_drop,
            "domain_loss_dropped": dom_drop,
            "closure": 1.0 - mem_drop / out["standard"]["memorization"],
            "general_change": gen_drop - out["standard"]["general_loss"],
            "domain_change": dom_drop - out["standard"]["domain_loss"],
        }
    return out


def _mean_se(values: list[float]) -> list[float]:
    return list(mean_se(values))


def summarize(runs: list[dict]) -> dict:
    """Mean and standard error over seeds ([mean, se]) of every scalar of one kind's runs."""
    row: dict = {}
    for key in runs[0]["min_norm"]:
        row[f"min_norm_{key}"] = _mean_se([r["min_norm"][key] for r in runs])
    for key in runs[0]["standard"]:
        row[f"standard_{key}"] = _mean_se([r["standard"][key] for r in runs])
    for basis in BASES:
        for level in MATCHED_REMOVAL:
            for name in ("cost_at", "domain_cost_at"):
                prefix = "" if name == "cost_at" else "domain_"
                row[f"{basis}_{prefix}cost_at_{level}"] = _mean_se(
                    [r["ablation"][basis][name][str(level)] for r in runs])
    for variant in runs[0]["sinks"]:
        for key in runs[0]["sinks"][variant]:
            row[f"{variant}_{key}"] = _mean_se([r["sinks"][variant][key] for r in runs])
    return row


def run(config: TheoryConfig) -> dict:
    """Every kind over every seed, plus natural items with a private feature of each size in
    ``private_sweep`` (standard training and the extension only).

    Returns ``{"config", "per_seed": {kind: [run_seed ...]}, "summary": {kind: summarize},
    "private_sweep": {scale: summarize}, "seconds"}``.
    """
    config.validate()
    start = time.perf_counter()
    per_seed = {kind: [run_seed(config, kind, seed) for seed in config.seeds] for kind in KINDS}
    sweep = {}
    for scale in config.private_sweep:
        scaled = dataclasses.replace(config, private_scale=scale)
        sweep[str(scale)] = summarize([run_seed(scaled, "natural", seed, ("extension",))
                                       for seed in config.seeds])
    return {"config": dataclasses.asdict(config), "per_seed": per_seed,
            "summary": {kind: summarize(runs) for kind, runs in per_seed.items()},
            "private_sweep": sweep, "seconds": time.perf_counter() - start}


# --------------------------------------------------------------------------- presentation


def format_mean_se(pair: list[float], digits: int = 3, percent: bool = False) -> str:
    """``mean ± se`` (in % when ``percent``); "n/a" for a missing mean, no error for one seed."""
    scale, unit = (100.0, "%") if percent else (1.0, "")
    mean, se = pair
    if not math.isfinite(mean):
        return "n/a"
    text = f"{scale * mean:.{digits}f}{unit}"
    return text + (f" ± {scale * se:.{digits}f}{unit}" if math.isfinite(se) else "")


# (label, summary key, percent?, kinds it is shown for)
TABLE_ROWS = (
    ("trained two-layer product vs min-norm solution: relative distance",
     "min_norm_trained_vs_min_norm", False, KINDS),
    ("min-norm solution: general loss caused by the stored offsets",
     "min_norm_storage_interference", False, KINDS),
    ("standard training: memorization (share of offsets reproduced)", "standard_memorization",
     False, KINDS),
    ("standard training: general loss", "standard_general_loss", False, KINDS),
    ("standard training: domain loss", "standard_domain_loss", False, ("domain",)),
    ("ablate hidden directions, 50% removed: general loss added", "directions_cost_at_0.5",
     False, KINDS),
    ("ablate neurons, 50% removed: general loss added", "neurons_cost_at_0.5", False, KINDS),
    ("extension (sinks for items only): memorization with own sinks",
     "extension_memorization_own", False, KINDS),
    ("extension, sinks dropped: memorization removed vs standard", "extension_closure", True,
     KINDS),
    ("extension, sinks dropped: general loss change vs standard", "extension_general_change",
     False, KINDS),
    ("extension, sinks dropped: domain loss change vs standard", "extension_domain_change",
     False, ("domain",)),
    ("paper (sinks for every example): memorization with own sinks", "paper_memorization_own",
     False, KINDS),
    ("paper, sinks dropped: memorization removed vs standard", "paper_closure", True, KINDS),
    ("paper, sinks dropped: general loss change vs standard", "paper_general_change", False,
     KINDS),
    ("paper, sinks dropped: domain loss change vs standard", "paper_domain_change", False,
     ("domain",)),
    ("centred (extension, zero-mean item masks), sinks dropped: memorization removed",
     "centered_closure", True, KINDS),
    ("centred, sinks dropped: domain loss change vs standard", "centered_domain_change", False,
     ("domain",)),
)

SWEEP_COLUMNS = (
    ("memorization", "standard_memorization", False),
    ("general loss", "standard_general_loss", False),
    ("min-norm storage: general loss", "min_norm_storage_interference", False),
    ("trained vs min-norm", "min_norm_trained_vs_min_norm", False),
    ("directions, 50% removed: general added", "directions_cost_at_0.5", False),
    ("neurons, 50% removed: general added", "neurons_cost_at_0.5", False),
    ("extension: removed vs standard", "extension_closure", True),
    ("extension: general change", "extension_general_change", False),
)


def table(results: dict) -> str:
    """Markdown tables of the summary (mean ± s.e. over seeds); losses relative to E‖Tx‖²."""
    summary = results["summary"]
    lines = ["| quantity | " + " | ".join(KINDS) + " |", "|---" * (len(KINDS) + 1) + "|"]
    for label, key, percent, kinds in TABLE_ROWS:
        cells = [format_mean_se(summary[kind][key], 1 if percent else 3, percent) if kind in kinds
                 else "—" for kind in KINDS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    sweep = {"0.0": summary["natural"]} | {
        k: v for k, v in results.get("private_sweep", {}).items() if float(k) != 0.0}
    if len(sweep) > 1:
        lines += ["", "Natural items with a private feature of their own (x_i = U z_i + s e_i):",
                  "", "| s | " + " | ".join(c[0] for c in SWEEP_COLUMNS) + " |",
                  "|---" * (len(SWEEP_COLUMNS) + 1) + "|"]
        for scale, row in sorted(sweep.items(), key=lambda item: float(item[0])):
            cells = [format_mean_se(row[key], 1 if percent else 3, percent)
                     for _, key, percent in SWEEP_COLUMNS]
            lines.append(f"| {float(scale):g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    """Ablation curves (loss added vs memorization removed) and the sink drop, per kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"natural": "tab:red", "canary": "tab:blue", "domain": "tab:green"}
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    ax = axes[0]
    lines = [(kind, basis, "general_added", style) for kind in ("natural", "canary")
             for basis, style in zip(BASES, ("-", "--"), strict=True)]
    lines.append(("domain", "directions", "domain_added", ":"))
    for kind, basis, key, style in lines:
        curves = [r["ablation"][basis] for r in results["per_seed"][kind]]
        # up to the k at which every seed's curve has removed the most it will
        stop = 1 + min(int(np.argmax(c["removed"])) for c in curves)
        removed = np.mean([c["removed"][:stop] for c in curves], axis=0)
        added = np.mean([c[key][:stop] for c in curves], axis=0)
        what = "domain loss" if key == "domain_added" else "general loss"
        ax.plot(100 * removed, added, style, color=colors[kind], marker=".", markersize=3,
                label=f"{kind} items, {basis}: {what}")
    ax.axhline(0.0, color="gray", linewidth=0.6)
    ax.set_xlim(-5, 105)
    ax.set_xlabel("memorization removed by ablating the top-k units (%)")
    ax.set_ylabel("loss added (relative to the rule's E‖Tx‖²)")
    ax.set_title("post-hoc ablation after standard training", fontsize=10)
    ax.legend(fontsize=6.5)
    summary = results["summary"]
    panels = ((axes[1], [(kind, "closure", kind) for kind in KINDS], 100.0,
               "memorization removed vs standard (%)"),
              (axes[2], [(kind, "general_change", f"{kind}: general loss") for kind in KINDS]
               + [("domain", "domain_change", "domain: domain loss")], 1.0,
               "loss change vs standard"))
    for ax, series, scale, label in panels:
        width = 0.8 / len(series)
        for i, (kind, key, name) in enumerate(series):
            pairs = [summary[kind][f"{v}_{key}"] for v in SINK_VARIANTS]
            ax.bar(np.arange(len(SINK_VARIANTS)) + (i - (len(series) - 1) / 2) * width,
                   [scale * pair[0] for pair in pairs], width,
                   yerr=[scale * (pair[1] if math.isfinite(pair[1]) else 0.0) for pair in pairs],
                   color=colors[kind], hatch="//" if key == "domain_change" else None,
                   label=name, capsize=3)
        ax.set_xticks(range(len(SINK_VARIANTS)),
                      ["extension\n(sinks for items only)", "paper\n(sinks for every example)",
                       "centred\n(zero-mean item masks)"])
        ax.axhline(0.0, color="gray", linewidth=0.6)
        ax.set_ylabel(label)
        ax.set_title("sequence-tied dropout, sinks dropped", fontsize=10)
        ax.legend(fontsize=6.5)
    fig.suptitle(f"two-layer linear toy, mean over {len(results['config']['seeds'])} seeds "
                 "(error bars: s.e.)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_overrides(pairs: list[str], config=None):
    """Apply ``key=value`` pairs to a TheoryConfig, or to ``config``'s dataclass when given
    (``seeds=0,1,2``; booleans true/false)."""
    config = config or TheoryConfig()
    cls = type(config)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    changes: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in fields:
            raise ValueError(f"expected key=value with key in {sorted(fields)}, got {pair!r}")
        # seeds=0,1,2 (int); private_sweep=0.1,1 (float); booleans true/false
        changes[key] = coerce(cls, key, yaml.safe_load(value) if value else "")
    return dataclasses.replace(config, **changes)


def main(argv: list[str] | None = None) -> int:
    """Run the toy, write results.json and theory.png under --out, print the table."""
    parser = argparse.ArgumentParser(prog="python -m memsinks.experiments.theory",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/theory", help="output folder")
    parser.add_argument("overrides", nargs="*", help="TheoryConfig fields as key=value")
    args = parser.parse_args(argv)
    try:
        config = parse_overrides(args.overrides)
        torch.set_num_threads(1)
        results = run(config)
    except (ValueError, FloatingPointError) as error:
        print(f"memsinks.experiments.theory: error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results["command"] = " ".join(["python -m memsinks.experiments.theory", "--out", str(out),
                                   *args.overrides])
    (out / "results.json").write_text(json.dumps(results, indent=1, allow_nan=True) + "\n")
    plot(results, out / "theory.png")
    print(table(results))
    print(f"\n{len(config.seeds)} seeds, {results['seconds']:.1f} s; "
          f"wrote {out / 'results.json'} and {out / 'theory.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
