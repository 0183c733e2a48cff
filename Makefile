# The two commands a newcomer types: `make serve` and `make test`. Both set everything up first.
# `make bench` (benchmarks, ~10 minutes) sets up its own extras the same way.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup bench-setup browser-check serve worker test lint check bench clean

$(VENV)/.installed: pyproject.toml pyramid-deferred/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e './pyramid-deferred[prometheus,otel,celery,sqlalchemy]'
	$(PY) -m pip install --quiet -e '.[test]'
	@# uWSGI compiles on install (gcc, Python headers): required under CI, optional elsewhere.
	@$(PY) -m pip install --quiet -e '.[uwsgi]' || { \
		if [ -n "$$CI" ]; then echo "ERROR: uWSGI did not build, and CI must test it" >&2; exit 1; fi; \
		echo "WARNING: uWSGI did not build (needs gcc and Python headers): its tests will be skipped" >&2; }
	touch $@

setup: $(VENV)/.installed

$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $@

bench-setup: $(VENV)/.bench-installed

# The dashboard's browser test drives Debian's headless Chromium through Selenium and Debian's
# chromedriver (never a downloaded one); it is never skipped. No wheel ships a browser: as root
# (CI, this project's machines) they are installed from Debian here; otherwise the command is shown.
browser-check:
	@test -x /usr/bin/chromium && test -x /usr/bin/chromedriver || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing Debian's chromium and chromium-driver for the browser test" >&2; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
		else \
			echo "ERROR: the dashboard's browser test needs Debian's Chromium and its driver; install them with:" >&2; \
			echo "    sudo apt-get install -y chromium chromium-driver" >&2; exit 1; \
		fi; }

serve: setup
	$(VENV)/bin/pserve config/development.ini

# The Celery worker that runs the durable tasks (revenue events) the web workers spilled
# (docs/durable.md). Needs APP_DEFERRED_TASK_BROKER_URL=redis://... and APP_DEFERRED_TASK_SIGNING_KEY
# (and APP_DEFERRED_TASK_ENCRYPTION_KEY): the web workers' own.
# -B: its embedded beat runs the outbox sweep (re-sends the durable tasks of a crashed web process);
# with several workers, run one `celery -A app.worker beat` beside them instead.
worker: setup
	@mkdir -p logs
	$(VENV)/bin/celery -A app.worker worker -B -s logs/celerybeat-schedule --pool=solo --concurrency=1 -l info

# pytest exits 5 when it collected nothing: that is a failure here, never a silent pass.
test: setup browser-check
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "ERROR: pytest ran no tests" >&2; exit 1; fi; exit $$rc

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	cd pyramid-deferred && ../$(VENV)/bin/mypy

check: lint test

# Writes benchmarks/results/ and BENCHMARKS.md. Not part of `make test`; nothing asserts a timing.
# `make bench BENCH_ARGS=--quick`: small counts, results under benchmarks/results/quick/ only.
bench: bench-setup
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info pyramid-deferred/dist pyramid-deferred/src/*.egg-info
