"""Disassembly in the mode the CPU executes: real, 16/32-bit protected, compatibility, 64-bit.

The code size follows Intel SDM Vol. 3A §2.2 and §3.4.5: CR0.PE clear is real mode
(16-bit, linear address = CS.base + IP); with IA-32e active (EFER.LMA) CS.L selects 64-bit
code, else CS.D picks 32- or 16-bit (compatibility mode); in legacy protected mode CS.D
picks 32- or 16-bit; virtual-8086 mode is 16-bit. CS.L and CS.D are read through the
descriptor layout (:func:`lhvdbg.x86.segments.segment_descriptor_layout`).

Decoding is Capstone's (the engine pwndbg uses), imported on first use only: importing it
costs about 0.3 s, decoding a few instructions well under a millisecond. Text is AT&T
syntax, as gdb and ``objdump -d`` print it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from lhvdbg.errors import UsageError
from lhvdbg.x86.cpustate import CpuState
from lhvdbg.x86.segments import segment_descriptor_layout

__all__ = ["CodeMode", "Instruction", "code_mode", "disassemble", "mode_for_bits"]

MAX_INSTRUCTION = 15
"""The longest x86 instruction in bytes (SDM Vol. 2A §2.3.11)."""


@dataclass(frozen=True)
class CodeMode:
    """How the CPU reads code now: the default operand/address size and where CS starts.

    ``cs_base`` is added to an offset to get the linear address (0 in 64-bit mode, where
    the CS base is ignored).
    """

    bits: int  # 16, 32 or 64
    cs_base: int
    name: str  # "real", "vm86", "16-bit protected", "32-bit protected", "compat", "64-bit"

    @property
    def pointer_size(self) -> int:
        """Bytes in a near pointer (what ``*EXPR`` reads, what the stack holds)."""
        return self.bits // 8

    def linear(self, offset: int) -> int:
        """The linear address of ``offset`` in CS (real mode: CS.base + IP)."""
        if self.bits == 64:
            return offset
        return (self.cs_base + offset) & 0xFFFFFFFF


def _cs_bits(cs_flags: int) -> tuple[bool, bool]:
    """(CS.L, CS.D) from QEMU's attribute word (the descriptor's high dword)."""
    values = segment_descriptor_layout("long").decode((cs_flags & 0xFFFFFFFF) << 32).values
    return bool(values["l"]), bool(values["db"])


def code_mode(cpu: CpuState) -> CodeMode:
    """The code mode of ``cpu`` (its already-decoded ``mode`` plus CS.L/CS.D)."""
    cs = cpu.segments["cs"]
    long_bit, default_32 = _cs_bits(cs.flags)
    if cpu.mode == "real":
        return CodeMode(16, cs.base, "real")
    if cpu.mode == "vm86":
        return CodeMode(16, cs.base, "vm86")
    if cpu.mode == "long" or (cpu.mode == "compat" and long_bit):
        return CodeMode(64, 0, "64-bit")
    if cpu.mode == "compat":
        return CodeMode(32 if default_32 else 16, cs.base, "compat")
    bits = 32 if default_32 else 16
    return CodeMode(bits, cs.base, f"{bits}-bit protected")


def mode_for_bits(bits: int) -> CodeMode:
    """A flat code mode of ``bits`` (for ``x/i`` without a CPU state)."""
    if bits not in (16, 32, 64):
        raise UsageError(f"no x86 code mode has {bits} bits")
    return CodeMode(bits, 0, {16: "16-bit", 32: "32-bit protected", 64: "64-bit"}[bits])


@dataclass(frozen=True)
class Instruction:
    """One decoded instruction at a linear ``address``."""

    address: int
    size: int
    mnemonic: str
    operands: str
    raw: bytes
    cs_base: int = 0  # what a 16/32-bit branch target (an offset in CS) is relative to
    real: bool = False  # real or virtual-8086 mode: a far target is selector * 16 + offset

    @property
    def text(self) -> str:
        """``mnemonic operands`` (AT&T), or ``(bad)`` for bytes that decode to nothing."""
        return f"{self.mnemonic} {self.operands}".strip()

    def rip_relative(self) -> int | None:
        """The address a ``disp(%rip)`` operand names (relative to the next instruction)."""
        match = _RIP_RELATIVE.search(self.operands)
        if match is None:
            return None
        return (self.address + self.size + int(match.group(1), 16)) & 0xFFFFFFFFFFFFFFFF

    def target(self) -> int | None:
        """The linear destination of a direct jump or call (a plain number operand)."""
        far = _FAR.fullmatch(self.operands.strip())
        if self.mnemonic.startswith(("ljmp", "lcall")) and far is not None:
            selector, offset = int(far.group(1), 16), int(far.group(2), 16)
            # outside real mode the new CS base is in a descriptor: flat (0) is assumed
            return selector * 16 + offset if self.real else offset
        if not self.mnemonic.startswith(("j", "call", "loop")):
            return None
        operand = self.operands.strip()
        if not operand.startswith("0x"):
            return None
        try:
            return self.cs_base + int(operand, 16)
        except ValueError:
            return None


_FAR = re.compile(r"\$(0x[0-9a-f]+),\$(0x[0-9a-f]+)")
_RIP_RELATIVE = re.compile(r"(-?0x[0-9a-f]+)\(%rip\)")
_IMMEDIATE = re.compile(r"\$(-?)(\d+)\b(?!x)")
_DISPLACEMENT = re.compile(r"(^|[\s,:])(-?)(\d+)(?=\()")


def _hex_operands(text: str) -> str:
    """Capstone's AT&T operands with every number in hex and no space after commas, as
    ``objdump -d`` and gdb print them (``$2`` → ``$0x2``, ``8(%rbp)`` → ``0x8(%rbp)``)."""
    text = _IMMEDIATE.sub(lambda m: f"${m.group(1)}{int(m.group(2)):#x}", text)
    text = _DISPLACEMENT.sub(lambda m: f"{m.group(1)}{m.group(2)}{int(m.group(3)):#x}", text)
    return text.replace(", ", ",").replace(":$", ",$")  # ljmp $0x8,$0x1000b9 as objdump


@cache
def _engine(bits: int) -> Any:
    capstone: Any = importlib.import_module("capstone")
    modes = {16: capstone.CS_MODE_16, 32: capstone.CS_MODE_32, 64: capstone.CS_MODE_64}
    engine = capstone.Cs(capstone.CS_ARCH_X86, modes[bits])
    engine.syntax = capstone.CS_OPT_SYNTAX_ATT
    engine.skipdata = False
    return engine


def disassemble(
    data: bytes,
    address: int,
    mode: CodeMode,
    *,
    count: int,
    offset_base: int | None = None,
) -> list[Instruction]:
    """Up to ``count`` instructions decoded from ``data`` read at linear ``address``.

    In 16-bit code Capstone computes branch targets from the offset in CS, so it is given
    ``address - cs_base`` and the result is moved back to linear addresses. Bytes that do
    not decode become one ``(bad)`` byte and decoding goes on after it.
    """
    engine = _engine(mode.bits)
    base = mode.cs_base if offset_base is None else offset_base
    start = (address - base) if mode.bits != 64 else address
    out: list[Instruction] = []
    position = 0
    while len(out) < count and position < len(data):
        decoded = False
        for insn in engine.disasm(data[position:], start + position):
            out.append(
                Instruction(
                    address=address + position,
                    size=insn.size,
                    mnemonic=insn.mnemonic,
                    operands=_hex_operands(insn.op_str),
                    raw=bytes(insn.bytes),
                    cs_base=base if mode.bits != 64 else 0,
                    real=mode.name in ("real", "vm86"),
                )
            )
            position += insn.size
            decoded = True
            if len(out) >= count:
                break
        if not decoded and position < len(data):
            remaining = len(data) - position
            if remaining < MAX_INSTRUCTION and out:
                break  # the read window ends mid-instruction
            out.append(
                Instruction(address + position, 1, "(bad)", "", data[position : position + 1])
            )
            position += 1
    return out


def read_code(read: Callable[[int, int], bytes], address: int, size: int) -> bytes:
    """``size`` bytes at ``address`` through ``read``, shrinking the window until a read
    succeeds (the end of a captured region or of mapped memory), down to one instruction."""
    from lhvdbg.errors import LhvdbgError

    wanted = size
    last: LhvdbgError | None = None
    while wanted >= 1:
        try:
            return read(address, wanted)
        except LhvdbgError as exc:
            last = exc
            wanted = wanted // 2 if wanted > MAX_INSTRUCTION else wanted - 4
    assert last is not None
    raise last
