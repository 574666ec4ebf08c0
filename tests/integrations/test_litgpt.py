"""Checkpoints of the authors' litgpt-based code: both qkv layouts, tied and untied embeddings,
the sink gate with reference masks, unsupported shapes, the memsinks model directory."""

import json

import pytest
import torch
import yaml
from transformers import LlamaConfig, LlamaForCausalLM

from memsinks.cli import build_parser
from memsinks.integrations.litgpt import convert_litgpt, save_as_memsinks
from memsinks.modelio import load_model
from memsinks.sinks import Sinks, drop_sinks, reference_sink_masks

LAYERS, HIDDEN, HEADS, GROUPS, WIDTH, VOCAB = 2, 64, 4, 2, 96, 100
HEAD_SIZE = HIDDEN // HEADS


def llama(tied: bool) -> LlamaForCausalLM:
    """A tiny GQA Llama whose weights are large enough that a misplaced head shows."""
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=WIDTH,
                         num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                         num_key_value_heads=GROUPS, max_position_embeddings=64,
                         rms_norm_eps=1e-5, rope_theta=5000.0, tie_word_embeddings=tied)
    model = LlamaForCausalLM(config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            param.copy_(1 + 0.2 * noise if "norm" in name else 0.2 * noise)
    return model.eval()


def litgpt_config(**changes) -> dict:
    """The fields of litgpt's model_config.yaml for ``llama()``, as its Config writes them."""
    config = {
        "name": "tiny-llama", "block_size": 64, "n_layer": LAYERS, "n_embd": HIDDEN,
        "vocab_size": VOCAB, "padding_multiple": 4, "padded_vocab_size": VOCAB,
        "norm_class_name": "RMSNorm", "norm_eps": 1e-5, "norm_qk": False,
        "post_attention_norm": False, "post_mlp_norm": False, "parallel_residual": False,
        "shared_attention_norm": False, "n_head": HEADS, "head_size": HEAD_SIZE,
        "n_query_groups": GROUPS, "attn_bias": False, "rope_base": 5000,
        "rotary_percentage": 1.0, "rope_condense_ratio": 1, "rope_adjustments": None,
        "intermediate_size": WIDTH, "bias": False, "mlp_class_name": "LLaMAMLP",
        "n_expert": 0, "scale_embeddings": False, "lm_head_bias": False,
        "final_logit_softcapping": None, "attention_logit_softcapping": None,
        "norm_1": True, "norm_2": True, "hf_config": {},
    }
    config.update(changes)
    return config


def to_litgpt(model: LlamaForCausalLM, layout: str = "qkv", head: bool = True) -> dict:
    """``model``'s weights under litgpt's names; ``layout`` "qkv" is litgpt >= 0.5.5's fused
    q|k|v, "attn" the older one, grouped per key/value head as [its queries, k, v]."""
    sd = model.state_dict()
    out = {"transformer.wte.weight": sd["model.embed_tokens.weight"].clone(),
           "transformer.ln_f.weight": sd["model.norm.weight"].clone()}
    if head:
        out["lm_head.weight"] = sd["lm_head.weight"].clone()
    for i in range(LAYERS):
        hf, lit = f"model.layers.{i}.", f"transformer.h.{i}."
        q, k, v = (sd[f"{hf}self_attn.{p}_proj.weight"] for p in "qkv")
        if layout == "qkv":
            out[f"{lit}attn.qkv.weight"] = torch.cat([q, k, v])
        else:
            per_group = HEADS // GROUPS
            grouped = torch.cat([q.reshape(GROUPS, per_group, HEAD_SIZE, HIDDEN),
                                 k.reshape(GROUPS, 1, HEAD_SIZE, HIDDEN),
                                 v.reshape(GROUPS, 1, HEAD_SIZE, HIDDEN)], dim=1)
            out[f"{lit}attn.attn.weight"] = grouped.reshape(-1, HIDDEN)
        for lit_name, hf_name in (("attn.proj", "self_attn.o_proj"),
                                  ("norm_1", "input_layernorm"),
                                  ("norm_2", "post_attention_layernorm"),
                                  ("mlp.fc_1", "mlp.gate_proj"), ("mlp.fc_2", "mlp.up_proj"),
                                  ("mlp.proj", "mlp.down_proj")):
            out[f"{lit}{lit_name}.weight"] = sd[f"{hf}{hf_name}.weight"].clone()
    return out


TOKENS = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(1))


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(TOKENS).logits


@pytest.mark.parametrize("layout", ["qkv", "attn"])
@pytest.mark.parametrize("tied", [False, True])
def test_logits_equal_for_both_layouts_tied_or_not(layout, tied):
    original = llama(tied)
    state = to_litgpt(original, layout, head=not tied or layout == "attn")
    converted, sink_config, n_shared = convert_litgpt(state, litgpt_config())
    assert torch.allclose(logits(converted), logits(original), atol=1e-5, rtol=0)
    assert converted.config.tie_word_embeddings == tied
    assert (n_shared, sink_config.mask, sink_config.drop_rescale) == (int(WIDTH * 0.7),
                                                                     "reference", "paper")


def test_the_layouts_are_told_apart_by_key_name():
    # read as the other layout, the weights give other logits: the test above can fail
    original = llama(False)
    state = to_litgpt(original, "attn")
    for i in range(LAYERS):
        state[f"transformer.h.{i}.attn.qkv.weight"] = state.pop(f"transformer.h.{i}.attn.attn"
                                                                ".weight")
    wrong, _, _ = convert_litgpt(state, litgpt_config())
    assert (logits(wrong) - logits(original)).abs().max() > 1e-2


def test_padded_vocabulary_is_derived_and_checked():
    original = llama(False)
    # vocab 97 padded to a multiple of 4: litgpt's embedding has 100 rows, so do the logits
    converted, _, _ = convert_litgpt(to_litgpt(original),
                                     litgpt_config(vocab_size=97, padded_vocab_size=None))
    assert logits(converted).shape[-1] == VOCAB
    with pytest.raises(ValueError, match="padded_vocab_size 128"):
        convert_litgpt(to_litgpt(original), litgpt_config(padded_vocab_size=128))


def test_sink_gate_matches_the_original_with_reference_masks():
    original = llama(False)
    converted, sink_config, n_shared = convert_litgpt(to_litgpt(original), litgpt_config())
    ids = torch.tensor([[0] * 4 + [7] * 8, [123456789] * 6 + [5] * 6])
    gated = []
    for model in (original, converted):
        sinks = Sinks(model, sink_config, n_shared=n_shared)
        assert torch.equal(sinks.masks([5, 123456789]),
                           reference_sink_masks(torch.tensor([5, 123456789]), WIDTH - n_shared,
                                                0.3))
        with sinks.mode_of("train", ids=ids):
            gated.append(logits(model))
        sinks.remove()
    assert torch.allclose(gated[0], gated[1], atol=1e-5, rtol=0)
    assert (gated[0] - logits(original)).abs().max() > 1e-3  # the gate did something


@pytest.mark.parametrize("changes, field", [
    ({"parallel_residual": True}, "parallel_residual = True"),
    ({"mlp_class_name": "GptNeoxMLP"}, "mlp_class_name = 'GptNeoxMLP'"),
    ({"norm_class_name": "LayerNorm", "bias": True}, "norm_class_name = 'LayerNorm'"),
    ({"rotary_percentage": 0.25}, "rotary_percentage = 0.25"),
    ({"name": "Gemma-2b"}, "Gemma"),
])
def test_unsupported_configs_name_the_field(changes, field):
    with pytest.raises(ValueError, match="cannot convert") as raised:
        convert_litgpt(to_litgpt(llama(False)), litgpt_config(**changes))
    assert field in str(raised.value) and "LLaMAMLP, RMSNorm" in str(raised.value)


def test_absent_fields_take_litgpt_defaults():
    config = {k: v for k, v in litgpt_config().items() if k != "parallel_residual"}
    with pytest.raises(ValueError, match="parallel_residual = True \\(litgpt's default"):
        convert_litgpt(to_litgpt(llama(False)), config)


def test_stray_or_missing_weights_are_refused():
    state = to_litgpt(llama(False))
    state["transformer.h.0.attn.qkv.bias"] = torch.zeros(1)
    with pytest.raises(ValueError, match="no place for"):
        convert_litgpt(state, litgpt_config())
    del state["transformer.h.1.mlp.fc_2.weight"]
    with pytest.raises(ValueError, match="lacks transformer.h.1.mlp.fc_2.weight"):
        convert_litgpt(state, litgpt_config())


def test_memsinks_directory_round_trip(tmp_path):
    converted, sink_config, n_shared = convert_litgpt(to_litgpt(llama(True)), litgpt_config())
    out = save_as_memsinks(converted, sink_config, n_shared, tmp_path / "model")
    saved = json.loads((out / "sinks.json").read_text())
    assert (saved["mask"], saved["n_shared"], saved["n_sink"]) == ("reference", n_shared,
                                                                   WIDTH - n_shared)
    model, sinks = load_model(out)
    assert sinks.n_shared == n_shared and sinks.config.mask == "reference"
    plain = drop_sinks(model, sinks)
    with sinks.mode_of("drop"):
        dropped = logits(model)
    assert torch.allclose(dropped, logits(plain), atol=1e-5, rtol=0)
    assert torch.allclose(logits(model), logits(converted), atol=1e-5, rtol=0)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a model directory"):
        save_as_memsinks(converted, sink_config, n_shared, tmp_path / "notes")


def test_import_litgpt_command(tmp_path, capsys):
    original = llama(False)
    checkpoint = tmp_path / "final"
    checkpoint.mkdir()
    # as litgpt's pretraining saves it: the Fabric state, weights under "model"
    torch.save({"model": to_litgpt(original, "attn"), "iter_num": 3},
               checkpoint / "lit_model.pth")
    (checkpoint / "model_config.yaml").write_text(yaml.dump(litgpt_config()))
    (checkpoint / "tokenizer.json").write_text("{}")
    args = build_parser().parse_args(["import-litgpt", str(checkpoint / "lit_model.pth"), "--out",
                              str(tmp_path / "out"), "--p-shared", "0.5"])
    args.func(args)
    assert "48 shared and 48 sink" in capsys.readouterr().out
    model, sinks = load_model(tmp_path / "out")
    assert (tmp_path / "out" / "tokenizer.json").is_file()
    assert (sinks.n_shared, sinks.config.p_shared, sinks.config.p_active) == (48, 0.5, 0.3)
    assert torch.allclose(logits(model), logits(original), atol=1e-5, rtol=0)


def test_half_precision_checkpoint_keeps_its_dtype():
    original = llama(False)
    state = {k: v.to(torch.bfloat16) for k, v in to_litgpt(original).items()}
    converted, _, _ = convert_litgpt(state, litgpt_config())
    assert converted.dtype == torch.bfloat16
    assert torch.allclose(logits(converted).float(), logits(original), atol=0.5, rtol=0)
