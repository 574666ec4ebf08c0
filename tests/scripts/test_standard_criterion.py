"""scripts/standard_criterion.py on a hand-made study folder."""

import importlib.util
import json
from pathlib import Path

import pytest

from memsinks.config import load, mixture_of

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("standard_criterion",
                                                  ROOT / "scripts" / "standard_criterion.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_losses_are_read_against_the_studys_own_floor(tmp_path):
    study = tmp_path / "study"
    (study / "standard").mkdir(parents=True)
    (study / "config.yaml").write_text((ROOT / "configs" / "smoke.yaml").read_text())
    off = {"L_R": [0.3, 0.01], "L_H": [0.9, 0.02], "gap": [0.6, 0.02]}
    metrics = {"modes": {"off": off}}
    (study / "standard" / "metrics.json").write_text(json.dumps(metrics))
    floor = mixture_of(load(str(study / "config.yaml"))).heldout.entropy_floor
    row = _script().criterion(study)
    assert row["floor_H"] == pytest.approx(floor) and 0 < floor < 1
    assert row["L_H_above_floor"] == pytest.approx(0.9 - floor)
    assert row["L_R_above_floor"] == pytest.approx(0.3 - floor)
    assert row["auroc_loss"] is None and row["gap"] == [0.6, 0.02]
    metrics["assessment"] = {"modes": {"off": {"mia": {"loss": {"auroc": 0.97}},
                                               "extraction": {"R": {"32": {"rate": [0.5, 0.1]}}}}}}
    (study / "standard" / "metrics.json").write_text(json.dumps(metrics))
    row = _script().criterion(study)
    assert row["auroc_loss"] == 0.97 and row["extractable_k32"] == 0.5
