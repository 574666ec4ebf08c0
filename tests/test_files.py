"""Files written whole or not at all."""

import pytest

from memsinks.files import atomic_write, replacing


def test_a_file_or_a_directory_replaces_the_old_one_in_one_rename(tmp_path):
    target = tmp_path / "results.json"
    atomic_write(target, "old")
    atomic_write(target, "new", durable=True)
    assert target.read_text() == "new"
    model = tmp_path / "model"
    for weights in ("old", "new"):
        with replacing(model) as tmp:
            tmp.mkdir()
            (tmp / "weights").write_text(weights)
    assert (model / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "results.json"]


def test_a_failed_write_leaves_the_old_content(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write(target, "finished")
    with pytest.raises(RuntimeError), replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "finished"
    with replacing(target) as tmp:  # the next writer starts afresh
        assert not tmp.exists()
        tmp.write_text("again")
    assert target.read_text() == "again"


def test_keep_leaves_what_another_process_made_first(tmp_path):
    cache = tmp_path / "tokenizer"
    with replacing(cache, unique=True, keep=True) as tmp:
        tmp.mkdir()
        (tmp / "tokenizer.json").write_text("first")
    with replacing(cache, unique=True, keep=True) as tmp:
        tmp.mkdir()
        (tmp / "tokenizer.json").write_text("second")
    assert (cache / "tokenizer.json").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer"]
