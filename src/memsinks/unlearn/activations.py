"""Activations (Chang et al., NAACL 2024): a neuron's score is the absolute value of its mean
activation over the forget set's tokens times the norm of its output weights (its down_proj
column); the top fraction per layer is ablated.

The activation is the input of down_proj, act(gate_proj x) * up_proj x, averaged over every
position that predicts a token (Chang et al. average over one sequence's positions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import register
from .common import NeuronLocalization, UnlearnData, batch_of, mlp_layers, recorded_activations


@dataclass(frozen=True)
class ActivationsParams:
    batch_size: int = 64  # documents per forward pass
    start_layer: int = 0  # layers below are never ablated


@torch.no_grad()
def activation_scores(model: nn.Module, batches) -> list[np.ndarray]:
    """|mean activation| x ||down_proj column|| of every MLP neuron, per layer."""
    was_training = model.training
    model.eval()
    layers = mlp_layers(model)
    sums = [torch.zeros(m.down_proj.in_features, dtype=torch.float64) for m in layers]
    count = 0
    for batch in batches:
        # positions that predict a token: the target one to the right is not padding
        valid = torch.zeros_like(batch.labels, dtype=torch.bool)
        valid[:, :-1] = batch.labels[:, 1:] != -100
        with recorded_activations(model) as acts:
            model(input_ids=batch.input_ids, use_cache=False)
        for i, act in enumerate(acts):
            sums[i] += act[valid].double().sum(dim=0).cpu()
        count += int(valid.sum())
    model.train(was_training)
    return [((s / count).abs() * m.down_proj.weight.detach().double().norm(dim=0).cpu()).numpy()
            for s, m in zip(sums, layers, strict=True)]


@register
class Activations(NeuronLocalization):
    name = "activations"
    description = ("ablate the neurons with the largest |mean activation| x output-weight "
                   "norm on the forget set (Chang et al. 2024)")
    Params = ActivationsParams

    def scores(self, model: nn.Module, data: UnlearnData, params: ActivationsParams
               ) -> tuple[list[np.ndarray], dict]:
        index = np.arange(len(data.forget))
        batches = (batch_of(data.forget, index[i:i + params.batch_size], data.device)
                   for i in range(0, len(index), params.batch_size))
        return activation_scores(model, batches), {}
