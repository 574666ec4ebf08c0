"""A whole study: every method on the same stream and seeds -> per-method metrics -> results.json.

Finished methods are not retrained: a method whose metrics were written under the same
configuration is loaded from disk, so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError

from .. import checkpoint as ckpt
from .. import config as config_io
from .. import parallel
from ..config import StudyConfig
from ..data.stream import DocSet, Mixture
from ..families import add_sink_pool_share
from ..measure.losses import bootstrap_closure, document_nll, gap, mean_nll, paired_difference
from ..methods import METHODS, Method
from ..model import ModelConfig, count_parameters
from ..sinks import SinkConfig, Sinks
from ..train import Recipe, packs, resolve_device, train
from .pretrained import BASE, load_start, model_dir_of, start_identity, start_model

SETS = ("R", "H", "V")


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def environment() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    import transformers

    return {"python": sys.version.split()[0], "torch": torch.__version__,
            "transformers": transformers.__version__, "numpy": np.__version__,
            "platform": platform.platform(), "git_commit": commit,
            "threads": torch.get_num_threads()}


_LATER_FIELDS = {"drop_rescale": None, "mlp_width": "full", "goldfish_k": 0, "goldfish_h": 13,
                 "gradient_mask": False}
# train fields added later enter the hash only when set; these never change the trained model
_LATER_TRAIN = {"grad_accum": 1, "parallel": "auto", "compile": False, "row_len": 0,
                "precision": "auto"}
_LATER_DATA = {"general_source": "", "repeated_source": "", "tokenizer": "train:bpe",
               "vocab_size": 8192, "tokenizer_docs": 20000, "min_tokens": 16, "max_tokens": 0}
# in the hash only when set
_LATER_DATA_SET = {"in_domain_share": None, "n_heldout": 0, "sink_key": "hash", "perturb": 0.0,
                   "sources": 0}
# packing trains the same documents per step to the same gradients up to float rounding
# (tests/test_packing.py: 1e-5, about 2e-7 measured), so like threads it does not enter the hash;
# row_len does when set, since a row shorter than a document splits it. For text corpora
# packing also keeps long general documents whole (other tokens are trained), which
# method_fingerprint marks as data.whole_documents; the built-in corpus has no long documents.
_NOT_TRAINING = ("threads", "checkpoint_every", "packing")


def method_fingerprint(config: StudyConfig, method: str) -> str:
    """Hash of everything that determines a method's trained model."""
    relevant = {k: v for k, v in config_io.to_dict(config).items()
                if k not in ("name", "methods", "out_dir")}
    spec = METHODS[method]
    # fields added to Method later enter the hash only when set, so older runs stay valid
    relevant["method"] = {k: v for k, v in asdict(spec).items()
                          if k not in _LATER_FIELDS or v != _LATER_FIELDS[k]}
    for key, default in (("shared_grad", 1.0), ("mask", "hash"), ("centered", False),
                         ("tokens", "all"), ("rare_n", 3), ("rare_docs", 2),
                         ("shared_grad_from", 0), ("plain_every", 0)):
        # added later: hashed if set
        if relevant["sinks"].get(key) == default:
            relevant["sinks"].pop(key)
    if relevant["sinks"].get("tokens", "all") == "all":  # n-gram settings only matter with rare
        relevant["sinks"].pop("rare_n", None)
        relevant["sinks"].pop("rare_docs", None)
    if spec.mlp_width == "shared" or spec.gradient_mask:
        relevant["sinks"] = {"p_shared": relevant["sinks"]["p_shared"]}
    elif not spec.sinks:
        relevant.pop("sinks")
    if not relevant["data"]["general_source"]:  # text-corpus fields mean nothing otherwise
        relevant["data"] = {k: v for k, v in relevant["data"].items() if k not in _LATER_DATA}
    elif packs(config.train, text_corpus=True):  # packed text keeps long documents whole
        relevant["data"]["whole_documents"] = True
    if not (spec.sinks or spec.gradient_mask):  # keys only choose sink IDs
        relevant["data"]["sink_key"] = "hash"
    if not relevant["data"]["sink_key"].startswith("field:"):  # sources are a field only
        relevant["data"]["sources"] = 0
    relevant["data"] = {k: v for k, v in relevant["data"].items()
                        if not (k in _LATER_DATA_SET and v == _LATER_DATA_SET[k])}
    relevant["train"] = {k: v for k, v in relevant["train"].items()
                         if k not in _NOT_TRAINING
                         and not (k in _LATER_TRAIN and v == _LATER_TRAIN[k])}
    # added later: a pretrained start enters the hash by its content (the base's fingerprint
    # or the checkpoint's weights), not its path
    relevant["model"].pop("init_from", None)
    relevant.pop("pretrain", None)
    start = start_identity(config)
    if start is not None:
        relevant["model"]["init_from"] = start
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def mixture_of(config: StudyConfig) -> Mixture:
    """The study's stream; text corpora are cut to the model's context for evaluation, and for
    training too unless rows are packed (which keeps long documents whole, split into rows)."""
    context = config.model.resolved()["max_seq_len"]
    return Mixture(config.data, config.train.steps, config.train.batch_size,
                   max_tokens=context - 2,
                   whole_documents=packs(config.train, bool(config.data.general_source)))


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


def _fingerprint_of(method_dir: Path) -> str | None:
    try:
        return json.loads((method_dir / "metrics.json").read_text()).get("fingerprint")
    except (OSError, ValueError):
        return None


def find_finished(root: Path, name: str, fingerprint: str) -> Path | None:
    """A finished method directory under ``root`` trained with the same configuration."""
    for metrics in sorted(root.glob(f"**/{name}/metrics.json")):
        if _fingerprint_of(metrics.parent) == fingerprint and (metrics.parent / "nll.npz").exists():
            return metrics.parent
    return None


def model_config(config: StudyConfig, method: Method) -> ModelConfig:
    if method.mlp_width == "full":
        return config.model
    width = int(config.model.resolved()["intermediate_size"] * config.sinks.p_shared)
    return replace(config.model, intermediate_size=width)


def sink_config(config: StudyConfig, method: Method) -> SinkConfig:
    if method.drop_rescale is None:
        return config.sinks
    return replace(config.sinks, drop_rescale=method.drop_rescale)


def run_method(config: StudyConfig, mixture: Mixture, name: str, run_dir: Path,
               progress: bool = True, reuse_root: Path | None = None) -> dict:
    """Train (or load the finished) method and return its metrics with per-document NLLs."""
    method_dir = run_dir / name
    metrics_path, nll_path = method_dir / "metrics.json", method_dir / "nll.npz"
    fingerprint = method_fingerprint(config, name)
    world = parallel.current()
    if reuse_root is not None and _fingerprint_of(method_dir) != fingerprint and world.main:
        found = find_finished(reuse_root, name, fingerprint)
        if found is not None and found != method_dir:
            shutil.rmtree(method_dir, ignore_errors=True)
            shutil.copytree(found, method_dir)
    parallel.barrier(world)
    if metrics_path.exists() and nll_path.exists():
        metrics = json.loads(metrics_path.read_text())
        if metrics.get("fingerprint") == fingerprint:
            if progress:
                print(f"[{name}] finished earlier with the same configuration; loading it")
            with np.load(nll_path) as data:
                metrics["nll"] = {key: data[key] for key in data.files}
            return metrics
    method_dir.mkdir(parents=True, exist_ok=True)
    # a second process on the same method would write into this one's checkpoints
    with ckpt.hold(method_dir) if world.main else nullcontext():
        return _train_method(config, mixture, name, method_dir, fingerprint, progress)


def recipe_of(method: Method, mixture: Mixture, sinks: Sinks | None) -> Recipe:
    """How ``method`` changes training on the stream: dedup, Goldfish, sink IDs (per token with
    ``sinks.tokens = rare``) and which rows route their gradient (``sinks.shared_grad``)."""
    recipe = Recipe(dedup=method.dedup, goldfish_k=method.goldfish_k,
                    goldfish_h=method.goldfish_h)
    if method.sinks:
        recipe.sink_ids = mixture.sink_ids(method.dedup, method.sink_ids)
        if sinks.config.plain_every:  # these occurrences train as documents without sinks
            plain = mixture.occurrences(method.dedup) % sinks.config.plain_every == 0
            recipe.sink_ids = np.where(plain, 0, recipe.sink_ids)
        if sinks.config.tokens == "rare":
            recipe.sink_tokens = partial(mixture.rare_tokens, method.dedup,
                                         n=sinks.config.rare_n, min_docs=sinks.config.rare_docs)
    if method.gradient_mask:
        recipe.routed = mixture.sink_ids(method.dedup, method.sink_ids) != 0
        recipe.pool_start = sinks.n_shared
    elif method.sinks and sinks.config.shared_grad != 1:
        # documents with sinks train their sinks fully and everything else scaled down
        recipe.routed = recipe.sink_ids != 0
        if sinks.config.shared_grad_from:  # a document's first occurrences train everything
            recipe.routed &= mixture.occurrences(method.dedup) >= sinks.config.shared_grad_from
        recipe.pool_start = sinks.n_shared
        recipe.routed_scale = sinks.config.shared_grad
    return recipe


def _train_method(config: StudyConfig, mixture: Mixture, name: str, method_dir: Path,
                  fingerprint: str, progress: bool) -> dict:
    """Train, evaluate and save one method (the caller holds ``method_dir``)."""
    method = METHODS[name]
    world = parallel.current()
    metrics_path, nll_path = method_dir / "metrics.json", method_dir / "nll.npz"
    device = resolve_device(config.train.device)
    # a fresh model, or a pretrained start widened by a sink pool (n_shared = its old width)
    start_config = replace(config, model=model_config(config, method))
    model, n_shared = start_model(start_config, method, mixture, method_dir.parent, progress)
    model = model.to(device)
    # gradient masking trains ungated; its Sinks object only serves the evaluation modes
    sinks = (Sinks(model, sink_config(config, method), n_shared=n_shared) if method.removable
             else None)
    recipe = recipe_of(method, mixture, sinks)
    curve_sets = sets_of(mixture, config.train.eval_docs)

    r_counts = curve_sets["R"].predicted_tokens

    def curve_point(step: int) -> dict:
        sums = evaluate_modes(model, sinks, method, curve_sets)
        point = {mode: {f"L_{k}": mean_nll(s[k], curve_sets[k].predicted_tokens)[0]
                        for k in SETS} for mode, s in sums.items()}
        for mode, s in sums.items():  # per-document R losses, for the forgetting analysis
            point[mode]["R_docs"] = np.round(s["R"] / r_counts, 5).tolist()
        return point

    if progress:
        print(f"[{name}] {method.description}; {count_parameters(model):,} parameters "
              f"on {device}")
    started = time.time()
    trained = train(model, mixture, config.train, recipe,
                    sinks=sinks if method.sinks else None, log_path=method_dir / "log.jsonl",
                    evaluate=curve_point, label=name, checkpoint_dir=method_dir / "checkpoint",
                    fingerprint=fingerprint, progress=progress)
    sets = sets_of(mixture)
    sums = evaluate_modes(model, sinks, method, sets)
    metrics = {
        "method": name, "description": method.description, "fingerprint": fingerprint,
        "modes": {mode: summarize_mode(s, sets) for mode, s in sums.items()},
        "train_seconds": trained["train_seconds"], "tokens": trained["tokens"],
        "tokens_per_s": trained["tokens_per_s"], "wall_seconds": time.time() - started,
        "curve": trained["curve"],
        "sink_documents": (len(np.unique(recipe.sink_ids[recipe.sink_ids != 0]))
                           if recipe.sink_ids is not None else 0),
        "r_occurrences": occurrence_steps(mixture, method.dedup, len(curve_sets["R"])),
    }
    flat = {f"{mode}/{k}": v for mode, per in sums.items() for k, v in per.items()}
    weights = parallel.full_model_state(model, parallel.resolve(config.train.parallel, world))
    if world.main:
        save_model(model, sinks, method_dir / "model", weights)
        tmp = method_dir / "nll.tmp.npz"
        np.savez(tmp, **flat)
        os.replace(tmp, nll_path)
        atomic_write(metrics_path, json.dumps(metrics, indent=1))
        shutil.rmtree(method_dir / "checkpoint", ignore_errors=True)  # the final model is saved
    parallel.barrier(world)
    metrics["nll"] = flat
    if progress:
        parts = [f"{mode}: gap {m['gap'][0]:.4f}±{m['gap'][1]:.4f} L(V) {m['L_V'][0]:.4f}"
                 for mode, m in metrics["modes"].items()]
        print(f"[{name}] {trained['tokens_per_s']:.0f} tok/s; " + "; ".join(parts))
    return metrics


def occurrence_steps(mixture: Mixture, dedup: bool, count: int) -> list[list[int]]:
    """Training steps at which each of the first ``count`` R documents is seen."""
    rows = np.nonzero(mixture.stream(dedup) < 0)[0]
    codes = mixture.stream(dedup)[rows]
    return [(rows[codes == -(i + 1)] // mixture.batch_size).tolist() for i in range(count)]


def save_model(model, sinks: Sinks | None, path: Path,
               state_dict: dict[str, torch.Tensor] | None = None) -> None:
    """Weights as a standard transformers checkpoint (safetensors), swapped in atomically.

    ``state_dict`` gives the full weights when the model itself is sharded (FSDP).
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per one-shard save is noise in study output
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True, state_dict=state_dict)
    if sinks is not None:
        (tmp / "sinks.json").write_text(json.dumps(
            {**asdict(sinks.config), "n_shared": sinks.n_shared, "n_sink": sinks.n_sink},
            indent=1))
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)


def compare(per_method: dict[str, dict], mixture: Mixture) -> dict:
    """Closure of the gap and validation-loss differences of every sink method."""
    counts = {k: s.predicted_tokens for k, s in sets_of(mixture).items()}
    out: dict[str, dict] = {}
    for name, metrics in per_method.items():
        method = METHODS[name]
        if not method.removable:
            continue
        nll = metrics["nll"]
        drop = {k: nll[f"drop/{k}"] for k in SETS}
        keep = {k: nll[f"{method.full_mode}/{k}"] for k in SETS}
        row: dict = {"closure_within": list(bootstrap_closure(keep, drop, counts))}
        for ref_name in ("standard", "dedup", "standard-narrow"):
            ref = per_method.get(ref_name)
            if ref is None:
                continue
            ref_sums = {k: ref["nll"][f"off/{k}"] for k in SETS}
            # V: the general validation; H: held-out documents of R's domain, the paper's
            # validation when R is the stream's only source of its domain
            for key in ("V", "H"):
                diff, se = paired_difference(drop[key], ref_sums[key], counts[key])
                ref_loss = ref["modes"]["off"][f"L_{key}"][0]
                row[f"dL{key}_vs_{ref_name}"] = [diff, se]
                row[f"dL{key}_rel_vs_{ref_name}"] = [diff / ref_loss, se / ref_loss]
            if ref_name == "standard":
                row["closure_vs_standard"] = list(bootstrap_closure(ref_sums, drop, counts))
        out[name] = row
    return out


def run_study(config: StudyConfig, progress: bool = True, reuse_root: Path | None = None) -> dict:
    """Run every method of the study and write config, manifest, results and the report."""
    from .report import write_report

    config.validate()
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    world = parallel.init_from_env()
    progress = progress and world.main
    run_dir = config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    mixture = mixture_of(config)
    if mixture.text is not None:
        # before the first step, not at step 975: the dedup stream reads the most general
        # documents (it gives back all but one occurrence of every repeated document)
        mixture.text.check_capacity(int(mixture.stream(dedup=True).max(initial=-1)) + 1)
    context = config.model.resolved()["max_seq_len"]
    if mixture.max_doc_len + 2 > context:
        raise ValueError(f"documents of {mixture.max_doc_len} tokens (+BOS/EOS) exceed "
                         f"model.max_seq_len = {context}; raise it")
    manifest = mixture.manifest()
    if world.main:
        atomic_write(run_dir / "config.yaml", config_io.dump(config))
        # provenance written before any training, so a crashed run still says what it was
        atomic_write(run_dir / "run.json", json.dumps(
            {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "command": sys.argv, "world_size": world.size, "seed": {
                 "data": config.data.seed, "init": config.train.seed,
                 "sinks": config.sinks.seed},
             "environment": environment()}, indent=1))
        atomic_write(run_dir / "manifest.json", json.dumps(manifest, indent=1))
        mixture.save_tokenizer(run_dir)
    parallel.barrier(world)
    started = time.time()
    per_method = {name: run_method(config, mixture, name, run_dir, progress, reuse_root)
                  for name in config.methods}
    if world.main:
        for name, metrics in per_method.items():
            ensure_assessment(config, mixture, name, run_dir / name, metrics, per_method,
                              progress)
    sets = sets_of(mixture)
    results = {
        "name": config.name,
        "config": config_io.to_dict(config),
        "environment": environment(),
        "stream": {"documents": config.train.steps * config.train.batch_size,
                   "repeated_share": manifest["repeated_share"]},
        "entropy_floor": {k: sets[k].entropy_floor for k in SETS},
        "methods": {name: {k: v for k, v in m.items() if k != "nll"}
                    for name, m in per_method.items()},
        "comparisons": compare(per_method, mixture),
        "study_seconds": time.time() - started,
    }
    base_metrics = run_dir / BASE / "metrics.json"
    if config.model.init_from == "pretrain" and base_metrics.is_file():
        results["base"] = json.loads(base_metrics.read_text())
    if not world.main:
        return results
    atomic_write(run_dir / "results.json", json.dumps(results, indent=1))
    write_report(run_dir, results)
    if progress:
        print(f"wrote {run_dir / 'results.json'} and {run_dir / 'report.md'}")
    return results


def ensure_assessment(config: StudyConfig, mixture: Mixture, name: str, method_dir: Path,
                      metrics: dict, per_method: dict[str, dict], progress: bool = True) -> None:
    """Add extraction, membership inference, exposure and relearning to a method's metrics.

    Computed from the saved model once (also for methods finished before these metrics
    existed) and written back to its metrics.json. The two parts go stale for different
    reasons: the per-mode metrics only with ``assess.VERSION``, the relearning also when its
    targets change (a study that adds standard training gives a sink model a second target).
    Only the stale part is recomputed, since the per-mode generations are the slow part.
    """
    from ..measure import assess

    target = assess.relearn_target(name, per_method)
    standard = (per_method["standard"]["modes"]["off"]["L_R"][0]
                if "standard" in per_method and METHODS[name].removable else None)
    targets = {key: value for key, value in (("relearn", target),
                                             ("relearn_standard", standard))
               if value is not None}
    current = metrics.get("assessment") or {}
    fresh = current.get("version") == assess.VERSION
    modes_fresh = fresh and "modes" in current
    relearn_fresh = fresh and all((current.get(key) or {}).get("target") == value
                                  for key, value in targets.items())
    if modes_fresh and relearn_fresh:
        return
    started = time.time()
    model, sinks = load_model(method_dir / "model")
    model.to(resolve_device(config.train.device)).eval()
    if relearn_fresh:
        relearned = {key: current.get(key) for key in ("relearn", "relearn_standard")}
    else:
        relearned = assess.relearning(model, sinks, mixture, targets) if targets else {}
    assessment = {"version": assess.VERSION,
                  "modes": (current["modes"] if modes_fresh
                            else assess.assess_modes(model, sinks, METHODS[name], mixture)),
                  "relearn": relearned.get("relearn"),
                  # the yardstick of dedup and the post-hoc baselines: standard training's L(R)
                  "relearn_standard": relearned.get("relearn_standard")}
    assessment["seconds"] = time.time() - started
    metrics["assessment"] = assessment
    stored = {k: v for k, v in metrics.items() if k != "nll"}
    atomic_write(method_dir / "metrics.json", json.dumps(stored, indent=1))
    if progress:
        redone = "memorization metrics" if not modes_fresh else "relearning"
        print(f"[{name}] {redone} in {assessment['seconds']:.0f} s")


def load_model(model_dir: Path):
    """A saved model and its sinks (None for methods without sinks)."""
    from transformers import LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} holds no saved model (config.json); train the "
                                "method first with `memsinks run` or `memsinks train`")
    try:
        model = LlamaForCausalLM.from_pretrained(model_dir)
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        raise ValueError(f"the model in {model_dir} is truncated or corrupt ({error}); delete "
                         f"{model_dir.parent} and rerun the study to train it again") from None
    sinks = None
    if (model_dir / "sinks.json").is_file():
        saved = json.loads((model_dir / "sinks.json").read_text())
        fields = {k: saved[k] for k in SinkConfig.__dataclass_fields__ if k in saved}
        # n_shared as trained: a widened pretrained model's is not p_shared x its width
        sinks = Sinks(model, SinkConfig(**fields), n_shared=saved.get("n_shared"))
    return model, sinks


def study_config_of(method_dir: Path) -> StudyConfig:
    """The config of the study a method directory belongs to (``<study>/config.yaml``)."""
    config_path = Path(method_dir).parent / "config.yaml"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} does not exist; pass a method directory inside "
                                "a study directory, such as runs/default/memsinks")
    return config_io.load(config_path)


def evaluate_saved(method_dir: Path, modes: list[str] | None = None,
                   rescale: str | None = None) -> dict:
    """Re-evaluate runs/<name>/<method>/model in the given sink modes (and drop rescale)."""
    method_dir = Path(method_dir)
    config = study_config_of(method_dir)
    name = method_dir.name
    if name not in METHODS:
        raise ValueError(f"{method_dir} is not a method directory (one of {', '.join(METHODS)})")
    model, sinks = load_model(method_dir / "model")
    method = METHODS[name]
    modes = modes or list(method.modes)
    if sinks is None and any(m != "off" for m in modes):
        raise ValueError(f"{name} was trained without sinks; its only mode is off")
    if rescale is not None and sinks is not None:
        sinks.config = replace(sinks.config, drop_rescale=rescale)
        sinks.config.validate()
    mixture = mixture_of(config)
    sets = sets_of(mixture)
    probe = replace(method, modes=tuple(modes))
    sums = evaluate_modes(model, sinks, probe, sets)
    return {mode: summarize_mode(s, sets) for mode, s in sums.items()}


def export_dropped(method_dir: Path, out: Path) -> Path:
    """Write the sinks-dropped model of a study method as a plain transformers model + tokenizer.

    The sink neurons are deleted and the rescale folded into the down projection, so
    ``AutoModelForCausalLM.from_pretrained(out)`` loads it without memsinks installed.
    """
    from transformers import PreTrainedTokenizerFast

    from ..data.stream import SPECIALS
    from ..sinks import drop_sinks

    method_dir = Path(method_dir)
    model, sinks = load_model(method_dir / "model")
    plain = drop_sinks(model, sinks) if sinks is not None else model
    tokenizer_dir = method_dir.parent / "tokenizer"  # text corpora
    tokenizer_path = method_dir.parent / "tokenizer.json"  # the built-in corpus
    if tokenizer_dir.is_dir():
        from ..data.sources import TextTokenizer

        tokenizer = TextTokenizer.from_saved(tokenizer_dir).hf
    elif tokenizer_path.is_file():
        tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_path),
                                            pad_token=SPECIALS[0], bos_token=SPECIALS[1],
                                            eos_token=SPECIALS[2], unk_token=SPECIALS[3])
    else:
        raise FileNotFoundError(f"{tokenizer_path} does not exist; export a method directory "
                                "inside a study directory")
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                    "vocab.json", "merges.txt", "tokenizer.model", "generation_config.json")


def widen_checkpoint(source: str | Path, out: str | Path, sink_config: SinkConfig) -> Path:
    """Write ``source`` (a plain checkpoint) widened by a zero-initialised sink pool to ``out``,
    as a memsinks model directory (weights, ``sinks.json`` with ``n_shared``, tokenizer files),
    ready for :class:`memsinks.integrations.transformers.SinkTrainer` or your own loop."""
    sink_config.validate()
    model_dir = model_dir_of(source)
    model = load_start(model_dir)
    n_shared = add_sink_pool_share(model, sink_config.p_shared, seed=sink_config.seed)
    sinks = Sinks(model, sink_config, n_shared=n_shared)
    out = Path(out)
    save_model(model, sinks, out)
    for name in _TOKENIZER_FILES:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, out / name)
    return out
