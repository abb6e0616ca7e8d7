"""``LiveTarget``: the ``Target`` protocol over a running session.

``cpu()`` comes from HMP ``info registers`` (hidden segment parts included; the session's
HMP socket, :mod:`lhvdbg.machine.monitor`), memory from gdb, PIC/LAPIC from HMP, symbols
from the kernel ELF. ``capture()`` gathers a whole ``Snapshot`` in one round trip when
the tables have not moved since the last capture: the three HMP requests go to QEMU's
monitor and, at the same moment, every table/stack/code read goes to gdb — the tables at
the addresses the last capture found, the stack and code windows as ``$sp``/``$pc``
expressions gdb evaluates — and each read is used only when it was made at the address
the new registers give (else it is read again). A second round trip
reads what moved, a third the stack tops a new TSS names.

Nothing is read twice while the machine cannot have changed: the texts and the capture
are kept for the session's :meth:`machine_version` (the guest did not run, no command but
reads was sent), so a second ``capture()`` or ``cpu()`` at the same stop costs no I/O.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from lhvdbg.errors import ParseError
from lhvdbg.machine.memory import Run, finish_reads, read_readable, send_reads, uncovered_ranges
from lhvdbg.state.snapshot import MemoryRegion, Provenance, Snapshot
from lhvdbg.x86.cpustate import Arch, CpuState, LapicState, PicState

if TYPE_CHECKING:
    from lhvdbg.machine.ports import ReadPort

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Bytes captured just below each RSP0/ESP0/ISTn the TSS holds: where a delivery pushes
#: its frame (at most 48 bytes) and the handler saves registers. Whole pages cost 0.8 ms
#: of gdb reads each after every step, for bytes no check reads (the page walk of the
#: frame's stores reads the page tables, not the stack).
STACK_TOP = 0x200
STACK_BELOW = 0x100  # bytes captured below the stack pointer
STACK_ABOVE = 0x200  # and above it (the frames already pushed)
CODE_BEFORE = 0x20
CODE_AFTER = 0x40
TSS_DEFAULT = 0x68  # a TSS without I/O bitmap (both formats)
TSS_MAX = 0x2000
MAX_ALL_SYMBOLS = 512
#: Symbol names kept in a snapshot of a kernel with many symbols (when present).
SYMBOLS_OF_INTEREST = (
    "gdt",
    "idt",
    "tss",
    "kernel_main",
    "pit_ticks",
    "boot_stack_top",
    "boot_stack",
    "_start",
)
#: The HMP texts a capture keeps (``Snapshot.hmp``).
HMP_TEXTS = ("info registers", "info pic", "info lapic")

#: A planned read: (label, linear address, size).
Planned = tuple[str, int, int]


@dataclass(frozen=True)
class _Machine:
    """What a capture read from the machine (everything but the provenance)."""

    cpu: CpuState
    pic: PicState | None
    lapic: LapicState | None
    hmp: dict[str, str]
    regions: tuple[MemoryRegion, ...]
    missing: tuple[str, ...]


class LiveTarget:
    """A ``Target`` backed by a live session (anything with the :class:`ReadPort`
    methods; :class:`~lhvdbg.machine.session.Session` in lhvdbg)."""

    def __init__(self, session: ReadPort) -> None:
        self.session = session
        # (mode, TR base) -> the RSP0/IST stack tops its TSS named at the last capture
        self._stack_guess: dict[tuple[str, int], list[Planned]] = {}
        self._version: object = None  # the machine version the two caches below are of
        self._texts: dict[str, str] = {}
        self._machine: _Machine | None = None
        self._last_cpu: CpuState | None = None  # where the last capture found the tables
        self._tops_of: tuple[str, bytes, tuple[Planned, ...]] | None = None  # mode, TSS

    @property
    def arch(self) -> Arch:
        return self.session.arch

    @property
    def live(self) -> bool:
        return True

    def _current(self) -> None:
        """Forget what was read when the machine may have changed since (guarded: a
        closed or exited session raises StateError here)."""
        version = self.session.machine_version()
        if version != self._version:
            self._version, self._texts, self._machine = version, {}, None

    def _hmp(self, command: str) -> str:
        self._current()
        text = self._texts.get(command)
        if text is None:
            text = self._texts[command] = self.session.hmp(command)
        return text

    def cpu(self) -> CpuState:
        """Registers from ``info registers`` (parsed by ``lhvdbg.x86.hmp``)."""
        from lhvdbg.x86.hmp import parse_info_registers

        return parse_info_registers(self._hmp("info registers"))

    def read_memory(self, address: int, size: int) -> bytes:
        """Guest linear memory through gdb."""
        return self.session.read_memory(address, size)

    def pic(self) -> PicState | None:
        """``info pic`` parsed; None if QEMU reports no PIC."""
        from lhvdbg.x86.hmp import parse_info_pic

        return _try(parse_info_pic, self._hmp("info pic"))

    def lapic(self) -> LapicState | None:
        """``info lapic`` parsed; None if the LAPIC state is not available."""
        from lhvdbg.x86.hmp import parse_info_lapic

        return _try(parse_info_lapic, self._hmp("info lapic"))

    def symbols(self) -> Mapping[str, int]:
        """Symbols of the kernel ELF (empty for a stripped kernel or a CD-ROM)."""
        info = self.session.kernel_info
        return dict(info.symbols) if info is not None else {}

    def symbolize(self, address: int) -> str:
        """``name+0xoff`` for an address, or the hex address."""
        return self.session.symbolize(address)

    # --- capture ------------------------------------------------------------------

    def capture(self, *, note: str = "", stop_reason: str | None = None) -> Snapshot:
        """Registers, GDT, IDT, TSS, stack, code, RSP0/IST stack tops, PIC, LAPIC, symbols,
        provenance — in one round trip (HMP and gdb at once) when the tables are where
        the last capture found them, none when the machine cannot have changed since. A
        region that is partly unreadable (e.g. a stack window running into an unmapped
        guard page) keeps its readable part; the unreadable ranges are named in
        ``provenance.note`` as ``not captured (unreadable): stack 0x10aec0-0x10b000``."""
        t0 = time.perf_counter()
        self._current()  # guarded: a closed/exited session raises
        if self._machine is None:
            self._machine = self._read_machine()
        m = self._machine
        s = self.session
        notes = [note] if note else []
        if m.missing:
            notes.append("not captured (unreadable): " + ", ".join(m.missing))
        if s.notes:
            notes.extend(s.notes)
        info = s.kernel_info
        last = s.last_stop
        provenance = Provenance(
            source="qemu",
            captured_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            qemu_version=s.qemu_version,
            accel=s.accel,
            kernel_path=str(s.kernel or s.config.cdrom or "") or None,
            kernel_sha256=info.sha256 if info is not None else None,
            stop_reason=stop_reason or (last.detail or last.reason if last else None),
            note="; ".join(notes),
        )
        snap = Snapshot(
            arch=self.arch,
            cpu=m.cpu,
            memory=m.regions,
            provenance=provenance,
            pic=m.pic,
            lapic=m.lapic,
            symbols=self._symbols_of_interest(m.cpu),
            hmp=dict(m.hmp),
        )
        log.debug("capture: %.2f ms", (time.perf_counter() - t0) * 1e3)
        return snap

    def _read_machine(self) -> _Machine:
        """The texts and memory of a capture: the monitor's texts and gdb's reads sent
        together (reads at the last capture's places), then what the registers say moved."""
        from lhvdbg.x86.hmp import parse_info_lapic, parse_info_pic, parse_info_registers

        s = self.session
        texts = self._texts
        guessed = self._guessed_reads()
        # gdb first: waking QEMU's monitor may take this CPU before the reads are written
        pending_reads = send_reads(s.gdb, [(a, n) for _, a, n in guessed])
        asked = [c for c in HMP_TEXTS if c not in texts]
        pending_texts = s.monitor.send(asked) if asked else None
        # gdb's replies first: QEMU's readline monitor echoes each byte of a request as
        # it reads it (a byte per main-loop turn), and waking for every echo cost more
        # CPU than the texts; by the time gdb is done the monitor is too
        known = finish_reads(s.gdb, pending_reads, [(a, n) for _, a, n in guessed])
        if pending_texts is not None:
            texts.update(zip(asked, s.monitor.collect(pending_texts), strict=True))
        cpu = parse_info_registers(texts["info registers"])
        pic = _try(parse_info_pic, texts["info pic"])
        lapic = _try(parse_info_lapic, texts["info lapic"])
        first = self._first_regions(cpu)
        runs = dict(zip(first, self._read(first, known), strict=True))  # what moved
        tss = runs.get(next((p for p in first if p[0] == "tss"), ("", 0, 0)), [])
        tss_data = next((d for a, d in tss if a == cpu.tr.base), b"")
        tops = self._stack_tops(cpu, tss_data)
        self._stack_guess[(cpu.mode, cpu.tr.base)] = tops
        runs.update(zip(tops, self._read(tops, known), strict=True))  # a new TSS's tops
        self._last_cpu = cpu
        regions: list[MemoryRegion] = []
        missing: list[str] = []
        for label, addr, size in first + [p for p in tops if p not in first]:
            got = runs[(label, addr, size)]
            regions += [MemoryRegion(a, data, label) for a, data in got]
            missing += [
                f"{label} {lo:#x}-{hi:#x}" for lo, hi in uncovered_ranges(got, addr, addr + size)
            ]
        return _Machine(
            cpu=cpu,
            pic=pic,
            lapic=lapic,
            hmp={c: texts[c] for c in HMP_TEXTS},
            regions=tuple(regions),
            missing=tuple(missing),
        )

    def _read(
        self, plan: list[Planned], known: Mapping[tuple[int, int], list[Run]]
    ) -> list[list[Run]]:
        """The readable runs of each planned region; a round trip only for what
        ``known`` (the reads already made) lacks or left partly unread."""
        if not plan:
            return []
        return read_readable(self.session.gdb, [(a, n) for _, a, n in plan], known)

    def _guessed_reads(self) -> list[tuple[str, int | str, int]]:
        """What the capture will most likely read: the tables and stack tops where the
        last capture found them, the stack and code windows around ``$sp``/``$pc`` (with
        the last segment bases outside long mode)."""
        last = self._last_cpu
        plan: list[tuple[str, int | str, int]] = []
        ss_base = cs_base = 0
        if last is not None:
            plan += [p for p in self._first_regions(last) if p[0] not in ("stack", "code")]
            plan += self._stack_guess.get((last.mode, last.tr.base), [])
            if last.mode != "long":
                ss_base, cs_base = last.segments["ss"].base, last.segments["cs"].base
        plan.append(("stack", f"$sp{ss_base - STACK_BELOW:+#x}", STACK_BELOW + STACK_ABOVE))
        plan.append(("code", f"$pc{cs_base - CODE_BEFORE:+#x}", CODE_BEFORE + CODE_AFTER))
        return plan

    def _first_regions(self, cpu: CpuState) -> list[tuple[str, int, int]]:
        """GDT, IDT, TSS, stack and code: (label, linear address, size)."""
        plan: list[tuple[str, int, int]] = []
        real = cpu.mode in ("real", "vm86")
        if not real:
            if cpu.gdtr.limit:
                plan.append(("gdt", cpu.gdtr.base, cpu.gdtr.limit + 1))
            if cpu.idtr.limit:
                plan.append(("idt", cpu.idtr.base, cpu.idtr.limit + 1))
            tr = cpu.tr
            never_loaded = tr.selector == 0 and tr.base == 0 and tr.limit == 0xFFFF
            size = TSS_DEFAULT if never_loaded else min(tr.limit + 1, TSS_MAX)
            # an unloaded TR still tells what the CPU would read as a TSS (base 0)
            plan.append(("tss", tr.base, max(size, 1)))
        ss, cs = cpu.segments["ss"], cpu.segments["cs"]
        sp = (ss.base + cpu.sp) if cpu.mode != "long" else cpu.sp
        stack_lo = max(0, sp - STACK_BELOW)
        plan.append(("stack", stack_lo, sp + STACK_ABOVE - stack_lo))
        ip = (cs.base + cpu.ip) if cpu.mode != "long" else cpu.ip
        code_lo = max(0, ip - CODE_BEFORE)
        plan.append(("code", code_lo, ip + CODE_AFTER - code_lo))
        return plan

    def _stack_tops(self, cpu: CpuState, tss: bytes) -> list[Planned]:
        """The ``STACK_TOP`` bytes just below each non-zero RSP0/ESP0/ISTn the TSS holds
        (decoded again only when the TSS bytes or the mode changed)."""
        if self._tops_of is not None and self._tops_of[:2] == (cpu.mode, tss):
            return list(self._tops_of[2])
        tops = self._decode_stack_tops(cpu, tss)
        self._tops_of = (cpu.mode, tss, tuple(tops))
        return tops

    def _decode_stack_tops(self, cpu: CpuState, tss: bytes) -> list[Planned]:
        from lhvdbg.x86.tss import decode_tss, stack_fields

        if not tss or cpu.mode in ("real", "vm86"):
            return []
        mode = "long" if cpu.mode in ("long", "compat") else "protected"
        decoded = decode_tss(tss, mode)
        wanted = ("rsp0", *(f"ist{n}" for n in range(1, 8))) if mode == "long" else ("esp0",)
        seen: set[int] = set()
        plan: list[tuple[str, int, int]] = []
        for name in wanted:
            if name not in stack_fields(mode):
                continue
            value = decoded.get(name)
            if not value:
                continue
            start = max(0, value - STACK_TOP)  # the stack grows down from the pointer
            if start in seen or not _canonical(start):
                continue
            seen.add(start)
            plan.append((name, start, value - start))
        return plan

    def _symbols_of_interest(self, cpu: CpuState) -> dict[str, int]:
        info = self.session.kernel_info
        if info is None or not info.symbols:
            return {}
        if len(info.symbols) <= MAX_ALL_SYMBOLS:
            return dict(info.symbols)
        out = {n: info.symbols[n] for n in SYMBOLS_OF_INTEREST if n in info.symbols}
        ip_sym = info.symbolize(cpu.ip).split("+")[0]
        if ip_sym in info.symbols:
            out[ip_sym] = info.symbols[ip_sym]
        return out


def _try(parse: Callable[[str], T], text: str) -> T | None:
    try:
        return parse(text)
    except ParseError:
        return None


def _canonical(address: int) -> bool:
    top = address >> 47
    return top in (0, 0x1FFFF)
