"""Mode-aware disassembly (x86/disasm), the frame walk (x86/frames) and the context view
(ui/context), on recorded CPU states and known instruction bytes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lhvdbg.errors import MemoryNotCaptured, UsageError
from lhvdbg.ui.context import ContextInput, parse_sections, render_context
from lhvdbg.x86.cpustate import CpuState, SegmentRegister
from lhvdbg.x86.disasm import CodeMode, code_mode, disassemble, mode_for_bits
from lhvdbg.x86.frames import backtrace, return_address
from tests.unit.recorded_snapshots import recorded

# QEMU's CS attribute words: 64-bit code (L), 32-bit code (D), 16-bit code (neither)
CS64, CS32, CS16 = 0x00AF9A00, 0x00CF9A00, 0x00009B00


def _cpu(mode: str, cs_flags: int, cs_base: int = 0, ip: int = 0x1000) -> CpuState:
    base = recorded("lhv-good-amd64").cpu
    cs = SegmentRegister(selector=0x8, base=cs_base, limit=0xFFFFFFFF, flags=cs_flags)
    return replace(base, mode=mode, ip=ip, segments={**base.segments, "cs": cs})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mode", "flags", "bits", "name"),
    [
        ("real", CS16, 16, "real"),
        ("vm86", CS16, 16, "vm86"),
        ("protected", CS32, 32, "32-bit protected"),
        ("protected", CS16, 16, "16-bit protected"),
        ("compat", CS32, 32, "compat"),
        ("compat", CS16, 16, "compat"),
        ("long", CS64, 64, "64-bit"),
    ],
)
def test_code_mode_follows_cr0_pe_cs_l_and_cs_d(
    mode: str, flags: int, bits: int, name: str
) -> None:
    got = code_mode(_cpu(mode, flags, cs_base=0xF0000))
    assert (got.bits, got.name) == (bits, name)
    assert got.cs_base == (0 if bits == 64 else 0xF0000)
    assert got.pointer_size == bits // 8


def test_the_same_bytes_in_each_mode() -> None:
    code = bytes.fromhex("40a304901000")  # the i386 build's `inc %eax; mov %eax,0x109004`
    as32 = [i.text for i in disassemble(code, 0x100000, mode_for_bits(32), count=2)]
    assert as32 == ["incl %eax", "movl %eax,0x109004"]
    as64 = disassemble(code + bytes(8), 0x100000, mode_for_bits(64), count=1)[0]
    assert as64.text == "movabsl %eax,0x109004"  # what 64-bit decoding made of both


def test_real_mode_reset_vector_uses_the_cs_base() -> None:
    mode = code_mode(_cpu("real", CS16, cs_base=0xFFFF0000, ip=0xFFF0))
    pc = mode.linear(0xFFF0)
    assert pc == 0xFFFFFFF0
    (insn,) = disassemble(bytes.fromhex("ea5be000f0"), pc, mode, count=1)
    assert (insn.address, insn.text) == (0xFFFFFFF0, "ljmpw $0xf000,$0xe05b")
    assert insn.target() == 0xFE05B  # the far target: selector * 16 + offset


def test_branch_targets_and_rip_relative_operands_are_linear() -> None:
    # jne -0x12 at CS:0x0062 in real mode with CS base 0xf0000: the target is 0xf0053 linear
    mode = CodeMode(16, 0xF0000, "real")
    (jne,) = disassemble(bytes.fromhex("75ef"), 0xF0062, mode, count=1)
    assert jne.target() == 0xF0053
    (mov,) = disassemble(bytes.fromhex("488b0501f60000"), 0x101A00, mode_for_bits(64), count=1)
    assert mov.text == "movq 0xf601(%rip),%rax" and mov.rip_relative() == 0x111008


def test_undecodable_bytes_become_bad_and_decoding_goes_on() -> None:
    code = bytes.fromhex("0f0bd69090") + bytes(14)  # ud2; salc (not in 64-bit); nop
    texts = [i.text for i in disassemble(code, 0x1000, mode_for_bits(64), count=4)]
    assert texts == ["ud2", "(bad)", "nop", "nop"]


def test_mode_for_bits_refuses_other_sizes() -> None:
    with pytest.raises(UsageError, match="no x86 code mode has 8 bits"):
        mode_for_bits(8)


def _memory(words: dict[int, int], code: dict[int, bytes], size: int = 8):  # type: ignore[no-untyped-def]
    def read(address: int, length: int) -> bytes:
        for start, data in code.items():
            if start <= address < start + len(data):
                return (data[address - start :] + bytes(length))[:length]
        out = b""
        for a in range(address, address + length, size):
            if a not in words:
                raise MemoryNotCaptured(f"memory {a:#x} not captured", address=a)
            out += words[a].to_bytes(size, "little")
        return out[:length]

    return read


def test_frames_of_a_leaf_without_frame_pointer_and_a_framed_caller() -> None:
    """pit_init (no push %rbp) called by kernel_main (framed), called by _start."""
    leaf, caller = 0x1019D0, 0x1032C0
    code = {
        leaf: bytes.fromhex("31d2b8de341200f7f7"),  # xor; mov; div (nothing pushed)
        caller: bytes.fromhex("554889e5"),  # push %rbp; mov %rsp,%rbp
    }
    words = {
        0x110FB8: 0x10344C,  # [rsp]: pit_init's return address into kernel_main
        0x110FF0: 0x0,  # kernel_main's saved rbp (the outermost frame)
        0x110FF8: 0x1000D7,  # kernel_main's return address
    }
    cpu = _cpu("long", CS64, ip=leaf + 2)
    cpu = replace(cpu, gprs={**cpu.gprs, "rsp": 0x110FB8, "rbp": 0x110FF0})
    symbols = {"pit_init": leaf, "kernel_main": caller, "_start": 0x1000B9}

    def start(address: int) -> int | None:
        below = [a for a in symbols.values() if a <= address]
        return max(below) if below else None

    read = _memory(words, code)
    assert return_address(cpu, read, start) == 0x10344C
    frames = backtrace(cpu, read, start)
    assert [f.pc for f in frames] == [leaf + 2, 0x10344C, 0x1000D7]


def test_context_view_marks_changes_and_decodes_in_mode() -> None:
    code = {0x100000: bytes.fromhex("40a304901000") + bytes(32)}
    words = {0x7000 + 4 * i: 0x100000 * (i == 0) for i in range(8)}
    base = _cpu("protected", CS32, ip=0x100000)
    gprs = {"eax": 1, "ebx": 2, "ecx": 3, "edx": 4, "esi": 5, "edi": 6, "ebp": 0, "esp": 0x7000}
    cpu = replace(base, gprs=gprs)
    ss = SegmentRegister(0x10, 0, 0xFFFFFFFF, 0x00CF9300)
    cpu = replace(cpu, segments={**cpu.segments, "ss": ss})
    old = replace(cpu, gprs={**gprs, "eax": 0}, ip=0xFFFFF)
    text = render_context(
        ContextInput(cpu, old, _memory(words, code, 4), {"start": 0x100000}, "step: at start")
    )
    lines = text.splitlines()
    assert lines[0] == "── step: at start — protected mode, 32-bit code, CPL 0 ──"
    assert "*eax    0x00000001" in text and " ebx    0x00000002" in text
    assert "*eip    0x00100000" in text  # i386 names
    assert "=> 0x100000 <start>:\tincl   %eax" in lines
    assert "   0x100001 <start+0x1>:\tmovl   %eax,0x109004" in lines
    assert "00:sp 0x7000:\t0x00100000 <start>" in lines
    assert parse_sections("regs,code") == ("regs", "code")
    assert parse_sections("off") == () and parse_sections("on") == ("regs", "code", "stack")
    with pytest.raises(UsageError, match="context sections: bogus"):
        parse_sections("regs,bogus")
