"""Gradient difference (Liu et al. 2022; the TOFU baseline): ascent on the forget set plus
descent on retain data (general training documents). Loss: -NLL(forget) + w * NLL(retain),
w = 1 as in TOFU."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..data.packing import Batch
from . import register
from .common import lm_loss
from .finetune import FineTuneParams, FineTuning


@dataclass(frozen=True)
class GradientDifferenceParams(FineTuneParams):
    retain_weight: float = 1.0


@register
class GradientDifference(FineTuning):
    name = "gradient-difference"
    description = "fine-tune to raise the loss on the forget set and keep it on retain data"
    Params = GradientDifferenceParams

    def loss(self, model: nn.Module, forget: Batch, retain: Batch | None,
             params: GradientDifferenceParams, state: dict) -> torch.Tensor:
        loss = -lm_loss(model, forget)
        if retain is not None:
            loss = loss + params.retain_weight * lm_loss(model, retain)
        return loss
