"""Interrupt vectors: the architectural exceptions and how they combine.

Intel SDM Vol. 3A §6.3.1 (Table 6-1, protected-mode exceptions and interrupts), §6.13
(error codes) and §6.15 "Exception and Interrupt Reference", Interrupt 8 (Tables 6-4 and
6-5: which first/second exception pairs produce a double fault).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ExceptionClass(Enum):
    """Classes used to decide whether two exceptions make a #DF (SDM Table 6-4)."""

    BENIGN = "benign"
    CONTRIBUTORY = "contributory"
    PAGE_FAULT = "page-fault"
    ABORT = "abort"  # #DF itself; a fault during #DF delivery is a triple fault


class ErrorCodeFormat(Enum):
    """What the error code pushed by an exception means (SDM §6.13, §6.15)."""

    NONE = "none"
    SELECTOR = "selector"  # EXT, IDT, TI, index
    PAGE_FAULT = "page-fault"  # P, W/R, U/S, RSVD, I/D, PK, SS, ...
    ZERO = "zero"  # always 0 (#DF, #AC)
    CONTROL_PROTECTION = "control-protection"


@dataclass(frozen=True)
class ExceptionInfo:
    """One architectural exception vector."""

    vector: int
    mnemonic: str
    name: str
    error_code: ErrorCodeFormat
    klass: ExceptionClass

    @property
    def has_error_code(self) -> bool:
        """Whether the CPU pushes an error code when delivering it."""
        return self.error_code is not ErrorCodeFormat.NONE


_B, _C, _P, _A = (
    ExceptionClass.BENIGN,
    ExceptionClass.CONTRIBUTORY,
    ExceptionClass.PAGE_FAULT,
    ExceptionClass.ABORT,
)
_N, _S, _PF, _Z, _CP = (
    ErrorCodeFormat.NONE,
    ErrorCodeFormat.SELECTOR,
    ErrorCodeFormat.PAGE_FAULT,
    ErrorCodeFormat.ZERO,
    ErrorCodeFormat.CONTROL_PROTECTION,
)

EXCEPTIONS: dict[int, ExceptionInfo] = {
    info.vector: info
    for info in (
        ExceptionInfo(0, "#DE", "Divide Error", _N, _C),
        ExceptionInfo(1, "#DB", "Debug", _N, _B),
        ExceptionInfo(2, "NMI", "Non-maskable Interrupt", _N, _B),
        ExceptionInfo(3, "#BP", "Breakpoint", _N, _B),
        ExceptionInfo(4, "#OF", "Overflow", _N, _B),
        ExceptionInfo(5, "#BR", "BOUND Range Exceeded", _N, _B),
        ExceptionInfo(6, "#UD", "Invalid Opcode", _N, _B),
        ExceptionInfo(7, "#NM", "Device Not Available", _N, _B),
        ExceptionInfo(8, "#DF", "Double Fault", _Z, _A),
        ExceptionInfo(9, "CSO", "Coprocessor Segment Overrun", _N, _B),
        ExceptionInfo(10, "#TS", "Invalid TSS", _S, _C),
        ExceptionInfo(11, "#NP", "Segment Not Present", _S, _C),
        ExceptionInfo(12, "#SS", "Stack-Segment Fault", _S, _C),
        ExceptionInfo(13, "#GP", "General Protection", _S, _C),
        ExceptionInfo(14, "#PF", "Page Fault", _PF, _P),
        ExceptionInfo(16, "#MF", "x87 Floating-Point Error", _N, _B),
        ExceptionInfo(17, "#AC", "Alignment Check", _Z, _B),
        ExceptionInfo(18, "#MC", "Machine Check", _N, _B),
        ExceptionInfo(19, "#XM", "SIMD Floating-Point Exception", _N, _B),
        ExceptionInfo(20, "#VE", "Virtualization Exception", _N, _B),
        ExceptionInfo(21, "#CP", "Control Protection Exception", _CP, _C),
    )
}

DOUBLE_FAULT = 8
FIRST_USER_VECTOR = 32  # vectors 32..255 are user-defined (SDM §6.2)


def exception_info(vector: int) -> ExceptionInfo | None:
    """The architectural exception for ``vector``, or None (reserved or user-defined)."""
    return EXCEPTIONS.get(vector)


def vector_name(vector: int) -> str:
    """A short human name: ``#GP``, ``vector 0x20``, ``reserved 0x1f``."""
    info = EXCEPTIONS.get(vector)
    if info is not None:
        return info.mnemonic
    if vector < FIRST_USER_VECTOR:
        return f"reserved {vector:#04x}"
    return f"vector {vector:#04x}"


def makes_double_fault(first: int, second: int) -> bool:
    """Whether ``second`` raised while delivering ``first`` gives #DF (SDM Table 6-5)."""
    a, b = EXCEPTIONS.get(first), EXCEPTIONS.get(second)
    if a is None or b is None:
        return False
    if a.klass is ExceptionClass.CONTRIBUTORY:
        return b.klass is ExceptionClass.CONTRIBUTORY
    if a.klass is ExceptionClass.PAGE_FAULT:
        return b.klass in (ExceptionClass.CONTRIBUTORY, ExceptionClass.PAGE_FAULT)
    return False
