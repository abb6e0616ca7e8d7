"""``lhvdbg doctor``: each check on real files and programs, and the command's exit code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lhvdbg.commands.doctor import (
    QEMU_LOCAL,
    HostCheck,
    _gdb_version,
    _version_word,
    check_kvm,
    check_local_qemu,
    core_ok,
    run_checks,
)

ROOT = Path(__file__).resolve().parent.parent.parent
NAMES = [
    "qemu (system)",
    "qemu (project-local)",
    "gdb",
    "kvm",
    "gcc",
    "ld",
    "make",
    "grub-mkrescue",
    "xorriso",
    "chromium",
]


def _doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lhvdbg", "doctor", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def test_versions_are_read_from_the_first_line() -> None:
    line = "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)"
    assert _version_word(line, "version ") == "7.2.22"
    assert _version_word("something else", "version ") is None
    assert _gdb_version("GNU gdb (Debian 13.1-3) 13.1") == "13.1"
    assert _gdb_version("bash: gdb: not found") is None


def test_kvm_missing_device(tmp_path: Path) -> None:
    check = check_kvm(str(tmp_path / "kvm"))
    assert check.status == "missing"
    assert "TCG only" in check.found


def test_kvm_without_vmx_is_limited_and_says_why(tmp_path: Path) -> None:
    device = tmp_path / "kvm"
    device.write_bytes(b"")
    check = check_kvm(str(device), cpuinfo="flags\t\t: fpu vme de pse tsc msr pae\n")
    assert check.status == "limited"
    assert "kvm-pvm" in check.found
    assert any("software breakpoints crash" in n for n in check.notes)
    assert any("-d int logs nothing" in n for n in check.notes)


def test_kvm_with_vmx_is_ok(tmp_path: Path) -> None:
    device = tmp_path / "kvm"
    device.write_bytes(b"")
    check = check_kvm(str(device), cpuinfo="flags\t\t: fpu vmx sse\n")
    assert (check.status, check.found) == ("ok", f"{device} usable (vmx)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root opens a file whatever its mode")
def test_kvm_not_openable_is_missing(tmp_path: Path) -> None:
    device = tmp_path / "kvm"
    device.write_bytes(b"")
    device.chmod(0o400)
    assert check_kvm(str(device)).status == "missing"


def test_project_local_qemu_found_and_versioned(tmp_path: Path) -> None:
    program = tmp_path / QEMU_LOCAL
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\necho 'QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-1)'\n")
    program.chmod(0o755)
    check = check_local_qemu(tmp_path)
    assert (check.status, check.version) == ("ok", "10.0.2")
    assert check_local_qemu(tmp_path / "elsewhere").status == "missing"


def test_core_needs_one_qemu_and_gdb() -> None:
    qemu = HostCheck("qemu (project-local)", "ok", "x", version="10.0.2")
    no_qemu = HostCheck("qemu (system)", "missing", "x", core=True)
    gdb = HostCheck("gdb", "ok", "x", core=True)
    assert core_ok([no_qemu, qemu, gdb])
    assert not core_ok([no_qemu, gdb])
    assert not core_ok([qemu, HostCheck("gdb", "missing", "x", core=True)])


@pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb not installed")
def test_checks_on_this_machine() -> None:
    checks = {c.name: c for c in run_checks()}
    assert [n for n in checks if n != "qemu ($LHVDBG_QEMU)"] == NAMES
    gdb = checks["gdb"]
    assert gdb.status == "ok" and gdb.version is not None and gdb.version[0].isdigit()
    for check in checks.values():
        assert check.status in ("ok", "missing", "limited")
        if check.status == "missing":
            assert check.package, check.name


@pytest.mark.skipif(
    shutil.which("gdb") is None or shutil.which("qemu-system-x86_64") is None,
    reason="needs gdb and QEMU",
)
def test_json_and_exit_zero_with_qemu_and_gdb() -> None:
    done = _doctor("--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["core_ok"] is True
    system = next(c for c in data["checks"] if c["name"] == "qemu (system)")
    assert system["status"] == "ok" and system["package"] == "qemu-system-x86"
    assert system["found"].endswith(f"QEMU {system['version']}")


def test_exit_one_without_gdb(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=str(tmp_path), NO_COLOR="1", COLUMNS="80")
    env.pop("LHVDBG_QEMU", None)
    done = _doctor(env=env)
    assert done.returncode == 1, done.stdout
    assert "not ready: lhvdbg needs a QEMU and gdb" in done.stdout
    assert "gdb (core): gdb" in done.stdout
    assert "chromium: chromium" in done.stdout
    lines = done.stdout.splitlines()
    assert all(len(line) <= 80 and line == line.rstrip() for line in lines)


def test_env_qemu_is_checked(tmp_path: Path) -> None:
    env = dict(os.environ, LHVDBG_QEMU=str(tmp_path / "no-such-qemu"))
    data = json.loads(_doctor("--json", env=env).stdout)
    check = next(c for c in data["checks"] if c["name"] == "qemu ($LHVDBG_QEMU)")
    assert check["status"] == "missing"
    assert "is not a program" in check["found"]
