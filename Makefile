# make demo: set up and convert sample_data/; make test: set up and run the whole suite;
# make lint: ruff and mypy (configured in pyproject.toml).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev,dask,ray]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf demo_out
	$(BIN)/annostream convert sample_data/ -o demo_out/
	$(BIN)/annostream tables demo_out/ --format table
	$(BIN)/annostream query demo_out/ --format table "SELECT source, type, count(*) AS n FROM results GROUP BY ALL ORDER BY n DESC, type LIMIT 15"

lint: $(STAMP)
	$(BIN)/ruff check stream tests scripts
	$(BIN)/mypy

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) demo_out .pytest_cache
