"""Collect evidence from a live session (or a snapshot) and diagnose it.

Shared by ``lhvdbg break-on-df`` and the shell/scenario ``diagnose`` command: one
function gathers what the pure diagnosis needs — the ``-d int`` log's events (TCG), a
capture at the stop, the interrupt frame at the vector-8 handler, instruction bytes and
stack words at the RIPs involved (one pipelined gdb round trip) — and
:func:`lhvdbg.diagnose.report.make_report` does the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
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
from lhvdbg.diagnose.reset import ResetReading, reset_cause
from lhvdbg.errors import LhvdbgError, MachineError
from lhvdbg.state.snapshot import MemoryRegion, Snapshot
from lhvdbg.state.system import tables_from_reader
from lhvdbg.x86.cpustate import CpuState
from lhvdbg.x86.cpuview import CpuView, Event
from lhvdbg.x86.delivery import simulate
from lhvdbg.x86.paging import walk
from lhvdbg.x86.tables import SystemTables

if TYPE_CHECKING:
    from lhvdbg.machine.session import Session, StopEvent

__all__ = [
    "collect_evidence",
    "default_reference",
    "diagnose_session",
    "diagnose_session_with_evidence",
    "diagnose_snapshot",
    "load_reference_or_note",
]

PAGE_FAULT = 14
CODE_BEFORE = 1  # the byte before RIP: was it hlt?
CODE_AFTER = 15  # one instruction at most
EVENTS_EXAMINED = 8  # the last events of the log whose code and stack are read


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


KVM_SUSPECT_OUTCOMES = ("guest-exited", "triple-fault")  # where a weak KVM may be the cause
EXIT_ENUM = "lhv_exit_code"  # the DWARF enum that names a kernel's exit values
OUT_LENGTH = 2  # the longest `out` that asks for a reset: E6 ib
CODE_BEFORE_RESET = 8  # bytes before RIP read at a reset (TCG may run past the out)


def exit_name(session: Session, value: int | None) -> str | None:
    """The exit value's name in the kernel's ``lhv_exit_code`` DWARF enum, if any."""
    from lhvdbg.state.elf import dwarf_enum

    info = session.kernel_info
    if value is None or info is None:
        return None
    return dwarf_enum(info.path, EXIT_ENUM).get(value)


def reset_reading(session: Session, event: StopEvent) -> ResetReading | None:
    """Why a ``shutdown`` stop's machine reset (:mod:`lhvdbg.diagnose.reset`): QEMU's
    log under TCG, the instruction before the stopped RIP without one."""
    if event.reason != "shutdown":
        return None
    log = session.int_log_text() if session.accel == "tcg" and session.int_log_path else None
    code, registers = b"", {}
    size = CODE_BEFORE_RESET if log is not None else OUT_LENGTH
    if session.alive and event.address is not None and event.address >= size:
        try:
            code = session.read_memory(event.address - size, size)
            registers = session.read_registers()
        except MachineError:
            code = b""
    return reset_cause(log, code, registers)


def kvm_note(session: Session, *, ended_badly: bool) -> str | None:
    """Under KVM: the one line saying this host's KVM could not run the guest, if so."""
    if session.accel != "kvm":
        return None
    from lhvdbg.machine.kvmhost import kvm_limit_line

    try:
        stderr = session.paths.qemu_stderr.read_text(errors="replace")
    except OSError:
        stderr = ""
    return kvm_limit_line(stderr, ended_badly=ended_badly)


def stop_info(
    session: Session,
    event: StopEvent,
    *,
    limit: float | None = None,
    kernel_entered: bool | None = None,
) -> StopInfo:
    """What the diagnosis knows of how ``event`` ended the run (``limit``: the run's time
    limit; ``kernel_entered``: whether the kernel's entry point was reached)."""
    reading = reset_reading(session, event)
    return StopInfo(
        reason=event.reason,
        vector=event.vector,
        address=event.address,
        exit_value=event.guest_exit_value,
        detail=event.detail,
        elapsed=event.elapsed,
        exit_name=exit_name(session, event.guest_exit_value),
        reset=reading.cause if reading else None,
        reset_how=reading.how if reading else "",
        limit=limit,
        kernel_entered=kernel_entered,
    )


def _read_regions(session: Session, wanted: list[tuple[str, int, int]]) -> list[MemoryRegion]:
    """The readable parts of each ``(label, address, size)``, one region per readable run
    (a read running into an unmapped page keeps what lies before it)."""
    runs = session.read_memory_readable([(a, n) for _, a, n in wanted])
    return [
        MemoryRegion(address, data, label)
        for (label, _, _), got in zip(wanted, runs, strict=True)
        for address, data in got
    ]


def _capture(session: Session) -> tuple[Snapshot | None, list[str]]:
    """The capture at the stop (unreadable parts of regions are named in its note), or
    None with a note when the machine cannot be captured at all."""
    try:
        return session.capture(note="break-on-df evidence"), []
    except MachineError as exc:
        return None, [f"no capture ({exc}); the diagnosis rests on the log"]


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
    return tuple(_read_regions(session, wanted))


def _xp(session: Session, address: int, size: int) -> bytes:
    """``size`` bytes of guest *physical* memory (HMP ``xp``); MachineError when QEMU
    cannot access them."""
    text = session.hmp(f"xp /{size}bx {address:#x}")
    out = bytearray()
    for line in text.splitlines():
        _, colon, rest = line.partition(":")
        if not colon:
            continue
        if "Cannot access" in rest:
            raise MachineError(f"physical memory at {address:#x} is not accessible (xp)")
        try:
            out += bytes(int(word, 16) for word in rest.split())
        except ValueError as exc:
            raise MachineError(f"unexpected xp output at {address:#x}: {line.strip()}") from exc
    if len(out) != size:
        raise MachineError(f"xp returned {len(out)} of {size} bytes at {address:#x}")
    return bytes(out)


def _page_walk_memory(
    session: Session,
    events: list[ChainEvent],
    cpu: CpuState | None,
    tables: SystemTables | None,
) -> tuple[tuple[MemoryRegion, ...], tuple[MemoryRegion, ...]]:
    """What the model of delivery reads, collected while QEMU is there: the paging
    entries of each #PF's CR2 walk and of every frame the model pushes (the current, IST
    or RSP0 stack of each event), and TSS slots read at TR's base when the TSS itself was
    not captured (TR never loaded). Returns (physical, linear) regions."""
    physical: dict[int, bytes] = {}
    linear: dict[int, bytes] = {}

    # the machine is stopped: an entry read once (each event's walk reads the same
    # paging entries again) is answered from what was read, not by another round trip
    def read_physical(address: int, size: int) -> bytes:
        data = physical.get(address)
        if data is None or len(data) != size:
            data = physical[address] = _xp(session, address, size)
        return data

    def read_linear(address: int, size: int) -> bytes:
        data = linear.get(address)
        if data is None or len(data) != size:
            data = linear[address] = session.read_memory(address, size)
        return data

    recent = [e for e in events if isinstance(e, InterruptEvent)][-EVENTS_EXAMINED:]
    done: set[tuple[int, int]] = set()
    for event in recent:
        regs = event.registers or cpu
        if regs is None:
            continue
        if event.vector == PAGE_FAULT and event.cr2 is not None:
            key = (regs.cr3, event.cr2 // 0x1000)
            if key not in done:
                done.add(key)
                walk(read_physical, regs.cr3, regs.cr4, regs.efer, regs.cr0, event.cr2)
        if tables is not None:
            view = CpuView.of(regs, tables, read_linear=read_linear, read_physical=read_physical)
            kind = event.source
            simulate(view, Event(event.vector, kind, event.error_code, kind == "hardware"))
    return (
        tuple(MemoryRegion(a, d, "paging entry") for a, d in sorted(physical.items())),
        tuple(MemoryRegion(a, d, "read by the delivery model") for a, d in sorted(linear.items())),
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
    limit: float | None = None,
    kernel_entered: bool | None = None,
) -> tuple[Evidence, list[str]]:
    """Everything the diagnosis reads from ``session`` stopped at ``stop``, and notes on
    what could not be collected."""
    from lhvdbg.machine.trace import kernel_pic_history

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
    physical: tuple[MemoryRegion, ...] = ()
    if session.alive:
        physical, model_memory = _page_walk_memory(
            session, events, snapshot.cpu if snapshot else None, tables
        )
        memory = (*memory, *model_memory)
    ref_snapshot, ref_name = None, None
    if snapshot is not None:  # differences are weighed only against a captured state
        ref_snapshot, ref_name, ref_note = load_reference_or_note(reference, session.arch)
        if ref_note:
            notes.append(ref_note)
    ev = Evidence(
        arch=session.arch,
        accel=session.accel,
        stop=stop_info(session, stop, limit=limit, kernel_entered=kernel_entered),
        events=tuple(events),
        int_log=int_log,
        snapshot=snapshot,
        tables=tables,
        frame=frame,
        memory=memory,
        physical=physical,
        text=tuple(text),
        serial=session.serial_text(),
        qemu_version=session.qemu_version,
        kernel=str(session.kernel) if session.kernel else None,
        symbols=dict(info.symbols) if info is not None else {},
        reference=ref_snapshot,
        reference_name=ref_name if ref_snapshot is not None else None,
        history=kernel_pic_history(session),
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
    return diagnose_session_with_evidence(session, stop, reference=reference)[0]


def diagnose_session_with_evidence(
    session: Session,
    stop: StopEvent,
    *,
    reference: str | None = None,
    limit: float | None = None,
    kernel_entered: bool | None = None,
) -> tuple[Report, Evidence]:
    """:func:`diagnose_session`, and the evidence it rests on (the capture and its tables,
    which the HTML page shows). ``limit``/``kernel_entered``: see :func:`stop_info`."""
    ev, notes = collect_evidence(
        session, stop, reference=reference, limit=limit, kernel_entered=kernel_entered
    )
    report = make_report(ev)
    kvm = kvm_note(session, ended_badly=report.outcome in KVM_SUSPECT_OUTCOMES)
    return _with_notes(report, [*notes, kvm] if kvm else notes), ev


def diagnose_snapshot(
    snapshot: Snapshot, *, reference: str | None = None, events: Sequence[ChainEvent] = ()
) -> Report:
    """Diagnose a recorded snapshot (no live memory), with the events of its run's
    ``-d int`` log when there is one."""
    ref_snapshot, ref_name, ref_note = load_reference_or_note(reference, snapshot.arch)
    ev = evidence_from_snapshot(
        snapshot,
        events=events,
        reference=ref_snapshot,
        reference_name=ref_name if ref_snapshot is not None else None,
    )
    return _with_notes(make_report(ev), [ref_note] if ref_note else [])
