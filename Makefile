# The make targets (docs/development.md#make-targets). Each target creates or refreshes .venv first, so a
# fresh machine with only Python 3.11 needs nothing else: `make demo`, `make test`, `make bench`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: bench-gates bench-quality bench-replay demo test test-fast test-load bench lint typecheck check docs lock clean

# Type checkers and editors cannot follow the editable install's import hook (python/mypy#13392): the
# installed layout, trainfarm/{shared,workers,beat,cli,web}, is laid out as links to the folders under
# build/typecheck/, which mypy (mypy_path) and pyright/Pylance ([tool.pyright] extraPaths) read. Folder
# links, so a new module needs no reinstall.
LINKS := mkdir -p build/typecheck/trainfarm && for d in shared workers beat cli web; do \
	ln -sfn ../../../$$d build/typecheck/trainfarm/$$d; done

# The bot client is its own distribution; the farm depends on it, so both install from this checkout, with
# the example feature set (examples/feature-set: a user's set, which the tests train and serve with).
# setuptools' notice that an editable install uses an import hook is informational (that hook is why the
# links above exist); it is the one message silenced, so that any real warning of the build stands out.
$(STAMP): pyproject.toml trainfarm_client/pyproject.toml examples/feature-set/pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	PYTHONWARNINGS="ignore:Editable installation" \
	  $(BIN)/python -m pip install --quiet -c constraints.txt -e ./trainfarm_client -e ".[dev]" \
	  -e ./examples/feature-set
	@$(LINKS)
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/farm demo

# One pytest process per logical core, at most 4 (tests/support/services.MAX_TEST_PROCESSES: each has its own
# databases on the system Redis); a test file stays on one process, so its module fixtures are built once.
# Most of the suite waits on the processes it starts, so two processes finish it far sooner even on 2 cores.
# `make test TEST_PROCESSES=0` runs it in this one process.
TEST_PROCESSES ?= logical
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --maxprocesses 4 --dist loadfile --durations=15

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
	$(BIN)/python -m bench quality context

# The farm replayed over the last two years of BTC, ETH and SOL (hours on 2 cores): docs/REPLAY.md.
bench-replay: $(STAMP)
	$(BIN)/python -m bench replay replay-context

# The gates at scale (hours on 2 cores): repeated testing, noise and power end to end; docs/QUALITY.md.
bench-gates: $(STAMP)
	$(BIN)/python -m bench gates gate-power

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy reads the installed layout through the links the install step made (remade here if build/ was
# cleaned).
typecheck: $(STAMP)
	@$(LINKS)
	$(BIN)/mypy

check: lint typecheck test

# docs/cli.md, the command reference, generated from the Typer app (tests/unit/test_cli_reference.py keeps
# it current).
docs: $(STAMP)
	$(BIN)/typer --app app trainfarm.cli.app utils docs --name farm \
	  --title 'farm command reference (generated from the Typer app: do not edit)' --output docs/cli.md

# Re-resolve the pinned versions (run after changing dependencies in pyproject.toml).
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/python -m pip install --quiet --upgrade "pip>=24"
	.lockvenv/bin/python -m pip install --quiet ./trainfarm_client ".[dev]"
	.lockvenv/bin/python -m pip freeze --exclude trainfarm --exclude trainfarm-client | LC_ALL=C sort > constraints.txt
	rm -rf .lockvenv

clean:
	rm -rf $(VENV) .farm .pytest_cache .mypy_cache .ruff_cache
