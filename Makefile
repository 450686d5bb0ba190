# The README's commands. Each target creates or refreshes .venv first, so a fresh machine with only
# Python 3.11 needs nothing else: `make demo`, `make test`, `make bench`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint typecheck check lock clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/farm demo

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

# Re-resolve the pinned versions (run after changing dependencies in pyproject.toml).
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/python -m pip install --quiet --upgrade "pip>=24"
	.lockvenv/bin/python -m pip install --quiet ".[dev]"
	.lockvenv/bin/python -m pip freeze --exclude trainfarm | LC_ALL=C sort > constraints.txt
	rm -rf .lockvenv

clean:
	rm -rf $(VENV) .farm .pytest_cache .mypy_cache .ruff_cache
