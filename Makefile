# The two commands a newcomer needs:
#   make report   set up .venv (when absent) and run the report suite against the embedded simulator
#   make test     set up .venv (when absent) and run the whole test suite (what CI runs)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PARAMS ?= notebooks/params/default.yaml

.PHONY: install report test lint format lab fidelity bench clean

install: $(STAMP)

# Re-installs whenever pyproject.toml changes; the stamp makes a second run instant.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

report: $(STAMP)
	MPLBACKEND=agg $(BIN)/voorbeelden report --params $(PARAMS)

test: $(STAMP)
	$(BIN)/ruff check voorbeelden tests
	MPLBACKEND=agg $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check voorbeelden tests
	$(BIN)/ruff format --check voorbeelden tests

format: $(STAMP)
	$(BIN)/ruff format voorbeelden tests
	$(BIN)/ruff check --fix voorbeelden tests

# Register the project's kernel for JupyterLab, then start it on the notebooks.
lab: $(STAMP)
	$(BIN)/python -m ipykernel install --user --name voorbeelden-lab --display-name "voorbeelden-lab (.venv)"
	$(BIN)/jupyter lab notebooks/

fidelity: $(STAMP)
	$(BIN)/voorbeelden sim-fidelity --requests 1000

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
