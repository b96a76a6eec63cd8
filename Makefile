# Two commands on a fresh machine: `make run` and `make test`. Every target installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SAMPLE_HOUSEHOLDS ?= 400
SAMPLE_DIR := data/sample
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/var/mlflow.db
export MLFLOW_ARTIFACTS_DESTINATION ?= $(CURDIR)/var/mlartifacts

.PHONY: install run test bench lint clean redis-bin sample evaluate reliability

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# redis-server is a system binary: install it from Debian's packages when missing.
redis-bin:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "redis-server not found: installing it with apt-get"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

$(SAMPLE_DIR)/transactions.parquet: | $(STAMP)
	$(PY) -m features prepare --source completejourney --out $(SAMPLE_DIR) --households $(SAMPLE_HOUSEHOLDS)

sample: $(SAMPLE_DIR)/transactions.parquet

evaluate: install sample
	mkdir -p var
	$(PY) -m training evaluate --data $(SAMPLE_DIR) --test-days 60 --k 10 --out var/evaluation.json

run: install redis-bin sample
	mkdir -p var
	$(PY) -m service.run_demo

test: install redis-bin
	$(PY) -m pytest -q -p no:cacheprovider

bench: install redis-bin
	$(PY) -m training.bench

reliability: install redis-bin
	$(PY) -m pytest -q -p no:cacheprovider -m "reliability" tests

lint: install
	$(PY) -m ruff check features training service tests

clean:
	rm -rf $(VENV) var data build *.egg-info .pytest_cache .ruff_cache
