"""bf16 autocast against fp32 for a training step, per preset, interleaved in one process.

    python benchmarks/precision.py [--presets tiny small smollm-135m] [--steps 4]

Prints seconds per step in each precision and their ratio (bf16 / fp32; below 1 is faster).
On a CPU, bf16 autocast only pays where the matrices are large enough for AMX to win, so it
first prints whether the CPU reports AMX (``amx_*`` flags in /proc/cpuinfo) and a plain square
matmul's GFLOP/s in each precision (``--matmul 512 2048``).
"""

from __future__ import annotations

import argparse
import time

import torch

from memsinks.device import autocast
from memsinks.model import ModelConfig, build_model, count_non_embedding


def step_seconds(model, optimizer, batch: torch.Tensor, precision: str) -> float:
    started = time.perf_counter()
    with autocast(batch.device, precision):
        loss = model(input_ids=batch, labels=batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - started


def cpu_amx_flags() -> list[str]:
    """The CPU's AMX feature flags (Linux), empty when it reports none or it cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            words = set(f.read().split())
    except OSError:
        return []
    return sorted(w for w in words if w.startswith("amx"))


def matmul_gflops(n: int, dtype: torch.dtype, repeats: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - started) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small", "medium"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=96)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per precision")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--matmul", type=int, nargs="*", default=[512, 2048],
                        help="square matmul sizes to time in fp32 and bf16 first (none: skip)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.matmul:
        flags = cpu_amx_flags()
        print(f"CPU AMX flags: {' '.join(flags) if flags else 'none'}; "
              f"{torch.get_num_threads()} threads")
        for n in args.matmul:
            fp32, bf16 = (matmul_gflops(n, dtype) for dtype in (torch.float32, torch.bfloat16))
            print(f"matmul {n} x {n}: fp32 {fp32:,.0f} GFLOP/s, bf16 {bf16:,.0f} GFLOP/s")
    print(f"{'preset':<12} {'non-emb params':>14} {'fp32 s/step':>12} {'bf16 s/step':>12} "
          f"{'bf16/fp32':>9}")
    for preset in args.presets:
        model = build_model(ModelConfig(preset=preset), 2048, seed=0)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        batch = torch.randint(4, 2048, (args.batch_size, args.seq_len))
        times: dict[str, list[float]] = {"fp32": [], "bf16": []}
        for _ in range(args.warmup):
            for precision in times:
                step_seconds(model, optimizer, batch, precision)
        for _ in range(args.steps):  # interleaved, so drifting machine load hits both alike
            for precision in times:
                times[precision].append(step_seconds(model, optimizer, batch, precision))
        fp32, bf16 = (sorted(times[p])[len(times[p]) // 2] for p in ("fp32", "bf16"))
        print(f"{preset:<12} {count_non_embedding(model):>14,} {fp32:>12.3f} {bf16:>12.3f} "
              f"{bf16 / fp32:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
