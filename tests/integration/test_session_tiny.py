"""The session against a tiny multiboot kernel (tests/fixtures/kernels/timer-kernel.S, not
the LHV firmware).

It shows the session works for any multiboot kernel, and gives controlled cases: a guest
that never ends (timeouts, interrupts), and a kernel that loads IDTR *before* it fills
the timer gate (run_to_vector must re-arm from the gate write watchpoint).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from lhvdbg.errors import StateError
from lhvdbg.machine.runstate import Runstate
from lhvdbg.machine.session import LaunchConfig, Session
from lhvdbg.state.elf import find_lidt, inspect_kernel
from tests.kernels import timer_kernel

pytestmark = pytest.mark.integration

TINY = {"TICKS": 5, "PIC_BASE": 0x20}  # five ticks, the PIC at the usual 0x20


def build_tiny(directory: Path, name: str = "tiny", **defines: int) -> Path:
    """The timer kernel (tests/fixtures/kernels/timer-kernel.S) with the tiny defaults:
    five ticks, PIC at 0x20; ``defines`` override them (``LIDT_FIRST``, ``TICKS``...)."""
    return timer_kernel(directory, name, **{**TINY, **defines})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("tiny"))


def test_any_multiboot_kernel_boots_and_exits(tiny: Path) -> None:
    with Session(LaunchConfig(kernel=tiny)) as s:
        assert s.arch == "i386" and s.kernel_info is not None
        ev = s.cont(timeout=10)
        assert ev.reason == "exited" and ev.guest_exit_value == 0x10 and ev.exit_code == 0x21
        assert s.serial_text() == "timer-kernel: hello\n"
        assert not s.alive


def test_timeout_interrupts_and_the_guest_goes_on(tmp_path: Path) -> None:
    forever = build_tiny(tmp_path, "forever", TICKS=0x7FFFFFFF)
    with Session(LaunchConfig(kernel=forever)) as s:
        assert s.wait_for_serial("timer-kernel: hello", timeout=0) is False  # not started yet
        ev = s.cont(timeout=0.3)
        assert ev.reason == "timeout" and ev.address is not None
        assert ev.elapsed >= 0.3  # it waited the whole timeout (no upper bound: no timing asserts)
        assert s.runstate is Runstate.STOPPED
        for _ in range(50):  # a loaded machine may still be in the BIOS after 0.3 s
            if "timer-kernel: hello" in s.serial_text():
                break
            assert s.cont(timeout=0.3).reason == "timeout"
        assert s.wait_for_serial("timer-kernel: hello", timeout=0)
        ticks_addr = s.resolve("ticks")
        before = struct.unpack("<I", s.read_memory(ticks_addr, 4))[0]
        assert before > 0
        assert s.cont(timeout=0.2).reason == "timeout"
        after = struct.unpack("<I", s.read_memory(ticks_addr, 4))[0]
        assert after > before  # it really ran again
        assert s.interrupt().reason == "interrupted"  # already stopped: where it is
        # a poll callback that raises leaves the guest running: reads are refused until
        # interrupt() stops it
        with pytest.raises(_Seen):
            s.cont(timeout=10, poll=_seen)
        assert s.runstate is Runstate.RUNNING
        with pytest.raises(StateError, match="read memory: the session is running"):
            s.read_memory(ticks_addr, 4)
        ev = s.interrupt()
        assert ev.reason == "interrupted" and ev.signal == "SIGINT"
        assert s.runstate is Runstate.STOPPED
        assert struct.unpack("<I", s.read_memory(ticks_addr, 4))[0] >= after


class _Seen(Exception):
    pass


def _seen() -> None:
    raise _Seen


def test_run_to_vector_rearms_when_the_gate_is_written_after_lidt(tmp_path: Path) -> None:
    late = build_tiny(tmp_path, "late", LIDT_FIRST=1)
    info = inspect_kernel(late)
    assert find_lidt(info) and info.symbols["after_lidt"] > find_lidt(info)[0]
    with Session(LaunchConfig(kernel=late)) as s:
        ev = s.run_to_vector(0x20, count=2, timeout=10)
        assert ev.reason == "vector" and ev.address == info.symbols["timer_handler"]
        assert struct.unpack("<I", s.read_memory(s.resolve("ticks"), 4))[0] == 1
        # and the run goes on to the end normally afterwards
        assert s.cont(timeout=10).guest_exit_value == 0x10


def test_run_to_timer_uses_the_pic_base_set_after_lidt(tmp_path: Path) -> None:
    odd = build_tiny(tmp_path, "odd", PIC_BASE=0x50)
    with Session(LaunchConfig(kernel=odd)) as s:
        ev = s.run_to_timer(count=3, timeout=10)
        assert ev.reason == "vector" and ev.vector == 0x50
        assert ev.address == s.resolve("timer_handler")
        assert struct.unpack("<I", s.read_memory(s.resolve("ticks"), 4))[0] == 2


def test_run_to_vector_reports_a_vector_that_never_fires(tiny: Path) -> None:
    with Session(LaunchConfig(kernel=tiny)) as s:
        ev = s.run_to_vector(0x30, timeout=5)
        assert ev.reason == "exited"  # the kernel ended; vector 0x30 never came
