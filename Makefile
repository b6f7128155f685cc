# Pulse — every target bootstraps what it needs on a fresh machine (uv, venv, Kafka jars).
SHELL := /bin/bash
PYTHON ?= python3
# uv runs as a module of the machine's interpreter, so no PATH set-up is needed; it uses
# that interpreter (3.11) for the venv and never downloads one.
UV := $(PYTHON) -m uv
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(shell $(PYTHON) -c 'import sys; print(sys.executable)')
VENV := .venv

.PHONY: bootstrap kafka-jars system-deps demo test lint typecheck bench clean

bootstrap:
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check uv
	@$(UV) sync --locked --quiet

kafka-jars:
	@bash scripts/kafka/fetch-jars.sh

# Debian packages the tests use: Chromium + chromedriver (dashboard test), poppler (PDF).
SYSTEM_PACKAGES := chromium chromium-driver poppler-utils
system-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v pdftoppm >/dev/null || \
	  { $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	    $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; }

demo: bootstrap
	$(VENV)/bin/pulse demo

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: bootstrap kafka-jars system-deps lint
	$(VENV)/bin/pytest

bench: bootstrap kafka-jars
	$(VENV)/bin/python -m bench

clean:
	rm -rf pulse-data reports .pytest_cache .mypy_cache .ruff_cache
