# The two commands of the README. Each does its own set-up in a virtual environment ($(VENV)).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mutebot-installed

.PHONY: demo test lint bench clean postgresql

# Why the tests on PostgreSQL cannot run here (printed, exit 1), or nothing (exit 0).
PG_MISSING = $(BIN)/python -c "import sys; from bot.sandbox.postgres import unavailable_reason as why; \
	r = why(); r and print(r); sys.exit(bool(r))"
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mutebot demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy bot cogs

# The suite on SQLite (with the store's tests on both backends), then all of it again on PostgreSQL. Where
# PostgreSQL cannot be installed, a developer's run says what did not run; CI (CI=true) fails instead.
test: lint
	-@$(MAKE) --no-print-directory postgresql
	$(BIN)/pytest -q
	@if [ -n "$$CI" ] || $(PG_MISSING) >/dev/null; then \
		echo "make test: the whole suite again, on PostgreSQL"; \
		MUTEBOT_TEST_BACKEND=postgresql $(BIN)/pytest -q; \
	else \
		echo "make test: NOT RUN: the suite on PostgreSQL, because $$($(PG_MISSING)); 'make postgresql' installs it"; \
	fi

# A PostgreSQL server for the tests (they start their own throwaway cluster): Debian's package, when none is
# installed. The package's own cluster is not created: nothing listens on 5432 afterwards.
postgresql: $(STAMP)
	@if $(PG_MISSING) >/dev/null; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then echo "make postgresql: install a PostgreSQL server (initdb, pg_ctl)"; exit 1; fi; \
	$(SUDO) mkdir -p /etc/postgresql-common; \
	[ -e /etc/postgresql-common/createcluster.conf ] || \
		echo "create_main_cluster = false" | $(SUDO) tee /etc/postgresql-common/createcluster.conf >/dev/null; \
	$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	$(PG_MISSING)

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist *.egg-info
