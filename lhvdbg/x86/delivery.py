"""A model of interrupt delivery through the IDT.

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
from dataclasses import dataclass
from typing import Literal

from lhvdbg.errors import LhvdbgError
from lhvdbg.x86.cpuview import (
    GP,
    NP,
    PF,
    SS,
    TS,
    CheckFailed,
    CheckResult,
    CheckRun,
    CpuView,
    Event,
    Mode,
    Raised,
    idt_error_code,
    is_canonical,
    sel_hex,
    selector_error_code,
)
from lhvdbg.x86.errorcodes import page_fault_error_code_layout
from lhvdbg.x86.layout import Decoded
from lhvdbg.x86.paging import walk
from lhvdbg.x86.registers import cr0_layout
from lhvdbg.x86.segments import (
    TYPE_TASK_GATE,
    TYPE_TSS16_AVAILABLE,
    TYPE_TSS_AVAILABLE,
    is_system,
    is_valid_idt_gate_type,
    limit_bytes,
)
from lhvdbg.x86.tables import tr_never_loaded
from lhvdbg.x86.tss import ist_offset
from lhvdbg.x86.usable import code_segment_problem, descriptor_at, stack_segment_problem
from lhvdbg.x86.vectors import DOUBLE_FAULT, exception_info, makes_double_fault

__all__ = ["Combination", "Delivery", "combine", "deliver", "simulate"]


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


def _idt_checks(run: CheckRun, view: CpuView, event: Event) -> Decoded | None:
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


def _task_gate(run: CheckRun, view: CpuView, event: Event, gate: Decoded) -> None:
    """A protected-mode task gate: its TSS selector must name an available, present TSS
    descriptor in the GDT with a limit ≥ 0x67 (0x2B for a 16-bit TSS) (§7.3)."""
    ext = event.ext
    selector = gate.values["selector"]
    tag = f"idt[{event.vector:#04x}].selector"
    state, desc = descriptor_at(view.tables.gdt, selector)
    code = selector_error_code(selector, ext)
    if state in ("null", "ldt", "limit"):
        run.fail(
            "task-gate-tss",
            f"the task gate's TSS selector {sel_hex(selector)} is null or outside the GDT",
            Raised(GP, code, ext=ext),
            (tag,),
            **{tag: selector},
        )
    if desc is None:
        run.undecided("task-gate-tss", f"GDT[{sel_hex(selector)}] was not captured")
        return
    t = desc.values["type"]
    if not is_system(desc) or t not in (TYPE_TSS_AVAILABLE, TYPE_TSS16_AVAILABLE):
        busy = t in (0x3, 0xB) and is_system(desc)
        if busy and view.switched_to is not None and selector & 0xFFF8 == view.switched_to & 0xFFF8:
            run.ok(
                "task-gate-tss",
                f"task gate to the TSS GDT[{sel_hex(selector)}] (busy now: the switch to it came "
                "later)",
                **{tag: selector},
            )
            return
        run.fail(
            "task-gate-tss",
            f"GDT[{sel_hex(selector)}] is not an available TSS (type {t:#x}"
            + (", busy" if busy else "")
            + ")",
            Raised(GP, code, ext=ext),
            (tag, f"gdt[{selector & 0xFFF8:#04x}]") if busy else (tag,),
            **{f"gdt[{selector & 0xFFF8:#04x}].type": t},
        )
    if not desc.values["present"]:
        run.fail(
            "task-gate-tss",
            f"the TSS descriptor GDT[{sel_hex(selector)}] is not present",
            Raised(NP, code, ext=ext),
            (f"gdt[{selector & 0xFFF8:#04x}]",),
        )
    need = 0x67 if t == TYPE_TSS_AVAILABLE else 0x2B
    if limit_bytes(desc) < need:
        run.fail(
            "task-gate-tss",
            f"the TSS descriptor GDT[{sel_hex(selector)}] has limit "
            f"{limit_bytes(desc):#x} < {need:#x}",
            Raised(TS, code, ext=ext),
            (f"gdt[{selector & 0xFFF8:#04x}]",),
        )
    run.ok(
        "task-gate-tss",
        f"task gate to the available TSS GDT[{sel_hex(selector)}]",
        **{tag: selector},
    )


def _code_segment(run: CheckRun, view: CpuView, event: Event, gate: Decoded) -> Decoded | None:
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
    _, desc = descriptor_at(view.tables.gdt, selector)
    if desc is None:
        run.undecided("cs-type", f"GDT[{sel_hex(selector)}] was not captured")
        return None
    run.ok("cs-present", f"GDT[{sel_hex(selector)}] is a usable code segment", **{tag: selector})
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
    run: CheckRun, view: CpuView, event: Event, offset: int, size: int, name: str
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
    run: CheckRun, view: CpuView, event: Event, gate: Decoded, cs: Decoded | None
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
        f"TSS.ss{new_cpl} = {sel_hex(ss)} is a writable data segment of DPL {new_cpl}",
        **{field_name: ss},
    )
    return f"ss{new_cpl}:esp{new_cpl}", esp, new_cpl


def _target(run: CheckRun, view: CpuView, event: Event, gate: Decoded, cs: Decoded | None) -> int:
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
    run: CheckRun, view: CpuView, event: Event, stack: str, sp: int | None, size: int, new_cpl: int
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
    run = CheckRun()
    stack: str | None = None
    new_sp: int | None = None
    handler: int | None = None
    size = 0
    info = exception_info(event.vector)
    pushes_code = event.kind == "exception" and info is not None and info.has_error_code
    with contextlib.suppress(CheckFailed):
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
