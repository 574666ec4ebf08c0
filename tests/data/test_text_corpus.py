"""A study on text files instead of the built-in generator: sources, mixture, study, export."""

import json

import numpy as np
import pytest

from memsinks.cli import main
from memsinks.data.config import DataConfig
from memsinks.data.stream import Mixture

WORDS = ("the cat sat on a mat and looked at the bird while the dog ran in the park with "
         "a red ball near the old tree by the river under the blue sky").split()


def _write_corpus(path, count, seed):
    rng = np.random.default_rng(seed)
    with open(path, "w") as handle:
        for i in range(count):
            text = " ".join(rng.choice(WORDS, size=int(rng.integers(20, 40))))
            handle.write(json.dumps({"id": i, "story": f"story {seed}-{i}: {text}."}) + "\n")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    _write_corpus(root / "general.jsonl", 400, seed=1)
    _write_corpus(root / "stories.jsonl", 40, seed=2)
    return root


def _data(corpus, tmp_path, **extra):
    return DataConfig(general_source=f"{corpus}/general.jsonl?field=story",
                      repeated_source=f"{corpus}/stories.jsonl?field=story", n_repeated=4,
                      repetitions=3, n_validation=8, vocab_size=300, tokenizer_docs=200,
                      **extra)


def test_mixture_reads_r_h_v_and_the_stream_from_files(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("MEMSINKS_CACHE", str(tmp_path / "cache"))
    mixture = Mixture(_data(corpus, tmp_path), steps=10, batch_size=8, max_tokens=60)
    assert len(mixture.repeated) == len(mixture.heldout) == 4 and len(mixture.validation) == 8
    assert mixture.specials == (0, 1, 2)
    assert np.isnan(mixture.repeated.logprob).all()
    assert not set(mixture.repeated.ids) & set(mixture.heldout.ids)
    assert mixture.texts(mixture.repeated)[0].startswith("story 2-0:")
    rows = mixture.batch(0)
    assert all(len(tokens) <= 60 for _, tokens in rows)
    stream = mixture.stream()
    assert (stream < 0).sum() == 4 * 3
    # the trained tokenizer is cached: a second mixture loads the same one
    again = Mixture(_data(corpus, tmp_path), steps=10, batch_size=8, max_tokens=60)
    assert again.tokenizer.fingerprint == mixture.tokenizer.fingerprint
    canary = Mixture(_data(corpus, tmp_path, repeated_kind="canary"), 10, 8, max_tokens=60)
    assert [len(t) for t in canary.repeated.tokens] == [len(t) for t in mixture.repeated.tokens]
    assert set(np.concatenate(canary.repeated.tokens)) <= set(canary.canary_vocabulary())


def test_a_text_corpus_needs_the_context_and_both_sources(corpus, tmp_path):
    with pytest.raises(ValueError, match="max_tokens"):
        Mixture(_data(corpus, tmp_path), steps=10, batch_size=8)
    with pytest.raises(ValueError, match="set both"):
        DataConfig(repeated_source="x.jsonl").validate()


def test_study_on_files_runs_reports_and_exports(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("MEMSINKS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "runs"
    args = ["run", "configs/smoke.yaml", f"out_dir={out}", "--quiet", "name=files",
            "methods=[standard,memsinks]",
            f"data.general_source={corpus}/general.jsonl?field=story",
            f"data.repeated_source={corpus}/stories.jsonl?field=story",
            "data.vocab_size=300", "data.tokenizer_docs=200", "model.max_seq_len=48"]
    assert main(args) == 0
    study = out / "files"
    results = json.loads((study / "results.json").read_text())
    assert set(results["methods"]) == {"standard", "memsinks"}
    assert (study / "tokenizer" / "tokenizer.json").is_file()
    manifest = json.loads((study / "manifest.json").read_text())
    assert manifest["repeated"][0]["text"].startswith("story 2-0:")
    assert "stories.jsonl" in (study / "report.md").read_text()
    assert main(["export", str(study / "memsinks"), "--out", str(tmp_path / "hf")]) == 0
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "hf")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    ids = tokenizer("the cat sat", return_tensors="pt").input_ids
    assert model(input_ids=ids).logits.shape[-1] == model.config.vocab_size


def test_a_source_too_small_for_the_stream_stops_before_the_first_step(corpus, tmp_path, capsys):
    from memsinks.config import load
    from memsinks.study.run import run_study

    config = load("configs/smoke.yaml", [
        f"out_dir={tmp_path / 'runs'}", "name=small-source", "methods=[standard]",
        f"data.general_source={corpus}/general.jsonl?field=story",
        f"data.repeated_source={corpus}/stories.jsonl?field=story", "data.vocab_size=300",
        "data.tokenizer_docs=200", "model.max_seq_len=48", "train.steps=100",
        "train.batch_size=8"])
    with pytest.raises(ValueError, match=r"holds only \d+ general training documents .* the "
                                         r"stream needs 7\d\d"):
        run_study(config, progress=False)
    assert not (tmp_path / "runs" / "small-source" / "standard").exists()  # nothing trained
