# make demo: set up and convert sample_data/; make test: set up and run the whole suite;
# make lint: ruff and mypy (configured in pyproject.toml); make docs: the generated docs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CORE_STAMP := $(VENV)/.core-stamp
CORE_SRC := $(wildcard core/src/*.rs) core/Cargo.toml core/Cargo.lock core/pyproject.toml
# A real Label Studio server for the tests, in its own venv (its dependencies never meet ours)
LS_VENV ?= .venv-ls
LS_VERSION ?= 1.23.2
LS_STAMP := $(LS_VENV)/.installed-$(LS_VERSION)

.PHONY: demo test test-fast lint docs bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev,dask,ray]'
	touch $(STAMP)

# The compiled core (core/, Rust): rebuilt only when its sources change (cargo keeps
# core/target between builds). Without a Rust toolchain the pure-Python engine runs.
$(CORE_STAMP): $(STAMP) $(CORE_SRC)
	@if command -v cargo >/dev/null; then \
		CARGO_BUILD_JOBS=$${CARGO_BUILD_JOBS:-2} $(BIN)/python -m pip install --quiet ./core; \
	else echo "no Rust toolchain (cargo): the pure-Python engine converts"; fi
	touch $(CORE_STAMP)

$(LS_STAMP):
	rm -rf $(LS_VENV)
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LS_VENV)/bin/python -m pip install --quiet 'label-studio==$(LS_VERSION)'
	touch $(LS_STAMP)

demo: $(STAMP) $(CORE_STAMP)
	rm -rf demo_out
	$(BIN)/annostream convert sample_data/ -o demo_out/
	$(BIN)/annostream tables demo_out/ --format table
	$(BIN)/annostream query demo_out/ --format table "SELECT source, type, count(*) AS n FROM results GROUP BY ALL ORDER BY n DESC, type LIMIT 15"

lint: $(STAMP)
	$(BIN)/ruff check stream tests scripts
	$(BIN)/mypy

docs: $(STAMP)
	$(BIN)/annostream schema > docs/schema.md
	$(BIN)/python -c "from stream.cli import reference_markdown as r; print(r(), end='')" > docs/cli.md

test: $(STAMP) $(CORE_STAMP) $(LS_STAMP)
	ANNOSTREAM_LABEL_STUDIO=$(LS_VENV)/bin/label-studio $(BIN)/python -m pytest -q

test-fast: $(STAMP) $(CORE_STAMP) $(LS_STAMP)
	ANNOSTREAM_LABEL_STUDIO=$(LS_VENV)/bin/label-studio $(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) $(LS_VENV) demo_out .pytest_cache core/target
