"""Build a real-text corpus for the paper's regime from Debian packages, at run time.

    python scripts/debian_corpus.py [--out data/debian] [--cache DIR] [--seed 0] [--force]

Why: the paper's regime (``configs/paper-regime-learnable.yaml``) needs a general stream of one
genre and a repeated set R with held-out twins H of another genre. These machines reach no model
or data hub, but they do reach Debian's package archive, which ships public-domain and freely
licensed text. This script fetches that text with ``apt-get download`` and writes:

- ``general.jsonl``: the general stream, the articles of GCIDE (package ``dict-gcide``: the GNU
  Collaborative International Dictionary of English, mostly Webster's Revised Unabridged
  Dictionary of 1913, public domain, the compilation under the GPL), one article per document,
  the dictd markup stripped.
- ``repeated.jsonl``: R and H, quotations, aphorisms and short poems from the BSD fortune files
  (packages ``fortunes`` and ``fortunes-min``), one entry per document, kept when 20 to 120
  words long, exact repeats dropped.
- ``meta.json``: the packages, their versions and license statements, the document counts and
  the rules below; written last, so its presence means the build finished.

Both jsonl files hold ``{"text": ...}`` per line (the memsinks source spec is
``data/debian/general.jsonl?field=text``). Documents are shuffled with a fixed seed: the
dictionary is alphabetical and the fortune files are sorted by topic, while memsinks reads a
source in order (V and the general stream from the start, R then H from the start), so without
the shuffle the stream would move from A to Z during training and H would hold other topics
than R.

Nothing here is committed: the output folder (default ``data/debian``, git-ignored) and the
cache of downloaded packages (default ``$MEMSINKS_CACHE/debian``, else
``~/.cache/memsinks/debian``) are built on each machine. Rerunning with the outputs present does
nothing (``--force`` rebuilds; downloaded packages are reused). Needs ``apt-get`` and
``dpkg-deb`` (a Debian or Ubuntu machine) and the archive's network; ``apt-get download`` needs
no root (as root it warns that it ran unsandboxed, which is harmless).

The parsing functions (:func:`parse_dictd_index`, :func:`clean_gcide_article`,
:func:`gcide_documents`, :func:`split_fortunes`, :func:`clean_fortune`,
:func:`fortune_documents`, :func:`license_lines`) are pure: they take text or bytes and return
documents, so they are tested on small made-up inputs (``tests/test_debian_corpus.py``).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

FORMAT = 1  # bump when the rules below change (meta.json records it)
GENERAL_PACKAGES = ("dict-gcide",)
REPEATED_PACKAGES = ("fortunes-min", "fortunes")
GCIDE_DIR = "usr/share/dictd"
FORTUNE_DIR = "usr/share/games/fortunes"
# fortune files that are not natural language (pictures drawn in characters)
EXCLUDED_FORTUNE_FILES = frozenset({"ascii-art"})
GENERAL_MIN_WORDS = 8  # shorter articles are cross-references ("Same as Weir.")
REPEATED_MIN_WORDS = 20
REPEATED_MAX_WORDS = 120
MIN_LETTER_SHARE = 0.6  # of an entry's non-space characters; below it, a drawing or a table
MAX_CHARS_PER_WORD = 10.0  # an entry's characters per word; above it, code, a URL or a protein
# R and H of the real-text config: memsinks takes R's n_repeated = 1,024 distinct documents from
# the repeated source and H as the next 1,024 (a text corpus's H is as large as R)
DEFAULT_MIN_REPEATED = 2048
RULES = {
    "general": (
        "dict-gcide: every distinct article (offset and length) of gcide.index, except the "
        "00-database-* entries; dictd markup stripped: [bracketed] etymologies, labels and "
        "source tags such as [1913 Webster] removed, \\pronunciations\\, respellings in "
        "parentheses such as (k?r\"?-n?t) and syllable marks (Un`ap*peal\"a*bly) removed, "
        "{cross-reference} braces dropped (their words kept), each paragraph's wrapped lines "
        "joined, paragraphs separated by a newline; kept when at least "
        f"{GENERAL_MIN_WORDS} words; exact repeats dropped; shuffled (random.Random('SEED/"
        "general'))"),
    "repeated": (
        "fortunes, fortunes-min: every file under usr/share/games/fortunes except .dat index "
        "files, .u8 links, offensive (-o, off/) files and "
        f"{', '.join(sorted(EXCLUDED_FORTUNE_FILES))}; entries split at lines holding only '%'; "
        "each line's runs of spaces and tabs collapsed to one space, runs of blank lines to "
        f"one; attribution lines kept; kept when {REPEATED_MIN_WORDS} to {REPEATED_MAX_WORDS} "
        f"words, at least {MIN_LETTER_SHARE:.0%} of the non-space characters are letters and "
        f"at most {MAX_CHARS_PER_WORD:g} characters per word (else 'not_text'); "
        "exact repeats dropped; shuffled (random.Random('SEED/repeated'))"),
}


class CorpusError(RuntimeError):
    """A build step failed; the message is one sentence saying what and what to do."""


# -- GCIDE (dictd) -------------------------------------------------------------------------------
_DICTD_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_DICTD_VALUE = {c: i for i, c in enumerate(_DICTD_DIGITS)}


def dictd_number(text: str) -> int:
    """A dictd index number: base 64, most significant digit first, digits A-Z a-z 0-9 + /."""
    if not text:
        raise ValueError("an empty dictd number")
    value = 0
    for char in text:
        if char not in _DICTD_VALUE:
            raise ValueError(f"{text!r} is not a dictd base-64 number")
        value = value * 64 + _DICTD_VALUE[char]
    return value


def parse_dictd_index(text: str) -> list[tuple[str, int, int]]:
    """(headword, byte offset, byte length) of each line of a dictd ``.index`` file."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 3:
            raise ValueError(f"dictd index line {number} has {len(parts)} tab-separated fields, "
                             "not 3 (headword, offset, length)")
        entries.append((parts[0], dictd_number(parts[1]), dictd_number(parts[2])))
    return entries


_BRACKETED = re.compile(r"\[[^\[\]]*\]")  # innermost first, so nested brackets go too
_PRONUNCIATION = re.compile(r"\\[^\\]{0,80}\\")  # \Coc"kle\ (may wrap to the next line)
# a short parenthesis with respelling marks: "(k?r"?-n?t)", "(-*b'l)", and "(?)", "(?; 135)"
_PAREN_PRONUNCIATION = re.compile(r"\((?=[^()]{0,40}\))(?=[^()]*(?:[*`?]|\w\"))[^()]*\)")
# syllable and stress marks inside a word: Un`ap*peal"a*bly
_WORD_MARKS = re.compile(r"`|(?<=\w)[*\"](?=\w)")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
_PARAGRAPH = re.compile(r"\n\s*\n")


def clean_gcide_article(raw: str) -> str:
    """One GCIDE article as plain text: markup and source tags out, wrapped lines joined.

    ``Cockle \\Coc"kle\\, v. t. [imp. & p. p. {Cockled}.] ... [1913 Webster]`` becomes
    ``Cockle, v. t. ...``: what is left is the definitions and quotations as running text,
    which is what a language model should learn from a dictionary.
    """
    text = raw
    while True:  # nested brackets: remove the innermost until none is left
        stripped = _BRACKETED.sub("", text)
        if stripped == text:
            break
        text = stripped
    text = _PRONUNCIATION.sub("", text)
    text = _PAREN_PRONUNCIATION.sub("", text)
    text = _WORD_MARKS.sub("", text)
    text = text.replace("{", "").replace("}", "")
    paragraphs = []
    for paragraph in _PARAGRAPH.split(text):
        joined = " ".join(paragraph.split())
        joined = _SPACE_BEFORE_PUNCT.sub(r"\1", joined)
        if joined:
            paragraphs.append(joined)
    return "\n".join(paragraphs)


def _decode(data: bytes) -> str:
    """UTF-8, or Windows-1252 for the few legacy bytes (GCIDE holds a stray 0x92 apostrophe)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def gcide_documents(index_text: str, dictionary: bytes,
                    min_words: int = GENERAL_MIN_WORDS) -> tuple[list[str], dict[str, int]]:
    """The cleaned articles of a dictd dictionary, in file order, and counts of what was dropped.

    ``dictionary`` is the ``.dict`` file's bytes, or the ``.dict.dz`` bytes (dictzip is gzip
    with an index in the header, so gzip reads it). Many headwords point at one article (every
    phrase of an entry does); each article is read once.
    """
    if dictionary[:2] == b"\x1f\x8b":
        dictionary = gzip.decompress(dictionary)
    entries = parse_dictd_index(index_text)
    spans = sorted({(offset, length) for head, offset, length in entries
                    if not head.startswith("00-")})
    documents: list[str] = []
    seen: set[str] = set()
    short = duplicates = 0
    for offset, length in spans:
        if offset + length > len(dictionary):
            raise ValueError(f"dictd index points past the dictionary's end (offset {offset}, "
                             f"length {length}, {len(dictionary)} bytes); index and dictionary "
                             "do not belong together")
        text = clean_gcide_article(_decode(dictionary[offset:offset + length]))
        if len(text.split()) < min_words:
            short += 1
        elif text in seen:
            duplicates += 1
        else:
            seen.add(text)
            documents.append(text)
    counts = {"index_entries": len(entries), "articles": len(spans), "too_short": short,
              "duplicates": duplicates, "kept": len(documents)}
    return documents, counts


# -- fortunes ------------------------------------------------------------------------------------
def split_fortunes(text: str) -> list[str]:
    """The entries of a fortune file: the text between lines that hold only ``%``."""
    entries, current = [], []
    for line in text.splitlines():
        if line.rstrip() == "%":
            entries.append("\n".join(current))
            current = []
        else:
            current.append(line)
    entries.append("\n".join(current))
    return [entry.strip("\n") for entry in entries if entry.strip()]


def clean_fortune(entry: str) -> str:
    """An entry with each line's spaces and tabs collapsed and at most one blank line in a row.

    The files indent attributions with tabs and align verse with spaces; collapsed, the text
    keeps its lines (verse stays verse) without spending tokens on layout.
    """
    lines: list[str] = []
    for line in entry.splitlines():
        line = " ".join(line.split())
        if line or (lines and lines[-1]):
            lines.append(line)
    return "\n".join(lines).strip()


def _letter_share(text: str) -> float:
    visible = [c for c in text if not c.isspace()]
    return sum(c.isalpha() for c in visible) / len(visible) if visible else 0.0


def fortune_documents(files: Iterable[tuple[str, str]], min_words: int = REPEATED_MIN_WORDS,
                      max_words: int = REPEATED_MAX_WORDS,
                      min_letter_share: float = MIN_LETTER_SHARE,
                      max_chars_per_word: float = MAX_CHARS_PER_WORD,
                      ) -> tuple[list[str], dict[str, int]]:
    """Kept entries of fortune files given as (name, text), in order, and counts per rule.

    An entry is kept when it has ``min_words`` to ``max_words`` words (short one-liners teach
    little and long ones would not fit the model's context) and looks like prose or verse:
    enough letters (not a drawing) and short enough words (not code, a URL or a 1,000-token
    chemical name); exact repeats (the same quote in two files) are dropped.
    """
    documents: list[str] = []
    seen: set[str] = set()
    counts = {"files": 0, "entries": 0, "too_short": 0, "too_long": 0, "not_text": 0,
              "duplicates": 0}
    for _, text in files:
        counts["files"] += 1
        for entry in split_fortunes(text):
            counts["entries"] += 1
            cleaned = clean_fortune(entry)
            words = len(cleaned.split())
            if words < min_words:
                counts["too_short"] += 1
            elif words > max_words:
                counts["too_long"] += 1
            elif (_letter_share(cleaned) < min_letter_share
                  or len(cleaned) > max_chars_per_word * words):
                counts["not_text"] += 1
            elif cleaned in seen:
                counts["duplicates"] += 1
            else:
                seen.add(cleaned)
                documents.append(cleaned)
    counts["kept"] = len(documents)
    return documents, counts


def is_fortune_file(path: Path) -> bool:
    """A fortune text file: not a ``.dat`` index, ``.u8`` link, offensive or excluded file."""
    name = path.name
    return (path.is_file() and not path.is_symlink() and not name.startswith(".")
            and not name.endswith((".dat", ".u8", "-o")) and "off" not in path.parts
            and name not in EXCLUDED_FORTUNE_FILES)


# -- packages ------------------------------------------------------------------------------------
_LICENSE_WORDS = re.compile(r"licen[cs]e|\bBSD\b|public domain|free software", re.IGNORECASE)


def license_lines(copyright_text: str, limit: int = 4) -> list[str]:
    """The first ``limit`` lines of a Debian copyright file that state a license."""
    found = []
    for line in copyright_text.splitlines():
        if _LICENSE_WORDS.search(line):
            found.append(" ".join(line.split()))
            if len(found) == limit:
                break
    return found


def copyright_head(copyright_text: str, limit: int = 8) -> list[str]:
    """The first ``limit`` non-empty lines of a copyright file, whitespace collapsed."""
    lines = [" ".join(line.split()) for line in copyright_text.splitlines()]
    return [line for line in lines if line][:limit]


@dataclass
class Fetched:
    """A downloaded and extracted package: its version and the folder it was extracted into."""

    package: str
    version: str
    root: Path
    deb: str = ""  # the .deb file's name

    def read_text(self, relative: str) -> str:
        return _decode((self.root / relative).read_bytes())


def _run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise CorpusError(f"{command[0]} is not available on this machine; this script needs a "
                          "Debian or Ubuntu system with apt-get and dpkg-deb and access to "
                          "its package archive") from None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("E:")]
    return (errors or lines or ["no message"])[-1]


def fetch_package(package: str, cache: Path) -> Fetched:
    """Download ``package`` with ``apt-get download`` into ``cache/debs`` (once) and extract it
    into ``cache/root/<package>`` with ``dpkg-deb -x`` (once)."""
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        if shutil.which("apt-get") is None:
            raise CorpusError(f"apt-get is not available on this machine, so {package} cannot "
                              "be downloaded; run this script on a Debian or Ubuntu system with "
                              f"access to its package archive, or put {package}'s .deb file in "
                              f"{debs}")
        result = _run(["apt-get", "download", package], cwd=debs)
        found = sorted(debs.glob(f"{package}_*.deb"))
        if result.returncode != 0 or not found:
            raise CorpusError(f"apt-get download {package} failed ({_last_line(result.stderr)}); "
                              "check the network and that the package exists in this "
                              f"release (apt-cache policy {package}), then rerun")
    deb = found[-1]
    version = _run(["dpkg-deb", "-f", str(deb), "Version"])
    if version.returncode != 0:
        raise CorpusError(f"dpkg-deb cannot read {deb} ({_last_line(version.stderr)}); delete "
                          "it and rerun to download it again")
    root = cache / "root" / package
    marker = root / ".extracted"
    if not (marker.is_file() and marker.read_text() == deb.name):  # not yet, or another .deb
        partial = root.with_name(f"{package}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.parent.mkdir(parents=True, exist_ok=True)
        extracted = _run(["dpkg-deb", "-x", str(deb), str(partial)])
        if extracted.returncode != 0:
            raise CorpusError(f"dpkg-deb -x {deb} failed ({_last_line(extracted.stderr)}); delete "
                              "it and rerun to download it again")
        (partial / ".extracted").write_text(deb.name)
        shutil.rmtree(root, ignore_errors=True)
        partial.rename(root)
    return Fetched(package, version.stdout.strip(), root, deb.name)


# -- the build -----------------------------------------------------------------------------------
@dataclass
class Outputs:
    """The files a build writes into its folder."""

    folder: Path
    general: Path = field(init=False)
    repeated: Path = field(init=False)
    meta: Path = field(init=False)

    def __post_init__(self) -> None:
        self.general = self.folder / "general.jsonl"
        self.repeated = self.folder / "repeated.jsonl"
        self.meta = self.folder / "meta.json"

    def complete(self) -> bool:
        return all(p.is_file() for p in (self.general, self.repeated, self.meta))


def _write_jsonl(path: Path, documents: list[str]) -> str:
    """Write one ``{"text": ...}`` per line atomically; the file's SHA-256."""
    digest = hashlib.sha256()
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", encoding="utf-8") as handle:
        for text in documents:
            line = json.dumps({"text": text}, ensure_ascii=False) + "\n"
            digest.update(line.encode("utf-8"))
            handle.write(line)
    partial.replace(path)
    return digest.hexdigest()


def _package_meta(fetched: Fetched, role: str) -> dict:
    path = fetched.root / "usr/share/doc" / fetched.package / "copyright"
    text = fetched.read_text(str(path.relative_to(fetched.root))) if path.is_file() else ""
    return {"name": fetched.package, "version": fetched.version, "deb": fetched.deb,
            "role": role, "license_lines": license_lines(text),
            "copyright_head": copyright_head(text)}


def build(out: Path, cache: Path, seed: int = 0, force: bool = False,
          min_repeated: int = DEFAULT_MIN_REPEATED,
          fetch: Callable[[str, Path], Fetched] | None = None) -> dict:
    """Build the corpus into ``out`` (nothing when it is there and not ``force``); its meta.

    ``fetch`` (default :func:`fetch_package`) gets a package's extracted files; tests pass one
    that returns local folders.
    """
    outputs = Outputs(Path(out))
    if outputs.complete() and not force:
        return json.loads(outputs.meta.read_text())
    fetch = fetch or fetch_package
    general_pkgs = [fetch(name, cache) for name in GENERAL_PACKAGES]
    repeated_pkgs = [fetch(name, cache) for name in REPEATED_PACKAGES]

    gcide = general_pkgs[0]
    index_path = f"{GCIDE_DIR}/gcide.index"
    dict_path = f"{GCIDE_DIR}/gcide.dict.dz"
    for relative in (index_path, dict_path):
        if not (gcide.root / relative).is_file():
            raise CorpusError(f"{gcide.package} {gcide.version} has no {relative}; this script "
                              "expects the dictd layout of Debian 12's dict-gcide")
    general, general_counts = gcide_documents(gcide.read_text(index_path),
                                              (gcide.root / dict_path).read_bytes())
    files = []
    for fetched in repeated_pkgs:
        folder = fetched.root / FORTUNE_DIR
        for path in sorted(folder.rglob("*")) if folder.is_dir() else ():
            if is_fortune_file(path):
                files.append((f"{fetched.package}:{path.relative_to(folder)}",
                              _decode(path.read_bytes())))
    repeated, repeated_counts = fortune_documents(files)
    if len(repeated) < min_repeated:
        raise CorpusError(f"the fortune files gave {len(repeated)} documents after filtering, "
                          f"fewer than the {min_repeated} that R and H need; the packages "
                          "changed, so loosen the length rules or add a package")
    random.Random(f"{seed}/general").shuffle(general)
    random.Random(f"{seed}/repeated").shuffle(repeated)

    outputs.folder.mkdir(parents=True, exist_ok=True)
    outputs.meta.unlink(missing_ok=True)  # meta.json is the commit record: written last
    meta = {
        "format": FORMAT,
        "script": "scripts/debian_corpus.py",
        "seed": seed,
        "packages": [_package_meta(p, "general") for p in general_pkgs]
        + [_package_meta(p, "repeated") for p in repeated_pkgs],
        "files": {
            "general": {"path": outputs.general.name, "documents": len(general),
                        "words": sum(len(t.split()) for t in general),
                        "sha256": _write_jsonl(outputs.general, general)},
            "repeated": {"path": outputs.repeated.name, "documents": len(repeated),
                         "words": sum(len(t.split()) for t in repeated),
                         "sha256": _write_jsonl(outputs.repeated, repeated)},
        },
        "counts": {"general": general_counts,
                   "repeated": {**repeated_counts, "file_names": [n for n, _ in files]}},
        "rules": RULES,
    }
    partial = outputs.meta.with_name("meta.json.partial")
    partial.write_text(json.dumps(meta, indent=2) + "\n")
    partial.replace(outputs.meta)
    return meta


def default_cache() -> Path:
    """``$MEMSINKS_CACHE/debian``, else ``~/.cache/memsinks/debian``: next to the token stores."""
    return Path(os.environ.get("MEMSINKS_CACHE", "~/.cache/memsinks")).expanduser() / "debian"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/debian"),
                        help="output folder (default data/debian, relative to the working "
                        "directory: run from the repository root, where the config reads it)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="downloaded and extracted packages (default $MEMSINKS_CACHE/debian "
                        "or ~/.cache/memsinks/debian)")
    parser.add_argument("--seed", type=int, default=0, help="the shuffles' seed")
    parser.add_argument("--force", action="store_true", help="rebuild even if the files exist")
    args = parser.parse_args(argv)
    outputs = Outputs(args.out)
    if outputs.complete() and not args.force:
        print(f"{args.out}: already built (meta.json present); nothing to do (--force rebuilds)")
        return 0
    try:
        meta = build(args.out, args.cache or default_cache(), seed=args.seed, force=args.force)
    except CorpusError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for role, info in meta["files"].items():
        print(f"{args.out / info['path']}: {info['documents']:,} {role} documents, "
              f"{info['words']:,} words")
    for package in meta["packages"]:
        print(f"  {package['name']} {package['version']} ({package['role']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
