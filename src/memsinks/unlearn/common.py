"""What every post-hoc baseline shares: the method interface, forget and retain sets, batches
and losses, neuron gates, ablation by weight surgery, scoring with a cache, hashes.

A method is a generator: given the trained model, the data and the strengths still to do, it
changes the model in place and yields once per strength, so the caller can evaluate that
model before the method goes on (fine-tuning evaluates at each requested step count of one
run; localization scores the neurons once and ablates each fraction from the original).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from ..coerce import coerce
from ..data.packing import Batch, collate
from ..data.stream import DocSet, Mixture
from ..families import decoder_layers
from ..files import replacing
from ..sinks import document_id

# -- the model and its MLPs ------------------------------------------------------------------


def mlp_layers(model: nn.Module) -> list[nn.Module]:
    """The MLP of every decoder layer of a Llama-family model."""
    return [layer.mlp for layer in decoder_layers(model)]


@contextmanager
def frozen_weights(model: nn.Module) -> Iterator[None]:
    """Model weights without gradients (only a method's own masks or gates learn)."""
    saved = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in saved:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


@contextmanager
def neuron_gates(model: nn.Module, gate_of_layer: Callable[[int], torch.Tensor | None]
                 ) -> Iterator[None]:
    """Multiply each MLP's hidden activations (the input of down_proj) by ``gate_of_layer(i)``.

    The gate broadcasts against (batch, tokens, width); None leaves that layer as it is.
    """
    def hook_for(index: int):
        def hook(module: nn.Module, args: tuple) -> tuple | None:
            gate = gate_of_layer(index)
            if gate is None:
                return None
            return (args[0] * gate.to(args[0].dtype),) + tuple(args[1:])
        return hook

    handles = [mlp.down_proj.register_forward_pre_hook(hook_for(i))
               for i, mlp in enumerate(mlp_layers(model))]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def recorded_activations(model: nn.Module) -> Iterator[list[torch.Tensor | None]]:
    """The hidden activations of every MLP from the next forward pass, one tensor per layer."""
    store: list[torch.Tensor | None] = [None] * len(mlp_layers(model))

    def hook_for(index: int):
        def hook(module: nn.Module, args: tuple) -> None:
            store[index] = args[0].detach()
        return hook

    handles = [mlp.down_proj.register_forward_pre_hook(hook_for(i))
               for i, mlp in enumerate(mlp_layers(model))]
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def ablate_neurons(model: nn.Module, neurons: list[np.ndarray]) -> None:
    """Weight surgery: neuron j of layer i gets a zero gate row, up row and down column.

    Its activation is then act(0) * 0 = 0 and its output contribution exactly zero.
    """
    for mlp, index in zip(mlp_layers(model), neurons, strict=True):
        if len(index) == 0:
            continue
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long,
                              device=mlp.down_proj.weight.device)
        for name in ("gate_proj", "up_proj"):
            linear = getattr(mlp, name)
            linear.weight[idx, :] = 0
            if linear.bias is not None:
                linear.bias[idx] = 0
        mlp.down_proj.weight[:, idx] = 0


def count_for(fraction: float, width: int) -> int:
    """Neurons in ``fraction`` of a layer of ``width``, rounded down (as Chang et al.)."""
    return min(width, math.floor(fraction * width + 1e-9))


def top_neurons(scores: list[np.ndarray], fraction: float, start_layer: int = 0
                ) -> list[np.ndarray]:
    """Per layer, the indices of the top ``fraction`` of neurons by score (none below
    ``start_layer``); ties go to the lower index."""
    out = []
    for layer, values in enumerate(scores):
        if layer < start_layer:
            out.append(np.zeros(0, dtype=np.int64))
            continue
        order = np.argsort(-np.asarray(values, dtype=np.float64), kind="stable")
        out.append(np.sort(order[:count_for(fraction, len(values))]).astype(np.int64))
    return out


# -- data ------------------------------------------------------------------------------------


@dataclass
class UnlearnData:
    """The forget set (R unless a file says otherwise) and the retain set (general training
    documents; never V and never H)."""

    forget: DocSet
    retain: DocSet
    device: torch.device


def docset(name: str, tokens: list[np.ndarray],
           specials: tuple[int, int, int] = DocSet.specials) -> DocSet:
    """A DocSet without generator log-probabilities (unknown for these documents)."""
    return DocSet(name, list(tokens), np.full(len(tokens), np.nan),
                  np.array([document_id(t) for t in tokens], dtype=np.int64), specials)


def retain_set(mixture: Mixture, count: int, seed: int) -> DocSet:
    """``count`` general documents drawn (by ``seed``) from those the standard stream trains on."""
    general = np.unique(mixture.stream(False))
    general = general[general >= 0]
    rng = np.random.default_rng(seed)
    chosen = rng.choice(general, size=min(count, len(general)), replace=False)
    return docset("retain", [mixture.general(int(i)) for i in np.sort(chosen)], mixture.specials)


def batch_of(docs: DocSet, index: np.ndarray, device: torch.device) -> Batch:
    return collate([docs.tokens[i] for i in index], [0] * len(index), device, docs.specials)


def batches(docs: DocSet, size: int, seed: int, device: torch.device) -> Iterator[Batch]:
    """Minibatches forever: a fresh seeded permutation of the documents every epoch."""
    if len(docs) == 0:
        raise ValueError(f"the {docs.name} set is empty; unlearning needs documents in it")
    rng = np.random.default_rng(seed)
    size = min(size, len(docs))
    while True:
        order = rng.permutation(len(docs))
        for start in range(0, len(order) - size + 1, size):
            yield batch_of(docs, order[start:start + size], device)


def lm_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Mean NLL per predicted token of the batch (the training loss)."""
    return model(input_ids=batch.input_ids, labels=batch.labels, use_cache=False).loss


def sequence_logprob(model: nn.Module, batch: Batch) -> torch.Tensor:
    """log p(document) of every row: the summed log-probabilities of its tokens and EOS."""
    logits = model(input_ids=batch.input_ids, use_cache=False).logits[:, :-1].float()
    targets = batch.labels[:, 1:]
    valid = targets != -100
    logp = torch.log_softmax(logits, dim=-1)
    picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * valid).sum(dim=1)


class Stopwatch:
    """Wall and CPU seconds spent inside ``with watch:`` blocks (a method's own time, not
    evaluation's). CPU seconds count every thread and barely depend on other load."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self._start = (0.0, 0.0)

    def __enter__(self) -> Stopwatch:
        self._start = (time.perf_counter(), time.process_time())
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._start[0]
        self.cpu_seconds += time.process_time() - self._start[1]


# -- methods ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One unlearned model, ready to evaluate: its strength, the wall and CPU seconds it took
    to produce from the trained model (evaluation excluded) and method-specific details."""

    strength: float
    seconds: float
    cpu_seconds: float
    details: dict


class UnlearnMethod:
    """A post-hoc baseline. Subclasses set the class attributes and implement ``run``."""

    name: str = ""
    description: str = ""
    strength_name: str = ""
    default_grid: tuple[float, ...] = ()
    integer_strength: bool = False  # strengths are step counts
    sweep_shares_work: bool = False  # one computation serves every strength of a grid
    Params: type = object  # a dataclass of hyperparameters with their defaults

    def check_strength(self, strength: float) -> None:
        """ValueError naming the problem and the fix for a strength the method cannot take."""
        if self.integer_strength:
            if strength < 0 or strength != int(strength):
                raise ValueError(f"--strength {strength:g} for {self.name} is a number of "
                                 "optimizer steps and must be a whole number >= 0; pass "
                                 "a value such as 20")
        elif not 0 <= strength <= 1:
            raise ValueError(f"--strength {strength:g} for {self.name} is a fraction "
                             f"({self.strength_name}) and must lie in [0, 1]; pass a value "
                             "such as 0.05")

    def params(self, overrides: dict[str, str] | None = None) -> Any:
        """The hyperparameters, with ``key=value`` overrides coerced to each field's type."""
        params = self.Params()
        known = {f.name: f for f in dataclasses.fields(params)}
        changes = {}
        for key, raw in (overrides or {}).items():
            if key not in known:
                raise ValueError(f"{self.name} has no parameter {key!r}; its parameters are "
                                 f"{', '.join(known)}")
            value = yaml.safe_load(raw) if isinstance(raw, str) else raw
            changes[key] = coerce(type(params), key, value,
                                  subject=f"{self.name} parameter {key}")
        return dataclasses.replace(params, **changes)

    def run(self, model: nn.Module, data: UnlearnData, strengths: list[float], params: Any,
            cache: Path | None = None) -> Iterator[Step]:
        """Change ``model`` in place and yield once per strength, in ascending order."""
        raise NotImplementedError


def restore(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            tensor.copy_(state[name])


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class NeuronLocalization(UnlearnMethod):
    """Score every MLP neuron for the forget set, then ablate the top fraction per layer.

    Scores are computed once per (model, forget set, parameters) and kept in the method's
    result directory, so each further fraction costs one ablation.
    """

    strength_name = "fraction of MLP neurons ablated per layer"
    sweep_shares_work = True
    # 1% is Chang et al.'s injection ratio; a 512-wide layer needs more to move a 64-document R
    default_grid = (0.01, 0.03, 0.1, 0.2, 0.3)

    def scores(self, model: nn.Module, data: UnlearnData, params: Any
               ) -> tuple[list[np.ndarray], dict]:
        """Per layer, a score per neuron (higher = more responsible for the forget set)."""
        raise NotImplementedError

    def cached_scores(self, model: nn.Module, data: UnlearnData, params: Any,
                      cache: Path | None) -> tuple[list[np.ndarray], dict, tuple[float, float]]:
        key = fingerprint({"method": self.name, "params": dataclasses.asdict(params),
                           "forget": ids_digest(data.forget.ids),
                           "model": weights_digest(model)})
        path = cache / "scores.npz" if cache is not None else None
        if path is not None and path.is_file():
            with np.load(path) as saved:
                if str(saved["fingerprint"]) == key and "cpu_seconds" in saved.files:
                    layers = int(saved["layers"])
                    info = json.loads(str(saved["info"]))
                    return ([saved[f"layer{i}"] for i in range(layers)], info,
                             (float(saved["seconds"]), float(saved["cpu_seconds"])))
        watch = Stopwatch()
        with watch:
            scores, info = self.scores(model, data, params)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with replacing(path) as tmp, open(tmp, "wb") as handle:
                np.savez(handle, fingerprint=key, layers=len(scores), info=json.dumps(info),
                         seconds=watch.seconds, cpu_seconds=watch.cpu_seconds,
                         **{f"layer{i}": s for i, s in enumerate(scores)})
        return scores, info, (watch.seconds, watch.cpu_seconds)

    def run(self, model: nn.Module, data: UnlearnData, strengths: list[float], params: Any,
            cache: Path | None = None) -> Iterator[Step]:
        scores, info, (score_seconds, score_cpu) = self.cached_scores(model, data, params, cache)
        original = snapshot(model)
        start = getattr(params, "start_layer", 0)
        for strength in sorted(strengths):
            watch = Stopwatch()
            with watch:
                restore(model, original)
                chosen = top_neurons(scores, strength, start)
                ablate_neurons(model, chosen)
            yield Step(strength, score_seconds + watch.seconds, score_cpu + watch.cpu_seconds,
                       {"ablated_per_layer": [len(c) for c in chosen],
                        "score_seconds": score_seconds, **info})


# -- hashing and files -----------------------------------------------------------------------


def fingerprint(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def ids_digest(ids: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(ids, dtype="<i8").tobytes()).hexdigest()[:16]


def weights_digest(model: nn.Module) -> str:
    """A hash of every weight, so results of a retrained or changed model are not reused."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()[:16]


def strength_label(strength: float) -> str:
    """File-name form of a strength: 0.01 -> '0.01', 20 -> '20'."""
    return f"{strength:g}"


def learn_neuron_gates(model: nn.Module, data: UnlearnData, learned: list[torch.Tensor],
                       gate_of_layer: Callable[[int], torch.Tensor | None],
                       penalty: Callable[[], torch.Tensor], weight: float, params: Any,
                       before_step: Callable[[], None] = lambda: None) -> dict:
    """Learn per-neuron gates on the forget set: LM loss + ``weight`` x ``penalty`` with Adam.

    The model's weights stay frozen; ``before_step`` may resample stochastic gates. Stops
    early once the penalty falls below ``params.stop_at``; returns the run's losses.
    """
    optimizer = torch.optim.Adam(learned, lr=params.lr)
    history = {"penalty_start": penalty().detach().item(), "lm_loss": [], "penalty": []}
    stream = batches(data.forget, params.batch_size, params.seed, data.device)
    was_training = model.training
    model.eval()
    with frozen_weights(model), neuron_gates(model, gate_of_layer):
        for _ in range(params.steps):
            before_step()
            loss = lm_loss(model, next(stream))
            (loss + weight * penalty()).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            history["lm_loss"].append(round(loss.item(), 5))
            history["penalty"].append(round(penalty().detach().item(), 5))
            if history["penalty"][-1] < params.stop_at:
                break
    model.train(was_training)
    history["penalty_end"] = penalty().detach().item()
    history["steps_run"] = len(history["penalty"])
    return history
