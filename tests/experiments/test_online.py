"""The online linear toy (memsinks.experiments.online): SGD over spaced repetitions."""

from __future__ import annotations

import json
import math

import pytest
import torch

from memsinks.experiments.online import OnlineConfig, item_memorization, main, run, run_stream
from memsinks.experiments.theory import TheoryConfig

torch.set_num_threads(1)

SMALL = TheoryConfig(hidden=32, n_items=4, seeds=(0,))
FAST = OnlineConfig(spacings=(4, 64), repetitions=6, warmup=64)


def test_item_memorization_is_the_share_of_each_offset_reproduced():
    offsets = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    excess = torch.tensor([[1.0, 5.0], [0.0, 1.0]], dtype=torch.float64)
    assert item_memorization(offsets, excess).tolist() == [0.5, 1.0]
    assert item_memorization(offsets, torch.zeros_like(offsets)).tolist() == [0.0, 0.0]


def test_a_stream_is_a_pure_function_of_its_seed():
    first = run_stream(SMALL, FAST, 8, seed=0)
    assert run_stream(SMALL, FAST, 8, seed=0) == first
    assert run_stream(SMALL, FAST, 8, seed=1) != first
    assert first["steps"] == FAST.warmup + FAST.repetitions * 8


def test_wider_spacing_means_more_forgetting_and_more_closure():
    """The paper's argument in the toy: with more fresh data between two occurrences, standard
    training keeps less of an item and the extension's dropped sinks remove a larger share."""
    near, far = (run_stream(SMALL, FAST, spacing, seed=0) for spacing in FAST.spacings)
    assert far["standard"]["forgetting"] > near["standard"]["forgetting"] + 0.2
    assert far["standard"]["memorization"] < near["standard"]["memorization"]
    assert far["extension"]["closure"] > near["extension"]["closure"] + 0.2
    # the extension's sinks see no general data, so they forget less than standard training
    assert far["extension"]["forgetting_own"] < far["standard"]["forgetting"]


def test_closure_is_one_minus_the_dropped_share_of_standard_memorization():
    result = run_stream(SMALL, FAST, 4, seed=0)
    for variant in ("paper", "extension"):
        row = result[variant]
        expected = 1 - row["memorization_dropped"] / result["standard"]["memorization"]
        assert row["closure"] == pytest.approx(expected, abs=1e-12)
        assert row["general_change"] == pytest.approx(
            row["general_loss_dropped"] - result["standard"]["general_loss"], abs=1e-12)


def test_run_summarises_every_spacing_over_seeds():
    results = run(TheoryConfig(hidden=32, n_items=4, seeds=(0, 1)), FAST)
    assert list(results["per_spacing"]) == ["4", "64"]
    row = results["per_spacing"]["64"]
    values = [r["extension"]["closure"] for r in row["per_seed"]]
    mean, se = row["summary"]["extension_closure"]
    assert mean == pytest.approx(sum(values) / 2)
    assert se == pytest.approx(abs(values[0] - values[1]) / 2)


@pytest.mark.parametrize("change", [{"spacings": ()}, {"repetitions": 1}, {"lr": 0.0}])
def test_bad_settings_are_refused(change):
    with pytest.raises(ValueError):
        OnlineConfig(**{**FAST.__dict__, **change}).validate()


def test_main_writes_results_and_plot(tmp_path, capsys):
    code = main(["--out", str(tmp_path), "online.spacings=4,16", "online.repetitions=3",
                 "online.warmup=8", "hidden=32", "n_items=4", "seeds=0"])
    assert code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["per_spacing"]) == {"4", "16"}
    assert results["online"]["repetitions"] == 3 and results["task"]["hidden"] == 32
    assert math.isfinite(results["per_spacing"]["16"]["summary"]["paper_closure"][0])
    assert (tmp_path / "online.png").stat().st_size > 0
    assert "| 16 |" in capsys.readouterr().out
    assert main(["--out", str(tmp_path), "online.repetitions=1"]) == 2
    assert main(["--out", str(tmp_path), "online.spacings=abc"]) == 2
    assert "online.spacings" not in capsys.readouterr().out


def test_the_cli_runs_the_online_toy(tmp_path, capsys):
    from memsinks.cli import main as cli

    out = tmp_path / "online"
    assert cli(["theory", "--online", "--out", str(out), "online.spacings=4",
                "online.repetitions=2", "online.warmup=0", "hidden=32", "n_items=4",
                "seeds=0"]) == 0
    assert json.loads((out / "results.json").read_text())["online"]["spacings"] == [4]
