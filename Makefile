# Two commands do all set-up: `make run` and `make test` (each creates .venv when missing).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := .demo/study
REAL_CQ500 := ../shared/data/real/cq500/dicom
# pip's notes about optional local indexes are noise on machines that lack them.
QUIET_PIP := grep -v -e "is ignored: it is neither a file nor a directory" || true

.PHONY: venv run test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV) (torch, pytriton and the project; first time takes a few minutes)"
	@$(BIN)/python -m pip install -q -e ".[model,serve,dev]" 2>&1 | $(QUIET_PIP)
	@$(BIN)/python -c "import ich, torch, pydicom, pylibjpeg" 
	@touch $(STAMP)

venv: $(STAMP)

run: venv
	@test -d $(DEMO) || $(BIN)/ich synth $(DEMO)
	@COLUMNS=$${COLUMNS:-140} $(BIN)/ich inspect $(DEMO) --decode
	@if [ -d $(REAL_CQ500) ]; then echo; echo "Real CT, three series of two studies (CQ500):"; \
	  COLUMNS=$${COLUMNS:-140} $(BIN)/ich inspect $(REAL_CQ500) --decode; fi
	@echo
	@echo "Ingestion works on this study: $(DEMO) (synthetic, with the distractor series a scanner sends)."
	@echo "Try it on your own DICOM:   $(BIN)/ich inspect PATH [--json] [--decode]"
	@echo "Write another study:        $(BIN)/ich synth OUT [--tilt 15] [--matrix 256]"
	@echo "All commands:               $(BIN)/ich --help"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

bench: venv
	$(BIN)/python bench/ingest.py

clean:
	rm -rf .demo .pytest_cache .ruff_cache
