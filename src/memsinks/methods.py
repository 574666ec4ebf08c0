"""Training methods of a study, registered by name: adding one is one entry here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """How a method changes training on the shared stream."""

    description: str
    sinks: bool = False  # gate the MLPs with sink masks
    sink_ids: str = "all"  # which documents get sinks: all | repeated | seen-before
    dedup: bool = False  # each repeated document appears once
    modes: tuple[str, ...] = ("off",)  # evaluation modes
    drop_rescale: str | None = None  # overrides sinks.drop_rescale for this method
    mlp_width: str = "full"  # full | shared: a plain model as wide as the shared neurons


METHODS: dict[str, Method] = {
    "standard": Method("standard training on the stream with repeated documents"),
    "standard-narrow": Method(
        "control: standard training of a model whose MLPs have only the shared neurons' width "
        "(p_shared x intermediate), to tell a sink effect from a narrower-MLP effect",
        mlp_width="shared"),
    "dedup": Method("the same stream with every repeated document seen once", dedup=True),
    "memsinks": Method(
        "MemSinks as in the paper: every document gets sinks, dropped after training",
        sinks=True, sink_ids="all", modes=("keep", "drop", "own")),
    "memsinks-repeated": Method(
        "extension of this project: only documents that occur more than once in the stream "
        "(found by counting their hashes, as dedup would) get sinks; the rest train the "
        "shared neurons alone", sinks=True, sink_ids="repeated", modes=("keep", "drop", "own"),
        # shared neurons are trained at x1 on almost every token, so dropping the sinks must
        # not rescale them
        drop_rescale="none"),
    "memsinks-online": Method(
        "extension of this project, online: a document gets sinks from its second occurrence "
        "on (a set of hashes seen so far), so no counting pass over the stream is needed",
        sinks=True, sink_ids="seen-before", modes=("keep", "drop", "own"), drop_rescale="none"),
}
