"""How a study turns a method and the sink settings into a training recipe."""

import numpy as np
import pytest

from memsinks.cli import main
from memsinks.data.config import DataConfig
from memsinks.data.stream import Mixture
from memsinks.methods import METHODS
from memsinks.model import ModelConfig, build_model
from memsinks.sinks import SinkConfig, Sinks
from memsinks.study.run import recipe_of


@pytest.mark.parametrize("grad", ["1.0", "0.0"])
def test_a_study_trains_token_gated_sinks(tmp_path, grad):
    out = tmp_path / "runs"
    assert main(["run", "configs/smoke.yaml", f"out_dir={out}", "--quiet",
                 "methods=[standard,memsinks-repeated]", "sinks.tokens=rare",
                 f"sinks.shared_grad={grad}"]) == 0
    saved = (out / "smoke" / "memsinks-repeated" / "model" / "sinks.json").read_text()
    assert '"tokens": "rare"' in saved


def test_shared_grad_from_routes_only_later_occurrences():
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
