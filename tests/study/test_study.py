"""A whole study end to end on a seconds-sized config, through the command line."""

import json
import shutil

import numpy as np
import pytest

from memsinks.cli import main
from memsinks.modelio import load_model
from memsinks.study.run import evaluate_saved


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main(["run", "configs/smoke.yaml", f"out_dir={out}", "--quiet"]) == 0
    return out / "smoke"


def test_study_writes_everything(study):
    for name in ("config.yaml", "run.json", "manifest.json", "results.json", "report.md",
                 "curves.png", "gap.png", "tokenizer.json"):
        assert (study / name).is_file(), name
    results = json.loads((study / "results.json").read_text())
    assert set(results["methods"]) == {"standard", "dedup", "memsinks", "memsinks-repeated",
                                       "goldfish", "gradient-mask"}
    expected_modes = {"standard": {"off"}, "dedup": {"off"}, "goldfish": {"off"},
                      "gradient-mask": {"off", "drop"}}
    for name, metrics in results["methods"].items():
        modes = metrics["modes"]
        assert set(modes) == expected_modes.get(name, {"keep", "drop", "own"})
        for values in modes.values():
            for key in ("L_R", "L_H", "L_V", "gap"):
                mean, se = values[key]
                assert se >= 0
            assert values["gap"][0] == pytest.approx(values["L_H"][0] - values["L_R"][0])
        assert len(metrics["curve"]) == 2
    for name in ("memsinks", "memsinks-repeated", "gradient-mask"):
        c = results["comparisons"][name]
        for key in ("closure_vs_standard", "closure_within", "dLV_vs_standard", "dLV_vs_dedup",
                    "dLH_vs_standard", "dLH_rel_vs_dedup"):
            assert len(c[key]) == 2
    assert set(results["entropy_floor"]) == {"R", "H", "V"}
    report = (study / "report.md").read_text()
    assert "memsinks-repeated" in report and "gap closed vs standard" in report
    assert "Memorization beyond loss" in report and "masked pool zeroed" in report
    assert "The paper's three claims" in report


def test_every_method_gets_memorization_metrics_in_its_static_modes(study):
    results = json.loads((study / "results.json").read_text())
    for name, metrics in results["methods"].items():
        assessment = metrics["assessment"]
        assert set(assessment["modes"]) == set(metrics["modes"]) - {"own"}, name
        for values in assessment["modes"].values():
            for row in values["extraction"]["R"].values():
                assert 0 <= row["rate"][0] <= 1 and 0 <= row["rouge_l"][0] <= 1
            assert set(values["mia"]) == {"loss", "zlib", "min_k", "min_k_plus_plus"}
            assert all(0 <= v["auroc"] <= 1 for v in values["mia"].values())
        relearn = assessment["relearn"]
        if name in ("dedup", "memsinks", "memsinks-repeated", "gradient-mask"):
            assert relearn["steps"] is None or 0 <= relearn["steps"] <= relearn["max_steps"]
            full = "own" if name.startswith("memsinks") else "off"
            source = "standard" if name == "dedup" else name
            assert relearn["target"] == pytest.approx(
                results["methods"][source]["modes"][full]["L_R"][0])
            if name != "dedup":
                again = assessment["relearn_standard"]
                assert again["target"] == pytest.approx(
                    results["methods"]["standard"]["modes"]["off"]["L_R"][0])
        else:
            assert relearn is None


def test_a_finished_run_without_metrics_gets_them_on_rerun(study):
    path = study / "goldfish" / "metrics.json"
    stored = json.loads(path.read_text())
    stored.pop("assessment")
    path.write_text(json.dumps(stored))
    assert main(["run", "configs/smoke.yaml", f"out_dir={study.parent}", "--quiet"]) == 0
    assert "assessment" in json.loads(path.read_text())


def test_a_stale_relearning_target_reruns_relearning_only(study):
    """A new relearning target (say, standard added to a study) keeps the per-mode metrics."""
    path = study / "dedup" / "metrics.json"
    stored = json.loads(path.read_text())
    right = stored["assessment"]["relearn"]["target"]
    stored["assessment"]["relearn"]["target"] = right + 1.0
    stored["assessment"]["modes"]["off"]["kept"] = True  # a generation result to be reused
    path.write_text(json.dumps(stored))
    assert main(["run", "configs/smoke.yaml", f"out_dir={study.parent}", "--quiet"]) == 0
    again = json.loads(path.read_text())["assessment"]
    assert again["relearn"]["target"] == pytest.approx(right)
    assert again["modes"]["off"].pop("kept") is True
    stored["assessment"] = again
    path.write_text(json.dumps(stored))


def test_rerun_reuses_finished_methods(study, capsys):
    before = (study / "memsinks" / "metrics.json").read_text()
    out = str(study.parent)
    assert main(["run", "configs/smoke.yaml", f"out_dir={out}"]) == 0
    assert "finished earlier" in capsys.readouterr().out
    assert (study / "memsinks" / "metrics.json").read_text() == before


def test_saved_model_evaluates_to_the_same_numbers(study):
    results = json.loads((study / "results.json").read_text())
    again = evaluate_saved(study / "memsinks", modes=["drop", "keep"])
    for mode in ("drop", "keep"):
        for key in ("L_R", "L_H", "L_V"):
            assert again[mode][key][0] == pytest.approx(
                results["methods"]["memsinks"]["modes"][mode][key][0], abs=1e-5)
    model, sinks = load_model(study / "standard" / "model")
    assert sinks is None
    none = evaluate_saved(study / "memsinks", modes=["drop", "keep"], rescale="none")
    assert none["keep"]["L_V"][0] == pytest.approx(again["keep"]["L_V"][0], abs=1e-6)
    assert none["drop"]["L_V"][0] != pytest.approx(again["drop"]["L_V"][0], abs=1e-6)


def test_cli_bad_input_is_one_clear_line(capsys, tmp_path):
    assert main(["run", "configs/smoke.yaml", "train.steps=0", f"out_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("memsinks: error: train.steps = 0") and "\n" not in err
    assert main(["eval", str(tmp_path / "nothing" / "memsinks")]) == 2
    assert main(["run", "configs/smoke.yaml", "model.max_seq_len=40", f"out_dir={tmp_path}"]) == 2
    assert "exceed model.max_seq_len = 40" in capsys.readouterr().err


def test_help_of_every_subcommand(capsys):
    for sub in ("run", "train", "eval", "sweep", "export", "report"):
        with pytest.raises(SystemExit) as exit_info:
            main([sub, "--help"])
        assert exit_info.value.code == 0
        assert "usage: memsinks " + sub in capsys.readouterr().out


def test_export_loads_as_plain_transformers_model_with_drop_mode_logits(study, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "exported"
    assert main(["export", str(study / "memsinks"), "--out", str(out)]) == 0
    plain = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    model, sinks = load_model(study / "memsinks" / "model")
    assert plain.config.intermediate_size == sinks.n_shared
    ids = tokenizer("Once upon a time, Tom went to the park.", return_tensors="pt").input_ids
    assert tokenizer.unk_token_id not in ids[0].tolist()
    ids = torch.cat([torch.tensor([[tokenizer.bos_token_id]]), ids], dim=1)
    with torch.no_grad(), sinks.mode_of("drop"):
        expected = model(input_ids=ids).logits
    with torch.no_grad():
        got = plain(input_ids=ids).logits
    assert (got - expected).abs().max().item() < 1e-5


def test_deleting_one_document_raises_its_loss_more_than_the_others(study):
    from memsinks.study.deletion import delete_documents

    result = delete_documents(study / "memsinks", indices=[0, 3], progress=False)
    assert [r["index"] for r in result["targets"]] == [0, 3]
    assert (study / "memsinks" / "deletion.png").is_file()
    model, sinks = load_model(study / "memsinks" / "model")
    from memsinks.config import load, mixture_of
    from memsinks.measure.losses import document_nll

    mixture = mixture_of(load(study / "config.yaml"))
    repeated = mixture.repeated
    counts = repeated.predicted_tokens
    keep = document_nll(model, repeated, sinks, "keep") / counts
    gone = document_nll(model, repeated, sinks, "exclude", exclude=(int(repeated.ids[3]),))
    assert result["targets"][1]["target_rise"] == pytest.approx(gone[3] / counts[3] - keep[3])
    with pytest.raises(ValueError, match="not a sink method"):
        delete_documents(study / "standard")
    with pytest.raises(ValueError, match="outside R"):
        delete_documents(study / "memsinks", indices=[99])


def test_frontier_reproduces_the_study_s_own_closure_from_separate_directories(study, tmp_path,
                                                                                capsys):
    results = json.loads((study / "results.json").read_text())
    assert main(["frontier", str(study / "standard"), str(study / "memsinks-repeated"),
                 str(study / "dedup"), "--out", str(tmp_path / "frontier")]) == 0
    frontier = json.loads((tmp_path / "frontier" / "frontier.json").read_text())
    sinks, dedup = frontier["rows"]
    expected = results["comparisons"]["memsinks-repeated"]
    assert sinks["mode"] == "drop" and dedup["mode"] == "off"
    assert sinks["closure"] == pytest.approx(expected["closure_vs_standard"], abs=1e-12)
    assert sinks["dLH_rel"] == pytest.approx(expected["dLH_rel_vs_standard"], abs=1e-12)
    assert sinks["dLV_rel"] == pytest.approx(expected["dLV_rel_vs_standard"], abs=1e-12)
    assert (tmp_path / "frontier" / "frontier.png").stat().st_size > 0
    assert "| memsinks-repeated (drop) |" in capsys.readouterr().out
    # standard stopped at each evaluation step, from its own learning curve
    curve = json.loads((study / "standard" / "metrics.json").read_text())["curve"]
    early = frontier["stopped_early"]
    assert [p["step"] for p in early] == [p["step"] for p in curve]
    assert early[-1]["closure"] == 0 and early[-1]["dLH_rel"] == 0
    first, last = curve[0]["off"], curve[-1]["off"]
    assert early[0]["closure"] == pytest.approx(
        1 - (first["L_H"] - first["L_R"]) / (last["L_H"] - last["L_R"]))
    assert early[0]["dLV_rel"] == pytest.approx(first["L_V"] / last["L_V"] - 1)


def test_frontier_compares_other_streams_of_the_same_documents_only(study, tmp_path, capsys):
    """Fewer repetitions of the same R is a point on the frontier; another R is refused."""
    for name, override in (("fewer", "data.repetitions=2"), ("other", "data.seed=5")):
        assert main(["run", "configs/smoke.yaml", f"out_dir={tmp_path / name}", "--quiet",
                     "methods=[standard]", override]) == 0
    out = str(tmp_path / "frontier")
    assert main(["frontier", str(study / "standard"),
                 str(tmp_path / "fewer" / "smoke" / "standard"), "--out", out]) == 0
    row = json.loads((tmp_path / "frontier" / "frontier.json").read_text())["rows"][0]
    assert row["mode"] == "off" and np.isfinite(row["closure"][0])
    capsys.readouterr()
    assert main(["frontier", str(study / "standard"),
                 str(tmp_path / "other" / "smoke" / "standard"), "--out", out]) == 2
    assert "other documents" in capsys.readouterr().err


def test_ladder_groups_studies_by_size_and_combines_seeds(study, tmp_path, capsys):
    from memsinks.model import count_non_embedding
    from memsinks.modelio import load_model

    results = json.loads((study / "results.json").read_text())
    out = tmp_path / "ladder"
    assert main(["ladder", str(study), "--out", str(out)]) == 0
    (rung,) = json.loads((out / "ladder.json").read_text())
    model, _ = load_model(study / "standard" / "model")
    assert rung["params"] == count_non_embedding(model) and rung["seeds"] == 1
    expected = results["comparisons"]["memsinks-repeated"]["closure_vs_standard"]
    assert rung["methods"]["memsinks-repeated"]["closure_vs_standard"] == pytest.approx(expected)
    assert (out / "ladder.png").stat().st_size > 0
    assert "| memsinks-repeated |" in capsys.readouterr().out
    # two studies of one size are two seeds of a rung: mean and error over them
    twin = tmp_path / "twin"
    shutil.copytree(study, twin)
    data = json.loads((twin / "results.json").read_text())
    data["comparisons"]["memsinks-repeated"]["closure_vs_standard"] = [expected[0] + 0.2, 0.01]
    (twin / "results.json").write_text(json.dumps(data))
    assert main(["ladder", str(study), str(twin), "--out", str(out)]) == 0
    (rung,) = json.loads((out / "ladder.json").read_text())
    mean, se = rung["methods"]["memsinks-repeated"]["closure_vs_standard"]
    assert rung["seeds"] == 2
    assert mean == pytest.approx(expected[0] + 0.1) and se == pytest.approx(0.1)
    capsys.readouterr()
    assert main(["ladder", str(tmp_path), "--out", str(out)]) == 2  # not a study
    assert "finished study directories" in capsys.readouterr().err


def test_frontier_combines_seeds_from_path_patterns(study, tmp_path, capsys):
    for seed in (0, 1):
        shutil.copytree(study, tmp_path / f"seed{seed}")
    out = tmp_path / "frontier"
    pattern = str(tmp_path / "seed{seed}")
    assert main(["frontier", f"{pattern}/standard", f"{pattern}/memsinks-repeated",
                 "--seeds", "0,1", "--out", str(out)]) == 0
    combined = json.loads((out / "frontier.json").read_text())
    single = json.loads((study / "results.json").read_text())["comparisons"]["memsinks-repeated"]
    (row,) = combined["rows"]
    assert combined["seeds"] == [0, 1] and len(combined["per_seed"]) == 2
    assert row["closure"][0] == pytest.approx(single["closure_vs_standard"][0])
    assert row["closure"][1] == pytest.approx(0, abs=1e-12)  # the same run twice
    assert "per seed" in capsys.readouterr().out
    assert main(["frontier", str(study / "standard"), f"{pattern}/memsinks-repeated",
                 "--seeds", "0,1", "--out", str(out)]) == 2
    assert "{seed} placeholder" in capsys.readouterr().err
