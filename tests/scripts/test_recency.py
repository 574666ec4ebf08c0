"""scripts/recency.py: closure by steps since each repeated document was last seen."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from memsinks.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("recency", ROOT / "scripts" / "recency.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_bin_gives_the_study_s_gap_and_closure(tmp_path):
    recency = _load()
    out = tmp_path / "runs"
    assert main(["run", "configs/smoke.yaml", f"out_dir={out}", "--quiet",
                 "methods=[standard,memsinks]", "train.steps=24", "data.repetitions=4"]) == 0
    result = recency.recency(out / "smoke", resamples=50)
    assert result["spacing_steps"] == pytest.approx(24 / 4)
    (row,) = result["bins"]  # every document seen within the last 128 steps: one bin
    assert row["documents"] == 8  # the smoke study's R
    results = json.loads((out / "smoke" / "results.json").read_text())
    closure = results["comparisons"]["memsinks"]["closure_vs_standard"][0]
    assert row["memsinks"]["closure"][0] == pytest.approx(closure, abs=1e-9)
    assert row["standard_gap"][0] == pytest.approx(
        results["methods"]["standard"]["modes"]["off"]["gap"][0], abs=1e-9)
