"""A reset the guest asked for is not a triple fault (lhvdbg.diagnose.reset), and the
report's outcomes for how a run ended (reset, exit, never started, timeout)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lhvdbg.diagnose.chain import Chain
from lhvdbg.diagnose.evidence import StopInfo
from lhvdbg.diagnose.report import OUTCOMES, outcome_of, serial_tail, stop_verdict
from lhvdbg.diagnose.reset import out_before, reset_cause

LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "intlog"


@pytest.mark.parametrize(
    ("code", "regs", "what"),
    [
        (b"\xb0\xfe\xe6\x64", {"rax": 0xFE}, "keyboard controller reset (0xFE to port 0x64)"),
        (b"\xb0\x06\xee", {"rax": 0x06, "rdx": 0xCF9}, "reset control register (port 0xCF9)"),
        (b"\xee", {"eax": 0x0E, "edx": 0xCF9}, "reset control register (port 0xCF9)"),
        (b"\xe6\x92", {"rax": 0x03}, "fast reset (port 0x92 bit 0)"),
    ],
)
def test_an_out_that_asks_for_a_reset(code: bytes, regs: dict[str, int], what: str) -> None:
    assert out_before(code, regs) == what
    reading = reset_cause(None, code, regs)
    assert reading.cause == "reset-requested" and what in reading.how


@pytest.mark.parametrize(
    ("code", "regs"),
    [
        (b"\xe6\x64", {"rax": 0xD1}),  # a keyboard-controller command, not a reset
        (b"\xee", {"rax": 0x02, "rdx": 0xCF9}),  # 0xCF9 without bit 2: no reset yet
        (b"\xee", {"rax": 0xFE, "rdx": 0x3F8}),  # the serial port
        (b"\xcd\x03", {"rax": 0xFE}),  # int3
        (b"", {}),
    ],
)
def test_without_a_log_anything_else_is_a_triple_fault(code: bytes, regs: dict[str, int]) -> None:
    assert out_before(code, regs) is None
    assert reset_cause(None, code, regs).cause == "triple-fault"


def test_the_log_decides_under_tcg() -> None:
    triple = (LOGS / "probe-null-idt.reboot.log").read_text()
    assert reset_cause(triple).cause == "triple-fault"
    assert reset_cause(triple, b"\xe6\x64", {"rax": 0xFE}).cause == "triple-fault"
    requested = reset_cause("CPU Reset (CPU 0)\n")
    assert requested.cause == "reset-requested"
    assert requested.how == "no 'Triple fault' in QEMU's log before the reset"
    # TCG runs on past the out to the end of its block: the words look further back
    found = reset_cause("", b"\x00\x00\xb0\xfe\xe6\x64\xf4\xeb", {"rax": 0xFE})
    assert found.how.startswith("keyboard controller reset (0xFE to port 0x64); no 'Triple")


def _stop(reason: str, **kw: object) -> StopInfo:
    return StopInfo(reason=reason, **kw)  # type: ignore[arg-type]


def test_outcomes_of_how_the_run_ended() -> None:
    empty = Chain(())
    assert {"reset-requested", "guest-exited", "kernel-never-started"} <= set(OUTCOMES)
    reset = _stop("shutdown", reset="reset-requested", reset_how="no 'Triple fault'")
    assert outcome_of(empty, reset, int_log=True) == "reset-requested"
    assert outcome_of(empty, _stop("shutdown", reset="triple-fault"), True) == "triple-fault"
    assert outcome_of(empty, _stop("shutdown"), int_log=False) == "triple-fault"
    panic = _stop("exited", exit_value=0x12, exit_name="LHV_EXIT_PANIC")
    assert outcome_of(empty, panic, True) == "guest-exited"
    ok = _stop("exited", exit_value=0x10, exit_name="LHV_EXIT_OK")
    assert outcome_of(empty, ok, True) == "no-fault"
    assert outcome_of(empty, ok, True, serial="PANIC: #GP at 0x1234\n") == "guest-exited"
    assert outcome_of(empty, _stop("exited", exit_value=0x12), True) == "no-fault"  # unnamed
    never = _stop("timeout", kernel_entered=False, limit=60.0, address=0x10000C)
    assert outcome_of(empty, never, False) == "kernel-never-started"
    late = _stop("timeout", kernel_entered=True, limit=10.0)
    assert outcome_of(empty, late, False) == "no-fault"


def test_verdicts_say_how_the_run_ended() -> None:
    never = _stop("timeout", kernel_entered=False, limit=60.0, address=0xFFFEBABA)
    assert stop_verdict("kernel-never-started", never) == (
        "the kernel never started: its entry point was not reached within 60 s "
        "(the CPU was at 0xfffebaba)"
    )
    late = _stop("timeout", kernel_entered=True, limit=10.0)
    assert stop_verdict("no-fault", late) == (
        "no fault seen: no vector 8 within 10 s of the kernel's entry (the run timed out)"
    )
    panic = _stop("exited", exit_value=0x12, exit_name="LHV_EXIT_PANIC")
    assert stop_verdict("guest-exited", panic) == (
        "the guest exited with 0x12 (LHV_EXIT_PANIC) before vector 8 fired"
    )
    reset = _stop("shutdown", reset="reset-requested", reset_how="keyboard controller reset")
    assert stop_verdict("reset-requested", reset) == (
        "the guest asked for a reset (not a triple fault): keyboard controller reset"
    )


def test_serial_tail_keeps_the_last_lines() -> None:
    text = "".join(f"line {n}\r\n" for n in range(9)) + "\n\n"
    assert serial_tail(text) == [f"line {n}" for n in range(4, 9)]
