"""Config loading, overrides and bad input."""

import re

import pytest

from memsinks import config as config_io


def test_defaults_and_overrides_are_typed():
    config = config_io.load(None, ["train.steps=200", "train.lr=1e-3", "sinks.p_active=0.2",
                                   "methods=[standard,memsinks]", "model.preset=small"])
    assert config.train.steps == 200 and isinstance(config.train.lr, float)
    assert config.train.lr == 0.001 and config.sinks.p_active == 0.2
    assert config.methods == ["standard", "memsinks"]
    assert config.model.resolved()["hidden_size"] == 256


def test_yaml_round_trip(tmp_path):
    config = config_io.load("configs/default.yaml")
    path = tmp_path / "c.yaml"
    path.write_text(config_io.dump(config))
    assert config_io.load(path) == config


@pytest.mark.parametrize("override,message", [
    ("model.preset=huge", "model.preset = 'huge' is unknown"),
    ("train.stepz=3", "unknown config key 'train.stepz'"),
    ("nonsense=3", "unknown config key 'nonsense'"),
    ("sinks.p_active=0", "sinks.p_active = 0"),
    ("sinks.p_shared=1.5", "sinks.p_shared = 1.5"),
    ("data.repetitions=5000", "exceeds train.steps"),
    ("data.n_repeated=100000", "fill more than half of the stream"),
    ("methods=[standard,magic]", "method 'magic' is unknown"),
    ("train.steps=ten", "'train.steps' = 'ten' is not a valid int"),
    ("sinks.drop_rescale=half", "drop_rescale = 'half' is not one of"),
    ("data.general_domains=[]", "data.general_domains is empty"),
    ("train.steps", "not of the form key=value"),
])
def test_bad_input_names_the_field(override, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        config_io.load(None, [override])


def test_missing_config_file():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        config_io.load("no/such/file.yaml")


@pytest.mark.parametrize("path", ["configs/paper-smollm-360m.yaml",
                                  "configs/paper-smollm-1.7b.yaml"])
def test_the_paper_configs_are_valid_and_match_the_smollm_shapes(path):
    from memsinks.model import PRESETS

    config = config_io.load(path)
    config.validate()
    shape = config.model.resolved()
    preset = PRESETS[config.model.preset]
    assert (shape["num_layers"], shape["hidden_size"], shape["intermediate_size"]) == preset[:3]
    assert config.data.general_source.startswith("hf:")
    assert config.data.repetitions == 128
    assert config.data.max_tokens + 2 <= shape["max_seq_len"]


def test_the_default_study_is_the_headline_regime_at_half_the_batch():
    """configs/default.yaml must stay the headline of docs/results.md with half the rows per
    step and nothing else changed: the same documents, repetitions and steps."""
    default = config_io.to_dict(config_io.load("configs/default.yaml"))
    headline = config_io.to_dict(config_io.load("configs/headline.yaml"))
    differing = {(section, key) for section, values in default.items() if isinstance(values, dict)
                 for key in values if values[key] != headline[section][key]}
    assert differing == {("train", "batch_size")}
    assert default["train"]["batch_size"] * 2 == headline["train"]["batch_size"]
    assert default["methods"] == headline["methods"]


def test_non_embedding_count_of_the_ladder_presets():
    from memsinks.model import ModelConfig, build_model, count_non_embedding

    def expected(layers, hidden, mlp):  # attention, SwiGLU MLP, two norms per layer, final norm
        return layers * (4 * hidden * hidden + 3 * hidden * mlp + 2 * hidden) + hidden

    assert count_non_embedding(build_model(ModelConfig(preset="tiny"), 500, 0)) == \
        expected(4, 128, 512) == 1_049_728
    medium = ModelConfig(preset="medium", num_layers=1)  # one layer keeps the test fast
    assert count_non_embedding(build_model(medium, 500, 0)) == expected(1, 384, 1536)
