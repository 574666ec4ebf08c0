"""Memorization beyond loss for every trained method of a study, in each of its modes.

Extraction of R (and of H, the floor for text a model can produce without having seen it),
membership inference of R against H, exposure when R is canaries, and relearning: fine-tuning
steps on R until the model without its removed part is back at the L(R) it had before
removal. Results are stored in each method's metrics.json under ``assessment``, so finished
runs, including ones trained before this module existed, are assessed once and reused.
"""

from __future__ import annotations

import time

import torch

from ..data.stream import Mixture
from ..methods import METHODS, Method
from ..sinks import Sinks, drop_sinks
from . import memorization as mem

VERSION = 3
PREFIXES = (8, 16, 32)
SUFFIX = 32
# L(R) is exact at every 2nd step, found by checking every 10th and replaying the 10 steps
# before a check that passes a target (relearn_steps): a third of the evaluations of checking
# every 2nd step, and the same answers unless L(R) dips below a target and back within 10 steps
RELEARN = {"lr": 1e-3, "batch_size": 16, "max_steps": 100, "eval_every": 2, "check_every": 10}


def generation_modes(method: Method) -> list[str]:
    """The modes generation can run in: the static ones (``own`` needs per-token ids)."""
    return [m for m in method.modes if m in mem.STATIC_MODES]


def _compact_extraction(result: dict) -> dict:
    out = {}
    for k, row in result["by_prefix"].items():
        out[str(k)] = {key: [row[key], row[f"{key}_se"]]
                       for key in ("rate", "match_fraction", "rouge_l", "divergence")}
    return out


def assess_modes(model: torch.nn.Module, sinks: Sinks | None, method: Method,
                 mixture: Mixture) -> dict:
    """Extraction, membership inference (and exposure for canaries) in every static mode."""
    repeated, heldout = mixture.repeated, mixture.heldout
    texts_r, texts_h = mixture.texts(repeated), mixture.texts(heldout)
    context = model.config.max_position_embeddings
    suffix = min(SUFFIX, context // 2)
    prefixes = [k for k in PREFIXES if k + 1 + suffix <= context] or [context - 1 - suffix]
    out: dict[str, dict] = {}
    for mode in generation_modes(method):
        started = time.perf_counter()
        parts = {}
        extract = {}
        for name, docs in (("R", repeated), ("H", heldout)):
            begun = time.perf_counter()
            extract[name] = _compact_extraction(mem.extraction(
                model, docs, prefixes, suffix, sinks=sinks, mode=mode))
            parts[f"extraction_{name}"] = time.perf_counter() - begun
        begun = time.perf_counter()
        mia = mem.membership_inference(model, repeated, heldout, texts_r, texts_h,
                                       sinks=sinks, mode=mode)
        parts["mia"] = time.perf_counter() - begun
        row = {"extraction": extract,
               "mia": {score: {key: mia["metrics"][score][key]
                               for key in ("auroc", "auroc_se", "tpr_at_fpr", "tpr_at_fpr_se")}
                       for score in mia["metrics"]}}
        if mixture.data.repeated_kind == "canary":
            begun = time.perf_counter()
            result = mem.exposure(model, repeated, mixture.canary_vocabulary(), sinks=sinks,
                                  mode=mode)
            parts["exposure"] = time.perf_counter() - begun
            row["exposure"] = {key: result[key] for key in (
                "n_candidates", "max_empirical", "empirical_mean", "empirical_se",
                "extrapolated_mean", "extrapolated_se")}
        row["parts"] = parts  # seconds of each part, for `memsinks profile`
        row["seconds"] = time.perf_counter() - started
        out[mode] = row
    return out


def relearning(model: torch.nn.Module, sinks: Sinks | None, mixture: Mixture,
               targets: dict[str, float]) -> dict[str, dict]:
    """Steps of fine-tuning on R until the removed model's L(R) is back at each target.

    One run to the lowest target serves them all: the same seeded batches and evaluations
    pass every higher target on the way, at the step a separate run would stop.
    """
    plain = drop_sinks(model, sinks) if sinks is not None else model
    result = mem.relearn_steps(plain, mixture.repeated, list(targets.values()), **RELEARN)
    reached = {row["target"]: row for row in result["reached"]}
    out = {}
    for name, target in targets.items():
        row = reached[float(target)]
        out[name] = {"steps": row["steps"], "target": target,
                     "initial_loss": result["initial_loss"], "final_loss": row["loss"],
                     "max_steps": result["max_steps"], "lr": result["lr"],
                     "batch_size": result["batch_size"]}
    return out


def relearn_target(name: str, per_method: dict[str, dict]) -> float | None:
    """L(R) before removal: the model as trained, or standard training's for dedup.

    For a sink model that is mode ``own`` (each document with its own sinks, as in training);
    ``keep`` (every sink at p_active) is not the trained model for a document.
    """
    method = METHODS[name]
    if method.removable:
        modes = per_method[name]["modes"]
        return modes["own" if "own" in modes else method.full_mode]["L_R"][0]
    if method.dedup and "standard" in per_method:
        return per_method["standard"]["modes"]["off"]["L_R"][0]
    return None
