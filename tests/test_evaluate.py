"""Metrics: exact values on hand-made cases."""

import math

import numpy as np
import pytest
import torch

from memsinks.data.stream import BOS, EOS, DocSet
from memsinks.measure.losses import document_nll
from memsinks.measure.stats import bootstrap_closure, gap, mean_nll, paired_difference
from memsinks.model import ModelConfig, build_model
from memsinks.sinks import SinkConfig, Sinks, document_id


def test_mean_nll_counts_every_token_once_and_its_error():
    sums, counts = np.array([2.0, 6.0, 4.0]), np.array([2, 3, 4])
    mean, se = mean_nll(sums, counts)
    assert mean == pytest.approx(12 / 9)
    residual = sums - (12 / 9) * counts
    assert se == pytest.approx(math.sqrt((residual**2).sum() / 6) / 3)
    # equal per-token losses: no spread, no error
    assert mean_nll(np.array([1.0, 2.0]), np.array([1, 2]))[1] == pytest.approx(0.0)


def test_gap_and_paired_difference():
    g, se = gap(np.array([3.0, 3.0]), np.array([1, 1]), np.array([1.0, 2.0]), np.array([1, 1]))
    assert g == pytest.approx(1.5)
    assert se == pytest.approx(0.5)
    d, se = paired_difference(np.array([3.0, 5.0]), np.array([2.0, 4.0]), np.array([1, 1]))
    assert (d, se) == (pytest.approx(1.0), pytest.approx(0.0))


def test_bootstrap_closure_exact_cases():
    counts = {"R": np.ones(50), "H": np.ones(50)}
    rng = np.random.default_rng(0)
    h = rng.normal(2.0, 0.1, 50)
    r = rng.normal(1.0, 0.1, 50)
    std = {"R": r, "H": h}
    same = bootstrap_closure(std, std, counts, rounds=200)
    assert same == (pytest.approx(0.0), pytest.approx(0.0))
    # a model whose R loss equals its H loss on average has the whole gap closed
    closed = {"R": r + (h.mean() - r.mean()), "H": h}
    value, se = bootstrap_closure(std, closed, counts, rounds=200)
    assert value == pytest.approx(1.0)
    assert se < 0.05


def test_document_nll_matches_a_manual_softmax():
    config = ModelConfig(num_layers=1, hidden_size=16, intermediate_size=32, num_heads=2,
                         num_kv_heads=2)
    model = build_model(config, vocab_size=20, seed=1)
    docs = [np.array([5, 6, 7], dtype=np.int32), np.array([8, 9], dtype=np.int32)]
    docset = DocSet("t", docs, np.zeros(2), np.array([document_id(d) for d in docs]))
    got = document_nll(model, docset)
    for i, doc in enumerate(docs):
        seq = torch.tensor([[BOS, *doc.tolist(), EOS]])
        logp = torch.log_softmax(model(input_ids=seq).logits[0, :-1], -1)
        expected = -logp[torch.arange(len(doc) + 1), seq[0, 1:]].sum().item()
        assert got[i] == pytest.approx(expected, abs=1e-4)
    # own mode uses each document's own mask: per-document results equal single-doc batches
    sinks = Sinks(model, SinkConfig())
    both = document_nll(model, docset, sinks, "own")
    alone = document_nll(model, DocSet("t", docs[:1], np.zeros(1), docset.ids[:1]), sinks, "own")
    assert both[0] == pytest.approx(alone[0], abs=1e-5)
    assert sinks.mode == "off"
