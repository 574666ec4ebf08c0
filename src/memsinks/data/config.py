"""The data section of a study config: the training stream and its evaluation sets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .keys import parse_key


@dataclass
class DataConfig:
    """The training stream: general documents plus a repeated set R, its twins H, validation V."""

    seed: int = 0
    """Seed of every draw of the stream: R, H, V, the general documents and their order."""
    general_domains: list[str] = field(default_factory=lambda: ["stories", "facts"])
    """Built-in corpus domains of the general stream and of V (see memsinks.data.corpus)."""
    repeated_domain: str = "stories"
    """Built-in corpus domain that R and H are drawn from."""
    repeated_kind: Literal["natural", "canary"] = "natural"
    """natural documents, or canaries: random tokens with the lengths of natural twins."""
    n_repeated: int = 64
    """Documents in R (and in H, unless n_heldout says otherwise)."""
    repetitions: int = 32
    """Times each R document appears in the stream."""
    repeat_span: float = 1.0
    """R's repetitions are spread over this leading fraction of training."""
    repeat_window: float = 1.0
    """Each R document's repetitions fall evenly within a window of this fraction of the
    repeat span, windows placed at random per document: the spacing between a document's
    occurrences is window x span x steps / repetitions steps, at the same stream length, share
    of R and schedule. 1.0: every document spread over the whole span."""
    dedup_keep: Literal["first", "random"] = "first"
    """Which occurrence of each R document the dedup stream keeps: first (all of R early in
    training) or random (one of its slots drawn per document, so R is spread over the run as a
    shuffled deduplicated corpus would place it)."""
    n_validation: int = 256
    """Documents in V."""
    in_domain_share: float | None = None
    """Share of the general stream (and of V) drawn from the repeated domain; None = every
    general domain in turn. 0 with general_domains=[facts] is the paper's regime: R is the only
    source of its domain."""
    n_heldout: int = 0
    """Documents in H, the held-out in-domain set (0 = as many as R)."""
    general_source: str = ""
    """A text corpus instead of the built-in generator: a file, directory, glob or
    hf:owner/name (see memsinks.data.sources for the spec syntax); "" = built-in."""
    repeated_source: str = ""
    """Where R and H come from with text corpora; "" = general_source."""
    tokenizer: str = "train:bpe"
    """Text corpora: train:bpe, a local path or a hub name."""
    vocab_size: int = 8192
    """Vocabulary size of a train:bpe tokenizer."""
    tokenizer_docs: int = 20000
    """Documents a train:bpe tokenizer learns from (split over the sources)."""
    min_tokens: int = 16
    """Text corpora: shorter documents are skipped."""
    max_tokens: int = 0
    """Text corpora: longer documents are cut (0 = the model context - 2)."""
    sink_key: str = "hash"
    """What a document's sink ID is keyed on: hash (its tokens), minhash (its near-duplicate
    cluster), field:NAME (a metadata field; built-in: field:source) or an annotation table
    (memsinks annotate; joined on the document hash); see data/keys.py."""
    perturb: float = 0.0
    """Each occurrence of an R document has this share of its tokens replaced, differently per
    occurrence and deterministically (draws from R's own tokens); R as evaluated, H and V stay
    unperturbed. Repetition that is not exact, as reposts and quotes are."""
    sources: int = 0
    """Built-in corpus: R's (and H's) documents are spread over this many sources round-robin,
    the metadata field "source" that sink_key=field:source reads (0 = no field)."""

    def validate(self) -> None:
        if self.repeated_source and not self.general_source:
            raise ValueError("data.repeated_source is set but data.general_source is not; set "
                             "both (text corpora) or neither (the built-in corpus)")
        if self.dedup_keep not in ("first", "random"):
            raise ValueError(f"data.dedup_keep = {self.dedup_keep!r}; use first or random")
        if self.repeated_kind not in ("natural", "canary"):
            raise ValueError(f"data.repeated_kind = {self.repeated_kind!r}; use natural or canary")
        if not self.general_domains:
            raise ValueError("data.general_domains is empty; name at least one corpus domain")
        for name in ("n_repeated", "repetitions", "n_validation"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"data.{name} = {getattr(self, name)} must be at least 1")
        if self.n_heldout < 0:
            raise ValueError(f"data.n_heldout = {self.n_heldout} must be >= 0 (0 = as many "
                             "as data.n_repeated)")
        if self.in_domain_share is not None:
            if not 0 <= self.in_domain_share <= 1:
                raise ValueError(f"data.in_domain_share = {self.in_domain_share} is not a "
                                 "share in [0, 1]; use for example 0 (the paper's regime) or 0.5")
            others = [d for d in self.general_domains if d != self.repeated_domain]
            if self.in_domain_share < 1 and not others:
                raise ValueError("data.in_domain_share < 1 needs a general domain other than "
                                 f"the repeated domain {self.repeated_domain!r}; add one to "
                                 "data.general_domains (for example facts)")
            if self.general_source:
                raise ValueError("data.in_domain_share applies to the built-in corpus only; "
                                 "with text corpora choose the sources instead")
        parse_key(self.sink_key)
        if not 0 <= self.perturb < 1:
            raise ValueError(f"data.perturb = {self.perturb} is not a share in [0, 1); use for "
                             "example 0.05 (one token in twenty replaced per occurrence)")
        if self.sources < 0:
            raise ValueError(f"data.sources = {self.sources} must be >= 0")
        if self.sources and self.general_source:
            raise ValueError("data.sources groups the built-in corpus's documents; a text "
                             "corpus brings its own metadata fields (data.sink_key=field:NAME)")
        if self.sink_key.startswith("field:") and not self.general_source and not self.sources:
            raise ValueError(f"data.sink_key = {self.sink_key} needs a field; the built-in "
                             "corpus has one, source, when data.sources is set (for example 16)")
        if not 0 < self.repeat_span <= 1:
            raise ValueError(f"data.repeat_span = {self.repeat_span} is not in (0, 1]")
        if not 0 < self.repeat_window <= 1:
            raise ValueError(f"data.repeat_window = {self.repeat_window} is not in (0, 1]; it "
                             "is the share of the repeat span that one document's "
                             "repetitions fill, for example 0.25")
