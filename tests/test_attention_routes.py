"""train.attention: packed rows without a dense mask (positions only, or rows laid end to end)
train as the dense-mask route does; FlexAttention's loss is compared where CPU allows it."""

import numpy as np
import pytest
import torch

from memsinks.data.stream import BOS, EOS, PAD
from memsinks.model import ModelConfig, build_model
from memsinks.sinks import SinkConfig, Sinks, document_id
from memsinks.train import ROUTES, Recipe, TrainConfig, rows_nll, step_batch, use_attention

CPU = torch.device("cpu")
SHAPE = ModelConfig(preset="tiny", num_layers=2, hidden_size=32, intermediate_size=64,
                    num_heads=2, num_kv_heads=2, max_seq_len=64)
VOCAB = 50


def _documents(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(4, VOCAB, n).astype(np.int32) for n in lengths]


def _gradient(model, sinks, batch, labels, route):
    model.zero_grad(set_to_none=True)
    loss = rows_nll(model, batch, labels, torch.arange(batch.rows), sinks, route=route)
    loss.backward()
    return float(loss), torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize("with_sinks", [False, True])
def test_positions_and_flat_rows_train_as_the_dense_mask(with_sinks):
    model = build_model(SHAPE, VOCAB, seed=3).float()
    sinks = Sinks(model, SinkConfig()) if with_sinks else None
    tokens = _documents([30, 7, 55, 12, 40, 3, 22, 18, 9, 26], seed=5)
    ids = [document_id(t) if i % 3 else 0 for i, t in enumerate(tokens)]
    batch, labels, _ = step_batch(tokens, ids, CPU, (PAD, BOS, EOS), Recipe(), row_len=64)
    assert batch.packed and batch.rows > 1 and (batch.input_ids == PAD).any()  # padded rows
    dense_loss, dense = _gradient(model, sinks, batch, labels, "mask")
    for route in ("positions", "flat"):
        loss, grad = _gradient(model, sinks, batch, labels, route)
        assert loss == pytest.approx(dense_loss, rel=1e-5), route
        assert (grad - dense).abs().max() / dense.abs().max() < 1e-5, route
    inputs = batch.model_inputs(None, "flat")
    assert inputs["input_ids"].shape == (1, batch.rows * batch.input_ids.shape[1])
    assert "attention_mask" not in inputs and inputs["use_cache"] is False
    with pytest.raises(ValueError, match="route 'sparse' is not mask, positions or flat"):
        batch.model_inputs(None, "sparse")


def test_flex_attention_gives_the_dense_mask_s_loss_and_cannot_train_on_cpu():
    model = build_model(SHAPE, VOCAB, seed=4).float()
    tokens = _documents([20, 9, 33, 14, 6, 27], seed=6)
    batch, labels, _ = step_batch(tokens, [0] * len(tokens), CPU, (PAD, BOS, EOS), Recipe(),
                                  row_len=64)
    rows = torch.arange(batch.rows)
    with torch.no_grad():
        dense = float(rows_nll(model, batch, labels, rows))
        with pytest.raises(ValueError, match="flex_attention cannot train on CPU"):
            use_attention(model, "flex_attention")
        model.set_attn_implementation("flex_attention")  # forward only: no backward on CPU
        try:
            flex = float(rows_nll(model, batch, labels, rows, route=ROUTES["flex_attention"]))
        except Exception as error:  # no C++ compiler for torch.compile's CPU kernels
            pytest.skip(f"FlexAttention does not run on this CPU: {error}")
    assert flex == pytest.approx(dense, rel=1e-5)


def test_an_unknown_attention_is_refused_in_one_sentence():
    with pytest.raises(ValueError, match="train.attention = 'xformers' is not one of sdpa"):
        TrainConfig(attention="xformers").validate()
