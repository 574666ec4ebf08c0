"""BalancedSubnet (Sakarvadia et al., ICLR 2025): learn a supermask over the MLP weights
(edge-popup: a score per weight, the lowest-|score| fraction of each matrix dropped, the
gradient passed straight through to the scores) that raises the forget-set loss while
keeping the loss on retain data; then drop the masked weights for good.

Objective per step: -(1 - w) * NLL(forget batch) + w * NLL(retain batch), w = loss_weight.
The strength is the fraction of each MLP weight matrix (gate, up, down of every layer)
dropped. Changed from the published recipe (SGD lr 0.1, momentum 0.9, scores initialised
at random, 5 epochs of batch 64): scores start equal (1 plus a 1e-3 seeded jitter that
breaks ties) so the mask at step 0 is arbitrary but tiny, and Adam moves them, since the
straight-through gradient |dL/dW * W| of a tiny model's weights is too small for SGD at
their scale; steps and batch sizes are sized for CPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize

from . import register
from .common import (
    Step,
    Stopwatch,
    UnlearnData,
    UnlearnMethod,
    batches,
    frozen_weights,
    lm_loss,
    mlp_layers,
    restore,
    snapshot,
)

MATRICES = ("gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class BalancedSubnetParams:
    loss_weight: float = 0.5  # w: weight of the retain loss (1 - w on the forget loss)
    lr: float = 0.01  # Adam on the scores
    steps: int = 20
    batch_size: int = 16  # forget documents per step, and as many retain documents
    seed: int = 0  # score jitter and batch order


def keep_mask(scores: torch.Tensor, drop_fraction: float) -> torch.Tensor:
    """1 for every weight but the ``drop_fraction`` with the lowest |score| (ties: lower
    index dropped first)."""
    flat = scores.detach().abs().flatten()
    n_drop = int(drop_fraction * flat.numel() + 1e-9)
    mask = torch.ones_like(flat)
    if n_drop:
        mask[torch.sort(flat, stable=True).indices[:n_drop]] = 0
    return mask.view_as(scores)


class Supermask(nn.Module):
    """A parametrization weight -> weight * mask(scores), straight-through to the scores."""

    def __init__(self, scores: torch.Tensor, drop_fraction: float):
        super().__init__()
        self.scores = nn.Parameter(scores)
        self.drop_fraction = drop_fraction

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        hard = keep_mask(self.scores, self.drop_fraction)
        magnitude = self.scores.abs()
        return weight * (hard + magnitude - magnitude.detach())


def learn_supermask(model: nn.Module, data: UnlearnData, drop_fraction: float,
                    params: BalancedSubnetParams) -> tuple[list[torch.Tensor], dict]:
    """Train the scores and return the final keep masks (one per MLP matrix, layer-major)."""
    generator = torch.Generator().manual_seed(params.seed)
    linears = [getattr(mlp, name) for mlp in mlp_layers(model) for name in MATRICES]
    masks_start, masks_end = [], []
    forget = batches(data.forget, params.batch_size, params.seed, data.device)
    retain = batches(data.retain, params.batch_size, params.seed + 1, data.device)
    history: dict = {"forget_nll": [], "retain_nll": []}
    was_training = model.training
    model.eval()
    with frozen_weights(model):
        for linear in linears:
            jitter = torch.rand(linear.weight.shape, generator=generator) * 1e-3
            scores = (1.0 + jitter).to(linear.weight.device)
            parametrize.register_parametrization(linear, "weight",
                                                 Supermask(scores, drop_fraction))
            masks_start.append(keep_mask(scores, drop_fraction))
        params_to_learn = [linear.parametrizations.weight[0].scores for linear in linears]
        optimizer = torch.optim.Adam(params_to_learn, lr=params.lr)
        try:
            for _ in range(params.steps):
                forget_nll = lm_loss(model, next(forget))
                retain_nll = lm_loss(model, next(retain))
                loss = -(1 - params.loss_weight) * forget_nll + params.loss_weight * retain_nll
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                history["forget_nll"].append(round(forget_nll.item(), 5))
                history["retain_nll"].append(round(retain_nll.item(), 5))
            for linear in linears:
                masks_end.append(keep_mask(linear.parametrizations.weight[0].scores,
                                           drop_fraction))
        finally:
            for linear in linears:
                parametrize.remove_parametrizations(linear, "weight", leave_parametrized=False)
    model.train(was_training)
    changed = sum(int((a != b).sum()) for a, b in zip(masks_start, masks_end, strict=True))
    dropped = sum(int((m == 0).sum()) for m in masks_end)
    history.update({"dropped_weights": dropped, "mask_entries_changed": changed})
    return masks_end, history


@register
class BalancedSubnet(UnlearnMethod):
    name = "balanced-subnet"
    description = ("drop the MLP weights a learned supermask picks: ascent on the forget set, "
                   "descent on retain data (Sakarvadia et al. 2025)")
    strength_name = "fraction of each MLP weight matrix dropped"
    # on the default study dropping 3% of the weights already collapses the model
    default_grid = (0.002, 0.005, 0.01, 0.02)
    Params = BalancedSubnetParams

    def run(self, model: nn.Module, data: UnlearnData, strengths: list[float],
            params: BalancedSubnetParams, cache: Path | None = None) -> Iterator[Step]:
        original = snapshot(model)
        for strength in sorted(strengths):
            watch = Stopwatch()
            with watch:
                restore(model, original)
                masks, history = learn_supermask(model, data, strength, params)
                linears = [getattr(mlp, name) for mlp in mlp_layers(model) for name in MATRICES]
                with torch.no_grad():
                    for linear, mask in zip(linears, masks, strict=True):
                        linear.weight.mul_(mask.to(linear.weight.dtype))
            yield Step(strength, watch.seconds, watch.cpu_seconds, history)
