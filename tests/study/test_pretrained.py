"""Sinks added to a pretrained model: the widening, the study's base, fine-tuning from it."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_families import CONFIGS, tiny

from memsinks import config as config_io
from memsinks.cli import main
from memsinks.families import add_sink_pool, sink_pool_size
from memsinks.modelio import load_model
from memsinks.sinks import SinkConfig, Sinks, drop_sinks
from memsinks.study.fingerprint import method_fingerprint
from memsinks.study.pretrained import base_fingerprint

SMOKE = ["configs/smoke.yaml", "methods=[standard,memsinks,memsinks-repeated,gradient-mask]",
         "sinks.drop_rescale=none"]


@pytest.mark.parametrize("model_type", sorted(CONFIGS))
def test_a_sink_pool_leaves_the_model_unchanged_until_it_trains(model_type):
    model = tiny(model_type)
    x = torch.randint(3, 100, (2, 12))
    before = model(x).logits
    family_width = model.config.to_dict().get("intermediate_size") or 128
    width = add_sink_pool(model, sink_pool_size(family_width, 0.7), seed=1)
    assert width == family_width
    sinks = Sinks(model, SinkConfig(drop_rescale="none"), n_shared=width)
    assert sinks.n_sink == sink_pool_size(width, 0.7) and sinks.n_shared == width
    for mode in ("off", "train", "keep", "drop"):
        with sinks.mode_of(mode, ids=torch.full_like(x, 7) if mode == "train" else None):
            assert torch.allclose(model(x).logits, before, atol=1e-6), mode
    # the first gradient reaches the sinks through their (zero) output columns
    model.train()
    with sinks.mode_of("train", ids=torch.full_like(x, 7)):
        model(x, labels=x).loss.backward()
    output = sinks.family.output_of(sinks.mlps[0])
    grad = output.weight.grad.T if sinks.family.conv1d else output.weight.grad
    assert grad[:, width:].abs().sum() > 0
    # and the sink-free export is the pretrained model again
    plain = drop_sinks(model.eval(), sinks)
    assert torch.allclose(plain(x).logits, before, atol=1e-6)
    assert not hasattr(plain.config, "memsinks_n_shared")


def test_a_widened_model_is_not_widened_again_and_keeps_a_pool():
    model = tiny("llama")
    add_sink_pool(model, 8)
    with pytest.raises(ValueError, match="already has a sink pool"):
        add_sink_pool(model, 8)
    with pytest.raises(ValueError, match="no sink pool"):
        Sinks(model, SinkConfig(), n_shared=72)
    with pytest.raises(ValueError, match="empty"):
        add_sink_pool(tiny("llama"), 0)


def test_config_errors_name_the_fix(tmp_path):
    cases = [(["model.init_from=pretrain"], "pretrain.steps"),
             (["pretrain.steps=5"], "model.init_from=pretrain"),
             ([f"model.init_from={tmp_path / 'nothing'}"], "does not exist"),
             (["model.init_from=pretrain", "pretrain.steps=5", "methods=[standard-narrow]"],
              "standard-narrow")]
    for overrides, message in cases:
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            config_io.load("configs/smoke.yaml", overrides)


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    args = ["run", *SMOKE, f"out_dir={out}", "name=ft", "model.init_from=pretrain",
            "pretrain.steps=8", "--quiet"]
    assert main(args) == 0
    return out / "ft"


def first_loss(method_dir):
    return json.loads((method_dir / "log.jsonl").read_text().splitlines()[0])["loss"]


def test_every_method_fine_tunes_the_same_base(finetuned):
    results = json.loads((finetuned / "results.json").read_text())
    assert results["base"]["steps"] == 8 and len(results["base"]["L_V"]) == 2
    # step 0 of every method is the base's function: widening with zero columns changes nothing
    losses = {m: first_loss(finetuned / m) for m in results["methods"]}
    assert len(set(losses.values())) == 1, losses
    base_width = json.loads((finetuned / "base/model/config.json").read_text())[
        "intermediate_size"]
    for name in ("memsinks", "memsinks-repeated", "gradient-mask"):
        saved = json.loads((finetuned / name / "model/sinks.json").read_text())
        assert saved["n_shared"] == base_width
        assert saved["n_sink"] == sink_pool_size(base_width, 0.7)
        model, sinks = load_model(finetuned / name / "model")
        assert sinks.n_shared == base_width
    assert "closure_vs_standard" in results["comparisons"]["memsinks"]
    # the export drops the sinks back to the base's width
    assert main(["export", str(finetuned / "memsinks"), "--out",
                 str(finetuned / "export")]) == 0
    exported = json.loads((finetuned / "export/config.json").read_text())
    assert exported["intermediate_size"] == base_width and "memsinks_n_shared" not in exported


def test_the_base_is_reused_and_enters_the_fingerprint(finetuned):
    config = config_io.load(finetuned / "config.yaml")
    stamp = (finetuned / "base/model/model.safetensors").stat().st_mtime_ns
    before = method_fingerprint(config, "memsinks")
    longer = config_io.load(finetuned / "config.yaml", ["pretrain.steps=9"])
    assert method_fingerprint(longer, "memsinks") != before
    fresh = config_io.load(finetuned / "config.yaml", ["model.init_from=", "pretrain.steps=0"])
    assert method_fingerprint(fresh, "memsinks") != before
    assert main(["run", str(finetuned / "config.yaml"), "--quiet"]) == 0
    assert (finetuned / "base/model/model.safetensors").stat().st_mtime_ns == stamp
    # sink keys and R's perturbation never reach the base's general documents
    keyed = config_io.load(finetuned / "config.yaml", ["data.sink_key=minhash",
                                                       "data.perturb=0.1"])
    assert base_fingerprint(keyed) == base_fingerprint(config)


def test_fine_tuning_from_a_checkpoint_directory(finetuned, tmp_path):
    base = tmp_path / "start"  # a study's method directory is a valid start
    shutil.copytree(finetuned / "standard", base)
    args = ["run", *SMOKE, f"out_dir={tmp_path}", "name=from-dir",
            f"model.init_from={base}", "methods=[standard,memsinks]", "--quiet"]
    assert main(args) == 0
    config = config_io.load(tmp_path / "from-dir/config.yaml")
    before = method_fingerprint(config, "standard")
    # the start enters the fingerprint by its weights' content, not its path
    weights = base / "model/model.safetensors"
    state = load_file(weights)
    name = next(iter(state))
    state[name] = state[name] + 1
    save_file(state, weights, metadata={"format": "pt"})
    assert method_fingerprint(config, "standard") != before


def test_add_sinks_command(finetuned, tmp_path):
    plain, out = tmp_path / "plain", tmp_path / "widened"
    assert main(["export", str(finetuned / "memsinks"), "--out", str(plain)]) == 0
    assert main(["add-sinks", str(plain), "--out", str(out), "--p-shared", "0.8"]) == 0
    model, sinks = load_model(out)
    width = json.loads((plain / "config.json").read_text())["intermediate_size"]
    assert sinks.n_shared == width and sinks.n_sink == sink_pool_size(width, 0.8)
    assert sinks.config.drop_rescale == "none"
    assert (out / "tokenizer.json").is_file()  # the export's tokenizer comes along
    # a model that already has a sink pool is refused, with the fix
    assert main(["add-sinks", str(out), "--out", str(tmp_path / "again")]) == 2
