"""A study on local text files of mixed lengths against the same study on the built-in corpus.

    python benchmarks/text_study.py [--steps 300] [--out runs/text-bench]

Writes a jsonl corpus whose documents hold 1-8 paragraphs (log-normal counts, so lengths are
mixed as in web text) of built-in facts and diary text, and a file of stories as the repeated
source; runs standard, dedup, memsinks and memsinks-repeated on it (token store, packing on)
and on the built-in corpus (one document per row) with the same steps and batch, and prints
each method's training time relative to standard and its useful (predicted) tokens/s.

``--matched`` adds like-for-like arms for the data path alone: standard training on the text
files with a vocabulary as large as the built-in one and the built-in model's context (256),
packed and one document per row, so that only reading through the token store and the
tokenizer's documents differ from the built-in arm (the default text arm has a 4,096-token
vocabulary and rows of 512, which cost more per token whatever the data path).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from memsinks.config import load
from memsinks.data import corpus
from memsinks.study.run import run_study

METHODS = "[standard,dedup,memsinks,memsinks-repeated]"


def write_corpus(root: Path, documents: int, seed: int = 0) -> tuple[str, str]:
    """The general jsonl and the repeated stories file; written once."""
    root.mkdir(parents=True, exist_ok=True)
    general, stories = root / "web.jsonl", root / "stories.txt"
    if not general.is_file():
        rng = np.random.default_rng(seed)
        index = 0
        with open(general.with_suffix(".tmp"), "w") as handle:
            for number in range(documents):
                count = int(min(8, max(1, round(rng.lognormal(0.3, 0.8)))))
                paragraphs = [corpus.render(corpus.generate(("facts", "diary")[(index + j) % 2],
                                                            seed, index + j).tokens)
                              for j in range(count)]
                index += count
                handle.write(json.dumps({"text": "\n\n".join(paragraphs),
                                         "source": f"site{number % 50}"}) + "\n")
        general.with_suffix(".tmp").replace(general)
    if not stories.is_file():
        stories.write_text("".join(corpus.render(corpus.generate("stories", seed + 1, j).tokens)
                                   + "\n" for j in range(400)))
    return str(general), str(stories)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--documents", type=int, default=20000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/text-bench")
    parser.add_argument("--matched", action="store_true",
                        help="add standard on text with the built-in vocabulary size and context, "
                        "packed and unpacked")
    parser.add_argument("--only-matched", action="store_true",
                        help="run the built-in arm and the matched arms only")
    args = parser.parse_args()
    out = Path(args.out)
    general, stories = write_corpus(out / "data", args.documents)
    common = [f"out_dir={out}", f"methods={METHODS}", f"train.steps={args.steps}",
              "data.repetitions=8", f"train.threads={args.threads}", "train.eval_every=0"]
    studies = {
        "text": load("configs/default.yaml", common + [
            "name=text", f"data.general_source={general}?field=text",
            f"data.repeated_source={stories}", "data.vocab_size=4096",
            "data.tokenizer_docs=5000", "model.max_seq_len=512"]),
        "built-in": load("configs/default.yaml", common + ["name=builtin"]),
    }
    if args.matched or args.only_matched:
        if args.only_matched:
            studies.pop("text")
        from memsinks.config import mixture_of

        vocab = mixture_of(studies["built-in"]).vocab_size
        for packed in (True, False):
            studies[f"matched-{'packed' if packed else 'rows'}"] = load(
                "configs/default.yaml", common + [
                    f"name=matched-{packed}", f"data.general_source={general}?field=text",
                    f"data.repeated_source={stories}", f"data.vocab_size={vocab}",
                    "data.tokenizer_docs=5000", "methods=[standard]",
                    f"train.packing={str(packed).lower()}"])
    results = {name: run_study(config, progress=False) for name, config in studies.items()}
    print(f"{args.steps} steps of 16 documents, tiny preset, {args.threads} thread(s)")
    print(f"{'corpus':<9} {'method':<18} {'train s':>8} {'vs standard':>11} {'useful tok/s':>13}")
    for name, result in results.items():
        base = result["methods"]["standard"]["train_seconds"]
        for method, metrics in result["methods"].items():
            print(f"{name:<9} {method:<18} {metrics['train_seconds']:8.1f} "
                  f"{metrics['train_seconds'] / base:11.2f} {metrics['tokens_per_s']:13,.0f}")
    builtin = results["built-in"]["methods"]["standard"]["tokens_per_s"]
    for name, result in results.items():
        if name != "built-in":
            rate = result["methods"]["standard"]["tokens_per_s"]
            print(f"useful tokens/s of standard, {name} / built-in: {rate / builtin:.2f}")


if __name__ == "__main__":
    main()
