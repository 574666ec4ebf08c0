"""Negative preference optimization (Zhang et al. 2024): push the likelihood of each forget
document below that of a frozen copy of the trained model, with a loss that saturates
instead of diverging as gradient ascent does.

Loss: -(2 / beta) * mean_x log sigmoid(-beta * (log p(x) - log p_ref(x))), log p the
summed token log-probabilities of document x; at p = p_ref it is (2 / beta) log 2.
beta = 0.1 as in Zhang et al.; retain_weight > 0 adds w * NLL(retain), their NPO+RT.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data.packing import Batch
from . import register
from .common import lm_loss, sequence_logprob
from .finetune import FineTuneParams, FineTuning


@dataclass(frozen=True)
class NPOParams(FineTuneParams):
    beta: float = 0.1  # Zhang et al.'s default
    retain_weight: float = 0.0  # 0: NPO as published; 1: NPO+RT


def npo_loss(model: nn.Module, reference: nn.Module, batch: Batch, beta: float) -> torch.Tensor:
    """The NPO loss of a batch of forget documents against the reference model."""
    with torch.no_grad():
        ref = sequence_logprob(reference, batch)
    log_ratio = sequence_logprob(model, batch) - ref
    return -(2.0 / beta) * F.logsigmoid(-beta * log_ratio).mean()


@register
class NPO(FineTuning):
    name = "npo"
    description = ("negative preference optimization on the forget set against the frozen "
                   "trained model (Zhang et al. 2024)")
    Params = NPOParams

    def prepare(self, model: nn.Module, params: NPOParams) -> dict:
        if params.beta <= 0:
            raise ValueError(f"npo parameter beta = {params.beta} must be positive; "
                             "use 0.1 (Zhang et al.)")
        reference = copy.deepcopy(model).eval()
        for p in reference.parameters():
            p.requires_grad_(False)
        return {"reference": reference}

    def loss(self, model: nn.Module, forget: Batch, retain: Batch | None, params: NPOParams,
             state: dict) -> torch.Tensor:
        loss = npo_loss(model, state["reference"], forget, params.beta)
        if retain is not None:
            loss = loss + params.retain_weight * lm_loss(model, retain)
        return loss
