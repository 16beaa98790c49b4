# ftpstack — the project's commands. See README.md.
SHELL := /bin/bash
VENV ?= venv
PY := $(VENV)/bin/python
STACK ?= dev
ARGS ?=

.PHONY: plan plan-full diff test bench up-local down-local local-status l4-deps test-fast lint \
	pulumi-yaml docs system-deps clean clean-cache

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	@echo "make: first use — installing what ftpstack needs into $(VENV)/ (about a minute)" >&2
	@scripts/system-deps plan
	@python3 -m venv $(VENV)
	@$(VENV)/bin/pip install -q --upgrade pip
	@$(VENV)/bin/pip install -q -c constraints.txt -r requirements-dev.txt
	@touch $@

system-deps:
	@scripts/system-deps test

## make plan [STACK=dev] [ARGS=--json] — the program evaluated offline (Pulumi mocks), summed up
## (--json: all of it, for tools); exits 2 on a refused config, 3 when the ARM check finds a problem
plan: $(VENV)/.installed
	@$(PY) -m ftpstack.offline.show --stack $(STACK) $(ARGS)

## make plan-full [STACK=dev] — the summary, then the rendered files (cloud-init user-data, each
## instance's live configuration; secrets masked): make plan ARGS=--full
plan-full: $(VENV)/.installed
	@$(PY) -m ftpstack.offline.show --stack $(STACK) --full $(ARGS)

## make diff BASE=<git ref> [STACK=dev] — offline plan at BASE vs. the working tree
# make itself can only fail with 2, so changes (the module's exit 1) count as success here; the
# module's own codes are 0 no changes, 1 changes, 2 errors.
diff: $(VENV)/.installed
	@$(PY) -m ftpstack.offline.diff --base $(or $(BASE),$(error set BASE, e.g. make diff BASE=origin/main)) $(if $(filter command line,$(origin STACK)),--stack $(STACK)) || [ $$? -eq 1 ]

## make lint — ruff check, ruff format --check, mypy
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## make test — every level; in CI (CI=true) a skipped test fails the run. L4's one-VM tests, then
## L0-L1 and the untimed tests, run beside L2-L3; the two-VM tests after them, alone
## (scripts/test-levels).
test: $(VENV)/.installed system-deps lint
	@scripts/test-levels $(VENV) $(ARGS)

## make test-fast — L0 and L1 only (no root, no real tools)
test-fast: $(VENV)/.installed
	$(VENV)/bin/pytest -m "not l2 and not l3 and not l4" $(ARGS)

## make bench — throughput, login latency, concurrency, live changes on the local model (root)
bench: $(VENV)/.installed system-deps
	$(PY) -m ftpstack.local.bench.suite $(ARGS)

## make up-local [STACK=dev] — the stack booted in a Debian 12 VM behind the local Azure model
## (root; minutes); prints how to reach it. make local-status reprints it; make down-local
## removes it all.
up-local: $(VENV)/.installed system-deps l4-deps
	@$(PY) -m ftpstack.local.vm.uplocal up --stack $(STACK)

local-status: $(VENV)/.installed
	@$(PY) -m ftpstack.local.vm.uplocal status

down-local: $(VENV)/.installed
	@$(PY) -m ftpstack.local.vm.uplocal down

l4-deps:
	@scripts/system-deps l4

## make pulumi-yaml — regenerate Pulumi.yaml from the settings model (says whether it changed)
pulumi-yaml: $(VENV)/.installed
	@$(PY) -m ftpstack.offline.project > Pulumi.yaml.new
	@if cmp -s Pulumi.yaml Pulumi.yaml.new; then rm Pulumi.yaml.new; echo "Pulumi.yaml is up to date"; \
	else mv Pulumi.yaml.new Pulumi.yaml; echo "Pulumi.yaml regenerated: review and commit it"; fi

## make docs [ARGS=--check] — regenerate docs/configuration.md and the outputs table of
## docs/outputs.md from the code (says whether each changed; --check only says which are stale)
docs: $(VENV)/.installed
	@$(PY) -m ftpstack.offline.reference $(ARGS)

## make clean — the venv and tool caches (keeps .cache/, the test VM image: make clean-cache)
clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

## make clean-cache — the test VM image and peers' binaries in .cache/ (rebuilt when needed)
clean-cache:
	rm -rf .cache
