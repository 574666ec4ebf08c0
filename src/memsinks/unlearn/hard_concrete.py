"""Hard Concrete (Chang et al., NAACL 2024, after Louizos et al. 2018): learn an L0 gate per
MLP neuron, a stretched and clipped binary-concrete variable with location log_alpha,
that keeps the forget set's loss low while an expected-L0 penalty closes gates. Neurons
whose gates stay open are responsible for the forget set; the top fraction per layer by
sigmoid(log_alpha) is ablated.

Gate sample: s = sigmoid((log u - log(1 - u) + log_alpha) / temperature), u ~ U(0, 1),
gate = clip(s * (r - l) + l, 0, 1) with (l, r) = (-0.1, 1.1). Penalty: the mean probability
that a gate is non-zero, sigmoid(log_alpha - temperature * log(-l / r)).
As Chang et al.: initial gate 0.5, temperature 2/3, Adam, stop once the penalty < 0.1.
Changed (Chang et al.: lambda 1000 over GPT-2's 34k neurons, lr 1e-2, 100 to 5000 full-batch
epochs on one sequence): lambda = 5, lr 0.1 on log_alpha and 100 steps of 16 documents, so
the gates decide within the CPU budget (on the default study 100 steps close about 60% of
the gates, the rest open above 0.95).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import register
from .common import NeuronLocalization, UnlearnData, learn_neuron_gates, mlp_layers

LOW, HIGH = -0.1, 1.1  # the stretch interval of the hard concrete distribution


@dataclass(frozen=True)
class HardConcreteParams:
    l0_weight: float = 5.0  # lambda on the mean probability of an open gate (Chang: 1000)
    lr: float = 0.1  # Adam on log_alpha (Chang et al.: 0.01 for up to 5000 epochs)
    steps: int = 100  # as Chang et al.'s injection benchmark
    batch_size: int = 16  # forget documents per step
    init_open: float = 0.5  # initial gate value (Chang et al.'s mask_p)
    temperature: float = 2 / 3  # Chang et al.'s beta
    stop_at: float = 0.1  # stop once the penalty falls below (Chang et al.)
    start_layer: int = 0  # layers below are neither gated nor ablated
    seed: int = 0  # batch order and gate noise


def sample_gate(log_alpha: torch.Tensor, temperature: float, generator: torch.Generator
                ) -> torch.Tensor:
    u = torch.rand(log_alpha.shape, generator=generator).clamp(1e-4, 1 - 1e-4)
    u = u.to(log_alpha.device)
    s = torch.sigmoid((u.log() - (1 - u).log() + log_alpha) / temperature)
    return (s * (HIGH - LOW) + LOW).clamp(0.0, 1.0)


def deterministic_gate(log_alpha: torch.Tensor) -> torch.Tensor:
    return (torch.sigmoid(log_alpha) * (HIGH - LOW) + LOW).clamp(0.0, 1.0)


def open_probability(log_alpha: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.sigmoid(log_alpha - temperature * math.log(-LOW / HIGH))


def train_gates(model: nn.Module, data: UnlearnData, params: HardConcreteParams
                ) -> tuple[list[torch.Tensor], dict]:
    """The learned log_alpha of every layer's gates and the run's losses."""
    layers = mlp_layers(model)
    device = data.device
    p = (params.init_open - LOW) / (HIGH - LOW)
    init = math.log(p / (1 - p))
    log_alphas = [torch.full((m.down_proj.in_features,), init, device=device,
                             requires_grad=True) for m in layers]
    learned = log_alphas[params.start_layer:]
    generator = torch.Generator().manual_seed(params.seed)
    gates: list[torch.Tensor | None] = [None] * len(layers)

    def penalty() -> torch.Tensor:
        return torch.cat([open_probability(a, params.temperature) for a in learned]).mean()

    def resample() -> None:
        for i in range(params.start_layer, len(layers)):
            gates[i] = sample_gate(log_alphas[i], params.temperature, generator)

    history = learn_neuron_gates(model, data, learned, lambda i: gates[i], penalty,
                                 params.l0_weight, params, before_step=resample)
    return [a.detach() for a in log_alphas], history


@register
class HardConcrete(NeuronLocalization):
    name = "hard-concrete"
    description = ("ablate the neurons whose learned L0 (hard concrete) gate stays open when it "
                   "is learned to keep the forget-set loss low (Chang et al. 2024)")
    Params = HardConcreteParams

    def scores(self, model: nn.Module, data: UnlearnData, params: HardConcreteParams
               ) -> tuple[list[np.ndarray], dict]:
        log_alphas, history = train_gates(model, data, params)
        return [torch.sigmoid(a).cpu().double().numpy() for a in log_alphas], history
