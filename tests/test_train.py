"""Training pieces: schedule, a short run that learns, non-finite loss, bf16 on CPU."""

import numpy as np
import pytest
import torch

from memsinks.data.config import DataConfig
from memsinks.data.stream import Mixture
from memsinks.model import ModelConfig, build_model
from memsinks.sinks import SinkConfig, Sinks
from memsinks.train import Recipe, TrainConfig, lr_at, train


def test_warmup_then_cosine_to_the_floor():
    config = TrainConfig(steps=110, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, config) == pytest.approx(0.1)
    assert lr_at(9, config) == pytest.approx(1.0)
    assert lr_at(10, config) == pytest.approx(1.0)
    assert lr_at(60, config) == pytest.approx(0.55)  # halfway down the cosine
    assert lr_at(110, config) == pytest.approx(0.1)


def test_a_short_run_learns_and_same_seed_gives_same_weights(tmp_path):
    data = DataConfig(n_repeated=4, repetitions=3, n_validation=4)
    mixture = Mixture(data, steps=15, batch_size=8)
    config = TrainConfig(steps=15, batch_size=8, warmup_steps=2, lr=3e-3)
    shape = ModelConfig(num_layers=1, hidden_size=32, intermediate_size=64, num_heads=2,
                        num_kv_heads=2)
    weights = []
    for run in range(2):
        model = build_model(shape, len(mixture.vocab), seed=0)
        sinks = Sinks(model, SinkConfig())
        ids = mixture.sink_ids(dedup=False, which="all")
        out = train(model, mixture, config, Recipe(sink_ids=ids), sinks=sinks,
                    log_path=tmp_path / f"log{run}.jsonl")
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    lines = (tmp_path / "log0.jsonl").read_text().splitlines()
    assert len(lines) == 15 and out["tokens"] > 0
    losses = [float(line.split('"loss": ')[1].split(",")[0]) for line in lines]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert torch.equal(weights[0], weights[1])


def test_non_finite_loss_stops_with_a_clear_message(tmp_path):
    data = DataConfig(n_repeated=2, repetitions=2, n_validation=2)
    mixture = Mixture(data, steps=4, batch_size=4)
    shape = ModelConfig(num_layers=1, hidden_size=16, intermediate_size=32, num_heads=2,
                        num_kv_heads=2)
    model = build_model(shape, len(mixture.vocab), seed=0)
    with torch.no_grad():
        model.model.embed_tokens.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="lower train.lr"):
        train(model, mixture, TrainConfig(steps=4, batch_size=4), log_path=tmp_path / "log.jsonl")


def test_bf16_training_on_cpu_is_close_to_fp32_and_enters_the_fingerprint(tmp_path):
    from memsinks.config import StudyConfig
    from memsinks.study.fingerprint import method_fingerprint

    data = DataConfig(n_repeated=4, repetitions=3, n_validation=4)
    mixture = Mixture(data, steps=6, batch_size=8)
    shape = ModelConfig(num_layers=1, hidden_size=32, intermediate_size=64, num_heads=2,
                        num_kv_heads=2)
    losses = {}
    for precision in ("fp32", "bf16"):
        config = TrainConfig(steps=6, batch_size=8, warmup_steps=2, lr=3e-3, eval_every=0,
                             precision=precision)
        model = build_model(shape, len(mixture.vocab), seed=0)
        train(model, mixture, config, log_path=tmp_path / f"{precision}.jsonl", progress=False)
        log = (tmp_path / f"{precision}.jsonl").read_text().splitlines()
        losses[precision] = np.array([float(line.split('"loss": ')[1].split(",")[0])
                                      for line in log])
        assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights
    # bf16 keeps 8 mantissa bits: the same run to about a percent, not bit for bit
    assert np.allclose(losses["bf16"], losses["fp32"], rtol=0.02)
    assert not np.array_equal(losses["bf16"], losses["fp32"])
    study = StudyConfig()
    plain = method_fingerprint(study, "standard")
    study.train.precision = "bf16"
    assert method_fingerprint(study, "standard") != plain
    study.train.precision = "half"
    with pytest.raises(ValueError, match="train.precision"):
        study.train.validate()
