"""Multi-process training, applied to a model from outside: DDP, or FSDP2 for large presets.

Launch with ``torchrun --nproc_per_node N -m memsinks.cli run CONFIG``. Every process reads
the same global batch (a pure function of seed and step) and trains on its own contiguous
slice of rows, so the data order and every document's sink mask do not depend on N.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.distributed as dist
from torch import nn

Strategy = Literal["auto", "none", "ddp", "fsdp"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def rows(self, count: int) -> slice:
        """This process's contiguous share of ``count`` rows of the global batch."""
        if count % self.size:
            raise ValueError(f"train.batch_size = {count} is not divisible by the {self.size} "
                             "processes; choose a batch size that is")
        per = count // self.size
        return slice(self.rank * per, (self.rank + 1) * per)


def current() -> World:
    """The running process group's world (a single process when there is none)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(),
                     int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return World()


def init_from_env() -> World:
    """Join the process group torchrun describes in the environment (no-op for one process)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1 and not dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available():
            torch.cuda.set_device(local)
            dist.init_process_group("nccl")
        else:
            dist.init_process_group("gloo")
    return current()


def resolve(strategy: str, world: World) -> str:
    if strategy not in STRATEGIES:
        raise ValueError(f"train.parallel = {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if strategy == "auto":
        return "ddp" if world.size > 1 else "none"
    if strategy != "none" and world.size == 1:
        return "none"
    return strategy


def parallelize(model: nn.Module, strategy: str, world: World) -> nn.Module:
    """The module to run forward and backward through: ``model`` itself, DDP, or FSDP2."""
    strategy = resolve(strategy, world)
    if strategy == "none":
        return model
    device = next(model.parameters()).device
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)
    from torch.distributed.fsdp import fully_shard

    for layer in model.model.layers:  # one shard group per decoder layer, then the rest
        fully_shard(layer)
    fully_shard(model)
    return model


def barrier(world: World) -> None:
    """Wait for every process (no-op for one process)."""
    if world.size > 1:
        dist.barrier()


def all_reduce_sum(values: list[float], world: World) -> list[float]:
    """Sum floats across processes (identity for one process)."""
    if world.size == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


def full_model_state(model: nn.Module, strategy: str) -> dict[str, torch.Tensor]:
    """The whole model's weights on CPU (every process calls this; all get the full dict)."""
    if strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
        )

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True,
                                                                    cpu_offload=True))
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer,
                         strategy: str) -> dict:
    if strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_optimizer_state_dict,
        )

        return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(
            full_state_dict=True, cpu_offload=True, flatten_optimizer_state_dict=True))
    return optimizer.state_dict()


def load_states(model: nn.Module, optimizer: torch.optim.Optimizer, weights: dict,
                optimizer_state: dict, strategy: str) -> None:
    """Load full (unsharded) model and optimizer states, sharding them where needed."""
    if strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, flatten_optimizer_state_dict=True)
        set_model_state_dict(model, weights, options=options)
        set_optimizer_state_dict(model, optimizer, optimizer_state, options=options)
        return
    model.load_state_dict(weights)
    optimizer.load_state_dict(optimizer_state)
