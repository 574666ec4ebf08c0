"""The training loop and its config: AdamW, warmup plus cosine, clipping, sink masks per batch,
periodic evals, checkpoints, and the training-time changes of other methods (Goldfish loss,
gradient masking)."""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm import tqdm

from . import checkpoint as ckpt
from . import parallel
from .data.packing import PackedBatch, collate, model_context, pack
from .data.stream import Mixture
from .device import autocast
from .families import decoder_layers
from .integrations.tracking import check_backends, curve_values
from .parallel import Strategy
from .sinks import Sinks, fmix32

Precision = Literal["auto", "fp32", "bf16"]


@dataclass
class TrainConfig:
    """The train section of a study config: the loop's steps, optimizer and machinery."""

    steps: int = 1000
    """Optimizer steps."""
    batch_size: int = 32
    """Documents per step (one per row, unless packing)."""
    lr: float = 2e-3
    """Peak learning rate of AdamW, after warmup."""
    min_lr_ratio: float = 0.1
    """The cosine decays to lr * min_lr_ratio."""
    warmup_steps: int = 50
    """Steps of linear warmup."""
    weight_decay: float = 0.1
    """AdamW weight decay, on matrices only."""
    grad_clip: float = 1.0
    """Gradient-norm clipping."""
    seed: int = 0
    """Seed of the model initialisation."""
    eval_every: int = 100
    """Steps between learning-curve evaluations (0 = none)."""
    eval_docs: int = 64
    """Documents per set in learning-curve evaluations."""
    device: str = "auto"
    """auto | cpu | cuda | cuda:N."""
    threads: int = 0
    """torch CPU threads (0 = torch's default)."""
    grad_accum: int = 1
    """Micro-batches per step (the batch is the same; memory is smaller)."""
    parallel: Strategy = "auto"
    """Under torchrun: auto (= ddp) | ddp | fsdp | none."""
    compile: bool = False
    """torch.compile the model (GPU)."""
    checkpoint_every: int = 250
    """Steps between resumable checkpoints (0 = only on SIGTERM)."""
    packing: bool | None = None
    """Pack a step's documents into rows of row_len tokens, attention kept inside documents:
    the same documents per step (batch_size), the same gradients up to float rounding.
    None = on for text corpora (mixed lengths: 3-4x the useful tokens/s measured), off for the
    built-in corpus (similar lengths: about 5% slower, benchmarks/packing.py)."""
    row_len: int = 0
    """Packed row length (0 = the model context); longer documents are split."""
    precision: Precision = "auto"
    """Training matmuls: auto (bf16 autocast on GPU, fp32 on CPU) | fp32 | bf16."""
    attention: Literal["sdpa", "flex_attention", "flash_attention_2"] = "sdpa"
    """Attention kernel in training. sdpa: packed rows carry a dense (rows, 1, L, L) mask (the
    CPU route). flex_attention (GPU): no mask tensor, a block mask built from the positions.
    flash_attention_2 (GPU, the flash-attn package): rows laid end to end, variable-length
    kernel, no mask and no padding. The same losses and gradients up to float rounding."""
    report_to: list[str] = field(default_factory=list)
    """Run trackers to log to: tensorboard, wandb, trackio (none by default); see
    memsinks.integrations.tracking."""

    def validate(self) -> None:
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"train.precision = {self.precision!r} is not one of auto, fp32, "
                             "bf16")
        if self.row_len < 0 or self.row_len == 1:
            raise ValueError(f"train.row_len = {self.row_len} must be 0 (the model context) or "
                             "at least 2 (BOS and EOS)")
        for name in ("steps", "batch_size", "grad_accum"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"train.{name} = {getattr(self, name)} must be at least 1")
        if self.checkpoint_every < 0:
            raise ValueError(f"train.checkpoint_every = {self.checkpoint_every} must be >= 0")
        if self.parallel not in parallel.STRATEGIES:
            raise ValueError(f"train.parallel = {self.parallel!r} is not one of "
                             f"{', '.join(parallel.STRATEGIES)}")
        if self.lr <= 0:
            raise ValueError(f"train.lr = {self.lr} must be positive")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"train.min_lr_ratio = {self.min_lr_ratio} is not in [0, 1]")
        if self.attention not in ROUTES:
            raise ValueError(f"train.attention = {self.attention!r} is not one of "
                             f"{', '.join(ROUTES)}")
        check_backends(self.report_to)


def packs(config: TrainConfig, text_corpus: bool) -> bool:
    """Whether training packs rows: ``train.packing``, by default on for text corpora only."""
    return config.packing if config.packing is not None else text_corpus


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
    # the fused CPU kernel: 1.08x the default study's step here (benchmarks/step_speed.py,
    # docs/data/bench/step_speed.txt), the same losses; sharded (DTensor) parameters keep foreach
    params = decay + no_decay
    fused = bool(params) and all(p.device.type == "cpu" and not hasattr(p, "full_tensor")
                                 for p in params)
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95), eps=1e-8,
                             **({"fused": True} if fused else {}))


GOLDFISH_SENTINEL = 0xFFFFFFFF  # stands for "before the document" in a hashed context


def goldfish_drops(input_ids: torch.Tensor, k: int, h: int) -> torch.Tensor:
    """True where Goldfish loss drops a label: 1 in ``k`` tokens, by a hash of the ``h`` before.

    The hash chains murmur3's finaliser over the context in order, so it depends on token
    order and on token 0 like any other token; contexts shorter than ``h`` (the start of a
    document) are padded with a sentinel. The same text therefore always drops the same
    tokens, on every repetition.
    """
    if k < 2:
        raise ValueError(f"goldfish k = {k} must be at least 2 (1 in k tokens is dropped)")
    rows, width = input_ids.shape
    padded = torch.cat([torch.full((rows, h), GOLDFISH_SENTINEL, dtype=torch.int64,
                                   device=input_ids.device), input_ids.long()], dim=1)
    acc = torch.full((rows, width), 0x9E3779B9, dtype=torch.int64, device=input_ids.device)
    for offset in range(h):  # context token input_ids[t - h + offset] for label position t
        acc = fmix32(acc ^ (padded[:, offset:offset + width] & 0xFFFFFFFF))
    drops = (acc % k) == 0
    drops[:, 0] = False  # position 0 (BOS) is never a label
    return drops


class GradientRouter:
    """Gradient routing: while active, gradients outside a designated slice of every MLP are
    scaled by ``other_scale`` (0: they reach only the slice).

    The designated neurons are ``[start:]`` of each MLP's hidden layer: their gate/up rows and
    down-projection columns. Every other parameter (attention, embeddings, norms, the other
    neurons) gets its gradient from the routed rows times ``other_scale``.
    """

    def __init__(self, model: torch.nn.Module, start: int, other_scale: float = 0.0):
        self.active = False
        self.other_scale = float(other_scale)
        self._handles = []
        designated: dict[int, torch.Tensor] = {}
        for layer in decoder_layers(model):
            mlp = layer.mlp
            width = mlp.down_proj.in_features
            if not 0 < start < width:
                raise ValueError(f"gradient masking needs 0 < start < {width}, got {start}")
            keep = torch.full((width,), self.other_scale, device=mlp.down_proj.weight.device)
            keep[start:] = 1.0
            designated[id(mlp.gate_proj.weight)] = keep[:, None]
            designated[id(mlp.up_proj.weight)] = keep[:, None]
            designated[id(mlp.down_proj.weight)] = keep[None, :]
        for param in model.parameters():
            if param.requires_grad:
                mask = designated.get(id(param))
                self._handles.append(param.register_hook(self._hook(mask)))

    def _hook(self, mask: torch.Tensor | None):
        def apply(grad: torch.Tensor) -> torch.Tensor:
            if not self.active:
                return grad
            if mask is None:
                return grad * self.other_scale if self.other_scale else torch.zeros_like(grad)
            return grad * mask.to(grad.dtype)
        return apply

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


@dataclass
class Recipe:
    """How a method changes training on the shared stream."""

    dedup: bool = False
    sink_ids: np.ndarray | None = None  # sink ID per stream position (with sinks; 0 = none)
    goldfish_k: int = 0  # Goldfish loss: drop 1 in k tokens from the loss (0 = off)
    goldfish_h: int = 13  # Goldfish loss: width of the hashed context
    routed: np.ndarray | None = None  # per stream position: gradient restricted to the pool
    pool_start: int = 0  # gradient masking: first designated MLP neuron
    routed_scale: float = 0.0  # routed rows' gradient outside the designated neurons
    # sinks.tokens = rare: a document's tokens -> True where its sinks are on (the next token
    # is rare); its other positions train without sinks. With routed rows, only the rare
    # targets' loss is routed (scaled outside the pool), the rest trains everything
    sink_tokens: Callable[[np.ndarray], np.ndarray] | None = None


class Interrupted(Exception):
    """Training stopped on SIGTERM after writing a checkpoint; rerunning resumes it."""


class _StopFlag:
    """Turns SIGTERM into a flag checked once per step (the main thread only)."""

    def __init__(self):
        self.raised = False
        self._previous = None

    def __enter__(self) -> _StopFlag:
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._previous = None
        return self

    def _handle(self, signum, frame) -> None:
        self.raised = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _resume_log(log_path: Path, step: int) -> None:
    """Keep the log's records up to ``step`` (those after it are about to be redone)."""
    if not log_path.is_file():
        return
    kept = []
    for line in log_path.read_text().splitlines():
        record = json.loads(line)
        if record.get("step", record.get("eval", {}).get("step", 0)) <= step:
            kept.append(line)
    log_path.write_text("".join(k + "\n" for k in kept))


def step_batch(tokens: list[np.ndarray], ids: list[int], device: torch.device,
               specials: tuple[int, int, int], recipe: Recipe,
               routed: np.ndarray | None = None, *, row_len: int = 0, rows_multiple: int = 1
               ) -> tuple[PackedBatch, torch.Tensor, torch.Tensor | None]:
    """One step's rows, their loss labels (Goldfish drops applied) and which rows are routed.

    ``row_len`` > 0 packs the documents into rows of that length, routed (``routed``, a flag
    per document) and other documents in separate rows; 0 puts one document per row.
    """
    plain = collate(tokens, ids, device, specials) if not row_len or recipe.goldfish_k else None
    if row_len:
        batch = pack(tokens, ids, device, specials, row_len=row_len, groups=routed,
                     rows_multiple=rows_multiple)
        routed_rows = batch.row_group if routed is not None else None
    else:
        batch = PackedBatch.unpacked(plain)
        routed_rows = torch.as_tensor(routed, device=device) if routed is not None else None
    labels = batch.labels
    if recipe.sink_tokens is not None:
        batch.doc_ids = batch.doc_ids * _sink_positions(tokens, ids, recipe.sink_tokens, batch,
                                                        packed=bool(row_len))
    if recipe.goldfish_k:
        # a drop depends on the document alone: hashed one document per row, where the
        # context cannot cross a boundary, then laid out like the tokens, so packed rows
        # (even a document split into pieces) drop exactly the tokens unpacked rows drop
        drops = goldfish_drops(plain.input_ids, recipe.goldfish_k, recipe.goldfish_h)
        labels = labels.masked_fill(batch.place(drops) if row_len else drops, -100)
    return batch, labels, routed_rows


def _sink_positions(tokens: list[np.ndarray], ids: list[int],
                    sink_tokens: Callable[[np.ndarray], np.ndarray], batch: PackedBatch,
                    packed: bool) -> torch.Tensor:
    """1 where a token's sinks are on (its document has sinks and the next token is rare),
    laid out like the batch. Position p of a document predicts token p + 1, BOS at 0."""
    width = max(len(t) for t in tokens) + 2  # collate's layout: BOS, tokens, EOS
    on = torch.zeros(len(tokens), width, dtype=torch.long)
    for row, (t, doc) in enumerate(zip(tokens, ids, strict=True)):
        if doc:  # the position before token i predicts it; EOS's predictor stays off
            on[row, : len(t)] = torch.from_numpy(np.asarray(sink_tokens(t), dtype=np.int64))
    on = on.to(batch.doc_ids.device)
    return batch.place(on) if packed else on[:, : batch.doc_ids.shape[1]]


def rows_nll(model: torch.nn.Module, batch: PackedBatch, labels: torch.Tensor,
             rows: torch.Tensor, sinks: Sinks | None = None, precision: str = "auto",
             split: bool = False, route: str = "mask") -> torch.Tensor:
    """Summed next-token NLL of some rows of a batch, their sink masks (train mode) set first.

    ``split``: two sums instead, over targets predicted without sinks and with them.
    ``route``: how packed rows reach attention (:meth:`PackedBatch.model_inputs`).
    """
    flat = route == "flat" and batch.packed
    if sinks is not None:
        ids = batch.doc_ids[rows]
        sinks.set_mode("train", ids=batch.flat_rows(ids) if flat else ids)
    with autocast(batch.input_ids.device, precision):
        logits = model(**batch.model_inputs(rows, route)).logits
    if flat:  # back to one row per packed row
        logits = logits.view(*batch.input_ids[rows].shape, -1)
    nll = torch.nn.functional.cross_entropy(
        logits[:, :-1].float().flatten(0, 1), labels[rows][:, 1:].flatten(),
        ignore_index=-100, reduction="none" if split else "sum")
    if not split:
        return nll
    with_sinks = (batch.doc_ids[rows][:, :-1] != 0).flatten()
    return torch.stack([nll[~with_sinks].sum(), nll[with_sinks].sum()])


def _parts(rows: torch.Tensor, routed: torch.Tensor | None, accum: int) -> list[tuple]:
    """Row groups of one optimizer step: micro-batches, each split into routed / other rows."""
    parts = []
    for chunk in torch.tensor_split(rows, min(accum, len(rows))):
        if routed is None:
            parts.append((chunk, False))
            continue
        for flag in (False, True):
            picked = chunk[routed[chunk] == flag]
            if len(picked):
                parts.append((picked, flag))
    return parts


# train.attention -> how packed rows reach it (PackedBatch.model_inputs)
ROUTES = {"sdpa": "mask", "flex_attention": "positions", "flash_attention_2": "flat"}


def use_attention(model: torch.nn.Module, attention: str) -> str:
    """Switch ``model`` to ``attention`` for training; returns the implementation it had."""
    before = model.config._attn_implementation
    if attention == "sdpa" or attention == before:
        return before
    device = next(model.parameters()).device
    if attention == "flex_attention" and device.type == "cpu":
        raise ValueError("train.attention = flex_attention cannot train on CPU (torch's "
                         "FlexAttention has no backward pass there); use train.attention=sdpa")
    model.set_attn_implementation(attention)
    return before


def train(model: torch.nn.Module, mixture: Mixture, config: TrainConfig,
          recipe: Recipe | None = None, *, sinks: Sinks | None = None, log_path: Path,
          evaluate: Callable[[int], dict] | None = None, label: str = "train",
          checkpoint_dir: Path | None = None, fingerprint: str | None = None,
          progress: bool = True, tracker=None) -> dict:
    """Train in place; returns timing, token counts and the learning curve.

    With ``checkpoint_dir``, a checkpoint is written every ``config.checkpoint_every`` steps
    and on SIGTERM (then :class:`Interrupted` is raised), and training resumes from the
    newest checkpoint there whose fingerprint matches.
    """
    recipe = recipe or Recipe()
    world = parallel.current()
    strategy = parallel.resolve(config.parallel, world)
    device = next(model.parameters()).device
    engine = parallel.parallelize(model, config.parallel, world)
    optimizer = make_optimizer(model, config)  # after FSDP has swapped in sharded parameters
    if config.compile:
        engine = torch.compile(engine)
    router = (GradientRouter(model, recipe.pool_start, recipe.routed_scale)
              if recipe.routed is not None else None)
    if router is not None and recipe.sink_tokens is not None and strategy in ("ddp", "fsdp"):
        raise ValueError("token-gated sinks with routed gradients (sinks.tokens = rare with "
                         "sinks.shared_grad < 1) take two backward passes per row, which "
                         f"{strategy} cannot synchronise; train them in one process")
    row_len = ((config.row_len or model_context(model))
               if packs(config, text_corpus=mixture.text is not None) else 0)
    curve: list[dict] = []
    start_step, tokens_seen, train_time, eval_time = 0, 0, 0.0, 0.0
    found = ckpt.latest(checkpoint_dir) if checkpoint_dir is not None else None
    if found is not None:
        weights, optimizer_state, state = ckpt.load(found)
        if state.get("fingerprint") == fingerprint:
            parallel.load_states(model, optimizer, weights, optimizer_state, strategy)
            start_step, curve = state["step"], state["curve"]
            tokens_seen, train_time = state["tokens"], state["train_seconds"]
            eval_time = state.get("eval_seconds", 0.0)
            if "rng" in state:
                torch.set_rng_state(state["rng"])
            if world.main and progress:
                print(f"[{label}] resuming from {found} (step {start_step})")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if start_step:
        _resume_log(log_path, start_step)

    def save_checkpoint(step: int) -> None:
        weights = parallel.full_model_state(model, strategy)
        if not all(torch.isfinite(w).all() for w in weights.values()):
            raise FloatingPointError(f"the weights became non-finite by step {step}; lower "
                                     "train.lr or raise train.warmup_steps (the last good "
                                     "checkpoint is kept)")
        optimizer_state = parallel.full_optimizer_state(model, optimizer, strategy)
        if world.main:
            ckpt.save(checkpoint_dir, step, weights, optimizer_state, {
                "fingerprint": fingerprint, "curve": curve, "tokens": tokens_seen,
                "train_seconds": train_time, "eval_seconds": eval_time})

    attention_before = use_attention(model, config.attention)
    route = ROUTES[config.attention]
    model.train()
    with (open(log_path, "a" if start_step else "w") as log, _StopFlag() as stop,
          tqdm(total=config.steps, initial=start_step, desc=label, leave=False,
               dynamic_ncols=True, mininterval=1.0,
               disable=not (world.main and progress)) as bar):
        for step in range(start_step, config.steps):
            started = time.perf_counter()
            rows = mixture.batch(step, dedup=recipe.dedup)
            span = slice(step * config.batch_size, (step + 1) * config.batch_size)
            ids = (recipe.sink_ids[span].tolist() if recipe.sink_ids is not None
                   else [0] * len(rows))
            batch, labels, routed = step_batch(
                [t for _, t in rows], ids, device, mixture.specials, recipe,
                recipe.routed[span] if recipe.routed is not None else None,
                row_len=row_len, rows_multiple=world.size)
            global_tokens = int((labels[:, 1:] != -100).sum())
            lr = lr_at(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            mine = torch.arange(batch.rows, device=device)[world.rows(batch.rows)]
            parts = _parts(mine, routed, config.grad_accum)
            nll_sum = 0.0
            for index, (part, is_routed) in enumerate(parts):
                last_part = index == len(parts) - 1
                sync = (engine.no_sync() if strategy == "ddp" and not last_part
                        else nullcontext())
                with sync:
                    # routed rows of token-gated sinks: only targets predicted with sinks
                    split = bool(is_routed and recipe.sink_tokens is not None)
                    nll = rows_nll(engine, batch, labels, part, sinks, config.precision, split,
                                   route)
                    # normalised by the global batch's tokens (x processes, whose gradients
                    # are averaged), so any split of the rows gives the same gradient
                    scale = world.size / global_tokens
                    common = 0.0
                    if split:  # the rest trains everything, as rows without sinks do
                        (nll[0] * scale).backward(retain_graph=True)
                        common, nll = nll[0].item(), nll[1]
                    if router is not None:
                        router.active = is_routed
                    (nll * scale).backward()
                    if router is not None:
                        router.active = False
                nll_sum += nll.item() + common
            loss = parallel.all_reduce_sum([nll_sum], world)[0] / global_tokens
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss became {loss} at step {step}; lower "
                                         "train.lr or raise train.warmup_steps (the last "
                                         "checkpoint, if any, is kept)")
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            if hasattr(grad_norm, "full_tensor"):  # a DTensor under FSDP
                grad_norm = grad_norm.full_tensor()
            if not torch.isfinite(grad_norm):
                raise FloatingPointError(f"gradient norm became {float(grad_norm)} at step "
                                         f"{step}; lower train.lr or raise train.grad_clip")
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            tokens_seen += global_tokens
            train_time += time.perf_counter() - started
            record = {"step": step + 1, "loss": round(loss, 5), "lr": lr,
                      "grad_norm": round(float(grad_norm), 4), "tokens": tokens_seen,
                      "tokens_per_s": round(tokens_seen / train_time, 1)}
            if world.main:
                log.write(json.dumps(record) + "\n")
                if tracker is not None:  # memsinks.integrations.tracking.Tracker
                    tracker.log({f"train/{k}": v for k, v in record.items() if k != "step"},
                                step + 1)
            bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
            bar.update(1)
            last = step + 1 == config.steps
            if evaluate is not None and config.eval_every and ((step + 1) % config.eval_every == 0
                                                               or last):
                model.eval()
                evaluated = time.perf_counter()
                point = {"step": step + 1, **evaluate(step + 1)}
                eval_time += time.perf_counter() - evaluated
                model.train()
                curve.append(point)
                if world.main:
                    log.write(json.dumps({"eval": point}) + "\n")
                    if tracker is not None:
                        tracker.log(curve_values(point), step + 1)
            log.flush()
            if checkpoint_dir is not None and not last and (
                    stop.raised or (config.checkpoint_every
                                    and (step + 1) % config.checkpoint_every == 0)):
                save_checkpoint(step + 1)
            if stop.raised and not last:
                raise Interrupted(f"stopped by SIGTERM after step {step + 1} of {config.steps}; "
                                  f"a checkpoint is in {checkpoint_dir}; rerun the same command "
                                  "to resume" if checkpoint_dir is not None else
                                  f"stopped by SIGTERM after step {step + 1} (no checkpoint "
                                  "directory was given)")
    if router is not None:
        router.remove()
    if attention_before != model.config._attn_implementation:  # evaluation as tested
        model.set_attn_implementation(attention_before)
    if sinks is not None:
        sinks.set_mode("off")
    model.eval()
    return {"train_seconds": train_time, "eval_seconds": eval_time, "tokens": tokens_seen,
            "tokens_per_s": tokens_seen / max(train_time, 1e-9), "curve": curve}
