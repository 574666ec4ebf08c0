"""Distributed annotation on datatrove's local executor against the one-machine path.

    python benchmarks/annotate_workers.py [--files 16 --per-file 5000] [--keys hash,minhash]
    python benchmarks/annotate_workers.py --smoke     # a few seconds

A corpus of jsonl files (documents of 60-200 words from a Zipf vocabulary, a fifth of them
copies of others across files) is annotated by ``memsinks annotate`` (one process reads and
keys, DuckDB counts) and by ``memsinks annotate --workers N`` (datatrove's
LocalPipelineExecutor, one task per file, N processes, then the same DuckDB count over the
tasks' parts) for each N. Prints documents per second of the whole command (reading, keying,
counting, writing the table; for the workers also starting them) and checks that every table
is byte-identical to the one-machine one. Each configuration runs ``--rounds``
times in turn; the table gives each one's best round.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from memsinks.data.annotate import annotate
from memsinks.data.annotate.shards import merge_shards
from memsinks.integrations.datatrove import LocalPipelineExecutor, annotation_pipeline


def write_corpus(root: Path, files: int, per_file: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(30000)])
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** 1.1
    weights /= weights.sum()
    texts: list[str] = []
    root.mkdir(parents=True)
    for f in range(files):
        with open(root / f"shard-{f:03d}.jsonl", "w") as out:
            for _ in range(per_file):
                if texts and rng.random() < 0.2:
                    text = texts[rng.integers(len(texts))]
                else:
                    text = " ".join(rng.choice(vocab, size=rng.integers(60, 200), p=weights))
                    texts.append(text)
                out.write(json.dumps({"text": text}) + "\n")
    return files * per_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--per-file", type=int, default=5000)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--keys", default="hash,minhash")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="4 files of 300 documents, 1 round")
    args = parser.parse_args()
    if args.smoke:
        args.files, args.per_file, args.rounds = 4, 300, 1
    workers = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        docs = write_corpus(root / "corpus", args.files, args.per_file)
        source = str(root / "corpus")
        print(f"{docs} documents in {args.files} jsonl files; best of {args.rounds} rounds; "
              "documents per second of the whole command")
        print(f"{'key':<8} {'path':<28} {'docs/s':>9} {'vs one machine':>15}  identical")
        for key in args.keys.split(","):
            best: dict[str, float] = {}
            stages: dict[str, tuple[float, float]] = {}
            best_stages: dict[str, tuple[float, float] | None] = {}
            reference: bytes | None = None
            for _ in range(args.rounds):
                paths = [("one machine (DuckDB path)", 0)] + [(f"datatrove, {w} worker(s)", w)
                                                              for w in workers]
                for name, count in paths:
                    out = root / "out"
                    shutil.rmtree(out, ignore_errors=True)
                    start = time.perf_counter()
                    if not count:
                        table = annotate(source, key, out, progress=False)
                    else:  # annotate_local's two stages, timed apart
                        shards = out / ".shards"
                        LocalPipelineExecutor(annotation_pipeline(source, key, shards),
                                              tasks=args.files, logging_dir=str(shards / "logs"),
                                              workers=count).run()
                        keyed = time.perf_counter()
                        table = merge_shards(shards, out, progress=False)
                        stages[name] = (keyed - start, time.perf_counter() - keyed)
                    seconds = time.perf_counter() - start
                    if seconds < best.get(name, float("inf")):
                        best[name], best_stages[name] = seconds, stages.get(name)
                    data = table.read_bytes()
                    reference = data if reference is None else reference
                    if data != reference:
                        raise SystemExit(f"{name}: the table differs from the one-machine one")
            base = docs / best["one machine (DuckDB path)"]
            for name, seconds in best.items():
                split = best_stages[name]
                print(f"{key:<8} {name:<28} {docs / seconds:>9,.0f} {docs / seconds / base:>14.2f}x"
                      "  yes" + (f"  (tasks {split[0]:.1f} s, merge {split[1]:.1f} s)" if split
                                 else f"  ({seconds:.1f} s)"))


if __name__ == "__main__":
    main()
