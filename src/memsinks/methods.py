"""Training methods of a study, registered by name: adding one is one entry here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """How a method changes training on the shared stream."""

    description: str
    sinks: bool = False  # gate the MLPs with sink masks
    sink_ids: str = "all"  # which documents get sinks: all | repeated (seen more than once)
    dedup: bool = False  # each repeated document appears once
    modes: tuple[str, ...] = ("off",)  # evaluation modes


METHODS: dict[str, Method] = {
    "standard": Method("standard training on the stream with repeated documents"),
    "dedup": Method("the same stream with every repeated document seen once", dedup=True),
    "memsinks": Method(
        "MemSinks as in the paper: every document gets sinks, dropped after training",
        sinks=True, sink_ids="all", modes=("keep", "drop", "own")),
    "memsinks-repeated": Method(
        "extension of this project: only documents that occur more than once in the stream "
        "(found by counting their hashes, as dedup would) get sinks; the rest train the "
        "shared neurons alone", sinks=True, sink_ids="repeated", modes=("keep", "drop", "own")),
}
