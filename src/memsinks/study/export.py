"""A study's models leaving it: the sinks-dropped model as a plain transformers checkpoint, and
a pretrained checkpoint widened by a sink pool to fine-tune with sinks elsewhere."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..data.sources import TextTokenizer
from ..data.stream import SPECIALS
from ..families import add_sink_pool_share
from ..files import replacing
from ..modelio import load_model, save_model
from ..sinks import SinkConfig, Sinks, drop_sinks
from .pretrained import load_start, model_dir_of


def export_dropped(method_dir: Path, out: Path) -> Path:
    """Write the sinks-dropped model of a study method as a plain transformers model + tokenizer.

    The sink neurons are deleted and the rescale folded into the down projection, so
    ``AutoModelForCausalLM.from_pretrained(out)`` loads it without memsinks installed.
    """
    from transformers import PreTrainedTokenizerFast

    method_dir = Path(method_dir)
    model, sinks = load_model(method_dir / "model")
    plain = drop_sinks(model, sinks) if sinks is not None else model
    tokenizer_dir = method_dir.parent / "tokenizer"  # text corpora
    tokenizer_path = method_dir.parent / "tokenizer.json"  # the built-in corpus
    if tokenizer_dir.is_dir():
        tokenizer = TextTokenizer.from_saved(tokenizer_dir).hf
    elif tokenizer_path.is_file():
        tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_path),
                                            pad_token=SPECIALS[0], bos_token=SPECIALS[1],
                                            eos_token=SPECIALS[2], unk_token=SPECIALS[3])
    else:
        raise FileNotFoundError(f"{tokenizer_path} does not exist; export a method directory "
                                "inside a study directory")
    out = Path(out)
    with replacing(out) as tmp:
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return out


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                    "vocab.json", "merges.txt", "tokenizer.model", "generation_config.json")


def widen_checkpoint(source: str | Path, out: str | Path, sink_config: SinkConfig) -> Path:
    """Write ``source`` (a plain checkpoint) widened by a zero-initialised sink pool to ``out``,
    as a memsinks model directory (weights, ``sinks.json`` with ``n_shared``, tokenizer files),
    ready for :class:`memsinks.integrations.transformers.SinkTrainer` or your own loop."""
    sink_config.validate()
    model_dir = model_dir_of(source)
    model = load_start(model_dir)
    n_shared = add_sink_pool_share(model, sink_config.p_shared, seed=sink_config.seed)
    sinks = Sinks(model, sink_config, n_shared=n_shared)
    out = Path(out)
    save_model(model, sinks, out)
    for name in _TOKENIZER_FILES:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, out / name)
    return out
