"""Token-gated sinks (sinks.tokens = rare): n-gram document frequency, where the sinks switch on,
and the split of a routed row's loss."""

import numpy as np
import pytest
import torch

from memsinks.cli import main
from memsinks.config import DataConfig, StudyConfig
from memsinks.data.rarity import NgramIndex, ngram_hashes
from memsinks.data.stream import Mixture
from memsinks.model import ModelConfig, build_model
from memsinks.sinks import SinkConfig, Sinks
from memsinks.study.fingerprint import method_fingerprint
from memsinks.train import Recipe, rows_nll, step_batch


def _brute_rare(docs, tokens, n, min_docs):
    def grams(t):
        return [tuple(t[max(0, i - n + 1): i + 1]) for i in range(len(t))]

    holders: dict[tuple, set] = {}
    for d, t in enumerate(docs):
        for g in grams(list(t)):
            holders.setdefault(g, set()).add(d)
    return np.array([len(holders.get(g, ())) < min_docs for g in grams(list(tokens))])


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_rare_tokens_match_a_brute_force_count(n):
    rng = np.random.default_rng(n)
    docs = [rng.integers(0, 6, size=rng.integers(1, 30)) for _ in range(40)]
    index = NgramIndex(docs, n)
    for min_docs in (2, 3, 8):
        for t in docs[:10] + [rng.integers(0, 9, size=25)]:  # members and an outsider
            assert np.array_equal(index.rare(t, min_docs), _brute_rare(docs, t, n, min_docs))


def test_ngram_hashes_depend_on_the_window_not_the_place():
    a, b = np.array([4, 1, 2, 3]), np.array([9, 9, 1, 2, 3])
    ha, hb = ngram_hashes(a, 3), ngram_hashes(b, 3)
    assert ha[-1] == hb[-1] and ha[-2] != hb[-2]  # (1, 2, 3) in both; (4, 1, 2) vs (9, 1, 2)
    assert ngram_hashes(np.array([1]), 3)[0] != ngram_hashes(np.array([0, 1]), 3)[1]
    with pytest.raises(ValueError, match="n >= 1"):
        ngram_hashes(a, 0)
    with pytest.raises(ValueError, match="rare_docs"):
        NgramIndex([a], 2).rare(a, 1)


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


def test_token_settings_enter_the_fingerprint_only_when_used():
    config = StudyConfig()
    before = method_fingerprint(config, "memsinks-repeated")
    config.sinks.rare_n = 4  # meaningless while every token carries sinks
    assert method_fingerprint(config, "memsinks-repeated") == before
    config.sinks.tokens = "rare"
    rare4 = method_fingerprint(config, "memsinks-repeated")
    assert rare4 != before
    config.sinks.rare_n = 3
    assert method_fingerprint(config, "memsinks-repeated") not in (before, rare4)
    assert method_fingerprint(config, "standard") == method_fingerprint(StudyConfig(), "standard")
    config.sinks.tokens = "some"
    with pytest.raises(ValueError, match="sinks.tokens"):
        config.sinks.validate()


def test_mixture_counts_rarity_over_its_own_stream():
    mix = Mixture(DataConfig(n_repeated=6, repetitions=3, n_validation=4), steps=8, batch_size=8)
    stream = mix.stream(False)
    codes = np.unique(stream)
    index = NgramIndex([mix.tokens_of(int(c)) for c in codes], 3)
    r = mix.tokens_of(-1)
    assert np.array_equal(mix.rare_tokens(False, r, 3, 2), index.rare(r, 2))
    assert mix.rare_tokens(False, r, 3, 2).any()


@pytest.mark.parametrize("grad", ["1.0", "0.0"])
def test_a_study_trains_token_gated_sinks(tmp_path, grad):
    out = tmp_path / "runs"
    assert main(["run", "configs/smoke.yaml", f"out_dir={out}", "--quiet",
                 "methods=[standard,memsinks-repeated]", "sinks.tokens=rare",
                 f"sinks.shared_grad={grad}"]) == 0
    saved = (out / "smoke" / "memsinks-repeated" / "model" / "sinks.json").read_text()
    assert '"tokens": "rare"' in saved


def test_shared_grad_from_routes_only_later_occurrences():
    from memsinks.methods import METHODS
    from memsinks.study.run import recipe_of

    mix = Mixture(DataConfig(n_repeated=6, repetitions=5, n_validation=4), steps=8, batch_size=8)
    model = build_model(ModelConfig(num_layers=1, hidden_size=32, intermediate_size=64,
                                    num_heads=2, num_kv_heads=2), 50, seed=0)
    method = METHODS["memsinks-repeated"]
    seen = mix.occurrences(False)
    for start in (0, 2):
        sinks = Sinks(model, SinkConfig(shared_grad=0.0, shared_grad_from=start))
        recipe = recipe_of(method, mix, sinks)
        with_sinks = recipe.sink_ids != 0
        assert recipe.routed_scale == 0.0
        assert np.array_equal(recipe.routed, with_sinks & (seen >= start))
        sinks.remove()
    assert recipe.routed.sum() == 6 * 3  # occurrences 2, 3 and 4 of each repeated document
    plain = recipe_of(method, mix, Sinks(model, SinkConfig()))
    assert plain.routed is None and plain.sink_tokens is None
    with pytest.raises(ValueError, match="shared_grad_from"):
        SinkConfig(shared_grad_from=-1).validate()


def test_plain_every_trains_every_mth_occurrence_without_sinks():
    from memsinks.methods import METHODS
    from memsinks.study.run import recipe_of

    mix = Mixture(DataConfig(n_repeated=6, repetitions=8, n_validation=4), steps=12, batch_size=8)
    model = build_model(ModelConfig(num_layers=1, hidden_size=32, intermediate_size=64,
                                    num_heads=2, num_kv_heads=2), 50, seed=0)
    seen, stream = mix.occurrences(False), mix.stream(False)
    sinks = Sinks(model, SinkConfig(shared_grad=0.0, plain_every=4))
    recipe = recipe_of(METHODS["memsinks-repeated"], mix, sinks)
    repeated = stream < 0
    assert not recipe.sink_ids[repeated & (seen % 4 == 0)].any()  # occurrences 0 and 4: plain
    assert recipe.sink_ids[repeated & (seen % 4 != 0)].all()
    assert np.array_equal(recipe.routed, recipe.sink_ids != 0)  # the rest: sinks only
    assert int((repeated & (recipe.sink_ids == 0)).sum()) == 6 * 2
    with pytest.raises(ValueError, match="plain_every"):
        SinkConfig(plain_every=-2).validate()
