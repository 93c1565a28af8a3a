# CA4: the ca4-* lifecycle targets (see ca4/MAKEFILE-CONTRACT.md), the local stack and the tests.
# Targets are thin: they call nox, terraform, kubectl or a script.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
UV_VERSION ?= 0.13.8
NOX_VERSION ?= 2026.10.20
NOX := $(VENV)/bin/nox
export UV_PYTHON_DOWNLOADS ?= never

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-24s %s\n", $$1, $$2}'

# --- bootstrap: a small venv holding only the task runner (nox) and uv -------------------

$(VENV)/.bootstrapped:
	@echo ">> bootstrapping $(VENV) with uv $(UV_VERSION) and nox $(NOX_VERSION)"
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11+"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION) nox==$(NOX_VERSION)
	@touch $@

.PHONY: bootstrap
bootstrap: $(VENV)/.bootstrapped ## create the tool venv (uv + nox)

# --- tests -------------------------------------------------------------------------------

# Debian packages the tests need (installed only when missing; CI runs as root)
TEST_PACKAGES ?= prometheus

.PHONY: test-packages
test-packages: ## install the Debian packages the tests need, if missing
	scripts/ensure_packages.sh $(TEST_PACKAGES)

.PHONY: test
test: $(VENV)/.bootstrapped test-packages ## everything CI runs: lint, unit, integration and the Gherkin features locally
	@echo ">> make test: lint, unit, integration tests and features (fixtures start Kafka, FerretDB, moto, Prometheus)"
	$(NOX) -s lint unit integration local

.PHONY: lint
lint: $(VENV)/.bootstrapped ## ruff + mypy
	$(NOX) -s lint

.PHONY: unit
unit: $(VENV)/.bootstrapped ## unit tests only
	$(NOX) -s unit

# --- the local stack ---------------------------------------------------------------------

.PHONY: local-up
local-up: $(VENV)/.bootstrapped ## start Kafka, FerretDB, S3 (moto), the worker and the API on 127.0.0.1
	$(NOX) -s stack -- up

.PHONY: local-demo
local-demo: $(VENV)/.bootstrapped ## local-up, then send the H200 captures through the API and show what landed
	$(NOX) -s demo

.PHONY: local-status
local-status: $(VENV)/.bootstrapped ## show each local component and its health
	$(NOX) -s stack -- status

.PHONY: local-down
local-down: $(VENV)/.bootstrapped ## stop the local stack (data kept in .ca4-local)
	$(NOX) -s stack -- down

.PHONY: local-clean
local-clean: $(VENV)/.bootstrapped ## stop the local stack and delete .ca4-local (keeps the download cache)
	$(NOX) -s stack -- clean

.PHONY: local-verify
local-verify: $(VENV)/.bootstrapped test-packages ## every Gherkin feature against a fresh local stack; reports in reports/
	$(NOX) -s local

.PHONY: producer-bundle
producer-bundle: $(VENV)/.bootstrapped ## build dist/ca4_producer.zip for the Colab notebook (prints its SHA-256)
	$(NOX) -s bundle

.PHONY: clean
clean: ## remove build outputs and reports (not the local stack's data)
	rm -rf .nox .mypy_cache .ruff_cache .pytest_cache reports build dist
