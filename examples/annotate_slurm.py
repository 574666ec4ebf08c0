"""Sink keys for a corpus on a Slurm cluster (or this machine) with datatrove, then one merge.

    # on a Slurm login node: one array task per file of the corpus, 8 running at a time
    python examples/annotate_slurm.py 'corpus/*.parquet?field=content' --key minhash \\
        --shards /scratch/web-shards --partition cpu --workers 8 --venv .venv/bin/activate
    # when the array has finished (squeue shows no memsinks-annotate tasks):
    memsinks annotate-merge /scratch/web-shards --out annotations/web --memory-limit 64GB

    # the same pipeline on this machine's processes (what the tests run)
    python examples/annotate_slurm.py corpus/ --key hash --shards shards --executor local

Each task reads a contiguous block of the source's files with memsinks' reader and writes the
keys of its documents to SHARDS/parts/RANK.parquet (memsinks.integrations.datatrove). Rerun
the same command after a failure: datatrove skips the finished tasks (SHARDS/logs/completions/)
and runs the rest. The merge numbers the documents in task order and counts them with DuckDB on
one machine; its table is byte-identical to `memsinks annotate SOURCE --key KEY` on the same
files.
"""

from __future__ import annotations

import argparse

from datatrove.executor import LocalPipelineExecutor, SlurmPipelineExecutor

from memsinks.integrations.datatrove import LOGS, annotation_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a memsinks source spec: file, directory or glob")
    parser.add_argument("--key", default="hash", help="hash | field:NAME | minhash")
    parser.add_argument("--shards", required=True, help="where the tasks write their parts")
    parser.add_argument("--executor", choices=("slurm", "local"), default="slurm")
    parser.add_argument("--tasks", type=int, default=None,
                        help="tasks (default: one per file of the source)")
    parser.add_argument("--workers", type=int, default=-1,
                        help="tasks running at once (default: all on Slurm; cores locally)")
    parser.add_argument("--partition", default=None, help="Slurm partition")
    parser.add_argument("--time", default="04:00:00", help="Slurm time limit per task")
    parser.add_argument("--mem-per-cpu-gb", type=int, default=4)
    parser.add_argument("--venv", default=None, help="activate script sourced by each task")
    parser.add_argument("--tokenizer", default=None,
                        help="hash token ids with this tokenizer, as training does")
    args = parser.parse_args()
    if args.executor == "slurm" and not args.partition:
        parser.error("the Slurm executor needs --partition (a partition of your cluster)")

    pipeline = annotation_pipeline(args.source, args.key, args.shards, tokenizer=args.tokenizer)
    tasks = args.tasks or len(pipeline[0].files)
    logs = f"{args.shards}/{LOGS}"
    if args.executor == "slurm":
        executor = SlurmPipelineExecutor(
            pipeline=pipeline, tasks=tasks, workers=args.workers, time=args.time,
            partition=args.partition, cpus_per_task=1, mem_per_cpu_gb=args.mem_per_cpu_gb,
            job_name="memsinks-annotate", logging_dir=logs, venv_path=args.venv,
            slurm_logs_folder=f"{logs}/slurm")
    else:
        executor = LocalPipelineExecutor(pipeline, tasks=tasks, workers=args.workers,
                                         logging_dir=logs)
    executor.run()
    print(f"when every task has finished: memsinks annotate-merge {args.shards} --out OUT")


if __name__ == "__main__":
    main()
