"""The gdb lhvdbg starts gets lhvdbg's data directory: gdb's ``gdb`` Python package is
loaded only when something uses it (lhvdbg/machine/gdb_data/python/gdb/__init__.py), and
then it is all there: Python output on gdb's console, gdb's own printers and commands,
printers registered before the load kept. Real gdb; no QEMU needed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lhvdbg.machine.gdbmi import LEAN_DATA_DIRECTORY, GdbMi, lean_data_directory

pytestmark = pytest.mark.integration


@pytest.fixture
def gdb() -> Iterator[GdbMi]:
    made = GdbMi()
    yield made
    made.close()


def python(gdb: GdbMi, statement: str) -> str:
    """What one ``python`` statement printed, through gdb's console stream."""
    return gdb.console(f"python {statement}").console().strip()


def test_gdb_starts_without_its_python_package_then_loads_it_on_use(gdb: GdbMi) -> None:
    assert f"--data-directory={LEAN_DATA_DIRECTORY}" in gdb.argv
    state = "import sys; m = sys.modules['gdb']; print(m.__dict__.get('_system_loaded'), "
    assert python(gdb, state + "'gdb.command.explore' in sys.modules)") == "None False"
    # print() reaches gdb's console before anything is loaded (stdout goes through gdb)
    assert python(gdb, "print(6 * 7)") == "42"
    python(gdb, "gdb.pretty_printers.append('mine')")  # registered before the load
    # a name the lean package does not define loads gdb's own package into it
    assert python(gdb, "print(gdb.current_progspace().filename)") == "None"
    assert python(gdb, state + "'gdb.command.explore' in sys.modules)") == "True True"
    assert python(gdb, "print('mine' in gdb.pretty_printers, len(gdb.pretty_printers) > 1)") == (
        "True True"
    )  # kept, and gdb's builtin printers joined it
    assert "builtin" in gdb.console("info pretty-printer").console()  # gdb's Python command


def test_a_gdb_without_its_data_directory_beside_it_keeps_its_own(tmp_path: Path) -> None:
    exe = tmp_path / "bin" / "gdb"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert lean_data_directory(str(exe)) is None  # no <prefix>/share/gdb/python/gdb
    package = tmp_path / "share" / "gdb" / "python" / "gdb"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    assert lean_data_directory(str(exe)) == LEAN_DATA_DIRECTORY
    assert os.path.isfile(LEAN_DATA_DIRECTORY / "python" / "gdb" / "__init__.py")
