"""Real-text sources: readers per format, the hub path, tokenizers, and the two-source corpus."""

import gzip
import json
import random
import sys
import types

import numpy as np
import pytest
from transformers import AutoTokenizer

from memsinks.data import sources
from memsinks.data import text as text_corpus
from memsinks.data.sources import load_tokenizer, read_documents
from memsinks.data.text import TextCorpus

WORDS = ("the cat dog sat ran on a mat under big small red tree house saw jumped quickly and "
         "then happy sad bird flew away over river").split()


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)) + "."


def texts(seed: int, count: int, low: int = 20, high: int = 40) -> list[str]:
    rng = random.Random(seed)
    return [sentence(rng, rng.randint(low, high)) for _ in range(count)]


def write_jsonl(path, records, compress=False):
    data = "".join(json.dumps(r) + "\n" for r in records)
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(data)
    else:
        path.write_text(data)
    return str(path)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("train:bpe", train_texts=texts(0, 300), vocab_size=400)


# -- readers --------------------------------------------------------------------------------------
def test_txt_lines_paragraphs_whole_file_and_separator(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("first doc\n\n  second doc  \nthird\n   \n")
    assert list(read_documents(str(path))) == ["first doc", "second doc", "third"]
    assert list(read_documents(f"{path}?split=blank")) == ["first doc", "second doc  \nthird"]
    assert list(read_documents(f"{path}?split=file")) == ["first doc\n\n  second doc  \nthird"]
    stories = tmp_path / "stories.txt"
    stories.write_text("Once a cat.\n<|endoftext|>\nA dog ran.\nIt sat.<|endoftext|>\n")
    assert list(read_documents(f"{stories}?sep=<|endoftext|>")) == \
        ["Once a cat.", "A dog ran.\nIt sat."]


def test_separator_split_across_read_chunks(tmp_path):
    docs = [f"doc {i} " + "x" * 5000 for i in range(400)]  # 2 MB: the separator spans chunks
    path = tmp_path / "big.txt"
    path.write_text("<|endoftext|>".join(docs))
    assert list(read_documents(f"{path}?sep=%3C|endoftext|%3E")) == docs  # %-encoded too


def test_jsonl_plain_and_gz_with_field_selection(tmp_path):
    records = [{"story": "one", "id": 1}, {"story": "  ", "id": 2}, {"story": None, "id": 3},
               {"story": "two", "id": 4}]
    plain = write_jsonl(tmp_path / "s.jsonl", records)
    packed = write_jsonl(tmp_path / "s.jsonl.gz", records, compress=True)
    assert list(read_documents(f"{plain}?field=story")) == ["one", "two"]
    assert list(read_documents(f"{packed}?field=story")) == ["one", "two"]
    default = write_jsonl(tmp_path / "t.jsonl", [{"text": "alpha"}, {"text": "beta"}])
    assert list(read_documents(default)) == ["alpha", "beta"]
    odd = tmp_path / "t.ndjson"
    odd.write_text(json.dumps({"text": "gamma"}) + "\n")
    assert list(read_documents(f"{odd}?format=jsonl")) == ["gamma"]


def test_parquet_column_read_in_batches(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [f"row {i}" for i in range(2500)]
    rows[7] = None
    table = pa.table({"content": rows, "n": list(range(2500))})
    path = tmp_path / "d.parquet"
    pq.write_table(table, path, row_group_size=600)
    docs = list(read_documents(f"{path}?field=content"))
    assert docs == [r for r in rows if r is not None] and len(docs) == 2499
    with pytest.raises(ValueError, match=r"has no column 'text' \(it has 'content', 'n'\); "
                                         r"choose one with \?field=NAME"):
        next(read_documents(str(path)))
    with pytest.raises(ValueError, match="column 'n' .* holds int64, not text"):
        next(read_documents(f"{path}?field=n"))


def test_directory_and_glob_read_supported_files_in_sorted_order(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "from b"}) + "\n")
    (tmp_path / "a.txt").write_text("from a\n")
    with gzip.open(tmp_path / "sub" / "c.txt.gz", "wt") as f:
        f.write("from c\n")
    (tmp_path / ".hidden.txt").write_text("hidden\n")
    (tmp_path / "notes.md").write_text("not data\n")
    assert list(read_documents(str(tmp_path))) == ["from a", "from b", "from c"]
    assert list(read_documents(f"{tmp_path}/**/*.txt*")) == ["from a", "from c"]


def test_skip_and_limit_count_non_empty_documents_and_stop_reading(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["a", "", "b", "c", "d"])
                    + "not json\n")
    assert list(read_documents(str(path), skip=1, limit=2)) == ["b", "c"]
    assert list(read_documents(str(path), limit=4)) == ["a", "b", "c", "d"]  # never reads line 6
    assert list(read_documents(str(path), limit=0)) == []
    with pytest.raises(ValueError, match="line 6 of .* is not valid JSON"):
        list(read_documents(str(path), skip=3))


def test_bad_sources_stop_with_one_clear_sentence(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"nope\.txt' does not exist; check the path"):
        read_documents(str(tmp_path / "nope.txt"))
    csv = tmp_path / "data.csv"
    csv.write_text("a,b\n")
    with pytest.raises(ValueError, match=r"cannot read 'data\.csv'; supported files are \.txt"):
        read_documents(str(csv))
    stories = write_jsonl(tmp_path / "s.jsonl", [{"story": "x", "id": 1}])
    with pytest.raises(ValueError, match=r"line 1 of .* has no field 'text' \(it has 'story', "
                                         r"'id'\); choose one with \?field=NAME"):
        next(read_documents(stories))
    blank = tmp_path / "blank.txt"
    blank.write_text("\n   \n\n")
    with pytest.raises(ValueError, match=r"'.*blank\.txt' holds no non-empty documents"):
        list(read_documents(str(blank)))
    with pytest.raises(ValueError, match=r"unknown option 'colum'; valid options here"):
        read_documents(f"{stories}?colum=story")
    with pytest.raises(ValueError, match=r"split='words'; text files split by line, blank, file"):
        read_documents(f"{blank}?split=words")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no .* files"):
        read_documents(str(tmp_path / "empty"))
    monkeypatch.setitem(sys.modules, "zstandard", None)
    packed = tmp_path / "d.jsonl.zst"
    packed.write_bytes(b"")
    with pytest.raises(ImportError, match="needs the zstandard package; pip install zstandard"):
        next(read_documents(str(packed)))


# -- the hub --------------------------------------------------------------------------------------
def test_hub_streams_rows_through_datasets_load_dataset(monkeypatch):
    calls = []

    def load_dataset(path, name=None, **kwargs):
        calls.append((path, name, kwargs))
        if path == "missing/set":
            raise FileNotFoundError("Dataset 'missing/set' doesn't exist on the Hub\nmore")
        return iter([{"text": "a tiny story", "meta": 1}, {"text": ""}, {"text": "another"}])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    assert list(read_documents("hf:roneneldan/TinyStories")) == ["a tiny story", "another"]
    assert calls[-1] == ("roneneldan/TinyStories", None, {"split": "train", "streaming": True})
    spec = "hf:cerebras/SlimPajama-627B?split=validation&field=text&config=default&revision=v1"
    assert list(read_documents(spec, skip=1)) == ["another"]
    assert calls[-1] == ("cerebras/SlimPajama-627B", "default",
                         {"split": "validation", "streaming": True, "revision": "v1"})
    with pytest.raises(ValueError, match=r"row 0 of 'roneneldan/TinyStories' has no field "
                                         r"'story' \(it has 'text', 'meta'\)"):
        next(read_documents("hf:roneneldan/TinyStories?field=story"))
    with pytest.raises(OSError, match=r"the hub could not stream 'missing/set' "
                                      r"\(FileNotFoundError: Dataset 'missing/set' doesn't exist "
                                      r"on the Hub\); check the name"):
        next(read_documents("hf:missing/set"))


def test_hub_without_datasets_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match=r"needs the datasets package; "
                                          r"pip install 'memsinks\[hub\]'"):
        read_documents("hf:roneneldan/TinyStories")


# -- tokenizers -----------------------------------------------------------------------------------
def test_trained_bpe_has_project_specials_and_round_trips(tokenizer):
    assert [tokenizer.hf.convert_ids_to_tokens(i) for i in range(4)] == list(sources.SPECIALS)
    assert (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 1, 2)
    assert 260 < tokenizer.vocab_size <= 400
    for text in ("the cat sat on a mat.", "Ünïcode — 猫 and emoji 🐈 too", "  spaces\n\ttabs "):
        ids = tokenizer.encode(text)
        assert ids.dtype == np.int32 and (ids >= 4).all()  # no specials added, bytes never <unk>
        assert tokenizer.decode(ids) == text
    literal = tokenizer.encode("a <eos> b <bos>")
    assert not np.isin(literal, [0, 1, 2, 3]).any()  # special strings in text stay plain text
    batch = tokenizer.encode_batch(["the dog", "a bird flew"])
    assert [list(b) for b in batch] == [list(tokenizer.encode("the dog")),
                                        list(tokenizer.encode("a bird flew"))]
    with pytest.raises(ValueError, match="vocab_size = 100 is below 260"):
        load_tokenizer("train:bpe", train_texts=["a"], vocab_size=100)
    with pytest.raises(ValueError, match="needs train_texts"):
        load_tokenizer("train:bpe")
    with pytest.raises(ValueError, match="unknown trainer 'wordpiece'; use train:bpe"):
        load_tokenizer("train:wordpiece", train_texts=["a"])


def test_truncated_encoding_equals_prefix_of_full_encoding(tokenizer):
    rng = random.Random(5)
    long_words = " ".join(sentence(rng, 12) for _ in range(400))  # > the character budget
    one_word = "catdog" * 600  # a single pre-token: the prefix shortcut must not be trusted
    docs = [long_words, one_word, "short text", long_words[:500]]
    full = tokenizer.encode_batch(docs)
    for max_tokens in (1, 7, 20):
        cut = tokenizer.encode_batch(docs, max_tokens=max_tokens)
        assert [list(c) for c in cut] == [list(f[:max_tokens]) for f in full]


def test_save_then_reload_with_transformers_gives_equal_ids(tokenizer, tmp_path):
    tokenizer.save(tmp_path / "tok")
    hf = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    text = "the red bird flew over the river, quickly."
    assert hf(text, add_special_tokens=False)["input_ids"] == tokenizer.encode(text).tolist()
    assert (hf.pad_token_id, hf.bos_token_id, hf.eos_token_id) == (0, 1, 2)
    again = sources.TextTokenizer.from_saved(tmp_path / "tok")
    assert again.encode(text).tolist() == tokenizer.encode(text).tolist()
    assert again.fingerprint == tokenizer.fingerprint


def gpt2_style_directory(path, with_config: bool):
    """A pretrained-style tokenizer like SmolLM2's: one <|endoftext|> token, no pad token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    backend.train_from_iterator(texts(1, 50), trainer)
    path.mkdir()
    if with_config:
        PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|endoftext|>",
                                eos_token="<|endoftext|>",
                                unk_token="<|endoftext|>").save_pretrained(str(path))
    else:
        backend.save(str(path / "tokenizer.json"))
    return path


def test_local_pretrained_tokenizer_keeps_its_ids_and_pads_with_eos(tmp_path):
    directory = gpt2_style_directory(tmp_path / "smol", with_config=True)
    tok = load_tokenizer(str(directory))
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (0, 0, 0)
    assert tok.vocab_size == tok.hf.backend_tokenizer.get_vocab_size(with_added_tokens=True)
    tok.save(tmp_path / "saved")
    assert AutoTokenizer.from_pretrained(str(tmp_path / "saved")).pad_token_id == 0
    bare = gpt2_style_directory(tmp_path / "bare", with_config=False)
    for spec in (str(bare), str(bare / "tokenizer.json")):  # token names, no config
        assert (load_tokenizer(spec).bos_id, load_tokenizer(spec).eos_id) == (0, 0)
    with pytest.raises(FileNotFoundError, match="does not exist; check the path"):
        load_tokenizer(str(tmp_path / "no" / "such" / "dir"))


# -- the two-source corpus ------------------------------------------------------------------------
@pytest.fixture()
def two_sources(tmp_path):
    stories = texts(10, 30)
    stories[3] = stories[1]  # an exact duplicate: must not be both in R and H, nor twice in R
    stories[5] = "a cat."  # 3 tokens: under min_tokens
    stories[8] = sentence(random.Random(3), 200)  # longer than max_tokens: truncated
    repeated = write_jsonl(tmp_path / "stories.jsonl", [{"story": s} for s in stories])
    general = tmp_path / "web.txt"
    general.write_text("\n".join(texts(20, 60)) + "\n")
    return f"{repeated}?field=story", str(general), stories


def test_twins_validation_and_general_are_disjoint_and_filtered(two_sources, tokenizer):
    repeated_spec, general_spec, stories = two_sources
    corpus = TextCorpus(general_spec, repeated_spec, tokenizer, n_repeated=4, n_validation=5,
                        max_tokens=30, min_tokens=8)
    r, h, v = corpus.repeated, corpus.heldout, corpus.validation
    assert (len(r), len(h), len(v)) == (4, 4, 5)
    # source order, skipping the duplicate (3) and the short document (5)
    assert r.positions.tolist() == [0, 1, 2, 4] and h.positions.tolist() == [6, 7, 8, 9]
    assert v.positions.tolist() == [0, 1, 2, 3, 4]
    full = tokenizer.encode(stories[8])
    assert len(full) > 30 and h.tokens[2].tolist() == full[:30].tolist()
    assert all(8 <= len(t) <= 30 and t.dtype == np.int32 for s in (r, h, v) for t in s.tokens)
    assert np.isnan(r.logprob).all() and r.logprob.shape == (4,)
    assert h.texts[0] == tokenizer.decode(h.tokens[0])
    assert len({int(i) for s in (r, h) for i in s.ids}) == 8
    general = [tuple(corpus.general(i)) for i in range(55)]
    assert [corpus.general_position(i) for i in range(55)] == list(range(5, 60))
    validation = {tuple(t) for t in v.tokens}
    assert not validation & set(general)
    with pytest.raises(ValueError, match=r"has only 55 training documents .* document 60 was "
                                         r"asked for"):
        corpus.general(60)
    assert corpus.general(54).tolist() == list(general[54])  # still correct after the error
    assert corpus.general(20).tolist() == list(general[20])


def test_same_source_for_both_keeps_twins_out_of_validation_and_training(two_sources, tokenizer):
    repeated_spec, _, _ = two_sources
    corpus = TextCorpus(repeated_spec, repeated_spec, tokenizer, n_repeated=3, n_validation=4,
                        max_tokens=30, min_tokens=8)
    twins = {tuple(t) for s in (corpus.repeated, corpus.heldout) for t in s.tokens}
    assert not twins & {tuple(t) for t in corpus.validation.tokens}
    assert not (twins | {tuple(t) for t in corpus.validation.tokens}) & \
        {tuple(corpus.general(i)) for i in range(10)}


def test_general_random_access_equals_sequential_reading(two_sources, tokenizer, monkeypatch):
    monkeypatch.setattr(text_corpus, "_COMMIT_EVERY", 4)
    monkeypatch.setattr(text_corpus, "_BATCH", 3)
    _, general_spec, _ = two_sources
    make = lambda: TextCorpus(general_spec, general_spec, tokenizer, n_repeated=2,  # noqa: E731
                              n_validation=3, max_tokens=30, min_tokens=8)
    sequential = make()
    expected = [sequential.general(i).tolist() for i in range(40)]
    shuffled = make()
    order = list(range(40))
    random.Random(0).shuffle(order)
    for i in order + [39, 0, 38, 1, 20]:
        assert shuffled.general(i).tolist() == expected[i]
    assert sequential.general(3).tolist() == expected[3]  # behind the last read: no re-read
    assert sequential.general(39).tolist() == expected[39]
    assert not sequential.general(0).flags.writeable


def test_fingerprint_follows_specs_tokenizer_and_counts(two_sources, tokenizer, tmp_path):
    repeated_spec, general_spec, _ = two_sources
    base = dict(n_repeated=4, n_validation=5, max_tokens=30, min_tokens=8)
    a = TextCorpus(general_spec, repeated_spec, tokenizer, **base).fingerprint()
    assert a == TextCorpus(general_spec, repeated_spec, tokenizer, **base).fingerprint()
    assert len(a) == 64
    assert a != TextCorpus(general_spec, repeated_spec, tokenizer,
                           **{**base, "max_tokens": 31}).fingerprint()
    assert a != TextCorpus(repeated_spec, repeated_spec, tokenizer, **base).fingerprint()
    other = load_tokenizer("train:bpe", train_texts=texts(2, 100), vocab_size=300)
    assert a != TextCorpus(general_spec, repeated_spec, other, **base).fingerprint()


def test_corpus_rejects_bad_settings_and_small_sources(two_sources, tokenizer, tmp_path):
    repeated_spec, general_spec, _ = two_sources
    with pytest.raises(ValueError, match="min_tokens = 40 exceeds max_tokens = 30"):
        TextCorpus(general_spec, repeated_spec, tokenizer, 4, 5, max_tokens=30, min_tokens=40)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TextCorpus(str(tmp_path / "missing.txt"), repeated_spec, tokenizer, 4, 5, max_tokens=30)
    small = TextCorpus(general_spec, repeated_spec, tokenizer, 20, 5, max_tokens=30,
                       min_tokens=8)
    with pytest.raises(ValueError, match=r"has only 28 distinct documents of at least 8 tokens, "
                                         r"but R and H \(2 x n_repeated = 40\) needs 40"):
        _ = small.repeated
