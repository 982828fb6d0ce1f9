# Everything a fresh machine with python3 and make needs. The environment is pinned by requirements.lock.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test lint demo bench e2e docs clean conformance

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[all]' -r requirements-dev.txt
	touch $(STAMP)

# mcp 1.x lives in its own environment so the suite can check chatobs against both SDK generations.
MCP1_STAMP := .venv-mcp1/.installed

$(MCP1_STAMP): requirements.lock scripts/mcp1_env.sh
	sh scripts/mcp1_env.sh .venv-mcp1
	touch $(MCP1_STAMP)

test: $(STAMP) $(MCP1_STAMP)
	$(PY) -m pytest -q -m "not e2e" $(PYTEST_ARGS)

# Rules live in pyproject.toml; the type checker covers the library only (its files setting).
LINT_PATHS := src tests demo_app benchmarks scripts

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy

demo: $(STAMP)
	$(PY) -m demo_app $(DEMO_ARGS)

bench: $(STAMP)
	$(PY) -m benchmarks $(BENCH_ARGS)

# Phoenix gets its own venv: it requires anthropic<2, which conflicts with the pinned anthropic 2.x.
E2E_VENV := .e2e-venv
E2E_STAMP := $(E2E_VENV)/.installed

$(E2E_STAMP): requirements-e2e.lock
	test -x $(E2E_VENV)/bin/python || $(PYTHON) -m venv $(E2E_VENV)
	$(E2E_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-e2e.lock
	touch $(E2E_STAMP)

# Open WebUI 0.12 too (a large install: about 2 minutes and 2.5 GB here). torch goes first so pip takes the CPU
# build and never CUDA; the lock is Open WebUI and chatobs[all] resolved together, then chatobs[all] goes in as a user
# installs it (with its dependencies, no constraints), so `pip check` proves it leaves Open WebUI's pins alone.
OWUI_VENV := .e2e-owui-venv
OWUI_STAMP := $(OWUI_VENV)/.installed

$(OWUI_STAMP): requirements-e2e-openwebui.lock pyproject.toml
	test -x $(OWUI_VENV)/bin/python || $(PYTHON) -m venv $(OWUI_VENV)
	$(OWUI_VENV)/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(OWUI_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-e2e-openwebui.lock
	$(OWUI_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[all]'
	$(OWUI_VENV)/bin/python -m pip check
	touch $(OWUI_STAMP)

e2e: $(STAMP) $(E2E_STAMP) $(OWUI_STAMP)
	CHATOBS_E2E_PHOENIX_PYTHON=$(E2E_VENV)/bin/python CHATOBS_E2E_OPENWEBUI_PYTHON=$(OWUI_VENV)/bin/python \
		$(PY) -m pytest -q -m e2e $(PYTEST_ARGS)

docs: $(STAMP)
	$(PY) -m chatobs.config > docs/configuration.md

conformance: $(STAMP)
	PY=$(abspath $(PY)) sh scripts/conformance.sh

clean:
	rm -rf $(VENV) $(E2E_VENV) $(OWUI_VENV) .venv-mcp1 .pytest_cache .chatobs
