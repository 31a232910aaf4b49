# The two set-up commands of the README:
#   make serve   install into .venv (the service alone) and start it on the embedded model
#   make test    install into .venv (with test and lint tools), lint, and run the test suite
#
# TORCH pins the CPU build of PyTorch; installing it in the same pip call keeps pip from
# pulling a CUDA build through a dependency's unpinned "torch".

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PIP = $(VENV)/bin/pip

.PHONY: serve test install lint clean chromium

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install --quiet "$(TORCH)" -e .
	touch $@

$(VENV)/.installed-%: pyproject.toml | $(VENV)/bin/python
	$(PIP) install --quiet "$(TORCH)" -e ".[$*]"
	touch $@

SOURCES = service models index evaluation jobs support tests bench

install: $(VENV)/.installed-test

serve: $(VENV)/.installed
	$(VENV)/bin/simlink serve

test: lint chromium
	$(VENV)/bin/python -m pytest

# The browser tests drive Debian's Chromium. As root (CI) it is installed here; otherwise the tests
# say how to install it and are skipped (they fail under CI=true rather than skip).
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; } || \
		echo "note: the browser tests need Chromium (apt-get install chromium); they are skipped without it" >&2

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check $(SOURCES)
	$(VENV)/bin/ruff format --check $(SOURCES)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
