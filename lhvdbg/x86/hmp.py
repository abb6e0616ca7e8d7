"""Parsers for QEMU's human-monitor text: ``info registers``, ``info pic``, ``info lapic``.

The formats are those of QEMU 7.2 (``target/i386/cpu-dump.c`` for ``info registers``,
``hw/intc/i8259_common.c`` for ``info pic``, ``target/i386/monitor.c`` for
``info lapic``), as returned by QMP ``human-monitor-command`` (``\\r\\n`` line ends are
accepted). Lines the parsers do not need (FPU, XMM, DR, the I/O APIC) are skipped; a
missing line they do need raises :class:`~lhvdbg.errors.ParseError` naming it.

The CPU mode is derived, not printed: CR0.PE clear is real mode, EFLAGS.VM is virtual-8086,
EFER.LMA with CS.L is 64-bit long mode, EFER.LMA without CS.L is compatibility mode,
anything else with CR0.PE is protected mode (Intel SDM Vol. 3A §2.2, §9.8.5).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from lhvdbg.errors import ParseError
from lhvdbg.x86.cpustate import (
    CpuMode,
    CpuState,
    LapicState,
    PicChip,
    PicState,
    SegmentRegister,
    TableRegister,
)
from lhvdbg.x86.registers import cr0_layout, efer_layout, eflags_layout
from lhvdbg.x86.segments import segment_descriptor_layout

__all__ = ["parse_info_lapic", "parse_info_pic", "parse_info_registers"]

_HEX = r"[0-9a-fA-F]+"

# "ES =0010 0000000000000000 ffffffff 00cf9300 DPL=0 DS   [-WA]" (the text after the flags
# word is QEMU's decoding of them, which lhvdbg recomputes from the flags).
_SEGMENT_RE = re.compile(
    rf"^(ES|CS|SS|DS|FS|GS|LDT|TR)\s*=({_HEX}) ({_HEX}) ({_HEX}) ({_HEX})(?:\s|$)", re.MULTILINE
)
_TABLE_RE = re.compile(rf"^(GDT|IDT)=\s+({_HEX}) ({_HEX})\s*$", re.MULTILINE)
_ASSIGN_RE = re.compile(rf"\b([A-Z][A-Z0-9]*) ?=({_HEX})\b")  # "R8 =0000..."

_SEGMENT_KEYS = {"LDT": "ldtr", "TR": "tr"}
_GPRS_64 = (
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
)  # fmt: skip
_GPRS_32 = ("eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp")


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]


def _first_cpu_block(text: str) -> str:
    """The text of the first ``CPU#n`` block (``info registers -a`` prints several)."""
    lines = _lines(text)
    starts = [i for i, line in enumerate(lines) if re.match(r"^CPU#\d+\s*$", line)]
    if len(starts) > 1:
        lines = lines[starts[0] : starts[1]]
    return "\n".join(lines)


def cpu_mode(cr0: int, flags: int, efer: int, cs_flags: int) -> CpuMode:
    """The operating mode from CR0.PE, EFLAGS.VM, EFER.LMA and CS.L (SDM Vol. 3A §2.2).

    ``cs_flags`` is QEMU's attribute word of CS: the descriptor's high dword, so it decodes
    through the descriptor layout placed at bit 32.
    """
    if not cr0_layout().decode(cr0 & 0xFFFFFFFF).values["pe"]:
        return "real"
    if efer_layout().decode(efer).values["lma"]:
        cs = segment_descriptor_layout("long").decode((cs_flags & 0xFFFFFFFF) << 32)
        return "long" if cs.values["l"] else "compat"
    if eflags_layout().decode(flags).values["vm"]:
        return "vm86"
    return "protected"


def parse_info_registers(text: str) -> CpuState:
    """Parse ``info registers`` (real, protected, compatibility or long mode) to CpuState.

    General registers keep the names the text uses: ``rax``..``r15`` when QEMU prints the
    64-bit layout (CS.L set in long mode), ``eax``..``edi`` otherwise. ``efer`` is 0 if the
    text has no EFER line. Raises ParseError naming the first missing item.
    """
    block = _first_cpu_block(text)
    values: dict[str, int] = {}
    for line in block.split("\n"):
        if _SEGMENT_RE.match(line) or _TABLE_RE.match(line):
            continue
        if line.startswith(("FPR", "XMM", "YMM", "ZMM", "FCW")):
            continue
        for name, value in _ASSIGN_RE.findall(line):
            values.setdefault(name, int(value, 16))

    def need(*names: str) -> int:
        for name in names:
            if name in values:
                return values[name]
        raise ParseError(f"info registers: no {names[0]}= in the text", text=text)

    wide = "RIP" in values
    gpr_names = _GPRS_64 if wide else _GPRS_32
    gprs = {name: need(name.upper()) for name in gpr_names}
    ip = need("RIP", "EIP")
    flags = need("RFL", "EFL")

    segments: dict[str, SegmentRegister] = {}
    for match in _SEGMENT_RE.finditer(block):
        name = _SEGMENT_KEYS.get(match.group(1), match.group(1).lower())
        selector, base, limit, seg_flags = (int(g, 16) for g in match.groups()[1:])
        segments.setdefault(name, SegmentRegister(selector, base, limit, seg_flags))
    for name in ("ES", "CS", "SS", "DS", "FS", "GS", "LDT", "TR"):
        if _SEGMENT_KEYS.get(name, name.lower()) not in segments:
            raise ParseError(f"info registers: no {name} segment line", text=text)

    tables: dict[str, TableRegister] = {}
    for match in _TABLE_RE.finditer(block):
        tables.setdefault(match.group(1), TableRegister(int(match[2], 16), int(match[3], 16)))
    for name in ("GDT", "IDT"):
        if name not in tables:
            raise ParseError(f"info registers: no {name}= line", text=text)

    cr0 = need("CR0")
    efer = values.get("EFER", 0)
    return CpuState(
        mode=cpu_mode(cr0, flags, efer, segments["cs"].flags),
        ip=ip,
        flags=flags,
        gprs=gprs,
        segments=segments,
        gdtr=tables["GDT"],
        idtr=tables["IDT"],
        cr0=cr0,
        cr2=need("CR2"),
        cr3=need("CR3"),
        cr4=need("CR4"),
        efer=efer,
        cpl=need("CPL"),
        halted=bool(values["HLT"]) if "HLT" in values else None,
    )


# "pic0: irr=00 imr=b8 isr=00 hprio=0 irq_base=08 rr_sel=0 elcr=00 fnm=0"; pic0 is the
# master. irr/imr/isr/irq_base/elcr are printed in hex, hprio/rr_sel/fnm in decimal.
_PIC_RE = re.compile(r"^pic([01]):((?:\s+\w+=[0-9a-fA-F]+)+)\s*$", re.MULTILINE)
_PIC_DECIMAL = {"hprio", "rr_sel", "fnm"}
_PIC_FIELDS = ("irr", "imr", "isr", "irq_base")


def _pic_chip(index: str, fields_text: str, text: str) -> PicChip:
    fields: dict[str, int] = {}
    for pair in fields_text.split():
        key, _, raw = pair.partition("=")
        try:
            fields[key] = int(raw, 10 if key in _PIC_DECIMAL else 16)
        except ValueError:
            raise ParseError(f"info pic: pic{index} {key}={raw} is not a number") from None
    for key in _PIC_FIELDS:
        if key not in fields:
            raise ParseError(f"info pic: pic{index} has no {key}=", text=text)
    extra = {k: v for k, v in fields.items() if k not in (*_PIC_FIELDS, "hprio", "init_state")}
    return PicChip(
        irr=fields["irr"],
        imr=fields["imr"],
        isr=fields["isr"],
        irq_base=fields["irq_base"],
        hprio=fields.get("hprio", 0),
        init_state=fields.get("init_state"),
        extra=extra,
    )


def parse_info_pic(text: str) -> PicState:
    """Parse the two 8259A lines of ``info pic`` (pic0 master, pic1 slave); the I/O APIC
    lines QEMU prints before them are ignored. QEMU 7.2 prints no ``init_state``, so it
    stays None; ``rr_sel``, ``elcr`` and ``fnm`` go to ``extra``."""
    text = "\n".join(_lines(text))
    chips: dict[str, PicChip] = {}
    for match in _PIC_RE.finditer(text):
        chips.setdefault(match.group(1), _pic_chip(match.group(1), match.group(2), text))
    for index in ("0", "1"):
        if index not in chips:
            raise ParseError(f"info pic: no pic{index}: line", text=text)
    return PicState(master=chips["0"], slave=chips["1"])


# LVT register names as ``info lapic`` prints them → the keys of LapicState.lvt.
LVT_NAMES: Mapping[str, str] = {
    "LVT0": "lint0",
    "LVT1": "lint1",
    "LVTPC": "perf",
    "LVTERR": "error",
    "LVTTHMR": "thermal",
    "LVTCMCI": "cmci",
}
_LAPIC_HEADER_RE = re.compile(r"^dumping local APIC state for CPU (\d+)", re.MULTILINE)
_LVT_RE = re.compile(r"^(LVT\w*)\s+0x([0-9a-fA-F]+)\b", re.MULTILINE)
_TIMER_RE = re.compile(
    r"^Timer\s+DCR=0x([0-9a-fA-F]+)\b.*?initial_count = (\d+)\s+current_count = (\d+)",
    re.MULTILINE,
)
_REG_RE = re.compile(r"^(SPIV|ICR|ICR2|ESR)\s+0x([0-9a-fA-F]+)\b", re.MULTILINE)
_VECTORS_RE = re.compile(r"^(ISR|IRR)\s+(.*)$", re.MULTILINE)
_TAIL_RE = re.compile(r"\b(APR|TPR|DFR|LDR|PPR) 0x([0-9a-fA-F]+)\b")


def _vector_bitmaps(name: str, listing: str) -> tuple[int, int]:
    """(vectors, level-triggered vectors) of an ISR/IRR line: ``34 39(level) `` or
    ``(none)``."""
    listing = listing.strip()
    if listing == "(none)":
        return 0, 0
    bits = level = 0
    for item in listing.split():
        match = re.fullmatch(r"(\d+)(\(level\))?", item)
        if match is None or int(match.group(1)) > 255:
            raise ParseError(f"info lapic: {name} entry {item!r} is not a vector")
        bits |= 1 << int(match.group(1))
        if match.group(2):
            level |= 1 << int(match.group(1))
    return bits, level


def parse_info_lapic(text: str) -> LapicState:
    """Parse ``info lapic`` into LapicState.

    ``apic_id`` is the CPU index of the header line (QEMU numbers the APIC IDs of a default
    topology the same way). ``tmr`` holds only the vectors shown as ``(level)`` in ISR or
    IRR, since QEMU prints the trigger-mode register no other way. ICR, ICR2, ESR, APR,
    DFR and LDR go to ``extra`` (lower-case names).
    """
    text = "\n".join(_lines(text))
    header = _LAPIC_HEADER_RE.search(text)
    if header is None:
        raise ParseError("info lapic: no 'dumping local APIC state' line", text=text)
    lvts = {name: int(value, 16) for name, value in _LVT_RE.findall(text)}
    if "LVTT" not in lvts:
        raise ParseError("info lapic: no LVTT (LVT timer) line", text=text)
    timer = _TIMER_RE.search(text)
    if timer is None:
        raise ParseError("info lapic: no Timer line with DCR and counts", text=text)
    regs = {name: int(value, 16) for name, value in _REG_RE.findall(text)}
    if "SPIV" not in regs:
        raise ParseError("info lapic: no SPIV line", text=text)
    vectors = dict(_VECTORS_RE.findall(text))
    for name in ("ISR", "IRR"):
        if name not in vectors:
            raise ParseError(f"info lapic: no {name} line", text=text)
    isr, isr_level = _vector_bitmaps("ISR", vectors["ISR"])
    irr, irr_level = _vector_bitmaps("IRR", vectors["IRR"])
    tail = {name: int(value, 16) for name, value in _TAIL_RE.findall(text)}
    for name in ("TPR", "PPR"):
        if name not in tail:
            raise ParseError(f"info lapic: no {name} value", text=text)
    extra = {name.lower(): value for name, value in regs.items() if name != "SPIV"}
    extra.update({name.lower(): tail[name] for name in ("APR", "DFR", "LDR") if name in tail})
    return LapicState(
        apic_id=int(header.group(1)),
        svr=regs["SPIV"],
        lvt_timer=lvts["LVTT"],
        timer_initial=int(timer.group(2)),
        timer_current=int(timer.group(3)),
        timer_divide=int(timer.group(1), 16),
        isr=isr,
        irr=irr,
        tmr=isr_level | irr_level,
        tpr=tail["TPR"],
        ppr=tail["PPR"],
        lvt={
            LVT_NAMES.get(name, name.lower()): value
            for name, value in lvts.items()
            if name != "LVTT"
        },
        extra=extra,
    )
