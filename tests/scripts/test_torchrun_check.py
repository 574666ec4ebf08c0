"""scripts/torchrun_check.py: the sink methods under torchrun (2 processes, gloo) train the
model one process trains, on a packed text corpus."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "scripts" / "torchrun_check.py"


def test_two_processes_under_torchrun_train_what_one_process_trains(tmp_path):
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "check"), "--steps",
                    "4", "--docs", "200"], check=True, capture_output=True, text=True)
    result = json.loads((tmp_path / "check" / "compare.json").read_text())
    assert result["world_sizes"] == [1, 2]
    assert set(result["methods"]) == {"memsinks", "memsinks-repeated"}
    for method in result["methods"].values():
        assert len(method["one_process"]["loss"]) == 4
        assert method["one_process"]["loss"][-1] < method["one_process"]["loss"][0]  # it learns
        assert method["max_abs_difference"]["loss"] <= 2e-5
        assert method["max_abs_difference"]["grad_norm"] <= 2e-4
        assert 0 <= method["max_abs_difference"]["weights"] < 1e-5
        assert method["tokens"][0] == method["tokens"][1]
