"""Training that starts from a pretrained model: a base the study pretrains, or a checkpoint.

``model.init_from`` names the start. Every method of the study fine-tunes the same start on
the study's stream (general documents plus the repeated ones). A method with sinks, or with
gradient masking, first widens every MLP by a sink pool of new neurons whose output columns
are zero (:func:`memsinks.families.add_sink_pool`): the pretrained neurons become the shared
ones, the model computes exactly what the checkpoint did at step 0, and only what the
fine-tuning stream teaches can land in the sinks. This is the case of a team that fine-tunes
on data it may later be asked to remove.

``model.init_from = pretrain`` makes the study train that base itself: standard training
on general documents only, taken past those the fine-tuning stream reads, so the base has seen
none of R, H or V. The base is trained once per configuration and reused by every method.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import checkpoint as ckpt
from .. import config as config_io
from .. import parallel
from ..config import StudyConfig
from ..data.stream import Mixture
from ..device import resolve_device
from ..families import add_sink_pool_share
from ..files import atomic_write, replacing
from ..measure.losses import document_nll, gap, mean_nll
from ..methods import Method
from ..model import build_model
from ..train import Recipe, train

BASE = "base"  # the study directory's folder for its pretrained base
_WEIGHTS = ("*.safetensors", "*.bin")
_digests: dict[tuple, str] = {}


class GeneralOnly:
    """The base's training stream: general documents only, past those the study's stream
    reads (dedup's stream reads the most), ``batch_size`` a step."""

    def __init__(self, mixture: Mixture, batch_size: int):
        self.mixture, self.batch_size = mixture, batch_size
        self.text, self.specials = mixture.text, mixture.specials
        self.offset = int(mixture.stream(dedup=True).max(initial=-1)) + 1

    def batch(self, step: int, dedup: bool = False) -> list[tuple[int, np.ndarray]]:
        start = self.offset + step * self.batch_size
        return [(i, self.mixture.general(i)) for i in range(start, start + self.batch_size)]


def model_dir_of(path: str | Path) -> Path:
    """The model directory of ``path``: itself, or ``path/model`` for a study's method dir."""
    path = Path(path)
    for candidate in (path / "model", path):
        if (candidate / "config.json").is_file():
            return candidate
    raise FileNotFoundError(f"{path} holds no model (config.json, or model/config.json); pass "
                            "a transformers checkpoint directory or a study's method directory")


def weights_digest(model_dir: Path) -> str:
    """A content hash of a checkpoint's weight files (cached per file size and mtime)."""
    files = sorted(f for pattern in _WEIGHTS for f in Path(model_dir).glob(pattern))
    if not files:
        raise FileNotFoundError(f"{model_dir} holds no weights (*.safetensors or *.bin)")
    key = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if key not in _digests:
        digest = hashlib.sha256()
        for f in files:
            digest.update(f.name.encode())
            with open(f, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 22), b""):
                    digest.update(block)
        _digests[key] = digest.hexdigest()[:16]
    return _digests[key]


def base_fingerprint(config: StudyConfig) -> str:
    """Hash of everything that determines the base a study pretrains."""
    train = config.train
    # sink keys and R's perturbation never reach the general documents the base reads
    data = {k: v for k, v in config_io.to_dict(config.data).items()
            if k not in ("sink_key", "perturb", "sources")}
    relevant = {
        "data": data,
        "model": {k: v for k, v in config_io.to_dict(config.model).items() if k != "init_from"},
        "pretrain": config_io.to_dict(config.pretrain),
        # the base reads general documents past those of the study's stream
        "stream": [train.steps, train.batch_size],
        "optimizer": [train.batch_size, train.weight_decay, train.grad_clip, train.min_lr_ratio,
                      train.seed, train.row_len],
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def start_identity(config: StudyConfig) -> str | None:
    """What a method's fingerprint records of its start: None for a fresh model."""
    source = config.model.init_from
    if not source:
        return None
    if source == "pretrain":
        return "pretrain:" + base_fingerprint(config)
    return "weights:" + weights_digest(model_dir_of(source))


def load_start(model_dir: Path) -> nn.Module:
    """A pretrained causal LM in fp32, refused if it already carries a sink pool."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    if (model_dir / "sinks.json").is_file():
        raise ValueError(f"{model_dir} already has a sink pool (sinks.json); fine-tune from its "
                         "sink-free export (memsinks export) or from a model without sinks")
    hf_logging.disable_progress_bar()
    try:
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    except (OSError, ValueError, RuntimeError) as error:
        raise ValueError(f"the model in {model_dir} cannot be loaded ({error}); pass a "
                         "complete transformers checkpoint directory") from None


def ensure_base(config: StudyConfig, mixture: Mixture, run_dir: Path,
                progress: bool = True) -> Path:
    """Pretrain the study's base (or find it finished) and return its model directory."""
    base_dir = Path(run_dir) / BASE
    model_dir, metrics_path = base_dir / "model", base_dir / "metrics.json"
    fingerprint = base_fingerprint(config)
    world = parallel.current()

    def finished() -> bool:
        try:
            done = json.loads(metrics_path.read_text()).get("fingerprint") == fingerprint
        except (OSError, ValueError):
            return False
        return done and (model_dir / "config.json").is_file()

    if finished():
        return model_dir
    base_dir.mkdir(parents=True, exist_ok=True)
    stream = GeneralOnly(mixture, config.train.batch_size)
    if mixture.text is not None:
        mixture.text.check_capacity(stream.offset + config.pretrain.steps * stream.batch_size)
    with ckpt.hold(base_dir) if world.main else nullcontext():
        if finished():  # another process finished it while this one waited
            return model_dir
        device = resolve_device(config.train.device)
        model = build_model(config.model, mixture.vocab_size, seed=config.train.seed).to(device)
        settings = replace(config.train, steps=config.pretrain.steps, lr=config.pretrain.lr,
                           warmup_steps=config.pretrain.warmup_steps, eval_every=0)
        if progress:
            print(f"[base] pretraining on general documents only, {settings.steps} steps")
        started = time.time()
        trained = train(model, stream, settings, Recipe(), log_path=base_dir / "log.jsonl",
                        label="base", checkpoint_dir=base_dir / "checkpoint",
                        fingerprint=fingerprint, progress=progress)
        weights = parallel.full_model_state(model, parallel.resolve(settings.parallel, world))
        if world.main:
            sets = {"R": mixture.repeated, "H": mixture.heldout, "V": mixture.validation}
            losses = {k: document_nll(model, s, None, "off") for k, s in sets.items()}
            counts = {k: s.predicted_tokens for k, s in sets.items()}
            metrics = {"fingerprint": fingerprint, "steps": settings.steps,
                       **{f"L_{k}": list(mean_nll(losses[k], counts[k])) for k in sets},
                       "gap": list(gap(losses["H"], counts["H"], losses["R"], counts["R"])),
                       "train_seconds": trained["train_seconds"],
                       "tokens": trained["tokens"], "wall_seconds": time.time() - started}
            with replacing(model_dir) as tmp:
                model.save_pretrained(tmp, safe_serialization=True, state_dict=weights)
            atomic_write(metrics_path, json.dumps(metrics, indent=1))
            shutil.rmtree(base_dir / "checkpoint", ignore_errors=True)
            if progress:
                print(f"[base] L(R) {metrics['L_R'][0]:.4f} L(H) {metrics['L_H'][0]:.4f} "
                      f"L(V) {metrics['L_V'][0]:.4f}")
    parallel.barrier(world)
    return model_dir


def start_model(config: StudyConfig, method: Method, mixture: Mixture, run_dir: Path,
                progress: bool = True) -> tuple[nn.Module, int | None]:
    """The model a method starts from and, when it was widened for sinks, its shared width.

    Fresh (``model.init_from`` empty): a new model of the configured shape, and None. Otherwise
    the pretrained start, widened by a zero-initialised sink pool for methods that remove part
    of the model after training (so ``p_shared`` of the widened MLP is the pretrained part).
    """
    source = config.model.init_from
    if not source:
        return build_model(config.model, mixture.vocab_size, seed=config.train.seed), None
    model_dir = (ensure_base(config, mixture, run_dir, progress) if source == "pretrain"
                 else model_dir_of(source))
    model = load_start(model_dir)
    vocab = model.get_input_embeddings().weight.shape[0]
    if vocab < mixture.vocab_size:
        raise ValueError(f"the model in {model_dir} has {vocab} token embeddings but the data's "
                         f"tokenizer has {mixture.vocab_size} tokens; train on text with the "
                         "model's own tokenizer (data.tokenizer = the model directory)")
    if not method.removable:
        return model, None
    return model, add_sink_pool_share(model, config.sinks.p_shared, seed=config.train.seed)
