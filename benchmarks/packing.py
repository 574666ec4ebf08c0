"""Packed rows against one document per row: useful-token share and training speed; and the
two routes packed rows can take to attention.

    python benchmarks/packing.py [--steps 20] [--synthetic-steps 3] [--warmup 2] [--threads 1]
    python benchmarks/packing.py --steps 1 --synthetic-steps 1 --warmup 0   # a smoke run

Two corpora, the same documents per step both ways, steps interleaved in one process (so
other work on the machine slows both alike): (a) the built-in corpus, the stream of
configs/default.yaml (batch 16, preset tiny, context 256); (b) synthetic token arrays with
log-normal lengths (median 300, sigma 1, capped at 4 x the context). A step is what training
does: forward, backward and an AdamW update, no sinks. Prints, for each layout, the share of
processed tokens that are real (documents with BOS and EOS; the rest is padding) and the real
tokens per second, and the packed / one-per-row ratio of the latter. Packed rows are timed
both ways to attention (``train.attention``): with the dense (rows, 1, L, L) boolean mask (the
CPU default, ``sdpa``) and with positions only (the route FlexAttention and flash attention
take on a GPU; under SDPA transformers rebuilds the dense mask from the positions, so on CPU
this measures the cost of that rebuild, not the GPU kernels). The dense mask's size per step
is printed. One thread by default: on cores shared with other jobs, more threads than free
cores make every step erratic. ``--preset smollm-135m --context 512`` times the 135M shape.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from memsinks.config import load, mixture_of
from memsinks.data.stream import BOS, EOS, PAD
from memsinks.model import ModelConfig, build_model
from memsinks.train import Recipe, TrainConfig, make_optimizer, rows_nll, step_batch

ROOT = Path(__file__).resolve().parent.parent
# name -> (packed?, route to attention)
LAYOUTS = {"one-per-row": (False, "mask"), "packed": (True, "mask"),
           "packed, positions": (True, "positions")}


def compare(batches: list[list[np.ndarray]], model_config: ModelConfig, vocab: int,
            specials: tuple[int, int, int], warmup: int) -> dict[str, dict[str, float]]:
    """Interleaved training steps on the same documents, one model per layout."""
    context = model_config.resolved()["max_seq_len"]
    models = {name: build_model(model_config, vocab, seed=0) for name in LAYOUTS}
    mask_bytes: list[int] = []
    optimizers = {name: make_optimizer(m, TrainConfig()) for name, m in models.items()}
    times: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    real = {name: 0 for name in LAYOUTS}
    processed = {name: 0 for name in LAYOUTS}

    def step(name: str, tokens: list[np.ndarray]) -> tuple[float, int, int]:
        start = time.perf_counter()
        packed, route = LAYOUTS[name]
        batch, labels, _ = step_batch(tokens, [0] * len(tokens), torch.device("cpu"), specials,
                                      Recipe(), row_len=context if packed else 0)
        if packed and route == "mask":
            mask_bytes.append(batch.attention_mask.numel() * batch.attention_mask.element_size())
        total = int((labels[:, 1:] != -100).sum())
        (rows_nll(models[name], batch, labels, torch.arange(batch.rows), route=route)
         / total).backward()
        optimizers[name].step()
        optimizers[name].zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - start
        return elapsed, int((batch.doc_index >= 0).sum()), batch.input_ids.numel()

    for i, tokens in enumerate(batches):
        order = list(LAYOUTS) if i % 2 == 0 else list(LAYOUTS)[::-1]
        for name in order:
            elapsed, n_real, n_processed = step(name, tokens)
            if i >= warmup:
                times[name].append(elapsed)
                real[name] += n_real
                processed[name] += n_processed
    out = {}
    for name in LAYOUTS:
        seconds = statistics.median(times[name])
        per_step = real[name] / len(times[name])
        out[name] = {"share": real[name] / processed[name], "tokens_per_s": per_step / seconds,
                     "ms_per_step": 1000 * seconds}
    out["packed"]["mask_mib"] = statistics.mean(mask_bytes) / 2**20
    return out


def report(title: str, result: dict[str, dict[str, float]]) -> None:
    print(title)
    for name in LAYOUTS:
        r = result[name]
        print(f"  {name:17s} useful-token share {r['share']:.3f}  {r['ms_per_step']:7.1f} ms/step"
              f"  {r['tokens_per_s']:9,.0f} useful tokens/s")
    ratio = result["packed"]["tokens_per_s"] / result["one-per-row"]["tokens_per_s"]
    print(f"  packed / one-per-row useful tokens/s: {ratio:.2f}")
    routes = result["packed, positions"]["tokens_per_s"] / result["packed"]["tokens_per_s"]
    print(f"  packed: positions / dense mask useful tokens/s: {routes:.2f}; the dense mask "
          f"holds {result['packed']['mask_mib']:.2f} MiB a step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="measured steps, built-in corpus")
    parser.add_argument("--synthetic-steps", type=int, default=3,
                        help="measured steps, synthetic corpus")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured steps before each")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0 = default)")
    parser.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    parser.add_argument("--preset", default=None, help="model shape (default: the config's)")
    parser.add_argument("--context", type=int, default=0, help="model context (0: the preset's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    overrides = [f"train.batch_size={args.batch_size}"]
    overrides += [f"model.preset={args.preset}"] if args.preset else []
    overrides += [f"model.max_seq_len={args.context}"] if args.context else []
    config = load(args.config, overrides)
    mixture = mixture_of(config)
    total = args.warmup + args.steps
    batches = [[t for _, t in mixture.batch(step)] for step in range(total)]
    model_config = config.model
    context = model_config.resolved()["max_seq_len"]
    print(f"preset {model_config.preset}, context {context}, batch {args.batch_size} documents, "
          f"{torch.get_num_threads()} threads; median step of each layout, interleaved")
    report(f"(a) built-in corpus ({args.config}), {args.steps} steps",
           compare(batches, model_config, mixture.vocab_size, mixture.specials, args.warmup))

    rng = np.random.default_rng(0)
    vocab = 1500
    total = args.warmup + args.synthetic_steps
    lengths = np.minimum(np.rint(rng.lognormal(np.log(300), 1.0, (total, args.batch_size))),
                         4 * context).astype(int).clip(min=1)
    synthetic = [[rng.integers(4, vocab, n) for n in row] for row in lengths]
    report(f"(b) synthetic log-normal lengths (median 300, sigma 1, cap {4 * context}; "
           f"mean {lengths.mean():.0f}), {args.synthetic_steps} steps",
           compare(synthetic, model_config, vocab, (PAD, BOS, EOS), args.warmup))


if __name__ == "__main__":
    main()
