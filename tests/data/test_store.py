"""Token stores: format, resume, locking, errors, and TextCorpus reading through them."""

import json
import os
import random
import subprocess
import sys
import threading
import time
import types

import numpy as np
import pytest

from memsinks.data import store as store_module
from memsinks.data.sources import load_tokenizer, read_documents
from memsinks.data.store import StoreBuilder, TokenStore
from memsinks.data.text import TextCorpus
from memsinks.sinks import document_id

WORDS = ("the cat dog sat ran on a mat under big small red tree house saw jumped quickly and "
         "then happy sad bird flew away over river").split()


def texts(seed: int, count: int) -> list[str]:
    """Documents of mixed lengths: a few words (under min_tokens) up to past max_tokens."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.choice([1, 3, 12, 25, 40, 150])))
            + "." for _ in range(count)]


def write_jsonl(path, documents: list[str]) -> str:
    """One record per document with an id and (on most) a url; blank and empty-text lines too."""
    lines = []
    for i, text in enumerate(documents):
        record = {"text": text, "id": i} | ({"url": f"https://x/{i}"} if i % 5 else {})
        lines.append(json.dumps(record))
        if i % 7 == 0:
            lines += ["", json.dumps({"text": "   ", "id": -1})]  # skipped: no document
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("train:bpe", train_texts=texts(0, 300), vocab_size=400)


@pytest.fixture()
def source(tmp_path):
    return write_jsonl(tmp_path / "docs.jsonl", texts(1, 120))


class Counting:
    """A tokenizer that counts the documents it encodes, optionally slowly or failing."""

    def __init__(self, inner, pause: float = 0.0, fail_on_call: int | None = None):
        self.inner, self.pause, self.fail_on_call = inner, pause, fail_on_call
        self.name, self.fingerprint, self.vocab_size = inner.name, inner.fingerprint, \
            inner.vocab_size
        self.encoded = self.calls = 0

    def encode_batch(self, batch, max_tokens=None):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("killed")
        time.sleep(self.pause)
        self.encoded += len(batch)
        return self.inner.encode_batch(batch, max_tokens=max_tokens)

    def decode(self, ids, skip_special_tokens=True):
        return self.inner.decode(ids, skip_special_tokens)


def files_of(path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.name != "lock"}


# -- format and round trip ------------------------------------------------------------------------
def test_round_trip_equals_direct_tokenization(source, tokenizer, tmp_path):
    builder = StoreBuilder(source, tokenizer, max_tokens=30, min_tokens=4,
                           fields=("id", "url"), cache_dir=tmp_path / "cache")
    store = builder.build()
    documents = list(read_documents(source))
    expected = tokenizer.encode_batch(documents, max_tokens=30)
    assert builder.path.parent == tmp_path / "cache" / "stores"
    assert len(store) == len(documents) == 120 and store.complete
    lengths = [len(t) if len(t) >= 4 else 0 for t in expected]
    assert store.lengths.tolist() == lengths and store.n_tokens == sum(lengths)
    for i, ids in enumerate(expected):
        kept = ids if len(ids) >= 4 else ids[:0]
        assert store.tokens(i).dtype == np.int32 and store.tokens(i).tolist() == kept.tolist()
        assert store.hash(i) == (document_id(ids) if len(ids) >= 4 else 0)
        assert store.fields(i) == {"id": i, "url": f"https://x/{i}" if i % 5 else None}
    assert any(len(t) > 30 for t in tokenizer.encode_batch(documents))  # the cut was exercised
    assert 0 in store.lengths  # and so was min_tokens
    # the documented format, read without memsinks
    meta = json.loads((builder.path / "meta.json").read_text())
    assert meta | {"files": None} == {
        "format": 1, "source": source, "files": None, "tokenizer": tokenizer.fingerprint,
        "max_tokens": 30, "min_tokens": 4, "fields": ["id", "url"], "dtype": "uint16",
        "n_docs": 120, "n_tokens": sum(lengths),
        "fields_bytes": (builder.path / "fields.jsonl").stat().st_size, "complete": True}
    offsets = np.load(builder.path / "offsets.npy")
    flat = np.fromfile(builder.path / "tokens.bin", dtype="<u2")
    assert offsets[0] == 0 and offsets[-1] == len(flat) and len(offsets) == 121
    assert flat[offsets[7]:offsets[8]].tolist() == store.tokens(7).tolist()
    assert np.load(builder.path / "hashes.npy").tolist() == store.hashes.tolist()
    with pytest.raises(IndexError, match="document 120 is outside token store"):
        store.tokens(120)


def test_store_key_follows_settings_and_the_cache_variable(source, tokenizer, tmp_path,
                                                           monkeypatch):
    monkeypatch.setenv("MEMSINKS_CACHE", str(tmp_path / "env"))
    base = StoreBuilder(source, tokenizer, max_tokens=30)
    assert base.path.parent == tmp_path / "env" / "stores"
    assert base.path == StoreBuilder(source, tokenizer, max_tokens=30).path
    for other in (StoreBuilder(source, tokenizer, max_tokens=31),
                  StoreBuilder(source, tokenizer, max_tokens=30, min_tokens=2),
                  StoreBuilder(source, tokenizer, max_tokens=30, fields=("id",)),
                  StoreBuilder(source + "?field=text", tokenizer, max_tokens=30)):
        assert other.path != base.path
    with open(source, "a") as f:  # a changed file is a new store, never a stale one
        f.write(json.dumps({"text": "one more document here"}) + "\n")
    assert StoreBuilder(source, tokenizer, max_tokens=30).path != base.path


def test_fields_from_hub_rows_and_parquet_columns_not_text_files(tokenizer, tmp_path, monkeypatch):
    rows = [{"text": t, "lang": "en" if i % 2 else None} for i, t in enumerate(texts(4, 30))]
    monkeypatch.setitem(sys.modules, "datasets",
                        types.SimpleNamespace(load_dataset=lambda *a, **k: iter(rows)))
    store = StoreBuilder("hf:some/set", tokenizer, fields=("lang",),
                         cache_dir=tmp_path).build(limit=10)
    assert len(store) == 10 and not store.complete
    assert [store.fields(i)["lang"] for i in range(3)] == [None, "en", None]
    assert store.tokens(2).tolist() == tokenizer.encode(rows[2]["text"]).tolist()
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"text": texts(5, 20), "score": [i / 2 for i in range(20)]})
    pq.write_table(table, tmp_path / "rows.parquet", row_group_size=8)
    rows_spec = str(tmp_path / "rows.parquet")
    scored = StoreBuilder(rows_spec, tokenizer, fields=("score",), cache_dir=tmp_path).build()
    assert [scored.fields(i)["score"] for i in (0, 9, 19)] == [0.0, 4.5, 9.5]
    with pytest.raises(ValueError, match=r"has no column 'url' for fields \(it has 'text', "
                                         r"'score'\)"):
        StoreBuilder(rows_spec, tokenizer, fields=("url",), cache_dir=tmp_path).build()
    plain = tmp_path / "plain.txt"
    plain.write_text("a document\n")
    with pytest.raises(ValueError, match="text file 'plain.txt' has no fields to read 'lang'"):
        StoreBuilder(str(plain), tokenizer, fields=("lang",), cache_dir=tmp_path).build()


# -- constant-time access -------------------------------------------------------------------------
def test_reading_never_touches_the_source_again(source, tokenizer, tmp_path, monkeypatch):
    builder = StoreBuilder(source, tokenizer, max_tokens=30, cache_dir=tmp_path)
    expected = [builder.build().tokens(i).tolist() for i in range(120)]

    def no_reading(*args, **kwargs):
        raise AssertionError("the source was read again")

    monkeypatch.setattr(store_module, "read_records", no_reading)
    store = StoreBuilder(source, tokenizer, max_tokens=30, cache_dir=tmp_path).build()
    order = list(range(120))
    random.Random(0).shuffle(order)
    for i in order:
        assert store.tokens(i).tolist() == expected[i]
    assert isinstance(store._tokens, np.memmap)  # reads map the file, they do not load it


# -- bounded builds and resuming ------------------------------------------------------------------
def test_limited_build_is_extended_by_reading_only_the_rest(source, tokenizer, tmp_path):
    counting = Counting(tokenizer)
    builder = StoreBuilder(source, counting, max_tokens=30, fields=("id",), cache_dir=tmp_path,
                           chunk=8, commit_every=16)
    first = builder.build(limit=10)
    assert (len(first), first.complete, counting.encoded) == (10, False, 10)
    assert builder.build(limit=5) is not None and counting.encoded == 10  # already there
    assert len(builder.build(limit=50)) == 50 and counting.encoded == 50
    full = builder.build()
    assert (len(full), full.complete, counting.encoded) == (120, True, 120)
    assert first.tokens(9).tolist() == full.tokens(9).tolist()  # an old reader stays valid
    clean = StoreBuilder(source, tokenizer, max_tokens=30, fields=("id",),
                         cache_dir=tmp_path / "clean")
    clean.build()
    assert files_of(builder.path) == files_of(clean.path)


def test_interrupted_builds_resume_from_the_last_commit(source, tokenizer, tmp_path, monkeypatch):
    clean = StoreBuilder(source, tokenizer, max_tokens=30, fields=("id", "url"),
                         cache_dir=tmp_path / "clean")
    clean.build()
    settings = dict(max_tokens=30, fields=("id", "url"), cache_dir=tmp_path, chunk=8,
                    commit_every=16)
    # killed while tokenizing its sixth chunk: two commits of 16 documents survive
    with pytest.raises(RuntimeError, match="killed"):
        StoreBuilder(source, Counting(tokenizer, fail_on_call=6), **settings).build()
    builder = StoreBuilder(source, tokenizer, **settings)
    partial = builder.open()
    assert (len(partial), partial.complete) == (32, False)
    # killed after writing a chunk but before committing it: its bytes are past meta's counts
    real_write = store_module.atomic_write
    calls = []

    def dies_on_second_commit(path, text, **options):
        calls.append(json.loads(text)["n_docs"])
        if len(calls) == 2:
            raise RuntimeError("killed")
        real_write(path, text, **options)

    monkeypatch.setattr(store_module, "atomic_write", dies_on_second_commit)
    with pytest.raises(RuntimeError, match="killed"):
        builder.build()
    monkeypatch.setattr(store_module, "atomic_write", real_write)
    assert calls == [48, 64]
    stale = builder.open()  # the half-written chunk is not read
    assert (len(stale), stale.complete) == (48, False)
    assert (builder.path / "tokens.bin").stat().st_size > 2 * stale.n_tokens
    assert stale.tokens(47).tolist() == TokenStore(clean.path).tokens(47).tolist()
    counting = Counting(tokenizer)
    resumed = StoreBuilder(source, counting, **settings).build()
    assert (len(resumed), resumed.complete, counting.encoded) == (120, True, 120 - 48)
    assert files_of(builder.path) == files_of(clean.path)


# -- clear errors ---------------------------------------------------------------------------------
def test_a_store_read_with_another_tokenizer_says_so(source, tokenizer, tmp_path):
    builder = StoreBuilder(source, tokenizer, cache_dir=tmp_path)
    builder.build(limit=5)
    other = load_tokenizer("train:bpe", train_texts=texts(2, 100), vocab_size=300)
    assert StoreBuilder(source, other, cache_dir=tmp_path).path != builder.path
    with pytest.raises(ValueError, match=r"was built with another tokenizer than 'train:bpe/300'"
                                         r"; delete that directory to rebuild it, or pass the "
                                         r"tokenizer it was built with"):
        TokenStore(builder.path, other)


def test_a_truncated_or_padded_tokens_file_says_delete_and_rebuild(source, tokenizer, tmp_path):
    builder = StoreBuilder(source, tokenizer, cache_dir=tmp_path)
    n_tokens = builder.build().n_tokens
    tokens = builder.path / "tokens.bin"
    data = tokens.read_bytes()
    tokens.write_bytes(data[:-6])
    message = (rf"token store file .*tokens\.bin is truncated or corrupt: it holds {n_tokens - 3} "
               rf"tokens, but offsets\.npy says {n_tokens}; delete .* and rebuild it")
    with pytest.raises(ValueError, match=message):
        TokenStore(builder.path)
    with pytest.raises(ValueError, match=message):
        builder.build()
    tokens.write_bytes(data + b"\0\0")
    with pytest.raises(ValueError, match="truncated or corrupt: it holds"):
        TokenStore(builder.path)
    tokens.write_bytes(data)
    (builder.path / "offsets.npy").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"offsets\.npy is not a \.npy file; delete"):
        TokenStore(builder.path)
    with pytest.raises(FileNotFoundError, match="is not a token store"):
        TokenStore(tmp_path)


def test_an_empty_source_is_named(tokenizer, tmp_path):
    blank = tmp_path / "blank.txt"
    blank.write_text("\n   \n\n")
    with pytest.raises(ValueError, match=r"data source '.*blank\.txt' holds no non-empty "
                                         r"documents"):
        StoreBuilder(str(blank), tokenizer, cache_dir=tmp_path).build()


# -- one builder at a time ------------------------------------------------------------------------
def test_two_threads_build_one_store(source, tokenizer, tmp_path, capfd):
    counting = Counting(tokenizer, pause=0.02)
    barrier = threading.Barrier(2)
    results: list = [None, None]

    def build(slot: int) -> None:
        barrier.wait()
        results[slot] = StoreBuilder(source, counting, max_tokens=30, cache_dir=tmp_path,
                                     chunk=8).build()

    threads = [threading.Thread(target=build, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counting.encoded == 120  # tokenized once
    assert [len(r) for r in results] == [120, 120]
    assert all(results[0].tokens(i).tolist() == results[1].tokens(i).tolist()
               for i in range(120))
    assert f"waiting for pid {os.getpid()}, which holds the token store" in \
        capfd.readouterr().err


def test_a_build_waits_for_another_process_holding_the_lock(source, tokenizer, tmp_path, capfd):
    builder = StoreBuilder(source, tokenizer, cache_dir=tmp_path)
    builder.path.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "os.write(fd, str(os.getpid()).encode())\n"
         "print('locked', flush=True)\n"
         "time.sleep(0.5)\n", str(builder.path / "lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.perf_counter()
        assert len(builder.build()) == 120
        assert time.perf_counter() - started > 0.2
    finally:
        holder.wait()
    assert f"waiting for pid {holder.pid}, which holds the token store" in capfd.readouterr().err


# -- TextCorpus through the store -----------------------------------------------------------------
def expected_sets(general_spec, repeated_spec, tokenizer, n_repeated, n_validation, max_tokens,
                  min_tokens):
    """R, H, V and the general documents by the rules, straight from the readers."""
    def accepted(spec):
        ids = tokenizer.encode_batch(list(read_documents(spec)), max_tokens=max_tokens)
        return [(p, t.tolist(), document_id(t)) for p, t in enumerate(ids)
                if len(t) >= min_tokens]

    def distinct(items, count, exclude):
        taken, seen = [], set(exclude)
        for item in items:
            if item[2] not in seen:
                seen.add(item[2])
                taken.append(item)
        return taken[:count]

    twins = distinct(accepted(repeated_spec), 2 * n_repeated, ())
    r, h = twins[:n_repeated], twins[n_repeated:]
    general = accepted(general_spec)
    v = distinct(general, n_validation, {d for _, _, d in twins})
    excluded = {d for _, _, d in twins + v}
    rest = [(p, t) for p, t, d in general if p > v[-1][0] and d not in excluded]
    return r, h, v, rest


@pytest.mark.parametrize("same_source", [False, True])
def test_text_corpus_reads_the_documents_the_rules_pick(tokenizer, tmp_path, monkeypatch,
                                                        same_source):
    monkeypatch.setenv("MEMSINKS_CACHE", str(tmp_path / "cache"))
    stories = texts(5, 60)
    stories[9] = stories[2]  # a duplicate inside R
    general_docs = texts(6, 400)
    general_docs[3] = stories[2]  # an R document in the general source: never validation
    general_docs[40] = general_docs[1]  # a repeat of a validation document: never general
    general_docs[41] = general_docs[50] = general_docs[60]  # general may repeat itself
    repeated = tmp_path / "stories.txt"
    repeated.write_text("\n".join(stories) + "\n")
    general = write_jsonl(tmp_path / "web.jsonl", general_docs)
    repeated_spec = general if same_source else str(repeated)
    settings = dict(n_repeated=6, n_validation=12, max_tokens=30, min_tokens=8)
    r, h, v, rest = expected_sets(general, repeated_spec, tokenizer, **settings)
    corpus = TextCorpus(general, repeated_spec, tokenizer, **settings)
    for got, want in ((corpus.repeated, r), (corpus.heldout, h), (corpus.validation, v)):
        assert got.positions.tolist() == [p for p, _, _ in want]
        assert [t.tolist() for t in got.tokens] == [t for _, t, _ in want]
        assert got.ids.tolist() == [d for _, _, d in want]
        assert all(t.dtype == np.int32 and not t.flags.writeable for t in got.tokens)
    assert len(rest) > 150
    order = list(range(len(rest)))
    random.Random(1).shuffle(order)
    for i in order:
        assert corpus.general(i).tolist() == rest[i][1]
        assert corpus.general_position(i) == rest[i][0]
    assert not corpus.general(0).flags.writeable
    with pytest.raises(ValueError, match=rf"has only {len(rest)} training documents .* document "
                                         rf"{len(rest)} was asked for"):
        corpus.general(len(rest))
    with pytest.raises(IndexError, match="negative"):
        corpus.general(-1)


def test_the_corpus_tokenizes_only_what_it_needs_and_checks_capacity(tokenizer, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setenv("MEMSINKS_CACHE", str(tmp_path / "cache"))
    general = write_jsonl(tmp_path / "web.jsonl", texts(7, 3000))
    repeated = write_jsonl(tmp_path / "stories.jsonl", texts(8, 3000))
    corpus = TextCorpus(general, repeated, tokenizer, n_repeated=4, n_validation=8,
                        max_tokens=30, min_tokens=8)
    corpus.check_capacity(500)
    stores = corpus._stores
    repeated_store, general_store = (stores[f"{spec}\x0030"] for spec in (repeated, general))
    assert not repeated_store.complete and len(repeated_store) < 600
    assert not general_store.complete and len(general_store) < 1500

    def no_reading(*args, **kwargs):
        raise AssertionError("the source was read again")

    monkeypatch.setattr(store_module, "read_records", no_reading)
    for i in random.Random(2).sample(range(500), 500):  # any order, nothing re-read
        corpus.general(i)
    monkeypatch.undo()
    monkeypatch.setenv("MEMSINKS_CACHE", str(tmp_path / "cache"))
    have = len(expected_sets(general, repeated, tokenizer, 4, 8, 30, 8)[3])
    with pytest.raises(ValueError, match=r"holds only \d+ general training documents \(after R, "
                                         r"H, V and those under min_tokens = 8\), but the stream "
                                         r"needs 5000; use a larger source"):
        corpus.check_capacity(5000)
    assert corpus._general_store.complete
    corpus.check_capacity(have)
    # a second corpus on the same settings reads the finished stores, tokenizing nothing
    monkeypatch.setattr(store_module, "read_records", no_reading)
    again = TextCorpus(general, repeated, tokenizer, n_repeated=4, n_validation=8,
                       max_tokens=30, min_tokens=8)
    assert again.general(have - 1).tolist() == corpus.general(have - 1).tolist()


def test_whole_general_documents_keep_their_length_and_their_cut_identity(tokenizer, tmp_path):
    long_story = " ".join(["the old fox ran far away"] * 20)  # far longer than 30 tokens
    stories = [long_story] + texts(8, 40)
    # the general source holds the long story again, then long and short documents of its own
    general = [long_story] + [" ".join([t] * 6) for t in texts(7, 300)]
    corpus = TextCorpus(write_jsonl(tmp_path / "web.jsonl", general),
                        write_jsonl(tmp_path / "stories.jsonl", stories), tokenizer,
                        n_repeated=4, n_validation=8, max_tokens=30, min_tokens=8,
                        general_max_tokens=None)
    assert len(corpus.repeated.tokens[0]) == 30  # R, H and V are cut for evaluation
    assert all(len(t) <= 30 for s in (corpus.heldout, corpus.validation) for t in s.tokens)
    lengths = [len(corpus.general(i)) for i in range(100)]
    assert max(lengths) > 30  # the stream keeps documents whole
    whole = tokenizer.encode_batch([general[0]])[0]
    assert len(whole) > 30
    # the long copy of R's first document is still recognised as it and left out
    assert all(corpus.general(i)[:30].tolist() != corpus.repeated.tokens[0].tolist()
               for i in range(len(corpus._general_positions(10**6))))
    cut = TextCorpus(corpus.general_source, corpus.repeated_source, tokenizer, n_repeated=4,
                     n_validation=8, max_tokens=30, min_tokens=8)
    assert cut.fingerprint() != corpus.fingerprint()
    assert [t.tolist() for t in cut.validation.tokens] == \
        [t.tolist() for t in corpus.validation.tokens]
    with pytest.raises(ValueError, match="general_max_tokens = 20 is below max_tokens"):
        TextCorpus(corpus.general_source, corpus.repeated_source, tokenizer, 4, 8,
                   max_tokens=30, general_max_tokens=20)
