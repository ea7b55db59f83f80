# bankseg: two commands on a fresh machine — `make run` and `make test`. `make help` lists the rest.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS := spark,pipeline,notebooks,dev
export DVC_NO_ANALYTICS := 1
export PYTHONUNBUFFERED := 1
# OpenMP threads sleep instead of spinning while they wait: LightGBM is 10-30x slower on a busy machine otherwise.
export OMP_WAIT_POLICY ?= PASSIVE

.DEFAULT_GOAL := help
.PHONY: help setup run run-berka simulate test test-fast lint lock clean mlflow-ui

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24" "setuptools>=69" wheel
	# requirements.lock pins every package (tested together); pyproject.toml holds the ranges.
	$(BIN)/pip install --quiet -c requirements.lock -e ".[$(EXTRAS)]"
	@touch $@

setup: $(STAMP) ## create .venv (if missing) and install bankseg with pinned versions

run: setup ## the whole pipeline (dvc repro) on the simulated bank: 50,000 customers x 36 months
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro segment_report
	@$(BIN)/python -m bankseg.jobs.where

run-berka: setup ## the same pipeline on the real Berka bank (../shared/data/berka_pkdd99): data/, outputs/, reports/berka
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro berka_segment_report
	@$(BIN)/python -m bankseg.jobs.where berka

simulate: setup ## only simulate and validate the default bank
	$(BIN)/bankseg-simulate

test: setup ## the whole test suite (slow, Spark, browser and PostgreSQL tests) and the notebooks
	$(BIN)/pytest -q --durations=25 --nbmake tests notebooks

test-fast: setup ## the tests not marked slow (no notebooks)
	$(BIN)/pytest -q -m "not slow" tests

lint: setup ## ruff
	$(BIN)/ruff check .

lock: setup ## re-pin requirements.lock from the current .venv (after changing constraints.txt)
	$(BIN)/pip freeze --exclude-editable | grep -v '^-e ' > requirements.lock

mlflow-ui: setup ## browse the local MLflow store at http://127.0.0.1:5000
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns/mlflow.db --port 5000

clean: ## remove generated data, outputs and the local MLflow store (keeps .venv)
	rm -rf data outputs multirun reports mlruns/mlflow.db mlruns/artifacts dvc.lock
