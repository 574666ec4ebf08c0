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
    goldfish_k: int = 0  # Goldfish loss: drop 1 in k tokens from the loss (0 = off)
    goldfish_h: int = 13  # Goldfish loss: tokens of context hashed to pick the dropped ones
    gradient_mask: bool = False  # repeated documents update only the sink pool's neurons

    @property
    def removable(self) -> bool:
        """Whether part of the model is removed after training (the sinks or the masked pool)."""
        return self.sinks or self.gradient_mask

    @property
    def full_mode(self) -> str:
        """The mode of the whole trained model, before removal."""
        return "keep" if self.sinks else "off"


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
    "goldfish": Method(
        "Goldfish loss (Hans et al. 2024): every document trains on its tokens except 1 in k, "
        "chosen by a hash of the h tokens before it, so the same text always hides the same "
        "tokens (k=4, h=13)", goldfish_k=4, goldfish_h=13),
    "gradient-mask": Method(
        "gradient masking: repeated documents (found by counting hashes) update only a fixed "
        "pool of MLP neurons, the sink pool's size, which is zeroed after training; every "
        "other document trains all parameters (the strawman the paper argues against)",
        gradient_mask=True, sink_ids="repeated", modes=("off", "drop"), drop_rescale="none"),
}
