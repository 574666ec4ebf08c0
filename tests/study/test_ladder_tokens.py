"""The ladder over model size and training tokens, on hand-made results (no training)."""

from __future__ import annotations

import json

import pytest

from memsinks.study import ladder as ladder_module


def _study(path, tokens, closure, l_h=0.7, l_r=0.2, floor=0.4):
    path.mkdir(parents=True)
    results = {
        "entropy_floor": {"H": floor},
        "methods": {"standard": {"tokens": tokens, "modes": {"off": {
            "gap": [l_h - l_r, 0.01], "L_H": [l_h, 0.02], "L_R": [l_r, 0.01]}}},
            "memsinks": {}},
        "comparisons": {"memsinks": {"closure_vs_standard": [closure, 0.05],
                                     "dLH_rel_vs_standard": [0.01, 0.002]}},
    }
    (path / "results.json").write_text(json.dumps(results))
    return path


def test_rungs_are_size_and_token_budget_and_report_the_floor(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ladder_module, "non_embedding_parameters", lambda *_: 1_000_000)
    dirs = [_study(tmp_path / "short-s0", 2_000_000, 0.2),
            _study(tmp_path / "short-s1", 2_000_000, 0.4, l_h=0.9),
            _study(tmp_path / "long-s0", 8_000_000, 0.6)]
    rungs = ladder_module.run_ladder(dirs, tmp_path / "out")
    assert [(r["params"], r["tokens"], r["seeds"]) for r in rungs] == [
        (1_000_000, 2_000_000, 2), (1_000_000, 8_000_000, 1)]
    short, long = rungs
    assert short["tokens_per_param"] == 2.0 and long["tokens_per_param"] == 8.0
    assert short["methods"]["memsinks"]["closure_vs_standard"] == pytest.approx([0.3, 0.1])
    # L(H) − floor over seeds: 0.3 and 0.5
    assert short["standard"]["L_H_above_floor"] == pytest.approx([0.4, 0.1])
    assert long["standard"]["L_R_above_floor"][0] == pytest.approx(-0.2)
    saved = json.loads((tmp_path / "out" / "ladder.json").read_text())
    assert [r["tokens"] for r in saved] == [2_000_000, 8_000_000]
    assert (tmp_path / "out" / "ladder.png").stat().st_size > 0
    table = capsys.readouterr().out
    assert "| 1.00 M | 2.00 | 2 |" in table and "| 1.00 M | 8.00 | 1 |" in table


@pytest.mark.parametrize("floor", ["missing", "nan"])
def test_a_study_without_a_floor_leaves_the_floor_columns_out(tmp_path, monkeypatch, floor):
    monkeypatch.setattr(ladder_module, "non_embedding_parameters", lambda *_: 10)
    path = _study(tmp_path / "text", 100, 0.5)
    data = json.loads((path / "results.json").read_text())
    if floor == "missing":  # studies from before the floor was recorded
        del data["entropy_floor"]
    else:  # what a text corpus's study writes
        data["entropy_floor"] = {"R": float("nan"), "H": float("nan"), "V": float("nan")}
    (path / "results.json").write_text(json.dumps(data))
    (rung,) = ladder_module.ladder([path])
    assert "L_H_above_floor" not in rung["standard"]
    assert rung["standard"]["gap"][0] == pytest.approx(0.5)


def test_sizes_at_nearly_the_same_tokens_per_parameter_share_a_budget(tmp_path, monkeypatch):
    # two sizes trained at "5 tokens per parameter" whose streams tokenize a little apart,
    # and a third budget twice as large: the first two are one matched budget, the third not
    sizes = {"half": 500_000, "full": 1_000_000, "full-long": 1_000_000}
    monkeypatch.setattr(ladder_module, "non_embedding_parameters",
                        lambda study_dir, *_: sizes[study_dir.name])
    dirs = [_study(tmp_path / "half", 2_480_000, 0.3), _study(tmp_path / "full", 5_050_000, 0.4),
            _study(tmp_path / "full-long", 10_000_000, 0.5)]
    rungs = ladder_module.ladder(dirs)
    ratios = {r["dirs"][0].split("/")[-1]: r["tokens_per_param"] for r in rungs}
    assert ratios["half"] == pytest.approx(4.96) and ratios["full"] == pytest.approx(5.05)
    groups = ladder_module.budget_groups(rungs)
    by_name = {rungs[i]["dirs"][0].split("/")[-1]: ratio for i, ratio in groups.items()}
    assert by_name["half"] == by_name["full"] == pytest.approx((4.96 + 5.05) / 2)
    assert by_name["full-long"] == pytest.approx(10.0)
    ladder_module.plot(rungs, tmp_path / "ladder.png")
    assert (tmp_path / "ladder.png").stat().st_size > 0
