"""Post-hoc baselines: each does what it claims on a tiny model; the CLI runs them on a study's
standard model and stops bad input with one clear line."""

import copy
import json
import math

import numpy as np
import pytest
import torch

from memsinks.cli import main
from memsinks.model import ModelConfig, build_model
from memsinks.unlearn import METHODS, get
from memsinks.unlearn import zero_out as zero_out_module
from memsinks.unlearn.balanced_subnet import BalancedSubnetParams, learn_supermask
from memsinks.unlearn.common import (
    UnlearnData,
    ablate_neurons,
    batch_of,
    count_for,
    docset,
    lm_loss,
    mlp_layers,
    top_neurons,
)
from memsinks.unlearn.hard_concrete import HardConcreteParams, train_gates
from memsinks.unlearn.npo import npo_loss
from memsinks.unlearn.slimming import SlimmingParams, train_coefficients
from memsinks.unlearn.zero_out import zero_out_scores

VOCAB = 40
NAMES = {"zero-out", "activations", "slimming", "hard-concrete", "balanced-subnet",
         "gradient-ascent", "gradient-difference", "npo"}


def tiny_model(width: int = 64, layers: int = 2, seed: int = 0):
    return build_model(ModelConfig(preset="tiny", num_layers=layers, hidden_size=32,
                                   intermediate_size=width, num_heads=2, num_kv_heads=2,
                                   max_seq_len=64), VOCAB, seed=seed)


def random_docs(name: str, count: int, seed: int, length: int = 12):
    rng = np.random.default_rng(seed)
    return docset(name, [rng.integers(4, VOCAB, size=length).astype(np.int32)
                         for _ in range(count)])


@pytest.fixture()
def toy():
    data = UnlearnData(random_docs("forget", 8, 1), random_docs("retain", 16, 2),
                       torch.device("cpu"))
    return tiny_model(), data


def forget_loss(model, data) -> float:
    with torch.no_grad():
        return lm_loss(model, batch_of(data.forget, np.arange(len(data.forget)),
                                       data.device)).item()


def retain_loss(model, data) -> float:
    with torch.no_grad():
        return lm_loss(model, batch_of(data.retain, np.arange(len(data.retain)),
                                       data.device)).item()


def run_method(name, model, data, strengths, **overrides):
    """The method's steps, lazily: the model is at each strength while its step is current."""
    method = get(name)
    params = method.params({k: str(v) for k, v in overrides.items()})
    return method.run(model, data, strengths, params)


def test_every_method_is_registered_with_a_valid_grid():
    assert set(METHODS) == NAMES
    for method in METHODS.values():
        assert method.description and method.strength_name and method.default_grid
        for strength in method.default_grid:
            method.check_strength(strength)


# -- ablation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 1.0])
def test_ablation_zeroes_exactly_the_top_fraction_per_layer(fraction):
    model = tiny_model()
    rng = np.random.default_rng(0)
    scores = [rng.random(64) for _ in mlp_layers(model)]
    chosen = top_neurons(scores, fraction)
    before = copy.deepcopy(model)
    ablate_neurons(model, chosen)
    for layer, (mlp, old, index, values) in enumerate(
            zip(mlp_layers(model), mlp_layers(before), chosen, scores, strict=True)):
        assert len(index) == count_for(fraction, 64) == math.floor(fraction * 64)
        assert set(index) == set(np.argsort(-values)[:len(index)].tolist()), layer
        dead_columns = (mlp.down_proj.weight == 0).all(dim=0)
        assert dead_columns.nonzero().flatten().tolist() == sorted(index.tolist())
        for name in ("gate_proj", "up_proj"):
            rows = getattr(mlp, name).weight
            assert (rows[index] == 0).all()
            kept = np.setdiff1d(np.arange(64), index)
            assert torch.equal(rows[kept], getattr(old, name).weight[kept])
    # the output does not depend on the ablated neurons' remaining inputs
    ids = torch.randint(4, VOCAB, (2, 10))
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        for mlp, index in zip(mlp_layers(model), chosen, strict=True):
            mlp.gate_proj.weight[index] = torch.randn(len(index), 32)
            mlp.up_proj.weight[index] = torch.randn(len(index), 32)
        assert torch.equal(model(input_ids=ids).logits, expected)


def test_start_layer_spares_the_layers_below():
    chosen = top_neurons([np.arange(10.0), np.arange(10.0)], 0.3, start_layer=1)
    assert len(chosen[0]) == 0 and chosen[1].tolist() == [7, 8, 9]


def test_localization_runs_restore_before_each_fraction(toy):
    model, data = toy
    steps = list(run_method("activations", model, data, [0.5, 0.1]))
    assert [s.strength for s in steps] == [0.1, 0.5]
    assert steps[-1].details["ablated_per_layer"] == [32, 32]
    # the model is left at the last (largest) fraction, not the union of both
    for mlp in mlp_layers(model):
        assert int((mlp.down_proj.weight == 0).all(dim=0).sum()) == 32


# -- localization scores -------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [zero_out_module.LOGIT_BUDGET, 1])
def test_zero_out_scores_equal_brute_force_loss_increase(monkeypatch, budget):
    monkeypatch.setattr(zero_out_module, "LOGIT_BUDGET", budget)  # 1: one neuron per pass
    model = tiny_model(width=2).eval()
    docs = random_docs("forget", 3, 5, length=9)
    batch = batch_of(docs, np.arange(3), torch.device("cpu"))
    scores = zero_out_scores(model, batch.input_ids, batch.labels)
    with torch.no_grad():
        base = lm_loss(model, batch).item()
        for layer in range(2):
            for neuron in range(2):
                ablated = copy.deepcopy(model)
                index = [np.zeros(0, dtype=np.int64)] * 2
                index[layer] = np.array([neuron])
                ablate_neurons(ablated, index)
                brute = lm_loss(ablated, batch).item() - base
                assert scores[layer][neuron] == pytest.approx(brute, abs=1e-5)


def test_activation_scores_are_mean_activation_times_output_norm(toy):
    model, data = toy
    method = get("activations")
    scores, _ = method.scores(model, data, method.params())
    from memsinks.unlearn.common import recorded_activations

    batch = batch_of(data.forget, np.arange(len(data.forget)), data.device)
    with torch.no_grad(), recorded_activations(model) as acts:
        model(input_ids=batch.input_ids)
    # every document has 12 tokens: positions 0..12 predict a token, position 13 (EOS) does not
    for act, mlp, got in zip(acts, mlp_layers(model), scores, strict=True):
        mean = act[:, :13].reshape(-1, act.shape[-1]).double().mean(0).abs()
        expected = mean * mlp.down_proj.weight.detach().double().norm(dim=0)
        assert np.allclose(got, expected.numpy(), rtol=1e-6)


def test_slimming_coefficients_are_learned_and_the_l1_term_shrinks_them(toy):
    model, data = toy
    params = SlimmingParams(steps=15, batch_size=4, l1_weight=1.0)
    coefficients, history = train_coefficients(model, data, params)
    values = torch.cat(coefficients)
    assert history["penalty_start"] == pytest.approx(1.0)
    assert history["penalty_end"] < 0.95
    assert values.std() > 0 and not torch.allclose(values, torch.ones_like(values))
    assert all(p.requires_grad for p in model.parameters())  # weights unfrozen again


def test_hard_concrete_gates_are_learned_and_the_l0_term_shrinks_them(toy):
    model, data = toy
    params = HardConcreteParams(steps=15, batch_size=4, l0_weight=1.0)
    log_alphas, history = train_gates(model, data, params)
    values = torch.cat(log_alphas)
    assert history["penalty_end"] < history["penalty_start"]
    assert values.std() > 0 and (values != 0).any()  # init log_alpha is 0 for p = 0.5
    again, _ = train_gates(model, data, params)
    assert torch.equal(torch.cat(again), values)  # deterministic given the seed


# -- balanced subnet -------------------------------------------------------------------------------


def test_balanced_subnet_learns_a_mask_and_drops_its_weights(toy):
    model, data = toy
    params = BalancedSubnetParams(steps=10, batch_size=4)
    masks, history = learn_supermask(copy.deepcopy(model), data, 0.05, params)
    assert history["mask_entries_changed"] > 0  # the learned mask is not the initial one
    linears = [getattr(m, n) for m in mlp_layers(model)
               for n in ("gate_proj", "up_proj", "down_proj")]
    assert [int((m == 0).sum()) for m in masks] == [math.floor(0.05 * linear.weight.numel())
                                                   for linear in linears]
    before = forget_loss(model, data)
    step, = run_method("balanced-subnet", model, data, [0.05], steps=10, batch_size=4)
    for linear, mask in zip(linears, masks, strict=True):
        assert (linear.weight[mask == 0] == 0).all()
    assert step.details["dropped_weights"] == sum(int((m == 0).sum()) for m in masks)
    assert forget_loss(model, data) > before


# -- fine-tuning ---------------------------------------------------------------------------------


def test_gradient_ascent_raises_the_forget_loss(toy):
    model, data = toy
    before = forget_loss(model, data)
    losses = []
    for step in run_method("gradient-ascent", model, data, [2, 6], lr=1e-3, batch_size=4):
        losses.append(forget_loss(model, data))
        assert len(step.details["loss"]) == step.strength
    assert before < losses[0] < losses[1]


def test_gradient_difference_raises_the_forget_loss_and_spares_retain_data(toy):
    model, data = toy
    ascent = copy.deepcopy(model)
    before = forget_loss(model, data), retain_loss(model, data)
    list(run_method("gradient-ascent", ascent, data, [10], lr=1e-3, batch_size=4))
    list(run_method("gradient-difference", model, data, [10], lr=1e-3, batch_size=4))
    assert forget_loss(model, data) > before[0]
    assert retain_loss(model, data) < retain_loss(ascent, data)


def test_npo_loss_at_the_reference_is_two_over_beta_log_two(toy):
    model, data = toy
    batch = batch_of(data.forget, np.arange(4), data.device)
    reference = copy.deepcopy(model)
    for beta in (0.1, 0.5):
        assert npo_loss(model, reference, batch, beta).item() == pytest.approx(
            2 / beta * math.log(2), rel=1e-6)
    before = forget_loss(model, data)
    step, = run_method("npo", model, data, [8], lr=1e-3, batch_size=4)
    assert step.details["loss"][0] == pytest.approx(20 * math.log(2), rel=1e-5)
    assert forget_loss(model, data) > before


def test_strengths_out_of_range_are_refused():
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        get("zero-out").check_strength(1.5)
    with pytest.raises(ValueError, match="whole number"):
        get("npo").check_strength(2.5)
    with pytest.raises(ValueError, match="has no parameter"):
        get("npo").params({"betta": "0.2"})


# -- the command line on a study -----------------------------------------------------------------


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main(["run", "configs/smoke.yaml", f"out_dir={out}", "--quiet",
                 "methods=[standard]"]) == 0
    return out / "smoke"


def test_cli_unlearn_writes_one_result_per_strength(study, capsys):
    args = ["unlearn", str(study / "standard"), "--method", "activations",
            "--strength", "0.05,0.5", "--quiet"]
    assert main(args) == 0
    results = {}
    for label in ("0.05", "0.5"):
        results[label] = json.loads(
            (study / "standard" / "unlearn" / "activations" / f"{label}.json").read_text())
    for result in results.values():
        assert result["gap"][0] == pytest.approx(result["L_H"][0] - result["L_R"][0])
        assert result["wall_seconds"] >= 0 and result["forget"]["source"] == "R"
        assert result["retain"]["documents"] > 0 and result["before"]["L_V"]
    assert results["0.05"]["details"]["ablated_per_layer"] == [3]  # floor(0.05 * 64)
    assert results["0.5"]["details"]["ablated_per_layer"] == [32]
    assert main(args[:-1]) == 0  # same configuration: loaded, not recomputed
    assert capsys.readouterr().out.count("finished earlier") == 2


def test_cli_unlearn_with_a_forget_file_of_training_documents(study, tmp_path):
    manifest = json.loads((study / "manifest.json").read_text())
    path = tmp_path / "forget.jsonl"
    path.write_text("".join(json.dumps({"text": d["text"]}) + "\n"
                            for d in manifest["repeated"][:2]))
    assert main(["unlearn", str(study / "standard"), "--method", "gradient-ascent",
                 "--strength", "2", "--forget", str(path), "--quiet"]) == 0
    found = list((study / "standard" / "unlearn").glob("forget-*/gradient-ascent/2.json"))
    result = json.loads(found[0].read_text())
    assert result["forget"]["documents"] == 2 and len(result["L_forget"]) == 2


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("memsinks: error: ") and "\n" not in err
    return err


def test_cli_unlearn_bad_input_is_one_clear_line(study, tmp_path, capsys):
    empty = tmp_path / "study"
    (empty / "standard").mkdir(parents=True)
    (empty / "config.yaml").write_text((study / "config.yaml").read_text())
    assert main(["unlearn", str(empty / "standard"), "--method", "npo"]) == 2
    assert "holds no saved model" in one_line_error(capsys)
    assert main(["unlearn", str(tmp_path / "nowhere"), "--method", "npo"]) == 2
    assert "does not exist" in one_line_error(capsys)
    assert main(["unlearn", str(study / "standard"), "--method", "zero-out",
                 "--strength", "1.5"]) == 2
    assert "must lie in [0, 1]" in one_line_error(capsys)
    assert main(["unlearn", str(study / "standard"), "--method", "forget-all"]) == 2
    assert "is unknown" in one_line_error(capsys)
    stranger = tmp_path / "stranger.txt"
    stranger.write_text("Once upon a time , there was a dog .\n")
    assert main(["unlearn", str(study / "standard"), "--method", "npo",
                 "--forget", str(stranger)]) == 2
    assert "never occur in the training stream" in one_line_error(capsys)
    sink_model = tmp_path / "sinks" / "memsinks" / "model"
    sink_model.mkdir(parents=True)
    (sink_model.parent.parent / "config.yaml").write_text((study / "config.yaml").read_text())
    (sink_model / "sinks.json").write_text("{}")
    assert main(["unlearn", str(sink_model.parent), "--method", "npo"]) == 2
    assert "trained with sinks" in one_line_error(capsys)


def test_cli_tradeoff_with_a_tiny_grid(study, tmp_path):
    out = tmp_path / "tradeoff"
    assert main(["tradeoff", str(study), "--methods", "activations,npo",
                 "--strengths", "activations=0,0.5", "--strengths", "npo=1,3",
                 "--out", str(out), "--quiet"]) == 0
    result = json.loads((out / "tradeoff.json").read_text())
    panel = result["panels"]["natural"]
    assert set(panel["methods"]) == {"activations", "npo"}
    assert [p["strength"] for p in panel["methods"]["npo"]["points"]] == [1, 3]
    assert "standard" in panel["references"] and panel["methods"]["npo"]["sweep_seconds"] > 0
    unablated = panel["methods"]["activations"]["points"][0]
    assert unablated["L_V"][0] == pytest.approx(panel["references"]["standard"]["L_V"][0],
                                                abs=1e-5)
    assert (out / "tradeoff.png").stat().st_size > 0
    assert "deduplication" in (out / "tradeoff.md").read_text()  # named as missing
    # extraction at every point; relearning at the strongest point within +10% of L(V)
    for entry in panel["methods"].values():
        for point in entry["points"]:
            assert 0 <= point["extraction"]["rate"][0] <= 1
    budget = 1.10 * panel["references"]["standard"]["L_V"][0]
    for entry in panel["methods"].values():
        relearned = [p for p in entry["points"] if "relearn" in p]
        assert len(relearned) == 1
        inside = [p for p in entry["points"] if p["L_V"][0] <= budget]
        if inside:
            assert relearned[0]["strength"] == max(p["strength"] for p in inside)
        steps = relearned[0]["relearn"]["steps"]
        assert steps is None or 0 <= steps <= relearned[0]["relearn"]["max_steps"]


def test_help_of_the_unlearning_subcommands(capsys):
    for sub in ("unlearn", "tradeoff"):
        with pytest.raises(SystemExit) as exit_info:
            main([sub, "--help"])
        assert exit_info.value.code == 0
        assert "usage: memsinks " + sub in capsys.readouterr().out
