"""report.md from results.json: its tables, from hand-made results."""

from memsinks.study.report import claims_table


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
