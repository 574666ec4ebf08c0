"""Sink keys (data.sink_key) and repetition that is not exact (data.perturb)."""

import numpy as np
import pytest

from memsinks import config as config_io
from memsinks.config import mixture_of
from memsinks.data.keys import key_ids, parse_key, value_id
from memsinks.sinks import document_id

SMALL = ["data.n_repeated=8", "data.repetitions=6", "data.n_validation=8", "train.steps=40",
         "train.batch_size=8"]


def mixture(*overrides):
    return mixture_of(config_io.load(None, SMALL + list(overrides)))


def r_rows(mix, index):
    stream, seen = mix.stream(False), mix.occurrences(False)
    where = np.flatnonzero(stream == -(index + 1))
    return [mix.row_tokens(-(index + 1), seen[p]) for p in where]


def test_key_names_and_errors():
    assert parse_key("hash") == ("hash", "")
    assert parse_key("field:author") == ("field", "author")
    for bad in ("md5", "minhash:3"):
        with pytest.raises(ValueError, match="hash, minhash, field:NAME or an annotation table"):
            parse_key(bad)
    with pytest.raises(ValueError, match="data.sink_key = 'field:' names no field"):
        parse_key("field:")
    assert value_id("source", 3) == value_id("source", 3) != value_id("source", 4) != 0
    # a document without the field gets no sinks, never a crash
    ids = key_ids("field:source", [np.zeros(3)] * 2, [{"source": 1}, {}])
    assert ids[0] == value_id("source", 1) and ids[1] == 0


def test_occurrences_count_each_documents_earlier_appearances():
    mix = mixture()
    stream, seen = mix.stream(False), mix.occurrences(False)
    for position in range(0, len(stream), 7):
        assert seen[position] == np.sum(stream[:position] == stream[position])


def test_perturbation_is_per_occurrence_deterministic_and_spares_evaluation():
    plain, noisy = mixture(), mixture("data.perturb=0.1")
    again = mixture("data.perturb=0.1")
    original = plain.repeated.tokens[0]
    copies = r_rows(noisy, 0)
    assert len(copies) == 6
    changed = [int((c != original).sum()) for c in copies]
    assert all(0 < n <= round(0.1 * len(original)) for n in changed), changed
    assert len({c.tobytes() for c in copies}) == len(copies)  # each occurrence its own text
    assert all(np.array_equal(a, b) for a, b in zip(copies, r_rows(again, 0), strict=True))
    # evaluation, H, V and the general stream are untouched
    assert np.array_equal(noisy.repeated.tokens[0], original)
    stream, seen = noisy.stream(False), noisy.occurrences(False)
    for step in (0, 3, 17):
        rows = zip(plain.batch(step), noisy.batch(step), range(step * 8, step * 8 + 8),
                   strict=True)
        for (code, a), (_, b), position in rows:
            expected = a if code >= 0 else noisy.row_tokens(code, seen[position])
            assert stream[position] == code and np.array_equal(b, expected)


def test_exact_keys_miss_perturbed_copies():
    noisy = mixture("data.perturb=0.1")
    repeated = noisy.sink_ids(False, "repeated")
    assert not repeated.any()  # every copy differs: no key repeats
    everything = noisy.sink_ids(False, "all")
    stream, seen = noisy.stream(False), noisy.occurrences(False)
    p = int(np.flatnonzero(stream == -1)[2])
    assert everything[p] == document_id(noisy.row_tokens(-1, seen[p]))


def test_source_keys_give_one_sink_id_per_source():
    mix = mixture("data.sources=4", "data.sink_key=field:source")
    stream, ids = mix.stream(False), mix.sink_ids(False, "all")
    assert not ids[stream >= 0].any()  # general documents have no source field: no sinks
    for i in range(8):
        assert set(ids[stream == -(i + 1)]) == {value_id("source", i % 4)}
    assert list(mix.repeated.own_ids) == [value_id("source", i % 4) for i in range(8)]
    assert (mix.sink_ids(False, "repeated") == ids).all()  # every source repeats
    assert list(mix.repeated.ids) == [document_id(t) for t in mix.repeated.tokens]


@pytest.mark.parametrize("overrides, message", [
    (["data.perturb=1"], "data.perturb"),
    (["data.sink_key=field:source"], "data.sources"),
    (["data.sink_key=sha1"], "hash, minhash, field:NAME or an annotation table"),
    (["data.sources=-1"], "data.sources"),
])
def test_bad_settings_name_the_fix(overrides, message):
    with pytest.raises(ValueError, match=message):
        config_io.load(None, SMALL + overrides)


NEAR = "minhash?shingle=3&threshold=0.5&bands=32"


def test_minhash_keys_join_perturbed_copies_that_exact_keys_split():
    noisy = mixture("data.perturb=0.05", f"data.sink_key={NEAR}")
    stream, ids = noisy.stream(False), noisy.sink_ids(False, "repeated")
    for i in range(8):
        assert len(set(ids[stream == -(i + 1)])) == 1 and noisy.repeated.own_ids[i] != 0
    assert len(set(noisy.repeated.own_ids)) == 8  # distinct documents stay apart


def test_minhash_clusters_recover_planted_near_duplicate_groups():
    from memsinks.data.near_duplicates import MinHashParams, minhash_clusters

    rng = np.random.default_rng(0)
    base = [rng.integers(4, 500, 60) for _ in range(20)]
    docs = []
    for doc in base:
        for _ in range(3):
            copy = doc.copy()
            copy[rng.choice(60, 2, replace=False)] = rng.integers(4, 500, 2)
            docs.append(copy)
    order = rng.permutation(len(docs))
    docs = [docs[i] for i in order]
    reps = minhash_clusters(docs, MinHashParams(shingle=3, threshold=0.5, bands=32))
    truth = order // 3
    same_cluster = reps[:, None] == reps[None, :]
    assert (same_cluster == (truth[:, None] == truth[None, :])).all()
    assert all(reps[i] <= i for i in range(len(docs)))  # the earliest member represents
    ids = key_ids(NEAR, docs)
    assert len(set(ids)) == 20 and ids[0] == document_id(docs[0])


def test_bad_minhash_options():
    for key, message in [("minhash?shingles=3", "unknown"), ("minhash?bands=7", "divide"),
                         ("minhash?threshold=x", "valid float")]:
        with pytest.raises(ValueError, match=message):
            parse_key(key)


def test_sink_ids_from_an_annotation_table(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    mix = mixture()
    stream = mix.stream(False)
    codes = np.unique(stream)
    hashes = [document_id(mix.tokens_of(int(c))) for c in codes]
    sink = [7 if c < 0 else 0 for c in codes]  # the table gives every R document one key
    pq.write_table(pa.table({"hash": pa.array(hashes, pa.int64()),
                             "sink_id": pa.array(sink, pa.int64())}),
                   tmp_path / "annotations.parquet")
    keyed = mixture(f"data.sink_key={tmp_path}")
    ids = keyed.sink_ids(False, "all")
    assert set(ids[stream < 0]) == {7} and not ids[stream >= 0].any()
    assert (keyed.repeated.own_ids == 7).all()
    pq.write_table(pa.table({"hash": pa.array(hashes[:3], pa.int64()),
                             "sink_id": pa.array(sink[:3], pa.int64())}),
                   tmp_path / "short.parquet")
    with pytest.raises(ValueError, match="not in the annotation table"):
        mixture(f"data.sink_key={tmp_path / 'short.parquet'}").sink_ids(False, "all")
    with pytest.raises(FileNotFoundError, match="memsinks annotate"):
        parse_key(str(tmp_path / "missing.parquet"))


def test_an_r_document_evaluates_with_the_key_it_trained_with_most_often():
    noisy = mixture("data.perturb=0.1")
    stream, keys = noisy.stream(False), noisy.row_keys(False)
    first = keys[np.flatnonzero(stream == -1)[0]]
    assert noisy.repeated.own_ids[0] == first  # every copy its own hash: the first copy's


def test_field_keys_on_a_text_corpus(tmp_path, monkeypatch):
    import json

    from memsinks.data.config import DataConfig
    from memsinks.data.stream import Mixture

    monkeypatch.setenv("MEMSINKS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    words = "the cat sat on a mat and looked at the bird while the dog ran far".split()
    for name, count, author in (("general", 300, lambda i: f"site{i % 5}" if i % 2 else None),
                                ("stories", 30, lambda i: f"author{i % 3}")):
        with open(tmp_path / f"{name}.jsonl", "w") as handle:
            for i in range(count):
                record = {"text": f"{name} {i}: " + " ".join(rng.choice(words, 25))}
                if author(i) is not None:
                    record["author"] = author(i)
                handle.write(json.dumps(record) + "\n")
    data = DataConfig(general_source=f"{tmp_path}/general.jsonl?field=text",
                      repeated_source=f"{tmp_path}/stories.jsonl?field=text", n_repeated=6,
                      repetitions=3, n_validation=8, vocab_size=300, tokenizer_docs=100,
                      sink_key="field:author")
    mix = Mixture(data, steps=10, batch_size=8, max_tokens=60)
    stream, ids = mix.stream(False), mix.sink_ids(False, "all")
    for i in range(6):  # R document i is the i-th story: author i % 3
        assert set(ids[stream == -(i + 1)]) == {value_id("author", f"author{i % 3}")}
    general = [mix.text.general_fields(int(c)) for c in stream[stream >= 0]]
    expected = [value_id("author", f.get("author")) for f in general]
    assert list(ids[stream >= 0]) == expected and 0 in expected  # no author: no sinks
    assert (mix.repeated.own_ids == [value_id("author", f"author{i % 3}")
                                     for i in range(6)]).all()
