# Two commands a new user needs: `make study` (the whole study on the built-in corpus) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup study test lint bench gpu-check clean

$(BIN)/memsinks: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch is pinned here (a CPU build lies on this machine's disk); the package itself asks for a range.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,annotate,track]'
	touch $@

setup: $(BIN)/memsinks

study: setup
	$(BIN)/memsinks run configs/default.yaml --jobs 2

test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check src tests benchmarks examples scripts

bench: setup
	$(BIN)/python benchmarks/sink_overhead.py
	$(BIN)/python benchmarks/packing.py
	$(BIN)/python benchmarks/precision.py
	$(BIN)/python benchmarks/text_access.py
	$(BIN)/python benchmarks/step_speed.py --steps 20

gpu-check: setup
	$(BIN)/python benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) runs
