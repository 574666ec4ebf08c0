"""The sink gate and the export on every supported model family, with tiny random models."""

from __future__ import annotations

import pytest
import torch
import transformers
from torch import nn

from memsinks.families import FAMILIES, decoder_layers, model_family
from memsinks.sinks import SinkConfig, Sinks, document_id, drop_sinks

VOCAB = 100
TOKENS = dict(vocab_size=VOCAB, pad_token_id=0, bos_token_id=1, eos_token_id=2)
SHAPE = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64, **TOKENS)

# model_type: (config class, its arguments); head_dim is set where the default is large
CONFIGS: dict[str, tuple[str, dict]] = {
    "llama": ("LlamaConfig", SHAPE),
    "mistral": ("MistralConfig", SHAPE),
    "qwen2": ("Qwen2Config", SHAPE),
    "qwen3": ("Qwen3Config", {**SHAPE, "head_dim": 8}),
    "gemma": ("GemmaConfig", {**SHAPE, "head_dim": 8}),
    "gemma2": ("Gemma2Config", {**SHAPE, "head_dim": 8, "query_pre_attn_scalar": 8}),
    "olmo2": ("Olmo2Config", SHAPE),
    "phi3": ("Phi3Config", SHAPE),
    # ReLU saves its output for backward, so this also checks the gate is not in place there
    "gpt_neox": ("GPTNeoXConfig", {"hidden_size": 32, "intermediate_size": 64,
                                   "num_hidden_layers": 2, "num_attention_heads": 4,
                                   "max_position_embeddings": 64, "hidden_act": "relu",
                                   **TOKENS}),
    # n_inner None: the MLP is 4 * n_embd = 128 wide
    "gpt2": ("GPT2Config", {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 64,
                            **TOKENS}),
}


def test_every_family_in_the_table_is_tested():
    assert {t for family in FAMILIES for t in family.model_types} == set(CONFIGS)


def tiny(model_type: str, seed: int = 0) -> nn.Module:
    name, kwargs = CONFIGS[model_type]
    config_class = getattr(transformers, name, None)
    if config_class is None:
        pytest.skip(f"transformers {transformers.__version__} has no {name}")
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config_class(**kwargs),
                                                          dtype=torch.float32)
    return model.eval()


def tokens(seed: int = 1) -> torch.Tensor:
    return torch.randint(3, VOCAB, (2, 10), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("model_type", list(CONFIGS))
def test_train_mode_gates_the_hidden_activation_per_document(model_type):
    model = tiny(model_type)
    sinks = Sinks(model, SinkConfig(p_shared=0.5, p_active=0.5))
    assert sinks.family.name == model_family(model).name
    x = tokens()
    a, b = document_id([1, 2]), document_id([3, 4])
    seen = {}

    def record(module, args, output):
        seen["hidden"] = args[0].detach().clone()

    # a forward hook runs after the sink pre-hook, so it sees the gated input
    handle = sinks.family.output_of(sinks.mlps[-1]).register_forward_hook(record)
    with torch.no_grad():
        off = model(input_ids=x).logits
        with sinks.mode_of("train", ids=torch.full(x.shape, a)):
            own = model(input_ids=x).logits
        with sinks.mode_of("train", ids=torch.full(x.shape, b)):
            other = model(input_ids=x).logits
    handle.remove()
    assert seen["hidden"].shape[-1] == sinks.intermediate_size
    mask_b = sinks.masks([b])[0]
    sink_part = seen["hidden"][..., sinks.n_shared:]
    assert sink_part[..., ~mask_b].abs().max().item() == 0.0
    assert sink_part[..., mask_b].abs().max().item() > 0.0
    assert (own - off).abs().max().item() > 1e-6
    assert (own - other).abs().max().item() > 1e-6
    # training through the gate works: no in-place change of a tensor autograd saved
    with sinks.mode_of("train", ids=torch.full(x.shape, a)):
        model(input_ids=x, labels=x).loss.backward()
    grad = sinks.family.output_of(sinks.mlps[0]).weight.grad
    assert grad is not None and torch.isfinite(grad).all()


@pytest.mark.parametrize("model_type", list(CONFIGS))
def test_drop_mode_equals_the_exported_sink_free_model(model_type):
    model = tiny(model_type, seed=3)
    x = tokens()
    sinks = Sinks(model, SinkConfig(p_shared=0.6, p_active=0.3))
    with torch.no_grad(), sinks.mode_of("drop"):
        expected = model(input_ids=x).logits
    plain = drop_sinks(model, sinks)
    family = model_family(plain)
    assert getattr(plain.config, family.width_field) == sinks.n_shared
    assert all(family.width_of(layer.mlp) == sinks.n_shared for layer in family.layers_of(plain))
    with torch.no_grad():
        got = plain(input_ids=x).logits
    assert (got - expected).abs().max().item() < 1e-5
    # the original keeps its full width and its gates
    assert sinks.family.width_of(sinks.mlps[0]) == sinks.intermediate_size
    with torch.no_grad():
        assert (model(input_ids=x).logits - expected).abs().max().item() > 1e-4


@pytest.mark.parametrize("model_type", list(CONFIGS))
def test_export_reloads_with_auto_model(model_type, tmp_path):
    model = tiny(model_type, seed=5)
    x = tokens()
    sinks = Sinks(model, SinkConfig(p_shared=0.5, p_active=0.3))
    plain = drop_sinks(model, sinks)
    with torch.no_grad():
        expected = plain(input_ids=x).logits
    plain.save_pretrained(tmp_path)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32)
    loaded.eval()
    assert type(loaded) is type(plain)
    with torch.no_grad():
        got = loaded(input_ids=x).logits
    assert (got - expected).abs().max().item() < 1e-5


def _bert() -> nn.Module:
    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=64,
                                     is_decoder=True)
    return transformers.AutoModelForCausalLM.from_config(config)


class _Plain(nn.Module):
    """Llama-like attribute names, but no transformers config."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Module()])
        self.layers[0].mlp = nn.Module()
        self.layers[0].mlp.down_proj = nn.Linear(8, 4)


@pytest.mark.parametrize("build", [_bert, _Plain], ids=["bert", "plain-module"])
def test_an_unsupported_model_gets_one_sentence_naming_the_families(build):
    model = build()
    with pytest.raises(TypeError) as error:
        Sinks(model, SinkConfig())
    message = str(error.value)
    assert type(model).__name__ in message
    assert all(family.name in message for family in FAMILIES)
    assert message.count(". ") == 0 and "\n" not in message
    with pytest.raises(TypeError, match="supported family"):
        decoder_layers(model)


def test_llama_only_helpers_name_the_llama_shaped_families():
    assert len(decoder_layers(tiny("llama"))) == 2
    assert len(decoder_layers(tiny("qwen2"))) == 2
    with pytest.raises(TypeError, match="down_proj MLPs, which GPT-2 models lack; .*Llama"):
        decoder_layers(tiny("gpt2"))
