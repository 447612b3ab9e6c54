# segmentation: customer segments from an Optuna sweep, tracked in MLflow.
# `make sweep` and `make test` create the virtual env themselves.

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
EXPERIMENT ?= mall_income_spending
ARGS ?=
WORKERS ?= 1
RUN ?=
MODEL ?=
INPUT ?=
OUTPUT ?=
HOLDOUT ?=
PORT ?= 5001
UI_PORT ?= 5000
DASHBOARD_PORT ?= 8080
PYTEST_ARGS ?=
# Test processes (pytest-xdist); each test file runs whole on one of them, so its module
# fixtures (a Spark session, a finished sweep) are built once. 0: in this process.
PYTEST_WORKERS ?= 2
XDIST = -n $(PYTEST_WORKERS) --dist loadfile
ENGINE ?= local

export SEGMENTATION_ROOT := $(CURDIR)
# Data files are read from DATA_DIR (default data/raw); the offline default is synthetic data.
ifdef DATA_DIR
export DATA_DIR := $(abspath $(DATA_DIR))
endif

.DEFAULT_GOAL := help
.PHONY: help venv spark-install sweep test test-integration test-all lint format bench ui dashboard promote rollback predict audiences drift serve report clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  Variables: EXPERIMENT=name DATA_DIR=dir ARGS=\"hydra overrides\" WORKERS=n RUN=id"
	@echo "             INPUT=file OUTPUT=file MODEL=models:/name@alias PORT=n DASHBOARD_PORT=n"
	@echo "             HOLDOUT=share (audiences: control group per segment, e.g. 0.1)"
	@echo "             ENGINE=local|spark (make spark-install first)"

# (Re)install when the env is missing or older than pyproject.toml.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres]'
	@touch $(STAMP)

venv: $(STAMP) ## Create .venv and install the project (done by the other targets)

spark-install: $(STAMP) ## Java 17 (Debian) and PySpark, for ENGINE=spark
	@command -v java >/dev/null 2>&1 || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y openjdk-17-jre-headless; }
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres,spark]'

sweep: $(STAMP) ## Run the sweep of EXPERIMENT (ARGS="overrides", WORKERS=n)
	$(BIN)/segmentation-sweep experiments=$(EXPERIMENT) sweep.workers=$(WORKERS) engine=$(ENGINE) $(ARGS)

test: $(STAMP) ## Unit tests: every package, no full sweep (a few minutes)
	$(BIN)/python -m pytest tests/unit $(XDIST) $(PYTEST_ARGS)

test-integration: $(STAMP) ## Integration tests: real sweeps, servers, make; Spark and PostgreSQL when installed
	$(BIN)/python -m pytest tests/integration $(XDIST) $(PYTEST_ARGS)

test-all: $(STAMP) ## Unit and integration tests (what .ci/run runs)
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

lint: $(STAMP) ## Lint and format check (ruff), layers and import cycles (import-linter)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

format: $(STAMP) ## Format the code with ruff
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

bench: $(STAMP) ## Benchmarks (results in bench-results/RESULTS.md; ARGS="--only small")
	$(BIN)/python benchmarks/bench.py $(ARGS)

ui: $(STAMP) ## MLflow UI on 127.0.0.1:$(UI_PORT), light (one worker, no job runner)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --host 127.0.0.1 --port $(UI_PORT) \
	  --workers 1 --backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlruns/mlflow.db} \
	  --default-artifact-root $(CURDIR)/mlruns/artifacts

dashboard: $(STAMP) ## optuna-dashboard of EXPERIMENT's studies on 127.0.0.1:$(DASHBOARD_PORT)
	$(BIN)/segmentation-dashboard experiments=$(EXPERIMENT) +port=$(DASHBOARD_PORT) $(ARGS)

promote: $(STAMP) ## Promote the best of EXPERIMENT's latest sweep (or RUN=id) to champion; INPUT=file for the migration
	$(BIN)/segmentation-promote experiments=$(EXPERIMENT) $(if $(RUN),+run_id=$(RUN)) $(if $(INPUT),+input=$(INPUT)) $(ARGS)

rollback: $(STAMP) ## Move champion back to the previous version
	$(BIN)/segmentation-rollback experiments=$(EXPERIMENT) $(ARGS)

predict: $(STAMP) ## Score INPUT=file into OUTPUT=file with MODEL (default: the champion)
	$(BIN)/segmentation-predict experiments=$(EXPERIMENT) +input=$(INPUT) +output=$(OUTPUT) $(if $(MODEL),+model_uri=$(MODEL)) engine=$(ENGINE) $(ARGS)

audiences: $(STAMP) ## One upload file per segment of INPUT=file (champion) into OUTPUT=folder; HOLDOUT=0.1
	$(BIN)/segmentation-audiences experiments=$(EXPERIMENT) +input=$(INPUT) $(if $(OUTPUT),+output=$(OUTPUT)) $(if $(MODEL),+model_uri=$(MODEL)) $(if $(HOLDOUT),audiences.holdout.share=$(HOLDOUT)) $(ARGS)

# GNU make exits 2 whenever a recipe fails, whatever the command's own code: `make drift` cannot
# exit 3. It says on its last line which failure it was; schedulers run the console script
# (.venv/bin/segmentation-drift), whose codes are 0, 2 and 3 (README, "Exit codes").
drift: $(STAMP) ## Drift of INPUT=file against MODEL's training data (make: 2 on drift or bad input)
	$(BIN)/segmentation-drift experiments=$(EXPERIMENT) +input=$(INPUT) $(if $(MODEL),+model_uri=$(MODEL)) $(if $(OUTPUT),+output=$(OUTPUT)) $(ARGS) \
	  || { code=$$?; test $$code -ne 3 || echo "make drift: DRIFT over the thresholds (segmentation-drift exit 3; make can only exit 2)" >&2; exit $$code; }

serve: $(STAMP) ## Serve MODEL (default: EXPERIMENT's champion) over REST on 127.0.0.1:$(PORT)
	@uri="$(MODEL)"; test -n "$$uri" || uri=$$($(BIN)/segmentation-model-uri experiments=$(EXPERIMENT) $(ARGS)) || exit 1; \
	echo "serving $$uri on http://127.0.0.1:$(PORT)"; \
	PATH=$(BIN):$$PATH MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlruns/mlflow.db} \
	  exec $(BIN)/mlflow models serve -m "$$uri" --env-manager local --host 127.0.0.1 --port $(PORT)

report: $(STAMP) ## Write the HTML report of RUN (default: the latest sweep) to reports/
	$(BIN)/segmentation-report experiments=$(EXPERIMENT) $(if $(RUN),+run_id=$(RUN)) $(ARGS)

clean: ## Remove the virtual env, caches and Hydra outputs (mlruns/ is kept)
	rm -rf $(VENV) .cache outputs multirun
