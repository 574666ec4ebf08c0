"""The sink methods under torchrun (2 processes, gloo on CPU) against one process, on a text
corpus with packing: the per-step training losses and gradient norms of both, side by side.

    python scripts/torchrun_check.py --out runs/torchrun-check            # 40 steps, ~2 min
    python scripts/torchrun_check.py --out /tmp/t --steps 4 --docs 200     # what the test runs

A general stream and a repeated genre are written as jsonl (random word sequences with a
grammar of their own per genre; nothing is downloaded), a BPE tokenizer is trained on them, and
``memsinks run`` trains ``--methods`` on packed rows, once in one process and once under
``torchrun --nproc_per_node 2`` (DDP over gloo), with the same config and seed. Writes
``OUT/compare.json`` (both runs' losses and grad norms per step and method, and the largest
differences, of the logged values and of the final weights) and prints a line per method.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_corpus(root: Path, docs: int, seed: int = 0) -> tuple[str, str]:
    rng = random.Random(seed)
    general = [f"g{i}" for i in range(500)]
    stories = [f"s{i}" for i in range(200)]
    root.mkdir(parents=True, exist_ok=True)
    for name, words, count in (("general", general, docs), ("repeated", stories, docs // 4)):
        with open(root / f"{name}.jsonl", "w") as out:
            for _ in range(count):
                start = rng.randrange(len(words) - 40)  # a local vocabulary per document
                text = " ".join(rng.choice(words[start:start + 40])
                                for _ in range(rng.randint(20, 90)))
                out.write(json.dumps({"text": text}) + "\n")
    return (f"{root}/general.jsonl?field=text", f"{root}/repeated.jsonl?field=text")


def config_text(general: str, repeated: str, steps: int, methods: list[str]) -> str:
    return f"""name: torchrun-check
methods: [{", ".join(methods)}]
data:
  general_source: {general}
  repeated_source: {repeated}
  tokenizer: train:bpe
  vocab_size: 512
  n_repeated: {max(2, steps // 5)}
  repetitions: 4
  n_validation: 16
  n_heldout: 8
model:
  preset: tiny
  num_layers: 2
  hidden_size: 64
  intermediate_size: 128
  num_heads: 2
  num_kv_heads: 2
  max_seq_len: 128
train:
  steps: {steps}
  batch_size: 8
  lr: 0.003
  warmup_steps: 2
  packing: true
  row_len: 128
  eval_every: 0
  eval_docs: 8
  checkpoint_every: 0
  threads: 1
  attention: sdpa
"""


def run(command: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{' '.join(command[:6])} ... failed:\n{result.stderr[-3000:]}")


def logs(study: Path, method: str) -> list[dict]:
    lines = (study / method / "log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "loss" in r and "step" in r]


def weight_difference(one: Path, two: Path) -> float:
    """The largest absolute difference between two trained models' weights."""
    from safetensors.numpy import load_file

    a, b = (load_file(str(d / "model" / "model.safetensors")) for d in (one, two))
    if a.keys() != b.keys():
        sys.exit(f"{one} and {two} hold different tensors")
    return float(max(abs(a[k].astype("f8") - b[k].astype("f8")).max() for k in a))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--docs", type=int, default=1200, help="general documents")
    parser.add_argument("--methods", default="memsinks,memsinks-repeated")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    general, repeated = write_corpus(out / "corpus", args.docs)
    methods = args.methods.split(",")
    config = out / "config.yaml"
    config.write_text(config_text(general, repeated, args.steps, methods))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MEMSINKS_CACHE": str(out / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    cli = ["-m", "memsinks.cli", "run", str(config), "--quiet"]
    run([sys.executable, *cli, f"out_dir={out / 'one'}"], env)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_port", "0", "--rdzv_backend", "c10d", "--rdzv_endpoint", "localhost:0"]
    run([*torchrun, *cli, f"out_dir={out / 'two'}"], env)
    worlds = [json.loads((out / d / "torchrun-check" / "run.json").read_text())["world_size"]
              for d in ("one", "two")]
    if worlds != [1, 2]:
        sys.exit(f"the runs had world sizes {worlds}, not 1 and 2")
    result: dict = {"steps": args.steps, "world_sizes": worlds, "methods": {}}
    for method in methods:
        one = logs(out / "one" / "torchrun-check", method)
        two = logs(out / "two" / "torchrun-check", method)
        if [r["step"] for r in one] != [r["step"] for r in two] or not one:
            sys.exit(f"{method}: the two runs logged different steps")
        worst = {key: max(abs(a[key] - b[key]) for a, b in zip(one, two, strict=True))
                 for key in ("loss", "grad_norm")}  # as logged: 5 and 4 decimals
        worst["weights"] = weight_difference(out / "one" / "torchrun-check" / method,
                                             out / "two" / "torchrun-check" / method)
        result["methods"][method] = {
            "one_process": {k: [r[k] for r in one] for k in ("loss", "grad_norm")},
            "two_processes": {k: [r[k] for r in two] for k in ("loss", "grad_norm")},
            "max_abs_difference": worst, "tokens": [one[-1].get("tokens"),
                                                    two[-1].get("tokens")]}
        print(f"{method}: {len(one)} steps, loss {one[0]['loss']:.4f} -> {one[-1]['loss']:.4f}; "
              f"largest |one - two|: loss {worst['loss']:.2e}, grad norm "
              f"{worst['grad_norm']:.2e}, final weights {worst['weights']:.2e}")
    (out / "compare.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
