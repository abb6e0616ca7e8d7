"""A model of interrupt delivery through the IDT and of the return with IRET.

The CPU does not deliver an interrupt by symptoms: it runs a fixed sequence of checks and
raises a specific exception at the first one that fails. This module runs the same
sequence on a captured state and says which check failed, what the CPU raises there
(vector and architectural error code) and which fields it read. It is the one place that
decides whether a gate, a code or stack selector, or a stack is usable.

Sources (Intel SDM): Vol. 2A "INT n/INTO/INT3/INT1" and "IRET/IRETD/IRETQ" pseudo-code;
Vol. 3A §6.12.1 (exception- and interrupt-handler procedures, stack switching), §6.12.1.3
(flag usage), §6.13 (error codes), §6.14 (64-bit mode: 16-byte gates, IST, 16-byte stack
alignment), §6.15 Interrupt 8 (Table 6-5, how a second exception combines with the first),
§7.3 (task switching through a task gate), §4.7 (page-fault error code). The order is the
pseudo-code's: IDT limit, gate type, gate DPL (software interrupts only), present; the
gate's code segment; the stack (IST, RSPn, or SSn:ESPn from the TSS); the target offset;
then the stores of the frame.

Pure: no I/O beyond the two readers a :class:`CpuView` is given (linear memory for the
TSS slot when TR was never loaded, physical memory for page walks). A check that needs
memory nobody captured is *undecided* (``ok=None``), never guessed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from lhvdbg.errors import LhvdbgError
from lhvdbg.x86.cpustate import CpuState, SegmentRegister
from lhvdbg.x86.errorcodes import page_fault_error_code_layout, selector_error_code_layout
from lhvdbg.x86.layout import Decoded
from lhvdbg.x86.paging import walk
from lhvdbg.x86.registers import cr0_layout, efer_layout
from lhvdbg.x86.segments import (
    TYPE_TASK_GATE,
    TYPE_TSS16_AVAILABLE,
    TYPE_TSS_AVAILABLE,
    is_code,
    is_data,
    is_system,
    is_valid_idt_gate_type,
    limit_bytes,
    selector_layout,
)
from lhvdbg.x86.tables import GdtTable, SystemTables, tr_never_loaded
from lhvdbg.x86.tss import ist_offset
from lhvdbg.x86.vectors import DOUBLE_FAULT, ExceptionClass, exception_info, makes_double_fault

__all__ = [
    "CHECKS",
    "CheckResult",
    "CpuView",
    "Delivery",
    "Event",
    "IretFrame",
    "Raised",
    "Return",
    "code_segment_problem",
    "combine",
    "deliver",
    "gate_problem",
    "idt_error_code",
    "iret",
    "is_canonical",
    "simulate",
    "stack_segment_problem",
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


def _sel(selector: int) -> str:
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


@dataclass(frozen=True)
class Delivery:
    """The model's account of delivering one event.

    ``checks`` are the checks run, in order; the first failing one ends the list.
    ``stack`` names the stack used (``current``, ``ist1``, ``rsp0``, ``ss0:esp0``, ``task``)
    and ``new_sp`` the stack pointer the frame was pushed below; ``handler`` the target
    offset when everything passed.
    """

    event: Event
    mode: Mode
    checks: tuple[CheckResult, ...]
    stack: str | None = None
    new_sp: int | None = None
    handler: int | None = None
    frame_size: int = 0

    @property
    def failed(self) -> CheckResult | None:
        """The first failing check, if one failed."""
        return next((c for c in self.checks if c.ok is False), None)

    @property
    def raised(self) -> Raised | None:
        """What the failing check raises."""
        failed = self.failed
        return failed.raises if failed is not None else None

    @property
    def undecided(self) -> tuple[CheckResult, ...]:
        """Checks the captured state could not decide."""
        return tuple(c for c in self.checks if c.ok is None)

    @property
    def passed(self) -> bool:
        """Every check passed (undecided ones count as passed)."""
        return self.failed is None


class _Fail(Exception):
    """Internal: a check failed; carries its result."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.id)
        self.result = result


class _Run:
    """Accumulates the checks of one delivery or return."""

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
        raise _Fail(result)


# --- predicates: the one home of "is it usable" ----------------------------------------


def gate_problem(tables: SystemTables, vector: int) -> str | None:
    """Why IDT[vector] cannot deliver at CPL 0 as a hardware event (None: it can, or the
    IDT was not captured). The wording names the check that fails."""
    if tables.idt is None:
        return None
    if not tables.idt.covers(vector):
        return f"idt-limit: IDT[{vector:#04x}] lies beyond the IDT limit {tables.idt.limit:#x}"
    gate = tables.idt.gate(vector)
    if gate is None:
        return None
    values = gate.decoded.values
    if values.get("s", 0) or not is_valid_idt_gate_type(values["type"], tables.mode):
        return f"gate-type: IDT[{vector:#04x}] has type {values['type']:#x}"
    if not values["present"]:
        return f"gate-present: IDT[{vector:#04x}] is not present"
    if tables.mode == "legacy" and values["type"] == TYPE_TASK_GATE:
        return None
    problem = code_segment_problem(tables, values["selector"], cpl=0, ia32e=tables.mode == "ia32e")
    return f"{problem[0]}: {problem[1]}" if problem is not None else None


def _descriptor(
    gdt: GdtTable | None, selector: int
) -> tuple[Literal["null", "ldt", "limit", "unknown", "ok"], Decoded | None]:
    if selector & 0xFFFC == 0:
        return "null", None
    if selector & 0x4:
        return "ldt", None
    if gdt is None:
        return "unknown", None
    if not gdt.within_limit(selector, 8):
        return "limit", None
    entry = gdt.entry(selector)
    if entry is None or entry.decoded is None:
        return "unknown", None
    return "ok", entry.decoded


def code_segment_problem(
    tables: SystemTables, selector: int, *, cpl: int, ia32e: bool
) -> tuple[str, str] | None:
    """Why ``selector`` cannot be the code segment of an interrupt handler at ``cpl``:
    ``(check id, reason)``, or None when it can (or the GDT is unknown)."""
    state, desc = _descriptor(tables.gdt, selector)
    if state == "null":
        return "cs-null", f"the gate's selector {_sel(selector)} is null"
    if state == "ldt":
        return "cs-limit", f"the selector {_sel(selector)} names the LDT (TI=1); none is in use"
    if state == "limit":
        limit = tables.gdt.limit if tables.gdt is not None else 0
        return "cs-limit", f"the selector {_sel(selector)} lies beyond the GDT limit {limit:#x}"
    if desc is None:
        return None
    v = desc.values
    if not is_code(desc):
        kind = "a system descriptor" if is_system(desc) else "a data segment"
        return "cs-type", f"GDT[{_sel(selector)}] is {kind}, not a code segment"
    if v["dpl"] > cpl:
        return "cs-dpl", f"GDT[{_sel(selector)}] has DPL {v['dpl']} > CPL {cpl}"
    if ia32e and not (v["l"] == 1 and v["db"] == 0):
        return "cs-long", (
            f"GDT[{_sel(selector)}] is not a 64-bit code segment (L={v['l']}, D={v['db']})"
        )
    if not v["present"]:
        return "cs-present", f"GDT[{_sel(selector)}] is not present"
    return None


def stack_segment_problem(
    tables: SystemTables, selector: int, *, cpl: int
) -> tuple[str, str] | None:
    """Why ``selector`` cannot be the stack segment for ``cpl`` (protected-mode stack
    switch, SS0 of the TSS): ``(check id, reason)``, or None when it can."""
    state, desc = _descriptor(tables.gdt, selector)
    if state == "null":
        return "ss0-null", f"the stack selector {_sel(selector)} is null"
    if state in ("ldt", "limit"):
        return "ss0-invalid", f"the stack selector {_sel(selector)} lies outside the GDT"
    if selector & 3 != cpl:
        return "ss0-invalid", f"the stack selector {_sel(selector)} has RPL {selector & 3} ≠ {cpl}"
    if desc is None:
        return None
    v = desc.values
    if not is_data(desc) or not v["type"] & 0x2:
        return "ss0-invalid", f"GDT[{_sel(selector)}] is not a writable data segment"
    if v["dpl"] != cpl:
        return "ss0-invalid", f"GDT[{_sel(selector)}] has DPL {v['dpl']} ≠ {cpl}"
    if not v["present"]:
        return "ss0-present", f"GDT[{_sel(selector)}] is not present"
    return None


# --- delivery -------------------------------------------------------------------------


def _idt_checks(run: _Run, view: CpuView, event: Event) -> Decoded | None:
    """IDT limit, gate type, DPL (software), present. Returns the gate (None: unknown)."""
    v, ext = event.vector, event.ext
    idt = view.tables.idt
    tag = f"idt[{v:#04x}]"
    code = idt_error_code(v, ext)
    size = 16 if view.mode == "ia32e" else (4 if view.mode == "real" else 8)
    if idt is None:
        run.undecided("idt-limit", "the IDT was not captured")
        return None
    last = v * size + size - 1
    if last > idt.limit:
        run.fail(
            "idt-limit",
            f"IDT[{v:#04x}] (bytes {v * size:#x}..{last:#x}) lies beyond the IDT limit "
            f"{idt.limit:#x}",
            Raised(GP, code, ext=ext),
            ("idtr.limit",),
            **{"idtr.limit": idt.limit},
        )
    run.ok(
        "idt-limit", f"IDT limit {idt.limit:#x} covers IDT[{v:#04x}]", **{"idtr.limit": idt.limit}
    )
    if view.mode == "real":
        return None
    gate = idt.gate(v)
    if gate is None:
        run.undecided("gate-type", f"IDT[{v:#04x}] was not captured")
        return None
    g = gate.decoded.values
    if g.get("s", 0) or not is_valid_idt_gate_type(g["type"], idt.mode):
        wanted = (
            "a 64-bit interrupt (0xE) or trap (0xF) gate"
            if view.mode == "ia32e"
            else "a task (0x5), interrupt (0x6/0xE) or trap (0x7/0xF) gate"
        )
        run.fail(
            "gate-type",
            f"IDT[{v:#04x}] has type {g['type']:#x} ({gate.decoded.name_of('type')}); "
            f"the CPU needs {wanted}",
            Raised(GP, code, ext=ext),
            (f"{tag}.type",),
            **{f"{tag}.type": g["type"], f"{tag}.s": g.get("s", 0)},
        )
    run.ok(
        "gate-type",
        f"IDT[{v:#04x}] is a {gate.decoded.name_of('type')}",
        **{f"{tag}.type": g["type"]},
    )
    if event.kind == "software":
        if g["dpl"] < view.cpl:
            run.fail(
                "gate-dpl",
                f"IDT[{v:#04x}] has DPL {g['dpl']} < CPL {view.cpl}: int {v:#04x} from ring "
                f"{view.cpl} is refused",
                Raised(GP, idt_error_code(v, False)),
                (f"{tag}.dpl",),
                **{f"{tag}.dpl": g["dpl"], "cpl": view.cpl},
            )
        run.ok("gate-dpl", f"gate DPL {g['dpl']} ≥ CPL {view.cpl}", **{f"{tag}.dpl": g["dpl"]})
    if not g["present"]:
        run.fail(
            "gate-present",
            f"IDT[{v:#04x}] is not present (P=0)",
            Raised(NP, code, ext=ext),
            (f"{tag}.present",),
            **{f"{tag}.present": 0},
        )
    run.ok("gate-present", f"IDT[{v:#04x}] is present", **{f"{tag}.present": 1})
    return gate.decoded


def _task_gate(run: _Run, view: CpuView, event: Event, gate: Decoded) -> None:
    """A protected-mode task gate: its TSS selector must name an available, present TSS
    descriptor in the GDT with a limit ≥ 0x67 (0x2B for a 16-bit TSS) (§7.3)."""
    ext = event.ext
    selector = gate.values["selector"]
    tag = f"idt[{event.vector:#04x}].selector"
    state, desc = _descriptor(view.tables.gdt, selector)
    code = selector_error_code(selector, ext)
    if state in ("null", "ldt", "limit"):
        run.fail(
            "task-gate-tss",
            f"the task gate's TSS selector {_sel(selector)} is null or outside the GDT",
            Raised(GP, code, ext=ext),
            (tag,),
            **{tag: selector},
        )
    if desc is None:
        run.undecided("task-gate-tss", f"GDT[{_sel(selector)}] was not captured")
        return
    t = desc.values["type"]
    if not is_system(desc) or t not in (TYPE_TSS_AVAILABLE, TYPE_TSS16_AVAILABLE):
        busy = t in (0x3, 0xB) and is_system(desc)
        if busy and view.switched_to is not None and selector & 0xFFF8 == view.switched_to & 0xFFF8:
            run.ok(
                "task-gate-tss",
                f"task gate to the TSS GDT[{_sel(selector)}] (busy now: the switch to it came "
                "later)",
                **{tag: selector},
            )
            return
        run.fail(
            "task-gate-tss",
            f"GDT[{_sel(selector)}] is not an available TSS (type {t:#x}"
            + (", busy" if busy else "")
            + ")",
            Raised(GP, code, ext=ext),
            (tag, f"gdt[{selector & 0xFFF8:#04x}]") if busy else (tag,),
            **{f"gdt[{selector & 0xFFF8:#04x}].type": t},
        )
    if not desc.values["present"]:
        run.fail(
            "task-gate-tss",
            f"the TSS descriptor GDT[{_sel(selector)}] is not present",
            Raised(NP, code, ext=ext),
            (f"gdt[{selector & 0xFFF8:#04x}]",),
        )
    need = 0x67 if t == TYPE_TSS_AVAILABLE else 0x2B
    if limit_bytes(desc) < need:
        run.fail(
            "task-gate-tss",
            f"the TSS descriptor GDT[{_sel(selector)}] has limit "
            f"{limit_bytes(desc):#x} < {need:#x}",
            Raised(TS, code, ext=ext),
            (f"gdt[{selector & 0xFFF8:#04x}]",),
        )
    run.ok(
        "task-gate-tss", f"task gate to the available TSS GDT[{_sel(selector)}]", **{tag: selector}
    )


def _code_segment(run: _Run, view: CpuView, event: Event, gate: Decoded) -> Decoded | None:
    selector = gate.values["selector"]
    tag = f"idt[{event.vector:#04x}].selector"
    problem = code_segment_problem(view.tables, selector, cpl=view.cpl, ia32e=view.mode == "ia32e")
    if problem is not None:
        check, text = problem
        ext = event.ext
        vector = NP if check == "cs-present" else GP
        code = int(ext) if check == "cs-null" else selector_error_code(selector, ext)
        # Name the gate's selector: it names a slot that cannot be the handler's code
        # (a DPL-3 code descriptor is a fine user segment). A not-present descriptor may
        # equally be the one to mend.
        slot = f"gdt[{selector & 0xFFF8:#04x}]"
        fix = (tag, slot) if check == "cs-present" else (tag,)
        run.fail(check, text, Raised(vector, code, ext=ext), fix, **{tag: selector})
    _, desc = _descriptor(view.tables.gdt, selector)
    if desc is None:
        run.undecided("cs-type", f"GDT[{_sel(selector)}] was not captured")
        return None
    run.ok("cs-present", f"GDT[{_sel(selector)}] is a usable code segment", **{tag: selector})
    return desc


def _privilege_change(view: CpuView, cs: Decoded | None) -> int | None:
    """The new CPL when the handler runs at a more privileged level, else None."""
    if cs is None:
        return None
    conforming = bool(cs.values["type"] & 0x4)
    dpl = cs.values["dpl"]
    return dpl if not conforming and dpl < view.cpl else None


def _tss_bytes(view: CpuView, name: str, offset: int, size: int) -> int | None:
    """TSS field ``name`` (``size`` bytes at ``offset``) of the TSS TR points to: from the
    decoded TSS, else read at TR's base (None when not readable)."""
    tss = view.tables.tss
    if tss is not None and not tr_never_loaded(view.tables.tr) and name in tss.values:
        return tss.values[name]
    if view.read_linear is None:
        return None
    try:
        data = view.read_linear(view.tables.tr.base + offset, size)
    except LhvdbgError:
        return None
    return int.from_bytes(data, "little") if len(data) == size else None


def _tss_slot(
    run: _Run, view: CpuView, event: Event, offset: int, size: int, name: str
) -> int | None:
    """Read a stack slot of the TSS after checking TR's limit covers it (#TS otherwise)."""
    tr = view.tables.tr
    ext = event.ext
    never = tr_never_loaded(tr)
    fields = {"tr.limit": tr.limit, "tr.selector": tr.selector}
    if offset + size - 1 > tr.limit:
        fix = ("tr",) if never else ("tr.limit",)
        run.fail(
            "tss-limit",
            f"TSS.{name} (bytes {offset:#x}..{offset + size - 1:#x}) lies beyond TR's limit "
            f"{tr.limit:#x}" + (" (TR was never loaded)" if never else ""),
            Raised(TS, selector_error_code(tr.selector, ext), ext=ext),
            fix,
            **fields,
        )
    value = _tss_bytes(view, name, offset, size)
    note = " — TR was never loaded: its base is 0, so this reads the real-mode IVT" if never else ""
    if value is None:
        run.undecided(
            "tss-limit",
            f"TSS.{name} at TR base {tr.base:#x} + {offset:#x} was not captured{note}",
            **fields,
        )
        return None
    run.ok(
        "tss-limit",
        f"TSS.{name} = {value:#x} (TR limit {tr.limit:#x}){note}",
        **{**fields, f"tss.{name}": value},
    )
    return value


def _stack(
    run: _Run, view: CpuView, event: Event, gate: Decoded, cs: Decoded | None
) -> tuple[str, int | None, int | None]:
    """The stack the frame goes to: (name, new SP or None when unknown, new CPL or None)."""
    new_cpl = _privilege_change(view, cs)
    ext = event.ext
    if view.mode == "ia32e":
        ist = gate.values.get("ist", 0)
        if ist:
            name, offset = f"ist{ist}", ist_offset(ist)
        elif new_cpl is not None:
            name, offset = f"rsp{new_cpl}", 4 + 8 * new_cpl
        else:
            return "current", view.sp, None
        run.stack = name
        value = _tss_slot(run, view, event, offset, 8, name)
        if value is None:
            return name, None, new_cpl
        if not is_canonical(value):
            run.fail(
                "stack-pointer",
                f"TSS.{name} = {value:#x} is not canonical"
                + (
                    " (TR was never loaded: the slot lies in the real-mode IVT)"
                    if tr_never_loaded(view.tables.tr)
                    else ""
                ),
                Raised(SS, int(ext), ext=ext),
                ("tr",) if tr_never_loaded(view.tables.tr) else (f"tss.{name}",),
                **{f"tss.{name}": value},
            )
        run.ok("stack-pointer", f"TSS.{name} = {value:#x} is canonical", **{f"tss.{name}": value})
        return name, value & ~0xF, new_cpl
    if new_cpl is None:
        return "current", view.sp, None
    # Protected mode, privilege change: SSn:ESPn from the 32-bit TSS.
    run.stack = f"ss{new_cpl}:esp{new_cpl}"
    slot = 4 + 8 * new_cpl
    tr = view.tables.tr
    if view.qemu_tcg and slot + 5 <= tr.limit < slot + 7:
        # QEMU TCG (seg_helper.c, get_ss_esp_from_tss) reads 8 bytes at the slot where the
        # SDM reads 6 (ESPn and SSn): a limit covering SSn but not the 2 bytes after it
        # is #TS there.
        fix = ("tr",) if tr_never_loaded(tr) else ("tr.limit",)
        run.fail(
            "tss-limit",
            f"TSS.esp{new_cpl}/ss{new_cpl} (bytes {slot:#x}..{slot + 5:#x}) lie within TR's "
            f"limit {tr.limit:#x}, but QEMU TCG reads 8 bytes there (to {slot + 7:#x}) and "
            "raises #TS; a CPU would not",
            Raised(TS, selector_error_code(tr.selector, event.ext), ext=event.ext),
            fix,
            **{"tr.limit": tr.limit, "tr.selector": tr.selector},
        )
    esp = _tss_slot(run, view, event, 4 + 8 * new_cpl, 4, f"esp{new_cpl}")
    ss = _tss_slot(run, view, event, 8 + 8 * new_cpl, 2, f"ss{new_cpl}")
    if ss is None:
        return f"ss{new_cpl}:esp{new_cpl}", esp, new_cpl
    problem = stack_segment_problem(view.tables, ss, cpl=new_cpl)
    field_name = f"tss.ss{new_cpl}"
    if problem is not None:
        check, text = problem
        if check == "ss0-null":
            raised = Raised(TS, int(ext), ext=ext)
        elif check == "ss0-present":
            raised = Raised(SS, selector_error_code(ss, ext), ext=ext)
        else:
            raised = Raised(TS, selector_error_code(ss, ext), ext=ext)
        run.fail(check, f"TSS.ss{new_cpl}: {text}", raised, (field_name,), **{field_name: ss})
    run.ok(
        "ss0-invalid",
        f"TSS.ss{new_cpl} = {_sel(ss)} is a writable data segment of DPL {new_cpl}",
        **{field_name: ss},
    )
    return f"ss{new_cpl}:esp{new_cpl}", esp, new_cpl


def _target(run: _Run, view: CpuView, event: Event, gate: Decoded, cs: Decoded | None) -> int:
    offset = gate.values["offset"]
    tag = f"idt[{event.vector:#04x}].offset"
    ext = event.ext
    if view.mode == "ia32e":
        if not is_canonical(offset):
            run.fail(
                "target-offset",
                f"the handler offset {offset:#x} is not canonical",
                Raised(GP, int(ext), ext=ext),
                (tag,),
                **{tag: offset},
            )
    elif cs is not None and offset > limit_bytes(cs):
        run.fail(
            "target-offset",
            f"the handler offset {offset:#x} lies beyond the code segment's limit "
            f"{limit_bytes(cs):#x}",
            Raised(GP, int(ext), ext=ext),
            (tag,),
            **{tag: offset},
        )
    run.ok("target-offset", f"handler at {offset:#x}", **{tag: offset})
    return offset


def _frame_size(view: CpuView, event: Event, new_cpl: int | None, error_code: bool) -> int:
    if view.mode == "ia32e":
        return 8 * (5 + int(error_code))
    return 4 * (3 + (2 if new_cpl is not None else 0) + int(error_code))


def _push(
    run: _Run, view: CpuView, event: Event, stack: str, sp: int | None, size: int, new_cpl: int
) -> None:
    """The frame's stores, highest first: each page present and writable (§4.7, §6.12.1)."""
    ext = event.ext
    if sp is None:
        run.undecided("stack-push", f"the {stack} stack pointer is unknown")
        return
    word = view.word
    fix_field = "stack" if stack == "current" else f"page[{sp - word:#x}]"
    if view.mode == "ia32e" and not is_canonical(sp - size):
        run.fail(
            "stack-push",
            f"the frame below {sp:#x} is not canonical",
            Raised(SS, int(ext), ext=ext),
            (fix_field if stack == "current" else f"tss.{stack}",),
        )
    if view.mode != "ia32e" and stack == "current" and view.ss is not None:
        limit = view.ss.limit
        if sp - size < 0 or sp - 1 > limit:
            run.fail(
                "stack-push",
                f"ESP {sp:#x} leaves no room for {size} bytes in SS (limit {limit:#x})",
                Raised(
                    SS,
                    selector_error_code(view.ss.selector, ext) if sp - size < 0 else int(ext),
                    ext=ext,
                ),
                ("stack",),
            )
    base = view.ss.base if (view.mode == "protected" and stack == "current" and view.ss) else 0
    if not cr0_layout().decode(view.cr0 & 0xFFFFFFFF).values["pg"]:
        run.ok("stack-push", f"{size} bytes pushed below {sp:#x} (paging off)")
        return
    if view.read_physical is None:
        run.undecided(
            "stack-push", f"the page tables for the frame below {sp:#x} were not captured"
        )
        return
    wp = bool(cr0_layout().decode(view.cr0 & 0xFFFFFFFF).values["wp"])
    user = new_cpl == 3
    pages_seen: set[int] = set()
    for address in range(sp - word, sp - size - 1, -word):
        linear = (base + address) & ((1 << 64) - 1)
        page = linear & ~0xFFF
        if page in pages_seen:
            continue
        pages_seen.add(page)
        result = walk(view.read_physical, view.cr3, view.cr4, view.efer, view.cr0, linear)
        if result.fault is not None and "not readable" in result.fault:
            run.undecided(
                "stack-push", f"the walk of {linear:#x} needs memory not captured: {result.fault}"
            )
            return
        present = result.fault is None
        writable = result.writable or (not wp and not user)
        if present and writable and (result.user or not user):
            continue
        pf_code = page_fault_error_code_layout().encode(p=int(present), wr=1, us=int(user))
        why = result.fault or ("read-only" if not writable else "supervisor-only")
        run.fail(
            "stack-push",
            f"pushing the frame onto the {stack} stack writes {linear:#x}: {why}",
            Raised(PF, pf_code, cr2=linear, ext=ext),
            (f"tss.{stack.split(':')[-1]}", f"page[{page:#x}]")
            if stack != "current"
            else ("stack", f"page[{page:#x}]"),
            **{"cr2": linear, "sp": sp},
        )
    run.ok("stack-push", f"{size} bytes pushed below {sp:#x} on the {stack} stack")


def deliver(view: CpuView, event: Event) -> Delivery:
    """Run the CPU's checks for delivering ``event`` in ``view``; stop at the first failure."""
    run = _Run()
    stack: str | None = None
    new_sp: int | None = None
    handler: int | None = None
    size = 0
    info = exception_info(event.vector)
    pushes_code = event.kind == "exception" and info is not None and info.has_error_code
    with contextlib.suppress(_Fail):
        gate = _idt_checks(run, view, event)
        if gate is not None:
            if view.mode == "protected" and gate.values["type"] == TYPE_TASK_GATE:
                _task_gate(run, view, event, gate)
                stack = "task"
            else:
                cs = _code_segment(run, view, event, gate)
                stack, new_sp, new_cpl = _stack(run, view, event, gate, cs)
                handler = _target(run, view, event, gate, cs)
                size = _frame_size(view, event, new_cpl, pushes_code)
                cpl_after = new_cpl if new_cpl is not None else view.cpl
                _push(run, view, event, stack, new_sp, size, cpl_after)
    stack = stack or run.stack
    return Delivery(event, view.mode, tuple(run.checks), stack, new_sp, handler, size)


# --- how a second exception combines with the first (Table 6-5) -------------------------

Combination = Literal["deliver", "double-fault", "triple-fault"]


def combine(first: Event, second: int) -> Combination:
    """What the CPU does when ``second`` is raised while delivering ``first`` (§6.15,
    Interrupt 8, Table 6-5): a fault during #DF delivery shuts down; contributory +
    contributory and #PF + (#PF or contributory) give #DF; otherwise the second one is
    delivered. Hardware and software interrupts count as benign first events."""
    if first.kind == "exception" and first.vector == DOUBLE_FAULT:
        return "triple-fault"
    if first.kind == "exception" and makes_double_fault(first.vector, second):
        return "double-fault"
    return "deliver"


def simulate(view: CpuView, event: Event, *, limit: int = 6) -> tuple[tuple[Delivery, ...], bool]:
    """Deliver ``event`` and whatever its delivery raises, as the CPU would, until a
    delivery succeeds, a check is undecided, or the CPU shuts down. Returns the
    deliveries and whether it ended in a triple fault."""
    out: list[Delivery] = []
    current = event
    for _ in range(limit):
        delivery = deliver(view, current)
        out.append(delivery)
        raised = delivery.raised
        if raised is None:
            return tuple(out), False
        what = combine(current, raised.vector)
        if what == "triple-fault":
            return tuple(out), True
        ext = current.ext or raised.ext
        if what == "double-fault":
            current = Event(DOUBLE_FAULT, "exception", 0, ext)
        else:
            current = Event(raised.vector, "exception", raised.error_code, ext)
    return tuple(out), False


# --- IRET -----------------------------------------------------------------------------


@dataclass(frozen=True)
class IretFrame:
    """What IRET popped: only the words the architecture pops (no SS/RSP for a
    same-privilege 32-bit ``iret``)."""

    rip: int
    cs: int
    rflags: int
    rsp: int | None = None
    ss: int | None = None
    width: int = 8

    def to_dict(self) -> dict[str, int]:
        """The popped fields by name (absent ones left out)."""
        out = {"rip": self.rip, "cs": self.cs, "rflags": self.rflags}
        if self.rsp is not None and self.ss is not None:
            out |= {"rsp": self.rsp, "ss": self.ss}
        return out


@dataclass(frozen=True)
class Return:
    """The model's account of an IRET: the frame popped and the checks run."""

    frame: IretFrame
    checks: tuple[CheckResult, ...]

    @property
    def failed(self) -> CheckResult | None:
        """The first failing check."""
        return next((c for c in self.checks if c.ok is False), None)

    @property
    def raised(self) -> Raised | None:
        """What the failing check raises."""
        failed = self.failed
        return failed.raises if failed is not None else None


def pop_frame(view: CpuView, words: Sequence[int]) -> IretFrame:
    """Decode the words at the stack pointer as IRET pops them: IRETQ (IA-32e, 64-bit
    code) pops RIP, CS, RFLAGS, RSP, SS; a 32-bit IRET pops EIP, CS, EFLAGS and, only when
    returning to an outer privilege level (CS.RPL > CPL), ESP and SS."""
    if view.mode == "ia32e":
        rip, cs, flags, rsp, ss = (list(words) + [0] * 5)[:5]
        return IretFrame(rip, cs & 0xFFFF, flags, rsp, ss & 0xFFFF, 8)
    eip, cs, flags = (list(words) + [0] * 3)[:3]
    if cs & 3 > view.cpl and len(words) >= 5:
        return IretFrame(eip, cs & 0xFFFF, flags, words[3], words[4] & 0xFFFF, 4)
    return IretFrame(eip, cs & 0xFFFF, flags, width=4)


def iret(view: CpuView, frame: IretFrame) -> Return:
    """Run IRET's protected-mode / IA-32e checks on the popped ``frame`` (Vol. 2A IRET)."""
    run = _Run()
    with contextlib.suppress(_Fail):
        _iret_checks(run, view, frame)
    return Return(frame, tuple(run.checks))


def _iret_checks(run: _Run, view: CpuView, frame: IretFrame) -> None:
    cs = frame.cs
    gdt = view.tables.gdt
    state, desc = _descriptor(gdt, cs)
    fields = {"iret_frame.cs": cs}
    if state == "null":
        run.fail(
            "iret-cs-null", "the popped CS is null", Raised(GP, 0), ("iret_frame.cs",), **fields
        )
    if state in ("ldt", "limit"):
        run.fail(
            "iret-cs-limit",
            f"the popped CS {_sel(cs)} lies outside the GDT",
            Raised(GP, cs & 0xFFFC),
            ("iret_frame.cs",),
            **fields,
        )
    if desc is None:
        run.undecided("iret-cs-type", f"GDT[{_sel(cs)}] was not captured", **fields)
        return
    rpl = cs & 3
    v = desc.values
    if not is_code(desc):
        run.fail(
            "iret-cs-type",
            f"the popped CS {_sel(cs)} names "
            + ("a system descriptor" if is_system(desc) else "a data segment")
            + ", not code",
            Raised(GP, cs & 0xFFFC),
            ("iret_frame.cs",),
            **fields,
        )
    if rpl < view.cpl:
        run.fail(
            "iret-cs-rpl",
            f"the popped CS {_sel(cs)} has RPL {rpl} < CPL {view.cpl}",
            Raised(GP, cs & 0xFFFC),
            ("iret_frame.cs",),
            **fields,
        )
    conforming = bool(v["type"] & 0x4)
    if (conforming and v["dpl"] > rpl) or (not conforming and v["dpl"] != rpl):
        run.fail(
            "iret-cs-dpl",
            f"GDT[{_sel(cs)}] has DPL {v['dpl']}, the popped CS RPL is {rpl}",
            Raised(GP, cs & 0xFFFC),
            ("iret_frame.cs",),
            **fields,
        )
    if not v["present"]:
        run.fail(
            "iret-cs-present",
            f"GDT[{_sel(cs)}] is not present",
            Raised(NP, cs & 0xFFFC),
            ("iret_frame.cs",),
            **fields,
        )
    run.ok("iret-cs-present", f"CS {_sel(cs)} is a usable code segment", **fields)
    to_64 = view.mode == "ia32e" and v["l"] == 1
    if frame.ss is not None and (frame.width == 8 or rpl > view.cpl):
        _iret_ss(run, view, frame, rpl, to_64)
    if to_64 and not is_canonical(frame.rip):
        run.fail(
            "iret-rip",
            f"the popped RIP {frame.rip:#x} is not canonical",
            Raised(GP, 0),
            ("iret_frame.rip",),
            **{"iret_frame.rip": frame.rip},
        )
    if not to_64 and frame.rip > limit_bytes(desc):
        run.fail(
            "iret-rip",
            f"the popped EIP {frame.rip:#x} lies beyond CS's limit {limit_bytes(desc):#x}",
            Raised(GP, 0),
            ("iret_frame.rip",),
            **{"iret_frame.rip": frame.rip},
        )
    run.ok("iret-rip", f"returns to {frame.rip:#x}", **{"iret_frame.rip": frame.rip})


def _iret_ss(run: _Run, view: CpuView, frame: IretFrame, rpl: int, to_64: bool) -> None:
    ss = frame.ss if frame.ss is not None else 0
    fields = {"iret_frame.ss": ss}
    fix = ("iret_frame.ss",)
    state, desc = _descriptor(view.tables.gdt, ss)
    if state == "null":
        if to_64 and rpl != 3:
            run.ok(
                "iret-ss-null", "a null SS is allowed returning to 64-bit code at CPL < 3", **fields
            )
            return
        run.fail("iret-ss-null", "the popped SS is null", Raised(GP, 0), fix, **fields)
    if ss & 3 != rpl:
        run.fail(
            "iret-ss-rpl",
            f"the popped SS {_sel(ss)} has RPL {ss & 3} ≠ the CS RPL {rpl}",
            Raised(GP, ss & 0xFFFC),
            fix,
            **fields,
        )
    if state in ("ldt", "limit"):
        run.fail(
            "iret-ss-limit",
            f"the popped SS {_sel(ss)} lies outside the GDT",
            Raised(GP, ss & 0xFFFC),
            fix,
            **fields,
        )
    if desc is None:
        run.undecided("iret-ss-type", f"GDT[{_sel(ss)}] was not captured", **fields)
        return
    v = desc.values
    if not is_data(desc) or not v["type"] & 0x2:
        kind = (
            "code"
            if is_code(desc)
            else ("a system descriptor" if is_system(desc) else "read-only data")
        )
        run.fail(
            "iret-ss-type",
            f"the popped SS {_sel(ss)} names {kind}, not a writable data segment",
            Raised(GP, ss & 0xFFFC),
            fix,
            **fields,
        )
    if v["dpl"] != rpl:
        run.fail(
            "iret-ss-dpl",
            f"GDT[{_sel(ss)}] has DPL {v['dpl']} ≠ the CS RPL {rpl}",
            Raised(GP, ss & 0xFFFC),
            fix,
            **fields,
        )
    if not v["present"]:
        run.fail(
            "iret-ss-present",
            f"GDT[{_sel(ss)}] is not present",
            Raised(SS, ss & 0xFFFC),
            fix,
            **fields,
        )
    run.ok("iret-ss-present", f"SS {_sel(ss)} is a usable stack segment", **fields)


def exception_class(vector: int) -> ExceptionClass | None:
    """The Table 6-4 class of an exception vector (None: not an exception)."""
    info = exception_info(vector)
    return info.klass if info is not None else None
