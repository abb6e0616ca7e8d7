# lhvdbg: the pieces the README's two commands are made of. Start them with
#   bash scripts/lhv demo   (make demo once set up) set up, build the firmware, run
#                           `lhvdbg break-on-df` on the default build
#   bash scripts/lhv test   (make test once set up) set up, build the firmware, lint, type
#                           checks, the whole suite, then the integration tests on QEMU 10
# scripts/lhv installs make itself (and everything else) on a bare Debian 12 first.
SHELL := /bin/bash
BIN := .venv/bin
QEMU10_DIR := $(CURDIR)/.qemu10

.PHONY: demo test setup firmware lint pytest unit qemu10 integration-qemu10 bench clean

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
# Runs once lhvdbg reads LHVDBG_QEMU; until then it says so and passes.
integration-qemu10: setup firmware
	@if ! grep -rqs LHVDBG_QEMU lhvdbg; then \
		echo "integration-qemu10: skipped: this lhvdbg does not read LHVDBG_QEMU yet"; \
	else \
		bash scripts/qemu10 $(QEMU10_DIR) && \
		echo "integration tests on $$($(QEMU10_DIR)/bin/qemu-system-x86_64 --version | head -n1)" && \
		PATH=$(QEMU10_DIR)/bin:$$PATH LHVDBG_QEMU=$(QEMU10_DIR)/usr/bin/qemu-system-x86_64 \
			$(BIN)/python -m pytest -m integration -q; \
	fi

bench: firmware
	$(BIN)/python bench/run_all.py

clean:
	$(MAKE) -s -C firmware clean
