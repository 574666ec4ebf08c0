"""Run a post-hoc baseline on a trained method directory of a study and write one result file
per strength: RUN_DIR/standard/unlearn/<method>/<strength>.json.

A result whose fingerprint (method, parameters, strength, forget set, model weights) matches
is loaded instead of recomputed, so sweeps resume where they stopped.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import StudyConfig, mixture_of, study_config_of
from ..data.stream import DocSet, Mixture
from ..device import resolve_device
from ..files import atomic_write
from ..measure.losses import document_nll, sets_of, summarize_mode
from ..measure.stats import mean_nll
from ..methods import METHODS as TRAINING_METHODS
from ..modelio import load_model
from ..sinks import document_id
from . import get
from .common import (
    Stopwatch,
    UnlearnData,
    docset,
    fingerprint,
    ids_digest,
    restore,
    retain_set,
    snapshot,
    strength_label,
    weights_digest,
)

RETAIN_DOCUMENTS = 512  # general training documents the retain set draws from
RETAIN_SEED = 0


@dataclass
class Target:
    """A trained model of a study, with everything needed to unlearn and evaluate it."""

    method_dir: Path
    config: StudyConfig
    mixture: Mixture
    model: nn.Module
    device: torch.device
    weights: str  # digest of the trained weights
    before: dict | None  # the method's own off-mode metrics from training

    @property
    def run_dir(self) -> Path:
        return self.method_dir.parent


def load_target(method_dir: Path) -> Target:
    """Load a model trained without sinks, its study config and its mixture.

    Sink models are refused: their memorization is meant to be removed by dropping the
    sinks, and the baselines compare against the standard model.
    """
    method_dir = Path(method_dir)
    if not method_dir.is_dir():
        raise FileNotFoundError(f"{method_dir} does not exist; pass a trained method directory "
                                "of a study, such as runs/default/standard")
    config = study_config_of(method_dir)
    model_dir = method_dir / "model"
    if (model_dir / "sinks.json").is_file():
        raise ValueError(f"{method_dir} holds a model trained with sinks; post-hoc baselines "
                         "start from a model trained without them, so pass "
                         f"{method_dir.parent / 'standard'}")
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    model, _ = load_model(model_dir)
    device = resolve_device(config.train.device)
    model = model.to(device).eval()
    mixture = mixture_of(config)
    before = None
    metrics_path = method_dir / "metrics.json"
    if metrics_path.is_file():
        before = json.loads(metrics_path.read_text()).get("modes", {}).get("off")
    return Target(method_dir, config, mixture, model, device, weights_digest(model), before)


# -- the forget set ----------------------------------------------------------------------------


def read_documents(path: Path, tokenizer_path: Path) -> list[np.ndarray]:
    """Token ids of the documents in a text file (one per non-empty line) or a .jsonl file
    (one JSON string, or object with "text", per line)."""
    from tokenizers import Tokenizer

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"forget file {path} does not exist; pass a text or .jsonl "
                                "file with one document per line")
    if not tokenizer_path.is_file():
        raise FileNotFoundError(f"{tokenizer_path} does not exist; the study directory must "
                                "hold the tokenizer written by `memsinks run`")
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    texts = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                item = json.loads(line)
            except ValueError:
                raise ValueError(f"line {number} of {path} is not JSON; write one JSON string "
                                 'or {"text": ...} object per line') from None
            text = item.get("text") if isinstance(item, dict) else item
            if not isinstance(text, str):
                raise ValueError(f"line {number} of {path} has no text; write one JSON string "
                                 'or {"text": ...} object per line')
        else:
            text = line
        texts.append(text)
    if not texts:
        raise ValueError(f"forget file {path} holds no documents; write one document per line")
    return [np.array(tokenizer.encode(t).ids, dtype=np.int32) for t in texts]


def training_ids(mixture: Mixture, dedup: bool) -> set[int]:
    """The document ID of every document in the training stream."""
    ids = {int(i) for i in mixture.repeated.ids}
    codes = np.unique(mixture.stream(dedup))
    ids.update(document_id(mixture.general(int(c))) for c in codes[codes >= 0])
    return ids


def forget_from_file(target: Target, path: Path) -> DocSet:
    """The documents of ``path`` as the forget set; every one must be a training document."""
    tokens = read_documents(path, target.run_dir / "tokenizer.json")
    forget = docset("forget", tokens, target.mixture.specials)
    missing = [i for i, d in enumerate(forget.ids) if int(d) not in
               {int(x) for x in target.mixture.repeated.ids}]
    if missing:
        method = TRAINING_METHODS.get(target.method_dir.name)
        seen = training_ids(target.mixture, bool(method and method.dedup))
        missing = [i for i in missing if int(forget.ids[i]) not in seen]
    if missing:
        raise ValueError(f"{len(missing)} of the {len(forget)} documents in {path} (the first is "
                         f"document {missing[0] + 1}) never occur in the training stream of "
                         f"{target.method_dir}; pass documents the model was trained on, such "
                         f"as texts from {target.run_dir / 'manifest.json'}")
    return forget


# -- running and writing results ---------------------------------------------------------------


def result_dir(target: Target, method: str, forget: DocSet | None) -> Path:
    root = target.method_dir / "unlearn"
    if forget is not None:
        root = root / f"forget-{ids_digest(forget.ids)[:8]}"
    return root / method


VERSION = 2  # results of an older version are recomputed (2: extraction, relearning)


def evaluate_target(target: Target, forget: DocSet | None) -> dict:
    """gap, L_R, L_H, L_V (mean, se) of the model as it is now, L_forget for a file, and the
    greedy extraction rate of the forget set (prefix 32, continuation 32, as in studies)."""
    from ..measure.memorization import extraction

    sets = sets_of(target.mixture)
    sums = {k: document_nll(target.model, s) for k, s in sets.items()}
    out = summarize_mode(sums, sets)
    docs = forget if forget is not None else target.mixture.repeated
    if forget is not None:
        out["L_forget"] = list(mean_nll(document_nll(target.model, forget),
                                        forget.predicted_tokens))
    context = target.model.config.max_position_embeddings
    suffix = min(32, context // 2)
    prefix = min(32, context - 1 - suffix)
    row = extraction(target.model, docs, (prefix,), suffix)["by_prefix"][prefix]
    out["extraction"] = {"prefix": prefix, "suffix": suffix, "rate": [row["rate"], row["rate_se"]],
                         "rouge_l": [row["rouge_l"], row["rouge_l_se"]]}
    return out


def relearning(target: Target, forget: DocSet) -> dict | None:
    """Fine-tuning steps on the forget set until its loss is back at the trained model's."""
    from ..measure.assess import RELEARN
    from ..measure.memorization import relearn_steps

    if target.before is None or forget is not target.mixture.repeated:
        return None  # the trained model's loss on a custom forget file is not stored
    result = relearn_steps(target.model, forget, target.before["L_R"][0], **RELEARN)
    return {k: result[k] for k in ("steps", "target", "initial_loss", "final_loss", "max_steps")}


def unlearn(target: Target, name: str, strengths: list[float],
            overrides: dict[str, str] | None = None, forget_file: Path | None = None,
            progress: bool = True, relearn: bool = False) -> list[dict]:
    """Run method ``name`` at every strength; return (and write) one result per strength.

    With ``relearn``, each result also gets the fine-tuning steps on R until L(R) is back at
    the trained model's. The target's model is restored to its trained weights afterwards.
    """
    method = get(name)
    if not strengths:
        raise ValueError(f"no strengths given for {name}; pass --strength, e.g. "
                         f"{','.join(strength_label(s) for s in method.default_grid)}")
    for strength in strengths:
        method.check_strength(float(strength))
    params = method.params(overrides)
    custom = forget_from_file(target, Path(forget_file)) if forget_file is not None else None
    forget = custom if custom is not None else target.mixture.repeated
    retain = retain_set(target.mixture, RETAIN_DOCUMENTS, RETAIN_SEED)
    data = UnlearnData(forget, retain, target.device)
    out_dir = result_dir(target, name, custom)
    common = {"version": VERSION, "method": name, "params": dataclasses.asdict(params),
              "forget": ids_digest(forget.ids), "retain": [RETAIN_DOCUMENTS, RETAIN_SEED],
              "weights": target.weights}
    keys = {s: fingerprint({**common, "strength": float(s)}) for s in strengths}
    results: dict[float, dict] = {}
    for strength in strengths:
        path = out_dir / f"{strength_label(strength)}.json"
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("fingerprint") == keys[strength] and (not relearn or "relearn" in saved):
                results[float(strength)] = saved
                if progress:
                    print(f"[{name}] strength {strength_label(strength)} finished earlier; "
                          "loading it")
    todo = sorted({float(s) for s in strengths} - set(results))
    if todo:
        if progress:
            print(f"[{name}] {method.description}; {method.strength_name}: "
                  f"{', '.join(strength_label(s) for s in todo)}")
        out_dir.mkdir(parents=True, exist_ok=True)
        original = snapshot(target.model)
        torch.manual_seed(0)
        try:
            for step in method.run(target.model, data, todo, params, cache=out_dir):
                eval_watch = Stopwatch()
                with eval_watch:
                    metrics = evaluate_target(target, custom)
                if relearn:
                    metrics["relearn"] = relearning(target, forget)
                result = {
                    "method": name, "description": method.description,
                    "strength": step.strength, "strength_name": method.strength_name,
                    "params": dataclasses.asdict(params), "fingerprint": keys[step.strength],
                    **metrics,
                    "before": target.before,
                    "wall_seconds": step.seconds,
                    "cpu_seconds": step.cpu_seconds,
                    "eval_seconds": eval_watch.seconds,
                    "eval_cpu_seconds": eval_watch.cpu_seconds,
                    "forget": {"source": str(forget_file) if custom is not None else "R",
                               "documents": len(forget), "ids": ids_digest(forget.ids)},
                    "retain": {"source": "general training documents of the stream",
                               "documents": len(retain), "seed": RETAIN_SEED},
                    "model": {"dir": str(target.method_dir), "weights": target.weights},
                    "device": str(target.device), "threads": torch.get_num_threads(),
                    "details": step.details,
                }
                atomic_write(out_dir / f"{strength_label(step.strength)}.json",
                             json.dumps(result, indent=1))
                results[step.strength] = result
                if progress:
                    print(f"[{name}] strength {strength_label(step.strength)}: gap "
                          f"{result['gap'][0]:.4f}±{result['gap'][1]:.4f}, L(R) "
                          f"{result['L_R'][0]:.4f}, L(V) {result['L_V'][0]:.4f} "
                          f"({step.seconds:.1f} s, eval {result['eval_seconds']:.1f} s)")
        finally:
            restore(target.model, original)
    return [results[float(s)] for s in strengths]


def unlearn_dir(method_dir: Path, name: str, strengths: list[float],
                overrides: dict[str, str] | None = None, forget_file: Path | None = None,
                progress: bool = True) -> list[dict]:
    """``unlearn`` on the model in ``method_dir`` (such as runs/default/standard)."""
    get(name)  # an unknown name fails before the model loads
    return unlearn(load_target(method_dir), name, strengths, overrides, forget_file, progress)
