"""General documents of a text corpus read in a study's order, through the token store.

    python benchmarks/text_access.py [--docs 20000] [--stream 8000] [--old] [--budget 20]

Writes a jsonl corpus of mixed-length documents into a temporary directory, builds a
TextCorpus on it and reads the general documents as a study does: the first method's stream
(indices 0, 1, ... in order), the next method's stream (from 0 again), then random indices.
Prints documents/s of each. ``--old`` also times the TextCorpus from before the token store
(``git show 7d27350:src/memsinks/sources.py``, which re-read its source), each pass stopped after
``--budget`` seconds, checks that both give the same documents, and prints the speed-up.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np

from memsinks.data.sources import read_documents, train_bpe
from memsinks.data.text import TextCorpus

WORDS = ("the cat dog sat ran on a mat under big small red tree house saw jumped quickly and "
         "then happy sad bird flew away over river while old new green blue near far").split()
SETTINGS = dict(n_repeated=32, n_validation=256, max_tokens=510, min_tokens=16)


def write_corpus(path: Path, count: int, seed: int) -> str:
    """``count`` jsonl documents of 5 to 1,000 words (most short, a few past max_tokens)."""
    rng = np.random.default_rng(seed)
    lengths = rng.choice([5, 30, 80, 200, 1000], size=count, p=[0.1, 0.3, 0.3, 0.2, 0.1])
    words = np.array(WORDS)
    with open(path, "w") as f:
        for i, n in enumerate(lengths):
            text = " ".join(words[rng.integers(0, len(words), n)]) + "."
            f.write(json.dumps({"text": text, "id": i}) + "\n")
    return str(path)


BEFORE_STORE = "7d27350"  # the last commit whose TextCorpus read its source without a store


def old_text_corpus() -> type:
    """TextCorpus from before the token store, from git."""
    root = Path(__file__).resolve().parent.parent
    code = subprocess.run(["git", "show", f"{BEFORE_STORE}:src/memsinks/sources.py"], cwd=root,
                          check=True, capture_output=True, text=True).stdout
    code = code.replace("from .sinks import", "from memsinks.sinks import")
    module = types.ModuleType("memsinks_old_sources")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(code, f"{BEFORE_STORE}:src/memsinks/sources.py", "exec"), module.__dict__)
    return module.TextCorpus


def timed(read: Callable[[int], np.ndarray], indices: list[int],
          budget: float) -> tuple[float, list[np.ndarray]]:
    """Documents/s reading ``indices`` in order, stopping after ``budget`` seconds."""
    got = []
    start = time.perf_counter()
    for index in indices:
        got.append(read(index))
        if time.perf_counter() - start > budget:
            break
    return len(got) / (time.perf_counter() - start), got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20000, help="documents in the corpus")
    parser.add_argument("--stream", type=int, default=8000, help="general documents per stream")
    parser.add_argument("--random", type=int, default=2000, help="random reads")
    parser.add_argument("--old", action="store_true",
                        help="also time the code from before the store")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per old pass")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        general = write_corpus(Path(tmp) / "web.jsonl", args.docs, seed=0)
        stories = write_corpus(Path(tmp) / "stories.jsonl", 500, seed=1)
        tokenizer = train_bpe(read_documents(general, limit=2000), vocab_size=2048)
        rng = np.random.default_rng(0)
        passes = {"first stream": list(range(args.stream)),
                  "second stream": list(range(args.stream)),
                  "random": rng.integers(0, args.stream, args.random).tolist()}

        corpus = TextCorpus(general, stories, tokenizer, cache_dir=Path(tmp) / "cache",
                            **SETTINGS)
        start = time.perf_counter()
        corpus.check_capacity(args.stream)
        build = time.perf_counter() - start
        store = corpus._general_store
        print(f"corpus: {args.docs} documents; token store: {len(store)} documents, "
              f"{store.n_tokens} tokens, built in {build:.1f} s (R, H, V and the stream's "
              f"{args.stream} general documents)")
        new = {name: timed(corpus.general, indices, float("inf"))
               for name, indices in passes.items()}
        for name, (rate, _) in new.items():
            print(f"  store  {name:>14}: {rate:12,.0f} documents/s")
        if not args.old:
            return
        old = old_text_corpus()(general, stories, tokenizer, **SETTINGS)
        for name, indices in passes.items():
            rate, docs = timed(old.general, indices, args.budget)
            same = all(np.array_equal(a, b) for a, b in zip(docs, new[name][1], strict=False))
            print(f"  old    {name:>14}: {rate:12,.0f} documents/s over {len(docs)} documents "
                  f"(same documents: {same}); store is {new[name][0] / rate:,.0f}x faster")


if __name__ == "__main__":
    main()
