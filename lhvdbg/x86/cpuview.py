"""What the models of delivery and return read and report: the CPU's view, events, checks.

The state (:class:`CpuView`: mode, CPL, stack, control registers, the decoded tables and
two readers), the event being delivered (:class:`Event`, with EXT, Intel SDM Vol. 3A
§6.13), what a failing check raises (:class:`Raised`) and each check's result
(:class:`CheckResult`, its id one of :data:`CHECKS` with the SDM place it comes from).
Shared by :mod:`lhvdbg.x86.delivery`, :mod:`lhvdbg.x86.iret` and
:mod:`lhvdbg.x86.usable`. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from lhvdbg.x86.cpustate import CpuState, SegmentRegister
from lhvdbg.x86.errorcodes import selector_error_code_layout
from lhvdbg.x86.registers import cr0_layout, efer_layout
from lhvdbg.x86.segments import selector_layout
from lhvdbg.x86.tables import SystemTables

__all__ = [
    "CHECKS",
    "CheckFailed",
    "CheckResult",
    "CheckRun",
    "CpuView",
    "Event",
    "EventKind",
    "Mode",
    "Raised",
    "Reader",
    "idt_error_code",
    "is_canonical",
    "sel_hex",
    "selector_error_code",
]


Mode = Literal["real", "protected", "ia32e"]
EventKind = Literal["hardware", "exception", "software"]
Reader = Callable[[int, int], bytes]

GP, NP, SS, TS, PF = 13, 11, 12, 10, 14

#: Every check the model runs, with the SDM place it comes from.
CHECKS: Mapping[str, str] = {
    "idt-limit": "Vol. 3A §6.10, §6.14.1; Vol. 2A INT n",
    "gate-type": "Vol. 3A §6.11, §6.14.1; Vol. 2A INT n",
    "gate-dpl": "Vol. 3A §6.12.1.1; Vol. 2A INT n",
    "gate-present": "Vol. 2A INT n",
    "task-gate-tss": "Vol. 3A §7.3, Vol. 2A INT n (TASK-GATE)",
    "cs-null": "Vol. 2A INT n",
    "cs-limit": "Vol. 2A INT n",
    "cs-type": "Vol. 2A INT n",
    "cs-dpl": "Vol. 3A §6.12.1.1; Vol. 2A INT n",
    "cs-long": "Vol. 3A §6.14.1; Vol. 2A INT n",
    "cs-present": "Vol. 2A INT n",
    "tss-limit": "Vol. 3A §6.12.1, §6.14.5, §7.7; Vol. 2A INT n",
    "stack-pointer": "Vol. 3A §6.14.2, §6.14.5; Vol. 2A INT n",
    "ss0-null": "Vol. 3A §6.12.1; Vol. 2A INT n (INTER-PRIVILEGE-LEVEL-INTERRUPT)",
    "ss0-invalid": "Vol. 3A §6.12.1; Vol. 2A INT n (INTER-PRIVILEGE-LEVEL-INTERRUPT)",
    "ss0-present": "Vol. 2A INT n (INTER-PRIVILEGE-LEVEL-INTERRUPT)",
    "target-offset": "Vol. 2A INT n",
    "stack-push": "Vol. 3A §6.12.1, §6.14.2, §4.7; Vol. 2A INT n",
    "iret-cs-null": "Vol. 2A IRET (PROTECTED-MODE-RETURN)",
    "iret-cs-limit": "Vol. 2A IRET",
    "iret-cs-type": "Vol. 2A IRET",
    "iret-cs-rpl": "Vol. 2A IRET",
    "iret-cs-dpl": "Vol. 2A IRET",
    "iret-cs-present": "Vol. 2A IRET",
    "iret-ss-null": "Vol. 2A IRET (RETURN-TO-OUTER-PRIVILEGE-LEVEL, IA-32e)",
    "iret-ss-limit": "Vol. 2A IRET",
    "iret-ss-rpl": "Vol. 2A IRET",
    "iret-ss-type": "Vol. 2A IRET",
    "iret-ss-dpl": "Vol. 2A IRET",
    "iret-ss-present": "Vol. 2A IRET",
    "iret-rip": "Vol. 2A IRET",
}


def is_canonical(address: int, bits: int = 48) -> bool:
    """Whether a 64-bit address is canonical for ``bits`` linear-address bits (§3.3.7.1)."""
    top = (address & (1 << 64) - 1) >> (bits - 1)
    return top == 0 or top == (1 << (65 - bits)) - 1


def idt_error_code(vector: int, ext: bool) -> int:
    """The error code of a fault that names an IDT gate: vector*8 + 2 + EXT (§6.13)."""
    return selector_error_code_layout().encode(ext=int(ext), idt=1, index=vector)


def selector_error_code(selector: int, ext: bool) -> int:
    """The error code naming a GDT/LDT selector: its index and TI, plus EXT (§6.13)."""
    sel = selector_layout().decode(selector & 0xFFFF).values
    return selector_error_code_layout().encode(ext=int(ext), ti=sel["ti"], index=sel["index"])


def sel_hex(selector: int) -> str:
    """A selector as the models print it: ``0x0010``."""
    return f"{selector & 0xFFFF:#06x}"


# --- the view of the CPU the model reads ----------------------------------------------


@dataclass(frozen=True)
class CpuView:
    """What delivery reads: mode, CPL, the stack, the control registers and the tables.

    ``read_linear`` reads linear memory (used for a TSS whose body was not captured,
    e.g. TR never loaded: base 0); ``read_physical`` reads physical memory for the page
    walks of the frame's stores. Either may be None (then those checks stay undecided).
    """

    mode: Mode
    cpl: int
    sp: int
    ss: SegmentRegister | None
    cr0: int
    cr3: int
    cr4: int
    efer: int
    tables: SystemTables
    read_linear: Reader | None = None
    read_physical: Reader | None = None
    switched_to: int | None = None  # a TSS selector a later task switch made busy
    qemu_tcg: bool = False  # apply QEMU TCG's known deviations (named where they matter)

    @classmethod
    def of(
        cls,
        cpu: CpuState,
        tables: SystemTables,
        *,
        read_linear: Reader | None = None,
        read_physical: Reader | None = None,
    ) -> CpuView:
        """The view of a captured (or logged) CPU state."""
        mode: Mode
        if efer_layout().decode(cpu.efer & 0xFFFFFFFF).values["lma"]:
            mode = "ia32e"
        elif cr0_layout().decode(cpu.cr0 & 0xFFFFFFFF).values["pe"]:
            mode = "protected"
        else:
            mode = "real"
        switched_to = None
        tr = cpu.segments.get("tr")
        if tr is not None and (tr.selector, tr.base) != (tables.tr.selector, tables.tr.base):
            # The tables were captured later, after a task switch (a #DF task gate): this
            # moment's TSS is the one its own TR names; the later task's TSS is busy only
            # because of that switch.
            switched_to = tables.tr.selector
            entry = tables.gdt.entry(tr.selector) if tables.gdt is not None else None
            tables = replace(tables, tr=tr, tr_entry=entry, tss=None)
        return cls(
            mode=mode,
            cpl=cpu.cpl,
            sp=cpu.sp,
            ss=cpu.segments.get("ss"),
            cr0=cpu.cr0,
            cr3=cpu.cr3,
            cr4=cpu.cr4,
            efer=cpu.efer,
            tables=tables,
            read_linear=read_linear,
            read_physical=read_physical,
            switched_to=switched_to,
        )

    @property
    def word(self) -> int:
        """Bytes per pushed word: 8 in IA-32e mode, 4 otherwise (32-bit gates)."""
        return 8 if self.mode == "ia32e" else 4


# --- results --------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """An event to deliver: a vector, where it came from, and EXT.

    ``ext`` (SDM §6.13): 1 for a hardware interrupt and for an exception raised while
    delivering one; software interrupts (``int n``, ``int3``, ``into``) and exceptions
    raised by an instruction have 0.
    """

    vector: int
    kind: EventKind
    error_code: int | None = None
    ext: bool = False

    @classmethod
    def hardware(cls, vector: int) -> Event:
        """An external interrupt (EXT=1)."""
        return cls(vector, "hardware", None, True)


@dataclass(frozen=True)
class Raised:
    """The exception a failing check raises: vector, error code, CR2 for a #PF."""

    vector: int
    error_code: int | None
    cr2: int | None = None
    ext: bool = False


@dataclass(frozen=True)
class CheckResult:
    """One check: its id, passed (True) / failed (False) / undecided (None), what it read.

    ``fields`` maps the state fields read (``idtr.limit``, ``idt[0x20].type``,
    ``gdt[0x10]``, ``tss.ist1``, ...) to their values; ``fix_fields`` names the ones a
    fix has to change when the check fails; ``raises`` is what the CPU raises then.
    """

    id: str
    ok: bool | None
    text: str
    fields: Mapping[str, int] = field(default_factory=dict)
    raises: Raised | None = None
    fix_fields: tuple[str, ...] = ()

    @property
    def sdm(self) -> str:
        """Where the SDM describes this check."""
        return CHECKS[self.id]


class CheckFailed(Exception):
    """A check failed: ends the run of checks; carries its result."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.id)
        self.result = result


class CheckRun:
    """The checks of one delivery or return, in order; :meth:`fail` ends the run."""

    def __init__(self) -> None:
        self.checks: list[CheckResult] = []
        self.stack: str | None = None  # the stack being switched to, once known

    def ok(self, check: str, text: str, **fields: int) -> None:
        self.checks.append(CheckResult(check, True, text, dict(fields)))

    def undecided(self, check: str, text: str, **fields: int) -> None:
        self.checks.append(CheckResult(check, None, text, dict(fields)))

    def fail(
        self,
        check: str,
        text: str,
        raises: Raised,
        fix: tuple[str, ...],
        **fields: int,
    ) -> None:
        result = CheckResult(check, False, text, dict(fields), raises, fix)
        self.checks.append(result)
        raise CheckFailed(result)
