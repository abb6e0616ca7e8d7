"""A live subset of the fault matrix in real QEMU (TCG): the injection happens, and
QEMU's own log shows the failure the case injected — the same chain as the recorded run
that tests/unit/test_fault_cases.py checks against the case offline.

The i386 cases boot in qemu-system-i386 here (recorded with qemu-system-x86_64), so
this also shows the chain does not depend on the QEMU binary.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from lhvdbg.machine.launch import qemu_version
from tests.conftest import firmware_elf
from tests.integration.qemu_run import exit_status, run_qemu

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MATRIX = ROOT / "tests" / "fixtures" / "matrix"
LIVE = [
    "amd64-idt-limit-short",
    "amd64-ioapic-pit-vector-08",
    "amd64-user-rsp0-noncanonical-triple",
    "i386-user-ss0-null",
    "i386-iret-cs-type",
    "i386-pic-slave-base-08",
]


from tests.matrix import fm  # noqa: E402

CASES = {c.name: c for c in fm.load_cases()}


def rows(case: Any, log: str, *, as_qemu8: bool = False) -> list[tuple[int, bool, str, int | None]]:
    chain = fm.truth_chain(case, fm.read_log(log))
    return [
        (r.vector, r.delivered, r.source, _qemu8(case, r.error_code) if as_qemu8 else r.error_code)
        for r in chain
    ]


def _qemu8(case: Any, code: int | None) -> int | None:
    """A recorded (QEMU 7.2) IDT-format error code as QEMU >= 8.0 logs it: 7.2's long mode
    logged vector*16+2 (QEMU bug #1382), later versions vector*8+2."""
    if code is None or case.arch != "amd64" or code & 0xF != 2:
        return code
    return (code >> 4) * 8 + 2


def _qemu_major() -> int:
    binary = shutil.which("qemu-system-x86_64")
    assert binary is not None
    return int(qemu_version(binary).split(".")[0])


@pytest.mark.parametrize("name", LIVE)
def test_live_case_shows_the_injected_failure(firmware_built: Path, name: str) -> None:
    case = CASES[name]
    elf = firmware_elf(case.arch, "good")
    result = run_qemu(case.arch, kernel=elf, append=case.append, timeout=20)
    # One `inject:` line per injection, before the interrupts are enabled.
    injections = [line for line in result.serial.splitlines() if line.startswith("inject: ")]
    assert injections and not any("cannot parse" in line for line in injections)
    truth = fm.read_log(result.log)
    assert truth.outcome == case.outcome
    if case.outcome == "triple-fault":
        assert result.returncode == 0  # -no-reboot: QEMU ends at the reset
    else:
        assert result.returncode == exit_status(elf, "LHV_EXIT_DOUBLE_FAULT")
        assert "#DF verdict: " in result.serial
    recorded = (MATRIX / f"{name}.log").read_text()
    assert rows(case, result.log) == rows(case, recorded, as_qemu8=_qemu_major() >= 8)


@pytest.mark.parametrize("arch", ["amd64", "i386"])
def test_malformed_fault_word_is_named_and_ignored(firmware_built: Path, arch: str) -> None:
    elf = firmware_elf(arch, "good")
    result = run_qemu(arch, kernel=elf, append="ticks=2 every=1 fault=idt-limit exc=0x1ffffffff")
    lines = result.serial.splitlines()
    assert 'inject: cannot parse "fault=idt-limit" (ignored)' in lines
    assert 'inject: cannot parse "exc=0x1ffffffff" (ignored)' in lines
    assert result.returncode == exit_status(elf, "LHV_EXIT_OK")
    assert "done: 2 PIT ticks" in result.serial
