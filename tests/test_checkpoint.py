"""Checkpoints: atomic, loadable without pickle, and a resumed run equals an uninterrupted one."""

import json
import os
import signal

import pytest
import torch

from memsinks import checkpoint as ckpt
from memsinks.data.config import DataConfig
from memsinks.data.stream import Mixture
from memsinks.model import ModelConfig, build_model
from memsinks.sinks import SinkConfig, Sinks
from memsinks.train import Interrupted, Recipe, TrainConfig, train

SHAPE = ModelConfig(num_layers=1, hidden_size=32, intermediate_size=64, num_heads=2,
                    num_kv_heads=2)


def _setup(steps=12):
    mixture = Mixture(DataConfig(n_repeated=4, repetitions=3, n_validation=4), steps, 8)
    config = TrainConfig(steps=steps, batch_size=8, warmup_steps=2, lr=3e-3,
                         checkpoint_every=4)
    model = build_model(SHAPE, len(mixture.vocab), seed=0)
    sinks = Sinks(model, SinkConfig())
    return mixture, config, model, sinks, Recipe(sink_ids=mixture.sink_ids(False, "all"))


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_sigterm_writes_a_checkpoint_and_resuming_gives_identical_weights(tmp_path):
    mixture, config, model, sinks, recipe = _setup()
    train(model, mixture, config, recipe, sinks=sinks, log_path=tmp_path / "a.jsonl")
    uninterrupted = _weights(model)

    def terminate_at_step_6(step):
        if step == 6:
            os.kill(os.getpid(), signal.SIGTERM)
        return {}

    config.eval_every = 3
    mixture, _, model, sinks, recipe = _setup()
    with pytest.raises(Interrupted, match="rerun the same command"):
        train(model, mixture, config, recipe, sinks=sinks, log_path=tmp_path / "b.jsonl",
              evaluate=terminate_at_step_6, checkpoint_dir=tmp_path / "ck", fingerprint="f")
    assert ckpt.latest(tmp_path / "ck").name == "step-6"
    assert not list((tmp_path / "ck").glob("step-4"))  # older checkpoints are pruned
    # a fresh process: new model object, same fingerprint -> resumes at step 6
    mixture, _, model, sinks, recipe = _setup()
    out = train(model, mixture, config, recipe, sinks=sinks, log_path=tmp_path / "b.jsonl",
                evaluate=lambda step: {}, checkpoint_dir=tmp_path / "ck", fingerprint="f")
    assert torch.equal(_weights(model), uninterrupted)
    steps = [json.loads(line).get("step") for line in
             (tmp_path / "b.jsonl").read_text().splitlines()]
    assert [s for s in steps if s is not None] == list(range(1, 13))
    assert [p["step"] for p in out["curve"]] == [3, 6, 9, 12]


def test_a_checkpoint_of_another_configuration_is_not_resumed(tmp_path, capsys):
    mixture, config, model, sinks, recipe = _setup(steps=8)
    train(model, mixture, config, recipe, sinks=sinks, log_path=tmp_path / "a.jsonl",
          checkpoint_dir=tmp_path / "ck", fingerprint="one")
    assert ckpt.latest(tmp_path / "ck").name == "step-4"
    mixture, config, model, sinks, recipe = _setup(steps=8)
    train(model, mixture, config, recipe, sinks=sinks, log_path=tmp_path / "b.jsonl",
          checkpoint_dir=tmp_path / "ck", fingerprint="two")
    assert "resuming" not in capsys.readouterr().out


def test_checkpoint_round_trip_keeps_tied_weights_and_optimizer_state(tmp_path):
    model = build_model(SHAPE, 50, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(input_ids=torch.tensor([[1, 5, 6]]), labels=torch.tensor([[1, 5, 6]])).loss.backward()
    optimizer.step()
    ckpt.save(tmp_path, 3, model.state_dict(), optimizer.state_dict(), {"note": "x"})
    assert not list(tmp_path.glob("*.tmp"))
    weights, opt_state, state = ckpt.load(ckpt.latest(tmp_path))
    assert state["step"] == 3 and state["note"] == "x"
    fresh = build_model(SHAPE, 50, seed=1)
    fresh.load_state_dict(weights)
    assert torch.equal(_weights(fresh), _weights(model))
    assert fresh.lm_head.weight.data_ptr() == fresh.model.embed_tokens.weight.data_ptr()
    again = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    again.load_state_dict(opt_state)
    restored, original = again.state_dict()["state"], optimizer.state_dict()["state"]
    assert list(restored) == list(original)
    for index, values in original.items():
        for key, value in values.items():
            assert torch.equal(restored[index][key], value), (index, key)
    # no pickle anywhere: every file is safetensors or JSON
    names = sorted(p.name for p in ckpt.latest(tmp_path).iterdir())
    assert names == ["model.safetensors", "optimizer.safetensors", "rng.safetensors",
                     "state.json"]


def test_an_unfinished_write_leaves_the_previous_checkpoint(tmp_path):
    model = build_model(SHAPE, 50, seed=0)
    optimizer = torch.optim.AdamW(model.parameters())
    ckpt.save(tmp_path, 2, model.state_dict(), optimizer.state_dict(), {})
    (tmp_path / "step-4.tmp").mkdir()  # a crash in the middle of writing step 4
    assert ckpt.latest(tmp_path).name == "step-2"
    (tmp_path / "latest").unlink()
    assert ckpt.latest(tmp_path).name == "step-2"


def test_a_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    mixture, config, model, sinks, recipe = _setup(steps=12)

    def poison_after_step_8(step):
        if step == 8:
            with torch.no_grad():
                model.model.embed_tokens.weight.fill_(float("nan"))
        return {}

    config.eval_every = 4
    # the weights go bad after step 8: its checkpoint is refused, step 4's is kept
    with pytest.raises(FloatingPointError, match="last good checkpoint is kept"):
        train(model, mixture, config, recipe, sinks=sinks, log_path=tmp_path / "a.jsonl",
              evaluate=poison_after_step_8, checkpoint_dir=tmp_path / "ck", fingerprint="f")
    weights, _, state = ckpt.load(ckpt.latest(tmp_path / "ck"))
    assert state["step"] == 4
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_the_command_line_exits_143_on_sigterm_and_a_rerun_resumes(tmp_path):
    import subprocess
    import sys
    import time

    args = [sys.executable, "-m", "memsinks.cli", "run", "configs/smoke.yaml",
            f"out_dir={tmp_path}", "methods=[standard]", "train.steps=300",
            "train.checkpoint_every=25", "train.eval_every=0", "train.threads=1", "--quiet"]
    process = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "smoke" / "standard" / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.is_file() or
                                      len(log.read_text().splitlines()) < 5):
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert "rerun the same command to resume" in err and "Traceback" not in err
    stopped_at = ckpt.latest(tmp_path / "smoke" / "standard" / "checkpoint")
    assert stopped_at is not None
    again = subprocess.run(args[:-1], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resuming from {stopped_at}" in again.stdout
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps == list(range(1, 301))


def test_a_truncated_checkpoint_file_is_named_with_the_fix(tmp_path):
    weights = {"w": torch.ones(4, 4)}
    path = ckpt.save(tmp_path / "checkpoint", 3, weights, {"state": {}, "param_groups": []},
                     {"fingerprint": "x"})
    model_file = path / "model.safetensors"
    model_file.write_bytes(model_file.read_bytes()[:20])
    with pytest.raises(ValueError, match=r"model\.safetensors is truncated or corrupt .* delete "):
        ckpt.load(path)


def test_a_second_process_on_the_same_method_directory_is_told_who_holds_it(tmp_path):
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from memsinks import checkpoint as c\n"
         f"with c.hold({str(tmp_path)!r}):\n    print('held', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ValueError, match=rf"in use by another process \(pid {holder.pid}\)"):
            with ckpt.hold(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with ckpt.hold(tmp_path):  # released when its holder dies
        assert (tmp_path / ".lock").read_text() == str(os.getpid())
