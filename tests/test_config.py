"""Config loading, overrides and bad input."""

import dataclasses
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
    ("train.steps=ten", "train.steps = 'ten' is not a whole number; use for example "
                        "train.steps=1000"),
    ("sinks.drop_rescale=half", "drop_rescale = 'half' is not one of"),
    ("data.general_domains=[]", "data.general_domains is empty"),
    ("train.steps", "not of the form key=value"),
])
def test_bad_input_names_the_field(override, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        config_io.load(None, [override])


# every bad value of a field gets one sentence: the key, what it holds, a valid example
@pytest.mark.parametrize("override,message", [
    ("data.in_domain_share=abc", "data.in_domain_share = 'abc' is not a number or null; use for "
                                 "example data.in_domain_share=0.5"),
    ("train.lr=[1,2]", "train.lr = [1, 2] is not a number; use for example train.lr=0.002"),
    ("train.steps=null", "train.steps = null is not a whole number; use for example "
                         "train.steps=1000"),
    ("data.general_domains={a: 1}", "data.general_domains = {'a': 1} is not a list of strings; "
                                    "use for example data.general_domains=stories,facts"),
    ("train.compile=maybe", "train.compile = 'maybe' is not true or false; use for example "
                            "train.compile=false"),
    ("train.precision=fp16", "train.precision = 'fp16' is not one of auto, fp32, bf16; use for "
                             "example train.precision=auto"),
    ("data=3", "config section 'data' = 3 is not a mapping of keys"),
])
def test_a_bad_value_is_one_sentence_naming_the_key_and_an_example(override, message):
    with pytest.raises(ValueError) as error:
        config_io.load("configs/smoke.yaml", [override])
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_a_single_value_or_a_comma_list_is_a_list_and_yaml_numbers_are_typed():
    config = config_io.load(None, ["data.general_domains=stories", "methods=standard,memsinks",
                                   "train.steps=1e3", "model.num_layers=2.0", "name=2024"])
    assert config.data.general_domains == ["stories"]
    assert config.methods == ["standard", "memsinks"]
    assert config.train.steps == 1000 and isinstance(config.train.steps, int)
    assert config.model.num_layers == 2 and config.name == "2024"
    # an optional number keeps an int as written (method fingerprints hash it so)
    assert config_io.load(None, ["data.in_domain_share=0", "data.general_domains=[facts]"]
                          ).data.in_domain_share == 0
    assert config_io.load(None, ["data.in_domain_share=null"]).data.in_domain_share is None


@pytest.mark.parametrize("override", ["data.in_domain_share=abc", "train.lr=[1,2]",
                                      "train.steps=null"])
def test_the_command_line_prints_one_sentence_without_a_traceback(override, tmp_path, capsys):
    from memsinks.cli import main

    code = main(["run", "configs/smoke.yaml", f"out_dir={tmp_path}", override])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("memsinks: error: ") and err.count("\n") == 1, err
    assert f" {override.split('=')[0]} = " in err and "use for example" in err


def test_one_domain_without_brackets_is_a_list_of_one_not_of_its_letters():
    config = config_io.load("configs/smoke.yaml", ["data.general_domains=stories"])
    assert config.data.general_domains == ["stories"]
    assert config_io.mixture_of(config).validation.tokens  # built: no "corpus domain 'e'"


def test_every_config_field_has_a_docstring():
    import ast
    import inspect

    from memsinks.config import _SECTIONS, PretrainConfig, StudyConfig

    for cls in (StudyConfig, PretrainConfig, *_SECTIONS.values()):
        body = ast.parse(inspect.getsource(cls)).body[0].body
        documented = {node.target.id for node, after in zip(body[:-1], body[1:], strict=True)
                      if isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr)
                      and isinstance(after.value, ast.Constant)
                      and isinstance(after.value.value, str)}
        fields = {f.name for f in dataclasses.fields(cls)}
        assert fields <= documented, f"{cls.__name__}: {sorted(fields - documented)}"


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
