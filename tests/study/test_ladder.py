"""The scale ladder from hand-made study results: sizes, rungs, seeds combined, the table."""

import json

import pytest
from transformers import LlamaConfig

from memsinks.study import ladder


def study(root, name, layers, closure, auroc=None):
    """A finished study as the ladder reads it: results.json and the standard model's config."""
    path = root / name
    LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=layers,
                num_attention_heads=2, num_key_value_heads=2).save_pretrained(
        path / "standard" / "model")
    memsinks = {"modes": {}}
    if auroc is not None:
        memsinks["assessment"] = {"modes": {"drop": {"mia": {"loss": {"auroc": auroc,
                                                                      "auroc_se": 0.02}}}}}
    results = {"methods": {"standard": {"tokens": 1000, "modes": {"off": {"gap": [0.5, 0.01],
                                                          "L_H": [3.0, 0.02]}}},
                           "memsinks": memsinks},
               "comparisons": {"memsinks": {"closure_vs_standard": [closure, 0.05],
                                            "dLH_rel_vs_standard": [0.1, 0.01],
                                            "closure_within": [0.9, 0.1]}}}
    (path / "results.json").write_text(json.dumps(results))
    return path


def test_studies_are_grouped_by_size_and_their_seeds_combined(tmp_path, capsys):
    # per layer: attention 4 x 16 x 16, SwiGLU 3 x 16 x 32, two norms; plus the final norm
    one_layer, two_layers = 1 * (1024 + 1536 + 32) + 16, 2 * (1024 + 1536 + 32) + 16
    dirs = [study(tmp_path, "big", 2, 0.5, auroc=0.75),
            study(tmp_path, "small-0", 1, 0.2), study(tmp_path, "small-1", 1, 0.4)]
    assert ladder.non_embedding_parameters(dirs[1]) == one_layer
    rungs = ladder.run_ladder(dirs, tmp_path / "out")
    assert [(r["params"], r["seeds"]) for r in rungs] == [(one_layer, 2), (two_layers, 1)]
    small, big = rungs
    # two seeds: their mean and standard error; one: the run's own error over documents
    assert small["methods"]["memsinks"]["closure_vs_standard"] == pytest.approx([0.3, 0.1])
    assert big["methods"]["memsinks"] == {"closure_vs_standard": [0.5, 0.05],
                                          "dLH_rel_vs_standard": [0.1, 0.01],
                                          "auroc_drop": [0.75, 0.02]}
    assert small["standard"] == {"gap": [0.5, 0.0], "L_H": [3.0, 0.0]}
    assert json.loads((tmp_path / "out" / "ladder.json").read_text()) == rungs
    assert (tmp_path / "out" / "ladder.png").stat().st_size > 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == ("| 0.00 M | 0.38 | 2 | 0.50 ± 0.00 | — | — | memsinks | +30.0% ± 10.0% "
                        "| +10.0% ± 0.0% "
                        "| — | — |")
    assert lines[3].endswith("| +10.0% ± 1.0% | — | 0.75 ± 0.02 |")


def test_a_directory_that_is_no_finished_study_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no results.json"):
        ladder.study_row(tmp_path)
