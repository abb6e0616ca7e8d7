"""``LiveTarget``: the ``Target`` protocol over a running session.

``cpu()`` comes from QMP ``info registers`` (hidden segment parts included), memory from
gdb, PIC/LAPIC from QMP, symbols from the kernel ELF. ``capture()`` gathers a whole
``Snapshot`` in two round trips: ``info registers`` over QMP; then every table/stack/code
read pipelined through gdb (with the pages the TSS stack pointers named at the last
capture) while QEMU answers ``info pic`` and ``info lapic``. A third reads the stack pages
only when the TSS now names others (the first capture, a new TSS).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from lhvdbg.errors import ParseError
from lhvdbg.state.snapshot import MemoryRegion, Provenance, Snapshot
from lhvdbg.x86.cpustate import Arch, CpuState, LapicState, PicState

if TYPE_CHECKING:
    from lhvdbg.machine.ports import ReadPort

log = logging.getLogger(__name__)
T = TypeVar("T")

PAGE = 0x1000
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


def _aligned_page(address: int) -> int:
    return address & ~(PAGE - 1)


class LiveTarget:
    """A ``Target`` backed by a live session (anything with the :class:`ReadPort`
    methods; :class:`~lhvdbg.machine.session.Session` in lhvdbg)."""

    def __init__(self, session: ReadPort) -> None:
        self.session = session
        # (mode, TR base) -> the RSP0/IST pages its TSS named at the last capture
        self._stack_guess: dict[tuple[str, int], list[tuple[str, int, int]]] = {}

    @property
    def arch(self) -> Arch:
        return self.session.arch

    @property
    def live(self) -> bool:
        return True

    def cpu(self) -> CpuState:
        """Registers from ``info registers`` (parsed by ``lhvdbg.x86.hmp``)."""
        from lhvdbg.x86.hmp import parse_info_registers

        return parse_info_registers(self.session.hmp("info registers"))

    def read_memory(self, address: int, size: int) -> bytes:
        """Guest linear memory through gdb."""
        return self.session.read_memory(address, size)

    def pic(self) -> PicState | None:
        """``info pic`` parsed; None if QEMU reports no PIC."""
        from lhvdbg.x86.hmp import parse_info_pic

        try:
            return parse_info_pic(self.session.hmp("info pic"))
        except ParseError:
            return None

    def lapic(self) -> LapicState | None:
        """``info lapic`` parsed; None if the LAPIC state is not available."""
        from lhvdbg.x86.hmp import parse_info_lapic

        try:
            return parse_info_lapic(self.session.hmp("info lapic"))
        except ParseError:
            return None

    def symbols(self) -> Mapping[str, int]:
        """Symbols of the kernel ELF (empty for a stripped kernel or a CD-ROM)."""
        info = self.session.kernel_info
        return dict(info.symbols) if info is not None else {}

    def symbolize(self, address: int) -> str:
        """``name+0xoff`` for an address, or the hex address."""
        return self.session.symbolize(address)

    # --- capture ------------------------------------------------------------------

    def capture(self, *, note: str = "", stop_reason: str | None = None) -> Snapshot:
        """Registers, GDT, IDT, TSS, stack, code, RSP0/IST pages, PIC, LAPIC, symbols,
        provenance — in two round trips (QMP, then gdb), three when the TSS's stack pages
        moved since the last capture. A region that is partly unreadable (e.g. a
        stack window running into an unmapped guard page) keeps its readable part; the
        unreadable ranges are named in ``provenance.note`` as ``not captured
        (unreadable): stack 0x10aec0-0x10b000, ...``."""
        from lhvdbg.x86.hmp import parse_info_lapic, parse_info_pic, parse_info_registers

        s = self.session
        t0 = time.perf_counter()
        registers = s.hmp("info registers")  # guarded: a closed/exited session raises
        cpu = parse_info_registers(registers)
        regions: list[MemoryRegion] = []
        missing: list[str] = []
        first = self._first_regions(cpu)
        # the pages the TSS named last time are read with the tables (they rarely move)
        key = (cpu.mode, cpu.tr.base)
        guess = [g for g in self._stack_guess.get(key, []) if g not in first]
        # QEMU answers the PIC/LAPIC texts while gdb reads the tables
        pending = s.qmp.send_hmp(["info pic", "info lapic"])
        runs = self._read_runs(first + guess)
        self._add(first, runs[: len(first)], regions, missing)
        pic_text, lapic_text = (str(t) for t in s.qmp.collect(pending))
        hmp = {"info registers": registers, "info pic": pic_text, "info lapic": lapic_text}
        pic = _try(parse_info_pic, pic_text)
        lapic = _try(parse_info_lapic, lapic_text)
        tss = next((r for r in regions if r.label == "tss" and r.address == cpu.tr.base), None)
        pages = self._stack_pages(cpu, tss.data if tss else b"")
        self._stack_guess[key] = pages
        known = dict(zip(guess, runs[len(first) :], strict=True))
        unread = [p for p in pages if p not in known]
        known.update(zip(unread, self._read_runs(unread), strict=True))  # when they moved
        self._add(pages, [known[p] for p in pages], regions, missing)

        notes = [note] if note else []
        if missing:
            notes.append("not captured (unreadable): " + ", ".join(missing))
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
            cpu=cpu,
            memory=tuple(regions),
            provenance=provenance,
            pic=pic,
            lapic=lapic,
            symbols=self._symbols_of_interest(cpu, regions),
            hmp=hmp,
        )
        log.debug("capture: %.2f ms", (time.perf_counter() - t0) * 1e3)
        return snap

    def _read_runs(self, plan: list[tuple[str, int, int]]) -> list[list[tuple[int, bytes]]]:
        """The readable runs of each planned region (one gdb round trip when all of it is
        readable; none for an empty plan)."""
        if not plan:
            return []
        return self.session.read_memory_readable([(a, n) for _, a, n in plan])

    @staticmethod
    def _add(
        plan: list[tuple[str, int, int]],
        runs: list[list[tuple[int, bytes]]],
        regions: list[MemoryRegion],
        missing: list[str],
    ) -> None:
        """Append the readable parts of ``plan`` to ``regions`` (a region with a hole
        becomes several, same label) and ``label start-end`` of each unreadable range to
        ``missing``."""
        from lhvdbg.machine.memory import uncovered_ranges

        for (label, addr, size), got in zip(plan, runs, strict=True):
            regions += [MemoryRegion(a, data, label) for a, data in got]
            missing += [
                f"{label} {lo:#x}-{hi:#x}" for lo, hi in uncovered_ranges(got, addr, addr + size)
            ]

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

    def _stack_pages(self, cpu: CpuState, tss: bytes) -> list[tuple[str, int, int]]:
        """The page just below each non-zero RSP0/ESP0/ISTn the TSS holds."""
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
            page = _aligned_page(value - 1)  # the stack grows down from the pointer
            if page in seen or not _canonical(page):
                continue
            seen.add(page)
            plan.append((name, page, PAGE))
        return plan

    def _symbols_of_interest(self, cpu: CpuState, regions: list[MemoryRegion]) -> dict[str, int]:
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
