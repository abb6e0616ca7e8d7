"""The context view shown after a stop, in the spirit of pwndbg's, and ``x/i`` lines.

Plain text (it goes to the shell's output like every other command): the stop event and
the CPU mode on a header line, the registers with changed ones marked ``*`` (the names the
CPU has: ``eip``/``esp`` on i386), the next instructions decoded in the CPU's code mode
(:mod:`lhvdbg.x86.disasm`) with ``name+0xoff`` symbols, and the stack words with symbols.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from lhvdbg.errors import LhvdbgError
from lhvdbg.state.symbols import symbolize
from lhvdbg.x86.cpustate import CpuState
from lhvdbg.x86.disasm import CodeMode, Instruction, code_mode, disassemble, read_code

__all__ = [
    "SECTIONS",
    "ContextInput",
    "ip_name",
    "parse_sections",
    "render_context",
    "render_instructions",
]

SECTIONS = ("regs", "code", "stack")
"""The sections of the context view, in the order shown (the header line is always there)."""
CODE_LINES = 6
STACK_WORDS = 8
Read = Callable[[int, int], bytes]


def parse_sections(text: str) -> tuple[str, ...]:
    """``off`` → (); ``on``/``all`` → every section; else a comma list of section names."""
    from lhvdbg.errors import UsageError

    word = text.strip().lower()
    if word in ("off", "none", "no"):
        return ()
    if word in ("on", "all", "yes"):
        return SECTIONS
    chosen = [w.strip() for w in word.split(",") if w.strip()]
    unknown = [w for w in chosen if w not in SECTIONS]
    if unknown or not chosen:
        raise UsageError(
            f"context sections: {', '.join(unknown) or 'none given'}: "
            f"use off, on, or a comma list of {', '.join(SECTIONS)}"
        )
    return tuple(s for s in SECTIONS if s in chosen)


def ip_name(cpu: CpuState) -> str:
    """``rip`` when the CPU reports 64-bit registers, else ``eip`` (``ip`` in real mode)."""
    if "rax" in cpu.gprs:
        return "rip"
    return "ip" if cpu.mode in ("real", "vm86") else "eip"


def _label(address: int, symbols: Mapping[str, int]) -> str:
    name = symbolize(address, symbols)
    return f"{address:#x} <{name}>" if name else f"{address:#x}"


def render_instructions(
    instructions: Sequence[Instruction], pc: int | None, symbols: Mapping[str, int]
) -> list[str]:
    """gdb-like lines: ``=> 0x1019d9 <pit_init+0x9>:\\tmov    $0xffff,%edx`` (targets of
    direct jumps and calls named too)."""
    lines = []
    for insn in instructions:
        mark = "=> " if insn.address == pc else "   "
        text = f"{insn.mnemonic:<6} {insn.operands}".rstrip()
        target = insn.target()
        if target is not None:
            name = symbolize(target, symbols)
            if name:
                text += f" <{name}>"
        relative = insn.rip_relative()
        if relative is not None:  # as objdump: where a RIP-relative operand points
            name = symbolize(relative, symbols)
            text += f"  # {relative:#x}" + (f" <{name}>" if name else "")
        lines.append(f"{mark}{_label(insn.address, symbols)}:\t{text}")
    return lines


def decode_at(read: Read, address: int, mode: CodeMode, count: int) -> list[Instruction]:
    """``count`` instructions at linear ``address`` (fewer where memory ends)."""
    data = read_code(read, address, count * 15)
    return disassemble(data, address, mode, count=count)


@dataclass(frozen=True)
class ContextInput:
    """What the context view shows: the CPU now and at the stop before, memory, symbols."""

    cpu: CpuState
    previous: CpuState | None
    read: Read
    symbols: Mapping[str, int]
    event: str = ""


def _header(data: ContextInput, mode: CodeMode) -> str:
    cpu = data.cpu
    where = f"{mode.bits}-bit code"
    extra = f", CS base {mode.cs_base:#x}" if mode.cs_base and mode.bits != 64 else ""
    event = f"{data.event} — " if data.event else ""
    return f"── {event}{cpu.mode} mode, {where}{extra}, CPL {cpu.cpl} ──"


def _registers(data: ContextInput) -> list[str]:
    cpu, old = data.cpu, data.previous
    width = 16 if "rax" in cpu.gprs else 8
    rows: list[tuple[str, int, bool, str]] = []
    for name, value in cpu.gprs.items():
        changed = old is not None and old.gprs.get(name) != value
        note = ""
        if name in ("rsp", "esp", "rbp", "ebp", "sp"):
            note = symbolize(value, data.symbols) or ""
        rows.append((name, value, changed, note))
    ip = ip_name(cpu)
    rows.append((ip, cpu.ip, old is not None and old.ip != cpu.ip, ""))
    flags_name = "rflags" if width == 16 else "eflags"
    rows.append((flags_name, cpu.flags, old is not None and old.flags != cpu.flags, ""))
    cells = [
        f"{'*' if changed else ' '}{name:<6} {value:#0{width + 2}x}"
        for name, value, changed, _ in rows
    ]
    per_line = 3 if width == 16 else 4
    lines = ["  ".join(cells[i : i + per_line]) for i in range(0, len(cells), per_line)]
    named = [f"{name} <{note}>" for name, _, _, note in rows if note]
    mode = code_mode(cpu)
    pc_name = symbolize(mode.linear(cpu.ip), data.symbols)
    if pc_name:
        named.insert(0, f"{ip} <{pc_name}>")
    if named:
        lines.append("  " + ", ".join(named))
    return lines


def _code(data: ContextInput, mode: CodeMode) -> list[str]:
    pc = mode.linear(data.cpu.ip)
    try:
        instructions = decode_at(data.read, pc, mode, CODE_LINES)
    except LhvdbgError as exc:
        return [f"   {pc:#x}: cannot read the code ({exc})"]
    return render_instructions(instructions, pc, data.symbols)


def stack_pointer(cpu: CpuState, mode: CodeMode) -> int:
    """The linear stack address (SS.base + SP outside 64-bit mode)."""
    if mode.bits == 64:
        return cpu.sp
    ss = cpu.segments["ss"]
    sp = cpu.sp & (0xFFFF if cpu.mode in ("real", "vm86") else 0xFFFFFFFF)
    return (ss.base + sp) & 0xFFFFFFFF


def _stack(data: ContextInput, mode: CodeMode) -> list[str]:
    size = mode.pointer_size if mode.bits != 16 else 2
    sp = stack_pointer(data.cpu, mode)
    try:
        raw = data.read(sp, size * STACK_WORDS)
    except LhvdbgError:
        try:
            raw = data.read(sp, size)
        except LhvdbgError as exc:
            return [f"   {sp:#x}: cannot read the stack ({exc})"]
    lines = []
    for i in range(0, len(raw) - size + 1, size):
        value = int.from_bytes(raw[i : i + size], "little")
        name = symbolize(value, data.symbols) if value else None
        mark = "sp" if i == 0 else "  "
        shown = f"{value:#0{size * 2 + 2}x}" + (f" <{name}>" if name else "")
        lines.append(f"{i:02x}:{mark} {sp + i:#x}:\t{shown}")
    return lines


def render_context(data: ContextInput, sections: Iterable[str] = SECTIONS) -> str:
    """The context view as text (one header line, then each chosen section)."""
    mode = code_mode(data.cpu)
    lines = [_header(data, mode)]
    chosen = tuple(sections)
    if "regs" in chosen:
        lines += ["── registers ──", *_registers(data)]
    if "code" in chosen:
        lines += [f"── code ({mode.bits}-bit) ──", *_code(data, mode)]
    if "stack" in chosen:
        lines += ["── stack ──", *_stack(data, mode)]
    return "\n".join(lines) + "\n"
