"""Zero-out (Chang et al., NAACL 2024): a neuron's score is how much the forget-set loss rises
when that neuron alone is zeroed; the top fraction per layer is ablated.

Exact, not a gradient estimate: every neuron costs a pass over the scoring documents from its
own layer up, batched many neurons per pass. Chang et al. score one sequence at a time; here
the loss is the token-mean NLL over ``score_docs`` forget documents (a seeded subset, for
speed: scoring costs layers x width passes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import register
from .common import NeuronLocalization, UnlearnData, batch_of, mlp_layers, neuron_gates

# floats of logits one batched pass may hold (128 MB)
LOGIT_BUDGET = 2**25


@dataclass(frozen=True)
class ZeroOutParams:
    score_docs: int = 8  # forget documents the loss is measured on (all if fewer)
    start_layer: int = 0  # layers below are never ablated
    seed: int = 0  # which forget documents score


def group_losses(logits: torch.Tensor, labels: torch.Tensor, groups: int) -> torch.Tensor:
    """Token-mean NLL of each of ``groups`` equal consecutive blocks of rows."""
    targets = labels[:, 1:]
    nll = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), targets.clamp(min=0),
                          reduction="none")
    valid = (targets != -100).float()
    per_row = (nll * valid).sum(dim=1), valid.sum(dim=1)
    return per_row[0].view(groups, -1).sum(1) / per_row[1].view(groups, -1).sum(1)


def _repeat(value, rows: int, times: int):
    """``value`` with every tensor whose first dimension is the batch repeated ``times``."""
    if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == rows:
        return value.repeat(times, *([1] * (value.dim() - 1)))
    if isinstance(value, tuple):
        return tuple(_repeat(v, rows, times) for v in value)
    return value


@torch.no_grad()
def zero_out_scores(model: nn.Module, input_ids: torch.Tensor, labels: torch.Tensor,
                    start_layer: int = 0) -> list[np.ndarray]:
    """Loss increase on the batch when each MLP neuron alone is zeroed, per layer.

    The layers below the zeroed neuron's do not change, so each layer's passes start from
    that layer's recorded input (the arguments the model itself passed it) and run the rest
    of the stack, the final norm and the head.
    """
    was_training = model.training
    model.eval()
    rows, width = input_ids.shape
    vocab = model.get_output_embeddings().weight.shape[0]
    per_pass = max(1, LOGIT_BUDGET // (rows * width * vocab))
    decoder = model.model.layers
    inputs: dict[int, tuple[tuple, dict]] = {}

    def record(index: int):
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            inputs[index] = (args, kwargs)
        return hook

    handles = [layer.register_forward_pre_hook(record(i), with_kwargs=True)
               for i, layer in enumerate(decoder)]
    try:
        base = group_losses(model(input_ids=input_ids, use_cache=False).logits, labels, 1)[0]
    finally:
        for handle in handles:
            handle.remove()
    n = mlp_layers(model)[0].down_proj.in_features
    scores = []
    current: list[torch.Tensor | None] = [None] * len(decoder)
    with neuron_gates(model, lambda i: current[i]):
        for layer in range(len(decoder)):
            values = np.zeros(n)
            if layer >= start_layer:
                args, kwargs = inputs[layer]
                for start in range(0, n, per_pass):
                    neurons = torch.arange(start, min(n, start + per_pass))
                    k = len(neurons)
                    gate = torch.ones(k, n, device=input_ids.device)
                    gate[torch.arange(k), neurons] = 0
                    current[layer] = gate.repeat_interleave(rows, dim=0).unsqueeze(1)
                    hidden = _repeat(args[0], rows, k)
                    rest = _repeat(args[1:], rows, k)
                    extra = {key: _repeat(v, rows, k) for key, v in kwargs.items()}
                    for block in decoder[layer:]:
                        hidden = block(hidden, *rest, **extra)
                        if isinstance(hidden, tuple):  # older transformers return tuples
                            hidden = hidden[0]
                    logits = model.get_output_embeddings()(model.model.norm(hidden))
                    losses = group_losses(logits, labels.repeat(k, 1), k)
                    values[start:start + k] = (losses - base).double().cpu().numpy()
                current[layer] = None
            scores.append(values)
    model.train(was_training)
    return scores


@register
class ZeroOut(NeuronLocalization):
    name = "zero-out"
    description = ("ablate the neurons whose zeroing raises the forget-set loss most "
                   "(Chang et al. 2024)")
    Params = ZeroOutParams

    def scores(self, model: nn.Module, data: UnlearnData, params: ZeroOutParams
               ) -> tuple[list[np.ndarray], dict]:
        rng = np.random.default_rng(params.seed)
        count = min(params.score_docs, len(data.forget))
        chosen = np.sort(rng.choice(len(data.forget), size=count, replace=False))
        batch = batch_of(data.forget, chosen, data.device)
        scores = zero_out_scores(model, batch.input_ids, batch.labels, params.start_layer)
        return scores, {"score_documents": int(count)}
