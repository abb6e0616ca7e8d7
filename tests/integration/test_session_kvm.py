"""The session under KVM: hardware breakpoints chosen automatically (software ones crash
the guest on this machine's kvm-pvm), no -d int log, stops at the IDT handler still work.
Skipped where /dev/kvm cannot be opened read-write."""

from __future__ import annotations

from pathlib import Path

import pytest

from lhvdbg.machine.session import LaunchConfig, Session, kvm_usable
from lhvdbg.state.elf import inspect_kernel
from tests.conftest import firmware_elf

pytestmark = [
    pytest.mark.integration,
    pytest.mark.kvm,
    pytest.mark.skipif(not kvm_usable(), reason="/dev/kvm cannot be opened read-write"),
]


def test_kvm_breakpoints_are_hardware(firmware_built: Path) -> None:
    sym = inspect_kernel(firmware_elf("amd64", "good")).symbols
    with Session(LaunchConfig.for_variant("good", "amd64", accel="kvm")) as s:
        assert s.accel == "kvm" and s.int_log_path is None and s.int_log_text() == ""
        number = s.break_at("kernel_main")
        assert s.breakpoints()[0]["hardware"] is True
        assert any("hardware breakpoints" in n for n in s.notes)
        ev = s.cont(timeout=20)
        assert (ev.reason, ev.breakpoint, ev.address) == ("breakpoint", number, sym["kernel_main"])
        snap = s.capture()
        assert snap.provenance.accel == "kvm" and snap.cpu.mode == "long"
        assert s.stepi().reason == "step"
        ev = s.run_to_timer(count=2, timeout=20)
        assert ev.reason == "vector" and ev.address == sym["isr_32"]


def test_kvm_auto_and_vector_8(firmware_built: Path) -> None:
    sym = inspect_kernel(firmware_elf("amd64", "pic-unremapped")).symbols
    with Session(LaunchConfig.for_variant("pic-unremapped", "amd64", accel="auto")) as s:
        assert s.accel == "kvm" and "--accel auto chose kvm" in s.notes
        ev = s.run_to_vector(8, timeout=20)
        assert ev.reason == "vector" and ev.address == sym["isr_8"]
