"""`memsinks <subcommand>`: run a whole study, train or evaluate one method, write a report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import config as config_io
from .data.near_duplicates import MinHashParams


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", default=None,
                        help="YAML study config (default: built-in defaults)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="overrides such as train.steps=200 data.repetitions=16")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def _split(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    # `memsinks run train.steps=5` (no config file) is allowed too
    overrides = list(args.overrides)
    path = args.config
    if path is not None and "=" in path and not Path(path).exists():
        overrides.insert(0, path)
        path = None
    return path, overrides


def cmd_run(args: argparse.Namespace) -> None:
    from .study.run import run_study

    path, overrides = _split(args)
    config = config_io.load(path, overrides)
    # a method finished with the same configuration anywhere under out_dir is reused
    run_study(config, progress=not args.quiet, reuse_root=Path(config.out_dir), jobs=args.jobs)


def cmd_train(args: argparse.Namespace) -> None:
    from .study.run import run_study

    path, overrides = _split(args)
    config = config_io.load(path, overrides + [f"methods=[{args.method}]"])
    run_study(config, progress=not args.quiet)


def cmd_eval(args: argparse.Namespace) -> None:
    from .study.run import evaluate_saved

    result = evaluate_saved(Path(args.method_dir), modes=args.modes, rescale=args.rescale)
    print(json.dumps(result, indent=1))


def cmd_sweep(args: argparse.Namespace) -> None:
    from .study.sweep import Grid, run_sweep

    path, overrides = _split(args)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if not seeds:
        raise ValueError("--seeds is empty; give seeds such as 0,1,2")
    run_sweep(path, Grid.parse(args.grid or []), seeds, overrides, name=args.name,
              progress=not args.quiet, jobs=args.jobs)


def cmd_export(args: argparse.Namespace) -> None:
    from .study.export import export_dropped

    method_dir = Path(args.method_dir)
    print(export_dropped(method_dir, Path(args.out) if args.out else method_dir / "export"))


def cmd_delete(args: argparse.Namespace) -> None:
    from .study.deletion import delete_documents

    indices = [int(i) for i in args.docs.split(",") if i.strip()] if args.docs else None
    delete_documents(Path(args.method_dir), count=args.count, indices=indices,
                     progress=not args.quiet)


def cmd_report(args: argparse.Namespace) -> None:
    from .study.report import write_report

    print(write_report(Path(args.run_dir)))


def _strengths(items: list[str] | None) -> list[float] | None:
    if not items:
        return None
    from .unlearn.tradeoff import parse_values

    return [v for item in items for v in parse_values(item)]


def _params(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--param {item!r} is not of the form key=value (for example "
                             "lr=3e-4)")
        out[key] = value
    return out


def cmd_unlearn(args: argparse.Namespace) -> None:
    from .unlearn import get
    from .unlearn.runner import unlearn_dir

    method = get(args.method)
    strengths = _strengths(args.strength) or list(method.default_grid)
    unlearn_dir(Path(args.method_dir), args.method, strengths, _params(args.param),
                Path(args.forget) if args.forget else None, progress=not args.quiet)


def cmd_tradeoff(args: argparse.Namespace) -> None:
    from .unlearn.tradeoff import run_tradeoff

    methods = [m for m in args.methods.split(",") if m.strip()] if args.methods else None
    run_tradeoff([Path(d) for d in args.run_dirs], methods, args.strengths, args.param,
                 Path(args.out) if args.out else None, progress=not args.quiet)


def cmd_frontier(args: argparse.Namespace) -> None:
    from .study.frontier import run_frontier

    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else None
    run_frontier(args.standard, args.method_dirs, Path(args.out), seeds)


def cmd_ladder(args: argparse.Namespace) -> None:
    from .study.ladder import run_ladder

    run_ladder([Path(d) for d in args.study_dirs], Path(args.out))


def cmd_profile(args: argparse.Namespace) -> None:
    from .study.profile import format_profile, profile

    summary = profile(Path(args.study_dir))
    print(format_profile(summary))
    if args.json:
        print(json.dumps(summary, indent=1))


def cmd_theory(args: argparse.Namespace) -> None:
    if args.online:
        from .experiments.online import main as theory_main
    else:
        from .experiments.theory import main as theory_main

    out = args.out or ("runs/theory-online" if args.online else "runs/theory")
    code = theory_main(["--out", out, *args.overrides])
    if code:
        raise ValueError("the theory experiment stopped (see the message above)")


def cmd_add_sinks(args: argparse.Namespace) -> None:
    from .sinks import SinkConfig
    from .study.export import widen_checkpoint

    sink_config = SinkConfig(p_shared=args.p_shared, p_active=args.p_active, seed=args.seed,
                             mask=args.mask, drop_rescale="none")
    out = widen_checkpoint(args.model_dir, args.out, sink_config)
    print(f"wrote {out}: the MLPs widened by a sink pool whose output columns are zero")


def cmd_annotate(args: argparse.Namespace) -> None:
    from .data.annotate import annotate

    options = dict(memory_limit=args.memory_limit, tokenizer=args.tokenizer,
                   max_tokens=args.max_tokens, threshold=args.threshold, shingle=args.shingle,
                   num_perm=args.num_perm, bands=args.bands, threads=args.threads,
                   progress=not args.quiet)
    if args.workers is None and args.tasks is None:
        table = annotate(args.source, args.key, args.out, **options)
    else:  # datatrove's local executor: one task per file (or --tasks), merged here
        from .integrations.datatrove import annotate_local

        table = annotate_local(args.source, args.key, args.out, workers=args.workers or 1,
                               tasks=args.tasks, **options)
    _print_annotation(table)


def cmd_annotate_merge(args: argparse.Namespace) -> None:
    from .data.annotate.shards import merge_shards

    table = merge_shards(args.shards, args.out, memory_limit=args.memory_limit,
                         threads=args.threads, progress=not args.quiet,
                         redo_hint=" (with datatrove, delete that task's file in the executor's "
                                   "logging_dir/completions/ too, or it is skipped)")
    _print_annotation(table)


def _print_annotation(table: Path) -> None:
    from .data.annotate.pipeline import summary_of

    counts = summary_of(table.parent)["counts"]
    print(f"{table}: {counts['documents']} documents, {counts['sinks']} sink IDs, "
          f"{counts['repeated_documents']} documents in repeated groups")


def cmd_import_litgpt(args: argparse.Namespace) -> None:
    from .integrations.litgpt import import_checkpoint

    out, n_shared, n_sink, copied = import_checkpoint(
        args.checkpoint, args.out, args.config, p_shared=args.p_shared, p_active=args.p_active)
    print(f"wrote {out}: a Llama model with {n_shared} shared and {n_sink} sink "
          f"neurons per MLP (reference masks), {copied} tokenizer files; load it with "
          "memsinks.modelio.load_model")


# memsinks VERB runs VERBS[VERB](args); build_parser gives each verb its arguments
VERBS = {"run": cmd_run, "train": cmd_train, "eval": cmd_eval, "sweep": cmd_sweep,
         "export": cmd_export, "delete": cmd_delete, "report": cmd_report,
         "unlearn": cmd_unlearn, "tradeoff": cmd_tradeoff, "frontier": cmd_frontier,
         "ladder": cmd_ladder, "profile": cmd_profile, "theory": cmd_theory,
         "add-sinks": cmd_add_sinks, "import-litgpt": cmd_import_litgpt, "annotate": cmd_annotate,
         "annotate-merge": cmd_annotate_merge}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memsinks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="a whole study: every method, results.json, report.md",
                         description="Train every method of the study on the same stream, "
                         "evaluate, and write runs/<name>/{config.yaml, manifest.json, "
                         "results.json, report.md, *.png}. Finished methods are reused.")
    _add_config(run)
    run.add_argument("--jobs", type=int, default=1, help="methods trained and assessed at "
                     "once, each in its own process with a share of train.threads (default 1; "
                     "2 suits a small model on a 2-core CPU)")
    train = sub.add_parser("train", help="train and evaluate one method of a study",
                           description="Like run, restricted to one method.")
    train.add_argument("--method", required=True, help="standard, dedup, memsinks, ...")
    _add_config(train)
    ev = sub.add_parser("eval", help="evaluate a saved model of a study in chosen sink modes",
                        description="Recompute L(R), L(H), L(V) and the gap for "
                        "runs/<name>/<method> in the given modes, and print them as JSON.")
    ev.add_argument("method_dir", help="a method's directory, such as runs/default/memsinks")
    ev.add_argument("--modes", nargs="+", default=None,
                    help="sink modes (off, keep, drop, own); default: the method's own")
    ev.add_argument("--rescale", default=None, choices=("paper", "mass", "none"),
                    help="shared-neuron factor in drop mode (default: the one trained with)")
    sweep = sub.add_parser("sweep", help="a grid over config keys x seeds, one table and plots",
                           description="Run one study per grid point and seed under "
                           "<out_dir>/<name>/, reusing every finished method, and write "
                           "sweep.json, sweep.md and sweep.png.")
    sweep.add_argument("--jobs", type=int, default=1, help="methods of each study trained at "
                       "once, as memsinks run --jobs")
    sweep.add_argument("--grid", action="append", metavar="key=v1,v2",
                       help="a swept key and its values; repeat for a product grid")
    sweep.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (data and init)")
    sweep.add_argument("--name", default=None, help="sweep directory name")
    _add_config(sweep)
    export = sub.add_parser("export", help="write the sinks-dropped model as a plain "
                            "transformers Llama model with its tokenizer",
                            description="Delete the sink neurons, fold the drop rescale into "
                            "the down projections and save model + tokenizer in the Hugging Face "
                            "format (loadable with AutoModelForCausalLM, no memsinks needed).")
    export.add_argument("method_dir", help="a method's directory, such as runs/default/memsinks")
    export.add_argument("--out", default=None, help="output directory (default: METHOD_DIR/export)")
    delete = sub.add_parser("delete", help="switch off single documents' sinks and measure "
                            "who forgets", description="For each chosen repeated document, "
                            "evaluate the sink model with that document's sinks excluded and "
                            "write METHOD_DIR/deletion.json and deletion.png: the document's "
                            "loss rise against the other repeated documents', H's and V's.")
    delete.add_argument("method_dir", help="a sink method's directory, such as "
                        "runs/default/memsinks-repeated")
    delete.add_argument("--count", type=int, default=16,
                        help="delete each of the first COUNT repeated documents in turn")
    delete.add_argument("--docs", default=None, help="comma-separated R indices instead")
    delete.add_argument("--quiet", action="store_true", help="no progress output")
    report = sub.add_parser("report", help="rewrite report.md and plots from results.json")
    report.add_argument("run_dir", help="a study directory, such as runs/default")
    unlearn = sub.add_parser(
        "unlearn", help="a post-hoc baseline on a trained model: remove memorization of R",
        description="Apply a post-hoc unlearning method to a model trained without sinks "
        "(forget set: the study's repeated set R, or --forget; retain set: general training "
        "documents) and write METHOD_DIR/unlearn/<method>/<strength>.json with gap, L(R), "
        "L(H), L(V) and wall time. Methods: zero-out, activations, slimming, hard-concrete, "
        "balanced-subnet, gradient-ascent, gradient-difference, npo. Finished strengths are "
        "reused.")
    unlearn.add_argument("method_dir", help="a trained method directory, such as "
                         "runs/default/standard")
    unlearn.add_argument("--method", required=True, help="the unlearning method's name")
    unlearn.add_argument("--strength", action="append", metavar="S[,S2...]",
                         help="strength(s): a fraction for localization and balanced-subnet, "
                         "optimizer steps for fine-tuning; repeat or comma-separate "
                         "(default: the method's grid)")
    unlearn.add_argument("--forget", default=None, metavar="FILE",
                         help="forget these training documents instead of R (text: one per "
                         'line; .jsonl: a string or {"text": ...} per line)')
    unlearn.add_argument("--param", action="append", metavar="key=value",
                         help="a method hyperparameter, such as lr=3e-4 or steps=50")
    unlearn.add_argument("--quiet", action="store_true", help="no progress output")
    tradeoff = sub.add_parser(
        "tradeoff", help="sweep every post-hoc baseline: gap on R against L(V), one plot",
        description="Run each unlearning method over its strength grid on the standard model "
        "of one or two studies (natural R, canary R), reusing finished results, and write "
        "tradeoff.json, tradeoff.md and tradeoff.png with MemSinks (sinks dropped) and dedup "
        "as points.")
    tradeoff.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                          help="study directories, such as runs/default runs/canary")
    tradeoff.add_argument("--strengths", action="append", metavar="default|METHOD=v1,v2",
                          help="a method's grid (repeat per method); the rest use their default")
    tradeoff.add_argument("--methods", default=None, metavar="A,B",
                          help="comma-separated methods (default: all)")
    tradeoff.add_argument("--param", action="append", metavar="METHOD.key=value",
                          help="a method hyperparameter, such as npo.lr=3e-4")
    tradeoff.add_argument("--out", default=None, help="output directory (default: the first "
                          "RUN_DIR)")
    tradeoff.add_argument("--quiet", action="store_true", help="no progress output")
    frontier = sub.add_parser(
        "frontier", help="sink models from separate studies against one standard model",
        description="Closure of standard training's gap (sinks dropped) against the in-domain "
        "held-out loss L(H) and L(V), for method directories trained on the same data as the "
        "standard one; writes frontier.json and frontier.png.")
    frontier.add_argument("standard", help="a standard method directory, such as "
                          "runs/paper-regime/base/seed0/standard")
    frontier.add_argument("method_dirs", nargs="+", metavar="METHOD_DIR")
    frontier.add_argument("--out", default="runs/frontier", help="output folder")
    frontier.add_argument("--seeds", default="", help="comma-separated seeds: every directory is "
                          "a pattern with {seed} in it, and the rows are mean ± s.e. over seeds")
    ladder = sub.add_parser(
        "ladder", help="closure and in-domain loss against model size, over studies",
        description="Group finished studies by their standard model's non-embedding parameter "
        "count (the seeds of one size), and write ladder.json and ladder.png: closure, L(H) and "
        "L(V) against standard and membership-inference AUROC with the sinks dropped, mean ± "
        "s.e. over seeds.")
    ladder.add_argument("study_dirs", nargs="+", metavar="STUDY_DIR",
                        help="study directories, such as runs/ladder/model.preset=small/seed0")
    ladder.add_argument("--out", default="runs/ladder-plot", help="output folder")
    prof = sub.add_parser(
        "profile", help="where a finished study's time went, from its results.json",
        description="Seconds per method for training steps, learning-curve evaluations, the "
        "final evaluation and each part of the memorization assessment (extraction, membership "
        "inference, exposure, relearning), with totals and the assessment/training ratio.")
    prof.add_argument("study_dir", metavar="STUDY_DIR", help="a study directory, such as "
                      "runs/smoke")
    prof.add_argument("--json", action="store_true", help="also print the figures as JSON")
    theory = sub.add_parser(
        "theory", help="the linear-network toy: natural items, canaries and sinks",
        description="Train two-layer linear networks by gradient descent on a general task "
        "plus memorized natural items, canaries or a domain's only items; measure post-hoc "
        "ablation and sinks; write results.json and theory.png (docs/theory.md).")
    theory.add_argument("--out", default=None,
                        help="output folder (default runs/theory or runs/theory-online)")
    theory.add_argument("--online", action="store_true",
                        help="the online toy instead: SGD over a stream in which items recur "
                        "at each spacing of online.spacings (memsinks.experiments.online)")
    theory.add_argument("overrides", nargs="*", help="TheoryConfig fields as key=value "
                        "(seeds=0,1,2); with --online also online.KEY=value")
    add_sinks = sub.add_parser(
        "add-sinks", help="widen a pretrained model's MLPs by a zero-initialised sink pool",
        description="Add new MLP neurons as a sink pool to a plain transformers checkpoint "
        "(every supported family; the old neurons become the shared ones, the new ones' output "
        "columns start at zero, so the model is unchanged) and write a memsinks model directory "
        "(weights, sinks.json, tokenizer files) to fine-tune with sinks.")
    add_sinks.add_argument("model_dir", help="a transformers checkpoint directory, or a study's "
                           "method directory")
    add_sinks.add_argument("--out", required=True, help="output directory")
    add_sinks.add_argument("--p-shared", type=float, default=0.7,
                           help="share of the widened MLP that is the pretrained (shared) part")
    add_sinks.add_argument("--p-active", type=float, default=0.3,
                           help="share of the sink pool a document switches on")
    add_sinks.add_argument("--seed", type=int, default=0,
                           help="seed of the new neurons' weights and of the mask hash")
    add_sinks.add_argument("--mask", default="hash", choices=("hash", "reference"),
                           help="sink masks: this project's hash or the authors' (reference)")
    litgpt = sub.add_parser(
        "import-litgpt", help="convert a model trained with the authors' litgpt code into a "
        "memsinks model directory",
        description="Read a litgpt checkpoint of the Llama shape (lit_model.pth and "
        "model_config.yaml), convert it into a transformers Llama model with the same logits, "
        "and save it with sinks.json (the authors' shared/sink split and reference masks), "
        "plus the tokenizer files found next to the checkpoint.")
    litgpt.add_argument("checkpoint", help="lit_model.pth, or the directory holding it")
    litgpt.add_argument("--config", default=None,
                        help="model_config.yaml (default: the one next to the checkpoint)")
    litgpt.add_argument("--out", required=True, help="output model directory")
    litgpt.add_argument("--p-shared", type=float, default=0.7,
                        help="fraction of hidden neurons shared, the authors' p_gen (0.7)")
    litgpt.add_argument("--p-active", type=float, default=0.3,
                        help="fraction of the sink pool a document switches on, the authors' "
                        "p_mem (0.3)")
    annotate = sub.add_parser("annotate", help="write a corpus's sink keys as one parquet table",
                              description="Per document of SOURCE (a source spec or a token "
                              "store directory): position, hash, sink key, sink ID, count and a "
                              "repeated flag, in OUT/annotations.parquet. Resumes after an "
                              "interruption.")
    annotate.add_argument("--key", required=True, help="hash | field:NAME | minhash")
    annotate.add_argument("source", help="a source spec (file, directory, glob, with ?options) "
                                         "or a token store directory")
    annotate.add_argument("--out", required=True, help="directory for annotations.parquet")
    annotate.add_argument("--memory-limit", default="1GB",
                          help="DuckDB's memory cap, e.g. 512MB or 8GB (default 1GB)")
    annotate.add_argument("--threads", type=int, default=None,
                          help="DuckDB threads (default: all)")
    annotate.add_argument("--tokenizer", default=None,
                          help="hash token ids with this tokenizer (name or path), as training "
                               "does, instead of the text")
    annotate.add_argument("--max-tokens", type=int, default=None,
                          help="with --tokenizer: hash only each document's first ids")
    minhash = MinHashParams()
    annotate.add_argument("--threshold", type=float, default=None,
                          help=f"minhash: estimated Jaccard to join a cluster "
                               f"(default {minhash.threshold})")
    annotate.add_argument("--shingle", type=int, default=None,
                          help=f"minhash: words (or tokens) per shingle "
                               f"(default {minhash.shingle})")
    annotate.add_argument("--num-perm", type=int, default=None,
                          help=f"minhash: signature length (default {minhash.num_perm})")
    annotate.add_argument("--bands", type=int, default=None,
                          help=f"minhash: LSH bands, dividing --num-perm "
                               f"(default {minhash.bands})")
    annotate.add_argument("--workers", type=int, default=None,
                          help="run on datatrove's local executor with this many processes, "
                               "one task per file of SOURCE, then merge (needs datatrove)")
    annotate.add_argument("--tasks", type=int, default=None,
                          help="with --workers: tasks, each reading a contiguous block of "
                               "files (default: one per file)")
    annotate.add_argument("--quiet", action="store_true", help="no progress output")
    merge = sub.add_parser("annotate-merge",
                           help="count the shard parts of a distributed annotation job into "
                                "one table",
                           description="SHARDS/parts/RANK.parquet, written by the tasks of a "
                           "datatrove job (memsinks.integrations.datatrove.SinkKeys), numbered "
                           "in task order and counted as memsinks annotate counts: the same "
                           "OUT/annotations.parquet, byte for byte.")
    merge.add_argument("shards", help="the directory the job's SinkKeys step wrote to")
    merge.add_argument("--out", required=True, help="directory for annotations.parquet")
    merge.add_argument("--memory-limit", default="1GB",
                       help="DuckDB's memory cap, e.g. 512MB or 8GB (default 1GB)")
    merge.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all)")
    merge.add_argument("--quiet", action="store_true", help="no progress output")
    for name, verb in sub.choices.items():
        verb.set_defaults(func=VERBS[name])
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may follow options (`sweep --grid a=1,2 train.steps=5`)
    args, extra = parser.parse_known_args(argv)
    stray = [a for a in extra if "=" not in a or a.startswith("-")]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    from .train import Interrupted

    try:
        args.func(args)
    except Interrupted as stopped:
        print(f"memsinks: {stopped}", file=sys.stderr)
        return 143  # 128 + SIGTERM, as schedulers expect of a terminated job
    except (ValueError, FileNotFoundError, FloatingPointError) as error:
        print(f"memsinks: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
