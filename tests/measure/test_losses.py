"""Per-document losses: exact values on hand-made cases."""


import numpy as np
import pytest
import torch

from memsinks.data.stream import BOS, EOS, DocSet
from memsinks.measure.losses import document_nll
from memsinks.model import ModelConfig, build_model
from memsinks.sinks import SinkConfig, Sinks, document_id


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
