"""Gradient ascent (e.g. Jang et al. 2023; the TOFU baseline): fine-tune to raise the NLL of
the forget set, nothing else. Loss: -NLL(forget batch)."""

from __future__ import annotations

import torch
from torch import nn

from ..data.packing import Batch
from . import register
from .common import lm_loss
from .finetune import FineTuneParams, FineTuning


@register
class GradientAscent(FineTuning):
    name = "gradient-ascent"
    description = "fine-tune to raise the loss on the forget set"

    def loss(self, model: nn.Module, forget: Batch, retain: Batch | None,
             params: FineTuneParams, state: dict) -> torch.Tensor:
        return -lm_loss(model, forget)
