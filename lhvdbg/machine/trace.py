"""Recording a history: gdb breakpoints on the kernel's own instructions, QEMU's trace
events and ``-d int`` log for the rest, merged in order.

Why this split (measured on QEMU 7.2 and 10, TCG): QEMU's ``cpu_out`` trace event never
fires for TCG's port I/O, and the 8254, 0xCF9 and isa-debug-exit have no trace events;
so port writes come from breakpoints on the kernel's ``out`` instructions (which also
give RIP and symbol). Local APIC writes are ordinary stores: they come from QEMU's trace
event (``apic_mem_writel`` in 7.2, ``apic_register_write`` in 10; ``ioapic_mem_write``
in both), and interrupts from the ``-d int`` log — all in the same ``-D`` file. Each
breakpoint event remembers how long that file was when the guest stopped, which places
it among the log's lines.

An ``out dx`` site whose first hits all go to untracked ports (a serial ``putc``) is
deleted after :data:`UNTRACKED_HITS_BEFORE_DELETE` such hits; this keeps the cost
bounded, and would miss a tracked write made later through the very same instruction.
"""

from __future__ import annotations

import functools
import re
import subprocess
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: break-on-df reads this module before QEMU
    from lhvdbg.machine.launch import LaunchConfig  # starts, for with_pic_trace alone
    from lhvdbg.machine.session import Session
    from lhvdbg.machine.stops import StopEvent
    from lhvdbg.state.history import History, HistoryEvent
    from lhvdbg.x86.insn_sites import Site

UNTRACKED_HITS_BEFORE_DELETE = 2
MAX_EVENTS = 20_000
WANTED_TRACE_EVENTS = (
    "pic_ioport_write",
    "apic_mem_writel",
    "apic_register_write",
    "ioapic_mem_write",
)
EFER_MSR = 0xC0000080
_MSR_NAMES = {0x1B: "IA32_APIC_BASE", EFER_MSR: "EFER", 0xC0000081: "STAR", 0xC0000082: "LSTAR"}
_EFER_BITS = {0: "SCE", 8: "LME", 10: "LMA", 11: "NXE"}
_CR0_BITS = {0: "PE", 1: "MP", 2: "EM", 3: "TS", 4: "ET", 5: "NE", 16: "WP", 18: "AM", 31: "PG"}
_CR4_BITS = {4: "PSE", 5: "PAE", 7: "PGE", 9: "OSFXSR", 10: "OSXMMEXCPT", 13: "VMXE"}

_APIC72 = re.compile(r"^apic_mem_writel (0x[0-9a-f]+) = (0x[0-9a-f]+)")
_APIC10 = re.compile(r"^apic_register_write register (0x[0-9a-f]+) = (0x[0-9a-f]+)")
_IOAPIC = re.compile(
    r"^ioapic_mem_write addr (0x[0-9a-f]+) regsel: (0x[0-9a-f]+) size 0x\d+ val (0x[0-9a-f]+)"
)
# "master 1" is the master 8259, "master 0" the slave (QEMU's hw/intc/trace-events)
_PIC = re.compile(r"^pic_ioport_write master ([01]) addr (0x[0-9a-f]+) val (0x[0-9a-f]+)")
_INT = re.compile(r"^\s*\d+: v=([0-9a-f]+) e=([0-9a-f]+) i=(\d) cpl=(\d) IP=[0-9a-f]+:([0-9a-f]+)")
_SERVICING = re.compile(r"^Servicing hardware INT=(0x[0-9a-f]+)")
_GDTR = re.compile(r"^(GDT|IDT)=\s+([0-9a-f]+) ([0-9a-f]+)", re.M)
_TR = re.compile(r"^TR =([0-9a-f]+) ([0-9a-f]+) ([0-9a-f]+)", re.M)
LAPIC_BASE = 0xFEE00000


@functools.lru_cache(maxsize=8)
def available_trace_events(binary: str) -> frozenset[str]:
    """The trace event names ``binary -trace help`` lists (cached per binary)."""
    try:
        out = subprocess.run(
            [binary, "-trace", "help"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(line.strip() for line in out.stdout.splitlines() if line.strip())


def trace_args(binary: str) -> tuple[str, ...]:
    """``-trace NAME`` for each wanted event this QEMU has."""
    have = available_trace_events(binary)
    args: list[str] = []
    for name in WANTED_TRACE_EVENTS:
        if name in have:
            args += ["-trace", name]
    return tuple(args)


def _bits(value: int, names: dict[int, str]) -> str:
    return " ".join(n for b, n in sorted(names.items()) if value >> b & 1) or "none"


def parse_log(text: str, start: int = 0) -> list[tuple[int, HistoryEvent]]:
    """The events of a ``-D`` log (trace lines and ``-d int`` lines) with the byte offset
    each line starts at. PIC trace lines are kept (marked ``firmware``-only by the
    caller); a ``v=`` line right after ``Servicing hardware INT=`` is an IRQ."""
    from lhvdbg.state.history import HistoryEvent

    out: list[tuple[int, HistoryEvent]] = []
    offset = start
    hardware = False
    for line in text.splitlines(keepends=True):
        at = offset
        offset += len(line.encode())
        line = line.rstrip("\n")
        if m := _SERVICING.match(line):
            hardware = True
            continue
        if m := _INT.match(line):
            vector, code, soft, ip = int(m[1], 16), int(m[2], 16), m[3] == "1", int(m[5], 16)
            if hardware:
                name, text_ = "irq", f"hardware interrupt on vector {vector:#04x}"
            elif soft:
                name, text_ = "int", f"software int {vector:#04x}"
            else:
                name, text_ = "exception", f"exception vector {vector:#04x} (error code {code:#x})"
            hardware = False
            out.append(
                (
                    at,
                    HistoryEvent(
                        0,
                        "interrupt",
                        value=vector,
                        rip=ip,
                        name=name,
                        decoded=text_,
                        facts={"cpl": int(m[4])},
                    ),
                )
            )
            continue
        hardware = False  # only the line right before ` v=` counts
        if "Triple fault" in line:
            out.append(
                (
                    at,
                    HistoryEvent(
                        0, "fault", name="triple fault", decoded="triple fault: the CPU resets"
                    ),
                )
            )
        elif m := _APIC72.match(line):
            reg = int(m[1], 16)
            out.append(
                (at, HistoryEvent(0, "lapic", address=LAPIC_BASE + reg, value=int(m[2], 16)))
            )
        elif m := _APIC10.match(line):
            reg = int(m[1], 16) << 4
            out.append(
                (at, HistoryEvent(0, "lapic", address=LAPIC_BASE + reg, value=int(m[2], 16)))
            )
        elif m := _IOAPIC.match(line):
            addr, regsel, val = int(m[1], 16), int(m[2], 16), int(m[3], 16)
            text_ = (
                f"I/O APIC register {regsel:#x} = {val:#x}"
                if addr == 0x10
                else f"IOREGSEL {val:#x}"
            )
            if addr == 0x10:
                out.append(
                    (
                        at,
                        HistoryEvent(
                            0,
                            "ioapic",
                            address=0xFEC00010,
                            value=val,
                            name=f"IOAPIC {regsel:#x}",
                            decoded=text_,
                        ),
                    )
                )
        elif m := _PIC.match(line):
            port = (0x20 if m[1] == "1" else 0xA0) + int(m[2], 16)
            out.append(
                (at, HistoryEvent(0, "port", port=port, value=int(m[3], 16), name="pic-trace"))
            )
    return out


@dataclass
class _Recorder:
    """Drives one session from the kernel's entry to its end, collecting events."""

    session: Session
    log_path: Path
    sites: dict[int, Site]
    events: list[tuple[int, int, HistoryEvent]] = field(default_factory=list)
    untracked: dict[int, int] = field(default_factory=dict)
    numbers: dict[int, int] = field(default_factory=dict)

    def exiting(self) -> bool:
        """Whether the last event was a write that ends the run (debug exit, reset)."""
        from lhvdbg.x86.pio import DEBUG_EXIT, RESET_CONTROL

        if not self.events:
            return False
        last = self.events[-1][2]
        return last.kind == "port" and last.port in (DEBUG_EXIT, RESET_CONTROL)

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def add(self, offset: int, event: HistoryEvent) -> None:
        self.events.append((offset, len(self.events), event))

    def on_hit(self, site: Site, rip: int) -> StopEvent | None:
        """Record the event of ``site`` at ``rip``; the stop of the step that ran its
        instruction when reading the event needed one (``lgdt``/``lidt``/``ltr``/``mov
        crN``), else None."""
        from lhvdbg.state.history import HistoryEvent
        from lhvdbg.x86.pio import TRACKED_PORTS

        s = self.session
        offset = self.log_size()
        symbol = s.symbolize(rip)
        if site.kind == "out":
            regs = s.read_registers(["rax", "rdx"])
            port = site.port if site.port is not None else regs["rdx"] & 0xFFFF
            value = regs["rax"] & ((1 << (8 * site.size)) - 1)
            if port not in TRACKED_PORTS:
                hits = self.untracked.get(rip, 0) + 1
                self.untracked[rip] = hits
                if site.port is None and hits >= UNTRACKED_HITS_BEFORE_DELETE:
                    s.delete(self.numbers.pop(rip))
                return None
            ev = HistoryEvent(0, "port", port=port, value=value, rip=rip, symbol=symbol)
        elif site.kind in ("sti", "cli"):
            text = (
                "interrupts enabled (IF=1)" if site.kind == "sti" else "interrupts disabled (IF=0)"
            )
            ev = HistoryEvent(
                0, "insn", insn=site.kind, rip=rip, symbol=symbol, name=site.kind, decoded=text
            )
        elif site.kind == "wrmsr":
            regs = s.read_registers(["rcx", "rax", "rdx"])
            msr, value = (
                regs["rcx"] & 0xFFFFFFFF,
                (regs["rdx"] & 0xFFFFFFFF) << 32 | regs["rax"] & 0xFFFFFFFF,
            )
            name = _MSR_NAMES.get(msr, f"MSR {msr:#x}")
            text = f"wrmsr {name} = {value:#x}"
            if msr == EFER_MSR:
                text += f" ({_bits(value, _EFER_BITS)})"
            ev = HistoryEvent(
                0,
                "insn",
                insn="wrmsr",
                value=value,
                rip=rip,
                symbol=symbol,
                name=f"wrmsr {name}",
                decoded=text,
                facts={"msr": msr},
            )
        else:
            step = s.stepi()
            self.add(offset, self._after_step(site, rip, symbol))
            return step
        self.add(offset, ev)
        return None

    def at_site(self, event: StopEvent) -> bool:
        """Whether ``event`` stopped on a site whose breakpoint is still set: its hit, or
        a step that ended there (two sites side by side)."""
        if event.reason == "breakpoint":
            return event.address in self.sites
        return event.reason == "step" and event.address in self.numbers

    def step_off(self, rip: int) -> StopEvent:
        """Record the hit at ``rip`` and run its instruction: the stop after it (a
        ``step``, or the next site's breakpoint when the two are adjacent). Not by gdb's
        own step over the breakpoint inside ``continue``: QEMU's TCG now and then ends
        that step before the instruction ran and gdb reports the same breakpoint again
        (one ``sti`` recorded twice); ``Session.stepi`` sees that and steps again."""
        from lhvdbg.machine.stops import StopEvent

        s = self.session
        step = self.on_hit(self.sites[rip], rip)
        if self.exiting():
            # QEMU 10 pauses on isa-debug-exit (-action shutdown=pause) but does not
            # report it when gdb steps over a breakpoint there: continue without any
            for number in self.numbers.values():
                s.delete(number)
            self.numbers.clear()
            return StopEvent("step")
        if step is None and rip in self.numbers:
            step = s.stepi()
        if step is None or (step.reason in ("step", "breakpoint") and step.address == rip):
            return StopEvent("step")  # deleted, or still not run: continue from here
        return step

    def _after_step(self, site: Site, rip: int, symbol: str) -> HistoryEvent:
        from lhvdbg.state.history import HistoryEvent

        s = self.session
        if site.kind == "mov-cr":
            cr = site.cr or 0
            value = s.read_registers([f"cr{cr}"]).get(f"cr{cr}", 0)
            names = _CR0_BITS if cr == 0 else _CR4_BITS if cr == 4 else {}
            text = f"CR{cr} = {value:#x}" + (f" ({_bits(value, names)})" if names else "")
            if cr == 3:
                text += " (page tables)"
            return HistoryEvent(
                0,
                "insn",
                insn=f"mov cr{cr}",
                value=value,
                rip=rip,
                symbol=symbol,
                name=f"mov cr{cr}",
                decoded=text,
            )
        regs = s.hmp("info registers")
        if site.kind in ("lgdt", "lidt"):
            table = "GDT" if site.kind == "lgdt" else "IDT"
            found = {m[1]: (int(m[2], 16), int(m[3], 16)) for m in _GDTR.finditer(regs)}
            base, limit = found.get(table, (0, 0))
            # GDT slots are 8 bytes (a long-mode system descriptor takes two); IDT gates
            # are 16 bytes in long mode (SDM Vol. 3A §3.5.1, §6.14.1)
            wide = table == "IDT" and s.arch == "amd64"
            n = (limit + 1) // (16 if wide else 8)
            what = "8-byte slots" if table == "GDT" else "gates"
            text = f"{table}R = base {base:#x}, limit {limit:#x} ({n} {what})"
            return HistoryEvent(
                0,
                "insn",
                insn=site.kind,
                value=base,
                rip=rip,
                symbol=symbol,
                name=site.kind,
                decoded=text,
                facts={"limit": limit},
            )
        m = _TR.search(regs)
        sel, base = (int(m[1], 16), int(m[2], 16)) if m else (0, 0)
        text = f"TR = selector {sel:#06x}, TSS at {base:#x}"
        return HistoryEvent(
            0,
            "insn",
            insn="ltr",
            value=sel,
            rip=rip,
            symbol=symbol,
            name="ltr",
            decoded=text,
            facts={"base": base},
        )


def kernel_sites(session: Session) -> dict[int, Site]:
    """The candidate sites of the session's kernel, by address."""
    from lhvdbg.x86.insn_sites import scan
    from lhvdbg.x86.pio import TRACKED_PORTS

    info = session.kernel_info
    if info is None:
        return {}
    sites: dict[int, Site] = {}
    for seg in info.segments:
        if seg.executable:
            for site in scan(seg.data, seg.vaddr, ports=TRACKED_PORTS):
                sites.setdefault(site.address, site)
    return sites


def entry_point(session: Session) -> int | None:
    """Where the kernel starts: the multiboot a.out kludge entry, else the ELF entry."""
    info = session.kernel_info
    if info is None:
        return None
    mb = info.multiboot
    if mb is not None and mb.aout_kludge and mb.entry_addr:
        return mb.entry_addr
    return info.entry


def with_trace_events(config: LaunchConfig) -> LaunchConfig:
    """``config`` with the QEMU trace events a history reads added to its arguments."""
    from dataclasses import replace as dc_replace

    from lhvdbg.errors import UsageError
    from lhvdbg.machine.launch import find_qemu

    if config.resolved_accel() != "tcg":
        raise UsageError("trace needs TCG (-d int and trace events log nothing under KVM)")
    return dc_replace(config, extra_args=(*config.extra_args, *trace_args(find_qemu(config))))


def record_history(
    session: Session,
    *,
    timeout: float,
    from_reset: bool = False,
    progress: Callable[[int], None] | None = None,
) -> History:
    """Run ``session`` (started with :func:`with_trace_events`, stopped at reset) from
    the kernel's entry until it exits, triple-faults, or ``timeout`` seconds pass, and
    return its history. Leaves the session stopped or ended."""
    from lhvdbg.state.history import HistoryEvent, build_history

    log_path = session.int_log_path
    if log_path is None:
        from lhvdbg.errors import UsageError

        raise UsageError("trace needs TCG (-d int and trace events log nothing under KVM)")
    started = time.monotonic()
    entry = entry_point(session)
    entry_offset = 0
    if entry is not None:
        number = session.break_at(entry, internal=True)
        event = session.cont(timeout=timeout)
        if event.reason != "breakpoint":
            raise_unreached(event)
        session.delete(number)
        entry_offset = log_path.stat().st_size if log_path.exists() else 0
    # gdb otherwise removes and re-inserts every breakpoint at each stop (two packets
    # per breakpoint): with ~150 sites that was ~30 ms per event
    session.gdb.command("-gdb-set breakpoint always-inserted on")
    recorder = _Recorder(session, log_path, kernel_sites(session))
    for address in sorted(recorder.sites):
        recorder.numbers[address] = session.break_at(address, internal=True)
    ended = ""
    while True:
        left = timeout - (time.monotonic() - started)
        if left <= 0:  # between two stops
            ended = _timed_out(session, timeout, session.pc())
            break
        event = session.cont(timeout=left)
        while recorder.at_site(event):
            assert event.address is not None
            event = recorder.step_off(event.address)
            if progress is not None:
                progress(len(recorder.events))
            if len(recorder.events) >= MAX_EVENTS:
                ended = f"stopped after {MAX_EVENTS} events"
                break
        if ended:
            break
        if event.reason == "step":
            continue
        ended = event.detail or event.reason
        if event.reason == "timeout":  # the run's whole limit, not what was left of it
            ended = _timed_out(session, timeout, event.address)
        break
    text = session.int_log_text()
    raw: list[tuple[int, int, int, HistoryEvent]] = []
    for at, ev in parse_log(text):
        firmware = at < entry_offset
        if ev.name == "pic-trace":
            if not (firmware and from_reset):
                continue  # the kernel's port writes come from its own out instructions
            ev = HistoryEvent(0, "port", port=ev.port, value=ev.value)
        if firmware and not from_reset:
            continue
        if firmware:
            ev = HistoryEvent(**{**ev.__dict__, "source": "firmware"})
        elif ev.rip is not None and ev.symbol is None and ev.kind == "interrupt":
            ev = HistoryEvent(**{**ev.__dict__, "symbol": session.symbolize(ev.rip)})
        raw.append((at, 1, len(raw), ev))
    raw += [(off, 0, n, ev) for off, n, ev in recorder.events]
    raw.sort(key=lambda item: (item[0], item[1], item[2]))
    return build_history(
        [ev for *_, ev in raw],
        ended=ended,
        qemu_version=session.qemu_version or "",
        kernel=str(session.kernel or ""),
        seconds=time.monotonic() - started,
    )


def _timed_out(session: Session, timeout: float, address: int | None) -> str:
    """One wording for a trace that ran out of time, while the guest ran or between two
    stops: ``timeout after 20 s at kernel_main+0x2c1 (0x103581)``."""
    from lhvdbg.machine.stops import where

    return f"timeout after {timeout:g} s at {where(address, session.symbolize)}"


def raise_unreached(event: object) -> None:
    """The kernel's entry was never reached: one-line error."""
    from lhvdbg.errors import TargetTimeout

    raise TargetTimeout(f"the kernel's entry point was never reached ({event})")


# --- the PIC part alone, for break-on-df's evidence (no breakpoints, no slowdown) -----

PIC_TRACE_EVENT = "pic_ioport_write"  # in QEMU 7.2 and 10; an unknown name only warns
_ENTRY_OFFSETS: weakref.WeakKeyDictionary[Session, int] = weakref.WeakKeyDictionary()


def with_pic_trace(config: LaunchConfig) -> LaunchConfig:
    """``config`` with QEMU's 8259 write trace event in its ``-D`` log (TCG only)."""
    from dataclasses import replace as dc_replace

    if config.resolved_accel() != "tcg" or not config.int_log:
        return config
    return dc_replace(config, extra_args=(*config.extra_args, "-trace", PIC_TRACE_EVENT))


def note_entry(session: Session) -> None:
    """Remember where the log stands now: the session is at the kernel's entry."""
    path = session.int_log_path
    if path is not None:
        _ENTRY_OFFSETS[session] = path.stat().st_size if path.exists() else 0


def kernel_pic_history(session: Session) -> History | None:
    """The kernel's 8259 writes (from its entry, noted by :func:`note_entry`), read from
    QEMU's trace lines (no RIP: the trace event has none); None when not recorded."""
    from lhvdbg.state.history import HistoryEvent, build_history

    offset = _ENTRY_OFFSETS.get(session)
    path = session.int_log_path
    if offset is None or path is None or not path.exists():
        return None
    text = path.read_bytes()[offset:].decode("utf-8", "replace")
    raw = [
        HistoryEvent(0, "port", port=ev.port, value=ev.value)
        for _, ev in parse_log(text)
        if ev.name == "pic-trace"
    ]
    return build_history(raw, ended="at the diagnosis", qemu_version=session.qemu_version or "")
