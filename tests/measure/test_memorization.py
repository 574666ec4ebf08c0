"""Memorization metrics: exact values on hand-made cases and fake models with known outputs."""

import math
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from memsinks.data.stream import BOS, EOS, DocSet
from memsinks.measure.memorization import (
    TokenStatistics,
    auroc,
    exposure,
    extraction,
    fit_skew_normal,
    greedy_continuations,
    lcs_lengths,
    loss_score,
    membership_inference,
    mia_scores,
    min_k_plus_plus_score,
    min_k_score,
    prefix_nll,
    relearn_steps,
    rouge_l,
    skew_normal_logcdf,
    token_statistics,
    tpr_at_fpr,
    zlib_score,
)
from memsinks.model import ModelConfig, build_model
from memsinks.sinks import SinkConfig, Sinks, document_id, drop_sinks

LN2 = math.log(2)


def docset(token_lists) -> DocSet:
    tokens = [np.asarray(t, dtype=np.int32) for t in token_lists]
    return DocSet("t", tokens, np.zeros(len(tokens)),
                  np.array([document_id(t) for t in tokens], dtype=np.int64))


def tiny_llama(vocab_size: int = 20, seed: int = 0, varied: bool = False):
    """``varied``: untied and with larger weights, so greedy text is not one token repeated."""
    config = ModelConfig(preset="tiny", num_layers=2, hidden_size=32, intermediate_size=64,
                         num_heads=2, num_kv_heads=2, max_seq_len=128, tie_embeddings=not varied)
    model = build_model(config, vocab_size, seed=seed)
    if varied:
        with torch.no_grad():
            for p in model.parameters():
                if p.ndim == 2:
                    p.mul_(3)
    return model


class FakeModel(nn.Module):
    """Logits that depend only on the current token, so a KV cache is trivially exact."""

    def __init__(self, logits_of):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the module a device
        self.logits_of = logits_of

    def forward(self, input_ids, past_key_values=None, use_cache=False, **kwargs):
        return SimpleNamespace(logits=self.logits_of(input_ids), past_key_values=past_key_values)


def successor_model(vocab: int) -> FakeModel:
    """Always predicts (x + 1) mod vocab after token x."""
    return FakeModel(lambda ids: 10.0 * nn.functional.one_hot((ids + 1) % vocab, vocab).float())


def fixed_model(probs) -> FakeModel:
    """The same next-token distribution everywhere."""
    log_p = torch.log(torch.tensor(probs, dtype=torch.float32))
    return FakeModel(lambda ids: log_p.expand(*ids.shape, len(probs)))


# -- rank statistics --------------------------------------------------------------------------
def test_auroc_counts_ties_as_half():
    # pairs (m, n): 3>0, 3>2, 2>0, 2=2 (1/2), 1>0, 1<2  ->  4.5 / 6
    assert auroc([3, 2, 1], [0, 2]) == pytest.approx(0.75)
    assert auroc([5, 6], [1, 2, 3]) == 1.0
    assert auroc([1, 2], [5, 6]) == 0.0
    assert auroc([1, 1], [1, 1, 1]) == 0.5


def test_tpr_at_fpr_threshold_lets_at_most_fpr_of_nonmembers_through():
    nonmember = np.arange(100.0)
    # 1% of 100 non-members may exceed the threshold: it is the 2nd highest, 98
    assert tpr_at_fpr([98.5, 99.5, 50, 98], nonmember, 0.01) == 0.5
    # 64 non-members at 1%: none may exceed, so the threshold is the highest non-member
    assert tpr_at_fpr([63.5, 64, 63, 10], np.arange(64.0), 0.01) == 0.5
    assert tpr_at_fpr([3.0, 4.0], [0.0, 1.0, 2.0, 3.0], 0.0) == 0.5


# -- scores on given log-probabilities --------------------------------------------------------
def test_scores_on_hand_made_log_probs():
    logp = np.array([-1.0, -2.0, -3.0, -4.0, -5.0])
    assert loss_score(logp) == pytest.approx(-3.0)
    # 20% of 5 tokens is one token: the lowest, -5
    assert min_k_score(logp) == pytest.approx(-5.0)
    # 20% of 10 tokens is two: mean(-10, -9)
    assert min_k_score(-np.arange(1.0, 11.0)) == pytest.approx(-9.5)
    # fewer than 5 tokens still use one
    assert min_k_score(np.array([-1.0, -2.0])) == pytest.approx(-2.0)
    # z = ((-1 + 1.5) / 0.5, (-2 + 1.5) / 0.25) = (1, -2); the lowest 20% of 2 tokens is -2
    assert min_k_plus_plus_score(np.array([-1.0, -2.0]), np.array([-1.5, -1.5]),
                                 np.array([0.5, 0.25])) == pytest.approx(-2.0)
    text = "the cat sat on the mat"
    assert zlib_score(logp, text) == pytest.approx(-3.0 / len(zlib.compress(text.encode())))
    stats = TokenStatistics([logp], [np.full(5, -3.0)], [np.ones(5)])
    scores = mia_scores(stats, [text])
    assert list(scores) == ["loss", "zlib", "min_k", "min_k_plus_plus"]
    assert scores["min_k_plus_plus"][0] == pytest.approx(-2.0)  # z = logp + 3, lowest -2


def test_token_statistics_and_scores_under_a_known_distribution():
    probs = [0.5, 0.25, 0.125, 0.125]  # token 2 (EOS) and token 3 have probability 1/8
    model = fixed_model(probs)
    stats = token_statistics(model, docset([[3, 0], [1]]))
    # doc 0 predicts 3, 0, EOS; doc 1 predicts 1, EOS
    np.testing.assert_allclose(stats.logp[0], [-3 * LN2, -LN2, -3 * LN2], rtol=1e-6)
    np.testing.assert_allclose(stats.logp[1], [-2 * LN2, -3 * LN2], rtol=1e-6)
    # mu = sum p log p = -(0.5*1 + 0.25*2 + 0.25*3) ln2 = -1.75 ln2
    # sigma^2 = (0.5*1 + 0.25*4 + 0.25*9) ln2^2 - mu^2 = 0.6875 ln2^2
    mu, sigma = -1.75 * LN2, math.sqrt(0.6875) * LN2
    for m, s in zip(stats.mean, stats.std, strict=True):
        np.testing.assert_allclose(m, mu, rtol=1e-5)
        np.testing.assert_allclose(s, sigma, rtol=1e-5)
    scores = mia_scores(stats)
    assert scores["loss"] == pytest.approx([-7 / 3 * LN2, -2.5 * LN2], rel=1e-6)
    assert scores["min_k"] == pytest.approx([-3 * LN2, -3 * LN2], rel=1e-6)
    # the lowest z is that of a 1/8 token: (-3 + 1.75) / sqrt(0.6875)
    z = -1.25 / math.sqrt(0.6875)
    assert scores["min_k_plus_plus"] == pytest.approx([z, z], rel=1e-5)
    assert "zlib" not in scores


def test_membership_inference_separates_likely_from_unlikely_documents():
    model = fixed_model([0.7, 0.1, 0.1, 0.1])
    members = docset([[0, 0, 0], [0, 0], [0, 0, 0, 0], [0, 3, 0]])
    nonmembers = docset([[3, 3, 3], [1, 3], [3, 1, 3, 3]])
    texts_m, texts_n = ["a a a", "a a", "a a a a", "a b a"], ["b b b", "c b", "b c b b"]
    result = membership_inference(model, members, nonmembers, texts_m, texts_n, rounds=50)
    assert set(result["metrics"]) == {"loss", "zlib", "min_k", "min_k_plus_plus"}
    loss = result["metrics"]["loss"]
    assert loss["auroc"] == 1.0 and loss["auroc_se"] == 0.0  # separated in every resample
    assert loss["tpr_at_fpr"] == 1.0
    with pytest.raises(ValueError, match="both"):
        membership_inference(model, members, nonmembers, texts_m, None)


def test_token_statistics_match_a_manual_softmax_with_sinks():
    model = tiny_llama()
    docs = docset([[5, 6, 7], [8, 9]])
    sinks = Sinks(model, SinkConfig())
    stats = token_statistics(model, docs, sinks, "drop")
    plain = drop_sinks(model, sinks)
    for i, doc in enumerate(docs.tokens):
        seq = torch.tensor([[BOS, *doc.tolist(), EOS]])
        with torch.no_grad():
            logp = torch.log_softmax(plain(input_ids=seq).logits[0, :-1], -1)
        expected = logp[torch.arange(len(doc) + 1), seq[0, 1:]].numpy()
        np.testing.assert_allclose(stats.logp[i], expected, atol=1e-5)
    assert sinks.mode == "off"


# -- extraction -------------------------------------------------------------------------------
def test_rouge_l_and_lcs_known_values():
    # LCS of (1 2 3 4 5) and (2 9 4 5) is (2 4 5): P = 3/5, R = 3/4, F1 = 2PR / (P + R) = 2/3
    assert rouge_l([1, 2, 3, 4, 5], [2, 9, 4, 5]) == pytest.approx(2 / 3)
    assert rouge_l([1, 2], [3, 4]) == 0.0
    assert rouge_l([7, 8, 9], [7, 8, 9]) == 1.0
    # batched rows with padding that matches nothing
    a = np.array([[1, 2, 3, 4, 5], [3, 2, 1, -1, -1]])
    b = np.array([[2, 9, 4, 5, -2], [1, 2, 3, -2, -2]])
    assert lcs_lengths(a, b).tolist() == [3, 1]


def test_lcs_lengths_match_a_plain_dynamic_program():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4, (30, 12)), rng.integers(0, 4, (30, 9))

    def plain(x, y):
        table = np.zeros((len(x) + 1, len(y) + 1), int)
        for i in range(len(x)):
            for j in range(len(y)):
                table[i + 1, j + 1] = (table[i, j] + 1 if x[i] == y[j]
                                       else max(table[i, j + 1], table[i + 1, j]))
        return table[-1, -1]

    assert lcs_lengths(a, b).tolist() == [plain(x, y) for x, y in zip(a, b, strict=True)]


def test_extraction_with_a_successor_model_known_values():
    model = successor_model(20)
    docs = docset([
        list(range(3, 13)),  # follows the rule: fully extractable
        [3, 4, 5, 6, 7, 8, 15, 9, 10, 11],  # breaks it at target position 2
        [3, 4, 5, 6, 7, 8],  # target cut by the document's end: 7 8 EOS
        [3, 4, 5],  # shorter than the prefix: left out
    ])
    result = extraction(model, docs, prefix_lengths=(4,), suffix_length=5)
    k4 = result["by_prefix"][4]
    per = k4["per_doc"]
    assert k4["n"] == 3
    assert per["compared"].tolist() == [5, 5, 3, 0]
    np.testing.assert_array_equal(per["exact"][:3], [1.0, 0.0, 0.0])
    # greedy 7 8 9 10 11 against 7 8 15 9 10: 2 positions match, LCS 7 8 9 10 = 4
    # greedy 7 8 9 against 7 8 EOS: 2 of 3 match
    np.testing.assert_allclose(per["match_fraction"][:3], [1.0, 0.4, 2 / 3])
    np.testing.assert_allclose(per["rouge_l"][:3], [1.0, 0.8, 2 / 3])
    np.testing.assert_array_equal(per["divergence"][:3], [5, 2, 2])
    assert np.isnan(per["exact"][3])
    assert k4["rate"] == pytest.approx(1 / 3)
    assert k4["rate_se"] == pytest.approx(np.std([1, 0, 0], ddof=1) / math.sqrt(3))
    assert k4["divergence"] == pytest.approx(3.0)
    assert result["pythia_score"] is None
    # k = 32, L = 32: the Pythia score is reported
    long = docset([list(range(3, 73)), [3] * 70])  # all 32 tokens match, then none
    result = extraction(successor_model(80), long, prefix_lengths=(32,), suffix_length=32)
    assert result["pythia_score"] == pytest.approx(0.5)


def test_kv_cache_greedy_equals_recomputing_the_whole_sequence():
    model = tiny_llama(vocab_size=30, seed=3, varied=True).eval()
    prefixes = torch.randint(3, 30, (5, 6), generator=torch.Generator().manual_seed(0))
    prefixes[:, 0] = BOS
    got = greedy_continuations(model, prefixes, 8, batch_size=2)
    seq = prefixes.clone()
    with torch.no_grad():
        for _ in range(8):
            seq = torch.cat([seq, model(input_ids=seq).logits[:, -1:].argmax(-1)], 1)
    assert torch.equal(got, seq[:, 6:])
    assert len(torch.unique(got)) > 5  # a real test: the continuations vary


def test_drop_mode_generation_equals_the_model_with_sinks_deleted():
    model = tiny_llama(vocab_size=30, seed=4, varied=True)
    sinks = Sinks(model, SinkConfig(p_shared=0.5, p_active=0.3))
    prefixes = torch.randint(3, 30, (4, 5), generator=torch.Generator().manual_seed(1))
    with sinks.mode_of("drop"):
        gated = greedy_continuations(model, prefixes, 10)
    plain = greedy_continuations(drop_sinks(model, sinks), prefixes, 10)
    assert torch.equal(gated, plain)
    # the gate changes something: keep mode generates differently from drop somewhere
    with sinks.mode_of("keep"):
        assert not torch.equal(greedy_continuations(model, prefixes, 10), gated)
    docs = docset([list(range(3, 23))])
    assert sinks.mode == "off"
    with pytest.raises(ValueError, match="per-token"):
        extraction(model, docs, (4,), 4, sinks=sinks, mode="own")
    with pytest.raises(ValueError, match="needs a model with sinks"):
        extraction(model, docs, (4,), 4, mode="drop")
    dropped = extraction(model, docs, (4,), 4, sinks=sinks, mode="drop")["by_prefix"][4]
    assert sinks.mode == "off"
    reference = extraction(drop_sinks(model, sinks), docs, (4,), 4)["by_prefix"][4]
    assert dropped["match_fraction"] == reference["match_fraction"]


# -- exposure ---------------------------------------------------------------------------------
def test_exposure_is_maximal_for_the_most_likely_string_and_near_one_bit_for_uniform():
    vocabulary = np.arange(3, 13)  # 10 words
    canaries = docset([[3] * 6, [3] * 4])
    favoured = [0.0] * 13
    favoured[3] = 1.0
    peaked = fixed_model(torch.softmax(torch.tensor(favoured) * 3, 0).tolist())
    result = exposure(peaked, canaries, vocabulary, n_candidates=200, seed=0)
    # every other string has a less likely token somewhere, so a strictly higher NLL
    np.testing.assert_allclose(result["empirical"], math.log2(201))
    np.testing.assert_allclose(result["log2_space"], [6 * math.log2(10), 4 * math.log2(10)])
    assert (result["extrapolated"] > math.log2(201)).all()
    assert (result["extrapolated"] <= result["log2_space"]).all()
    # a uniform model ties every string: count = 100 (half the ties), -log2(101 / 201)
    uniform = fixed_model([1 / 13] * 13)
    result = exposure(uniform, canaries, vocabulary, n_candidates=200, seed=0)
    np.testing.assert_allclose(result["empirical"], -math.log2(101 / 201))
    np.testing.assert_allclose(result["extrapolated"], 0.0)
    assert result["empirical_se"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        exposure(uniform, docset([[1, 3]]), vocabulary)


def test_prefix_nll_is_the_cumulative_nll_given_bos():
    model = tiny_llama(vocab_size=20, seed=5)
    rows = np.array([[5, 6, 7, 8], [9, 4, 0, 0]])
    got = prefix_nll(model, rows)
    with torch.no_grad():
        seq = torch.tensor([[BOS, 9, 4]])
        logp = torch.log_softmax(model(input_ids=seq).logits[0, :-1], -1)
    expected = -np.cumsum(logp[torch.arange(2), seq[0, 1:]].numpy())
    np.testing.assert_allclose(got[1, :2], expected, rtol=1e-5)


def test_skew_normal_cdf_and_fit():
    # alpha = 0 is the normal; at the location the CDF is 1/2 - arctan(alpha) / pi
    normal = torch.special.log_ndtr(torch.tensor(-40.0, dtype=torch.float64)).item()
    assert skew_normal_logcdf(-40.0, 0.0, 1.0, 1e-9) == pytest.approx(normal, rel=1e-6)
    for alpha in (-7.0, -1.0, 0.5, 3.0, 25.0):
        expected = 0.5 - math.atan(alpha) / math.pi
        assert math.exp(skew_normal_logcdf(2.0, 2.0, 3.0, alpha)) == pytest.approx(expected,
                                                                                   rel=1e-5)
    # moments recover the parameters of a skew-normal sample (delta = 0.9, alpha = 2.065)
    rng = np.random.default_rng(0)
    delta = 0.9
    sample = (delta * np.abs(rng.standard_normal(400_000))
              + math.sqrt(1 - delta**2) * rng.standard_normal(400_000))
    xi, omega, alpha = fit_skew_normal(3 + 2 * sample)
    assert xi == pytest.approx(3, abs=0.03) and omega == pytest.approx(2, abs=0.03)
    assert alpha == pytest.approx(delta / math.sqrt(1 - delta**2), abs=0.15)


# -- relearning -------------------------------------------------------------------------------
def test_relearning_leaves_the_model_alone_and_looser_targets_come_first():
    model = tiny_llama(vocab_size=20, seed=6)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = np.random.default_rng(0)
    docs = docset([rng.integers(3, 20, 12) for _ in range(4)])
    loose = relearn_steps(model, docs, target_loss=2.5, lr=1e-2, batch_size=2, max_steps=80)
    tight = relearn_steps(model, docs, target_loss=1.5, lr=1e-2, batch_size=2, max_steps=80)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert loose["initial_loss"] > 2.5
    assert 1 <= loose["steps"] <= tight["steps"]
    assert tight["curve"][loose["steps"]]["loss"] <= 2.5  # eval_every=1: curve[i] is step i
    assert relearn_steps(model, docs, target_loss=10.0)["steps"] == 0
    never = relearn_steps(model, docs, target_loss=0.0, max_steps=3)
    assert never["steps"] is None and [p["step"] for p in never["curve"]] == [0, 1, 2, 3]
    sinks = Sinks(model, SinkConfig())
    with pytest.raises(ValueError, match="drop_sinks"):
        relearn_steps(model, docs, target_loss=1.0)
    sinks.remove()


def test_relearning_that_checks_less_often_finds_the_same_steps_by_replaying():
    model = tiny_llama(vocab_size=20, seed=6)
    rng = np.random.default_rng(1)
    docs = docset([rng.integers(3, 20, 12) for _ in range(6)])
    targets = [2.6, 2.2, 1.8, 1.4]
    fine = relearn_steps(model, docs, targets, lr=1e-2, batch_size=2, max_steps=60,
                         eval_every=2)
    coarse = relearn_steps(model, docs, targets, lr=1e-2, batch_size=2, max_steps=60,
                           eval_every=2, check_every=10)
    steps = [row["steps"] for row in fine["reached"]]
    assert all(s is not None for s in steps) and len(set(steps)) > 2  # targets in several checks
    assert any(s % 10 for s in steps)  # some are passed between two checks
    assert coarse["reached"] == fine["reached"]  # same steps and bit-identical losses
    assert coarse["steps"] == fine["steps"] == steps[0]  # the lowest target stops the run
    assert len(coarse["curve"]) < len(fine["curve"])
    # one target at a time gives the same step as the shared run
    alone = relearn_steps(model, docs, targets[1], lr=1e-2, batch_size=2, max_steps=60,
                          eval_every=2, check_every=10)
    assert alone["steps"] == fine["reached"][2]["steps"]  # rows are ordered lowest target first
    with pytest.raises(ValueError, match="multiple of eval_every"):
        relearn_steps(model, docs, 1.0, eval_every=2, check_every=5)
