"""scripts/study_table.py on the committed seed-0 summaries of the learnable regime."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "study_table.py"
MAIN = ROOT / "docs" / "data" / "learnable" / "main-seed0"
CONSTANT = ROOT / "docs" / "data" / "learnable" / "constant-seed0"


def _load():
    spec = importlib.util.spec_from_file_location("study_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_seed_keeps_the_study_s_errors_and_two_average_over_seeds():
    table = _load()
    one = {r["method"]: r for r in table.point_rows("main", [str(MAIN)], None)}
    assert one["memsinks"]["mode"] == "drop" and one["standard"]["mode"] == "off"
    assert one["memsinks"]["closure"] == pytest.approx([0.2317, 0.0216], abs=1e-4)
    assert one["standard"]["closure"] is None  # standard is the yardstick
    # the same study twice: the mean is unchanged and the error over seeds is zero
    two = {r["method"]: r for r in table.point_rows("main", [str(MAIN)] * 2, None)}
    assert two["memsinks"]["closure"][0] == pytest.approx(one["memsinks"]["closure"][0])
    assert two["memsinks"]["closure"][1] == 0.0 and two["memsinks"]["seeds"] == 2
    # a study without dedup borrows it, without a paired error
    dedup = {"L_H": one["dedup"]["L_H"][0]}
    rows = {r["method"]: r for r in table.point_rows("constant", [str(CONSTANT)], dedup)}
    value, error = rows["memsinks"]["L_H_vs_dedup"]
    assert error is None
    assert value == pytest.approx(rows["memsinks"]["L_H"][0] / dedup["L_H"] - 1)


def test_the_command_prints_the_table_and_writes_its_rows(tmp_path):
    out = tmp_path / "table.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--point", f"main={MAIN}",
                           "--point", f"constant={CONSTANT}", "--dedup", str(MAIN),
                           "--out", str(out)], capture_output=True, text=True, check=True)
    assert "| main | memsinks (drop) | 1 |" in done.stdout
    assert "+23.2% ± 2.2%" in done.stdout
    saved = json.loads(out.read_text())
    assert len(saved["rows"]) == 7 and saved["dedup"]["study"] == str(MAIN)
    bad = subprocess.run([sys.executable, str(SCRIPT), "--point", "main"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "has no studies" in bad.stderr


def test_an_eval_output_becomes_a_row_compared_with_its_study(tmp_path):
    table = _load()
    none = MAIN / "memsinks-drop-rescale-none.json"
    row = table.eval_rows("main", "memsinks-rescale-none", [str(MAIN)], [str(none)])
    standard = {r["method"]: r for r in table.point_rows("main", [str(MAIN)], None)}
    drop = json.loads(none.read_text())["drop"]
    assert row["closure"][0] == pytest.approx(1 - drop["gap"][0] / 0.46224, abs=1e-4)
    assert row["closure"][1] is None  # computed from two summaries: no paired error
    assert row["L_H_vs_dedup"][0] == pytest.approx(drop["L_H"][0] / standard["dedup"]["L_H"][0]
                                                   - 1)
    assert row["gap"] == drop["gap"]  # one seed keeps the evaluation's own error
    with pytest.raises(ValueError, match="has 2 files for 1 studies"):
        table.eval_rows("main", "x", [str(MAIN)], [str(none)] * 2)


def test_a_method_that_only_some_seeds_ran_is_combined_over_those_seeds(tmp_path):
    # seed 0 ran every method; "seed 1" (a copy without dedup or the extension) ran two
    table = _load()
    partial = json.loads((MAIN / "results.json").read_text())
    for name in ("dedup", "memsinks-repeated"):
        partial["methods"].pop(name)
        partial["comparisons"].pop(name, None)
    (tmp_path / "results.json").write_text(json.dumps(partial))
    rows = {r["method"]: r for r in table.point_rows("main", [str(MAIN), str(tmp_path)], None)}
    assert rows["memsinks"]["seeds"] == 2 and rows["memsinks"]["closure"][1] == 0.0
    assert rows["memsinks-repeated"]["seeds"] == 1
    assert rows["memsinks-repeated"]["closure"] == pytest.approx([0.3318, 0.0249], abs=1e-3)
    assert list(rows)[:2] == list(json.loads((MAIN / "results.json").read_text())["methods"])[:2]
