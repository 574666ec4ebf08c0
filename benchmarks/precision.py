"""bf16 autocast against fp32 for a training step, per preset, interleaved in one process.

    python benchmarks/precision.py [--presets tiny small smollm-135m] [--steps 4]

Prints seconds per step in each precision and their ratio (bf16 / fp32; below 1 is faster).
On a CPU, bf16 autocast only pays where the matrices are large enough for AMX to win, so it
first prints whether the CPU reports AMX (``amx_*`` flags in /proc/cpuinfo) and a plain square
matmul's GFLOP/s in each precision (``--matmul 512 2048``).

It probes before it spends: a 256 x 256 matmul is timed in both precisions first, and where bf16
reaches less than half of fp32's GFLOP/s there (a CPU without native bf16 arithmetic emulates
it, 10-100x slower) no bf16 step can win, so the bf16 arms are skipped with one line saying so
(``--force-bf16`` runs them anyway).
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


PROBE = 256


def bf16_can_win(n: int = PROBE) -> tuple[bool, float, float]:
    """Whether bf16 reaches half of fp32's GFLOP/s on a small square matmul, and both rates."""
    fp32, bf16 = (matmul_gflops(n, dtype, repeats=5) for dtype in (torch.float32,
                                                                    torch.bfloat16))
    return bf16 >= fp32 / 2, fp32, bf16


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small", "medium"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=96)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per precision")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--matmul", type=int, nargs="*", default=[512, 2048],
                        help="square matmul sizes to time in fp32 and bf16 first (none: skip)")
    parser.add_argument("--force-bf16", action="store_true",
                        help="time the bf16 arms even where the probe says bf16 cannot win")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    flags = cpu_amx_flags()
    print(f"CPU AMX flags: {' '.join(flags) if flags else 'none'}; "
          f"{torch.get_num_threads()} threads")
    wins, fp32, bf16 = bf16_can_win()
    with_bf16 = wins or args.force_bf16
    if not wins:
        print(f"probe: matmul {PROBE} x {PROBE} runs at {bf16:,.1f} GFLOP/s in bf16 against "
              f"{fp32:,.1f} in fp32, so bf16 cannot win on this CPU; "
              + ("timing it anyway (--force-bf16)" if args.force_bf16 else
                 "its arms are skipped (--force-bf16 runs them)"), flush=True)
    for n in args.matmul:
        rates = [f"fp32 {matmul_gflops(n, torch.float32):,.0f} GFLOP/s"]
        if with_bf16:
            rates.append(f"bf16 {matmul_gflops(n, torch.bfloat16):,.0f} GFLOP/s")
        print(f"matmul {n} x {n}: {', '.join(rates)}")
    print(f"{'preset':<12} {'non-emb params':>14} {'fp32 s/step':>12} {'bf16 s/step':>12} "
          f"{'bf16/fp32':>9}")
    for preset in args.presets:
        model = build_model(ModelConfig(preset=preset), 2048, seed=0)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        batch = torch.randint(4, 2048, (args.batch_size, args.seq_len))
        times: dict[str, list[float]] = {"fp32": [], "bf16": []} if with_bf16 else {"fp32": []}
        for _ in range(args.warmup):
            for precision in times:
                step_seconds(model, optimizer, batch, precision)
        for _ in range(args.steps):  # interleaved, so drifting machine load hits both alike
            for precision in times:
                times[precision].append(step_seconds(model, optimizer, batch, precision))
        median = {p: sorted(t)[len(t) // 2] for p, t in times.items()}
        bf16_cells = (f"{median['bf16']:>12.3f} {median['bf16'] / median['fp32']:>9.2f}"
                      if with_bf16 else f"{'skipped':>12} {'—':>9}")
        print(f"{preset:<12} {count_non_embedding(model):>14,} {median['fp32']:>12.3f} "
              f"{bf16_cells}", flush=True)


if __name__ == "__main__":
    main()
