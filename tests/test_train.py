"""Training pieces: schedule, batching, a short run that learns, non-finite loss."""

import numpy as np
import pytest
import torch

from memsinks.analysis import forgetting
from memsinks.config import DataConfig, TrainConfig
from memsinks.mixture import BOS, EOS, PAD, Mixture
from memsinks.model import ModelConfig, build_model
from memsinks.sinks import SinkConfig, Sinks
from memsinks.train import Recipe, collate, lr_at, train


def test_warmup_then_cosine_to_the_floor():
    config = TrainConfig(steps=110, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, config) == pytest.approx(0.1)
    assert lr_at(9, config) == pytest.approx(1.0)
    assert lr_at(10, config) == pytest.approx(1.0)
    assert lr_at(60, config) == pytest.approx(0.55)  # halfway down the cosine
    assert lr_at(110, config) == pytest.approx(0.1)


def test_collate_pads_right_and_tags_every_token_with_its_document():
    batch = collate([np.array([5, 6, 7]), np.array([8])], [11, 22], torch.device("cpu"))
    assert batch.input_ids.tolist() == [[BOS, 5, 6, 7, EOS], [BOS, 8, EOS, PAD, PAD]]
    assert batch.labels.tolist() == [[BOS, 5, 6, 7, EOS], [BOS, 8, EOS, -100, -100]]
    assert batch.doc_ids.tolist() == [[11] * 5, [22, 22, 22, 0, 0]]


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


def test_forgetting_bins_the_excess_by_steps_since_last_seen():
    # two documents seen at steps 0, 10, 20; the excess decays linearly with time since seen
    occurrences = [[0, 10, 20], [5, 15, 25]]
    curve = []
    for step in range(20, 31, 2):
        docs = []
        for occ in occurrences:
            since = step - 1 - max(s for s in occ if s < step)
            docs.append(1.0 - (0.5 - 0.05 * since))  # L_H - loss = 0.5 - 0.05 * since
        curve.append({"step": step, "off": {"L_H": 1.0, "R_docs": docs}})
    result = forgetting({"curve": curve, "r_occurrences": occurrences, "modes": {"off": {}}},
                        start_fraction=0.0, bins=2)
    since, excess = result["off"]["since"], result["off"]["gap"]
    assert since == [2.5, 7.5]
    # bin [0, 5): steps since 1, 3 (doc 0) and 4, 0, 2, 4 (doc 1); bin [5, 10): 9, 5, 7, 9, 6, 8
    assert excess == pytest.approx([0.5 - 0.05 * 14 / 6, 0.5 - 0.05 * 44 / 6])
    assert forgetting({"curve": [], "modes": {"off": {}}}) == {}
