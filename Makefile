# protlab: `make demo` runs the demo pipeline, `make test` the tests. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export JUPYTER_CONFIG_DIR  := $(CURDIR)/.jupyter/config
export JUPYTER_DATA_DIR    := $(CURDIR)/.jupyter/data
export JUPYTER_RUNTIME_DIR := $(CURDIR)/.jupyter/runtime
export IPYTHONDIR          := $(CURDIR)/.jupyter/ipython
export TORCH_HOME          ?= $(CURDIR)/.cache/torch
export HF_HUB_OFFLINE      ?= 1
export MPLBACKEND          := Agg
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
TEST_WORKERS ?= 2

.PHONY: setup demo demo-quick test test-fast lab bench results clean strip

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	$(BIN)/python -m protlab.plot.assets || true
	@touch $(STAMP)

setup: $(STAMP)

# Figures stay in runs/demo/figures (untracked): a demo leaves `git status` clean.
demo: setup
	$(BIN)/python -m protlab.demo --run-dir runs/demo

demo-quick: setup
	$(BIN)/python -m protlab.demo --run-dir runs/demo --quick

test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --durations=15 tests

test-fast: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not slow" tests

# Lab at the repository root; kernels start in notebooks/, and the notebooks read relative
# paths (run_dir = "runs/demo") from the repository root, so they find the demo's run.
lab: setup
	$(BIN)/python -m ipykernel install --sys-prefix --name protlab --display-name "Python (protlab)"
	$(BIN)/jupyter lab $(ROOT_FLAG) --ServerApp.root_dir=$(CURDIR)

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done
	$(BIN)/python benchmarks/make_results.py

# benchmarks/RESULTS.md from the records benchmarks wrote to benchmarks/results/
results: setup
	$(BIN)/python benchmarks/make_results.py

strip:
	$(BIN)/python -m protlab.notebooks notebooks/*.ipynb

clean:
	rm -rf runs .jupyter .pytest_cache
