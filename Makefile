# The README's two commands are `make demo` and `make test`; `make check` is the fast run for
# development.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo serve test check lint typecheck pytest system-tools bench-tools clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/seo-engine demo

serve: $(STAMP)
	$(BIN)/seo-engine serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-tools
	$(BIN)/pytest

# The complete run, as CI runs it (.ci/run): about ten minutes.
test: lint typecheck pytest

# The fast run for development, in under two minutes on a 2-core machine: lint, types and
# the tests without the slow `faults` and `soak` markers.
check: lint typecheck
	$(BIN)/pytest -m "not faults and not soak"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist

# PgBouncer for tests/test_pgbouncer.py (Debian package, needs root; without it those
# tests are skipped with a reason).
system-tools:
	@[ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null; } || \
	  echo "warning: could not install pgbouncer; tests/test_pgbouncer.py will be skipped"

# wrk and pgbench for the benchmarks in bench/ (Debian packages; needs root).
bench-tools:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk postgresql-contrib
