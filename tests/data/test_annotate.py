"""memsinks annotate: keys, a memory cap, planted near-duplicates, determinism, resume, errors."""

import itertools
import json
import random
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from memsinks.cli import build_parser
from memsinks.data.annotate import annotate, clusters, pipeline
from memsinks.data.annotate import parts as part_files
from memsinks.data.keys import key_id, text_id
from memsinks.data.near_duplicates import MinHashParams, minhash_clusters, word_shingles
from memsinks.data.sources import load_tokenizer, read_records
from memsinks.data.store import StoreBuilder

WORDS = [f"w{i}" for i in range(3000)]


def write_jsonl(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def corpus(seed: int, count: int, repeats: int = 10) -> list[dict]:
    """Records with text and an author (missing on some); the first ``repeats`` come back."""
    rng = random.Random(seed)
    records = []
    for i in range(count):
        record = {"text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40)))}
        if i % 4:
            record["author"] = f"author {i % 7}"
        records.append(record)
    return records + records[:repeats]


def rows(path) -> dict[str, list]:
    return pq.read_table(path).to_pydict()


@pytest.fixture(scope="module")
def tokenizer():
    texts = [r["text"] for r in corpus(0, 200)]
    return load_tokenizer("train:bpe", train_texts=texts, vocab_size=400)


def test_hash_key_counts_and_joins_back_by_position_and_hash(tmp_path):
    source = write_jsonl(tmp_path / "docs.jsonl", corpus(1, 60))
    table = rows(annotate(source, "hash", tmp_path / "out", progress=False))
    texts = [text for text, _ in read_records(source)]
    assert table["position"] == list(range(len(texts)))
    assert table["hash"] == [text_id(t) for t in texts]  # join by position
    counts = Counter(table["hash"])
    first = {}
    for position, h in enumerate(table["hash"]):
        first.setdefault(h, position)
    assert table["sink_id"] == table["hash"]
    assert table["key"] == [str(h) for h in table["hash"]]
    assert table["count"] == [counts[h] for h in table["hash"]]
    assert table["first_position"] == [first[h] for h in table["hash"]]
    assert table["repeated"] == [counts[h] > 1 for h in table["hash"]]
    assert sum(table["repeated"]) == 20
    by_hash = {}  # join by hash: one text per hash
    for h, text in zip(table["hash"], texts, strict=True):
        assert by_hash.setdefault(h, text) == text
    summary = json.loads((tmp_path / "out" / "annotation.json").read_text())
    assert summary["counts"]["documents"] == 70 and summary["counts"]["repeated_sinks"] == 10
    assert summary["identity"]["source"]["hashed"] == "text_id of text"
    assert not (tmp_path / "out" / annotation_work()).exists()


def annotation_work() -> str:
    return pipeline.WORK


def test_field_key_rules_for_missing_null_empty_and_non_text_values(tmp_path):
    records = [{"text": "a b", "author": "ann"}, {"text": "c d"}, {"text": "e f", "author": None},
               {"text": "g h", "author": ""}, {"text": "i j", "author": 7},
               {"text": "k l", "author": "ann"}, {"text": "m n", "author": ["x", 1]}]
    expected_keys = ["ann", None, None, None, "7", "ann", '["x",1]']
    jsonl = write_jsonl(tmp_path / "docs.jsonl", records)
    table = rows(annotate(jsonl, "field:author", tmp_path / "field:author", progress=False))
    assert table["key"] == expected_keys
    assert table["sink_id"] == [key_id("author", k) if k else 0 for k in expected_keys]
    assert table["count"] == [2, 0, 0, 0, 1, 2, 1]
    assert table["first_position"] == [0, None, None, None, 4, 0, 6]
    assert table["repeated"] == [True, False, False, False, False, True, False]
    # a parquet column gives the same keys for the same values (a missing value is null there)
    strings = [None if k is None else k for k in expected_keys]
    parquet = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"text": [r["text"] for r in records], "author": strings}), parquet)
    again = rows(annotate(str(parquet), "field:author", tmp_path / "parquet", progress=False))
    assert again["sink_id"] == table["sink_id"] and again["hash"] == table["hash"]


def test_token_store_and_tokenizer_give_the_training_hash(tmp_path, tokenizer):
    records = corpus(2, 50) + [{"text": "x"}]  # "x" has fewer than min_tokens ids
    source = write_jsonl(tmp_path / "docs.jsonl", records)
    store = StoreBuilder(source, tokenizer, max_tokens=12, min_tokens=2, fields=("author",),
                         cache_dir=tmp_path / "cache", progress=False).build()
    from_store = rows(annotate(str(store.path), "hash", tmp_path / "store", progress=False))
    assert from_store["hash"] == store.hashes.tolist()
    assert from_store["sink_id"][-1] == 0 and from_store["count"][-1] == 0  # no ids: no sinks
    assert from_store["key"][-1] is None and from_store["repeated"][-1] is False
    from_text = rows(annotate(source, "hash", tmp_path / "text", tokenizer=tokenizer,
                              max_tokens=12, progress=False))
    assert from_text["hash"][:-1] == store.hashes.tolist()[:-1]  # the store's min_tokens aside
    by_field = rows(annotate(str(store.path), "field:author", tmp_path / "field", progress=False))
    assert by_field == rows(annotate(source, "field:author", tmp_path / "f2", progress=False)) | {
        "hash": by_field["hash"]}
    clusters = rows(annotate(str(store.path), "minhash", tmp_path / "minhash", progress=False))
    assert sum(clusters["repeated"]) >= 20  # the ten repeats, at least
    # training's in-memory clustering of the same token documents names the same clusters
    reps = minhash_clusters([store.tokens(i) for i in range(len(store))])
    hashes = store.hashes.tolist()
    assert clusters["sink_id"][:-1] == [hashes[r] for r in reps[:-1]]  # the last has no ids
    with pytest.raises(ValueError, match="was built without field 'url'"):
        annotate(str(store.path), "field:url", tmp_path / "bad", progress=False)


def test_corpus_larger_than_the_memory_cap_is_counted_under_it(tmp_path):
    n = 400_000
    ids = np.random.default_rng(0).integers(0, n // 2, n)
    texts = [f"document {i}" for i in ids]
    source = tmp_path / "big.parquet"
    pq.write_table(pa.table({"text": texts}), source)
    cap = {"memory_limit": "32MB", "threads": 1, "chunk": 100_000, "progress": False}
    # DuckDB's data does not fit the cap: forbidden to spill, it fails ...
    with pytest.raises(ValueError, match="ran out of memory under memory limit 32MB"):
        annotate(str(source), "hash", tmp_path / "nospill",
                 duckdb_settings={"max_temp_directory_size": "0KB"}, **cap)
    # ... and allowed to, it counts correctly under the same cap
    table = pq.read_table(annotate(str(source), "hash", tmp_path / "out", **cap))
    hashes = np.array([text_id(t) for t in texts])
    assert np.array_equal(table.column("hash").to_numpy(), hashes)
    _, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
    assert np.array_equal(table.column("count").to_numpy(), counts[inverse])
    assert table.num_rows == n and len(pq.ParquetFile(tmp_path / "out" / "annotations.parquet")
                                       .metadata.to_dict()["row_groups"]) == 4


def planted(seed: int) -> tuple[list[str], list[int]]:
    """Base documents of 200 words; a third get two copies with 1-12 words replaced."""
    rng = random.Random(seed)
    texts, family = [], []
    for base in range(240):
        words = [rng.choice(WORDS) for _ in range(200)]
        texts.append(" ".join(words))
        family.append(base)
        if base % 3 == 0:
            for _ in range(2):
                copy = list(words)
                for spot in rng.sample(range(200), rng.choice([1, 2, 3, 5, 12])):
                    copy[spot] = rng.choice(WORDS)
                texts.append(" ".join(copy))
                family.append(base)
    order = list(range(len(texts)))
    rng.shuffle(order)
    return [texts[i] for i in order], [family[i] for i in order]


def components(pairs: list[tuple[int, int]], members: dict[int, list[int]]) -> set:
    """Every pair of a family in the same connected component of ``pairs``."""
    find = union_find(pairs)
    return {p for group in members.values() for p in itertools.combinations(group, 2)
            if find(p[0]) == find(p[1])}


def union_find(pairs):
    """The smallest node of each node's connected component in ``pairs``, as a function."""
    root: dict[int, int] = {}

    def find(i):
        while root.get(i, i) != i:
            i = root[i]
        return i

    for i, j in pairs:
        a, b = find(i), find(j)
        root[max(a, b)] = min(a, b)
    return find


def test_planted_near_duplicates_are_found_at_the_documented_threshold(tmp_path):
    texts, family = planted(3)
    source = write_jsonl(tmp_path / "planted.jsonl", [{"text": t} for t in texts])
    table = rows(annotate(source, "minhash", tmp_path / "out", progress=False))
    params = MinHashParams()
    sets = [set(word_shingles(t, params.shingle)) for t in texts]
    members: dict[int, list[int]] = {}
    for i, f in enumerate(family):
        members.setdefault(f, []).append(i)
    exact = {(i, j): len(sets[i] & sets[j]) / len(sets[i] | sets[j])
             for group in members.values() for i, j in itertools.combinations(group, 2)}
    truth = components([p for p, j in exact.items() if j >= params.threshold], members)
    # MinHash estimates Jaccard (sd about 0.035 here): pairs just under the threshold join too
    near = components([p for p, j in exact.items() if j >= params.threshold - 0.05], members)
    clusters: dict[int, list[int]] = {}
    for position, root in enumerate(table["first_position"]):
        clusters.setdefault(root, []).append(position)
    found = {p for group in clusters.values() for p in itertools.combinations(group, 2)}
    precision = len(found & truth) / max(1, len(found))
    recall = len(found & truth) / max(1, len(truth))
    within = len(found & near) / max(1, len(found))
    print(f"\nplanted near-duplicates, threshold {params.threshold}: {len(truth)} true pairs, "
          f"{len(found)} found; precision {precision:.3f}, recall {recall:.3f}; "
          f"found pairs within 0.05 of the threshold or above: {within:.3f}")
    assert len(truth) > 80 and recall >= 0.9 and precision >= 0.85 and within >= 0.98
    assert all(family[i] == family[j] for i, j in found)  # unrelated documents never merge
    for root, group in clusters.items():  # the representative is the earliest member
        assert root == min(group)
        assert {table["sink_id"][i] for i in group} == {table["hash"][root]}
        assert {table["count"][i] for i in group} == {len(group)}


@pytest.mark.parametrize("key", ["hash", "field:author", "minhash"])
def test_annotating_twice_gives_byte_identical_tables(tmp_path, monkeypatch, key):
    monkeypatch.setattr(part_files, "ROW_GROUP", 50)  # several row groups, not aligned
    source = write_jsonl(tmp_path / "docs.jsonl", corpus(4, 200))
    first = annotate(source, key, tmp_path / "a", chunk=37, progress=False)
    second = annotate(source, key, tmp_path / "b", chunk=64, progress=False)
    assert first.read_bytes() == second.read_bytes()
    metadata = pq.ParquetFile(first).metadata
    assert metadata.metadata is None and metadata.num_row_groups == 5
    assert [metadata.row_group(i).num_rows for i in range(5)] == [50, 50, 50, 50, 10]

    def fail(*args, **kwargs):
        raise AssertionError("an up-to-date annotation was redone")

    monkeypatch.setattr(pipeline, "write_part", fail)
    monkeypatch.setattr(pipeline, "write_table", fail)
    assert annotate(source, key, tmp_path / "a", chunk=37, progress=False) == first


def test_resume_after_a_crash_redoes_only_unmarked_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(part_files, "ROW_GROUP", 16)
    source = write_jsonl(tmp_path / "docs.jsonl", corpus(5, 85))  # 95 documents: 10 parts
    fresh = annotate(source, "field:author", tmp_path / "fresh", chunk=10, progress=False)
    finish = pipeline.write_table

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "write_table", crash)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        annotate(source, "field:author", out, chunk=10, progress=False)
    parts = out / annotation_work() / "parts"
    assert len(list(parts.glob("*.done"))) == 10
    # a crash while part 7 was written: its marker, and the end marker, never made it
    (parts / "000007.done").unlink()
    (out / annotation_work() / "parts.complete").unlink()
    written = []
    write_part = pipeline.write_part
    monkeypatch.setattr(pipeline, "write_part",
                        lambda parts, index, *a: written.append(index) or write_part(
                            parts, index, *a))
    monkeypatch.setattr(pipeline, "write_table", finish)
    table = annotate(source, "field:author", out, chunk=10, progress=False)
    assert written == [7, 8, 9]
    assert table.read_bytes() == fresh.read_bytes()


def one_sentence(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and ". " not in message.rstrip("."), message
    return message


@pytest.mark.parametrize("key, options, match", [
    ("sha", {}, "key = 'sha' is not one of hash, minhash or field:NAME"),
    ("field:", {}, "names no field; write field:NAME"),
    ("runs/ann/annotations.parquet", {}, "is not one of hash, minhash or field:NAME"),
    ("minhash?threshold=2", {}, "must lie strictly between 0 and 1"),
    ("hash", {"memory_limit": "lots"}, "memory limit 'lots' is not a size"),
    ("minhash", {"threshold": 1.5}, "must lie strictly between 0 and 1"),
    ("minhash", {"threshold": 0.0}, "must lie strictly between 0 and 1"),
    ("hash", {"threshold": 0.5}, r"minhash options \(threshold\) do not apply to key 'hash'"),
    ("minhash", {"bands": 10}, "must divide num_perm = 128"),
    ("field:nobody", {}, "no document of .* has a value in field 'nobody'"),
])
def test_bad_input_gets_one_sentence(tmp_path, key, options, match):
    source = write_jsonl(tmp_path / "docs.jsonl", corpus(6, 5))
    with pytest.raises(ValueError, match=match) as error:
        annotate(source, key, tmp_path / "out", progress=False, **options)
    one_sentence(error)


def test_bad_sources_get_one_sentence(tmp_path):
    text = tmp_path / "docs.txt"
    text.write_text("one document\nanother\n")
    with pytest.raises(ValueError, match="has no fields to read 'author' from") as error:
        annotate(str(text), "field:author", tmp_path / "out", progress=False)
    one_sentence(error)
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"text": "  "}\n\n')
    with pytest.raises(ValueError, match="holds no non-empty documents") as error:
        annotate(str(empty), "hash", tmp_path / "out", progress=False)
    one_sentence(error)
    with pytest.raises(FileNotFoundError, match="does not exist") as error:
        annotate(str(tmp_path / "missing.jsonl"), "hash", tmp_path / "out", progress=False)
    one_sentence(error)
    parquet = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"text": ["a", "b"]}), parquet)
    with pytest.raises(ValueError, match="has no column 'author'") as error:
        annotate(str(parquet), "field:author", tmp_path / "out", progress=False)
    one_sentence(error)


def test_command_line(tmp_path, capsys):
    parser = build_parser()
    source = write_jsonl(tmp_path / "docs.jsonl", corpus(7, 30))
    args = parser.parse_args(["annotate", source, "--key", "minhash", "--threshold", "0.9",
                              "--out", str(tmp_path / "out"), "--memory-limit", "256MB",
                              "--quiet"])
    args.func(args)
    assert "40 documents" in capsys.readouterr().out
    summary = json.loads((tmp_path / "out" / "annotation.json").read_text())
    assert summary["identity"]["minhash"]["threshold"] == 0.9
    assert summary["parameters"]["memory_limit"] == "256MB"
    assert summary["versions"]["rensa_algorithm"] >= 2


def test_components_match_union_find_on_random_graphs():
    import duckdb

    rng = random.Random(8)
    for nodes, count in ((30, 20), (200, 150), (400, 600)):
        edges = [(rng.randrange(nodes), rng.randrange(nodes)) for _ in range(count)]
        edges += [(i + 1, i) for i in range(300, 399)] if nodes == 400 else []  # a long chain
        con = duckdb.connect()
        con.execute("CREATE TABLE edges (u BIGINT, v BIGINT)")
        con.executemany("INSERT INTO edges VALUES (?, ?)", edges)
        rounds = clusters.components(con)
        labels = dict(con.execute("SELECT node, label FROM labels").fetchall())
        find = union_find(edges)
        expected = {i: find(i) for edge in edges for i in edge}
        assert labels == expected and rounds <= 12
