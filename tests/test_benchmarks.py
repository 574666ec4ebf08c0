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


def test_precision_skips_bf16_where_the_probe_says_it_cannot_win(capsys, monkeypatch):
    precision = _load("precision")
    monkeypatch.setattr(precision, "bf16_can_win", lambda n=256: (False, 100.0, 1.0))
    timed = []
    real_step = precision.step_seconds

    def step(model, optimizer, batch, mode):
        timed.append(mode)
        return real_step(model, optimizer, batch, mode)

    monkeypatch.setattr(precision, "step_seconds", step)
    precision.main(["--presets", "tiny", "--steps", "1", "--warmup", "0", "--matmul",
                    "--batch-size", "2", "--seq-len", "8"])
    out = capsys.readouterr().out
    assert "bf16 cannot win on this CPU; its arms are skipped" in out
    assert timed == ["fp32"] and "skipped" in out.splitlines()[-1]
    timed.clear()
    precision.main(["--presets", "tiny", "--steps", "1", "--warmup", "0", "--matmul",
                    "--batch-size", "2", "--seq-len", "8", "--force-bf16"])
    assert timed == ["fp32", "bf16"] and "timing it anyway" in capsys.readouterr().out


def test_step_speed_variants_train_to_the_same_loss():
    step_speed = _load("step_speed")
    from memsinks.config import load, mixture_of
    from memsinks.data.packing import collate

    config = load(str(ROOT / "configs" / "smoke.yaml"))
    mixture = mixture_of(config)
    batches = [collate([t for _, t in mixture.batch(s)], [0] * config.train.batch_size,
                       torch.device("cpu"), mixture.specials) for s in range(4)]
    base = step_speed.run({}, batches, config, mixture.vocab_size, 1)[1]
    for variant in ({"fused": True}, {"no_cache": True}, {"fused": True, "no_cache": True}):
        seconds, loss = step_speed.run(variant, batches, config, mixture.vocab_size, 1)
        assert seconds > 0 and loss == pytest.approx(base, rel=1e-5), variant
