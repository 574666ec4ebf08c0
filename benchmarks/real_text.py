"""The real-text regime's training speed per useful token against the built-in corpus's.

    python scripts/debian_corpus.py          # once: builds data/debian/ from Debian packages
    python benchmarks/real_text.py [--steps 24] [--warmup 2] [--threads 1] [--reads 20000]

Why: issue 20 asks that the regime run on real text at the built-in corpus's speed per useful
token, the token store and packing absorbing what real text costs (tokenizing, mixed lengths).
Whole studies on this shared machine differ by tens of percent from run to run with the load
of other jobs, so the arms here are timed step by step, interleaved in one process (each arm
one model; the order alternates), and compared by their median step.

Arms, each the training stream of its config (2,048 steps of 16 documents, standard training):

- ``built-in``: configs/paper-regime-learnable.yaml, the built-in corpus, one document per row
  (its default), its word vocabulary (1,588 ids).
- ``real``: configs/paper-regime-real.yaml, GCIDE and fortunes through token stores, packed
  rows (the default for text), a BPE of 4,096 ids.
- ``real-matched``: ``real`` with a BPE as large as the built-in vocabulary, so that only the
  data path and the documents differ from ``built-in`` (the output layer's cost grows with
  the vocabulary, whatever the data path).
- ``real-unpacked``: ``real-matched`` with one document per row (``train.packing=false``),
  which shows what packing adds.

A timed step is what ``memsinks.train.train`` times: reading the step's documents
(``Mixture.batch``: the built-in generator, or the token store), laying out the rows, forward,
backward, gradient clipping and the AdamW update. Measured steps are spread evenly over the
stream. Useful tokens are predicted tokens (as ``tokens_per_s`` in a run's metrics.json).
Then the general source's token store is read as a study reads it (in order twice, then at
random), in documents per second.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from memsinks.config import StudyConfig, load, mixture_of
from memsinks.data.packing import model_context
from memsinks.data.stream import Mixture
from memsinks.model import build_model
from memsinks.train import Recipe, make_optimizer, packs, rows_nll, step_batch

ROOT = Path(__file__).resolve().parent.parent
BUILTIN = ROOT / "configs" / "paper-regime-learnable.yaml"
REAL = ROOT / "configs" / "paper-regime-real.yaml"


class Arm:
    """One config's stream, model and optimizer; :meth:`step` trains one step and times it."""

    def __init__(self, name: str, config: StudyConfig):
        self.name, self.config = name, config
        started = time.perf_counter()
        self.mixture: Mixture = mixture_of(config)
        if self.mixture.text is not None:  # as run_study does before the first step
            self.mixture.text.check_capacity(int(self.mixture.stream().max(initial=-1)) + 1)
        self.setup_s = time.perf_counter() - started
        self.model = build_model(config.model, self.mixture.vocab_size, seed=config.train.seed)
        self.model.train()
        self.optimizer = make_optimizer(self.model, config.train)
        text = self.mixture.text is not None
        self.row_len = ((config.train.row_len or model_context(self.model))
                        if packs(config.train, text_corpus=text) else 0)
        self.seconds: list[float] = []
        self.useful: list[int] = []
        self.processed: list[int] = []

    def step(self, step: int, measured: bool) -> None:
        started = time.perf_counter()
        rows = self.mixture.batch(step)
        batch, labels, _ = step_batch([t for _, t in rows], [0] * len(rows),
                                      torch.device("cpu"), self.mixture.specials, Recipe(),
                                      row_len=self.row_len)
        useful = int((labels[:, 1:] != -100).sum())
        loss = rows_nll(self.model, batch, labels, torch.arange(batch.rows)) / useful
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.train.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if measured:
            self.seconds.append(time.perf_counter() - started)
            self.useful.append(useful)
            self.processed.append(batch.input_ids.numel())

    def summary(self) -> dict[str, float]:
        seconds = statistics.median(self.seconds)
        useful = float(np.mean(self.useful))
        return {"ms": 1000 * seconds, "useful": useful, "rate": useful / seconds,
                "share": sum(self.useful) / sum(self.processed),
                "total_rate": sum(self.useful) / sum(self.seconds)}


def store_reads(arm: Arm, reads: int) -> None:
    """Documents/s of the general source's token store, read as a study reads it."""
    corpus = arm.mixture.text
    assert corpus is not None
    count = min(reads, len(corpus._general_positions(reads)))  # extends the store if need be
    store = corpus._general_store
    rng = np.random.default_rng(0)
    passes = {"in order": range(count), "in order again": range(count),
              "random": rng.integers(0, count, count).tolist()}
    print(f"token store of {arm.config.data.general_source}: {len(store):,} documents, "
          f"{store.n_tokens:,} tokens stored")
    for name, indices in passes.items():
        started = time.perf_counter()
        for index in indices:
            corpus.general(int(index))
        rate = count / (time.perf_counter() - started)
        print(f"  {name:>15}: {rate:12,.0f} documents/s over {count:,} general documents")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=24, help="measured steps per arm")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured steps per arm first")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0 = default)")
    parser.add_argument("--reads", type=int, default=20000,
                        help="general documents read from the token store (0 = skip)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not Path("data/debian/meta.json").is_file():
        raise SystemExit("data/debian/ is not built; run python scripts/debian_corpus.py from "
                         "the repository root first")
    builtin = Arm("built-in", load(str(BUILTIN)))
    vocab = builtin.mixture.vocab_size
    arms = [builtin, Arm("real", load(str(REAL))),
            Arm("real-matched", load(str(REAL), [f"data.vocab_size={vocab}"])),
            Arm("real-unpacked", load(str(REAL), [f"data.vocab_size={vocab}",
                                                  "train.packing=false"]))]
    steps = builtin.config.train.steps
    total = args.warmup + args.steps
    schedule = np.linspace(0, steps - 1, total).round().astype(int)
    print(f"preset {builtin.config.model.preset}, {builtin.config.train.batch_size} documents a "
          f"step, {torch.get_num_threads()} thread(s); {args.steps} measured steps of the "
          f"{steps}-step streams after {args.warmup} warm-up steps, interleaved")
    for i, step in enumerate(schedule):
        for arm in arms if i % 2 == 0 else arms[::-1]:
            arm.step(int(step), measured=i >= args.warmup)
    base = builtin.summary()
    print(f"{'arm':<14} {'vocab':>6} {'rows':>6} {'useful/step':>11} {'share':>6} "
          f"{'ms/step':>8} {'useful tok/s':>12} {'vs built-in':>11} {'setup s':>8}")
    for arm in arms:
        s = arm.summary()
        layout = f"{arm.row_len}p" if arm.row_len else "1/doc"
        print(f"{arm.name:<14} {arm.mixture.vocab_size:>6} {layout:>6} {s['useful']:>11.0f} "
              f"{s['share']:>6.3f} {s['ms']:>8.1f} {s['rate']:>12,.0f} "
              f"{s['rate'] / base['rate']:>11.2f} {arm.setup_s:>8.1f}")
    if args.reads:
        store_reads(arms[1], args.reads)


if __name__ == "__main__":
    main()
