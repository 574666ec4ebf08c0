"""`memsinks <subcommand>`: run a whole study, train or evaluate one method, write a report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import config as config_io


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
    from .experiment import run_study

    path, overrides = _split(args)
    run_study(config_io.load(path, overrides), progress=not args.quiet)


def cmd_train(args: argparse.Namespace) -> None:
    from .experiment import run_study

    path, overrides = _split(args)
    config = config_io.load(path, overrides + [f"methods=[{args.method}]"])
    run_study(config, progress=not args.quiet)


def cmd_eval(args: argparse.Namespace) -> None:
    from .experiment import evaluate_saved

    result = evaluate_saved(Path(args.method_dir), modes=args.modes, rescale=args.rescale)
    print(json.dumps(result, indent=1))


def cmd_sweep(args: argparse.Namespace) -> None:
    from .sweep import Grid, run_sweep

    path, overrides = _split(args)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if not seeds:
        raise ValueError("--seeds is empty; give seeds such as 0,1,2")
    run_sweep(path, Grid.parse(args.grid or []), seeds, overrides, name=args.name,
              progress=not args.quiet)


def cmd_export(args: argparse.Namespace) -> None:
    from .experiment import export_dropped

    method_dir = Path(args.method_dir)
    print(export_dropped(method_dir, Path(args.out) if args.out else method_dir / "export"))


def cmd_report(args: argparse.Namespace) -> None:
    from .report import write_report

    print(write_report(Path(args.run_dir)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memsinks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="a whole study: every method, results.json, report.md",
                         description="Train every method of the study on the same stream, "
                         "evaluate, and write runs/<name>/{config.yaml, manifest.json, "
                         "results.json, report.md, *.png}. Finished methods are reused.")
    _add_config(run)
    run.set_defaults(func=cmd_run)
    train = sub.add_parser("train", help="train and evaluate one method of a study",
                           description="Like run, restricted to one method.")
    train.add_argument("--method", required=True, help="standard, dedup, memsinks, ...")
    _add_config(train)
    train.set_defaults(func=cmd_train)
    ev = sub.add_parser("eval", help="evaluate a saved model of a study in chosen sink modes",
                        description="Recompute L(R), L(H), L(V) and the gap for "
                        "runs/<name>/<method> in the given modes, and print them as JSON.")
    ev.add_argument("method_dir", help="a method's directory, such as runs/default/memsinks")
    ev.add_argument("--modes", nargs="+", default=None,
                    help="sink modes (off, keep, drop, own); default: the method's own")
    ev.add_argument("--rescale", default=None, choices=("paper", "mass", "none"),
                    help="shared-neuron factor in drop mode (default: the one trained with)")
    ev.set_defaults(func=cmd_eval)
    sweep = sub.add_parser("sweep", help="a grid over config keys x seeds, one table and plots",
                           description="Run one study per grid point and seed under "
                           "<out_dir>/<name>/, reusing every finished method, and write "
                           "sweep.json, sweep.md and sweep.png.")
    sweep.add_argument("--grid", action="append", metavar="key=v1,v2",
                       help="a swept key and its values; repeat for a product grid")
    sweep.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (data and init)")
    sweep.add_argument("--name", default=None, help="sweep directory name")
    _add_config(sweep)
    sweep.set_defaults(func=cmd_sweep)
    export = sub.add_parser("export", help="write the sinks-dropped model as a plain "
                            "transformers Llama model with its tokenizer",
                            description="Delete the sink neurons, fold the drop rescale into "
                            "the down projections and save model + tokenizer in the Hugging Face "
                            "format (loadable with AutoModelForCausalLM, no memsinks needed).")
    export.add_argument("method_dir", help="a method's directory, such as runs/default/memsinks")
    export.add_argument("--out", default=None, help="output directory (default: METHOD_DIR/export)")
    export.set_defaults(func=cmd_export)
    report = sub.add_parser("report", help="rewrite report.md and plots from results.json")
    report.add_argument("run_dir", help="a study directory, such as runs/default")
    report.set_defaults(func=cmd_report)
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
