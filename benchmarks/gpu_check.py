"""GPU readiness: the SmolLM-135M shape in bf16, compiled and packed, with and without sinks.

    make gpu-check            # python benchmarks/gpu_check.py
    python benchmarks/gpu_check.py --steps 20 --rows 16 --row-len 2048 --no-compile

Trains each arm (no sinks; sinks in train mode) for ``--steps`` steps on packed rows of
random documents with log-normal lengths, interleaved, and prints tokens/s, model FLOPs
utilisation (6 x parameters x tokens/s over the GPU's bf16 peak, ``--peak-tflops`` or a known
device's), peak GPU memory and the sink overhead. Stops with one sentence when there is no GPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch

from memsinks.data.packing import pack
from memsinks.device import autocast
from memsinks.model import ModelConfig, build_model, count_parameters
from memsinks.sinks import SinkConfig, Sinks
from memsinks.train import TrainConfig, make_optimizer

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

    arms = {}
    for arm in ("without", "with"):
        model = build_model(ModelConfig(preset=args.preset, max_seq_len=args.row_len),
                            args.vocab, seed=0).to(device)
        sinks = Sinks(model, SinkConfig()) if arm == "with" else None
        engine = model if args.no_compile else torch.compile(model)
        arms[arm] = (model, engine, sinks, make_optimizer(model, TrainConfig()))
    params = count_parameters(arms["without"][0])
    times: dict[str, list[float]] = {arm: [] for arm in arms}
    real: dict[str, list[int]] = {arm: [] for arm in arms}
    torch.cuda.reset_peak_memory_stats(device)
    for step in range(args.warmup + args.steps):
        tokens, ids = documents()
        batch = pack(tokens, ids, device, (0, 1, 2), row_len=args.row_len)
        for arm in (("without", "with") if step % 2 == 0 else ("with", "without")):
            model, engine, sinks, optimizer = arms[arm]
            torch.cuda.synchronize()
            started = time.perf_counter()
            if sinks is not None:
                sinks.set_mode("train", ids=batch.doc_ids)
            with autocast(device, "bf16"):
                logits = engine(**batch.model_inputs()).logits
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].float().flatten(0, 1), batch.labels[:, 1:].flatten(),
                ignore_index=-100)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            if step >= args.warmup:
                times[arm].append(time.perf_counter() - started)
                real[arm].append(int((batch.labels != -100).sum()))
    print(f"gpu-check on {name}: preset {args.preset} ({params:,} parameters), bf16, "
          f"{'eager' if args.no_compile else 'compiled'}, packed {args.rows} x {args.row_len}, "
          f"{args.steps} interleaved steps")
    speed = {}
    for arm in arms:
        seconds = statistics.median(times[arm])
        speed[arm] = statistics.median(real[arm]) / seconds
        mfu = f"{100 * 6 * params * speed[arm] / (peak * 1e12):.1f}%" if peak else "n/a"
        print(f"{arm:>7} sinks: {1000 * seconds:8.1f} ms/step, {speed[arm]:,.0f} real tokens/s, "
              f"MFU {mfu}")
    print(f"sink overhead: {speed['without'] / speed['with']:.3f}x step time; peak GPU memory "
          f"(both models): {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
