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


def test_summaries_without_models_are_sized_from_their_config_and_seeds_share_a_rung(tmp_path):
    """A study kept as results.json alone (docs/data): its size from the model config, and its
    seeds, whose streams tokenize to different counts, in one rung of steps x batch size."""
    from memsinks.model import ModelConfig, build_model, count_non_embedding

    model = {"preset": "tiny", "num_layers": 1, "hidden_size": 16, "intermediate_size": 32,
             "num_heads": 2, "num_kv_heads": 2, "max_seq_len": 64, "tie_embeddings": True,
             "init_from": ""}
    dirs = []
    for seed, tokens in ((0, 1000), (1, 1010)):
        path = study(tmp_path, f"seed{seed}", 1, 0.2 + 0.2 * seed)
        (path / "standard").rename(tmp_path / f"model-{seed}")  # no model kept
        results = json.loads((path / "results.json").read_text())
        results["config"] = {"model": model, "train": {"steps": 10, "batch_size": 4}}
        results["methods"]["standard"]["tokens"] = tokens
        (path / "results.json").write_text(json.dumps(results))
        dirs.append(path)
    expected = count_non_embedding(build_model(ModelConfig(**model), vocab_size=999, seed=1))
    rungs = ladder.run_ladder(dirs, tmp_path / "out")
    assert [(r["params"], r["documents"], r["tokens"], r["seeds"]) for r in rungs] == \
        [(expected, 40, 1005, 2)]
    model["init_from"] = "some/checkpoint"  # a fine-tuned model's size is in its checkpoint
    results["config"]["model"] = model
    (dirs[1] / "results.json").write_text(json.dumps(results))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ladder.study_row(dirs[1])
