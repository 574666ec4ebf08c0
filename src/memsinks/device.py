"""Where models run: the device a config names, and the autocast that training and
measuring share (so that neither imports the other for it)."""

from __future__ import annotations

from contextlib import nullcontext

import torch


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"train.device = {name!r} but no CUDA device is available; use cpu")
    return torch.device(name)


def autocast(device: torch.device, precision: str = "auto"):
    """bf16 autocast on GPU, or anywhere with ``precision="bf16"``; else full precision.

    ``auto`` keeps CPU training in fp32: bf16 autocast is faster on a CPU with AMX only for
    larger matrices, and evaluations stay exact (benchmarks/precision.py measures the ratio).
    """
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()
