"""Run tracking in the tools people already watch training in: TensorBoard, W&B and trackio.

``train.report_to`` names the backends (none by default). A study opens one tracked run per
method, named ``<study>/<method>``, with the config, the training curve (loss, learning rate,
gradient norm, tokens/s) and the learning curves per sink mode, and one run ``<study>/study``
with the study's figures: each method's losses per mode, closure and the costs against
standard and dedup, and the memorization metrics (extraction, LOSS AUROC, relearning steps).

Every library is optional and imported only when named. Each is used in its own local or
offline mode when asked: TensorBoard always writes event files under the study
(``<method>/tensorboard``), W&B follows ``WANDB_MODE`` (``offline`` writes ``wandb/`` under the
study, for ``wandb sync`` later), trackio keeps a local database (``TRACKIO_DIR``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

BACKENDS = ("tensorboard", "wandb", "trackio")  # each the name of its pip package too


def check_backends(names: Iterable[str]) -> None:
    """One sentence for a name that is not a backend."""
    for name in names:
        if name not in BACKENDS:
            raise ValueError(f"train.report_to names {name!r}, which is not one of "
                             f"{', '.join(BACKENDS)}; for example train.report_to=[tensorboard]")


def _import(name: str):
    try:
        if name == "tensorboard":
            from torch.utils import tensorboard
            return tensorboard
        if name == "wandb":
            import wandb
            return wandb
        import trackio
        return trackio
    except ImportError as error:
        raise ValueError(f"train.report_to names {name}, which is not installed here; pip "
                         f"install {name} (or memsinks[track]), or leave it out of "
                         "train.report_to") from error


def _scalars(values: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a flat dict (others are left out)."""
    out = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out


class _StepSummary:
    """A backend without a run summary: the summary is logged at the last step seen."""

    last_step = 0

    def log(self, values: dict[str, float], step: int) -> None:
        self._log(values, step)
        self.last_step = max(self.last_step, step)

    def summary(self, values: dict[str, float]) -> None:
        self.log({f"summary/{k}": v for k, v in values.items()}, self.last_step)


class _TensorBoard(_StepSummary):
    def __init__(self, module, directory: Path, config: dict):
        self.writer = module.SummaryWriter(log_dir=str(directory / "tensorboard"))
        self.writer.add_text("config", "```\n" + json.dumps(config, indent=1) + "\n```")

    def _log(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def finish(self) -> None:
        self.writer.close()


class _Wandb:
    def __init__(self, module, directory: Path, project: str, name: str, config: dict):
        self.run = module.init(project=project, name=name, config=config, dir=str(directory),
                               reinit="create_new")

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def summary(self, values: dict[str, float]) -> None:
        self.run.summary.update(values)

    def finish(self) -> None:
        self.run.finish()


class _Trackio(_StepSummary):
    def __init__(self, module, project: str, name: str, config: dict):
        self.run = module.init(project=project, name=name, config=config)

    def _log(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def finish(self) -> None:
        self.run.finish()


class Tracker:
    """One tracked run in every backend of ``report_to``; a no-op when it is empty."""

    def __init__(self, report_to: Iterable[str], *, project: str, name: str, config: dict,
                 directory: Path):
        self.backends: list = []
        names = list(report_to)
        check_backends(names)
        for backend in names:
            module = _import(backend)
            if backend == "tensorboard":
                self.backends.append(_TensorBoard(module, Path(directory), config))
            elif backend == "wandb":
                self.backends.append(_Wandb(module, Path(directory), project, name, config))
            else:
                self.backends.append(_Trackio(module, project, name, config))

    def log(self, values: dict[str, Any], step: int) -> None:
        values = _scalars(values)
        for backend in self.backends:
            backend.log(values, step)

    def summary(self, values: dict[str, Any]) -> None:
        values = _scalars(values)
        for backend in self.backends:
            backend.summary(values)

    def finish(self) -> None:
        for backend in self.backends:
            backend.finish()
        self.backends = []

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc) -> None:
        self.finish()


def curve_values(point: dict) -> dict[str, float]:
    """A learning-curve evaluation as ``eval/<mode>/L_R`` and so on (per-document losses out)."""
    return {f"eval/{mode}/{key}": value for mode, values in point.items()
            if isinstance(values, dict) for key, value in values.items() if key.startswith("L_")}


def study_values(results: dict) -> dict[str, float]:
    """A study's figures per method: losses per mode, comparisons and memorization metrics."""
    out: dict[str, float] = {}
    for method, metrics in results["methods"].items():
        for mode, values in metrics["modes"].items():
            for key in ("L_R", "L_H", "L_V", "gap"):
                out[f"{method}/{mode}/{key}"] = values[key][0]
        assessment = metrics.get("assessment") or {}
        for mode, row in (assessment.get("modes") or {}).items():
            mia = row["mia"].get("loss")
            if mia is not None:
                out[f"{method}/{mode}/auroc_loss"] = mia["auroc"]
            extraction = row["extraction"]["R"]
            if extraction:
                k = "32" if "32" in extraction else max(extraction, key=int)
                out[f"{method}/{mode}/extractable"] = extraction[k]["rate"][0]
        relearn = assessment.get("relearn") or {}
        if relearn.get("steps") is not None:
            out[f"{method}/relearn_steps"] = relearn["steps"]
    for method, comparison in results["comparisons"].items():
        for key, value in comparison.items():
            out[f"{method}/{key}"] = value[0]
    return out
