"""Benchmarks that need hardware this machine may lack say so in one sentence."""

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: make gpu-check runs it")
def test_gpu_check_stops_with_one_sentence_without_a_gpu(capsys):
    assert _load("gpu_check").main([]) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("gpu-check: no CUDA GPU") and message.count("\n") == 0
