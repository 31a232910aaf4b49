# The two set-up commands of the README:
#   make serve   install into .venv and start the service on the embedded model
#   make test    install into .venv (with test and lint tools), lint, and run the test suite
#
# TORCH pins the CPU build of PyTorch; installing it in the same pip call keeps pip from
# pulling a CUDA build through a dependency's unpinned "torch".

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PIP = $(VENV)/bin/pip

.PHONY: serve test install lint clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-%: pyproject.toml | $(VENV)/bin/python
	$(PIP) install --quiet "$(TORCH)" -e ".[$*]"
	touch $@

SOURCES = service models index evaluation support tests bench

install: $(VENV)/.installed-test

serve: $(VENV)/.installed-test
	$(VENV)/bin/simlink serve

test: lint
	$(VENV)/bin/python -m pytest

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check $(SOURCES)
	$(VENV)/bin/ruff format --check $(SOURCES)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
