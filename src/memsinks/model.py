"""Model presets, from a CPU-sized model to SmolLM shapes, on transformers' Llama."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM

# name: (layers, hidden, mlp width, heads, kv heads, context)
PRESETS: dict[str, tuple[int, int, int, int, int, int]] = {
    "tiny": (4, 128, 512, 4, 4, 256),
    "small": (6, 256, 1024, 8, 8, 512),
    # the scale ladder of docs/results.md: ~1M (tiny), 6M (small), 19M and 42M non-embedding
    "medium": (8, 384, 1536, 6, 6, 512),
    "large": (10, 512, 2048, 8, 8, 512),
    "smollm-135m": (30, 576, 1536, 9, 3, 2048),
    "smollm-360m": (32, 960, 2560, 15, 5, 2048),
    "smollm-1.7b": (24, 2048, 8192, 32, 32, 2048),
}


@dataclass
class ModelConfig:
    """A preset, with any of its shape fields overridden (None = the preset's value)."""

    preset: str = "tiny"
    """A name in PRESETS: tiny, small, medium, large, smollm-135m, smollm-360m, smollm-1.7b."""
    num_layers: int | None = None
    """Decoder layers."""
    hidden_size: int | None = None
    """Width of the residual stream."""
    intermediate_size: int | None = None
    """Width of every MLP (its hidden neurons: the shared ones and the sink pool)."""
    num_heads: int | None = None
    """Attention heads."""
    num_kv_heads: int | None = None
    """Key/value heads (grouped-query attention when fewer than num_heads)."""
    max_seq_len: int | None = None
    """The model context, in tokens."""
    tie_embeddings: bool = True
    """Share the input embedding with the output head."""
    init_from: str = ""
    """Where training starts: "" = a fresh model of this shape; "pretrain" = a base model the
    study first trains on general documents (the pretrain section); or a model directory (a
    transformers checkpoint, or a study's method directory). Sink methods then widen every MLP
    by a zero-initialised sink pool (memsinks.families.add_sink_pool)."""

    def resolved(self) -> dict[str, int]:
        if self.preset not in PRESETS:
            raise ValueError(f"model.preset = {self.preset!r} is unknown; choose one of "
                             f"{', '.join(PRESETS)}")
        names = ("num_layers", "hidden_size", "intermediate_size", "num_heads",
                 "num_kv_heads", "max_seq_len")
        shape = dict(zip(names, PRESETS[self.preset], strict=True))
        for name in names:
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, int) or value <= 0:
                    raise ValueError(f"model.{name} = {value!r} must be a positive integer")
                shape[name] = value
        if shape["hidden_size"] % shape["num_heads"]:
            raise ValueError(f"model.hidden_size {shape['hidden_size']} is not divisible by "
                             f"model.num_heads {shape['num_heads']}")
        if shape["num_heads"] % shape["num_kv_heads"]:
            raise ValueError(f"model.num_heads {shape['num_heads']} is not divisible by "
                             f"model.num_kv_heads {shape['num_kv_heads']}")
        return shape


def build_model(config: ModelConfig, vocab_size: int, seed: int,
                pad_token_id: int = 0, bos_token_id: int = 1,
                eos_token_id: int = 2) -> LlamaForCausalLM:
    """A freshly initialised Llama model; the same seed gives the same weights."""
    shape = config.resolved()
    llama = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=shape["hidden_size"],
        intermediate_size=shape["intermediate_size"],
        num_hidden_layers=shape["num_layers"],
        num_attention_heads=shape["num_heads"],
        num_key_value_heads=shape["num_kv_heads"],
        max_position_embeddings=shape["max_seq_len"],
        tie_word_embeddings=config.tie_embeddings,
        pad_token_id=pad_token_id,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        attn_implementation="sdpa",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(llama)
    return model


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_non_embedding(model: torch.nn.Module) -> int:
    """Parameters outside the token embeddings and the output head (the scale-law count)."""
    skip = {id(p) for m in (model.get_input_embeddings(), model.get_output_embeddings())
            if m is not None for p in m.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)
