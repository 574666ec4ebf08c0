"""A study's configuration: StudyConfig composes the sections, each defined beside the code that
owns it (data, model, sinks, train; pretrain here); YAML is their serialised form, ``key=value``
strings override any field, and every value passes the shared coercer (memsinks.coerce)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .coerce import coerce
from .data.config import DataConfig
from .data.stream import Mixture
from .methods import METHODS
from .model import ModelConfig
from .sinks import SinkConfig
from .train import TrainConfig, packs


@dataclass
class PretrainConfig:
    """The base a study pretrains when ``model.init_from = pretrain``: standard training on
    general documents only (past those the study's own stream reads; never R, H or V), with
    the train section's batch size and optimizer settings. Every method then fine-tunes it."""

    steps: int = 0
    """Steps of the base's training (>= 1 with model.init_from = pretrain)."""
    lr: float = 2e-3
    """Peak learning rate of the base's training."""
    warmup_steps: int = 50
    """Steps of linear warmup of the base's training."""

    def validate(self) -> None:
        if self.steps < 0:
            raise ValueError(f"pretrain.steps = {self.steps} must be >= 0")
        if self.lr <= 0:
            raise ValueError(f"pretrain.lr = {self.lr} must be positive")


@dataclass
class StudyConfig:
    """A whole study: the same stream and seeds, several training methods, one report."""

    name: str = "default"
    """The study's directory under out_dir."""
    methods: list[str] = field(default_factory=lambda: ["standard", "dedup", "memsinks"])
    """Training methods, by name (memsinks.methods.METHODS)."""
    data: DataConfig = field(default_factory=DataConfig)
    """The stream and its evaluation sets (memsinks.data.config)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The model's preset and shape, and where it starts (memsinks.model)."""
    sinks: SinkConfig = field(default_factory=SinkConfig)
    """How the MLPs' neurons are split into shared neurons and sinks (memsinks.sinks)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """The training loop (memsinks.train)."""
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    """The base a study pretrains itself with model.init_from = pretrain."""
    out_dir: str = "runs"
    """Where studies are written: out_dir/name."""

    def validate(self) -> None:
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
    if not isinstance(values, dict):
        raise ValueError(f"config section {prefix.rstrip('.')!r} = {values!r} is not a mapping "
                         f"of keys; write it as {prefix}KEY=VALUE or a YAML section")
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ValueError(f"unknown config key {prefix + key!r}; valid keys here: "
                             f"{', '.join(known)}")
        sub = _SECTIONS.get(key) if cls is StudyConfig else None
        kwargs[key] = (_build(sub, {} if value is None else value, f"{key}.") if sub
                       else coerce(cls, key, value, prefix))
    return cls(**kwargs)


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "sinks": SinkConfig, "train": TrainConfig,
             "pretrain": PretrainConfig}


def from_dict(values: dict) -> StudyConfig:
    return _build(StudyConfig, values or {}, "")


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


def study_config_of(method_dir: Path) -> StudyConfig:
    """The config of the study a method directory belongs to (``<study>/config.yaml``)."""
    config_path = Path(method_dir).parent / "config.yaml"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} does not exist; pass a method directory inside "
                                "a study directory, such as runs/default/memsinks")
    return load(config_path)


def mixture_of(config: StudyConfig) -> Mixture:
    """The study's stream; text corpora are cut to the model's context for evaluation, and for
    training too unless rows are packed (which keeps long documents whole, split into rows)."""
    context = config.model.resolved()["max_seq_len"]
    return Mixture(config.data, config.train.steps, config.train.batch_size,
                   max_tokens=context - 2,
                   whole_documents=packs(config.train, bool(config.data.general_source)))
