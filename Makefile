# The two commands a newcomer types are `make demo` and `make test`; each sets itself up from nothing.
SHELL  := /bin/bash
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.azml_nb-installed
NODE_STAMP := node_modules/.package-lock.json
OUT    ?= out

.PHONY: demo test lab bench setup system clean

## demo: run the walkthrough on the offline stack; results land in $(OUT)/
demo: $(STAMP) $(NODE_STAMP)
	$(PY) -m azml_nb.demo --out $(OUT)

## test: install everything (Python, npm and Debian packages) and run the whole suite
test: $(STAMP) $(NODE_STAMP) system
	$(PY) -m pytest

## lab: JupyterLab on the notebooks, with the offline stack running
lab: $(STAMP) $(NODE_STAMP)
	$(PY) -m azml_nb.cli lab

## bench: every benchmark, one after another (figures are recorded in docs/benchmarks.md);
## each exits non-zero when it misses a target, and so does this after running them all
bench: $(STAMP) $(NODE_STAMP)
	@status=0; for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || status=1; done; exit $$status

setup: $(STAMP) $(NODE_STAMP) system

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

$(NODE_STAMP): package.json package-lock.json
	bash tools/install-system-packages.sh node
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

system:
	bash tools/install-system-packages.sh chromium

clean:
	rm -rf $(VENV) node_modules $(OUT) .pytest_cache
