"""memsinks sweep: grid x seeds, reuse of unaffected methods, resumption, aggregation."""

import json

import pytest

from memsinks.cli import main
from memsinks.study.sweep import Grid, aggregate, point_name


def test_grid_parsing_and_points():
    grid = Grid.parse(["sinks.p_active=0.1,0.3", "methods=[standard,memsinks],[memsinks]"])
    assert grid.keys == ["sinks.p_active", "methods"]
    assert grid.values == [[0.1, 0.3], [["standard", "memsinks"], ["memsinks"]]]
    assert len(grid.points()) == 4
    assert point_name({"sinks.p_active": 0.1}) == "sinks.p_active=0.1"
    with pytest.raises(ValueError, match="key=v1,v2"):
        Grid.parse(["sinks.p_active"])


def test_aggregate_mean_and_standard_error_over_seeds():
    rows = [{"point": {"a": 1}, "seed": s, "x": [v, 9.0]} for s, v in enumerate([1.0, 2.0, 3.0])]
    (entry,) = aggregate(rows, [{"a": 1}], ["a"])
    assert entry["n_seeds"] == 3
    assert entry["x"][0] == pytest.approx(2.0)
    assert entry["x"][1] == pytest.approx(1.0 / 3**0.5)
    # one seed: the run's own error over documents
    (single,) = aggregate(rows[:1], [{"a": 1}], ["a"])
    assert single["x"] == [1.0, 9.0]


def test_sweep_runs_reuses_and_resumes(tmp_path, capsys):
    args = ["sweep", "configs/smoke.yaml", "--grid", "sinks.p_active=0.2,0.5", "--seeds", "0,1",
            "--name", "s", f"out_dir={tmp_path}", "methods=[standard,memsinks]",
            "train.steps=8", "data.repetitions=2", "train.eval_every=0"]
    assert main(args) == 0
    out = capsys.readouterr().out
    # standard training does not depend on the sink setting: trained once per seed, then reused
    assert out.count("[standard] standard training") == 2
    assert out.count("[memsinks] MemSinks") == 4
    summary = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert len(summary["rows"]) == 4 and len(summary["aggregate"]) == 2
    assert summary["aggregate"][0]["n_seeds"] == 2
    assert "memsinks/closure_vs_standard" in summary["aggregate"][0]
    assert (tmp_path / "s" / "sweep.md").is_file() and (tmp_path / "s" / "sweep.png").is_file()
    # a second call trains nothing
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "standard training" not in out and "MemSinks as in" not in out


def test_flatten_reports_losses_above_the_entropy_floor():
    from memsinks.study.sweep import flatten

    off = {"L_R": [0.25, 0.01], "L_H": [0.7, 0.02], "L_V": [0.4, 0.01], "gap": [0.45, 0.02]}
    results = {"entropy_floor": {"H": 0.4}, "methods": {"standard": {"modes": {"off": off}}},
               "comparisons": {}}
    row = flatten(results)
    assert row["standard/off/L_H_above_floor"] == pytest.approx([0.3, 0.02])
    assert row["standard/off/L_R_above_floor"] == pytest.approx([-0.15, 0.01])
    results["entropy_floor"] = {"R": float("nan"), "H": float("nan"), "V": float("nan")}
    assert not any(key.endswith("above_floor") for key in flatten(results))  # a text corpus
    del results["entropy_floor"]  # studies from before the floor was recorded
    assert not any(key.endswith("above_floor") for key in flatten(results))
