"""`memsinks run --jobs N`: methods trained and assessed in parallel processes."""

import json

from memsinks.cli import main

METHODS = "methods=[standard,dedup,memsinks]"


def _results(out):
    results = json.loads((out / "smoke" / "results.json").read_text())
    return {name: (m["modes"], m["assessment"]) for name, m in results["methods"].items()}, \
        results["comparisons"]


def _strip_seconds(value):
    if isinstance(value, dict):
        return {k: _strip_seconds(v) for k, v in value.items()
                if k not in ("seconds", "parts", "relearn_seconds")}
    if isinstance(value, (list, tuple)):
        return [_strip_seconds(v) for v in value]
    return value


def test_two_jobs_give_the_results_of_one_process(tmp_path, capsys):
    one, two = tmp_path / "one", tmp_path / "two"
    args = ["configs/smoke.yaml", METHODS, "train.threads=1"]
    assert main(["run", *args, f"out_dir={one}", "--quiet"]) == 0
    assert main(["run", *args, f"out_dir={two}", "--jobs", "2"]) == 0
    printed = capsys.readouterr().out
    assert "3 methods in 2 processes of 1 thread(s) each" in printed
    assert "[memsinks] memorization metrics" in printed
    methods_one, comparisons_one = _results(one)
    methods_two, comparisons_two = _results(two)
    # one thread per process either way: the same floats, not just close ones
    assert _strip_seconds(methods_one) == _strip_seconds(methods_two)
    assert comparisons_one == comparisons_two
    assert (two / "smoke" / "report.md").is_file()
