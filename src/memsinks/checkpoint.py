"""Training checkpoints that survive crashes: written atomically, loaded without unpickling.

A checkpoint is a directory ``step-<N>/`` holding ``model.safetensors`` (weights),
``optimizer.safetensors`` (every tensor of the optimizer state), and ``state.json`` (step,
optimizer hyperparameters, counters, learning curve so far, the run's fingerprint). It is
written under a temporary name and renamed into place; the file ``latest`` then names it.
A crash at any moment leaves the previous complete checkpoint in place.
"""

from __future__ import annotations

import json
import shutil
from contextlib import AbstractContextManager
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .files import atomic_write, replacing
from .locking import exclusive

LATEST = "latest"


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors to safetensors, the rest to JSON; the nested torch format or a flat dict."""
    tensors: dict[str, torch.Tensor] = {}
    if "state" not in state:  # a flat dict (FSDP's flattened optimizer state)
        scalars = {}
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[key] = value.detach().cpu().contiguous()
            else:
                scalars[key] = value
        return tensors, {"flat": scalars}
    nested: dict[str, dict] = {}
    for index, per_param in state["state"].items():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                nested.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": nested}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    if "flat" in meta:
        return {**meta["flat"], **tensors}
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": dict(sorted(state.items())), "param_groups": meta["param_groups"]}


def _model_tensors(state_dict: dict[str, torch.Tensor]
                   ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Weights with tied tensors stored once (safetensors refuses shared storage)."""
    out: dict[str, torch.Tensor] = {}
    seen: dict[tuple, str] = {}
    aliases: dict[str, str] = {}
    for name, tensor in state_dict.items():
        key = (tensor.data_ptr(), tensor.shape, tensor.stride()) if tensor.numel() else None
        if key is not None and key in seen:
            aliases[name] = seen[key]
            continue
        if key is not None:
            seen[key] = name
        out[name] = tensor.detach().cpu().contiguous()
    return out, aliases


def save(directory: Path, step: int, model_state: dict[str, torch.Tensor],
         optimizer_state: dict, state: dict, keep: int = 1) -> Path:
    """Write ``directory/step-<step>`` atomically, point ``latest`` at it, prune older ones."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step-{step}"
    # durable: the data is on disk before the rename makes it visible
    with replacing(final, durable=True) as tmp:
        tmp.mkdir()
        weights, aliases = _model_tensors(model_state)
        save_file(weights, str(tmp / "model.safetensors"))
        tensors, meta = _flatten_optimizer(optimizer_state)
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        rng = torch.get_rng_state()
        save_file({"cpu": rng}, str(tmp / "rng.safetensors"))
        payload = {"step": step, "optimizer": meta, "aliases": aliases, **state}
        (tmp / "state.json").write_text(json.dumps(payload))
    atomic_write(directory / LATEST, final.name)
    steps = sorted((int(p.name.split("-")[1]) for p in directory.glob("step-*")
                    if p.is_dir() and not p.name.endswith(".tmp")), reverse=True)
    for old in steps[keep:]:
        shutil.rmtree(directory / f"step-{old}", ignore_errors=True)
    return final


def latest(directory: Path) -> Path | None:
    """The newest complete checkpoint under ``directory`` (None when there is none)."""
    directory = Path(directory)
    pointer = directory / LATEST
    if pointer.is_file():
        candidate = directory / pointer.read_text().strip()
        if (candidate / "state.json").is_file():
            return candidate
    complete = [p for p in directory.glob("step-*")
                if p.is_dir() and not p.name.endswith(".tmp") and (p / "state.json").is_file()]
    return max(complete, key=lambda p: int(p.name.split("-")[1]), default=None)


def read_tensors(path: Path, fix: str) -> dict[str, torch.Tensor]:
    """A safetensors file, or one sentence naming the file and ``fix`` when it is damaged."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ValueError(f"{path} is truncated or corrupt ({error}); {fix}") from None


def load(path: Path) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """(model state dict, optimizer state dict, state) of a checkpoint directory."""
    path = Path(path)
    fix = (f"delete {path} and rerun the same command: it resumes from an earlier checkpoint "
           "or starts over")
    try:
        state = json.loads((path / "state.json").read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path / 'state.json'} is unreadable ({error}); {fix}") from None
    weights = read_tensors(path / "model.safetensors", fix)
    for alias, source in state.pop("aliases", {}).items():
        weights[alias] = weights[source]
    optimizer = _unflatten_optimizer(read_tensors(path / "optimizer.safetensors", fix),
                                     state.pop("optimizer"))
    rng = path / "rng.safetensors"
    if rng.is_file():
        state["rng"] = read_tensors(rng, fix)["cpu"]
    return weights, optimizer, state


def hold(directory: Path) -> AbstractContextManager[None]:
    """Hold ``directory`` for this process, or say which process holds it.

    Two trainings of the same method directory would write each other's checkpoints.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return exclusive(directory / ".lock", str(directory), wait=False)
