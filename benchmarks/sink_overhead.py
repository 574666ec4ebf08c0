"""Training step time of the same model with and without sinks, interleaved in one process.

Three arms: no sinks; memsinks' gate (masks built once per batch from the unique IDs, one
multiply per layer); and the reference code's mask computation as described in
shared/reference/method.md, which every layer's forward rebuilds from the per-token IDs as an
int64 (batch, seq, sinks) hash tensor: v_j = (id * 2^16 * a^j) mod M, a = 1588635695,
M = 4294967291, neuron j on iff v_j / M < p_mem.

    python benchmarks/sink_overhead.py [--preset tiny] [--steps 30]
    python benchmarks/sink_overhead.py --preset smollm-135m --batch-size 4 --seq-len 128 \
        --steps 4 --warmup 1
    python benchmarks/sink_overhead.py --docs-per-row 4   # packed rows, as training packs

Prints the median step time of each and their ratio (with / without), and memory: the weights
and optimizer state of one model, and the process's peak memory (both models live in it; on a
GPU, peak allocated GPU memory). Each row is a different document, so every step builds
per-token masks for batch_size distinct IDs, as in training. ``--docs-per-row N`` packs N
documents into each row instead (memsinks' packing: block-diagonal attention, positions
restarting, one ID per document), so the masks change within rows.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time

import torch

from memsinks.data.packing import PackedBatch, collate, pack
from memsinks.families import decoder_layers
from memsinks.model import ModelConfig, build_model
from memsinks.sinks import SinkConfig, Sinks
from memsinks.train import TrainConfig, make_optimizer

REF_A, REF_M = 1588635695, 4294967291


class ReferenceGate:
    """The reference code's per-layer mask: recomputed from per-token IDs in every forward."""

    def __init__(self, model: torch.nn.Module, config: SinkConfig):
        mlps = [layer.mlp for layer in decoder_layers(model)]
        self.width = mlps[0].down_proj.in_features
        self.n_shared = int(self.width * config.p_shared)
        self.p_active = config.p_active
        self.ids: torch.Tensor | None = None
        for mlp in mlps:
            mlp.down_proj.register_forward_pre_hook(self._gate)

    def _gate(self, module: torch.nn.Module, args: tuple) -> tuple:
        hidden = args[0]
        j = torch.arange(self.width - self.n_shared, device=hidden.device)
        powers = torch.pow(torch.tensor(REF_A, device=hidden.device), j)  # int64, wraps
        values = (self.ids[..., None] * 2**16 * powers) % REF_M  # (batch, seq, sinks) int64
        sink_on = (values.double() / REF_M) < self.p_active
        shared_on = torch.ones(*self.ids.shape, self.n_shared, device=hidden.device)
        mask = torch.cat([shared_on, sink_on.to(hidden.dtype)], dim=-1)
        return (hidden * mask,) + tuple(args[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--docs-per-row", type=int, default=1,
                        help="documents packed into each row (1: one document per row)")
    parser.add_argument("--vocab", type=int, default=None,
                        help="vocabulary size (default: 1,500 for tiny/small, 49,152 for SmolLM)")
    args = parser.parse_args()
    if args.vocab is None:
        args.vocab = 49152 if args.preset.startswith("smollm") else 1500

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = ModelConfig(preset=args.preset)
    arms = ("without", "with", "reference")
    models = {name: build_model(config, args.vocab, seed=0).to(device) for name in arms}
    sinks = Sinks(models["with"], SinkConfig())
    reference = ReferenceGate(models["reference"], SinkConfig())
    optimizers = {name: make_optimizer(m, TrainConfig()) for name, m in models.items()}
    generator = torch.Generator().manual_seed(0)
    times: dict[str, list[float]] = {name: [] for name in arms}

    def step(name: str, batch: PackedBatch) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        if name == "with":
            sinks.set_mode("train", ids=batch.doc_ids)
        elif name == "reference":
            reference.ids = batch.doc_ids
        loss = models[name](**batch.model_inputs(rows), labels=batch.labels).loss
        loss.backward()
        optimizers[name].step()
        optimizers[name].zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    per_row = max(1, args.docs_per_row)
    length = args.seq_len // per_row - 2  # each document with its BOS and EOS fills its share
    if length < 1:
        raise SystemExit(f"--seq-len {args.seq_len} is too short for {per_row} documents a row")
    rows = torch.arange(args.batch_size, device=device)
    for i in range(args.warmup + args.steps):
        docs = [torch.randint(4, args.vocab, (length,), generator=generator).numpy()
                for _ in range(args.batch_size * per_row)]
        ids = torch.randint(1, 2**62, (len(docs),), generator=generator).tolist()
        batch = (pack(docs, ids, device, row_len=args.seq_len) if per_row > 1
                 else PackedBatch.unpacked(collate(docs, ids, device)))
        for name in arms[i % 3:] + arms[:i % 3]:  # rotated, so drifting load hits all alike
            elapsed = step(name, batch)
            if i >= args.warmup:
                times[name].append(elapsed)
    without = statistics.median(times["without"])
    with_sinks = statistics.median(times["with"])
    with_reference = statistics.median(times["reference"])
    tokens = args.batch_size * args.seq_len
    print(f"preset {args.preset} on {device}, batch {args.batch_size} x {args.seq_len} tokens "
          f"({per_row} document(s) a row), {args.steps} interleaved steps each")
    print(f"without sinks: {1000 * without:.1f} ms/step ({tokens / without:,.0f} tokens/s)")
    print(f"with sinks:    {1000 * with_sinks:.1f} ms/step ({tokens / with_sinks:,.0f} tokens/s)")
    print(f"reference masks: {1000 * with_reference:.1f} ms/step "
          f"({tokens / with_reference:,.0f} tokens/s)")
    print(f"ratio with/without: {with_sinks / without:.3f}; reference/without: "
          f"{with_reference / without:.3f}; reference/with: {with_reference / with_sinks:.3f}")
    model = models["with"]
    state = sum(p.numel() * p.element_size() for p in model.parameters())
    state += sum(t.numel() * t.element_size() for s in optimizers["with"].state.values()
                 for t in s.values() if torch.is_tensor(t))
    print(f"parameters: {sum(p.numel() for p in model.parameters()):,}; weights + AdamW state "
          f"of one model: {state / 2**20:,.0f} MiB")
    if device.type == "cuda":
        print(f"peak GPU memory allocated (all three models): "
              f"{torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mib = peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB
    print(f"peak process memory (all three models): {peak_mib:,.0f} MiB")


if __name__ == "__main__":
    main()
