"""Issue 20's tables from finished studies' results.json: one row per point and method.

    python scripts/study_table.py --point main=docs/data/learnable/main-seed0,runs/s1/base/seed1 \
        --out docs/data/learnable/main-3seeds.json

A point is a label and one or more study directories (or results.json files), its seeds:
figures are mean ± standard error over the seeds when there are several, else the single
study's own error (over documents). For sink methods the row is the sinks-dropped model.
``--dedup STUDY`` gives L(H) against dedup to points whose studies did not train dedup (from
that study's dedup, without a paired error). Columns: the gap, L(H) and L(R) above the entropy
floor of H, closure, L(H) and L(V) relative to standard, L(H) relative to dedup, the LOSS AUROC
of R against H, the share of R extractable from a 32-token prefix, and the share of the excess
forgotten per gap between two occurrences (standard; own sinks; dropped).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from memsinks.measure.stats import over_seeds
from memsinks.methods import METHODS
from memsinks.study.sweep import flatten


def _results(path: str) -> dict:
    path = Path(path)
    return json.loads((path / "results.json" if path.is_dir() else path).read_text())


def _mode(method: str) -> str:
    spec = METHODS[method]
    return "drop" if spec.removable else "off"


def point_rows(label: str, paths: list[str], dedup: dict | None) -> list[dict]:
    results = [_results(p) for p in paths]
    seeds = [(set(r["methods"]), flatten(r)) for r in results]
    # every method any seed ran, in the order first seen; a row combines the seeds that ran it
    methods = list(dict.fromkeys(m for r in results for m in r["methods"]))
    rows = []
    for method in methods:
        flats = [flat for ran, flat in seeds if method in ran]
        mode = _mode(method)
        keys = {"gap": f"{method}/{mode}/gap", "L_H": f"{method}/{mode}/L_H",
                "L_V": f"{method}/{mode}/L_V",
                "L_H_above_floor": f"{method}/{mode}/L_H_above_floor",
                "L_R_above_floor": f"{method}/{mode}/L_R_above_floor",
                "closure": f"{method}/closure_vs_standard",
                "L_H_vs_standard": f"{method}/dLH_rel_vs_standard",
                "L_V_vs_standard": f"{method}/dLV_rel_vs_standard",
                "L_H_vs_dedup": f"{method}/dLH_rel_vs_dedup",
                "auroc_loss": f"{method}/{mode}/auroc_loss",
                "extractable": f"{method}/{mode}/extractable",
                "forgetting": f"{method}/{mode}/forgetting",
                "forgetting_own": f"{method}/own/forgetting"}
        row = {"point": label, "method": method, "mode": mode, "seeds": len(flats)}
        for name, key in keys.items():
            found = [f[key] for f in flats if key in f]
            row[name] = over_seeds(found) if len(found) == len(flats) else None
        if row["L_H_vs_dedup"] is None and dedup is not None and method != "dedup":
            row["L_H_vs_dedup"] = [row["L_H"][0] / dedup["L_H"] - 1, None]
        rows.append(row)
    return rows


def eval_rows(label: str, name: str, paths: list[str], evals: list[str]) -> dict:
    """A row from ``memsinks eval`` outputs (one per study, in the same order), compared with
    each study's standard and dedup without paired errors (as ``--eval`` adds them)."""
    if len(evals) != len(paths):
        raise ValueError(f"--eval {name} has {len(evals)} files for {len(paths)} studies; give "
                         "one per study, in the same order")
    figures: dict[str, list] = {k: [] for k in ("gap", "L_H_above_floor", "L_R_above_floor",
                                                "closure", "L_H_vs_standard", "L_H_vs_dedup",
                                                "L_V_vs_standard")}
    for path, file in zip(paths, evals, strict=True):
        flat = flatten(_results(path))
        drop = json.loads(Path(file).read_text())["drop"]
        floor = flat["standard/off/L_H"][0] - flat["standard/off/L_H_above_floor"][0]
        figures["gap"].append(drop["gap"])
        figures["L_H_above_floor"].append([drop["L_H"][0] - floor, drop["L_H"][1]])
        figures["L_R_above_floor"].append([drop["L_R"][0] - floor, drop["L_R"][1]])
        figures["closure"].append([1 - drop["gap"][0] / flat["standard/off/gap"][0], None])
        figures["L_H_vs_standard"].append([drop["L_H"][0] / flat["standard/off/L_H"][0] - 1,
                                           None])
        figures["L_V_vs_standard"].append([drop["L_V"][0] / flat["standard/off/L_V"][0] - 1,
                                           None])
        if "dedup/off/L_H" in flat:
            figures["L_H_vs_dedup"].append([drop["L_H"][0] / flat["dedup/off/L_H"][0] - 1,
                                            None])
    row = {"point": label, "method": name, "mode": "drop", "seeds": len(paths)}
    for key, values in figures.items():
        if len(values) != len(paths):
            row[key] = None
        elif len(values) == 1:  # one seed: the evaluation's own error, if it has one
            row[key] = list(values[0])
        else:
            row[key] = over_seeds([[value, 0.0] for value, _ in values])
    for key in ("auroc_loss", "extractable", "forgetting", "forgetting_own", "L_H", "L_V"):
        row[key] = None
    return row


def _cell(value, percent: bool = False, signed: bool = True) -> str:
    if value is None:
        return "—"
    mean, se = value
    if percent:
        sign = "+" if signed else ""
        return f"{100 * mean:{sign}.1f}%" + (f" ± {100 * se:.1f}%" if se is not None else "")
    return f"{mean:.3f}" + (f" ± {se:.3f}" if se is not None else "")


def markdown(rows: list[dict]) -> str:
    head = ("| point | method | seeds | gap | L(H) − floor | L(R) − floor | closure | L(H) vs "
            "standard | L(H) vs dedup | L(V) vs standard | AUROC LOSS | extractable R | "
            "forgetting per gap | own sinks: forgetting per gap |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append("| " + " | ".join([
            r["point"], f"{r['method']} ({r['mode']})", str(r["seeds"]), _cell(r["gap"]),
            _cell(r["L_H_above_floor"]), _cell(r["L_R_above_floor"]),
            _cell(r["closure"], True), _cell(r["L_H_vs_standard"], True),
            _cell(r["L_H_vs_dedup"], True), _cell(r["L_V_vs_standard"], True),
            _cell(r["auroc_loss"]), _cell(r["extractable"], True, False),
            _cell(r["forgetting"], True), _cell(r["forgetting_own"], True)]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--point", action="append", required=True, metavar="LABEL=DIR[,DIR]",
                        help="a row group: its label and its studies (one per seed)")
    parser.add_argument("--dedup", help="a study whose dedup serves points without one")
    parser.add_argument("--eval", action="append", default=[], metavar="POINT:NAME=FILE[,FILE]",
                        help="a row from memsinks eval outputs (its drop mode), one file per "
                        "study of POINT, such as main:memsinks-rescale-none=a.json,b.json")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    dedup = None
    if args.dedup:
        flat = flatten(_results(args.dedup))
        dedup = {"L_H": flat["dedup/off/L_H"][0], "study": args.dedup}
    rows = []
    evals: dict[str, list[tuple[str, list[str]]]] = {}
    for spec in args.eval:
        where, _, files = spec.partition("=")
        point, _, name = where.partition(":")
        if not files or not name:
            parser.error(f"--eval {spec} should read POINT:NAME=FILE[,FILE...]")
        evals.setdefault(point, []).append((name, files.split(",")))
    for point in args.point:
        label, _, paths = point.partition("=")
        if not paths:
            parser.error(f"--point {point} has no studies; write LABEL=DIR[,DIR...]")
        rows += point_rows(label, paths.split(","), dedup)
        rows += [eval_rows(label, name, paths.split(","), files)
                 for name, files in evals.get(label, [])]
    print(markdown(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"points": args.point, "dedup": dedup,
                                        "evals": args.eval, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
