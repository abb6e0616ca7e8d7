"""Explain the chain with the model of delivery: what the CPU checked, what failed first.

For the chain's events, in order: what raised the event (its *origin*: an instruction's
own check, such as IRET popping a bad selector, or a push into a not-present page; or a
device delivering on an exception vector), then the model's delivery of it
(:func:`lhvdbg.x86.delivery.simulate`, which follows each raise through Table 6-5 to the
#DF or the shutdown). Each predicted raise is compared with what QEMU's log shows next:
agreed → confirmed; disagreed → shown, with the known emulator quirks named.

The first cause of a chain is the first failing check in time: an instruction's own check
before the delivery of the exception it raised, a hardware interrupt on an exception
vector before anything its delivery does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from lhvdbg.diagnose.chain import Chain, ChainStep
from lhvdbg.diagnose.events import InterruptEvent
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.errors import MemoryNotCaptured
from lhvdbg.x86.cpuview import CheckResult, CpuView, Event, Raised, is_canonical
from lhvdbg.x86.delivery import Delivery, combine, simulate
from lhvdbg.x86.errorcodes import page_fault_error_code_layout
from lhvdbg.x86.interrupt_sources import attribute, interrupt_sources, ioapic_entries
from lhvdbg.x86.iret import iret, pop_frame
from lhvdbg.x86.paging import walk
from lhvdbg.x86.vectors import DOUBLE_FAULT, FIRST_USER_VECTOR, vector_name

__all__ = ["Account", "Explanation", "Failure", "LogRow", "explain", "log_rows"]

PAGE_FAULT = 14
GENERAL_PROTECTION = 13
_IRET = ("iret", "iretq", "iretd", "iretw")
#: How far below the stack pointer a faulting address still counts as "the stack".
_STACK_REACH = 0x200

Agreement = Literal["confirmed", "quirk", "differs", "unknown"]
FailureRole = Literal["origin", "event", "delivery"]


@dataclass(frozen=True)
class LogRow:
    """One raise as the log has it: delivered (a ``v=`` line) or folded into the next."""

    vector: int
    error_code: int | None
    delivered: bool
    step: ChainStep | None = None


def log_rows(chain: Chain) -> tuple[LogRow, ...]:
    """The chain's raises in order, as the chain has them: delivered (a ``v=`` line) or
    folded into the next (``check_exception`` with no ``v=`` line; no error code logged)."""
    return tuple(
        LogRow(s.vector, s.event.error_code if s.delivered else None, s.delivered, s)
        for s in chain.steps
    )


@dataclass(frozen=True)
class Failure:
    """The first thing that went wrong: the check (or abnormal event), where, and why.

    ``role``: ``origin`` (the instruction that raised the event failed a check),
    ``event`` (a device delivered on an exception vector), ``delivery`` (a delivery check).
    """

    role: FailureRole
    check: CheckResult
    step: ChainStep
    delivery: Delivery | None = None


@dataclass(frozen=True)
class Account:
    """One event of the chain explained: origin, the model's delivery, and agreement."""

    step: ChainStep
    origin: CheckResult | None
    deliveries: tuple[Delivery, ...]
    triple_fault: bool
    agreement: Agreement
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Explanation:
    """The model's reading of the whole chain."""

    accounts: tuple[Account, ...]
    first: Failure | None
    rows: tuple[LogRow, ...]

    @property
    def failures(self) -> tuple[Failure, ...]:
        """Every failing check, in time order (the first one first)."""
        out: list[Failure] = []
        for account in self.accounts:
            if account.origin is not None and account.origin.ok is False:
                role: FailureRole = (
                    "event" if account.origin.id.startswith("hardware") else "origin"
                )
                out.append(Failure(role, account.origin, account.step))
            for d in account.deliveries:
                if d.failed is not None:
                    out.append(Failure("delivery", d.failed, account.step, d))
        return tuple(out)


def _view(ev: Evidence, event: InterruptEvent) -> CpuView | None:
    cpu = event.registers or ev.cpu
    if cpu is None or ev.tables is None:
        return None

    def read_linear(address: int, size: int) -> bytes:
        data = ev.read(address, size)
        if data is None:
            raise MemoryNotCaptured(f"{address:#x}..{address + size:#x} was not collected")
        return data

    view = CpuView.of(cpu, ev.tables, read_linear=read_linear, read_physical=ev.read_physical)
    view = replace(view, qemu_tcg=ev.int_log)  # the log is QEMU TCG's
    if event.registers is None:  # the capture is later: take CPL and SP from the event
        view = replace(view, cpl=event.cpl, sp=event.sp or view.sp)
    return view


def _hardware_origin(ev: Evidence, step: ChainStep) -> CheckResult | None:
    """A device delivered on an exception vector: which one, and the field that set it."""
    if step.source != "hardware" or step.vector >= FIRST_USER_VECTOR:
        return None
    fix: tuple[str, ...]
    snapshot = ev.snapshot
    origin = (  # the device, from the one vector map (x86.interrupt_sources)
        attribute(
            step.vector,
            snapshot.pic,
            snapshot.lapic,
            ioapic_entries(snapshot.hmp.get("info pic", "")),
        )
        if snapshot is not None
        else step.origin
    )
    if origin is not None and origin.chip is not None:
        source = f"the {origin.chip} 8259's IRQ{origin.irq}"
        fix = (f"pic.{origin.chip}.base",)
    elif origin is not None and origin.source.startswith("lapic-lvt-"):
        lvt = origin.source.removeprefix("lapic-lvt-")
        source = f"the local APIC's LVT {lvt} entry"
        fix = (f"lapic.lvt_{lvt}.vector",)
    elif origin is not None and origin.source == "ioapic":
        pin = origin.line
        source = f"the I/O APIC's pin {pin} (redirection entry {pin})"
        fix = (f"ioapic.redir[{pin}].vector",)
    else:
        source = "a device (neither 8259 base nor an unmasked LAPIC LVT entry matches)"
        fix = ()
    return CheckResult(
        "hardware-on-exception-vector",
        False,
        f"{source} delivered vector {step.vector:#04x}, an exception vector "
        f"({vector_name(step.vector)}): no error code is pushed and the exception's "
        "handler runs for a device interrupt",
        {"vector": step.vector},
        fix_fields=fix,
    )


def _iret_origin(ev: Evidence, view: CpuView, event: InterruptEvent) -> CheckResult | None:
    words = ev.words_at(event.sp, 5)
    if words is None:
        return None
    frame = pop_frame(view, words)
    result = iret(view, frame)
    if result.failed is not None:
        return result.failed
    return CheckResult(
        "iret-rip",
        True,
        f"the model finds nothing wrong with the popped frame {frame.to_dict()}",
        frame.to_dict(),
    )


def _page_fault_origin(ev: Evidence, view: CpuView, event: InterruptEvent) -> CheckResult | None:
    cr2 = event.cr2
    if cr2 is None:
        return None
    result = walk(ev.read_physical, view.cr3, view.cr4, view.efer, view.cr0, cr2)
    near_stack = event.sp - _STACK_REACH <= cr2 <= event.sp + 8
    why = result.fault or "a protection violation"
    code = event.error_code or 0
    access = page_fault_error_code_layout().decode(code).values
    what = "write" if access["wr"] else "read"
    if near_stack:
        return CheckResult(
            "stack-push",
            False,
            f"the instruction at {event.rip:#x} wrote the stack at {cr2:#x} "
            f"(RSP {event.sp:#x}): {why} — the stack ran past its end",
            {"cr2": cr2, "sp": event.sp},
            Raised(PAGE_FAULT, code, cr2),
            ("stack", f"page[{cr2 & ~0xFFF:#x}]"),
        )
    return CheckResult(
        "page-walk",
        False,
        f"the instruction at {event.rip:#x} made a {what} at {cr2:#x}: {why}",
        {"cr2": cr2},
        Raised(PAGE_FAULT, code, cr2),
        (f"page[{cr2 & ~0xFFF:#x}]",),
    )


def _origin(ev: Evidence, view: CpuView | None, step: ChainStep) -> CheckResult | None:
    """What raised ``step`` when nothing being delivered did."""
    hw = _hardware_origin(ev, step)
    if hw is not None or step.source != "exception" or view is None:
        return hw
    event = step.event
    if step.vector == GENERAL_PROTECTION and view.mode == "ia32e" and not is_canonical(event.rip):
        return CheckResult(
            "iret-rip",
            False,
            f"execution reached the non-canonical RIP {event.rip:#x}: an IRETQ popped it (QEMU "
            "loads it without the check a CPU makes at the IRET and faults on the fetch; a "
            "CPU raises #GP(0) at the iretq)",
            {"iret_frame.rip": event.rip},
            Raised(GENERAL_PROTECTION, 0),
            ("iret_frame.rip",),
        )
    instruction = ev.instruction_at(event.rip)
    if instruction in _IRET:
        return _iret_origin(ev, view, event)
    if step.vector == PAGE_FAULT:
        return _page_fault_origin(ev, view, event)
    return None


def _code_agreement(predicted: Raised, row: LogRow, view: CpuView) -> tuple[Agreement, str]:
    """Compare a predicted error code with the logged one, naming QEMU's known quirks."""
    want, got = predicted.error_code, row.error_code
    if want is None or got is None or want == got:
        return "confirmed", ""
    if want & ~1 == got:
        return "quirk", (
            f"{vector_name(row.vector)}: the log's error code {got:#x} lacks the EXT bit "
            f"(QEMU TCG does not set it; a CPU pushes {want:#x})"
        )
    if want & 2 and view.mode == "ia32e" and got == (want >> 3) * 16 + 2:
        return "quirk", (
            f"{vector_name(row.vector)}: the log's error code {got:#x} is vector×16+2, QEMU "
            f"< 8.0's long-mode quirk (QEMU bug #1382); the SDM's code is {want:#x}"
        )
    return "differs", (
        f"{vector_name(row.vector)}: the model predicts error code {want:#x}, the log shows "
        f"{got:#x}"
    )


def _predicted_rows(deliveries: Sequence[Delivery]) -> list[tuple[int, Raised | None, bool]]:
    """The raises the model predicts after the first delivery: (vector, raise, delivered)."""
    out: list[tuple[int, Raised | None, bool]] = []
    for d in deliveries:
        raised = d.raised
        if raised is None:
            break
        mode = combine(d.event, raised.vector)
        if mode == "deliver":
            out.append((raised.vector, raised, True))
        else:
            out.append((raised.vector, raised, False))
            if mode == "double-fault":
                out.append((DOUBLE_FAULT, Raised(DOUBLE_FAULT, 0), True))
    return out


def _compare(
    deliveries: Sequence[Delivery], triple: bool, rows: Sequence[LogRow], start: int, view: CpuView
) -> tuple[Agreement, list[str], int]:
    """Compare the model's raises with the log from row ``start + 1`` on; returns the
    agreement, notes, and how many log rows the prediction covers."""
    predicted = _predicted_rows(deliveries)
    notes: list[str] = []
    agreement: Agreement = "confirmed"
    i = start + 1
    for vector, raised, delivered in predicted:
        if i >= len(rows):
            notes.append(f"the model predicts {vector_name(vector)} next; the log ends")
            return ("unknown" if agreement == "confirmed" else agreement), notes, i - start
        row = rows[i]
        if row.vector != vector or row.delivered != delivered:
            notes.append(
                f"the model predicts {vector_name(vector)} "
                f"({'delivered' if delivered else 'folded into #DF'}); the log shows "
                f"{vector_name(row.vector)} ({'delivered' if row.delivered else 'folded'})"
            )
            return "differs", notes, i - start
        if raised is not None and row.delivered:
            got, note = _code_agreement(raised, row, view)
            if note:
                notes.append(note)
            if got == "differs" or (got == "quirk" and agreement == "confirmed"):
                agreement = got
        i += 1
    if any(d.undecided for d in deliveries):
        undecided = [c for d in deliveries for c in d.undecided]
        notes.append("undecided: " + "; ".join(c.text for c in undecided[:3]))
    if triple and not deliveries[-1].failed:
        agreement = "differs"
    return agreement, notes, i - start


def _event_of(step: ChainStep, ext: bool) -> Event:
    return Event(step.vector, step.event.source, step.event.error_code, ext)


def explain_chain(chain: Chain, ev: Evidence) -> Explanation:
    """Explain every event of ``chain`` with the model (see the module docstring)."""
    rows = log_rows(chain)
    accounts: list[Account] = []
    i = 0
    ext = False
    while i < len(rows):
        row = rows[i]
        step = row.step
        if step is None or not row.delivered:
            i += 1
            continue
        view = _view(ev, step.event)
        ext = step.source == "hardware" or (ext and step.source == "exception" and i > 0)
        origin = _origin(ev, view, step)
        if view is None:
            accounts.append(Account(step, origin, (), False, "unknown", ("no state to model",)))
            i += 1
            continue
        deliveries, triple = simulate(view, _event_of(step, ext))
        deliveries, triple = _settle_from_log(view, deliveries, triple, rows, i)
        agreement, notes, covered = _compare(deliveries, triple, rows, i, view)
        accounts.append(Account(step, origin, deliveries, triple, agreement, tuple(notes)))
        i += max(covered, 1)
        ext = ext and deliveries[-1].failed is not None
    if not ev.int_log and chain.steps:
        accounts = [*_inferred(chain, ev), *accounts]
    first = _first_failure(accounts)
    return Explanation(tuple(accounts), first, rows)


def _device_vectors(ev: Evidence) -> list[int]:
    """Vectors devices can deliver in the captured state: unmasked 8259 lines (IRQ0
    first), then unmasked LAPIC LVT entries."""
    snapshot = ev.snapshot
    if snapshot is None:
        return []
    out = [
        s.vector
        for s in interrupt_sources(snapshot.pic, snapshot.lapic)
        if not s.masked and s.source != "lapic-spurious" and (s.chip or s.vector >= 16)
    ]
    return list(dict.fromkeys(out))


def _inferred(chain: Chain, ev: Evidence) -> list[Account]:
    """No interrupt log (KVM): which device interrupt the captured state cannot deliver,
    predicted by the model (the first one whose delivery fails)."""
    cpu = ev.cpu
    if cpu is None or ev.tables is None or ev.stop.vector != DOUBLE_FAULT:
        return []
    first = chain.steps[0]
    if first.source == "hardware":
        return []  # a device interrupt on vector 8 itself: the event explains it
    view = CpuView.of(cpu, ev.tables)
    for vector in _device_vectors(ev):
        deliveries, triple = simulate(view, Event.hardware(vector))
        if deliveries[0].failed is None:
            continue
        note = (
            f"inferred: no interrupt log (KVM), so the chain is predicted from the captured "
            f"state — delivering the device interrupt on vector {vector:#04x} fails"
        )
        return [Account(first, None, deliveries, triple, "unknown", (note,))]
    return []


def _push_fault_in_log(d: Delivery, row: LogRow) -> CheckResult | None:
    """A store of ``d``'s frame that the log shows faulting, when the captured state could
    not decide it (no page tables): the #PF's CR2 lies in the frame being pushed."""
    step = row.step
    if step is None or not row.delivered or row.vector not in (PAGE_FAULT, 12):
        return None
    cr2 = step.event.cr2
    top = d.new_sp
    below = (top - cr2) % (1 << 64) if cr2 is not None and top is not None else None
    if row.vector == PAGE_FAULT and (below is None or not 0 < below <= 64):
        return None  # a frame is at most 48 bytes below the new stack pointer (it may wrap)
    where = f"CR2 {cr2:#x}" if cr2 is not None else f"at {step.event.rip:#x}"
    fix = (f"page[{cr2 & ~0xFFF:#x}]",) if cr2 is not None else ()
    if d.stack and d.stack != "current":
        fix = (f"tss.{d.stack.split(':')[-1]}", *fix)
    return CheckResult(
        "stack-push",
        False,
        f"pushing the frame onto the {d.stack} stack below {top:#x} faulted ({where}) — "
        "read from QEMU's log: the page tables were not captured"
        if top is not None
        else f"pushing the frame faulted ({where}), per QEMU's log",
        {"cr2": cr2} if cr2 is not None else {},
        Raised(row.vector, step.event.error_code, cr2),
        fix,
    )


def _settle_from_log(
    view: CpuView,
    deliveries: tuple[Delivery, ...],
    triple: bool,
    rows: Sequence[LogRow],
    start: int,
) -> tuple[tuple[Delivery, ...], bool]:
    """Where the model stopped on an undecided frame store and the log shows that store
    faulting, take the log's word for it and follow the raise on."""
    last = deliveries[-1]
    if last.failed is not None or not any(c.id == "stack-push" for c in last.undecided):
        return deliveries, triple
    at = next(
        (
            j
            for j in range(start, len(rows))
            if rows[j].delivered and rows[j].vector == last.event.vector
        ),
        None,
    )
    index = at + 1 if at is not None else len(rows)
    if index >= len(rows):
        return deliveries, triple
    failed = _push_fault_in_log(last, rows[index])
    if failed is None or failed.raises is None:
        return deliveries, triple
    settled = replace(last, checks=(*last.checks, failed))
    raised = failed.raises
    mode = combine(last.event, raised.vector)
    if mode == "triple-fault":
        return (*deliveries[:-1], settled), True
    ext = last.event.ext
    nxt = (
        Event(DOUBLE_FAULT, "exception", 0, ext)
        if mode == "double-fault"
        else Event(raised.vector, "exception", raised.error_code, ext)
    )
    more, more_triple = simulate(view, nxt)
    return (*deliveries[:-1], settled, *more), more_triple


def _first_failure(accounts: Sequence[Account]) -> Failure | None:
    for account in accounts:
        origin = account.origin
        if origin is not None and origin.ok is False:
            role: FailureRole = "event" if origin.id.startswith("hardware") else "origin"
            return Failure(role, origin, account.step)
        for d in account.deliveries:
            if d.failed is not None:
                return Failure("delivery", d.failed, account.step, d)
    return None


_last: list[tuple[Chain, Evidence, Explanation]] = []


def explain(chain: Chain, ev: Evidence) -> Explanation:
    """:func:`explain_chain`, computed once per (chain, evidence) for all the rules."""
    for c, e, explanation in _last:
        if c is chain and e is ev:
            return explanation
    explanation = explain_chain(chain, ev)
    _last[:] = [(chain, ev, explanation)]
    return explanation
