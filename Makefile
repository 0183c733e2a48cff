# The two commands a newcomer types: `make serve` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup serve test lint check clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@# uWSGI compiles on install (gcc, Python headers): required under CI, optional elsewhere.
	@$(PY) -m pip install --quiet -e '.[uwsgi]' || { \
		if [ -n "$$CI" ]; then echo "ERROR: uWSGI did not build, and CI must test it" >&2; exit 1; fi; \
		echo "WARNING: uWSGI did not build (needs gcc and Python headers): its tests will be skipped" >&2; }
	touch $@

setup: $(VENV)/.installed

serve: setup
	$(VENV)/bin/pserve config/development.ini

# pytest exits 5 when it collected nothing: that is a failure here, never a silent pass.
test: setup
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "ERROR: pytest ran no tests" >&2; exit 1; fi; exit $$rc

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

check: lint test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
