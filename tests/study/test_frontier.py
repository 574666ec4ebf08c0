"""The frontier from hand-made per-document losses: closure, losses against standard, seeds."""

import json

import numpy as np
import pytest

from memsinks import config as config_io
from memsinks.study import frontier

SETS = ("R", "H", "V")
MIXTURE = config_io.mixture_of(config_io.load("configs/smoke.yaml"))  # the smoke study's sets


def method_dir(root, method, losses, curve=()):
    """A finished method of a smoke study whose every document has the given loss per token
    (L(R), L(H), L(V)), in mode drop for sink methods and off for standard."""
    study = root / "study"
    if not (study / "config.yaml").is_file():
        study.mkdir(parents=True)
        config = config_io.load("configs/smoke.yaml", [f"out_dir={root}", "name=study"])
        (study / "config.yaml").write_text(config_io.dump(config))
    sets = {"R": MIXTURE.repeated, "H": MIXTURE.heldout, "V": MIXTURE.validation}
    mode = "off" if method == "standard" else "drop"
    (study / method).mkdir()
    np.savez(study / method / "nll.npz", **{f"{mode}/{k}": loss * sets[k].predicted_tokens
                                            for k, loss in zip(SETS, losses, strict=True)})
    (study / method / "metrics.json").write_text(json.dumps({"curve": list(curve)}))
    return study / method



def test_closure_and_losses_against_standard_are_exact_for_constant_losses(tmp_path):
    curve = [{"step": 6, "off": {"L_R": 4.0, "L_H": 4.25, "L_V": 4.5}},
             {"step": 12, "off": {"L_R": 2.0, "L_H": 3.0, "L_V": 3.5}}]
    standard = method_dir(tmp_path, "standard", (2.0, 3.0, 3.5), curve)
    sink = method_dir(tmp_path, "memsinks", (2.5, 3.25, 3.5))
    result = frontier.compare_runs(standard, [sink])
    assert result["standard_losses"] == {"R": 2.0, "H": 3.0, "V": 3.5}
    (row,) = result["rows"]
    assert (row["label"], row["mode"]) == ("memsinks", "drop")
    # gap 1.0 -> 0.75: a quarter closed, and no document is an exception (error 0)
    assert row["closure"] == [0.25, 0.0]
    assert row["dLH_rel"] == [pytest.approx(0.25 / 3.0), 0.0] and row["dLV_rel"] == [0.0, 0.0]
    assert row["L_H"] == [3.25, 0.0]
    # stopped at step 6, standard had opened a quarter of its final gap, at a higher L(H)
    assert result["stopped_early"][0] == {"step": 6, "closure": 0.75,
                                          "dLH_rel": pytest.approx(4.25 / 3 - 1),
                                          "dLV_rel": pytest.approx(4.5 / 3.5 - 1)}
    assert frontier.table(result).splitlines()[2] == ("| memsinks (drop) | +25.0% ± 0.0% | "
                                                      "+8.3% ± 0.0% | +0.0% ± 0.0% |")


def test_seeds_are_combined_row_by_row():
    per_seed = [{"standard": f"s{seed}", "rows": [{"label": "memsinks", "mode": "drop",
                                                   "dir": f"d{seed}", "closure": [c, 0.01],
                                                   "dLH_rel": [0.1, 0.01], "dLV_rel": [0.0, 0.01]}],
                 "stopped_early": [{"step": 6, "closure": c, "dLH_rel": 0.0, "dLV_rel": 0.0}]}
                for seed, c in enumerate((0.25, 0.75))]
    result = frontier.combine_seeds(per_seed)
    (row,) = result["rows"]
    assert row["closure"] == [0.5, 0.25] and row["closure_seeds"] == [0.25, 0.75]
    assert row["dirs"] == ["d0", "d1"] and result["standard"] == ["s0", "s1"]
    assert result["stopped_early"] == [{"step": 6, "closure": 0.5, "dLH_rel": 0.0,
                                        "dLV_rel": 0.0}]


def test_labels_and_bad_directories(tmp_path):
    root = tmp_path.resolve()
    assert frontier.label_of(root / "p=1" / "seed0" / "memsinks", root) == "p=1/memsinks"
    with pytest.raises(FileNotFoundError, match="pass a method directory inside a study"):
        frontier.compare_runs(tmp_path / "nowhere" / "standard", [])
    standard = method_dir(tmp_path, "standard", (2.0, 3.0, 3.5))
    with pytest.raises(FileNotFoundError, match="pass finished method directories"):
        frontier.compare_runs(standard, [standard.parent / "memsinks"])
    with pytest.raises(ValueError, match=r"needs a \{seed\} placeholder"):
        frontier.run_frontier("runs/x/standard", ["runs/x/memsinks"], tmp_path, seeds=[0])
