# Freed's Bakery. `make demo` runs the shop; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
WEB_WORKERS ?= 2

.PHONY: demo test chaos bench conformance install browser lint clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

# Debian's chromium for the browser tests (Playwright's own browser download does not work offline).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests..."; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Quiet: web, worker and beat log to $(BAKERY_DATA_DIR)/logs/ (.local/logs/); VERBOSE=1 shows their output here.
demo: install
	$(PY) -m bakery.demo --host $(HOST) --port $(PORT) --web-workers $(WEB_WORKERS) $(if $(VERBOSE),--verbose,)

# The tests keep their engines in .local/test, apart from a running `make demo` (whose worker
# would otherwise take the tests' tasks from a shared Redis).
test: install browser
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

lint: install
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .local artifacts
