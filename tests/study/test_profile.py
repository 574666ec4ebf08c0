"""`memsinks profile`: where a finished study's time went, read from its results.json."""

import json

from memsinks.cli import main
from memsinks.study.profile import COLUMNS, profile


def test_a_study_records_each_part_and_profile_adds_them_up(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["run", "configs/smoke.yaml", f"out_dir={out}", "--quiet",
                 "methods=[standard,memsinks]"]) == 0
    summary = profile(out / "smoke")
    sinks = summary["methods"]["memsinks"]
    for part in ("train", "curves", "final_eval", "extraction", "mia", "relearning",
                 "assessment"):
        assert sinks[part] is not None and sinks[part] > 0, part
    assert sinks["exposure"] is None  # natural documents: no exposure
    # the assessment's parts fit inside its total (which also loads the model)
    inside = sinks["extraction"] + sinks["mia"] + sinks["relearning"]
    assert inside <= sinks["assessment"] + 1e-6
    assert summary["methods"]["standard"]["relearning"] is not None  # measured, even if ~0
    total = summary["total"]
    assert total["train"] == sinks["train"] + summary["methods"]["standard"]["train"]
    assert summary["assessment_over_training"] == total["assessment"] / total["train"]
    assert main(["profile", str(out / "smoke"), "--json"]) == 0
    printed = capsys.readouterr().out
    assert "| **total** |" in printed and "Assessment / training" in printed
    assert json.loads(printed[printed.index("{"):])["total"].keys() == set(COLUMNS)
