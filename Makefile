# lhvdbg: the two commands of the README, and the pieces they are made of.
#   make demo   set up, build the firmware, run `lhvdbg break-on-df` on the default build
#   make test   set up, build the firmware, run lint, type checks and the whole test suite
SHELL := /bin/bash
BIN := .venv/bin

.PHONY: demo test setup firmware lint pytest unit bench clean

demo: firmware
	$(BIN)/lhvdbg break-on-df

test: firmware lint pytest

setup:
	@bash scripts/setup.sh

firmware: setup
	@$(MAKE) -s -C firmware

lint: setup
	$(BIN)/ruff check lhvdbg tests bench
	$(BIN)/ruff format --check lhvdbg tests bench
	$(BIN)/mypy

pytest: setup firmware
	$(BIN)/python -m pytest

unit: setup
	$(BIN)/python -m pytest tests/unit

bench: firmware
	$(BIN)/python bench/run_all.py

clean:
	$(MAKE) -s -C firmware clean
