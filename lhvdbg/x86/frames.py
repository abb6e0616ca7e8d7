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


_SP = ("%rsp", "%esp", "%sp")
_BP = ("%rbp", "%ebp", "%bp")
MAX_PROLOGUE = 64  # instructions read from a function's start to the PC


def _immediate(operands: str) -> int | None:
    head = operands.split(",")[0]
    try:
        return int(head[1:], 16) if head.startswith("$") else None
    except ValueError:
        return None


def _frame_state(cpu: CpuState, read: Read, function_start: FunctionStart) -> int | None:
    """How many bytes the current function pushed below its return address, read from
    its instructions up to the PC (a prologue analysis, as gdb does without unwind
    tables); None once ``mov %sp,%bp`` made BP the frame pointer."""
    mode = code_mode(cpu)
    pc = mode.linear(cpu.ip)
    here = disassemble(read(pc, 15), pc, mode, count=1)
    if here and here[0].mnemonic.startswith("ret"):
        return 0
    start = function_start(pc)
    if start is None or start > pc:
        return None
    code = read(start, min(pc - start, MAX_PROLOGUE * 15))
    depth, address = 0, start
    for insn in disassemble(code, start, mode, count=MAX_PROLOGUE):
        if insn.address >= pc:
            break
        ops = insn.operands
        if insn.mnemonic.startswith("push"):
            depth += mode.pointer_size if mode.bits != 16 else 2
        elif insn.mnemonic.startswith("pop"):
            depth -= mode.pointer_size if mode.bits != 16 else 2
        elif insn.mnemonic.startswith(("sub", "add")) and ops.endswith(_SP):
            amount = _immediate(ops)
            if amount is not None:
                depth += amount if insn.mnemonic.startswith("sub") else -amount
        elif insn.mnemonic.startswith("mov") and ops.split(",")[0] in _SP and ops.endswith(_BP):
            return None
        address = insn.address + insn.size
    return depth if address >= pc or address == start else None


def return_address(cpu: CpuState, read: Read, function_start: FunctionStart) -> int | None:
    """Where the current function returns to (None when it cannot be told)."""
    mode = code_mode(cpu)
    size = mode.pointer_size
    _, sp, bp = _registers(cpu, mode)
    try:
        depth = _frame_state(cpu, read, function_start)
        if depth is not None:
            return _word(read, sp + depth, size)
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
        framed = _frame_state(cpu, read, function_start) is None
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
