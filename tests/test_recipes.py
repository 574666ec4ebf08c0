"""Training-time methods and launch: Goldfish loss, gradient masking, accumulation, DDP."""

import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from memsinks.config import DataConfig, TrainConfig
from memsinks.data.stream import Mixture
from memsinks.model import ModelConfig, build_model
from memsinks.sinks import SinkConfig, Sinks
from memsinks.train import GradientRouter, Recipe, goldfish_drops, train

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


def test_shared_grad_enters_the_fingerprint_only_when_set():
    from memsinks.config import StudyConfig
    from memsinks.study.fingerprint import method_fingerprint

    config = StudyConfig()
    before = method_fingerprint(config, "memsinks-repeated")
    config.sinks.shared_grad = 1.0
    assert method_fingerprint(config, "memsinks-repeated") == before
    config.sinks.shared_grad = 0.25
    assert method_fingerprint(config, "memsinks-repeated") != before
    assert method_fingerprint(config, "standard") == method_fingerprint(StudyConfig(), "standard")
    config.sinks.shared_grad = 2.0
    with pytest.raises(ValueError, match="shared_grad"):
        config.sinks.validate()
