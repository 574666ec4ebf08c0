"""Model directories: a transformers checkpoint plus sinks.json."""

import pytest

from memsinks.model import ModelConfig, build_model
from memsinks.modelio import load_model, save_model


def test_a_truncated_saved_model_is_named_with_the_fix(tmp_path):
    model = build_model(ModelConfig(num_layers=1, hidden_size=32, intermediate_size=64,
                                    num_heads=2, num_kv_heads=2), 40, seed=0)
    save_model(model, None, tmp_path / "standard" / "model")
    weights = tmp_path / "standard" / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"truncated or corrupt .* rerun the study"):
        load_model(tmp_path / "standard" / "model")
