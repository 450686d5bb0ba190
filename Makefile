# The README's commands. Each target creates or refreshes .venv first, so a fresh machine with only
# Python 3.11 needs nothing else: `make demo`, `make test`, `make bench`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: bench-quality demo test test-fast test-load bench lint typecheck check lock clean

# The bot client is its own distribution; the farm depends on it, so both install from this checkout.
$(STAMP): pyproject.toml trainfarm_client/pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ./trainfarm_client -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/farm demo

test: $(STAMP)
	$(BIN)/python -m pytest --durations=15

# Skips the tests marked slow (packs, processes, environments): under a minute instead of several.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# The reliability suite's load test at full size: 1,000 queued retrains on two workers (long: see
# docs/RELIABILITY.md, point 10); `make test` runs it with 10.
test-load: $(STAMP)
	TRAINFARM_LOAD_RETRAINS=1000 $(BIN)/python -m pytest -s tests/reliability/test_load.py

bench: $(STAMP)
	$(BIN)/python -m bench

# Model quality on the real data in ../shared/data (12 retrains, minutes): writes docs/QUALITY.md.
bench-quality: $(STAMP)
	$(BIN)/python -m bench quality

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy cannot follow the editable install's import hook: give it the installed layout as links.
typecheck: $(STAMP)
	@mkdir -p build/typecheck/trainfarm
	@for d in shared workers beat cli web; do ln -sfn ../../../$$d build/typecheck/trainfarm/$$d; done
	$(BIN)/mypy

check: lint typecheck test

# Re-resolve the pinned versions (run after changing dependencies in pyproject.toml).
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/python -m pip install --quiet --upgrade "pip>=24"
	.lockvenv/bin/python -m pip install --quiet ./trainfarm_client ".[dev]"
	.lockvenv/bin/python -m pip freeze --exclude trainfarm --exclude trainfarm-client | LC_ALL=C sort > constraints.txt
	rm -rf .lockvenv

clean:
	rm -rf $(VENV) .farm .pytest_cache .mypy_cache .ruff_cache
