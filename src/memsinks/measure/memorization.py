"""Memorization metrics: greedy extraction, membership inference, canary exposure, relearning.

Every score is oriented so that higher means more memorized (or more likely a member), so the
membership scores are log-probabilities, not losses. Definitions follow the metrics reference,
items 5-9. Documents are DocSets: a model sees BOS, the tokens, then EOS.
"""

from __future__ import annotations

import copy
import inspect
import math
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from ..data.packing import collate
from ..data.stream import BOS, DocSet
from ..device import autocast
from ..sinks import Sinks
from .losses import document_nll
from .stats import mean_nll, mean_se

STATIC_MODES = ("off", "keep", "drop", "exclude")
MIA_SCORES = ("loss", "zlib", "min_k", "min_k_plus_plus")


# -- shared helpers ---------------------------------------------------------------------------
def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _static_gate(sinks: Sinks | None, mode: str, what: str, exclude: Iterable[int] = ()):
    """The context of a sink mode that needs no per-token ids (a plain model needs ``off``)."""
    if sinks is None:
        if mode != "off":
            raise ValueError(f"mode {mode!r} needs a model with sinks")
        return nullcontext()
    if mode not in STATIC_MODES:
        raise ValueError(f"sink mode {mode!r} needs per-token document ids, which {what} does "
                         f"not have; use one of {', '.join(STATIC_MODES)}")
    return sinks.mode_of(mode, exclude=exclude)


def _generation_arguments(model: torch.nn.Module) -> tuple[str, dict]:
    """The cache keyword of ``model.forward`` and how to ask for the last position's logits only.

    transformers 5 renamed ``past_key_values`` to ``cache`` (the old name still works, warned).
    """
    parameters = inspect.signature(model.forward).parameters
    cache = "cache" if "cache" in parameters else "past_key_values"
    last = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}
    return cache, last


def _returned_cache(result):
    cache = getattr(result, "cache", None)
    return cache if cache is not None else getattr(result, "past_key_values", None)


# -- extraction -------------------------------------------------------------------------------
@torch.no_grad()
def greedy_continuations(model: torch.nn.Module, prefixes: torch.Tensor, length: int,
                         batch_size: int = 128) -> torch.Tensor:
    """Greedy (argmax) continuations of ``length`` tokens after each prefix row; (B, length).

    Rows share one length, so no padding or attention mask is needed; the KV cache makes each
    step one token per row. Any sink mode must be set by the caller. Returned on the CPU.
    """
    prefixes = torch.as_tensor(prefixes, dtype=torch.long)
    if prefixes.ndim != 2 or prefixes.shape[1] == 0:
        raise ValueError(f"prefixes must be (rows, length >= 1); got shape {tuple(prefixes.shape)}")
    out = torch.empty(len(prefixes), length, dtype=torch.long)
    if length == 0 or len(prefixes) == 0:
        return out
    device = _device(model)
    cache_arg, last_only = _generation_arguments(model)
    with _eval_mode(model), autocast(device):
        for start in range(0, len(prefixes), batch_size):
            ids = prefixes[start:start + batch_size].to(device)
            rows, cache, steps = len(ids), None, []
            for _ in range(length):
                extra = {} if cache is None else {cache_arg: cache}
                result = model(input_ids=ids, use_cache=True, **extra, **last_only)
                cache = _returned_cache(result)
                ids = result.logits[:, -1].argmax(dim=-1, keepdim=True)
                steps.append(ids)
            out[start:start + rows] = torch.cat(steps, dim=1).cpu()
    return out


def lcs_lengths(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Longest-common-subsequence lengths of paired rows of ``a`` (B, m) and ``b`` (B, n).

    Pad rows with values that match nothing (e.g. -1 in ``a``, -2 in ``b``). One numpy step
    per column of ``a``: a row of the DP table is a running max over the row above.
    """
    a, b = np.asarray(a), np.asarray(b)
    prev = np.zeros((len(a), b.shape[1] + 1), dtype=np.int64)
    for i in range(a.shape[1]):
        match = a[:, i:i + 1] == b
        best = np.maximum(prev[:, 1:], prev[:, :-1] + match)
        prev = np.concatenate([prev[:, :1], np.maximum.accumulate(best, axis=1)], axis=1)
    return prev[:, -1]


def rouge_l(candidate: Sequence[int], reference: Sequence[int]) -> float:
    """ROUGE-L F1 of two token sequences: the harmonic mean of LCS/len(candidate), LCS/len(ref)."""
    if len(candidate) == 0 or len(reference) == 0:
        return 0.0
    lcs = int(lcs_lengths(np.asarray([candidate]), np.asarray([reference]))[0])
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(candidate), lcs / len(reference)
    return 2 * precision * recall / (precision + recall)


def extraction(model: torch.nn.Module, docs: DocSet, prefix_lengths: Sequence[int] = (8, 16, 32),
               suffix_length: int = 32, sinks: Sinks | None = None, mode: str = "off",
               batch_size: int = 128, exclude: Iterable[int] = ()) -> dict:
    """Greedy extraction from each document's first k tokens, for every k in ``prefix_lengths``.

    The prompt is BOS + the first k tokens; the target is the next ``suffix_length`` tokens of
    (tokens + EOS), cut where the document ends, and the continuation is compared with it over
    those ``compared`` positions only (a short target is easier to match; filter on
    ``per_doc["compared"]`` for full-length targets). Documents shorter than k are left out
    (NaN per document, ``compared`` 0). Per k: ``rate`` (k-extractable: every compared token
    exact), ``match_fraction`` (the Pythia score's per-k form), ``rouge_l`` (F1 on token ids;
    equal lengths, so it is LCS / compared), ``divergence`` (index of the first wrong token;
    ``compared`` when none is), each with a standard error over documents, and ``per_doc``
    arrays aligned with ``docs``. ``pythia_score`` is the k=32 match fraction when k=32 and
    L=32 were asked for, else None. Only static sink modes are possible while generating.
    """
    if suffix_length < 1:
        raise ValueError(f"suffix_length = {suffix_length} must be at least 1")
    if not prefix_lengths or any(k < 0 for k in prefix_lengths):
        raise ValueError(f"prefix_lengths {tuple(prefix_lengths)} must be non-empty and >= 0")
    context = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if context is not None and max(prefix_lengths) + 1 + suffix_length > context:
        raise ValueError(f"prefix {max(prefix_lengths)} + BOS + suffix {suffix_length} exceeds "
                         f"the model's context of {context}; shorten them")
    n_docs, length = len(docs), suffix_length
    by_prefix: dict[int, dict] = {}
    with _static_gate(sinks, mode, "greedy generation", exclude):
        for k in prefix_lengths:
            rows = np.array([i for i, t in enumerate(docs.tokens) if len(t) >= k], dtype=int)
            per_doc = {name: np.full(n_docs, np.nan)
                       for name in ("exact", "match_fraction", "rouge_l", "divergence")}
            per_doc["compared"] = np.zeros(n_docs, dtype=int)
            if len(rows):
                prefixes = torch.tensor(np.stack([
                    np.concatenate([[docs.specials[1]], docs.tokens[i][:k]]).astype(np.int64)
                    for i in rows]))
                generated = greedy_continuations(model, prefixes, length, batch_size).numpy()
                targets = np.full((len(rows), length), -2, dtype=np.int64)
                compared = np.zeros(len(rows), dtype=int)
                for row, i in enumerate(rows):
                    target = np.append(docs.tokens[i][k:k + length], docs.specials[2])[:length]
                    targets[row, :len(target)] = target
                    compared[row] = len(target)
                inside = np.arange(length)[None, :] < compared[:, None]
                generated = np.where(inside, generated, -1)  # never matches the -2 padding
                hit = (generated == targets) & inside
                wrong = ~hit & inside
                per_doc["compared"][rows] = compared
                per_doc["exact"][rows] = (~wrong.any(axis=1)).astype(float)
                per_doc["match_fraction"][rows] = hit.sum(axis=1) / compared
                per_doc["divergence"][rows] = np.where(wrong.any(axis=1), wrong.argmax(axis=1),
                                                       compared)
                per_doc["rouge_l"][rows] = lcs_lengths(generated, targets) / compared
            summary: dict = {"n": int(len(rows))}
            for name, key in (("exact", "rate"), ("match_fraction", "match_fraction"),
                              ("rouge_l", "rouge_l"), ("divergence", "divergence")):
                summary[key], summary[f"{key}_se"] = mean_se(per_doc[name])
            summary["per_doc"] = per_doc
            by_prefix[int(k)] = summary
    pythia = by_prefix[32]["match_fraction"] if 32 in by_prefix and length == 32 else None
    return {"suffix_length": length, "by_prefix": by_prefix, "pythia_score": pythia}


# -- per-token statistics and membership inference --------------------------------------------
@dataclass
class TokenStatistics:
    """Per document, at each predicted token (its tokens, then EOS), given everything before."""

    logp: list[np.ndarray]  # log p(x_t)
    mean: list[np.ndarray]  # mu_t = sum_v p(v) log p(v)
    std: list[np.ndarray]  # sigma_t = sqrt(sum_v p(v) (log p(v) - mu_t)^2)


@torch.no_grad()
def token_statistics(model: torch.nn.Module, docs: DocSet, sinks: Sinks | None = None,
                     mode: str = "off", batch_size: int = 64,
                     exclude: Iterable[int] = ()) -> TokenStatistics:
    """Log-probabilities of every predicted token and the moments Min-K%++ needs; one pass a batch.

    ``mode`` is any sink mode; ``own`` gives each document its own training mask.
    """
    if sinks is None and mode != "off":
        raise ValueError(f"mode {mode!r} needs a model with sinks")
    device = _device(model)
    logp: list = [None] * len(docs)
    mean: list = [None] * len(docs)
    std: list = [None] * len(docs)
    order = np.argsort([len(t) for t in docs.tokens], kind="stable")
    restore = sinks.mode_of("off") if sinks is not None else nullcontext()  # restores on exit
    with _eval_mode(model), restore:
        for start in range(0, len(docs), batch_size):
            index = order[start:start + batch_size]
            batch = collate([docs.tokens[i] for i in index], [int(docs.own_ids[i]) for i in index],
                            device, docs.specials)
            if sinks is not None:
                sinks.set_mode(mode, ids=batch.doc_ids if mode in ("own", "train") else None,
                               exclude=exclude)
            with autocast(device):
                logits = model(input_ids=batch.input_ids).logits[:, :-1]
            log_probs = torch.log_softmax(logits.float(), dim=-1)
            targets = batch.labels[:, 1:].clamp(min=0)
            picked = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            probs = log_probs.exp()
            mu = (probs * log_probs).sum(-1)
            sigma = (probs * (log_probs - mu.unsqueeze(-1)) ** 2).sum(-1).sqrt()
            picked, mu, sigma = (x.double().cpu().numpy() for x in (picked, mu, sigma))
            for row, i in enumerate(index):
                n = len(docs.tokens[i]) + 1
                logp[i], mean[i], std[i] = picked[row, :n], mu[row, :n], sigma[row, :n]
    return TokenStatistics(logp, mean, std)


def loss_score(logp: np.ndarray) -> float:
    """LOSS: the mean token log-probability (minus the mean NLL)."""
    return float(np.mean(logp))


def zlib_score(logp: np.ndarray, text: str | bytes) -> float:
    """zlib: the LOSS score divided by the zlib-compressed length (bytes) of the text.

    (minus) NLL per zlib byte: among texts of equal loss, the less compressible one scores
    higher, as in Carlini et al. 2021's perplexity / zlib-entropy ratio.
    """
    data = text.encode() if isinstance(text, str) else bytes(text)
    return loss_score(logp) / len(zlib.compress(data))


def _lowest_mean(values: np.ndarray, k: float) -> float:
    if not 0 < k <= 1:
        raise ValueError(f"k = {k} is not a fraction in (0, 1]")
    values = np.sort(np.asarray(values, float))
    count = max(1, int(k * len(values)))
    return float(values[:count].mean())


def min_k_score(logp: np.ndarray, k: float = 0.2) -> float:
    """Min-K%: the mean of the lowest fraction ``k`` of token log-probs (at least one token)."""
    return _lowest_mean(logp, k)


def min_k_plus_plus_score(logp: np.ndarray, mean: np.ndarray, std: np.ndarray,
                          k: float = 0.2) -> float:
    """Min-K%++: the mean of the lowest fraction ``k`` of z_t = (log p(x_t) - mu_t) / sigma_t."""
    z = (np.asarray(logp) - np.asarray(mean)) / np.maximum(np.asarray(std), 1e-12)
    return _lowest_mean(z, k)


def mia_scores(stats: TokenStatistics, texts: Sequence[str | bytes] | None = None,
               k: float = 0.2) -> dict[str, np.ndarray]:
    """Every membership score per document (higher = member); zlib only when texts are given."""
    scores = {
        "loss": np.array([loss_score(x) for x in stats.logp]),
        "min_k": np.array([min_k_score(x, k) for x in stats.logp]),
        "min_k_plus_plus": np.array([min_k_plus_plus_score(x, m, s, k) for x, m, s
                                     in zip(stats.logp, stats.mean, stats.std, strict=True)]),
    }
    if texts is not None:
        if len(texts) != len(stats.logp):
            raise ValueError(f"{len(texts)} texts for {len(stats.logp)} documents; pass one "
                             "text per document")
        scores["zlib"] = np.array([zlib_score(x, t)
                                   for x, t in zip(stats.logp, texts, strict=True)])
    return {name: scores[name] for name in MIA_SCORES if name in scores}


def auroc(member: np.ndarray, nonmember: np.ndarray) -> float:
    """P(member score > nonmember score), ties counted 1/2 (the Mann-Whitney statistic)."""
    member, nonmember = np.asarray(member, float), np.sort(np.asarray(nonmember, float))
    if len(member) == 0 or len(nonmember) == 0:
        raise ValueError("auroc needs at least one member and one non-member score")
    below = np.searchsorted(nonmember, member, side="left")
    at_or_below = np.searchsorted(nonmember, member, side="right")
    return float((below + at_or_below).sum() / (2 * len(member) * len(nonmember)))


def tpr_at_fpr(member: np.ndarray, nonmember: np.ndarray, fpr: float = 0.01) -> float:
    """Fraction of members scoring strictly above a threshold that at most ``fpr`` of
    non-members exceed.

    The threshold is the (floor(fpr * N) + 1)-th highest non-member score, so the realised
    false-positive rate never exceeds ``fpr`` (with N = 64 and fpr = 0.01: the highest
    non-member score). No interpolation between ROC points.
    """
    if not 0 <= fpr < 1:
        raise ValueError(f"fpr = {fpr} is not in [0, 1)")
    member, nonmember = np.asarray(member, float), np.sort(np.asarray(nonmember, float))[::-1]
    allowed = int(math.floor(fpr * len(nonmember) + 1e-9))
    threshold = nonmember[allowed]
    return float((member > threshold).mean())


def membership_inference(model: torch.nn.Module, members: DocSet, nonmembers: DocSet,
                         texts_members: Sequence[str | bytes] | None = None,
                         texts_nonmembers: Sequence[str | bytes] | None = None,
                         sinks: Sinks | None = None, mode: str = "off", k: float = 0.2,
                         fpr: float = 0.01, rounds: int = 200, seed: int = 0,
                         batch_size: int = 64) -> dict:
    """AUROC and TPR at ``fpr`` of every score, with bootstrap standard errors.

    Every score is higher for members (see the score functions). The bootstrap resamples
    members and non-members independently, the same draw for every score (``rounds`` draws,
    ``seed``). zlib is included only when both text lists are given. Per-document scores are
    returned under ``scores``.
    """
    if (texts_members is None) != (texts_nonmembers is None):
        raise ValueError("pass texts for both members and non-members, or for neither")
    member_scores = mia_scores(token_statistics(model, members, sinks, mode, batch_size),
                               texts_members, k)
    nonmember_scores = mia_scores(token_statistics(model, nonmembers, sinks, mode, batch_size),
                                  texts_nonmembers, k)
    rng = np.random.default_rng(seed)
    draws_m = rng.integers(0, len(members), (rounds, len(members)))
    draws_n = rng.integers(0, len(nonmembers), (rounds, len(nonmembers)))
    results: dict = {}
    for name, m in member_scores.items():
        n = nonmember_scores[name]
        boot_auc = [auroc(m[i], n[j]) for i, j in zip(draws_m, draws_n, strict=True)]
        boot_tpr = [tpr_at_fpr(m[i], n[j], fpr) for i, j in zip(draws_m, draws_n, strict=True)]
        results[name] = {
            "auroc": auroc(m, n),
            "auroc_se": float(np.std(boot_auc, ddof=1)) if rounds > 1 else float("nan"),
            "tpr_at_fpr": tpr_at_fpr(m, n, fpr),
            "tpr_at_fpr_se": float(np.std(boot_tpr, ddof=1)) if rounds > 1 else float("nan"),
        }
    return {"fpr": fpr, "k": k, "metrics": results,
            "scores": {"members": member_scores, "nonmembers": nonmember_scores}}


# -- canary exposure --------------------------------------------------------------------------
@torch.no_grad()
def prefix_nll(model: torch.nn.Module, tokens: np.ndarray, batch_size: int = 64,
               bos: int = BOS) -> np.ndarray:
    """Cumulative NLL (nats) of each row's first j + 1 tokens given BOS, no EOS; (N, n).

    A causal model's NLL of a prefix does not depend on what follows, so one pass over the
    longest strings gives every shorter length (right padding with PAD is harmless).
    """
    tokens = torch.as_tensor(np.asarray(tokens), dtype=torch.long)
    device = _device(model)
    out = np.zeros(tuple(tokens.shape))
    with _eval_mode(model), autocast(device):
        for start in range(0, len(tokens), batch_size):
            rows = tokens[start:start + batch_size]
            ids = torch.cat([torch.full((len(rows), 1), bos, dtype=torch.long), rows], 1)
            ids = ids.to(device)
            logits = model(input_ids=ids).logits[:, :-1]
            log_probs = torch.log_softmax(logits.float(), dim=-1)
            picked = log_probs.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
            out[start:start + len(rows)] = (-picked.double()).cumsum(dim=1).cpu().numpy()
    return out


def fit_skew_normal(x: np.ndarray) -> tuple[float, float, float]:
    """Skew-normal (location xi, scale omega, shape alpha) by the method of moments.

    The sample skewness is clipped to +-0.99 (a skew-normal's skewness is below 0.9953).
    """
    x = np.asarray(x, float)
    mean, sd = x.mean(), x.std()
    if sd == 0:
        return float(mean), 0.0, 0.0
    skew = float(np.clip(((x - mean) ** 3).mean() / sd**3, -0.99, 0.99))
    a = abs(skew) ** (2 / 3)
    delta = math.copysign(math.sqrt(math.pi / 2 * a / (a + ((4 - math.pi) / 2) ** (2 / 3))),
                          skew)
    alpha = delta / math.sqrt(1 - delta**2)
    omega = sd / math.sqrt(1 - 2 * delta**2 / math.pi)
    xi = mean - omega * delta * math.sqrt(2 / math.pi)
    return float(xi), float(omega), float(alpha)


def skew_normal_logcdf(x: float, xi: float, omega: float, alpha: float) -> float:
    """log P(X <= x) for a skew-normal, accurate deep in the left tail.

    Integrates the density 2 phi(t) Phi(alpha t) below the standardised x in log space
    (``torch.special.log_ndtr`` for log Phi), avoiding Owen's T and its cancellation.
    """
    z = (x - xi) / omega
    if alpha == 0:
        return float(torch.special.log_ndtr(torch.tensor(z, dtype=torch.float64)))
    # The log-density is concave. Below a negative z it falls at least like
    # exp(-|z| (1 + alpha+^2) s - s^2 / 2) over a distance s, so e^-50 of the peak is reached
    # within ``span``; above, [-10, z] holds all but a negligible mass. Its slope there is at
    # most ``slope``, and 20 points per unit of slope keep the trapezoid error near 1e-4.
    sharp = 1 + max(alpha, 0.0) ** 2
    if z < 0:
        span = min(math.sqrt(z**2 + 100) + z, 50 / (-z * sharp))
    else:
        span = z + 10
    slope = (abs(z) + span) * sharp + abs(alpha) + 1
    points = int(min(200_001, max(2001, 20 * span * slope)))
    t = z - torch.linspace(0, span, points, dtype=torch.float64)
    log_density = (math.log(2) - 0.5 * math.log(2 * math.pi) - t**2 / 2
                   + torch.special.log_ndtr(alpha * t))
    weights = torch.ones(points, dtype=torch.float64)
    weights[0] = weights[-1] = 0.5  # trapezoid rule
    step = span / (points - 1)
    return float(torch.logsumexp(log_density + weights.log(), 0)) + math.log(step)


def exposure(model: torch.nn.Module, canaries: DocSet, vocabulary: Sequence[int] | np.ndarray,
             n_candidates: int = 256, seed: int = 0, sinks: Sinks | None = None,
             mode: str = "off", batch_size: int = 64) -> dict:
    """Canary exposure (Carlini et al. 2019) against uniform random strings over ``vocabulary``.

    ``vocabulary`` holds the token ids a canary's tokens were drawn from, so |S| = V^n for a
    canary of n tokens (``log2_space``). The NLL is that of the canary's tokens given BOS (no
    EOS). ``n_candidates`` strings as long as the longest canary are drawn once (``seed``) and
    shared by all canaries: a canary of length n is ranked among their first n tokens, which are
    uniform strings of length n, so one forward pass serves every length.
    ``empirical`` = -log2((c + 1) / (n_candidates + 1)), c = candidates with a lower NLL plus
    half the ties: at most log2(n_candidates + 1) (8 bits by default), about 1/ln 2 = 1.44 bits
    in expectation for a string the model never saw. ``extrapolated`` = -log2 F(canary NLL),
    F a skew-normal fitted to the candidates' NLLs by moments (section 4.3), capped at
    log2|S|. Means carry standard errors over canaries that ignore the shared candidates.
    Only static sink modes: candidates have no document ids.
    """
    vocabulary = np.asarray(vocabulary, dtype=np.int64)
    if len(vocabulary) == 0 or len(np.unique(vocabulary)) != len(vocabulary):
        raise ValueError("exposure needs a non-empty vocabulary of distinct token ids")
    lengths = np.array([len(t) for t in canaries.tokens])
    if len(canaries) == 0 or lengths.min() < 1:
        raise ValueError("exposure needs at least one canary, each at least one token long")
    if n_candidates < 2:
        raise ValueError(f"n_candidates = {n_candidates}; use at least 2 (e.g. 1000)")
    for i, tokens in enumerate(canaries.tokens):
        if not np.isin(tokens, vocabulary).all():
            raise ValueError(f"canary {i} has tokens outside the vocabulary, so it is not from "
                             "the candidate space; pass the vocabulary it was drawn from")
    longest = int(lengths.max())
    rng = np.random.default_rng(seed)
    candidates = vocabulary[rng.integers(0, len(vocabulary), (n_candidates, longest))]
    padded = np.full((len(canaries), longest), canaries.specials[0], dtype=np.int64)
    for i, tokens in enumerate(canaries.tokens):
        padded[i, :len(tokens)] = tokens
    with _static_gate(sinks, mode, "a candidate string"):
        candidate_nll = prefix_nll(model, candidates, batch_size, canaries.specials[1])
        canary_nll = prefix_nll(model, padded, batch_size, canaries.specials[1])
        canary_nll = canary_nll[np.arange(len(canaries)), lengths - 1]

    log2_space = lengths * math.log2(len(vocabulary))
    empirical = np.zeros(len(canaries))
    extrapolated = np.zeros(len(canaries))
    fits: dict[int, tuple[float, float, float]] = {}
    for i, (n, x) in enumerate(zip(lengths, canary_nll, strict=True)):
        pool = candidate_nll[:, n - 1]
        count = (pool < x).sum() + 0.5 * (pool == x).sum()
        empirical[i] = -math.log2((count + 1) / (n_candidates + 1))
        if n not in fits:
            fits[int(n)] = fit_skew_normal(pool)
        xi, omega, alpha = fits[int(n)]
        if omega == 0:  # every candidate has the same NLL
            bits = 0.0 if x >= xi else math.inf
        else:
            bits = -skew_normal_logcdf(float(x), xi, omega, alpha) / math.log(2)
        extrapolated[i] = min(max(bits, 0.0), log2_space[i])
    emp_mean, emp_se = mean_se(empirical)
    ext_mean, ext_se = mean_se(extrapolated)
    return {"n_candidates": n_candidates, "max_empirical": math.log2(n_candidates + 1),
            "empirical": empirical, "extrapolated": extrapolated, "nll": canary_nll,
            "log2_space": log2_space, "empirical_mean": emp_mean, "empirical_se": emp_se,
            "extrapolated_mean": ext_mean, "extrapolated_se": ext_se, "fits": fits}


# -- relearning -------------------------------------------------------------------------------
def relearn_steps(model: torch.nn.Module, docs: DocSet, target_loss: float | Sequence[float],
                  lr: float = 1e-3, batch_size: int = 16, max_steps: int = 200,
                  eval_every: int = 1, check_every: int | None = None, seed: int = 0,
                  weight_decay: float = 0.0, grad_clip: float = 1.0) -> dict:
    """Fine-tuning steps on ``docs`` until their token-weighted mean NLL is <= ``target_loss``.

    Trains a deep copy (the caller's model is untouched) with AdamW at a constant ``lr``;
    batches walk seeded permutations of ``docs``. L(docs) counts at step 0 and every
    ``eval_every`` steps, so ``steps`` is exact for ``eval_every`` = 1 and otherwise an upper
    bound; None if never reached within ``max_steps``. ``target_loss`` may be several targets:
    one run to the lowest serves them all, each reported in ``reached`` at the step a run of its
    own would stop. The model must be plain: for a sink model in drop mode pass
    ``drop_sinks(model, sinks)``. Defaults suit the tiny preset (its training peaks at lr 2e-3);
    larger models want a smaller ``lr``.

    ``check_every`` (a multiple of ``eval_every``) evaluates less often: L(docs) is measured
    every ``check_every`` steps, and when a target is passed there, the steps since the last
    check are replayed from a snapshot (bit for bit the same batches and updates) at every
    ``eval_every`` step to find where it was first passed. The answer is the one that
    evaluating every ``eval_every`` steps gives unless the loss passes a target and rises back
    above it between two checks; ``curve`` then holds the checks and the replayed points only.
    """
    targets = sorted({float(t) for t in np.atleast_1d(np.asarray(target_loss, dtype=float))})
    check_every = check_every or eval_every
    if (max_steps < 0 or eval_every < 1 or batch_size < 1 or lr <= 0 or not targets
            or check_every % eval_every):
        raise ValueError("relearn_steps needs max_steps >= 0, eval_every >= 1, batch_size >= 1, "
                         "lr > 0, at least one target and check_every a multiple of eval_every")
    if len(docs) == 0:
        raise ValueError("relearn_steps needs at least one document")
    if any(m._forward_pre_hooks or m._forward_hooks for m in model.modules()):
        raise ValueError("relearn_steps needs a plain model without hooks; for a sink model "
                         "pass drop_sinks(model, sinks) (or a copy made inside sinks.detached())")
    run = _Relearner(model, docs, lr, batch_size, seed, weight_decay, grad_clip)
    curve = [{"step": 0, "loss": run.loss()}]
    reached: dict[float, dict] = {t: curve[0] for t in targets if curve[0]["loss"] <= t}
    snapshot = run.snapshot() if check_every > eval_every else None
    while len(reached) < len(targets) and run.step < max_steps:
        run.train_step()
        if not (run.step % check_every == 0 or run.step == max_steps):
            continue
        point = {"step": run.step, "loss": run.loss()}
        passed = [t for t in targets if t not in reached and point["loss"] <= t]
        if passed and snapshot is not None:  # where between the last check was each passed?
            fine = snapshot.replay(until=run.step, eval_every=eval_every)
            curve.extend(fine)
            for t in passed:
                reached[t] = next((p for p in fine if p["loss"] <= t), point)
        curve.append(point)
        for t in passed:
            reached.setdefault(t, point)
        if snapshot is not None:
            snapshot = run.snapshot()
    last = curve[-1]
    rows = [{"target": t, "steps": reached[t]["step"] if t in reached else None,
             "loss": (reached.get(t) or last)["loss"]} for t in targets]
    return {"steps": rows[0]["steps"], "target": targets[0], "reached": rows,
            "initial_loss": curve[0]["loss"], "final_loss": rows[0]["loss"], "curve": curve,
            "lr": lr, "batch_size": batch_size, "max_steps": max_steps,
            "eval_every": eval_every, "check_every": check_every}


class _Relearner:
    """The state of one relearning run: a copy of the model, its optimizer and the batch order.

    ``snapshot`` copies all of it, so that a stretch of steps can be replayed exactly.
    """

    def __init__(self, model: torch.nn.Module, docs: DocSet, lr: float, batch_size: int,
                 seed: int, weight_decay: float, grad_clip: float):
        self.student = copy.deepcopy(model)
        self.docs, self.grad_clip, self.step = docs, grad_clip, 0
        self.batch_size = min(batch_size, len(docs))
        self.optimizer = torch.optim.AdamW(self.student.parameters(), lr=lr, betas=(0.9, 0.95),
                                           weight_decay=weight_decay)
        self.rng = np.random.default_rng(seed)
        self.queue: list[int] = []

    def loss(self) -> float:
        return mean_nll(document_nll(self.student, self.docs), self.docs.predicted_tokens)[0]

    def train_step(self) -> None:
        self.student.train()
        while len(self.queue) < self.batch_size:
            self.queue.extend(self.rng.permutation(len(self.docs)).tolist())
        index, self.queue = self.queue[:self.batch_size], self.queue[self.batch_size:]
        batch = collate([self.docs.tokens[i] for i in index], [0] * len(index),
                        _device(self.student), self.docs.specials)
        with autocast(batch.input_ids.device):
            loss = self.student(input_ids=batch.input_ids, labels=batch.labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.student.parameters(), self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1

    def snapshot(self) -> _Relearner:
        copied = copy.copy(self)
        # one deepcopy of both keeps the optimizer's state keyed by the copied parameters
        copied.student, copied.optimizer = copy.deepcopy((self.student, self.optimizer))
        copied.rng = copy.deepcopy(self.rng)
        copied.queue = list(self.queue)
        copied.torch_rng = torch.get_rng_state()  # dropout, if the model has any
        return copied

    def replay(self, until: int, eval_every: int) -> list[dict]:
        """Loss at every ``eval_every`` step strictly between this snapshot and ``until``."""
        run = self.snapshot()  # this snapshot stays as it is
        saved = torch.get_rng_state()
        torch.set_rng_state(self.torch_rng)
        points = []
        try:
            while run.step < until - 1:
                run.train_step()
                if run.step % eval_every == 0:
                    points.append({"step": run.step, "loss": run.loss()})
        finally:
            torch.set_rng_state(saved)
        return points
