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

.PHONY: install run test bench audit lint clean redis-bin postgres-bin chromium-bin java-bin sample evaluate evaluate-value reliability screens

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,spark]'
	touch $(STAMP)

# redis-server is a system binary: install it from Debian's packages when missing.
redis-bin:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "redis-server not found: installing it with apt-get"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

# Java 17 for Spark 4 (`python -m training train --engine spark`, its test in make test), from Debian's
# packages when `java` is missing.
java-bin:
	@command -v java >/dev/null 2>&1 || { \
	  echo "java not found: installing openjdk-17-jre-headless with apt-get"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null; }

# PostgreSQL's programs (initdb, postgres under /usr/lib/postgresql/<version>/bin), from Debian's packages
# when missing: the event store's tests start a server of their own on a free port, as the postgres user,
# in a temporary folder. The cluster the package creates (and any server on 5432) is neither needed nor used.
postgres-bin:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "PostgreSQL not found: installing it with apt-get"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# Debian's chromium and chromium-driver, for the browser tests (tests/browser/, Selenium): installed
# when missing, never downloaded by a test. A machine where the browser cannot start fails those tests.
chromium-bin:
	@{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || { \
	  echo "chromium or chromedriver not found: installing them with apt-get"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

$(SAMPLE_DIR)/transactions.parquet: | $(STAMP)
	$(PY) -m features prepare --source completejourney --out $(SAMPLE_DIR) --households $(SAMPLE_HOUSEHOLDS)

sample: $(SAMPLE_DIR)/transactions.parquet

evaluate: install sample
	mkdir -p var
	$(PY) -m training evaluate --data $(SAMPLE_DIR) --test-days 60 --k 10 --out var/evaluation.json

# The client value model (BG/NBD + Gamma-Gamma) on a time split of the full data, against two baselines:
# docs/value_evaluation.json and the plots in docs/ (docs/benchmarks.md quotes them). Not part of `make test`.
VALUE_DATA ?= data/full
evaluate-value: install
	test -f $(VALUE_DATA)/transactions.parquet || $(PY) -m features prepare --source completejourney --out $(VALUE_DATA)
	$(PY) -m training value-evaluate --data $(VALUE_DATA) --holdout-days 60 --out docs/value_evaluation.json --plots docs

run: install redis-bin sample
	mkdir -p var
	$(PY) -m service.run_demo

# --durations=20: every run names its 20 slowest tests (the suite must stay well under CI's 20 minutes)
test: install redis-bin postgres-bin chromium-bin java-bin
	$(PY) -m pytest -q -p no:cacheprovider --durations=20

# Screenshots of every screen into docs/screens/ (headless Chromium, the catalogue double, made-up data).
screens: install redis-bin chromium-bin
	PYTHONPATH=$(CURDIR) $(PY) tests/browser/screenshots.py --out docs/screens $(SCREENS_ARGS)

# Serving (wrk + open loop; the loop's cost on SQLite and a PostgreSQL of its own) then training figures,
# in one run: var/bench/results.json.
# wrk is a system binary, installed from Debian's packages like redis-server. Quick look:
# make bench BENCH_ARGS="--data data/sample --seconds 3 --skip-training"
bench: install redis-bin postgres-bin chromium-bin java-bin
	@command -v wrk >/dev/null 2>&1 || { \
	  echo "wrk not found: installing it with apt-get"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(PY) tests/bench/run.py $(BENCH_ARGS)
	PYTHONPATH=$(CURDIR) $(PY) tests/bench/bench_widget.py

# The full model's answers through the real service, checked rule by rule: docs/audit.md. It trains into
# its own store (var/audit/mlflow.db) and prepares data/full when missing. Audit the model already there:
# make audit AUDIT_ARGS="--reuse-model"
audit: install redis-bin
	$(PY) tests/audit/run.py $(AUDIT_ARGS)

# Fault, fuzz and security tests at full length (make test runs them short), then a summary table;
# the figures also land in var/reliability/summary.json (docs/reliability.md quotes them).
reliability: install redis-bin postgres-bin
	mkdir -p var/reliability
	RELIABILITY_FULL=1 RELIABILITY_SUMMARY=var/reliability/summary.json \
	  $(PY) -m pytest -q -p no:cacheprovider -m "reliability" tests

# ruff, then pip-audit on the installed environment (findings fail the target; packages it could
# not look up are counted, since then its "no known vulnerabilities" covers only the rest).
lint: install
	$(PY) -m ruff check envconfig eventstore features scoring training service tests
	@mkdir -p var
	@status=0; $(PY) -m pip_audit --skip-editable --progress-spinner off --desc on > var/pip-audit.txt 2>&1 || status=$$?; \
	  sed '/Skip Reason/,$$d' var/pip-audit.txt; \
	  skipped=$$(grep -c "could not be audited" var/pip-audit.txt || true); \
	  if [ "$$skipped" -gt 0 ]; then echo "pip-audit: $$skipped packages could not be looked up (is its vulnerability service reachable?); details in var/pip-audit.txt"; fi; \
	  exit $$status

clean:
	rm -rf $(VENV) var data build *.egg-info .pytest_cache .ruff_cache
