"""Collect evidence from a live session (or a snapshot) and diagnose it.

Shared by ``lhvdbg break-on-df`` and the shell/scenario ``diagnose`` command: one
function gathers what the pure diagnosis needs — the ``-d int`` log's events (TCG), a
capture at the stop, the interrupt frame at the vector-8 handler, instruction bytes and
stack words at the RIPs involved (one pipelined gdb round trip) — and
:func:`lhvdbg.diagnose.report.make_report` does the rest.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from lhvdbg.diagnose.events import ChainEvent, InterruptEvent
from lhvdbg.diagnose.evidence import (
    Evidence,
    FrameReading,
    StopInfo,
    evidence_from_snapshot,
    frame_at_handler,
)
from lhvdbg.diagnose.intlog import parse_int_log
from lhvdbg.diagnose.report import Report, make_report
from lhvdbg.errors import LhvdbgError, MachineError
from lhvdbg.state.snapshot import MemoryRegion, Provenance, Snapshot
from lhvdbg.state.system import tables_from_reader
from lhvdbg.x86.tables import SystemTables

if TYPE_CHECKING:
    from lhvdbg.machine.session import Session, StopEvent

log = logging.getLogger(__name__)

__all__ = [
    "collect_evidence",
    "default_reference",
    "diagnose_session",
    "diagnose_snapshot",
    "load_reference_or_note",
]

CODE_BEFORE = 1  # the byte before RIP: was it hlt?
CODE_AFTER = 15  # one instruction at most
EVENTS_EXAMINED = 8  # the last events of the log whose code and stack are read
PAGE = 0x1000


def default_reference(arch: str) -> str:
    """Pebbles for i386, LHV-good for amd64."""
    return "pebbles" if arch == "i386" else "lhv-amd64"


def load_reference_or_note(name: str | None, arch: str) -> tuple[Snapshot | None, str, str | None]:
    """``(snapshot or None, name, note)``: a missing default reference is a note, not an
    error (the diagnosis stands without it); a bad explicit one raises."""
    from lhvdbg.state.references import load_reference

    explicit = name is not None
    chosen = name if name is not None else default_reference(arch)
    try:
        return load_reference(chosen), chosen, None
    except LhvdbgError as exc:
        if explicit:
            raise
        return None, chosen, f"reference {chosen} not available ({exc}); differences not weighed"


def _stop_info(event: StopEvent) -> StopInfo:
    return StopInfo(
        reason=event.reason,
        vector=event.vector,
        address=event.address,
        exit_value=event.guest_exit_value,
        detail=event.detail,
        elapsed=event.elapsed,
    )


def _read_many(session: Session, plan: list[tuple[int, int]]) -> list[bytes | None]:
    """Pipelined reads; when the batch fails (a partial read near an unmapped page), each
    region on its own, cut at the page boundary if the whole of it cannot be read."""
    try:
        return session.read_memory_many(plan, check=False)
    except LhvdbgError as exc:
        log.debug("batched read failed (%s); reading one region at a time", exc)
    out: list[bytes | None] = []
    for address, size in plan:
        data: bytes | None = None
        for length in (size, min(size, PAGE - (address % PAGE))):
            try:
                data = session.read_memory(address, length)
                break
            except LhvdbgError:
                continue
        out.append(data)
    return out


def _fallback_capture(session: Session, note: str) -> Snapshot | None:
    """A smaller capture when the full one fails (e.g. a stack region that runs into an
    unmapped guard page): registers, PIC/LAPIC, GDT/IDT/TSS, each read on its own."""
    from lhvdbg.x86.hmp import parse_info_lapic, parse_info_pic, parse_info_registers

    try:
        cpu = parse_info_registers(session.hmp("info registers"))
    except LhvdbgError as exc:
        log.debug("fallback capture: no registers: %s", exc)
        return None
    pic = lapic = None
    try:
        pic = parse_info_pic(session.hmp("info pic"))
        lapic = parse_info_lapic(session.hmp("info lapic"))
    except LhvdbgError as exc:
        log.debug("fallback capture: PIC/LAPIC: %s", exc)
    plan = [("gdt", cpu.gdtr.base, cpu.gdtr.limit + 1), ("idt", cpu.idtr.base, cpu.idtr.limit + 1)]
    tr = cpu.tr
    plan.append(("tss", tr.base, 0x68 if tr.selector & 0xFFFC == 0 else min(tr.limit + 1, 0x2068)))
    sp = cpu.sp
    plan += [("stack", sp, 0x100), ("code", cpu.ip, 0x40)]
    got = _read_many(session, [(a, n) for _, a, n in plan])
    regions = tuple(
        MemoryRegion(addr, data, label)
        for (label, addr, _), data in zip(plan, got, strict=True)
        if data is not None
    )
    info = session.kernel_info
    return Snapshot(
        arch=session.arch,
        cpu=cpu,
        memory=regions,
        provenance=Provenance(
            source="qemu",
            captured_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            qemu_version=session.qemu_version,
            accel=session.accel,
            kernel_path=str(session.kernel) if session.kernel else None,
            kernel_sha256=info.sha256 if info is not None else None,
            note=note,
        ),
        pic=pic,
        lapic=lapic,
        symbols=dict(info.symbols) if info is not None else {},
    )


def _capture(session: Session) -> tuple[Snapshot | None, list[str]]:
    try:
        return session.capture(note="break-on-df evidence"), []
    except MachineError as exc:
        note = f"full capture failed ({exc}); a smaller one was taken"
        return _fallback_capture(session, note), [note]


def _frame(
    session: Session, snapshot: Snapshot, tables: SystemTables, text: list[tuple[int, int]]
) -> FrameReading | None:
    """The frame at IDT[8]'s handler entry: from the capture, else read live."""

    def read(address: int, size: int) -> bytes:
        try:
            return snapshot.read(address, size)
        except LhvdbgError:
            return session.read_memory(address, size)

    return frame_at_handler(snapshot, tables, text=text, read=read)


def _extra_memory(
    session: Session, events: list[ChainEvent], frame: FrameReading | None, word: int
) -> tuple[MemoryRegion, ...]:
    """Code around each RIP involved and the stack words at each event's SP."""
    wanted: list[tuple[str, int, int]] = []
    for event in [e for e in events if isinstance(e, InterruptEvent)][-EVENTS_EXAMINED:]:
        wanted.append(("code", event.rip - CODE_BEFORE, CODE_BEFORE + CODE_AFTER))
        wanted.append(("stack", event.sp, word * 6))
    if frame is not None and frame.rip is not None:
        wanted.append(("code", frame.rip - CODE_BEFORE, CODE_BEFORE + CODE_AFTER))
    wanted = list(dict.fromkeys(wanted))
    if not wanted or not session.alive:
        return ()
    got = _read_many(session, [(a, n) for _, a, n in wanted])
    return tuple(
        MemoryRegion(addr, data, label)
        for (label, addr, _), data in zip(wanted, got, strict=True)
        if data is not None
    )


def _elf_code(session: Session, events: list[ChainEvent]) -> tuple[MemoryRegion, ...]:
    """Instruction bytes from the kernel file when the machine is gone (QEMU exited)."""
    info = session.kernel_info
    if info is None:
        return ()
    out = []
    rips = dict.fromkeys(e.rip for e in events if isinstance(e, InterruptEvent))
    for rip in list(rips)[-EVENTS_EXAMINED:]:
        address = rip - CODE_BEFORE
        try:
            data = info.read_vaddr(address, CODE_BEFORE + CODE_AFTER)
        except LhvdbgError:
            continue
        out.append(MemoryRegion(address, data, "code (from the ELF)"))
    return tuple(out)


def collect_evidence(
    session: Session,
    stop: StopEvent,
    *,
    reference: str | None = None,
) -> tuple[Evidence, list[str]]:
    """Everything the diagnosis reads from ``session`` stopped at ``stop``, and notes on
    what could not be collected."""
    notes: list[str] = []
    snapshot: Snapshot | None = None
    tables: SystemTables | None = None
    if stop.stopped and session.alive:
        snapshot, capture_notes = _capture(session)
        notes += capture_notes
    if snapshot is not None:
        tables = tables_from_reader(snapshot.cpu, snapshot.read)
    int_log = session.accel == "tcg" and session.int_log_path is not None
    events: list[ChainEvent] = parse_int_log(session.int_log_text()) if int_log else []
    info = session.kernel_info
    text = [(s.vaddr, s.vaddr + s.memsz) for s in info.segments if s.executable] if info else []
    frame = None
    if snapshot is not None and tables is not None and session.alive:
        frame = _frame(session, snapshot, tables, text)
    word = 8 if session.arch == "amd64" else 4
    memory = _extra_memory(session, events, frame, word) if session.alive else ()
    if not memory:  # QEMU is gone: the instructions can still come from the kernel file
        memory = _elf_code(session, events)
    ref_snapshot, ref_name = None, None
    if snapshot is not None:  # differences are weighed only against a captured state
        ref_snapshot, ref_name, ref_note = load_reference_or_note(reference, session.arch)
        if ref_note:
            notes.append(ref_note)
    ev = Evidence(
        arch=session.arch,
        accel=session.accel,
        stop=_stop_info(stop),
        events=tuple(events),
        int_log=int_log,
        snapshot=snapshot,
        tables=tables,
        frame=frame,
        memory=memory,
        text=tuple(text),
        serial=session.serial_text(),
        qemu_version=session.qemu_version,
        kernel=str(session.kernel) if session.kernel else None,
        symbols=dict(info.symbols) if info is not None else {},
        reference=ref_snapshot,
        reference_name=ref_name if ref_snapshot is not None else None,
    )
    return ev, notes


def _with_notes(report: Report, notes: list[str]) -> Report:
    return replace(report, notes=(*report.notes, *notes)) if notes else report


def diagnose_session(
    session: Session,
    stop: StopEvent,
    *,
    reference: str | None = None,
) -> Report:
    """Collect the evidence of ``session`` stopped at ``stop`` and diagnose it."""
    ev, notes = collect_evidence(session, stop, reference=reference)
    return _with_notes(make_report(ev), notes)


def diagnose_snapshot(snapshot: Snapshot, *, reference: str | None = None) -> Report:
    """Diagnose a recorded snapshot alone (no log, no live memory)."""
    ref_snapshot, ref_name, ref_note = load_reference_or_note(reference, snapshot.arch)
    ev = evidence_from_snapshot(
        snapshot,
        reference=ref_snapshot,
        reference_name=ref_name if ref_snapshot is not None else None,
    )
    return _with_notes(make_report(ev), [ref_note] if ref_note else [])
