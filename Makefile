# lhvdbg: the pieces the README's two commands are made of. Start them with
#   bash scripts/lhv demo   (make demo once set up) set up, build the firmware, run
#                           `lhvdbg break-on-df` on the default build
#   bash scripts/lhv test   (make test once set up) set up, build the firmware, lint, type
#                           checks, the whole suite, then the integration tests on QEMU 10
# scripts/lhv installs make itself (and everything else) on a bare Debian 12 first.
SHELL := /bin/bash
BIN := .venv/bin
QEMU10_DIR := $(CURDIR)/.qemu10

.PHONY: demo test setup firmware lint pytest unit qemu10 integration-qemu10 bench docs clean

demo: firmware
	$(BIN)/lhvdbg break-on-df

test: firmware lint pytest integration-qemu10

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

# QEMU 10 from bookworm-backports in .qemu10/ (the system QEMU is left alone).
qemu10:
	@bash scripts/qemu10 $(QEMU10_DIR)

# The integration tier again, on QEMU 10: lhvdbg is pointed at it with LHVDBG_QEMU, and
# tests that start QEMU themselves find its wrappers (which add the -L folders) first on PATH.
integration-qemu10: setup firmware qemu10
	@echo "integration tests on $$($(QEMU10_DIR)/bin/qemu-system-x86_64 --version | head -n1)"
	PATH=$(QEMU10_DIR)/bin:$$PATH LHVDBG_QEMU=$(QEMU10_DIR)/usr/bin/qemu-system-x86_64 \
		$(BIN)/python -m pytest -m integration -q

bench: firmware
	$(BIN)/python bench/run_all.py

# Example outputs in README.md and docs/ regenerated from real runs (tests/docs_examples.py;
# docs/contributing.md, "Examples in the docs"). PAGES=docs/commands/run.md for some pages.
docs: firmware
	@$(MAKE) -s -C firmware iso
	$(BIN)/python -m tests.docs_examples $(PAGES)

clean:
	$(MAKE) -s -C firmware clean
