# explainstudy: `make` lists the commands.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# setuptools warns on every editable build about folders named like the package; a
	@# newcomer can do nothing about it (errors still show)
	PYTHONWARNINGS=ignore $(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install everything with pip

demo: $(STAMP)  ## set up the demo (data, classifier, explanations, study) and serve it
	$(PY) manage.py demo $(DEMO_ARGS)

test: $(STAMP) chromium  ## run the test suite
	$(PY) -m pytest

lint: $(STAMP)  ## ruff, the import layering (import-linter), Django's checks, missing migrations
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

chromium:  ## the browser the end-to-end tests drive (Debian's package)
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: sudo apt-get install chromium (the browser tests will be skipped)"; fi; }

worker: $(STAMP)  ## a Celery worker for the engine queue (needs CELERY_BROKER_URL)
	$(VENV)/bin/celery -A config worker -Q engine,web --concurrency 1 --prefetch-multiplier 1

.PHONY: help install demo test lint chromium worker
