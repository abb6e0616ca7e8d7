"""Waiting for a tick on any kernel (issue 11 §5): run_to_timer stops at the timer
vector's handler read from the IDT, with a handful of breakpoints whatever the number of
0xFB (sti) bytes in the kernel, under TCG and KVM."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from lhvdbg.machine.session import LaunchConfig, Session, kvm_usable
from lhvdbg.machine.vector import STI_ARMING_MAX
from lhvdbg.state.elf import find_sti, inspect_kernel
from tests.kernels import timer_kernel

pytestmark = pytest.mark.integration

NOISE = 9000  # more 0xFB bytes than the 2.5 MB hypervisor of issue 11 had


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 2 s of ticks: arming on a loaded machine must not outlast the kernel (200 ms by default)
    return timer_kernel(tmp_path_factory.mktemp("timer"), "noisy", STI_NOISE=NOISE, TICKS=2000)


def _counting(session: Session) -> list[int]:
    """Record every breakpoint the session inserts (the real session, wrapped)."""
    inserted: list[int] = []
    real = session.break_at

    def break_at(location: str | int, **kw: object) -> int:
        number = real(location, **kw)  # type: ignore[arg-type]
        inserted.append(number)
        return number

    session.break_at = break_at  # type: ignore[method-assign]
    return inserted


def test_many_sti_bytes_cost_a_few_breakpoints(noisy: Path) -> None:
    info = inspect_kernel(noisy)
    assert len(find_sti(info)) > NOISE > STI_ARMING_MAX
    with Session(LaunchConfig(kernel=noisy)) as s:
        inserted = _counting(s)
        ev = s.run_to_timer(count=3, timeout=20)
        assert ev.reason == "vector" and ev.vector == 0x50  # the base set after lidt
        assert ev.address == s.resolve("timer_handler")
        assert len(inserted) <= 4  # lidt site(s) and the handler, never the sti bytes
        assert s.breakpoints(internal=True) == []  # all internal ones removed
        ticks = struct.unpack("<I", s.read_memory(s.resolve("ticks"), 4))[0]
        assert ticks >= 2  # the handler's third entry since arming, before its incl


def test_a_small_kernel_still_counts_from_the_first_tick(tmp_path: Path) -> None:
    small = timer_kernel(tmp_path, "small", TICKS=5)  # all its ticks fit in one slice
    with Session(LaunchConfig(kernel=small)) as s:
        ev = s.run_to_timer(count=3, timeout=20)
        assert ev.reason == "vector" and ev.vector == 0x50
        assert struct.unpack("<I", s.read_memory(s.resolve("ticks"), 4))[0] == 2


@pytest.mark.kvm
@pytest.mark.skipif(not kvm_usable(), reason="/dev/kvm cannot be opened read-write")
def test_the_firmware_under_kvm(firmware_built: Path) -> None:
    # (the 32-bit timer kernel's iret fails on this host's KVM: the real amd64 firmware)
    with Session(LaunchConfig.for_variant("good", "amd64", accel="kvm")) as s:
        inserted = _counting(s)
        ev = s.run_to_timer(count=2, timeout=60)
        assert ev.reason == "vector" and ev.vector == 0x20
        assert ev.address == s.resolve("isr_32")
        # lidt sites and the handler, re-placed as the vector settles: a handful, not
        # one per sti (KVM would refuse a fifth debug register anyway)
        assert len(inserted) <= 8
