"""GPU readiness: the SmolLM-135M shape in bf16, compiled and packed, with and without sinks,
through each route packed rows can take to attention.

    make gpu-check            # python benchmarks/gpu_check.py
    python benchmarks/gpu_check.py --steps 20 --rows 16 --row-len 2048 --no-compile

Trains each arm (attention route x no sinks / sinks in train mode) for ``--steps`` steps on
packed rows of random documents with log-normal lengths, interleaved, and prints tokens/s,
model FLOPs utilisation (6 x parameters x tokens/s over the GPU's bf16 peak, ``--peak-tflops``
or a known device's), each arm's peak GPU memory, the sink overhead per route and each route's
speed against the dense mask. Routes (``train.attention``): ``sdpa`` with the dense (rows, 1,
L, L) mask; ``flex_attention`` with a block mask built from the positions (no mask tensor);
``flash_attention_2`` with the rows laid end to end (varlen kernel; only when the flash-attn
package is installed). ``--attention sdpa`` times one route. Stops with one sentence when there
is no GPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time

import numpy as np
import torch

from memsinks.data.packing import pack
from memsinks.model import ModelConfig, build_model, count_parameters
from memsinks.sinks import SinkConfig, Sinks
from memsinks.train import ROUTES, TrainConfig, make_optimizer, rows_nll, use_attention

# dense bf16 peak, TFLOP/s, by a substring of torch.cuda.get_device_name()
PEAKS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0,
         "L4": 121.0, "4090": 165.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="smollm-135m")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rows", type=int, default=16, help="packed rows per step")
    parser.add_argument("--row-len", type=int, default=2048)
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--attention", nargs="+", default=list(ROUTES), choices=list(ROUTES),
                        help="attention routes to compare (default: all that can run here)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA GPU is visible to torch (torch.cuda.is_available() is False); "
              "run it on a GPU machine with a CUDA build of torch", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    peak = args.peak_tflops or next((v for k, v in PEAKS.items() if k in name), None)
    rng = np.random.default_rng(0)

    def documents() -> tuple[list[np.ndarray], list[int]]:
        tokens, budget = [], args.rows * args.row_len
        while budget > 0:  # web-like lengths, about as many tokens as the rows hold
            n = int(min(args.row_len - 2, max(8, rng.lognormal(np.log(400), 1.0))))
            tokens.append(rng.integers(4, args.vocab, n))
            budget -= n + 2
        return tokens, rng.integers(1, 2**62, len(tokens)).tolist()

    routes = [r for r in args.attention
              if r != "flash_attention_2" or importlib.util.find_spec("flash_attn")]
    if len(routes) < len(args.attention):
        print("gpu-check: flash_attention_2 left out (the flash-attn package is not installed)")
    arms = {}
    for route in routes:
        for with_sinks in (False, True):
            model = build_model(ModelConfig(preset=args.preset, max_seq_len=args.row_len),
                                args.vocab, seed=0).to(device)
            use_attention(model, route)
            sinks = Sinks(model, SinkConfig()) if with_sinks else None
            engine = model if args.no_compile else torch.compile(model)
            arms[(route, with_sinks)] = (engine, sinks, make_optimizer(model, TrainConfig()))
    params = count_parameters(build_model(ModelConfig(preset=args.preset), args.vocab, seed=0))
    times: dict[tuple, list[float]] = {arm: [] for arm in arms}
    real: dict[tuple, list[int]] = {arm: [] for arm in arms}
    memory: dict[tuple, int] = {arm: 0 for arm in arms}
    for step in range(args.warmup + args.steps):
        tokens, ids = documents()
        batch = pack(tokens, ids, device, (0, 1, 2), row_len=args.row_len)
        rows = torch.arange(batch.rows, device=device)
        total = int((batch.labels[:, 1:] != -100).sum())
        for arm in (list(arms) if step % 2 == 0 else list(arms)[::-1]):
            engine, sinks, optimizer = arms[arm]
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
            started = time.perf_counter()
            loss = rows_nll(engine, batch, batch.labels, rows, sinks, "bf16",
                            route=ROUTES[arm[0]]) / total
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            if step >= args.warmup:
                times[arm].append(time.perf_counter() - started)
                real[arm].append(int((batch.labels != -100).sum()))
                memory[arm] = max(memory[arm], torch.cuda.max_memory_allocated(device))
    print(f"gpu-check on {name}: preset {args.preset} ({params:,} parameters), bf16, "
          f"{'eager' if args.no_compile else 'compiled'}, packed {args.rows} x {args.row_len}, "
          f"{args.steps} interleaved steps; peak memory includes every arm's model")
    speed = {}
    for arm in arms:
        seconds = statistics.median(times[arm])
        speed[arm] = statistics.median(real[arm]) / seconds
        mfu = f"{100 * 6 * params * speed[arm] / (peak * 1e12):.1f}%" if peak else "n/a"
        print(f"{arm[0]:>17} {'with' if arm[1] else 'without':>7} sinks: "
              f"{1000 * seconds:8.1f} ms/step, {speed[arm]:,.0f} real tokens/s, MFU {mfu}, "
              f"peak {memory[arm] / 2**30:.1f} GiB")
    for route in routes:
        overhead = speed[(route, False)] / speed[(route, True)]
        against = speed[(route, False)] / speed[(routes[0], False)]
        print(f"{route}: sink overhead {overhead:.3f}x step time; without sinks "
              f"{against:.2f}x the tokens/s of {routes[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
