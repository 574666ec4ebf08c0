"""Models trained with the authors' litgpt-based code, as memsinks models.

The authors' reference code trains litgpt ``GPT`` models of the Llama shape (``LLaMAMLP``,
``RMSNorm``, sequential residual, full rotary, no biases) with sink masks on every MLP's hidden
activation. :func:`convert_litgpt` turns such a checkpoint (``lit_model.pth`` plus its
``model_config.yaml``) into a transformers ``LlamaForCausalLM`` with the same logits, and
:func:`save_as_memsinks` writes it as a memsinks model directory whose sinks use the reference
masks, so ``memsinks.modelio.load_model`` reads it back with the authors' sink split.

    model, sink_config, n_shared = convert_litgpt("out/final")
    save_as_memsinks(model, sink_config, n_shared, "imported")

Needs no litgpt install: the layout is read from the state dict's key names.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from ..sinks import SinkConfig

CHECKPOINT = "lit_model.pth"
CONFIGS = ("model_config.yaml", "lit_config.json")  # litgpt's name, then old lit-gpt's
# tokenizer files litgpt keeps next to its checkpoints (its config.json is the Hugging Face
# config of the model it started from, so it is not copied over ours)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.json", "merges.txt", "tokenizer.model", "generation_config.json")

# litgpt's Config defaults for the fields read here: an absent field means its default
DEFAULTS: dict[str, Any] = {
    "name": "", "block_size": 4096, "n_layer": 16, "n_embd": 4096, "vocab_size": 50254,
    "padding_multiple": 512, "padded_vocab_size": None, "n_head": 32, "head_size": None,
    "n_query_groups": None, "intermediate_size": None, "rope_base": 10000, "norm_eps": 1e-5,
    "norm_class_name": "LayerNorm", "mlp_class_name": "GptNeoxMLP", "parallel_residual": True,
    "shared_attention_norm": False, "rotary_percentage": 0.25, "bias": True,
    "attn_bias": False, "lm_head_bias": False, "norm_qk": False, "post_attention_norm": False,
    "post_mlp_norm": False, "norm_1": True, "norm_2": True, "scale_embeddings": False,
    "attention_scores_scalar": None, "attention_logit_softcapping": None,
    "final_logit_softcapping": None, "sliding_window_size": None, "rope_condense_ratio": 1,
    "rope_adjustments": None, "rope_interleave": False, "rope_local_base_freq": None,
    "latent_attention": None, "n_expert": 0,
}
# old lit-gpt spellings of the same fields
ALIASES = {"_mlp_class": "mlp_class_name", "_norm_class": "norm_class_name",
           "condense_ratio": "rope_condense_ratio"}
# the Llama shape: the only one a LlamaForCausalLM computes exactly
LLAMA_SHAPE: dict[str, Any] = {
    "mlp_class_name": "LLaMAMLP", "norm_class_name": "RMSNorm", "parallel_residual": False,
    "rotary_percentage": 1.0, "bias": False, "attn_bias": False, "lm_head_bias": False,
    "shared_attention_norm": False, "norm_qk": False, "post_attention_norm": False,
    "post_mlp_norm": False, "norm_1": True, "norm_2": True, "scale_embeddings": False,
    "attention_logit_softcapping": None, "final_logit_softcapping": None,
    "sliding_window_size": None, "rope_condense_ratio": 1, "rope_adjustments": None,
    "rope_interleave": False, "rope_local_base_freq": None, "latent_attention": None,
    "n_expert": 0,
}
SUPPORTED = ("LLaMAMLP, RMSNorm, parallel_residual False, rotary_percentage 1.0, no biases, "
             "plain RoPE, no softcapping, no sliding windows, no extra norms")
# wrappers whose prefixes end up in saved keys: Fabric, torch.compile, DataParallel
_PREFIXES = ("_forward_module.", "_orig_mod.", "module.")


def _find(directory: Path, names: tuple[str, ...]) -> Path | None:
    return next((directory / n for n in names if (directory / n).is_file()), None)


def read_config(config: str | Path | Mapping[str, Any] | Any) -> dict[str, Any]:
    """A litgpt model config (YAML/JSON file, directory holding one, dict or litgpt ``Config``)
    as a dict with litgpt's defaults filled in and derived fields resolved."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        raw = dataclasses.asdict(config)
    elif isinstance(config, Mapping):
        raw = dict(config)
    else:
        path = Path(config)
        if path.is_dir():
            found = _find(path, CONFIGS)
            if found is None:
                raise FileNotFoundError(f"{path} holds no {' or '.join(CONFIGS)}; pass the "
                                        "litgpt model config with --config")
            path = found
        if not path.is_file():
            raise FileNotFoundError(f"litgpt model config {path} does not exist; pass the "
                                    "model_config.yaml saved with the checkpoint")
        raw = yaml.safe_load(path.read_text())  # JSON is YAML too
        if not isinstance(raw, Mapping):
            raise ValueError(f"{path} holds no mapping of litgpt config fields; pass the "
                             "model_config.yaml saved with the checkpoint")
    out = dict(DEFAULTS)
    out.update({ALIASES.get(k, k): v for k, v in raw.items()})
    out["_given"] = {ALIASES.get(k, k) for k in raw}
    if out["head_size"] is None:
        out["head_size"] = out["n_embd"] // out["n_head"]
    if out["n_query_groups"] is None:
        out["n_query_groups"] = out["n_head"]
    if out["padded_vocab_size"] is None:  # litgpt pads up to a multiple of padding_multiple
        multiple = out["padding_multiple"]
        out["padded_vocab_size"] = -(-out["vocab_size"] // multiple) * multiple
    return out


def check_llama_shape(cfg: dict[str, Any]) -> None:
    """Raise one ValueError naming every field that a LlamaForCausalLM cannot reproduce."""
    bad = []
    for field, wanted in LLAMA_SHAPE.items():
        value = cfg[field]
        if field == "rope_adjustments" and not value:  # an empty dict is plain RoPE too
            continue
        if value != wanted:
            default = "" if field in cfg["_given"] else " (litgpt's default, the field is absent)"
            bad.append(f"{field} = {value!r}{default}")
    if "Gemma" in str(cfg["name"]):  # litgpt's RMSNorm adds 1 to its weight for Gemma names
        bad.append(f"name = {cfg['name']!r} (Gemma's unit-offset RMSNorm)")
    scalar = cfg["attention_scores_scalar"]
    if scalar is not None and scalar != cfg["head_size"]:
        bad.append(f"attention_scores_scalar = {scalar!r}")
    if cfg["intermediate_size"] is None:
        bad.append("intermediate_size = None")
    if cfg["n_head"] % cfg["n_query_groups"]:
        bad.append(f"n_query_groups = {cfg['n_query_groups']} (does not divide n_head "
                   f"{cfg['n_head']})")
    if bad:
        raise ValueError(f"the litgpt config has {', '.join(bad)}, which memsinks cannot convert; "
                         f"it converts Llama-shaped litgpt models only ({SUPPORTED})")


def _torch_load(path: Path) -> Mapping:
    try:
        try:  # memory-mapped: a 1.7B checkpoint is not read into memory twice
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # torch's legacy (non-zip) format cannot be memory-mapped
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling raises many kinds
        raise ValueError(f"{path} could not be read as tensors only ({error}); if you trust "
                         "the file, load it with torch.load(weights_only=False) and pass the "
                         "state dict to convert_litgpt") from None


def load_state_dict(checkpoint: str | Path | Mapping[str, torch.Tensor]
                    ) -> dict[str, torch.Tensor]:
    """The model weights of a litgpt checkpoint (a file, a directory, or a loaded dict)."""
    if isinstance(checkpoint, Mapping):
        state = checkpoint
    else:
        path = Path(checkpoint)
        if path.is_dir() and (path / CHECKPOINT).exists():
            path = path / CHECKPOINT
        if path.is_dir():
            sharded = any(path.glob("*.distcp"))
            raise ValueError(f"{path} is a sharded checkpoint directory; consolidate it into one "
                             f"file first (lightning's consolidate_checkpoint)" if sharded else
                             f"{path} holds no {CHECKPOINT}; pass the checkpoint file or its "
                             "directory")
        if not path.is_file():
            raise FileNotFoundError(f"litgpt checkpoint {path} does not exist; pass "
                                    f"{CHECKPOINT} or the directory holding it")
        state = _torch_load(path)
    if "model" in state and isinstance(state["model"], Mapping):  # a Fabric training state
        state = state["model"]
    out = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        changed = True
        while changed:
            changed = False
            for prefix in _PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        out[key] = value
    return out


def _split_qkv(weight: torch.Tensor, interleaved: bool, cfg: dict[str, Any]
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    heads, groups, size = cfg["n_head"], cfg["n_query_groups"], cfg["head_size"]
    per_group = heads // groups
    if interleaved:
        # litgpt <= 0.5.4 (`attn.attn`): per query group, its per_group query heads, then
        # its key head, then its value head
        blocks = weight.reshape(groups, per_group + 2, size, weight.shape[-1])
        q = blocks[:, :per_group].reshape(heads * size, -1)
        k = blocks[:, per_group].reshape(groups * size, -1)
        v = blocks[:, per_group + 1].reshape(groups * size, -1)
        return q, k, v
    # litgpt >= 0.5.5 (`attn.qkv`): all query heads, then all key heads, then all value heads
    q, k, v = weight.split((heads * size, groups * size, groups * size))
    return q, k, v


def _llama_state(state: dict[str, torch.Tensor], cfg: dict[str, Any]
                 ) -> tuple[dict[str, torch.Tensor], bool]:
    """Transformers Llama keys for litgpt's, and whether the embeddings are tied."""
    state = dict(state)

    def take(key: str) -> torch.Tensor:
        if key not in state:
            raise ValueError(f"the litgpt checkpoint lacks {key}; pass the checkpoint and the "
                             "model_config.yaml it was trained with")
        return state.pop(key)

    out = {"model.embed_tokens.weight": take("transformer.wte.weight"),
           "model.norm.weight": take("transformer.ln_f.weight")}
    rows = out["model.embed_tokens.weight"].shape[0]
    if rows != cfg["padded_vocab_size"]:
        raise ValueError(f"the checkpoint embeds {rows} tokens but its config says "
                         f"padded_vocab_size {cfg['padded_vocab_size']}; pass the "
                         "model_config.yaml saved with this checkpoint")
    for i in range(cfg["n_layer"]):
        lit, hf = f"transformer.h.{i}.", f"model.layers.{i}."
        interleaved = f"{lit}attn.attn.weight" in state
        qkv = take(f"{lit}attn.attn.weight" if interleaved else f"{lit}attn.qkv.weight")
        expected = (cfg["n_head"] + 2 * cfg["n_query_groups"]) * cfg["head_size"]
        if qkv.shape[0] != expected:
            raise ValueError(f"{lit}attn has {qkv.shape[0]} outputs, not the {expected} that "
                             "n_head, n_query_groups and head_size give; pass the checkpoint's "
                             "own model_config.yaml")
        q, k, v = _split_qkv(qkv, interleaved, cfg)
        out.update({
            f"{hf}self_attn.q_proj.weight": q,
            f"{hf}self_attn.k_proj.weight": k,
            f"{hf}self_attn.v_proj.weight": v,
            f"{hf}self_attn.o_proj.weight": take(f"{lit}attn.proj.weight"),
            f"{hf}input_layernorm.weight": take(f"{lit}norm_1.weight"),
            f"{hf}post_attention_layernorm.weight": take(f"{lit}norm_2.weight"),
            # LLaMAMLP: proj(silu(fc_1(x)) * fc_2(x)), so fc_1 is the gate
            f"{hf}mlp.gate_proj.weight": take(f"{lit}mlp.fc_1.weight"),
            f"{hf}mlp.up_proj.weight": take(f"{lit}mlp.fc_2.weight"),
            f"{hf}mlp.down_proj.weight": take(f"{lit}mlp.proj.weight"),
        })
    head = state.pop("lm_head.weight", None)
    embed = out["model.embed_tokens.weight"]
    # litgpt's state dict lists a tied weight under both names; equal values mean tied
    tied = head is None or head.data_ptr() == embed.data_ptr() or torch.equal(head, embed)
    out["lm_head.weight"] = embed if tied else head
    if state:
        extra = ", ".join(sorted(state)[:5]) + (" ..." if len(state) > 5 else "")
        raise ValueError(f"the litgpt checkpoint holds weights a Llama model has no place for "
                         f"({extra}); convert a Llama-shaped checkpoint with its own config")
    return out, tied


def convert_litgpt(checkpoint: str | Path | Mapping[str, torch.Tensor],
                   config: str | Path | Mapping[str, Any] | None = None, *,
                   p_shared: float = 0.7, p_active: float = 0.3, mask: str = "reference"):
    """A litgpt checkpoint as ``(LlamaForCausalLM, SinkConfig, n_shared)``, same logits.

    ``checkpoint``: ``lit_model.pth`` (or a Fabric state holding it under ``"model"``), the
    directory holding it, or a loaded state dict. ``config``: its ``model_config.yaml``, a
    dict of litgpt's field names, or None to read it from the checkpoint's directory. The
    vocabulary is litgpt's padded one, so the logits have ``padded_vocab_size`` columns as
    litgpt's do. The sinks are the authors': the first ``int(intermediate_size * p_shared)``
    hidden neurons are shared, the masks are the reference hash's.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    if config is None:
        if isinstance(checkpoint, Mapping):
            raise ValueError("a state dict comes without its model config; pass config= (the "
                             "model_config.yaml saved with the checkpoint)")
        path = Path(checkpoint)
        config = path if path.is_dir() else path.parent
    cfg = read_config(config)
    check_llama_shape(cfg)
    sink_config = SinkConfig(p_shared=p_shared, p_active=p_active, mask=mask,
                             drop_rescale="paper")
    sink_config.validate()
    n_shared = int(cfg["intermediate_size"] * p_shared)  # the reference code's split
    if not 0 < n_shared < cfg["intermediate_size"]:
        raise ValueError(f"p_shared = {p_shared} leaves {n_shared} of "
                         f"{cfg['intermediate_size']} hidden neurons shared; use a value that "
                         "keeps both shared neurons and sinks, such as 0.7")
    weights, tied = _llama_state(load_state_dict(checkpoint), cfg)
    dtype = weights["model.embed_tokens.weight"].dtype
    llama = LlamaConfig(
        vocab_size=cfg["padded_vocab_size"],
        hidden_size=cfg["n_embd"],
        intermediate_size=cfg["intermediate_size"],
        num_hidden_layers=cfg["n_layer"],
        num_attention_heads=cfg["n_head"],
        num_key_value_heads=cfg["n_query_groups"],
        head_dim=cfg["head_size"],
        max_position_embeddings=cfg["block_size"],
        rms_norm_eps=cfg["norm_eps"],
        rope_theta=float(cfg["rope_base"]),
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
        tie_word_embeddings=tied,
        # litgpt's config knows no special tokens; they live with the tokenizer
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        attn_implementation="sdpa",
    )
    model = LlamaForCausalLM(llama)
    # copied in full precision, then cast once to the checkpoint's dtype
    model.load_state_dict({k: v.float() for k, v in weights.items()}, strict=True)
    if tied:
        model.tie_weights()
    model = model.to(dtype).eval()
    return model, sink_config, n_shared


def save_as_memsinks(model, sink_config: SinkConfig, n_shared: int, out_dir: str | Path) -> Path:
    """Write ``model`` as a memsinks model directory (``memsinks.modelio.load_model``
    reads it): transformers weights plus ``sinks.json`` with the sink split."""
    from ..modelio import save_model
    from ..sinks import Sinks

    out = Path(out_dir)
    if out.exists() and not (out.is_dir() and (not any(out.iterdir())
                                               or (out / "config.json").is_file())):
        raise ValueError(f"{out} exists and is not a model directory; choose a new or empty "
                         "output directory (an existing model directory is replaced)")
    sinks = Sinks(model, sink_config, n_shared=n_shared)
    try:
        save_model(model, sinks, out)
    finally:
        sinks.remove()
    return out


def import_checkpoint(checkpoint: str | Path, out_dir: str | Path,
                      config: str | Path | None = None, p_shared: float = 0.7,
                      p_active: float = 0.3) -> tuple[Path, int, int, int]:
    """``memsinks import-litgpt``: convert ``checkpoint``, save it as a memsinks model directory
    with the tokenizer files found next to it; returns the directory, the shared and sink
    neurons per MLP, and the number of tokenizer files copied."""
    checkpoint = Path(checkpoint)
    model, sink_config, n_shared = convert_litgpt(checkpoint, config, p_shared=p_shared,
                                                  p_active=p_active)
    out = save_as_memsinks(model, sink_config, n_shared, out_dir)
    source = checkpoint if checkpoint.is_dir() else checkpoint.parent
    copied = [name for name in TOKENIZER_FILES if (source / name).is_file()]
    for name in copied:
        shutil.copy2(source / name, out / name)
    return out, n_shared, model.config.intermediate_size - n_shared, len(copied)
