"""Invariants of the sink mechanism."""

import math

import pytest
import torch

from memsinks.model import ModelConfig, build_model
from memsinks.sinks import SinkConfig, Sinks, document_id, drop_sinks, sink_masks


def tiny_model(seed: int = 0, mlp: int = 96):
    config = ModelConfig(num_layers=2, hidden_size=32, intermediate_size=mlp, num_heads=4,
                         num_kv_heads=2, max_seq_len=64)
    return build_model(config, vocab_size=50, seed=seed)


def test_document_id_is_63_bit_nonzero_and_content_addressed():
    a = document_id([5, 6, 7])
    assert a == document_id([5, 6, 7])
    assert a != document_id([5, 6, 8]) and a != document_id([7, 6, 5])
    ids = [document_id([i, i + 1]) for i in range(2000)]
    assert all(0 < i < 2**63 for i in ids)
    assert len(set(ids)) == 2000


def test_mask_density_within_binomial_bounds():
    n_sink, p = 1000, 0.3
    ids = torch.tensor([document_id([i]) for i in range(500)])
    counts = sink_masks(ids, n_sink, p).sum(dim=1).double()
    sd = math.sqrt(n_sink * p * (1 - p))
    # every ID within 5 binomial standard deviations; the mean within 5 of its own
    assert ((counts - n_sink * p).abs() < 5 * sd).all()
    assert abs(counts.mean().item() - n_sink * p) < 5 * sd / math.sqrt(len(ids))


def test_pairwise_overlap_near_p_squared():
    n_sink, p = 2000, 0.3
    ids = torch.tensor([document_id([i, 99]) for i in range(100)])
    masks = sink_masks(ids, n_sink, p).double()
    overlap = masks @ masks.T / n_sink
    off_diagonal = overlap[~torch.eye(len(ids), dtype=torch.bool)]
    # mean overlap of independent masks is p^2 = 0.09; its sd over 4950 pairs is tiny
    assert abs(off_diagonal.mean().item() - p * p) < 0.003
    # no two documents share an identical mask
    assert off_diagonal.max().item() < p


def test_each_neuron_used_by_about_p_of_documents():
    ids = torch.tensor([document_id([i, 7]) for i in range(4000)])
    usage = sink_masks(ids, 64, 0.3).double().mean(dim=0)
    sd = math.sqrt(0.3 * 0.7 / 4000)
    assert ((usage - 0.3).abs() < 5 * sd).all()


def test_same_id_same_mask_across_calls_batches_and_seeds_differ():
    a, b, c = document_id([1]), document_id([2]), document_id([3])
    alone = sink_masks(torch.tensor([a]), 300, 0.3)
    batch = sink_masks(torch.tensor([c, a, b, a]), 300, 0.3)
    assert torch.equal(alone[0], batch[1]) and torch.equal(alone[0], batch[3])
    assert not torch.equal(batch[0], batch[1])
    assert not torch.equal(alone, sink_masks(torch.tensor([a]), 300, 0.3, seed=1))
    # ID 0 gets no sinks at all
    assert not sink_masks(torch.tensor([0]), 300, 1.0).any()
    # p_active = 1 switches every sink on for any real ID
    assert sink_masks(torch.tensor([a, b]), 300, 1.0).all()


def test_known_mask_values_are_stable():
    # pins the hash: a change here silently changes every trained model's masks
    mask = sink_masks(torch.tensor([document_id([1, 2, 3])]), 16, 0.5)
    assert mask.int().tolist() == [[0, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 0, 1, 1]]


def test_packed_row_tokens_get_their_own_document_mask():
    model = tiny_model()
    sinks = Sinks(model, SinkConfig())
    a, b = document_id([1, 2]), document_id([3, 4])
    row = torch.tensor([[a, a, a, b, b, 0]])
    full = sinks.per_token(row)
    assert full.shape == (1, 6, 96)
    own = sinks.masks([a, b]).float()
    assert torch.equal(full[0, 0, sinks.n_shared:], own[0])
    assert torch.equal(full[0, 2, sinks.n_shared:], own[0])
    assert torch.equal(full[0, 3, sinks.n_shared:], own[1])
    assert not full[0, 5, sinks.n_shared:].any()
    assert full[..., : sinks.n_shared].eq(1).all()


def test_gate_multiplies_hidden_activations_in_train_mode():
    model = tiny_model()
    sinks = Sinks(model, SinkConfig(p_shared=0.5, p_active=0.5))
    seen = {}

    def record(module, args, output):
        seen["input"] = args[0].detach().clone()

    handle = model.model.layers[1].mlp.down_proj.register_forward_hook(record)
    doc = document_id([9])
    tokens = torch.randint(0, 50, (1, 5))
    with sinks.mode_of("train", ids=torch.full((1, 5), doc)):
        model(input_ids=tokens)
    handle.remove()
    # the forward hook runs after the sink pre-hook, so it sees the gated input
    mask = sinks.masks([doc])[0]
    hidden_sinks = seen["input"][0, :, sinks.n_shared:]
    assert hidden_sinks[:, ~mask].abs().max().item() == 0.0
    assert hidden_sinks[:, mask].abs().min().item() > 0.0


def test_drop_mode_equals_model_with_sink_neurons_deleted():
    model = tiny_model(seed=3)
    tokens = torch.randint(0, 50, (3, 12))
    for rescale in ("paper", "mass", "none"):
        sinks = Sinks(model, SinkConfig(drop_rescale=rescale))
        with torch.no_grad(), sinks.mode_of("drop"):
            expected = model(input_ids=tokens).logits
        plain = drop_sinks(model, sinks)
        assert plain.config.intermediate_size == sinks.n_shared
        assert plain.model.layers[0].mlp.down_proj.in_features == sinks.n_shared
        with torch.no_grad():
            got = plain(input_ids=tokens).logits
        assert (got - expected).abs().max().item() < 1e-5
        sinks.remove()
    # the original is untouched and still gates
    sinks = Sinks(model, SinkConfig())
    with torch.no_grad():
        full = model(input_ids=tokens).logits
        with sinks.mode_of("drop"):
            dropped = model(input_ids=tokens).logits
    assert (full - dropped).abs().max().item() > 1e-4


def test_keep_exclude_and_off_modes():
    model = tiny_model()
    sinks = Sinks(model, SinkConfig(p_active=0.25))
    sinks.set_mode("keep")
    assert sinks._mask[: sinks.n_shared].eq(1).all()
    assert sinks._mask[sinks.n_shared:].eq(0.25).all()
    a = document_id([4, 4])
    sinks.set_mode("exclude", exclude=[a])
    own = sinks.masks([a])[0]
    assert sinks._mask[sinks.n_shared:][own].eq(0).all()
    assert sinks._mask[sinks.n_shared:][~own].eq(0.25).all()
    sinks.set_mode("off")
    assert sinks._mask is None
    with pytest.raises(ValueError, match="needs per-token"):
        sinks.set_mode("own")
    with pytest.raises(ValueError, match="not one of"):
        sinks.set_mode("sideways")


def test_rescale_factors():
    model = tiny_model(mlp=100)
    assert Sinks(model, SinkConfig(0.7, 0.3, drop_rescale="paper")).drop_scale() == \
        pytest.approx(1.0 / 0.7)
    assert Sinks(model, SinkConfig(0.7, 0.3, drop_rescale="mass")).drop_scale() == \
        pytest.approx((70 + 0.3 * 30) / 70)
    assert Sinks(model, SinkConfig(0.7, 0.3, drop_rescale="none")).drop_scale() == 1.0


@pytest.mark.parametrize("field,value", [("p_shared", 0.0), ("p_active", 1.5),
                                         ("p_active", -0.1)])
def test_bad_probabilities_are_rejected(field, value):
    with pytest.raises(ValueError, match=f"sinks.{field}"):
        SinkConfig(**{field: value}).validate()


def _reference_by_hand(doc_id: int, n_sink: int, p_active: float) -> list[bool]:
    """The reference formula in Python integers, with int64 wrap-around made explicit."""
    def wrap(x: int) -> int:  # two's-complement int64
        x &= (1 << 64) - 1
        return x - (1 << 64) if x >= 1 << 63 else x

    a, m = 1588635695, 4294967291
    out, power = [], 1
    for _ in range(n_sink):
        value = wrap(wrap(doc_id * 2**16) * power) % m  # Python's % is torch.remainder's
        out.append(value / m < p_active)
        power = wrap(power * a)
    return out


def test_reference_masks_are_bit_compatible_including_wraparound_and_quirks():
    from memsinks.sinks import reference_sink_masks

    ids = [0, 1, 2, 7, 12345, 2**31 + 11, 2**40 + 3, 2**62 + 5, -9]
    got = reference_sink_masks(torch.tensor(ids), 40, 0.3)
    for row, doc_id in zip(got.tolist(), ids, strict=True):
        assert row == _reference_by_hand(doc_id, 40, 0.3), doc_id
    assert got[0].all()  # ID 0 switches every sink on
    assert got[1, 0] and got[2, 0] and got[3, 0]  # small IDs share sink neuron 0
    # golden values, computed once from the formula in Python integers (_reference_by_hand)
    on = [[j for j, bit in enumerate(row) if bit] for row in got.tolist()]
    assert on[4] == [0, 4, 8, 10, 13, 16, 17, 18, 27, 33, 36]  # ID 12345
    assert on[7] == [0, 1, 7, 9, 13, 15, 18, 23, 28, 32, 35]  # ID 2^62 + 5: a^j and products wrap
    assert 0.15 < got[4:].float().mean().item() < 0.45  # about p_active for large IDs


def test_a_model_can_use_the_reference_masks():
    from memsinks.sinks import reference_sink_masks

    model = tiny_model()
    sinks = Sinks(model, SinkConfig(p_shared=0.5, p_active=0.3, mask="reference"))
    masks = sinks.masks([12345, 0])
    assert torch.equal(masks, reference_sink_masks(torch.tensor([12345, 0]), sinks.n_sink, 0.3))
    with pytest.raises(ValueError, match="sinks.mask"):
        SinkConfig(mask="authors").validate()


def test_centred_masks_average_to_the_drop_model():
    model = tiny_model()
    sinks = Sinks(model, SinkConfig(centered=True, drop_rescale="none"))
    ids = torch.tensor([[5, 5, 0, 9]])
    rows = sinks.per_token(ids)[0]
    own = sinks.masks([5])[0]
    assert torch.equal(rows[0, : sinks.n_shared], torch.ones(sinks.n_shared))
    assert torch.allclose(rows[0, sinks.n_shared:], own.float() - 0.3)
    assert torch.equal(rows[2, sinks.n_shared:], torch.zeros(sinks.n_sink))  # ID 0: no sinks
    # over many documents the sink part averages to zero: drop mode is the average model
    many = sinks.per_token(torch.arange(1, 4001))[:, sinks.n_shared:]
    assert many.mean(dim=0).abs().max() < 0.05
    x = torch.randint(4, 50, (2, 10))
    with sinks.mode_of("keep"):
        kept = model(x).logits
    with sinks.mode_of("drop"):
        assert torch.allclose(model(x).logits, kept)
    with pytest.raises(ValueError, match="centred"):
        sinks.set_mode("exclude", exclude=[5])
