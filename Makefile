# ootd: the two commands that do all the set-up are `make demo` and `make test`.
# Both create .venv and install ootd (editable) with what it needs.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test bench bench-seed bench-nightly bench-feed bench-likes install clean stop

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ootd needs Python >= 3.11 (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ootd demo

test: $(STAMP)
	$(PY) -m pytest

bench-seed: $(STAMP)
	$(PY) -m bench.seed

bench-feed: $(STAMP)
	$(PY) -m bench.feed

bench-likes: $(STAMP)
	$(PY) -m bench.likes

bench-nightly: $(STAMP)
	$(PY) -m bench.nightly

bench: bench-seed bench-nightly bench-feed bench-likes

stop:
	-$(VENV)/bin/ootd db stop

clean: stop
	rm -rf $(VENV) .ootd .pytest_cache
