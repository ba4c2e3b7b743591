# snc - set-up, demo and tests. On a fresh machine:  make demo  then  make test
#
# PYTHON  builds .venv (Python 3.10+; torch is pinned to the local CPU wheel).
# PY310   builds .venv-lava (lava-nc 0.10.0 needs Python 3.10 exactly); override with
#         make test PY310=/path/to/python3.10

PYTHON ?= python3
PY310 ?= $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.10.*/bin/python3.10) $(shell command -v python3.10 2>/dev/null))
VENV := .venv
# The only torch spec that resolves to the local CPU wheel; any other pulls GBs of CUDA wheels.
TORCH_PIN := torch==2.13.0

.PHONY: demo test venv bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet $(TORCH_PIN)
	$(VENV)/bin/pip install --quiet -e '.[test,examples]'
	# snnTorch is a reference implementation for tests and benchmarks; its own requirements
	# would replace the pinned torch, so it goes in without dependencies.
	$(VENV)/bin/pip install --quiet --no-deps snntorch
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/python examples/demo.py

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q

bench: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/sim_throughput.py

clean:
	rm -rf $(VENV) examples/models .pytest_cache
