"""report.md from results.json: its tables, from hand-made results."""

from memsinks import config as config_io
from memsinks.study.report import claims_table, memorization_table, render, write_report


def test_the_claims_table_answers_each_claim_with_its_uncertainty():
    rows = claims_table({
        "clear": {"closure_vs_standard": [0.8, 0.05], "dLV_rel_vs_standard": [-0.02, 0.004],
                  "dLV_rel_vs_dedup": [-0.05, 0.01], "dLH_rel_vs_standard": [0.005, 0.001],
                  "dLH_rel_vs_dedup": [0.3, 0.01]},
        "unsure": {"closure_vs_standard": [0.45, 0.04], "dLV_rel_vs_standard": [0.02, 0.004],
                   "dLV_rel_vs_dedup": [-0.004, 0.003], "dLH_rel_vs_standard": [0.012, 0.002],
                   "dLH_rel_vs_dedup": [-0.5, 0.01]},
        "no-dedup": {"closure_vs_standard": [0.1, 0.02], "dLV_rel_vs_standard": [0.0, 0.001]},
        "not-removable": {"closure_within": [0.1, 0.1]},
    })
    table = {line.split(" | ")[0].strip("| "): line for line in rows if line.startswith("| ")}
    assert table["clear"] == ("| clear | +80.0% ± 5.0%: yes | -2.0% ± 0.4%: yes | "
                              "-5.0% ± 1.0%: yes | +0.5% ± 0.1%: yes | +30.0% ± 1.0%: no |")
    assert table["unsure"] == ("| unsure | +45.0% ± 4.0%: no (within 2 s.e.) | +2.0% ± 0.4%: no | "
                               "-0.4% ± 0.3%: yes (within 2 s.e.) | "
                               "+1.2% ± 0.2%: no (within 2 s.e.) | -50.0% ± 1.0%: yes |")
    assert "no |" in table["no-dedup"] and "dedup not in this study" in table["no-dedup"]
    assert "not-removable" not in table
    assert claims_table({}) == []


def results(assessed: bool = False) -> dict:
    """A study's results.json by hand: standard and memsinks, two evaluations each."""
    def modes(*names):
        return {mode: {"L_R": [2.0, 0.01], "L_H": [3.0, 0.02], "L_V": [3.5, 0.01],
                       "gap": [1.0, 0.03]} for mode in names}

    def curve(*names):
        return [{"step": step, **{mode: {"L_R": 4.0 - step / 10, "L_H": 4.0}
                                  for mode in names}} for step in (6, 12)]

    out = {"name": "hand", "config": config_io.to_dict(config_io.load("configs/smoke.yaml")),
           "entropy_floor": {"R": 1.5, "H": 1.25, "V": 1.0},
           "stream": {"documents": 96, "repeated_share": 0.25},
           "methods": {"standard": {"modes": modes("off"), "curve": curve("off"),
                                    "tokens_per_s": 1000.0, "train_seconds": 2.0},
                       "memsinks": {"modes": modes("keep", "drop", "own"),
                                    "curve": curve("keep", "drop", "own"),
                                    "tokens_per_s": 900.0, "train_seconds": 3.0}},
           "comparisons": {"memsinks": {"closure_within": [0.5, 0.1],
                                        "closure_vs_standard": [0.25, 0.05],
                                        "dLV_vs_standard": [0.035, 0.01],
                                        "dLV_rel_vs_standard": [0.01, 0.003]}}}
    if assessed:
        extraction = {"32": {key: [0.5, 0.1] for key in ("rate", "match_fraction", "rouge_l",
                                                          "divergence")}}
        mia = {score: {"auroc": 0.75, "auroc_se": 0.05, "tpr_at_fpr": 0.125,
                       "tpr_at_fpr_se": 0.01} for score in ("loss", "zlib")}
        for name, mode in (("standard", "off"), ("memsinks", "drop")):
            out["methods"][name]["assessment"] = {
                "modes": {mode: {"extraction": {"R": extraction, "H": extraction}, "mia": mia}},
                "relearn": {"steps": 4, "max_steps": 100} if name == "memsinks" else None}
    return out


def test_the_report_tables_from_hand_made_results():
    text = render(results()).splitlines()
    assert text[0] == "# Study `hand`"
    assert text[2].startswith("8 natural documents from `stories` repeated 4 times in a stream "
                              "of 96 documents (25.0% repeats); general data from stories, facts.")
    assert ("| standard | full model | 2.0000 ± 0.0100 | 3.0000 ± 0.0200 | 3.5000 ± 0.0100 | "
            "1.0000 ± 0.0300 | 1000 |") in text
    assert ("| memsinks | sinks dropped | 2.0000 ± 0.0100 | 3.0000 ± 0.0200 | 3.5000 ± 0.0100 "
            "| 1.0000 ± 0.0300 | 900 |") in text
    assert "| memsinks | +25.0% ± 5.0% | +50.0% ± 10.0% | 0.0350 ± 0.0100 (+1.0% ± 0.3%) |" in text
    assert "## Memorization beyond loss" not in text  # nothing assessed


def test_memorization_table_and_the_files_the_report_writes(tmp_path):
    lines = memorization_table(results(assessed=True))
    assert lines[3].startswith("| method | mode | extractable R (k=32) |")
    assert lines[5] == ("| standard | full model | 50.0% ± 10.0 | 50.0% ± 10.0 | 0.500 | "
                        "0.750 ± 0.050 | 0.750 ± 0.050 | — | — | 12.5% |  | 1.00× |")
    assert lines[6] == ("| memsinks | sinks dropped | 50.0% ± 10.0 | 50.0% ± 10.0 | 0.500 | "
                        "0.750 ± 0.050 | 0.750 ± 0.050 | — | — | 12.5% | 4 | 1.50× |")
    out = write_report(tmp_path, results(assessed=True))
    assert out == tmp_path / "report.md" and "## Memorization beyond loss" in out.read_text()
    assert all((tmp_path / name).stat().st_size > 0 for name in ("curves.png", "gap.png"))
