"""Post-hoc baselines: remove memorization of a forget set from a model trained the standard
way, keeping its general ability. Methods are registered by name; adding one is one file in
this package whose class carries ``@register``.

| name                | what it does                                                           |
|---------------------|------------------------------------------------------------------------|
| zero-out            | ablate the neurons whose zeroing raises the forget loss most           |
| activations         | ablate the neurons with the largest abs(mean activation) x output norm |
| slimming            | ablate the neurons whose L1-penalized learned coefficient stays large  |
| hard-concrete       | ablate the neurons whose learned L0 (hard concrete) gate stays open    |
| balanced-subnet     | drop the MLP weights a learned supermask picks (ascent R, keep retain) |
| gradient-ascent     | fine-tune to raise the loss on the forget set                          |
| gradient-difference | ascent on the forget set plus descent on retain data                   |
| npo                 | negative preference optimization against the frozen trained model      |
"""

from __future__ import annotations

import importlib
import pkgutil

from .common import UnlearnMethod

METHODS: dict[str, UnlearnMethod] = {}


def register(cls: type[UnlearnMethod]) -> type[UnlearnMethod]:
    """Class decorator: make a method available by its ``name``."""
    if not cls.name or cls.name in METHODS:
        raise ValueError(f"unlearning method name {cls.name!r} is empty or taken")
    METHODS[cls.name] = cls()
    return cls


def get(name: str) -> UnlearnMethod:
    if name not in METHODS:
        raise ValueError(f"unlearning method {name!r} is unknown; choose one of "
                         f"{', '.join(METHODS)}")
    return METHODS[name]


# every module of the package is imported once, so each method's @register runs
for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_module.name}")

ORDER = ("zero-out", "activations", "slimming", "hard-concrete", "balanced-subnet",
         "gradient-ascent", "gradient-difference", "npo")
_ordered = {**{k: METHODS[k] for k in ORDER if k in METHODS},
            **{k: v for k, v in METHODS.items() if k not in ORDER}}
METHODS.clear()  # in place: modules holding the dict see the order too
METHODS.update(_ordered)
