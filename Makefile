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

LAVA_VENV := .venv-lava
LAVA_PIN := lava-nc==0.10.0

# Peer ANN->SNN converters for benchmarks/vs_peers.py, with their small dependencies. The peers'
# own requirements (torchvision, torchaudio, tensorboard, samna, ...) would replace the pinned
# torch, so they go in with --no-deps (the pyproject "peers" extra names the same versions).
PEERS_PIN := spikingjelly==2.0.0 sinabs==3.1.3
PEERS_DEPS := loguru requests h5py tqdm matplotlib pbr
PEERS_NODEPS := nir==1.0.8 nirtorch==2.6

.PHONY: demo test venv lava oracles bench bench-peers peers clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet $(TORCH_PIN)
	$(VENV)/bin/pip install --quiet -e '.[test,examples,distributed]'
	# snnTorch is a reference implementation for tests and benchmarks; its own requirements
	# would replace the pinned torch, so it goes in without dependencies.
	$(VENV)/bin/pip install --quiet --no-deps snntorch
	# nirtorch: snnTorch's NIR exporter needs it (tests compare snc with snnTorch through NIR);
	# its declared torch requirement would also replace the pinned torch.
	$(VENV)/bin/pip install --quiet --no-deps nirtorch==2.6
	touch $@

# Lava 0.10 needs Python 3.10 and numpy < 2: its own environment, without torch.
lava: $(LAVA_VENV)/.installed

$(LAVA_VENV)/.installed:
	@if [ -z "$(PY310)" ] || ! "$(PY310)" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then \
	  echo "make lava: no Python 3.10 interpreter found (lava-nc 0.10 needs exactly 3.10)." >&2; \
	  echo "  install one (e.g. pyenv install 3.10) or pass it: make test PY310=/path/to/python3.10" >&2; \
	  exit 1; fi
	$(PY310) -m venv $(LAVA_VENV)
	$(LAVA_VENV)/bin/pip install --quiet $(LAVA_PIN)
	# lava-dl's netx loader (tests run snc's netx exports in it); its declared torch requirement
	# would pull gigabytes of CUDA wheels, and the loader does not need it (docs/netx.md).
	$(LAVA_VENV)/bin/pip install --quiet --no-deps lava-dl==0.6.0 h5py
	$(LAVA_VENV)/bin/python -c "import lava.proc.lif.process"
	touch $@

# Independent oracles for tests/validation (docs/validation.md): SANA-FE (its calibrated Loihi
# architecture ships in the wheel) and the NeuroBench harness. Their own environment: neurobench
# brings numpy 2 and torchaudio, and sanafe's wheel puts top-level src/ tests/ scripts/ folders
# into site-packages; snc drives both through a subprocess and never imports them.
ORACLE_VENV := .venv-oracles
ORACLE_PIN := sanafe==2.2.9 neurobench==2.3.0

oracles: $(ORACLE_VENV)/.installed

$(ORACLE_VENV)/.installed:
	$(PYTHON) -m venv $(ORACLE_VENV)
	$(ORACLE_VENV)/bin/pip install --quiet $(TORCH_PIN)
	$(ORACLE_VENV)/bin/pip install --quiet $(ORACLE_PIN)
	$(ORACLE_VENV)/bin/python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)"
	$(ORACLE_VENV)/bin/python -c "import sanafe, neurobench"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/python examples/demo.py

test: $(VENV)/.installed $(LAVA_VENV)/.installed $(ORACLE_VENV)/.installed
	SNC_LAVA_PYTHON=$(CURDIR)/$(LAVA_VENV)/bin/python SNC_ORACLE_PYTHON=$(CURDIR)/$(ORACLE_VENV)/bin/python \
	  $(VENV)/bin/python -m pytest -q

bench: $(VENV)/.installed $(LAVA_VENV)/.installed
	$(VENV)/bin/python benchmarks/sim_throughput.py
	SNC_LAVA_PYTHON=$(CURDIR)/$(LAVA_VENV)/bin/python $(VENV)/bin/python benchmarks/vs_lava.py

peers: $(VENV)/.peers-installed

$(VENV)/.peers-installed: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --no-deps $(PEERS_PIN)
	$(VENV)/bin/pip install --quiet $(PEERS_DEPS)
	$(VENV)/bin/pip install --quiet --no-deps $(PEERS_NODEPS)
	$(VENV)/bin/python -c "import torch, sys; v = torch.__version__; print('torch', v); sys.exit(0 if v.startswith('2.13.0') else 1)"
	touch $@

# snc against SpikingJelly and Sinabs (docs/benchmarks.md); ARGS=--quick for a smoke run.
bench-peers: $(VENV)/.peers-installed
	$(VENV)/bin/python benchmarks/vs_peers.py $(ARGS)

clean:
	rm -rf $(VENV) $(LAVA_VENV) $(ORACLE_VENV) examples/models .pytest_cache
