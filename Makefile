# Two commands do all set-up: `make run` and `make test` (each creates .venv when missing).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := .demo/synth
REAL_CQ500 := ../shared/data/real/cq500/dicom
# pip's notes about optional local indexes are noise on machines that lack them.
QUIET_PIP := grep -v -e "is ignored: it is neither a file nor a directory" || true

.PHONY: venv run test lint bench clean postgres browser reliability train-data test-data train real-data cross-validate train-real ship-model export evaluate evaluate-in-sample

$(STAMP): pyproject.toml clients/python/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV) (torch, pytriton and the project; first time takes a few minutes)"
	@$(BIN)/python -m pip install -q -e ".[model,serve,export,dev]" -e "clients/python[fhir]" 2>&1 | $(QUIET_PIP)
	@$(BIN)/python -c "import ich, api, torch, pydicom, pylibjpeg, tritonclient.grpc, onnxruntime, highdicom, sqlalchemy, ich_client.fhir"
	@touch $(STAMP)

venv: $(STAMP)

run: venv
	@test -f $(DEMO)/manifest.json || $(BIN)/ich synth --out $(DEMO) --studies 2 --seed 1 --prevalence 1 --distractors 1 --slice-mm 5
	@echo "Starting Triton (ports 8010-8012) and the gateway (http://127.0.0.1:8000) with the shipped model;"
	@echo "the database is SQLite in .ich/ (or DATABASE_URL). A synthetic study with blood: $(DEMO)/case_00000/dicom"
	@$(BIN)/ich serve --example $(DEMO)/case_00000/dicom

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The job-store tests run against a real PostgreSQL: Debian's package, started by the tests.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { \
	  echo "installing PostgreSQL from Debian's packages (for the job-store tests)"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# The viewer's tests drive a real headless Chromium: Debian's chromium and chromium-driver.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "installing Chromium and its driver from Debian's packages (for the viewer tests)"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

test: venv postgres browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

# Hostile input, load, faults and security in their full profile (1,000-analysis soak), bounded
# to 15 minutes; regenerates docs/reliability.md. `make test` runs the short profile.
reliability: venv postgres browser
	ICH_RELIABILITY=full ICH_RELIABILITY_REPORT=docs/reliability.md \
	  timeout 900 $(BIN)/pytest tests/reliability -p no:cacheprovider
	@echo "figures: docs/reliability.md"

bench: venv
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/synth.py
	$(BIN)/python bench/analyze.py
	$(BIN)/python bench/triton.py
	$(BIN)/python bench/gateway.py

# The shipped model, reproduced (see docs/model-card.md): data, training, evaluation.
DATA := .data
SYNTH = @test -f $(DATA)/$(1)/manifest.json || $(BIN)/ich synth --out $(DATA)/$(1) --workers 2 $(2)

train-data: test-data
	$(call SYNTH,train_phantom5,--studies 300 --seed 1000 --prevalence 0.6 --slice-mm 5)
	$(call SYNTH,val,--studies 40 --seed 8000 --prevalence 0.5 --slice-mm 5)
	$(call SYNTH,train_real,--studies 40 --seed 3000 --prevalence 0.6 --background real)
	$(call SYNTH,train_drawn,--studies 40 --seed 2000 --prevalence 0.6)

# The held-out synthetic test sets (full-range DICOM) of `make evaluate` and `evaluate-real-NAME`.
test-data: venv
	$(call SYNTH,test_phantom,--studies 100 --seed 9000 --prevalence 0.5)
	$(call SYNTH,test_real,--studies 30 --seed 9500 --prevalence 0.5 --background real)

# The synthetic-pretrained model (ich/model/weights/ich-cpu-synthetic.pt), which real-data
# training starts from.
train: train-data
	$(BIN)/ich train --config cpu --out runs/cpu-default --resume

# Real anatomy (docs/model-card.md): CT-ICH converted once (never copied into the repo), then
# 5-fold patient-level cross-validation and the shipped model on all 44 patients, whose
# operating point comes from the out-of-fold predictions. Interrupted runs resume.
CTICH := $(DATA)/ctich
real-data: venv
	@test -f $(CTICH)/manifest.json || $(BIN)/ich import-ctich --out $(CTICH)
	$(call SYNTH,train_real,--studies 40 --seed 3000 --prevalence 0.6 --background real)
	$(call SYNTH,train_drawn,--studies 40 --seed 2000 --prevalence 0.6)
	$(call SYNTH,train_ctich,--studies 40 --seed 4000 --prevalence 0.6 --background ctich --real-dir $(CTICH))

# A cross-validation's report, operating point, folds and fold logs into docs/evaluation.
define publish-cv
	rm -rf $(2) && cp -r $(1)/report $(2)
	cp $(1)/operating_point.json $(1)/folds.json $(2)/
	for k in 0 1 2 3 4; do sed "s/^{/{\"fold\": $$k, /" $(1)/fold_$$k/log.jsonl; done > $(2)/training-log.jsonl
endef

cross-validate: real-data
	$(BIN)/ich train --config real --folds 5 --fold-data $(CTICH) --out runs/real-cv --resume
	$(call publish-cv,runs/real-cv,docs/evaluation/ctich_cv)

# Variants of the recipe on the same folds (see the model card): `make cross-validate-hard`
# (ich/train/configs/real-hard.yaml), `make cross-validate-focus`, and `make
# cross-validate-long`, which continues the focus run fold by fold; `make train-real-NAME`
# trains the variant on all 44 patients with its cross-validated operating point.
cross-validate-%: real-data
	$(BIN)/ich train --config real-$* --folds 5 --fold-data $(CTICH) --out runs/real-$*-cv --resume
	$(call publish-cv,runs/real-$*-cv,docs/evaluation/ctich_cv_$*)

train-real-%: real-data
	$(BIN)/ich train --config real-$* --data $(DATA)/train_real --data $(DATA)/train_drawn \
	  --data $(CTICH) --operating-point runs/real-$*-cv/operating_point.json --out runs/real-$* --resume

# The held-out checks of a variant's all-patient model, beside the shipped model's (the model
# card): the synthetic test sets, the real single slices, and the two real heads without blood.
evaluate-real-%: test-data
	$(BIN)/ich evaluate --model runs/real-$*/model.pt --data $(DATA)/test_phantom \
	  --out docs/evaluation/real_$*/test_phantom
	$(BIN)/ich evaluate --model runs/real-$*/model.pt --data $(DATA)/test_real \
	  --out docs/evaluation/real_$*/test_real
	$(BIN)/ich evaluate --model runs/real-$*/model.pt --real ../shared/data/real \
	  --out docs/evaluation/real_$*/real_slices
	$(BIN)/ich analyze --model runs/real-$*/model.pt ../shared/data/real/ge_head_gantry_tilt \
	  > docs/evaluation/real_$*/ge_head.txt
	$(BIN)/ich analyze --model runs/real-$*/model.pt $(REAL_CQ500) > docs/evaluation/real_$*/cq500_ct0.txt

# The shipped model on the 44 patients it trained on (docs/evaluation/ctich_in_sample): how well
# the recipe fits its own training patients, beside the out-of-fold figures.
evaluate-in-sample: real-data
	$(BIN)/ich evaluate --data $(CTICH) --out docs/evaluation/ctich_in_sample

cross-validate-long: cross-validate-focus
train-real-long: train-real-focus cross-validate-long

train-real: real-data
	$(BIN)/ich train --config real --data $(DATA)/train_real --data $(DATA)/train_drawn \
	  --data $(CTICH) --operating-point runs/real-cv/operating_point.json --out runs/real --resume

ship-model:
	cp runs/real/model.pt ich/model/weights/ich-cpu-default.pt
	$(BIN)/ich export

# The Triton model repository from the shipped model (TorchScript, CPU); see export/README.md.
export: venv
	$(BIN)/ich export

evaluate: test-data
	$(BIN)/ich evaluate --data $(DATA)/test_phantom --out docs/evaluation/test_phantom
	$(BIN)/ich evaluate --data $(DATA)/test_real --out docs/evaluation/test_real
	$(BIN)/ich evaluate --real ../shared/data/real --out docs/evaluation/real_slices

clean:
	rm -rf .demo .ich .pytest_cache .ruff_cache
