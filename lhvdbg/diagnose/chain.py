"""The fault chain: the events from the last normal point to the stop, each decoded.

``build_chain`` picks, from a kernel run's events (``lhvdbg.diagnose.intlog``), the stop
(the first vector-8 delivery that is not a software ``int``, or a triple fault), walks
back while each event was raised *while delivering* the one before it (``check_exception
old`` names it, or the fault has the same CS:IP because delivery never reached the
handler), and keeps the event before that as context (the last one delivered normally).
Every raise is a step, in the log's order: delivered (a ``v=`` line) or folded into the
next (a ``check_exception`` with no ``v=`` line: the #DF or the triple fault it became;
``ChainStep.delivered`` False, no error code, as QEMU logs none). Each step is decoded:
vector name, source (which PIC line for a hardware IRQ), error code in its format
(selector format with the descriptor or gate it names; #PF bits with CR2) and the symbol
at RIP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from lhvdbg.diagnose.events import ChainEvent, CpuReset, InterruptEvent, TripleFault
from lhvdbg.state.symbols import symbolize
from lhvdbg.x86.cpustate import LapicState, PicState
from lhvdbg.x86.cpuview import CpuView, Event
from lhvdbg.x86.delivery import deliver
from lhvdbg.x86.errorcodes import error_code_layout
from lhvdbg.x86.interrupt_sources import InterruptSource, attribute
from lhvdbg.x86.layout import Decoded
from lhvdbg.x86.segments import selector_index
from lhvdbg.x86.tables import SystemTables
from lhvdbg.x86.vectors import DOUBLE_FAULT, ErrorCodeFormat, exception_info, vector_name

__all__ = [
    "Chain",
    "ChainStep",
    "ErrorCodeInfo",
    "FoldedInto",
    "build_chain",
    "describe_gate",
    "describe_gdt_entry",
]

FoldedInto = Literal["#DF", "triple fault"]
_EFER_LMA = 1 << 10  # IA-32e mode active (Intel SDM Vol. 3A §2.2.1)
_PAGE_FAULT, _STACK_FAULT = 14, 12  # #PF, #SS: raised by a frame store


@dataclass(frozen=True)
class ErrorCodeInfo:
    """An error code decoded in the format its vector uses.

    ``fields`` are the layout's field values; ``text`` a one-line reading; ``names`` what a
    selector-format code designates (the IDT gate or GDT descriptor), when the tables are
    known. For a selector format, ``table`` is ``IDT``/``GDT``/``LDT`` and ``index`` the
    vector or descriptor index.
    """

    raw: int
    format: str
    fields: Mapping[str, int]
    text: str
    names: str | None = None
    table: str | None = None
    index: int | None = None
    quirk: str | None = None  # how the emulator's code differs from a real CPU's

    @property
    def external(self) -> bool:
        """EXT: the exception happened while delivering an external event (hardware IRQ)."""
        return bool(self.fields.get("ext", 0))


@dataclass(frozen=True)
class ChainStep:
    """One decoded event of the chain.

    ``cause_of_next``: the next step was raised while delivering this one (so this one's
    handler never ran). ``irq`` is the PIC line for a hardware interrupt when the PIC
    state says which; ``origin`` the device input behind a hardware interrupt, from the
    one vector map (:func:`lhvdbg.x86.interrupt_sources.attribute`: an 8259 line, a LAPIC
    LVT entry...). ``symbol`` is ``name+0xoff`` at RIP (None when unknown).
    ``folded_into``: for a raise that was never delivered, what it became (``#DF``, or
    ``triple fault`` while a #DF was being delivered); None for a delivered step.
    """

    event: InterruptEvent
    name: str
    title: str
    error: ErrorCodeInfo | None
    symbol: str | None
    irq: tuple[str, int] | None = None  # ("master"|"slave", line)
    cause_of_next: bool = False
    folded_into: FoldedInto | None = None
    origin: InterruptSource | None = None

    @property
    def delivered(self) -> bool:
        """Whether the log shows the delivery (a ``v=`` line), not only the raise."""
        return self.event.delivered

    @property
    def vector(self) -> int:
        """The vector delivered."""
        return self.event.vector

    @property
    def source(self) -> str:
        """``hardware``, ``exception`` or ``software``."""
        return self.event.source

    def summary(self) -> str:
        """A one-line account: ``#NP (error 0x103: IDT vector 0x20, EXT) at 0x100abc``."""
        where = self.symbol or f"{self.event.rip:#x}"
        head = f"{self.name} ({self.title})"
        event = self.event
        if not event.delivered:
            during = (
                f" while delivering {vector_name(event.check_old)}"
                if event.check_old not in (None, -1)
                else ""
            )
            into = f"folded into the {self.folded_into}" if self.folded_into else "folded"
            return (
                f"{head} raised{during}, never delivered: {into} (QEMU logs no error code "
                f"for it), at {where}"
            )
        if event.check_new is not None and event.check_old not in (None, -1):
            head += (
                f" — {vector_name(event.check_new)} raised while delivering "
                f"{vector_name(event.check_old or 0)}"
            )
        if self.error is not None:
            head += f", error code {self.error.raw:#x}: {self.error.text}"
        elif self.event.source == "exception":
            head += ", no error code"
        return f"{head}, at {where}"


@dataclass(frozen=True)
class Chain:
    """The events from the last normal point to the stop.

    ``steps`` starts with the first abnormal event and ends at the stop, followed by what
    was raised while delivering it. ``context`` is the event delivered just before (None
    if there was none). ``stop_index`` indexes ``steps`` at the vector-8 delivery (None
    when the chain has none). ``triple_fault``/``reset`` say how it ended.
    """

    steps: tuple[ChainStep, ...]
    context: ChainStep | None = None
    stop_index: int | None = None
    triple_fault: TripleFault | None = None
    reset: bool = False
    earlier: int = 0  # events of the run before the context (delivered normally)

    @property
    def empty(self) -> bool:
        """No event and no triple fault."""
        return not self.steps and self.triple_fault is None

    @property
    def first(self) -> ChainStep | None:
        """The event that started the chain."""
        return self.steps[0] if self.steps else None

    @property
    def stop(self) -> ChainStep | None:
        """The vector-8 delivery, if the chain reached one."""
        return self.steps[self.stop_index] if self.stop_index is not None else None

    @property
    def exceptions(self) -> tuple[ChainStep, ...]:
        """The steps that are CPU exceptions, in order (folded raises included)."""
        return tuple(s for s in self.steps if s.source == "exception")

    @property
    def delivered(self) -> tuple[ChainStep, ...]:
        """The steps the log shows delivered (``v=`` lines), in order."""
        return tuple(s for s in self.steps if s.delivered)


def describe_gate(tables: SystemTables | None, vector: int) -> str | None:
    """``IDT[0x20]: not present`` / ``IDT[0x08]: 64-bit interrupt gate, ...``."""
    if tables is None or tables.idt is None:
        return None
    idt = tables.idt
    if not idt.covers(vector):
        return f"IDT[{vector:#04x}]: beyond the IDT limit ({idt.limit:#x})"
    entry = idt.gate(vector)
    if entry is None:
        return None
    gate = entry.decoded
    type_name = gate.name_of("type") or "?"
    if gate.raw == 0:
        return f"IDT[{vector:#04x}]: empty (all zero: type 0, not present)"
    parts = [
        type_name,
        "present" if gate.values["present"] else "NOT present",
        f"selector {gate.values['selector']:#04x}",
        f"offset {gate.values['offset']:#x}",
        f"DPL {gate.values['dpl']}",
    ]
    if "ist" in gate.values:
        parts.append(f"IST {gate.values['ist']}")
    return f"IDT[{vector:#04x}]: " + ", ".join(parts)


def describe_gdt_entry(tables: SystemTables | None, selector: int) -> str | None:
    """``GDT[0x18]: data, read/write, base 0x0, limit 0xfffff, DPL 0, present``."""
    if tables is None or tables.gdt is None:
        return None
    gdt = tables.gdt
    index = selector_index(selector)
    if index == 0:
        return "the null selector"
    if not gdt.within_limit(selector):
        return f"GDT[{selector & 0xFFF8:#04x}]: beyond the GDT limit ({gdt.limit:#x})"
    entry = gdt.entry(selector)
    if entry is None or entry.decoded is None:
        if entry is not None and entry.kind == "second-half":
            return f"GDT[{selector & 0xFFF8:#04x}]: {entry.note}"
        return None
    desc = entry.decoded
    if entry.kind == "empty":
        return f"GDT[{selector & 0xFFF8:#04x}]: empty (all zero)"
    return f"GDT[{selector & 0xFFF8:#04x}]: " + _descriptor_text(desc)


def _descriptor_text(desc: Decoded) -> str:
    values = desc.values
    return ", ".join(
        [
            desc.name_of("type") or "?",
            f"base {values['base']:#x}",
            f"limit {values['limit']:#x}",
            f"DPL {values['dpl']}",
            "present" if values["present"] else "NOT present",
        ]
        + (["64-bit (L)"] if values.get("l") else [])
    )


def decode_error_code(
    vector: int,
    raw: int,
    tables: SystemTables | None = None,
    cr2: int | None = None,
    *,
    qemu_long_mode: bool = False,
    delivering: int | None = None,
) -> ErrorCodeInfo | None:
    """The error code of ``vector`` decoded in its format (None if it pushes none).

    ``qemu_long_mode``: the code comes from QEMU TCG in IA-32e mode, where QEMU before 8.0
    (``do_interrupt64``, ``target/i386/tcg/seg_helper.c``, 7.2) raises gate faults with
    ``vector * 16 + 2`` — the gate's byte offset — while a CPU, and QEMU 8.0 on, push
    ``vector * 8 + 2`` (Intel SDM Vol. 3A §6.13; QEMU bug #1382). ``delivering``, the
    vector whose delivery raised this exception when the chain knows it, tells the two
    apart: an index of twice that vector is the old quirk, the vector itself is not.
    Without it, an even index in long mode is read as the quirk.
    """
    info = exception_info(vector)
    if info is None or not info.has_error_code:
        return None
    layout = error_code_layout(vector)
    decoded = layout.decode(raw & 0xFFFFFFFF)
    values = dict(decoded.values)
    if info.error_code is ErrorCodeFormat.SELECTOR:
        ext = " (EXT: while delivering an external event)" if values["ext"] else ""
        if values["idt"]:
            index = values["index"]
            quirk = None
            doubled = (
                index == 2 * delivering and index != delivering
                if delivering is not None
                else index % 2 == 0
            )
            if qemu_long_mode and doubled:
                quirk = (
                    f"QEMU TCG in long mode reports IDT faults as vector*16+2: index "
                    f"{index:#x} is vector {index // 2:#04x} (a CPU pushes "
                    f"{(index // 2) * 8 + 2:#x}, plus EXT=1 for an external event)"
                )
                index //= 2
            text = f"IDT vector {index:#04x}{ext}"
            return ErrorCodeInfo(
                raw, "selector", values, text, describe_gate(tables, index), "IDT", index, quirk
            )
        table = "LDT" if values["ti"] else "GDT"
        selector = raw & 0xFFFC
        if selector == 0 and table == "GDT":
            text = "0: no selector involved (or the null selector)" + ext
            return ErrorCodeInfo(raw, "selector", values, text, None, "GDT", 0)
        text = f"{table} selector {selector:#04x} (index {values['index']}){ext}"
        names = describe_gdt_entry(tables, selector) if table == "GDT" else None
        return ErrorCodeInfo(raw, "selector", values, text, names, table, values["index"])
    if info.error_code is ErrorCodeFormat.PAGE_FAULT:
        parts = [
            decoded.describe("p"),
            decoded.describe("wr"),
            decoded.describe("us"),
        ]
        parts += [name.upper() for name in ("rsvd", "id", "pk", "ss") if values.get(name)]
        text = ", ".join(parts)
        if cr2 is not None:
            text += f", CR2={cr2:#x}"
        return ErrorCodeInfo(raw, "page-fault", values, text)
    if info.error_code is ErrorCodeFormat.ZERO:
        text = "0, as always for this vector" if raw == 0 else f"{raw:#x} (should be 0)"
        return ErrorCodeInfo(raw, "zero", values, text)
    text = ", ".join(f"{k}={v:#x}" for k, v in values.items())
    return ErrorCodeInfo(raw, info.error_code.value, values, text)


def _title(event: InterruptEvent, origin: InterruptSource | None) -> str:
    if event.source == "software":
        return f"software int {event.vector:#04x}"
    if event.source == "hardware":
        if origin is not None and origin.irq is not None:
            return f"hardware interrupt, IRQ{origin.irq} from the {origin.chip} PIC"
        if origin is not None:
            return f"hardware interrupt, {origin.label} ({origin.source})"
        return "hardware interrupt"
    info = exception_info(event.vector)
    return info.name if info is not None else "exception"


def _long_mode(event: InterruptEvent, tables: SystemTables | None) -> bool:
    if event.registers is not None:
        return bool(event.registers.efer & _EFER_LMA)
    return tables is not None and tables.mode == "ia32e"


def _step(
    event: InterruptEvent,
    tables: SystemTables | None,
    symbols: Mapping[str, int],
    pic: PicState | None,
    lapic: LapicState | None,
    ioapic: Mapping[int, int] | None,
    qemu_tcg: bool,
    delivering: int | None = None,
) -> ChainStep:
    hardware = event.source == "hardware"
    origin = attribute(event.vector, pic, lapic, ioapic) if hardware else None
    irq = (origin.chip, origin.line) if origin and origin.chip and origin.line is not None else None
    error = None
    if event.error_code is not None:
        error = decode_error_code(
            event.vector,
            event.error_code,
            tables,
            event.cr2,
            qemu_long_mode=qemu_tcg and _long_mode(event, tables),
            delivering=delivering,
        )
    return ChainStep(
        event=event,
        name=vector_name(event.vector) if event.source == "exception" else f"{event.vector:#04x}",
        title=_title(event, origin),
        error=error,
        symbol=symbolize(event.rip, symbols),
        irq=irq,
        origin=origin,
    )


def raised_during_delivery(
    previous: InterruptEvent, event: InterruptEvent, tables: SystemTables | None = None
) -> bool:
    """Whether ``event`` was raised while the CPU delivered ``previous``.

    True when QEMU's ``check_exception`` names an exception in progress (not -1). A
    hardware IRQ leaves ``old`` at -1 even while it is being delivered: then the delivery
    model decides when the tables and ``previous``'s registers are known (its delivery
    fails raising ``event``'s vector, or it passes and the handler ran — QEMU can return
    to a non-canonical RIP and fault on the fetch at the same CS:IP), and otherwise the
    same CS:IP and CPL (no instruction of the handler ran).
    """
    if event.source != "exception":
        return False
    if event.check_old is not None and event.check_old != -1:
        return True
    verdict = _model_verdict(previous, event, tables)
    if verdict is not None:
        return verdict
    return (event.rip, event.cs, event.cpl) == (previous.rip, previous.cs, previous.cpl)


def _model_verdict(
    previous: InterruptEvent, event: InterruptEvent, tables: SystemTables | None
) -> bool | None:
    """The delivery model's answer to "did delivering ``previous`` raise ``event``?",
    None when it cannot tell (state unknown, or a store it could not walk)."""
    if tables is None or previous.registers is None or not previous.delivered:
        return None
    view = CpuView.of(previous.registers, tables)
    delivered = deliver(
        view,
        Event(previous.vector, previous.source, previous.error_code, previous.source == "hardware"),
    )
    raised = delivered.raised
    if raised is not None:
        return raised.vector == event.vector
    stores_only = all(c.id == "stack-push" for c in delivered.undecided)
    if delivered.undecided and (not stores_only or event.vector in (_PAGE_FAULT, _STACK_FAULT)):
        return None  # something the capture lacks (a TSS, a page walk) may have faulted
    return False


def build_chain(
    events: Sequence[ChainEvent],
    *,
    tables: SystemTables | None = None,
    symbols: Mapping[str, int] | None = None,
    pic: PicState | None = None,
    lapic: LapicState | None = None,
    ioapic: Mapping[int, int] | None = None,
    qemu_tcg: bool = True,
) -> Chain:
    """Select and decode the chain from a kernel run's events.

    ``tables`` (GDT/IDT at the stop) name the descriptors error codes point at; ``pic``
    (``info pic`` at the stop), ``lapic`` (``info lapic``) and ``ioapic`` (pin → redirection
    entry, :func:`lhvdbg.x86.interrupt_sources.ioapic_entries`) tell which device raised a
    hardware interrupt; ``symbols`` name the code at each RIP.
    ``qemu_tcg``: the events come from QEMU TCG's log (its error-code quirks apply);
    False for events reconstructed from a real CPU's stack frame (KVM).
    """
    symbols = symbols or {}
    interrupts = [e for e in events if isinstance(e, InterruptEvent)]
    triple = next((e for e in events if isinstance(e, TripleFault)), None)
    # The stop: the first vector 8 delivered that is not a software int.
    stop = next(
        (
            i
            for i, e in enumerate(interrupts)
            if e.vector == DOUBLE_FAULT and e.source != "software" and e.delivered
        ),
        None,
    )
    anchor = stop if stop is not None else len(interrupts) - 1
    if stop is None and triple is not None:
        # QEMU logs v=08 before failing to deliver it, so this is only for odd logs.
        anchor = max((i for i, e in enumerate(interrupts) if e.line < triple.line), default=-1)
    if anchor < 0:
        return Chain((), triple_fault=triple, reset=_reset_after(events, triple))
    start = anchor
    while start > 0 and raised_during_delivery(interrupts[start - 1], interrupts[start], tables):
        start -= 1
    end = anchor
    while end + 1 < len(interrupts) and raised_during_delivery(
        interrupts[end], interrupts[end + 1], tables
    ):
        end += 1
    if stop is None and triple is None and not _abnormal(interrupts[start : end + 1]):
        # Nothing went wrong yet: the chain is empty, the last event is the context.
        last = _step(interrupts[anchor], tables, symbols, pic, lapic, ioapic, qemu_tcg)
        return Chain((), context=last, earlier=anchor)
    selected = interrupts[start : end + 1]
    chain_triple = triple if triple is not None and _triple_ends(events, selected, triple) else None
    steps = []
    for i, event in enumerate(selected):
        delivering = _delivering(selected[i - 1] if i > 0 else None, event, tables)
        step = _step(event, tables, symbols, pic, lapic, ioapic, qemu_tcg, delivering)
        following = selected[i + 1] if i + 1 < len(selected) else None
        if not event.delivered:
            step = replace(step, folded_into=_folded_into(following, chain_triple))
        elif following is not None and raised_during_delivery(event, following, tables):
            step = replace(step, cause_of_next=True)
        steps.append(step)
    before = (
        _step(interrupts[start - 1], tables, symbols, pic, lapic, ioapic, qemu_tcg)
        if start > 0
        else None
    )
    return Chain(
        tuple(steps),
        context=before,
        stop_index=(stop - start) if stop is not None else None,
        triple_fault=chain_triple,
        reset=_reset_after(events, chain_triple),
        earlier=max(0, start - 1),
    )


def _delivering(
    previous: InterruptEvent | None, event: InterruptEvent, tables: SystemTables | None
) -> int | None:
    """The vector whose delivery raised ``event``: QEMU's ``check_exception old``, else
    the previous event when ``event`` was raised while delivering it; None otherwise."""
    if event.check_old is not None and event.check_old != -1:
        return event.check_old
    if previous is not None and raised_during_delivery(previous, event, tables):
        return previous.vector
    return None


def _folded_into(following: InterruptEvent | None, triple: TripleFault | None) -> FoldedInto | None:
    """What a raise that was never delivered became: the #DF delivered next, or the
    triple fault that ends the chain."""
    if following is not None and following.vector == DOUBLE_FAULT and following.delivered:
        return "#DF"
    if following is None and triple is not None:
        return "triple fault"
    return None


def _abnormal(events: Sequence[InterruptEvent]) -> bool:
    """Whether any event is a CPU exception other than a breakpoint/debug trap."""
    return any(e.source == "exception" and e.vector not in (1, 3) for e in events)


def _triple_ends(
    events: Sequence[ChainEvent], selected: Sequence[InterruptEvent], t: TripleFault
) -> bool:
    """Whether the triple fault follows the last selected event with nothing between."""
    last = selected[-1].line
    between = [e for e in events if isinstance(e, InterruptEvent) and last < e.line < t.line]
    return t.line > last and not between


def _reset_after(events: Sequence[ChainEvent], triple: TripleFault | None) -> bool:
    if triple is None:
        return False
    return any(isinstance(e, CpuReset) and e.line > triple.line for e in events)
