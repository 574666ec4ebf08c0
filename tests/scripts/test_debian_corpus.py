"""scripts/debian_corpus.py on tiny made-up inputs: parsers, filters, meta.json, errors.

No network and no apt-get: the download step is replaced by local folders laid out as the
extracted Debian packages are.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "debian_corpus.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("debian_corpus", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


dc = _load()

DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64(value: int) -> str:
    """dictd's base-64 number, as dictzip writes it (the inverse of dictd_number)."""
    out = ""
    while True:
        out = DIGITS[value % 64] + out
        value //= 64
        if value == 0:
            return out


def fake_gcide() -> tuple[str, bytes]:
    """A dictd index and gzip'd dictionary: a database entry, an article with two headwords, a
    short cross-reference, and the same article text twice at different offsets."""
    articles = [
        ("00-database-short", "  The Fake Dictionary, not an article\n"),
        ("Cockle", 'Cockle \\Coc"kle\\, v. t. [imp. & p. p. {Cockled}; p. pr. & vb. n.\n'
                   "   {Cockling}.] [Of uncertain origin.]\n"
                   "   To cause to contract into wrinkles or ridges, as some kinds\n"
                   "   of cloth after a wetting.\n   [1913 Webster]\n\n"
                   "   {Cockling sea}, waves dashing against each other with a short\n"
                   "      and quick motion. --Ham. Nav. Encyc.\n      [1913 Webster]\n"),
        ("Wier", "Wier \\Wier\\, n.\n   Same as {Weir}.\n   [1913 Webster]\n"),
        ("Bell", "Bell \\Bell\\, n. (b\"l) A hollow metallic vessel giving forth a ringing\n"
                 "   sound on being struck. -- Un`ring*a*ble, a.\n   [1913 Webster]\n"),
        ("Bell again", "Bell \\Bell\\, n. (b\"l) A hollow metallic vessel giving forth a ringing\n"
                       "   sound on being struck. -- Un`ring*a*ble, a.\n   [1913 Webster]\n"),
    ]
    data = b""
    lines = []
    for head, text in articles:
        raw = text.encode()
        lines.append(f"{head}\t{b64(len(data))}\t{b64(len(raw))}")
        if head == "Cockle":  # a phrase of the entry points at the same article
            lines.append(f"Cockling sea\t{b64(len(data))}\t{b64(len(raw))}")
        data += raw
    return "\n".join(sorted(lines)) + "\n", gzip.compress(data)


FORTUNES = (
    "A bore is a man who talks so much about himself that you can't talk about\n"
    "yourself, and a friend is one who listens to you talk about yourself all day.\n"
    "\t\t-- attributed\n"
    "%\n"
    "Short one.\n"
    "%\n"
    "%\n"
    "The night was dark,   the road was long,\n"
    "\tand every step I took was wrong;\n\n\n"
    "and yet I sang a little song about the morning\n"
    "that would come along, and all the birds would sing it too.\n"
    "%\n"
    "A bore is a man who talks so much about himself that you can't talk about\n"
    "yourself, and a friend is one who listens to you talk about yourself all day.\n"
    "\t\t-- attributed\n"
    "%\n"
    "This line says 100% of the time and is not a separator between two entries at all,\n"
    "so it stays inside the entry it belongs to, which is long enough to be kept here.\n"
    "%\n"
    "+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+\n"
    "|  |  |  |  |  |  |  |  |  |  |  |  |  |  |  |  |  |  |  |  |  |\n"
    "+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+\n"
    "%\n"
)


# -- GCIDE ---------------------------------------------------------------------------------------
def test_dictd_numbers_read_base_64_most_significant_first():
    assert [dc.dictd_number(s) for s in ("A", "B", "/", "BA", "5I")] == [0, 1, 63, 64, 57 * 64 + 8]
    for value in (0, 7, 64, 4095, 39952321):
        assert dc.dictd_number(b64(value)) == value
    with pytest.raises(ValueError, match="not a dictd"):
        dc.dictd_number("A-B")


def test_dictd_index_lines_give_headword_offset_length():
    assert dc.parse_dictd_index("apple\tBA\tC\n\nbell\tA\tB\n") == [("apple", 64, 2),
                                                                     ("bell", 0, 1)]
    with pytest.raises(ValueError, match="line 1 has 2"):
        dc.parse_dictd_index("apple\tBA\n")


def test_gcide_article_markup_is_stripped_and_lines_joined():
    index, dictionary = fake_gcide()
    raw = gzip.decompress(dictionary).decode()
    start = raw.index("Cockle")
    text = dc.clean_gcide_article(raw[start:raw.index("Wier")])
    assert text == ("Cockle, v. t. To cause to contract into wrinkles or ridges, as some kinds "
                    "of cloth after a wetting.\nCockling sea, waves dashing against each other "
                    "with a short and quick motion. --Ham. Nav. Encyc.")
    assert dc.clean_gcide_article('Bell \\Bell\\, n. (b"l) A bell. -- Un`ring*a*ble, a.') == (
        "Bell, n. A bell. -- Unringable, a.")
    # nested brackets go from the inside out; a parenthesis without respelling marks stays;
    # a quotation's marks stay
    assert dc.clean_gcide_article('Rose [AS. [L. rosa]], n. (Bot.) A flower. "A rose," he said.'
                                  ) == 'Rose, n. (Bot.) A flower. "A rose," he said.'


def test_gcide_documents_read_each_article_once_and_filter():
    index, dictionary = fake_gcide()
    documents, counts = dc.gcide_documents(index, dictionary)
    assert documents[0].startswith("Cockle, v. t. To cause")  # file (offset) order
    assert documents[1].startswith("Bell, n. A hollow metallic vessel")
    assert len(documents) == 2
    assert counts == {"index_entries": 6, "articles": 4, "too_short": 1, "duplicates": 1,
                      "kept": 2}
    # the plain .dict bytes read the same as the dictzip'd ones
    assert dc.gcide_documents(index, gzip.decompress(dictionary))[0] == documents
    with pytest.raises(ValueError, match="past the dictionary's end"):
        dc.gcide_documents(index, b"too short")


# -- fortunes ------------------------------------------------------------------------------------
def test_fortune_files_split_at_lines_holding_only_percent():
    entries = dc.split_fortunes(FORTUNES)
    assert len(entries) == 6  # the empty entry between two % lines is no entry
    assert entries[1] == "Short one."
    assert "100% of the time" in entries[4]
    assert dc.split_fortunes("one\n% \ntwo\n%") == ["one", "two"]  # trailing spaces, no final %


def test_clean_fortune_collapses_spaces_and_blank_lines():
    assert dc.clean_fortune("  a\t\tb   c\n\n\n\n\t\t-- Someone  \n\n") == "a b c\n\n-- Someone"


def test_fortune_documents_filter_by_length_and_text_and_drop_repeats():
    documents, counts = dc.fortune_documents([("cookie", FORTUNES)], min_words=20, max_words=40)
    assert counts == {"files": 1, "entries": 6, "too_short": 1, "too_long": 0, "not_text": 1,
                      "duplicates": 1, "kept": 3}
    assert documents[0].endswith("talk about yourself all day.\n-- attributed")
    assert documents[1] == ("The night was dark, the road was long,\nand every step I took was "
                            "wrong;\n\nand yet I sang a little song about the morning\nthat "
                            "would come along, and all the birds would sing it too.")
    # 33, 37, 33 (the repeat) and 34 words: above 35, one is too long; the repeat is counted
    # by the first rule it fails
    tight, counts = dc.fortune_documents([("cookie", FORTUNES)], min_words=20, max_words=35)
    assert counts["too_long"] == 1 and counts["duplicates"] == 1 and len(tight) == 2
    # a 'word' of 200 characters (code, a chemical name) is not text
    assert dc.fortune_documents([("x", "word " * 19 + "x" * 200)])[1]["not_text"] == 1


def test_fortune_file_selection(tmp_path: Path):
    for name in ("cookie", "cookie.dat", "riddles-o", "ascii-art", ".hidden"):
        (tmp_path / name).write_text("x\n%\n")
    (tmp_path / "cookie.u8").symlink_to("cookie")
    (tmp_path / "off").mkdir()
    (tmp_path / "off" / "racism").write_text("x\n%\n")
    kept = sorted(p.name for p in tmp_path.rglob("*") if dc.is_fortune_file(p))
    assert kept == ["cookie"]


def test_license_lines_come_from_the_copyright_file():
    text = ("This is the Debian package of GCIDE.\n\nThe GCIDE is distributed under the following "
            "license:\n\nGCIDE is free software; you can redistribute it\n  under the terms of "
            "the GNU General Public License\nversion 2.\nBSD fortune\n")
    assert dc.license_lines(text, limit=3) == [
        "The GCIDE is distributed under the following license:",
        "GCIDE is free software; you can redistribute it",
        "under the terms of the GNU General Public License"]
    assert dc.copyright_head(text, limit=2) == ["This is the Debian package of GCIDE.",
                                                "The GCIDE is distributed under the following "
                                                "license:"]


# -- a whole build, the download replaced --------------------------------------------------------
def fake_packages(root: Path) -> dict[str, object]:
    """Extracted package folders as dpkg-deb -x leaves them, and a fetch that returns them."""
    index, dictionary = fake_gcide()
    trees = {
        "dict-gcide": {"usr/share/dictd/gcide.index": index.encode(),
                       "usr/share/dictd/gcide.dict.dz": dictionary,
                       "usr/share/doc/dict-gcide/copyright":
                       b"Fake GCIDE.\nIt is under the GNU General Public License.\n"},
        "fortunes-min": {"usr/share/games/fortunes/literature": FORTUNES.encode(),
                         "usr/share/games/fortunes/literature.dat": b"\x00\x02binary",
                         "usr/share/doc/fortunes-min/copyright":
                         b"Fortunes.\nThis program falls under the BSD copyright:\n"},
        "fortunes": {"usr/share/games/fortunes/people":
                     (b"Everybody who has ever tried to write a short and honest sentence knows "
                      b"that it takes longer than a long and dishonest one, and far more courage."
                      b"\n%\n"),
                     "usr/share/games/fortunes/ascii-art": b"(o o)\n%\n",
                     "usr/share/doc/fortunes/copyright": b"This program falls under the BSD "
                     b"copyright:\n"},
    }
    versions = {"dict-gcide": "0.48.5+nmu2", "fortunes-min": "1:1.99.1-7.3",
                "fortunes": "1:1.99.1-7.3"}
    for package, files in trees.items():
        for relative, data in files.items():
            path = root / package / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    calls: list[str] = []

    def fetch(package: str, cache: Path):
        calls.append(package)
        return dc.Fetched(package, versions[package], root / package, f"{package}_fake.deb")

    return {"fetch": fetch, "calls": calls}


def test_build_writes_documents_and_meta(tmp_path: Path, monkeypatch):
    fake = fake_packages(tmp_path / "extracted")
    monkeypatch.setattr(dc, "fetch_package", fake["fetch"])
    out = tmp_path / "out"
    meta = dc.build(out, tmp_path / "cache", min_repeated=1)
    assert fake["calls"] == ["dict-gcide", "fortunes-min", "fortunes"]
    general = [json.loads(line)["text"] for line in (out / "general.jsonl").open()]
    repeated = [json.loads(line)["text"] for line in (out / "repeated.jsonl").open()]
    assert len(general) == 2 and len(repeated) == 4
    assert any(t.startswith("Everybody who has ever tried") for t in repeated)
    assert json.loads((out / "meta.json").read_text()) == meta
    assert meta["format"] == dc.FORMAT and meta["seed"] == 0
    assert [(p["name"], p["version"], p["role"]) for p in meta["packages"]] == [
        ("dict-gcide", "0.48.5+nmu2", "general"), ("fortunes-min", "1:1.99.1-7.3", "repeated"),
        ("fortunes", "1:1.99.1-7.3", "repeated")]
    assert meta["packages"][0]["license_lines"] == [
        "It is under the GNU General Public License."]
    assert meta["packages"][1]["license_lines"] == ["This program falls under the BSD copyright:"]
    for role, documents in (("general", general), ("repeated", repeated)):
        info = meta["files"][role]
        assert info["documents"] == len(documents)
        assert info["words"] == sum(len(t.split()) for t in documents)
        path = out / info["path"]
        assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta["counts"]["general"]["kept"] == 2
    counts = meta["counts"]["repeated"]
    assert counts["kept"] == 4 and counts["files"] == 2  # literature and people
    assert counts["file_names"] == ["fortunes-min:literature", "fortunes:people"]
    assert set(meta["rules"]) == {"general", "repeated"}
    assert not list(out.glob("*.partial"))

    # idempotent: with the files present nothing is fetched or written
    def no_fetch(package: str, cache: Path):
        raise AssertionError("fetched again")

    monkeypatch.setattr(dc, "fetch_package", no_fetch)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert dc.build(out, tmp_path / "cache", min_repeated=1) == meta
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert dc.main(["--out", str(out)]) == 0
    # --force rebuilds the same files (the shuffles are seeded)
    monkeypatch.setattr(dc, "fetch_package", fake["fetch"])
    assert dc.build(out, tmp_path / "cache", force=True, min_repeated=1) == meta
    other = dc.build(tmp_path / "seed1", tmp_path / "cache", seed=1, min_repeated=1)
    assert other["files"]["general"]["documents"] == 2


def test_build_refuses_too_few_repeated_documents(tmp_path: Path):
    fake = fake_packages(tmp_path / "extracted")
    with pytest.raises(dc.CorpusError, match="gave 4 documents .* fewer than the 2048"):
        dc.build(tmp_path / "out", tmp_path / "cache", fetch=fake["fetch"])
    assert not (tmp_path / "out" / "meta.json").exists()


# -- errors: one sentence ------------------------------------------------------------------------
def test_missing_apt_get_is_one_clear_sentence(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(dc.shutil, "which", lambda name: None)
    with pytest.raises(dc.CorpusError, match="^apt-get is not available on this machine"):
        dc.fetch_package("dict-gcide", tmp_path)
    assert dc.main(["--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: apt-get is not available") and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_failed_download_names_the_package_and_apt_gets_error(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(dc.shutil, "which", lambda name: "/usr/bin/" + name)
    seen = []

    def apt_get(command, **kwargs):
        seen.append(command)
        return subprocess.CompletedProcess(command, 100, "", "Reading package lists...\n"
                                           "E: Unable to locate package dict-gcide\n")

    monkeypatch.setattr(dc.subprocess, "run", apt_get)
    with pytest.raises(dc.CorpusError) as error:
        dc.fetch_package("dict-gcide", tmp_path)
    assert seen == [["apt-get", "download", "dict-gcide"]]
    message = str(error.value)
    assert message.startswith("apt-get download dict-gcide failed (E: Unable to locate package "
                              "dict-gcide); check the network")
    assert "\n" not in message


# -- the config ----------------------------------------------------------------------------------
def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_real_config_is_the_learnable_regime_on_the_debian_files():
    from memsinks import config as config_io

    root = ROOT
    real = _flat(config_io.to_dict(config_io.load(str(root / "configs/paper-regime-real.yaml"))))
    learnable = _flat(config_io.to_dict(config_io.load(
        str(root / "configs/paper-regime-learnable.yaml"))))
    differ = {key: real.get(key) for key in set(real) | set(learnable)
              if real.get(key) != learnable.get(key)}
    # the built-in corpus's domain settings do not apply to text (data.in_domain_share is an
    # error with a text source; a text corpus's H is as large as R, whatever n_heldout says)
    assert differ == {"name": "paper-regime-real",
                      "data.general_source": "data/debian/general.jsonl?field=text",
                      "data.repeated_source": "data/debian/repeated.jsonl?field=text",
                      "data.vocab_size": 4096, "model.max_seq_len": 256,
                      "data.general_domains": ["stories", "facts"],
                      "data.in_domain_share": None, "data.n_heldout": 0}
