"""The training loop: AdamW, warmup plus cosine, clipping, sink masks per batch, periodic evals."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .config import TrainConfig
from .mixture import BOS, EOS, PAD, Mixture
from .sinks import Sinks


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, T), right-padded
    labels: torch.Tensor  # input ids, -100 on padding
    doc_ids: torch.Tensor  # (B, T) sink ID of every token (0 = no sinks)


def collate(token_lists: list[np.ndarray], doc_ids: list[int], device: torch.device) -> Batch:
    """One document per row: BOS, its tokens, EOS, right padding."""
    width = max(len(t) for t in token_lists) + 2
    input_ids = torch.full((len(token_lists), width), PAD, dtype=torch.long)
    labels = torch.full_like(input_ids, -100)
    ids = torch.zeros_like(input_ids)
    for row, (tokens, doc) in enumerate(zip(token_lists, doc_ids, strict=True)):
        n = len(tokens) + 2
        seq = torch.empty(n, dtype=torch.long)
        seq[0], seq[-1] = BOS, EOS
        seq[1:-1] = torch.from_numpy(tokens.astype(np.int64))
        input_ids[row, :n] = seq
        labels[row, :n] = seq
        ids[row, :n] = doc
    return Batch(input_ids.to(device), labels.to(device), ids.to(device))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"train.device = {name!r} but no CUDA device is available; use cpu")
    return torch.device(name)


def autocast(device: torch.device):
    """bf16 autocast on GPU; full precision on CPU (CPU bf16 is slower here, not faster)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warmup, then cosine decay to lr * min_lr_ratio."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not norms, not biases)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95), eps=1e-8)


def train(model: torch.nn.Module, mixture: Mixture, config: TrainConfig, *, dedup: bool,
          sinks: Sinks | None, sink_ids: np.ndarray | None, log_path: Path,
          evaluate: Callable[[int], dict] | None = None, label: str = "train") -> dict:
    """Train in place; returns timing, the JSONL log's path and the learning curve."""
    device = next(model.parameters()).device
    optimizer = make_optimizer(model, config)
    model.train()
    curve: list[dict] = []
    tokens_seen, train_time = 0, 0.0
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log, tqdm(total=config.steps, desc=label, leave=False,
                                          dynamic_ncols=True, mininterval=1.0) as bar:
        for step in range(config.steps):
            start = time.perf_counter()
            rows = mixture.batch(step, dedup=dedup)
            if sink_ids is not None:  # per stream position
                ids = sink_ids[step * config.batch_size:(step + 1) * config.batch_size].tolist()
            else:
                ids = [0] * len(rows)
            batch = collate([t for _, t in rows], ids, device)
            lr = lr_at(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if sinks is not None:
                sinks.set_mode("train", ids=batch.doc_ids)
            with autocast(device):
                loss = model(input_ids=batch.input_ids, labels=batch.labels).loss
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower "
                                         "train.lr or raise train.warmup_steps")
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            n_tokens = int((batch.labels[:, 1:] != -100).sum())
            tokens_seen += n_tokens
            train_time += time.perf_counter() - start
            record = {"step": step + 1, "loss": round(loss.item(), 5), "lr": lr,
                      "grad_norm": round(float(grad_norm), 4), "tokens": tokens_seen,
                      "tokens_per_s": round(tokens_seen / train_time, 1)}
            log.write(json.dumps(record) + "\n")
            bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
            bar.update(1)
            last = step + 1 == config.steps
            if evaluate is not None and config.eval_every and ((step + 1) % config.eval_every == 0
                                                               or last):
                model.eval()
                point = {"step": step + 1, **evaluate(step + 1)}
                model.train()
                curve.append(point)
                log.write(json.dumps({"eval": point}) + "\n")
            log.flush()
    if sinks is not None:
        sinks.set_mode("off")
    model.eval()
    return {"train_seconds": train_time, "tokens": tokens_seen,
            "tokens_per_s": tokens_seen / max(train_time, 1e-9), "curve": curve}
