"""Real text for the training stream: document readers, tokenizers, and a two-source corpus.

A *source spec* names where documents come from; options follow a ``?`` as ``key=value`` pairs
joined by ``&`` (values may be %-encoded):

- ``path/data.txt``: one document per non-empty line. ``?split=blank``: paragraphs separated
  by blank lines; ``?split=file``: the whole file is one document; ``?sep=<|endoftext|>``:
  documents separated by that literal string (TinyStories' own text files).
- ``path/data.jsonl``: one JSON object per line, its ``text`` field; ``?field=story`` picks
  another field.
- ``path/data.parquet``: the ``text`` column (``?field=NAME``), read one row-group batch at a
  time.
- ``.gz`` and ``.zst`` after ``.txt`` or ``.jsonl`` are decompressed while reading (``.zst``
  needs the ``zstandard`` package). ``?format=txt|jsonl|parquet`` reads a file whatever its
  extension.
- a directory (every supported file below it) or a glob (``data/*.jsonl``, ``**`` recurses;
  ``?`` is not a wildcard, it starts the options): files in sorted path order, the options
  applying to each file.
- ``hf:owner/name``: a Hugging Face hub dataset, streamed with ``datasets.load_dataset``;
  options ``split`` (default ``train``), ``field`` (default ``text``), ``config``,
  ``data_dir``, ``revision``. Needs ``pip install 'memsinks[hub]'``.

Every reader strips each document of leading and trailing whitespace and skips empty ones;
``skip`` and ``limit`` count the remaining (non-empty) documents. Text files are decoded as
UTF-8 with undecodable bytes replaced, so one bad byte does not stop a long run.
:func:`read_records` also returns other fields of each document's record (JSON lines, parquet
columns, hub rows); text files have none.
"""

from __future__ import annotations

import glob as globlib
import gzip
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

import numpy as np

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")  # ids 0..3 in a trained tokenizer
FORMATS = ("txt", "jsonl", "parquet")
_EXTENSIONS = {".txt": "txt", ".jsonl": "jsonl", ".parquet": "parquet"}
_COMPRESSIONS = (".gz", ".zst")
_FILE_OPTIONS = ("split", "sep", "field", "format")
_TXT_SPLITS = ("line", "blank", "file")
_HUB_OPTIONS = ("split", "field", "config", "data_dir", "revision")
_HUB_INSTALL = "pip install 'memsinks[hub]'"
_SUPPORTED = ".txt, .jsonl (either optionally .gz or .zst) and .parquet"
_NO_FIELDS: tuple[Any, ...] = ()
# a reader yields (raw text, values of the requested fields); text files have no fields
_Record = tuple[str, tuple[Any, ...]]


# -- source specs --------------------------------------------------------------------------------
def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split a source spec into its target (path, glob or ``hf:name``) and its options."""
    target, _, query = spec.partition("?")
    options: dict[str, str] = {}
    for pair in query.split("&") if query else ():
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise ValueError(f"data source {spec!r}: option {pair!r} is not key=value; write "
                             "options as path?key=value&key=value")
        options[key] = unquote(value)
    if not target:
        raise ValueError(f"data source {spec!r} names no file, directory or hf: dataset")
    return target, options


def _check_options(spec: str, options: dict[str, str], valid: tuple[str, ...]) -> None:
    for key in options:
        if key not in valid:
            raise ValueError(f"data source {spec!r}: unknown option {key!r}; valid options here: "
                             f"{', '.join(valid)}")


def _file_format(spec: str, path: Path, forced: str | None) -> tuple[str, str]:
    """(format, compression) of a file from its name, or ``forced`` format."""
    name = path.name.lower()
    compression = next((c for c in _COMPRESSIONS if name.endswith(c)), "")
    stem = name[: len(name) - len(compression)]
    fmt = forced or _EXTENSIONS.get(os.path.splitext(stem)[1])
    if fmt is None or (fmt == "parquet" and compression):
        raise ValueError(f"data source {spec!r}: cannot read {path.name!r}; supported files are "
                         f"{_SUPPORTED}, or add ?format=txt|jsonl|parquet")
    return fmt, compression


def _is_supported(path: Path) -> bool:
    try:
        _file_format("", path, None)
    except ValueError:
        return False
    return True


def _resolve_files(spec: str, target: str, forced: str | None) -> list[Path]:
    """The files a local spec names, in sorted order."""
    def eligible(p: Path) -> bool:
        return p.is_file() and not p.name.startswith(".") and (forced or _is_supported(p))

    if any(ch in target for ch in "*["):
        files = sorted(p for p in map(Path, globlib.glob(target, recursive=True)) if eligible(p))
        if not files:
            raise FileNotFoundError(f"data source {spec!r}: no {_SUPPORTED} files match "
                                    f"{target!r}; check the pattern")
        return files
    path = Path(target).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if eligible(p))
        if not files:
            raise ValueError(f"data source {spec!r}: directory {str(path)!r} holds no "
                             f"{_SUPPORTED} files; point it at a data file or add ?format=")
        return files
    if not path.exists():
        raise FileNotFoundError(f"data source {spec!r} does not exist; check the path (a hub "
                                "dataset is written hf:owner/name)")
    _file_format(spec, path, forced)
    return [path]


# -- readers -------------------------------------------------------------------------------------
def _open_text(spec: str, path: Path, compression: str) -> IO[str]:
    if compression == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    if compression == ".zst":
        try:
            import zstandard
        except ImportError:
            raise ImportError(f"data source {spec!r}: reading .zst files needs the zstandard "
                              "package; pip install zstandard") from None
        raw = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)
        return io.TextIOWrapper(raw, encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _read_txt(spec: str, path: Path, compression: str, options: dict[str, str],
              fields: tuple[str, ...]) -> Iterator[_Record]:
    for text in _txt_documents(spec, path, compression, options):
        yield text, _NO_FIELDS


def _txt_documents(spec: str, path: Path, compression: str,
                   options: dict[str, str]) -> Iterator[str]:
    with _open_text(spec, path, compression) as f:
        sep = options.get("sep")
        split = options.get("split", "line")
        if sep:
            pending = ""
            while chunk := f.read(1 << 20):
                *done, pending = (pending + chunk).split(sep)
                yield from done
            yield pending
        elif split == "line":
            yield from f
        elif split == "blank":
            paragraph: list[str] = []
            for line in f:
                if line.strip():
                    paragraph.append(line)
                elif paragraph:
                    yield "".join(paragraph)
                    paragraph = []
            yield "".join(paragraph)
        else:
            yield f.read()


def _read_jsonl(spec: str, path: Path, compression: str, options: dict[str, str],
                fields: tuple[str, ...]) -> Iterator[_Record]:
    key = options.get("field", "text")
    with _open_text(spec, path, compression) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"data source {spec!r}: line {number} of {str(path)!r} is not "
                                 "valid JSON; each line must be one JSON object") from None
            where = f"line {number} of {str(path)!r}"
            yield _field(spec, record, key, where), _extras(record, fields)


def _field(spec: str, record: Any, key: str, where: str) -> str:
    if not isinstance(record, dict):
        raise ValueError(f"data source {spec!r}: {where} is not a JSON object with a {key!r} "
                         "field")
    if key not in record:
        raise ValueError(f"data source {spec!r}: {where} has no field {key!r} (it has "
                         f"{', '.join(map(repr, record)) or 'none'}); choose one with ?field=NAME")
    value = record[key]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"data source {spec!r}: field {key!r} of {where} holds "
                         f"{type(value).__name__}, not text; choose a text field with ?field=")
    return value


def _extras(record: dict[str, Any], fields: tuple[str, ...]) -> tuple[Any, ...]:
    # a record without an optional field (a missing url) is data, not a mistake: None
    return tuple(record.get(name) for name in fields) if fields else _NO_FIELDS


def _read_parquet(spec: str, path: Path, compression: str, options: dict[str, str],
                  fields: tuple[str, ...]) -> Iterator[_Record]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(f"data source {spec!r}: reading .parquet files needs pyarrow; "
                          "pip install pyarrow") from None
    column = options.get("field", "text")
    parquet = pq.ParquetFile(path)
    schema = parquet.schema_arrow
    if column not in schema.names:
        raise ValueError(f"data source {spec!r}: {str(path)!r} has no column {column!r} (it has "
                         f"{', '.join(map(repr, schema.names))}); choose one with ?field=NAME")
    missing = [name for name in fields if name not in schema.names]
    if missing:
        raise ValueError(f"data source {spec!r}: {str(path)!r} has no column "
                         f"{', '.join(map(repr, missing))} for fields (it has "
                         f"{', '.join(map(repr, schema.names))}); ask only for columns it has")
    kind = schema.field(column).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)
            or (hasattr(pa.types, "is_string_view") and pa.types.is_string_view(kind))):
        raise ValueError(f"data source {spec!r}: column {column!r} of {str(path)!r} holds {kind}, "
                         "not text; choose a text column with ?field=")
    try:
        for batch in parquet.iter_batches(batch_size=1024, columns=[column, *fields]):
            columns = [batch.column(i).to_pylist() for i in range(1, 1 + len(fields))]
            for row, value in enumerate(batch.column(0).to_pylist()):
                yield value or "", tuple(c[row] for c in columns) if fields else _NO_FIELDS
    finally:
        parquet.close()


_READERS = {"txt": _read_txt, "jsonl": _read_jsonl, "parquet": _read_parquet}


def _local_source(spec: str, target: str, options: dict[str, str],
                  fields: tuple[str, ...]) -> Callable[[], Iterator[_Record]]:
    _check_options(spec, options, _FILE_OPTIONS)
    forced = options.get("format")
    if forced is not None and forced not in FORMATS:
        raise ValueError(f"data source {spec!r}: format={forced!r}; use one of "
                         f"{', '.join(FORMATS)}")
    if options.get("split", "line") not in _TXT_SPLITS:
        raise ValueError(f"data source {spec!r}: split={options['split']!r}; text files split "
                         f"by {', '.join(_TXT_SPLITS)} (or ?sep=STRING)")
    if options.get("sep") == "":
        raise ValueError(f"data source {spec!r}: sep is empty; give the separator string")
    files = _resolve_files(spec, target, forced)
    if fields:
        plain = [p.name for p in files if _file_format(spec, p, forced)[0] == "txt"]
        if plain:
            raise ValueError(f"data source {spec!r}: text file {plain[0]!r} has no fields to "
                             f"read {', '.join(map(repr, fields))} from; ask for fields only "
                             "from .jsonl, .parquet or hf: sources")

    def documents() -> Iterator[_Record]:
        for path in files:
            fmt, compression = _file_format(spec, path, forced)
            yield from _READERS[fmt](spec, path, compression, options, fields)

    return documents


def _import_datasets(spec: str) -> Any:
    try:
        import datasets
    except ImportError:
        raise ImportError(f"data source {spec!r} reads the Hugging Face hub, which needs the "
                          f"datasets package; {_HUB_INSTALL}") from None
    return datasets


def _hub_source(spec: str, name: str, options: dict[str, str],
                fields: tuple[str, ...]) -> Callable[[], Iterator[_Record]]:
    _check_options(spec, options, _HUB_OPTIONS)
    if not name:
        raise ValueError(f"data source {spec!r} names no dataset; write hf:owner/name")
    datasets = _import_datasets(spec)
    key = options.get("field", "text")
    kwargs = {k: options[k] for k in ("data_dir", "revision") if k in options}

    def documents() -> Iterator[_Record]:
        try:
            rows = datasets.load_dataset(name, options.get("config"),
                                         split=options.get("split", "train"), streaming=True,
                                         **kwargs)
        except Exception as error:  # the hub's errors vary by cause; name the spec and the fix
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise OSError(f"data source {spec!r}: the hub could not stream {name!r} "
                          f"({type(error).__name__}: {reason}); check the name, config, split "
                          "and network") from error
        for number, row in enumerate(rows):
            yield _field(spec, row, key, f"row {number} of {name!r}"), _extras(row, fields)

    return documents


def read_documents(spec: str, limit: int | None = None, skip: int = 0) -> Iterator[str]:
    """Stream the non-empty documents of a source spec (see the module docstring).

    The spec is checked at once (files exist, options known); field errors surface with the
    first document. A source without a single non-empty document raises ValueError when
    exhausted; skipping past the end of a non-empty source just yields nothing.
    """
    records = read_records(spec, limit=limit, skip=skip)
    return (text for text, _ in records)


def read_records(spec: str, fields: Iterable[str] = (), limit: int | None = None,
                 skip: int = 0, require: bool = True) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """:func:`read_documents`, each text with the values of ``fields`` in its record.

    A record without one of the fields gives None for it; a parquet file without the column, or
    a text file (no records), is an error when the spec is checked. ``require=False``: a
    source without a non-empty document yields nothing instead of raising (one shard of many).
    """
    if skip < 0 or (limit is not None and limit < 0):
        raise ValueError(f"read_documents({spec!r}): skip = {skip} and limit = {limit} must not "
                         "be negative")
    fields = tuple(fields)
    target, options = parse_spec(spec)
    if target.startswith("hf:"):
        source = _hub_source(spec, target[3:], options, fields)
    else:
        source = _local_source(spec, target, options, fields)
    return _take(spec, source(), skip, limit, require)


def source_files(spec: str) -> list[Path]:
    """The local files a spec reads, in reading order; none for a hub dataset."""
    target, options = parse_spec(spec)
    if target.startswith("hf:"):
        return []
    _check_options(spec, options, _FILE_OPTIONS)
    return _resolve_files(spec, target, options.get("format"))


def _take(spec: str, documents: Iterator[_Record], skip: int, limit: int | None,
          require: bool = True) -> Iterator[_Record]:
    if limit == 0:
        return
    seen = 0
    for raw, extras in documents:
        text = raw.strip()
        if not text:
            continue
        seen += 1
        if seen <= skip:
            continue
        yield text, extras
        if limit is not None and seen - skip >= limit:
            return
    if seen == 0 and require:
        raise ValueError(f"data source {spec!r} holds no non-empty documents; check the files "
                         "and the field/split options")


# -- tokenizers ----------------------------------------------------------------------------------
_BOS_NAMES = ("<bos>", "<s>", "<|begin_of_text|>")
_EOS_NAMES = ("<eos>", "</s>", "<|endoftext|>", "<|end_of_text|>")
_PAD_NAMES = ("<pad>",)
_CHARS_PER_TOKEN = 64  # cutting text at 64 chars per wanted token leaves a wide margin


class TextTokenizer:
    """A fast tokenizer that encodes documents without special tokens; BOS/EOS/pad ids exposed.

    Special-token strings inside a document (a literal ``<|endoftext|>``) are encoded as plain
    text, so the only BOS/EOS in training rows are the ones the collator adds.
    """

    def __init__(self, hf: Any, name: str):
        from transformers import PreTrainedTokenizerFast

        if not isinstance(hf, PreTrainedTokenizerFast):
            raise ValueError(f"tokenizer {name!r} has no fast (tokenizers-library) version; use a "
                             "tokenizer that ships a tokenizer.json")
        self.hf, self.name = hf, name
        vocab = hf.backend_tokenizer.get_vocab(with_added_tokens=True)

        def pick(token_id: int | None, names: tuple[str, ...], fallback: int | None) -> int | None:
            if token_id is not None:
                return int(token_id)
            return next((vocab[n] for n in names if n in vocab), fallback)

        eos = pick(hf.eos_token_id, _EOS_NAMES, None)
        if eos is None:
            raise ValueError(f"tokenizer {name!r} names no end-of-text token; save it with an "
                             "eos_token in tokenizer_config.json")
        self.eos_id = eos
        self.bos_id = pick(hf.bos_token_id, _BOS_NAMES, eos)
        self.pad_id = pick(hf.pad_token_id, _PAD_NAMES, eos)
        # write the fallbacks into the wrapped tokenizer, so a saved copy loads with the same ids
        for attribute, token_id in (("eos_token", self.eos_id), ("bos_token", self.bos_id),
                                    ("pad_token", self.pad_id)):
            if getattr(hf, attribute + "_id") is None:
                setattr(hf, attribute, hf.convert_ids_to_tokens(token_id))
        self._backend = type(hf.backend_tokenizer).from_str(hf.backend_tokenizer.to_str())
        self._backend.no_truncation()
        self._backend.no_padding()
        self._backend.encode_special_tokens = True

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included (the model's embedding rows)."""
        return self._backend.get_vocab_size(with_added_tokens=True)

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the tokenizer's full definition and its special ids."""
        data = json.dumps([self._backend.to_str(), self.pad_id, self.bos_id,
                           self.eos_id])
        return hashlib.sha256(data.encode()).hexdigest()

    def encode(self, text: str) -> np.ndarray:
        """Token ids of one text, no specials added, as int32."""
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: Iterable[str], max_tokens: int | None = None) -> list[np.ndarray]:
        """Token ids of many texts (parallel, in Rust); with ``max_tokens``, each text's first ids.

        The truncated ids equal the first ``max_tokens`` ids of the whole text: a very long text
        is encoded from a prefix, kept only where the kept tokens end two pre-tokenized words
        before the cut (the only ones a cut can change), else encoded whole.
        """
        texts = list(texts)
        out: list[np.ndarray | None] = [None] * len(texts)
        budget = None if max_tokens is None else _CHARS_PER_TOKEN * max_tokens + 256
        short = [i for i, t in enumerate(texts) if budget is None or len(t) <= budget]
        whole = self._ids([texts[i] for i in short])
        for i, ids in zip(short, whole, strict=True):
            out[i] = ids
        long = [i for i in range(len(texts)) if out[i] is None]
        if long:
            assert budget is not None and max_tokens is not None
            prefixes = self._backend.encode_batch([texts[i][:budget] for i in long],
                                                  add_special_tokens=False)
            again = []
            for i, encoding in zip(long, prefixes, strict=True):
                words = encoding.word_ids
                if (len(words) > max_tokens and words[max_tokens - 1] is not None
                        and words[-1] is not None and words[max_tokens - 1] < words[-1] - 1):
                    out[i] = np.array(encoding.ids[:max_tokens], dtype=np.int32)
                else:
                    again.append(i)
            for i, ids in zip(again, self._ids([texts[i] for i in again]), strict=True):
                out[i] = ids
        if max_tokens is not None:
            out = [ids[:max_tokens] for ids in out]
        return out  # type: ignore[return-value]

    def _ids(self, texts: list[str]) -> list[np.ndarray]:
        encodings = self._backend.encode_batch_fast(texts, add_special_tokens=False)
        return [np.array(e.ids, dtype=np.int32) for e in encodings]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """The text of ``ids`` (special tokens dropped unless asked for)."""
        return self._backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def save(self, directory: str | Path) -> None:
        """Write tokenizer.json and tokenizer_config.json for ``AutoTokenizer.from_pretrained``."""
        self.hf.save_pretrained(str(directory))
        config_path = Path(directory) / "tokenizer_config.json"
        config = json.loads(config_path.read_text())
        if config.get("tokenizer_class") == "TokenizersBackend":
            # transformers 5 writes its new class name; the old alias loads in 4.x and 5.x alike
            config["tokenizer_class"] = "PreTrainedTokenizerFast"
            config_path.write_text(json.dumps(config, indent=2) + "\n")

    @classmethod
    def from_saved(cls, directory: str | Path) -> TextTokenizer:
        """The tokenizer :meth:`save` wrote to ``directory``."""
        return load_tokenizer(str(directory))


def train_bpe(texts: Iterable[str], vocab_size: int) -> TextTokenizer:
    """A byte-level BPE trained on ``texts``: ``<pad>``=0, ``<bos>``=1, ``<eos>``=2, ``<unk>``=3.

    Byte-level, so every text encodes without ``<unk>`` and decodes back exactly; the vocabulary
    stops short of ``vocab_size`` when the texts offer no more merges.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    smallest = len(SPECIALS) + len(alphabet)
    if vocab_size < smallest:
        raise ValueError(f"vocab_size = {vocab_size} is below {smallest}, the 256 byte tokens and "
                         f"{len(SPECIALS)} specials of a byte-level BPE; raise it")
    counted = 0

    def counting() -> Iterator[str]:
        nonlocal counted
        for text in texts:
            counted += 1
            yield text

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS),
                                  initial_alphabet=alphabet, show_progress=False)
    backend.train_from_iterator(counting(), trainer)
    if counted == 0:
        raise ValueError("train_texts is empty; pass the documents to train the tokenizer on")
    hf = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=SPECIALS[0],
                                 bos_token=SPECIALS[1], eos_token=SPECIALS[2],
                                 unk_token=SPECIALS[3])
    return TextTokenizer(hf, f"train:bpe/{vocab_size}")


def load_tokenizer(spec: str, train_texts: Iterable[str] | None = None,
                   vocab_size: int = 8192) -> TextTokenizer:
    """A tokenizer from ``train:bpe``, a local directory or tokenizer.json, or a hub name.

    ``train:bpe`` trains on ``train_texts`` (e.g. ``read_documents(spec, limit=20000)`` of both
    sources). A pretrained tokenizer keeps its own ids: BOS/EOS/pad come from its config; without
    them, from the usual token names (``<bos>``/``<s>``, ``<eos>``/``</s>``/``<|endoftext|>``,
    ``<pad>``); a missing BOS or pad falls back to EOS (GPT-2 and SmolLM2 style).
    """
    if spec.startswith("train:"):
        kind = spec[len("train:"):]
        if kind != "bpe":
            raise ValueError(f"tokenizer {spec!r}: unknown trainer {kind!r}; use train:bpe")
        if train_texts is None:
            raise ValueError(f"tokenizer {spec!r} needs train_texts: pass the documents to train "
                             "it on, e.g. read_documents(source, limit=20000)")
        return train_bpe(train_texts, vocab_size)
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = Path(spec).expanduser()
    if path.is_file():
        if (path.parent / "tokenizer_config.json").is_file() and path.name == "tokenizer.json":
            return TextTokenizer(AutoTokenizer.from_pretrained(str(path.parent)), spec)
        if path.suffix != ".json":
            raise ValueError(f"tokenizer {spec!r} is not a tokenizer.json file; pass that file or "
                             "its directory")
        return TextTokenizer(PreTrainedTokenizerFast(tokenizer_file=str(path)), spec)
    if path.is_dir():
        return TextTokenizer(AutoTokenizer.from_pretrained(str(path)), spec)
    if spec.startswith((".", "/", "~")) or spec.endswith(".json") or spec.count("/") > 1:
        raise FileNotFoundError(f"tokenizer {spec!r} does not exist; check the path (a hub "
                                "tokenizer is written owner/name)")
    try:
        hf = AutoTokenizer.from_pretrained(spec)
    except (OSError, ValueError) as error:
        raise OSError(f"tokenizer {spec!r} is not a local path and the hub could not provide it "
                      f"({type(error).__name__}); check the name or download it and pass its "
                      "directory") from error
    return TextTokenizer(hf, spec)
