"""The mechanism: document IDs, sink masks, the sink gate in every MLP, evaluation modes, export.

Every MLP's hidden neurons are split into shared neurons (the first ``n_shared``) and a sink
pool (the rest). While training, a token of document ``d`` sees all shared neurons and the
sinks that ``d``'s ID switches on; ID 0 means "no sinks" (padding, or documents that are not
given sinks). After training the sinks are dropped, or one document's sinks are excluded.

This module is a leaf: it knows nothing about corpora, training or reports.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

MODES = ("off", "train", "own", "keep", "drop", "exclude")
RESCALES = ("paper", "mass", "none")
_M32 = 0xFFFFFFFF


def document_id(token_ids: Sequence[int] | np.ndarray) -> int:
    """A 63-bit ID from a hash of the token ids: equal documents share it, and it is never 0."""
    data = np.asarray(token_ids, dtype="<i8").tobytes()
    value = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1
    return value or 1


def _fmix32(x: torch.Tensor) -> torch.Tensor:
    # murmur3's finaliser on 32-bit words held in int64. Products can wrap past 2^63, but the
    # low 32 bits of a two's-complement product are exact, so masking keeps it portable.
    x = x ^ (x >> 16)
    x = (x * 0x85EBCA6B) & _M32
    x = x ^ (x >> 13)
    x = (x * 0xC2B2AE35) & _M32
    return x ^ (x >> 16)


def sink_masks(ids: torch.Tensor, n_sink: int, p_active: float, seed: int = 0) -> torch.Tensor:
    """Boolean masks (len(ids), n_sink): neuron j is on for ID i iff hash(i, j, seed) < p_active.

    Stateless and integer-only, so the same ID gives the same mask in any batch, process or
    device. ID 0 gets no sinks.
    """
    ids = ids.to(torch.int64).reshape(-1, 1)
    lo, hi = ids & _M32, (ids >> 32) & _M32
    salt = _fmix32(torch.tensor((seed * 0x9E3779B1 + 0x632BE5AB) & _M32, device=ids.device))
    per_id = _fmix32(lo ^ _fmix32(hi ^ salt))
    neuron = torch.arange(n_sink, device=ids.device, dtype=torch.int64).reshape(1, -1)
    word = _fmix32(_fmix32(per_id ^ ((neuron * 0x9E3779B9) & _M32)) ^ salt)
    threshold = int(round(p_active * 2**32))
    return (word < threshold) & (ids != 0)


REFERENCE_A, REFERENCE_M = 1588635695, 4294967291


def reference_sink_masks(ids: torch.Tensor, n_sink: int, p_active: float) -> torch.Tensor:
    """The reference code's masks, bit for bit: neuron j on iff (id * 2^16 * a^j mod M) / M < p.

    In int64 torch arithmetic as the reference computes it, wrap-around of a^j and of the
    products included; its quirks are kept (ID 0 switches every sink on, and small IDs share
    sink neuron 0). Only for models trained with the authors' code: the default hash has none.
    """
    ids = ids.to(torch.int64).reshape(-1, 1)
    j = torch.arange(n_sink, dtype=torch.int64, device=ids.device)
    powers = torch.pow(torch.tensor(REFERENCE_A, dtype=torch.int64, device=ids.device), j)
    values = torch.remainder(ids * 2**16 * powers, REFERENCE_M)
    return (values.double() / REFERENCE_M) < p_active


MASKS = ("hash", "reference")
TOKENS = ("all", "rare")


@dataclass
class SinkConfig:
    """How the MLP hidden neurons are split and used."""

    p_shared: float = 0.7  # fraction of hidden neurons that are shared (always on)
    p_active: float = 0.3  # fraction of the sink pool a document switches on
    seed: int = 0  # salt of the mask hash
    drop_rescale: str = "paper"  # shared-neuron factor in drop mode: paper | mass | none
    # scale on the gradient a document with sinks sends to every parameter outside its sinks
    # (shared neurons, attention, embeddings); 1 = the paper. Below 1 the shared part learns
    # less from repeated documents while their sinks learn as much (this project's variant)
    shared_grad: float = 1.0
    # the occurrence from which shared_grad applies: a document's first shared_grad_from
    # occurrences train every parameter fully (0: all occurrences are scaled). Models learn a
    # domain before they memorize its documents, so early occurrences can teach the shared
    # neurons the domain and later ones only the sinks
    shared_grad_from: int = 0
    # every plain_every-th occurrence of a document (the 1st, (m+1)-th, ...) trains as a plain
    # document: no sinks, every parameter fully; the others keep their sinks and shared_grad.
    # With shared_grad = 0 the shared part sees each document 1/m as often (0: off)
    plain_every: int = 0
    # hash: this project's counter-based hash (ID 0 = no sinks); reference: the authors' masks,
    # bit-compatible with their checkpoints (see reference_sink_masks)
    mask: str = "hash"
    # centred masks (this project's variant): a document's sinks are x(1 - p_active) and every
    # other sink x(-p_active), so the masks average to zero over documents. The sinks can then
    # hold no component common to all documents (a domain), which only the shared neurons can
    # learn; drop mode, sinks x0, is the average of the training-time models over IDs
    centered: bool = False
    # which tokens of a document with sinks switch them on (this project's variant). all: every
    # token (the paper). rare: only positions whose next token is rare, i.e. the n-gram of
    # rare_n tokens ending at it occurs in fewer than rare_docs distinct training documents
    # (memsinks.data.rarity); elsewhere the document trains the shared neurons alone, and
    # shared_grad then scales only the rare tokens' gradient outside the sinks
    tokens: str = "all"
    rare_n: int = 3
    rare_docs: int = 2

    def validate(self) -> None:
        for name in ("p_shared", "p_active"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"sinks.{name} = {value} is not a probability in (0, 1]; "
                                 f"use a value such as 0.3")
        if not 0 <= self.shared_grad <= 1:
            raise ValueError(f"sinks.shared_grad = {self.shared_grad} is not in [0, 1]; 1 trains "
                             "as the paper does")
        if self.shared_grad_from < 0:
            raise ValueError(f"sinks.shared_grad_from = {self.shared_grad_from} must be >= 0 "
                             "(an occurrence count; 0 scales every occurrence)")
        if self.plain_every < 0:
            raise ValueError(f"sinks.plain_every = {self.plain_every} must be >= 0 (0: every "
                             "occurrence carries sinks)")
        if self.mask not in MASKS:
            raise ValueError(f"sinks.mask = {self.mask!r} is not one of {', '.join(MASKS)}")
        if self.tokens not in TOKENS:
            raise ValueError(f"sinks.tokens = {self.tokens!r} is not one of {', '.join(TOKENS)}")
        if self.rare_n < 1 or self.rare_docs < 2:
            raise ValueError(f"sinks.rare_n = {self.rare_n} must be >= 1 and sinks.rare_docs = "
                             f"{self.rare_docs} >= 2 (rare: fewer than rare_docs documents hold "
                             "the n-gram)")
        if self.drop_rescale not in RESCALES:
            raise ValueError(f"sinks.drop_rescale = {self.drop_rescale!r} is not one of "
                             f"{', '.join(RESCALES)}")


class Sinks:
    """Sink gates on every MLP of a model of a supported family, switched between modes.

    A forward pre-hook on each MLP's output projection (``down_proj`` in Llama; see
    ``FAMILIES``) multiplies the hidden activations by the current mask, so the model's
    parameters and state-dict keys stay those of a plain transformers model. The mask is built
    once per batch and shared by all layers (the same sink subset in every layer, as in the
    reference code).
    """

    def __init__(self, model: nn.Module, config: SinkConfig, n_shared: int | None = None):
        """``n_shared``: the number of shared neurons, when it is not ``p_shared`` x the width
        (a pretrained model's MLP widened by :func:`add_sink_pool` keeps its old neurons)."""
        config.validate()
        self.config = config
        self.family = model_family(model)
        self.mlps = [layer.mlp for layer in self.family.layers_of(model)]
        self.intermediate_size = self.family.width_of(self.mlps[0])
        self.n_shared = (int(self.intermediate_size * config.p_shared) if n_shared is None
                         else int(n_shared))
        self.n_sink = self.intermediate_size - self.n_shared
        if self.n_shared <= 0:
            raise ValueError(f"sinks.p_shared = {config.p_shared} leaves no shared neurons in an "
                             f"MLP of width {self.intermediate_size}; raise it")
        if self.n_sink <= 0:
            raise ValueError(f"{self.n_shared} shared neurons leave no sink pool in an MLP of "
                             f"width {self.intermediate_size}; lower sinks.p_shared or widen the "
                             "MLP with add_sink_pool")
        self.mode = "off"
        self._mask: torch.Tensor | None = None
        self._cast: dict[torch.dtype, torch.Tensor] = {}
        self._handles = [out.register_forward_pre_hook(self._gate) for out in self._outputs]

    # -- the gate ---------------------------------------------------------------------------
    def _gate(self, module: nn.Module, args: tuple) -> tuple | None:
        if self._mask is None:
            return None
        hidden = args[0]
        mask = self._cast.get(hidden.dtype)
        if mask is None or mask.device != hidden.device:
            mask = self._cast[hidden.dtype] = self._mask.to(hidden.device, hidden.dtype)
        if self.mode in ("train", "own") and self.family.gated:
            # shared neurons are x1 here: gate the sink slice only, in place (the product
            # the MLP hands down_proj is saved by nothing else), a third of the memory traffic.
            # Not for act(x) alone: an activation such as ReLU saves its output for backward
            hidden[..., self.n_shared:].mul_(mask[..., self.n_shared:])
            return None
        return (hidden * mask,) + tuple(args[1:])

    def remove(self) -> None:
        """Detach the gates; the model becomes a plain model again."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._set(None, "off")

    @contextmanager
    def detached(self) -> Iterator[None]:
        """Temporarily remove the gates (for example to copy the plain model)."""
        for handle in self._handles:
            handle.remove()
        try:
            yield
        finally:
            self._handles = [out.register_forward_pre_hook(self._gate) for out in self._outputs]

    @property
    def _outputs(self) -> list[nn.Module]:
        # looked up on every use, as down_proj always was, in case a caller swapped one
        return [self.family.output_of(mlp) for mlp in self.mlps]

    def _set(self, mask: torch.Tensor | None, mode: str) -> None:
        self._mask, self._cast, self.mode = mask, {}, mode

    # -- masks ------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self._outputs[0].weight.device

    def masks(self, ids: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Boolean sink masks (len(ids), n_sink) for the given document IDs."""
        ids = torch.as_tensor(ids, dtype=torch.int64, device=self.device)
        if self.config.mask == "reference":
            return reference_sink_masks(ids, self.n_sink, self.config.p_active)
        return sink_masks(ids, self.n_sink, self.config.p_active, self.config.seed)

    def drop_scale(self) -> float:
        """Factor on the shared neurons when the sinks are dropped."""
        c = self.config
        if c.drop_rescale == "paper":  # the reference code's (p_gen + p_mem) / p_gen
            return (c.p_shared + c.p_active) / c.p_shared
        if c.drop_rescale == "mass":  # expected active hidden units in training over shared ones
            return (self.n_shared + c.p_active * self.n_sink) / self.n_shared
        return 1.0

    def per_token(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Full masks (..., intermediate) for per-token document IDs (0 = no sinks)."""
        token_ids = token_ids.to(self.device)
        unique, inverse = torch.unique(token_ids, return_inverse=True)
        rows = torch.ones(len(unique), self.intermediate_size, device=self.device)
        sink = self.masks(unique).float()
        if self.config.centered:  # ID 0 still means no sinks at all
            sink = torch.where((unique != 0)[:, None], sink - self.config.p_active, 0.0)
        rows[:, self.n_shared:] = sink
        return rows[inverse]

    def _vector(self, shared: float, sink: float) -> torch.Tensor:
        vec = torch.full((self.intermediate_size,), float(sink), device=self.device)
        vec[: self.n_shared] = shared
        return vec

    # -- modes ------------------------------------------------------------------------------
    def set_mode(self, mode: str, ids: torch.Tensor | None = None,
                 exclude: Iterable[int] = ()) -> None:
        """Switch every gate.

        ``off``: no gating (a plain model). ``train``/``own``: each token's document mask, from
        per-token ``ids`` shaped like the input. ``keep``: all sinks x p_active. ``drop``:
        sinks x 0, shared x ``drop_scale()``. ``exclude``: ``keep`` with the sinks of the given
        IDs zeroed.
        """
        if mode not in MODES:
            raise ValueError(f"sink mode {mode!r} is not one of {', '.join(MODES)}")
        if mode in ("train", "own"):
            if ids is None:
                raise ValueError(f"sink mode {mode!r} needs per-token document ids")
            self._set(self.per_token(ids), mode)
        elif mode == "off":
            self._set(None, mode)
        elif mode == "keep":  # centred masks average to zero: keeping them is dropping them
            sink = 0.0 if self.config.centered else self.config.p_active
            self._set(self._vector(1.0, sink), mode)
        elif mode == "drop":
            self._set(self._vector(self.drop_scale(), 0.0), mode)
        else:
            if self.config.centered:
                raise ValueError("exclude mode switches one document's sinks off the average "
                                 "model, which centred masks do not have (their sinks average "
                                 "to zero); compare own and drop modes instead")
            vec = self._vector(1.0, self.config.p_active)
            excluded = list(exclude)
            if excluded:
                hit = self.masks(excluded).any(dim=0)
                vec[self.n_shared:][hit] = 0.0
            self._set(vec, mode)

    @contextmanager
    def mode_of(self, mode: str, ids: torch.Tensor | None = None,
                exclude: Iterable[int] = ()) -> Iterator[Sinks]:
        """Temporarily switch modes; the previous mask is restored afterwards."""
        saved = (self._mask, self._cast, self.mode)
        self.set_mode(mode, ids=ids, exclude=exclude)
        try:
            yield self
        finally:
            self._mask, self._cast, self.mode = saved


# -- model families -----------------------------------------------------------------------------
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


def _decoder_layers(model: nn.Module) -> list[nn.Module]:
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


def _rebuild_mlps(model: nn.Module, family: ModelFamily, new_width: int,
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


def drop_sinks(model: nn.Module, sinks: Sinks) -> nn.Module:
    """A plain copy of ``model`` with the sink neurons deleted and the rescale folded in.

    Its logits equal ``model``'s in ``drop`` mode; it needs no memsinks code to run, and its
    config's MLP width field says the new width, so ``save_pretrained`` output reloads.
    """
    n = sinks.n_shared
    scale = sinks.drop_scale()
    with sinks.detached():  # the copy must not carry hooks that point at this Sinks
        plain = copy.deepcopy(model)
    _rebuild_mlps(plain, sinks.family, n, rows=lambda old, block, is_bias: old[:n],
                  columns=lambda old: old[:, :n] * scale)
    if getattr(getattr(plain, "config", None), "memsinks_n_shared", None) is not None:
        del plain.config.memsinks_n_shared  # the copy is sink-free
    return plain


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

    _rebuild_mlps(model, family, new_width, rows,
                  columns=lambda old: torch.cat([old, old.new_zeros(old.shape[0], n_sink)],
                                                dim=1))
    if config is not None:
        # saved with the config, so a widened checkpoint is not widened again by mistake
        config.memsinks_n_shared = width
    return width
