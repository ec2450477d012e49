# The README's two commands are `make demo` and `make test`; `make check` is the fast run for
# development.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo serve test check lint typecheck pytest integrations system-tools bench-tools clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The static site builder integrations and what tests/test_builders.py builds with (Astro,
# Eleventy, TypeScript), from integrations/package-lock.json into integrations/node_modules:
# nothing is installed globally. Needs Node 20+ and npm.
NODE_STAMP := integrations/node_modules/.installed
LOADER := integrations/astro-loader/dist/index.js

$(NODE_STAMP): integrations/package.json integrations/package-lock.json \
		integrations/astro-loader/package.json integrations/eleventy-data/package.json
	cd integrations && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(LOADER): $(NODE_STAMP) integrations/astro-loader/src/index.ts integrations/astro-loader/tsconfig.json
	cd integrations && npm run --silent build --workspace seo-engine-astro-loader

integrations: $(NODE_STAMP) $(LOADER)

demo: $(STAMP)
	$(BIN)/seo-engine demo

serve: $(STAMP)
	$(BIN)/seo-engine serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-tools integrations
	$(BIN)/pytest

# The complete run, as CI runs it (.ci/run): about ten minutes.
test: lint typecheck pytest

# The fast run for development, in under two minutes on a 2-core machine: lint, types and
# the tests without the slow `faults` and `soak` markers.
check: lint typecheck integrations
	$(BIN)/pytest -m "not faults and not soak"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist \
	  integrations/node_modules integrations/astro-loader/dist

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
