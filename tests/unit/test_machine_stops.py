"""Stop decoding, offline: gdb's recorded ``*stopped`` records (tests/fixtures/mi, gdb 13.1
on QEMU 7.2) turned into StopEvents by the pure decoder, and the exit events."""

from __future__ import annotations

from pathlib import Path

import pytest

from lhvdbg.machine.mirecord import MiRecord, parse_lines
from lhvdbg.machine.stops import (
    breakpoint_hit,
    decode_stop,
    exited_event,
    is_step_over_sigtrap,
    step_did_not_run,
    where,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mi"
SYMBOLS = {0x102280: "kernel_main", 0x1002E0: "isr_32"}


def symbolize(address: int) -> str:
    """Names like the kernel's for the recorded addresses (hex otherwise)."""
    for start, name in sorted(SYMBOLS.items(), reverse=True):
        if start <= address < start + 0x100:
            return name if address == start else f"{name}+{address - start:#x}"
    return f"{address:#x}"


def stops(name: str) -> list[MiRecord]:
    return [r for r in parse_lines((FIXTURES / name).read_text()) if r.is_stopped]


def never(what: str):  # type: ignore[no-untyped-def]
    def ask() -> bool:
        raise AssertionError(f"shutdown_seen asked for a {what} stop")

    return ask


def test_breakpoint_hit_and_step() -> None:
    _reset, hit, step, isr = stops("connect-break-step-amd64.mi")
    event = decode_stop(hit, elapsed=0.25, symbolize=symbolize, shutdown_seen=never("bp"))
    assert (event.reason, event.address, event.breakpoint) == ("breakpoint", 0x102280, 1)
    assert event.detail == "breakpoint 1 hit at kernel_main (0x102280)"
    assert event.elapsed == 0.25 and event.signal is None and event.stopped
    assert breakpoint_hit(hit) == (1, False)

    event = decode_stop(step, symbolize=symbolize, shutdown_seen=never("step"))
    assert (event.reason, event.address, event.breakpoint) == ("step", 0x102281, None)
    assert event.detail == "at kernel_main+0x1 (0x102281)"
    assert breakpoint_hit(step) is None

    event = decode_stop(isr, symbolize=symbolize)
    assert (event.reason, event.address, event.breakpoint) == ("breakpoint", 0x1002E0, 2)
    assert event.detail == "breakpoint 2 hit at isr_32 (0x1002e0)"


def test_the_stop_at_the_reset_vector_has_no_reason() -> None:
    # gdb reports the first stop after -target-select without a reason: a plain signal
    # stop unless QEMU says the guest is shut down
    reset = stops("connect-break-step-amd64.mi")[0]
    event = decode_stop(reset, symbolize=symbolize, shutdown_seen=lambda: False)
    assert (event.reason, event.address, event.signal) == ("signal", 0xFFF0, None)
    assert event.detail == "stopped at 0xfff0"
    assert decode_stop(reset, shutdown_seen=lambda: True).reason == "shutdown"


def test_interrupt_is_sigint() -> None:
    record = stops("interrupt-and-exit.mi")[-1]
    event = decode_stop(record, symbolize=symbolize, shutdown_seen=lambda: False)
    assert (event.reason, event.signal) == ("interrupted", "SIGINT")
    assert event.address is not None
    assert event.detail == f"interrupted at {where(event.address, symbolize)}"
    asked: list[bool] = []
    decode_stop(record, shutdown_seen=lambda: asked.append(True) or False)
    assert asked == [True]  # a signal stop asks QEMU whether the guest shut down


def test_triple_fault_is_a_shutdown_without_asking_qemu() -> None:
    record = stops("triple-fault.mi")[-1]
    event = decode_stop(record, elapsed=1.5, shutdown_seen=never("SIGQUIT"))
    assert (event.reason, event.signal, event.elapsed) == ("shutdown", "SIGQUIT", 1.5)
    assert event.detail == "the guest shut down (triple fault or reset): QEMU is paused"
    assert event.stopped  # QEMU is paused: the CPU can still be read


def test_the_shutdown_of_the_stack_overflow_recording() -> None:
    (reset, fault) = stops("partial-read.mi")
    assert decode_stop(fault, shutdown_seen=never("SIGQUIT")).reason == "shutdown"
    assert decode_stop(reset, shutdown_seen=lambda: False).reason == "signal"


# gdb 13.1's records for what the fixtures do not hold (same syntax as recorded ones)
WATCH = (
    '*stopped,reason="watchpoint-trigger",wpt={number="3",exp="*(unsigned char (*)[16])'
    '0x10f030"},value={old="{0 <repeats 16 times>}",new="{1, 2}"},frame={addr='
    '"0x0000000000102290",func="kernel_main",args=[],arch="i386:x86-64"},thread-id="1",'
    'stopped-threads="all"'
)
TEMPORARY = (
    '*stopped,reason="breakpoint-hit",disp="del",bkptno="4",frame={addr="0x0000000000102280",'
    'func="kernel_main",args=[],arch="i386:x86-64"},thread-id="1",stopped-threads="all"'
)
SIGTRAP = (
    '*stopped,reason="signal-received",signal-name="SIGTRAP",signal-meaning="Trace/'
    'breakpoint trap",frame={addr="0x0000000000102284",func="kernel_main",args=[],'
    'arch="i386:x86-64"},thread-id="1",stopped-threads="all"'
)
EXITED_REASON = '*stopped,reason="exited-normally"'


def one(line: str) -> MiRecord:
    (record,) = parse_lines(line)
    return record


def test_watchpoint_trigger() -> None:
    record = one(WATCH)
    event = decode_stop(record, symbolize=symbolize, shutdown_seen=never("watch"))
    assert (event.reason, event.breakpoint, event.address) == ("breakpoint", 3, 0x102290)
    assert event.detail == "watchpoint 3 triggered at kernel_main+0x10 (0x102290)"
    assert breakpoint_hit(record) == (3, False)


def test_temporary_breakpoint_is_reported_deleted() -> None:
    assert breakpoint_hit(one(TEMPORARY)) == (4, True)


def test_step_over_sigtrap() -> None:
    record = one(SIGTRAP)
    assert is_step_over_sigtrap(record)
    assert not is_step_over_sigtrap(stops("interrupt-and-exit.mi")[-1])
    event = decode_stop(record, symbolize=symbolize, shutdown_seen=lambda: False)
    assert (event.reason, event.signal) == ("signal", "SIGTRAP")
    assert event.detail == "SIGTRAP at kernel_main+0x4 (0x102284)"


def test_an_unknown_reason_is_named() -> None:
    event = decode_stop(one(EXITED_REASON), shutdown_seen=never("exited-normally"))
    assert (event.reason, event.address, event.detail) == ("signal", None, "exited-normally at ?")


@pytest.mark.parametrize(
    ("status", "debug_exit", "value", "detail"),
    [
        (0x21, True, 0x10, "QEMU exited with status 33 (isa-debug-exit value 0x10)"),
        (0x21, False, 0x10, "QEMU exited with status 33"),
        (0, True, None, "QEMU exited with status 0"),
        (1, True, 0, "QEMU exited with status 1"),
    ],
)
def test_exit_events(status: int, debug_exit: bool, value: int | None, detail: str) -> None:
    event = exited_event(status, debug_exit=debug_exit, elapsed=2.0)
    assert (event.reason, event.exit_code, event.guest_exit_value) == ("exited", status, value)
    assert event.detail == detail and not event.stopped
    assert event.to_dict()["exit_code"] == status


def test_a_step_that_ended_where_it_began_is_taken_again_only_when_it_cannot_stay() -> None:
    from lhvdbg.errors import GdbError
    from lhvdbg.machine.stops import StopEvent

    code = {0x1000A3: bytes.fromhex("0d000000800f22c0"), 0x2000: bytes.fromhex("f3a4")}
    reads: list[int] = []

    def read(address: int, size: int) -> bytes:
        reads.append(address)
        if address not in code:
            raise GdbError("Cannot access memory", command="-data-read-memory-bytes")
        return code[address]

    same = StopEvent("step", 0x1000A3)
    assert step_did_not_run(0x1000A3, same, read)  # `or` cannot end where it began
    trap = StopEvent("signal", 0x1000A3, signal="SIGTRAP")  # the late trap, reported bare
    assert step_did_not_run(0x1000A3, trap, read)
    again = StopEvent("breakpoint", 0x1000A3, 4)  # gdb's step over it, cut short
    assert step_did_not_run(0x1000A3, again, read)
    assert reads == [0x1000A3, 0x1000A3, 0x1000A3]
    reads.clear()
    assert not step_did_not_run(0x2000, StopEvent("step", 0x2000), read)  # rep movsb can
    assert not step_did_not_run(0x3000, StopEvent("step", 0x3000), read)  # unreadable
    assert reads == [0x2000, 0x3000]
    # moved, not a step, or no known start: nothing is read
    assert not step_did_not_run(0x1000A3, StopEvent("step", 0x1000A8), read)
    assert not step_did_not_run(0x1000A3, StopEvent("breakpoint", 0x1000A8), read)
    assert not step_did_not_run(0x1000A3, StopEvent("signal", 0x1000A3, signal="SIGINT"), read)
    assert not step_did_not_run(None, same, read)
    assert reads == [0x2000, 0x3000]
