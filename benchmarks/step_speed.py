"""Where a small model's training step can get faster on CPU: one step of the default study,
in variants, interleaved in one process.

    python benchmarks/step_speed.py [--steps 40] [--rounds 3] [--threads 0] [--compile]
    python benchmarks/step_speed.py --steps 2 --rounds 1            # a smoke run

A step is what ``memsinks.train`` does for the default study (configs/default.yaml: preset
tiny, 16 documents a row each): forward with the loss, backward, gradient clipping, AdamW. The
variants: ``base`` (today's step: AdamW's foreach kernels, the model's default of building a
KV cache in the forward), ``fused`` (AdamW's fused CPU kernel), ``no-cache`` (use_cache=False
in the training forward), both, and with ``--compile`` ``torch.compile`` of the model (its
compile time printed apart). Each round runs every variant on the same batches from the same
initial weights, in rotating order, so load on the machine hits them alike; the figure is the
median over rounds of each variant's mean step time, and the ratio to ``base``. After the
timing each variant's final loss is checked against ``base`` (the same steps, so equal up to
float rounding).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from memsinks.config import load, mixture_of
from memsinks.data.packing import collate
from memsinks.methods import METHODS
from memsinks.model import build_model
from memsinks.study.run import model_config

ROOT = Path(__file__).resolve().parent.parent


def run(variant: dict, batches: list, config, vocab: int, warmup: int) -> tuple[float, float]:
    """Mean seconds per step after ``warmup`` steps, and the last step's loss."""
    model = build_model(model_config(config, METHODS["standard"]), vocab, seed=0)
    options = {"fused": True} if variant.get("fused") else {"foreach": True}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), **options)
    engine = torch.compile(model) if variant.get("compile") else model
    extra = {"use_cache": False} if variant.get("no_cache") else {}
    model.train()
    started = None
    for i, batch in enumerate(batches):
        if i == warmup:
            started = time.perf_counter()
        logits = engine(input_ids=batch.input_ids, **extra).logits
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].flatten(0, 1), batch.labels[:, 1:].flatten(), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return (time.perf_counter() - started) / (len(batches) - warmup), float(loss.detach())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="measured steps per variant")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--compile", action="store_true", help="add torch.compile variants")
    parser.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = load(args.config)
    mixture = mixture_of(config)
    batches = []
    for step in range(args.warmup + args.steps):
        rows = mixture.batch(step)
        batches.append(collate([t for _, t in rows], [0] * len(rows), torch.device("cpu"),
                               mixture.specials))
    variants = {"base": {}, "fused": {"fused": True}, "no-cache": {"no_cache": True},
                "fused+no-cache": {"fused": True, "no_cache": True}}
    if args.compile:
        variants["compiled"] = {"compile": True}
        variants["compiled+fused+no-cache"] = {"compile": True, "fused": True, "no_cache": True}
    print(f"preset {config.model.preset}, batch {config.train.batch_size}, "
          f"{torch.get_num_threads()} threads, {args.steps} steps x {args.rounds} rounds")
    times = {name: [] for name in variants}
    losses = {}
    names = list(variants)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            began = time.perf_counter()
            seconds, losses[name] = run(variants[name], batches, config, mixture.vocab_size,
                                        args.warmup)
            times[name].append(seconds)
            if variants[name].get("compile") and r == 0:
                print(f"  {name}: first run {time.perf_counter() - began:.1f} s "
                      "(includes compiling)")
    base = statistics.median(times["base"])
    for name in variants:
        median = statistics.median(times[name])
        drift = abs(losses[name] - losses["base"])
        print(f"  {name:24s} {1000 * median:7.1f} ms/step  {base / median:5.2f}x base  "
              f"final loss {losses[name]:.5f} (|diff| {drift:.1e})")


if __name__ == "__main__":
    main()
