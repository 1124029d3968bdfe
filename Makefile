# Two entry points (see README): `make demo` and `make test`. Both create .venv when missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pimc compile tiny-llama --target cpu-a76 --seq-len 8 --context 32 -o out/tiny-llama
	$(BIN)/pimc run out/tiny-llama --input-ids 1,2,3,4,5,6,7,8 --tokens 17

test: $(STAMP)
	$(BIN)/python -m pytest -n 2

bench: $(STAMP)
	$(BIN)/python bench/compile_scaling.py

clean:
	rm -rf out build *.egg-info
