"""Parser for QEMU's ``-d int,cpu_reset`` log (TCG only) into the event chain.

Format of QEMU 7.2 (``target/i386/tcg/seg_helper.c`` ``do_interrupt_all`` and
``x86_cpu_exec_interrupt``, ``target/i386/tcg/excp_helper.c`` ``check_exception``,
``hw/core/cpu-common.c`` ``cpu_common_reset``)::

    Servicing hardware INT=0x08                       a maskable IRQ is being delivered
    check_exception old: 0xffffffff new 0xd           an exception raised (old: the one
                                                      being delivered, -1 for none)
         3: v=0d e=0010 i=0 cpl=0 IP=0008:...abc pc=... SP=0010:... env->regs[R_EAX]=...
    EAX=... (a register dump, as ``info registers``, of the CPU before delivery)
    Triple fault                                      a fault while delivering #DF
    CPU Reset (CPU 0)                                 followed by a register dump

The ``v=`` line is printed only in protected or long mode (``CR0.PE``); its ``e=`` is 0
when the CPU pushes no error code, ``i=1`` marks a software ``int N``, ``CR2=`` replaces
``env->regs[R_EAX]=`` for #PF. Addresses have 16 hex digits from qemu-system-x86_64 and 8
from qemu-system-i386. A hardware interrupt is the ``v=`` line right after its
``Servicing hardware INT=`` line; the BIOS's real-mode IRQs leave ``Servicing`` lines with
no ``v=`` after them.

A ``check_exception`` whose exception never gets a ``v=`` line of its own — the next
record is ``v=08`` (QEMU turned it into a #DF) or ``Triple fault`` — is a raise folded
before delivery: it becomes an event with ``delivered=False`` placed before that record
(QEMU prints no error code for it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lhvdbg.diagnose.events import ChainEvent, CpuReset, EventSource, InterruptEvent, TripleFault
from lhvdbg.errors import ParseError
from lhvdbg.x86.cpustate import CpuState
from lhvdbg.x86.hmp import parse_info_registers
from lhvdbg.x86.vectors import DOUBLE_FAULT, exception_info

__all__ = ["parse_int_log", "scan_int_log"]

_H = r"[0-9a-fA-F]+"
_VLINE_START = re.compile(r"^\s*\d+: v=")
_VLINE = re.compile(
    rf"^\s*(?P<seq>\d+): v=(?P<v>{_H}) e=(?P<e>{_H}) i=(?P<i>\d) cpl=(?P<cpl>\d) "
    rf"IP=(?P<cs>{_H}):(?P<ip>{_H}) pc=(?P<pc>{_H}) SP=(?P<ss>{_H}):(?P<sp>{_H})"
    rf"(?: (?:CR2=(?P<cr2>{_H})|env->regs\[R_EAX\]=(?P<eax>{_H})))?\s*$"
)
_SERVICING = re.compile(rf"^Servicing hardware INT=0x(?P<v>{_H})\s*$")
_CHECK = re.compile(rf"^check_exception old: 0x(?P<old>{_H}) new 0x(?P<new>{_H})\s*$")
_TRIPLE = re.compile(r"^Triple fault\s*$")
_RESET = re.compile(r"^CPU Reset \(CPU \d+\)\s*$")


@dataclass
class _Pending:
    """A ``v=`` record whose register dump is still being read."""

    match: re.Match[str]
    line: int
    source: EventSource
    check_old: int | None
    check_new: int | None
    dump: list[str]


def _old(value: str) -> int:
    number = int(value, 16)
    return -1 if number == 0xFFFFFFFF else number


def _event(pending: _Pending) -> InterruptEvent:
    m = pending.match
    vector = int(m["v"], 16)
    info = exception_info(vector)
    error_code: int | None = None
    if pending.source == "exception" and info is not None and info.has_error_code:
        error_code = int(m["e"], 16)
    registers: CpuState | None
    try:
        registers = parse_info_registers("\n".join(pending.dump)) if pending.dump else None
    except ParseError:
        registers = None  # a dump cut short (log truncated): keep the event without it
    return InterruptEvent(
        vector=vector,
        source=pending.source,
        error_code=error_code,
        rip=int(m["ip"], 16),
        cs=int(m["cs"], 16),
        pc=int(m["pc"], 16),
        sp=int(m["sp"], 16),
        ss=int(m["ss"], 16),
        cpl=int(m["cpl"]),
        cr2=int(m["cr2"], 16) if m["cr2"] is not None else None,
        check_old=pending.check_old,
        check_new=pending.check_new if pending.check_new != vector else None,
        sequence=int(m["seq"]),
        line=pending.line,
        registers=registers,
    )


def _folded(check: tuple[int, int, int], events: list[ChainEvent]) -> InterruptEvent:
    """The raise of a ``check_exception`` line (old, new, line) that was never delivered,
    at the CS:IP and SS:SP of the event being delivered when it was raised."""
    old, new, line = check
    last = events[-1] if events else None
    where = last if isinstance(last, InterruptEvent) else InterruptEvent(0, "exception", None, 0)
    return InterruptEvent(
        vector=new,
        source="exception",
        error_code=None,
        rip=where.rip,
        cs=where.cs,
        pc=where.pc,
        sp=where.sp,
        ss=where.ss,
        cpl=where.cpl,
        check_old=old,
        line=line,
        delivered=False,
    )


def scan_int_log(text: str) -> list[ChainEvent]:
    """Every event in the log in order, the BIOS's and earlier runs' included.

    A raise folded into a #DF or a triple fault is an event with ``delivered=False``
    right before the ``v=08`` record or the triple fault.

    Unknown lines are ignored. A malformed ``v=`` record raises ParseError, unless it is
    the last line (a log read while QEMU is still writing it).
    """
    lines = text.replace("\r\n", "\n").split("\n")
    events: list[ChainEvent] = []
    pending: _Pending | None = None
    servicing: int | None = None  # vector of a Servicing line seen on the previous line
    check: tuple[int, int, int] | None = None  # (old, new, line) of a check_exception

    def flush() -> None:
        nonlocal pending
        if pending is not None:
            events.append(_event(pending))
            pending = None

    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip()
        if not line:
            continue
        was_servicing, servicing = servicing, None
        if _VLINE_START.match(line):
            flush()
            match = _VLINE.match(line)
            if match is None:
                if not any(rest.strip() for rest in lines[number:]):
                    break  # the last line, still being written
                raise ParseError(f"-d int log line {number}: malformed interrupt record")
            vector = int(match["v"], 16)
            source: EventSource
            if match["i"] != "0":
                source = "software"
            elif was_servicing == vector and check is None:
                source = "hardware"
            else:
                source = "exception"
            old: int | None = None
            new: int | None = None
            if check is not None and source == "exception":
                old, new = check[0], check[1]
                if vector == DOUBLE_FAULT and new != DOUBLE_FAULT:
                    events.append(_folded(check, events))
            check = None
            pending = _Pending(match, number, source, old, new, [])
            continue
        if (m := _SERVICING.match(line)) is not None:
            flush()
            servicing, check = int(m["v"], 16), None
        elif (m := _CHECK.match(line)) is not None:
            flush()
            check = (_old(m["old"]), int(m["new"], 16), number)
        elif _TRIPLE.match(line):
            flush()
            old, new = (check[0], check[1]) if check is not None else (None, None)
            if check is not None:
                events.append(_folded(check, events))
            events.append(TripleFault(line=number, old=old, new=new))
            check = None
        elif _RESET.match(line):
            flush()
            events.append(CpuReset(line=number))
            check = None
        elif pending is not None:
            pending.dump.append(line)
    flush()
    return events


def parse_int_log(text: str) -> list[ChainEvent]:
    """The events of the kernel's run, from a ``-d int,cpu_reset`` log.

    What ran before the kernel is dropped: the run is the events after the last CPU reset
    preceding the first ``v=`` record or triple fault (the BIOS runs in real mode, where
    QEMU prints no ``v=`` lines). If the machine reset again afterwards (a triple fault
    without ``-no-reboot``), the list ends with that CpuReset and the later runs are
    dropped. Returns an empty list when the kernel logged nothing.
    """
    events = scan_int_log(text)
    first = next(
        (i for i, e in enumerate(events) if isinstance(e, InterruptEvent | TripleFault)), None
    )
    if first is None:
        return []
    end = next((i for i in range(first, len(events)) if isinstance(events[i], CpuReset)), None)
    return events[first : len(events) if end is None else end + 1]
