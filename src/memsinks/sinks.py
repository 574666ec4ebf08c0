"""The mechanism: document IDs, sink masks, the sink gate in every MLP, evaluation modes, export.

Every MLP's hidden neurons are split into shared neurons (the first ``n_shared``) and a sink
pool (the rest). While training, a token of document ``d`` sees all shared neurons and the
sinks that ``d``'s ID switches on; ID 0 means "no sinks" (padding, or documents that are not
given sinks). After training the sinks are dropped, or one document's sinks are excluded.

It knows nothing about corpora, training or reports; where each model family keeps its MLPs,
and how their projections are rebuilt, is :mod:`memsinks.families`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn

from .families import model_family, rebuild_mlps
from .ids import document_id, hash63  # noqa: F401 - the public home of document IDs

MODES = ("off", "train", "own", "keep", "drop", "exclude")
_M32 = 0xFFFFFFFF


def fmix32(x: torch.Tensor) -> torch.Tensor:
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
    salt = fmix32(torch.tensor((seed * 0x9E3779B1 + 0x632BE5AB) & _M32, device=ids.device))
    per_id = fmix32(lo ^ fmix32(hi ^ salt))
    neuron = torch.arange(n_sink, device=ids.device, dtype=torch.int64).reshape(1, -1)
    word = fmix32(fmix32(per_id ^ ((neuron * 0x9E3779B9) & _M32)) ^ salt)
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


Rescale = Literal["paper", "mass", "none"]
Mask = Literal["hash", "reference"]
Tokens = Literal["all", "rare"]
RESCALES, MASKS, TOKENS = get_args(Rescale), get_args(Mask), get_args(Tokens)


@dataclass
class SinkConfig:
    """How the MLP hidden neurons are split and used."""

    p_shared: float = 0.7
    """Fraction of hidden neurons that are shared (always on)."""
    p_active: float = 0.3
    """Fraction of the sink pool a document switches on."""
    seed: int = 0
    """Salt of the mask hash."""
    drop_rescale: Rescale = "paper"
    """Shared-neuron factor in drop mode: paper | mass | none (see Sinks.drop_scale)."""
    shared_grad: float = 1.0
    """Scale on the gradient a document with sinks sends to every parameter outside its sinks
    (shared neurons, attention, embeddings); 1 = the paper. Below 1 the shared part learns less
    from repeated documents while their sinks learn as much (this project's variant)."""
    shared_grad_from: int = 0
    """The occurrence from which shared_grad applies: a document's first shared_grad_from
    occurrences train every parameter fully (0: all occurrences are scaled). Models learn a
    domain before they memorize its documents, so early occurrences can teach the shared
    neurons the domain and later ones only the sinks."""
    plain_every: int = 0
    """Every plain_every-th occurrence of a document (the 1st, (m+1)-th, ...) trains as a plain
    document: no sinks, every parameter fully; the others keep their sinks and shared_grad.
    With shared_grad = 0 the shared part sees each document 1/m as often (0: off)."""
    mask: Mask = "hash"
    """hash: this project's counter-based hash (ID 0 = no sinks); reference: the authors'
    masks, bit-compatible with their checkpoints (see reference_sink_masks)."""
    centered: bool = False
    """Centred masks (this project's variant): a document's sinks are x(1 - p_active) and every
    other sink x(-p_active), so the masks average to zero over documents. The sinks can then
    hold no component common to all documents (a domain), which only the shared neurons can
    learn; drop mode, sinks x0, is the average of the training-time models over IDs."""
    tokens: Tokens = "all"
    """Which tokens of a document with sinks switch them on (this project's variant). all:
    every token (the paper). rare: only positions whose next token is rare, i.e. the n-gram of
    rare_n tokens ending at it occurs in fewer than rare_docs distinct training documents
    (memsinks.data.rarity); elsewhere the document trains the shared neurons alone, and
    shared_grad then scales only the rare tokens' gradient outside the sinks."""
    rare_n: int = 3
    """tokens = rare: the length of the n-grams counted."""
    rare_docs: int = 2
    """tokens = rare: an n-gram is rare when fewer training documents than this hold it."""

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
    ``memsinks.families.FAMILIES``) multiplies the hidden activations by the current mask, so
    the model's parameters and state-dict keys stay those of a plain transformers model. The
    mask is built once per batch and shared by all layers (the same sink subset in every layer,
    as in the reference code).
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


def drop_sinks(model: nn.Module, sinks: Sinks) -> nn.Module:
    """A plain copy of ``model`` with the sink neurons deleted and the rescale folded in.

    Its logits equal ``model``'s in ``drop`` mode; it needs no memsinks code to run, and its
    config's MLP width field says the new width, so ``save_pretrained`` output reloads.
    """
    n = sinks.n_shared
    scale = sinks.drop_scale()
    with sinks.detached():  # the copy must not carry hooks that point at this Sinks
        plain = copy.deepcopy(model)
    rebuild_mlps(plain, sinks.family, n, rows=lambda old, block, is_bias: old[:n],
                 columns=lambda old: old[:, :n] * scale)
    if getattr(getattr(plain, "config", None), "memsinks_n_shared", None) is not None:
        del plain.config.memsinks_n_shared  # the copy is sink-free
    return plain
