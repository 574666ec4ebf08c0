"""Per-document losses of the sets R, H and V under each sink mode, and their summaries."""

from __future__ import annotations

import numpy as np
import torch

from ..data.packing import PackedBatch, collate, model_context, pack
from ..data.stream import DocSet, Mixture
from ..device import autocast
from ..methods import Method
from ..sinks import Sinks
from .stats import gap, mean_nll

SETS = ("R", "H", "V")


@torch.no_grad()
def document_nll(model: torch.nn.Module, docs: DocSet, sinks: Sinks | None = None,
                 mode: str = "off", batch_size: int = 64, exclude: tuple[int, ...] = (),
                 *, packing: bool = False, row_len: int = 0) -> np.ndarray:
    """Summed NLL (nats) of every document's tokens and end token, given BOS; shape (len(docs),).

    ``mode`` is a sink mode; ``own`` gives every document its own training mask; ``exclude``
    lists the document IDs whose sinks mode ``exclude`` switches off. ``packing`` packs each
    ``batch_size`` documents into rows of ``row_len`` tokens (0 = the model context; see
    :mod:`memsinks.data.packing`): the same sums up to float rounding, unless a document is
    longer than a row.
    """
    device = next(model.parameters()).device
    if packing:
        row_len = row_len or model_context(model)
    was_training = model.training
    model.eval()
    sums = np.zeros(len(docs))
    order = np.argsort([len(t) for t in docs.tokens])  # similar lengths share a batch
    for start in range(0, len(docs), batch_size):
        index = order[start:start + batch_size]
        tokens, ids = [docs.tokens[i] for i in index], [int(docs.own_ids[i]) for i in index]
        batch = (pack(tokens, ids, device, docs.specials, row_len=row_len) if packing
                 else PackedBatch.unpacked(collate(tokens, ids, device, docs.specials)))
        if sinks is not None:
            sinks.set_mode(mode, ids=batch.doc_ids if mode in ("own", "train") else None,
                           exclude=exclude)
        elif mode != "off":
            raise ValueError(f"mode {mode!r} needs a model with sinks")
        with autocast(device):
            logits = model(**batch.model_inputs()).logits[:, :-1].float()
        targets = batch.labels[:, 1:]
        valid = targets != -100
        logp = torch.log_softmax(logits, dim=-1)
        picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        nll = -(picked * valid)
        # one document per row keeps the row sum, so unpacked results stay bit for bit
        per_doc = batch.document_sums(nll, len(index)) if packing else nll.sum(dim=1).double()
        sums[index] = per_doc.cpu().numpy()
    if sinks is not None:
        sinks.set_mode("off")
    model.train(was_training)
    return sums


def sets_of(mixture: Mixture, limit: int | None = None) -> dict[str, DocSet]:
    sets = {"R": mixture.repeated, "H": mixture.heldout, "V": mixture.validation}
    return {k: (s.subset(limit) if limit else s) for k, s in sets.items()}


def evaluate_modes(model, sinks: Sinks | None, method: Method, sets: dict[str, DocSet]
                   ) -> dict[str, dict[str, np.ndarray]]:
    """Per-document NLL sums for every evaluation mode of the method and every set."""
    return {mode: {name: document_nll(model, docs, sinks, mode) for name, docs in sets.items()}
            for mode in method.modes}


def summarize_mode(sums: dict[str, np.ndarray], sets: dict[str, DocSet]) -> dict:
    counts = {k: s.predicted_tokens for k, s in sets.items()}
    out = {f"L_{k}": list(mean_nll(sums[k], counts[k])) for k in SETS}
    out["gap"] = list(gap(sums["H"], counts["H"], sums["R"], counts["R"]))
    return out
