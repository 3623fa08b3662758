# ootd: the two commands that do all the set-up are `make demo` and `make test`.
# Both create .venv and install ootd (editable) with what it needs.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PIP_QUIET ?= --quiet

.PHONY: demo test lint format bench bench-seed bench-nightly bench-feed bench-feed-first bench-serve-ahead bench-likes bench-experiments bench-online bench-api bench-api-ceiling bench-api-replicas install clean stop plpython browser

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ootd needs Python >= 3.11 (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_QUIET) --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

# A line per step, and pip's own progress while it installs (about a minute the first time).
demo:
	@echo "make demo 1/2: installing ootd and its dependencies into $(VENV) (pip; about a minute the first time)"
	@$(MAKE) -s --no-print-directory $(STAMP) PIP_QUIET=--progress-bar=on
	@echo "make demo 2/2: ootd demo (embedded PostgreSQL, migrate, seed 10,000 users, nightly, feeds)"
	$(VENV)/bin/ootd demo

test: $(STAMP) plpython browser lint
	$(PY) -m pytest

# ruff: lint and format, clean (`make format` rewrites what the check would flag).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Best effort, never fails the build: Debian's PL/Python for the system PostgreSQL 15, so that
# tests/test_generate_pool.py also runs ootd.generate_pool's real plpython3u code path (those
# tests skip, saying why, without it).  Only as root on a machine with apt-get.
PLPYTHON_CONTROL := /usr/share/postgresql/15/extension/plpython3u.control
PLPYTHON_PACKAGES := postgresql-15 postgresql-plpython3-15
plpython:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ ! -f $(PLPYTHON_CONTROL) ]; then \
		echo "installing $(PLPYTHON_PACKAGES) for the real PL/Python tests (best effort)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq --no-install-recommends $(PLPYTHON_PACKAGES) >/dev/null 2>&1 \
		|| { apt-get update -qq >/dev/null 2>&1 \
		     && apt-get install -y -qq --no-install-recommends $(PLPYTHON_PACKAGES) >/dev/null 2>&1; } \
		|| echo "could not install $(PLPYTHON_PACKAGES): the real PL/Python tests will be skipped"; \
	fi

# Best effort, never fails the build: Debian's Chromium (and its driver) for the real-browser tests in
# tests/browser, which Playwright drives through executable_path (never `playwright install`); those
# tests skip, saying why, without it (.ci/run makes such a skip a failure).  Only as root with apt-get.
BROWSER_PACKAGES := chromium chromium-driver
browser:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	    && { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; }; then \
		echo "installing $(BROWSER_PACKAGES) for the real-browser tests (best effort)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES) >/dev/null 2>&1 \
		|| { apt-get update -qq >/dev/null 2>&1 \
		     && apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES) >/dev/null 2>&1; } \
		|| echo "could not install $(BROWSER_PACKAGES): the real-browser tests will be skipped"; \
	fi

bench-seed: $(STAMP)
	$(PY) -m bench.seed

bench-feed: bench-feed-first

bench-feed-first: $(STAMP)
	@$(PY) -c 'import redis, orjson' 2>/dev/null || $(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev,bench]"
	$(PY) -m bench.feed_first

bench-experiments: $(STAMP)
	$(PY) -m bench.experiments

bench-serve-ahead: $(STAMP)
	$(PY) -m bench.serve_ahead

bench-likes: $(STAMP)
	$(PY) -m bench.likes

bench-nightly: $(STAMP)
	$(PY) -m bench.nightly

bench-online: $(STAMP)
	$(PY) -m bench.online

bench-api: $(STAMP)
	@command -v wrk >/dev/null || { echo "bench-api needs wrk: sudo apt-get install wrk (or brew install wrk)"; exit 2; }
	$(PY) -m bench.api

bench-api-ceiling: $(STAMP)
	@command -v wrk >/dev/null || { echo "bench-api-ceiling needs wrk: sudo apt-get install wrk (or brew install wrk)"; exit 2; }
	$(PY) -m bench.api_ceiling

bench-api-replicas: $(STAMP)
	@command -v wrk >/dev/null || { echo "bench-api-replicas needs wrk: sudo apt-get install wrk (or brew install wrk)"; exit 2; }
	$(PY) -m bench.api_replicas

bench: bench-seed bench-nightly bench-feed bench-likes bench-api

stop:
	-$(VENV)/bin/ootd db stop

clean: stop
	rm -rf $(VENV) .ootd .pytest_cache
