"""Packed rows train and evaluate as one document per row does, in fp32 (the layout itself:
data/test_packing.py)."""

import json

import numpy as np
import pytest
import torch

from memsinks.data.config import DataConfig
from memsinks.data.packing import PackedBatch
from memsinks.data.stream import BOS, EOS, PAD, DocSet, Mixture
from memsinks.measure.losses import document_nll
from memsinks.model import ModelConfig, build_model
from memsinks.sinks import SinkConfig, Sinks, document_id
from memsinks.train import Recipe, TrainConfig, _parts, rows_nll, step_batch, train

CPU = torch.device("cpu")
SHAPE = ModelConfig(preset="tiny", num_layers=2, hidden_size=32, intermediate_size=64,
                    num_heads=2, num_kv_heads=2, max_seq_len=64)
VOCAB = 50


def _documents(lengths: list[int], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(4, VOCAB, n).astype(np.int32) for n in lengths]


def _model(seed: int = 0) -> torch.nn.Module:
    return build_model(SHAPE, VOCAB, seed=seed).float()


@pytest.mark.parametrize("mode", ["off", "own", "drop"])
def test_packed_document_nll_equals_one_document_per_row(mode):
    torch.manual_seed(0)
    model = _model()
    sinks = Sinks(model, SinkConfig()) if mode != "off" else None
    tokens = _documents([3, 17, 40, 9, 25, 1, 60, 12, 30, 33, 5])
    docs = DocSet("t", tokens, np.zeros(len(tokens)),
                  np.array([document_id(t) for t in tokens], dtype=np.int64))
    plain = document_nll(model, docs, sinks, mode, batch_size=8)
    packed = document_nll(model, docs, sinks, mode, batch_size=8, packing=True)
    per_token = docs.predicted_tokens
    assert np.abs(packed / per_token - plain / per_token).max() < 1e-5
    assert np.abs(packed - plain).max() / np.abs(plain).max() < 1e-5
    if sinks is not None:
        assert sinks.mode == "off"


def _step_gradient(model, sinks, tokens, ids, recipe, routed, row_len, accum):
    """The gradient of one training step, micro-batch by micro-batch as ``train`` does it."""
    model.zero_grad(set_to_none=True)
    batch, labels, routed_rows = step_batch(tokens, ids, CPU, (PAD, BOS, EOS), recipe, routed,
                                            row_len=row_len)
    total = int((labels[:, 1:] != -100).sum())
    for part, _ in _parts(torch.arange(batch.rows), routed_rows, accum):
        (rows_nll(model, batch, labels, part, sinks) / total).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()]), batch, total


@pytest.mark.parametrize("goldfish", [0, 4])
def test_packed_training_gradient_equals_one_document_per_row(goldfish):
    model = _model(seed=1)
    sinks = Sinks(model, SinkConfig())
    tokens = _documents([30, 7, 55, 12, 40, 3, 22, 18], seed=2)
    ids = [document_id(t) if i % 3 else 0 for i, t in enumerate(tokens)]
    routed = np.array([i % 2 == 0 for i in range(len(tokens))])
    recipe = Recipe(goldfish_k=goldfish)
    plain, _, plain_tokens = _step_gradient(model, sinks, tokens, ids, recipe, routed, 0, 3)
    packed, batch, packed_tokens = _step_gradient(model, sinks, tokens, ids, recipe, routed,
                                                  64, 2)
    assert batch.packed and batch.rows < len(tokens)  # the packing did something
    assert packed_tokens == plain_tokens  # the same tokens count (no document was split)
    assert (packed - plain).abs().max() / plain.abs().max() < 1e-5


def test_packed_goldfish_drops_equal_unpacked_ones_even_across_pieces():
    tokens = _documents([40, 3, 25, 70, 9, 33], seed=3)
    ids = [document_id(t) for t in tokens]
    recipe = Recipe(goldfish_k=4, goldfish_h=13)
    plain, plain_labels, _ = step_batch(tokens, ids, CPU, (PAD, BOS, EOS), recipe)
    for row_len in (64, 20):  # 20: the documents of 25 tokens and more are split into pieces
        packed, labels, _ = step_batch(tokens, ids, CPU, (PAD, BOS, EOS), recipe,
                                       row_len=row_len)

        def dropped(batch: PackedBatch, labels: torch.Tensor) -> set:
            hit = (labels == -100) & (batch.labels != -100)
            return set(zip(batch.doc_index[hit].tolist(), batch.offset[hit].tolist(),
                           strict=True))

        assert dropped(packed, labels) == dropped(plain, plain_labels)
        assert len(dropped(plain, plain_labels)) > 20
        # every label left is the unpacked label of the same token
        kept = labels != -100
        expected = plain_labels[packed.doc_index[kept], packed.offset[kept]]
        assert torch.equal(labels[kept], expected)


def test_goldfish_context_does_not_cross_a_document_boundary():
    # the same document after different neighbours drops the same tokens
    doc = _documents([50], seed=4)[0]
    recipe = Recipe(goldfish_k=4, goldfish_h=13)
    layouts = []
    for before in (_documents([20], seed=5)[0], _documents([30], seed=6)[0]):
        batch, labels, _ = step_batch([before, doc], [1, 2], CPU, (PAD, BOS, EOS), recipe,
                                      row_len=128)
        assert batch.rows == 1
        mine = batch.doc_index[0] == 1
        layouts.append(labels[0][mine])
    assert torch.equal(layouts[0], layouts[1])


def test_training_loop_with_packing_logs_the_unpacked_loss(tmp_path):
    data = DataConfig(n_repeated=4, repetitions=2, n_validation=4)
    mixture = Mixture(data, steps=2, batch_size=8)
    records = {}
    for packing in (False, True):
        model = build_model(SHAPE, len(mixture.vocab), seed=0)
        sinks = Sinks(model, SinkConfig())
        ids = mixture.sink_ids(dedup=False, which="repeated")
        recipe = Recipe(sink_ids=ids, goldfish_k=4, routed=ids != 0, pool_start=48)
        config = TrainConfig(steps=2, batch_size=8, warmup_steps=1, grad_accum=2,
                             packing=packing, row_len=256, eval_every=0)
        out = train(model, mixture, config, recipe, sinks=sinks, progress=False,
                    log_path=tmp_path / f"{packing}.jsonl")
        lines = (tmp_path / f"{packing}.jsonl").read_text().splitlines()
        records[packing] = [json.loads(line) for line in lines], out["tokens"]
    (plain, plain_tokens), (packed, packed_tokens) = records[False], records[True]
    assert packed_tokens == plain_tokens
    assert packed[0]["loss"] == pytest.approx(plain[0]["loss"], abs=2e-5)
    assert packed[0]["grad_norm"] == pytest.approx(plain[0]["grad_norm"], rel=1e-4)


def _packed_worker(rank: int, world: int, port: int, out: str) -> None:
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        model = _short_run(out, packing=True, strategy="ddp")
        if rank == 0:
            torch.save({k: v.clone() for k, v in model.state_dict().items()}, out + "/ddp.pt")
    finally:
        dist.destroy_process_group()


def _short_run(directory: str, packing: bool, strategy: str = "none") -> torch.nn.Module:
    from pathlib import Path

    mixture = Mixture(DataConfig(n_repeated=4, repetitions=3, n_validation=4), 4, 8)
    config = TrainConfig(steps=4, batch_size=8, warmup_steps=2, lr=3e-3, parallel=strategy,
                         packing=packing, row_len=256, eval_every=0)
    model = build_model(SHAPE, len(mixture.vocab), seed=0)
    sinks = Sinks(model, SinkConfig())
    train(model, mixture, config, Recipe(sink_ids=mixture.sink_ids(False, "all")), sinks=sinks,
          log_path=Path(directory) / f"{strategy}-{packing}.jsonl", progress=False)
    return model


@pytest.mark.slow
def test_two_processes_packed_train_the_model_one_trains_unpacked(tmp_path):
    import socket

    import torch.multiprocessing as mp

    single = _short_run(str(tmp_path), packing=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_packed_worker, args=(2, port, str(tmp_path)), nprocs=2)
    state = torch.load(tmp_path / "ddp.pt")
    for name, value in single.state_dict().items():
        assert torch.allclose(value, state[name], atol=1e-5), name
