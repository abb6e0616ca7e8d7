"""The interrupt/exception event chain: what the CPU delivered, in order.

Events come from QEMU's ``-d int,cpu_reset`` log under TCG (``lhvdbg.diagnose.intlog``)
or are reconstructed from the stack frame and the PIC/LAPIC state under KVM. They are
plain frozen data; rules in ``lhvdbg.diagnose.rules`` read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lhvdbg.x86.cpustate import CpuState

EventSource = Literal["hardware", "exception", "software"]


@dataclass(frozen=True)
class InterruptEvent:
    """One delivery of an interrupt or exception through the IDT.

    ``error_code`` is None when the CPU pushed none (hardware and software interrupts,
    exceptions without an error code). ``rip`` is the instruction pointer at the time
    (the faulting or interrupted instruction), ``cs`` its selector, ``pc`` the linear
    address, ``sp``/``ss`` the stack before delivery, ``cr2`` when the log reports it.
    ``check_old`` is the previous exception QEMU was delivering when this one was raised
    (from ``check_exception old: X new Y``; None when no such line preceded it, -1 for
    ``0xffffffff``). ``check_new`` is that line's Y when it differs from ``vector``: the
    exception raised while delivering ``check_old``, which the CPU turned into a #DF.

    ``delivered`` is False for a raise the log shows only as ``check_exception old: X new
    Y`` with no ``v=`` line of its own: the CPU folded Y into the #DF that follows (SDM
    Vol. 3A Table 6-5) or, while delivering a #DF, into a triple fault. Such an event has
    no error code in the log (``error_code`` None), and its CS:IP, SS:SP and CPL are those
    of the event whose delivery raised it (the CPU had not moved on).
    """

    vector: int
    source: EventSource
    error_code: int | None
    rip: int
    cs: int = 0
    pc: int = 0
    sp: int = 0
    ss: int = 0
    cpl: int = 0
    cr2: int | None = None
    check_old: int | None = None
    sequence: int = 0  # QEMU's running count printed before "v="
    line: int = 0  # 1-based line number in the log
    registers: CpuState | None = None  # the CPU just before delivery (the log's dump)
    check_new: int | None = None  # the exception raised, when QEMU turned it into #DF
    delivered: bool = True  # False: raised, then folded into a #DF or a triple fault


@dataclass(frozen=True)
class TripleFault:
    """QEMU gave up delivering (``Triple fault``); the CPU resets or the VM stops.

    ``old``/``new`` are the exception being delivered and the one raised meanwhile, from
    the ``check_exception old: X new Y`` line before it (None when the log lacks it).
    """

    line: int = 0
    old: int | None = None
    new: int | None = None


@dataclass(frozen=True)
class CpuReset:
    """A CPU reset record from ``-d cpu_reset``."""

    line: int = 0


ChainEvent = InterruptEvent | TripleFault | CpuReset
