"""train.report_to: a study's curves and figures in TensorBoard, W&B (offline) and trackio
(local), each read back with its own file format; no network."""

from __future__ import annotations

import glob
import importlib.util
import json
import sqlite3
import struct
import sys

import pytest

from memsinks.cli import main
from memsinks.integrations.tracking import Tracker, check_backends

pytest.importorskip("tensorboard")
STUDY = ["configs/smoke.yaml", "methods=[standard,memsinks]", "--quiet"]


def _wandb_records(path: str) -> list:
    """The protobuf records of an offline W&B run file (a LevelDB-style log: 32 KiB blocks,
    records with a 7-byte header of checksum, length and type: full, first, middle, last)."""
    from wandb.proto import wandb_internal_pb2

    data = open(path, "rb").read()
    assert data[:4] == b":W&B"
    pos, block, records, pending = 7, 32768, [], b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def _items(items) -> dict:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    root = tmp_path_factory.mktemp("tracked")
    backends = ["tensorboard"]
    # found without importing: trackio reads TRACKIO_DIR when it is imported
    backends += [name for name in ("wandb", "trackio") if importlib.util.find_spec(name)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_SILENT", "true")
        patch.setenv("TRACKIO_DIR", str(root / "trackio"))
        assert main(["run", *STUDY, f"out_dir={root}",
                     f"train.report_to=[{','.join(backends)}]"]) == 0
    return root / "smoke", backends


def test_tensorboard_event_files_load_in_tensorboard_s_reader(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    study, _ = tracked
    run = EventAccumulator(str(study / "memsinks" / "tensorboard"))
    run.Reload()
    tags = run.Tags()["scalars"]
    assert [e.step for e in run.Scalars("train/loss")] == list(range(1, 13))
    assert {"eval/drop/L_R", "eval/own/L_H", "summary/drop/gap"} <= set(tags)
    metrics = json.loads((study / "memsinks" / "metrics.json").read_text())
    gap = run.Scalars("summary/drop/gap")[-1].value
    assert gap == pytest.approx(metrics["modes"]["drop"]["gap"][0], rel=1e-6)
    assert "config/text_summary" in run.Tags()["tensors"]
    figures = EventAccumulator(str(study / "tensorboard"))
    figures.Reload()
    results = json.loads((study / "results.json").read_text())
    closure = figures.Scalars("summary/memsinks/closure_vs_standard")[-1].value
    assert closure == pytest.approx(results["comparisons"]["memsinks"]["closure_vs_standard"][0],
                                    rel=1e-6)
    assert "summary/memsinks/drop/auroc_loss" in figures.Tags()["scalars"]


def test_wandb_offline_runs_hold_the_curves_and_the_study_s_figures(tracked):
    study, backends = tracked
    if "wandb" not in backends:
        pytest.skip("wandb is not installed")
    (method_file,) = glob.glob(str(study / "memsinks" / "wandb" / "offline-run-*" / "*.wandb"))
    records = _wandb_records(method_file)
    history = [_items(r.history.item) for r in records if r.WhichOneof("record_type")
               == "history"]
    assert [h["_step"] for h in history] == list(range(1, 13))
    assert "eval/drop/L_R" in history[5] and "train/loss" in history[0]
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.project == "smoke" and run.display_name == "smoke/memsinks"
    config = _items(run.config.update)
    assert config["name"] == "smoke" and config["train"]["report_to"][0] == "tensorboard"
    (study_file,) = glob.glob(str(study / "wandb" / "offline-run-*" / "*.wandb"))
    summary = {}
    for record in _wandb_records(study_file):
        if record.WhichOneof("record_type") == "summary":
            summary.update(_items(record.summary.update))
    results = json.loads((study / "results.json").read_text())
    assert summary["memsinks/closure_vs_standard"] == pytest.approx(
        results["comparisons"]["memsinks"]["closure_vs_standard"][0])


def test_trackio_keeps_the_runs_in_its_local_database(tracked):
    study, backends = tracked
    if "trackio" not in backends:
        pytest.skip("trackio is not installed")
    (database,) = glob.glob(str(study.parent / "trackio" / "*.db"))
    rows = sqlite3.connect(database).execute(
        "select run_name, step, metrics from metrics").fetchall()
    runs = {name for name, _, _ in rows}
    assert {"smoke/standard", "smoke/memsinks", "smoke/study"} <= runs
    losses = [json.loads(m) for name, _, m in rows if name == "smoke/memsinks"]
    assert sum("train/loss" in m for m in losses) == 12
    figures = {k: v for name, _, m in rows if name == "smoke/study"
               for k, v in json.loads(m).items()}
    assert "summary/memsinks/closure_vs_standard" in figures


def test_bad_or_missing_backends_get_one_sentence(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="'mlflow', which is not one of tensorboard, wandb"):
        check_backends(["mlflow"])
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if it were not installed
    with pytest.raises(ValueError, match="names wandb, which is not installed here; pip"):
        Tracker(["wandb"], project="p", name="n", config={}, directory=tmp_path)
    with Tracker([], project="p", name="n", config={}, directory=tmp_path) as nothing:
        nothing.log({"loss": 1.0}, 1)  # no backend: a no-op
    assert not list(tmp_path.iterdir())
