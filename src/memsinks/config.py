"""Study configuration: dataclasses, YAML as their serialised form, `key=value` overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .model import ModelConfig
from .sinks import SinkConfig


@dataclass
class DataConfig:
    """The training stream: general documents plus a repeated set R, its twins H, validation V."""

    seed: int = 0
    general_domains: list[str] = field(default_factory=lambda: ["stories", "facts"])
    repeated_domain: str = "stories"
    repeated_kind: str = "natural"  # natural | canary (random tokens, same lengths)
    n_repeated: int = 64  # documents in R (and in H)
    repetitions: int = 32  # times each R document appears in the stream
    repeat_span: float = 1.0  # R's repetitions are spread over this leading fraction of training
    # which occurrence of each R document the dedup stream keeps: first (all of R early in
    # training) or random (one of its slots drawn per document, so R is spread over the run as
    # a shuffled deduplicated corpus would place it)
    dedup_keep: str = "first"
    n_validation: int = 256
    # share of the general stream (and of V) drawn from the repeated domain; None = every
    # general domain in turn. 0 with general_domains=[facts] is the paper's regime: R is the
    # only source of its domain
    in_domain_share: float | None = None
    n_heldout: int = 0  # documents in H, the held-out in-domain set (0 = as many as R)
    # text corpora instead of the built-in generator (see memsinks.data.sources for the spec syntax)
    general_source: str = ""  # a file, directory, glob or hf:owner/name; "" = built-in
    repeated_source: str = ""  # where R and H come from; "" = general_source
    tokenizer: str = "train:bpe"  # text corpora: train:bpe, a local path or a hub name
    vocab_size: int = 8192  # train:bpe vocabulary size
    tokenizer_docs: int = 20000  # documents train:bpe learns from (split over the sources)
    min_tokens: int = 16  # text corpora: shorter documents are skipped
    max_tokens: int = 0  # text corpora: longer documents are cut (0 = model context - 2)
    # what a document's sink ID is keyed on: hash (its tokens), minhash (its near-duplicate
    # cluster), field:NAME (a metadata field; built-in: field:source) or an annotation table
    # (memsinks annotate; joined on the document hash); see data/keys.py
    sink_key: str = "hash"
    # each occurrence of an R document has this share of its tokens replaced, differently per
    # occurrence and deterministically (draws from R's own tokens); R as evaluated, H and V
    # stay unperturbed. Repetition that is not exact, as reposts and quotes are
    perturb: float = 0.0
    # built-in corpus: R's (and H's) documents are spread over this many sources round-robin,
    # the metadata field "source" that sink_key=field:source reads (0 = no field)
    sources: int = 0

    def validate(self) -> None:
        if self.repeated_source and not self.general_source:
            raise ValueError("data.repeated_source is set but data.general_source is not; set "
                             "both (text corpora) or neither (the built-in corpus)")
        if self.dedup_keep not in ("first", "random"):
            raise ValueError(f"data.dedup_keep = {self.dedup_keep!r}; use first or random")
        if self.repeated_kind not in ("natural", "canary"):
            raise ValueError(f"data.repeated_kind = {self.repeated_kind!r}; use natural or canary")
        if not self.general_domains:
            raise ValueError("data.general_domains is empty; name at least one corpus domain")
        for name in ("n_repeated", "repetitions", "n_validation"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"data.{name} = {getattr(self, name)} must be at least 1")
        if self.n_heldout < 0:
            raise ValueError(f"data.n_heldout = {self.n_heldout} must be >= 0 (0 = as many "
                             "as data.n_repeated)")
        if self.in_domain_share is not None:
            if not 0 <= self.in_domain_share <= 1:
                raise ValueError(f"data.in_domain_share = {self.in_domain_share} is not a "
                                 "share in [0, 1]; use for example 0 (the paper's regime) or 0.5")
            others = [d for d in self.general_domains if d != self.repeated_domain]
            if self.in_domain_share < 1 and not others:
                raise ValueError("data.in_domain_share < 1 needs a general domain other than "
                                 f"the repeated domain {self.repeated_domain!r}; add one to "
                                 "data.general_domains (for example facts)")
            if self.general_source:
                raise ValueError("data.in_domain_share applies to the built-in corpus only; "
                                 "with text corpora choose the sources instead")
        from .data.keys import parse_key

        parse_key(self.sink_key)
        if not 0 <= self.perturb < 1:
            raise ValueError(f"data.perturb = {self.perturb} is not a share in [0, 1); use for "
                             "example 0.05 (one token in twenty replaced per occurrence)")
        if self.sources < 0:
            raise ValueError(f"data.sources = {self.sources} must be >= 0")
        if self.sources and self.general_source:
            raise ValueError("data.sources groups the built-in corpus's documents; a text "
                             "corpus brings its own metadata fields (data.sink_key=field:NAME)")
        if self.sink_key.startswith("field:") and not self.general_source and not self.sources:
            raise ValueError(f"data.sink_key = {self.sink_key} needs a field; the built-in "
                             "corpus has one, source, when data.sources is set (for example 16)")
        if not 0 < self.repeat_span <= 1:
            raise ValueError(f"data.repeat_span = {self.repeat_span} is not in (0, 1]")


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 32  # documents per step (one per row, unless packing)
    lr: float = 2e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 50
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0  # model initialisation
    eval_every: int = 100  # learning-curve evaluations (0 = none)
    eval_docs: int = 64  # documents per set in learning-curve evaluations
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch CPU threads (0 = torch's default)
    grad_accum: int = 1  # micro-batches per step (the batch is the same; memory is smaller)
    parallel: str = "auto"  # under torchrun: auto (= ddp) | ddp | fsdp | none
    compile: bool = False  # torch.compile the model (GPU)
    checkpoint_every: int = 250  # steps between resumable checkpoints (0 = only on SIGTERM)
    # pack a step's documents into rows of row_len tokens, attention kept inside documents;
    # the same documents per step (batch_size), the same gradients up to float rounding
    # None = on for text corpora (mixed lengths: 3-4x the useful tokens/s measured), off for
    # the built-in corpus (similar lengths: about 5% slower, benchmarks/packing.py)
    packing: bool | None = None
    row_len: int = 0  # packed row length (0 = the model context); longer documents are split
    # training matmuls: auto (bf16 autocast on GPU, fp32 on CPU) | fp32 | bf16
    precision: str = "auto"

    def validate(self) -> None:
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"train.precision = {self.precision!r} is not one of auto, fp32, "
                             "bf16")
        if self.row_len < 0 or self.row_len == 1:
            raise ValueError(f"train.row_len = {self.row_len} must be 0 (the model context) or "
                             "at least 2 (BOS and EOS)")
        for name in ("steps", "batch_size", "grad_accum"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"train.{name} = {getattr(self, name)} must be at least 1")
        if self.checkpoint_every < 0:
            raise ValueError(f"train.checkpoint_every = {self.checkpoint_every} must be >= 0")
        from .parallel import STRATEGIES

        if self.parallel not in STRATEGIES:
            raise ValueError(f"train.parallel = {self.parallel!r} is not one of "
                             f"{', '.join(STRATEGIES)}")
        if self.lr <= 0:
            raise ValueError(f"train.lr = {self.lr} must be positive")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"train.min_lr_ratio = {self.min_lr_ratio} is not in [0, 1]")


@dataclass
class PretrainConfig:
    """The base a study pretrains when ``model.init_from = pretrain``: standard training on
    general documents only (past those the study's own stream reads; never R, H or V), with
    the train section's batch size and optimizer settings. Every method then fine-tunes it."""

    steps: int = 0
    lr: float = 2e-3
    warmup_steps: int = 50

    def validate(self) -> None:
        if self.steps < 0:
            raise ValueError(f"pretrain.steps = {self.steps} must be >= 0")
        if self.lr <= 0:
            raise ValueError(f"pretrain.lr = {self.lr} must be positive")


@dataclass
class StudyConfig:
    """A whole study: the same stream and seeds, several training methods, one report."""

    name: str = "default"
    methods: list[str] = field(default_factory=lambda: ["standard", "dedup", "memsinks"])
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sinks: SinkConfig = field(default_factory=SinkConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    out_dir: str = "runs"

    def validate(self) -> None:
        from .methods import METHODS  # methods depend on config, not the other way round

        self.data.validate()
        self.train.validate()
        self.sinks.validate()
        self.pretrain.validate()
        self.model.resolved()
        self._validate_init()
        if not self.methods:
            raise ValueError("methods is empty; name at least one of " + ", ".join(METHODS))
        for method in self.methods:
            if method not in METHODS:
                raise ValueError(f"method {method!r} is unknown; choose from {', '.join(METHODS)}")
        if self.data.repetitions > self.train.steps:
            raise ValueError(f"data.repetitions = {self.data.repetitions} exceeds train.steps = "
                             f"{self.train.steps}; a document can repeat at most once per step")
        occurrences = self.data.n_repeated * self.data.repetitions
        stream = self.train.steps * self.train.batch_size
        if occurrences > stream // 2:
            raise ValueError(
                f"data.n_repeated x data.repetitions = {occurrences} documents would fill more "
                f"than half of the stream of {stream} (train.steps x train.batch_size); "
                "lower them or train longer")

    def _validate_init(self) -> None:
        start = self.model.init_from
        if start == "pretrain":
            if self.pretrain.steps < 1:
                raise ValueError("model.init_from = pretrain needs pretrain.steps >= 1 (the "
                                 "base model's training steps); set it, for example 2000")
        elif self.pretrain.steps:
            raise ValueError(f"pretrain.steps = {self.pretrain.steps} is set but model.init_from "
                             f"is {start!r}; set model.init_from=pretrain to use it, or drop it")
        elif start and not Path(start).exists():
            raise FileNotFoundError(f"model.init_from = {start!r} does not exist; pass a model "
                                    "directory (a transformers checkpoint or a study's method "
                                    "directory) or pretrain")
        if start and "standard-narrow" in self.methods:
            raise ValueError("standard-narrow trains a fresh narrow model, which a pretrained "
                             "start cannot give; drop it from methods when model.init_from is "
                             "set")

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


def to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def _build(cls: type, values: dict, prefix: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in (values or {}).items():
        if key not in known:
            raise ValueError(f"unknown config key {prefix + key!r}; valid keys here: "
                             f"{', '.join(known)}")
        sub = _SECTIONS.get(key) if cls is StudyConfig else None
        kwargs[key] = (_build(sub, value, f"{key}.") if sub
                       else _coerce(known[key], value, f"{prefix}{key}"))
    return cls(**kwargs)


def _coerce(spec: dataclasses.Field, value: Any, name: str) -> Any:
    # YAML reads "1e-3" as a string and "1" as an int; take the field's own type where it is plain
    default = spec.default
    if value is None or default is dataclasses.MISSING or default is None:
        return value
    try:
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError
            return value
        if isinstance(default, (int, float)) and not isinstance(value, bool):
            number = type(default)(value)
            if isinstance(default, int) and number != float(value):
                raise ValueError
            return number
    except (TypeError, ValueError):
        raise ValueError(f"config key {name!r} = {value!r} is not a valid "
                         f"{type(default).__name__}") from None
    return value


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "sinks": SinkConfig, "train": TrainConfig,
             "pretrain": PretrainConfig}


def from_dict(values: dict) -> StudyConfig:
    return _build(StudyConfig, values, "")


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """Apply `section.key=value` strings (values parsed as YAML) to a nested dict."""
    values = {k: (dict(v) if isinstance(v, dict) else v) for k, v in (values or {}).items()}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value "
                             "(for example train.steps=200)")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw else ""
        parts = key.strip().split(".")
        if len(parts) == 1:
            values[parts[0]] = value
        elif len(parts) == 2:
            values.setdefault(parts[0], {})
            if not isinstance(values[parts[0]], dict):
                raise ValueError(f"override {key!r}: {parts[0]!r} is not a config section")
            values[parts[0]][parts[1]] = value
        else:
            raise ValueError(f"override key {key!r} is nested too deeply; use section.key")
    return values


def load(path: str | Path | None, overrides: list[str] = ()) -> StudyConfig:
    """Read a YAML study config (or the defaults), apply overrides, validate."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {str(path)!r} does not exist; pass the path "
                                    "of a YAML file such as configs/default.yaml")
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"config file {str(path)!r} must hold a mapping of sections")
    config = from_dict(apply_overrides(values, list(overrides)))
    config.validate()
    return config


def dump(config: StudyConfig) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)
