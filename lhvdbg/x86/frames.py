"""Call frames from the frame-pointer chain (``push %rbp; mov %rsp,%rbp`` prologues).

A near CALL pushes the return address (Intel SDM Vol. 1 §6.3.2), so at a function's
first instruction it is at [SP]; after ``push %rbp`` at [SP + pointer]; once the
prologue set the frame pointer, at [BP + pointer] with the caller's frame pointer at
[BP]. Words are the code mode's pointer size (:class:`lhvdbg.x86.disasm.CodeMode`).
Without frame pointers (``-fomit-frame-pointer``) the walk stops early or goes astray,
as gdb's does without unwind information.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lhvdbg.errors import LhvdbgError
from lhvdbg.x86.cpustate import CpuState
from lhvdbg.x86.disasm import CodeMode, code_mode, disassemble

__all__ = ["Frame", "backtrace", "return_address"]

MAX_FRAMES = 64
Read = Callable[[int, int], bytes]
FunctionStart = Callable[[int], int | None]


@dataclass(frozen=True)
class Frame:
    """One frame: the code address it runs at (linear) and its frame pointer."""

    number: int
    pc: int
    frame_pointer: int | None


def _word(read: Read, address: int, size: int) -> int:
    return int.from_bytes(read(address, size), "little")


def _registers(cpu: CpuState, mode: CodeMode) -> tuple[int, int, int]:
    """(linear PC, linear SP, linear BP)."""
    pc = mode.linear(cpu.ip)
    sp, bp = cpu.sp, cpu.gprs.get("rbp", cpu.gprs.get("ebp", 0))
    if mode.bits != 64:
        base = cpu.segments["ss"].base
        mask = 0xFFFF if cpu.mode in ("real", "vm86") else 0xFFFFFFFF
        sp, bp = (base + (sp & mask)) & 0xFFFFFFFF, (base + (bp & mask)) & 0xFFFFFFFF
    return pc, sp, bp


def _stage(cpu: CpuState, read: Read, function_start: FunctionStart) -> str:
    """``entry`` (nothing pushed yet, or at a RET), ``pushed`` (just after ``push %bp``),
    or ``framed`` (BP is this function's frame pointer)."""
    mode = code_mode(cpu)
    pc = mode.linear(cpu.ip)
    here = disassemble(read(pc, 15), pc, mode, count=1)
    if here and here[0].mnemonic.startswith("ret"):
        return "entry"
    start = function_start(pc)
    if start == pc:
        return "entry"
    if start is not None:
        first = disassemble(read(start, 15), start, mode, count=1)
        pushes_bp = bool(first) and first[0].mnemonic.startswith("push")
        if pushes_bp and "bp" in first[0].operands and pc == start + first[0].size:
            return "pushed"
    return "framed"


def return_address(cpu: CpuState, read: Read, function_start: FunctionStart) -> int | None:
    """Where the current function returns to (None when it cannot be told)."""
    mode = code_mode(cpu)
    size = mode.pointer_size
    _, sp, bp = _registers(cpu, mode)
    try:
        stage = _stage(cpu, read, function_start)
        if stage == "entry":
            return _word(read, sp, size)
        if stage == "pushed":
            return _word(read, sp + size, size)
        return _word(read, bp + size, size) if bp else None
    except LhvdbgError:
        return None


def backtrace(cpu: CpuState, read: Read, function_start: FunctionStart) -> list[Frame]:
    """Frame 0 at the PC, frame 1 at the return address, then up the BP chain."""
    mode = code_mode(cpu)
    size = mode.pointer_size
    pc, _, bp = _registers(cpu, mode)
    frames = [Frame(0, pc, bp)]
    caller = return_address(cpu, read, function_start)
    if caller is None:
        return frames
    framed = False
    try:
        framed = _stage(cpu, read, function_start) == "framed"
        # before the prologue set it, BP is still the caller's frame pointer
        chain = _word(read, bp, size) if framed and bp else bp
    except LhvdbgError:
        chain = 0
    frames.append(Frame(1, caller, chain))
    seen = {bp} if framed else set()
    while chain and chain not in seen and len(frames) < MAX_FRAMES:
        seen.add(chain)
        try:
            ret = _word(read, chain + size, size)
            nxt = _word(read, chain, size)
        except LhvdbgError:
            break
        if ret == 0:
            break
        frames.append(Frame(len(frames), ret, nxt))
        if nxt <= chain:
            break
        chain = nxt
    return frames
