"""A method's fingerprint: the hash of everything that determines its trained model.

A finished method is reused (by ``memsinks run`` and every sweep) when its fingerprint matches,
so settings that do not change the trained model stay out of the hash, and settings added
after the first runs enter it only when set away from their default: a run made before a
setting existed keeps its fingerprint. The defaults are read from the config dataclasses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict
from typing import Any

from .. import config as config_io
from ..config import StudyConfig
from ..data.config import DataConfig
from ..methods import METHODS, Method
from ..sinks import SinkConfig
from ..train import TrainConfig, packs
from .pretrained import start_identity

# fields added after the first runs, hashed only when set away from their default
_LATER_METHOD = ("drop_rescale", "mlp_width", "goldfish_k", "goldfish_h", "gradient_mask")
_LATER_SINKS = ("shared_grad", "mask", "centered", "tokens", "rare_n", "rare_docs",
                "shared_grad_from", "plain_every")
_LATER_DATA = ("in_domain_share", "n_heldout", "sink_key", "perturb", "sources", "dedup_keep",
               "repeat_window")
# train fields added later, which never change the trained model
_LATER_TRAIN = ("grad_accum", "parallel", "compile", "row_len", "precision")
# text-corpus fields, which mean nothing for the built-in corpus
_TEXT_DATA = ("general_source", "repeated_source", "tokenizer", "vocab_size", "tokenizer_docs",
              "min_tokens", "max_tokens")
# packing trains the same documents per step to the same gradients up to float rounding
# (tests/test_packed_training.py: 1e-5, about 2e-7 measured), so like threads it does not enter
# the hash; row_len does when set, since a row shorter than a document splits it. For text
# corpora packing also keeps long general documents whole (other tokens are trained), which
# method_fingerprint marks as data.whole_documents; the built-in corpus has no long documents.
_NOT_TRAINING = ("threads", "checkpoint_every", "packing", "report_to", "attention")


def defaults(cls: type) -> dict[str, Any]:
    """Every field's default value of dataclass ``cls`` (fields without one are left out)."""
    out = {}
    for spec in dataclasses.fields(cls):
        if spec.default_factory is not dataclasses.MISSING:
            out[spec.name] = spec.default_factory()
        elif spec.default is not dataclasses.MISSING:
            out[spec.name] = spec.default
    return out


def _unless_default(values: dict, later: tuple[str, ...], cls: type) -> dict:
    """``values`` without the ``later`` fields that hold ``cls``'s default."""
    default = defaults(cls)
    return {k: v for k, v in values.items() if not (k in later and v == default[k])}


def method_fingerprint(config: StudyConfig, method: str) -> str:
    """Hash of everything that determines a method's trained model."""
    relevant = {k: v for k, v in config_io.to_dict(config).items()
                if k not in ("name", "methods", "out_dir")}
    spec = METHODS[method]
    relevant["method"] = _unless_default(asdict(spec), _LATER_METHOD, Method)
    relevant["sinks"] = _unless_default(relevant["sinks"], _LATER_SINKS, SinkConfig)
    every_token = defaults(SinkConfig)["tokens"]
    if relevant["sinks"].get("tokens", every_token) == every_token:  # n-grams matter with rare
        relevant["sinks"].pop("rare_n", None)
        relevant["sinks"].pop("rare_docs", None)
    if spec.mlp_width == "shared" or spec.gradient_mask:
        relevant["sinks"] = {"p_shared": relevant["sinks"]["p_shared"]}
    elif not spec.sinks:
        relevant.pop("sinks")
    data = defaults(DataConfig)
    if not relevant["data"]["general_source"]:  # text-corpus fields mean nothing otherwise
        relevant["data"] = {k: v for k, v in relevant["data"].items() if k not in _TEXT_DATA}
    elif packs(config.train, text_corpus=True):  # packed text keeps long documents whole
        relevant["data"]["whole_documents"] = True
    if not (spec.sinks or spec.gradient_mask):  # keys only choose sink IDs
        relevant["data"]["sink_key"] = data["sink_key"]
    if not relevant["data"]["sink_key"].startswith("field:"):  # sources are a field only
        relevant["data"]["sources"] = data["sources"]
    if not spec.dedup:  # only the dedup stream depends on which occurrence it keeps
        relevant["data"]["dedup_keep"] = data["dedup_keep"]
    relevant["data"] = _unless_default(relevant["data"], _LATER_DATA, DataConfig)
    relevant["train"] = _unless_default({k: v for k, v in relevant["train"].items()
                                         if k not in _NOT_TRAINING}, _LATER_TRAIN, TrainConfig)
    # added later: a pretrained start enters the hash by its content (the base's fingerprint
    # or the checkpoint's weights), not its path
    relevant["model"].pop("init_from", None)
    relevant.pop("pretrain", None)
    start = start_identity(config)
    if start is not None:
        relevant["model"]["init_from"] = start
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]
