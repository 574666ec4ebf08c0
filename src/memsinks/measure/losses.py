"""Per-document losses under each sink mode; gap, closure and their uncertainties."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..data.packing import PackedBatch, collate, model_context, pack
from ..data.stream import DocSet
from ..sinks import Sinks
from ..train import autocast


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


def mean_nll(sums: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """Token-weighted mean NLL (every predicted token counted once) and its standard error.

    The error is the ratio estimator's, from per-document residuals.
    """
    sums, counts = np.asarray(sums, float), np.asarray(counts, float)
    mean = sums.sum() / counts.sum()
    m = len(sums)
    if m < 2:
        return float(mean), float("nan")
    residual = sums - mean * counts
    se = math.sqrt((residual**2).sum() / (m * (m - 1))) / counts.mean()
    return float(mean), float(se)


def gap(h_sums, h_counts, r_sums, r_counts) -> tuple[float, float]:
    """L(H) - L(R) with the error of independent sets."""
    lh, se_h = mean_nll(h_sums, h_counts)
    lr, se_r = mean_nll(r_sums, r_counts)
    return lh - lr, math.sqrt(se_h**2 + se_r**2)


def bootstrap_closure(std: dict, other: dict, counts: dict, rounds: int = 2000,
                      seed: int = 0) -> tuple[float, float]:
    """closure = (Gap_a - Gap_b) / Gap_a with a paired bootstrap over R and H documents.

    ``std`` and ``other`` map "R" and "H" to per-document NLL sums on the same documents, so
    resampling a document resamples it in both models.
    """
    def closure(idx_r, idx_h):
        def g(sums):
            lh = sums["H"][idx_h].sum() / counts["H"][idx_h].sum()
            lr = sums["R"][idx_r].sum() / counts["R"][idx_r].sum()
            return lh - lr
        base = g(std)
        return (base - g(other)) / base

    n_r, n_h = len(counts["R"]), len(counts["H"])
    point = closure(np.arange(n_r), np.arange(n_h))
    rng = np.random.default_rng(seed)
    draws = [closure(rng.integers(0, n_r, n_r), rng.integers(0, n_h, n_h))
             for _ in range(rounds)]
    return float(point), float(np.std(draws, ddof=1))


def paired_difference(a: np.ndarray, b: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """L_a - L_b on the same documents, with the paired error."""
    return mean_nll(np.asarray(a) - np.asarray(b), counts)
