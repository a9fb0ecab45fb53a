# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# `make demo` needs only what running needs; the test extras (~600 MB: checkov, schemathesis...)
# come with `make test`/`make venv`, which also satisfy the runtime stamp.
RUN_STAMP := $(VENV)/.installed-run

DEMO_EXPORTER   ?= 127.0.0.1:9100
DEMO_AGGREGATOR ?= 127.0.0.1:5000
PYTEST_ARGS     ?=

.PHONY: demo test lint venv bench soak mutation clean

venv: $(STAMP)

$(STAMP): setup.py pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(RUN_STAMP) $@

$(RUN_STAMP): setup.py pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

demo: $(RUN_STAMP)
	$(BIN)/python scripts/demo.py --exporter $(DEMO_EXPORTER) --aggregator $(DEMO_AGGREGATOR)

lint: $(STAMP)
	$(BIN)/ruff check .

# pytest exits 5 when it collected nothing; that is a failure here, not a pass.
test: $(STAMP) lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench

soak: $(STAMP)
	K8SMON_SOAK_SECONDS=$${K8SMON_SOAK_SECONDS:-900} $(BIN)/python -m pytest -m soak tests -p no:cacheprovider

# Mutation testing of the numeric core (docs/testing.md): one module at a time, one worker, nice 19.
# MUTATION_ARGS: e.g. `--module aggregator/rates.py`, `--changed main`, `--write-docs`.
MUTATION_ARGS ?=
mutation: $(STAMP)
	$(BIN)/python scripts/mutation.py --json build/mutation/results.json $(MUTATION_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
