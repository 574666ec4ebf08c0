"""Where a study's time went: training, learning curves, evaluation and each assessment part.

Read from a finished study's results.json, so it costs nothing to run and works on committed
summaries. Methods reused from an earlier study report the times of the run that trained them.
"""

from __future__ import annotations

import json
from pathlib import Path

COLUMNS = ("train", "curves", "final_eval", "extraction", "mia", "exposure", "relearning",
           "assessment")


def method_times(metrics: dict) -> dict[str, float | None]:
    """Seconds per part for one method's metrics (None where the run did not record it)."""
    assessment = metrics.get("assessment") or {}
    modes = assessment.get("modes") or {}
    parts = [row.get("parts") or {} for row in modes.values()]

    def summed(*keys: str) -> float | None:
        values = [p[k] for p in parts for k in keys if k in p]
        return sum(values) if values else None

    return {"train": metrics.get("train_seconds"), "curves": metrics.get("eval_seconds"),
            "final_eval": metrics.get("final_eval_seconds"),
            "extraction": summed("extraction_R", "extraction_H"), "mia": summed("mia"),
            "exposure": summed("exposure"), "relearning": assessment.get("relearn_seconds"),
            "assessment": assessment.get("seconds")}


def profile(run_dir: Path) -> dict:
    """Per method and in total, plus the study's wall time and the assessment/training ratio."""
    results = json.loads((Path(run_dir) / "results.json").read_text())
    rows = {name: method_times(m) for name, m in results["methods"].items()}
    total = {c: (sum(v for v in values if v is not None)
                 if any(v is not None for v in values) else None)
             for c in COLUMNS for values in [[r[c] for r in rows.values()]]}
    train = total["train"]
    return {"study": results.get("config", {}).get("name", str(run_dir)), "methods": rows,
            "total": total, "study_seconds": results.get("study_seconds"),
            "assessment_over_training": total["assessment"] / train if train else None}


def format_profile(summary: dict) -> str:
    """A markdown table of :func:`profile`'s figures, in seconds."""
    def cell(value: float | None) -> str:
        return "—" if value is None else f"{value:.1f}"

    lines = [f"Time per part of study {summary['study']} (seconds; assessment = extraction + "
             "membership inference + exposure + relearning + loading the model)", "",
             "| method | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, row in [*summary["methods"].items(), ("**total**", summary["total"])]:
        lines.append(f"| {name} | " + " | ".join(cell(row[c]) for c in COLUMNS) + " |")
    lines.append("")
    if summary["study_seconds"] is not None:
        lines.append(f"Study wall time {summary['study_seconds']:.1f} s (also data, reports "
                     "and plots).")
    if summary["assessment_over_training"] is not None:
        lines.append(f"Assessment / training: {summary['assessment_over_training']:.2f}.")
    return "\n".join(lines)
