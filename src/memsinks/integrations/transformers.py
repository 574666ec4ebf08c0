"""Sinks in transformers' ``Trainer``: a collator that gives every token its document's sink ID,
and a ``Trainer`` that switches the sink masks before every micro-batch.

    sinks = Sinks(model, SinkConfig())
    collator = SinkCollator(DataCollatorForLanguageModeling(tokenizer, mlm=False))
    trainer = SinkTrainer(model=model, args=args, train_dataset=data, data_collator=collator,
                          sinks=sinks)
    trainer.train()
    drop_sinks(model, sinks).save_pretrained("out")

An example's ID is its ``sink_id`` column where it has one (0 = no sinks), else a hash of its
``input_ids`` (:func:`memsinks.sinks.document_id`), so equal documents share their sinks. The
loss is transformers' own: summed token NLL over the tokens of the whole accumulated batch, so
each micro-batch of a gradient-accumulation step keeps its own masks and its share of the loss.
The Trainer's checkpoints (and ``save_model``) hold the whole model, sinks included, so training
resumes; the sink-free model is ``drop_sinks``'s.
Needs ``accelerate`` (``pip install 'memsinks[hf]'``).
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import Trainer

from ..sinks import Sinks, document_id

SINK_IDS = "sink_ids"  # the batch key: per-token document IDs, int64, shaped like input_ids
EVAL_MODES = ("off", "keep", "drop", "own")


def example_id(example: Mapping[str, Any], column: str = "sink_id") -> int:
    """An example's document ID: its ``column`` value if it has one, else a hash of its tokens."""
    if column in example and example[column] is not None:
        try:
            value = operator.index(example[column])
        except TypeError:
            raise TypeError(f"column {column!r} holds {example[column]!r}; give each example an "
                            "integer document ID (0 = no sinks)") from None
        if not 0 <= value < 2**63:
            raise ValueError(f"column {column!r} holds {value}, outside [0, 2^63); use a "
                             "non-negative 63-bit ID such as memsinks.sinks.document_id(tokens)")
        return value
    if "input_ids" not in example:
        raise KeyError(f"an example has neither {column!r} nor 'input_ids'; tokenize the "
                       "dataset first")
    return document_id(np.asarray(example["input_ids"], dtype=np.int64))


def repeated_ids(dataset: Iterable[Mapping[str, Any]], column: str = "sink_id") -> set[int]:
    """The IDs that occur more than once in ``dataset`` (one counting pass); ``0`` is never one.

    Give it to ``SinkCollator(only=...)`` for this project's extension: only repeated documents
    get sinks, documents seen once train the shared neurons alone.
    """
    counts = Counter(example_id(example, column) for example in dataset)
    return {doc for doc, count in counts.items() if count > 1 and doc != 0}


class SinkCollator:
    """Wraps a collator and adds ``sink_ids`` (int64, shaped like ``input_ids``) to its batches.

    ``collator`` must keep each example's ``input_ids`` as given: padded rows, one example per
    row, padded on either side (e.g. ``DataCollatorForLanguageModeling(tokenizer, mlm=False)``;
    padding gets ID 0), or ``DataCollatorWithFlattening``'s single row of concatenated
    examples (each token gets its example's ID). With ``only``, examples whose ID is not in it
    get 0 (see :func:`repeated_ids`). The ``column`` is removed before ``collator`` sees it.
    """

    def __init__(self, collator: Callable[[list[dict]], Mapping[str, Any]], *,
                 column: str = "sink_id", only: Collection[int] | None = None):
        self.collator = collator
        self.column = column
        self.only = None if only is None else frozenset(only)

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
        ids = [example_id(f, self.column) for f in features]
        if self.only is not None:
            ids = [doc if doc in self.only else 0 for doc in ids]
        tokens = [torch.as_tensor(np.asarray(f["input_ids"], dtype=np.int64)) for f in features]
        batch = self.collator([{k: v for k, v in f.items() if k != self.column}
                               for f in features])
        input_ids = batch["input_ids"]
        if not isinstance(input_ids, torch.Tensor):
            raise TypeError(f"the wrapped collator returned input_ids as "
                            f"{type(input_ids).__name__}; make it return torch tensors "
                            "(return_tensors='pt')")
        batch[SINK_IDS] = _place(input_ids, batch.get("attention_mask"), tokens, ids)
        return batch


def _place(input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
           tokens: list[torch.Tensor], ids: list[int]) -> torch.Tensor:
    """Per-token IDs for a batch, by finding each example's tokens in it."""
    rows, width = input_ids.shape
    out = torch.zeros((rows, width), dtype=torch.int64)
    found = input_ids.detach().cpu()
    mask = (attention_mask.detach().cpu().bool()
            if isinstance(attention_mask, torch.Tensor) and attention_mask.shape == (rows, width)
            else None)
    if rows == len(tokens):  # one example per row, padded on the right or the left
        for row, (seq, doc) in enumerate(zip(tokens, ids, strict=True)):
            n = len(seq)
            for start in dict.fromkeys((0, width - n)):
                if (start >= 0 and torch.equal(found[row, start:start + n], seq)
                        and (mask is None or bool(mask[row, start:start + n].all()))):
                    out[row, start:start + n] = doc
                    break
            else:
                raise ValueError(f"example {row}'s input_ids are not at either end of batch row "
                                 f"{row}; wrap a collator that only pads (or "
                                 "DataCollatorWithFlattening)")
    elif rows == 1 and width == sum(len(seq) for seq in tokens):  # flattened, padding-free
        if not torch.equal(found[0], torch.cat(tokens)):
            raise ValueError("the flattened batch row is not the examples' input_ids in order; "
                             "wrap DataCollatorWithFlattening or a collator that only pads")
        lengths = torch.tensor([len(seq) for seq in tokens])
        out[0] = torch.repeat_interleave(torch.tensor(ids, dtype=torch.int64), lengths)
    else:
        raise ValueError(f"SinkCollator cannot lay {len(tokens)} examples out in a batch of "
                         f"shape {(rows, width)}; wrap a collator that pads one example per row "
                         "or DataCollatorWithFlattening")
    return out.to(input_ids.device)


class SinkTrainer(Trainer):
    """A ``Trainer`` whose every training micro-batch first sets its tokens' sink masks.

    Batches must carry ``sink_ids`` (use :class:`SinkCollator`). Evaluation runs in
    ``eval_mode``: ``drop`` (default; the loss of the model ``drop_sinks`` exports), ``keep``,
    ``off``, ``own`` (each token's own sinks, from the batch), or None to leave the sinks in
    the mode the caller set. After ``train()`` the sinks are ``off``.
    """

    def __init__(self, *args: Any, sinks: Sinks, eval_mode: str | None = "drop",
                 **kwargs: Any):
        if eval_mode is not None and eval_mode not in EVAL_MODES:
            raise ValueError(f"eval_mode = {eval_mode!r} is not one of "
                             f"{', '.join(EVAL_MODES)} or None")
        super().__init__(*args, **kwargs)
        if self.model is None or not any(m is sinks.mlps[0] for m in self.model.modules()):
            raise ValueError("the sinks are not attached to the trainer's model; build "
                             "Sinks(model, config) on the model given to SinkTrainer")
        self.sinks = sinks
        self.eval_mode = eval_mode

    def _set_signature_columns_if_needed(self) -> None:
        # keep the ID column (and sink_ids) when remove_unused_columns drops what the
        # model's forward does not take
        super()._set_signature_columns_if_needed()
        column = getattr(self.data_collator, "column", None)
        for name in (column, SINK_IDS):
            if name and name not in self._signature_columns:
                self._signature_columns.append(name)

    def compute_loss(self, model: nn.Module, inputs: Mapping[str, Any],
                     return_outputs: bool = False,
                     num_items_in_batch: torch.Tensor | int | None = None, **kwargs: Any):
        """transformers' loss, after setting this micro-batch's sink masks when training."""
        inputs = dict(inputs)
        ids = inputs.pop(SINK_IDS, None)
        if model.training:
            self.sinks.set_mode("train", ids=_checked(ids, inputs.get("input_ids")))
        if num_items_in_batch is not None:  # transformers < 4.46 does not pass it
            kwargs["num_items_in_batch"] = num_items_in_batch
        return super().compute_loss(model, inputs, return_outputs=return_outputs, **kwargs)

    def prediction_step(self, model: nn.Module, inputs: Mapping[str, Any],
                        prediction_loss_only: bool, ignore_keys: list[str] | None = None):
        inputs = dict(inputs)
        ids = inputs.pop(SINK_IDS, None)
        if self.eval_mode is None:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        own = _checked(ids, inputs.get("input_ids")) if self.eval_mode == "own" else None
        with self.sinks.mode_of(self.eval_mode, ids=own):
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)

    def train(self, *args: Any, **kwargs: Any):
        try:
            return super().train(*args, **kwargs)
        finally:
            self.sinks.set_mode("off")


def _checked(ids: Any, input_ids: torch.Tensor | None) -> torch.Tensor:
    if ids is None:
        raise ValueError("the batch has no sink_ids; wrap the data collator in "
                         "memsinks.integrations.transformers.SinkCollator")
    if not isinstance(ids, torch.Tensor) or ids.dtype != torch.int64:
        kind = ids.dtype if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise TypeError(f"sink_ids is {kind}, not an int64 tensor; give per-token document "
                        "IDs as torch.int64, as SinkCollator does")
    if input_ids is not None and ids.shape != input_ids.shape:
        raise ValueError(f"sink_ids has shape {tuple(ids.shape)} but input_ids "
                         f"{tuple(input_ids.shape)}; give one ID per token, as SinkCollator "
                         "does")
    return ids
