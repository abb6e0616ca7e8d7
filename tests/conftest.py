"""Shared test configuration: paths, the firmware build, golden files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
GOLDEN = Path(__file__).resolve().parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden", action="store_true", help="rewrite golden files from current output"
    )


@pytest.fixture(scope="session")
def firmware_built() -> Path:
    """Build every firmware variant once per test session (make is incremental)."""
    subprocess.run(["make", "-s", "-C", str(FIRMWARE)], check=True, timeout=300)
    return FIRMWARE / "build"


def firmware_elf(arch: str, variant: str) -> Path:
    """Path of a built firmware ELF (the firmware_built fixture builds it)."""
    return FIRMWARE / "build" / arch / f"lhv-{variant}.elf"


@pytest.fixture
def golden(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Compare text with tests/golden/NAME, or rewrite it under --update-golden."""
    update = request.config.getoption("--update-golden")

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if update or not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            if not update:
                pytest.fail(f"golden file {name} did not exist; written, re-run")
        assert text == path.read_text(), f"output differs from golden {name}"

    return check
