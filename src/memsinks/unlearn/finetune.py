"""The loop the fine-tuning baselines share: AdamW at a constant learning rate on forget (and
retain) minibatches; the strength is the number of optimizer steps.

The learning rate is constant, so the model after n steps is the same whether the run stops
there or goes on: one run yields every requested step count.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.packing import Batch
from .common import Step, Stopwatch, UnlearnData, UnlearnMethod, batches


@dataclass(frozen=True)
class FineTuneParams:
    lr: float = 5e-5  # constant; the study's models train at 2e-3 decaying to 2e-4
    batch_size: int = 16  # forget documents per step (and retain documents, where used)
    retain_weight: float = 0.0  # weight of the NLL on retain documents
    grad_clip: float = 1.0  # as training
    seed: int = 0  # batch order


class FineTuning(UnlearnMethod):
    """Subclasses define ``loss``; a retain batch is drawn only when retain_weight > 0."""

    strength_name = "optimizer steps"
    integer_strength = True
    sweep_shares_work = True
    # default study: natural R is half unlearned by 24 steps, canary R starts to go by 24
    default_grid = (3, 6, 12, 24, 48, 96)
    Params = FineTuneParams

    def prepare(self, model: nn.Module, params: Any) -> dict:
        """Anything the loss needs that the training must not change (a frozen reference)."""
        return {}

    def loss(self, model: nn.Module, forget: Batch, retain: Batch | None, params: Any,
             state: dict) -> torch.Tensor:
        raise NotImplementedError

    def run(self, model: nn.Module, data: UnlearnData, strengths: list[float], params: Any,
            cache: Path | None = None) -> Iterator[Step]:
        targets = sorted(int(s) for s in strengths)
        watch = Stopwatch()
        with watch:
            torch.manual_seed(params.seed)
            state = self.prepare(model, params)
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                          lr=params.lr, weight_decay=0.0)
            forget = batches(data.forget, params.batch_size, params.seed, data.device)
            retain = (batches(data.retain, params.batch_size, params.seed + 1, data.device)
                      if params.retain_weight > 0 else None)
        losses: list[float] = []
        step = 0
        for target in targets:
            with watch:
                model.train()
                while step < target:
                    loss = self.loss(model, next(forget), next(retain) if retain else None,
                                     params, state)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"{self.name} loss became {loss.item()} at "
                                                 f"step {step}; lower its lr")
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), params.grad_clip)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    losses.append(round(loss.item(), 5))
                    step += 1
                model.eval()
            yield Step(target, watch.seconds, watch.cpu_seconds, {"loss": losses[:target]})
