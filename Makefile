# Two commands on a fresh machine with Python 3.11+ and make:
#   make run    set up .venv/ and start the demo (gateway + registry on :8080, sample ERP upstream)
#   make test   set up .venv/ and run every test
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("govgate needs Python 3.11+") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/govgate serve --demo

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m tests.bench.run
	$(PY) -m tests.bench.diff_large
	$(PY) -m tests.bench.diff_sizes
	$(PY) -m tests.bench.events

clean:
	rm -rf $(VENV) .govgate .pytest_cache .hypothesis
