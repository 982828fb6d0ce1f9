# Everything a fresh machine with python3 and make needs. The environment is pinned by requirements.lock.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test demo bench e2e docs clean conformance

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[all]' -r requirements-dev.txt
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -m "not e2e" $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) -m demo_app $(DEMO_ARGS)

bench: $(STAMP)
	$(PY) -m benchmarks $(BENCH_ARGS)

e2e: $(STAMP)
	$(PY) -m pytest -q -m e2e $(PYTEST_ARGS)

docs: $(STAMP)
	$(PY) -m chatobs.config > docs/configuration.md

conformance: $(STAMP)
	PY=$(abspath $(PY)) sh scripts/conformance.sh

clean:
	rm -rf $(VENV) .pytest_cache .chatobs
