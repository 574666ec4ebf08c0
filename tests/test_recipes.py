"""Training-time methods and launch: Goldfish loss, gradient masking, token-gated sinks,
accumulation, DDP."""

import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from memsinks.data.config import DataConfig
from memsinks.data.rarity import NgramIndex
from memsinks.data.stream import Mixture
from memsinks.model import ModelConfig, build_model
from memsinks.sinks import SinkConfig, Sinks
from memsinks.train import (
    GradientRouter,
    Recipe,
    TrainConfig,
    goldfish_drops,
    rows_nll,
    step_batch,
    train,
)

SHAPE = ModelConfig(num_layers=1, hidden_size=32, intermediate_size=64, num_heads=2,
                    num_kv_heads=2)


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_goldfish_drops_one_in_k_by_preceding_context_only():
    rng = np.random.default_rng(0)
    ids = torch.as_tensor(rng.integers(0, 1000, size=(64, 200)))
    drops = goldfish_drops(ids, k=4, h=13)
    assert not drops[:, 0].any()
    rate = drops[:, 1:].float().mean().item()
    assert abs(rate - 0.25) < 4 * np.sqrt(0.25 * 0.75 / drops[:, 1:].numel())
    # the same 13-token context drops the same token wherever it appears
    row = ids[0].clone()
    shifted = torch.cat([torch.tensor([7, 8, 9]), row])[None]
    here, there = goldfish_drops(row[None], 4, 13)[0], goldfish_drops(shifted, 4, 13)[0]
    assert torch.equal(here[13:], there[16:])
    # the drop is the context hash mod k; order matters and token 0 is an ordinary token
    # (the reference product hash fails both)
    from memsinks.sinks import fmix32

    def context_hash(x, h=3):
        padded = torch.cat([torch.full((1, h), 0xFFFFFFFF), x], 1)
        acc = torch.full(x.shape, 0x9E3779B9)
        for offset in range(h):
            acc = fmix32(acc ^ padded[:, offset:offset + x.shape[1]])
        return acc

    a = torch.tensor([[5, 0, 0, 0, 3, 4, 9]])
    swapped = torch.tensor([[5, 0, 0, 0, 4, 3, 9]])
    assert context_hash(a)[0, 6] != context_hash(swapped)[0, 6]
    with_zero, other_zero = torch.tensor([[5, 0, 7, 1]]), torch.tensor([[6, 0, 8, 1]])
    assert context_hash(with_zero)[0, 3] != context_hash(other_zero)[0, 3]
    assert (context_hash(a) % 4 == 0)[0, 1:].tolist() == goldfish_drops(a, 4, 3)[0, 1:].tolist()
    with pytest.raises(ValueError, match="at least 2"):
        goldfish_drops(a, 1, 3)


def test_gradient_router_confines_routed_gradients_to_the_pool():
    model = build_model(SHAPE, 50, seed=0)
    router = GradientRouter(model, start=48)
    router.active = True
    ids = torch.tensor([[1, 5, 6, 7, 2]])
    model(input_ids=ids, labels=ids).loss.backward()
    mlp = model.model.layers[0].mlp
    assert mlp.gate_proj.weight.grad[:48].abs().sum() == 0
    assert mlp.gate_proj.weight.grad[48:].abs().sum() > 0
    assert mlp.down_proj.weight.grad[:, :48].abs().sum() == 0
    assert mlp.down_proj.weight.grad[:, 48:].abs().sum() > 0
    assert model.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() == 0
    assert model.model.embed_tokens.weight.grad.abs().sum() == 0
    model.zero_grad()
    router.active = False
    model(input_ids=ids, labels=ids).loss.backward()
    assert model.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="0 < start"):
        GradientRouter(model, start=64)


def _run(tmp_path, name, accum=1, routed=False, goldfish=0, steps=6):
    mixture = Mixture(DataConfig(n_repeated=4, repetitions=3, n_validation=4), steps, 8)
    config = TrainConfig(steps=steps, batch_size=8, warmup_steps=2, lr=3e-3, grad_accum=accum)
    model = build_model(SHAPE, len(mixture.vocab), seed=0)
    recipe = Recipe(goldfish_k=goldfish)
    if routed:
        recipe.routed = mixture.sink_ids(False, "repeated") != 0
        recipe.pool_start = 44
    out = train(model, mixture, config, recipe, log_path=tmp_path / f"{name}.jsonl")
    return model, out


def test_gradient_accumulation_gives_the_same_step(tmp_path):
    one, _ = _run(tmp_path, "a", accum=1)
    four, _ = _run(tmp_path, "b", accum=4)
    assert torch.allclose(_weights(one), _weights(four), atol=1e-5)


def test_gradient_masking_leaves_attention_untouched_by_repeated_rows(tmp_path):
    plain, _ = _run(tmp_path, "a")
    routed, _ = _run(tmp_path, "b", routed=True)
    assert not torch.allclose(_weights(plain), _weights(routed))


def test_goldfish_trains_on_fewer_tokens(tmp_path):
    _, plain = _run(tmp_path, "a")
    _, fish = _run(tmp_path, "b", goldfish=4)
    assert 0.7 * plain["tokens"] < fish["tokens"] < 0.8 * plain["tokens"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str, strategy: str) -> None:
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        model, _ = _sink_run(out, strategy)
        from memsinks import parallel

        state = parallel.full_model_state(model, strategy)
        if rank == 0:
            torch.save({k: v.clone() for k, v in state.items()}, out + "/ddp.pt")
    finally:
        dist.destroy_process_group()


def _sink_run(directory, strategy="none"):
    from pathlib import Path

    mixture = Mixture(DataConfig(n_repeated=4, repetitions=3, n_validation=4), 5, 8)
    config = TrainConfig(steps=5, batch_size=8, warmup_steps=2, lr=3e-3, parallel=strategy)
    model = build_model(SHAPE, len(mixture.vocab), seed=0)
    sinks = Sinks(model, SinkConfig())
    out = train(model, mixture, config, Recipe(sink_ids=mixture.sink_ids(False, "all")),
                sinks=sinks, log_path=Path(directory) / f"{strategy}.jsonl", progress=False)
    return model, out


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_train_the_same_model_as_one(tmp_path, strategy):
    single, _ = _sink_run(tmp_path)
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path), strategy), nprocs=2)
    state = torch.load(tmp_path / "ddp.pt")
    for name, value in single.state_dict().items():
        assert torch.allclose(value, state[name], atol=1e-5), name


def _gradients(model, sinks, tokens, ids, router=None):
    model.zero_grad()
    sinks.set_mode("train", ids=ids)
    if router is not None:
        router.active = True
    model(input_ids=tokens, labels=tokens).loss.backward()
    if router is not None:
        router.active = False
    return {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("scale", [0.0, 0.25])
def test_shared_grad_scales_everything_but_the_documents_own_sinks(scale):
    torch.manual_seed(0)
    model = build_model(SHAPE, 50, seed=0)
    sinks = Sinks(model, SinkConfig(p_shared=0.5, p_active=0.5))
    tokens = torch.randint(4, 50, (3, 12))
    ids = torch.tensor([[7] * 12, [9] * 12, [11] * 12])
    plain = _gradients(model, sinks, tokens, ids)
    router = GradientRouter(model, sinks.n_shared, other_scale=scale)
    routed = _gradients(model, sinks, tokens, ids, router)
    n = sinks.n_shared
    for name, grad in plain.items():
        got = routed[name]
        if "gate_proj" in name or "up_proj" in name:
            assert torch.allclose(got[n:], grad[n:], atol=1e-7)  # the sink rows: untouched
            assert torch.allclose(got[:n], scale * grad[:n], atol=1e-7)
        elif "down_proj" in name:
            assert torch.allclose(got[:, n:], grad[:, n:], atol=1e-7)
            assert torch.allclose(got[:, :n], scale * grad[:, :n], atol=1e-7)
        else:  # attention, embeddings, norms
            assert torch.allclose(got, scale * grad, atol=1e-7), name
    router.remove()


def test_sinks_switch_on_only_before_rare_tokens_packed_or_not():
    docs = [np.array([5, 6, 7, 8, 9]), np.array([5, 6, 7, 11]), np.array([12, 13])]
    index = NgramIndex(docs, 2)
    recipe = Recipe(sink_tokens=lambda t: index.rare(t, 2))
    ids = [3, 0, 4]  # the middle document has no sinks
    specials = (0, 1, 2)
    batch, labels, _ = step_batch(docs, ids, torch.device("cpu"), specials, recipe)
    # position p predicts the document's token p (BOS first): on where that token is rare
    expect = torch.zeros_like(batch.doc_ids)
    for row, (t, doc) in enumerate(zip(docs, ids, strict=True)):
        if doc:
            expect[row, : len(t)] = torch.as_tensor(index.rare(t, 2)) * doc
    assert torch.equal(batch.doc_ids, expect)
    assert batch.doc_ids[0].tolist()[:6] == [0, 0, 0, 3, 3, 0]  # 5, (5,6), (6,7) are shared
    assert batch.doc_ids[1].sum() == 0
    packed, _, _ = step_batch(docs, ids, torch.device("cpu"), specials, recipe, row_len=16)
    # the same tokens carry sinks, wherever packing put them
    for row_p in range(packed.doc_ids.shape[0]):
        for col in range(packed.doc_ids.shape[1]):
            doc, offset = int(packed.doc_index[row_p, col]), int(packed.offset[row_p, col])
            if doc >= 0:
                assert packed.doc_ids[row_p, col] == batch.doc_ids[doc, offset]


def test_split_nll_adds_up_and_separates_targets_by_sinks():
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_layers=1, hidden_size=32, intermediate_size=64,
                                    num_heads=2, num_kv_heads=2), 50, seed=0)
    sinks = Sinks(model, SinkConfig(p_shared=0.5, p_active=0.5))
    docs = [np.random.default_rng(i).integers(4, 50, size=12) for i in range(3)]
    recipe = Recipe(sink_tokens=lambda t: t % 2 == 0)
    batch, labels, _ = step_batch(docs, [7, 9, 0], torch.device("cpu"), (0, 1, 2), recipe)
    rows = torch.arange(3)
    total = rows_nll(model, batch, labels, rows, sinks)
    common, rare = rows_nll(model, batch, labels, rows, sinks, split=True)
    assert torch.allclose(common + rare, total, atol=1e-4)
    even = sum(int((d % 2 == 0).sum()) for d in docs[:2])
    assert even > 0
    # the rare part is the NLL of exactly the targets whose predictor had its sinks on
    logits = model(**batch.model_inputs(rows)).logits  # the mask is still set from rows_nll
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1),
                                            labels[:, 1:].flatten(), ignore_index=-100,
                                            reduction="none").view(3, -1)
    on = batch.doc_ids[:, :-1] != 0
    assert int(on.sum()) == even
    assert torch.allclose(nll[on].sum(), rare, atol=1e-4)
