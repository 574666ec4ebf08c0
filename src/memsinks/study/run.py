"""A whole study: every method on the same stream and seeds -> per-method metrics -> results.json.

Finished methods are not retrained: a method whose metrics were written under the same
configuration is loaded from disk, so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from .. import checkpoint as ckpt
from .. import config as config_io
from .. import parallel
from ..config import StudyConfig, mixture_of, study_config_of
from ..data.stream import Mixture
from ..device import resolve_device
from ..files import atomic_write, replacing
from ..measure.losses import SETS, evaluate_modes, sets_of, summarize_mode
from ..measure.stats import bootstrap_closure, mean_nll, paired_difference
from ..methods import METHODS, Method
from ..model import ModelConfig, count_parameters
from ..modelio import load_model, save_model
from ..sinks import SinkConfig, Sinks
from ..train import Recipe, train
from .fingerprint import method_fingerprint
from .pretrained import BASE, start_model


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
    with _tracker(config, name, method_dir) as tracker:
        trained = train(model, mixture, config.train, recipe,
                        sinks=sinks if method.sinks else None,
                        log_path=method_dir / "log.jsonl", evaluate=curve_point, label=name,
                        checkpoint_dir=method_dir / "checkpoint", fingerprint=fingerprint,
                        progress=progress, tracker=tracker)
        sets = sets_of(mixture)
        evaluated = time.time()
        sums = evaluate_modes(model, sinks, method, sets)
        final_eval = time.time() - evaluated
        modes = {mode: summarize_mode(s, sets) for mode, s in sums.items()}
        tracker.summary({f"{mode}/{key}": value[0] for mode, row in modes.items()
                         for key, value in row.items()})
    metrics = {
        "method": name, "description": method.description, "fingerprint": fingerprint,
        "modes": modes,
        "train_seconds": trained["train_seconds"], "tokens": trained["tokens"],
        "tokens_per_s": trained["tokens_per_s"], "wall_seconds": time.time() - started,
        # where the wall time went besides the steps: learning curves and the final evaluation
        "eval_seconds": trained["eval_seconds"], "final_eval_seconds": final_eval,
        "curve": trained["curve"],
        "sink_documents": (len(np.unique(recipe.sink_ids[recipe.sink_ids != 0]))
                           if recipe.sink_ids is not None else 0),
        "r_occurrences": occurrence_steps(mixture, method.dedup, len(curve_sets["R"])),
    }
    flat = {f"{mode}/{k}": v for mode, per in sums.items() for k, v in per.items()}
    weights = parallel.full_model_state(model, parallel.resolve(config.train.parallel, world))
    if world.main:
        save_model(model, sinks, method_dir / "model", weights)
        with replacing(nll_path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **flat)
        atomic_write(metrics_path, json.dumps(metrics, indent=1))
        shutil.rmtree(method_dir / "checkpoint", ignore_errors=True)  # the final model is saved
    parallel.barrier(world)
    metrics["nll"] = flat
    if progress:
        print(summary_line(name, metrics))
    return metrics


def summary_line(name: str, metrics: dict) -> str:
    """One line for a trained method: tokens/s, and the gap and L(V) in each mode."""
    parts = [f"{mode}: gap {m['gap'][0]:.4f}±{m['gap'][1]:.4f} L(V) {m['L_V'][0]:.4f}"
             for mode, m in metrics["modes"].items()]
    return f"[{name}] {metrics['tokens_per_s']:.0f} tok/s; " + "; ".join(parts)


def _tracker(config: StudyConfig, name: str, directory: Path):
    """The run trackers of ``train.report_to`` for one run of a study (main process only)."""
    from ..integrations.tracking import Tracker

    wanted = config.train.report_to if parallel.current().main else []
    return Tracker(wanted, project=config.name, name=f"{config.name}/{name}",
                   config=config_io.to_dict(config), directory=directory)


def occurrence_steps(mixture: Mixture, dedup: bool, count: int) -> list[list[int]]:
    """Training steps at which each of the first ``count`` R documents is seen."""
    rows = np.nonzero(mixture.stream(dedup) < 0)[0]
    codes = mixture.stream(dedup)[rows]
    return [(rows[codes == -(i + 1)] // mixture.batch_size).tolist() for i in range(count)]


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


def _train_job(config: StudyConfig, name: str, reuse_root: Path | None, threads: int,
               progress: bool = False) -> str:
    """A worker of ``run_study(jobs > 1)``: train one method (or find it finished)."""
    torch.set_num_threads(threads)
    if progress:  # one line a method: progress bars of several processes would interleave
        print(f"[{name}] training in process {os.getpid()}", flush=True)
    metrics = run_method(config, mixture_of(config), name, config.run_dir, False, reuse_root)
    if progress:
        print(summary_line(name, metrics), flush=True)
    return name


def _assess_job(config: StudyConfig, name: str, per_method: dict, threads: int) -> dict:
    """A worker of ``run_study(jobs > 1)``: one method's memorization assessment."""
    torch.set_num_threads(threads)
    method_dir = config.run_dir / name
    metrics = json.loads((method_dir / "metrics.json").read_text())
    ensure_assessment(config, mixture_of(config), name, method_dir, metrics, per_method, False)
    return metrics["assessment"]


def _in_workers(job, calls: list[tuple], jobs: int, progress: bool, what: str) -> dict:
    """Run ``job(*call)`` for every call in ``jobs`` fresh processes; name -> result."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    out = {}
    context = multiprocessing.get_context("spawn")  # no forked torch thread pools
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = {pool.submit(job, *call): call[1] for call in calls}
        for future in as_completed(futures):
            name = futures[future]
            out[name] = future.result()  # a worker's error is raised here, with its traceback
            if progress:
                print(f"[{name}] {what}", flush=True)
    return out


def run_study(config: StudyConfig, progress: bool = True, reuse_root: Path | None = None,
              jobs: int = 1) -> dict:
    """Run every method of the study and write config, manifest, results and the report.

    ``jobs`` > 1 trains (and then assesses) that many methods at once, each in a process of
    its own with an equal share of the threads: on a small CPU model, where one step's
    matrices are too small to keep several cores busy, this finishes a study sooner. Each
    method's results equal those of one process up to float rounding (threads change the
    order of sums). One process runs when a study pretrains a shared base or is distributed.
    """
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
    jobs = min(jobs, len(config.methods))
    parallel_jobs = jobs > 1 and world.size == 1 and not config.model.init_from
    threads = max(1, (config.train.threads or torch.get_num_threads()) // max(jobs, 1))
    if parallel_jobs:
        if progress:
            print(f"training {len(config.methods)} methods in {jobs} processes of {threads} "
                  f"thread(s) each", flush=True)
        _in_workers(_train_job, [(config, name, reuse_root, threads, progress)
                                 for name in config.methods], jobs, False, "trained")
    per_method = {name: run_method(config, mixture, name, run_dir,
                                   progress and not parallel_jobs, reuse_root)
                  for name in config.methods}
    if world.main and parallel_jobs:
        light = {name: {k: v for k, v in m.items() if k != "nll"}
                 for name, m in per_method.items()}
        done = _in_workers(_assess_job, [(config, name, light, threads)
                                         for name in config.methods],
                           jobs, progress, "memorization metrics")
        for name, assessment in done.items():
            per_method[name]["assessment"] = assessment
    elif world.main:
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
    if config.train.report_to and world.main:  # the study's figures, as one tracked run
        from ..integrations.tracking import study_values

        with _tracker(config, "study", run_dir) as tracker:
            tracker.summary(study_values(results))
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
    relearn_started = time.time()
    if relearn_fresh:
        relearned = {key: current.get(key) for key in ("relearn", "relearn_standard")}
    else:
        relearned = assess.relearning(model, sinks, mixture, targets) if targets else {}
    relearn_seconds = (time.time() - relearn_started if not relearn_fresh
                       else current.get("relearn_seconds"))
    assessment = {"version": assess.VERSION,
                  "modes": (current["modes"] if modes_fresh
                            else assess.assess_modes(model, sinks, METHODS[name], mixture)),
                  "relearn": relearned.get("relearn"),
                  # the yardstick of dedup and the post-hoc baselines: standard training's L(R)
                  "relearn_standard": relearned.get("relearn_standard"),
                  "relearn_seconds": relearn_seconds}
    assessment["seconds"] = time.time() - started
    metrics["assessment"] = assessment
    stored = {k: v for k, v in metrics.items() if k != "nll"}
    atomic_write(method_dir / "metrics.json", json.dumps(stored, indent=1))
    if progress:
        redone = "memorization metrics" if not modes_fresh else "relearning"
        print(f"[{name}] {redone} in {assessment['seconds']:.0f} s")


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
