# Pulse — every target bootstraps what it needs on a fresh machine (uv, venv, Kafka jars).
SHELL := /bin/bash
PYTHON ?= python3
# uv runs as a module of the machine's interpreter, so no PATH set-up is needed; it uses
# that interpreter (3.11) for the venv and never downloads one.
UV := $(PYTHON) -m uv
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(shell $(PYTHON) -c 'import sys; print(sys.executable)')
VENV := .venv

.PHONY: bootstrap kafka-jars system-deps demo test test-clock-ahead lint typecheck bench screenshots clean

# Bytecode is compiled at set-up (~15 s once; later syncs that change nothing skip it), so
# no command compiles its imports at run time: PyMC, JAX, pandas and statsforecast took
# ~10 s to import uncompiled, ~3 s compiled (pulse demo, issue 19).
bootstrap:
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check uv
	@$(UV) sync --locked --quiet --compile-bytecode
	@# uv compiles the installed packages, not the workspace's own (editable) sources;
	@# compileall writes only what is missing or stale, so a repeat run costs ~0.2 s.
	@$(VENV)/bin/python -m compileall -q -j 0 shared/src services/*/src cli/src testinfra/src >/dev/null

kafka-jars:
	@bash scripts/kafka/fetch-jars.sh

# Debian packages the tests use: Chromium + chromedriver (dashboard test), poppler (PDF),
# libfaketime (the alerts and KPI suites run again with the clock a year ahead).
SYSTEM_PACKAGES := chromium chromium-driver poppler-utils faketime
system-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v pdftoppm >/dev/null && command -v faketime >/dev/null || \
	  { $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	    $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; }

demo: bootstrap
	$(VENV)/bin/pulse demo

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: bootstrap kafka-jars system-deps lint
	$(VENV)/bin/pytest
	@$(MAKE) --no-print-directory test-clock-ahead

# The alerts and KPI suites again with every process's clock (pytest, Kafka, ClickHouse)
# moved a year ahead: a test that hard-codes "now" or a date near today fails here.
# libfaketime shifts the wall clock; file times come from the kernel, which lets
# tests/test_clock_ahead.py prove the shift took effect.
LIBFAKETIME = $(firstword $(wildcard /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1))
test-clock-ahead: bootstrap kafka-jars system-deps
	LD_PRELOAD=$(LIBFAKETIME) FAKETIME=+365d PULSE_EXPECT_CLOCK_AHEAD_DAYS=365 \
	  $(VENV)/bin/pytest -p no:cacheprovider tests/test_clock_ahead.py tests/alerts tests/kpi

# Every benchmark at full size (bench/results/*-latest.json), then the README's performance
# table from those results, also when a benchmark failed (the runner's exit status is kept).
bench: bootstrap kafka-jars
	$(VENV)/bin/python -m bench; status=$$?; $(VENV)/bin/python -m bench.table && exit $$status

# Dashboard and monthly report screenshots for docs/ (demo data, clock fixed mid-month,
# headless Chromium): docs/screenshots/*.png, described in docs/dashboard.md.
screenshots: bootstrap system-deps
	$(VENV)/bin/python scripts/screenshots.py

clean:
	rm -rf pulse-data reports .pytest_cache .mypy_cache .ruff_cache
