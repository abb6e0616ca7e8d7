"""Runs that don't lie (issue 11 §2): break-on-df's limit counts from the kernel's entry,
a kernel that never starts, a timeout and a panic exit each say so, KVM's limits on this
host are said in one line, and the default firmware's verdict is the same on every QEMU
present (7.2 and the project-local 10) under TCG and under KVM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lhvdbg.cli import main
from lhvdbg.machine.kvmhost import hardware_virtualisation
from lhvdbg.machine.session import kvm_usable
from tests.kernels import NO_IDT, reset_kernel

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
QEMU10 = ROOT / ".qemu10" / "usr" / "bin" / "qemu-system-x86_64"
needs_kvm = pytest.mark.skipif(not kvm_usable(), reason="/dev/kvm cannot be opened read-write")


def bod(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["break-on-df", *args, "--json"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def test_a_kernel_that_never_starts(
    firmware_built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bod(capsys, "--variant", "good", "--boot-timeout", "0.001")  # inside SeaBIOS
    assert data["outcome"] == "kernel-never-started"
    assert data["stop"]["kernel_entered"] is False and data["stop"]["reason"] == "timeout"
    assert data["verdict"].startswith(
        "the kernel never started: its entry point was not reached within 0.001 s (the CPU"
    )
    assert data["stop"]["detail"].startswith("the kernel's entry 0x100020 not reached")


def test_a_timeout_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    quiet = reset_kernel(tmp_path, NO_IDT)  # halts with interrupts off: nothing ever fires
    data = bod(capsys, "--kernel", str(quiet), "--timeout", "1")
    assert data["outcome"] == "no-fault" and data["stop"]["reason"] == "timeout"
    assert data["stop"]["kernel_entered"] is True and data["stop"]["limit"] == 1.0
    assert data["verdict"] == (
        "no fault seen: no vector 8 within 1 s of the kernel's entry (the run timed out)"
    )


def test_a_panic_exit_is_guest_exited(
    firmware_built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the PIC remapped to 0x40, where the firmware has no handler: it panics and exits
    data = bod(capsys, "--variant", "good", "--append", "pic-base=0x40")
    assert data["outcome"] == "guest-exited"
    assert data["verdict"] == "the guest exited with 0x12 (LHV_EXIT_PANIC) before vector 8 fired"
    assert data["stop"]["exit_value"] == 0x12 and data["stop"]["exit_name"] == "LHV_EXIT_PANIC"
    assert "the guest exited with 0x12 (LHV_EXIT_PANIC)" in data["evidence"]
    assert "serial: PANIC: unexpected interrupt vector 0x40 rip=0x" in " ".join(data["evidence"])


def _same_verdict_runs() -> list[tuple[str, list[str]]]:
    runs = [("qemu 7.2 tcg", [])]
    if QEMU10.exists():
        runs.append(("qemu 10 tcg", ["--qemu", str(QEMU10)]))
    if kvm_usable():
        runs.append(("kvm", ["--accel", "kvm"]))
    return runs


def test_default_firmware_same_verdict_everywhere(
    firmware_built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    verdicts = {}
    for name, extra in _same_verdict_runs():
        data = bod(capsys, *extra)  # default options: the default variant, 10 s limit
        assert data["stop"]["kernel_entered"] is True, name
        verdicts[name] = (data["outcome"], data["diagnosis"][0]["id"])
    assert set(verdicts.values()) == {("hardware-interrupt-on-vector-8", "pic-not-remapped")}, (
        verdicts
    )


@pytest.mark.kvm
@needs_kvm
@pytest.mark.skipif(hardware_virtualisation(), reason="this host's KVM runs 32-bit paging")
def test_kvm_limits_in_one_line(firmware_built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = bod(capsys, "--arch", "i386", "--variant", "good", "--accel", "kvm")
    assert data["outcome"] == "guest-exited"  # #GP on mov to CR0.PG: the host, not the kernel
    (line,) = [n for n in data["notes"] if n.startswith("KVM here has no hardware virt")]
    assert line.endswith("compare with --accel tcg")


@pytest.mark.kvm
@needs_kvm
def test_kvm_tick_with_default_timeouts(
    firmware_built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # snapshot --after-ticks and diff-tss (first tick) count --timeout from the entry
    out = tmp_path / "tick.json"
    args = ["--variant", "good", "--accel", "kvm"]
    assert main(["snapshot", *args, "--after-ticks", "2", "-o", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["accel"] == "kvm" and out.exists()
    assert "reached (timer tick 2)" in json.dumps(summary)
    assert main(["diff-tss", *args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["reference"] == "lhv-amd64"
