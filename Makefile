# Two commands do all the set-up on a fresh clone: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8501

.PHONY: run test format bench loadtest weights clean

# A local virtual environment with the pinned versions (torch==2.13.0 is a CPU build).
$(STAMP): requirements.txt requirements-dev.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

run: $(STAMP)  ## start the app on the embedded data and shipped weights
	$(BIN)/python -m course.serve --server.port $(PORT)

test: $(STAMP)  ## lint and format check, unit tests, page tests, and the real-browser test (skipped without Chromium)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

format: $(STAMP)  ## apply the formatter and the linter's safe fixes (pyproject.toml)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)  ## speed and memory figures (medians), printed
	$(BIN)/python -m benchmarks

loadtest: $(STAMP)  ## 25 websocket sessions + 100 opened/closed against a local server: latency, errors, memory
	$(BIN)/python -m benchmarks.loadtest $(LOADTEST_ARGS)

weights: $(STAMP)  ## re-train every shipped checkpoint (slow: MNIST takes tens of minutes on a CPU)
	$(BIN)/python -m toy_models train-all

clean:
	rm -rf $(VENV) .pytest_cache
