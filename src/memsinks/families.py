"""Model-family surgery: where each family keeps its MLPs, and widening or narrowing them.

The adapter table (``FAMILIES``) says where a supported transformers family holds its decoder
layers and each MLP's hidden activation, which is where :class:`memsinks.sinks.Sinks` places
its gate. :func:`add_sink_pool` widens every MLP of a pretrained model by new sink neurons;
:func:`rebuild_mlps` swaps the projections for wider or narrower ones, as
:func:`memsinks.sinks.drop_sinks` does to delete the sinks.

This module is a leaf: it knows nothing of sink masks, corpora or training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModelFamily:
    """Where a model family keeps its decoder layers and each MLP's hidden activation.

    Every family's layers hold their MLP as ``layer.mlp``. The hidden activation is the input
    of ``output``; its neurons are the output units of each projection in ``inputs``, stacked
    ``blocks`` times when one projection computes several factors (Phi-3's gate and up).
    """

    name: str  # as named in messages and docs
    model_types: tuple[str, ...]  # the config.model_type values it covers
    layers: str  # attribute of the base model (model.base_model) holding the decoder layers
    inputs: tuple[str, ...]  # MLP projections that produce the hidden neurons
    output: str  # MLP projection that reads them: the sink gate's site
    width_field: str  # config field holding the MLP width, set by drop_sinks
    blocks: int = 1
    conv1d: bool = False  # weights stored (in, out), as transformers' Conv1D (GPT-2)
    # the hidden activation is a fresh product act(gate) * up that nothing saves for backward,
    # so the gate may scale it in place; False where it is act(x) itself
    gated: bool = True

    def layers_of(self, model: nn.Module) -> list[nn.Module]:
        """The decoder layers of ``model`` (a causal LM or its base model)."""
        base = getattr(model, "base_model", model)
        layers = getattr(base, self.layers, None)
        names = (*self.inputs, self.output)
        if layers is None or not all(hasattr(getattr(layer, "mlp", None), name)
                                     for layer in layers for name in names):
            raise TypeError(f"{type(model).__name__} has no {self.layers}[i].mlp."
                            f"{{{', '.join(names)}}} as {self.name} models do; pass an unmodified "
                            "transformers model of that family")
        return list(layers)

    def output_of(self, mlp: nn.Module) -> nn.Module:
        """The projection whose input is the hidden activation."""
        return getattr(mlp, self.output)

    def width_of(self, mlp: nn.Module) -> int:
        """The number of hidden neurons of ``mlp``."""
        weight = self.output_of(mlp).weight
        return weight.shape[0] if self.conv1d else weight.shape[1]


def _llama_shaped(name: str, model_type: str) -> ModelFamily:
    return ModelFamily(name, (model_type,), "layers", ("gate_proj", "up_proj"), "down_proj",
                       "intermediate_size")


# The adapter table: module names and width fields as in transformers' modeling files.
FAMILIES: tuple[ModelFamily, ...] = (
    _llama_shaped("Llama", "llama"),
    _llama_shaped("Mistral", "mistral"),
    _llama_shaped("Qwen2", "qwen2"),
    _llama_shaped("Qwen3", "qwen3"),
    _llama_shaped("Gemma", "gemma"),
    _llama_shaped("Gemma 2", "gemma2"),
    _llama_shaped("OLMo 2", "olmo2"),
    # gate_up_proj's first intermediate_size outputs are the gate, the next ones the up factor
    ModelFamily("Phi-3", ("phi3",), "layers", ("gate_up_proj",), "down_proj",
                "intermediate_size", blocks=2),
    ModelFamily("GPT-NeoX", ("gpt_neox",), "layers", ("dense_h_to_4h",), "dense_4h_to_h",
                "intermediate_size", gated=False),
    # n_inner = None means 4 * n_embd; drop_sinks always writes the width out
    ModelFamily("GPT-2", ("gpt2",), "h", ("c_fc",), "c_proj", "n_inner", conv1d=True,
                gated=False),
)


def model_family(model: nn.Module) -> ModelFamily:
    """The adapter for ``model``, chosen by ``model.config.model_type``."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    supported = ", ".join(f"{f.name} ({'/'.join(f.model_types)})" for f in FAMILIES)
    raise TypeError(f"memsinks cannot place sinks in {type(model).__name__} (model_type "
                    f"{model_type!r}); use a transformers causal LM of a supported family: "
                    f"{supported}")


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The decoder layers of a model whose MLPs are Llama-shaped (gate_proj, up_proj, down_proj).

    For callers that index those names directly (gradient masking, the unlearning baselines);
    ``Sinks`` and ``drop_sinks`` take every family in ``FAMILIES`` through ``model_family``.
    """
    family = model_family(model)
    if family.inputs != ("gate_proj", "up_proj") or family.output != "down_proj":
        llama_shaped = ", ".join(f.name for f in FAMILIES
                                 if f.inputs == ("gate_proj", "up_proj"))
        raise TypeError(f"gradient masking and the unlearning baselines need gate_proj/up_proj/"
                        f"down_proj MLPs, which {family.name} models lack; use a model of one "
                        f"of {llama_shaped}")
    return family.layers_of(model)


def _projection(old: nn.Module, n_in: int, n_out: int, conv1d: bool) -> nn.Module:
    # a fresh module of the same kind, drawing its (overwritten) init from the global RNG
    # exactly as nn.Linear always has here, so runs that continue after an export are unchanged
    if conv1d:
        return type(old)(n_out, n_in).to(old.weight.device, old.weight.dtype)
    return nn.Linear(n_in, n_out, bias=old.bias is not None, device=old.weight.device,
                     dtype=old.weight.dtype)


def rebuild_mlps(model: nn.Module, family: ModelFamily, new_width: int,
                  rows: Callable[[torch.Tensor, int, bool], torch.Tensor],
                  columns: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Swap every MLP's projections, in place, for ones with ``new_width`` hidden neurons.

    ``rows(old, block, is_bias)`` gives an input projection's new rows (weights (out, in), or
    bias) from one factor block of its old ones; ``columns(old)`` the output projection's new
    weight (out, new_width) from its old one. The config's width field follows.
    """
    for layer in family.layers_of(model):
        mlp = layer.mlp
        width = family.width_of(mlp)
        blocks = [slice(b * width, (b + 1) * width) for b in range(family.blocks)]
        with torch.no_grad():
            for name in family.inputs:
                old = getattr(mlp, name)
                weight = old.weight.T if family.conv1d else old.weight  # (out, in)
                new = _projection(old, weight.shape[1], new_width * family.blocks,
                                  family.conv1d)
                stacked = torch.cat([rows(weight[span], b, False)
                                     for b, span in enumerate(blocks)])
                new.weight.copy_(stacked.T if family.conv1d else stacked)
                if old.bias is not None:
                    new.bias.copy_(torch.cat([rows(old.bias[span], b, True)
                                              for b, span in enumerate(blocks)]))
                setattr(mlp, name, new)
            old = family.output_of(mlp)
            weight = old.weight.T if family.conv1d else old.weight  # (out, in)
            new = _projection(old, new_width, weight.shape[0], family.conv1d)
            rebuilt = columns(weight)
            new.weight.copy_(rebuilt.T if family.conv1d else rebuilt)
            if old.bias is not None:
                new.bias.copy_(old.bias)
            setattr(mlp, family.output, new)
        if hasattr(mlp, "intermediate_size"):
            mlp.intermediate_size = new_width
    if hasattr(model, "config"):
        setattr(model.config, family.width_field, new_width)


def sink_pool_size(width: int, p_shared: float) -> int:
    """Sink neurons to add to an MLP of ``width`` so that ``p_shared`` of the result is shared."""
    if not 0 < p_shared < 1:
        raise ValueError(f"sinks.p_shared = {p_shared} must be in (0, 1) to add a sink pool")
    return max(1, round(width * (1 - p_shared) / p_shared))


def add_sink_pool_share(model: nn.Module, p_shared: float, seed: int = 0) -> int:
    """:func:`add_sink_pool` with as many sinks as make the old width ``p_shared`` of the new
    one; returns the old width (the shared neurons)."""
    family = model_family(model)
    width = family.width_of(family.layers_of(model)[0].mlp)
    return add_sink_pool(model, sink_pool_size(width, p_shared), seed=seed)


def add_sink_pool(model: nn.Module, n_sink: int, seed: int = 0,
                  init_std: float | None = None) -> int:
    """Widen every MLP of a (pretrained) model by ``n_sink`` new neurons, in place; returns the
    old width, which becomes the number of shared neurons.

    The new neurons' input weights are drawn from N(0, init_std) (the config's
    ``initializer_range`` by default) and their biases are zero; their output (down
    projection) columns start at zero, so the model computes exactly what it did before, and
    its first gradient reaches the sinks through those columns (as LoRA's zero-initialised B
    does). Build ``Sinks(model, config, n_shared=<returned width>)`` on the result.
    """
    if n_sink < 1:
        raise ValueError(f"a sink pool of {n_sink} neurons is empty; add at least one")
    family = model_family(model)
    config = getattr(model, "config", None)
    if getattr(config, "memsinks_n_shared", None):
        raise ValueError(f"this model already has a sink pool ({config.memsinks_n_shared} "
                         "shared neurons); train it as it is, or widen its sink-free export "
                         "(memsinks export) instead")
    std = init_std if init_std is not None else getattr(config, "initializer_range", 0.02)
    generator = torch.Generator().manual_seed(seed)
    width = family.width_of(family.layers_of(model)[0].mlp)
    new_width = width + n_sink

    def rows(old: torch.Tensor, block: int, is_bias: bool) -> torch.Tensor:
        # each factor block (Phi-3's gate, then up) gets its new neurons at its own end
        if is_bias:
            return torch.cat([old, old.new_zeros(n_sink)])
        fresh = torch.randn(n_sink, old.shape[1], generator=generator) * std
        return torch.cat([old, fresh.to(old.device, old.dtype)])

    rebuild_mlps(model, family, new_width, rows,
                 columns=lambda old: torch.cat([old, old.new_zeros(old.shape[0], n_sink)],
                                               dim=1))
    if config is not None:
        # saved with the config, so a widened checkpoint is not widened again by mistake
        config.memsinks_n_shared = width
    return width
