"""The linear-network toy (memsinks.experiments.theory): closed forms, and the qualitative result
it shows."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from memsinks.experiments.theory import (
    DTYPE,
    Task,
    TheoryConfig,
    general_loss,
    main,
    make_task,
    memorization,
    min_norm_solution,
    parse_overrides,
    run_seed,
    sink_masks,
    storage_interference,
    train_linear,
    train_two_layer,
)

torch.set_num_threads(1)

# Four times the default step size for a quarter of the steps (the same gradient-flow time),
# so the runs below take about a second. For standard training, ablation and the extension on
# natural items and canaries this gave the default settings' numbers to 0.001 (seeds 0-2).
FAST = TheoryConfig(lr=0.2, steps=1000)

# A hand-sized case. Inputs in R^4, the rule t(x) = x1 + x2 on U = span(e1, e2). One general
# example e1 -> 1; a natural item (1, 1, 0, 0) with target t + 1 = 3; a canary e3 with target
# 0 + 1 = 1. The system fixes w1 = 1, w1 + w2 = 3, w3 = 1; nothing constrains w4, and the
# minimum-norm solution sets it to 0: w = (1, 2, 1, 0). Without the offsets it would be
# (1, 1, 0, 0), so the natural offset is stored as (0, 1, 0, 0), along a general feature
# (general inputs x = (z1, z2, 0, 0) feel it: E[z2^2] = 1, half of E[t(x)^2] = 2), and the
# canary's as (0, 0, 1, 0), which no general input ever sees.
X_HAND = torch.tensor([[1.0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0]], dtype=DTYPE)
Y_HAND = torch.tensor([[1.0], [3.0], [1.0]], dtype=DTYPE)
W_HAND = torch.tensor([[1.0, 2.0, 1.0, 0.0]], dtype=DTYPE)


def _hand_task(item: torch.Tensor, offset: float) -> Task:
    return Task(kind="hand", teacher=torch.tensor([[1.0, 1, 0, 0]], dtype=DTYPE),
                basis=torch.eye(4, dtype=DTYPE)[:, :2],
                domain_basis=torch.eye(4, dtype=DTYPE)[:, 3:],
                x_general=X_HAND[:1], y_general=Y_HAND[:1], x_items=item[None],
                offsets=torch.tensor([[offset]], dtype=DTYPE), repetitions=4.0)


def test_min_norm_solution_of_the_hand_example():
    assert torch.allclose(min_norm_solution(X_HAND, Y_HAND), W_HAND, atol=1e-12)
    # weights do not move an interpolating solution
    weights = torch.tensor([0.2, 0.5, 0.3], dtype=DTYPE)
    assert torch.allclose(min_norm_solution(X_HAND, Y_HAND, weights), W_HAND, atol=1e-12)
    # gradient descent from zero reaches it (its rows never leave the span of the inputs)
    assert torch.allclose(train_linear(X_HAND, Y_HAND, lr=1.0, steps=500), W_HAND, atol=1e-10)


def test_stored_offsets_hand_example_natural_overlaps_canary_exactly_zero():
    natural = _hand_task(X_HAND[1], 1.0)
    canary = _hand_task(X_HAND[2], 1.0)
    # offsets stored: natural (0, 1, 0, 0) -> E[z2^2] / E[(z1 + z2)^2] = 1/2; canary: 0
    assert storage_interference(natural) == pytest.approx(0.5, abs=1e-12)
    assert storage_interference(canary) == pytest.approx(0.0, abs=1e-12)
    x, y, w = natural.training_set()
    assert torch.allclose(min_norm_solution(x, y, w),
                          torch.tensor([[1.0, 2, 0, 0]], dtype=DTYPE), atol=1e-12)
    x, y, w = canary.training_set()
    solution = min_norm_solution(x, y, w)
    assert torch.allclose(solution, torch.tensor([[1.0, 0, 1, 0]], dtype=DTYPE), atol=1e-12)
    assert memorization(canary, canary.x_items @ solution.T) == pytest.approx(1.0, abs=1e-12)
    # the canary's stored weight is invisible to every general input: deleting it is free
    stored = solution - torch.tensor([[1.0, 0, 0, 0]], dtype=DTYPE)
    assert general_loss(canary, solution - stored) == pytest.approx(
        general_loss(canary, solution), abs=1e-12)


def test_two_layer_net_from_tiny_init_reaches_the_min_norm_solution():
    w = torch.full((3,), 1 / 3, dtype=DTYPE)
    for init, tolerance in ((1e-3, 1e-2), (1e-5, 1e-4)):
        w1, w2 = train_two_layer(X_HAND, Y_HAND, w, hidden=8, init_scale=init, lr=0.5,
                                 steps=3000, seed=0)
        # W1's rows move only within the span of the inputs; along e4 the product keeps what
        # the initialisation put there, O(init), so the match tightens with the init scale
        assert torch.allclose(w2 @ w1, W_HAND, atol=tolerance)


@pytest.mark.parametrize("kind", ["natural", "canary", "domain"])
def test_generated_task_gradient_descent_and_storage(kind):
    config = TheoryConfig()
    task = make_task(config, kind, seed=0)
    x, y, w = task.training_set()
    pinv = min_norm_solution(x, y, w)
    assert torch.allclose(train_linear(x, y, w, lr=0.5, steps=600), pinv, atol=1e-8)
    interference = storage_interference(task)
    if kind == "natural":
        assert interference > 0.1  # the offsets sit on general features
    else:
        assert interference < 1e-10  # exactly orthogonal to the general task


def test_tasks_share_everything_but_the_item_inputs():
    config = TheoryConfig()
    natural, canary = make_task(config, "natural", 3), make_task(config, "canary", 3)
    for field in ("teacher", "x_general", "y_general", "offsets"):
        assert torch.equal(getattr(natural, field), getattr(canary, field))
    assert torch.allclose(natural.x_items.norm(dim=1), canary.x_items.norm(dim=1))
    assert float((canary.x_items @ canary.basis).abs().max()) == 0.0
    assert float((natural.x_items @ natural.basis).norm()) > 0.0


def test_sink_masks():
    config = TheoryConfig(hidden=20, p_shared=0.5, p_active=0.3)
    general, items = sink_masks(config, 5, 7, "extension", seed=0)
    assert general.shape == (5, 20) and items.shape == (7, 20)
    assert bool((general[:, :10] == 1).all()) and bool((general[:, 10:] == 0).all())
    assert bool((items[:, :10] == 1).all()) and items[:, 10:].sum(1).tolist() == [3.0] * 7
    general, _ = sink_masks(config, 5, 7, "paper", seed=0)
    assert general[:, 10:].sum(1).tolist() == [3.0] * 5
    with pytest.raises(ValueError):
        sink_masks(config, 1, 1, "nope", seed=0)


def test_the_toy_shows_natural_items_entangled_and_canaries_apart():
    """Measured over seeds 0-19 with FAST before writing the thresholds: natural cost
    0.028-0.292, canary -0.002..-0.001; extension removes 97-104% of natural and 11-18% of
    canary memorization; the min-norm interference of natural offsets is 0.16-0.25."""
    config = FAST
    for seed in (0, 1):
        runs = {kind: run_seed(config, kind, seed, ("extension",))
                for kind in ("natural", "canary")}
        natural, canary = runs["natural"], runs["canary"]
        # closed form inside the experiment: GD reached the min-norm solution; canary offsets
        # cost the general task nothing there, natural ones do
        for run in runs.values():
            assert run["min_norm"]["trained_vs_min_norm"] < 0.02
        assert canary["min_norm"]["storage_interference"] < 1e-10
        assert natural["min_norm"]["storage_interference"] > 0.1
        # post-hoc: at matched removal (half of each kind's memorization), ablating the hidden
        # directions that carry it costs general loss for natural items, nothing for canaries
        natural_cost = natural["ablation"]["directions"]["cost_at"]["0.5"]
        canary_cost = canary["ablation"]["directions"]["cost_at"]["0.5"]
        assert abs(canary_cost) < 0.01
        assert natural_cost > canary_cost + 0.02
        # sinks for the items only: natural memorization leaves with the sinks (the general
        # data wipes it from the shared neurons), canaries mostly stay in the shared neurons
        assert natural["sinks"]["extension"]["closure"] > 0.9
        assert natural["sinks"]["extension"]["general_change"] < -0.05
        assert canary["sinks"]["extension"]["closure"] < 0.3
        assert abs(canary["sinks"]["extension"]["general_change"]) < 0.01


def test_domain_items_take_their_domain_with_the_sinks():
    """Measured over seeds 0-19 with FAST: dropping the extension's sinks raised the domain loss
    by 0.18-0.96 and left the general loss unchanged (|change| < 1e-3)."""
    run = run_seed(FAST, "domain", 0, ("extension",))
    assert run["sinks"]["extension"]["domain_change"] > 0.1
    assert abs(run["sinks"]["extension"]["general_change"]) < 0.01


def test_parse_overrides():
    config = parse_overrides(["seeds=0,4", "private_sweep=0.5,2", "hidden=32",
                              "offsets_in_rule_outputs=true", "lr=0.1"])
    assert config.seeds == (0, 4) and config.private_sweep == (0.5, 2.0)
    assert config.hidden == 32 and config.offsets_in_rule_outputs is True and config.lr == 0.1
    assert parse_overrides(["private_sweep="]).private_sweep == ()
    for bad in (["nope=1"], ["hidden"], ["offsets_in_rule_outputs=maybe"]):
        with pytest.raises(ValueError):
            parse_overrides(bad)
    with pytest.raises(ValueError):
        dataclasses.replace(TheoryConfig(), n_items=60).validate()


def test_main_writes_results_and_figure(tmp_path, capsys):
    out = tmp_path / "theory"
    assert main(["--out", str(out), "seeds=0,1", "steps=150", "lr=0.2", "hidden=32",
                 "private_sweep=0.5"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["summary"]) == {"natural", "canary", "domain"}
    assert set(results["private_sweep"]) == {"0.5"}
    assert results["config"]["steps"] == 150
    assert (out / "theory.png").stat().st_size > 0
    assert "| quantity | natural | canary | domain |" in capsys.readouterr().out
    assert main(["--out", str(out), "nope=1"]) == 2


def test_the_command_line_runs_the_toy(tmp_path):
    from memsinks.cli import main as cli_main

    out = tmp_path / "cli"
    assert cli_main(["theory", "--out", str(out), "seeds=0", "steps=100", "lr=0.2",
                     "hidden=32", "private_sweep=0.5"]) == 0
    assert json.loads((out / "results.json").read_text())["config"]["hidden"] == 32
    assert cli_main(["theory", "--out", str(out), "nope=1"]) == 2


def test_sink_masks_draw_general_examples_first_and_centre_items():
    from memsinks.experiments.theory import sink_masks

    config = TheoryConfig(hidden=20)
    general, _ = sink_masks(config, 3, 2, "paper", 0)
    _, extension = sink_masks(config, 3, 2, "extension", 0)
    _, centred = sink_masks(config, 3, 2, "centered", 0)
    # the extension's general examples draw nothing, so its items get the generator's first
    # draws, which the paper variant gives its general examples (the order fixed by the seed)
    assert torch.equal(extension, general[:2])
    n_shared, pool = config.n_shared, config.hidden - config.n_shared
    active = round(config.p_active * pool)
    assert torch.equal(centred[:, :n_shared], extension[:, :n_shared])
    assert torch.allclose(centred[:, n_shared:], extension[:, n_shared:] - active / pool)
