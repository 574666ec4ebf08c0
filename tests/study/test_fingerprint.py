"""What enters a method's fingerprint, and what does not."""

import pytest

from memsinks import config as config_io
from memsinks.config import StudyConfig
from memsinks.study.fingerprint import method_fingerprint


def test_packing_keeps_the_method_fingerprint_and_a_set_row_length_changes_it():
    base = StudyConfig()
    plain = method_fingerprint(base, "standard")
    base.train.packing = not base.train.packing
    assert method_fingerprint(base, "standard") == plain
    base.train.row_len = 64
    assert method_fingerprint(base, "standard") != plain
    base.train.row_len = 1
    with pytest.raises(ValueError, match="row_len"):
        base.train.validate()


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


def test_keys_and_perturbation_enter_the_fingerprint_only_where_they_matter():
    base = config_io.load(None)
    keyed = config_io.load(None, ["data.sources=4", "data.sink_key=field:source"])
    noisy = config_io.load(None, ["data.perturb=0.05"])
    sourced = config_io.load(None, ["data.sources=4"])
    assert method_fingerprint(keyed, "standard") == method_fingerprint(base, "standard")
    assert method_fingerprint(keyed, "memsinks") != method_fingerprint(base, "memsinks")
    assert method_fingerprint(sourced, "memsinks") == method_fingerprint(base, "memsinks")
    for method in ("standard", "memsinks"):
        assert method_fingerprint(noisy, method) != method_fingerprint(base, method)


def test_shared_grad_enters_the_fingerprint_only_when_set():
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
