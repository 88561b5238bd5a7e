# Two entry points, each creating its own virtual environment:
#   make bench-quick   set up, then run a quick Planetoid run (Cora, paper protocol,
#                      1 split x 2 inits) and the Cora speed/memory table
#   make test          set up, then run the default test suite
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TGD_SHARED_DATA ?= $(abspath ../shared/data)
OUT ?= results
PY := $(VENV)/bin/python
export TGD_SHARED_DATA

.PHONY: venv test test-slow mutation bench-quick clean

$(VENV)/.installed-%: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[$*]"
	touch $@

venv: $(VENV)/.installed-dev

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q

test-slow: $(VENV)/.installed-dev
	$(PY) -m pytest -q -m slow

# Single-point mutations of the core against their tests (not part of
# `make test`): prints the score and the surviving mutations.
mutation: $(VENV)/.installed-dev
	$(PY) tests/mutation.py

bench-quick: $(VENV)/.installed-dev
	$(PY) benchmarks/planetoid.py --dataset Cora --model diffresnet gcn \
		--protocol random --splits 1 --inits 2 --root $(TGD_SHARED_DATA) \
		--out $(OUT)/planetoid-quick.jsonl
	$(PY) benchmarks/planetoid.py --summary $(OUT)/planetoid-quick.jsonl
	$(PY) benchmarks/speed.py --graphs cora --root $(TGD_SHARED_DATA) \
		--repeats 3 --warmup 1 --out $(OUT)/speed-quick

clean:
	rm -rf $(VENV) $(OUT) *.egg-info
