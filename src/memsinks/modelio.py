"""A model directory: a standard transformers checkpoint (safetensors), plus ``sinks.json``
(the SinkConfig and ``n_shared``) for a model trained with sinks."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import SafetensorError

from .files import replacing
from .sinks import SinkConfig, Sinks


def save_model(model, sinks: Sinks | None, path: Path,
               state_dict: dict[str, torch.Tensor] | None = None) -> None:
    """Weights as a standard transformers checkpoint (safetensors), swapped in atomically.

    ``state_dict`` gives the full weights when the model itself is sharded (FSDP).
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per one-shard save is noise in study output
    with replacing(path) as tmp:
        model.save_pretrained(tmp, safe_serialization=True, state_dict=state_dict)
        if sinks is not None:
            (tmp / "sinks.json").write_text(json.dumps(
                {**asdict(sinks.config), "n_shared": sinks.n_shared, "n_sink": sinks.n_sink},
                indent=1))


def load_model(model_dir: Path):
    """A saved model and its sinks (None for methods without sinks)."""
    from transformers import LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} holds no saved model (config.json); train the "
                                "method first with `memsinks run` or `memsinks train`")
    try:
        model = LlamaForCausalLM.from_pretrained(model_dir)
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        raise ValueError(f"the model in {model_dir} is truncated or corrupt ({error}); delete "
                         f"{model_dir.parent} and rerun the study to train it again") from None
    sinks = None
    if (model_dir / "sinks.json").is_file():
        saved = json.loads((model_dir / "sinks.json").read_text())
        fields = {k: saved[k] for k in SinkConfig.__dataclass_fields__ if k in saved}
        # n_shared as trained: a widened pretrained model's is not p_shared x its width
        sinks = Sinks(model, SinkConfig(**fields), n_shared=saved.get("n_shared"))
    return model, sinks
