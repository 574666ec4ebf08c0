"""Training step time of the same model with and without sinks, interleaved in one process.

    python benchmarks/sink_overhead.py [--preset tiny] [--steps 30]
    python benchmarks/sink_overhead.py --preset smollm-135m --batch-size 4 --seq-len 128 \
        --steps 4 --warmup 1

Prints the median step time of each and their ratio (with / without), and memory: the weights
and optimizer state of one model, and the process's peak memory (both models live in it; on a
GPU, peak allocated GPU memory). Each row is a different document, so every step builds
per-token masks for batch_size distinct IDs, as in training.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time

import torch

from memsinks.config import TrainConfig
from memsinks.model import ModelConfig, build_model
from memsinks.sinks import SinkConfig, Sinks
from memsinks.train import make_optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--vocab", type=int, default=None,
                        help="vocabulary size (default: 1,500 for tiny/small, 49,152 for SmolLM)")
    args = parser.parse_args()
    if args.vocab is None:
        args.vocab = 49152 if args.preset.startswith("smollm") else 1500

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = ModelConfig(preset=args.preset)
    models = {name: build_model(config, args.vocab, seed=0).to(device)
              for name in ("without", "with")}
    sinks = Sinks(models["with"], SinkConfig())
    optimizers = {name: make_optimizer(m, TrainConfig()) for name, m in models.items()}
    generator = torch.Generator().manual_seed(0)
    times: dict[str, list[float]] = {"without": [], "with": []}

    def step(name: str, tokens: torch.Tensor, ids: torch.Tensor) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        if name == "with":
            sinks.set_mode("train", ids=ids)
        loss = models[name](input_ids=tokens, labels=tokens).loss
        loss.backward()
        optimizers[name].step()
        optimizers[name].zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for i in range(args.warmup + args.steps):
        tokens = torch.randint(4, args.vocab, (args.batch_size, args.seq_len),
                               generator=generator).to(device)
        ids = torch.randint(1, 2**62, (args.batch_size, 1), generator=generator)
        ids = ids.expand(-1, args.seq_len).to(device)
        order = ("without", "with") if i % 2 == 0 else ("with", "without")
        for name in order:
            elapsed = step(name, tokens, ids)
            if i >= args.warmup:
                times[name].append(elapsed)
    without = statistics.median(times["without"])
    with_sinks = statistics.median(times["with"])
    tokens = args.batch_size * args.seq_len
    print(f"preset {args.preset} on {device}, batch {args.batch_size} x {args.seq_len} tokens, "
          f"{args.steps} interleaved steps each")
    print(f"without sinks: {1000 * without:.1f} ms/step ({tokens / without:,.0f} tokens/s)")
    print(f"with sinks:    {1000 * with_sinks:.1f} ms/step ({tokens / with_sinks:,.0f} tokens/s)")
    print(f"ratio with/without: {with_sinks / without:.3f}")
    model = models["with"]
    state = sum(p.numel() * p.element_size() for p in model.parameters())
    state += sum(t.numel() * t.element_size() for s in optimizers["with"].state.values()
                 for t in s.values() if torch.is_tensor(t))
    print(f"parameters: {sum(p.numel() for p in model.parameters()):,}; weights + AdamW state "
          f"of one model: {state / 2**20:,.0f} MiB")
    if device.type == "cuda":
        print(f"peak GPU memory allocated (both models): "
              f"{torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mib = peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB
    print(f"peak process memory (both models): {peak_mib:,.0f} MiB")


if __name__ == "__main__":
    main()
