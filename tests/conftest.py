"""Shared test configuration: paths, the firmware build, golden files."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
GOLDEN = Path(__file__).resolve().parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden", action="store_true", help="rewrite golden files from current output"
    )


def pytest_report_header(config: pytest.Config) -> str:
    """Name the QEMU the tests run on: ``$LHVDBG_QEMU``, else the one on ``PATH``."""
    qemu = os.environ.get("LHVDBG_QEMU") or shutil.which("qemu-system-x86_64")
    if not qemu:
        return "qemu: none found"
    try:
        done = subprocess.run([qemu, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"qemu: {qemu} does not run ({exc})"
    first = done.stdout.splitlines()[0] if done.stdout else "no version"
    return f"qemu: {qemu} ({first})"


def processes() -> Iterator[tuple[int, str, bytes]]:
    """Every other process as (pid, command line, environment), read from /proc.

    Tests use this instead of ``pgrep``/``ps``: procps is not something set-up installs.
    """
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        yield int(entry.name), cmdline.strip(), environ


def _processes_marked(marker: str) -> list[str]:
    """QEMU/gdb processes whose environment carries ``marker`` (inherited TMPDIR)."""
    return [
        f"{pid}: {cmdline}"
        for pid, cmdline, environ in processes()
        if marker.encode() in environ and ("qemu-system" in cmdline or "gdb" in cmdline)
    ]


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """Run the suite with a private TMPDIR; fail if a QEMU or gdb started under it survives.

    Every process the tests start (directly or through lhvdbg) inherits TMPDIR, so its
    environment names this directory: that is how leftovers are found, whoever made them.
    """
    with tempfile.TemporaryDirectory(prefix="lhvdbg-tests-") as private:
        saved_env, saved_tempdir = os.environ.get("TMPDIR"), tempfile.tempdir
        os.environ["TMPDIR"], tempfile.tempdir = private, private
        try:
            yield
        finally:
            marker = f"TMPDIR={private}"
            deadline = time.monotonic() + 5.0
            while (left := _processes_marked(marker)) and time.monotonic() < deadline:
                time.sleep(0.1)
            if saved_env is None:
                del os.environ["TMPDIR"]
            else:
                os.environ["TMPDIR"] = saved_env
            tempfile.tempdir = saved_tempdir
        assert not left, "QEMU/gdb processes outlived the tests:\n" + "\n".join(left)


@pytest.fixture(scope="session", autouse=True)
def stable_output_width() -> Iterator[None]:
    """Rendered output (and so golden files) must not depend on the caller's $COLUMNS."""
    saved = os.environ.pop("COLUMNS", None)
    yield
    if saved is not None:
        os.environ["COLUMNS"] = saved


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
