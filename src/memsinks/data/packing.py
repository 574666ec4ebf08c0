"""Packing: the documents of a batch laid whole into rows of one length, attention kept inside
each document.

One document per row (:func:`collate`) pads every row to the longest document. Packing lays
the documents, each as BOS, tokens, EOS, into rows of ``row_len`` tokens, first-fit in the
order given, and keeps them apart:

- a block-diagonal causal mask: no token attends across a document boundary;
- ``position_ids`` restart at 0 at every document's BOS;
- every token carries its document's sink ID (padding: 0);
- no label crosses a boundary: a document's first token is never the target of the token
  before it in the row.

So a packed batch gives every document the losses and gradients of the one-document-per-row
batch, up to float rounding. A document longer than ``row_len`` is split into row-length
pieces, all with its sink ID. Each piece is a sequence of its own: its positions restart at 0
and its first token is not predicted (the previous piece is not in its context), the usual
choice when a long sequence is chunked; this is the one place where packing changes what is
trained.

The mask is a boolean (rows, 1, L, L) tensor (True = may attend) passed as ``attention_mask``:
transformers (5.x, ``masking_utils``) uses a 4D mask as given, and SDPA takes boolean masks
(eager attention would want an additive float mask instead). This is the CPU route, and the
tested one. The GPU routes pass no mask (``train.attention``, :meth:`PackedBatch.model_inputs`):
``position_ids`` alone with ``use_cache=False`` make transformers 5.x find each document from
the restarts (``find_packed_sequence_indices``) and build the mask its attention needs:
FlexAttention (``train.attention=flex_attention``) gets a block mask that skips the blocks
across documents, with no L x L tensor. With ``flash_attention_2`` the rows are laid end to
end as one (1, rows x L) sequence and the restarts become the variable-length kernel's
boundaries (``prepare_fa_kwargs_from_position_ids``; batch size 1 only). Under SDPA the same
positions give the dense mask back, which is how the routes are tested on CPU (losses and
gradients equal; FlexAttention has no backward pass on CPU, so its loss is compared there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .stream import BOS, EOS, PAD


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, T), right-padded
    labels: torch.Tensor  # input ids, -100 on padding
    doc_ids: torch.Tensor  # (B, T) sink ID of every token (0 = no sinks)


def collate(token_lists: list[np.ndarray], doc_ids: list[int], device: torch.device,
            specials: tuple[int, int, int] = (PAD, BOS, EOS)) -> Batch:
    """One document per row: BOS, its tokens, EOS, right padding; ``specials`` = (pad, bos, eos)."""
    pad, bos, eos = specials
    width = max(len(t) for t in token_lists) + 2
    input_ids = torch.full((len(token_lists), width), pad, dtype=torch.long)
    labels = torch.full_like(input_ids, -100)
    ids = torch.zeros_like(input_ids)
    for row, (tokens, doc) in enumerate(zip(token_lists, doc_ids, strict=True)):
        n = len(tokens) + 2
        seq = torch.empty(n, dtype=torch.long)
        seq[0], seq[-1] = bos, eos
        seq[1:-1] = torch.from_numpy(tokens.astype(np.int64))
        input_ids[row, :n] = seq
        labels[row, :n] = seq
        ids[row, :n] = doc
    return Batch(input_ids.to(device), labels.to(device), ids.to(device))


@dataclass
class PackedBatch:
    """Rows of tokens with what a forward pass and a per-document loss need.

    ``labels[:, t]`` is the target of position ``t - 1`` (as in :class:`Batch`, the loss pairs
    ``logits[:, :-1]`` with ``labels[:, 1:]``). ``doc_index`` and ``offset`` say where each
    token sits in the one-document-per-row layout of the same documents.
    """

    input_ids: torch.Tensor  # (rows, width)
    labels: torch.Tensor  # (rows, width): input ids, -100 on padding and where nothing predicts
    doc_ids: torch.Tensor  # (rows, width) sink ID of every token (0 = no sinks)
    doc_index: torch.Tensor  # (rows, width) the token's document, its index in the input; -1 = pad
    offset: torch.Tensor  # (rows, width) the token's position in its BOS..EOS; 0 on padding
    position_ids: torch.Tensor | None = None  # (rows, width); None: 0, 1, 2, ... in every row
    attention_mask: torch.Tensor | None = None  # (rows, 1, width, width) bool; None: causal
    row_group: torch.Tensor | None = None  # (rows,) bool: the group of the row's documents

    @property
    def packed(self) -> bool:
        return self.attention_mask is not None

    @property
    def rows(self) -> int:
        return self.input_ids.shape[0]

    @classmethod
    def unpacked(cls, batch: Batch) -> PackedBatch:
        """The same view of a one-document-per-row batch (:func:`collate`'s)."""
        rows, width = batch.input_ids.shape
        device = batch.input_ids.device
        real = batch.labels != -100  # collate leaves BOS as a label, so this is every token
        doc_index = torch.where(real, torch.arange(rows, device=device)[:, None], -1)
        offset = torch.arange(width, device=device).expand(rows, width) * real
        return cls(batch.input_ids, batch.labels, batch.doc_ids, doc_index, offset)

    def model_inputs(self, rows: torch.Tensor | slice | None = None,
                     route: str = "mask") -> dict[str, torch.Tensor]:
        """Keyword arguments of the model's forward pass for ``rows`` (all rows by default).

        Never a KV cache (``use_cache=False``): training and scoring do not read one.
        ``route`` for packed rows: ``mask`` passes the dense (rows, 1, L, L) mask; ``positions``
        passes only the restarting ``position_ids``, from which
        transformers builds the document mask its attention needs (a FlexAttention block
        mask, or SDPA's dense one); ``flat`` also lays the rows end to end as one (1, rows x L)
        sequence, the variable-length flash-attention layout (see :meth:`flat_rows`).
        """
        def pick(x: torch.Tensor) -> torch.Tensor:
            return x if rows is None else x[rows]

        if route not in ("mask", "positions", "flat"):
            raise ValueError(f"packed attention route {route!r} is not mask, positions or flat")
        # a KV cache serves generation only; training and scoring forwards never read it
        inputs = {"input_ids": pick(self.input_ids), "use_cache": False}
        if self.position_ids is not None:
            inputs["position_ids"] = pick(self.position_ids)
        if self.attention_mask is not None and route == "mask":
            inputs["attention_mask"] = pick(self.attention_mask)
        # no mask and no cache: transformers reads the restarting positions as boundaries
        if self.attention_mask is not None and route == "flat":
            inputs["input_ids"] = self.flat_rows(inputs["input_ids"])
            inputs["position_ids"] = self.flat_rows(inputs["position_ids"])
        return inputs

    @staticmethod
    def flat_rows(x: torch.Tensor) -> torch.Tensor:
        """(rows, L, ...) laid end to end as (1, rows x L, ...): the ``flat`` route's layout.
        Each row's padding is a sequence of its own (its positions restart), so nothing
        attends across rows; outputs come back with ``.view(rows, L, ...)``."""
        return x.reshape(1, -1, *x.shape[2:])

    def place(self, per_document: torch.Tensor) -> torch.Tensor:
        """Values laid out one document per row (:func:`collate`'s layout) moved into this one.

        Padding gets zero (False for a boolean tensor).
        """
        values = per_document.to(self.doc_index.device)[self.doc_index.clamp(min=0), self.offset]
        return values.masked_fill(self.doc_index < 0, 0)

    def document_sums(self, per_target: torch.Tensor, count: int) -> torch.Tensor:
        """Float64 sums per document of values shaped like ``labels[:, 1:]`` (per target token).

        Entry ``[r, t]`` counts for the document of token ``t + 1``; padding counts for none.
        """
        owner = self.doc_index[:, 1:]
        keep = owner >= 0
        sums = torch.zeros(count, dtype=torch.float64, device=per_target.device)
        return sums.index_add_(0, owner[keep], per_target[keep].double())


def pack(token_lists: Sequence[np.ndarray], doc_ids: Sequence[int], device: torch.device,
         specials: tuple[int, int, int] = (PAD, BOS, EOS), *, row_len: int,
         groups: Sequence[bool] | np.ndarray | None = None, rows_multiple: int = 1
         ) -> PackedBatch:
    """Documents as BOS, tokens, EOS, first-fit in the given order into rows of ``row_len``.

    ``specials`` = (pad, bos, eos). With ``groups`` (a flag per document) a row holds documents
    of one group only (``row_group``), so each row can be trained in its own way. Empty rows are
    added until the row count is a multiple of ``rows_multiple`` (processes that split the rows
    evenly). Rows are as wide as the fullest one, at most ``row_len``: trailing columns that are
    padding in every row would change nothing but the cost.
    """
    if row_len < 2:
        raise ValueError(f"row length {row_len} is too short; a row must hold at least BOS and "
                         "EOS (use the model context)")
    if not len(token_lists):
        raise ValueError("nothing to pack: no documents")
    pad, bos, eos = specials
    flags = ([False] * len(token_lists) if groups is None
             else [bool(g) for g in np.asarray(groups).tolist()])
    layout: list[list[tuple[int, int, int]]] = []  # per row: (document, start, length)
    free: list[int] = []
    row_flag: list[bool] = []
    for doc, tokens in enumerate(token_lists):
        total = len(tokens) + 2
        for start in range(0, total, row_len):
            length = min(row_len, total - start)
            row = next((r for r, space in enumerate(free)
                        if space >= length and row_flag[r] == flags[doc]), None)
            if row is None:
                row = len(layout)
                layout.append([])
                free.append(row_len)
                row_flag.append(flags[doc])
            layout[row].append((doc, start, length))
            free[row] -= length
    while len(layout) % rows_multiple:
        layout.append([])
        free.append(row_len)
        row_flag.append(False)

    n_rows, width = len(layout), row_len - min(free)
    input_ids = np.full((n_rows, width), pad, dtype=np.int64)
    labels = np.full((n_rows, width), -100, dtype=np.int64)
    ids = np.zeros((n_rows, width), dtype=np.int64)
    positions = np.zeros((n_rows, width), dtype=np.int64)
    doc_index = np.full((n_rows, width), -1, dtype=np.int64)
    offset = np.zeros((n_rows, width), dtype=np.int64)
    segment = np.full((n_rows, width), -1, dtype=np.int64)  # -1: the row's padding
    sequences: dict[int, np.ndarray] = {}
    for row, pieces in enumerate(layout):
        col = 0
        for piece, (doc, start, length) in enumerate(pieces):
            seq = sequences.get(doc)
            if seq is None:
                seq = sequences[doc] = np.concatenate(
                    [[bos], np.asarray(token_lists[doc], dtype=np.int64), [eos]])
            span = slice(col, col + length)
            input_ids[row, span] = seq[start:start + length]
            labels[row, span] = seq[start:start + length]
            labels[row, col] = -100  # nothing before it in this row is its context
            ids[row, span] = doc_ids[doc]
            positions[row, span] = np.arange(length)
            doc_index[row, span] = doc
            offset[row, span] = np.arange(start, start + length)
            segment[row, span] = piece
            col += length
        # padding is a sequence of its own: it attends to itself, so no attention row is
        # empty (an all-masked softmax row is NaN), and nothing else attends to it
        positions[row, col:] = np.arange(width - col)

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(device)

    seg = tensor(segment)
    causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
    mask = (seg[:, :, None] == seg[:, None, :]) & causal
    return PackedBatch(tensor(input_ids), tensor(labels), tensor(ids), tensor(doc_index),
                       tensor(offset), tensor(positions), mask[:, None],
                       torch.tensor(row_flag, dtype=torch.bool, device=device))


def model_context(model: torch.nn.Module) -> int:
    """The default row length: the model's context (``config.max_position_embeddings``)."""
    context = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if not context:
        raise ValueError("packing needs a row length: the model has no "
                         "config.max_position_embeddings, so set train.row_len")
    return int(context)
